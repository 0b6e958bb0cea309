"""Every chapter, end to end: executed with papermill (fast profile), all claims passing, then
re-executed by nbval, which must reproduce every checked output (figures included)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib import runner

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = runner.chapters()


@pytest.mark.chapter
@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_runs_and_reproduces(stem):
    e = runner.execute(stem, "fast", "auto", 0)
    claims = json.loads((e.notebook.parent / f"{stem}.claims.json").read_text())
    assert claims["n_claims"] > 0, f"{stem} checks no claims"
    failed = [c["id"] for c in claims["claims"] if not c["passed"]]
    assert not failed, f"failed claims in {stem}: {failed}"
    assert claims["profile"] == "fast"

    # nbval re-executes the notebook (without the study cache) and compares outputs cell by cell.
    env = dict(os.environ, IB_CACHE="0", IB_ROOT=str(ROOT))
    r = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
            "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
            "--nbval-cell-timeout", "900", str(e.notebook),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert r.returncode == 0, f"nbval found differences in {stem}:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
