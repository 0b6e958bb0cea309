"""Minimum norm interpolation between known regions by shallow ReLU networks (1-D).

A target is *known on regions*: on each interval ``[l_k, r_k]`` it is affine, ``g(x) = s_k x + t_k``;
between the regions (the *gaps*) nothing is prescribed. A minimum norm interpolant is a function of
least representation cost agreeing with ``g`` on every region. The cost of a network
``f(x) = sum_j a_j relu(w_j x + b_j) [+ v x + c]`` depends on a *convention*:

========  ===========================================  ======================================
name      cost of one neuron                           origin
========  ===========================================  ======================================
``l2``    ``|a| sqrt(w^2 + b^2)``                      weight decay with the biases (primary)
``l1``    ``|a| (|w| + |b|)``                          an l1 penalty on the inner weights
``free``  ``|a| |w|``                                  weight decay with unpenalised biases
========  ===========================================  ======================================

with or without a free (unpenalised) affine term ``v x + c``. A neuron with a kink at ``t`` and unit
slope jump costs ``rho(t)`` = ``sqrt(1 + t^2)``, ``1 + |t|`` or ``1``; a constant neuron (``w = 0``)
costs ``1``, ``1`` or ``0`` per unit value.

This module holds the targets, data sampled from the regions, the book's fixed-grid minimum norm
interpolant (a linear program over a dictionary of left- and right-facing ReLUs with kinks on a grid
reaching ``|t| ~ 1e4``, bounded below by its dual), the infinite-width regularised problem (a lasso over
the same dictionary, for any ``lambda``), distances in the gaps, and a batched trainer (GD, SGD, heavy
ball, Adam, with weight decay) built on :mod:`lib.shallow` and :class:`lib.optim.BatchedOptimizer`.

The fixed-grid LP is chapter 5's *independent cross-check* of :func:`lib.minnorm1d.solve` (the exact,
column-generation solver, which has no grid).  Its limits, checked rather than left to the allocator:

* the grid step is relative to the data: ``max(0.01, hull / 300)`` in the gaps unless given, and at most
  ``gap / 50`` in every gap, so the primal overestimates the optimum by ``O((h / gap)^2)`` whatever the
  scale (``h^2 / 8`` per unit slope jump for a ramp);
* a grid of more than ``max_knots`` knots, or an LP of more than ``max_entries`` dense matrix entries,
  raises :class:`lib.checks.ParameterError` naming the setting, instead of allocating gigabytes;
* the lower bound is certified: the dual constraint is checked on the continuum of kink positions in
  closed form (the dual function is linear between constraint points), so ``norm - lower_bound`` bounds
  the primal's discretisation error.

References: Park, Pelakh & Wojtowytsch (``park2023minimum``); Savarese et al.
(``savarese2019infinite``); Boursier & Flammarion (``boursier2023penalising``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import optim, shallow
from .checks import ParameterError

CONVENTIONS = ("l2", "l1", "free")
METHODS = ("gd", "sgd", "momentum", "adam")


# -- targets on regions ------------------------------------------------------------------------
@dataclass(frozen=True)
class Regions:
    """An affine target ``slopes[k] * x + offsets[k]`` on each interval ``intervals[k]`` (sorted,
    disjoint, closed)."""

    name: str
    intervals: tuple[tuple[float, float], ...]
    slopes: tuple[float, ...]
    offsets: tuple[float, ...]

    def __post_init__(self) -> None:
        iv = np.asarray(self.intervals, dtype=float)
        if iv.ndim != 2 or iv.shape[1] != 2 or len(iv) == 0:
            raise ValueError("intervals must be a non-empty sequence of (left, right) pairs")
        if not (iv[:, 0] < iv[:, 1]).all() or not (iv[1:, 0] > iv[:-1, 1]).all():
            raise ValueError(f"intervals {self.intervals} must be non-degenerate, sorted and disjoint")
        if not (len(self.slopes) == len(self.offsets) == len(iv)):
            raise ValueError("one slope and one offset per interval")

    @property
    def gaps(self) -> list[tuple[float, float]]:
        return [(self.intervals[k][1], self.intervals[k + 1][0]) for k in range(len(self.intervals) - 1)]

    @property
    def hull(self) -> tuple[float, float]:
        return self.intervals[0][0], self.intervals[-1][1]

    @property
    def measure(self) -> float:
        return float(sum(r - l for l, r in self.intervals))

    def target(self, x: np.ndarray) -> np.ndarray:
        """``g(x)`` on the regions, NaN in the gaps and outside."""
        x = np.asarray(x, dtype=float)
        out = np.full(x.shape, np.nan)
        for (l, r), s, t in zip(self.intervals, self.slopes, self.offsets):
            inside = (x >= l) & (x <= r)
            out[inside] = s * x[inside] + t
        return out

    def in_gaps(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.any([(x > l) & (x < r) for l, r in self.gaps], axis=0)

    def gap_points(self, per_gap: int = 201) -> np.ndarray:
        """Evenly spaced points of the open gaps (where distances between interpolants are measured)."""
        pts = [np.linspace(l, r, per_gap + 2)[1:-1] for l, r in self.gaps]
        return np.concatenate(pts)


def step(gap: tuple[float, float] = (-0.25, 0.25), hull: tuple[float, float] = (-1.0, 1.0)) -> Regions:
    """``0`` on ``[hull_0, gap_0]``, ``1`` on ``[gap_1, hull_1]``."""
    return Regions("step", ((hull[0], gap[0]), (gap[1], hull[1])), (0.0, 0.0), (0.0, 1.0))


def plateau(inner: tuple[float, float] = (-0.25, 0.25), gap: float = 0.5, outer: float = 1.5) -> Regions:
    """A bump: ``0`` on the outer intervals, ``1`` on ``inner``, gaps of width ``gap`` between."""
    l, r = inner
    return Regions(
        "plateau",
        ((-outer, l - gap), (l, r), (r + gap, outer)),
        (0.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
    )


def tent(height: float = 1.5, gap: float = 0.5, half: float = 1.0) -> Regions:
    """``height - |x|`` on ``[-half, -gap]`` and ``[gap, half]`` (a concave, sloped example)."""
    return Regions("tent", ((-half, -gap), (gap, half)), (1.0, -1.0), (height, height))


def shelf(height: float = 1.0, left: tuple[float, float] = (0.5, 1.0), p: float = 2.0, right: float = 3.0) -> Regions:
    """``height`` on ``left`` and ``height + (x - p)`` on ``[p, right]``: the two pieces meet exactly at
    the region edge ``p`` (a sloped example whose classical interpolant has one kink at ``p``)."""
    return Regions("shelf", (left, (p, right)), (0.0, 1.0), (height, height - p))


def hinge(level: float = 1.0, slope: float = 2.0, gap: float = 0.25, half: float = 1.0) -> Regions:
    """``level`` on ``[-half, -gap]`` and ``level + slope x`` on ``[gap, half]`` (convex, sloped; the
    pieces meet at the origin)."""
    return Regions("hinge", ((-half, -gap), (gap, half)), (0.0, slope), (level, level))


EXAMPLES = {"step": step, "plateau": plateau, "tent": tent, "hinge": hinge, "shelf": shelf}


def example(name: str) -> Regions:
    """The chapter's named examples with their default parameters."""
    if name not in EXAMPLES:
        raise ValueError(f"invalid example={name!r}: allowed values are {tuple(EXAMPLES)}")
    return EXAMPLES[name]()


