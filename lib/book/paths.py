"""Where things live: the repository root and the build folders, and atomic file writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def root() -> Path:
    """The repository root: ``$IB_ROOT``, else the first parent of the working directory that holds
    ``_config.yml`` and ``lib/``, else the parent of this package."""
    env = os.environ.get("IB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "_config.yml").exists() and (p / "lib").is_dir():
            return p
    return Path(__file__).resolve().parents[1]


def build_dir() -> Path:
    return Path(os.environ.get("IB_BUILD", root() / "_build"))


def claims_dir() -> Path:
    return build_dir() / "claims"


def figures_dir() -> Path:
    return build_dir() / "figures"


def cache_dir() -> Path:
    return build_dir() / "cache"


def executed_dir(profile: str) -> Path:
    return build_dir() / "executed" / profile


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
