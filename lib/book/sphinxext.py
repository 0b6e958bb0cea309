"""Sphinx extension of the book: every figure says how to cite and regenerate it.

For each numbered figure named ``fig-chNN-<figure id>`` in a chapter, a line is added under its
caption with links to the figure's PNG, PDF, plotted data (CSV) and provenance record
(``figures/<chapter>/<id>.*``, copied next to the pages by the build) and a "Cite this figure"
disclosure: a plain-text citation and a BibTeX entry with the figure's number and caption, the
chapter's title, the book's authors and version (``CITATION.cff``), the paper it illustrates, the
commit and profile, and its URL when ``html.baseurl`` is set in ``_config.yml``. The figure keeps its
stable anchor ``#fig-chNN-<figure id>``.

It also repairs generated markup that assistive technology stumbles on (the browser test's
axe-core audit finds it): the empty header cells of pandas tables in notebook outputs get a visually
hidden label (:func:`label_empty_headers`), and a few fixed strings that docutils and myst-nb write
are replaced in every page's body (:data:`_BODY_REPAIRS`).
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

from docutils import nodes

FIG_NAME = re.compile(r"^fig-ch(\d\d)-([a-z0-9-]+)$")


def _version() -> str:
    from .. import __version__

    return __version__


def _citation_meta() -> dict:
    """Authors, version and year of the book, from ``CITATION.cff`` (the one place they are stated)."""
    import yaml

    from . import paths

    cff = yaml.safe_load((paths.root() / "CITATION.cff").read_text())
    authors = [a.get("name") or " ".join(x for x in (a.get("given-names"), a.get("family-names")) if x)
               for a in cff.get("authors", [])]
    return {"authors": authors, "version": str(cff.get("version", _version())), "title": cff["title"],
            "year": str(cff.get("date-released", "2026"))[:4]}


def _paper(stem: str) -> dict | None:
    from .papers import paper_of

    p = paper_of(stem)
    return None if p is None else {"key": p.key, "authors": p.authors, "title": p.title, "venue": p.venue}


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return (m.group(1) if m else text).rstrip(".")


_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$"}


def _tex(text: str) -> str:
    """Plain text for a BibTeX field: LaTeX's special characters escaped outside ``$...$`` math."""
    parts = re.split(r"(\$[^$]*\$)", text)
    return "".join(p if p.startswith("$") and p.endswith("$") and len(p) > 1
                   else "".join(_TEX_SPECIAL.get(c, c) for c in p) for p in parts)


def caption_text(node) -> str:
    """A caption's text with its math kept as ``$...$`` (the TeX a citing document can typeset)."""
    out = []
    for n in node.findall(lambda x: isinstance(x, (nodes.Text, nodes.math))):
        if isinstance(n, nodes.math):
            out.append(f"${n.astext()}$")
        elif not any(isinstance(p, nodes.math) for p in _parents(n)):
            out.append(n.astext())
    return " ".join("".join(out).split())


def _parents(n):
    while n.parent is not None:
        n = n.parent
        yield n


def citation(stem: str, fig_id: str, number: str, caption: str, chapter_title: str, url: str,
             rec: dict) -> tuple[str, str]:
    """``(BibTeX, plain text)`` for one figure: its number and caption, the chapter and the book, the
    version, the paper it illustrates, the commit and profile it was computed at, and its URL. Math in
    the caption stays ``$...$``; the BibTeX fields escape LaTeX's special characters."""
    meta, paper = _citation_meta(), _paper(stem)
    num = stem.split("-")[0]
    title = f"Fig. {number}: {_first_sentence(caption)}" if number else _first_sentence(caption)
    where = f"{chapter_title}. In: {meta['title']}, version {meta['version']}"
    illus = (f"Illustrates {paper['authors']}, {paper['title']}, {paper['venue']}. " if paper else "")
    note = f"{illus}Computed at commit {rec.get('commit', 'unknown')}, profile {rec.get('profile', '?')}."
    bib_authors = " and ".join("{" + _tex(a) + "}" if " " in a else _tex(a) for a in meta["authors"])
    lines = [f"@misc{{ibbook-ch{num}-{fig_id},",
             f"  title        = {{{{{_tex(title)}}}}},",
             f"  author       = {{{bib_authors}}},",
             f"  howpublished = {{{_tex(where)}}},",
             f"  year         = {{{meta['year']}}},"]
    if url:
        lines.append(f"  url          = {{{url}}},")
    lines += [f"  note         = {{{_tex(note)}}}", "}"]
    plain = (f"{', '.join(meta['authors'])} ({meta['year']}). {title}. {where}. {note}"
             + (f" {url}" if url else ""))
    return "\n".join(lines), plain


