"""Every chapter, end to end: executed with papermill (fast profile) with all claims passing, then
re-executed by nbval without the study cache, which must reproduce every checked output (text and
glued figures, byte for byte).

Chapters are independent, so they are checked ``IB_TEST_JOBS`` at a time (default: the number of
CPU cores, at most 2), each in its own processes; every chapter is still reported as its own test.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lib import paths, runner

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = runner.chapters()
JOBS = int(os.environ.get("IB_TEST_JOBS", min(2, os.cpu_count() or 1)))


def _check(stem: str) -> dict:
    """Execute one chapter, then rerun it under nbval; both in subprocesses."""
    env = dict(os.environ, IB_ROOT=str(ROOT), IB_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "lib", "run", stem, "--profile", "fast"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    out = {"run_rc": run.returncode, "run_log": run.stdout[-4000:] + run.stderr[-8000:]}
    if run.returncode != 0:
        return out
    nb = paths.executed_dir("fast") / f"{stem}.ipynb"
    val = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "--nbval-cell-timeout", "1200", str(nb)],
        cwd=ROOT, env=dict(env, IB_CACHE="0"), capture_output=True, text=True,
    )
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
