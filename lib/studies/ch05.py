"""Chapter 5: minimum norm interpolation between known regions (Park, Pelakh & Wojtowytsch,
``park2023minimum``). Every study below is the book's construction; the paper's abstract is all that
could be read of it.

Studies (plain functions; the chapter calls them as ``ctx.study(ch05.<study>, P.<study>)``, with ``P``
from :func:`params`, one frozen parameter class per study):

- :func:`conventions` -- exact minimum norm interpolants of the examples under every convention
  (bias penalty l2 / l1 / free, affine term absent / free), with certificates, uniqueness probes, the
  book's fixed-grid LP as a cross-check and, as a control, that LP with its kinks cut to the data hull;
- :func:`lasso_schedules` -- the infinite-width regularised problem (a lasso over the kink dictionary)
  along an (n, m) grid under several lambda schedules;
- :func:`trained_schedules` -- trained networks (full-batch GD with weight decay) on the same grid, and
  the *fast* schedule run on until weight decay has acted (``eta lambda T`` of a few);
- :func:`optimizer_bias` -- GD, SGD, heavy ball and Adam from standard and small initialisation, with and
  without weight decay, over seeds, measured against the exact interpolants of every convention and the
  exact regularised optimum.

The measurements behind the chapter's claims (each with its negative control) are the functions
under "the measurements behind the chapter's claims" at the end: :func:`table_measures`,
:func:`schedule_measures`, :func:`bias_measures`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
import torch
from tqdm import TqdmWarning

# lib.engine imports tqdm.auto, which warns in kernels without ipywidgets; keep chapter outputs clean
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)

from .. import engine, minnorm1d, optim, shallow  # noqa: E402 (after the tqdm filter)
from .. import known_regions as kr  # noqa: E402
from ..checks import ParameterError, check_choice, check_positive, check_profile  # noqa: E402

SCHEDULES = ("derived", "slow", "fixed", "fast", "n-fixed")
METHOD_ORDER = ("gd", "sgd", "momentum", "adam")
CONVENTION_ROWS = (("l2", False), ("l1", False), ("free", False), ("l2", True), ("l1", True), ("free", True))
#: the weight decay of the trained networks (the schedules' lambda_0 and the optimiser study's lambda):
#: large enough that weight decay acts within the step budgets of both profiles
LAM_TRAINED = 1e-2
#: a trained network "reaches the exact regularised optimum" when its objective is within this factor
#: of the lasso's (the schedules' trained runs; the optimiser study uses 1%, see :func:`bias_measures`)
WITHIN = 1.02


# -- parameters -----------------------------------------------------------------------------------
def _examples(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not value:
        raise ParameterError(f"invalid {name}={value!r}: a non-empty sequence of {tuple(kr.EXAMPLES)}")
    for e in value:
        check_choice(name, e, tuple(kr.EXAMPLES))
    return tuple(value)


def _schedules(value) -> tuple[str, ...]:
    if isinstance(value, str) or not value:
        raise ParameterError(f"invalid schedules={value!r}: a non-empty sequence of {SCHEDULES}")
    for s in value:
        check_choice("schedules", s, SCHEDULES)
    return tuple(value)


@dataclass(frozen=True)
class Conventions:
    """:func:`conventions`: the examples of the conventions table and the points of its curves."""

    examples: tuple[str, ...]
    plot_points: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", _examples("examples", self.examples))
        check_positive("plot_points", self.plot_points, integer=True)


@dataclass(frozen=True)
class LassoSchedules:
    """:func:`lasso_schedules`: the (n, m) grid ``n = n0 2^l``, ``m = m0 2^l``, ``l < levels``, and
    ``lambda = lam0 s^(-beta)`` per schedule (:func:`schedule`)."""

    example: str
    schedules: tuple[str, ...]
    levels: int
    n0: int
    m0: int
    lam0: float
    seeds: int

    def __post_init__(self) -> None:
        check_choice("example", self.example, tuple(kr.EXAMPLES))
        object.__setattr__(self, "schedules", _schedules(self.schedules))
        for k in ("levels", "n0", "m0", "seeds"):
            check_positive(k, getattr(self, k), integer=True)
        check_positive("lam0", self.lam0)


@dataclass(frozen=True)
class TrainedSchedules:
    """:func:`trained_schedules`: GD with weight decay on the grid of :class:`LassoSchedules` (same
    example, schedules, ``n0``, ``m0``), ``lr = lr_width / max(m, 32)``, ``steps`` for every run, then the
    *fast* schedule's runs at ``long_level`` continued until ``eta lambda T = long_acted``."""

    example: str
    schedules: tuple[str, ...]
    levels: int
    n0: int
    m0: int
    lam0: float
    lr_width: float
    steps: int
    seeds: int
    long_level: int
    long_acted: float

    def __post_init__(self) -> None:
        check_choice("example", self.example, tuple(kr.EXAMPLES))
        object.__setattr__(self, "schedules", _schedules(self.schedules))
        for k in ("levels", "n0", "m0", "steps", "seeds"):
            check_positive(k, getattr(self, k), integer=True)
        check_positive("lam0", self.lam0), check_positive("lr_width", self.lr_width)
        check_positive("long_acted", self.long_acted)
        if not isinstance(self.long_level, int) or not 0 <= self.long_level < self.levels:
            raise ParameterError(f"invalid long_level={self.long_level!r}: allowed values are 0 .. levels - 1 = {self.levels - 1}")
        if "fast" not in self.schedules:
            raise ParameterError(f"invalid schedules={self.schedules!r}: the long run needs the 'fast' schedule")


