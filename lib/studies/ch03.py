"""Chapter 3: penalising the biases enforces sparsity (Boursier & Flammarion, ``boursier2023penalising``).

Each study is a plain function of keyword parameters plus ``device`` and ``seed``; its parameters are a
frozen dataclass of the same name in CamelCase (:class:`ThreePoint` for :func:`three_point`), validated
on construction.  :func:`params` gives the one :class:`Params` of a profile (``full`` written out,
``fast`` derived from it), :func:`describe` shows it as a short table and :func:`run_all` runs every
study through a chapter context's cache.  The chapter's claims measure the results with the small
functions of the last section (each with a unit test in ``tests/test_studies_ch03.py``), which also
compute each claim's negative control from data the studies return.

Exact minimal-norm interpolants come from :mod:`lib.minnorm1d` (linear programs with dual
certificates); trained networks are one-hidden-layer ReLU nets with a free skip term
(:mod:`lib.shallow`, ``skip=True``), batched over methods, lambdas, widths and seeds and advanced by
:class:`lib.optim.BatchedOptimizer`; their kinks are merged by :mod:`lib.kinks`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

# lib.engine imports tqdm.auto, which warns in kernels without ipywidgets; its bars are off there anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from .. import engine, kinks, shallow  # noqa: E402
from .. import minnorm1d as mn  # noqa: E402
from ..checks import (  # noqa: E402
    ParameterError,
    check_choice,
    check_fields,
    check_numbers,
    check_positive,
    check_profile,
)
from ..optim import BatchedOptimizer  # noqa: E402

STEM = "03-bias-penalty-sparsity"
METHODS = ("wd_all", "wd_nobias", "gd_small")

#: Named datasets used across the chapter: (x, y).
DATASETS: dict[str, tuple[list[float], list[float]]] = {
    # convex run of four curvatures, away from the origin
    "convex-far": ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 1.5, 0.8, 0.6, 1.2, 2.5]),
    # the same values with the data centred at 0 (the trained-network data): the l2 minimiser has three kinks
    "convex-centred-train": ([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], [3.0, 1.5, 0.8, 0.6, 1.2, 2.5]),
    # a convex run of four centred at 0: the first counterexample to unconditional sparsity
    "convex-centred": ([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], [0.0, 0.5, 2.0, 4.5, 8.0, 12.5]),
    # its control: the same values with the data moved to x = 1, ..., 6, far from the origin
    "convex-shifted": ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0, 0.5, 2.0, 4.5, 8.0, 12.5]),
    # a run of only two curvatures after a first interval with x_1 x_2 = -2 < -1: the second
    # counterexample (kinks at -1/x_1 = 1/2 and at x_3 = 2, where one kink at 3/2 suffices)
    "straddle-run": ([-2.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 3.0]),
    # its control: the first point moved to x_1 = -1/2, so that x_1 x_2 = -1/2 > -1
    "straddle-run-near": ([-0.5, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 3.0]),
    # data straddling 0 in the first interval, x_1 x_2 < -1, curvatures of alternating sign: the
    # bias-penalised minimiser puts its first kink at -1/x_1 = 1/3, strictly inside (x_1, x_2)
    "straddle": ([-3.0, 1.5, 2.5, 3.5, 5.0], [1.0, 0.0, 0.6, -0.4, 1.0]),
    # alternating curvature: every run has length one
    "alternating": ([-3.0, -2.0, -0.5, 0.3, 1.2, 2.5], [0.5, 1.5, 0.2, 0.6, -0.4, 0.9]),
}

#: The closed forms of the two counterexamples (book's derivations): optimal cost and kink positions.
CLOSED_FORMS: dict[str, tuple[float, tuple[float, ...]]] = {
    "convex-centred": (5.6, (-4 / 3, 0.0, 4 / 3)),
    "straddle-run": (8 / math.sqrt(5), (0.5, 2.0)),
}

#: The solver's target for the certified relative gap (:func:`lib.minnorm1d.solve`'s ``gap_tol``).
GAP_TOL = 1e-9


# -------------------------------------------------------------------------------------------------
# parameters: one frozen dataclass per study, validated on construction
# -------------------------------------------------------------------------------------------------


def _dataset(name: str, value: Any) -> None:
    if not isinstance(value, str) or value not in DATASETS:
        raise ParameterError(f"invalid {name}={value!r}: allowed values are {', '.join(map(repr, DATASETS))}")


@dataclass(frozen=True)
class CostNetworks:
    """Explicit network representations of random piecewise-linear functions (:func:`cost_networks`)."""

    n_networks: int
    max_kinks: int

    def __post_init__(self) -> None:
        check_fields(self, "n_networks", "max_kinks", integer=True)


@dataclass(frozen=True)
class CostFormula:
    """Random piecewise-linear functions imposed on known regions (:func:`cost_formula`)."""

    n_functions: int
    max_kinks: int

    def __post_init__(self) -> None:
        check_fields(self, "n_functions", "max_kinks", integer=True)


@dataclass(frozen=True)
class ThreePoint:
    """Random triples against the three-point closed form (:func:`three_point`)."""

    n_triples: int

    def __post_init__(self) -> None:
        check_fields(self, "n_triples", integer=True)


@dataclass(frozen=True)
class Examples:
    """Exact interpolants with and without the bias penalty on named data sets (:func:`examples`);
    ``probe_rel``: the near-optimality levels of the uniqueness probe (ascending tightness);
    ``perturbation``: size of the data perturbation of the re-solve; ``moved``: how far (as a fraction
    of the interval) the control member of the bias-free family moves its kink at ``x_3``."""

    names: tuple[str, ...]
    probe_rel: tuple[float, ...]
    perturbation: float
    moved: float

    def __post_init__(self) -> None:
        if not isinstance(self.names, tuple) or not self.names:
            raise ParameterError(f"invalid names={self.names!r}: a non-empty tuple of data set names")
        for n in self.names:
            _dataset("names", n)
        check_numbers("probe_rel", self.probe_rel, lo=0.0, hi=1.0)
        check_fields(self, "perturbation")
        check_numbers("moved", (self.moved,), lo=0.0, hi=1.0, what="a fraction in (0, 1)")


@dataclass(frozen=True)
class Counterexamples:
    """The certified counterexamples and their controls (:func:`counterexamples`)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.names, tuple) or not self.names:
            raise ParameterError(f"invalid names={self.names!r}: a non-empty tuple of data set names")
        for n in self.names:
            _dataset("names", n)


@dataclass(frozen=True)
class SparsityMap:
    """Random data sets with a prescribed longest same-sign curvature run (:func:`sparsity_map`):
    ``per_cell`` data sets per run length and centre (spacings ``U(spacing)``, so that no interval
    straddles the origin with ``x_i x_{i+1} < -1`` when ``spacing[1] < 2``), and ``straddle_per_cell``
    per run length in which one random interval straddles 0 with ``x_i x_{i+1} < -1``."""

    n_points: int
    offsets: tuple[float, ...]
    per_cell: int
    straddle_per_cell: int
    spacing: tuple[float, float]

    def __post_init__(self) -> None:
        check_fields(self, "n_points", "per_cell", "straddle_per_cell", integer=True)
        if self.n_points < 4:
            raise ParameterError(f"invalid n_points={self.n_points!r}: at least 4 (two curvatures)")
        check_numbers("offsets", self.offsets, lo=-math.inf, what="a non-empty tuple of finite centres")
        check_numbers("spacing", self.spacing, what="two spacings 0 < lo < hi")
        if len(self.spacing) != 2 or not self.spacing[0] < self.spacing[1]:
            raise ParameterError(f"invalid spacing={self.spacing!r}: two spacings 0 < lo < hi")