def _figure_links(app, doctree, docname):
    if app.builder.format != "html":
        return
    srcdir = Path(app.srcdir)
    stem = Path(docname).name
    depth = docname.count("/")
    up = "../" * depth
    numbers = app.env.toc_fignumbers.get(docname, {}).get("figure", {})
    title = app.env.titles[docname].astext() if docname in app.env.titles else stem
    base_url = (app.config.html_baseurl or "").rstrip("/")
    for fig in list(doctree.findall(nodes.figure)):
        name = next((n for n in fig.get("names", []) + fig.get("ids", []) if FIG_NAME.match(n)), None)
        if not name:
            continue
        fig_id = FIG_NAME.match(name).group(2)
        rec_path = srcdir / "_extra" / "figures" / stem / f"{fig_id}.json"
        if not rec_path.exists():
            continue
        rec = json.loads(rec_path.read_text())
        number = ".".join(str(n) for n in numbers.get(fig["ids"][0], ())) if fig.get("ids") else ""
        caps = list(fig.findall(nodes.caption))
        caption = caption_text(caps[0]) if caps else rec.get("caption", "")
        url = f"{base_url}/{docname}.html#{name}" if base_url else ""
        bib, plain = citation(stem, fig_id, number, caption, title, url, rec)
        base = f"{up}figures/{stem}/{fig_id}"
        html = (
            f'<div class="ib-figure-links">'
            f'<a href="{base}.png" download>PNG</a> · <a href="{base}.pdf" download>PDF</a> · '
            f'<a href="{base}.csv" download>data (CSV)</a> · '
            f'<a href="{base}.json">provenance</a> · <a href="#{name}">link</a>'
            f'<details class="ib-cite"><summary>Cite this figure</summary>'
            f'<p>{_escape(plain)}</p><pre>{_escape(bib)}</pre></details></div>'
        )
        fig += nodes.raw("", html, format="html")


_THEAD = re.compile(r"(<thead\b[^>]*>)(.*?)(</thead>)", re.S | re.I)
_TBODY_ROW = re.compile(r"<tbody\b[^>]*>\s*<tr\b[^>]*>(.*?)</tr>", re.S | re.I)
_ROW = re.compile(r"<tr\b[^>]*>.*?</tr>", re.S | re.I)
_CELL = re.compile(r"<(th|td)\b([^>]*)>(.*?)</\1\s*>", re.S | re.I)
_COLSPAN = re.compile(r"""colspan\s*=\s*["']?(\d+)""", re.I)


def _span(attrs: str) -> int:
    m = _COLSPAN.search(attrs)
    return int(m.group(1)) if m else 1


def _cell_text(inner: str) -> str:
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", inner))
    return " ".join(text.replace("\xa0", " ").split())