def as_minnorm_regions(regions: Regions) -> list[tuple[float, float, float, float]]:
    """``(l, r, g(l), g(r))`` tuples, the region format of :func:`lib.minnorm1d.solve`."""
    return [(l, r, s * l + t, s * r + t) for (l, r), s, t in zip(regions.intervals, regions.slopes, regions.offsets)]


# -- conventions -------------------------------------------------------------------------------
def kink_cost(t: np.ndarray, convention: str) -> np.ndarray:
    """Cost ``rho(t)`` of a unit slope jump at ``t``: ``sqrt(1 + t^2)`` (l2), ``1 + |t|`` (l1), ``1`` (free)."""
    t = np.asarray(t, dtype=float)
    if convention == "l2":
        return np.hypot(1.0, t)
    if convention == "l1":
        return 1.0 + np.abs(t)
    if convention == "free":
        return np.ones_like(t)
    raise ValueError(f"invalid convention={convention!r}: allowed values are {CONVENTIONS}")


def constant_cost(convention: str) -> float:
    """Cost of the constant function 1 (a neuron with ``w = 0``)."""
    kink_cost(0.0, convention)
    return 0.0 if convention == "free" else 1.0


def step_norm(x1: float, x2: float, convention: str, height: float = 1.0) -> float:
    """Closed form: the minimum cost of a step of ``height`` across the gap ``(x1, x2)``,
    ``|height| (rho(x1) + rho(x2)) / (x2 - x1)`` (the linear ramp, unique; book's derivation)."""
    return float(abs(height) * (kink_cost(x1, convention) + kink_cost(x2, convention)) / (x2 - x1))


