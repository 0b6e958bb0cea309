"""Provenance: which code, libraries and machine produced a result."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import os
import platform
import subprocess

from . import paths


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working tree (``-dirty`` when tracked files differ), or ``$IB_COMMIT``, or
    ``unknown`` outside a git checkout (e.g. a copy of the tree on a GPU machine)."""
    if os.environ.get("IB_COMMIT"):
        return os.environ["IB_COMMIT"]
    try:
        r = paths.root()
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=r, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=r, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of every ``lib`` source file: results computed by different code never share a key."""
    h = hashlib.sha256()
    base = paths.root() / "lib"
    if not base.is_dir():
        from pathlib import Path

        base = Path(__file__).resolve().parent
    for f in sorted(base.rglob("*.py")):
        h.update(str(f.relative_to(base)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "matplotlib", "cvxpy", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def device_description(device) -> str:
    """A human-readable name of a torch device (GPU model, or CPU with core count)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
