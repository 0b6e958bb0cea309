"""Sphinx extension of the book: every figure says how to cite and regenerate it.

For each numbered figure named ``fig-chNN-<figure id>`` in a chapter, a line is added under its
caption with links to the figure's PNG, PDF and provenance record (``figures/<chapter>/<id>.*``, copied
next to the pages by the build) and "cite" disclosures holding a BibTeX entry and a CITATION.cff
snippet with the book's version, the commit and the figure id. The figure keeps its stable anchor ``#fig-chNN-<figure id>``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes

FIG_NAME = re.compile(r"^fig-ch(\d\d)-([a-z0-9-]+)$")


def _version() -> str:
    from .. import __version__

    return __version__


def bibtex(stem: str, fig_id: str, rec: dict, version: str) -> str:
    num = stem.split("-")[0]
    commit = rec.get("commit", "unknown")
    return (
        f"@misc{{ibbook-ch{num}-{fig_id},\n"
        f"  title        = {{Figure {fig_id} of chapter {stem}}},\n"
        f"  author       = {{{{The implicit-bias book authors}}}},\n"
        f"  howpublished = {{Implicit bias of gradient methods: a reproducible companion, version {version}}},\n"
        f"  note         = {{Figure id ch{num}/{fig_id}; commit {commit}; profile {rec.get('profile', '?')}; "
        f"regenerate with python -m lib run ch{num} --profile {rec.get('profile', 'fast')}}},\n"
        f"  year         = {{2026}}\n"
        f"}}"
    )


def cff(stem: str, fig_id: str, rec: dict, version: str) -> str:
    num = stem.split("-")[0]
    return (
        "cff-version: 1.2.0\n"
        f'message: "If you use this figure, cite it as below."\n'
        f'title: "Figure {fig_id} of chapter {stem}: Implicit bias of gradient methods, a reproducible companion"\n'
        "type: dataset\n"
        "authors:\n"
        '  - name: "The implicit-bias book authors"\n'
        f'version: "{version}"\n'
        f'commit: "{rec.get("commit", "unknown")}"\n'
        f'keywords: ["figure ch{num}/{fig_id}", "profile {rec.get("profile", "?")}"]\n'
    )


def _figure_links(app, doctree, docname):
    if app.builder.format != "html":
        return
    srcdir = Path(app.srcdir)
    stem = Path(docname).name
    depth = docname.count("/")
    up = "../" * depth
    for fig in list(doctree.findall(nodes.figure)):
        name = next((n for n in fig.get("names", []) + fig.get("ids", []) if FIG_NAME.match(n)), None)
        if not name:
            continue
        fig_id = FIG_NAME.match(name).group(2)
        rec_path = srcdir / "_extra" / "figures" / stem / f"{fig_id}.json"
        if not rec_path.exists():
            continue
        rec = json.loads(rec_path.read_text())
        base = f"{up}figures/{stem}/{fig_id}"
        cite = bibtex(stem, fig_id, rec, _version())
        html = (
            f'<div class="ib-figure-links">'
            f'<a href="{base}.png" download>PNG</a> · <a href="{base}.pdf" download>PDF</a> · '
            f'<a href="{base}.json">provenance</a> · <a href="#{name}">link</a>'
            f'<details class="ib-cite"><summary>Cite this figure</summary>'
            f'<pre>{_escape(cite)}</pre></details>'
            f'<details class="ib-cite"><summary>CFF</summary>'
            f'<pre>{_escape(cff(stem, fig_id, rec, _version()))}</pre></details></div>'
        )
        fig += nodes.raw("", html, format="html")


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
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
