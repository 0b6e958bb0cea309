"""Assemble and render the book: :func:`stage` builds a Sphinx source tree for one profile in
``_build/site/<profile>/`` from the *executed* notebooks of that profile only (so a build never mixes
profiles), with the generated claims, runs and status tables; :func:`render` runs jupyter-book on it
into ``_build/html``; :func:`build` does both after executing every chapter.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import paths
from .chapters import BOOK_DIR, chapters, resolve
from .claims import SOURCES
from .execute import RECORDS_DIR, Execution, default_jobs, execute_all


def _studies_line(rec: dict[str, Any]) -> str:
    studies = rec.get("studies") or []
    if not studies:
        return ""
    elsewhere = [s for s in studies if s.get("device") != rec.get("device")]
    if elsewhere:
        s0 = elsewhere[0]
        return (
            f" Its {len(elsewhere)} studies were computed on **{s0.get('device_name')}** at commit "
            f"`{s0.get('commit')}` ({sum(s.get('wall_s') or 0 for s in elsewhere):.0f} s) and are "
            "rendered here from the study cache."
        )
    hits = sum(bool(s.get("cached")) for s in studies)
    return f" {len(studies)} studies, {hits} of them read from the study cache." if hits else ""


def _banner(rec: dict[str, Any], repository: tuple[str, str] = ("", "main")) -> str:
    stem = rec["chapter"]
    short = stem.split("-")[0]
    return (
        ":::{admonition} How this page was computed, and how to rerun it\n"
        ":class: note\n\n"
        f"Executed with profile **{rec['profile']}** on **{rec['device_name']}**, seed {rec['seed']}, "
        f"commit `{rec['commit']}`, in {rec['wall_s']:.0f} s ({rec['started_utc']}); "
        f"{rec['n_passed']} of {rec['n_claims']} claims pass.{_studies_line(rec)}\n\n"
        "Rerun this chapter (after `python3 tasks.py env`, which sets up `.venv`):\n\n"
        "```bash\n"
        f".venv/bin/python -m lib run ch{short}                               # fast, CPU\n"
        f".venv/bin/python -m lib run ch{short} --profile full --device cuda  # paper scale, GPU\n"
        f".venv/bin/python -m lib run ch{short} --profile full --device cpu   # paper scale, CPU\n"
        "```\n\n"
        f'Download this chapter as <a href="../sources/{stem}.md" download>MyST Markdown</a> (the source) '
        f'or as an <a href="../sources/{stem}.ipynb" download>executed notebook</a>; '
        "see also {ref}`appendix-reproducibility`.\n"
        + _launch_line(stem, repository)
        + ":::\n"
    )


def _launch_line(stem: str, repository: tuple[str, str]) -> str:
    from . import launch

    ln = launch.links(stem, *repository)
    if not ln:
        return ""
    return (
        f'\nOr run it in the cloud: <a href="{ln["binder"]}">launch on Binder</a> (builds `environment.yml`) '
        f'or <a href="{ln["colab"]}">open in Colab</a> (its first cell installs the book\'s library).\n'
    )


def _stage_notebook(
    src: Path, dst: Path, rec: dict[str, Any], repository: tuple[str, str], claim_set: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy an executed notebook into the site: the parameters cell shows the values this execution
    ran with (papermill's separate injected cell is folded into it) and the run banner precedes it;
    the claim cells and the parameter listing are folded away (:func:`fold_claim_cells`,
    :func:`fold_parameter_listing`). Returns the staged notebook."""
    import re

    import nbformat

    nb = nbformat.read(src, as_version=4)
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    idx = next((i for i, t in enumerate(tags) if "parameters" in t), 1)
    inj = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    if inj is not None and idx < len(nb.cells):
        values = dict(re.findall(r"^(\w+) = (.+)$", nb.cells[inj].source, flags=re.M))
        lines = []
        for line in nb.cells[idx].source.splitlines():
            m = re.match(r"^(\w+)(\s*=\s*)(.*?)(\s*#.*)?$", line)
            if m and m.group(1) in values:
                comment = m.group(4) or ""
                if comment:  # keep the comments aligned
                    width = len(m.group(3)) + len(comment) - len(comment.lstrip())
                    comment = " " * max(1, width - len(values[m.group(1)])) + comment.lstrip()
                line = f"{m.group(1)}{m.group(2)}{values[m.group(1)]}{comment}"
            lines.append(line)
        nb.cells[idx].source = "\n".join(lines)
        del nb.cells[inj]
    nb.cells.insert(idx, nbformat.v4.new_markdown_cell(_banner(rec, repository)))
    fold_claim_cells(nb, rec["chapter"], claim_set or {})
    fold_parameter_listing(nb)
    nbformat.write(nb, dst)
    return nb


