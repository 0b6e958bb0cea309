"""Execute chapters: papermill runs ``book/<stem>.md`` (parameters ``profile``, ``device`` and ``seed``
injected) into ``_build/executed/<profile>/<stem>.ipynb``, next to a copy of its claims, its figures
and a run record (profile, device, threads, commit, wall time). An execution is reused while its key
(chapter source, parameters, the code the chapter reaches, thread setting) is unchanged, and every
file is written atomically, so an interrupted run leaves the previous result or nothing.
:func:`execute_all` runs several chapters at once, each in its own process; :func:`archive` keeps the
records of paper-scale runs in ``records/<profile>/``.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..checks import DEVICES, PROFILES, ParameterError, check_choice
from . import claims as claims_mod
from . import paths, provenance
from .chapters import BOOK_DIR, resolve


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
    for rec in sorted((paths.root() / RECORDS_DIR / "full").glob(f"{stem}.*.json")):  # records a chapter quotes
        h.update(rec.read_bytes())
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
    started = datetime.now(UTC)
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


def claims_summary(profile: str) -> list[dict[str, Any]]:
    return claims_mod.load_all(paths.executed_dir(profile))
