r"""Kinks of trained one-hidden-layer ReLU networks on scalar inputs, merged into those of the function.

A neuron ``a (w x + b)_+`` with ``w != 0`` puts a kink at ``p = -b/w`` with slope jump ``s = a |w|``.  A
trained network spreads one kink of its function over several neurons with nearly equal ``p`` (and
carries neurons whose jump is tiny), so counting neurons overstates the kinks.  :func:`merge` sorts the
kinks of each run, groups neighbours closer than ``radius`` (single linkage), adds their jumps and places
the merged kink at the ``|s|``-weighted mean, and keeps merged kinks inside the open data hull whose
``|s|`` exceeds ``threshold`` -- all runs at once, as array operations over a leading batch axis.

References: Boursier & Flammarion (``boursier2023penalising``) for the kink picture of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Kinks:
    """Merged kinks of B runs, padded to a common length: ``pos``/``jump`` are ``[B, K]`` (NaN / 0 where
    a run has fewer kinks), ``count`` is ``[B]``."""

    pos: np.ndarray
    jump: np.ndarray
    count: np.ndarray

    def run(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Kink positions and jumps of run ``i`` (sorted)."""
        k = int(self.count[i])
        return self.pos[i, :k], self.jump[i, :k]


def neuron_kinks(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron: kink position ``-b/w`` (``inf`` where ``w = 0``) and slope jump ``a |w|``; ``[B, m]``."""
    a, w, b = (np.asarray(t, float) for t in (a, w, b))
    if w.ndim == 3:
        if w.shape[-1] != 1:
            raise ValueError("kinks need scalar inputs (w of shape [B, m, 1])")
        w = w[..., 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pos = np.where(w != 0, -b / np.where(w != 0, w, 1.0), np.inf)
    return pos, a * np.abs(w)


def merge(
    pos: np.ndarray,
    jump: np.ndarray,
    *,
    lo: float,
    hi: float,
    radius: float,
    threshold: float,
) -> Kinks:
    r"""Merge the kinks of each run (rows of ``pos``/``jump``, ``[B, m]``) into the kinks of its function.

    Kinks outside the open interval ``(lo, hi)`` are discarded first (on the data hull they are part of
    the affine term).  Sorted neighbours closer than ``radius`` join one cluster; a cluster's jump is the
    sum of its jumps, its position the ``|s|``-weighted mean.  Clusters with ``|jump| <= threshold`` are
    dropped.
    """
    if radius < 0 or threshold < 0 or not lo < hi:
        raise ValueError("need radius >= 0, threshold >= 0 and lo < hi")
    pos, jump = np.atleast_2d(np.asarray(pos, float)), np.atleast_2d(np.asarray(jump, float))
    B, m = pos.shape
    ok = (pos > lo) & (pos < hi) & (jump != 0) & np.isfinite(pos)
    p = np.where(ok, pos, np.inf)
    o = np.argsort(p, axis=1, kind="stable")
    p = np.take_along_axis(p, o, 1)
    s = np.take_along_axis(np.where(ok, jump, 0.0), o, 1)
    valid = np.isfinite(p)
    new = np.ones((B, m), bool)
    with np.errstate(invalid="ignore"):  # inf - inf between discarded kinks
        new[:, 1:] = ~(np.diff(p, axis=1) <= radius)
    cid = np.cumsum(new, axis=1) - 1  # cluster index within each run
    rows = np.repeat(np.arange(B), m)
    S = np.zeros((B, m))
    W = np.zeros((B, m))
    WP = np.zeros((B, m))
    mag = np.abs(s)
    np.add.at(S, (rows, cid.ravel()), s.ravel())
    np.add.at(W, (rows, cid.ravel()), np.where(valid, mag, 0.0).ravel())
    np.add.at(WP, (rows, cid.ravel()), np.where(valid, mag * np.where(valid, p, 0.0), 0.0).ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        P = WP / W
    keep = (np.abs(S) > threshold) & (W > 0)
    count = keep.sum(1)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept clusters first, in position order
    P = np.take_along_axis(np.where(keep, P, np.nan), order, 1)
    S = np.take_along_axis(np.where(keep, S, 0.0), order, 1)
    K = max(int(count.max(initial=0)), 1)
    return Kinks(pos=P[:, :K], jump=S[:, :K], count=count)


def kink_cost(k: Kinks, penalty: str = "l2") -> np.ndarray:
    r"""Per run ``sum_k |s_k| W(p_k)`` over the merged kinks: the cost of the function on the hull."""
    from .minnorm1d import weight

    w = weight(np.nan_to_num(k.pos), penalty)
    return np.sum(np.abs(k.jump) * w, axis=1)
