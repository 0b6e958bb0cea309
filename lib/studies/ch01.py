"""Studies of chapter 1: a single ReLU neuron with the square loss (Vardi & Shamir, ``vardi2021implicit``).

Each study is a plain function of keyword parameters plus ``device`` and ``seed`` that batches all of
its runs (values of gamma, random problems, step sizes, widths) along a leading axis and returns plain
data (NumPy arrays, ``pandas.DataFrame`` tables with one row per run, floats). Its parameters are a
frozen dataclass of the same name in CamelCase (:class:`Gamma3d` for :func:`gamma3d`), validated on
construction; :func:`params` gives the one :class:`Params` of a profile (``full`` written out,
``fast`` derived from it), :func:`describe` shows it as a short table, and :func:`run_all` runs every
study through a chapter context's cache. The chapter's claims measure the results with the small
functions of the last section (each with a unit test).

Numerics: gradient flow is integrated with fixed-step RK4 (:mod:`lib.flows`) in float64, with step
sizes ``dt <= dt_max`` and ``dt <= dt_gamma / gamma^2`` on the gamma-families (their curvature grows
like gamma^2), and ``dt = c / lambda_max(X X^T)`` per random problem. On the gamma-families (one
neuron and the networks) the steps are event-located (:func:`lib.flows.rk4_event_step`: they stop at
every activation switch); every study reports its integrator error by comparing with the step
``2 dt`` (:func:`lib.flows.halving_error`). Negative controls (plain gradient descent at the same
step, a shorter horizon, a leaky ReLU, ...) are computed in the same studies.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine, flows, neuron
from ..checks import ParameterError, check_fields, check_numbers, check_positive, check_profile

F64 = torch.float64

#: the gamma-families: RK4 step ``min(DT_MAX, DT_GAMMA / gamma^2)`` (their curvature grows like gamma^2)
DT_MAX = 1e-3
DT_GAMMA = 0.2
#: the values of gamma the spec names for the 3-D family (always on the grid, drawn in its figure)
SPEC_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0, 20.0)
#: random problems: Gram matrices with condition number up to KAPPA_MAX, run to rescaled time HORIZON
KAPPA_MAX = 20.0
HORIZON = 30.0
#: float64 rounding unit: a run of N steps carries a rounding allowance of N * ROUNDING * max|w|
ROUNDING = 2.0**-52
#: the negative control of the zero-loss claims: the same runs stopped at EARLY * T
EARLY = 1 / 8
#: slope of the leaky ReLU used as the negative control of the 3-D family (any slope in (0, 1) gives
#: the same limit there: the zero-loss set of a strictly monotone activation is one point)
LEAKY_CONTROL_SLOPE = 0.5


def gamma_grid(num: int, lo: float = 0.05, hi: float = 20.0) -> tuple[float, ...]:
    """:data:`SPEC_GAMMAS` together with ``num`` log-spaced values in ``[lo, hi]`` (6 digits), sorted."""
    dense = np.round(np.geomspace(lo, hi, num), 6).tolist()
    return tuple(sorted(set(SPEC_GAMMAS) | set(dense)))


# -------------------------------------------------------------------------------------------------
# parameters: one frozen dataclass per study, validated on construction
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gamma3d:
    """The 3-D family :math:`D_\\gamma` (:func:`gamma3d`)."""

    gammas: tuple[float, ...]
    T: float
    dt_max: float
    dt_gamma: float
    init: float
    record_every: int

    def __post_init__(self) -> None:
        check_numbers("gammas", self.gammas, closed=(True, False), what="a non-empty list of finite numbers >= 0")
        check_fields(self, "T", "dt_max", "dt_gamma", "init")
        check_fields(self, "record_every", integer=True)


@dataclass(frozen=True)
class Phase2d:
    """The 2-D family (:func:`phase2d`); ``exact_gammas = (lo, hi, num)``: the log grid of the exact curve."""

    gammas: tuple[float, ...]
    T: float
    dt_max: float
    dt_gamma: float
    w0: tuple[float, float]
    exact_gammas: tuple[float, float, int]
    record_every: int

    def __post_init__(self) -> None:
        check_numbers(
            "gammas",
            self.gammas,
            what="a non-empty list of numbers > 0 (gamma = 0 has another zero-loss set)",
        )
        check_fields(self, "T", "dt_max", "dt_gamma")
        check_fields(self, "record_every", integer=True)
        check_numbers("w0", self.w0, lo=-math.inf, what="two finite numbers")
        if len(self.w0) != 2 or not 0 < self.w0[0] < self.w0[1]:
            raise ParameterError(
                f"invalid w0={self.w0!r}: two numbers 0 < w0[0] < w0[1] (both examples active)"
            )
        lo, hi, num = self.exact_gammas
        if not (0 < lo < hi and isinstance(num, int) and num >= 2):
            raise ParameterError(
                f"invalid exact_gammas={self.exact_gammas!r}: (lo, hi, num) with 0 < lo < hi, num >= 2"
            )


@dataclass(frozen=True)
class Leaky:
    """Random planted problems with a leaky-ReLU neuron (:func:`leaky`)."""

    batch: int
    slopes: tuple[float, ...]
    kappa_max: float
    c: float
    horizon: float
    record_every: int

    def __post_init__(self) -> None:
        check_fields(self, "batch", "record_every", integer=True)
        check_fields(self, "kappa_max", "c", "horizon")
        check_numbers(
            "slopes",
            self.slopes,
            hi=1.0,
            what="leaky slopes must lie in (0, 1)",
        )
        if self.record_every % 2:
            raise ParameterError(
                f"invalid record_every={self.record_every!r}: an even number (the step-2h run records at half of it)"
            )


@dataclass(frozen=True)
class ReluRandom:
    """Random planted problems with a ReLU neuron (:func:`relu_random`)."""

    batch: int
    kappa_max: float
    c: float
    horizon: float
    init_scale: float
    record_every: int
    n_qp: int

    def __post_init__(self) -> None:
        check_fields(self, "batch", "record_every", integer=True)
        check_fields(self, "n_qp", integer=True, allow_zero=True)
        check_fields(self, "kappa_max", "c", "horizon", "init_scale")


@dataclass(frozen=True)
class RatioSearch:
    """A search for large approximation ratios (:func:`ratio_search`): ``d`` examples in
    :math:`\\mathbb R^d`, the last with label 0; ``rounds`` generations of ``batch`` candidates."""

    d: int
    batch: int
    rounds: int
    keep: int
    spread: float
    grid: int
    t_max: float

    def __post_init__(self) -> None:
        check_fields(self, "d", "batch", "rounds", "keep", "grid", integer=True)
        check_fields(self, "spread", "t_max")
        if self.d < 2 or self.keep > self.batch:
            raise ParameterError(
                f"invalid d={self.d!r} or keep={self.keep!r}: d >= 2 and keep <= batch"
            )


@dataclass(frozen=True)
class Balance:
    """Balancedness of a one-hidden-layer network under GD and RK4 (:func:`balance`)."""

    n: int
    d: int
    width: int
    inits: int
    T: float
    etas: tuple[float, ...]
    rk4_dts: tuple[float, ...]
    identity_steps: int
    record_every: int

    def __post_init__(self) -> None:
        check_fields(self, "n", "d", "width", "inits", "identity_steps", "record_every", integer=True)
        check_fields(self, "T")
        for name in ("etas", "rk4_dts"):
            check_numbers(
                name,
                getattr(self, name),
                hi=1.0,
                what="step sizes must lie in (0, 1)",
            )


@dataclass(frozen=True)
class Net:
    """Networks of several widths on the 3-D family (:func:`net`)."""

    gammas: tuple[float, ...]
    widths: tuple[int, ...]
    T: float
    dt_max: float
    dt_gamma: float
    init: float

    def __post_init__(self) -> None:
        check_numbers(
            "gammas", self.gammas, what="a non-empty list of numbers > 0"
        )
        check_fields(self, "T", "dt_max", "dt_gamma", "init")
        if not self.widths or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.widths
        ):
            raise ParameterError(f"invalid widths={self.widths!r}: positive integers")


@dataclass(frozen=True)
class Params:
    """The parameters of every study of the chapter; a field per study, named after its function."""

    gamma3d: Gamma3d
    phase2d: Phase2d
    leaky: Leaky
    relu_random: ReluRandom
    ratio_search: RatioSearch
    balance: Balance
    net: Net


FULL = Params(
    gamma3d=Gamma3d(
        gammas=gamma_grid(60), T=10.0, dt_max=DT_MAX, dt_gamma=DT_GAMMA, init=1e-6, record_every=40
    ),
    phase2d=Phase2d(
        gammas=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
        T=15.0,
        dt_max=DT_MAX,
        dt_gamma=DT_GAMMA,
        w0=(0.1, 1.0),
        exact_gammas=(0.05, 1e5, 2000),
        record_every=40,
    ),
    leaky=Leaky(
        batch=1000,
        slopes=(0.2, 0.35, 0.5, 0.75),
        kappa_max=KAPPA_MAX,
        c=1.0,
        horizon=HORIZON,
        record_every=250,
    ),
    relu_random=ReluRandom(
        batch=4000,
        kappa_max=KAPPA_MAX,
        c=0.05,
        horizon=HORIZON,
        init_scale=1.0,
        record_every=40,
        n_qp=200,
    ),
    ratio_search=RatioSearch(
        d=3, batch=8192, rounds=20, keep=128, spread=0.3, grid=600, t_max=30.0
    ),
    balance=Balance(
        n=8,
        d=3,
        width=5,
        inits=32,
        T=4.0,
        etas=(2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
        rk4_dts=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
        identity_steps=2000,
        record_every=10,
    ),
    net=Net(
        gammas=tuple(np.round(np.geomspace(0.75, 5.0, 10), 6).tolist()),
        widths=(1, 2, 3),
        T=8.0,
        dt_max=2.5e-4,
        dt_gamma=0.02,
        init=0.3,
    ),
)

_r = dataclasses.replace
FAST = _r(
    FULL,
    gamma3d=_r(FULL.gamma3d, gammas=gamma_grid(20), T=8.0),
    phase2d=_r(
        FULL.phase2d,
        gammas=(0.5, 1.0, 2.0, 5.0, 10.0),
        T=10.0,
        exact_gammas=(0.1, 1e4, 200),
        record_every=20,
    ),
    leaky=_r(FULL.leaky, batch=96, slopes=(0.3, 0.6), record_every=100),
    relu_random=_r(FULL.relu_random, batch=200, c=0.1, record_every=20, n_qp=20),
    ratio_search=_r(FULL.ratio_search, d=2, batch=1024, rounds=8, keep=32),
    balance=_r(
        FULL.balance,
        inits=4,
        etas=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
        rk4_dts=(1e-3, 2e-3, 4e-3, 8e-3),
        identity_steps=400,
    ),
    net=_r(FULL.net, gammas=(0.5, 1.0, 2.0, 5.0), widths=(1, 3), T=6.0),
)


def params(profile: str) -> Params:
    """The parameters of every study for ``profile`` (``"fast"`` or ``"full"``)."""
    return {"fast": FAST, "full": FULL}[check_profile(profile)]


def describe(P: Params) -> pd.DataFrame:
    """``P`` as a short table (study, parameter, value); a list of more than four numbers is summarised
    as ``n values in [a, b]``."""
    rows = []
    for study in dataclasses.fields(P):
        p = getattr(P, study.name)
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, tuple) and len(v) > 4:
                v = f"{len(v)} values in [{min(v):g}, {max(v):g}]"
            elif isinstance(v, tuple):
                v = ", ".join(f"{x:g}" for x in v)
            elif isinstance(v, float):
                v = f"{v:g}"
            rows.append({"study": study.name, "parameter": f.name, "value": str(v)})
    return pd.DataFrame(rows).set_index(["study", "parameter"])


def _validated(cls, **kw) -> Any:
    """Build (and so validate) a study's parameter dataclass from the study's keyword arguments."""
    kw = {k: tuple(v) if isinstance(v, (list, np.ndarray)) else v for k, v in kw.items()}
    return cls(**kw)


def _gammas(gammas, device) -> torch.Tensor:
    return torch.as_tensor(list(gammas), dtype=F64, device=device)


def _steps(T: float, dt: torch.Tensor) -> torch.Tensor:
    """An even number of steps reaching at least time ``T`` with step ``dt`` (per run)."""
    return (2 * torch.ceil(T / dt / 2)).long()


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _divergence(what: str, hint: str):
    return lambda w: engine.check_finite(w, what=what, hint=hint)


def _rounding(steps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The rounding allowance of a run of ``steps`` steps: ``steps * ROUNDING * max(1, max|w|)``."""
    return steps.to(F64) * ROUNDING * w.reshape(len(w), -1).abs().amax(1).clamp(min=1.0)


