"""Studies of chapter 1: a single ReLU neuron with the square loss (Vardi & Shamir, ``vardi2021implicit``).

Each study is a plain function of keyword parameters plus ``device`` and ``seed`` that batches all of
its runs (values of gamma, random problems, step sizes, widths) along a leading axis and returns plain
data (NumPy arrays, ``pandas.DataFrame`` tables with one row per run, floats). :func:`params` gives the
parameters of the ``fast`` and ``full`` profiles and :func:`run_all` runs every study through a
chapter context's cache.

Numerics: gradient flow is integrated with fixed-step RK4 (:mod:`lib.flows`) in float64, with step
sizes ``dt <= dt_max`` and ``dt <= dt_gamma / gamma^2`` on the gamma-families (their curvature grows
like gamma^2), and ``dt = c / lambda_max(X X^T)`` per random problem. On the gamma-families (one
neuron and the networks) the steps are event-located (:func:`lib.flows.rk4_event_step`: they stop at
every activation switch); every study reports its integrator error by comparing with the step
``2 dt`` (:func:`lib.flows.halving_error`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine, flows, neuron
from ..checks import ParameterError, check_positive

F64 = torch.float64

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        "gamma3d": {
            "gammas": [0.0, 0.5, 1.0, 2.0, 5.0, 20.0],
            "T": 8.0,
            "dt_max": 1e-3,
            "dt_gamma": 0.2,
            "init": 1e-6,
            "record_every": 40,
        },
        "phase2d": {
            "gammas": [0.5, 1.0, 2.0, 5.0, 10.0],
            "T": 10.0,
            "dt_max": 1e-3,
            "dt_gamma": 0.2,
            "w0": [0.1, 1.0],
            "exact_gammas": [0.1, 1e4, 200],
            "record_every": 20,
        },
        "leaky": {
            "batch": 96,
            "slopes": [0.3, 0.6],
            "kappa_max": 20.0,
            "c": 1.0,
            "horizon": 30.0,
            "record_every": 100,
        },
        "relu_random": {
            "batch": 200,
            "kappa_max": 20.0,
            "c": 0.1,
            "horizon": 30.0,
            "init_scale": 1.0,
            "record_every": 20,
            "n_qp": 20,
        },
        "balance": {
            "n": 8,
            "d": 3,
            "width": 5,
            "inits": 4,
            "T": 4.0,
            "etas": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
            "rk4_dts": [1e-3, 2e-3, 4e-3, 8e-3],
            "identity_steps": 400,
            "record_every": 10,
        },
        "net": {
            "gammas": [0.5, 1.0, 2.0, 5.0],
            "widths": [1, 3],
            "T": 6.0,
            "dt_max": 2.5e-4,
            "dt_gamma": 0.02,
            "init": 0.3,
        },
    },
    "full": {
        "gamma3d": {
            "gammas": [0.0] + np.round(np.geomspace(0.05, 20.0, 40), 6).tolist(),
            "T": 10.0,
            "dt_max": 1e-3,
            "dt_gamma": 0.2,
            "init": 1e-6,
            "record_every": 40,
        },
        "phase2d": {
            "gammas": [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0],
            "T": 15.0,
            "dt_max": 1e-3,
            "dt_gamma": 0.2,
            "w0": [0.1, 1.0],
            "exact_gammas": [0.05, 1e5, 2000],
            "record_every": 40,
        },
        "leaky": {
            "batch": 1000,
            "slopes": [0.2, 0.35, 0.5, 0.75],
            "kappa_max": 20.0,
            "c": 1.0,
            "horizon": 30.0,
            "record_every": 250,
        },
        "relu_random": {
            "batch": 4000,
            "kappa_max": 20.0,
            "c": 0.05,
            "horizon": 30.0,
            "init_scale": 1.0,
            "record_every": 40,
            "n_qp": 200,
        },
        "balance": {
            "n": 8,
            "d": 3,
            "width": 5,
            "inits": 32,
            "T": 4.0,
            "etas": [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
            "rk4_dts": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
            "identity_steps": 2000,
            "record_every": 10,
        },
        "net": {
            "gammas": np.round(np.geomspace(0.75, 5.0, 10), 6).tolist(),
            "widths": [1, 2, 3],
            "T": 8.0,
            "dt_max": 2.5e-4,
            "dt_gamma": 0.02,
            "init": 0.3,
        },
    },
}


def params(profile: str) -> dict[str, dict[str, Any]]:
    """The parameters of every study for ``profile`` (``"fast"`` or ``"full"``)."""
    if profile not in PROFILES:
        raise ParameterError(f"invalid profile={profile!r}: allowed values are 'fast', 'full'")
    return {k: dict(v) for k, v in PROFILES[profile].items()}


def _gammas(gammas, device) -> torch.Tensor:
    g = torch.as_tensor(gammas, dtype=F64, device=device)
    if g.ndim != 1 or len(g) == 0 or not torch.isfinite(g).all() or (g < 0).any():
        raise ParameterError(
            f"invalid gammas={list(gammas)!r}: a non-empty list of finite numbers >= 0"
        )
    return g


def _steps(T: float, dt: torch.Tensor) -> torch.Tensor:
    """An even number of steps reaching at least time ``T`` with step ``dt`` (per run)."""
    return (2 * torch.ceil(T / dt / 2)).long()


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _divergence(what: str, hint: str):
    return lambda w: engine.check_finite(w, what=what, hint=hint)


# -------------------------------------------------------------------------------------------------
# 1. the 3-D gamma-family
# -------------------------------------------------------------------------------------------------


def gamma3d(
    *, gammas, T, dt_max, dt_gamma, init, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """Gradient flow of one ReLU neuron on every dataset :math:`D_\\gamma` of the 3-D family, from
    :math:`w_0 = \\text{init}\\cdot(1,1,1)`, as one batch.

    Returns the limits, losses, integrator errors (step ``dt`` vs ``2 dt``), the number of steps that
    changed the activation pattern, the switch-off time of the zero-label example and the rate
    :math:`\tfrac{d}{dt}(w_2 + w_3)` just after it (on the switching surface :math:`w_2 + w_3 = 0`
    only the positive examples move :math:`w_2`, so a negative value means a transversal crossing),
    recorded trajectories, and the cross-loss and distance matrices
    :math:`L_{D_{\\gamma_i}}(w^*(\\gamma_j))`, :math:`\\lVert w^*(\\gamma_i) - w^*(\\gamma_j)\\rVert`.
    """
    for name, v in {"T": T, "dt_max": dt_max, "dt_gamma": dt_gamma, "init": init}.items():
        check_positive(name, v)
    check_positive("record_every", record_every, integer=True)
    g = _gammas(gammas, device)
    B = len(g)
    X, y = neuron.gamma_family_3d(g)
    w0 = torch.full((B, 3), float(init), dtype=F64, device=device)
    dt = torch.clamp(dt_gamma / g.pow(2), max=dt_max)
    steps = _steps(T, dt)
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y),
        w0,
        dt,
        steps,
        record_every=record_every,
        observe={"w": lambda w: w.clone()},
        pattern=lambda w: neuron.pattern(w, X),
        **neuron.flow_kw(X, y),
        check=_divergence("gradient flow on D_gamma", "reduce the step size dt_max or dt_gamma"),
    )
    w = flow.w
    # switch-off time of x3: the last pattern change (none for gamma = 0, where x3 = 0 is never active)
    switched = flow.n_changes > 0
    tau = torch.where(switched, flow.last_change.to(F64) * dt, torch.full_like(dt, math.nan))
    # d/dt (w2 + w3) at the end of the step that switched x3 off (x3 inactive there, so only x1, x2
    # move w; the field of x1, x2 is continuous, so this is the crossing rate up to O(dt))
    g_last = neuron.grad(flow.w_last_change, X, y)
    rate = torch.where(switched, -(g_last[:, 1] + g_last[:, 2]), torch.full_like(dt, math.nan))
    # cross losses: dataset i (rows) at limit j (columns)
    Xi = X.unsqueeze(1).expand(B, B, 3, 3).reshape(B * B, 3, 3)
    yi = y.unsqueeze(1).expand(B, B, 3).reshape(B * B, 3)
    wj = w.unsqueeze(0).expand(B, B, 3).reshape(B * B, 3)
    cross = neuron.loss(wj, Xi, yi).reshape(B, B)
    dist = torch.cdist(w, w)
    table = pd.DataFrame(
        {
            "gamma": _np(g),
            "dt": _np(dt),
            "T": _np(flow.t),
            "w1": _np(w[:, 0]),
            "w2": _np(w[:, 1]),
            "w3": _np(w[:, 2]),
            "loss": _np(neuron.loss(w, X, y)),
            "switches": _np(flow.n_changes),
            "tau_switch": _np(tau),
            "rate_at_switch": _np(rate),
            "err_halving": _np(err),
        }
    )
    return {
        "table": table,
        "w0": _np(w0[0]),
        "record_steps": _np(flow.record_steps),
        "traj": _np(flow.records["w"]),  # [K, B, 3]
        "cross_loss": _np(cross),
        "dist": _np(dist),
        "proj_w0": _np(neuron.project_Z_3d(w0)[0]),
    }


# -------------------------------------------------------------------------------------------------
# 2. the 2-D phase plane
# -------------------------------------------------------------------------------------------------


def phase2d(
    *, gammas, T, dt_max, dt_gamma, w0, exact_gammas, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """The 2-D family: RK4 trajectories for ``gammas`` (with integrator errors), the exact limits
    :func:`lib.neuron.phase2d_exact` for the same gammas and on a log grid ``exact_gammas = [lo, hi, num]``,
    and the book's bound on :math:`w_2^*(\\gamma) - (w_{0,1}+w_{0,2})/2` (:func:`lib.neuron.phase2d_bound`)."""
    for name, v in {"T": T, "dt_max": dt_max, "dt_gamma": dt_gamma}.items():
        check_positive(name, v)
    check_positive("record_every", record_every, integer=True)
    g = _gammas(gammas, device)
    if (g == 0).any():
        raise ParameterError(
            "invalid gammas: the 2-D study needs gamma > 0 (gamma = 0 has another zero-loss set)"
        )
    B = len(g)
    X, y = neuron.gamma_family_2d(g)
    a, c = float(w0[0]), float(w0[1])
    W0 = torch.tensor([a, c], dtype=F64, device=device).expand(B, 2).clone()
    dt = torch.clamp(dt_gamma / g.pow(2), max=dt_max)
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y),
        W0,
        dt,
        _steps(T, dt),
        record_every=record_every,
        observe={"w": lambda w: w.clone()},
        pattern=lambda w: neuron.pattern(w, X),
        **neuron.flow_kw(X, y),
        check=_divergence(
            "gradient flow on the 2-D family", "reduce the step size dt_max or dt_gamma"
        ),
    )
    w2_exact, tau_exact = neuron.phase2d_exact(g, (a, c))
    lo, hi, num = exact_gammas
    ge = torch.logspace(math.log10(lo), math.log10(hi), int(num), dtype=F64, device=device)
    w2e, taue = neuron.phase2d_exact(ge, (a, c))
    bound, valid = (
        neuron.phase2d_bound(ge, (a, c)) if (a, c) == (0.1, 1.0) else (ge * math.nan, ge < 0)
    )
    active = neuron.pattern(flow.w, X)
    table = pd.DataFrame(
        {
            "gamma": _np(g),
            "dt": _np(dt),
            "w1(T)": _np(flow.w[:, 0]),
            "w2(T)": _np(flow.w[:, 1]),
            "w2* exact": _np(w2_exact),
            "|RK4 - exact|": _np((flow.w[:, 1] - w2_exact).abs()),
            "tau exact": _np(tau_exact),
            "tau RK4": _np(flow.last_change.to(F64) * dt),
            "x2 active at T": _np(active[:, 1]),
            "err_halving": _np(err),
        }
    )
    return {
        "table": table,
        "w0": np.array([a, c]),
        "traj": _np(flow.records["w"]),
        "record_steps": _np(flow.record_steps),
        "dense": pd.DataFrame(
            {
                "gamma": _np(ge),
                "w2_star": _np(w2e),
                "tau": _np(taue),
                "bound": _np(bound),
                "bound_valid": _np(valid),
            }
        ),
        "asymptote": (a + c) / 2,
    }


