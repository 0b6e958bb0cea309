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

This module holds the targets, data sampled from the regions, the exact minimum norm interpolant (a
linear program over a dictionary of left- and right-facing ReLUs with kinks on a grid reaching
``|t| ~ 1e4``, certified by its dual), the infinite-width regularised problem (a lasso over the same
dictionary, for any ``lambda``), distances in the gaps, and a batched trainer (GD, SGD, heavy ball,
Adam, with weight decay) built on :mod:`lib.shallow` and :class:`lib.optim.BatchedOptimizer`.

References: Park, Pelakh & Wojtowytsch (``park2023minimum``); Savarese et al.
(``savarese2019infinite``); Boursier & Flammarion (``boursier2023penalising``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import optim, shallow

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
def kink_grid(
    regions: Regions,
    *,
    spacing: float = 0.01,
    region_spacing: float | None = None,
    far: float = 1e4,
    n_far: int = 60,
    extra: tuple[float, ...] = (),
) -> np.ndarray:
    """Kink positions: a uniform grid of ``spacing`` over the gaps, ``5 * spacing`` over one hull length
    on each side of the data, ``region_spacing`` (default ``10 * spacing``) inside the regions (for interpolation kinks there can
    only cancel; a regularised fit may want them near the region edges), every
    region endpoint, ``0`` and ``extra``, then a geometric grid out to ``|t| = far`` on both sides
    (optimal kinks may lie far outside the data)."""
    lo, hi = regions.hull
    span = hi - lo
    a, b = lo - span, hi + span

    def uniform(l: float, r: float, h: float) -> np.ndarray:
        return np.linspace(l, r, max(2, int(np.ceil((r - l) / h)) + 1))

    parts = [uniform(a, lo, 5 * spacing), uniform(hi, b, 5 * spacing)]
    parts += [uniform(l, r, spacing) for l, r in regions.gaps]
    rs = 10 * spacing if region_spacing is None else region_spacing
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


def dual_lower_bound(lam: np.ndarray, x: np.ndarray, y: np.ndarray, convention: str, affine: bool, *, t_max: float = 1e6) -> tuple[float, float]:
    """Certified lower bound on the minimum norm from dual weights ``lam`` on the constraint points.

    For every neuron ``phi``, ``|sum_i lam_i phi(x_i)| <= cost(phi)`` makes ``sum_i lam_i y_i`` a lower
    bound (weak duality). The ratio ``kappa = max_phi |sum_i lam_i phi(x_i)| / cost(phi)`` is evaluated
    over kinks on a grid far finer than the LP's (every ``x_i``, midpoints, and a geometric tail to
    ``t_max``, past which the ratio is monotone); then ``sum_i lam_i y_i / max(kappa, 1)`` bounds the
    minimum over *all* kink positions. With a free affine term, ``lam`` must annihilate ``1`` and ``x``;
    returns ``(bound, kappa)``.
    """
    lam = np.asarray(lam, float)
    if affine:
        lam = lam - _project_affine(lam, x)
    D = float(lam @ y)
    xs = np.sort(x)
    mids = 0.5 * (xs[1:] + xs[:-1])
    quarter = np.concatenate([0.75 * xs[1:] + 0.25 * xs[:-1], 0.25 * xs[1:] + 0.75 * xs[:-1]])
    lo, hi = xs[0], xs[-1]
    tails = np.geomspace(1e-3, t_max, 400)
    t = np.unique(np.concatenate([xs, mids, quarter, lo - tails, hi + tails, np.linspace(lo - 5, hi + 5, 4001)]))
    rho = kink_cost(t, convention)
    right = np.maximum(x[None, :] - t[:, None], 0.0) @ lam
    left = np.maximum(t[:, None] - x[None, :], 0.0) @ lam
    kappa = float(max(np.max(np.abs(right) / rho), np.max(np.abs(left) / rho)))
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
) -> Interpolant:
    """The exact minimum norm interpolant of ``regions`` under ``convention`` (LP over the dictionary).

    Solves ``min sum_k cost_k |coef_k|`` subject to ``f(x_i) = g(x_i)`` at :func:`constraint_points`,
    with HiGHS; certifies it with :func:`dual_lower_bound`; and, for each gap point in ``probes``
    (default: the gap midpoints and quarter points), computes the range ``[min f(z), max f(z)]`` over
    all interpolants of cost ``<= norm (1 + slack)``: a range of width ~0 means the value at ``z`` is
    unique. References: ``park2023minimum``, ``boursier2023penalising``, ``savarese2019infinite``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"invalid convention={convention!r}: allowed values are {CONVENTIONS}")
    knots = kink_grid(regions) if knots is None else np.asarray(knots, float)
    dic = Dictionary(knots, convention, affine)
    x, y = constraint_points(regions, knots)
    A, c = _split(dic.features(x), dic.cost, affine)
    res = _linprog(c, A, y)
    half = A.shape[1] // 2
    coef = res.x[:half] - res.x[half:]
    norm = float(res.fun)
    lam = np.asarray(res.eqlin.marginals, float)
    if lam @ y < 0:
        lam = -lam
    lb, _ = dual_lower_bound(lam, x, y, convention, affine)
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


def evaluate(net: shallow.ShallowNet, z: np.ndarray) -> np.ndarray:
    """Network outputs ``[B, len(z)]`` at shared 1-D points ``z``."""
    zt = torch.as_tensor(np.asarray(z, float)[:, None], dtype=net.a.dtype, device=net.a.device)
    with torch.no_grad():
        return shallow.forward(net, zt).cpu().numpy()