#: A cell that checks claims: ``ctx.claim("<id>", ...)``, the id a string literal.
_CLAIM_CALL = re.compile(r"\bctx\.claim\(")
_CLAIM_ID = re.compile(r"""\bctx\.claim\(\s*(["'])([^"'\n]+)\1""")
#: The cell that lists a chapter's parameters: ``describe(P)`` or ``chNN.describe(P)``.
_DESCRIBE = re.compile(r"(?:^|[\s.])describe\(P\)")
#: Tags with which a cell's input is already out of sight.
_INPUT_HIDDEN = {"hide-input", "remove-input", "hide-cell", "remove-cell"}


def _add_tag(cell: Any, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _claim_from_record(d: dict[str, Any]) -> Any:
    """The :class:`lib.book.claims.Claim` a claims record (``to_json``) holds, to print its line again."""
    import dataclasses

    from .claims import Claim, Control

    names = {f.name for f in dataclasses.fields(Claim)}
    kw = {k: v for k, v in d.items() if k in names}
    for k in ("measured", "expected", "tol", "lower", "upper"):
        if isinstance(kw.get(k), str):  # inf and nan are stored as text
            kw[k] = float(kw[k])
    ctl = kw.get("control")
    if ctl:
        kw["control"] = Control(ctl["description"], float(ctl["measured"]), ctl.get("passed", False))
    return Claim(**kw)


def claim_source(c: dict[str, Any]) -> str:
    """Whose statement a recorded claim checks: its ``source`` (a key of
    :data:`lib.book.claims.SOURCES`), which every claim states when it is made."""
    from .claims import SOURCES

    src = c.get("source")
    if src not in SOURCES:
        raise ValueError(f"claim {c.get('id')!r}: its record has source={src!r}, not one of {tuple(SOURCES)}; "
                         "re-execute its chapter (records written before claims stated their source lack it)")
    return src


def claims_line_html(stem: str, checked: list[Any]) -> str:
    """The compact line that stands for a claim cell's output: "✓ checked: N claims", expanding to
    one line per claim (its id a link to its row in Appendix A), with an anchor ``at-<id>`` per claim
    that the appendix row links back to."""
    from html import escape

    from .claims import fmt_value

    n = len(checked)
    ident = sum(c.kind == "identity" for c in checked)
    if ident == n:
        label = f"✓ checked: {n} {'identity' if n == 1 else 'identities'}"
    else:
        label = f"✓ checked: {n} claim{'s' if n != 1 else ''}" + (
            f" ({ident} of them {'an identity' if ident == 1 else 'identities'})" if ident else "")
    items = []
    for c in checked:
        r = c.resolution()
        text = (f'<a href="appendix-claims.html#claim-{escape(c.id)}"><code>{escape(c.id)}</code></a> '
                f"({escape(c.kind)}): {escape(c.statement)}. Measured m = {escape(fmt_value(c.measured, r))}; "
                f"criterion <code>{escape(c.criterion())}</code>")
        if c.control is not None:
            verdict = "passes too" if c.control.passed else "fails, as it must"
            text += (f"; control, {escape(c.control.description)}: "
                     f"m = {escape(fmt_value(c.control.measured, r))}, {verdict}")
        items.append(f"<li>{text}.</li>")
    anchors = "".join(f'<span id="at-{escape(c.id)}"></span>' for c in checked)
    body = "\n".join(items)
    return (f'<div class="ib-checked">{anchors}<details><summary>{escape(label)}</summary>\n'
            f"<ul>\n{body}\n</ul></details></div>\n")


def fold_claim_cells(nb: Any, stem: str, claim_set: dict[str, Any]) -> int:
    """Fold the claim cells of a staged notebook: each code cell that calls ``ctx.claim(`` gets the
    ``hide-input`` tag, and the ``[PASS] ...`` lines it printed give way to one compact line
    (:func:`claims_line_html`) built from the run's claims record ``claim_set``.

    Raises ``ValueError`` when the cell, its output and the record disagree: a claim id that is not a
    string literal, a claim of the cell missing from the record or failed there, a printed line that
    is not the record's, or a claim of the record that no cell checks. Returns the number of claims."""
    import nbformat

    by_id = {d["id"]: d for d in claim_set.get("claims", [])}
    placed: list[str] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not _CLAIM_CALL.search(cell.source):
            continue
        where = f"{stem}, cell {i}"
        ids = [m.group(2) for m in _CLAIM_ID.finditer(cell.source)]
        if len(ids) != len(_CLAIM_CALL.findall(cell.source)):
            raise ValueError(f"{where}: a ctx.claim call whose id is not a string literal; "
                             "the claims line cannot be matched with the claims record")
        checked = []
        for cid in ids:
            if cid not in by_id:
                raise ValueError(f"{where}: claim {cid!r} is checked in the cell but missing from the claims "
                                 "record; re-execute the chapter")
            if not by_id[cid].get("passed"):
                raise ValueError(f"{where}: claim {cid!r} did not pass in the claims record")
            checked.append(_claim_from_record(by_id[cid]))
        out = "".join(o.get("text", "") for o in cell.outputs
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
        printed = out
        for c in checked:
            line = c.summary() + "\n"
            if line not in out:
                raise ValueError(f"{where}: the output does not show claim {c.id!r} as its record has it "
                                 f"(expected the line {c.summary().splitlines()[0]!r}); re-execute the chapter")
            out = out.replace(line, "", 1)
        outputs = []
        for o in cell.outputs:
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                if out.strip():  # anything else the cell printed stays, once
                    outputs.append(nbformat.v4.new_output("stream", name="stdout", text=out))
                    out = ""
                continue
            outputs.append(o)
        outputs.append(nbformat.v4.new_output(
            "display_data", data={"text/html": claims_line_html(stem, checked), "text/plain": printed}))
        cell.outputs = outputs
        tags = set(cell.get("metadata", {}).get("tags", []))
        if not tags & _INPUT_HIDDEN:
            _add_tag(cell, "hide-input")
        placed += ids
    missing = [cid for cid in by_id if cid not in placed]
    if missing:
        raise ValueError(f"{stem}: claims {missing} are in the claims record but no cell checks them")
    return len(placed)


def fold_parameter_listing(nb: Any) -> bool:
    """Give the cell that lists the chapter's parameters (``describe(P)``) the ``hide-output`` tag."""
    found = False
    for cell in nb.cells:
        if cell.cell_type == "code" and _DESCRIBE.search(cell.source):
            _add_tag(cell, "hide-output")
            found = True
    return found


def visible_code_lines(nb: Any) -> int:
    """Lines of code a reader sees without a click: code cells whose input is not hidden."""
    return sum(len(c.source.splitlines()) for c in nb.cells if c.cell_type == "code"
               and not set(c.get("metadata", {}).get("tags", [])) & _INPUT_HIDDEN)


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    return f"{x:.6g}"


def _control_cell(c: dict[str, Any]) -> str:
    ctl = c.get("control")
    if c.get("kind", "evidence") == "identity":
        return "identity (not counted as evidence)"
    if not ctl:
        return "**no control yet**"
    verdict = "fails, as it must" if not ctl.get("passed") else "**passes: cannot tell it apart**"
    return f"{ctl['description']}: {_fmt(ctl['measured'])}, {verdict}"


def _chapter_title(stem: str) -> str:
    """A chapter's title (its first ``# `` heading), or its stem when the source is not there."""
    f = paths.root() / BOOK_DIR / f"{stem}.md"
    m = re.search(r"^# (.+)$", f.read_text(), flags=re.M) if f.exists() else None
    return m.group(1).strip() if m else stem


def _claims_filter_form(stems: list[str]) -> list[str]:
    """The filter of Appendix A as raw HTML: hidden until the script (:data:`CLAIMS_JS`) shows it, so
    that without JavaScript the page is the full tables."""
    from html import escape

    chapters_opts = "".join(f'<option value="{escape(s)}">{int(s[:2]) if s[:2].isdigit() else s}. '
                            f"{escape(_chapter_title(s))}</option>" for s in stems)
    source_opts = "".join(f'<option value="{k}">{v}</option>' for k, v in SOURCES.items())
    return [
        '<form id="ib-claims-filter" class="ib-claims-filter" hidden>',
        f'<label>Chapter <select name="chapter"><option value="">all chapters</option>{chapters_opts}</select></label>',
        '<label>Kind <select name="kind"><option value="">evidence and identities</option>'
        '<option value="evidence">evidence</option><option value="identity">identities</option></select></label>',
        f'<label>Source <select name="source"><option value="">all sources</option>{source_opts}</select></label>',
        '<output id="ib-claims-count" aria-live="polite"></output>',
        "</form>",
        "",
    ]


def claims_markdown(runs: list[dict[str, Any]], claim_sets: dict[str, dict[str, Any]]) -> str:
    """The claims appendix: one table per chapter, every measured value as a number, each evidence
    claim with the wrong ingredient it rules out (its negative control) and that control's value.

    Each row has the anchor ``claim-<id>``, links to the place ``at-<id>`` where its chapter checks
    it, and carries its chapter, kind and source (:func:`claim_source`) for the page's filter."""
    lines = []
    total = sum(c.get("n_claims", 0) for c in claim_sets.values())
    passed = sum(c.get("n_passed", 0) for c in claim_sets.values())
    cl = [c for cs in claim_sets.values() for c in cs.get("claims", [])]
    evidence = [c for c in cl if c.get("kind", "evidence") == "evidence"]
    controlled = [c for c in evidence if c.get("control") and not c["control"].get("passed")]
    by_source = {k: sum(claim_source(c) == k for c in cl) for k in SOURCES}
    lines.append(
        f"**{passed} of {total} claims pass** in this build: {len(evidence)} evidence claims, "
        f"{len(controlled)} of them with a negative control that fails as it must, and "
        f"{len(cl) - len(evidence)} identities (algebraic or structural checks, not counted as evidence). "
        f"By source: {by_source['paper']} name a part of a paper, {by_source['book']} the book's own "
        f"derivation, construction or experiment, and {by_source['numerics']} the book's numerics.\n"
    )
    lines.append('Every claim as data, one row per claim: <a href="../claims.csv" download>claims.csv</a> · '
                 '<a href="../claims.json">claims.json</a> (with every digit, the tolerances and the controls).\n')
    lines += _claims_filter_form([r["chapter"] for r in runs])
    for rec in runs:
        stem = rec["chapter"]
        cs = claim_sets.get(stem, {})
        lines.append(f"## {{doc}}`{stem}`\n")
        lines.append(
            f"{cs.get('n_passed', 0)} of {cs.get('n_claims', 0)} claims pass "
            f"(profile {rec['profile']}, {rec['device_name']}, commit `{rec['commit']}`).\n"
        )
        lines += [
            ":::{list-table}",
            ":header-rows: 1",
            ":widths: 4 32 10 17 17 9 11",
            ":class: ib-claims",
            "",
            '* - <span class="visually-hidden">status</span>',
            "  - claim",
            "  - kind, source",
            "  - rules out (negative control)",
            "  - paper",
            "  - measured",
            "  - criterion",
        ]
        for c in cs.get("claims", []):
            mark = "✓" if c["passed"] else "✗ FAIL"
            stmt = c["statement"].replace("\n", " ")
            kind = c.get("kind", "evidence")
            source = claim_source(c)
            vals = ""
            if c.get("values"):
                vals = "<br><small>" + "; ".join(f"{k} = {_fmt(v)}" for k, v in c["values"].items()) + "</small>"
            paper = f"{{cite:t}}`{c['paper']}`, {c['where']}" if c.get("paper") else c.get("where", "")
            anchor = (f'<span id="claim-{c["id"]}" class="ib-claim" data-chapter="{stem}" data-kind="{kind}" '
                      f'data-source="{source}"></span>')
            lines += [
                f"* - {mark}",
                f'  - {anchor}{stmt} <br><small>`{c["id"]}` · <a href="{stem}.html#at-{c["id"]}">where the '
                f"chapter checks it</a></small>{vals}",
                f"  - {kind}<br><small>{SOURCES[source]}</small>",
                f"  - {_control_cell(c)}",
                f"  - {paper}",
                f"  - {_fmt(c['measured'])}",
                f"  - `{c['criterion']}`",
            ]
        lines += [":::", ""]
    return "\n".join(lines)


#: The columns of ``claims.csv``, one row per claim.
CSV_COLUMNS = ("chapter", "id", "statement", "kind", "source", "paper", "where", "measured", "criterion",
               "expected", "tol", "rel", "lower", "upper", "strict", "control", "control_measured",
               "control_passed", "passed", "chapter_page")


def claims_csv(claim_sets: dict[str, dict[str, Any]]) -> str:
    """Every claim of the build as CSV, one row per claim (:data:`CSV_COLUMNS`); ``chapter_page`` is
    the place in the site where the chapter checks it."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for stem, cs in claim_sets.items():
        for c in cs.get("claims", []):
            ctl = c.get("control") or {}
            row = {k: c.get(k) for k in CSV_COLUMNS}
            row.update(chapter=stem, kind=c.get("kind", "evidence"), source=claim_source(c),
                       control=ctl.get("description", ""), control_measured=ctl.get("measured", ""),
                       control_passed=ctl.get("passed", ""), chapter_page=f"book/{stem}.html#at-{c['id']}")
            w.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


#: Appendix A's filter: hides the rows (and the chapters' sections) the chosen chapter, kind and source
#: exclude; without it the page shows every table in full. Shipped with the site in ``_static``.
CLAIMS_JS = """// Appendix A: filter the claims tables by chapter, kind and source (lib/book/site.py writes this file).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("ib-claims-filter");
  if (!form) return;
  var keys = ["chapter", "kind", "source"];
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.ib-claims tbody tr"));
  function apply() {
    var shown = 0;
    rows.forEach(function (tr) {
      var d = tr.querySelector("span.ib-claim");
      var ok = !d || keys.every(function (k) { return !form.elements[k].value || d.dataset[k] === form.elements[k].value; });
      tr.style.display = ok ? "" : "none";
      if (ok && d) shown += 1;
    });
    document.querySelectorAll("table.ib-claims").forEach(function (t) {
      var any = Array.prototype.some.call(t.querySelectorAll("tbody tr"), function (tr) { return tr.style.display !== "none"; });
      var sec = t.closest("section");
      if (sec) sec.style.display = any ? "" : "none";
    });
    document.getElementById("ib-claims-count").textContent = shown + " of " + rows.length + " claims shown";
  }
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.hidden = false;
  apply();
});
"""

#: The look of the compact claims line of the chapters and of Appendix A's filter.
CLAIMS_CSS = """/* The chapters' compact claims lines and Appendix A's filter (lib/book/site.py writes this file). */
.ib-checked { font-size: 0.9em; margin: 0.2em 0; }
.ib-checked summary { cursor: pointer; }
.ib-checked ul { margin: 0.3em 0 0.3em 1.2em; padding: 0; }
.ib-checked code { white-space: normal; word-break: break-word; }
form.ib-claims-filter { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: center; margin: 0.8em 0; }
form.ib-claims-filter[hidden] { display: none; }
"""


def _prf_blocks(src: str) -> list[dict[str, str]]:
    """The sphinx-proof blocks of a chapter's source except proofs: kind, title and ``:label:``, in
    order (fences of backticks or colons, three or more)."""
    out = []
    for m in re.finditer(r"^(`{3,}|:{3,})\{prf:(\w+)\}[ \t]*(.*)\n((?:[ \t]*:[\w-]+:.*\n)*)", src, flags=re.M):
        if m.group(2) == "proof":
            continue
        label = re.search(r":label:\s*(\S+)", m.group(4))
        out.append({"kind": m.group(2), "title": m.group(3).strip(), "label": label.group(1) if label else "",
                    "line": str(src.count("\n", 0, m.start()) + 1)})
    return out


def result_attribution(title: str) -> str:
    """Whose result a block states, from the mark that closes its title: "(paper)", "(book's
    derivation)" or "(book's ...)", "(recalled)" (a result quoted from the literature)."""
    m = re.search(r"\(([^()]*)\)\s*$", title)
    mark = m.group(1).strip().lower() if m else ""
    if mark == "paper":
        return "paper"
    if mark.startswith("book's") or mark == "book":
        return "book's derivation"
    if mark == "recalled":
        return "recalled from the literature"
    return "not marked"


def results_markdown(stems: list[str]) -> str:
    """The List of results: per chapter, every theorem, proposition, lemma, corollary, definition,
    remark, ... of its source, with its number as rendered and a link (``{prf:ref}``), its title and
    whose result it is (:func:`result_attribution`). Raises ``ValueError`` for a block without a
    ``:label:`` (it could not be linked)."""
    lines = []
    for stem in stems:
        blocks = _prf_blocks((paths.root() / BOOK_DIR / f"{stem}.md").read_text())
        if not blocks:
            continue
        unlabelled = [f"line {b['line']} ({b['kind']})" for b in blocks if not b["label"]]
        if unlabelled:
            raise ValueError(f"{stem}: sphinx-proof blocks without a :label: ({', '.join(unlabelled)}); "
                             "label every result so that the List of results can link to it")
        lines += [f"## {{doc}}`{stem}`", "", ":::{list-table}", ":header-rows: 1", ":widths: 20 55 25",
                  ":class: ib-results", "", "* - result", "  - title", "  - whose result"]
        for b in blocks:
            lines += [f"* - {{prf:ref}}`{b['label']}`", f"  - {b['title'] or '(untitled)'}",
                      f"  - {result_attribution(b['title'])}"]
        lines += [":::", ""]
    return "\n".join(lines) + "\n"


def figures_markdown(runs: list[dict[str, Any]], figures_dir: Path) -> str:
    """The list of figures: for each chapter, every figure with a thumbnail, its number (a link to it
    in the chapter), its caption and its downloads; citations are under each figure in its chapter."""
    lines = []
    for rec in runs:
        stem = rec["chapter"]
        records = [json.loads(f.read_text()) for f in sorted((figures_dir / stem).glob("*.json"))]
        if not records:
            continue
        src = (paths.root() / BOOK_DIR / f"{stem}.md").read_text()  # the chapter's order of figures
        order = {m: i for i, m in enumerate(re.findall(rf":name: fig-ch{stem[:2]}-([a-z0-9-]+)", src))}
        records.sort(key=lambda r: order.get(r["figure"], len(order)))
        lines += [f"## {{doc}}`{stem}`", "", ":::{list-table}", ":header-rows: 1", ":widths: 22 14 44 20",
                  ":class: ib-figures", "", "* - figure", "  - number", "  - caption", "  - files"]
        base = f"../figures/{stem}"
        for r in records:
            fid = r["figure"]
            files = r.get("files", {})
            links = " · ".join(f'<a href="{base}/{v["file"]}" download>{k.upper()}</a>' for k, v in files.items())
            links += f' · <a href="{base}/{fid}.json">provenance</a>'
            alt = r.get("alt", "").replace('"', "&quot;")
            lines += [f'* - <img src="{base}/{fid}.png" alt="{alt}" width="220">',
                      f"  - {{numref}}`fig-ch{stem[:2]}-{fid}`",
                      f"  - {' '.join(r.get('caption', '').split())}",
                      f"  - {links}"]
        lines += [":::", ""]
    return "\n".join(lines) + "\n"


def runs_markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| chapter | profile | device | seed | commit | wall time | claims |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {{doc}}`{r['chapter']} <{r['chapter']}>` | {r['profile']} | {r['device_name']} | "
            f"{r['seed']} | `{r['commit']}` | {r['wall_s']:.0f} s | {r['n_passed']}/{r['n_claims']} |"
        )
    return "\n".join(lines) + "\n"


