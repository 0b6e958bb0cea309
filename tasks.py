#!/usr/bin/env python3
"""The book's two entry points, runnable with nothing but Python 3.11+ and pip.

    python3 tasks.py book     # build the whole book (fast profile) into _build/html
    python3 tasks.py test     # run the whole test suite
    python3 tasks.py lab      # JupyterLab: open a chapter (book/*.md) as a notebook and rerun it

On first use it creates a virtual environment in ``.venv`` and installs the project
(``pip install -e .[test,cluster]``) with the CPU build of PyTorch. Extra arguments are passed
on: ``python3 tasks.py book --profile full --device cuda`` or ``python3 tasks.py test -k ch01``.
``lab`` installs the optional ``lab`` extra (JupyterLab, Jupytext) on first use.

Environment variables: ``IB_VENV`` (where the environment lives, default ``.venv``),
``IB_TORCH`` (the torch requirement installed first, default ``torch==2.13.0``; set it to
``skip`` to keep whatever torch the environment has).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("IB_VENV", ROOT / ".venv"))
TORCH = os.environ.get("IB_TORCH", "torch==2.13.0")
EXTRAS = "test,cluster,dev"


def _python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def _run(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def _stamp() -> str:
    """Hash of what the environment is built from: reinstall when it changes."""
    h = hashlib.sha256()
    for name in ("pyproject.toml", "tasks.py"):
        h.update((ROOT / name).read_bytes())
    h.update(TORCH.encode())
    return h.hexdigest()[:16]


def ensure_env() -> Path:
    py = _python()
    stamp_file = VENV / ".ib-stamp"
    if py.exists() and stamp_file.exists() and stamp_file.read_text() == _stamp():
        return py
    if not py.exists():
        print(f"Creating a virtual environment in {VENV} (first use only) ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if TORCH != "skip":
        _run(py, "-m", "pip", "install", "--quiet", TORCH)
    _run(py, "-m", "pip", "install", "--quiet", "-e", f".[{EXTRAS}]", cwd=ROOT)
    stamp_file.write_text(_stamp())
    return py


def ensure_chromium() -> None:
    """The browser test drives Debian's Chromium; install it when we can (root + apt)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
    if not shutil.which("chromium"):
        print("note: chromium is not installed; the browser test will be skipped.", flush=True)


#: JupyterLab opens the chapters' MyST sources as notebooks (Jupytext's viewer) on a double click
LAB_SETTINGS = {"@jupyterlab/docmanager-extension:plugin": {
    "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}


def lab(py: Path, rest: list[str], env: dict[str, str]) -> int:
    """JupyterLab in the project's environment, with Jupytext's contents manager (``book/*.md`` are
    notebooks) and the environment's own kernel (which imports ``lib``)."""
    import json

    have = subprocess.run([str(py), "-c", "import jupyterlab, jupytext, jupyter_server"], capture_output=True)
    if have.returncode != 0:
        print("Installing JupyterLab (the optional 'lab' extra; first use only) ...", flush=True)
        _run(py, "-m", "pip", "install", "--quiet", "-e", ".[lab]", cwd=ROOT)
    settings = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(LAB_SETTINGS, indent=2) + "\n")
    cmd = [str(py), "-m", "jupyter", "lab", f"--ServerApp.root_dir={ROOT}",
           "--ServerApp.contents_manager_class=jupytext.TextFileContentsManager", *rest]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"book", "test", "env", "lab"}:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    py = ensure_env()
    env = dict(os.environ, IB_ROOT=str(ROOT))
    if what == "env":
        return 0
    if what == "book":
        return subprocess.run([str(py), "-m", "lib", "build", *rest], cwd=ROOT, env=env).returncode
    if what == "lab":
        return lab(py, rest, env)
    ensure_chromium()
    return subprocess.run([str(py), "-m", "pytest", *rest], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