# -------------------------------------------------------------------------------------------------
# 3. leaky ReLU: the limit is the closest zero-loss point
# -------------------------------------------------------------------------------------------------


def leaky(
    *, batch, slopes, kappa_max, c, horizon, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """Random planted problems with a leaky-ReLU neuron, every slope in ``slopes`` on the same problems.

    Step ``dt = c / lambda_max(X X^T)`` per problem (the Hessian is at most :math:`XX^\\top`), and
    enough steps that :math:`\\alpha^2 \\lambda_{min} t \\ge` ``horizon`` for every problem: the
    loss's curvature along the flow is at least :math:`\\alpha^2 \\lambda_{min}(XX^\\top)`.
    Returns one row per run: dims, condition number, slope, distance to the closed-form limit."""
    check_positive("batch", batch, integer=True)
    for name, v in {"kappa_max": kappa_max, "c": c, "horizon": horizon}.items():
        check_positive(name, v)
    check_positive("record_every", record_every, integer=True)
    s = torch.as_tensor(slopes, dtype=F64, device=device)
    if s.ndim != 1 or len(s) == 0 or (s <= 0).any() or (s >= 1).any():
        raise ParameterError(f"invalid slopes={list(slopes)!r}: leaky slopes must lie in (0, 1)")
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 11)
    P = neuron.planted_problems(batch, kappa_max=kappa_max, generator=gen, device=device)
    S = len(s)
    rep = lambda t: t.repeat(S, *([1] * (t.ndim - 1)))
    X, v, w0 = rep(P["X"]), rep(P["v"]), rep(P["w0"])
    alpha = s.repeat_interleave(batch)
    y = neuron.act(neuron.preact(v, X), alpha.reshape(-1, 1))
    target = neuron.leaky_limit(w0, X, y, alpha)
    lam_max = rep(P["lam_max"])
    dt = c / lam_max
    steps = math.ceil(horizon * kappa_max / (float(s.min()) ** 2 * c))
    steps += steps % 2
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y, alpha),
        w0,
        dt,
        steps,
        record_every=record_every,
        observe={"err": lambda w: (w - target).norm(dim=1)},
        check=_divergence(
            "leaky-ReLU gradient flow", "reduce c (the step size relative to 1/lambda_max)"
        ),
    )
    kappa = rep(P["kappa"])
    lam_min = lam_max / kappa
    runs = pd.DataFrame(
        {
            "slope": _np(alpha),
            "d": _np(rep(P["d"])),
            "n": _np(rep(P["n"])),
            "kappa": _np(kappa),
            "dist_closed_form": _np((flow.w - target).norm(dim=1)),
            "loss": _np(neuron.loss(flow.w, X, y, alpha)),
            "err_halving": _np(err),
            "rate_bound": _np(alpha**2 * lam_min),
        }
    )
    return {
        "runs": runs,
        "accepted": P["accepted"],
        "steps": steps,
        "time": _np(flow.record_steps.to(F64).unsqueeze(1) * dt.unsqueeze(0)),  # [K, B]
        "err_curve": _np(flow.records["err"]),  # [K, B]
    }


