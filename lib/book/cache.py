"""A content-addressed cache of study results.

A study result is stored under ``_build/cache/<chapter>/<study>-<key>.pkl`` where the key hashes the
study name, its parameters, the device type and the version of the code the study can reach (its
study module and the modules it imports, :func:`lib.provenance.code_version`): editing a plot, a
caption or the site recomputes nothing. Results of different settings or code therefore never mix, and
writes are atomic: an interrupted run leaves no entry. Set ``IB_CACHE=0`` to bypass the cache (the
test suite does this when it re-executes a chapter to check that its outputs are reproducible).

Each entry also stores how it was made (device, profile, commit, wall time), so that results
computed on a GPU machine can be rendered by a book build elsewhere with their provenance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths, provenance

#: Modules a study may need that a machine can lack (the GPU machine has no cvxpy): ``python -m lib
#: study`` records such a study as skipped for the rendering machine to compute. Any other missing
#: module is an error.
OPTIONAL_MODULES = frozenset({"cvxpy"})


def _warn(msg: str) -> None:
    import sys

    print(f"warning: {msg}", file=sys.stderr)


def enabled() -> bool:
    return os.environ.get("IB_CACHE", "1") not in {"0", "off", "false", "no"}


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dc__": type(obj).__name__, **_canonical(dataclasses.asdict(obj))}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float):
        return repr(obj)
    return obj


def key(study: str, params: Any, device: str, code: str | None = None) -> str:
    """``code``: the version of the code the study runs (default: of all ``lib``)."""
    blob = json.dumps(
        {"study": study, "params": _canonical(params), "device": device, "code": code or provenance.code_version()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class CacheMiss(LookupError):
    """A result that must come from the cache (replaying another machine's run) is not there."""


class NeedsHost(CacheMiss):
    """The study could not run on the replayed device's machine (a module it needs, e.g. cvxpy, is
    not installed there); the machine rendering the book computes it instead."""

    def __init__(self, message: str, missing: str):
        super().__init__(message)
        self.missing = missing


@dataclasses.dataclass
class Entry:
    value: Any
    meta: dict[str, Any]
    hit: bool


def cached(
    chapter: str,
    study: str,
    fn: Callable[[], Any],
    *,
    params: Any,
    device: str,
    meta: dict[str, Any] | None = None,
    directory: Path | None = None,
    require_hit: bool = False,
    skip_missing_modules: bool = False,
    code: str | None = None,
) -> Entry:
    """Return the cached result of ``fn()`` for these parameters, computing and storing it if needed.

    ``require_hit`` (replaying results computed on another device) raises :class:`CacheMiss` instead
    of computing, or :class:`NeedsHost` when the other machine recorded that it could not run the
    study. ``skip_missing_modules`` (``python -m lib study`` on a machine without an optional module)
    records such a study as skipped (a ``.needs`` file next to where the entry would be) and returns
    an entry whose value is ``None``. Next to each ``.pkl`` entry a small ``.json`` file records how
    it was made.
    """
    k = key(study, params, device, code)
    path = Path(directory or paths.cache_dir() / chapter) / f"{study}-{k}.pkl"
    needs = path.with_suffix(".needs")
    if (enabled() or require_hit) and path.exists():
        try:
            with open(path, "rb") as fh:
                stored = pickle.load(fh)
            return Entry(stored["value"], stored["meta"], hit=True)
        except (OSError, EOFError, pickle.UnpicklingError, KeyError) as exc:
            _warn(f"unreadable cache entry {path} ({type(exc).__name__}: {exc}); computing it again")
            path.unlink(missing_ok=True)
    if require_hit and needs.exists():
        missing = json.loads(needs.read_text()).get("missing", "?")
        raise NeedsHost(
            f"study {study!r} of {chapter} was skipped on the {device} machine (it needs {missing!r}, "
            "not installed there)", missing
        )
    if require_hit:
        raise CacheMiss(
            f"no cached {device} result of study {study!r} of {chapter} for these parameters and this "
            f"code version: run `python -m lib study {chapter.split('-')[0]} --device {device}` (with the "
            "same profile) on a machine with that device and copy its _build/cache folder here"
        )
    t0 = time.perf_counter()
    try:
        value = fn()
    except ModuleNotFoundError as exc:
        if not skip_missing_modules or (exc.name or "").split(".")[0] not in OPTIONAL_MODULES:
            raise
        record = {"study": study, "key": k, "device": device, "missing": exc.name, "commit": provenance.git_commit()}
        paths.atomic_write_json(needs, record)
        return Entry(None, {**(meta or {}), **record, "skipped": True, "wall_s": 0.0}, hit=False)
    info = {
        **(meta or {}),
        "study": study,
        "key": k,
        "device": device,
        "commit": provenance.git_commit(),
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    if enabled():
        paths.atomic_write_bytes(path, pickle.dumps({"value": value, "meta": info}, protocol=5))
        paths.atomic_write_json(path.with_suffix(".json"), info)
    return Entry(value, info, hit=False)


def entries(chapter: str, *, directory: Path | None = None) -> list[dict[str, Any]]:
    """The records of a chapter's cached results (device, profile, commit, wall time, ...)."""
    base = Path(directory or paths.cache_dir() / chapter)
    out = []
    for f in sorted(base.glob("*.json")) if base.exists() else []:
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError) as exc:
            _warn(f"unreadable cache record {f} ({exc}); ignored")
    return out