def ramp(x: np.ndarray, x1: float, x2: float, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """The ramp interpolant ``lo`` left of ``x1``, ``hi`` right of ``x2``, linear between."""
    return lo + (hi - lo) * np.clip((np.asarray(x, dtype=float) - x1) / (x2 - x1), 0.0, 1.0)


# -- the kink dictionary -----------------------------------------------------------------------
#: largest kink grid and LP (dense matrix entries) the fixed-grid solver builds
MAX_KNOTS = 50_000
MAX_ENTRIES = 3e7


def default_spacing(regions: Regions) -> float:
    """The gap grid step used when none is given: ``max(0.01, hull / 300)`` (the chapter's ``0.01`` on its
    examples, whose hulls are at most 3 wide; relative to the hull for wider data)."""
    lo, hi = regions.hull
    return max(0.01, (hi - lo) / 300.0)


def kink_grid(
    regions: Regions,
    *,
    spacing: float | None = None,
    region_spacing: float | None = None,
    far: float = 1e4,
    n_far: int = 60,
    extra: tuple[float, ...] = (),
    per_gap: int = 50,
    max_knots: int = MAX_KNOTS,
) -> np.ndarray:
    """Kink positions: a uniform grid of step ``min(spacing, gap / per_gap)`` over each gap (``spacing``
    defaults to :func:`default_spacing`), ``5 * spacing`` over one hull length on each side of the data,
    ``region_spacing`` (default ``10 * spacing``) inside the regions (for interpolation kinks there can
    only cancel; a regularised fit may want them near the region edges), every region endpoint, ``0`` and
    ``extra``, then a geometric grid out to ``|t| = far`` on both sides (optimal kinks may lie far outside
    the data).  Raises :class:`lib.checks.ParameterError` before building more than ``max_knots`` knots."""
    lo, hi = regions.hull
    span = hi - lo
    a, b = lo - span, hi + span
    spacing = default_spacing(regions) if spacing is None else float(spacing)
    if not (np.isfinite(spacing) and spacing > 0):
        raise ParameterError(f"invalid spacing={spacing!r}: must be > 0")
    rs = 10 * spacing if region_spacing is None else float(region_spacing)
    if not (np.isfinite(rs) and rs > 0):
        raise ParameterError(f"invalid region_spacing={region_spacing!r}: must be > 0")
    gap_steps = [min(spacing, (r - l) / per_gap) for l, r in regions.gaps]
    count = 2 * span / (5 * spacing) + sum((r - l) / h for (l, r), h in zip(regions.gaps, gap_steps))
    count += sum((r - l) / rs for l, r in regions.intervals)
    if count > max_knots:
        raise ParameterError(
            f"kink_grid: spacing={spacing:g} (region_spacing={rs:g}) gives ~{count:,.0f} knots on a hull of width "
            f"{span:g}, over max_knots={max_knots:,}; pass a spacing relative to the data (default: "
            f"{default_spacing(regions):g}) or raise max_knots")

    def uniform(l: float, r: float, h: float) -> np.ndarray:
        return np.linspace(l, r, max(2, int(np.ceil((r - l) / h)) + 1))

    parts = [uniform(a, lo, 5 * spacing), uniform(hi, b, 5 * spacing)]
    parts += [uniform(l, r, h) for (l, r), h in zip(regions.gaps, gap_steps)]
    parts += [uniform(l, r, rs) for l, r in regions.intervals]
    left = -np.geomspace(max(abs(a), 1.0) * 1.05, far, n_far)
    right = np.geomspace(max(abs(b), 1.0) * 1.05, far, n_far)
    parts += [left[left < a], right[right > b], np.ravel(regions.intervals), [0.0], np.asarray(extra, float)]
    return np.unique(np.round(np.concatenate(parts), 12))


@dataclass
class Dictionary:
    """Right-facing atoms ``relu(x - t_k)``, left-facing ``relu(t_k - x)``, the constant neuron and
    (optionally) a free affine term; ``cost`` is the weight of each coefficient's absolute value."""

    knots: np.ndarray
    convention: str
    affine: bool

    @property
    def cost(self) -> np.ndarray:
        rho = kink_cost(self.knots, self.convention)
        return np.concatenate([rho, rho, [constant_cost(self.convention)]])

    @property
    def n_atoms(self) -> int:
        return 2 * len(self.knots) + 1

    def features(self, x: np.ndarray) -> np.ndarray:
        """``[len(x), n_atoms (+2)]``: the atoms (and ``x, 1`` for the affine term) at ``x``."""
        x = np.asarray(x, dtype=float)[:, None]
        t = self.knots[None, :]
        cols = [np.maximum(x - t, 0.0), np.maximum(t - x, 0.0), np.ones_like(x)]
        if self.affine:
            cols += [x, np.ones_like(x)]
        return np.concatenate(cols, axis=1)

    def slope_jumps(self, coef: np.ndarray) -> np.ndarray:
        k = len(self.knots)
        return coef[:k] + coef[k : 2 * k]


@dataclass
class Interpolant:
    """The solution of :func:`min_norm_interpolant`."""

    regions: Regions
    convention: str
    affine: bool
    dictionary: Dictionary
    coef: np.ndarray  # atoms, then (v, c) if affine
    norm: float  # primal optimum (an upper bound of the true minimum)
    lower_bound: float  # certified lower bound from the dual
    dual_points: np.ndarray
    dual: np.ndarray
    spread: dict[float, tuple[float, float]] = field(default_factory=dict)  # gap point -> (min, max) of f*

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.dictionary.features(x) @ self.coef

    def kinks(self, threshold: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
        """Kink positions and slope jumps (after merging both facings at the same knot)."""
        jumps = self.dictionary.slope_jumps(self.coef)
        keep = np.abs(jumps) > threshold
        return self.dictionary.knots[keep], jumps[keep]

    @property
    def unique(self) -> bool:
        return max((hi - lo for lo, hi in self.spread.values()), default=0.0) < 1e-4

    @property
    def certified_gap(self) -> float:
        return (self.norm - self.lower_bound) / self.norm


def constraint_points(regions: Regions, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The knots inside each region plus its endpoints: matching ``g`` there forces ``f = g`` on the
    region (``f`` is affine between consecutive knots)."""
    pts = [np.unique(np.concatenate([[l, r], knots[(knots > l) & (knots < r)]])) for l, r in regions.intervals]
    x = np.concatenate(pts)
    return x, regions.target(x)


def _split(A: np.ndarray, cost: np.ndarray, affine: bool) -> tuple[np.ndarray, np.ndarray]:
    """LP form with ``coef = p - q``, ``p, q >= 0`` (free affine columns cost nothing)."""
    c = np.concatenate([cost, np.zeros(2 if affine else 0)])
    return np.concatenate([A, -A], axis=1), np.concatenate([c, c])


def _linprog(c, A_eq, b_eq, A_ub=None, b_ub=None):
    from scipy.optimize import linprog

    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linear program failed: {res.message}")
    return res


def dual_lower_bound(lam: np.ndarray, x: np.ndarray, y: np.ndarray, convention: str, affine: bool, *, t_max: float = 1e6,
                     regions: tuple[tuple[float, float], ...] = ()) -> tuple[float, float]:
    r"""Certified lower bound on the minimum norm from dual weights ``lam`` on the constraint points.

    For every neuron ``phi``, ``|sum_i lam_i phi(x_i)| <= cost(phi)`` makes ``sum_i lam_i y_i`` a lower
    bound (weak duality). The ratio ``kappa = max_phi |sum_i lam_i phi(x_i)| / cost(phi)`` is computed
    exactly over kinks ``t`` in ``[-t_max, t_max]``: both dual functions ``g_R(t) = sum_i lam_i (x_i - t)_+``
    and ``g_L(t) = sum_i lam_i (t - x_i)_+`` are linear between consecutive ``x_i``, so on each such
    interval ``max |alpha + beta t| / rho(t)`` is attained at an end, at ``t = beta / alpha`` (``l2``) or at
    ``0`` (``l1``).  Then ``sum_i lam_i y_i / max(kappa, 1)`` bounds the minimum over *all* kink positions
    (``boursier2023penalising``; the same closed form as :mod:`lib.minnorm1d`).  With a free affine term,
    ``lam`` is first projected to annihilate ``1`` and ``x``.  Inside the ``regions`` (intervals ``(l, r)``
    whose ends are among the ``x``), where the target forbids a net kink, only cancelling pairs
    ``(t - x)_+ - (x - t)_+`` of cost ``2 rho(t)`` are checked (the dual of the problem with the regions
    imposed exactly, whose minimum is the one bounded).  Returns ``(bound, kappa)``.
    """
    lam = np.asarray(lam, float)
    x = np.asarray(x, float)
    if affine:
        lam = lam - _project_affine(lam, x)
    D = float(lam @ np.asarray(y, float))
    o = np.argsort(x, kind="stable")
    xs, ls = x[o], lam[o]
    # g_R and g_L at the knots xs and at -t_max, t_max (exact sums; both are linear in between)
    knots = np.concatenate([[-t_max], xs, [t_max]])
    suffix_l = np.concatenate([np.cumsum(ls[::-1])[::-1], [0.0]])  # sum_{i >= k} lam_i
    suffix_lx = np.concatenate([np.cumsum((ls * xs)[::-1])[::-1], [0.0]])
    prefix_l = np.concatenate([[0.0], np.cumsum(ls)])  # sum_{i < k} lam_i
    prefix_lx = np.concatenate([[0.0], np.cumsum(ls * xs)])
    # at knot t = xs[k] the active sets are {i >= k} (right) and {i < k} (left); terms at i = k vanish
    k = np.concatenate([[0], np.arange(xs.size), [xs.size]])
    gR = suffix_lx[k] - knots * suffix_l[k]
    gL = knots * prefix_l[k] - prefix_lx[k]
    a, b = knots[:-1], knots[1:]
    inside = np.zeros(a.size, bool)
    for lo, hi in regions:
        inside |= (a >= lo) & (b <= hi)
    kappa = 0.0
    for g, scale, sel in ((gR, 1.0, ~inside), (gL, 1.0, ~inside), (gR - gL, 2.0, inside)):
        if not sel.any():
            continue
        ga, gb, a, b = g[:-1][sel], g[1:][sel], knots[:-1][sel], knots[1:][sel]
        cand = [a, b]
        if convention == "l2":
            den = ga * b - gb * a
            with np.errstate(divide="ignore", invalid="ignore"):
                ps = np.where(den != 0, (gb - ga) / den, a)
            cand.append(np.where((ps > a) & (ps < b), ps, a))
        elif convention == "l1":
            cand.append(np.where((a < 0) & (b > 0), 0.0, a))
        P = np.stack(cand, 1)
        L = np.where(b > a, b - a, 1.0)[:, None]
        vals = ga[:, None] + (P - a[:, None]) / L * (gb - ga)[:, None]
        kappa = max(kappa, float(np.max(np.abs(vals) / (scale * kink_cost(P, convention)))))
    c0 = constant_cost(convention)
    total = abs(lam.sum())
    if c0 > 0:
        kappa = max(kappa, total / c0)
    elif total > 1e-9 * np.abs(lam).sum():
        kappa = np.inf
    return D / max(kappa, 1.0), kappa


def _project_affine(lam: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Component of ``lam`` along span{1, x} (removed so that the affine term is annihilated exactly)."""
    B = np.stack([np.ones_like(x), x], axis=1)
    return B @ np.linalg.lstsq(B, lam, rcond=None)[0]


def min_norm_interpolant(
    regions: Regions,
    convention: str = "l2",
    *,
    affine: bool = False,
    knots: np.ndarray | None = None,
    probes: np.ndarray | None = None,
    slack: float = 1e-7,
    max_entries: float = MAX_ENTRIES,
) -> Interpolant:
    """The minimum norm interpolant of ``regions`` under ``convention`` over a fixed kink grid (the
    chapter-5 cross-check of :func:`lib.minnorm1d.solve`; default grid :func:`kink_grid`).

    Solves ``min sum_k cost_k |coef_k|`` subject to ``f(x_i) = g(x_i)`` at :func:`constraint_points`,
    with HiGHS; ``norm`` is an upper bound of the continuum minimum (the grid's discretisation error,
    ``O((h / gap)^2)``, is what ``certified_gap`` measures), ``lower_bound`` a certified lower bound
    (:func:`dual_lower_bound`); an LP larger than ``max_entries`` dense entries raises
    :class:`lib.checks.ParameterError`.  For each gap point in ``probes``
    (default: the gap midpoints and quarter points), computes the range ``[min f(z), max f(z)]`` over
    all interpolants of cost ``<= norm (1 + slack)``: a range of width ~0 means the value at ``z`` is
    unique. References: ``park2023minimum``, ``boursier2023penalising``, ``savarese2019infinite``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"invalid convention={convention!r}: allowed values are {CONVENTIONS}")
    knots = kink_grid(regions) if knots is None else np.asarray(knots, float)
    dic = Dictionary(knots, convention, affine)
    x, y = constraint_points(regions, knots)
    entries = len(x) * 2 * (dic.n_atoms + (2 if affine else 0))
    if entries > max_entries:
        raise ParameterError(
            f"min_norm_interpolant: {len(knots):,} knots and {len(x):,} constraint points give an LP of "
            f"{entries:.3g} dense entries, over max_entries={max_entries:.3g}; use a coarser kink_grid "
            f"(spacing relative to the data: default {default_spacing(regions):g}) or lib.minnorm1d.solve")
    A, c = _split(dic.features(x), dic.cost, affine)
    res = _linprog(c, A, y)
    half = A.shape[1] // 2
    coef = res.x[:half] - res.x[half:]
    norm = float(res.fun)
    lam = np.asarray(res.eqlin.marginals, float)
    if lam @ y < 0:
        lam = -lam
    lb, _ = dual_lower_bound(lam, x, y, convention, affine, regions=regions.intervals)
    out = Interpolant(regions, convention, affine, dic, coef, norm, lb, x, lam)
    if probes is None:
        probes = np.concatenate([[l + q * (r - l) for q in (0.25, 0.5, 0.75)] for l, r in regions.gaps])
    for z in np.atleast_1d(probes):
        fz = np.concatenate([dic.features(np.array([z]))[0]] * 1)
        row = np.concatenate([fz, -fz])
        vals = []
        for sign in (1.0, -1.0):
            r = _linprog(sign * row, A, y, A_ub=c[None, :], b_ub=[norm * (1 + slack)])
            vals.append(sign * r.fun)
        out.spread[float(z)] = (vals[0], vals[1])
    return out


# -- the infinite-width regularised problem ------------------------------------------------------
def lasso(
    x: np.ndarray,
    y: np.ndarray,
    lam: float,
    convention: str = "l2",
    *,
    affine: bool = False,
    knots: np.ndarray,
) -> tuple[np.ndarray, float, float]:
    """The infinite-width limit of ``(1/n) sum_i (f(x_i) - y_i)^2 + lam * weight decay``: a lasso
    over the kink dictionary, ``min_c (1/n) |Phi c - y|^2 + lam sum_k cost_k |c_k|`` (weight decay at
    balance is the variation norm). Solved with CLARABEL (an interior point method) through cvxpy.

    Returns ``(coef, risk, norm)``; evaluate with ``Dictionary(knots, convention, affine).features``.
    """
    import cvxpy as cp

    if lam <= 0:
        raise ValueError(f"invalid lam={lam!r}: must be > 0 (use min_norm_interpolant for lam -> 0)")
    dic = Dictionary(np.asarray(knots, float), convention, affine)
    F = dic.features(np.asarray(x, float))
    n = len(y)
    cost = dic.cost
    coef = cp.Variable(F.shape[1])
    body = coef[: dic.n_atoms]
    obj = cp.sum_squares(F @ coef - y) / n + lam * cp.sum(cp.multiply(cost, cp.abs(body)))
    prob = cp.Problem(cp.Minimize(obj))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL")
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"lasso failed: {prob.status}")
    c = np.asarray(coef.value)
    risk = float(np.mean((F @ c - y) ** 2))
    norm = float(cost @ np.abs(c[: dic.n_atoms]))
    return c, risk, norm


# -- data and distances --------------------------------------------------------------------------
def sample(regions: Regions, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly from the union of the regions (sorted), with their labels."""
    lens = np.array([r - l for l, r in regions.intervals])
    u = rng.uniform(0.0, regions.measure, size=n)
    k = np.searchsorted(np.cumsum(lens), u, side="right").clip(0, len(lens) - 1)
    left = np.array([l for l, _ in regions.intervals])
    x = np.sort(left[k] + u - np.concatenate([[0.0], np.cumsum(lens)[:-1]])[k])
    return x, regions.target(x)


def gap_distance(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Sup-distance over gap points: ``max_z |f(z) - f*(z)|`` along the last axis."""
    return np.max(np.abs(np.asarray(values) - np.asarray(reference)), axis=-1)


# -- batched training ----------------------------------------------------------------------------
@dataclass
class TrainResult:
    net: shallow.ShallowNet
    steps: np.ndarray  # recorded step numbers
    loss: np.ndarray  # [B, records] empirical risk (full data)
    norm: np.ndarray  # [B, records] variation norm (matching the decay convention)
    objective: np.ndarray  # [B, records] risk + wd * penalty
    grad_norm: np.ndarray  # [B] final gradient norm of the objective (full batch)


def _grads(net: shallow.ShallowNet, x: torch.Tensor, y: torch.Tensor, wts: torch.Tensor):
    """Risk ``sum_i wts_i (f(x_i) - y_i)^2`` per run and its gradients, by hand (1-D inputs, ``x: [B, n]``)."""
    pre = x[:, :, None] * net.w[:, None, :, 0] + net.b[:, None, :]
    act = torch.relu(pre)
    f = torch.einsum("bnm,bm->bn", act, net.a)
    if net.v is not None:
        f = f + x * net.v[:, :1] + net.c[:, None]
    r = f - y
    risk = (wts * r * r).sum(1)
    g = 2.0 * wts * r  # d risk / d f
    ga = torch.einsum("bn,bnm->bm", g, act)
    gpre = g[:, :, None] * (pre > 0).to(x.dtype) * net.a[:, None, :]
    gw = torch.einsum("bnm,bn->bm", gpre, x)[..., None]
    gb = gpre.sum(1)
    grads = [ga, gw, gb]
    if net.v is not None:
        grads += [(g * x).sum(1, keepdim=True), g.sum(1)]
    return risk, grads


def train(
    x: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor,
    *,
    width: int,
    methods: list[str],
    lr: torch.Tensor,
    wd: torch.Tensor,
    steps: int,
    init_scale: torch.Tensor,
    widths: torch.Tensor | None = None,
    bias_decay: bool = True,
    affine: bool = False,
    batch_size: int = 8,
    momentum: float = 0.9,
    records: int = 50,
    generator: torch.Generator | None = None,
) -> TrainResult:
    """Train ``B`` one-hidden-layer ReLU networks on 1-D data as one tensor program.

    Run ``b`` minimises ``(1/n_b) sum_i (f(x_bi) - y_bi)^2 + wd_b / 2 * |theta|^2`` (biases in the decay
    unless ``bias_decay=False``; the affine term, if any, is never decayed) with ``methods[b]`` among
    ``gd`` (full batch), ``sgd`` (minibatches of ``batch_size`` drawn with replacement, batched across
    runs), ``momentum`` (heavy ball, full batch) and ``adam`` (full batch); weight decay is coupled (the
    gradient of the penalty is added to the loss gradient, as in ``torch.optim``). Runs are grouped by
    update rule so that each group is one :class:`lib.optim.BatchedOptimizer` acting on views of the
    shared parameter tensors.

    Args:
        x, y, valid: ``[B, n]`` inputs, labels and a 0/1 mask of each run's own data (padding = 0).
        width, widths: the padded width and, optionally, each run's own width (``[B]``).
        lr, wd, init_scale: ``[B]`` tensors. Returns a :class:`TrainResult`.
    """
    B, _n = x.shape
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"invalid method={m!r}: allowed values are {METHODS}")
    if len(methods) != B:
        raise ValueError(f"{len(methods)} methods for {B} runs")
    dt, dev = x.dtype, x.device
    net = shallow.init(B, width, 1, scale=init_scale, skip=affine, widths=widths, generator=generator, dtype=dt, device=dev)
    counts = valid.sum(1, keepdim=True)
    full_w = valid / counts
    sgd = torch.tensor([m == "sgd" for m in methods], device=dev)
    rules = {"gd": "gd", "sgd": "gd", "momentum": "momentum", "adam": "adam"}
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(methods):
        groups.setdefault(rules[m], []).append(i)
    for idx in groups.values():
        if idx != list(range(idx[0], idx[-1] + 1)):
            raise ValueError("runs must be sorted by update rule (gd/sgd, momentum, adam contiguous)")
    mask_list = [True, True, bias_decay] + ([False, False] if affine else [])
    opts = []
    for rule, idx in groups.items():
        s = slice(idx[0], idx[-1] + 1)
        opts.append((s, optim.BatchedOptimizer([p[s] for p in net.tensors], method=rule, lr=lr[s], wd=wd[s], momentum=momentum, decay_mask=mask_list)))
    rec_at = set(np.unique(np.linspace(0, steps, records).round().astype(int)).tolist())
    hist_steps, hist_loss, hist_norm, hist_obj = [], [], [], []
    ar = torch.arange(B, device=dev)[:, None]
    for t in range(steps + 1):
        if t in rec_at:
            risk, _ = _grads(net, x, y, full_w)
            pen = shallow.penalty(net, include_bias=bias_decay)
            hist_steps.append(t)
            hist_loss.append(risk)
            hist_norm.append(shallow.variation_norm(net, include_bias=bias_decay))
            hist_obj.append(risk + wd * pen)
        if t == steps:
            break
        if sgd.any():
            idx = (torch.rand(B, batch_size, generator=generator, device=dev, dtype=dt) * counts).long()
            bw = torch.zeros_like(x).index_put_((ar.expand_as(idx), idx), torch.ones_like(idx, dtype=dt), accumulate=True) / batch_size
            w = torch.where(sgd[:, None], bw, full_w)
        else:
            w = full_w
        _, grads = _grads(net, x, y, w)
        for s, opt in opts:
            opt.step([g[s] for g in grads])
    _, grads = _grads(net, x, y, full_w)
    decay = [1.0, 1.0, 1.0 if bias_decay else 0.0] + ([0.0, 0.0] if affine else [])
    gsq = sum(((g + d * wd.reshape(-1, *[1] * (g.ndim - 1)) * p) ** 2).reshape(B, -1).sum(1) for g, p, d in zip(grads, net.tensors, decay))
    return TrainResult(
        net,
        np.array(hist_steps),
        torch.stack(hist_loss, 1).cpu().numpy(),
        torch.stack(hist_norm, 1).cpu().numpy(),
        torch.stack(hist_obj, 1).cpu().numpy(),
        gsq.sqrt().cpu().numpy(),
    )


def gd_step_numpy(a: np.ndarray, w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float, wd: float) -> None:
    """One GD step with coupled weight decay for ONE network (``a, w, b: [m]``, in place), NumPy:
    the per-run reference of the batched trainer (risk ``(1/n) sum_i (f(x_i) - y_i)^2``)."""
    pre = np.outer(x, w) + b
    act = np.maximum(pre, 0.0)
    g = 2.0 / len(x) * (act @ a - y)
    gp = (g[:, None] * (pre > 0)) * a
    ga, gw, gb = g @ act + wd * a, x @ gp + wd * w, gp.sum(0) + wd * b
    a -= lr * ga
    w -= lr * gw
    b -= lr * gb


def continue_gd(
    net: shallow.ShallowNet,
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray,
    *,
    lr: np.ndarray,
    wd: np.ndarray,
    steps: int,
    records: int = 30,
) -> TrainResult:
    """Continue full-batch GD with coupled weight decay (biases decayed, no affine term) from ``net``
    for ``steps`` more steps, batched over runs, in NumPy float64; the same update as :func:`train`
    with ``methods = ["gd"] * B``:

    .. math:: \\theta \\leftarrow \\theta - \\eta_b\\,\\big(\\nabla_\\theta \\tfrac{1}{n_b}\\textstyle\\sum_i
       (f_\\theta(x_{bi}) - y_{bi})^2 + \\lambda_b \\theta\\big).

    For the few tiny networks that must run for ~1e5 steps before weight decay acts
    (``eta lambda T >= 3`` with ``lambda ~ 1e-4``): there torch's per-operation overhead dominates
    (measured, one network with ``n = m = 64``: 30 us per step here, 380 us through :func:`train`).

    Args:
        net: the state to continue from (1-D inputs, no affine term); it is not modified.
        x, y, valid: ``[B, n]`` inputs, labels and the 0/1 mask of each run's own data.
        lr, wd: ``[B]`` step sizes and weight decays. ``steps``: further steps (``>= 0``).

    Returns a :class:`TrainResult` whose ``steps`` count from the start of the continuation.
    References: ``park2023minimum`` (weight decay on every parameter).
    """
    if net.v is not None or net.w.shape[-1] != 1:
        raise ValueError("continue_gd needs 1-D inputs and no affine term")
    if int(steps) != steps or steps < 0:
        raise ParameterError(f"invalid steps={steps!r}: must be an integer >= 0")
    dt, dev = net.a.dtype, net.a.device
    theta = np.stack([t.detach().cpu().numpy().astype(float) for t in (net.a, net.w[..., 0], net.b)], 1)  # [B, 3, m]
    x, y, valid = (np.asarray(v, float) for v in (x, y, valid))
    wt2 = 2.0 * valid / valid.sum(1, keepdims=True)
    lr = np.asarray(lr, float).reshape(-1, 1, 1)
    wd = np.asarray(wd, float).reshape(-1, 1, 1)
    xs, ones_x = x[:, :, None], np.stack([np.ones_like(x), x], 1)  # [B, n, 1], [B, 2, n]
    grad = np.empty_like(theta)

    def preactivation() -> np.ndarray:
        pre = xs * theta[:, None, 1, :]
        pre += theta[:, None, 2, :]
        return pre  # [B, n, m]

    def gradient() -> np.ndarray:
        """The risk's gradient in ``grad`` (rows a, w, b), by hand as in :func:`_grads`."""
        pre = preactivation()
        act = np.maximum(pre, 0.0)
        g = np.matmul(act, theta[:, 0, :, None])[..., 0]
        g -= y
        g *= wt2  # d risk / d f
        grad[:, 0] = np.matmul(g[:, None, :], act)[:, 0]
        grad[:, 2:0:-1] = np.matmul(ones_x * g[:, None, :], pre > 0) * theta[:, None, 0, :]  # rows b, w
        return grad

    rec_at = set(np.unique(np.linspace(0, steps, records).round().astype(int)).tolist())
    hist = {k: [] for k in ("t", "loss", "norm", "obj")}
    for t in range(int(steps) + 1):
        if t in rec_at:
            act = np.maximum(preactivation(), 0.0)
            risk = (0.5 * wt2 * (np.matmul(act, theta[:, 0, :, None])[..., 0] - y) ** 2).sum(1)
            pen = 0.5 * (theta * theta).sum((1, 2))
            hist["t"].append(t)
            hist["loss"].append(risk)
            hist["norm"].append((np.abs(theta[:, 0]) * np.hypot(theta[:, 1], theta[:, 2])).sum(1))
            hist["obj"].append(risk + wd[:, 0, 0] * pen)
        if t == steps:
            break
        theta -= lr * (gradient() + wd * theta)
    full = gradient() + wd * theta
    tt = lambda v: torch.as_tensor(np.ascontiguousarray(v), dtype=dt, device=dev)
    out = shallow.ShallowNet(tt(theta[:, 0]), tt(theta[:, 1])[..., None], tt(theta[:, 2]), mask=net.mask)
    return TrainResult(out, np.array(hist["t"]), np.stack(hist["loss"], 1), np.stack(hist["norm"], 1),
                       np.stack(hist["obj"], 1), np.sqrt((full**2).sum((1, 2))))


def evaluate(net: shallow.ShallowNet, z: np.ndarray) -> np.ndarray:
    """Network outputs ``[B, len(z)]`` at shared 1-D points ``z``."""
    zt = torch.as_tensor(np.asarray(z, float)[:, None], dtype=net.a.dtype, device=net.a.device)
    with torch.no_grad():
        return shallow.forward(net, zt).cpu().numpy()