# -------------------------------------------------------------------------------------------------
# 4. ReLU on random problems: Fejer monotonicity, the factor 2, the trajectory-dependent projection
# -------------------------------------------------------------------------------------------------


class _FejerMonitor:
    """Streams, per run, the largest one-step increase of the distances to fixed points of Z."""

    def __init__(self, anchors: torch.Tensor, w0: torch.Tensor):
        self.anchors = anchors  # [B, A, d]
        self.prev = (w0.unsqueeze(1) - anchors).norm(dim=-1)  # [B, A]
        self.max_inc = torch.full_like(self.prev, -math.inf)

    def __call__(self, k: int, w: torch.Tensor) -> None:
        d = (w.unsqueeze(1) - self.anchors).norm(dim=-1)
        self.max_inc = torch.maximum(self.max_inc, d - self.prev)
        self.prev = d


def relu_random(
    *, batch, kappa_max, c, horizon, init_scale, record_every, n_qp, device="cpu", seed=0
) -> dict[str, Any]:
    """Gradient flow of a ReLU neuron on random planted problems (d in 3..7, n < d), as one batch.

    Per run: status (``converged``: loss < 1e-20; ``stalled``: loss > 1e-8; ``unfinished``: between;
    ``start in Z``), the ratio :math:`\\lVert w^* - w_0\\rVert / \\mathrm{dist}(w_0, Z)`, the largest
    one-step increase of :math:`\\lVert w(t) - \\bar w\\rVert` for two points of :math:`Z` (the
    projection of :math:`w_0` and the planted teacher), the last activation change :math:`\\tau` and the
    error of the trajectory-dependent projection formula. The projections onto :math:`Z` are exact
    (:func:`lib.neuron.project_Z`); the first ``n_qp`` are cross-checked with CLARABEL.
    """
    check_positive("batch", batch, integer=True)
    for name, v in {
        "kappa_max": kappa_max,
        "c": c,
        "horizon": horizon,
        "init_scale": init_scale,
    }.items():
        check_positive(name, v)
    check_positive("record_every", record_every, integer=True)
    check_positive("n_qp", n_qp, integer=True, allow_zero=True)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 13)
    P = neuron.planted_problems(
        batch, kappa_max=kappa_max, init_scale=init_scale, generator=gen, device=device
    )
    X, y, v, w0 = P["X"], P["y"], P["v"], P["w0"]
    proj = neuron.project_Z(w0, X, y)
    anchors = torch.stack([proj, v], dim=1)
    monitor = _FejerMonitor(anchors, w0)
    dt = c / P["lam_max"]
    steps = math.ceil(horizon * kappa_max / c)
    steps += steps % 2
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y),
        w0,
        dt,
        steps,
        record_every=record_every,
        observe={
            "dist": lambda w: (w.unsqueeze(1) - anchors).norm(dim=-1),
            "pattern": lambda w: neuron.pattern(w, X),
        },
        pattern=lambda w: neuron.pattern(w, X),
        pattern_every=1,
        callback=monitor,
        check=_divergence(
            "ReLU gradient flow", "reduce c (the step size relative to 1/lambda_max)"
        ),
    )
    w = flow.w
    L = neuron.loss(w, X, y)
    d0 = (proj - w0).norm(dim=1)
    moved = (w - w0).norm(dim=1)
    status = np.where(_np(L) < 1e-20, "converged", np.where(_np(L) > 1e-8, "stalled", "unfinished"))
    status = np.where(_np(d0) < 1e-12, "start in Z", status)
    final_pattern = neuron.pattern(w, X)
    w_traj = neuron.project_affine(flow.w_last_change, X, y * final_pattern, final_pattern)
    runs = pd.DataFrame(
        {
            "d": _np(P["d"]),
            "n": _np(P["n"]),
            "kappa": _np(P["kappa"]),
            "n_pos": _np((y > 0).sum(1)),
            "status": status,
            "loss": _np(L),
            "dist_w0_Z": _np(d0),
            "moved": _np(moved),
            "ratio": _np(moved / d0),
            "fejer_inc_proj": _np(monitor.max_inc[:, 0]),
            "fejer_inc_teacher": _np(monitor.max_inc[:, 1]),
            "tau": _np(flow.last_change.to(F64) * dt),
            "n_changes": _np(flow.n_changes),
            "traj_proj_err": _np((w_traj - w).norm(dim=1)),
            "in_Z_violation": _np(neuron.in_Z_violation(w, X, y)),
            "err_halving": _np(err),
        }
    )
    qp_diff = math.nan
    if n_qp:
        k = min(n_qp, batch)
        qp = np.stack(
            [neuron.project_Z_qp(_np(w0[i]), _np(X[i]), _np(y[i])) for i in range(k)]
        )  # per-problem QP
        qp_diff = float(np.abs(qp - _np(proj[:k])).max())
    return {
        "runs": runs,
        "accepted": P["accepted"],
        "steps": steps,
        "time": _np(flow.record_steps.to(F64).unsqueeze(1) * dt.unsqueeze(0)),  # [K, B]
        "dist_curves": _np(flow.records["dist"]),  # [K, B, 2]
        "patterns": _np(flow.records["pattern"]),  # [K, B, n]
        "n_rows": _np(P["n"]),
        "labels": _np(y),
        "qp_max_diff": qp_diff,
        "n_qp": int(min(n_qp, batch)),
    }