@dataclass(frozen=True)
class Training:
    """Networks trained with and without the bias penalty (:func:`training`).

    The Adam step size is ``lr_adam`` for the first ``decay_start`` of the steps, then decays
    geometrically to ``lr_floor * lr_adam`` at the last step; plain GD keeps ``lr_gd``.  Kinks of the
    networks are merged by :func:`lib.kinks.merge` with ``radius`` and ``threshold``."""

    data: str
    methods: tuple[str, ...]
    lams: tuple[float, ...]
    widths: tuple[int, ...]
    seeds: int
    steps: int
    lr_adam: float
    lr_gd: float
    decay_start: float
    lr_floor: float
    small_scale: float
    snapshots: int
    radius: float
    threshold: float

    def __post_init__(self) -> None:
        _dataset("data", self.data)
        if not isinstance(self.methods, tuple) or not self.methods:
            raise ParameterError(f"invalid methods={self.methods!r}: a non-empty tuple of {METHODS}")
        for me in self.methods:
            check_choice("methods", me, METHODS)
        check_numbers("lams", self.lams)
        check_numbers("widths", self.widths, integer=True, what="a non-empty tuple of integers >= 1")
        check_fields(self, "seeds", "steps", "snapshots", integer=True)
        check_fields(self, "lr_adam", "lr_gd", "small_scale", "radius", "threshold")
        check_numbers("decay_start", (self.decay_start,), hi=1.0 + 1e-12, what="a fraction in (0, 1]")
        check_numbers("lr_floor", (self.lr_floor,), hi=1.0 + 1e-12, what="a factor in (0, 1]")


@dataclass(frozen=True)
class Regularised:
    """The exact global minima of the training objectives (:func:`regularised`); ``n_grid``: points of
    the lasso's kink grid; ``control_grid``: grid of the two-kink control's position search."""

    data: str
    lams: tuple[float, ...]
    threshold: float
    n_grid: int
    control_grid: int

    def __post_init__(self) -> None:
        _dataset("data", self.data)
        check_numbers("lams", self.lams)
        check_fields(self, "threshold")
        check_fields(self, "n_grid", "control_grid", integer=True)


@dataclass(frozen=True)
class Params:
    """The parameters of every study of the chapter; a field per study, named after its function."""

    cost_networks: CostNetworks
    cost_formula: CostFormula
    three_point: ThreePoint
    examples: Examples
    counterexamples: Counterexamples
    sparsity_map: SparsityMap
    training: Training
    regularised: Regularised


def _training_full() -> Training:
    return Training(data="convex-centred-train", methods=METHODS, lams=(3e-3, 1e-2, 3e-2), widths=(50, 100, 200),
                    seeds=4, steps=100_000, lr_adam=1e-2, lr_gd=3e-2, decay_start=0.6, lr_floor=0.01,
                    small_scale=1e-3, snapshots=40, radius=0.05, threshold=0.02)


def _regularised_for(t: Training) -> Regularised:
    """The exact fits of the training study's own objectives: its data, lambdas and kink threshold."""
    return Regularised(data=t.data, lams=t.lams, threshold=t.threshold, n_grid=2001, control_grid=41)


_T = _training_full()
FULL = Params(
    cost_networks=CostNetworks(n_networks=2000, max_kinks=8),
    cost_formula=CostFormula(n_functions=200, max_kinks=8),
    three_point=ThreePoint(n_triples=400),
    examples=Examples(names=("convex-far", "straddle", "alternating", "convex-centred"), probe_rel=(1e-6, 1e-8),
                      perturbation=1e-6, moved=0.9),
    counterexamples=Counterexamples(names=("convex-centred", "convex-shifted", "straddle-run", "straddle-run-near")),
    sparsity_map=SparsityMap(n_points=7, offsets=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0), per_cell=60, straddle_per_cell=240,
                             spacing=(0.5, 1.5)),
    training=_T,
    regularised=_regularised_for(_T),
)

_r = dataclasses.replace
_T_FAST = _r(FULL.training, lams=(3e-3, 1e-2), widths=(16, 48), seeds=2, steps=15_000)
FAST = _r(
    FULL,
    cost_networks=_r(FULL.cost_networks, n_networks=60, max_kinks=4),
    cost_formula=_r(FULL.cost_formula, n_functions=12, max_kinks=4),
    three_point=_r(FULL.three_point, n_triples=16),
    sparsity_map=_r(FULL.sparsity_map, offsets=(0.0, 1.0, 2.0, 4.0), per_cell=5, straddle_per_cell=20),
    training=_T_FAST,
    regularised=_regularised_for(_T_FAST),
)


def params(profile: str) -> Params:
    """The parameters of every study for ``profile`` (``"fast"``: CI, one CPU core; ``"full"``: paper scale)."""
    return {"fast": FAST, "full": FULL}[check_profile(profile)]


def describe(P: Params) -> pd.DataFrame:
    """``P`` as a short table (study, parameter, value); a tuple of more than four numbers is summarised
    as ``n values in [a, b]``."""
    rows = []
    for study in dataclasses.fields(P):
        p = getattr(P, study.name)
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, tuple) and len(v) > 4 and all(isinstance(x, (int, float)) for x in v):
                v = f"{len(v)} values in [{min(v):g}, {max(v):g}]"
            elif isinstance(v, tuple):
                v = ", ".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v)
            elif isinstance(v, float):
                v = f"{v:g}"
            rows.append({"study": study.name, "parameter": f.name, "value": str(v)})
    return pd.DataFrame(rows).set_index(["study", "parameter"])


def _validated(cls, **kw) -> Any:
    """Build (and so validate) a study's parameter dataclass from the study's keyword arguments."""
    return cls(**{k: tuple(v) if isinstance(v, (list, np.ndarray)) else v for k, v in kw.items()})


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = DATASETS[name]
    return np.asarray(x, float), np.asarray(y, float)


# -------------------------------------------------------------------------------------------------
# the cost of a function
# -------------------------------------------------------------------------------------------------


def _random_pl(rng: np.random.Generator, max_kinks: int) -> tuple[np.ndarray, np.ndarray]:
    k = int(rng.integers(1, max_kinks + 1))
    p = np.sort(rng.uniform(-5, 5, k))
    p = p[np.concatenate([[True], np.diff(p) > 0.05])]
    return p, rng.normal(size=p.size)


