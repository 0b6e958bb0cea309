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


def _stage_notebook(src: Path, dst: Path, rec: dict[str, Any], repository: tuple[str, str]) -> None:
    """Copy an executed notebook into the site: the parameters cell shows the values this execution
    ran with (papermill's separate injected cell is folded into it) and the run banner precedes it."""
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
    nbformat.write(nb, dst)


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


def claims_markdown(runs: list[dict[str, Any]], claim_sets: dict[str, dict[str, Any]]) -> str:
    """The claims appendix: one table per chapter, every measured value as a number, each evidence
    claim with the wrong ingredient it rules out (its negative control) and that control's value."""
    lines = []
    total = sum(c.get("n_claims", 0) for c in claim_sets.values())
    passed = sum(c.get("n_passed", 0) for c in claim_sets.values())
    cl = [c for cs in claim_sets.values() for c in cs.get("claims", [])]
    evidence = [c for c in cl if c.get("kind", "evidence") == "evidence"]
    controlled = [c for c in evidence if c.get("control") and not c["control"].get("passed")]
    lines.append(
        f"**{passed} of {total} claims pass** in this build: {len(evidence)} evidence claims, "
        f"{len(controlled)} of them with a negative control that fails as it must, and "
        f"{len(cl) - len(evidence)} identities (algebraic or structural checks, not counted as evidence).\n"
    )
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
            ":widths: 4 36 18 18 10 14",
            ":class: ib-claims",
            "",
            "* - ",
            "  - claim",
            "  - rules out (negative control)",
            "  - paper",
            "  - measured",
            "  - criterion",
        ]
        for c in cs.get("claims", []):
            mark = "✓" if c["passed"] else "✗ FAIL"
            stmt = c["statement"].replace("\n", " ")
            vals = ""
            if c.get("values"):
                vals = "<br><small>" + "; ".join(f"{k} = {_fmt(v)}" for k, v in c["values"].items()) + "</small>"
            paper = f"{{cite:t}}`{c['paper']}`, {c['where']}" if c.get("paper") else c.get("where", "")
            lines += [
                f"* - {mark}",
                f'  - <span id="claim-{c["id"]}"></span>{stmt} <br><small>`{c["id"]}`</small>{vals}',
                f"  - {_control_cell(c)}",
                f"  - {paper}",
                f"  - {_fmt(c['measured'])}",
                f"  - `{c['criterion']}`",
            ]
        lines += [":::", ""]
    return "\n".join(lines)


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


def status_markdown(runs: list[dict[str, Any]]) -> str:
    """The intro's table: each paper, its chapter, and the state of its claims in this build."""
    from .papers import papers

    by_stem = {r["chapter"]: r for r in runs}
    lines = ["| chapter | paper | what it shows | claims pass | evidence with a failing control | identities |",
             "|---|---|---|---|---|---|"]
    for p in papers():
        r = by_stem.get(p.chapter)
        if r is None:
            continue
        ok = "✓" if r["n_passed"] == r["n_claims"] and r["n_claims"] > 0 else "✗"
        ev, ctl = r.get("n_evidence", r["n_claims"]), r.get("n_controlled", 0)
        lines.append(
            f"| {{doc}}`{p.chapter}` | {p.authors}, *{p.title}*, {p.venue} {{cite:p}}`{p.key}` | "
            f"{p.topic} | {ok} {r['n_passed']}/{r['n_claims']} | {ctl} of {ev} | {r.get('n_identity', 0)} |"
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
        _stage_notebook(e.notebook, site / BOOK_DIR / f"{e.stem}.ipynb", e.record, repository)
        fig = e.notebook.parent / "figures" / e.stem
        if fig.exists():
            shutil.copytree(fig, extra_dir / "figures" / e.stem)
        shutil.copy(root / BOOK_DIR / f"{e.stem}.md", extra_dir / "sources" / f"{e.stem}.md")
        shutil.copy(e.notebook, extra_dir / "sources" / f"{e.stem}.ipynb")
        cpath = e.notebook.parent / f"{e.stem}.claims.json"
        claim_sets[e.stem] = json.loads(cpath.read_text()) if cpath.exists() else {}
    runs = [e.record for e in executions]
    gen = site / BOOK_DIR / "_generated"
    (gen / "claims.md").write_text(claims_markdown(runs, claim_sets))
    (gen / "runs.md").write_text(runs_markdown(runs))
    (gen / "recorded-full.md").write_text(recorded_markdown("full"))
    (gen / "status.md").write_text(status_markdown(runs))
    (gen / "figures.md").write_text(figures_markdown(runs, extra_dir / "figures"))
    from . import bench

    (gen / "bench.md").write_text(bench.markdown(root / "benchmarks"))
    (gen / "scaling.md").write_text(
        bench.scaling_markdown(root / "benchmarks") or "No scaling measurement is stored with this version.\n"
    )
    paths.atomic_write_json(extra_dir / "claims.json", {"profile": profile, "chapters": claim_sets})
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
    digest = _tree_hash(site) + ("-strict" if strict else "")
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