def showcase_run(res: dict[str, Any]) -> int:
    """A converged run of :func:`relu_random` whose pattern changed a few times (1 to 3: a clean
    switch, not a zero-label example flickering at rounding level on its way to the surface) and whose
    ratio exceeds 1; the most examples, then the largest ratio. The run of the activation-pattern figure."""
    r = res["runs"]
    ok = r[(r["status"] == "converged") & r["n_changes"].between(1, 3) & (r["ratio"] > 1 + 1e-9)]
    if ok.empty:
        ok = r[r["status"] == "converged"]
    return int(ok.sort_values(["n", "ratio"], ascending=False).index[0])


def min_separation(dist: np.ndarray, err: np.ndarray) -> float:
    """:math:`\\min_{i<j} \\lVert w_i - w_j\\rVert / (e_i + e_j)`: how many times their combined
    integrator-error estimates apart the closest two limits are (``dist``: pairwise distances,
    ``err``: per-run error estimates)."""
    dist, err = np.asarray(dist), np.asarray(err)
    i, j = np.triu_indices(len(err), 1)
    return float((dist[i, j] / (err[i] + err[j])).min())


def drift_slopes(drift: pd.DataFrame, first: int | None = None) -> pd.DataFrame:
    """Least-squares slope of log(drift) against log(step), per method and initialisation, over all
    steps or over the ``first`` smallest ones (the local slope as the step goes to 0)."""

    def slope(s: pd.DataFrame) -> float:
        s = s.sort_values("h").iloc[:first]
        return float(np.polyfit(np.log(s["h"].to_numpy()), np.log(s["drift"].to_numpy()), 1)[0])

    return (
        drift.groupby(["method", "init"])[["h", "drift"]].apply(slope).rename("slope").reset_index()
    )


