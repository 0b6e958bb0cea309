"""Execute chapters and build the book.

Chapters are Jupytext MyST notebooks in ``book/``. :func:`execute` runs one with papermill (the
parameters ``profile``, ``device`` and ``seed`` injected) into ``_build/executed/<profile>/<stem>.ipynb``,
next to a copy of its claims, its figures and a run record (profile, device, commit, wall time). An
execution is reused while its key (chapter source, parameters, ``lib`` code version) is unchanged,
and every file is written atomically, so an interrupted run leaves the previous result or nothing.

:func:`build` executes every chapter for one profile, then stages a Sphinx source tree in
``_build/site/<profile>/`` holding the *executed* notebooks of that profile only (so a build never
mixes profiles), the generated claims and runs tables, and renders it with jupyter-book into
``_build/html``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import claims as claims_mod
from . import paths, provenance
from .chapter import DEVICES, PROFILES, ParameterError, check_choice

BOOK_DIR = "book"


# -- the chapters -----------------------------------------------------------------------------
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


# -- executing one chapter ----------------------------------------------------------------------
@dataclass
class Execution:
    stem: str
    profile: str
    notebook: Path
    record: dict[str, Any]
    reused: bool


def thread_setting() -> str:
    """The torch thread count a chapter run is asked for: ``$IB_THREADS``, or the chapter's own
    choice (:func:`lib.chapter.start`). Part of an execution's key: it can change the last digits."""
    return os.environ.get("IB_THREADS", "").strip() or "chapter default"


def chapter_code_version(stem: str) -> str:
    """The version of the code a chapter's kernel runs: the ``lib`` modules its source imports and
    everything they reach (its studies, plots and the chapter machinery; not the site builder)."""
    src = (paths.root() / BOOK_DIR / f"{stem}.md").read_text()
    return provenance.code_version(provenance.chapter_modules(src))


def _key(stem: str, parameters: dict[str, Any], threads: str) -> str:
    h = hashlib.sha256()
    h.update((paths.root() / BOOK_DIR / f"{stem}.md").read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(chapter_code_version(stem).encode())
    h.update(f"threads={threads}".encode())
    return h.hexdigest()[:20]


def up_to_date(stem: str, profile: str = "fast", device: str = "auto", seed: int = 0) -> Execution | None:
    """The stored execution of ``stem`` if its key (source, parameters, code, threads) still matches."""
    parameters = {"profile": profile, "device": device, "seed": int(seed)}
    out_dir = paths.executed_dir(profile)
    nb_out, rec_path = out_dir / f"{stem}.ipynb", out_dir / f"{stem}.run.json"
    if not (nb_out.exists() and rec_path.exists()):
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"note: unreadable run record {rec_path} ({exc}); executing {stem} again", file=sys.stderr)
        return None
    if rec.get("key") == _key(stem, parameters, thread_setting()) and rec.get("ok"):
        return Execution(stem, profile, nb_out, rec, reused=True)
    return None


def _just_executed(stem: str, profile: str) -> Execution | None:
    """The execution a ``python -m lib run`` process has just written (its own key, its own code)."""
    out_dir = paths.executed_dir(profile)
    nb_out, rec_path = out_dir / f"{stem}.ipynb", out_dir / f"{stem}.run.json"
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Execution(stem, profile, nb_out, rec, reused=False) if rec.get("ok") and nb_out.exists() else None


