"""Margin maximization by homogeneous networks: trainer, KKT checker, certificates, reference optima.

For an L-homogeneous network (:mod:`lib.homogeneous`) with margins ``q_i(theta)``, gradient flow on
the exponential loss ``sum_i exp(-q_i)`` converges in direction to a KKT point of

    (P)   min 1/2 ||theta||^2   s.t.   q_i(theta) >= 1,

i.e. a point with ``theta = sum_i lambda_i grad q_i(theta)``, ``lambda_i >= 0``, ``lambda_i = 0`` unless
``q_i = 1`` (``lyu2020gradient``, ``ji2020directional``). This module holds

- :func:`train`: a time-rescaled (loss-normalised) gradient method for the exponential loss,
  ``theta <- theta + eta ||theta||^{2-L} sum_i softmax(-q)_i grad q_i``, in log-domain float64
  arithmetic, with a norm cap and an annealed step (plain GD converges in direction like 1/log t);
- :func:`smoothed_margin`: ``log(1/loss) / ||theta||^L``, non-decreasing along gradient flow;
- :func:`kkt`: rescale to ``min q = 1``, take the active set, fit non-negative multipliers by NNLS,
  report the relative stationarity residual;
- certificates of non-optimality: :func:`l1_dual_vector` (diagonal nets) and :func:`relu_dual_max`
  (depth-2 ReLU nets);
- :func:`local_search`: ball-constrained multi-start ascent of the normalized margin;
- reference optima: :func:`svm_l2` (quadratic program) and :func:`svm_l1` (linear program).

References: ``vardi2022margin``, ``lyu2020gradient``, ``ji2020directional``, ``soudry2018implicit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .checks import check_positive
from .engine import check_finite
from .homogeneous import Family, margin_jacobian, margins


# -- the smoothed margin and the trainer ------------------------------------------------------------
def log_loss(q: torch.Tensor) -> torch.Tensor:
    """``log sum_i exp(-q_i)`` per run (logsumexp: no overflow or underflow)."""
    return torch.logsumexp(-q, dim=1)


def smoothed_margin(q: torch.Tensor, norm: torch.Tensor, degree: int) -> torch.Tensor:
    """``gamma~ = log(1 / loss) / ||theta||^L = -logsumexp(-q) / ||theta||^L`` (``lyu2020gradient``).

    It lower-bounds the normalized margin, ``gamma~ <= min_i q_i / ||theta||^L``, and the gap is at most
    ``log(n) / ||theta||^L``.
    """
    return -log_loss(q) / norm**degree


def step_schedule(steps: int, eta: float, eta_min: float, anneal: float) -> np.ndarray:
    """Constant ``eta`` for the first ``(1 - anneal) * steps`` steps, then geometric decay to ``eta_min``."""
    n_const = round(steps * (1.0 - anneal))
    n_dec = steps - n_const
    tail = eta * (eta_min / eta) ** (np.arange(1, n_dec + 1) / max(n_dec, 1))
    return np.concatenate([np.full(n_const, eta), tail])


@dataclass
class Trajectory:
    """Result of :func:`train`: final parameters and recorded curves ``[T, B]``."""

    theta: torch.Tensor
    steps: np.ndarray
    gamma: np.ndarray
    smoothed: np.ndarray
    norm: np.ndarray
    log_loss: np.ndarray
    #: parameters at the steps asked for with ``keep`` (e.g. a limit before convergence, as a control)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)


def rescaled_step(
    theta: torch.Tensor,
    q: torch.Tensor,
    nrm: torch.Tensor,
    pullback: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    eta: float,
    L: int,
    cap: float | torch.Tensor | None,
) -> torch.Tensor:
    """One step of :func:`train` for every run, given the margins ``q``, the norms and the pull-back of
    :meth:`lib.homogeneous.Family.margins_and_pullback` (also what ``python -m lib bench ch02`` times).
    ``cap``: the norm cap, one value or one per run (``inf``: no cap for that run)."""
    g = pullback(torch.softmax(-q, dim=1) * y[None, :])
    theta = theta + (eta * g if L == 2 else eta * nrm[:, None] ** (2 - L) * g)
    if cap is not None:
        theta = theta * torch.clamp(cap / theta.norm(dim=1), max=1.0)[:, None]
    return theta


def train(
    fam: Family,
    theta0: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    eta: float = 0.05,
    eta_min: float = 1e-4,
    anneal: float = 0.5,
    temp: float | None | Sequence[float | None] = 100.0,
    record_every: int = 10,
    keep: Sequence[int] = (),
) -> Trajectory:
    """Time-rescaled gradient descent on the exponential loss, batched over runs.

    One step is

        theta <- theta + eta_k ||theta||^{2-L} sum_i softmax(-q(theta))_i grad q_i(theta),

    i.e. gradient flow ``d theta/dt = -grad loss`` reparametrised by ``dt = ds ||theta||^{2-L} / loss``:
    the direction of ``theta`` moves at a speed that does not depend on the loss or the norm, so the
    angular dynamics (which is what converges to a KKT point) takes O(1/eta) steps per unit of
    rescaled time instead of the exponentially many of plain GD. The loss is never formed: only
    ``softmax(-q)`` (log-domain, float64).

    ``temp`` caps ``||theta||^L`` (the scale of the margins) at ``temp / eta_k``: when the norm exceeds
    ``(temp / eta_k)^{1/L}`` the parameters are rescaled onto that sphere. The cap is *not* a time change
    of gradient flow: the softmax weights ``exp(-(q_i - q_min))`` depend on the scale, so the direction
    moves differently once the cap binds (and a quantity gradient flow makes negligible by growing the
    norm, such as a neuron's imbalance ``v_j^2 - ||w_j||^2`` relative to ``||theta||^2``, stays frozen on
    the cap). Tying the cap to ``1/eta_k`` fixes how sharply the softmax separates constraints, measured
    in steps: normalized margins that differ by ``eta_k / temp`` get weights in the ratio ``e``. With
    ``temp >> 1`` the softmax is sharper than a step can resolve and two constraints that are both
    active at the limit are served alternately (a 2-cycle of the iteration); with ``temp ~ 1`` there is
    no 2-cycle, but constraints closer than ``eta_k`` in normalized margin are blurred. ``temp=None`` lets
    the norm grow: the step is then the explicit Euler step of the time-rescaled flow, a time change of
    gradient flow up to the discretisation. ``temp`` may also give one value per run (``None`` for no
    cap). The step is annealed from ``eta`` to ``eta_min`` over the last ``anneal`` fraction of the
    steps, so that the final iterate satisfies the KKT conditions (and reaches the margin) to O(eta_min)
    accuracy instead of oscillating between active constraints. ``keep``: steps at which to keep a copy
    of the parameters (``Trajectory.snapshots``).
    """
    check_positive("steps", steps, integer=True)
    check_positive("eta", eta)
    check_positive("eta_min", eta_min)
    check_positive("record_every", record_every, integer=True)
    L = fam.degree
    etas = step_schedule(steps, eta, eta_min, anneal)
    if temp is None:
        caps = None
    elif isinstance(temp, (int, float, np.number)):
        check_positive("temp", temp)
        caps = (float(temp) / etas) ** (1.0 / L)
    else:
        if len(temp) != theta0.shape[0]:
            raise ValueError(f"temp gives {len(temp)} values for {theta0.shape[0]} runs")
        for t in temp:
            if t is not None:
                check_positive("temp", t)
        tt = torch.tensor([np.inf if t is None else float(t) for t in temp], dtype=theta0.dtype, device=theta0.device)
        caps = [(tt / float(e)) ** (1.0 / L) for e in etas]
    for k in keep:
        if not 0 <= k <= steps:
            raise ValueError(f"invalid keep step {k}: must lie in [0, steps={steps}]")
    snapshots: dict[int, torch.Tensor] = {}
    theta = theta0.clone()
    rec: dict[str, list] = {"steps": [], "gamma": [], "smoothed": [], "norm": [], "log_loss": []}

    def record(k: int, q: torch.Tensor, nrm: torch.Tensor) -> None:
        rec["steps"].append(k)
        rec["gamma"].append((q.min(1).values / nrm**L).cpu().numpy())
        rec["smoothed"].append(smoothed_margin(q, nrm, L).cpu().numpy())
        rec["norm"].append(nrm.cpu().numpy())
        rec["log_loss"].append(log_loss(q).cpu().numpy())

    for k in range(steps + 1):
        q, pullback = fam.margins_and_pullback(theta, X, y)
        nrm = theta.norm(dim=1)
        if k % record_every == 0 or k == steps:
            record(k, q, nrm)
        if k in keep:
            snapshots[k] = theta.clone()
        if k == steps:
            break
        theta = rescaled_step(theta, q, nrm, pullback, y, etas[k], L, None if caps is None else caps[k])
    check_finite(theta, what="time-rescaled exponential-loss training", hint="reduce the step size eta")
    return Trajectory(theta, *(np.asarray(rec[k]) for k in ("steps", "gamma", "smoothed", "norm", "log_loss")),
                      snapshots=snapshots)


def flow_field(fam: Family, X: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The time-rescaled gradient flow of the exponential loss in the *margin-scale clock* ``tau``,

        d theta / d tau = ||theta||^{2 - 2L} sum_i softmax(-q(theta))_i grad q_i(theta),

    returned with a minus sign (``-F``), as :func:`lib.flows.rk4_step` integrates ``dw = -grad(w) dt``.
    It is gradient flow ``d theta/dt = -grad loss`` reparametrised by
    ``dt = ||theta||^{2-L} ds / loss`` (the clock ``s`` of :func:`train`) and then ``ds = d tau / ||theta||^L``:
    both are increasing changes of time, so whatever is monotone in ``t`` is monotone in ``tau``. In
    ``tau`` the stiffness of the field (the softmax sharpens like ``||theta||^L``) stays bounded, so a
    fixed step stays accurate as the norm grows (``lyu2020gradient``)."""
    L = fam.degree

    def minus_field(theta: torch.Tensor) -> torch.Tensor:
        q, pullback = fam.margins_and_pullback(theta, X, y)
        g = pullback(torch.softmax(-q, dim=1) * y[None, :])
        return -g * theta.norm(dim=1, keepdim=True) ** (2 - 2 * L)

    return minus_field


