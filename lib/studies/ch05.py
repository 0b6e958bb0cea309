"""Chapter 5: minimum norm interpolation between known regions (Park, Pelakh & Wojtowytsch,
``park2023minimum``).

Studies (plain functions; the chapter calls them through ``ctx.study``):

- :func:`conventions_table` -- exact minimum norm interpolants of the examples under every convention
  (bias penalty l2 / l1 / free, affine term absent / free), with certificates and uniqueness probes;
- :func:`lasso_schedules` -- the infinite-width regularised problem (a lasso over the kink dictionary)
  along an (n, m) grid under several lambda schedules;
- :func:`trained_schedules` -- trained networks (full-batch GD with weight decay) on the same grid;
- :func:`optimizer_bias` -- GD, SGD, heavy ball and Adam from standard and small initialisation, with and
  without weight decay, over seeds, measured against the exact interpolants of every convention and the
  exact regularised optimum.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from tqdm import TqdmWarning

# lib.engine imports tqdm.auto, which warns in kernels without ipywidgets; keep chapter outputs clean
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)

from .. import engine, minnorm1d, optim, shallow
from .. import known_regions as kr
from ..checks import ParameterError, check_choice, check_positive

SCHEDULES = ("derived", "slow", "fixed", "fast", "n-fixed")
METHOD_ORDER = ("gd", "sgd", "momentum", "adam")
CONVENTION_ROWS = (("l2", False), ("l1", False), ("free", False), ("l2", True), ("l1", True), ("free", True))


def params(profile: str) -> dict:
    """The parameters of every study for ``profile`` (``fast``: about a minute on one CPU core)."""
    check_choice("profile", profile, ("fast", "full"))
    fast = profile == "fast"
    return {
        "table": {"examples": ["step", "plateau", "tent", "shelf", "hinge"], "plot_points": 401},
        "schedules": {
            "example": "step", "schedules": list(SCHEDULES), "levels": 4 if fast else 6, "n0": 16, "m0": 16,
            "lam0": 2e-3, "seeds": 1 if fast else 5,
        },
        "trained": {
            "example": "step", "schedules": list(SCHEDULES), "levels": 3 if fast else 4, "n0": 16, "m0": 16,
            "lam0": 1e-2, "lr_width": 3.2, "steps": 12000 if fast else 40000, "seeds": 1 if fast else 3,
        },
        "bias": {
            "example": "tent", "n": 32, "width": 32 if fast else 256, "lam": 1e-2, "steps": 8000 if fast else 40000,
            "lr": {"gd": 0.1, "sgd": 0.1, "momentum": 0.01, "adam": 3e-3} if fast else
               {"gd": 0.0125, "sgd": 0.0125, "momentum": 0.00125, "adam": 1e-3},
            "scales": [1.0, 0.05], "seeds": 2 if fast else 5, "batch_size": 8,
        },
    }


# -- conventions ------------------------------------------------------------------------------
def exact(regions: kr.Regions, convention: str, affine: bool) -> minnorm1d.Solution:
    """The exact minimum norm interpolant of ``regions`` (chapter 3's certified LP, regions mode)."""
    return minnorm1d.solve(None, None, regions=kr.as_minnorm_regions(regions), penalty=convention, affine=affine, on_fail="raise")


def closed_form_norm(name: str, convention: str, affine: bool) -> float:
    """The book's closed forms for the default examples (NaN where none is derived)."""
    rho = lambda t: float(kr.kink_cost(t, convention))
    if name == "step":
        return kr.step_norm(-0.25, 0.25, convention)
    if name == "plateau":
        return 2 * kr.step_norm(-0.75, -0.25, convention)
    if name == "tent":  # h - |x| on +-[a, 1], h = 1.5, a = 0.5
        h, a = 1.5, 0.5
        if affine or convention == "free":
            return 2.0
        if convention == "l2":
            return min(h + 2.0, h - a + 2 * rho(a))
        return h + 2.0
    if name == "shelf":  # 1 on [0.5, 1], 1 + (x - 2) on [2, 3]
        h, p = 1.0, 2.0
        if convention == "free":
            return 1.0
        if affine:
            return rho(p)
        if convention == "l2":
            return rho(p) + h / rho(p)
        return rho(p) + h / p
    if name == "hinge":  # 1 on [-1, -1/4], 1 + 2x on [1/4, 1]: one kink of jump 2 at 0 (+ the constant)
        if affine or convention == "free":
            return 2.0
        if convention == "l1":
            return 3.0
    return float("nan")


def conventions_table(*, examples: list[str], plot_points: int, device=None, seed: int = 0) -> dict:
    """Exact interpolants of each example under each convention: norm, certified lower bound, kinks,
    value range at the gap midpoints (uniqueness), the closed form, and the book's independent LP."""
    check_positive("plot_points", plot_points, integer=True)
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
            p, s = sol.kinks
            p = np.where(np.abs(p) < 1e-9, 0.0, p)
            rows.append({
                "example": name, "convention": conv, "affine": aff, "norm": sol.cost, "lower": sol.lower,
                "closed_form": closed_form_norm(name, conv, aff), "book_lp": mine.norm,
                "kinks": ", ".join(f"{t:.3g}" for t in p), "jumps": ", ".join(f"{j:.3g}" for j in s),
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
    runs = engine.grid(schedule=schedules, level=list(range(levels)), seed=list(range(seeds)))
    nml = [schedule(r.schedule, r.level, n0=n0, m0=m0, lam0=lam0) for r in runs.itertuples()]
    runs["n"], runs["m"], runs["lam"] = zip(*nml)
    return runs


def _data(R: kr.Regions, n: int, seed: int, rep: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample of size ``n`` for repetition ``rep`` (nested across studies: same seed, same data)."""
    return kr.sample(R, n, np.random.default_rng([seed, rep, n]))


def lasso_schedules(*, example: str, schedules: list[str], levels: int, n0: int, m0: int, lam0: float, seeds: int, device=None, seed: int = 0) -> dict:
    """The infinite-width regularised minimiser (lasso over the kink dictionary, l2 convention, no
    affine term) for every ``(schedule, level, seed)``; distances in the gap to the region interpolant."""
    for k, v in {"levels": levels, "n0": n0, "m0": m0, "seeds": seeds}.items():
        check_positive(k, v, integer=True)
    check_positive("lam0", lam0)
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
    # the exact min-norm interpolant of the n0 fixed samples (where the n-fixed schedule must go)
    samp = [minnorm1d.solve(*_data(R, n0, seed, s), penalty="l2", affine=False, on_fail="raise") for s in range(seeds)]
    d_samples = np.array([kr.gap_distance(s(z), ref(z)) for s in samp])
    return {"runs": engine.tidy(runs, distance=d, f0=f0, risk=risk, norm=norm), "min_norm": ref.cost,
            "sample_interpolant_distance": d_samples}


def trained_schedules(*, example: str, schedules: list[str], levels: int, n0: int, m0: int, lam0: float, lr_width: float, steps: int, seeds: int, device=None, seed: int = 0) -> dict:
    """Full-batch GD with weight decay (biases decayed, no affine term) on the (n, m) grid of
    :func:`lasso_schedules`: the runs of each level (all schedules and seeds) as one tensor program,
    sample sizes padded and masked; learning rate ``lr_width / max(m, 32)`` (the loss Hessian grows like the width under this
    initialisation)."""
    for k, v in {"levels": levels, "n0": n0, "m0": m0, "steps": steps, "seeds": seeds}.items():
        check_positive(k, v, integer=True)
    check_positive("lam0", lam0), check_positive("lr_width", lr_width)
    R = kr.example(example)
    ref = exact(R, "l2", False)
    runs = _grid(schedules, levels, n0, m0, lam0, seeds)
    dev = torch.device(device or "cpu")
    t = lambda a: torch.as_tensor(np.array(a, float), dtype=torch.float64, device=dev)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    z = R.gap_points(101)
    B = len(runs)
    f, f0 = np.zeros((B, len(z))), np.zeros(B)
    out = {k: [None] * B for k in ("risk", "norm", "grad", "objective", "history")}
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
            methods=["gd"] * len(idx), lr=t(lr_width / np.maximum(sub.m.values, 32)), wd=t(sub.lam.values), steps=steps,
            init_scale=t(np.ones(len(idx))), generator=g, records=30,
        )
        engine.check_finite(res.loss[:, -1:], what="GD with weight decay", hint="reduce lr_width", runs=sub)
        f[idx] = kr.evaluate(res.net, z)
        f0[idx] = kr.evaluate(res.net, np.array([0.0]))[:, 0]
        for j, i in enumerate(idx):
            out["risk"][i], out["norm"][i], out["grad"][i] = res.loss[j, -1], res.norm[j, -1], res.grad_norm[j]
            out["objective"][i], out["history"][i] = res.objective[j, -1], res.norm[j]
    # the exact infinite-width optimum at the same (data, lambda): what a global minimiser approaches
    knots = kr.kink_grid(R, spacing=0.02, region_spacing=0.02)
    dic = kr.Dictionary(knots, "l2", False)
    lasso = [kr.lasso(*_data(R, r.n, seed, r.seed), r.lam, "l2", knots=knots) for r in runs.itertuples()]
    d_lasso = [kr.gap_distance(f[i], dic.features(z) @ c) for i, (c, _, _) in enumerate(lasso)]
    lasso_obj = np.array([risk + r.lam * norm for (_, risk, norm), r in zip(lasso, runs.itertuples())])
    return {
        "runs": engine.tidy(
            runs, lr=lr_width / np.maximum(runs.m.values, 32), distance=kr.gap_distance(f, ref(z)[None]), f0=f0,
            risk=np.array(out["risk"]),
            norm=np.array(out["norm"]), grad=np.array(out["grad"]), d_lasso=np.array(d_lasso),
            objective=np.array(out["objective"]), lasso_objective=lasso_obj,
            lasso_norm=np.array([n for _, _, n in lasso]),
        ),
        "steps": res.steps, "norm_history": np.stack(out["history"]), "min_norm": ref.cost,
    }


# -- implicit bias of optimisers ----------------------------------------------------------------
def optimizer_bias(*, example: str, n: int, width: int, lam: float, steps: int, lr: dict, scales: list[float], seeds: int, batch_size: int, device=None, seed: int = 0) -> dict:
    """Optimisers x initialisations x weight decay (0 or ``lam``) x seeds on one sample of ``n`` points,
    one tensor program. Each run is measured against the exact min-norm interpolants of the sample under
    every convention and against the exact regularised optima (lasso at ``lam``) of the l2-bias
    convention (what weight decay on every parameter gives) and, for comparison, of the |w|+|b|
    convention."""
    for k, v in {"n": n, "width": width, "steps": steps, "seeds": seeds, "batch_size": batch_size}.items():
        check_positive(k, v, integer=True)
    check_positive("lam", lam)
    for k in METHOD_ORDER:
        if k not in lr:
            raise ParameterError(f"invalid lr={lr!r}: needs a learning rate for each of {METHOD_ORDER}")
        check_positive(f"lr[{k!r}]", lr[k])
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
        init_scale=t(runs.init.values), batch_size=batch_size, generator=g, records=60,
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
    """One full-batch GD step with weight decay of the chapter's training workload (n = 32 points,
    width 32, 1-D inputs): ``runs`` networks batched vs a per-run NumPy loop."""
    dev = torch.device(device)
    n, m, lam, lr = 32, 32, 1e-2, 0.1
    R = kr.tent()
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

    return engine.Workload("ch05 GD + weight decay (n=32, m=32)", runs, str(dev), batched_step, loop_step,
                           flops_per_run_step=14.0 * n * m, matmul_shape=(runs, n, m, 1))


def run_all(ctx) -> dict:
    """Every study of the chapter through the cache (``python -m lib study ch05``)."""
    P = params(ctx.profile)
    return {
        "table": ctx.study("conventions", conventions_table, **P["table"]),
        "schedules": ctx.study("lasso-schedules", lasso_schedules, **P["schedules"]),
        "trained": ctx.study("trained-schedules", trained_schedules, **P["trained"]),
        "bias": ctx.study("optimizer-bias", optimizer_bias, **P["bias"]),
    }


# -- summaries used by the chapter's claims ---------------------------------------------------------
def _fit_slope(s: np.ndarray, d: np.ndarray) -> float:
    """Least-squares slope of ``log d`` against ``log s``."""
    return float(np.polyfit(np.log(s), np.log(d), 1)[0])


def table_summary(table: dict) -> dict:
    """Numbers the chapter checks on the conventions table."""
    df, cur = table["table"], table["curves"]
    cf = df.dropna(subset=["closed_form"])

    def gap_sup(name, key_a, key_b):
        R = kr.example(name)
        x = cur[(name, "x")]
        inside = R.in_gaps(x)
        return float(np.max(np.abs(cur[(name, *key_a)][inside] - cur[(name, *key_b)][inside])))

    step_like = [e for e in ("step", "plateau") if e in set(df.example)]
    unique_rows = df[df.convention != "free"]
    tent_free = df[(df.example == "tent") & (df.convention == "free") & (~df.affine)].iloc[0]
    shelf = df[(df.example == "shelf") & (df.convention == "l2") & (~df.affine)].iloc[0]
    return {
        "closed_form_err": float(np.max(np.abs(cf.norm - cf.closed_form))),
        "n_closed_forms": len(cf),
        "cert_gap": float(np.max((df.norm - df.lower) / df.norm)),
        "solver_gap": float(np.max(np.abs(df.norm - df.book_lp) / df.norm)),
        "step_disagreement": max(gap_sup(e, k, ("l2", False)) for e in step_like for k in [(c, a) for c, a in CONVENTION_ROWS]),
        "step_unique": bool(df[df.example.isin(step_like)].unique.all()),
        "step_spread": float(df[df.example.isin(step_like)].spread.max()),
        "tent_l2_vs_affine": gap_sup("tent", ("l2", False), ("l2", True)),
        "tent_l2_vs_l1": gap_sup("tent", ("l2", False), ("l1", False)),
        "tent_free_range": (float(tent_free.range_lo), float(tent_free.range_hi)),
        "max_spread_penalised": float(unique_rows.spread.max()),
        "shelf_leftmost_kink": float(shelf.kinks.split(",")[0]),
        "tent_values": {
            f"{r.convention}{'+affine' if r.affine else ''}: {q}": v
            for r in df[df.example == "tent"].itertuples() for q, v in (("f(0)", r.f_mid), ("norm", r.norm))
        },
    }


def schedule_summary(lasso: dict, trained: dict) -> dict:
    """Trends along the (n, m) grid: per schedule the mean distance per level (lasso), the fitted
    log-log slope, and the trained networks' objective and norm relative to the exact optimum."""
    L = lasso["runs"].groupby(["schedule", "level"]).distance.mean().unstack("level")
    T = trained["runs"]
    s = 2.0 ** np.array(L.columns, float)
    slopes = {k: _fit_slope(s, L.loc[k].values) for k in L.index if k != "n-fixed"}
    ratio = T.objective / T.lasso_objective
    last = T.level.max()
    fast_last = T[(T.schedule == "fast") & (T.level == last)]
    steps = float(np.asarray(trained["steps"])[-1])
    acted = T.lr * T.lam * steps  # eta lambda T: weight decay has acted when this is well above 1
    return {
        "distance": L,
        "slopes": slopes,
        "derived_increases": int(np.sum(np.diff(L.loc["derived"].values) > 0)),
        "derived_last_first": float(L.loc["derived"].values[-1] / L.loc["derived"].values[0]),
        "fixed_over_derived": float(L.loc["fixed"].values[-1] / L.loc["derived"].values[-1]),
        "fixed_last_two": float(L.loc["fixed"].values[-1] / L.loc["fixed"].values[-2]),
        "nfixed_last": float(L.loc["n-fixed"].values[-1]),
        "sample_distance": float(np.mean(lasso["sample_interpolant_distance"])),
        "trained_ratio_max": float(ratio[T.schedule != "fast"].max()),
        "trained_within_2pc": float((ratio[T.schedule != "fast"] <= 1.02).mean()),
        "trained_ratio_median": float(ratio[T.schedule != "fast"].median()),
        "fast_objective_ratio": float((fast_last.objective / fast_last.lasso_objective).min()),
        "fast_norm_ratio": float((fast_last.norm / fast_last.lasso_norm).min()),
        "fast_eta_lam_T": float(acted[fast_last.index].max()),
        "others_eta_lam_T_min": float(acted[T.schedule != "fast"].min()),
    }


def bias_summary(bias: dict, *, tol: float = 0.01, fit: float = 1e-3) -> dict:
    """The optimiser comparison in numbers: which runs reach the exact regularised optimum (objective
    within ``tol``), which reference each run is nearest to, and the norms without weight decay."""
    r = bias["runs"].copy()
    r["rel_obj"] = r.objective / bias["lasso"]["objective"] - 1.0
    wd = r[r.wd > 0]
    ok = wd[wd.rel_obj <= tol]
    nowd = r[r.wd == 0]
    std = nowd[nowd.init == nowd.init.max()]
    small = nowd[(nowd.init == nowd.init.min()) & (nowd.risk < fit)]
    return {
        "wd_reached": float(len(ok) / len(wd)),
        "wd_reached_by_method": {m: float((g.rel_obj <= tol).mean()) for m, g in wd.groupby("method", sort=False)},
        "wd_nearer_plateau": float((ok.d_l2 < ok.d_l1).mean()) if len(ok) else float("nan"),
        "wd_matching_ratio": float((ok.d_lasso / ok.d_lasso_l1).max()) if len(ok) else float("nan"),
        "wd_d_lasso_median": float(ok.d_lasso.median()),
        "std_norm_ratio_min": float((std.norm / bias["ref_norm"]["l2"]).min()),
        "std_norm_ratio_median": float((std.norm / bias["ref_norm"]["l2"]).median()),
        "small_fitted": len(small),
        "small_total": int((nowd.init == nowd.init.min()).sum()),
        "small_nearer_tent": float((small.d_l1 < small.d_l2).mean()) if len(small) else float("nan"),
        "small_d_l1_median": float(small.d_l1.median()) if len(small) else float("nan"),
        "small_d_l2_median": float(small.d_l2.median()) if len(small) else float("nan"),
        "not_fitted": nowd[nowd.risk >= fit][["method", "init", "seed", "risk"]],
        "not_reached": wd[wd.rel_obj > tol][["method", "init", "seed", "risk", "norm", "rel_obj"]],
        "label_variance": float(np.var(bias["y"])),
        "f0": {"tent": float(np.interp(0.0, bias["z"], bias["ref_curves"]["l1"])),
               "plateau": float(np.interp(0.0, bias["z"], bias["ref_curves"]["l2"])),
               "l2 optimum": bias["lasso"]["f0"], "l1 optimum": bias["lasso_l1"]["f0"]},
    }