def _ipc_kernel_manager():
    """A kernel manager whose kernels talk to papermill over local IPC sockets rather than TCP
    (nothing listens on a network port, and ipykernel has no plain-TCP warning to print)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc" if os.name == "posix" else "tcp"

        @default("ip")
        def _default_ip(self) -> str:
            # the sockets' path prefix: in Jupyter's runtime folder, never in the chapter's folder
            # (jupyter_client's default is a relative "kernel-ipc", i.e. the kernel's cwd, book/)
            if self.transport != "ipc":
                return "127.0.0.1"
            import uuid

            from jupyter_core.paths import jupyter_runtime_dir

            rt = jupyter_runtime_dir()
            os.makedirs(rt, exist_ok=True)
            return os.path.join(rt, f"ib-kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


def execute(
    stem: str,
    profile: str = "fast",
    device: str = "auto",
    seed: int = 0,
    *,
    force: bool = False,
    progress: bool = True,
) -> Execution:
    """Execute ``book/<stem>.md`` with papermill into ``_build/executed/<profile>/``."""
    import jupytext
    import nbformat
    import papermill

    check_choice("profile", profile, PROFILES)
    check_choice("device", device, DEVICES)
    parameters = {"profile": profile, "device": device, "seed": int(seed)}
    out_dir = paths.executed_dir(profile)
    nb_out = out_dir / f"{stem}.ipynb"
    rec_path = out_dir / f"{stem}.run.json"
    threads = thread_setting()
    key = _key(stem, parameters, threads)
    if not force and (done := up_to_date(stem, profile, device, seed)) is not None:
        return done

    src = paths.root() / BOOK_DIR / f"{stem}.md"
    nb = jupytext.read(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_backup = dict(os.environ)
    os.environ.setdefault("IB_ROOT", str(paths.root()))
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{stem}.") as tmp:
        nb_in = Path(tmp) / f"{stem}.in.ipynb"
        nb_tmp = Path(tmp) / f"{stem}.ipynb"
        nbformat.write(nb, nb_in)
        try:
            papermill.execute_notebook(
                str(nb_in),
                str(nb_tmp),
                parameters=parameters,
                cwd=str(src.parent),
                kernel_name="python3",
                kernel_manager_class=_ipc_kernel_manager(),
                progress_bar=progress and sys.stderr.isatty(),
                log_output=False,
            )
        except BaseException:
            if nb_tmp.exists():
                shutil.copy(nb_tmp, out_dir / f"{stem}.failed.ipynb")
            raise
        finally:
            os.environ.clear()
            os.environ.update(env_backup)
        wall = time.perf_counter() - t0
        claims_src = paths.claims_dir() / f"{stem}.json"
        claims = json.loads(claims_src.read_text()) if claims_src.exists() else {}
        fig_src = paths.figures_dir() / stem
        fig_dst = out_dir / "figures" / stem
        if fig_dst.exists():
            shutil.rmtree(fig_dst)
        if fig_src.exists():
            shutil.copytree(fig_src, fig_dst)
        paths.atomic_write_json(out_dir / f"{stem}.claims.json", claims)
        record = {
            "chapter": stem,
            "key": key,
            "ok": True,
            "profile": profile,
            "device_requested": device,
            "device": claims.get("device", "unknown"),
            "device_name": claims.get("device_name", "unknown"),
            "seed": int(seed),
            "threads": threads,
            "commit": provenance.git_commit(),
            "code_version": chapter_code_version(stem),
            "started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(wall, 1),
            "n_claims": claims.get("n_claims", 0),
            "n_passed": claims.get("n_passed", 0),
            "n_evidence": claims.get("n_evidence", claims.get("n_claims", 0)),
            "n_controlled": claims.get("n_controlled", 0),
            "n_identity": claims.get("n_identity", 0),
            "studies": claims.get("studies", []),
            "libraries": provenance.library_versions(),
        }
        os.replace(nb_tmp, nb_out)
        paths.atomic_write_json(rec_path, record)
    (out_dir / f"{stem}.failed.ipynb").unlink(missing_ok=True)
    return Execution(stem, profile, nb_out, record, reused=False)


# -- executing several chapters, each in its own process ---------------------------------------------
def default_jobs() -> int:
    """Chapters executed at once: one per CPU core (each chapter runs one torch thread)."""
    return max(1, os.cpu_count() or 1)


def run_in_subprocess(
    stem: str, profile: str = "fast", device: str = "auto", seed: int = 0, *,
    force: bool = False, env: dict[str, str] | None = None, log: Path | None = None,
) -> tuple[int, str]:
    """``python -m lib run <stem>`` in a fresh process: ``(exit code, its output)``, the output also
    written to ``log`` when given. The chapter tests and :func:`execute_all` share this path."""
    cmd = [sys.executable, "-m", "lib", "run", stem, "--profile", profile, "--device", device,
           "--seed", str(int(seed))] + (["--force"] if force else [])
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("IB_ROOT", str(paths.root()))
    r = subprocess.run(cmd, cwd=paths.root(), env=full_env, capture_output=True, text=True)
    out = r.stdout + r.stderr
    if log is not None:
        paths.atomic_write_text(log, out)
    return r.returncode, out


def execute_all(
    stems: list[str], profile: str = "fast", device: str = "auto", seed: int = 0, *,
    jobs: int | None = None, force: bool = False,
) -> list[Execution]:
    """Execute chapters ``jobs`` at a time (default: one per core), each in its own process with one
    torch thread unless ``$IB_THREADS`` says otherwise; up-to-date executions are reused without
    starting a process. One progress line when a chapter starts and one when it ends."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    check_choice("profile", profile, PROFILES)
    check_choice("device", device, DEVICES)
    jobs = default_jobs() if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"invalid jobs={jobs!r}: must be a positive integer")
    if not os.environ.get("IB_THREADS"):
        # several chapters at once on a few cores: more threads than cores runs many times slower
        os.environ["IB_THREADS"] = "1"
    results: dict[str, Execution] = {}
    todo = []
    for stem in stems:
        done = None if force else up_to_date(stem, profile, device, seed)
        if done is not None:
            print(f"  {stem}: up to date ({done.record['n_passed']}/{done.record['n_claims']} claims pass)", flush=True)
            results[stem] = done
        else:
            todo.append(stem)
    lock = threading.Lock()
    t_all = time.perf_counter()
    failures: list[str] = []

    def one(stem: str) -> None:
        t0 = time.perf_counter()
        with lock:
            print(f"  {stem}: started ({profile}, device {device}, {os.environ['IB_THREADS']} torch thread(s)) "
                  f"at +{t0 - t_all:.0f} s", flush=True)
        log = paths.build_dir() / "logs" / profile / f"{stem}.log"
        rc, out = run_in_subprocess(stem, profile, device, seed, force=force, log=log)
        dt = time.perf_counter() - t0
        e = _just_executed(stem, profile) if rc == 0 else None
        with lock:
            if e is None:
                failures.append(stem)
                print(f"  {stem}: FAILED after {dt:.0f} s (log: {log})\n{out[-3000:]}", flush=True)
            else:
                results[stem] = e
                print(f"  {stem}: finished in {dt:.0f} s, {e.record['n_passed']}/{e.record['n_claims']} claims pass",
                      flush=True)

    if todo:
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
            list(pool.map(one, todo))
    if failures:
        raise SystemExit(f"{len(failures)} chapter(s) failed: {', '.join(failures)}; see the logs above")
    return [results[s] for s in stems]