def rk4_switches(drift: pd.DataFrame) -> pd.DataFrame:
    """Per initialisation of :func:`balance`: how many RK4 steps changed the activation pattern, at
    every step size ``h`` (one column each), and the drift at the finest step."""
    rk = drift[drift["method"] == "RK4"]
    table = rk.pivot_table(index="init", columns="h", values="switches").astype(int)
    table.columns = [f"switches h={h:g}" for h in table.columns]
    finest = rk[rk["h"] == rk["h"].min()].set_index("init")["drift"]
    return table.assign(**{"drift at finest h": finest})


# -------------------------------------------------------------------------------------------------
# 5. balancedness of one-hidden-layer networks
# -------------------------------------------------------------------------------------------------


def balance(
    *, n, d, width, inits, T, etas, rk4_dts, identity_steps, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """Conservation of :math:`\\lVert w_j\\rVert^2 - v_j^2` for a bias-free ReLU network of ``width``
    neurons on one random regression problem (teacher of width 3), from ``inits`` random
    initialisations: GD with every step size in ``etas`` and RK4 with every step in ``rk4_dts``, all up
    to time ``T`` in one batch; plus the per-step GD identity checked over the first ``identity_steps``
    steps of the largest ``eta``. Drift = :math:`\\max_j |Q_j(T) - Q_j(0)|`.
    """
    for name, v in {
        "n": n,
        "d": d,
        "width": width,
        "inits": inits,
        "identity_steps": identity_steps,
        "record_every": record_every,
    }.items():
        check_positive(name, v, integer=True)
    check_positive("T", T)
    for name, lst in {"etas": etas, "rk4_dts": rk4_dts}.items():
        if len(lst) == 0 or any(not (isinstance(e, (int, float)) and 0 < e < 1) for e in lst):
            raise ParameterError(f"invalid {name}={list(lst)!r}: step sizes must lie in (0, 1)")
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 17)
    x = torch.randn(n, d, generator=gen, dtype=F64, device=device)
    teacher = torch.randn(1, 3, d + 1, generator=gen, dtype=F64, device=device)
    yv = neuron.net_forward(teacher, x.unsqueeze(0))[0]
    theta_init = 0.5 * torch.randn(inits, width, d + 1, generator=gen, dtype=F64, device=device)

    def batch_of(steps_list):
        grid = engine.grid(h=list(steps_list), init=list(range(inits)))
        th = theta_init[torch.as_tensor(grid["init"].tolist(), device=device)]
        h = torch.as_tensor(grid["h"].tolist(), dtype=F64, device=device)
        return grid, th, h

    # GD over every eta (runs: eta x init), each to time T
    ggrid, th_gd, lr = batch_of(etas)
    Xg = x.expand(len(ggrid), n, d)
    yg = yv.expand(len(ggrid), n)
    gd = flows.gd(
        neuron.net_grad_fn(Xg, yg),
        th_gd,
        lr,
        torch.round(T / lr).long(),
        check=_divergence("GD on the network", "reduce the largest step size in etas"),
    )
    drift_gd = (neuron.balance(gd.w) - neuron.balance(th_gd)).abs().amax(1)
    # RK4 over every dt
    rgrid, th_rk, h = batch_of(rk4_dts)
    Xr = x.expand(len(rgrid), n, d)
    yr = yv.expand(len(rgrid), n)
    rk = flows.integrate(
        neuron.net_grad_fn(Xr, yr),
        th_rk,
        h,
        torch.round(T / h).long(),
        record_every=record_every,
        observe={"theta": lambda t: t.clone()},
        pattern=lambda t: torch.bmm(Xr, t[..., :-1].transpose(1, 2)) > 0,
        check=_divergence("RK4 on the network", "reduce the largest step in rk4_dts"),
    )
    # the rate identity <w_j, g_wj> - v_j g_vj = 0 (so dQ_j/dt = 0) at every recorded RK4 state
    K = rk.records["theta"].shape[0]
    states = rk.records["theta"].reshape(K * len(rgrid), width, d + 1)
    gs = neuron.net_grad(states, Xr.repeat(K, 1, 1), yr.repeat(K, 1))
    ws, vs = neuron.net_split(states)
    gws, gvs = neuron.net_split(gs)
    rate = ((ws * gws).sum(-1) - vs * gvs).abs()
    rate_scale = ((ws * gws).sum(-1).abs() + (vs * gvs).abs()).amax()
    drift_rk = (neuron.balance(rk.w) - neuron.balance(th_rk)).abs().amax(1)
    drift = pd.concat(
        [
            ggrid.assign(method="GD", drift=_np(drift_gd), loss=_np(neuron.net_loss(gd.w, Xg, yg))),
            rgrid.assign(
                method="RK4",
                drift=_np(drift_rk),
                loss=_np(neuron.net_loss(rk.w, Xr, yr)),
                switches=_np(rk.n_changes),
            ),
        ],
        ignore_index=True,
    )
    # the per-step identity, on the first identity_steps GD steps with the largest eta (all inits)
    eta = max(etas)
    X1 = x.expand(inits, n, d)
    y1 = yv.expand(inits, n)
    traj = flows.gd(
        neuron.net_grad_fn(X1, y1),
        theta_init.clone(),
        eta,
        identity_steps,
        record_every=1,
        observe={"theta": lambda t: t.clone()},
    ).records["theta"]  # [K+1, inits, m, d+1]
    K = traj.shape[0] - 1
    flat = traj[:-1].reshape(K * inits, width, d + 1)
    g = neuron.net_grad(flat, X1.repeat(K, 1, 1), y1.repeat(K, 1))
    actual = (neuron.balance(traj[1:]) - neuron.balance(traj[:-1])).reshape(K * inits, width)
    predicted = neuron.gd_balance_change(flat, g, eta)
    scale = (flat.pow(2).sum(-1)).amax()  # size of the quantities being differenced
    # RK4 records of the finest step, first init, for the figure
    finest = int(
        np.flatnonzero((rgrid["h"] == min(rk4_dts)).to_numpy() & (rgrid["init"] == 0).to_numpy())[0]
    )
    return {
        "drift": drift,
        "identity_max_err": float((actual - predicted).abs().max()),
        "identity_max_change": float(predicted.abs().max()),
        "identity_scale": float(scale),
        "identity_steps": K,
        "identity_eta": eta,
        "rate_max": float(rate.max()),
        "rate_scale": float(rate_scale),
        "curve_time": _np(
            rk.record_steps.to(F64) * float(min(rk4_dts))
        ),  # recorded steps of the finest run
        "curve_w2": _np(rk.records["theta"][:, finest, :, :-1].pow(2).sum(-1)),  # [K, m]
        "curve_v2": _np(rk.records["theta"][:, finest, :, -1].pow(2)),
        "curve_Q": _np(neuron.balance(rk.records["theta"][:, finest])),
        "T": T,
    }