def label_empty_headers(markup: str) -> str:
    """Give every empty header cell (``<th></th>``) of the HTML tables in ``markup`` a visually hidden
    label, so that each column has a header a screen reader can announce.

    pandas writes such cells in a DataFrame's header: the corner above the index (one per index level)
    and, when the index is named, the cells beside the index names in the row that holds them. The
    label of an empty cell is the nearest header text in its column: below it (the index name, for a
    corner cell) or else above it (the column's label, for a cell of the index-names row); a corner
    with no name anywhere in its column is labelled "index", any other cell "column <n>". Only the
    ``<thead>`` is changed; everything else is returned byte for byte."""

    def fix_table(m: re.Match) -> str:
        rows = [list(_CELL.finditer(r.group(0))) for r in _ROW.finditer(m.group(2))]
        grid: list[dict[int, str]] = []  # per header row: column -> header text
        for cells in rows:
            col, texts = 0, {}
            for c in cells:
                texts[col] = _cell_text(c.group(3))
                col += _span(c.group(2))
            grid.append(texts)
        body = _TBODY_ROW.search(markup, m.end())
        n_index = len(re.findall(r"<th\b", body.group(1).split("<td", 1)[0], re.I)) if body else 0

        def label(r: int, col: int) -> str:
            below = [g.get(col, "") for g in grid[r + 1:]]
            above = [g.get(col, "") for g in grid[:r]][::-1]
            text = next((t for t in below + above if t), "")
            return text or ("index" if col < n_index else f"column {col + 1}")

        out, pos = [], 0
        section = m.group(2)
        for r, row in enumerate(_ROW.finditer(section)):
            col, row_start = 0, row.start()
            for c in _CELL.finditer(row.group(0)):
                if c.group(1).lower() == "th" and not _cell_text(c.group(3)):
                    out.append(section[pos:row_start + c.start()])
                    hidden = html_lib.escape(label(r, col), quote=False)
                    out.append(f'<th{c.group(2)}><span class="visually-hidden">{hidden}</span></th>')
                    pos = row_start + c.end()
                col += _span(c.group(2))
        out.append(section[pos:])
        return m.group(1) + "".join(out) + m.group(3)

    return _THEAD.sub(fix_table, markup)


def _label_output_tables(app, doctree, docname):
    """Notebook outputs are raw HTML (pandas tables among them): label their empty header cells."""
    if app.builder.format != "html":
        return
    for node in list(doctree.findall(nodes.raw)):
        if "html" not in node.get("format", "").split() or "<th" not in node.astext():
            continue
        fixed = label_empty_headers(node.astext())
        if fixed != node.astext():
            node[0] = nodes.Text(fixed)


#: exact strings of the page body that other packages write, and their accessible replacements
_BODY_REPAIRS = (
    # docutils: each bibliography entry is a <div role="doc-biblioentry"> in a <div role="list">;
    # ARIA deprecates that role, and a list must contain list items (axe aria-required-children)
    ('role="doc-biblioentry"', 'role="listitem"'),
    # myst-nb: a hidden cell's <summary> shows "Show code cell source" but was named "Toggle hidden
    # content" (WCAG 2.5.3, axe label-content-name-mismatch); without the label its text names it
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
)


def _repair_body(app, pagename, templatename, context, doctree):
    """Replace the markup of :data:`_BODY_REPAIRS` in the rendered body of every page."""
    body = context.get("body")
    if not body:
        return
    for old, new in _BODY_REPAIRS:
        body = body.replace(old, new)
    context["body"] = body

def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """sphinx-thebe registers its inline configuration script once per reading pass, so pages got it
    twice ("THEBE_JS_URL has already been declared"); keep the first copy of every script."""
    files = context.get("script_files")
    if not files:
        return
    seen, out = set(), []
    for js in files:
        attrs = getattr(js, "attributes", {})
        key = (getattr(js, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key in seen:
            continue
        seen.add(key)
        out.append(js)
    files[:] = out  # in place: later handlers (MathJax) append to this very list


NOT_STAGED = (
    "This checkout's chapters must be executed before they are rendered: build the book with "
    "`python3 tasks.py book` (it runs the chapters, then jupyter-book on the executed notebooks)."
)


def _require_staged(app, config):
    """``jupyter-book build .`` on the checkout would render every chapter unexecuted (no figures, no
    glued numbers): stop at once and name the command that builds the book."""
    if not config.ib_staged:
        # SystemExit, not a Sphinx error: jupyter-book would bury the line under two tracebacks
        raise SystemExit(NOT_STAGED)


def setup(app):
    app.add_config_value("ib_staged", False, "env")
    app.connect("config-inited", _require_staged)
    app.connect("doctree-resolved", _figure_links)
    app.connect("doctree-resolved", _label_output_tables)
    app.connect("html-page-context", _repair_body)
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
