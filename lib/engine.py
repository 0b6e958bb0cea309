"""The batched execution layer.

A *study* is a grid of independent runs (seeds, hyperparameters, initialisations, data sets, widths).
Rather than looping over runs in Python, the runs are stacked along a leading batch axis and advanced
together as one tensor program. This module holds the pieces every study shares:

- :func:`grid` -- the runs of a study as a tidy table (one row per run, one column per parameter);
- :func:`shards` -- split a grid into batches that fit a device's memory;
- :func:`finite_mask` / :func:`check_finite` -- per-run divergence detection that names the runs
  (and the parameter to change) instead of dropping them silently;
- :func:`progress` -- a progress bar that stays silent inside notebook kernels (reproducible outputs);
- :func:`tidy` -- attach per-run measurements to the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # tqdm.auto warns in kernels without ipywidgets


class DivergenceError(FloatingPointError):
    """Training produced NaN or inf; the message names the runs and the parameter to change."""


def grid(**axes: Sequence[Any]) -> pd.DataFrame:
    """The cartesian product of the given axes, one row per run, in a fixed order.

    >>> grid(seed=[0, 1], lr=[0.1]).to_dict("records")
    [{'seed': 0, 'lr': 0.1}, {'seed': 1, 'lr': 0.1}]
    """
    names = list(axes)
    rows = list(itertools.product(*(list(axes[n]) for n in names)))
    df = pd.DataFrame(rows, columns=names)
    df.index.name = "run"
    return df


def shards(n_runs: int, max_batch: int) -> list[slice]:
    """Consecutive slices of at most ``max_batch`` runs covering ``range(n_runs)``."""
    if max_batch <= 0:
        raise ValueError(f"max_batch must be positive, got {max_batch}")
    return [slice(i, min(i + max_batch, n_runs)) for i in range(0, n_runs, max_batch)]


def finite_mask(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-run flag (leading axis) that every entry of the run is finite."""
    if isinstance(x, torch.Tensor):
        return torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1).cpu().numpy()
    x = np.asarray(x)
    return np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)


def check_finite(
    x: torch.Tensor | np.ndarray,
    *,
    what: str,
    hint: str,
    runs: pd.DataFrame | None = None,
) -> None:
    """Raise :class:`DivergenceError` if any run of ``x`` (leading axis) holds NaN or inf.

    ``hint`` names the parameter to change (e.g. ``"reduce the step size dt"``); ``runs`` is the
    study's grid, whose rows for the diverged runs are quoted in the message.
    """
    ok = finite_mask(x)
    if ok.all():
        return
    bad = np.flatnonzero(~ok)
    if runs is not None:
        shown = runs.iloc[bad[:5]].to_dict("records")
    else:
        shown = [int(i) for i in bad[:5]]
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    raise DivergenceError(
        f"{what} diverged (NaN/inf) in {len(bad)} of {len(ok)} runs: {shown}{more}. {hint}."
    )


def progress(iterable: Iterable[Any] | None = None, *, desc: str = "", total: int | None = None, **kw: Any) -> Iterator[Any]:
    """A tqdm progress bar, shown on terminals and hidden in notebook kernels (``disable=None``)."""
    return tqdm(iterable, desc=desc, total=total, disable=None, leave=False, **kw)


def tidy(runs: pd.DataFrame, **measurements: Any) -> pd.DataFrame:
    """Return ``runs`` with one column per measurement (tensors/arrays with one entry per run)."""
    out = runs.copy()
    for name, v in measurements.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        v = np.asarray(v)
        if v.shape[:1] != (len(runs),):
            raise ValueError(f"measurement {name!r} has shape {v.shape}, expected ({len(runs)}, ...)")
        out[name] = list(v) if v.ndim > 1 else v
    return out


@dataclass
class Workload:
    """A chapter's main training workload, for ``python -m lib bench``.

    ``batched_step()`` advances all ``runs`` runs by one step as one tensor program;
    ``loop_step()`` advances the same number of runs by one step each, one run at a time, the
    straightforward way (the faster of a NumPy and a PyTorch per-run implementation where both exist).
    ``flops_per_run_step`` (optional) is the arithmetic of one run-step, for compute-bound workloads;
    ``matmul_shape`` (optional, ``(batch, n, k, m)``) is a plain batched product of the same shapes,
    whose speed on the device is the roofline to compare with.
    """

    name: str
    runs: int
    device: str
    batched_step: Callable[[], None]
    loop_step: Callable[[], None]
    flops_per_run_step: float | None = None
    matmul_shape: tuple[int, int, int, int] | None = None