@dataclass(frozen=True)
class OptimizerBias:
    """:func:`optimizer_bias`: GD and SGD at ``lr_gd``, heavy ball (``momentum``) at ``lr_momentum``, Adam
    at ``lr_adam``; initial scales ``scales``; weight decay 0 or ``lam``; ``seeds`` seeds."""

    example: str
    n: int
    width: int
    lam: float
    steps: int
    lr_gd: float
    lr_momentum: float
    lr_adam: float
    momentum: float
    scales: tuple[float, ...]
    seeds: int
    batch_size: int

    def __post_init__(self) -> None:
        check_choice("example", self.example, tuple(kr.EXAMPLES))
        for k in ("n", "width", "steps", "seeds", "batch_size"):
            check_positive(k, getattr(self, k), integer=True)
        for k in ("lam", "lr_gd", "lr_momentum", "lr_adam", "momentum"):
            check_positive(k, getattr(self, k))
        if self.momentum >= 1:
            raise ParameterError(f"invalid momentum={self.momentum!r}: must be < 1")
        if isinstance(self.scales, str) or not self.scales:
            raise ParameterError(f"invalid scales={self.scales!r}: a non-empty sequence of positive numbers")
        for v in self.scales:
            check_positive("scales", v)
        object.__setattr__(self, "scales", tuple(self.scales))

    @property
    def lr(self) -> dict[str, float]:
        return {"gd": self.lr_gd, "sgd": self.lr_gd, "momentum": self.lr_momentum, "adam": self.lr_adam}


@dataclass(frozen=True)
class Params:
    """One field per study, named as the study function."""

    conventions: Conventions
    lasso_schedules: LassoSchedules
    trained_schedules: TrainedSchedules
    optimizer_bias: OptimizerBias


def _full() -> Params:
    grid = LassoSchedules(example="step", schedules=SCHEDULES, levels=6, n0=16, m0=16, lam0=2e-3, seeds=5)
    return Params(
        conventions=Conventions(examples=("step", "plateau", "tent", "shelf", "hinge"), plot_points=401),
        lasso_schedules=grid,
        # the lambda_0 of training is larger than the lasso's, so that weight decay acts within the budget;
        # the long run stays at s = 4: under the fast schedule eta lambda ~ s^-3, so eta lambda T = 6 at
        # s = 8 would take 1.5 million steps
        trained_schedules=TrainedSchedules(example=grid.example, schedules=grid.schedules, levels=4, n0=grid.n0, m0=grid.m0,
                                           lam0=LAM_TRAINED, lr_width=3.2, steps=40000, seeds=3, long_level=2, long_acted=6.0),
        # heavy ball's step is GD's times (1 - momentum), so that the effective step lr / (1 - momentum) matches
        optimizer_bias=OptimizerBias(example="tent", n=32, width=256, lam=LAM_TRAINED, steps=40000, lr_gd=0.0125,
                                     lr_momentum=0.00125, lr_adam=1e-3, momentum=0.9, scales=(1.0, 0.05), seeds=5,
                                     batch_size=8),
    )


def params(profile: str) -> Params:
    """The parameters of every study for ``profile``: ``full`` (paper scale; a CPU runs it in minutes),
    and ``fast`` (about a minute on one CPU core) derived from it by replacing what differs."""
    check_profile(profile)
    full = _full()
    if profile == "full":
        return full
    return replace(
        full,
        lasso_schedules=replace(full.lasso_schedules, levels=4, seeds=1),
        trained_schedules=replace(full.trained_schedules, levels=3, steps=12000, seeds=1),
        optimizer_bias=replace(full.optimizer_bias, width=32, steps=8000, lr_gd=0.1, lr_momentum=0.01, lr_adam=3e-3, seeds=2),
    )