# -------------------------------------------------------------------------------------------------
# 6. one hidden layer: impossibility beyond balancedness
# -------------------------------------------------------------------------------------------------


def net(*, gammas, widths, T, dt_max, dt_gamma, init, device="cpu", seed=0) -> dict[str, Any]:
    """Bias-free ReLU networks of every width in ``widths`` trained by gradient flow on every
    :math:`D_\\gamma` (3-D family, :math:`\\gamma > 0`), one batch, from one fixed initialisation per
    width (so every :math:`\\gamma` starts with the same conserved quantities). Narrower networks are
    the first neurons of the widest one (the others are zero and stay zero).

    Returns one row per run (loss, drift of the conserved quantities, prediction at a probe point,
    integrator error), the limits, and per width the cross-loss and distance matrices.
    """
    for name, v in {"T": T, "dt_max": dt_max, "dt_gamma": dt_gamma, "init": init}.items():
        check_positive(name, v)
    g = _gammas(gammas, device)
    if (g == 0).any():
        raise ParameterError("invalid gammas: the network study needs gamma > 0")
    if not widths or any(not isinstance(k, int) or k < 1 for k in widths):
        raise ParameterError(f"invalid widths={widths!r}: positive integers")
    m = max(widths)
    grid = engine.grid(width=list(widths), gamma=_np(g).tolist())
    gr = torch.tensor(grid["gamma"].tolist(), dtype=F64, device=device)
    wr = torch.tensor(grid["width"].tolist(), device=device)
    X, y = neuron.gamma_family_3d(gr)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 19)
    # neuron j: w_j = init * c_j * ((1, 1, 1) + 0.2 * noise), v_j = init * c_j, with c_j = 1, 0.8, 0.64, ...:
    # every neuron starts active on every example. Later switches (of any neuron on any example) make
    # the field jump, so the steps are event-located at every switch (neuron.net_flow_kw).
    cj = 0.8 ** torch.arange(m, dtype=F64, device=device)
    noise = torch.randn(m, 3, generator=gen, dtype=F64, device=device)
    base = torch.cat([init * cj[:, None] * (1 + 0.2 * noise), (init * cj)[:, None]], dim=1)
    mask = (torch.arange(m, device=device)[None, :] < wr[:, None]).to(F64)
    theta0 = base.unsqueeze(0) * mask.unsqueeze(-1)
    dt = torch.clamp(dt_gamma / gr.pow(2), max=dt_max)
    flow, err = flows.halving_error(
        neuron.net_grad_fn(X, y),
        theta0,
        dt,
        _steps(T, dt),
        **neuron.net_flow_kw(X, y),
        check=_divergence("gradient flow of the network", "reduce dt_max or dt_gamma"),
    )
    th = flow.w
    probe = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64, device=device).expand(len(grid), 1, 3)
    fprobe = neuron.net_forward(th, probe)
    runs = grid.assign(
        loss=_np(neuron.net_loss(th, X, y)),
        balance_drift=_np((neuron.balance(th) - neuron.balance(theta0)).abs().amax(1)),
        f_e3=_np(fprobe[:, 0]),
        err_halving=_np(err),
    )
    per_width = {}
    for k in widths:  # one small matrix per width (a handful), each computed as one batch
        idx = torch.as_tensor(np.flatnonzero(grid["width"].to_numpy() == k), device=device)
        B = len(idx)
        Xi = X[idx].unsqueeze(1).expand(B, B, 3, 3).reshape(B * B, 3, 3)
        yi = y[idx].unsqueeze(1).expand(B, B, 3).reshape(B * B, 3)
        tj = th[idx].unsqueeze(0).expand(B, B, m, 4).reshape(B * B, m, 4)
        per_width[k] = {
            "cross_loss": _np(neuron.net_loss(tj, Xi, yi).reshape(B, B)),
            "dist": _np(torch.cdist(th[idx].reshape(B, -1), th[idx].reshape(B, -1))),
            "balance": _np(neuron.balance(th[idx])),
        }
    return {"runs": runs, "theta": _np(th), "theta0": _np(theta0), "per_width": per_width}


