"""A content-addressed cache of study results.

A study result is stored under ``_build/cache/<chapter>/<study>-<key>.pkl`` where the key hashes the
study name, its parameters, the device type and the version of the ``lib`` code
(:func:`lib.provenance.code_version`). Results of different settings or code therefore never mix, and
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
from pathlib import Path
from typing import Any, Callable

from . import paths, provenance


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


def key(study: str, params: Any, device: str) -> str:
    blob = json.dumps(
        {"study": study, "params": _canonical(params), "device": device, "code": provenance.code_version()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class CacheMiss(LookupError):
    """A result that must come from the cache (replaying another machine's run) is not there."""


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
) -> Entry:
    """Return the cached result of ``fn()`` for these parameters, computing and storing it if needed.

    ``require_hit`` (replaying results computed on another device) raises :class:`CacheMiss` instead
    of computing. Next to each ``.pkl`` entry a small ``.json`` file records how it was made.
    """
    k = key(study, params, device)
    path = Path(directory or paths.cache_dir() / chapter) / f"{study}-{k}.pkl"
    if (enabled() or require_hit) and path.exists():
        try:
            with open(path, "rb") as fh:
                stored = pickle.load(fh)
            return Entry(stored["value"], stored["meta"], hit=True)
        except (OSError, EOFError, pickle.UnpicklingError, KeyError):
            path.unlink(missing_ok=True)
    if require_hit:
        raise CacheMiss(
            f"no cached {device} result of study {study!r} of {chapter} for these parameters and this "
            f"code version: run `python -m lib study {chapter.split('-')[0]} --device {device}` (with the "
            "same profile) on a machine with that device and copy its _build/cache folder here"
        )
    t0 = time.perf_counter()
    value = fn()
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
        except (OSError, ValueError):
            continue
    return out