def accurate_flow(
    fam: Family, theta0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, h: float, scale_max: float,
    max_steps: int,
) -> Trajectory:
    """Gradient flow of the exponential loss integrated by classical RK4 with a fixed step ``h`` in the
    clock ``tau`` of :func:`flow_field`, every run until ``||theta||^L`` reaches ``scale_max`` (then it is
    frozen) or ``max_steps``. Records every step; ``Trajectory.steps`` holds the step index (the time is
    ``tau = h * step`` for the runs still moving). Its error is estimated by step halving
    (:func:`halving_gap`)."""
    from .flows import rk4_step

    check_positive("h", h)
    check_positive("scale_max", scale_max)
    check_positive("max_steps", max_steps, integer=True)
    L = fam.degree
    f = flow_field(fam, X, y)
    theta = theta0.clone()
    rec: dict[str, list] = {"gamma": [], "smoothed": [], "norm": [], "log_loss": []}
    for k in range(max_steps + 1):
        q = margins(fam, theta, X, y)
        nrm = theta.norm(dim=1)
        rec["gamma"].append((q.min(1).values / nrm**L).cpu().numpy())
        rec["smoothed"].append(smoothed_margin(q, nrm, L).cpu().numpy())
        rec["norm"].append(nrm.cpu().numpy())
        rec["log_loss"].append(log_loss(q).cpu().numpy())
        moving = nrm**L < scale_max
        if k == max_steps or not bool(moving.any()):
            break
        theta = rk4_step(f, theta, (h * moving.to(theta.dtype))[:, None])
    check_finite(theta, what="RK4 gradient flow", hint="reduce the step h")
    n = len(rec["gamma"])
    return Trajectory(theta, np.arange(n), *(np.asarray(rec[k]) for k in ("gamma", "smoothed", "norm", "log_loss")))


