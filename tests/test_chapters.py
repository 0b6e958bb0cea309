"""Every chapter, end to end: executed with papermill (fast profile) with all claims passing, then
re-executed by nbval without the study cache, which must reproduce every checked output (text and
glued figures, byte for byte).

The execution is the one ``python3 tasks.py book`` makes (one torch thread per chapter, see
:func:`lib.book.execute.execute_all`) and is reused when the book command ran first, as the README orders.
Chapters are independent, so they are checked ``IB_TEST_JOBS`` at a time (default: the number of CPU
cores, at most 2), each in its own processes; every chapter is still reported as its own test.

One more test executes a chapter with two threads (torch and BLAS) in a separate build folder and
reruns it under nbval with one: printed values must not depend on the thread count.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lib.book import chapters, execute, paths

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters.chapters()
JOBS = int(os.environ.get("IB_TEST_JOBS", min(2, os.cpu_count() or 1)))
#: the chapter whose solver residuals differed between a one- and a two-thread run before printed
#: values were bounded at the noise floor (lib.book.claims.fmt_value)
THREADS_CHAPTER = next(s for s in CHAPTERS if s.startswith("05-"))


def _nbval(nb: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "--nbval-cell-timeout", "1200", str(nb)],
        cwd=ROOT, env=dict(env, IB_CACHE="0"), capture_output=True, text=True,
    )


def _check(stem: str) -> dict:
    """Execute one chapter (or reuse the book's execution), then rerun it under nbval."""
    env = dict(os.environ, IB_ROOT=str(ROOT), IB_THREADS="1")
    rc, log = execute.run_in_subprocess(stem, "fast", env=env)
    out = {"run_rc": rc, "run_log": log[-12000:]}
    if rc != 0:
        return out
    val = _nbval(paths.executed_dir("fast") / f"{stem}.ipynb", env)
    out.update(nbval_rc=val.returncode, nbval_log=val.stdout[-8000:] + val.stderr[-2000:])
    return out


@pytest.fixture(scope="module")
def checked(request):
    selected = [s for s in CHAPTERS if any(f"[{s}]" in it.nodeid for it in request.session.items)]
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        return dict(zip(selected, pool.map(_check, selected)))


@pytest.mark.chapter
@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_runs_and_reproduces(checked, stem):
    res = checked[stem]
    assert res["run_rc"] == 0, f"{stem} failed to execute:\n{res['run_log']}"
    claims = json.loads((paths.executed_dir("fast") / f"{stem}.claims.json").read_text())
    assert claims["n_claims"] > 0, f"{stem} checks no claims"
    failed = [c["id"] for c in claims["claims"] if not c["passed"]]
    assert not failed, f"failed claims in {stem}: {failed}"
    assert claims["profile"] == "fast"
    assert res["nbval_rc"] == 0, f"nbval found differences in {stem}:\n{res['nbval_log']}"


@pytest.mark.chapter
def test_printed_values_do_not_depend_on_the_thread_count(tmp_path):
    """Executed with two torch and BLAS threads, rerun by nbval with one: the same printed outputs."""
    two = {"IB_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    one = {k: "1" for k in two}
    env = dict(os.environ, IB_ROOT=str(ROOT), IB_BUILD=str(tmp_path / "_build"))
    rc, log = execute.run_in_subprocess(THREADS_CHAPTER, "fast", env=dict(env, **two))
    assert rc == 0, log[-8000:]
    nb = tmp_path / "_build" / "executed" / "fast" / f"{THREADS_CHAPTER}.ipynb"
    record = json.loads(nb.with_suffix(".run.json").read_text())
    assert record["threads"] == "2"
    val = _nbval(nb, dict(env, **one))
    assert val.returncode == 0, f"a rerun with one thread printed other values:\n{val.stdout[-8000:]}"