def _short(v) -> str:
    if isinstance(v, (list, tuple)):
        if len(v) > 5 and all(isinstance(u, (int, float)) for u in v):
            return f"{len(v)} values in [{min(v):g}, {max(v):g}]"
        return ", ".join(_short(u) for u in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def describe(P: Params) -> pd.DataFrame:
    """``P`` as a table: one row per (study, parameter), values as short strings; a value equal to the
    same parameter of an earlier study reads "as in <study>" (the values derived from it)."""
    rows, seen = [], {}
    for f in fields(P):
        for g in fields(getattr(P, f.name)):
            v = _short(getattr(getattr(P, f.name), g.name))
            first = seen.setdefault((g.name, v), f.name)
            rows.append({"study": f.name, "parameter": g.name, "value": v if first == f.name else f"as in {first}"})
    return pd.DataFrame(rows).set_index(["study", "parameter"])


# -- conventions ------------------------------------------------------------------------------
def exact(regions: kr.Regions, convention: str, affine: bool) -> minnorm1d.Solution:
    """The exact minimum norm interpolant of ``regions`` (chapter 3's certified LP, regions mode)."""
    return minnorm1d.solve(None, None, regions=kr.as_minnorm_regions(regions), penalty=convention, affine=affine, on_fail="raise")


def _tent_geometry(R: kr.Regions) -> tuple[float, float]:
    """``(h, a)`` of a tent ``h - |x|`` on ``+-[a, 1]``."""
    return R.offsets[0], R.intervals[1][0]


def _shelf_geometry(R: kr.Regions) -> tuple[float, float]:
    """``(h, p)`` of a shelf: ``h`` on the left region, ``h + (x - p)`` from ``p`` on."""
    return R.offsets[0], R.intervals[1][0]


def closed_form_norm(name: str, convention: str, affine: bool) -> float:
    """The book's closed forms for the default examples (NaN where none is derived)."""
    R = kr.example(name)
    rho = lambda t: float(kr.kink_cost(t, convention))
    if name == "step":
        return kr.step_norm(*R.gaps[0], convention)
    if name == "plateau":
        return sum(kr.step_norm(*g, convention) for g in R.gaps)
    if name == "tent":  # h - |x| on +-[a, 1]
        h, a = _tent_geometry(R)
        if affine or convention == "free":
            return 2.0
        if convention == "l2":
            return min(h + 2.0, h - a + 2 * rho(a))
        return h + 2.0
    if name == "shelf":  # h on the left region, h + (x - p) on [p, .]
        h, p = _shelf_geometry(R)
        if convention == "free":
            return 1.0
        if affine:
            return rho(p)
        if convention == "l2":
            return rho(p) + h / rho(p)
        return rho(p) + h / p
    if name == "hinge":  # level on the left, level + slope x on the right: one kink of jump slope at 0
        if affine or convention == "free":
            return abs(R.slopes[1])
        if convention == "l1":
            return R.offsets[0] + abs(R.slopes[1])
    return float("nan")


def classical_norm(name: str, convention: str, affine: bool) -> float:
    """The cost of the *classical* interpolant (each piece continued until the next one meets it; parallel
    pieces joined by a ramp across the gap), its constant part built by the constant neuron: the plausible
    wrong answer that the closed forms must differ from on sloped targets (the chapter's control)."""
    R = kr.example(name)
    rho = lambda t: float(kr.kink_cost(t, convention))
    c0 = 0.0 if affine else kr.constant_cost(convention)
    if name in ("step", "plateau"):
        return closed_form_norm(name, convention, affine)
    if name == "tent":
        h, _ = _tent_geometry(R)
        return 2 * rho(0.0) + c0 * h
    if name == "shelf":
        h, p = _shelf_geometry(R)
        return rho(p) + c0 * h
    if name == "hinge":
        return abs(R.slopes[1]) * rho(0.0) + c0 * R.offsets[0]
    return float("nan")


def hull_knots(R: kr.Regions) -> np.ndarray:
    """The book LP's kink grid cut to the data hull: the plausible wrong dictionary (optimal kinks may lie
    outside the data)."""
    t = kr.kink_grid(R)
    lo, hi = R.hull
    return t[(t >= lo) & (t <= hi)]


def conventions(*, examples: tuple[str, ...], plot_points: int, device=None, seed: int = 0) -> dict:
    """Exact interpolants of each example under each convention: norm, certified lower bound, kinks,
    value range at the gap midpoints (uniqueness), the closed form, the book's independent LP, and (as a
    control) the book's LP with the kinks restricted to the data hull."""
    Conventions(examples=examples, plot_points=plot_points)
    rows, curves = [], {}
    for name in examples:
        R = kr.example(name)
        lo, hi = R.hull
        z = np.linspace(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo), plot_points)
        mids = [0.5 * (l + r) for l, r in R.gaps]
        for conv, aff in CONVENTION_ROWS:
            sol = exact(R, conv, aff)
            ranges = [minnorm1d.value_range(sol, m, rel=1e-8) for m in mids]
            mine = kr.min_norm_interpolant(R, conv, affine=aff, probes=[])
            hull = kr.min_norm_interpolant(R, conv, affine=aff, knots=hull_knots(R), probes=[])
            p, s = sol.kinks
            p = np.where(np.abs(p) < 1e-9, 0.0, p)
            rows.append({
                "example": name, "convention": conv, "affine": aff, "norm": sol.cost, "lower": sol.lower,
                "closed_form": closed_form_norm(name, conv, aff), "book_lp": mine.norm,
                "hull_lp": hull.norm, "hull_lower": hull.lower_bound,
                "kinks": ", ".join(f"{t:.3g}" for t in p), "jumps": ", ".join(f"{j:.3g}" for j in s),
                "leftmost_kink": float(p.min()) if len(p) else float("nan"),
                "mid": float(mids[0]), "f_mid": float(sol(mids[0])),
                "range_lo": min(r[0] for r in ranges), "range_hi": max(r[1] for r in ranges),
                "spread": max(r[1] - r[0] for r in ranges),
            })
            curves[(name, conv, aff)] = sol(z)
            if (conv, aff) == ("l2", False):
                curves[(name, "kinks")] = np.stack([p, sol(p)])
        curves[(name, "x")] = z
        curves[(name, "target")] = R.target(z)
    df = pd.DataFrame(rows)
    df["unique"] = df["spread"] < 1e-2
    return {"table": df, "curves": curves}


# -- explicit regularisation ----------------------------------------------------------------------
def schedule(name: str, level: int, *, n0: int, m0: int, lam0: float) -> tuple[int, int, float]:
    """``(n, m, lambda)`` at ``level`` (scale ``s = 2^level``, ``n = n0 s``, ``m = m0 s``).

    ``derived``: ``lambda = lam0 s^(-2/5)`` -- one schedule satisfying the book's sufficient condition
    (lambda -> 0, m lambda -> infinity, and sqrt(log n / n) = o(lambda)); any exponent in (-1/2, 0)
    does; ``slow``: ``lam0 s^(-1/10)``, slower and still admissible; ``fixed``: ``lam0``; ``fast``:
    ``lam0 s^(-2)`` (m lambda -> 0); ``n-fixed``: the derived lambda with ``n = n0``.
    """
    check_choice("schedule", name, SCHEDULES)
    s = 2.0**level
    expo = {"derived": -2 / 5, "slow": -1 / 10, "fixed": 0.0, "fast": -2.0, "n-fixed": -2 / 5}[name]
    n = n0 if name == "n-fixed" else int(n0 * s)
    return n, int(m0 * s), float(lam0 * s**expo)


def _grid(schedules, levels, n0, m0, lam0, seeds) -> pd.DataFrame:
    runs = engine.grid(schedule=list(schedules), level=list(range(levels)), seed=list(range(seeds)))
    nml = [schedule(r.schedule, r.level, n0=n0, m0=m0, lam0=lam0) for r in runs.itertuples()]
    runs["n"], runs["m"], runs["lam"] = zip(*nml)
    return runs