def largest_fall(curve: np.ndarray, log_loss_curve: np.ndarray) -> np.ndarray:
    """Per run (columns), the largest fall of ``curve`` below its running maximum once the loss is below
    1 (``log_loss < 0``, the condition of ``lyu2020gradient``), relative to its last value: 0 for a curve
    that never decreases there. NaN for a run whose loss never drops below 1."""
    c = np.where(log_loss_curve < 0, curve, np.nan)
    run_max = np.fmax.accumulate(np.where(np.isfinite(c), c, -np.inf), axis=0)
    fall = np.where(np.isfinite(c), run_max - c, 0.0).max(0)
    last = np.array([col[np.isfinite(col)][-1] if np.isfinite(col).any() else np.nan for col in c.T])
    return np.where(np.isfinite(last), fall / np.abs(last), np.nan)


def halving_gap(coarse: np.ndarray, fine: np.ndarray) -> float:
    """Step-halving error estimate of a recorded curve: ``max |coarse_k - fine_{2k}|`` over the steps both
    runs recorded (``fine`` taken with half the step). For an order-4 method this is 15 times the error
    of the fine curve (``lib.flows.halving_error``)."""
    m = min(len(coarse), (len(fine) + 1) // 2)
    d = np.abs(coarse[:m] - fine[: 2 * m : 2])
    return float(np.nanmax(d)) if np.isfinite(d).any() else float("nan")


# -- KKT points of (P) -----------------------------------------------------------------------------
@dataclass
class KKT:
    """KKT check of (P) per run (arrays with a leading run axis).

    ``theta``: rescaled so that ``min q = 1``; ``q``: its margins; ``active``: ``q_i <= 1 + tau``;
    ``lam``: NNLS multipliers (0 off the active set); ``residual``:
    ``||theta - sum_i lam_i grad q_i|| / ||theta||``; ``gamma``: normalized margin.
    """

    theta: np.ndarray
    q: np.ndarray
    active: np.ndarray
    lam: np.ndarray
    residual: np.ndarray
    gamma: np.ndarray


def rescale_to_unit_margin(fam: Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``theta / (min_i q_i)^{1/L}``: the feasible point of (P) on the ray of ``theta`` (NaN if min q <= 0)."""
    qmin = margins(fam, theta, X, y).min(1).values
    scale = torch.where(qmin > 0, qmin.clamp(min=1e-300) ** (-1.0 / fam.degree), torch.nan)
    return theta * scale[:, None]


def kkt(fam: Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, tau: float = 1e-3) -> KKT:
    """Check the KKT conditions of (P) at the ray of each run's ``theta``.

    Rescale to ``min q = 1``; the active set is ``{i : q_i <= 1 + tau}``; the multipliers solve the
    non-negative least-squares problem ``min_{lam >= 0} ||J_A^T lam - theta||`` (``scipy.optimize.nnls``,
    one small problem per run); the relative residual is 0 exactly at a KKT point.
    """
    from scipy.optimize import nnls

    check_positive("tau", tau)
    th = rescale_to_unit_margin(fam, theta, X, y)
    q = margins(fam, th, X, y)
    J = margin_jacobian(fam, th, X, y)
    th_np, q_np, J_np = th.cpu().numpy(), q.cpu().numpy(), J.cpu().numpy()
    B, n = q_np.shape
    active = q_np <= 1.0 + tau
    lam = np.zeros((B, n))
    res = np.full(B, np.nan)
    for b in range(B):  # NNLS is a per-problem solver
        if not np.isfinite(th_np[b]).all():
            continue
        A = np.flatnonzero(active[b])
        sol, r = nnls(J_np[b, A].T, th_np[b])
        lam[b, A] = sol
        res[b] = r / np.linalg.norm(th_np[b])
    gamma = q_np.min(1) / np.linalg.norm(th_np, axis=1) ** fam.degree
    return KKT(th_np, q_np, active, lam, res, gamma)


# -- certificates ----------------------------------------------------------------------------------
def l1_dual_vector(lam: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``z = sum_i lam_i y_i x_i``, shape ``[B, d]``.

    For a depth-2 diagonal net the KKT conditions of (P) read ``u = z * v`` and ``v = z * u``: on every
    coordinate with non-zero weights ``|z_j| = 1``. The l1-SVM (the convex problem the diagonal net
    implicitly solves) needs in addition ``|z_j| <= 1`` on the zero coordinates; ``|z_j| > 1`` there
    certifies that the KKT point is not a local optimum (``vardi2022margin``).
    """
    return np.einsum("bn,n,nd->bd", lam, y, X)


def relu_dual(lam: np.ndarray, X: np.ndarray, y: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``h(u) = sum_i lam_i y_i relu(<u, x_i>)`` for directions ``U: [K, d]``, shape ``[B, K]``."""
    return np.einsum("bn,n,kn->bk", lam, y, np.maximum(U @ X.T, 0.0))


def relu_dual_max(lam: np.ndarray, X: np.ndarray, y: np.ndarray, *, n_dirs: int = 20001) -> tuple[np.ndarray, np.ndarray]:
    """``max_{||u|| = 1} h(u)`` and its maximiser, for ``d = 2`` on a grid of ``n_dirs`` angles refined once.

    At a KKT point of (P) for a depth-2 ReLU net every neuron with ``v_j != 0`` has ``h(w_j/||w_j||) = sign(v_j)``;
    ``max h > 1`` certifies that adding a small neuron along the maximiser and shrinking the others
    increases the normalized margin (to second order), so the point is not a global optimum, and if
    the neuron slot used is a dead (zero) neuron, not even a local one.
    """
    if X.shape[1] != 2:
        raise ValueError("relu_dual_max grids the circle: it needs d = 2")
    ang = np.linspace(-np.pi, np.pi, n_dirs)
    U = np.stack([np.cos(ang), np.sin(ang)], 1)
    h = relu_dual(lam, X, y, U)
    k = h.argmax(1)
    # refine around the best grid point (h is piecewise smooth in the angle)
    step = ang[1] - ang[0]
    fine = ang[k][:, None] + np.linspace(-step, step, 2001)[None, :]
    Uf = np.stack([np.cos(fine), np.sin(fine)], -1)  # [B, F, 2]
    hf = np.einsum("bn,n,bfn->bf", lam, y, np.maximum(Uf @ X.T, 0.0))
    j = hf.argmax(1)
    best = hf[np.arange(len(j)), j]
    return best, Uf[np.arange(len(j)), j]


# -- local search ----------------------------------------------------------------------------------
def local_search(
    fam: Family,
    theta: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    radii: np.ndarray,
    *,
    starts: int = 64,
    iters: int = 400,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> dict[str, np.ndarray]:
    """Best normalized-margin gain found in balls around one point or ``K`` points, by multi-start
    projected ascent, all points, radii and starts as one batched tensor program.

    For each centre (``theta``: ``[P]``, or ``[K, P]``), radius ``r`` and each of ``starts`` random starts
    ``theta' = theta_hat + r U`` (``theta_hat`` the unit vector of the centre, ``U`` uniform in the unit
    ball of the entries where ``mask`` is 1; ``mask``: ``[P]`` or one per centre ``[K, P]``), ascend
    ``gamma(theta')`` by normalised (sub)gradient steps of length decaying from ``r/4`` to ``r/4000``,
    projecting back onto ``||theta' - theta_hat|| <= r``; the ascent follows a soft-min with
    temperature ``100 / r^2`` so that the smoothing stays far below the gains (``~ r^2``) it resolves.
    ``generator``: one generator for all starts, or one per centre (so that a centre's starts do not
    depend on which other centres share the batch). Returns per centre and radius the best gain
    ``max gamma(theta') - gamma(theta_hat)`` (exact min, not the soft-min) and the gain of every start;
    for a single centre (``theta`` of shape ``[P]``) the leading centre axis is dropped.

    Near a point that is not a local optimum of (P) the best gain grows like ``r^2`` (the first-order
    gain vanishes at a KKT point); at a local optimum it is ``<= 0`` up to rounding; at a point that is
    not a KKT point it grows like ``r``.
    """
    check_positive("starts", starts, integer=True)
    check_positive("iters", iters, integer=True)
    radii = np.asarray(radii, dtype=float)
    if radii.ndim != 1 or len(radii) == 0 or (radii <= 0).any():
        raise ValueError("invalid radii: give at least one radius, every radius > 0")
    single = theta.ndim == 1
    kw = {"dtype": theta.dtype, "device": theta.device}
    centres = theta.reshape(1, -1) if single else theta
    K, P = centres.shape
    th = centres / centres.norm(dim=1, keepdim=True)
    m = torch.ones(K, P, **kw) if mask is None else mask.to(**kw).expand(K, P) if mask.ndim == 1 else mask.to(**kw)
    if m.shape != (K, P):
        raise ValueError(f"mask has shape {tuple(m.shape)}, expected [{P}] or [{K}, {P}]")
    R, S = len(radii), starts
    gens = list(generator) if isinstance(generator, (list, tuple)) else None
    if gens is not None and len(gens) != K:
        raise ValueError(f"got {len(gens)} generators for {K} centres")

    def draw(shape: tuple[int, ...], kind: str) -> torch.Tensor:  # [K, R*S, ...] random numbers
        fn = torch.randn if kind == "normal" else torch.rand
        if gens is None:
            return fn(K, *shape, generator=generator, **kw)
        return torch.stack([fn(*shape, generator=g, **kw) for g in gens])

    U = draw((R * S, P), "normal") * m[:, None, :]
    dims = m.sum(1).clamp(min=1)[:, None, None]
    U = U / U.norm(dim=2, keepdim=True).clamp(min=1e-300) * draw((R * S, 1), "uniform") ** (1.0 / dims)
    r = torch.as_tensor(np.repeat(radii, S), **kw)[None, :, None].expand(K, R * S, 1).reshape(-1, 1)
    th_rep = th[:, None, :].expand(K, R * S, P).reshape(-1, P)
    m_rep = m[:, None, :].expand(K, R * S, P).reshape(-1, P)
    x = th_rep + r * U.reshape(-1, P)
    L = fam.degree
    T = 100.0 / r[:, 0] ** 2
    g0 = margins(fam, th, X, y).min(1).values / th.norm(dim=1) ** L  # [K]
    sizes = 0.25 * np.geomspace(1.0, 1e-3, iters)
    best = torch.full((K * R * S,), -torch.inf, **kw)
    for k in range(iters):
        x = x.detach().requires_grad_(True)
        qn = margins(fam, x, X, y) / x.norm(dim=1, keepdim=True) ** L
        soft = -torch.logsumexp(-T[:, None] * qn, dim=1) / T
        (grad,) = torch.autograd.grad(soft.sum(), x)
        with torch.no_grad():
            best = torch.maximum(best, qn.min(1).values)
            grad = grad * m_rep
            x = x + sizes[k] * r * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-300)
            dx = x - th_rep
            x = th_rep + dx * torch.clamp(r / dx.norm(dim=1, keepdim=True).clamp(min=1e-300), max=1.0)
    with torch.no_grad():
        qn = margins(fam, x, X, y) / x.norm(dim=1, keepdim=True) ** L
        best = torch.maximum(best, qn.min(1).values)
    gains = (best.reshape(K, R, S) - g0[:, None, None]).cpu().numpy()
    out = {"radius": radii, "gain": gains.max(2), "gains": gains, "gamma0": g0.cpu().numpy()}
    if single:
        out.update(gain=out["gain"][0], gains=gains[0], gamma0=float(out["gamma0"][0]))
    return out


def second_order_gain(radii: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``max_r gain(r) / r^2`` (last axis over the radii): the coefficient of a second-order improvement.
    Bounded away from 0 at a KKT point that is not a local optimum, ``<= 0`` up to the convergence error
    of the point divided by ``r^2`` at a local optimum (``vardi2022margin``; book's measurement)."""
    return (np.asarray(gain) / np.asarray(radii, dtype=float) ** 2).max(-1)


# -- reference optima ------------------------------------------------------------------------------
def svm_l2(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Hard-margin L2 SVM without bias: ``min 1/2 ||beta||^2 s.t. y_i <beta, x_i> >= 1`` (QP, CLARABEL).

    Returns ``(beta, gamma_SVM)`` with ``gamma_SVM = 1 / ||beta|| = max_{||b|| = 1} min_i y_i <b, x_i>``
    (``soudry2018implicit``).
    """
    import cvxpy as cp

    X, y = np.asarray(X, float), np.asarray(y, float)
    b = cp.Variable(X.shape[1])
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(b)), [cp.multiply(y, X @ b) >= 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    if prob.status != "optimal":
        raise ValueError(f"svm_l2: the data are not linearly separable (solver status {prob.status})")
    beta = np.asarray(b.value)
    return beta, 1.0 / np.linalg.norm(beta)


def svm_l1(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Hard-margin l1 SVM: ``min ||beta||_1 s.t. y_i <beta, x_i> >= 1`` as a linear program (HiGHS).

    Returns ``(beta, gamma_l1)`` with ``gamma_l1 = 1/||beta||_1``. A depth-2 diagonal network with
    ``||theta||^2 >= 2 ||beta||_1`` (equality when balanced) has maximal normalized margin ``gamma_l1 / 2``.
    """
    from scipy.optimize import linprog

    X, y = np.asarray(X, float), np.asarray(y, float)
    n, d = X.shape
    A = y[:, None] * X
    res = linprog(
        np.ones(2 * d), A_ub=-np.hstack([A, -A]), b_ub=-np.ones(n), bounds=[(0, None)] * (2 * d), method="highs"
    )
    if res.status != 0:
        raise ValueError(f"svm_l1: the data are not linearly separable ({res.message})")
    beta = res.x[:d] - res.x[d:]
    return beta, 1.0 / np.abs(beta).sum()


def layer_qp(fam: Family, theta: np.ndarray, X: np.ndarray, y: np.ndarray, layer: int) -> float:
    """Per-layer problem of a *linear* network at ``theta`` (one run): the optimal value of
    ``min 1/2 ||W_l||^2 s.t. q_i >= 1`` with the other layers fixed, divided by ``1/2 ||W_l||^2``.

    The margins are linear in one layer of a linear network, so this is a convex QP; a ratio of 1
    means the layer is optimal given the others (``vardi2022margin``'s per-layer optimality).
    """
    import cvxpy as cp

    if fam.kind == "relu":
        raise ValueError("layer_qp needs a linear network (margins linear in one layer)")
    th = torch.as_tensor(np.asarray(theta, float)[None])
    sl = fam.layer_slices[layer]
    J = margin_jacobian(fam, th, torch.as_tensor(X), torch.as_tensor(y))[0].numpy()[:, sl]  # q = J w_l
    w = cp.Variable(sl.stop - sl.start)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), [J @ w >= 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return float(prob.value / (0.5 * np.sum(th[0, sl].numpy() ** 2)))
