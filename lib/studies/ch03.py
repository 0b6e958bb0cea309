"""Chapter 3: penalising the biases enforces sparsity (Boursier & Flammarion, ``boursier2023penalising``).

Profiles and studies.  Exact minimal-norm interpolants come from :mod:`lib.minnorm1d` (linear programs
with dual certificates); trained networks are one-hidden-layer ReLU nets with a free skip term
(:mod:`lib.shallow`, ``skip=True``), batched over methods, lambdas, widths and seeds and advanced by
:class:`lib.optim.BatchedOptimizer`; their kinks are merged by :mod:`lib.kinks`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

# lib.engine imports tqdm.auto, which warns in kernels without ipywidgets; its bars are off there anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from .. import engine, kinks, shallow
from .. import minnorm1d as mn
from ..checks import check_choice, check_positive
from ..optim import BatchedOptimizer

STEM = "03-bias-penalty-sparsity"
METHODS = ("wd_all", "wd_nobias", "gd_small")

#: Named datasets used across the chapter: (x, y).
DATASETS: dict[str, tuple[list[float], list[float]]] = {
    # convex run of four curvatures, away from the origin: the trained-network data set
    "convex-far": ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 1.5, 0.8, 0.6, 1.2, 2.5]),
    # the same values with the data centred at 0: the l2 minimiser has three kinks
    "convex-centred-train": ([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], [3.0, 1.5, 0.8, 0.6, 1.2, 2.5]),
    # a convex run centred at 0: the counterexample to unconditional sparsity
    "convex-centred": ([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], [0.0, 0.5, 2.0, 4.5, 8.0, 12.5]),
    # data straddling 0 in the first interval, x_1 x_2 < -1, curvatures of alternating sign: the
    # bias-penalised minimiser puts its first kink at -1/x_1 = 1/3, strictly inside (x_1, x_2)
    "straddle": ([-3.0, 1.5, 2.5, 3.5, 5.0], [1.0, 0.0, 0.6, -0.4, 1.0]),
    # alternating curvature: every run has length one
    "alternating": ([-3.0, -2.0, -0.5, 0.3, 1.2, 2.5], [0.5, 1.5, 0.2, 0.6, -0.4, 0.9]),
}


def params(profile: str) -> dict[str, Any]:
    """Parameters of every study for the ``fast`` (CI, one CPU core) or ``full`` (paper scale) profile."""
    check_choice("profile", profile, ("fast", "full"))
    fast = profile == "fast"
    return {
        "cost_formula": {"n_functions": 12 if fast else 200, "max_kinks": 4 if fast else 8},
        "cost_networks": {"n_networks": 60 if fast else 2000, "max_kinks": 4 if fast else 8},
        "three_point": {"n_triples": 16 if fast else 400},
        "examples": {"names": ("convex-far", "straddle", "alternating", "convex-centred"), "probe_rel": (1e-6, 1e-8),
                         "perturbation": 1e-6},
        "sparsity_map": {"n_points": 7, "offsets": (0.0, 1.0, 2.0, 4.0) if fast else (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
                             "per_cell": 5 if fast else 60},
        "training": {
            "data": "convex-centred-train",
            "methods": METHODS,
            "lams": (3e-3, 1e-2) if fast else (3e-3, 1e-2, 3e-2),
            "widths": (16, 48) if fast else (50, 100, 200),
            "seeds": 2 if fast else 4,
            "steps": 15_000 if fast else 100_000,
            "lr_adam": 1e-2,
            "lr_gd": 3e-2,
            "small_scale": 1e-3,
            "snapshots": 40,
        },
        "kink_rule": {"radius": 0.05, "threshold": 0.02},
    }


# ------------------------------------------------------------------------------------------------
# exact solutions
def study_cost_formula(*, n_functions: int, max_kinks: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """Random piecewise-linear functions, forced on ``[p_1 - 1, p_K + 1]`` by known regions between their
    kinks: the LP optimum against the formula ``sum_k |s_k| W(p_k)`` for each penalty (one row each)."""
    check_positive("n_functions", n_functions, integer=True)
    check_positive("max_kinks", max_kinks, integer=True)
    rng = np.random.default_rng([seed, 31])
    rows = []
    for i in range(n_functions):  # one LP per problem: inherently per-problem
        k = int(rng.integers(1, max_kinks + 1))
        p = np.sort(rng.uniform(-5, 5, k))
        p = p[np.concatenate([[True], np.diff(p) > 0.05])]
        s = rng.normal(size=p.size)
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


def study_cost_networks(*, n_networks: int, max_kinks: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """The lower bound of the cost theorem on explicit network representations (no LP involved).

    Each network represents a random piecewise-linear function with up to ``max_kinks`` kinks by several
    neurons per kink: the balanced neuron of the kink split into one to three pieces, some of them facing
    left (``w < 0``); in two networks out of three, also a cancelling pair per kink (a neuron and its
    negative) and a random rescaling ``(a, w, b) -> (a/t, t w, t b)`` of every neuron, both of a size
    ``eps`` drawn log-uniformly in ``[1e-3, 1]`` (so some representations are nearly optimal); the
    remaining third are exact optimal representations for the bias-penalised cost.  The slope jumps of the represented function are read off its values
    (difference quotients on either side of each kink, exact for a piecewise-linear function), not from
    the parameters.  One row per network and penalty: the parameter norm
    ``1/2 sum_j (a_j^2 + w_j^2 [+ b_j^2])`` and the formula ``sum_k |jump_k| W(p_k)``."""
    check_positive("n_networks", n_networks, integer=True)
    check_positive("max_kinks", max_kinks, integer=True)
    rng = np.random.default_rng([seed, 35])
    rows = []
    for i in range(n_networks):  # a few dozen neurons each: NumPy per network is instant
        k = int(rng.integers(1, max_kinks + 1))
        p = np.sort(rng.uniform(-5, 5, k))
        p = p[np.concatenate([[True], np.diff(p) > 0.05])]
        s = rng.normal(size=p.size)
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
        gap = np.min(np.diff(p), initial=1.0)
        h = 0.25 * gap

        def f(x):
            return np.maximum(np.multiply.outer(x, w) + b, 0.0) @ a

        jumps = (f(p + h) - f(p)) / h - (f(p) - f(p - h)) / h
        for pen, norm in (("l2", 0.5 * np.sum(a**2 + w**2 + b**2)), ("free", 0.5 * np.sum(a**2 + w**2))):
            rows.append({"network": i, "kinks": p.size, "neurons": a.size, "optimal_representation": kind == 0,
                         "penalty": pen, "norm": norm, "formula": mn.kink_cost(p, jumps, pen)})
    df = pd.DataFrame(rows)
    df["excess"] = df.norm / df.formula - 1
    return df


def study_three_point(*, n_triples: int, device: Any = None, seed: int = 0) -> pd.DataFrame:
    """Random triples: a third drawn freely on ``[-4, 4]``, a third drawn with ``x_1 < 0 < x_2`` so that
    ``x_1 x_2 < -1`` usually holds, a third likewise for ``x_2 x_3 < -1``; the ``case`` column is read off
    the coordinates, not the drawing rule.  The closed form of :func:`lib.minnorm1d.three_point` against
    the certified LP."""
    check_positive("n_triples", n_triples, integer=True)
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
        rows.append({"triple": i, "case": case, "x1": x[0], "x2": x[1], "x3": x[2], "p_closed": p, "p_lp": sol.kinks[0][0],
                         "cost_closed": cost, "cost_lp": sol.cost, "gap": sol.gap, "n_kinks": sol.n_kinks})
    df = pd.DataFrame(rows)
    df["cost_err"] = (df.cost_lp - df.cost_closed).abs()
    df["pos_err"] = (df.p_lp - df.p_closed).abs()
    return df


def _solution_record(sol: mn.Solution) -> dict[str, Any]:
    p, s = sol.kinks
    return {"cost": sol.cost, "lower": sol.lower, "gap": sol.gap, "n_kinks": sol.n_kinks, "kinks": p, "jumps": s}


def study_examples(*, names: tuple[str, ...], probe_rel: tuple[float, ...], perturbation: float,
                   device: Any = None, seed: int = 0) -> dict[str, Any]:
    """Exact interpolants with and without the bias penalty on the named data sets, the bias-free
    family (linear spline, paired interpolants, LP minimiser), uniqueness probes and perturbed re-solves."""
    check_positive("perturbation", perturbation)
    rng = np.random.default_rng([seed, 33])
    out: dict[str, Any] = {}
    for name in names:
        x, y = (np.asarray(a, float) for a in DATASETS[name])
        l2 = mn.solve(x, y, penalty="l2", on_fail="raise")
        free = mn.solve(x, y, penalty="free", on_fail="raise")
        lo, hi = x[0] - 0.6, x[-1] + 0.6
        grid = np.linspace(lo, hi, 601)
        family = {"linear spline": mn.linear_spline(x, y), "paired": mn.paired_interpolant(x, y),
                  "paired, shifted": mn.paired_interpolant(x, y, offset=1)}
        fam = {k: {"kinks": v[0], "jumps": v[1], "cost_free": mn.kink_cost(v[0], v[1], "free"),
                       "cost_l2": mn.kink_cost(v[0], v[1], "l2"), "values": mn.evaluate_kinks(grid, *v)}
               for k, v in family.items()}
        mids = 0.5 * (x[:-1] + x[1:])
        widths = {pen: {rel: np.array([np.diff(mn.value_range(sol, m, rel))[0] for m in mids]) for rel in probe_rel}
                  for pen, sol in (("l2", l2), ("free", free))}
        y_pert = y + perturbation * rng.uniform(-1, 1, y.size)
        l2p = mn.solve(x, y_pert, penalty="l2", on_fail="raise")
        hull = np.linspace(x[0], x[-1], 401)
        out[name] = {
            "x": x, "y": y, "grid": grid, "f_l2": l2(grid), "f_free": free(grid), "l2": _solution_record(l2),
            "free": _solution_record(free), "family": fam, "sparsest": mn.sparsest_kink_count(x, y),
            "kappa": mn.secants(x, y)[1], "biasfree_value": mn.biasfree_value(x, y), "probe_widths": widths,
            "mids": mids, "perturbed_sup": float(np.max(np.abs(l2p(hull) - l2(hull)))),
            "perturbed_kinks": l2p.n_kinks,
        }
    return out


def _dataset_with_runs(rng: np.random.Generator, n: int, L: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """A random data set of ``n`` points whose longest run of same-sign curvatures has length ``L``."""
    while True:
        sg = rng.choice([-1.0, 1.0], n - 2)
        runs = np.diff(np.flatnonzero(np.concatenate([[True], sg[1:] != sg[:-1], [True]])))
        if runs.max() == L:
            break
    kappa = sg * rng.uniform(0.3, 1.5, n - 2)
    delta = rng.normal() + np.concatenate([[0.0], np.cumsum(kappa)])
    x = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, n - 1))])
    x = x - x.mean() + offset
    y = np.concatenate([[rng.normal()], np.diff(x) * delta]).cumsum()
    return x, y


def study_sparsity_map(*, n_points: int, offsets: tuple[float, ...], per_cell: int, device: Any = None,
                       seed: int = 0) -> pd.DataFrame:
    """For random data sets with a prescribed longest same-sign curvature run ``L`` and centre ``offset``:
    the kink count of the certified bias-penalised minimiser against the sparsest possible count."""
    check_positive("n_points", n_points, integer=True)
    check_positive("per_cell", per_cell, integer=True)
    if n_points < 3:
        raise ValueError(f"invalid n_points={n_points}: need at least 3")
    rng = np.random.default_rng([seed, 34])
    rows = []
    for L in range(1, n_points - 1):
        for off in offsets:
            for i in range(per_cell):
                x, y = _dataset_with_runs(rng, n_points, L, off)
                sol = mn.solve(x, y, penalty="l2", on_fail="raise")
                rows.append({"L": L, "offset": off, "rep": i, "n_kinks": sol.n_kinks,
                                 "sparsest": mn.sparsest_kink_count(x, y), "gap": sol.gap, "cost": sol.cost})
    df = pd.DataFrame(rows)
    df["excess"] = df.n_kinks - df.sparsest
    df["is_sparsest"] = df.excess == 0
    return df


# ------------------------------------------------------------------------------------------------
# trained networks
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


class _Trainer:
    """All runs of the training study as two groups (Adam with weight decay; plain GD), one tensor
    program each."""

    def __init__(self, runs, X, Y, *, lr_adam, lr_gd, small_scale, device, seed):
        B, m = len(runs), int(runs.width.max())
        kw = {"dtype": torch.float64, "device": device}
        self.runs, self.X, self.Y = runs, X, Y
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
            if gr["method"] == "adam":  # constant, then geometric decay to 1 % over the last 40 %
                gr["opt"].lr = gr["lr0"] * (0.01 ** max(0.0, (frac - 0.6) / 0.4))
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


def study_training(*, data: str, methods: tuple[str, ...], lams: tuple[float, ...], widths: tuple[int, ...],
                   seeds: int, steps: int, lr_adam: float, lr_gd: float, small_scale: float, snapshots: int,
                   radius: float = 0.05, threshold: float = 0.02, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Train every run of :func:`training_grid` on the named data set and compare with the exact answers.

    Objective per run: ``1/2 sum_i (f(x_i) - y_i)^2 + lam/2 (|a|^2 + |w|^2 [+ |b|^2])`` (biases in the
    penalty for ``wd_all``, out of it for ``wd_nobias``), Adam; ``gd_small``: plain GD on the square loss
    from initialisation scale ``small_scale``.  Returns the tidy table of runs with final loss, costs,
    merged kink counts and the sup distance on the data hull to the exact bias-penalised interpolant, the
    cost curves, and the fitted functions.  Torch, NumPy and SciPy only (it runs on a bare GPU machine);
    :func:`training_table` adds the comparison with :func:`study_regularised`.
    """
    for name, v in {"steps": steps, "seeds": seeds, "snapshots": snapshots}.items():
        check_positive(name, v, integer=True)
    for name, v in {"lr_adam": lr_adam, "lr_gd": lr_gd, "small_scale": small_scale}.items():
        check_positive(name, v)
    for lam in lams:
        check_positive("lams", lam)
    for m in widths:
        check_positive("widths", m, integer=True)
    x, y = (np.asarray(a, float) for a in DATASETS[data])
    device = torch.device(device or "cpu")
    runs = training_grid(methods, lams, widths, seeds)
    X = torch.as_tensor(x, device=device)
    Y = torch.as_tensor(y, device=device)
    tr = _Trainer(runs, X, Y, lr_adam=lr_adam, lr_gd=lr_gd, small_scale=small_scale, device=device, seed=seed)
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
    exact = {"l2": mn.solve(x, y, penalty="l2", on_fail="raise"), "free": mn.solve(x, y, penalty="free", on_fail="raise")}  # LPs: scipy only
    hull, grid = _hull(x), np.linspace(x[0] - 0.5, x[-1] + 0.5, 401)
    a, w, b = th[:, 0], th[:, 1], th[:, 2]

    def net_values(t):
        h = np.maximum(t[None, :, None] * w[:, None, :] + b[:, None, :], 0.0)
        return np.einsum("bnm,bm->bn", h, a) + ph[:, :1] * t + ph[:, 1:]

    f_hull = net_values(hull)
    pos, jump = kinks.neuron_kinks(a, w, b)
    K = kinks.merge(pos, jump, lo=x[0], hi=x[-1], radius=radius, threshold=threshold)
    pen = np.where(runs.method == "wd_all", fin["half_sq"], fin["half_sq_nobias"])
    table = engine.tidy(runs, loss=fin["loss"], objective=fin["loss"] + runs.lam.to_numpy() * pen,
                        norm_l2=fin["norm_l2"], norm_free=fin["norm_free"], n_kinks=K.count,
                        kink_cost_l2=kinks.kink_cost(K, "l2"),
                        sup_to_l2_interpolant=np.abs(f_hull - exact["l2"](hull)).max(1), imbalance=fin["imbalance"])
    return {
        "runs": table, "x": x, "y": y, "grid": grid, "f_grid": net_values(grid), "f_hull": f_hull, "kinks_pos": K.pos,
        "kinks_jump": K.jump, "steps": np.array(times), "curves": {k: np.stack([c[k] for c in curves], 1) for k in curves[0]},
        "exact": {k: _solution_record(v) for k, v in exact.items()}, "exact_grid": {k: v(grid) for k, v in exact.items()},
    }


