r"""Exact minimal-norm interpolation in one dimension by shallow ReLU networks.

A one-hidden-layer ReLU network on scalar inputs is a continuous piecewise-linear function.  After
optimal rescaling of each neuron ``(a, w, b) -> (a/t, t w, t b)``, the weight decay
``1/2 sum_j (a_j^2 + w_j^2 + b_j^2)`` of a neuron with ``w != 0`` equals ``|a| |(w, b)|``; the neuron puts
a kink at ``p = -b/w`` with slope jump ``s = a |w|``, so its cost is ``|s| W(p)`` with the *kink weight*

.. math::  W_{l2}(p) = \sqrt{1 + p^2}, \qquad W_{l1}(p) = 1 + |p|, \qquad W_{free}(p) = 1,

for the Euclidean bias penalty (weight decay on all parameters), the ``|w| + |b|`` penalty, and biases
left out of the penalty.  The representational cost of ``f`` is therefore
``\int W(x) \, d|f''|(x)`` when an affine (skip) term ``v x + c`` is free
(Boursier & Flammarion, ``boursier2023penalising``; Savarese et al., ``savarese2019infinite``).

Two conventions for the affine part, both supported (``affine=``):

* ``affine=True`` (chapter 3): ``f(x) = sum_k s_k (x - p_k)_+ + v x + c`` with ``(v, c)`` free.  A
  left-facing unit equals a right-facing one plus an affine function, so right-facing atoms suffice.
* ``affine=False`` (chapter 5): no skip term.  Right-facing units ``r_k (x - p_k)_+`` and left-facing
  units ``l_k (p_k - x)_+`` both cost ``(|r_k| + |l_k|) W(p_k)``; a constant ``C`` is a ``w = 0`` neuron
  and costs ``|C|`` (``0`` when biases are free).

Constraints: point values ``f(x_i) = y_i`` and, optionally, *known regions*: intervals ``[l, r]`` on
which ``f`` must equal the affine function through ``(l, y_l)`` and ``(r, y_r)``.  A region is imposed
exactly by its two end values and *no net kink strictly inside* (with ``affine=True`` no atom is placed
inside; with ``affine=False`` atoms inside are allowed only as cancelling pairs ``r_k + l_k = 0``, i.e.
affine functions).

Public API
----------
``solve(x, y, regions=(), penalty="l2", affine=True, ...) -> Solution``
    The exact minimiser, computed as a linear program (HiGHS) over a dictionary of kink positions:
    a uniform grid on the data hull, the data points, ``0`` and the points ``-1/x_i`` (tangency points
    of lines through data with ``sqrt(1+p^2)``), and, without the affine term, a geometric grid far
    outside the hull (up to ``|p| = far``).  The dictionary is then refined by *column generation*:
    from the LP dual ``lambda`` the dual function ``g(p) = sum_i lambda_i (x_i - p)_+`` (and its
    left-facing twin) is piecewise linear with knots at the data, so the most violated kink position
    ``argmax |g(p)| / W(p)`` on each segment has a closed form and is added, until no dual constraint is
    violated on the continuum.  Post-processing merges adjacent same-sign atoms (no constraint point
    strictly between them) into one kink at their weighted mean, drops every kink whose removal leaves
    the optimal value unchanged, and re-solves on the final kinks.  The rescaled dual is feasible on the
    continuum, so ``lambda . y / rho`` (``rho`` the largest violation ratio, >= 1) is a certified lower
    bound (the best over the column-generation rounds); ``Solution.gap = cost - lower``.  Column
    generation stops when no violation is left, when every violation sits within rounding
    (``_COL_SEP``) of a column already present, or after ``max_iter`` rounds (``info["converged"]``).
``Solution(t)``
    Evaluates the interpolant (piecewise linear) at points ``t``; ``Solution.kinks`` gives the kink
    positions and slope jumps; ``Solution.cost`` the exact cost of the returned function.
``value_range(sol, t0, rel=1e-7)``
    Uniqueness probe: min and max of ``f(t0)`` over the dictionary solutions whose cost is within
    ``rel * (1 + cost)`` of the optimum (a second LP, one per bound).
``kink_cost(p, s, penalty)`` / ``pl_cost(xs, fs, penalty)``
    The exact cost formula ``sum_k |s_k| W(p_k)`` (affine term free) for a function given by its kinks,
    or by its vertices (affine beyond the end vertices).
``solve_penalized(x, y, lam, penalty=..., affine=...) -> PenalizedFit``
    The regularised problem ``min 1/2 sum (f(x_i) - y_i)^2 + lam cost(f)`` (the global minimum of the
    weight-decay objective of a wide network), a lasso over a fine kink grid (cvxpy, CLARABEL).
Closed forms (affine term free): ``secants``, ``biasfree_value`` (``sum_i |kappa_i|``),
``sparsest_kink_count`` (sum over same-sign runs of ``ceil(L/2)``), ``three_point`` (the bias-penalised
three-point minimiser), ``linear_spline`` and ``paired_interpolant`` (two bias-free minimisers with
different kink counts).

Limitations: kinks are restricted to ``|p| <= far`` (default ``1e4``, scaled by the data), so
without the affine term the certificate is relative to that bound; the LP is solved in float64 with
HiGHS tolerances 1e-10, so certified gaps are ~1e-9 relative, not exact rationals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from math import ceil

import numpy as np
from scipy.optimize import linprog

PENALTIES = ("l2", "l1", "free")

__all__ = [
    "PENALTIES",
    "PenalizedFit",
    "Solution",
    "biasfree_value",
    "evaluate_kinks",
    "kink_cost",
    "linear_spline",
    "paired_interpolant",
    "pl_cost",
    "secants",
    "solve",
    "solve_penalized",
    "sparsest_kink_count",
    "three_point",
    "value_range",
    "weight",
]


# ------------------------------------------------------------------------------------------------
# cost of a kink
def _check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise ValueError(f"invalid penalty={penalty!r}: allowed values are 'l2', 'l1', 'free'")
    return penalty


def weight(p: np.ndarray | float, penalty: str = "l2") -> np.ndarray:
    r"""Cost per unit slope jump of a kink at ``p``: ``sqrt(1+p^2)``, ``1+|p|`` or ``1``."""
    _check_penalty(penalty)
    p = np.asarray(p, dtype=float)
    if penalty == "l2":
        return np.hypot(1.0, p)
    if penalty == "l1":
        return 1.0 + np.abs(p)
    return np.ones_like(p)


def constant_weight(penalty: str) -> float:
    """Cost of a constant ``C`` without the affine term: ``|C|`` (a ``w = 0`` neuron), 0 if biases are free."""
    return 0.0 if _check_penalty(penalty) == "free" else 1.0


def kink_cost(p: Sequence[float], s: Sequence[float], penalty: str = "l2") -> float:
    r"""``sum_k |s_k| W(p_k)``: the cost ``\int W d|f''|`` of kinks ``p`` with slope jumps ``s`` (affine free)."""
    p, s = np.asarray(p, float), np.asarray(s, float)
    return float(np.sum(np.abs(s) * weight(p, penalty)))


def pl_cost(xs: Sequence[float], fs: Sequence[float], penalty: str = "l2") -> float:
    r"""Exact cost ``\int W(x) d|f''|(x)`` of the piecewise-linear function through the vertices
    ``(xs, fs)`` (sorted ``xs``), affine beyond the end vertices, with the affine term free."""
    xs, fs = np.asarray(xs, float), np.asarray(fs, float)
    if xs.ndim != 1 or xs.shape != fs.shape or np.any(np.diff(xs) <= 0):
        raise ValueError("pl_cost needs strictly increasing xs and fs of the same length")
    slopes = np.diff(fs) / np.diff(xs)
    return kink_cost(xs[1:-1], np.diff(slopes), penalty)


def evaluate_kinks(t: np.ndarray, p: np.ndarray, s: np.ndarray, v: float = 0.0, c: float = 0.0) -> np.ndarray:
    """``sum_k s_k (t - p_k)_+ + v t + c`` at the points ``t``."""
    t = np.asarray(t, float)
    p, s = np.asarray(p, float), np.asarray(s, float)
    return np.maximum(t[..., None] - p, 0.0) @ s + v * t + c


# ------------------------------------------------------------------------------------------------
# closed forms (affine term free)
def secants(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r"""Secant slopes ``delta_i = (y_{i+1}-y_i)/(x_{i+1}-x_i)`` and discrete curvatures
    ``kappa_i = delta_i - delta_{i-1}`` (one per interior point ``x_2 .. x_{n-1}``)."""
    x, y = _sorted_data(x, y)
    delta = np.diff(y) / np.diff(x)
    return delta, np.diff(delta)


def biasfree_value(x: Sequence[float], y: Sequence[float]) -> float:
    r"""Minimal bias-free cost ``min TV(f') = sum_i |kappa_i|`` over interpolants (affine term free)."""
    return float(np.abs(secants(x, y)[1]).sum())


def _runs(kappa: np.ndarray, tol: float) -> list[tuple[int, int, int]]:
    """Maximal runs ``(start, length, sign)`` of consecutive same-sign entries with ``|kappa| > tol``."""
    sg = np.where(np.abs(kappa) > tol, np.sign(kappa), 0).astype(int)
    out, i = [], 0
    while i < len(sg):
        if sg[i] == 0:
            i += 1
            continue
        j = i
        while j + 1 < len(sg) and sg[j + 1] == sg[i]:
            j += 1
        out.append((i, j - i + 1, int(sg[i])))
        i = j + 1
    return out


def sparsest_kink_count(x: Sequence[float], y: Sequence[float], tol: float = 1e-12) -> int:
    r"""Fewest kinks of any continuous piecewise-linear interpolant (affine term free):
    the sum over maximal runs of consecutive same-sign nonzero ``kappa_i`` of ``ceil(L / 2)``."""
    kappa = secants(x, y)[1]
    scale = tol * (1.0 + np.abs(secants(x, y)[0]).max(initial=0.0))
    return int(sum(ceil(L / 2) for _, L, _ in _runs(kappa, scale)))


def three_point(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    r"""Bias-penalised (``l2``) minimal-norm interpolant of three points, affine term free.

    Returns ``(p, cost)``: the single kink sits at ``x_2`` with cost ``|kappa| sqrt(1 + x_2^2)``, unless
    ``x_1 x_2 < -1`` (kink at ``-1/x_1``, cost ``|kappa| (x_2 - x_1) / sqrt(1 + x_1^2)``) or ``x_2 x_3 < -1``
    (kink at ``-1/x_3``, cost ``|kappa| (x_3 - x_2) / sqrt(1 + x_3^2)``).  Book's derivation
    (``boursier2023penalising`` for the setting).
    """
    xs, ys = _sorted_data(x, y)
    if xs.size != 3:
        raise ValueError("three_point needs exactly three points")
    (x1, x2, x3), k = xs, abs(float(secants(xs, ys)[1][0]))
    if x1 * x2 < -1:
        return -1.0 / x1, k * (x2 - x1) / np.hypot(1.0, x1)
    if x2 * x3 < -1:
        return -1.0 / x3, k * (x3 - x2) / np.hypot(1.0, x3)
    return float(x2), k * float(np.hypot(1.0, x2))


def linear_spline(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The straight-line interpolant as ``(p, s, v, c)``: kinks at the interior points with jumps
    ``kappa_i``, then the first secant line ``v x + c``."""
    xs, ys = _sorted_data(x, y)
    delta, kappa = secants(xs, ys)
    keep = kappa != 0
    return xs[1:-1][keep], kappa[keep], float(delta[0]), float(ys[0] - delta[0] * xs[0])


def paired_interpolant(
    x: Sequence[float], y: Sequence[float], tol: float = 1e-12, offset: int = 0
) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""A bias-free minimiser with the fewest kinks, as ``(p, s, v, c)``.

    In each maximal run of same-sign curvatures, consecutive interior points are paired: the kinks at
    ``x_i`` and ``x_{i+1}`` are replaced by one kink where the secant lines of ``[x_{i-1}, x_i]`` and
    ``[x_{i+1}, x_{i+2}]`` meet (inside ``[x_i, x_{i+1}]`` because the slopes are monotone), with jump
    ``kappa_i + kappa_{i+1}``.  Same-sign jumps add in absolute value, so ``TV(f')`` is unchanged.
    ``offset=1`` starts the pairing one point later in runs of even length ``>= 4`` (another minimiser).
    """
    xs, ys = _sorted_data(x, y)
    delta, kappa = secants(xs, ys)
    scale = tol * (1.0 + np.abs(delta).max(initial=0.0))
    p, s = [], []
    for start, L, _ in _runs(kappa, scale):
        i, end = start, start + L
        if offset and L % 2 == 0 and L >= 4:  # a lone kink first, then pairs, then a lone kink
            p.append(xs[i + 1]), s.append(kappa[i])
            i += 1
            end_single = True
        else:
            end_single = False
        while i + 1 < end - (1 if end_single else 0):
            # kappa index i sits at data point i+1; lines through segments i-1 (delta[i]) and i+2
            d0, d1 = delta[i], delta[i + 2]
            xa, ya = xs[i + 1], ys[i + 1]  # on the line of slope d0
            xb, yb = xs[i + 2], ys[i + 2]  # on the line of slope d1
            q = (yb - ya + d0 * xa - d1 * xb) / (d0 - d1)
            p.append(q), s.append(kappa[i] + kappa[i + 1])
            i += 2
        while i < end:
            p.append(xs[i + 1]), s.append(kappa[i])
            i += 1
    order = np.argsort(p)
    return (np.asarray(p, float)[order], np.asarray(s, float)[order], float(delta[0]),
            float(ys[0] - delta[0] * xs[0]))


def _sorted_data(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need x and y of the same length >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    if np.any(np.diff(x) <= 0):
        raise ValueError("the data points x must be distinct")
    return x, y


# ------------------------------------------------------------------------------------------------
# the linear program
@dataclass
class Solution:
    """A certified minimal-norm interpolant.

    ``f(t) = sum_k [r_k (t - p_k)_+ + l_k (p_k - t)_+] + v t + c``; with ``affine=True`` all ``l_k = 0``;
    with ``affine=False`` ``v = 0`` and ``c`` is the constant neuron.  ``cost`` is the exact cost of this
    function's representation, ``lower`` a certified lower bound on the optimum, ``gap = cost - lower``.
    """

    p: np.ndarray
    r: np.ndarray
    l: np.ndarray
    v: float
    c: float
    cost: float
    lower: float
    penalty: str
    affine: bool
    t: np.ndarray  # constraint points (sorted)
    b: np.ndarray  # constraint values
    regions: tuple[tuple[float, float, float, float], ...]
    dictionary: np.ndarray  # kink positions of the last column-generation LP
    lp_value: float  # optimum of that LP (before merging and dropping)
    dual: np.ndarray  # certified dual multipliers (scaled to feasibility)
    iterations: int
    residual: float  # max |f(t_j) - b_j|
    far: float
    info: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return self.cost - self.lower

    @property
    def jumps(self) -> np.ndarray:
        return self.r + self.l

    @property
    def kinks(self) -> tuple[np.ndarray, np.ndarray]:
        """Kink positions and slope jumps (nonzero jumps only), sorted."""
        s = self.jumps
        keep = np.abs(s) > 1e-12 * (1.0 + np.abs(s).max(initial=0.0))
        return self.p[keep], s[keep]

    @property
    def n_kinks(self) -> int:
        return int(self.kinks[0].size)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, float)
        tt = t[..., None]
        return (np.maximum(tt - self.p, 0) @ self.r + np.maximum(self.p - tt, 0) @ self.l
                + self.v * t + self.c)


def _constraints(x, y, regions) -> tuple[np.ndarray, np.ndarray, tuple]:
    pts = {}
    regs = []
    for reg in regions:
        if len(reg) != 4:
            raise ValueError("each region is (l, r, y_l, y_r)")
        lo, hi, yl, yr = map(float, reg)
        if not lo < hi:
            raise ValueError(f"region [{lo}, {hi}] must have l < r")
        regs.append((lo, hi, yl, yr))
    xs = [] if x is None else list(np.asarray(x, float).ravel())
    ys = [] if y is None else list(np.asarray(y, float).ravel())
    if len(xs) != len(ys):
        raise ValueError("x and y must have the same length")
    items = list(zip(xs, ys)) + [(lo, yl) for lo, _, yl, _ in regs] + [(hi, yr) for _, hi, _, yr in regs]
    for t, v in items:
        if not (np.isfinite(t) and np.isfinite(v)):
            raise ValueError("constraint points and values must be finite")
        if t in pts and abs(pts[t] - v) > 1e-12 * (1 + abs(v)):
            raise ValueError(f"conflicting values at x={t}: {pts[t]} and {v}")
        pts[t] = v
    # points strictly inside a region must agree with its affine target
    for lo, hi, yl, yr in regs:
        for t, v in pts.items():
            if lo < t < hi:
                target = yl + (yr - yl) * (t - lo) / (hi - lo)
                if abs(target - v) > 1e-9 * (1 + abs(v)):
                    raise ValueError(f"point x={t} inside region [{lo}, {hi}] disagrees with its target")
    if len(pts) < 2:
        raise ValueError("need at least two distinct constraint points")
    t = np.array(sorted(pts))
    return t, np.array([pts[v] for v in t]), tuple(regs)


def _inside_regions(p: np.ndarray, regions) -> np.ndarray:
    m = np.zeros(p.shape, bool)
    for lo, hi, _, _ in regions:
        m |= (p > lo) & (p < hi)
    return m


def _lp(P, t, b, penalty, affine, regions, cost_cap=None, objective=None):
    """Solve the dictionary LP.  Columns: r+ r- (l+ l-) then (v, c) or (C+, C-)."""
    K, n = P.size, t.size
    w = weight(P, penalty)
    R = np.maximum(t[:, None] - P[None, :], 0.0)
    if affine:
        A = np.hstack([R, -R, t[:, None], np.ones((n, 1))])
        cost = np.concatenate([w, w, [0.0, 0.0]])
        bounds = [(0, None)] * (2 * K) + [(None, None)] * 2
        A_eq, b_eq = A, b
    else:
        L = np.maximum(P[None, :] - t[:, None], 0.0)
        w0 = constant_weight(penalty)
        one = np.ones((n, 1))
        A = np.hstack([R, -R, L, -L, one, -one])
        cost = np.concatenate([w, w, w, w, [w0, w0]])
        bounds = [(0, None)] * (4 * K + 2)
        inside = np.flatnonzero(_inside_regions(P, regions))
        if inside.size:
            E = np.zeros((inside.size, A.shape[1]))
            rows = np.arange(inside.size)
            for off, sgn in ((0, 1), (K, -1), (2 * K, 1), (3 * K, -1)):
                E[rows, off + inside] = sgn
            A_eq, b_eq = np.vstack([A, E]), np.concatenate([b, np.zeros(inside.size)])
        else:
            A_eq, b_eq = A, b
    opts = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    if cost_cap is None:
        res = linprog(cost, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs", options=opts)
    else:
        res = linprog(objective(P, t, A.shape[1]), A_ub=cost[None, :], b_ub=[cost_cap], A_eq=A_eq,
                      b_eq=b_eq, bounds=bounds, method="highs", options=opts)
    if res.status != 0:
        return None
    z = res.x
    r = z[:K] - z[K:2 * K]
    if affine:
        l = np.zeros(K)
        v, c = z[2 * K], z[2 * K + 1]
    else:
        l = z[2 * K:3 * K] - z[3 * K:4 * K]
        v, c = 0.0, z[4 * K] - z[4 * K + 1]
    lam = None if cost_cap is not None else res.eqlin.marginals[:n]
    return {"r": r, "l": l, "v": float(v), "c": float(c), "value": float(res.fun), "lam": lam, "z": z, "cost": cost}


def _max_ratio(alpha: float, beta: float, lo: float, hi: float, penalty: str, scale: float = 1.0):
    """``max |alpha + beta p| / (scale W(p))`` over ``[lo, hi]`` (finite) and its argmax."""
    cands = [lo, hi]
    if penalty == "l2" and alpha != 0 and lo < beta / alpha < hi:
        cands.append(beta / alpha)
    if penalty == "l1" and lo < 0 < hi:
        cands.append(0.0)
    cands = np.array(cands)
    vals = np.abs(alpha + beta * cands) / (scale * weight(cands, penalty))
    k = int(np.argmax(vals))
    return float(vals[k]), float(cands[k])


def _dual_check(lam, t, penalty, affine, regions, far):
    """Largest ratio |g(p)|/W(p) of the dual functions over the allowed kink positions, and the
    positions of the violations (one per segment)."""
    lo_all, hi_all = (t[0], t[-1]) if affine else (-far, far)
    knots = np.unique(np.concatenate([[lo_all, hi_all], t[(t >= lo_all) & (t <= hi_all)]]))
    for lo, hi, _, _ in regions:
        knots = np.unique(np.concatenate([knots, [lo, hi]]))
    rho, where = 0.0, []
    # on a segment [a, bnd] between knots, g_R(p) = sum_{t_i > p} lam_i (t_i - p) is linear; the knots
    # themselves (allowed even next to regions) are checked as degenerate segments [q, q]
    segs = list(pairwise(knots)) + [(q, q) for q in knots]
    for a, bnd in segs:
        mid = 0.5 * (a + bnd)
        right = t > mid
        left = ~right
        inside = any(lo < mid < hi for lo, hi, _, _ in regions)
        checks = []
        if affine:
            if not inside:
                checks.append((np.sum(lam[right] * t[right]), -np.sum(lam[right]), 1.0))
        else:
            if inside:
                checks.append((np.sum(lam * t), -np.sum(lam), 2.0))
            else:
                checks.append((np.sum(lam[right] * t[right]), -np.sum(lam[right]), 1.0))
                checks.append((-np.sum(lam[left] * t[left]), np.sum(lam[left]), 1.0))
        for al, be, sc in checks:
            ratio, arg = _max_ratio(al, be, a, bnd, penalty, sc)
            rho = max(rho, ratio)
            where.append((ratio, arg))
    if not affine:
        w0 = constant_weight(penalty)
        if w0 > 0:
            rho = max(rho, abs(lam.sum()) / w0)
    return rho, where


def _project_dual(lam, t, penalty, affine):
    """Make the multipliers satisfy the equality constraints of the free variables exactly."""
    if affine:
        T = np.stack([np.ones_like(t), t], 1)
    elif penalty == "free":
        T = np.ones((t.size, 1))
    else:
        return lam
    return lam - T @ np.linalg.solve(T.T @ T, T.T @ lam)


# Two kink positions closer than ``_COL_SEP * (1 + |p|)`` give (numerically) the same LP column: the
# dual constraints they carry differ by less than the LP tolerances, but the near-parallel columns make
# the LP degenerate.  Such positions are never both put in a dictionary.
_COL_SEP = 1e-9


def _add_columns(P: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``P`` (sorted, kept as is) plus the finite candidates farther than ``_COL_SEP (1 + |p|)`` from
    every position already present and from each other (earlier candidates win), sorted."""
    cand = np.asarray(cand, float).ravel()
    cand = cand[np.isfinite(cand)]
    out = np.asarray(P, float)
    for q in cand:
        j = np.searchsorted(out, q)
        sep = _COL_SEP * (1.0 + abs(q))
        if (j < out.size and out[j] - q <= sep) or (j > 0 and q - out[j - 1] <= sep):
            continue
        out = np.insert(out, j, q)
    return out


def _base_dictionary(t, penalty, affine, regions, n_grid, far):
    lo, hi = t[0], t[-1]
    span = hi - lo
    # exact positions first (constraint points, 0, the tangency points -1/x_i), then the grids, which
    # must not add near-copies of them (e.g. linspace's ~1e-17 next to 0)
    P = np.unique(np.concatenate([t, [0.0]]))
    if penalty == "l2":
        nz = t[t != 0]
        P = _add_columns(P, np.unique(-1.0 / nz))
    parts = [np.linspace(lo, hi, n_grid)]
    if not affine:
        off = np.geomspace(span / n_grid, far, max(n_grid // 4, 20))
        parts += [[-far, far], lo - off, hi + off]
    P = _add_columns(P, np.concatenate([np.asarray(q, float).ravel() for q in parts]))
    if affine:
        P = P[(P >= lo) & (P <= hi) & ~_inside_regions(P, regions)]
    else:
        P = P[(P >= -far) & (P <= far)]
    return P


def solve(
    x: Sequence[float] | None,
    y: Sequence[float] | None,
    *,
    regions: Sequence[tuple[float, float, float, float]] = (),
    penalty: str = "l2",
    affine: bool = True,
    n_grid: int = 201,
    far: float | None = None,
    max_iter: int = 60,
    merge_gap: float = 1e-5,
    drop_tol: float = 1e-9,
    polish: bool = True,
) -> Solution:
    r"""Minimal-norm interpolant: minimise ``sum_k |s_k| W(p_k)`` (plus the constant's cost without the
    affine term) subject to ``f(x_i) = y_i`` and ``f`` affine on each region with the given end values.

    Args:
        x, y: point constraints (any order, distinct ``x``); may be ``None`` when regions are given.
        regions: ``(l, r, y_l, y_r)`` tuples: ``f`` equals the line through ``(l, y_l), (r, y_r)`` on ``[l, r]``.
        penalty: ``"l2"`` (bias in the Euclidean penalty), ``"l1"`` (``|w| + |b|``) or ``"free"``.
        affine: ``True``: a free skip term ``v x + c``; ``False``: none (both unit orientations and a
            constant neuron in the dictionary).
        n_grid: points of the uniform starting grid on the data hull.
        far: largest ``|p|`` allowed (default ``1e4 * max(1, max |x|)``; only used without the affine term).
        max_iter: column-generation rounds.
        merge_gap: same-sign atoms closer than ``merge_gap * (1 + span)``, with no constraint point strictly
            between them, are merged into one kink at their weighted mean.
        drop_tol: a kink is dropped when re-solving without it raises the value by at most
            ``drop_tol * (1 + value)``.
        polish: (affine term free) move the final kinks continuously, each inside its interval between
            constraint points, to minimise the exact cost subject to the constraints (SLSQP).

    Returns:
        :class:`Solution` with ``cost``, certified ``lower`` bound and ``gap``.

    References: ``boursier2023penalising`` (the costs), ``savarese2019infinite``, ``park2023minimum``.
    """
    _check_penalty(penalty)
    t, b, regs = _constraints(x, y, regions)
    span = float(t[-1] - t[0])
    far = float(far if far is not None else 1e4 * max(1.0, float(np.abs(t).max())))
    P = _base_dictionary(t, penalty, affine, regs, n_grid, far)
    if max_iter < 1:
        raise ValueError(f"invalid max_iter={max_iter!r}: must be >= 1")
    sol, it, rho, converged = None, 0, np.inf, False
    lower, lam_final, rho_final = -np.inf, None, np.inf
    for it in range(1, max_iter + 1):
        sol = _lp(P, t, b, penalty, affine, regs)  # `sol` always belongs to the current `P`
        if sol is None:
            raise ValueError("the constraints are infeasible (inconsistent regions or points?)")
        lam = _project_dual(sol["lam"], t, penalty, affine)
        rho, where = _dual_check(lam, t, penalty, affine, regs, far)
        # every round's rescaled dual is feasible on the continuum: keep the best bound (the duals of
        # successive rounds can jump between vertices, so the last one need not be the best)
        bound = float(lam @ b) / max(rho, 1.0)
        if np.isfinite(bound) and bound > lower:
            lower, lam_final, rho_final = bound, lam / max(rho, 1.0), rho
        cand = np.array([arg for ratio, arg in where if ratio > 1 + 1e-12])
        # a most violated position within rounding of a column already present is that column
        # (violated only within the LP tolerances): adding it would only duplicate the column
        grown = _add_columns(P, cand)
        converged = rho <= 1 + 1e-12 or grown.size == P.size
        if converged or it == max_iter:  # leave the loop with P still the dictionary of `sol`
            break
        P = grown
    if lam_final is None:
        raise RuntimeError("solve: the LP returned no finite dual multipliers")
    lp_value, P_lp = sol["value"], P.copy()

    # -- post-processing: merge, drop, re-solve on the final kinks ----------------------------------
    mag = np.abs(sol["r"]) + np.abs(sol["l"])
    act = mag > 1e-11 * (1.0 + mag.max(initial=0.0))
    p, r, l = P[act], sol["r"][act], sol["l"][act]
    # with the affine term free, merging same-sign neighbours never raises the cost (Jensen)
    p, r, l = _merge(p, r, l, t, np.inf if affine else merge_gap * (1.0 + span), regs)
    cur = _lp(p, t, b, penalty, affine, regs)
    if cur is None or cur["value"] > lp_value + 1e-9 * (1 + abs(lp_value)):
        p, r, l = P[act], sol["r"][act], sol["l"][act]  # merging did not pay off: keep the atoms
        cur = _lp(p, t, b, penalty, affine, regs)
    order = np.argsort(np.abs(cur["r"]) + np.abs(cur["l"]), kind="stable")  # smallest atoms first
    keep = np.ones(p.size, bool)
    for k in order:
        trial = keep.copy()
        trial[k] = False
        if not trial.any() and affine is False:
            continue
        out = _lp(p[trial], t, b, penalty, affine, regs)
        if out is not None and out["value"] <= cur["value"] + drop_tol * (1 + abs(cur["value"])):
            keep, cur = trial, out
    p = p[keep]
    if affine and polish:
        p, cur = _polish(p, cur, t, b, penalty, regs)
    f = Solution(p=p, r=cur["r"], l=cur["l"], v=cur["v"], c=cur["c"], cost=0.0, lower=lower,
                 penalty=penalty, affine=affine, t=t, b=b, regions=regs, dictionary=P_lp,
                 lp_value=lp_value, dual=lam_final, iterations=it, residual=0.0, far=far)
    f.cost = float(np.sum((np.abs(f.r) + np.abs(f.l)) * weight(p, penalty))
                   + (0.0 if affine else constant_weight(penalty) * abs(f.c)))
    f.residual = float(np.max(np.abs(f(t) - b)))
    f.info = {"rho": float(rho_final), "dictionary_size": int(P_lp.size), "converged": bool(converged)}
    return f


def _polish(p, cur, t, b, penalty, regs):
    """Continuous refinement of the kink positions (affine term free): minimise ``sum |s_k| W(p_k)``
    over ``(p, s, v, c)`` subject to ``f(t_j) = b_j``, each ``p_k`` kept in its closed interval between
    constraint points and kinks on a constraint point kept there.  Accepted only if it lowers the cost
    with a residual below ``1e-12 (1 + max |b|)``."""
    from scipy.optimize import minimize

    K = p.size
    if K == 0 or t.size > 2 * K + 2:
        # SLSQP cannot take more equality constraints than variables (it returns "More equality
        # constraints than independent variables", and for some sizes SciPy's SLSQP under-allocates its
        # workspace and corrupts the heap: "double free or corruption", scipy/scipy#25665)
        return p, cur
    s0 = cur["r"]
    sg = np.sign(s0)
    near = np.abs(p[:, None] - t[None, :]) <= 1e-12 * (1.0 + np.abs(t).max())
    p = np.where(near.any(1), t[np.argmax(near, 1)], p)  # kinks on a constraint point stay there
    on_pt = near.any(1)
    j = np.searchsorted(t, p)
    lo = np.where(on_pt, p, t[np.clip(j - 1, 0, t.size - 1)])
    hi = np.where(on_pt, p, t[np.clip(j, 0, t.size - 1)])
    for lo_r, hi_r, _, _ in regs:  # kinks may not enter a region
        lo = np.where((p >= hi_r) & (lo < hi_r), np.maximum(lo, hi_r), lo)
        hi = np.where((p <= lo_r) & (hi > lo_r), np.minimum(hi, lo_r), hi)
    z0 = np.concatenate([p, s0, [cur["v"], cur["c"]]])

    def unpack(z):
        return z[:K], z[K:2 * K], z[2 * K], z[2 * K + 1]

    def fun(z):
        q, s, _, _ = unpack(z)
        return float(np.sum(sg * s * weight(q, penalty)))

    def dweight(q):
        return q / np.hypot(1.0, q) if penalty == "l2" else np.sign(q) if penalty == "l1" else 0.0 * q

    def jac(z):
        q, s, _, _ = unpack(z)
        return np.concatenate([sg * s * dweight(q), sg * weight(q, penalty), [0.0, 0.0]])

    def cons(z):
        q, s, v, c = unpack(z)
        return np.maximum(t[:, None] - q, 0.0) @ s + v * t + c - b

    def cons_jac(z):
        q, s, _, _ = unpack(z)
        act = (t[:, None] > q).astype(float)
        return np.hstack([-act * s, np.maximum(t[:, None] - q, 0.0), t[:, None], np.ones((t.size, 1))])

    bounds = [(a, c) for a, c in zip(lo, hi)] + [(0, None) if g > 0 else (None, 0) for g in sg] + [(None, None)] * 2
    res = minimize(fun, z0, jac=jac, method="SLSQP", bounds=bounds,
                   constraints=[{"type": "eq", "fun": cons, "jac": cons_jac}], options={"ftol": 1e-15, "maxiter": 100})
    z = res.x
    q, s, v, c = unpack(z)
    tol = 1e-12 * (1.0 + np.abs(b).max())
    if np.all(np.isfinite(z)) and np.abs(cons(z)).max() <= tol and fun(z) <= fun(z0):
        o = np.argsort(q)
        return q[o], dict(cur, r=s[o], l=np.zeros(K), v=float(v), c=float(c), value=fun(z))
    return p, cur


def _merge(p, r, l, t, gap, regions):
    """Merge runs of consecutive same-sign atoms closer than ``gap`` with no constraint point strictly
    between them into one atom at the jump-weighted mean position (cost can only drop, by convexity
    of ``W``, when the affine term is free)."""
    if p.size <= 1:
        return p, r, l
    o = np.argsort(p)
    p, r, l = p[o], r[o], l[o]
    s = r + l
    groups, cur = [], [0]
    for k in range(1, p.size):
        j, j0 = cur[-1], cur[0]  # the whole group must stay clear of constraint points and regions
        between = np.any((t > p[j0]) & (t < p[k])) or any(lo < p[k] and hi > p[j0] for lo, hi, _, _ in regions)
        if np.sign(s[k]) == np.sign(s[j]) and p[k] - p[j] <= gap and not between:
            cur.append(k)
        else:
            groups.append(cur)
            cur = [k]
    groups.append(cur)
    P, R, L = [], [], []
    for g in groups:
        wts = np.abs(r[g]) + np.abs(l[g])
        P.append(float(np.sum(wts * p[g]) / wts.sum()) if len(g) > 1 and wts.sum() > 0 else float(p[g[0]]))
        R.append(r[g].sum()), L.append(l[g].sum())
    return np.array(P), np.array(R), np.array(L)


def value_range(sol: Solution, t0: float, rel: float = 1e-7) -> tuple[float, float]:
    """Min and max of ``f(t0)`` over dictionary interpolants with cost <= ``sol.cost + rel (1 + cost)``
    (dictionary: the last column-generation dictionary plus the solution's kinks).

    For a unique minimiser with a strictly convex weight the width shrinks like ``sqrt(rel)`` (a kink
    moved by ``d`` costs ``O(d^2)``); for a non-unique one it stays of order one as ``rel -> 0``.  Probe
    with several ``rel`` (>= 1e-8: tighter caps meet HiGHS tolerances) to tell the two apart."""
    P = _add_columns(np.unique(sol.p), sol.dictionary)  # the solution's kinks, no near-copies of them
    base = _lp(P, sol.t, sol.b, sol.penalty, sol.affine, sol.regions)
    cap = max(sol.cost, base["value"] if base else sol.cost) + rel * (1.0 + sol.cost)

    def objective(sign):
        def make(P, t, ncol):
            K = P.size
            row = np.maximum(t0 - P, 0.0)
            if sol.affine:
                obj = np.concatenate([row, -row, [t0, 1.0]])
            else:
                left = np.maximum(P - t0, 0.0)
                obj = np.concatenate([row, -row, left, -left, [1.0, -1.0]])
            assert obj.size == ncol and K == P.size
            return sign * obj
        return make

    vals = []
    for sign in (1.0, -1.0):
        out = _lp(P, sol.t, sol.b, sol.penalty, sol.affine, sol.regions, cost_cap=cap,
                  objective=objective(sign))
        if out is None:
            raise RuntimeError("value_range: the capped LP failed; increase rel")
        vals.append(float(out["z"] @ objective(1.0)(P, sol.t, out["z"].size)))
    return min(vals), max(vals)


# ------------------------------------------------------------------------------------------------
# the regularised problem (infinite-width limit of weight decay)
@dataclass
class PenalizedFit:
    """Minimiser of ``1/2 sum_i (f(x_i) - y_i)^2 + lam * cost(f)`` (see :func:`solve_penalized`)."""

    p: np.ndarray
    r: np.ndarray
    l: np.ndarray
    v: float
    c: float
    lam: float
    penalty: str
    affine: bool
    objective: float  # optimal value of the convex problem on the grid
    cost: float  # cost of the returned function
    grid_step: float

    @property
    def kinks(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.r + self.l
        keep = np.abs(s) > 1e-6 * (1.0 + np.abs(s).max(initial=0.0))
        return self.p[keep], s[keep]

    @property
    def n_kinks(self) -> int:
        return int(self.kinks[0].size)

    def __call__(self, t):
        t = np.asarray(t, float)
        tt = t[..., None]
        return (np.maximum(tt - self.p, 0) @ self.r + np.maximum(self.p - tt, 0) @ self.l
                + self.v * t + self.c)


def solve_penalized(
    x: Sequence[float],
    y: Sequence[float],
    lam: float,
    *,
    penalty: str = "l2",
    affine: bool = True,
    n_grid: int = 2001,
    far: float | None = None,
) -> PenalizedFit:
    r"""The convex problem ``min_f 1/2 sum_i (f(x_i) - y_i)^2 + lam * cost(f)`` over a kink grid.

    This is the global minimum of the weight-decay objective ``1/2 sum_i (f_theta(x_i) - y_i)^2 +
    lam/2 ||theta||^2`` of a wide enough network (at a minimiser every neuron is balanced, so the penalty
    is ``lam`` times the cost): a lasso over the dictionary of kinks, solved by CLARABEL through cvxpy.
    The grid is uniform on the data hull (``n_grid`` points) plus the data points and ``-1/x_i``;
    consecutive same-sign atoms with no data point strictly between them are merged at their weighted
    mean (this keeps the fit and, by convexity of ``W``, does not raise the cost), so kink positions are
    accurate to about one grid step.  Without the affine term the dictionary also holds left-facing units,
    a far grid and the constant neuron, as in :func:`solve`.
    """
    import cvxpy as cp

    _check_penalty(penalty)
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"invalid lam={lam!r}: must be > 0")
    t, b = _sorted_data(x, y)
    far = float(far if far is not None else 1e4 * max(1.0, float(np.abs(t).max())))
    P = _base_dictionary(t, penalty, affine, (), n_grid, far)
    W = weight(P, penalty)
    R = np.maximum(t[:, None] - P[None, :], 0.0)
    s = cp.Variable(P.size)
    if affine:
        v, c = cp.Variable(), cp.Variable()
        f = R @ s + v * t + c
        reg = W @ cp.abs(s)
    else:
        L = np.maximum(P[None, :] - t[:, None], 0.0)
        lv, c = cp.Variable(P.size), cp.Variable()
        f = R @ s + L @ lv + c
        reg = W @ cp.abs(s) + W @ cp.abs(lv) + constant_weight(penalty) * cp.abs(c)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(f - b) + lam * reg))
    prob.solve(solver="CLARABEL")
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"solve_penalized: solver status {prob.status}")
    r = np.asarray(s.value)
    l = np.zeros_like(r) if affine else np.asarray(lv.value)
    mag = np.abs(r) + np.abs(l)
    act = mag > 1e-7 * (1.0 + mag.max(initial=0.0))
    p, r, l = _merge(P[act], r[act], l[act], t, np.inf if affine else 1e-9, ())
    fit = PenalizedFit(p=p, r=r, l=l, v=float(v.value) if affine else 0.0, c=float(c.value), lam=float(lam),
                       penalty=penalty, affine=affine, objective=float(prob.value), cost=0.0,
                       grid_step=float((t[-1] - t[0]) / (n_grid - 1)))
    fit.cost = float(np.sum((np.abs(r) + np.abs(l)) * weight(p, penalty))
                     + (0.0 if affine else constant_weight(penalty) * abs(fit.c)))
    return fit
