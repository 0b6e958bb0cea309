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

The structure the solver uses (chapter 3)
-----------------------------------------
Let ``t_1 < ... < t_n`` be the constraint points (data points and region ends) and ``d_j = t_{j+1} - t_j``.
The constraints are rewritten with the invertible map ``T``: ``f(t_1)``, the first secant
``delta_1 = (f(t_2) - f(t_1)) / d_1`` and the discrete curvatures ``kappa_i = delta_i - delta_{i-1}``.
A right-facing unit with its kink at ``p`` in ``[t_j, t_{j+1}]`` then touches only ``kappa_j`` and
``kappa_{j+1}`` (with the hat-function weights ``(t_{j+1} - p)/d_j`` and ``(p - t_j)/d_j``), so every
column of the linear program has at most four nonzeros and the LP is banded.  Between two consecutive
constraint points every unit's image is *linear* in ``p`` and ``W(p) = N(u(p))`` is a norm of the affine
map ``u(p) = (1, p)`` (Euclidean, ``l1``, or the first coordinate), so by Jensen several same-sign atoms of
one interval cost at least one atom at their moment-weighted mean position, which has the same image:
*one kink per interval between consecutive constraint points suffices* (the book's chapter-3 lemma,
``boursier2023penalising``).  Dually, the dual function ``g(p) = nu . T phi_p`` is linear on each
interval, so the dual constraint ``|g(p)| <= W(p)`` of an interval is checked exactly in closed form:
the maximum of ``|alpha + beta p| / W(p)`` on ``[a, b]`` is at an end point, at ``p = beta / alpha``
(``l2``) or at ``0`` (``l1``).

Public API
----------
``solve(x, y, regions=(), penalty="l2", affine=True, ...) -> Solution``
    The exact minimiser by column generation on that sparse LP (HiGHS through ``scipy.optimize.linprog``):
    a starting dictionary of kink positions (the constraint points, ``0``, the tangency points
    ``-1/t_i``, a uniform grid on the hull and, without the affine term, a geometric grid out to
    ``|p| = far``); each round solves the LP, checks the dual on every interval in closed form and adds
    the most violated position of each violated interval.  Every round's dual, divided by its largest
    violation ratio ``rho >= 1``, is feasible on the continuum, so ``nu . T b / rho`` is a certified lower
    bound.  The loop stops as soon as the certified relative gap is below ``gap_tol`` (``converged``);
    otherwise the function warns (:class:`NotConvergedWarning`, or raises :class:`NotConvergedError`
    with ``on_fail="raise"``) naming the gap reached and the setting to change.  Post-processing merges
    the same-sign atoms of each interval into one (exact for the constraints, never raises the cost);
    for the ``l2`` weight, Newton's method on the optimality conditions of that active set (tight and
    tangent per-interval dual constraints, a sparse square system) then gives the kink positions and a
    dual to rounding, certified by the same closed-form check; otherwise the merged kinks are re-solved
    once: one LP, not one per kink.  Last, in both conventions, the *merge rule* of :func:`_merge_runs`:
    consecutive same-sign kinks of units facing the same way with no constraint point (or region)
    strictly between them are one kink at their jump-weighted mean (exact for the constraints, never
    raises the cost).  Without the affine term a right- and a left-facing kink are merged only if the
    re-solve stays certified; a certified minimiser can have two such kinks close together (a merge
    changes the constant neuron and may cost more; ``tests/test_minnorm1d.py`` has an example).
``Solution(t)``
    Evaluates the interpolant (piecewise linear) at points ``t``; ``Solution.kinks`` gives the kink
    positions and slope jumps; ``Solution.cost`` the exact cost of the returned function.
``value_range(sol, t0, rel=1e-7)``
    Uniqueness probe: min and max of ``f(t0)`` over the dictionary solutions whose cost is within
    ``rel * (1 + cost)`` of the optimum (a second sparse LP, one per bound).
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
HiGHS tolerances 1e-10, so certified relative gaps reach ~1e-12 at best, not exact rationals.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import ceil

import numpy as np
from scipy import sparse
from scipy.optimize import OptimizeWarning, linprog

PENALTIES = ("l2", "l1", "free")