def _hull(x: np.ndarray) -> np.ndarray:
    return np.linspace(x[0], x[-1], 501)


def study_regularised(*, data: str, lams: tuple[float, ...], threshold: float = 0.02, n_grid: int = 2001,
                      device: Any = None, seed: int = 0) -> dict[str, Any]:
    """The exact global minima of the weight-decay objectives of :func:`study_training`: for each lambda,
    ``min_f 1/2 sum_i (f(x_i) - y_i)^2 + lam * cost(f)`` with the bias-penalised (``l2``) and bias-free
    (``free``) costs (:func:`lib.minnorm1d.solve_penalized`; needs cvxpy, so it is a study of its own and
    the training study runs without it)."""
    check_positive("threshold", threshold)
    x, y = (np.asarray(a, float) for a in DATASETS[data])
    grid = np.linspace(x[0] - 0.5, x[-1] + 0.5, 401)
    out = {}
    for pen in ("l2", "free"):
        for lam in lams:
            check_positive("lams", lam)
            v = mn.solve_penalized(x, y, lam, penalty=pen, n_grid=n_grid)
            out[(pen, float(lam))] = {"kinks": v.kinks[0], "jumps": v.kinks[1], "n_kinks": _count(v, threshold),
                                          "objective": v.objective, "cost": v.cost, "values": v(grid), "hull": v(_hull(x))}
    return out