# -- staging and building ------------------------------------------------------------------------
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


RECORDS_DIR = "records"


def archive(profile: str, names: list[str] | None = None) -> list[Path]:
    """Copy the execution records (``<stem>.run.json``) and claim records (``<stem>.claims.json``) of
    ``profile`` from ``_build/executed/<profile>/`` into ``records/<profile>/``, to be committed: the
    reproducibility appendix lists them, so that a book built at the ``fast`` profile still shows
    when, where and with which outcome each chapter last ran at the other profile."""
    check_choice("profile", profile, PROFILES)
    src = paths.executed_dir(profile)
    out = []
    for stem in resolve(names):
        rec = src / f"{stem}.run.json"
        if not rec.exists():
            continue
        for suffix in (".run.json", ".claims.json"):
            f = src / f"{stem}{suffix}"
            if f.exists():
                dst = paths.root() / RECORDS_DIR / profile / f.name
                paths.atomic_write_text(dst, f.read_text())
                out.append(dst)
    return out


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
    from .papers import PAPERS

    by_stem = {r["chapter"]: r for r in runs}
    lines = ["| chapter | paper | what it shows | claims pass | evidence with a failing control | identities |",
             "|---|---|---|---|---|---|"]
    for p in PAPERS:
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


def claims_summary(profile: str) -> list[dict[str, Any]]:
    return claims_mod.load_all(paths.executed_dir(profile))