def _data(R: kr.Regions, n: int, seed: int, rep: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample of size ``n`` for repetition ``rep`` (nested across studies: same seed, same data)."""
    return kr.sample(R, n, np.random.default_rng([seed, rep, n]))


def lasso_schedules(*, example: str, schedules: tuple[str, ...], levels: int, n0: int, m0: int, lam0: float, seeds: int, device=None, seed: int = 0) -> dict:
    """The infinite-width regularised minimiser (lasso over the kink dictionary, l2 convention, no
    affine term) for every ``(schedule, level, seed)``; distances in the gap to the region interpolant.
    Also the distance of the min-norm interpolant of the ``n0`` samples (where the n-fixed schedule must
    go) and, as a control, of those samples with the gap ends added."""
    LassoSchedules(example=example, schedules=schedules, levels=levels, n0=n0, m0=m0, lam0=lam0, seeds=seeds)
    R = kr.example(example)
    ref = exact(R, "l2", False)
    knots = kr.kink_grid(R, spacing=0.02, region_spacing=0.02)
    dic = kr.Dictionary(knots, "l2", False)
    z = R.gap_points(101)
    runs = _grid(schedules, levels, n0, m0, lam0, seeds)
    out = []
    for r in runs.itertuples():  # one convex program per problem (interior point, per-problem by nature)
        x, y = _data(R, r.n, seed, r.seed)
        c, risk, norm = kr.lasso(x, y, r.lam, "l2", knots=knots)
        f = dic.features(z) @ c
        out.append((kr.gap_distance(f, ref(z)), float(np.interp(0.0, z, f)), risk, norm))
    d, f0, risk, norm = map(np.array, zip(*out))
    ends = np.ravel(R.gaps)

    def sample_distance(with_ends: bool) -> np.ndarray:
        d = []
        for s in range(seeds):
            x, y = _data(R, n0, seed, s)
            if with_ends:
                x, y = np.concatenate([x, ends]), np.concatenate([y, R.target(ends)])
                x, y = x[np.argsort(x)], y[np.argsort(x)]
            sol = minnorm1d.solve(x, y, penalty="l2", affine=False, on_fail="raise")
            d.append(kr.gap_distance(sol(z), ref(z)))
        return np.array(d)

    return {"runs": engine.tidy(runs, distance=d, f0=f0, risk=risk, norm=norm), "min_norm": ref.cost,
            "sample_interpolant_distance": sample_distance(False),
            "sample_with_ends_distance": sample_distance(True)}


def trained_schedules(*, example: str, schedules: tuple[str, ...], levels: int, n0: int, m0: int, lam0: float, lr_width: float,
                      steps: int, seeds: int, long_level: int, long_acted: float, device=None, seed: int = 0) -> dict:
    """Full-batch GD with weight decay (biases decayed, no affine term) on the (n, m) grid of
    :func:`lasso_schedules`: the runs of each level (all schedules and seeds) as one tensor program,
    sample sizes padded and masked; learning rate ``lr_width / max(m, 32)`` (the loss Hessian grows like
    the width under this initialisation), ``steps`` steps. Each run is compared with the exact lasso
    optimum at its own data and lambda.

    ``long``: the *fast* schedule's runs at ``long_level`` continued (:func:`lib.known_regions.continue_gd`)
    until ``eta lambda T = long_acted``, and, as a control, the same extra steps with weight decay off."""
    TrainedSchedules(example=example, schedules=schedules, levels=levels, n0=n0, m0=m0, lam0=lam0, lr_width=lr_width,
                     steps=steps, seeds=seeds, long_level=long_level, long_acted=long_acted)
    R = kr.example(example)
    ref = exact(R, "l2", False)
    runs = _grid(schedules, levels, n0, m0, lam0, seeds)
    lr_of = lambda m: lr_width / np.maximum(m, 32)
    dev = torch.device(device or "cpu")
    t = lambda a: torch.as_tensor(np.array(a, float), dtype=torch.float64, device=dev)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    z = R.gap_points(101)
    B = len(runs)
    f, f0 = np.zeros((B, len(z))), np.zeros(B)
    out = {k: [None] * B for k in ("risk", "norm", "grad", "objective", "history", "obj_history")}
    long_start = None
    # one tensor program per level (runs of a level share the width; padding across levels would
    # multiply the work by up to 4x per level of difference)
    for level in sorted(runs.level.unique()):
        idx = np.flatnonzero(runs.level.values == level)
        sub = runs.iloc[idx]
        nmax, mmax = int(sub.n.max()), int(sub.m.max())
        X, Y, V = np.zeros((len(idx), nmax)), np.zeros((len(idx), nmax)), np.zeros((len(idx), nmax))
        for i, r in enumerate(sub.itertuples()):
            X[i, : r.n], Y[i, : r.n] = _data(R, r.n, seed, r.seed)
            V[i, : r.n] = 1.0
        res = kr.train(
            t(X), t(Y), t(V), width=mmax, widths=torch.as_tensor(np.array(sub.m.values), device=dev),
            methods=["gd"] * len(idx), lr=t(lr_of(sub.m.values)), wd=t(sub.lam.values), steps=steps,
            init_scale=t(np.ones(len(idx))), generator=g, records=30,
        )
        engine.check_finite(res.loss[:, -1:], what="GD with weight decay", hint="reduce lr_width", runs=sub)
        f[idx] = kr.evaluate(res.net, z)
        f0[idx] = kr.evaluate(res.net, np.array([0.0]))[:, 0]
        for j, i in enumerate(idx):
            out["risk"][i], out["norm"][i], out["grad"][i] = res.loss[j, -1], res.norm[j, -1], res.grad_norm[j]
            out["objective"][i], out["history"][i], out["obj_history"][i] = res.objective[j, -1], res.norm[j], res.objective[j]
        if level == long_level:
            j = np.flatnonzero(sub.schedule.values == "fast")
            net = res.net
            long_start = (idx[j], shallow.ShallowNet(net.a[j], net.w[j], net.b[j], mask=net.mask[j]), X[j], Y[j], V[j])
    # the exact infinite-width optimum at the same (data, lambda): what a global minimiser approaches
    knots = kr.kink_grid(R, spacing=0.02, region_spacing=0.02)
    dic = kr.Dictionary(knots, "l2", False)
    lasso = [kr.lasso(*_data(R, r.n, seed, r.seed), r.lam, "l2", knots=knots) for r in runs.itertuples()]
    lasso_f = np.stack([dic.features(z) @ c for c, _, _ in lasso])
    lasso_obj = np.array([risk + r.lam * norm for (_, risk, norm), r in zip(lasso, runs.itertuples())])
    table = engine.tidy(
        runs, lr=lr_of(runs.m.values), distance=kr.gap_distance(f, ref(z)[None]), f0=f0,
        risk=np.array(out["risk"]), norm=np.array(out["norm"]), grad=np.array(out["grad"]),
        d_lasso=kr.gap_distance(f, lasso_f), objective=np.array(out["objective"]), lasso_objective=lasso_obj,
        lasso_norm=np.array([n for _, _, n in lasso]),
    )
    return {
        "runs": table, "steps": res.steps, "norm_history": np.stack(out["history"]),
        "objective_history": np.stack(out["obj_history"]), "min_norm": ref.cost,
        "long": _long_run(long_start, table, lasso_f, ref(z), z, steps=steps, acted=long_acted),
    }


def _long_run(start, table: pd.DataFrame, lasso_f: np.ndarray, ref_z: np.ndarray, z: np.ndarray, *, steps: int, acted: float) -> dict:
    """Continue the fast schedule's runs (``start``: their rows, state and data) until
    ``eta lambda T = acted``, with weight decay and (control) without it over the same extra steps."""
    rows, net, X, Y, V = start
    k = len(rows)
    lr, lam = table.lr.values[rows], table.lam.values[rows]
    total = int(math.ceil(acted / float(np.min(lr * lam))))
    two = shallow.ShallowNet(*(torch.cat([p, p]) for p in (net.a, net.w, net.b)), mask=torch.cat([net.mask, net.mask]))
    res = kr.continue_gd(two, np.tile(X, (2, 1)), np.tile(Y, (2, 1)), np.tile(V, (2, 1)), lr=np.tile(lr, 2),
                         wd=np.concatenate([lam, np.zeros(k)]), steps=max(0, total - steps), records=25)
    pen = shallow.penalty(res.net).cpu().numpy()
    obj = res.loss[:, -1] + np.tile(lam, 2) * pen  # the objective at lambda, weight decay on or off
    lo = table.lasso_objective.values[rows]
    f = kr.evaluate(res.net, z)[:k]
    return {
        "level": int(table.level.values[rows[0]]), "rows": rows, "steps": steps + res.steps,
        "eta_lam_t": (steps + res.steps) * float(lr[0] * lam[0]), "eta_lam_T_budget": float(np.max(lr * lam) * steps),
        "ratio": obj[:k] / lo, "ratio_wd_off": obj[k:] / lo, "ratio_budget": table.objective.values[rows] / lo,
        "ratio_history": res.objective[:k] / lo[:, None],
        "norm_ratio": res.norm[:k, -1] / table.lasso_norm.values[rows],
        "distance": kr.gap_distance(f, ref_z[None]), "d_lasso": kr.gap_distance(f, lasso_f[rows]),
        "risk": res.loss[:k, -1], "grad": res.grad_norm[:k], "m_lam": table.m.values[rows] * lam,
    }


# -- implicit bias of optimisers ----------------------------------------------------------------
def optimizer_bias(*, example: str, n: int, width: int, lam: float, steps: int, lr_gd: float, lr_momentum: float, lr_adam: float,
                   momentum: float, scales: tuple[float, ...], seeds: int, batch_size: int, device=None, seed: int = 0) -> dict:
    """Optimisers x initialisations x weight decay (0 or ``lam``) x seeds on one sample of ``n`` points,
    one tensor program. Each run is measured against the exact min-norm interpolants of the sample under
    every convention and against the exact regularised optima (lasso at ``lam``) of the l2-bias
    convention (what weight decay on every parameter gives) and, for comparison, of the |w|+|b|
    convention."""
    P = OptimizerBias(example=example, n=n, width=width, lam=lam, steps=steps, lr_gd=lr_gd, lr_momentum=lr_momentum,
                      lr_adam=lr_adam, momentum=momentum, scales=scales, seeds=seeds, batch_size=batch_size)
    lr = P.lr
    R = kr.example(example)
    x, y = _data(R, n, seed, 0)
    runs = engine.grid(method=list(METHOD_ORDER), init=list(scales), wd=[0.0, lam], seed=list(range(seeds)))
    B = len(runs)
    dev = torch.device(device or "cpu")
    t = lambda a: torch.as_tensor(np.array(a, float), dtype=torch.float64, device=dev)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    res = kr.train(
        t(np.tile(x, (B, 1))), t(np.tile(y, (B, 1))), t(np.ones((B, n))), width=width,
        methods=list(runs.method), lr=t([lr[k] for k in runs.method]), wd=t(runs.wd.values), steps=steps,
        init_scale=t(runs.init.values), batch_size=batch_size, momentum=momentum, generator=g, records=60,
    )
    engine.check_finite(res.loss[:, -1:], what="training", hint="reduce the learning rate lr", runs=runs)
    z = R.gap_points(101)
    f = kr.evaluate(res.net, z)
    refs = {f"{c}{'+affine' if a else ''}": minnorm1d.solve(x, y, penalty=c, affine=a, on_fail="raise") for c, a in CONVENTION_ROWS[:3]}
    knots = kr.kink_grid(R, spacing=0.01, region_spacing=0.01)
    coef, risk, norm = kr.lasso(x, y, lam, "l2", knots=knots)
    lasso_f = kr.Dictionary(knots, "l2", False).features(z) @ coef
    # the regularised optimum of another convention at the same lambda: does training pick the
    # convention of weight decay, or only shrink?
    coef1, risk1, norm1 = kr.lasso(x, y, lam, "l1", knots=knots)
    lasso1_f = kr.Dictionary(knots, "l1", False).features(z) @ coef1
    dist = {f"d_{k}": kr.gap_distance(f, s(z)[None]) for k, s in refs.items()}
    zp = np.linspace(-1.25, 1.25, 251)
    return {
        "runs": engine.tidy(runs, risk=res.loss[:, -1], norm=res.norm[:, -1], objective=res.objective[:, -1],
                            grad=res.grad_norm, d_lasso=kr.gap_distance(f, lasso_f[None]),
                            d_lasso_l1=kr.gap_distance(f, lasso1_f[None]), **dist),
        "penalty": shallow.penalty(res.net).cpu().numpy(), "lam": lam,
        "ref_norm": {k: s.cost for k, s in refs.items()}, "lasso": {"risk": risk, "norm": norm, "objective": risk + lam * norm,
                  "d_l2": float(kr.gap_distance(lasso_f, refs["l2"](z))), "d_l1": float(kr.gap_distance(lasso_f, refs["l1"](z))),
                  "f0": float(np.interp(0.0, z, lasso_f))},
        "lasso_l1": {"risk": risk1, "norm": norm1, "d_lasso": float(kr.gap_distance(lasso1_f, lasso_f)),
                     "f0": float(np.interp(0.0, z, lasso1_f))},
        "steps": res.steps, "norm_history": res.norm, "x": x, "y": y, "z": zp, "f": kr.evaluate(res.net, zp),
        "ref_curves": {k: s(zp) for k, s in refs.items()}, "lasso_curve": kr.Dictionary(knots, "l2", False).features(zp) @ coef,
    }


# -- benchmark and driver --------------------------------------------------------------------------
def bench_workload(runs: int, device) -> engine.Workload:
    """One full-batch GD step with weight decay of the chapter's training workload (the ``fast``
    optimiser study's sample size, width, weight decay and GD step: n = 32 points, width 32, 1-D inputs):
    ``runs`` networks batched vs a per-run NumPy loop."""
    dev = torch.device(device)
    ob = params("fast").optimizer_bias
    n, m, lam, lr = ob.n, ob.width, ob.lam, ob.lr_gd
    R = kr.example(ob.example)
    x, y = kr.sample(R, n, np.random.default_rng(0))
    X = torch.as_tensor(np.tile(x, (runs, 1)), device=dev)
    Y = torch.as_tensor(np.tile(y, (runs, 1)), device=dev)
    W = torch.full_like(X, 1.0 / n)
    net = shallow.init(runs, m, 1, generator=torch.Generator(device=dev).manual_seed(0), device=dev)
    opt = optim.BatchedOptimizer(net.tensors, method="gd", lr=lr, wd=lam)
    P = [(t[0].cpu().numpy().copy(), t[1].cpu().numpy()[:, 0].copy(), t[2].cpu().numpy().copy()) for t in zip(net.a, net.w, net.b)]

    def batched_step() -> None:
        _, grads = kr._grads(net, X, Y, W)
        opt.step(grads)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def loop_step() -> None:
        for a, w, b in P:
            kr.gd_step_numpy(a, w, b, x, y, lr, lam)

    return engine.Workload(f"ch05 GD + weight decay (n={n}, m={m})", runs, str(dev), batched_step, loop_step,
                           flops_per_run_step=14.0 * n * m, matmul_shape=(runs, n, m, 1))


def run_all(ctx) -> dict:
    """Every study of the chapter through the cache (``python -m lib study ch05``)."""
    P = params(ctx.profile)
    return {
        "conventions": ctx.study(conventions, P.conventions),
        "lasso_schedules": ctx.study(lasso_schedules, P.lasso_schedules),
        "trained_schedules": ctx.study(trained_schedules, P.trained_schedules),
        "optimizer_bias": ctx.study(optimizer_bias, P.optimizer_bias),
    }


# -- the measurements behind the chapter's claims ----------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """What a claim measures: ``value``, the same measurement with a named wrong ingredient
    (``control``: description, value), further reported numbers, and the book's expected value where a
    closed form gives one."""

    value: float
    control: tuple[str, float]
    values: dict = field(default_factory=dict)
    expected: float | None = None


def _row(df: pd.DataFrame, example: str, convention: str, affine: bool) -> pd.Series:
    r = df[(df.example == example) & (df.convention == convention) & (df.affine == affine)]
    if len(r) != 1:
        raise KeyError(f"no single row for {example}, {convention}, affine={affine}")
    return r.iloc[0]


def gap_sup(conv: dict, name: str, key_a: tuple[str, bool], key_b: tuple[str, bool]) -> float:
    """``sup`` over the gaps of ``|f_a - f_b|`` for two conventions' interpolants of example ``name``."""
    cur = conv["curves"]
    inside = kr.example(name).in_gaps(cur[(name, "x")])
    return float(np.max(np.abs(cur[(name, *key_a)][inside] - cur[(name, *key_b)][inside])))


def _step_like(df: pd.DataFrame) -> list[str]:
    return [e for e in ("step", "plateau") if e in set(df.example)]


def closed_forms(conv: dict) -> Measure:
    """Largest ``|LP norm - closed form|`` over the rows with a closed form; control: the same against the
    classical interpolant's cost (:func:`classical_norm`)."""
    cf = conv["table"].dropna(subset=["closed_form"])
    classical = np.array([classical_norm(r.example, r.convention, r.affine) for r in cf.itertuples()])
    return Measure(float(np.max(np.abs(cf.norm - cf.closed_form))),
                   ("the classical interpolant (pieces continued until they meet, constant by the constant neuron)",
                    float(np.max(np.abs(cf.norm.values - classical)))),
                   {"rows with a closed form": len(cf)}, expected=0.0)


def certified(conv: dict) -> Measure:
    """Largest relative gap ``(norm - certified lower bound) / norm`` of the exact solver; control: the
    same for the book's LP with its kinks cut to the data hull (:func:`hull_knots`)."""
    df = conv["table"]
    return Measure(float(np.max((df.norm - df.lower) / df.norm)),
                   ("kinks restricted to the data hull (the book's LP)", float(np.max((df.hull_lp - df.hull_lower) / df.hull_lp))))


def two_solvers(conv: dict) -> Measure:
    """Largest relative difference of the two solvers' norms; control: the book's LP on the hull only."""
    df = conv["table"]
    return Measure(float(np.max(np.abs(df.norm - df.book_lp) / df.norm)),
                   ("the book's LP with kinks restricted to the data hull", float(np.max(np.abs(df.norm - df.hull_lp) / df.norm))))


def step_agree(conv: dict) -> Measure:
    """Largest gap sup-distance between any convention's interpolant and the primary one, over the
    step-type examples; control: the same over the tent (a sloped target)."""
    df = conv["table"]

    def worst(names):
        return max(gap_sup(conv, e, k, ("l2", False)) for e in names for k in CONVENTION_ROWS)

    return Measure(worst(_step_like(df)), ("a sloped target (the tent) in place of the step-type ones", worst(["tent"])),
                   expected=0.0)


def step_unique(conv: dict) -> Measure:
    """Largest value range at the gap midpoints over near-optimal interpolants, step-type examples;
    control: the same over the tent's rows."""
    df = conv["table"]
    return Measure(float(df[df.example.isin(_step_like(df))].spread.max()),
                   ("a sloped target (the tent) in place of the step-type ones", float(df[df.example == "tent"].spread.max())))


def tent_differ(conv: dict) -> Measure:
    """Gap sup-distance on the tent between the primary interpolant and the free-affine one; the book's
    value is the gap half-width ``a`` (plateau vs tent at 0). Control: the |w|+|b| weight in place of
    sqrt(1 + t^2) (no affine term)."""
    df = conv["table"]
    _, a = _tent_geometry(kr.example("tent"))
    vals = {f"{r.convention}{'+affine' if r.affine else ''}: {q}": v
            for r in df[df.example == "tent"].itertuples() for q, v in (("f(0)", r.f_mid), ("norm", r.norm))}
    return Measure(gap_sup(conv, "tent", ("l2", False), ("l2", True)),
                   ("the |w|+|b| weight in place of sqrt(1 + t^2)", gap_sup(conv, "tent", ("l1", False), ("l2", True))),
                   vals, expected=a)


def free_nonunique(conv: dict) -> Measure:
    """Width of the range of ``f(0)`` on the tent with the bias unpenalised (book: ``[h - a, h]``, width
    ``a``); control: the bias penalised (l2)."""
    df = conv["table"]
    _, a = _tent_geometry(kr.example("tent"))
    free, l2 = _row(df, "tent", "free", False), _row(df, "tent", "l2", False)
    return Measure(float(free.range_hi - free.range_lo), ("the bias penalised (l2)", float(l2.range_hi - l2.range_lo)),
                   {"f(0) min": free.range_lo, "f(0) max": free.range_hi,
                    "max range with penalised bias": float(df[df.convention != "free"].spread.max())}, expected=a)


def shelf_outside(conv: dict) -> Measure:
    """Leftmost kink of the shelf's primary interpolant (book: ``-1/p``); control: with a free affine term."""
    df = conv["table"]
    _, p = _shelf_geometry(kr.example("shelf"))
    return Measure(float(_row(df, "shelf", "l2", False).leftmost_kink),
                   ("a free affine term", float(_row(df, "shelf", "l2", True).leftmost_kink)), expected=-1.0 / p)


def table_measures(conv: dict) -> dict[str, Measure]:
    """Every measurement the chapter claims on the conventions table."""
    return {f.__name__: f(conv) for f in (closed_forms, certified, two_solvers, step_agree, step_unique, tent_differ,
                                          free_nonunique, shelf_outside)}


def _fit_slope(s: np.ndarray, d: np.ndarray) -> float:
    """Least-squares slope of ``log d`` against ``log s``."""
    return float(np.polyfit(np.log(s), np.log(d), 1)[0])


def schedule_distance(lasso: dict) -> pd.DataFrame:
    """Mean gap distance of the lasso optimum to the region interpolant, per schedule (rows) and level."""
    return lasso["runs"].groupby(["schedule", "level"]).distance.mean().unstack("level")


def _at_acted(trained: dict, rows: np.ndarray, acted: float) -> np.ndarray:
    """Each run's objective at its last record with ``eta lambda t <= acted`` (a run stopped early)."""
    T = trained["runs"]
    t = np.asarray(trained["steps"], float)
    out = []
    for i in rows:
        k = np.flatnonzero(t * T.lr.values[i] * T.lam.values[i] <= acted)[-1]
        out.append(trained["objective_history"][i, k])
    return np.array(out)


def schedule_measures(lasso: dict, trained: dict) -> dict[str, Measure]:
    """The measurements the chapter claims on the (n, m) grid: trends of the lasso's gap distance per
    schedule, and whether trained networks reach the exact regularised optimum."""
    L = schedule_distance(lasso)
    s = 2.0 ** np.array(L.columns, float)
    slopes = {k: _fit_slope(s, L.loc[k].values) for k in L.index}
    ratio_last_first = lambda k: float(L.loc[k].values[-1] / L.loc[k].values[0])
    sample_d = float(np.mean(lasso["sample_interpolant_distance"]))
    T = trained["runs"]
    acting = np.flatnonzero(T.schedule.values != "fast")
    ratio = T.objective.values / T.lasso_objective.values
    early = _at_acted(trained, acting, 1.0) / T.lasso_objective.values[acting]
    steps = float(np.asarray(trained["steps"])[-1])
    Lr = trained["long"]
    return {
        "derived_trend": Measure(ratio_last_first("derived"), ("n held fixed (the n-fixed schedule)", ratio_last_first("n-fixed")),
                                 {**{f"d(s={2**l})": v for l, v in L.loc["derived"].items()},
                                  "level-to-level increases": int(np.sum(np.diff(L.loc["derived"].values) > 0))}),
        "derived_rate": Measure(slopes["derived"], ("n held fixed (the n-fixed schedule)", slopes["n-fixed"]),
                                {f"slope {k}": v for k, v in slopes.items()}),
        "fixed_bias": Measure(float(L.loc["fixed"].values[-1] / L.loc["derived"].values[-1]),
                              ("a vanishing lambda (the fast schedule) in place of the fixed one",
                               float(L.loc["fast"].values[-1] / L.loc["derived"].values[-1])),
                              {"fixed: last level / the one before": float(L.loc["fixed"].values[-1] / L.loc["fixed"].values[-2])}),
        "nfixed": Measure(float(L.loc["n-fixed"].values[-1]) - sample_d,
                          ("n growing (the derived schedule)", float(L.loc["derived"].values[-1]) - sample_d),
                          {"distance at last level": float(L.loc["n-fixed"].values[-1]), "samples' interpolant distance": sample_d}),
        "nfixed_floor": Measure(sample_d, ("the samples with the gap ends added", float(np.mean(lasso["sample_with_ends_distance"])))),
        "trained_optimum": Measure(float(np.mean(ratio[acting] <= WITHIN)),
                                   ("the same runs stopped at eta lambda t <= 1", float(np.mean(early <= WITHIN))),
                                   {"median ratio": float(np.median(ratio[acting])), "worst ratio": float(np.max(ratio[acting])),
                                    "smallest eta lambda T": float(np.min((T.lr * T.lam).values[acting]) * steps)}),
        "fast_acts": Measure(float(np.median(Lr["ratio"])),
                             (f"the same runs stopped at the common budget (eta lambda T = {Lr['eta_lam_T_budget']:.3g})",
                              float(np.median(Lr["ratio_budget"]))),
                             {"eta lambda T": float(Lr["eta_lam_t"][-1]), "steps": float(Lr["steps"][-1]),
                              "worst ratio over seeds": float(np.max(Lr["ratio"])),
                              "ratio, extra steps without weight decay": float(np.median(Lr["ratio_wd_off"])),
                              "norm / exact norm": float(np.max(Lr["norm_ratio"])),
                              "m lambda (fast, this level)": float(Lr["m_lam"][0]),
                              "distance to f* (trained, fast)": float(np.mean(Lr["distance"])),
                              "distance to f* (lasso, derived, same level)": float(L.loc["derived"].values[Lr["level"]])}),
    }


def _objective_at(bias: dict) -> np.ndarray:
    """Every run's objective at the study's lambda, ``risk + lam * penalty``, weight decay on or off."""
    return bias["runs"].risk.values + bias["lam"] * bias["penalty"]


def bias_measures(bias: dict, *, tol: float = 0.01, fit: float = 1e-3) -> dict[str, Measure]:
    """The optimiser comparison in numbers: which runs reach the exact regularised optimum (objective
    at lambda within ``tol``), which reference each run is nearest to, and the norms without weight decay
    (a run *fits* when its risk is below ``fit``)."""
    r = bias["runs"].copy()
    r["rel_obj"] = _objective_at(bias) / bias["lasso"]["objective"] - 1.0
    wd, nowd = r[r.wd > 0], r[r.wd == 0]
    ok = wd[wd.rel_obj <= tol]
    fitted = nowd[nowd.risk < fit]
    small = lambda d: d[d.init == r.init.min()]
    std = nowd[nowd.init == r.init.max()]
    ref = bias["ref_norm"]["l2"]
    return {
        "wd_optimum": Measure(float(len(ok) / len(wd)), ("weight decay off (the same optimisers and initialisations)",
                                                          float(np.mean(nowd.rel_obj <= tol))),
                              {**{f"fraction {k}": float((g.rel_obj <= tol).mean()) for k, g in wd.groupby("method", sort=False)},
                               "median gap distance to the optimum": float(ok.d_lasso.median())}),
        "wd_matching": Measure(float((ok.d_lasso / ok.d_lasso_l1).max()),
                               ("weight decay off (the runs that fit)", float((fitted.d_lasso / fitted.d_lasso_l1).max())),
                               {"distance between the two optima": bias["lasso_l1"]["d_lasso"],
                                "l2 optimum's distance to the plateau": bias["lasso"]["d_l2"],
                                "fraction nearer the plateau than the tent (shrinkage alone gives this)": float((ok.d_l2 < ok.d_l1).mean())}),
        "std_init_norm": Measure(float((std.norm / ref).median()),
                                 ("small initialisation (the runs that fit)", float((small(fitted).norm / ref).median())),
                                 {"min ratio": float((std.norm / ref).min())}),
        "small_init_tent": Measure(float((small(fitted).d_l1 < small(fitted).d_l2).mean()),
                                   ("weight decay on (the same initialisation)", float((small(wd).d_l1 < small(wd).d_l2).mean())),
                                   {"fitted runs": len(small(fitted)), "runs": len(small(nowd)),
                                    "median d to tent": float(small(fitted).d_l1.median()),
                                    "median d to plateau": float(small(fitted).d_l2.median())}),
    }


def bias_report(bias: dict, *, tol: float = 0.01, fit: float = 1e-3) -> dict[str, pd.DataFrame]:
    """What the chapter prints next to the optimiser claims: reference values (label variance, values at
    0 of the references and optima, the distance between the two optima), the weight-decay runs not within
    ``tol`` of the optimum, and the runs without weight decay that did not fit."""
    r = bias["runs"].copy()
    r["rel_obj"] = _objective_at(bias) / bias["lasso"]["objective"] - 1.0
    at0 = lambda c: float(np.interp(0.0, bias["z"], c))
    refs = pd.Series({
        "label variance (risk of the constant fit)": float(np.var(bias["y"])),
        "f(0), tent (|w|+|b| interpolant)": at0(bias["ref_curves"]["l1"]),
        "f(0), plateau (l2 interpolant)": at0(bias["ref_curves"]["l2"]),
        "f(0), l2 optimum at lambda": bias["lasso"]["f0"],
        "f(0), |w|+|b| optimum at lambda": bias["lasso_l1"]["f0"],
        "gap distance between the two optima": bias["lasso_l1"]["d_lasso"],
    }, name="value")
    wd, nowd = r[r.wd > 0], r[r.wd == 0]
    return {"references": refs.to_frame(),
            "not_reached": wd[wd.rel_obj > tol][["method", "init", "seed", "risk", "norm", "rel_obj"]],
            "not_fitted": nowd[nowd.risk >= fit][["method", "init", "seed", "risk"]]}
