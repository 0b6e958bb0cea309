"""Which chapters the book has: the documents of ``_toc.yml`` whose MyST source is an executable
notebook (it has code cells and a cell tagged ``parameters``). ``_toc.yml`` is the one list of chapters;
everything else (execution, the site, benchmarks, launch twins, tests) asks this module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import paths

BOOK_DIR = "book"


def toc_files() -> list[str]:
    """Every document of ``_toc.yml`` (without extension), in reading order."""
    import yaml

    toc = yaml.safe_load((paths.root() / "_toc.yml").read_text())
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                out.append(str(node["file"]))
            for k in ("root",):
                if k in node:
                    out.append(str(node[k]))
            for k in ("chapters", "sections", "parts"):
                for child in node.get(k, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return out


def is_notebook(md: Path) -> bool:
    text = md.read_text()
    return "```{code-cell}" in text and "parameters" in text


def chapters() -> list[str]:
    """Stems of the executable chapters, in reading order (e.g. ``01-single-neuron``)."""
    out = []
    for f in toc_files():
        p = paths.root() / f"{f}.md"
        if p.exists() and is_notebook(p):
            out.append(p.stem)
    return out


def resolve(names: list[str] | None) -> list[str]:
    """Map ``ch01``, ``01``, ``1`` or a full stem to chapter stems; ``all`` or nothing means all."""
    known = chapters()
    if not names or names == ["all"]:
        return known
    out = []
    for n in names:
        m = n.lower().removeprefix("ch").removesuffix(".md")
        hits = [s for s in known if s == n or s.split("-")[0] == m.zfill(2) or s == m]
        if len(hits) != 1:
            raise SystemExit(f"unknown chapter {n!r}: choose from {', '.join(known)} (or ch01 ... )")
        out.append(hits[0])
    return out