__all__ = [
    "PENALTIES",
    "NotConvergedError",
    "NotConvergedWarning",
    "PenalizedFit",
    "Solution",
    "best_fit_with_kinks",
    "biasfree_value",
    "evaluate_kinks",
    "interpolant_with_kinks",
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


def interpolant_with_kinks(
    x: Sequence[float], y: Sequence[float], p: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, float, float]:
    r"""The interpolant with its kinks at the given positions ``p``, as ``(p, s, v, c)``.

    Solves ``sum_k s_k (x_i - p_k)_+ + v x_i + c = y_i`` for the jumps ``s`` and the affine part (least
    squares, exact when ``len(p) = n - 2`` and the system is regular); raises ``ValueError`` when no
    interpolant has kinks only at ``p``.  Used to build members of the bias-free family and their
    perturbations (e.g. the straight-line interpolant with one kink moved)."""
    xs, ys = _sorted_data(x, y)
    p = np.sort(_as_1d("p", p))
    A = np.column_stack([np.maximum(xs[:, None] - p, 0.0), xs, np.ones_like(xs)])
    z = np.linalg.lstsq(A, ys, rcond=None)[0]
    if np.max(np.abs(A @ z - ys)) > 1e-9 * (1.0 + np.abs(ys).max()):
        raise ValueError(f"no interpolant of the data has its kinks only at p={p.tolist()}")
    return p, z[:-2], float(z[-2]), float(z[-1])


def _kink_fit(xs, ys, P, lam, penalty, sign):
    """``min 1/2 |f(x) - y|^2 + lam sum_k W(p_k) |s_k|`` over ``f`` with kinks at ``P`` of sign ``sign``
    (or zero) and a free affine part: exact, by enumerating which jumps are zero (2^k linear systems)."""
    k = P.size
    A = np.column_stack([np.maximum(xs[:, None] - P, 0.0), xs, np.ones_like(xs)])
    g = np.concatenate([lam * sign * weight(P, penalty), [0.0, 0.0]])
    best = (np.inf, None)
    for mask in range(2**k):
        on = np.array([(mask >> j) & 1 for j in range(k)] + [1, 1], bool)
        As, gs = A[:, on], g[on]
        zs = np.linalg.lstsq(As.T @ As, As.T @ ys - gs, rcond=None)[0]
        if np.any(sign * zs[:-2] < 0):
            continue
        z = np.zeros(k + 2)
        z[on] = zs
        val = 0.5 * float(np.sum((A @ z - ys) ** 2)) + float(g @ z)
        if val < best[0]:
            best = (val, z)
    return best


def best_fit_with_kinks(
    x: Sequence[float],
    y: Sequence[float],
    lam: float,
    n_kinks: int,
    *,
    penalty: str = "l2",
    sign: float | None = None,
    grid: int = 41,
    starts: int = 3,
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""The weight-decay objective restricted to ``n_kinks`` kinks of one sign: a local search for
    ``min 1/2 sum_i (f(x_i) - y_i)^2 + lam sum_k |s_k| W(p_k)`` over ``f`` with kinks ``p_k`` in the data
    hull whose jumps have the sign ``sign`` (default: the sign of ``sum_i kappa_i``), affine part free.

    For fixed positions the problem is a small convex QP, solved exactly (:func:`_kink_fit`); the
    positions are searched over all ``n_kinks``-subsets of a ``grid``-point grid on the hull, and the
    ``starts`` best are refined by Nelder-Mead.  Non-convex in the positions, so the result is an upper
    bound on the restricted optimum (exact on the grid).  Chapter 3 uses it as a control: the best fit
    with the sparsest number of kinks, against the global minimum of :func:`solve_penalized`.

    Returns ``(objective, positions, jumps)``."""
    from itertools import combinations

    from scipy.optimize import minimize

    _check_penalty(penalty)
    xs, ys = _sorted_data(x, y)
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"invalid lam={lam!r}: must be > 0")
    if int(n_kinks) < 1:
        raise ValueError(f"invalid n_kinks={n_kinks!r}: must be >= 1")
    sgn = float(np.sign(sign if sign is not None else secants(xs, ys)[1].sum()) or 1.0)
    lo, hi = xs[0], xs[-1]
    G = np.linspace(lo, hi, grid)
    scored = sorted((_kink_fit(xs, ys, np.array(c), lam, penalty, sgn)[0], c)
                    for c in combinations(G, int(n_kinks)))

    def obj(P):
        return _kink_fit(xs, ys, np.sort(np.clip(P, lo, hi)), lam, penalty, sgn)[0]

    best = (np.inf, None)
    for _, c in scored[:starts]:
        r = minimize(obj, np.array(c), method="Nelder-Mead",
                     options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 4000})
        if r.fun < best[0]:
            best = (float(r.fun), np.sort(np.clip(r.x, lo, hi)))
    val, z = _kink_fit(xs, ys, best[1], lam, penalty, sgn)
    return float(val), best[1], z[:-2]


def _as_1d(name: str, a) -> np.ndarray:
    """``a`` as a float64 1-D array; anything else (a scalar, a 2-D array) is an error naming ``name``."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"invalid {name}: expected a 1-D array of numbers, got an array of shape {arr.shape}")
    return arr


def _sorted_data(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_1d("x", x), _as_1d("y", y)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need x and y of the same length >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    if np.any(np.diff(x) <= 0):
        raise ValueError("the data points x must be distinct")
    return x, y


class NotConvergedWarning(RuntimeWarning):
    """:func:`solve` stopped before its certified relative gap reached ``gap_tol``."""


class NotConvergedError(RuntimeError):
    """:func:`solve` with ``on_fail="raise"`` did not reach its ``gap_tol``."""


# ------------------------------------------------------------------------------------------------
# the solution
@dataclass
class Solution:
    """A certified minimal-norm interpolant.

    ``f(t) = sum_k [r_k (t - p_k)_+ + l_k (p_k - t)_+] + v t + c``; with ``affine=True`` all ``l_k = 0``;
    with ``affine=False`` ``v = 0`` and ``c`` is the constant neuron.  ``cost`` is the exact cost of this
    function's representation, ``lower`` a certified lower bound on the optimum, ``gap = cost - lower``.
    ``info``: ``converged`` (the relative gap ``gap / cost`` is at most ``gap_tol``), ``rel_gap``,
    ``gap_tol``, ``rho`` (violation ratio of the certified dual before scaling), ``dictionary_size``,
    ``lp_seconds`` (time inside HiGHS) and ``lps`` (number of LPs solved).
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
    dictionary: np.ndarray  # kink positions of the last column-generation LP (all unit families)
    lp_value: float  # optimum of that LP (before merging)
    dual: np.ndarray  # certified dual multipliers on the constraint points (scaled to feasibility)
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
    xs = [] if x is None else list(_as_1d("x", x))
    ys = [] if y is None else list(_as_1d("y", y))
    if len(xs) != len(ys):
        raise ValueError(f"x and y must have the same length, got {len(xs)} and {len(ys)}")
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
    p = np.asarray(p, float)
    m = np.zeros(p.shape, bool)
    for lo, hi, _, _ in regions:
        m |= (p > lo) & (p < hi)
    return m


# Two kink positions closer than ``_COL_SEP * (1 + |p|)`` give (numerically) the same LP column: the
# dual constraints they carry differ by less than the LP tolerances, but the near-parallel columns make
# the LP degenerate.  Such positions are never both put in a dictionary.
_COL_SEP = 1e-9


def _add_columns(P: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``P`` (sorted, kept as is) plus the finite candidates farther than ``_COL_SEP (1 + |p|)`` from
    every position already present and from each other (of two close candidates the smaller wins), sorted."""
    P = np.asarray(P, float)
    cand = np.asarray(cand, float).ravel()
    cand = np.unique(cand[np.isfinite(cand)])
    if cand.size == 0:
        return P
    sep = _COL_SEP * (1.0 + np.abs(cand))
    if P.size:
        j = np.searchsorted(P, cand)
        right = np.where(j < P.size, P[np.minimum(j, P.size - 1)] - cand, np.inf)
        left = np.where(j > 0, cand - P[np.maximum(j - 1, 0)], np.inf)
        ok = (right > sep) & (left > sep)
        cand, sep = cand[ok], sep[ok]
    if cand.size > 1:  # greedy left to right among the candidates themselves
        keep = np.ones(cand.size, bool)
        last = cand[0]
        for i in range(1, cand.size):
            if cand[i] - last <= sep[i]:
                keep[i] = False
            else:
                last = cand[i]
        cand = cand[keep]
    return np.union1d(P, cand)


def _base_dictionary(t, penalty, affine, regions, n_grid, far):
    """Starting kink positions (all families): the constraint points, ``0``, the tangency points ``-1/t_i``
    (``l2``), a uniform grid of ``n_grid`` points on the hull and, without the affine term, a geometric
    grid from the hull out to ``|p| = far``."""
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


# ------------------------------------------------------------------------------------------------
# the banded linear program
_FAMILIES = ("R", "L", "P")  # right-facing units, left-facing units, cancelling pairs inside regions
_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


class _Problem:
    r"""The constraints ``f(t_i) = b_i`` in the coordinates ``T f = (f(t_1), delta_1, kappa_2, ..,
    kappa_{n-1})`` and the unit families allowed by the convention.

    Row ``0`` is ``f(t_1)``; row ``k + 1`` (``k = 0 .. n-2``) carries the value ``G_k`` of the dual function
    at ``t_{k+1}`` (row 1 is ``delta_1``, the others are curvatures); ``t_n`` has no row (``G = 0`` there).
    The image of a unit is linear in its kink position between consecutive constraint points:

    * ``R(p) = (x - p)_+``: ``(t_1 - p) e_0 + e_1`` for ``p <= t_1``; ``u e_{j+1} + w e_{j+2}`` for ``p`` in
      ``[t_j, t_{j+1}]`` with ``u = (t_{j+1} - p)/d_j``, ``w = (p - t_j)/d_j``; ``0`` for ``p >= t_n``;
    * ``L(p) = (p - x)_+ = R(p) + (p - t_1) e_0 - e_1``;  ``P(p) = x - p = (t_1 - p) e_0 + e_1`` (cost ``2 W``).
    """

    def __init__(self, t, b, regions, penalty, affine, far):
        self.t, self.b, self.regions = t, b, tuple(regions)
        self.penalty, self.affine, self.far = penalty, affine, far
        self.n = n = t.size
        self.d = np.diff(t)
        delta = np.diff(b) / self.d
        self.Tb = np.concatenate([[b[0]], delta[:1], np.diff(delta)])
        self.w0 = constant_weight(penalty)
        seg_in = np.zeros(n - 1, bool)  # interval j = [t_j, t_{j+1}] lies in a region
        for lo, hi, _, _ in self.regions:
            seg_in |= (t[:-1] >= lo) & (t[1:] <= hi)
        self.seg_in = seg_in

    # -- families -----------------------------------------------------------------------------
    def families(self) -> tuple[str, ...]:
        if self.affine:
            return ("R",)
        return ("R", "L", "P") if self.regions else ("R", "L")

    def allowed(self, fam: str, p: np.ndarray) -> np.ndarray:
        """Positions where a unit of family ``fam`` may sit (and is not zero on the data)."""
        t, inside = self.t, _inside_regions(p, self.regions)
        if fam == "P":
            return inside
        if self.affine:
            return (p >= t[0]) & (p < t[-1]) & ~inside
        if fam == "R":
            return (p >= -self.far) & (p < t[-1]) & ~inside
        return (p > t[0]) & (p <= self.far) & ~inside

    def segments(self, fam: str) -> tuple[np.ndarray, np.ndarray]:
        """Closed intervals ``[a, b]`` covering the allowed positions of ``fam``, on each of which the
        family's image is linear in ``p`` (degenerate ``[q, q]`` for isolated allowed constraint points)."""
        t = self.t
        if fam == "P":
            return t[:-1][self.seg_in], t[1:][self.seg_in]
        a, b = [t[:-1][~self.seg_in]], [t[1:][~self.seg_in]]
        # constraint points between two region intervals (regions sharing an end point)
        touch = np.zeros(self.n, bool)
        touch[1:-1] = self.seg_in[:-1] & self.seg_in[1:]
        lone = t[touch & ~_inside_regions(t, self.regions)]
        a.append(lone), b.append(lone)
        if not self.affine and fam == "R" and -self.far < t[0]:
            a.append([-self.far]), b.append([t[0]])
        if not self.affine and fam == "L" and self.far > t[-1]:
            a.append([t[-1]]), b.append([self.far])
        return np.concatenate(a).astype(float), np.concatenate(b).astype(float)

    def images(self, fam: str, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[K, 4]`` (``n`` = no row) and values ``[K, 4]`` of the images ``T phi_p``."""
        t, n = self.t, self.n
        p = np.asarray(p, float)
        K = p.size
        rows = np.full((K, 4), n, dtype=np.int64)
        vals = np.zeros((K, 4))
        rows[:, 0], rows[:, 1] = 0, 1
        if fam == "P":
            vals[:, 0], vals[:, 1] = t[0] - p, 1.0
            return rows, vals
        left = p < t[0]
        vals[left, 0], vals[left, 1] = t[0] - p[left], 1.0
        mid = (p >= t[0]) & (p < t[-1])
        j = np.clip(np.searchsorted(t, p[mid], side="right") - 1, 0, n - 2)
        d = self.d[j]
        u, w = (t[j + 1] - p[mid]) / d, (p[mid] - t[j]) / d
        rows[mid, 2], vals[mid, 2] = j + 1, u
        rows[mid, 3], vals[mid, 3] = np.where(j + 2 <= n - 1, j + 2, n), w
        if fam == "L":
            vals[:, 0] += p - t[0]
            vals[:, 1] -= 1.0
        return rows, vals

    def slopes(self, fam: str, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and values of ``d(T phi_p)/dp`` (constant on each open interval between constraint points)."""
        t, n = self.t, self.n
        p = np.asarray(p, float)
        K = p.size
        rows = np.full((K, 3), n, dtype=np.int64)
        vals = np.zeros((K, 3))
        rows[:, 0] = 0
        if fam == "P":
            vals[:, 0] = -1.0
            return rows, vals
        left = p < t[0]
        vals[left, 0] = -1.0
        mid = (p >= t[0]) & (p < t[-1])
        j = np.clip(np.searchsorted(t, p[mid], side="right") - 1, 0, n - 2)
        rows[mid, 1], vals[mid, 1] = j + 1, -1.0 / self.d[j]
        rows[mid, 2], vals[mid, 2] = np.where(j + 2 <= n - 1, j + 2, n), 1.0 / self.d[j]
        if fam == "L":
            vals[:, 0] += 1.0
        return rows, vals

    def dual_values(self, fam: str, p: np.ndarray, nu: np.ndarray) -> np.ndarray:
        """``g(p) = nu . T phi_p`` for the units of ``fam`` at ``p``."""
        rows, vals = self.images(fam, p)
        return (vals * np.append(nu, 0.0)[rows]).sum(1)

    def scale(self, fam: str) -> float:
        return 2.0 if fam == "P" else 1.0

    # -- the LP ---------------------------------------------------------------------------------
    def lp(self, dic: dict, *, objective=None, cap=None) -> dict | None:
        """Minimise ``sum_k cost_k |z_k|`` subject to ``T A z = T b`` over the dictionary ``dic``
        (family -> positions); with ``cap``, minimise ``objective`` (a function of the column layout)
        subject to the cost being at most ``cap``.  Returns ``None`` if HiGHS reports no optimum."""
        n = self.n
        fams = [f for f in self.families() if dic.get(f) is not None and len(dic[f])]
        R, V, C, sizes = [], [], [], []
        for f in fams:
            rows, vals = self.images(f, dic[f])
            R.append(rows), V.append(vals), C.append(self.scale(f) * weight(dic[f], self.penalty))
            sizes.append(len(dic[f]))
        K = int(sum(sizes))
        if K:
            rows, vals = np.concatenate(R), np.concatenate(V)
            cols = np.repeat(np.arange(K), 4)
            keep = rows.ravel() < n
            A = sparse.csc_matrix((vals.ravel()[keep], (rows.ravel()[keep], cols[keep])), shape=(n, K))
            cost = np.concatenate(C)
        else:
            A, cost = sparse.csc_matrix((n, 0)), np.zeros(0)
        # free / extra columns: (v, c) with the affine term, else the constant neuron (split in two)
        if self.affine:
            F = sparse.csc_matrix(np.array([[self.t[0], 1.0], [1.0, 0.0]] + [[0.0, 0.0]] * (n - 2)))
            fcost, fbounds = np.zeros(2), [(None, None)] * 2
        else:
            e0 = np.zeros((n, 1))
            e0[0] = 1.0
            F = sparse.csc_matrix(np.hstack([e0, -e0]))
            fcost, fbounds = np.full(2, self.w0), [(0, None)] * 2
        A_eq = sparse.hstack([A, -A, F], format="csc")
        c = np.concatenate([cost, cost, fcost])
        bounds = [(0, None)] * (2 * K) + fbounds
        sb = float(np.abs(self.Tb).max())
        if sb == 0.0:
            sb = 1.0
        t0 = time.perf_counter()
        kw = {"A_eq": A_eq, "b_eq": self.Tb / sb, "bounds": bounds}
        obj = c
        if cap is not None:
            obj = objective(dic, fams, sizes)
            kw.update(A_ub=c[None, :], b_ub=[cap / sb])
        res = linprog(obj, method="highs", options=_HIGHS, **kw)
        if res.status == 4:  # simplex in numerical trouble ("model status unknown"): interior point instead
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # HiGHS options scipy does not list
                res = linprog(obj, method="highs-ipm", options={**_HIGHS, "run_crossover": "off",
                                                                "ipm_optimality_tolerance": 1e-12}, **kw)
        self.lp_seconds = getattr(self, "lp_seconds", 0.0) + time.perf_counter() - t0
        self.lps = getattr(self, "lps", 0) + 1
        if res.status != 0:
            return None
        z = res.x * sb
        zz = z[:K] - z[K:2 * K]
        out = {"z": {}, "value": float(c @ z), "x": z, "nu": None}
        off = 0
        for f, k in zip(fams, sizes):
            out["z"][f] = zz[off:off + k]
            off += k
        if self.affine:
            out["v"], out["c"] = float(z[2 * K]), float(z[2 * K + 1])
        else:
            out["v"], out["c"] = 0.0, float(z[2 * K] - z[2 * K + 1])
        if cap is None:
            out["nu"] = np.asarray(res.eqlin.marginals, float)
        return out

    # -- the certificate ------------------------------------------------------------------------
    def project(self, nu: np.ndarray) -> np.ndarray:
        """Make the dual satisfy the equality constraints of the free columns exactly."""
        nu = nu.copy()
        if self.affine:
            nu[0] = nu[1] = 0.0  # columns 1 = e_0 and x = t_1 e_0 + e_1 are free
        elif self.w0 == 0.0:
            nu[0] = 0.0  # the constant neuron is free
        return nu

    def check(self, nu: np.ndarray) -> tuple[float, dict]:
        """Largest ratio ``|g(p)| / (scale W(p))`` over all allowed positions (exact, per interval in
        closed form) and, per family, the most violated position of every interval whose ratio exceeds 1."""
        rho, where = 0.0, {}
        for f in self.families():
            a, b = self.segments(f)
            if a.size == 0:
                continue
            ga, gb = self.dual_values(f, a, nu), self.dual_values(f, b, nu)
            cand = [a, b]
            if self.penalty == "l2":  # stationary point of (alpha + beta p)^2 / (1 + p^2): p = beta / alpha
                den = ga * b - gb * a
                with np.errstate(divide="ignore", invalid="ignore"):
                    ps = np.where(den != 0, (gb - ga) / den, a)
                cand.append(np.where((ps > a) & (ps < b), ps, a))
            elif self.penalty == "l1":
                cand.append(np.where((a < 0) & (b > 0), 0.0, a))
            P = np.stack(cand, 1)
            L = np.where(b > a, b - a, 1.0)[:, None]
            g = ga[:, None] + (P - a[:, None]) / L * (gb - ga)[:, None]
            ratio = np.abs(g) / (self.scale(f) * weight(P, self.penalty))
            k = np.argmax(ratio, 1)
            best = ratio[np.arange(a.size), k]
            rho = max(rho, float(best.max()))
            where[f] = (best, P[np.arange(a.size), k])
        if not self.affine and self.w0 > 0:
            rho = max(rho, abs(float(nu[0])) / self.w0)
        return rho, where

    def dual_on_points(self, nu: np.ndarray) -> np.ndarray:
        """``mu = T^T nu``: the same dual as multipliers of the constraints ``f(t_i) = b_i``."""
        G = np.append(nu[1:], 0.0)  # dual function at t_1 .. t_n
        cj = (G[:-1] - G[1:]) / self.d  # coefficient of (f(t_{j+1}) - f(t_j))
        mu = np.zeros(self.n)
        mu[0] = nu[0]
        mu[1:] += cj
        mu[:-1] -= cj
        return mu


def _dictionary(prob: _Problem, positions: np.ndarray) -> dict:
    """Split kink positions into the families allowed there."""
    positions = np.asarray(positions, float)
    return {f: positions[prob.allowed(f, positions)] for f in prob.families()}


def _merge_atoms(prob: _Problem, dic: dict, z: dict) -> dict:
    """Per family, merge the same-sign atoms of each interval between consecutive constraint points
    (far intervals included) into one atom at the moment-weighted mean position.

    The image of a unit is linear in ``p`` on the interval, so ``sum_k z_k phi(p_k) = (sum_k z_k)
    phi(pbar)`` with ``pbar = sum_k |z_k| p_k / sum_k |z_k|`` (the constraints are kept exactly); the
    cost can only drop because ``W`` is convex (Jensen).  An atom on a constraint point joins the
    interval to its right."""
    t = prob.t
    out = {}
    for f, p in dic.items():
        zf = z.get(f, np.zeros(0))
        mag = np.abs(zf)
        act = mag > 1e-14 * max(float(mag.max(initial=0.0)), 1e-300)
        p, zf = p[act], zf[act]
        if p.size == 0:
            out[f] = (p, zf)
            continue
        seg = np.searchsorted(t, p, side="right")  # 0: left of t_1, n: right of t_n
        key = np.stack([seg, np.sign(zf).astype(int)], 1)
        uk, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        tot = np.bincount(inv, weights=zf, minlength=len(uk))
        wsum = np.bincount(inv, weights=np.abs(zf), minlength=len(uk))
        pm = np.bincount(inv, weights=np.abs(zf) * p, minlength=len(uk)) / wsum
        # keep exact positions of lone atoms (no rounding from the weighted mean)
        cnt = np.bincount(inv, minlength=len(uk))
        first = np.zeros(len(uk), dtype=np.int64)
        first[inv[::-1]] = np.arange(inv.size)[::-1]
        pm = np.where(cnt == 1, p[first], pm)
        o = np.argsort(pm, kind="stable")
        out[f] = (pm[o], tot[o])
    return out


def _run_groups(prob: _Problem, p: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Group index of each atom (``p`` sorted): consecutive atoms of one sign share a group as long as no
    constraint point and no region lies strictly between the group's first atom and them (the merge rule
    of :func:`_merge_runs`)."""
    t, gid = prob.t, np.zeros(p.size, dtype=np.int64)
    first = 0
    for k in range(1, p.size):
        between = np.searchsorted(t, p[k], side="left") > np.searchsorted(t, p[first], side="right")
        between = between or any(lo < p[k] and hi > p[first] for lo, hi, _, _ in prob.regions)
        if np.sign(z[k]) == np.sign(z[k - 1]) and not between:
            gid[k] = gid[k - 1]
        else:
            gid[k], first = gid[k - 1] + 1, k
    return gid


def _merge_runs(prob: _Problem, atoms: dict) -> dict:
    r"""The merge rule, in both conventions.  Sort the atoms of the right- and left-facing families
    together and group consecutive same-sign atoms with no constraint point (and no region) strictly
    between them (:func:`_run_groups`).  A group whose atoms all belong to one family is one kink: it is
    replaced by one atom of that family at the jump-weighted mean ``sum_k |z_k| p_k / sum_k |z_k|`` with
    jump ``sum_k z_k``.

    The function changes only strictly between the group's first and last atom, where there is nothing
    to interpolate, so the constraints hold exactly; the cost can only drop because ``W`` is convex
    (Jensen), strictly for the ``l2`` weight.  An atom on a constraint point may join the atoms on either
    side of it (left first).  A group that mixes right- and left-facing atoms (possible only without the
    affine term) is left as it is: merging it changes the constant neuron and may raise the cost, so
    :func:`solve` tries it as a re-solve that must stay certified, and a minimiser can have two such
    kinks close together.  Cancelling pairs inside regions (family ``P``) are kept as they are."""
    fams = [f for f in atoms if f != "P"]
    out = {f: (np.asarray(p, float), np.asarray(z, float)) for f, (p, z) in atoms.items()}
    if not fams:
        return out
    lab = np.concatenate([np.full(len(out[f][0]), i) for i, f in enumerate(fams)])
    p = np.concatenate([out[f][0] for f in fams])
    z = np.concatenate([out[f][1] for f in fams])
    keep = z != 0
    lab, p, z = lab[keep], p[keep], z[keep]
    if p.size == 0:
        return {**out, **{f: (np.zeros(0), np.zeros(0)) for f in fams}}
    o = np.argsort(p, kind="stable")
    lab, p, z = lab[o], p[o], z[o]
    gid = _run_groups(prob, p, z)
    m = np.abs(z)
    tot = np.bincount(gid, weights=z)
    pm = np.bincount(gid, weights=m * p) / np.bincount(gid, weights=m)
    cnt = np.bincount(gid)
    first = np.r_[True, np.diff(gid) != 0]  # gid is sorted: one representative per group
    starts = np.flatnonzero(first)
    one_family = np.minimum.reduceat(lab, starts) == np.maximum.reduceat(lab, starts)
    merge = one_family[gid] & (cnt[gid] > 1)
    for i, f in enumerate(fams):
        lone = (lab == i) & ~merge
        rep = (lab == i) & merge & first
        P = np.concatenate([p[lone], pm[gid[rep]]])
        Z = np.concatenate([z[lone], tot[gid[rep]]])
        s = np.argsort(P, kind="stable")
        out[f] = (P[s], Z[s])
    return out


def _weight_derivatives(p: np.ndarray, penalty: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W, W', W''`` at ``p`` (``l2``: ``sqrt(1+p^2)``, ``p / W``, ``W^-3``)."""
    w = weight(p, penalty)
    if penalty == "l2":
        return w, p / w, w ** -3.0
    if penalty == "l1":
        return w, np.sign(p), np.zeros_like(p)
    return w, np.zeros_like(p), np.zeros_like(p)


def _free_columns(prob: _Problem, c_value: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(rows, values, dual target) of the affine columns: ``x`` and ``1`` (free) with the affine term;
    without it the constant neuron (target ``sign(C) w0``) if it is used or free."""
    if prob.affine:
        return [(np.array([0, 1]), np.array([prob.t[0], 1.0]), 0.0), (np.array([0]), np.array([1.0]), 0.0)]
    if prob.w0 == 0.0 or c_value != 0.0:
        return [(np.array([0]), np.array([1.0]), float(np.sign(c_value)) * prob.w0)]
    return []


def _nearest_knot(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    j = np.clip(np.searchsorted(t, p), 1, t.size - 1)
    return np.where(np.abs(p - t[j - 1]) <= np.abs(t[j] - p), t[j - 1], t[j])


#: dual regularisation of the Newton system (scaled units): keeps dual values that the active set leaves
#: undetermined (a degenerate vertex) where they are; it multiplies the primal residual, zero at the solution
_REG = 1e-12


def _newton_fail(reason: str) -> None:
    _newton.reason = reason


def _newton(prob: _Problem, atoms: dict, v: float, c: float, nu: np.ndarray, max_steps: int = 40):
    r"""Solve the optimality conditions of the minimiser with the LP's kinks as the active set.

    Unknowns: the coefficients ``z_k`` of the active atoms, the positions ``p_k`` of the atoms strictly
    inside an interval (``l2`` only: elsewhere the weight is linear there and the LP's position is
    exact), the affine/constant coefficients and the dual ``nu``.  Equations (a square system):
    ``sum_k z_k T phi(p_k) + affine = T b`` (primal), ``nu . T phi(p_k) = sign(z_k) s W(p_k)`` (the dual
    constraint is tight at every atom), ``nu . d(T phi)/dp = sign(z_k) s W'(p_k)`` (tangency at a movable
    atom: the per-interval dual constraint of chapter 3 touches ``W`` there), and ``nu`` meets the
    affine columns' dual constraints with equality.  Newton's method (sparse LU) from the LP point; an
    atom that reaches the end of its interval is pinned there and Newton restarts.  Returns
    ``(atoms, v, c, nu)`` or ``None`` (singular system, a coefficient changing sign)."""
    from scipy.sparse.linalg import spsolve

    n, t = prob.n, prob.t
    sb = float(np.abs(prob.Tb).max()) or 1.0
    rhs = prob.Tb / sb
    fl, P, Z = [], [], []
    for f, (p, z) in atoms.items():
        keep = z != 0
        fl += [f] * int(keep.sum())
        P.append(p[keep]), Z.append(z[keep] / sb)
    if not fl:
        return _newton_fail('no atoms')
    fams = np.array(fl)
    p, z = np.concatenate(P), np.concatenate(Z)
    sig = np.sign(z)
    scale = np.where(fams == "P", 2.0, 1.0)
    knot = _nearest_knot(t, p)
    at_knot = np.abs(p - knot) <= _COL_SEP * (1.0 + np.abs(p))
    p = np.where(at_knot, knot, p)
    fixed = at_knot | (np.abs(p) >= prob.far) | (prob.penalty != "l2")
    fvals = np.array([v, c]) / sb if prob.affine else np.array([c / sb])
    nu = np.asarray(nu, float).copy()
    for _restart in range(12):
        # pinned atoms may coincide with another atom of their family (one column: add them) or sit
        # where their family vanishes on the data (R at t_n, L at t_1: drop them)
        key = np.stack([np.unique(fams, return_inverse=True)[1].ravel(), np.where(fixed, p, np.nan)], 1)
        dead = ((fams == "R") & (p >= t[-1])) | ((fams == "L") & (p <= t[0]))
        if dead.any() or np.unique(key[fixed], axis=0).shape[0] < fixed.sum():
            keep = ~dead
            fams, p, z, fixed = fams[keep], p[keep], z[keep], fixed[keep]
            ident = np.unique(fams, return_inverse=True)[1].ravel()
            k2 = np.where(fixed, p, np.arange(p.size) + 0.5 + np.max(np.abs(p)) * 4 + 1.0)
            uk, inv = np.unique(np.stack([ident, k2], 1), axis=0, return_inverse=True)
            inv = inv.ravel()
            first = np.zeros(len(uk), dtype=np.int64)
            first[inv[::-1]] = np.arange(inv.size)[::-1]
            z = np.bincount(inv, weights=z, minlength=len(uk))
            fams, p, fixed = fams[first], p[first], fixed[first]
            nz = z != 0
            fams, p, z, fixed = fams[nz], p[nz], z[nz], fixed[nz]
            if p.size == 0:
                return _newton_fail("no atoms")
        sig = np.sign(z)
        scale = np.where(fams == "P", 2.0, 1.0)
        mov = np.flatnonzero(~fixed)
        k_in = np.searchsorted(t, p[mov], side="right")  # 0: left of t_1, n: right of t_n
        lo = np.where(k_in == 0, -prob.far, t[np.clip(k_in - 1, 0, n - 1)])
        hi = np.where(k_in == n, prob.far, t[np.clip(k_in, 0, n - 1)])
        free = _free_columns(prob, float(fvals[-1]))
        F = len(free)
        fv = fvals[:F].copy()
        m, q = p.size, mov.size
        N = m + q + F + n
        iz, ip, iF, inu = 0, m, m + q, m + q + F
        x = np.concatenate([z, p[mov], fv, nu])
        restart = converged = False
        stall, last = 0, np.inf
        for _step in range(max_steps):
            z_, pm, fv_, nu_ = x[iz:ip], x[ip:iF], x[iF:inu], x[inu:]
            pp = p.copy()
            pp[mov] = pm
            nu_ext = np.append(nu_, 0.0)
            rows, cols, vals = [], [], []
            E1, E2, E3, E4 = -rhs.copy(), np.zeros(m), np.zeros(q), np.zeros(F)
            W, W1, W2 = _weight_derivatives(pp, prob.penalty)
            pos_in_mov = np.full(m, -1)
            pos_in_mov[mov] = np.arange(q)
            for f in np.unique(fams):
                idx = np.flatnonzero(fams == f)
                R_, V_ = prob.images(str(f), pp[idx])
                ok_ = R_ < n
                ci = np.broadcast_to(idx[:, None], R_.shape)
                np.add.at(E1, R_[ok_], (V_ * z_[idx, None])[ok_])
                E2[idx] = (V_ * nu_ext[R_]).sum(1) - sig[idx] * scale[idx] * W[idx]
                rows.append(R_[ok_]), cols.append(iz + ci[ok_]), vals.append(V_[ok_])  # dE1/dz
                rows.append(n + ci[ok_]), cols.append(inu + R_[ok_]), vals.append(V_[ok_])  # dE2/dnu
                km = idx[pos_in_mov[idx] >= 0]
                if km.size:
                    kp = pos_in_mov[km]
                    Rs, Vs = prob.slopes(str(f), pp[km])
                    oks = Rs < n
                    g1 = (Vs * nu_ext[Rs]).sum(1)
                    d2 = g1 - sig[km] * scale[km] * W1[km]
                    E3[kp] = d2
                    cp = np.broadcast_to(kp[:, None], Rs.shape)
                    rows.append(Rs[oks]), cols.append(ip + cp[oks]), vals.append((Vs * z_[km, None])[oks])  # dE1/dp
                    rows.append(n + km), cols.append(ip + kp), vals.append(d2)  # dE2/dp
                    rows.append(n + m + cp[oks]), cols.append(inu + Rs[oks]), vals.append(Vs[oks])  # dE3/dnu
                    rows.append(n + m + kp), cols.append(ip + kp), vals.append(-sig[km] * scale[km] * W2[km])  # dE3/dp
            for i, (rr, vv, tg) in enumerate(free):
                E1[rr] += vv * fv_[i]
                E4[i] = float(vv @ nu_[rr]) - tg
                rows.append(rr), cols.append(np.full(rr.size, iF + i)), vals.append(vv)
                rows.append(np.full(rr.size, n + m + q + i)), cols.append(inu + rr), vals.append(vv)
            E = np.concatenate([E1, E2, E3, E4])
            # dual regularisation: where the active set leaves a dual value undetermined (a degenerate
            # vertex), the step keeps it instead of making the system singular; at E = 0 it vanishes
            rows.append(np.arange(n)), cols.append(inu + np.arange(n)), vals.append(np.full(n, -_REG))
            J = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a singular system is reported as NaNs or raises
                    dx = spsolve(J, -E)
            except RuntimeError:
                return _newton_fail('the Newton system is singular')
            if not np.all(np.isfinite(dx)):
                return _newton_fail('the Newton system is singular')
            # damped step: coefficients keep their signs, movable atoms stay inside their intervals.  A
            # step blocked at once changes the active set (as in an active-set method): an atom pushed
            # against an end of its interval is pinned there, a coefficient pushed through zero is
            # dropped, and Newton restarts; a residual that stops decreasing means the LP's active set
            # cannot be completed this way (column generation goes on instead)
            nE = float(np.abs(E).max())
            stall = stall + 1 if nE > 0.5 * last else 0
            last = nE
            if stall >= 2 and nE <= 1e-12:  # at the rounding floor of the scaled system: done
                converged = True
                break
            if stall >= 4:
                return _newton_fail("Newton's method stalls: the LP's active set is not the minimiser's")
            dz, dp = dx[iz:ip], dx[ip:iF]
            with np.errstate(divide="ignore", invalid="ignore"):
                a_hi = np.where(dp > 0, (hi - pm) / dp, np.inf)
                a_lo = np.where(dp < 0, (lo - pm) / dp, np.inf)
                a_z = np.where(sig * (z_ + dz) <= 0, -z_ / dz, np.inf)
            a_pos = np.minimum(a_hi, a_lo)
            ap, az = float(a_pos.min(initial=np.inf)), float(a_z.min(initial=np.inf))
            alpha = min(1.0, 0.9 * ap, 0.9 * az)
            if alpha < 1e-2:
                p[mov] = pm
                z, nu = z_.copy(), nu_.copy()
                fvals = np.concatenate([fv_, fvals[F:]]) if F else fvals
                if ap <= az:
                    k = np.flatnonzero(a_pos < 1.0)
                    p[mov[k]] = np.where(dp[k] > 0, hi[k], lo[k])
                    fixed[mov[k]] = True
                else:
                    keep = a_z >= 1.0
                    fams, p, z, fixed = fams[keep], p[keep], z[keep], fixed[keep]
                    if p.size == 0:
                        return _newton_fail("no atoms")
                restart = True
                break
            x = x + alpha * dx
            if alpha == 1.0 and np.max(np.abs(dx)) <= 1e-13 * (1.0 + np.max(np.abs(x))):
                converged = True
                break
        if restart:
            continue
        if not converged:
            return _newton_fail("Newton's method did not converge")
        z_, pm, fv_, nu_ = x[iz:ip], x[ip:iF], x[iF:inu], x[inu:]
        pp = p.copy()
        pp[mov] = pm
        out = {}
        for f in np.unique(fams):
            idx = np.flatnonzero(fams == f)
            o = np.argsort(pp[idx], kind="stable")
            out[str(f)] = (pp[idx][o], z_[idx][o] * sb)
        if prob.affine:
            return out, float(fv_[0] * sb), float(fv_[1] * sb), nu_
        return out, 0.0, float(fv_[0] * sb) if F else 0.0, nu_
    return _newton_fail('too many active-set changes')


def _refine(prob: _Problem, atoms: dict, v: float, c: float, rounds: int = 2) -> tuple[dict, float, float]:
    """Iterative refinement of the coefficients with the kink positions fixed: the residual
    ``f(t_i) - b_i`` is removed by a dense least-squares correction in the original coordinates on the
    active columns (HiGHS meets the equality constraints only to its feasibility tolerance, relative to
    the largest ``|T b|``, which ``T^-1`` amplifies).  Kept only where it lowers the residual without
    changing a coefficient's sign; skipped above ``4e6`` matrix entries."""
    t, b = prob.t, prob.b
    atoms = {f: (p[z != 0], z[z != 0]) for f, (p, z) in atoms.items()}
    fams = [f for f in atoms if len(atoms[f][0])]
    K = sum(len(atoms[f][0]) for f in fams)
    if K == 0 or prob.n * (K + 2) > 4e6:
        return atoms, v, c
    cols = []
    for f in fams:
        p = atoms[f][0]
        cols.append(np.maximum(t[:, None] - p, 0.0) if f == "R" else np.maximum(p - t[:, None], 0.0) if f == "L"
                    else t[:, None] - p)
    free = [t, np.ones_like(t)] if prob.affine else ([np.ones_like(t)] if (prob.w0 == 0.0 or c != 0.0) else [])
    A = np.hstack(cols + [q[:, None] for q in free])
    x = np.concatenate([atoms[f][1] for f in fams] + [[v, c] if prob.affine else ([c] if free else [])])
    res0 = np.abs(A @ x - b).max()
    for _ in range(rounds):
        x2 = x + np.linalg.lstsq(A, b - A @ x, rcond=None)[0]
        res = np.abs(A @ x2 - b).max()
        if np.any(np.sign(x2[:K]) != np.sign(x[:K])) or not res < res0:
            break
        x, res0 = x2, res
    off, out = 0, {}
    for f in fams:
        k = len(atoms[f][0])
        out[f] = (atoms[f][0], x[off:off + k])
        off += k
    for f, a_ in atoms.items():
        out.setdefault(f, a_)
    if prob.affine:
        return out, float(x[K]), float(x[K + 1])
    return out, 0.0, float(x[K]) if free else c


def _certify(prob: _Problem, atoms: dict, v: float, c: float, nu: np.ndarray) -> dict:
    """Cost of the function given by ``atoms`` (and ``v, c``), and the certified bound of the dual ``nu``."""
    nu = prob.project(nu)
    rho, where = prob.check(nu)
    bound = float(nu @ prob.Tb) / max(rho, 1.0)
    cost = sum(float(np.sum(np.abs(z) * prob.scale(f) * weight(p, prob.penalty))) for f, (p, z) in atoms.items())
    cost += 0.0 if prob.affine else prob.w0 * abs(c)
    return {"atoms": atoms, "v": v, "c": c, "nu": nu, "rho": rho, "where": where, "bound": bound, "cost": cost}


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
    gap_tol: float = 1e-9,
    polish: bool = True,
    on_fail: str = "warn",
) -> Solution:
    r"""Minimal-norm interpolant: minimise ``sum_k |s_k| W(p_k)`` (plus the constant's cost without the
    affine term) subject to ``f(x_i) = y_i`` and ``f`` affine on each region with the given end values.

    Column generation on the banded LP of the module docstring: each round costs one sparse LP with
    ``n`` rows and ``O(n + n_grid)`` columns of at most four nonzeros, plus an ``O(n)`` closed-form dual
    check that adds the most violated kink position of each violated interval.  Once the LP is within
    ``1e-6`` of its bound, the LP's kinks (merged to one per interval and sign) are the active set of
    Newton's method on the optimality conditions (:func:`_newton`: tight and *tangent* per-interval dual
    constraints), which gives the kink positions to rounding; its dual is certified by the same
    closed-form check.  Stops when ``cost - lower <= gap_tol * cost`` (``lower`` the best certified bound
    ``nu . T b / max(rho, 1)`` so far), when no violated position is new (the LP tolerances are reached)
    or after ``max_iter`` rounds.

    Args:
        x, y: 1-D point constraints (any order, distinct ``x``); may be ``None`` when regions are given.
        regions: ``(l, r, y_l, y_r)`` tuples: ``f`` equals the line through ``(l, y_l), (r, y_r)`` on ``[l, r]``.
        penalty: ``"l2"`` (bias in the Euclidean penalty), ``"l1"`` (``|w| + |b|``) or ``"free"``.
        affine: ``True``: a free skip term ``v x + c``; ``False``: none (both unit orientations and a
            constant neuron in the dictionary).
        n_grid: points of the uniform starting grid on the hull (also kept for :func:`value_range`).
        far: largest ``|p|`` allowed (default ``1e4 * max(1, max |x|)``; only used without the affine term).
        max_iter: column-generation rounds (>= 1).
        gap_tol: target for the certified relative gap ``(cost - lower) / cost`` (``1e-14`` times the
            first round's value is added as a floor, for optima at rounding level).
        polish: merge the same-sign atoms of each interval into one kink (exact for the constraints, never
            raises the cost), run Newton's method on the kink positions and re-solve once on the merged
            kinks; ``False`` returns the last column-generation LP's atoms as they are.
        on_fail: ``"warn"`` (:class:`NotConvergedWarning`) or ``"raise"`` (:class:`NotConvergedError`)
            when ``gap_tol`` is not met; the message names the gap reached and the setting to change.

    Returns:
        :class:`Solution` with ``cost``, certified ``lower`` bound, ``gap`` and ``info["converged"]``.

    References: ``boursier2023penalising`` (the costs, one kink per interval), ``savarese2019infinite``,
    ``park2023minimum`` (known regions).
    """
    _check_penalty(penalty)
    if on_fail not in ("warn", "raise"):
        raise ValueError(f"invalid on_fail={on_fail!r}: allowed values are 'warn', 'raise'")
    if max_iter < 1:
        raise ValueError(f"invalid max_iter={max_iter!r}: must be >= 1")
    if not (gap_tol > 0):
        raise ValueError(f"invalid gap_tol={gap_tol!r}: must be > 0")
    t, b, regs = _constraints(x, y, regions)
    extent = float(np.abs(t).max())
    far = float(far if far is not None else 1e4 * max(1.0, extent))
    if not affine and not far > extent:
        raise ValueError(f"invalid far={far!r}: must exceed the largest |constraint point| ({extent:g})")
    prob = _Problem(t, b, regs, penalty, affine, far)
    dic = _dictionary(prob, _base_dictionary(t, penalty, affine, regs, n_grid, far))
    best = {"bound": -np.inf, "nu": None, "rho": np.inf}
    final, reason, it, floor, sol = None, f"max_iter={max_iter} rounds used", 0, 0.0, None

    def done(cost):
        return cost - best["bound"] <= gap_tol * abs(cost) + floor

    def keep_bound(cert):
        if np.isfinite(cert["bound"]) and cert["bound"] > best["bound"]:
            best.update(bound=cert["bound"], nu=cert["nu"], rho=cert["rho"])

    newton_tries, newton_note = 0, "not tried (penalty without curvature, or the LP never came within 1e-6)"
    for it in range(1, max_iter + 1):
        sol = prob.lp(dic)
        if sol is None:
            raise ValueError("the constraints are infeasible (inconsistent regions or points?)")
        # every round's rescaled dual is feasible on the continuum: keep the best bound (the duals of
        # successive rounds can jump between vertices, so the last one need not be the best)
        cert = _certify(prob, {f: (dic[f], sol["z"].get(f, np.zeros(len(dic[f])))) for f in dic},
                        sol["v"], sol["c"], sol["nu"])
        keep_bound(cert)
        if it == 1:
            floor = 1e-14 * abs(sol["value"])
        near = sol["value"] - best["bound"] <= 1e-6 * abs(sol["value"]) + floor
        if polish and penalty == "l2" and (near or it == max_iter) and newton_tries < 3:
            newton_tries += 1
            _newton.reason = "converged, but not certified to gap_tol"
            nt = _newton(prob, _merge_atoms(prob, dic, sol["z"]), sol["v"], sol["c"], sol["nu"])
            newton_note = _newton.reason
            if nt is not None:
                pc = _certify(prob, *nt)
                keep_bound(pc)
                if done(pc["cost"]):
                    final = pc
                    break
        if done(sol["value"]):
            reason = "the merged kinks lost accuracy"
            break
        if it == max_iter:
            break
        grown, new = {}, 0
        for f, P in dic.items():
            ratio, pos = cert["where"].get(f, (np.zeros(0), np.zeros(0)))
            cand = pos[ratio > 1.0 + 1e-12]
            grown[f] = _add_columns(P, cand[prob.allowed(f, cand)])
            new += grown[f].size - P.size
        if new == 0:  # every violation within rounding of a column already present: the LP tolerances
            reason = "every violated position is already a column (the LP tolerances are reached)"
            break
        dic = grown
    if best["nu"] is None:
        raise RuntimeError("solve: the LP returned no finite dual multipliers")
    lp_value = sol["value"]
    dictionary = _add_columns(np.zeros(0), np.concatenate([dic[f] for f in dic]))

    # -- post-processing: one kink per interval, one re-solve (no LP per kink) -------------------------
    atoms, v, c = {f: (dic[f], sol["z"].get(f, np.zeros(len(dic[f])))) for f in dic}, sol["v"], sol["c"]
    if final is not None:
        atoms, v, c = final["atoms"], final["v"], final["c"]
    elif polish:
        merged = _merge_atoms(prob, dic, sol["z"])
        mdic = {f: merged[f][0] for f in merged}
        cur = prob.lp(mdic)
        if cur is not None and cur["value"] <= lp_value * (1 + 1e-9) + floor:
            atoms, v, c = {f: (mdic[f], cur["z"].get(f, np.zeros(len(mdic[f])))) for f in mdic}, cur["v"], cur["c"]
            if not affine:
                # a right- and a left-facing atom of one interval with the same sign are one kink split
                # between the two facings: offer their common weighted position to both families and keep
                # the re-solve if it stays certified to gap_tol (it changes the affine part, so not exact)
                cdic = _dictionary(prob, _common_positions(prob, atoms))
                alt = prob.lp(cdic)
                if alt is not None and done(alt["value"]):
                    atoms, v, c = {f: (cdic[f], alt["z"].get(f, np.zeros(len(cdic[f])))) for f in cdic}, alt["v"], alt["c"]
    if polish:
        atoms = _merge_runs(prob, atoms)
    if final is None:
        atoms, v, c = _refine(prob, atoms, v, c)
    p, r, l = _assemble(atoms)
    f = Solution(p=p, r=r, l=l, v=v, c=c, cost=0.0, lower=best["bound"], penalty=penalty, affine=affine, t=t, b=b,
                 regions=regs, dictionary=dictionary, lp_value=lp_value,
                 dual=prob.dual_on_points(best["nu"]) / max(best["rho"], 1.0), iterations=it, residual=0.0, far=far)
    f.cost = float(np.sum((np.abs(f.r) + np.abs(f.l)) * weight(p, penalty))
                   + (0.0 if affine else constant_weight(penalty) * abs(f.c)))
    f.residual = float(np.max(np.abs(f(t) - b)))
    rel = f.gap / abs(f.cost) if f.cost != 0 else (0.0 if f.gap <= floor else np.inf)
    converged = bool(done(f.cost))
    f.info = {"rho": float(best["rho"]), "dictionary_size": int(sum(len(q) for q in dic.values())),
              "converged": converged, "rel_gap": float(rel), "gap_tol": float(gap_tol), "newton": final is not None,
              "newton_note": "" if final is not None else newton_note,
              "lp_seconds": float(getattr(prob, "lp_seconds", 0.0)), "lps": int(getattr(prob, "lps", 0))}
    if not converged:
        msg = (f"minnorm1d.solve: certified relative gap {rel:.3g} > gap_tol={gap_tol:g} after {it} "
               f"column-generation rounds ({reason}); raise max_iter or gap_tol")
        if on_fail == "raise":
            raise NotConvergedError(msg)
        warnings.warn(msg, NotConvergedWarning, stacklevel=2)
    return f


def _common_positions(prob: _Problem, atoms: dict) -> np.ndarray:
    """One position per group of the merge rule (:func:`_run_groups`), applied to the atoms of all
    families together: the jump-weighted mean of the group's positions (cancelling pairs inside regions
    keep their own)."""
    ps, zs = [], []
    for f, (p, z) in atoms.items():
        if f == "P":
            continue
        ps.append(p), zs.append(z)
    pair = atoms.get("P", (np.zeros(0), None))[0]
    if not ps:
        return pair
    p, z = np.concatenate(ps), np.concatenate(zs)
    keep = z != 0
    p, z = p[keep], z[keep]
    if p.size == 0:
        return pair
    o = np.argsort(p, kind="stable")
    p, z = p[o], z[o]
    gid = _run_groups(prob, p, z)
    w = np.abs(z)
    pm = np.bincount(gid, weights=w * p) / np.bincount(gid, weights=w)
    return np.union1d(pm, pair)


def _assemble(atoms: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, r, l)`` of the function from the family atoms (a pair ``q`` at ``p`` is ``r = q, l = -q``)."""
    ps, rs, ls = [], [], []
    for f, (p, z) in atoms.items():
        ps.append(p)
        rs.append(z if f in ("R", "P") else np.zeros_like(z))
        ls.append(z if f == "L" else -z if f == "P" else np.zeros_like(z))
    p, r, l = (np.concatenate(a) if a else np.zeros(0) for a in (ps, rs, ls))
    keep = (r != 0) | (l != 0)
    p, r, l = p[keep], r[keep], l[keep]
    # units of two families at the same position are one kink (Newton may leave a right- and a
    # left-facing unit of one kink a few ulps apart: snap within 1e-12 (1 + |p|), which moves f by at
    # most |z| 1e-12 (1 + |p|))
    o = np.argsort(p, kind="stable")
    p, r, l = p[o], r[o], l[o]
    if p.size > 1:
        close = np.diff(p) <= 1e-12 * (1.0 + np.abs(p[1:]))
        start = np.concatenate([[True], ~close])
        p = p[start][np.cumsum(start) - 1]
    up, inv = np.unique(p, return_inverse=True)
    return up, np.bincount(inv, weights=r, minlength=up.size), np.bincount(inv, weights=l, minlength=up.size)


_NEAR_STEPS = np.geomspace(1e-6, 0.5, 14)


def _near_kinks(sol: Solution, steps: np.ndarray = _NEAR_STEPS) -> np.ndarray:
    """Positions at relative distances ``steps`` from each kink towards both ends of its interval between
    constraint points (both intervals for a kink on a constraint point): the moves of a kink whose cost
    is second order, which the probe must be able to see."""
    t, p = sol.t, sol.kinks[0]
    p = p[(p > t[0]) & (p < t[-1])]
    if p.size == 0:
        return np.zeros(0)
    j = np.clip(np.searchsorted(t, p, side="right") - 1, 0, t.size - 2)
    lo = np.where(p == t[j], t[np.maximum(j - 1, 0)], t[j])
    hi = t[j + 1]
    return np.concatenate([(p + np.outer(hi - p, steps).T).ravel(), (p - np.outer(p - lo, steps).T).ravel()])


def value_range(sol: Solution, t0: float, rel: float = 1e-7) -> tuple[float, float]:
    """Min and max of ``f(t0)`` over dictionary interpolants with cost <= ``sol.cost + rel (1 + cost)``
    (dictionary: the last column-generation dictionary, the solution's kinks and, around each kink, positions
    at relative distances ``1e-6 .. 0.5`` towards the ends of its interval; two sparse LPs).

    For a unique minimiser with a strictly convex weight the width shrinks like ``sqrt(rel)`` (a kink
    moved by ``d`` costs ``O(d^2)``); for a non-unique one it stays of order one as ``rel -> 0``.  Probe
    with several ``rel`` (>= 1e-8: tighter caps meet HiGHS tolerances) to tell the two apart."""
    prob = _Problem(sol.t, sol.b, sol.regions, sol.penalty, sol.affine, sol.far)
    dic = _dictionary(prob, _add_columns(_add_columns(np.unique(sol.p), sol.dictionary), _near_kinks(sol)))
    base = prob.lp(dic)
    cap = max(sol.cost, base["value"] if base else sol.cost) + rel * (1.0 + sol.cost)
    t0 = float(t0)

    def objective(sign):
        def make(dic_, fams, sizes):
            parts = []
            for f in fams:
                q = dic_[f]
                parts.append(np.maximum(t0 - q, 0.0) if f == "R" else np.maximum(q - t0, 0.0) if f == "L"
                             else t0 - q)
            row = np.concatenate(parts) if parts else np.zeros(0)
            extra = [t0, 1.0] if sol.affine else [1.0, -1.0]
            return sign * np.concatenate([row, -row, extra])
        return make

    vals = []
    for sign in (1.0, -1.0):
        out = prob.lp(dic, objective=objective(sign), cap=cap)
        if out is None:
            raise RuntimeError("value_range: the capped LP failed; increase rel")
        fams = [f for f in prob.families() if len(dic.get(f, ()))]
        vals.append(float(out["x"] @ objective(1.0)(dic, fams, [len(dic[f]) for f in fams])))
    return min(vals), max(vals)



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