def cost_networks(*, n_networks: int, max_kinks: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """The lower bound of the cost theorem on explicit network representations (no LP involved).

    Each network represents a random piecewise-linear function with up to ``max_kinks`` kinks by several
    neurons per kink: the balanced neuron of the kink split into one to three pieces, some of them facing
    left (``w < 0``); in two networks out of three, also a cancelling pair per kink (a neuron and its
    negative) and a random rescaling ``(a, w, b) -> (a/t, t w, t b)`` of every neuron, both of a size
    ``eps`` drawn log-uniformly in ``[1e-3, 1]`` (so some representations are nearly optimal); the
    remaining third are exact optimal representations for the bias-penalised cost.  The slope jumps of
    the represented function are read off its values (difference quotients on either side of each kink,
    exact for a piecewise-linear function), not from the parameters.  One row per network and penalty:
    the parameter norm ``1/2 sum_j (a_j^2 + w_j^2 [+ b_j^2])``, the formula ``sum_k |jump_k| W(p_k)`` and,
    for the negative control, the bias-penalised formula ``formula_l2`` on every row."""
    _validated(CostNetworks, n_networks=n_networks, max_kinks=max_kinks)
    rng = np.random.default_rng([seed, 35])
    rows = []
    for i in range(n_networks):  # a few dozen neurons each: NumPy per network is instant
        p, s = _random_pl(rng, max_kinks)
        kind = i % 3  # 0: exact optimal representation; 1, 2: with cancelling pairs and unbalanced scales
        eps = 10.0 ** rng.uniform(-3, 0)
        a, w, b = [], [], []
        for pk, sk in zip(p, s):
            pieces = rng.dirichlet(np.ones(int(rng.integers(1, 4))))
            for q in pieces:  # a balanced neuron with jump q * sk; left-facing with probability 1/2
                wq = np.sqrt(q * abs(sk) / np.hypot(1.0, pk)) * rng.choice([-1.0, 1.0])
                a.append(np.sign(sk) * np.sqrt(q * abs(sk) * np.hypot(1.0, pk)))
                w.append(wq)
                b.append(-wq * pk)
            if kind:
                z = eps * rng.normal(size=3) * [1.0, 1.0, 0.0]
                z[2] = -z[1] * pk
                a += [z[0], -z[0]]
                w += [z[1], z[1]]
                b += [z[2], z[2]]
        a, w, b = np.array(a), np.array(w), np.array(b)
        if kind:
            t = np.exp(eps * rng.normal(size=a.size))
            a, w, b = a / t, w * t, b * t
        h = 0.25 * np.min(np.diff(p), initial=1.0)
        f0, fl, fr = (np.maximum(np.multiply.outer(t, w) + b, 0.0) @ a for t in (p, p - h, p + h))
        jumps = (fr - f0) / h - (f0 - fl) / h
        formula_l2 = mn.kink_cost(p, jumps, "l2")
        for pen, norm in (("l2", 0.5 * np.sum(a**2 + w**2 + b**2)), ("free", 0.5 * np.sum(a**2 + w**2))):
            rows.append({"network": i, "kinks": p.size, "neurons": a.size, "optimal_representation": kind == 0,
                         "penalty": pen, "norm": norm, "formula": mn.kink_cost(p, jumps, pen),
                         "formula_l2": formula_l2})
    df = pd.DataFrame(rows)
    df["excess"] = df.norm / df.formula - 1
    return df


def cost_formula(*, n_functions: int, max_kinks: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """Random piecewise-linear functions, forced on ``[p_1 - 1, p_K + 1]`` by known regions between their
    kinks: the LP optimum against the formula ``sum_k |s_k| W(p_k)`` for each penalty (one row each)."""
    _validated(CostFormula, n_functions=n_functions, max_kinks=max_kinks)
    rng = np.random.default_rng([seed, 31])
    rows = []
    for i in range(n_functions):  # one LP per problem: inherently per-problem
        p, s = _random_pl(rng, max_kinks)
        v, c = rng.normal(size=2)
        knots = np.concatenate([[p[0] - 1], p, [p[-1] + 1]])
        vals = mn.evaluate_kinks(knots, p, s, v, c)
        regions = list(zip(knots[:-1], knots[1:], vals[:-1], vals[1:]))
        for pen in ("l2", "free"):
            sol = mn.solve(None, None, regions=regions, penalty=pen, on_fail="raise")
            rows.append({"function": i, "kinks": p.size, "penalty": pen, "formula": mn.kink_cost(p, s, pen),
                         "lp": sol.cost, "lower": sol.lower, "gap": sol.gap})
    df = pd.DataFrame(rows)
    df["rel_err"] = (df.lp - df.formula).abs() / df.formula
    return df


# -------------------------------------------------------------------------------------------------
# exact minimal-norm interpolants
# -------------------------------------------------------------------------------------------------


def three_point(*, n_triples: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """Random triples: a third drawn freely on ``[-4, 4]``, a third drawn with ``x_1 < 0 < x_2`` so that
    ``x_1 x_2 < -1`` usually holds, a third likewise for ``x_2 x_3 < -1``; the ``case`` column is read off
    the coordinates, not the drawing rule.  The closed form of :func:`lib.minnorm1d.three_point` against
    the certified LP; ``kappa`` is the curvature at ``x_2`` (for the control "kink always at x_2")."""
    _validated(ThreePoint, n_triples=n_triples)
    rng = np.random.default_rng([seed, 32])
    rows = []
    for i in range(n_triples):
        kind = i % 3
        if kind == 0:
            x = np.sort(rng.uniform(-4, 4, 3))
        elif kind == 1:  # x1 x2 < -1
            x = np.array([-rng.uniform(1.2, 4), rng.uniform(0.5, 2), 0.0])
            x[2] = x[1] + rng.uniform(0.3, 2)
        else:  # x2 x3 < -1
            x = np.array([0.0, -rng.uniform(0.5, 2), rng.uniform(1.2, 4)])
            x[0] = x[1] - rng.uniform(0.3, 2)
        if np.min(np.diff(x)) < 0.05:
            x = np.array([-3.0, 0.5, 2.0])
        y = rng.normal(size=3)
        p, cost = mn.three_point(x, y)
        sol = mn.solve(x, y, penalty="l2", on_fail="raise")
        case = "x1x2<-1" if x[0] * x[1] < -1 else "x2x3<-1" if x[1] * x[2] < -1 else "kink at x2"
        rows.append({"triple": i, "case": case, "x1": x[0], "x2": x[1], "x3": x[2], "kappa": mn.secants(x, y)[1][0],
                     "p_closed": p, "p_lp": sol.kinks[0][0], "cost_closed": cost, "cost_lp": sol.cost, "gap": sol.gap,
                     "n_kinks": sol.n_kinks})
    df = pd.DataFrame(rows)
    df["cost_err"] = (df.cost_lp - df.cost_closed).abs()
    df["pos_err"] = (df.p_lp - df.p_closed).abs()
    return df


def _record(sol: mn.Solution) -> dict[str, Any]:
    p, s = sol.kinks
    return {"cost": sol.cost, "lower": sol.lower, "gap": sol.gap, "n_kinks": sol.n_kinks, "kinks": p, "jumps": s}


def _member(p, s, v, c, grid) -> dict[str, Any]:
    return {"kinks": np.asarray(p), "jumps": np.asarray(s), "cost_free": mn.kink_cost(p, s, "free"),
            "cost_l2": mn.kink_cost(p, s, "l2"), "values": mn.evaluate_kinks(grid, p, s, v, c)}


def moved_kink(x: np.ndarray, y: np.ndarray, frac: float, i: int = 1) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The straight-line interpolant with its kink at the interior point ``x_{i+2}`` (``i`` counts the
    interior points from 0) moved the fraction ``frac`` of the way to the next data point, the jumps
    refitted so that it still interpolates: a member of the bias-free family for small moves, outside it
    once a jump changes sign (the control of the family claim)."""
    p = x[1:-1].copy()
    p[i] = x[i + 1] + frac * (x[i + 2] - x[i + 1])
    return mn.interpolant_with_kinks(x, y, p)


def examples(*, names: tuple[str, ...], probe_rel: tuple[float, ...], perturbation: float, moved: float,
             device: Any = None, seed: int = 0) -> dict[str, Any]:
    """Exact interpolants with and without the bias penalty on the named data sets, the bias-free
    family (straight-line interpolant, paired interpolants, and the control: a kink moved out of the
    family, :func:`moved_kink`), uniqueness probes and re-solves after perturbing the data."""
    _validated(Examples, names=names, probe_rel=probe_rel, perturbation=perturbation, moved=moved)
    rng = np.random.default_rng([seed, 33])
    out: dict[str, Any] = {}
    for name in names:
        x, y = _data(name)
        sols = {pen: mn.solve(x, y, penalty=pen, on_fail="raise") for pen in ("l2", "free")}
        grid = np.linspace(x[0] - 0.6, x[-1] + 0.6, 601)
        family = {"linear spline": mn.linear_spline(x, y), "paired": mn.paired_interpolant(x, y),
                  "paired, shifted": mn.paired_interpolant(x, y, offset=1)}
        mids = 0.5 * (x[:-1] + x[1:])
        widths = {pen: {rel: np.array([np.diff(mn.value_range(sol, m, rel))[0] for m in mids]) for rel in probe_rel}
                  for pen, sol in sols.items()}
        y_pert = y + perturbation * rng.uniform(-1, 1, y.size)
        hull = np.linspace(x[0], x[-1], 401)
        perturbed = {pen: float(np.max(np.abs(mn.solve(x, y_pert, penalty=pen, on_fail="raise")(hull) - sol(hull))))
                     for pen, sol in sols.items()}
        out[name] = {
            "x": x, "y": y, "grid": grid, "f_l2": sols["l2"](grid), "f_free": sols["free"](grid),
            "l2": _record(sols["l2"]), "free": _record(sols["free"]),
            "family": {k: _member(*v, grid) for k, v in family.items()},
            "moved": _member(*moved_kink(x, y, moved), grid),
            "sparsest": mn.sparsest_kink_count(x, y), "kappa": mn.secants(x, y)[1],
            "biasfree_value": mn.biasfree_value(x, y), "probe_widths": widths, "mids": mids,
            "perturbed_sup": perturbed["l2"], "perturbed_sup_free": perturbed["free"],
        }
    return out


def _dual_function(sol: mn.Solution, p: np.ndarray) -> np.ndarray:
    """The certified dual function ``g(p) = sum_i mu_i (x_i - p)_+`` of a solution (affine term free)."""
    return np.maximum(sol.t[None, :] - np.asarray(p, float)[:, None], 0.0) @ sol.dual


def counterexamples(*, names: tuple[str, ...], device: Any = None, seed: int = 0) -> dict[str, Any]:
    """The certified bias-penalised minimiser of each named data set against its sparsest interpolant
    (the paired interpolant, the only one with the fewest kinks here), with the bias-free certificate
    for the control of the margin claim and the dual function for the figure."""
    _validated(Counterexamples, names=names)
    out = {}
    for name in names:
        x, y = _data(name)
        l2 = mn.solve(x, y, penalty="l2", on_fail="raise")
        free = mn.solve(x, y, penalty="free", on_fail="raise")
        grid = np.linspace(x[0] - 0.6, x[-1] + 0.6, 601)
        dual_grid = np.linspace(x[0] - 0.3, x[-1] + 0.3, 801)
        out[name] = {"x": x, "y": y, "grid": grid, "f_l2": l2(grid), "l2": _record(l2), "free": _record(free),
                     "sparsest": mn.sparsest_kink_count(x, y), "paired": _member(*mn.paired_interpolant(x, y), grid),
                     "dual_grid": dual_grid, "dual": _dual_function(l2, dual_grid)}
    return out


def _dataset_with_runs(rng: np.random.Generator, n: int, L: int, offset: float, spacing: tuple[float, float],
                       straddle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A random data set of ``n`` points whose longest run of same-sign curvatures has length ``L``:
    spacings ``U(spacing)`` and centre ``offset``, or (``straddle``) one random interval opened to
    ``[-a, b]`` with ``a, b ~ U(1, 3)``, so that its ends have ``x_i x_{i+1} = -ab < -1``."""
    while True:
        sg = rng.choice([-1.0, 1.0], n - 2)
        runs = np.diff(np.flatnonzero(np.concatenate([[True], sg[1:] != sg[:-1], [True]])))
        if runs.max() == L:
            break
    kappa = sg * rng.uniform(0.3, 1.5, n - 2)
    delta = rng.normal() + np.concatenate([[0.0], np.cumsum(kappa)])
    h = rng.uniform(*spacing, n - 1)
    x = np.concatenate([[0.0], np.cumsum(h)])
    if straddle:
        k = int(rng.integers(n - 1))
        a, b = rng.uniform(1.0, 3.0, 2)
        h[k] = a + b
        x = np.concatenate([[0.0], np.cumsum(h)])
        x = x - x[k] - a
    else:
        x = x - x.mean() + offset
    y = np.concatenate([[rng.normal()], np.diff(x) * delta]).cumsum()
    return x, y


def straddles(x: np.ndarray) -> bool:
    """Whether two consecutive data points straddle the origin with ``x_i x_{i+1} < -1`` (then ``-1/x_i``
    lies strictly inside ``(x_i, x_{i+1})``, where a tangency can put a kink)."""
    x = np.sort(np.asarray(x, float))
    return bool(np.any(x[:-1] * x[1:] < -1))


def sparsity_map(*, n_points: int, offsets: tuple[float, ...], per_cell: int, straddle_per_cell: int,
                 spacing: tuple[float, float], device: Any = None, seed: int = 0) -> pd.DataFrame:
    """For random data sets with a prescribed longest same-sign curvature run ``L``: the kink count of the
    certified bias-penalised minimiser against the sparsest possible count.  Two regimes: ``centred``
    (centre ``offset``, spacings ``U(spacing)``) and ``straddling`` (one interval straddles 0 with
    ``x_i x_{i+1} < -1``; ``offset`` is NaN); the ``straddles`` column is read off the coordinates.  The
    control ``grid_gap`` (first data set of each cell, NaN elsewhere) is the certified relative gap of the
    starting grid LP alone (one round of column generation, no polish)."""
    _validated(SparsityMap, n_points=n_points, offsets=offsets, per_cell=per_cell,
               straddle_per_cell=straddle_per_cell, spacing=spacing)
    rng = np.random.default_rng([seed, 34])
    cells = [(L, "centred", off, per_cell) for L in range(1, n_points - 1) for off in offsets]
    cells += [(L, "straddling", math.nan, straddle_per_cell) for L in range(1, n_points - 1)]
    rows = []
    for L, regime, off, count in cells:
        for i in range(count):
            x, y = _dataset_with_runs(rng, n_points, L, off, spacing, straddle=regime == "straddling")
            sol = mn.solve(x, y, penalty="l2", on_fail="raise")
            grid_gap = math.nan
            if i == 0:  # the control, on the first data set of each cell
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", mn.NotConvergedWarning)
                    grid = mn.solve(x, y, penalty="l2", max_iter=1, polish=False)
                grid_gap = grid.gap / (1 + grid.cost)
            rows.append({"L": L, "regime": regime, "offset": off, "rep": i, "straddles": straddles(x),
                         "n_kinks": sol.n_kinks, "sparsest": mn.sparsest_kink_count(x, y), "gap": sol.gap,
                         "cost": sol.cost, "grid_gap": grid_gap})
    df = pd.DataFrame(rows)
    df["excess"] = df.n_kinks - df.sparsest
    df["is_sparsest"] = df.excess == 0
    df["centre"] = [f"{o:g}" if r == "centred" else "straddling" for r, o in zip(df.regime, df.offset)]
    return df


# -------------------------------------------------------------------------------------------------
# trained networks
# -------------------------------------------------------------------------------------------------


def _grads(theta: torch.Tensor, phi: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, lam: torch.Tensor,
           lam_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``1/2 sum_i r_i^2 + lam/2 (|a|^2 + |w|^2) + lam_b/2 |b|^2`` per run; ``theta = [a; w; b]``
    is ``[B, 3, m]``, ``phi = [v, c]`` is ``[B, 2]`` (skip term, not penalised).  Returns (g_theta, g_phi, r)."""
    a, w, b = theta[:, 0], theta[:, 1], theta[:, 2]
    pre = X[None, :, None] * w[:, None, :] + b[:, None, :]
    h = pre.clamp_min(0.0)
    r = torch.einsum("bnm,bm->bn", h, a) + phi[:, :1] * X + phi[:, 1:] - Y
    dpre = r[:, :, None] * a[:, None, :] * (pre > 0)
    ga = torch.einsum("bnm,bn->bm", h, r) + lam * a
    gw = torch.einsum("bnm,n->bm", dpre, X) + lam * w
    gb = dpre.sum(1) + lam_b * b
    return torch.stack([ga, gw, gb], 1), torch.stack([(r * X).sum(1), r.sum(1)], 1), r


def training_grid(methods, lams, widths, seeds) -> pd.DataFrame:
    """The runs: weight-decay methods over ``lams``, plain GD from small initialisation at lam = 0."""
    rows = []
    for me in methods:
        check_choice("method", me, METHODS)
        for lam in (lams if me != "gd_small" else (0.0,)):
            for m in widths:
                for s in range(seeds):
                    rows.append({"method": me, "lam": float(lam), "width": int(m), "seed": s})
    df = pd.DataFrame(rows)
    df.index.name = "run"
    return df


def lr_factor(frac: float, decay_start: float, lr_floor: float) -> float:
    """The step-size schedule of Adam: ``1`` until the fraction ``decay_start`` of the steps, then a
    geometric decay reaching ``lr_floor`` at the end (``frac = 1``)."""
    if decay_start >= 1.0:
        return 1.0
    return lr_floor ** max(0.0, (frac - decay_start) / (1.0 - decay_start))


class _Trainer:
    """All runs of the training study as two groups (Adam with weight decay; plain GD), one tensor
    program each."""

    def __init__(self, runs, X, Y, *, lr_adam, lr_gd, decay_start, lr_floor, small_scale, device, seed):
        B, m = len(runs), int(runs.width.max())
        kw = {"dtype": torch.float64, "device": device}
        self.runs, self.X, self.Y = runs, X, Y
        self.decay_start, self.lr_floor = decay_start, lr_floor
        self.gd = torch.as_tensor((runs.method == "gd_small").to_numpy().copy(), device=device)
        scale = torch.where(self.gd, torch.tensor(small_scale, **kw), torch.tensor(1.0, **kw))
        g = torch.Generator(device=device).manual_seed(seed)
        net = shallow.init(B, m, skip=True, scale=scale, widths=torch.as_tensor(runs.width.to_numpy().copy(), device=device),
                           generator=g, dtype=torch.float64, device=device)
        theta = torch.stack([net.a, net.w[..., 0], net.b], 1)
        phi = torch.zeros(B, 2, **kw)
        lam = torch.as_tensor(runs.lam.to_numpy().copy(), **kw)[:, None]
        lam_b = torch.where(torch.as_tensor((runs.method == "wd_all").to_numpy().copy(), device=device), lam[:, 0],
                            torch.zeros_like(lam[:, 0]))[:, None]
        self.groups = []
        for sel, method, lr in ((~self.gd, "adam", lr_adam), (self.gd, "gd", lr_gd)):
            idx = torch.nonzero(sel).flatten()
            if idx.numel():
                opt = BatchedOptimizer([theta[idx].clone(), phi[idx].clone()], method=method, lr=lr)
                self.groups.append({"idx": idx, "opt": opt, "lam": lam[idx], "lam_b": lam_b[idx], "lr0": lr, "method": method})

    def step(self, frac: float) -> None:
        for gr in self.groups:
            th, ph = gr["opt"].params
            g_th, g_ph, _ = _grads(th, ph, self.X, self.Y, gr["lam"], gr["lam_b"])
            if gr["method"] == "adam":
                gr["opt"].lr = gr["lr0"] * lr_factor(frac, self.decay_start, self.lr_floor)
            gr["opt"].step([g_th, g_ph])

    def params(self) -> tuple[torch.Tensor, torch.Tensor]:
        B = len(self.runs)
        th = torch.empty(B, *self.groups[0]["opt"].params[0].shape[1:], dtype=torch.float64, device=self.X.device)
        ph = torch.empty(B, 2, dtype=torch.float64, device=self.X.device)
        for gr in self.groups:
            th[gr["idx"]], ph[gr["idx"]] = gr["opt"].params
        return th, ph

    def measure(self) -> dict[str, np.ndarray]:
        th, ph = self.params()
        _, _, r = _grads(th, ph, self.X, self.Y, torch.zeros(1, 1, dtype=th.dtype, device=th.device),
                         torch.zeros(1, 1, dtype=th.dtype, device=th.device))
        a, w, b = th[:, 0], th[:, 1], th[:, 2]
        bal = (a**2 - w**2 - b**2).abs().amax(1) / (a**2).amax(1).clamp_min(1e-300)
        return {"loss": (0.5 * r.pow(2).sum(1)).cpu().numpy(), "imbalance": bal.cpu().numpy(),
                "norm_l2": (a.abs() * torch.sqrt(w**2 + b**2)).sum(1).cpu().numpy(),
                "norm_free": (a.abs() * w.abs()).sum(1).cpu().numpy(),
                "half_sq": (0.5 * (a**2 + w**2 + b**2).sum(1)).cpu().numpy(),
                "half_sq_nobias": (0.5 * (a**2 + w**2).sum(1)).cpu().numpy()}


def _hull(x: np.ndarray) -> np.ndarray:
    return np.linspace(x[0], x[-1], 501)


def _merged(th: np.ndarray, x: np.ndarray, radius: float, threshold: float) -> kinks.Kinks:
    pos, jump = kinks.neuron_kinks(th[:, 0], th[:, 1], th[:, 2])
    return kinks.merge(pos, jump, lo=x[0], hi=x[-1], radius=radius, threshold=threshold)


def training(*, data: str, methods: tuple[str, ...], lams: tuple[float, ...], widths: tuple[int, ...], seeds: int,
             steps: int, lr_adam: float, lr_gd: float, decay_start: float, lr_floor: float, small_scale: float,
             snapshots: int, radius: float, threshold: float, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Train every run of :func:`training_grid` on the named data set and compare with the exact answers.

    Objective per run: ``1/2 sum_i (f(x_i) - y_i)^2 + lam/2 (|a|^2 + |w|^2 [+ |b|^2])`` (biases in the
    penalty for ``wd_all``, out of it for ``wd_nobias``), Adam with the schedule :func:`lr_factor`;
    ``gd_small``: plain GD on the square loss from initialisation scale ``small_scale``.  Returns the tidy
    table of runs (final loss, penalty term, costs, merged kink counts, the same count at initialisation
    and the count of single neurons above the threshold, for the controls, and the sup distance on the
    data hull to the exact bias-penalised interpolant), the cost curves and the fitted functions.
    Torch, NumPy and SciPy only (it runs on a bare GPU machine); :func:`training_table` adds the
    comparison with :func:`regularised`.
    """
    _validated(Training, data=data, methods=methods, lams=lams, widths=widths, seeds=seeds, steps=steps,
               lr_adam=lr_adam, lr_gd=lr_gd, decay_start=decay_start, lr_floor=lr_floor, small_scale=small_scale,
               snapshots=snapshots, radius=radius, threshold=threshold)
    x, y = _data(data)
    device = torch.device(device or "cpu")
    runs = training_grid(methods, lams, widths, seeds)
    X = torch.as_tensor(x, device=device)
    Y = torch.as_tensor(y, device=device)
    tr = _Trainer(runs, X, Y, lr_adam=lr_adam, lr_gd=lr_gd, decay_start=decay_start, lr_floor=lr_floor,
                  small_scale=small_scale, device=device, seed=seed)
    K0 = _merged(tr.params()[0].cpu().numpy(), x, radius, threshold)
    every = max(1, steps // snapshots)
    curves, times = [], []
    for it in engine.progress(range(steps), desc="ch03 training"):
        tr.step(it / steps)
        if (it + 1) % every == 0 or it + 1 == steps:
            th, _ = tr.params()
            engine.check_finite(th, what="training", hint="reduce the step size lr_adam or lr_gd", runs=runs)
            curves.append(tr.measure())
            times.append(it + 1)
    th, ph = (t.cpu().numpy() for t in tr.params())
    fin = curves[-1]
    exact = {"l2": mn.solve(x, y, penalty="l2", on_fail="raise"), "free": mn.solve(x, y, penalty="free", on_fail="raise")}
    hull, grid = _hull(x), np.linspace(x[0] - 0.5, x[-1] + 0.5, 401)
    a, w, b = th[:, 0], th[:, 1], th[:, 2]

    def net_values(t):
        h = np.maximum(t[None, :, None] * w[:, None, :] + b[:, None, :], 0.0)
        return np.einsum("bnm,bm->bn", h, a) + ph[:, :1] * t + ph[:, 1:]

    f_hull = net_values(hull)
    K = _merged(th, x, radius, threshold)
    single = _merged(th, x, 0.0, threshold)  # every neuron its own kink (radius 0 merges only exact ties)
    pen = np.where(runs.method == "wd_all", fin["half_sq"], fin["half_sq_nobias"])
    penalty_term = runs.lam.to_numpy() * pen
    table = engine.tidy(runs, loss=fin["loss"], penalty_term=penalty_term, objective=fin["loss"] + penalty_term,
                        norm_l2=fin["norm_l2"], norm_free=fin["norm_free"], n_kinks=K.count, n_kinks_init=K0.count,
                        n_kinks_neurons=single.count, kink_cost_l2=kinks.kink_cost(K, "l2"),
                        sup_to_l2_interpolant=np.abs(f_hull - exact["l2"](hull)).max(1), imbalance=fin["imbalance"])
    return {
        "runs": table, "x": x, "y": y, "grid": grid, "f_grid": net_values(grid), "f_hull": f_hull, "kinks_pos": K.pos,
        "kinks_jump": K.jump, "steps": np.array(times), "curves": {k: np.stack([c[k] for c in curves], 1) for k in curves[0]},
        "exact": {k: _record(v) for k, v in exact.items()}, "exact_grid": {k: v(grid) for k, v in exact.items()},
    }


def regularised(*, data: str, lams: tuple[float, ...], threshold: float, n_grid: int, control_grid: int,
                device: Any = None, seed: int = 0) -> dict[str, Any]:
    """The exact global minima of the weight-decay objectives of :func:`training`: for each lambda,
    ``min_f 1/2 sum_i (f(x_i) - y_i)^2 + lam * cost(f)`` with the bias-penalised (``l2``) and bias-free
    (``free``) costs (:func:`lib.minnorm1d.solve_penalized`; needs cvxpy, so it is a study of its own and
    the training study runs without it).  Each ``l2`` entry also holds the control of the objective
    claim: the best fit with the sparsest interpolant's number of kinks
    (:func:`lib.minnorm1d.best_fit_with_kinks`)."""
    _validated(Regularised, data=data, lams=lams, threshold=threshold, n_grid=n_grid, control_grid=control_grid)
    x, y = _data(data)
    grid = np.linspace(x[0] - 0.5, x[-1] + 0.5, 401)
    k_sparse = mn.sparsest_kink_count(x, y)
    out = {}
    for pen in ("l2", "free"):
        for lam in lams:
            v = mn.solve_penalized(x, y, lam, penalty=pen, n_grid=n_grid)
            rec = {"kinks": v.kinks[0], "jumps": v.kinks[1], "n_kinks": int(np.sum(np.abs(v.kinks[1]) > threshold)),
                   "objective": v.objective, "cost": v.cost, "values": v(grid), "hull": v(_hull(x))}
            if pen == "l2":
                rec["sparse_objective"] = mn.best_fit_with_kinks(x, y, lam, k_sparse, penalty=pen, grid=control_grid)[0]
            out[(pen, float(lam))] = rec
    return out


def training_table(tr: dict[str, Any], reg: dict[str, Any]) -> pd.DataFrame:
    """The runs of :func:`training` with the exact regularised answer of their own objective
    (bias-penalised for ``wd_all``, bias-free for ``wd_nobias``; NaN for plain GD): its objective, its kink
    count, the sup distance on the data hull between network and exact fit, and (the control of the
    closeness claim) the sup distance to the exact fit of the other penalty at the same lambda."""
    runs = tr["runs"]
    own = [("l2" if me == "wd_all" else "free", lam) if me != "gd_small" else None for me, lam in zip(runs.method, runs.lam)]
    other = [(("free" if k[0] == "l2" else "l2"), k[1]) if k else None for k in own]

    def sup(keys):
        return np.array([np.abs(tr["f_hull"][i] - reg[k]["hull"]).max() if k else np.nan for i, k in enumerate(keys)])

    return runs.assign(exact_objective=[reg[k]["objective"] if k else np.nan for k in own],
                       exact_regularised_kinks=[reg[k]["n_kinks"] if k else -1 for k in own],
                       sup_to_regularised=sup(own), sup_to_other_fit=sup(other))


# -------------------------------------------------------------------------------------------------
# tables shown by the chapter
# -------------------------------------------------------------------------------------------------


def examples_table(ex: dict[str, Any]) -> pd.DataFrame:
    """One row per example: the sparsest count, kinks and cost of both certified minimisers, sum |kappa|
    and the larger certified gap."""
    return pd.DataFrame.from_dict(
        {name: {"sparsest": e["sparsest"], "kinks, biases penalised": e["l2"]["n_kinks"],
                "cost, biases penalised": e["l2"]["cost"], "kinks, biases free": e["free"]["n_kinks"],
                "cost, biases free": e["free"]["cost"], "sum |kappa|": e["biasfree_value"],
                "max gap": max(e["l2"]["gap"], e["free"]["gap"])} for name, e in ex.items()}, orient="index")


def family_table(e: dict[str, Any]) -> pd.DataFrame:
    """The bias-free family of one example and the control member: kinks, R and R-bar."""
    members = {**e["family"], "kink at x_3 moved (control)": e["moved"]}
    return pd.DataFrame.from_dict({k: {"kinks": v["kinks"].size, "R (biases free)": v["cost_free"], "R-bar": v["cost_l2"]}
                                   for k, v in members.items()}, orient="index")


def probe_table(ex: dict[str, Any]) -> pd.DataFrame:
    """Largest probe width per example, penalty and level."""
    return pd.DataFrame({(name, pen): {f"width, eps={r:g}": w.max() for r, w in e["probe_widths"][pen].items()}
                         for name, e in ex.items() for pen in ("l2", "free")}).T


def counterexample_table(cs: dict[str, Any], names: Sequence[str]) -> pd.DataFrame:
    """For each counterexample: the certified minimiser and the sparsest interpolant (kinks, cost,
    positions, jumps) and the certified gap."""
    rows = {}
    for n in names:
        c = cs[n]
        for label, k, cost, gap in (("minimiser", c["l2"], c["l2"]["cost"], c["l2"]["gap"]),
                                    ("sparsest", c["paired"], c["paired"]["cost_l2"], math.nan)):
            rows[(n, label)] = {"kinks": k["kinks"].size, "cost": cost, "gap": gap,
                                "positions": np.round(k["kinks"], 6) + 0.0, "jumps": np.round(k["jumps"], 6) + 0.0}
    return pd.DataFrame.from_dict(rows, orient="index")


def map_summary(smap: pd.DataFrame) -> pd.DataFrame:
    """The sparsity map per run length and regime: data sets, fraction sparsest, excess kinks, gaps."""
    return smap.groupby(["L", "regime"]).agg(datasets=("rep", "size"), fraction_sparsest=("is_sparsest", "mean"),
                                             mean_excess=("excess", "mean"), max_excess=("excess", "max"),
                                             max_gap=("gap", "max"))


def training_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of :func:`training_table` per method, lambda and width."""
    g = runs.assign(objective_excess=runs.objective / runs.exact_objective - 1).groupby(["method", "lam", "width"])
    return g.agg(loss=("loss", "max"), objective_excess=("objective_excess", "max"), kinks_min=("n_kinks", "min"),
                 kinks_max=("n_kinks", "max"), exact_kinks=("exact_regularised_kinks", "first"),
                 sup_to_exact_fit=("sup_to_regularised", "max"), sup_to_interpolant=("sup_to_l2_interpolant", "max"),
                 imbalance=("imbalance", "max"))


def regularised_table(reg: dict[str, Any], threshold: float) -> pd.DataFrame:
    """The exact regularised fits: kink count, objective, the objective of the best fit with the
    sparsest number of kinks (bias-penalised only) and the kink positions above ``threshold``."""
    return pd.DataFrame.from_dict(
        {f"{pen}, lambda={lam:g}": {"kinks": v["n_kinks"], "objective": v["objective"],
                                    "best sparse fit": v.get("sparse_objective", math.nan),
                                    "positions": np.round(v["kinks"][np.abs(v["jumps"]) > threshold], 3) + 0.0}
         for (pen, lam), v in reg.items()}, orient="index")


# -------------------------------------------------------------------------------------------------
# the measurements behind the claims (each with its negative control)
# -------------------------------------------------------------------------------------------------


def kink_values(rec: dict[str, Any], prefix: str = "kink") -> dict[str, float]:
    """The kink positions of a solution record as claim values: ``{"<prefix> 0": p_0, ...}``."""
    return {f"{prefix} {i}": float(p) for i, p in enumerate(rec["kinks"])}


def formula_error(formula: pd.DataFrame) -> float:
    """Largest relative error of the certified LP optimum against ``sum_k |s_k| W(p_k)``."""
    return float(formula.rel_err.max())


def lower_bound_excess(nets: pd.DataFrame, bias_left_out: bool = False) -> float:
    """Smallest relative excess of a network's parameter norm over the formula of its penalty; with
    ``bias_left_out`` (the control) the bias-free norm against the bias-penalised formula."""
    if bias_left_out:
        free = nets[nets.penalty == "free"]
        return float((free.norm / free.formula_l2 - 1).min())
    return float(nets.excess.min())


def attained_excess(nets: pd.DataFrame) -> float:
    """Largest ``|relative excess|`` of the exact optimal representations (bias-penalised norm)."""
    opt = nets[nets.optimal_representation & (nets.penalty == "l2")]
    return float(opt.excess.abs().max())


def three_point_error(three: pd.DataFrame, what: str = "cost", always_x2: bool = False) -> float:
    """Largest error of the LP against the three-point closed form (``what``: ``"cost"`` or
    ``"position"``); ``always_x2`` (the control): against a kink always at ``x_2``, the tangency cases
    ignored (cost ``|kappa| sqrt(1 + x_2^2)``)."""
    check_choice("what", what, ("cost", "position"))
    if not always_x2:
        return float(three.cost_err.max() if what == "cost" else three.pos_err.max())
    if what == "cost":
        return float((three.cost_lp - three.kappa.abs() * np.hypot(1.0, three.x2)).abs().max())
    return float((three.p_lp - three.x2).abs().max())


def family_cost_error(e: dict[str, Any], member: str | None = None) -> float:
    """Largest relative distance ``|R(f) - lower| / lower`` between the bias-free cost of the family's
    members and the certified lower bound of the bias-free LP; ``member="moved"`` (the control): the
    straight-line interpolant with a kink moved out of the family."""
    lower = e["free"]["lower"]
    costs = [e["moved"]["cost_free"]] if member == "moved" else [v["cost_free"] for v in e["family"].values()]
    return float(max(abs(c - lower) for c in costs) / lower)


def biasfree_value_error(ex: dict[str, Any], penalty: str = "free") -> float:
    """Largest relative distance between the LP optimum of ``penalty`` and ``sum_i |kappa_i|`` over the
    examples (``"l2"``, the bias kept in the norm, is the control)."""
    return float(max(abs(e[penalty]["cost"] / e["biasfree_value"] - 1) for e in ex.values()))


def straddle_kink_error(e: dict[str, Any], tangency: bool = True) -> float:
    """``|p_l2 - (-1/x_1)| + |p_free - x_2|`` for the first kinks on the straddling data; with
    ``tangency=False`` (the control) the bias-penalised kink is expected at the data point ``x_2`` too."""
    x = e["x"]
    target = -1 / x[0] if tangency else x[1]
    return float(abs(e["l2"]["kinks"][0] - target) + abs(e["free"]["kinks"][0] - x[1]))


def probe_width(ex: dict[str, Any], penalty: str, rel: float, names: Sequence[str] | None = None) -> float:
    """Largest width of the uniqueness probe at level ``rel`` over the examples ``names`` (all)."""
    return float(max(e["probe_widths"][penalty][rel].max() for k, e in ex.items() if names is None or k in names))


def probe_ratios(ex: dict[str, Any], rels: Sequence[float]) -> dict[str, float]:
    """Bias-penalised probe width at the tightest level over the width at the loosest, per example."""
    return {f"{k} width ratio": float(e["probe_widths"]["l2"][rels[-1]].max() / max(e["probe_widths"]["l2"][rels[0]].max(), 1e-300))
            for k, e in ex.items()}


def excess_kinks(c: dict[str, Any]) -> int:
    """Kinks of the certified bias-penalised minimiser minus the fewest kinks of any interpolant."""
    return int(c["l2"]["n_kinks"] - c["sparsest"])


def certified_margin(cs: dict[str, Any], names: Sequence[str], penalty: str = "l2") -> float:
    """Smallest relative margin ``(R(sparsest) - lower) / lower`` over the data sets ``names``: how far
    the sparsest interpolant's cost lies above the certified lower bound of every interpolant's cost
    (``penalty="free"``, the bias left out of the norm, is the control)."""
    key = "cost_l2" if penalty == "l2" else "cost_free"
    return float(min((cs[n]["paired"][key] - cs[n][penalty]["lower"]) / cs[n][penalty]["lower"] for n in names))


def closed_form_error(c: dict[str, Any], name: str, sparsest: bool = False) -> float:
    """``|cost - closed form| + max_k |distance of the k-th closed-form kink to the nearest kink|`` of the
    certified minimiser (or, ``sparsest=True``, the control, of the sparsest interpolant)."""
    cost, pos = CLOSED_FORMS[name]
    got_cost, got_pos = (c["paired"]["cost_l2"], c["paired"]["kinks"]) if sparsest else (c["l2"]["cost"], c["l2"]["kinks"])
    return float(abs(got_cost - cost) + max(np.min(np.abs(np.asarray(got_pos) - q)) for q in pos))


def _map_subset(smap: pd.DataFrame, min_run: int = 1, max_run: int | None = None,
                straddling: bool | None = None) -> pd.DataFrame:
    sel = smap.L >= min_run
    if max_run is not None:
        sel &= smap.L <= max_run
    if straddling is not None:
        sel &= smap.straddles == straddling
    return smap[sel]


def sparsest_fraction(smap: pd.DataFrame, max_run: int = 3, straddling: bool = False) -> float:
    """Fraction of data sets whose minimiser has the fewest kinks, among those with runs of length at most
    ``max_run`` and with (``straddling=True``, the control) or without an interval with ``x_i x_{i+1} < -1``."""
    return float(_map_subset(smap, max_run=max_run, straddling=straddling).is_sparsest.mean())


def failure_fraction(smap: pd.DataFrame, min_run: int = 4, max_run: int | None = None,
                     straddling: bool | None = False) -> float:
    """Fraction of data sets whose minimiser is not sparsest, among those with run lengths in
    ``[min_run, max_run]`` (no interval straddling 0 with ``x_i x_{i+1} < -1`` by default)."""
    return float(1 - _map_subset(smap, min_run, max_run, straddling).is_sparsest.mean())


def failure_by_centre(smap: pd.DataFrame, min_run: int = 4, max_run: int | None = None) -> pd.Series:
    """Failure fraction per data centre of the ``centred`` regime, for run lengths in ``[min_run, max_run]``."""
    sub = _map_subset(smap[smap.regime == "centred"], min_run, max_run)
    return 1 - sub.groupby("offset").is_sparsest.mean()


def max_relative_gap(smap: pd.DataFrame, column: str = "gap") -> float:
    """Largest certified relative gap ``gap / (1 + cost)`` of the map's solves (``column="grid_gap"``: that of
    the grid LP alone, the control)."""
    rel = smap.gap / (1 + smap.cost) if column == "gap" else smap[column]
    return float(rel.max())


def objective_excess(runs: pd.DataFrame) -> float:
    """Largest ``|objective / exact global minimum - 1|`` over the weight-decay runs."""
    w = runs[runs.method != "gd_small"]
    return float((w.objective / w.exact_objective - 1).abs().max())


def sparse_fit_excess(reg: dict[str, Any]) -> float:
    """The control of the objective claim: the smallest relative excess, over lambda, of the best
    bias-penalised fit with the sparsest interpolant's number of kinks over the global minimum."""
    return float(min(v["sparse_objective"] / v["objective"] - 1 for (pen, _), v in reg.items() if pen == "l2"))


def objective_seed_spread(runs: pd.DataFrame) -> float:
    """Largest spread (max - min) over seeds of the relative objective excess, per method, lambda and width."""
    w = runs[runs.method != "gd_small"].assign(ex=lambda d: d.objective / d.exact_objective - 1)
    g = w.groupby(["method", "lam", "width"]).ex
    return float((g.max() - g.min()).max())


def loss_exponents(runs: pd.DataFrame, column: str = "loss") -> dict[str, float]:
    """Per weight-decay method, the slope of ``log column`` against ``log lambda`` (least squares over runs)."""
    w = runs[runs.method != "gd_small"]
    return {me: float(np.polyfit(np.log(g.lam), np.log(g[column]), 1)[0]) for me, g in w.groupby("method")}


def exponent_error(runs: pd.DataFrame, column: str = "loss", target: float = 2.0) -> float:
    """Largest ``|exponent - target|`` of :func:`loss_exponents` (``column="penalty_term"`` is the control)."""
    return float(max(abs(v - target) for v in loss_exponents(runs, column).values()))


def kink_match_fraction(runs: pd.DataFrame, column: str = "n_kinks") -> float:
    """Fraction of ``wd_all`` runs whose kink count (``column``; ``"n_kinks_neurons"``, one kink per neuron
    above the threshold, is the control) equals the exact regularised fit's."""
    wd = runs[runs.method == "wd_all"]
    return float((wd[column] == wd.exact_regularised_kinks).mean())


def kink_gap(runs: pd.DataFrame, column: str = "n_kinks") -> int:
    """Fewest kinks of a ``wd_nobias`` run minus the most of a ``wd_all`` run (``column="n_kinks_init"``,
    the networks at initialisation, is the control)."""
    return int(runs.loc[runs.method == "wd_nobias", column].min() - runs.loc[runs.method == "wd_all", column].max())


def sup_distance(runs: pd.DataFrame, column: str = "sup_to_regularised") -> float:
    """Largest sup distance on the hull of a ``wd_all`` network to the exact fit (``column=
    "sup_to_other_fit"``: to the bias-free exact fit at the same lambda, the control)."""
    return float(runs.loc[runs.method == "wd_all", column].max())


def max_imbalance(runs: pd.DataFrame, methods: Sequence[str] = ("gd_small", "wd_all"), smallest: bool = False) -> float:
    """Largest (``smallest=True``: smallest) relative imbalance ``max_j |a_j^2 - w_j^2 - b_j^2| / max_j a_j^2``
    over the runs of ``methods``."""
    v = runs.loc[runs.method.isin(list(methods)), "imbalance"]
    return float(v.min() if smallest else v.max())


# -------------------------------------------------------------------------------------------------
STUDIES = (cost_networks, cost_formula, three_point, examples, counterexamples, sparsity_map, training, regularised)


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (``python -m lib study ch03``)."""
    P = params(ctx.profile)
    return {fn.__name__: ctx.study(fn, getattr(P, fn.__name__)) for fn in STUDIES}


def bench_workload(runs: int, device: Any) -> engine.Workload:
    """The training step of :func:`training` (Adam, weight decay on all parameters, width 256, the
    six-point data set) for ``runs`` runs: batched as one tensor program vs. one run at a time in NumPy."""
    check_positive("runs", runs, integer=True)
    device = torch.device(device)
    x, y = _data("convex-far")
    m = 256
    grid = pd.DataFrame({"method": ["wd_all"] * runs, "lam": [1e-2] * runs, "width": [m] * runs, "seed": range(runs)})
    X, Y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    tr = _Trainer(grid, X, Y, lr_adam=1e-3, lr_gd=1e-3, decay_start=1.0, lr_floor=1.0, small_scale=1.0,
                  device=device, seed=0)

    th0, ph0 = tr.params()  # the loop starts from the batched runs' own initial parameters
    th = [th0[k].cpu().numpy().copy() for k in range(runs)]
    ph = [ph0[k].cpu().numpy().copy() for k in range(runs)]
    mom = [[np.zeros((3, m)), np.zeros((3, m)), np.zeros(2), np.zeros(2)] for _ in range(runs)]
    t = [0]

    def loop_step() -> None:  # the same Adam as lib.optim (bias-corrected), one run at a time
        t[0] += 1
        c1, c2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
        for k in range(runs):
            a, w, b = th[k]
            pre = np.outer(x, w) + b
            h = np.maximum(pre, 0.0)
            r = h @ a + ph[k][0] * x + ph[k][1] - y
            d = r[:, None] * a * (pre > 0)
            g = np.stack([h.T @ r + 1e-2 * a, x @ d + 1e-2 * w, d.sum(0) + 1e-2 * b])
            gp = np.array([r @ x, r.sum()])
            for P, G, M, V in ((th[k], g, *mom[k][0:2]), (ph[k], gp, *mom[k][2:4])):
                M *= 0.9
                M += 0.1 * G
                V *= 0.999
                V += 0.001 * G * G
                P -= 1e-3 * (M / c1) / (np.sqrt(V / c2) + 1e-8)

    n = x.size
    flops = 12.0 * n * m  # forward (2nm), relu, backward (three nm products) and the Adam update
    return engine.Workload(name="ch03 shallow ReLU + weight decay (Adam)", runs=runs, device=str(device),
                           batched_step=lambda: tr.step(0.0), loop_step=loop_step,
                           flops_per_run_step=flops, matmul_shape=(runs, n, m, 1))