def recorded_markdown(profile: str = "full") -> str:
    """The appendix's table of the archived executions of ``profile`` (see :func:`archive`)."""
    d = paths.root() / RECORDS_DIR / profile
    recs = [json.loads(f.read_text()) for f in sorted(d.glob("*.run.json"))] if d.exists() else []
    known = {stem: i for i, stem in enumerate(chapters())}
    recs = sorted((r for r in recs if r.get("chapter") in known), key=lambda r: known[r["chapter"]])
    missing = [stem for stem in known if stem not in {r["chapter"] for r in recs}]
    if not recs:
        return f"No `{profile}` execution is recorded with this version of the book.\n"
    lines = [
        "| chapter | device | commit | code version | started | wall time | claims |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        lines.append(
            f"| {{doc}}`{r['chapter']} <{r['chapter']}>` | {r['device_name']} | `{r['commit']}` | "
            f"`{r.get('code_version', '')}` | {r['started_utc']} | {r['wall_s']:.0f} s | "
            f"{r['n_passed']}/{r['n_claims']} |"
        )
    if missing:
        lines.append("")
        lines.append("Not yet executed at this profile: " + ", ".join(f"{{doc}}`{m} <{m}>`" for m in missing) + ".")
    return "\n".join(lines) + "\n"


def status_markdown(runs: list[dict[str, Any]], claim_sets: dict[str, dict[str, Any]]) -> str:
    """The intro's table: each paper, its chapter, and the state of its claims in this build, split by
    whose statement they check (the paper's, the book's derivation, the book's numerics)."""
    from .papers import papers

    by_stem = {r["chapter"]: r for r in runs}
    lines = ["| chapter | paper | what it shows | claims pass | checking the paper / the book's derivations / "
             "numerics | evidence with a failing control | identities |",
             "|---|---|---|---|---|---|---|"]
    for p in papers():
        r = by_stem.get(p.chapter)
        if r is None:
            continue
        ok = "✓" if r["n_passed"] == r["n_claims"] and r["n_claims"] > 0 else "✗"
        ev, ctl = r.get("n_evidence", r["n_claims"]), r.get("n_controlled", 0)
        cl = claim_sets.get(p.chapter, {}).get("claims", [])
        split = " / ".join(str(sum(claim_source(c) == k for c in cl)) for k in SOURCES)
        lines.append(
            f"| {{doc}}`{p.chapter}` | {p.authors}, *{p.title}*, {p.venue} {{cite:p}}`{p.key}` | "
            f"{p.topic} | {ok} {r['n_passed']}/{r['n_claims']} | {split} | {ctl} of {ev} | {r.get('n_identity', 0)} |"
        )
    return "\n".join(lines) + "\n"