def training_table(tr: dict[str, Any], reg: dict[str, Any]) -> pd.DataFrame:
    """The runs of :func:`study_training` with the exact regularised answer of their own objective
    (bias-penalised for ``wd_all``, bias-free for ``wd_nobias``; NaN for plain GD): its objective, its kink
    count, and the sup distance on the data hull between network and exact fit."""
    runs = tr["runs"]
    keys = [("l2" if me == "wd_all" else "free", lam) if me != "gd_small" else None
            for me, lam in zip(runs.method, runs.lam)]
    sup = np.array([np.abs(tr["f_hull"][i] - reg[k]["hull"]).max() if k else np.nan for i, k in enumerate(keys)])
    return runs.assign(exact_objective=[reg[k]["objective"] if k else np.nan for k in keys],
                       exact_regularised_kinks=[reg[k]["n_kinks"] if k else -1 for k in keys],
                       sup_to_regularised=sup)


def _count(fit: mn.PenalizedFit, threshold: float) -> int:
    """Kinks of an exact fit with ``|jump| > threshold`` (the rule applied to trained networks)."""
    return int(np.sum(np.abs(fit.kinks[1]) > threshold))


# ------------------------------------------------------------------------------------------------
def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (``python -m lib study ch03``)."""
    P = params(ctx.profile)
    T = P["training"]
    return {
        "regularised": ctx.study("regularised", study_regularised, data=T["data"], lams=T["lams"],
                                 threshold=P["kink_rule"]["threshold"]),
        "cost_formula": ctx.study("cost_formula", study_cost_formula, **P["cost_formula"]),
        "cost_networks": ctx.study("cost_networks", study_cost_networks, **P["cost_networks"]),
        "three_point": ctx.study("three_point", study_three_point, **P["three_point"]),
        "examples": ctx.study("examples", study_examples, **P["examples"]),
        "sparsity_map": ctx.study("sparsity_map", study_sparsity_map, **P["sparsity_map"]),
        "training": ctx.study("training", study_training, **P["training"], **P["kink_rule"]),
    }


def bench_workload(runs: int, device: Any) -> engine.Workload:
    """The training step of ``study_training`` (Adam, weight decay on all parameters, width 256, the
    six-point data set) for ``runs`` runs: batched as one tensor program vs. one run at a time in NumPy."""
    check_positive("runs", runs, integer=True)
    device = torch.device(device)
    x, y = (np.asarray(a, float) for a in DATASETS["convex-far"])
    m = 256
    grid = pd.DataFrame({"method": ["wd_all"] * runs, "lam": [1e-2] * runs, "width": [m] * runs, "seed": range(runs)})
    X, Y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    tr = _Trainer(grid, X, Y, lr_adam=1e-3, lr_gd=1e-3, small_scale=1.0, device=device, seed=0)

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