# -------------------------------------------------------------------------------------------------
# the whole chapter, and the benchmark workload
# -------------------------------------------------------------------------------------------------

STUDIES = {
    "gamma3d": gamma3d,
    "phase2d": phase2d,
    "leaky": leaky,
    "relu_random": relu_random,
    "balance": balance,
    "net": net,
}


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (its cache) with the profile's parameters."""
    P = params(ctx.profile)
    return {name: ctx.study(name, fn, **P[name]) for name, fn in STUDIES.items()}


def bench_workload(runs: int, device) -> engine.Workload:
    """One RK4 step of the ReLU-neuron gradient flow on ``runs`` random planted problems (d = 7, n = 6).

    ``batched_step``: all runs as one tensor program (:func:`lib.flows.rk4_step`); ``loop_step``: the
    same runs one at a time in NumPy (faster than per-run torch for 6 x 7 problems).
    """
    check_positive("runs", runs, integer=True)
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    X = torch.randn(runs, 6, 7, generator=gen, dtype=F64, device=dev)
    v = torch.randn(runs, 7, generator=gen, dtype=F64, device=dev)
    y = torch.relu(neuron.preact(v, X))
    state = {"w": torch.randn(runs, 7, generator=gen, dtype=F64, device=dev) / 7**0.5}
    dt = torch.full((runs, 1), 1e-3, dtype=F64, device=dev)
    grad = neuron.grad_fn(X, y)
    Xn, yn = _np(X), _np(y)
    wn = [_np(state["w"][i]).copy() for i in range(runs)]

    def batched_step() -> None:
        state["w"] = flows.rk4_step(grad, state["w"], dt)

    def g_np(w, Xb, yb):
        z = Xb @ w
        return ((z > 0) * (np.maximum(z, 0) - yb)) @ Xb

    def loop_step() -> None:
        h = 1e-3
        for i in range(runs):
            w, Xb, yb = wn[i], Xn[i], yn[i]
            k1 = g_np(w, Xb, yb)
            k2 = g_np(w - 0.5 * h * k1, Xb, yb)
            k3 = g_np(w - 0.5 * h * k2, Xb, yb)
            k4 = g_np(w - h * k3, Xb, yb)
            wn[i] = w - h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    flops = (
        4 * (4 * 6 * 7 + 4 * 6) + 10 * 7
    )  # four gradients (two 6x7 mat-vecs each) + the RK4 combination
    return engine.Workload(
        name="ch01 ReLU-neuron RK4 step",
        runs=runs,
        device=str(dev),
        batched_step=batched_step,
        loop_step=loop_step,
        flops_per_run_step=float(flops),
        matmul_shape=(runs, 6, 7, 1),
    )
