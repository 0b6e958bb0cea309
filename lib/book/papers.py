"""The papers of the book, one per chapter.

Each chapter names its paper in its own front matter (``book: {paper: <key>, topic: "<one line>"}``);
authors, title and venue come from that key's entry in ``references.bib``. Nothing else lists them, so
a new chapter brings its paper with it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .chapters import BOOK_DIR, chapters


@dataclass(frozen=True)
class Paper:
    chapter: str  # chapter stem in book/
    key: str  # bibliography key
    authors: str  # "Vardi & Shamir", "Park, Pelakh & Wojtowytsch"
    title: str
    venue: str  # "COLT 2021"
    topic: str  # what the chapter shows, in one line


def front_matter(md: Path) -> dict:
    """The YAML front matter of a MyST file (``{}`` without one)."""
    import yaml

    text = md.read_text()
    if not text.startswith("---"):
        return {}
    end = text.index("\n---", 3)
    return yaml.safe_load(text[3:end]) or {}


@functools.lru_cache(maxsize=4)
def _bibliography(path: str, mtime: float) -> dict:
    from pybtex.database import parse_file

    return parse_file(path, "bibtex").entries


def _strip(s: str) -> str:
    return re.sub(r"[{}]", "", s).strip()


def _names(persons) -> str:
    last = [_strip(" ".join(p.last_names)) for p in persons]
    return last[0] if len(last) == 1 else ", ".join(last[:-1]) + " & " + last[-1]


def _venue(fields) -> str:
    where = fields.get("booktitle") or fields.get("journal") or fields.get("publisher") or ""
    acronym = re.findall(r"\(([A-Za-z]+)\)", where)
    return f"{acronym[-1] if acronym else _strip(where)} {fields.get('year', '')}".strip()


def paper_of(stem: str) -> Paper | None:
    """The paper chapter ``stem`` is about, or ``None`` (a chapter without ``book.paper``).

    Raises ``KeyError`` naming the chapter when its key is not in ``references.bib``."""
    meta = (front_matter(paths.root() / BOOK_DIR / f"{stem}.md").get("book") or {})
    key = meta.get("paper")
    if not key:
        return None
    bib = paths.root() / "references.bib"
    entries = _bibliography(str(bib), bib.stat().st_mtime)
    if key not in entries:
        raise KeyError(f"{stem}: its front matter names paper {key!r}, which references.bib does not have")
    e = entries[key]
    return Paper(stem, key, _names(e.persons.get("author", [])), _strip(e.fields.get("title", "")),
                 _venue(e.fields), str(meta.get("topic", "")))


def papers() -> list[Paper]:
    """The papers of the chapters, in reading order."""
    return [p for p in (paper_of(s) for s in chapters()) if p is not None]