def stage(
    profile: str, executions: list[Execution], *, site: Path | None = None,
    repository: tuple[str, str] | None = None,
) -> Path:
    """Assemble the Sphinx source tree of one profile (default ``_build/site/<profile>``).

    ``repository`` is ``(url, branch)`` of the public repository (default: :func:`lib.launch.repository`);
    the theme's launch buttons are configured only when the URL is not empty."""
    import yaml

    from . import launch

    root = paths.root()
    site = site or paths.build_dir() / "site" / profile
    if site.exists():
        shutil.rmtree(site)
    (site / BOOK_DIR / "_generated").mkdir(parents=True)
    for name in ("_toc.yml", "references.bib"):
        shutil.copy(root / name, site / name)
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    url, branch = launch.repository() if repository is None else repository
    repository = (url, branch)
    cfg.pop("repository", None)
    cfg.pop("launch_buttons", None)
    cfg.update(launch.site_config(url, branch))
    # the marker lib.sphinxext checks: this tree holds executed chapters (``jupyter-book build .``
    # on the checkout does not, and is stopped with a pointer to ``python3 tasks.py book``)
    cfg.setdefault("sphinx", {}).setdefault("config", {})["ib_staged"] = True
    extra = cfg.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_extra_path", [])
    extra.append("_extra")
    (site / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copytree(root / "vendor", site / "vendor")
    shutil.copytree(root / "_static", site / "_static")
    stems = {e.stem for e in executions}
    for f in (root / BOOK_DIR).iterdir():
        if f.is_file() and f.suffix == ".md" and f.stem in stems:
            continue
        if f.is_file() and f.suffix == ".ipynb" and f.with_suffix(".md").exists():
            continue  # a launch twin (lib.launch): the site renders the executed notebook or the source
        if f.name.startswith(".") or f.name == "_generated" or not (f.is_file() or f.is_dir()):
            continue  # hidden files, generated pages, sockets and other special files
        (shutil.copytree if f.is_dir() else shutil.copy)(f, site / BOOK_DIR / f.name)
    extra_dir = site / "_extra"
    (extra_dir / "figures").mkdir(parents=True)
    (extra_dir / "sources").mkdir(parents=True)
    claim_sets = {}
    for e in executions:
        cpath = e.notebook.parent / f"{e.stem}.claims.json"
        claim_sets[e.stem] = json.loads(cpath.read_text()) if cpath.exists() else {}
        _stage_notebook(e.notebook, site / BOOK_DIR / f"{e.stem}.ipynb", e.record, repository, claim_sets[e.stem])
        fig = e.notebook.parent / "figures" / e.stem
        if fig.exists():
            shutil.copytree(fig, extra_dir / "figures" / e.stem)
        shutil.copy(root / BOOK_DIR / f"{e.stem}.md", extra_dir / "sources" / f"{e.stem}.md")
        shutil.copy(e.notebook, extra_dir / "sources" / f"{e.stem}.ipynb")
    runs = [e.record for e in executions]
    gen = site / BOOK_DIR / "_generated"
    (gen / "claims.md").write_text(claims_markdown(runs, claim_sets))
    (gen / "results.md").write_text(results_markdown([e.stem for e in executions]))
    (site / "_static" / "ib-claims.js").write_text(CLAIMS_JS)
    (site / "_static" / "ib-claims.css").write_text(CLAIMS_CSS)
    (gen / "runs.md").write_text(runs_markdown(runs))
    (gen / "recorded-full.md").write_text(recorded_markdown("full"))
    (gen / "status.md").write_text(status_markdown(runs, claim_sets))
    (gen / "figures.md").write_text(figures_markdown(runs, extra_dir / "figures"))
    from . import bench

    (gen / "bench.md").write_text(bench.markdown(root / "benchmarks"))
    (gen / "scaling.md").write_text(
        bench.scaling_markdown(root / "benchmarks") or "No scaling measurement is stored with this version.\n"
    )
    for cs in claim_sets.values():  # every claim states its source; a record without one stops here
        for c in cs.get("claims", []):
            claim_source(c)
    paths.atomic_write_json(extra_dir / "claims.json", {"profile": profile, "chapters": claim_sets})
    (extra_dir / "claims.csv").write_text(claims_csv(claim_sets))
    return site


def _tree_hash(folder: Path) -> str:
    """A hash of every file's path and bytes under ``folder``: an unchanged site is not re-rendered."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:20]


def render(site: Path, path_output: Path, *, strict: bool = True) -> Path:
    """Render a staged site with jupyter-book into ``<path_output>/_build/html`` (a clean build, so that
    ``-W`` sees every warning); skipped when the site is byte for byte the one rendered there last."""
    html = path_output / "_build" / "html"
    stamp = html / ".ib-site-hash"
    # the extension shapes every page too: a change to it alone must re-render
    ext = hashlib.sha256(Path(__file__).with_name("sphinxext.py").read_bytes()).hexdigest()[:12]
    digest = f"{_tree_hash(site)}-{ext}" + ("-strict" if strict else "")
    if stamp.exists() and stamp.read_text() == digest and (html / "index.html").exists():
        print(f"Book unchanged since its last rendering: {html / 'index.html'}", flush=True)
        return html
    if html.exists():  # a clean build: stale pages and files never survive
        shutil.rmtree(html)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(site), "--all",
           "--path-output", str(path_output)]
    if strict:
        cmd += ["-W", "--keep-going"]
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=paths.root())
    if r.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {r.returncode}); see the warnings above")
    stamp.write_text(digest)
    print(f"Book rendered in {time.perf_counter() - t0:.0f} s: {html / 'index.html'}", flush=True)
    return html


def build(
    profile: str = "fast",
    device: str = "auto",
    seed: int = 0,
    *,
    names: list[str] | None = None,
    force: bool = False,
    strict: bool = True,
    jobs: int | None = None,
    dest: Path | None = None,
    repository: tuple[str, str] | None = None,
) -> Path:
    """Execute every chapter for ``profile`` (:func:`execute_all`) and render the book.

    The site goes to ``_build/html`` (with ``dest``: staged in ``<dest>/site`` and rendered into
    ``<dest>/_build/html``); ``repository`` overrides the configured ``(url, branch)``."""
    stems = resolve(names)
    t0 = time.perf_counter()
    print(f"Executing {len(stems)} chapters ({profile}), up to {jobs or default_jobs()} at once ...", flush=True)
    executions = execute_all(stems, profile, device, seed, jobs=jobs, force=force)
    print(f"Chapters done in {time.perf_counter() - t0:.0f} s", flush=True)
    if dest is None:
        site = stage(profile, executions, repository=repository)
        b = paths.build_dir()
        path_output = b.parent if b.name == "_build" else b
    else:
        site = stage(profile, executions, site=Path(dest) / "site", repository=repository)
        path_output = Path(dest)
    return render(site, path_output, strict=strict)
