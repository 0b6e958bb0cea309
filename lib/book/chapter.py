"""Start a chapter run: validate its parameters, pick the device, seed everything, and hand out the
claim registry, the figure saver and the study cache.

Every chapter begins with a cell tagged ``parameters``::

    profile = "fast"   # "fast" (CI: 2 CPU cores, a minute or two) or "full" (paper scale, GPU)
    device = "auto"    # "auto", "cpu" or "cuda"
    seed = 0

followed by ``ctx = chapter.start("01-single-neuron", profile=profile, device=device, seed=seed)``.
The same call works from plain Python (``python -m lib study ...``), without Jupyter.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import PROFILES, ParameterError, check_choice, resolve_device
from ..plots import style
from . import cache, claims, figures, paths, provenance


def _plain(v: Any) -> Any:
    """A parameter value as JSON can hold it (tuples and arrays as lists, dataclasses as dicts)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)


def _replayable(stem: str, profile: str, device: str) -> bool:
    """Whether the study cache holds results of this chapter computed on ``device`` at ``profile``."""
    return any(
        e.get("device") == device and e.get("profile") == profile for e in cache.entries(stem)
    )


def _table_format() -> None:
    """Tables print floats as claims do (:func:`lib.claims.fmt_value`): solver residuals below the
    noise floor as a bound, so that a rerun with other threads or BLAS prints the same table."""
    try:
        import pandas as pd
    except ModuleNotFoundError:  # pandas is a dependency; plain-Python callers may still lack it
        return
    pd.set_option("display.float_format", claims.fmt_value)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Chapter:
    """Everything a chapter needs from the library for one run."""

    stem: str
    profile: str
    device: torch.device
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    studies_run: list[dict[str, Any]] = field(default_factory=list)
    record: bool = True
    #: the device the studies ran (or run) on; differs from ``device`` when replaying cached results
    #: computed on a GPU machine (``device="cuda"`` requested where no GPU is present)
    study_device: str = ""

    def __post_init__(self) -> None:
        self.study_device = self.study_device or self.device.type
        if self.record:  # this run's figures only: no stale files from renamed or removed figures
            shutil.rmtree(paths.figures_dir() / self.stem, ignore_errors=True)
        self.claims = claims.ClaimRegistry(self.stem, self.meta(), write=self.record)

    # -- provenance -------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "device": self.device.type,
            "device_name": provenance.device_description(self.device),
            "study_device": self.study_device,
            "seed": self.seed,
            "commit": provenance.git_commit(),
            "params": self.params,
        }

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A NumPy generator seeded by the chapter seed (plus ``offset`` for independent streams)."""
        return np.random.default_rng([self.seed, offset])

    def generator(self, offset: int = 0) -> torch.Generator:
        """A torch generator on the chapter's device, seeded by the chapter seed and ``offset``."""
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1_000_003 + offset)
        return g

    # -- claims, figures, studies -------------------------------------------------------------
    @property
    def paper(self) -> str:
        """The bibliography key of the paper this chapter is about ("" for a chapter without one)."""
        from .papers import paper_of

        p = paper_of(self.stem) if (paths.root() / "book" / f"{self.stem}.md").exists() else None
        return p.key if p else ""

    def claim(self, id: str, statement: str, **kw: Any) -> None:
        """Check and register a claim (see :meth:`lib.claims.ClaimRegistry.check`); ``paper`` defaults
        to the chapter's paper. Returns nothing, so a claim cell prints only the claim's line."""
        kw.setdefault("paper", self.paper)
        self.claims.check(id, statement, **kw)

    def figure(self, fig, fig_id: str, *, caption: str, alt: str, params: dict[str, Any] | None = None) -> None:
        """Save ``fig`` with its provenance and glue it as ``fig_id`` (see :func:`lib.figures.save`)."""
        meta = self.meta()
        # the parameters the figure was computed with: its own (``params``) and those of the chapter's
        # studies run so far, by study name
        meta["params"] = {**meta["params"], **(params or {}),
                          "studies": {s["study"]: s["params"] for s in self.studies_run if "params" in s}}
        figures.save(fig, self.stem, fig_id, caption=caption, alt=alt, meta=meta)

    def study(self, fn: Callable[..., Any], p: Any = None, /) -> Any:
        """Run a study through the study cache and return its result.

        ``ctx.study(chNN.grid, P.grid)`` calls ``chNN.grid(**fields of P.grid, device=..., seed=...)``
        (``P.grid`` a frozen parameter dataclass; none for a study without parameters) and caches it
        under the function's name. Replaying another device's results, a study that machine skipped for
        lack of a module (see :func:`lib.book.cache.cached`) is computed here, on this machine's device,
        and says so."""
        name = getattr(fn, "__name__", "")
        if not callable(fn) or not name.isidentifier():
            raise TypeError(f"ctx.study: the study must be a named function (its name names the cache), got {fn!r}")
        if p is not None and not (dataclasses.is_dataclass(p) and not isinstance(p, type)):
            raise TypeError(f"ctx.study({name}, ...): parameters must be a dataclass instance, got {type(p).__name__}")
        params = {} if p is None else {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
        kw = dict(
            params={**params, "seed": self.seed, "profile": self.profile},
            meta={"profile": self.profile, "device_name": provenance.device_description(self.device)},
        )

        def run() -> Any:
            return fn(**params, device=self.device, seed=self.seed)

        kw["code"] = provenance.code_version([fn.__module__]) if fn.__module__.startswith("lib.") else None
        try:
            entry = cache.cached(self.stem, name, run, device=self.study_device, require_hit=self.replay,
                                 skip_missing_modules=self.skip_missing_modules, **kw)
        except cache.NeedsHost as exc:
            print(f"{name}: {exc}; computing it here on {self.device.type}")
            entry = cache.cached(self.stem, name, run, device=self.device.type, **kw)
        self.studies_run.append({"study": name, "cached": entry.hit, **entry.meta,
                                 "params": {k: _plain(v) for k, v in params.items()}})
        if self.record:  # the run record says where each study's numbers were computed
            self.claims.meta["studies"] = [
                {k: s.get(k) for k in ("study", "device", "device_name", "commit", "wall_s", "cached")}
                for s in self.studies_run
            ]
            self.claims._write()
        return entry.value

    #: set by ``python -m lib study``: a study needing a module this machine lacks is recorded as
    #: skipped (to be computed by the machine that renders the book) instead of failing the run
    skip_missing_modules: bool = False

    @property
    def replay(self) -> bool:
        return self.study_device != self.device.type

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def start(
    stem: str,
    profile: str = "fast",
    device: str = "auto",
    seed: int = 0,
    *,
    params: dict[str, Any] | None = None,
    threads: int | None = None,
    record: bool = True,
) -> Chapter:
    """Validate the chapter parameters and set up a run.

    ``record=False`` keeps the claims file untouched (studies run outside the chapter).
    ``threads`` sets torch's CPU threads (default 1: small tensor programs are far faster
    single-threaded on a loaded machine; a chapter with large matrix products may ask for more).
    ``$IB_THREADS`` overrides it (the test suite runs two chapters at a time with one thread each).
    """
    check_choice("profile", profile, PROFILES)
    study_device = ""
    if device == "cuda" and not torch.cuda.is_available() and _replayable(stem, profile, "cuda"):
        # Render results computed on a GPU machine: studies come from the cache (and must be
        # there); whatever else the chapter computes runs on the CPU.
        dev, study_device = torch.device("cpu"), "cuda"
    else:
        dev = resolve_device(device)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"invalid seed={seed!r}: must be a non-negative integer")
    n = int(os.environ["IB_THREADS"]) if os.environ.get("IB_THREADS") else (threads or 1)
    torch.set_num_threads(max(1, n))
    seed_everything(int(seed))
    style.apply()
    _table_format()
    return Chapter(stem=stem, profile=profile, device=dev, seed=int(seed), params=dict(params or {}),
                   record=record, study_device=study_device)