class _Snapshot:
    """A :func:`lib.flows.integrate` callback keeping each run's state after its own ``at[b]`` steps
    (e.g. an eighth of its horizon: the negative control "stopped early")."""

    def __init__(self, at: torch.Tensor, w0: torch.Tensor):
        self.at = at
        self.w = w0.clone()

    def __call__(self, k: int, w: torch.Tensor) -> None:
        hit = (self.at == k).reshape(-1, *([1] * (w.ndim - 1)))
        if bool(hit.any()):
            self.w = torch.where(hit, w, self.w)


def _cross(loss_fn, W: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-loss matrix ``[B, B]``: dataset ``i`` (rows) at the limit ``j`` (columns)."""
    B = len(W)
    Xi = X.unsqueeze(1).expand(B, B, *X.shape[1:]).reshape(B * B, *X.shape[1:])
    yi = y.unsqueeze(1).expand(B, B, *y.shape[1:]).reshape(B * B, *y.shape[1:])
    Wj = W.unsqueeze(0).expand(B, B, *W.shape[1:]).reshape(B * B, *W.shape[1:])
    return loss_fn(Wj, Xi, yi).reshape(B, B)


# -------------------------------------------------------------------------------------------------
# 1. the 3-D gamma-family
# -------------------------------------------------------------------------------------------------


def gamma3d(
    *, gammas, T, dt_max, dt_gamma, init, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """Gradient flow of one ReLU neuron on every dataset :math:`D_\\gamma` of the 3-D family, from
    :math:`w_0 = \\text{init}\\cdot(1,1,1)`, as one batch, with its exact reference and controls.

    Per :math:`\\gamma` (table): the RK4 limit (event-located steps) and its step-doubling error
    ``err_halving``; the exact limit :math:`w_3^*` of :func:`lib.neuron.single_switch_limit` (the flow
    is linear until :math:`x_3` switches off at :math:`\\tau`, and :math:`w_3` is frozen after) and the
    tolerance ``tol`` = ``err_halving`` + rounding allowance; plain gradient descent (Euler) at the same
    step, the negative control; the number of steps that changed the activation pattern, the switch
    time and the rate :math:`\\tfrac{d}{dt}(w_2 + w_3)` just after it (on the switching surface only
    the positive examples move :math:`w_2`, so a negative value means a transversal crossing); and the
    limit of a leaky-ReLU neuron (closed form, :data:`LEAKY_CONTROL_SLOPE`). Also: trajectories, and the
    cross-loss matrices :math:`L_{D_{\\gamma_i}}(w(\\gamma_j))` at :math:`T` and at :data:`EARLY`
    :math:`\\cdot T`, and the
    distance matrix of the limits.
    """
    _validated(
        Gamma3d,
        gammas=gammas,
        T=T,
        dt_max=dt_max,
        dt_gamma=dt_gamma,
        init=init,
        record_every=record_every,
    )
    g = _gammas(gammas, device)
    B = len(g)
    X, y = neuron.gamma_family_3d(g)
    w0 = torch.full((B, 3), float(init), dtype=F64, device=device)
    dt = torch.clamp(dt_gamma / g.pow(2), max=dt_max)
    steps = _steps(T, dt)
    early = _Snapshot(torch.round(steps * EARLY).long(), w0)
    check = _divergence("gradient flow on D_gamma", "reduce the step size dt_max or dt_gamma")
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y),
        w0,
        dt,
        steps,
        record_every=record_every,
        observe={"w": lambda w: w.clone()},
        pattern=lambda w: neuron.pattern(w, X),
        callback=early,
        check=check,
        **neuron.flow_kw(X, y),
    )
    w = flow.w
    gd = flows.gd(neuron.grad_fn(X, y), w0, dt, steps, check=check).w
    # the exact reference (gamma > 0; at gamma = 0, x3 = 0 is never active and w3 never moves)
    pos = g > 0
    ex = neuron.single_switch_limit(w0[pos], X[pos], y[pos], 2, t_max=float(T))
    w3_exact = w0[:, 2].clone()
    w3_exact[pos] = ex["w_star"][:, 2]
    tau_exact = torch.full_like(dt, math.nan)
    tau_exact[pos] = ex["tau"]
    valid = torch.ones_like(pos)
    valid[pos] = ex["valid"]
    tol = err + _rounding(steps, w)
    # the switch-off of x3: the last pattern change (none for gamma = 0)
    switched = flow.n_changes > 0
    nan = torch.full_like(dt, math.nan)
    tau = torch.where(switched, flow.last_change.to(F64) * dt, nan)
    g_last = neuron.grad(flow.w_last_change, X, y)
    rate = torch.where(switched, -(g_last[:, 1] + g_last[:, 2]), nan)
    leaky = neuron.leaky_limit(w0, X, y, LEAKY_CONTROL_SLOPE)
    table = pd.DataFrame(
        {
            "gamma": _np(g),
            "dt": _np(dt),
            "T": _np(flow.t),
            "w1": _np(w[:, 0]),
            "w2": _np(w[:, 1]),
            "w3": _np(w[:, 2]),
            "w3 exact": _np(w3_exact),
            "|RK4 - exact|": _np((w[:, 2] - w3_exact).abs()),
            "tol": _np(tol),
            "w3 GD": _np(gd[:, 2]),
            "|GD - exact|": _np((gd[:, 2] - w3_exact).abs()),
            "w3 leaky": _np(leaky[:, 2]),
            "loss": _np(neuron.loss(w, X, y)),
            "switches": _np(flow.n_changes),
            "tau_switch": _np(tau),
            "tau exact": _np(tau_exact),
            "rate_at_switch": _np(rate),
            "err_halving": _np(err),
            "exact valid": _np(valid),
        }
    )
    return {
        "table": table,
        "w0": _np(w0[0]),
        "record_steps": _np(flow.record_steps),
        "traj": _np(flow.records["w"]),  # [K, B, 3]
        "cross_loss": _np(_cross(neuron.loss, w, X, y)),
        "cross_loss_early": _np(_cross(neuron.loss, early.w, X, y)),
        "dist": _np(torch.cdist(w, w)),
        "proj_w0": _np(neuron.project_Z_3d(w0)[0]),
    }


def gamma3d_view(res: dict[str, Any]) -> pd.DataFrame:
    """The rows of :func:`gamma3d`'s table at :data:`SPEC_GAMMAS`, in the columns the chapter shows."""
    t = res["table"]
    t = t.assign(
        **{
            "RK4 error / tol": t["|RK4 - exact|"] / t["tol"],
            "GD error / tol": t["|GD - exact|"] / t["tol"],
        }
    )
    cols = [
        "gamma",
        "w3",
        "w3 exact",
        "RK4 error / tol",
        "GD error / tol",
        "switches",
        "tau exact",
        "rate_at_switch",
    ]
    return t[t["gamma"].isin(SPEC_GAMMAS)][cols].set_index("gamma")


# -------------------------------------------------------------------------------------------------
# 2. the 2-D phase plane
# -------------------------------------------------------------------------------------------------


def phase2d(
    *, gammas, T, dt_max, dt_gamma, w0, exact_gammas, record_every, device="cpu", seed=0
) -> dict[str, Any]:
    """The 2-D family: RK4 trajectories for ``gammas`` (with step-doubling errors and the tolerance
    ``tol`` = error + rounding allowance), plain gradient descent at the same step (the negative
    control), the exact limits :func:`lib.neuron.phase2d_exact` for the same gammas and on a log grid
    ``exact_gammas = (lo, hi, num)``, and the book's bound on :math:`w_2^*(\\gamma) - (w_{0,1}+w_{0,2})/2`
    (:func:`lib.neuron.phase2d_bound`)."""
    _validated(
        Phase2d,
        gammas=gammas,
        T=T,
        dt_max=dt_max,
        dt_gamma=dt_gamma,
        w0=w0,
        exact_gammas=exact_gammas,
        record_every=record_every,
    )
    g = _gammas(gammas, device)
    B = len(g)
    X, y = neuron.gamma_family_2d(g)
    a, c = float(w0[0]), float(w0[1])
    W0 = torch.tensor([a, c], dtype=F64, device=device).expand(B, 2).clone()
    dt = torch.clamp(dt_gamma / g.pow(2), max=dt_max)
    steps = _steps(T, dt)
    check = _divergence(
        "gradient flow on the 2-D family", "reduce the step size dt_max or dt_gamma"
    )
    flow, err = flows.halving_error(
        neuron.grad_fn(X, y),
        W0,
        dt,
        steps,
        record_every=record_every,
        observe={"w": lambda w: w.clone()},
        pattern=lambda w: neuron.pattern(w, X),
        check=check,
        **neuron.flow_kw(X, y),
    )
    gd = flows.gd(neuron.grad_fn(X, y), W0, dt, steps, check=check).w
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
            "tol": _np(err + _rounding(steps, flow.w)),
            "|GD - exact|": _np((gd[:, 1] - w2_exact).abs()),
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
        "closest": min(c, 1.0),  # w2 of the zero-loss point closest to w0, (1, min(w0_2, 1))
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
    Returns one row per run (dims, condition number, slope, :math:`\\lambda_{min}`, distance to the
    closed-form limit, the approximation ratio :math:`\\lVert w(T) - w_0\\rVert / \\lVert w^* - w_0\\rVert`)
    and the distance to the closed form along the run for the steps ``dt`` and ``2 dt``
    (:func:`lib.flows.step_doubling`), whose difference bounds its integration error."""
    _validated(
        Leaky,
        batch=batch,
        slopes=slopes,
        kappa_max=kappa_max,
        c=c,
        horizon=horizon,
        record_every=record_every,
    )
    s = torch.as_tensor(list(slopes), dtype=F64, device=device)
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
    fine, coarse, err = flows.step_doubling(
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
    d_star = (target - w0).norm(dim=1)
    runs = pd.DataFrame(
        {
            "slope": _np(alpha),
            "d": _np(rep(P["d"])),
            "n": _np(rep(P["n"])),
            "kappa": _np(kappa),
            "lam_min": _np(lam_min),
            "dist_closed_form": _np((fine.w - target).norm(dim=1)),
            "ratio": _np((fine.w - w0).norm(dim=1) / d_star),
            "loss": _np(neuron.loss(fine.w, X, y, alpha)),
            "err_halving": _np(err),
            "rate_bound": _np(alpha**2 * lam_min),
        }
    )
    return {
        "runs": runs,
        "accepted": P["accepted"],
        "steps": steps,
        "time": _np(fine.record_steps.to(F64).unsqueeze(1) * dt.unsqueeze(0)),  # [K, B]
        "err_curve": _np(fine.records["err"]),  # [K, B]
        "err_curve_coarse": _np(coarse.records["err"]),  # [K, B], same times
    }


# -------------------------------------------------------------------------------------------------
# 4. ReLU on random problems: Fejer monotonicity, the factor 2, the trajectory-dependent projection
# -------------------------------------------------------------------------------------------------

#: the points of (or near) Z whose distance from w(t) the study follows along every run
ANCHORS = ("proj", "teacher", "affine")


class _FejerMonitor:
    """Streams, per run, the largest one-step increase of the distances to fixed anchor points."""

    def __init__(self, anchors: torch.Tensor, w0: torch.Tensor):
        self.anchors = anchors  # [B, A, d]
        self.prev = (w0.unsqueeze(1) - anchors).norm(dim=-1)  # [B, A]
        self.max_inc = torch.full_like(self.prev, -math.inf)

    def __call__(self, k: int, w: torch.Tensor) -> None:
        d = (w.unsqueeze(1) - self.anchors).norm(dim=-1)
        self.max_inc = torch.maximum(self.max_inc, d - self.prev)
        self.prev = d


def showcase_choice(runs: pd.DataFrame) -> int:
    """A converged run of :func:`relu_random` whose pattern changed a few times (1 to 3: a clean
    switch, not a zero-label example flickering at rounding level on its way to the surface) and whose
    ratio exceeds 1; the most examples, then the largest ratio. The run of the activation-pattern figure."""
    r = runs
    ok = r[(r["status"] == "converged") & r["n_changes"].between(1, 3) & (r["ratio"] > 1 + 1e-9)]
    if ok.empty:
        ok = r[r["status"] == "converged"]
    if ok.empty:  # (tiny test runs) any run will do
        ok = r
    return int(ok.sort_values(["n", "ratio"], ascending=False).index[0])


def _showcase(X, y, w0, anchors, dt, steps) -> dict[str, Any]:
    """One run again, with event-located steps and a record at every step; the switch times are
    located inside their steps (:func:`lib.flows.locate_switch`)."""
    kw = neuron.flow_kw(X, y)
    flow = flows.integrate(
        neuron.grad_fn(X, y),
        w0,
        dt,
        steps,
        record_every=1,
        observe={
            "w": lambda w: w.clone(),
            "pattern": lambda w: neuron.pattern(w, X),
            "dist": lambda w: (w.unsqueeze(1) - anchors).norm(dim=-1),
        },
        **kw,
    )
    pat = flow.records["pattern"][:, 0]  # [K+1, n]
    changed = torch.nonzero((pat[1:] != pat[:-1]).any(-1)).squeeze(1)  # step k -> k+1 changed
    m = len(changed)
    theta = torch.zeros(0, dtype=F64, device=X.device)
    if m:  # locate each switch inside its step, from the state at the start of the step
        kw_m = neuron.flow_kw(X.expand(m, -1, -1), y.expand(m, -1))
        theta = flows.locate_switch(
            kw_m["piece_grad"], kw_m["events"], flow.records["w"][changed, 0], dt.expand(m)
        )
    switch_times = (changed.to(F64) + theta) * dt
    return {
        "time": _np(flow.record_steps.to(F64) * dt),
        "patterns": _np(pat),
        "dist": _np(flow.records["dist"][:, 0]),
        "switch_times": _np(switch_times),
    }


def relu_random(
    *, batch, kappa_max, c, horizon, init_scale, record_every, n_qp, device="cpu", seed=0
) -> dict[str, Any]:
    """Gradient flow of a ReLU neuron on random planted problems (d in 3..7, n < d), as one batch.

    Per run: status (``converged``: loss < 1e-20; ``stalled``: loss > 1e-8; ``unfinished``: between;
    ``start in Z``), the ratio :math:`\\lVert w^* - w_0\\rVert / \\mathrm{dist}(w_0, Z)`, the largest
    one-step increase of :math:`\\lVert w(t) - \\bar w\\rVert` for the anchors :data:`ANCHORS` (the
    projection of :math:`w_0` onto :math:`Z`, the planted teacher, both in :math:`Z`; and the negative
    control, the projection onto the positive-label equations alone, which may lie outside :math:`Z`),
    the last activation change :math:`\\tau`, and the error of the trajectory-dependent projection
    formula from :math:`w(\\tau)` and, as the control, from :math:`w(0)`. The projections onto
    :math:`Z` are exact (:func:`lib.neuron.project_Z`); the first ``n_qp`` are cross-checked with
    CLARABEL. One converged run (:func:`showcase_choice`) is integrated again with event-located steps
    and a record at every step, for the activation-pattern figure.
    """
    _validated(
        ReluRandom,
        batch=batch,
        kappa_max=kappa_max,
        c=c,
        horizon=horizon,
        init_scale=init_scale,
        record_every=record_every,
        n_qp=n_qp,
    )
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 13)
    P = neuron.planted_problems(
        batch, kappa_max=kappa_max, init_scale=init_scale, generator=gen, device=device
    )
    X, y, v, w0 = P["X"], P["y"], P["v"], P["w0"]
    proj = neuron.project_Z(w0, X, y)
    affine = neuron.project_affine(w0, X, y, y > 0)
    anchors = torch.stack([proj, v, affine], dim=1)
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
    final = neuron.pattern(w, X)
    w_tau = neuron.project_affine(flow.w_last_change, X, y * final, final)
    w_start = neuron.project_affine(w0, X, y * final, final)
    inc = monitor.max_inc
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
            **{f"fejer_inc_{a}": _np(inc[:, i]) for i, a in enumerate(ANCHORS)},
            "tau": _np(flow.last_change.to(F64) * dt),
            "n_changes": _np(flow.n_changes),
            "traj_proj_err": _np((w_tau - w).norm(dim=1)),
            "traj_proj_err_w0": _np((w_start - w).norm(dim=1)),
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
    b = showcase_choice(runs)
    one = slice(b, b + 1)
    show = _showcase(X[one], y[one], w0[one], anchors[one], dt[one], steps)
    return {
        "runs": runs,
        "accepted": P["accepted"],
        "steps": steps,
        "time": _np(flow.record_steps.to(F64).unsqueeze(1) * dt.unsqueeze(0)),  # [K, B]
        "dist_curves": _np(flow.records["dist"]),  # [K, B, 3] (ANCHORS)
        "n_rows": _np(P["n"]),
        "labels": _np(y),
        "qp_max_diff": qp_diff,
        "n_qp": int(min(n_qp, batch)),
        "showcase": {"run": b, **show},
    }


def showcase_table(res: dict[str, Any]) -> pd.DataFrame:
    """The showcase run's row of :func:`relu_random` with its switch times located inside their steps
    (``tau located``: the last one; ``tau`` is the step after which the pattern never changed)."""
    sc = res["showcase"]
    row = res["runs"].loc[[sc["run"]], ["d", "n", "n_pos", "ratio", "n_changes", "tau"]]
    return row.assign(
        **{"tau located": sc["switch_times"][-1] if len(sc["switch_times"]) else math.nan}
    )


def by_gamma(
    table: pd.DataFrame, column: str, label: str, gammas: Sequence[float] | None = None
) -> dict[str, float]:
    """``{f"{label} gamma={g:g}": value}`` for the rows of ``table`` (those with gamma in ``gammas``)
    whose value is finite: the per-gamma values a claim reports."""
    t = table if gammas is None else table[table["gamma"].isin(gammas)]
    return {
        f"{label} gamma={g:g}": float(v) for g, v in zip(t["gamma"], t[column]) if math.isfinite(v)
    }


def showcase_run(res: dict[str, Any]) -> int:
    """The run of :func:`relu_random` drawn in the activation-pattern figure (:func:`showcase_choice`)."""
    return int(res["showcase"]["run"])


# -------------------------------------------------------------------------------------------------
# 4b. how tight is the factor 2? a small search
# -------------------------------------------------------------------------------------------------


def _search_ratios(X, y, w0, *, grid, t_max):
    """Exact approximation ratios of candidates whose flow switches the last example off once
    (0 where the premises of :func:`lib.neuron.single_switch_limit` fail), and the same ratio with the
    zero-label constraint dropped from the distance (the negative control)."""
    k = X.shape[1] - 1
    ex = neuron.single_switch_limit(w0, X, y, k, t_max=t_max, grid=grid)
    moved = (ex["w_star"] - w0).norm(dim=1)
    ratio = moved / (neuron.project_Z(w0, X, y) - w0).norm(dim=1)
    wrong = moved / (neuron.project_affine(w0, X, y, y > 0) - w0).norm(dim=1)
    ok = ex["valid"] & torch.isfinite(ratio) & ((ex["w_star"] * X[:, k]).sum(-1) <= 0)
    zero = torch.zeros_like(ratio)
    return torch.where(ok, ratio, zero), torch.where(ok & torch.isfinite(wrong), wrong, zero)


def ratio_search(
    *, d, batch, rounds, keep, spread, grid, t_max, device="cpu", seed=0
) -> dict[str, Any]:
    """A small search for datasets with a large approximation ratio
    :math:`\\lVert w^* - w_0\\rVert / \\mathrm{dist}(w_0, Z)` (the book's factor-2 corollary bounds it by 2).

    Candidates: ``d`` examples in :math:`\\mathbb R^d` (Gaussian), labels uniform in [0, 2] except the
    last, which is 0, and :math:`w_0 \\sim N(0, I)`. A candidate counts when its flow is the one the
    book's constructions have (every example active at :math:`w_0`, the zero-label example switches
    off once, the others stay active); its limit is then exact (:func:`lib.neuron.single_switch_limit`).
    Each of ``rounds`` generations keeps the ``keep`` best and perturbs them (relative and absolute
    Gaussian noise of size ``spread``, shrinking by 0.7 per generation). Returns the best ratio per
    generation, the best candidate, how many candidates counted, and the largest ratio over all
    candidates when the zero-label constraint is left out of the distance (the negative control)."""
    _validated(
        RatioSearch,
        d=d,
        batch=batch,
        rounds=rounds,
        keep=keep,
        spread=spread,
        grid=grid,
        t_max=t_max,
    )
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 23)
    kw = {"generator": gen, "dtype": F64, "device": device}
    X = torch.randn(batch, d, d, **kw)
    y = 2 * torch.rand(batch, d, **kw)
    y[:, -1] = 0
    w0 = torch.randn(batch, d, **kw)
    best, wrong_max, counted = [], 0.0, 0
    for r in range(rounds):
        ratio, wrong = _search_ratios(X, y, w0, grid=grid, t_max=t_max)
        counted += int((ratio > 0).sum())
        wrong_max = max(wrong_max, float(wrong.max()))
        i = int(ratio.argmax())
        best.append(float(ratio[i]))
        if r == 0 or best[-1] >= max(best[:-1]):
            champion = {"X": _np(X[i]), "y": _np(y[i]), "w0": _np(w0[i]), "ratio": best[-1]}
        if r == rounds - 1:
            break
        top = ratio.argsort(descending=True)[:keep].repeat(math.ceil(batch / keep))[:batch]
        s = spread * 0.7**r
        X = X[top] * (1 + s * torch.randn(batch, d, d, **kw)) + s * torch.randn(batch, d, d, **kw)
        y = (y[top] + s * torch.randn(batch, d, **kw)).abs()
        y[:, -1] = 0
        w0 = w0[top] + s * torch.randn(batch, d, **kw)
    return {
        "best": np.array(best),
        "champion": champion,
        "counted": counted,
        "evaluated": rounds * batch,
        "wrong_max": wrong_max,
    }


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
    steps of the largest ``eta``. Drift = :math:`\\max_j |Q_j(T) - Q_j(0)|`. The negative control of
    the GD drift law, ``drift_fixed_steps``: the GD drift after a fixed number of steps
    (``T / max(etas)``) instead of at a fixed time.
    """
    _validated(
        Balance,
        n=n,
        d=d,
        width=width,
        inits=inits,
        T=T,
        etas=etas,
        rk4_dts=rk4_dts,
        identity_steps=identity_steps,
        record_every=record_every,
    )
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

    # GD over every eta (runs: eta x init), each to time T; and the state after a fixed step count
    ggrid, th_gd, lr = batch_of(etas)
    Xg = x.expand(len(ggrid), n, d)
    yg = yv.expand(len(ggrid), n)
    k_fixed = round(T / max(etas))
    fixed = _Snapshot(torch.full((len(ggrid),), k_fixed, device=device), th_gd)
    gd = flows.gd(
        neuron.net_grad_fn(Xg, yg),
        th_gd,
        lr,
        torch.round(T / lr).long(),
        callback=fixed,
        check=_divergence("GD on the network", "reduce the largest step size in etas"),
    )
    drift_gd = (neuron.balance(gd.w) - neuron.balance(th_gd)).abs().amax(1)
    drift_fixed = (neuron.balance(fixed.w) - neuron.balance(th_gd)).abs().amax(1)
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
        "drift_fixed_steps": ggrid.assign(method="GD", drift=_np(drift_fixed), steps=k_fixed),
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

    Returns one row per run (loss, drift of the conserved quantities under RK4 and, the negative
    control, under plain GD at the same step; prediction at a probe point; integrator error), the
    limits, and per width the cross-loss matrices at :math:`T` and at :data:`EARLY` :math:`\\cdot T`, the distances
    between the limits and between their conserved quantities.
    """
    _validated(Net, gammas=gammas, widths=widths, T=T, dt_max=dt_max, dt_gamma=dt_gamma, init=init)
    g = _gammas(gammas, device)
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
    steps = _steps(T, dt)
    early = _Snapshot(torch.round(steps * EARLY).long(), theta0)
    check = _divergence("gradient flow of the network", "reduce dt_max or dt_gamma")
    flow, err = flows.halving_error(
        neuron.net_grad_fn(X, y),
        theta0,
        dt,
        steps,
        callback=early,
        check=check,
        **neuron.net_flow_kw(X, y),
    )
    th = flow.w
    gd = flows.gd(neuron.net_grad_fn(X, y), theta0, dt, steps, check=check).w
    probe = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64, device=device).expand(len(grid), 1, 3)
    Q0 = neuron.balance(theta0)
    runs = grid.assign(
        loss=_np(neuron.net_loss(th, X, y)),
        balance_drift=_np((neuron.balance(th) - Q0).abs().amax(1)),
        balance_drift_gd=_np((neuron.balance(gd) - Q0).abs().amax(1)),
        f_e3=_np(neuron.net_forward(th, probe)[:, 0]),
        err_halving=_np(err),
    )
    per_width = {}
    for k in widths:  # one small matrix per width (a handful), each computed as one batch
        idx = torch.as_tensor(np.flatnonzero(grid["width"].to_numpy() == k), device=device)
        Q = neuron.balance(th[idx])
        per_width[k] = {
            "cross_loss": _np(_cross(neuron.net_loss, th[idx], X[idx], y[idx])),
            "cross_loss_early": _np(_cross(neuron.net_loss, early.w[idx], X[idx], y[idx])),
            "dist": _np(torch.cdist(th[idx].reshape(len(idx), -1), th[idx].reshape(len(idx), -1))),
            "dist_Q": _np(torch.cdist(Q, Q)),
            "balance": _np(Q),
        }
    return {"runs": runs, "theta": _np(th), "theta0": _np(theta0), "per_width": per_width}


# -------------------------------------------------------------------------------------------------
# measurements behind the chapter's claims (each a small function with a unit test)
# -------------------------------------------------------------------------------------------------


def max_cross_loss(res: dict[str, Any], at: str = "T") -> float:
    """Largest entry of :func:`gamma3d`'s cross-loss matrix at the end (``at="T"``) or at
    :data:`EARLY` times the horizon (``at="early"``, the negative control: runs stopped too early).
    The diagonal holds each run's own loss."""
    return float(np.max(res["cross_loss" if at == "T" else "cross_loss_early"]))


def net_cross_loss(res: dict[str, Any], at: str = "T") -> float:
    """:func:`max_cross_loss` for :func:`net`, over every width."""
    key = "cross_loss" if at == "T" else "cross_loss_early"
    return float(max(np.max(v[key]) for v in res["per_width"].values()))


def w1_w2_error(table: pd.DataFrame) -> float:
    """:math:`\\max_\\gamma \\max(|w_1 - 5|, |w_2 + 1|)` over :func:`gamma3d`'s limits."""
    return float(np.maximum((table["w1"] - 5).abs(), (table["w2"] + 1).abs()).max())


def exact_ratio(table: pd.DataFrame, method: str = "RK4") -> float:
    """:math:`\\max_\\gamma |w_{method} - w_{exact}| / \\mathrm{tol}_\\gamma` over :math:`\\gamma > 0`:
    at most 1 when every limit agrees with the exact one within its step-doubling tolerance
    (``method`` ``"RK4"`` or ``"GD"``, the column ``|<method> - exact|``)."""
    t = table[table["gamma"] > 0]
    return float((t[f"|{method} - exact|"] / t["tol"]).max())


def monotone_margin(table: pd.DataFrame, column: str = "w3") -> float:
    """Smallest decrease of ``column`` between consecutive :math:`\\gamma > 0`, in units of the two
    runs' combined tolerances: above 1 when :math:`w_3^*` decreases strictly, beyond the integrator's
    error, along the whole grid. ``column="w3 leaky"``: the negative control."""
    t = table[table["gamma"] > 0].sort_values("gamma")
    w, tol = t[column].to_numpy(), t["tol"].to_numpy()
    return float(((w[:-1] - w[1:]) / (tol[:-1] + tol[1:])).min())


def single_switch_fraction(table: pd.DataFrame, zero: bool = False) -> float:
    """Fraction of the runs with :math:`\\gamma > 0` (``zero=True``: with :math:`\\gamma = 0`, the
    control) whose pattern changed at exactly one step, with :math:`\\tfrac{d}{dt}(w_2+w_3) < 0` there
    (a transversal crossing)."""
    t = table[(table["gamma"] == 0) if zero else (table["gamma"] > 0)]
    return float(((t["switches"] == 1) & (t["rate_at_switch"] < 0)).mean())


def band_excess(res: dict[str, Any], asymptote: float | None = None) -> float:
    """Where :math:`w_2^*(\\gamma)` lies in the band :math:`[a, a + \\text{bound}]` of
    {eq}`eq-ch01-2d-bound` on :func:`phase2d`'s dense grid (:math:`\\gamma \\ge 5`):
    :math:`\\max_\\gamma |2(w_2^* - a)/\\text{bound} - 1|`, at most 1 inside the band. ``a`` is the
    book's asymptote :math:`(w_{0,1}+w_{0,2})/2` unless ``asymptote`` is given (the control: the
    closest zero-loss point)."""
    a = res["asymptote"] if asymptote is None else asymptote
    d = res["dense"][res["dense"]["bound_valid"]]
    return float((2 * (d["w2_star"] - a) / d["bound"] - 1).abs().max())


def rate_excess(res: dict[str, Any], power: int = 2, floor: float = 1e-11) -> float:
    """How far the leaky-ReLU runs of :func:`leaky` are from the rate bound
    :math:`\\lVert w(t) - w^*\\rVert \\le \\lVert w_0 - w^*\\rVert e^{-\\alpha^p \\lambda_{min} t}`
    (``power`` :math:`p = 2`; :math:`p = 1` is the negative control): the largest ratio of the
    recorded distance, less its step-doubling error estimate, to the bound, over runs and recorded
    times :math:`t > 0` where the bound is above ``floor`` (below it the distances are rounding).
    At most 1 when every run obeys the bound."""
    r = res["runs"]
    t, e, e2 = res["time"], res["err_curve"], res["err_curve_coarse"]
    rate = (r["slope"].to_numpy() ** power * r["lam_min"].to_numpy())[None, :]
    bound = e[0][None, :] * np.exp(-rate * t)
    ok = (bound >= floor) & (t > 0)
    lower = e - np.abs(e - e2)
    return float((lower[ok] / bound[ok]).max())


def fejer_increase(runs: pd.DataFrame, anchors: Sequence[str] = ("proj", "teacher")) -> float:
    """Largest one-step increase of the distance from :math:`w(t)` to the ``anchors`` of
    :func:`relu_random`, over all runs (``("affine",)``: the negative control, a point that may lie
    outside :math:`Z`)."""
    return float(runs[[f"fejer_inc_{a}" for a in anchors]].to_numpy().max())


def _converged(runs: pd.DataFrame, n_min: int = 1) -> pd.DataFrame:
    ok = runs["n"] >= n_min
    if "status" in runs:
        ok &= runs["status"] == "converged"
    return runs[ok]


def frac_above_one(runs: pd.DataFrame, n_min: int = 2) -> float:
    """Fraction of the converged runs with at least ``n_min`` examples whose approximation ratio
    exceeds 1 by more than 10 times the run's integrator error (and 1e-9). Works on
    :func:`relu_random`'s runs and on :func:`leaky`'s (the negative control)."""
    c = _converged(runs, n_min)
    return float((c["ratio"] > 1 + np.maximum(1e-9, 10 * c["err_halving"])).mean())


def ratio_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The approximation ratio of the converged runs of :func:`relu_random` by number of examples."""
    c = _converged(runs)
    above = c["ratio"] > 1 + np.maximum(1e-9, 10 * c["err_halving"])
    out = c.groupby("n")["ratio"].describe()[["count", "mean", "max"]]
    return out.assign(frac_above_1=above.groupby(c["n"]).mean())


def error_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Median and largest integrator error (step doubling) over the converged runs of :func:`relu_random`."""
    e = _converged(runs)["err_halving"]
    return e.describe()[["50%", "max"]].to_frame("integrator error (converged runs)").T


def ratio_max(runs: pd.DataFrame, n_min: int = 2) -> float:
    """Largest approximation ratio over the converged runs with at least ``n_min`` examples."""
    return float(_converged(runs, n_min)["ratio"].max())


def traj_projection_error(runs: pd.DataFrame, start: str = "tau") -> float:
    """Largest distance, over converged runs, between the limit and the projection
    {eq}`eq-ch01-traj` onto the final active constraints of :math:`w(\\tau)` (``start="tau"``) or of
    :math:`w(0)` (``start="w0"``, the negative control)."""
    c = _converged(runs)
    return float(c["traj_proj_err" if start == "tau" else "traj_proj_err_w0"].max())


def min_separation(dist: np.ndarray, err: np.ndarray) -> float:
    """:math:`\\min_{i<j} \\lVert w_i - w_j\\rVert / (e_i + e_j)`: how many times their combined
    integrator-error estimates apart the closest two limits are (``dist``: pairwise distances,
    ``err``: per-run error estimates)."""
    dist, err = np.asarray(dist), np.asarray(err)
    i, j = np.triu_indices(len(err), 1)
    return float((dist[i, j] / (err[i] + err[j])).min())


def net_separation(res: dict[str, Any], by: str = "theta") -> float:
    """:func:`min_separation` of :func:`net`'s limits for each width (the smallest), measured between
    parameter vectors (``by="theta"``) or between their conserved quantities (``by="Q"``: the negative
    control, what balancedness sees)."""
    r = res["runs"]
    key = "dist" if by == "theta" else "dist_Q"
    return min(
        min_separation(v[key], r.loc[r["width"] == k, "err_halving"])
        for k, v in res["per_width"].items()
    )


def drift_slopes(drift: pd.DataFrame, first: int | None = None) -> pd.DataFrame:
    """Least-squares slope of log(drift) against log(step), per method and initialisation, over all
    steps or over the ``first`` smallest ones (the local slope as the step goes to 0)."""

    def slope(s: pd.DataFrame) -> float:
        s = s.sort_values("h").iloc[:first]
        return float(np.polyfit(np.log(s["h"].to_numpy()), np.log(s["drift"].to_numpy()), 1)[0])

    return (
        drift.groupby(["method", "init"])[["h", "drift"]].apply(slope).rename("slope").reset_index()
    )


def worst_local_slope(drift: pd.DataFrame, method: str = "GD") -> float:
    """The local log-log slope of the drift between the two smallest steps that is furthest from 1,
    over initialisations (``drift``: :func:`balance`'s drift table, or its fixed-step-count control)."""
    s = drift_slopes(drift[drift["method"] == method], first=2)["slope"]
    return float(s.iloc[(s - 1).abs().argmax()])


def isolated_inits(drift: pd.DataFrame) -> list[int]:
    """Initialisations of :func:`balance` whose RK4 runs change the activation pattern at the same
    number of steps for every step size: isolated switches (a run sliding along a switching surface
    crosses it a number of times that depends on the step)."""
    rk = drift[drift["method"] == "RK4"]
    n = rk.groupby("init")["switches"].nunique()
    return sorted(int(i) for i in n[n == 1].index)


def isolated_order(drift: pd.DataFrame, method: str = "RK4") -> float:
    """Median, over :func:`isolated_inits`, of the log-log slope of ``method``'s drift fitted over all
    its step sizes (``method="GD"``: the negative control on the same initialisations)."""
    s = drift_slopes(drift[drift["method"] == method])
    return float(s[s["init"].isin(isolated_inits(drift))]["slope"].median())


def rk4_switches(drift: pd.DataFrame) -> pd.DataFrame:
    """Per initialisation of :func:`balance`: how many RK4 steps changed the activation pattern, at
    every step size ``h`` (one column each), and the drift at the finest step."""
    rk = drift[drift["method"] == "RK4"]
    table = rk.pivot_table(index="init", columns="h", values="switches").astype(int)
    table.columns = [f"switches h={h:g}" for h in table.columns]
    finest = rk[rk["h"] == rk["h"].min()].set_index("init")["drift"]
    return table.assign(**{"drift at finest h": finest})


# -------------------------------------------------------------------------------------------------
# the whole chapter, and the benchmark workload
# -------------------------------------------------------------------------------------------------

STUDIES = (gamma3d, phase2d, leaky, relu_random, ratio_search, balance, net)


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (its cache) with the profile's parameters."""
    P = params(ctx.profile)
    return {fn.__name__: ctx.study(fn, getattr(P, fn.__name__)) for fn in STUDIES}


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
