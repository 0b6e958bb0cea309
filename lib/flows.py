"""Batched gradient flows and gradient descent.

Every integrator here advances ``B`` independent runs at once: the state is a tensor ``w`` of shape
``[B, ...]`` and the vector field is a *batched gradient* ``grad(w) -> [B, ...]`` (one gradient per run,
computed as one tensor program). Step sizes are per run (``dt: [B]``), so that runs of very different
stiffness (e.g. the datasets :math:`D_\\gamma` of :mod:`lib.neuron`, whose curvature grows like
:math:`\\gamma^2`) share one loop, and so is the number of steps (``steps: [B]``): a run that has
reached its own horizon is frozen (its step size becomes 0) while the others go on.

- :func:`rk4_step`, :func:`integrate` -- classical fixed-step Runge-Kutta 4 for gradient flow
  :math:`\\dot w = -\\nabla L(w)`, with optional records of any per-run observable at chosen steps and
  tracking of the last change of a discrete *pattern* (e.g. which examples are active);
- :func:`rk4_event_step` -- an RK4 step for piecewise-smooth fields (ReLU models) that stops at a
  switching surface (located by bisection) and integrates each smooth piece with its own field, so
  that isolated switches do not cost RK4 its order;
- :func:`gd` -- plain gradient descent :math:`w_{k+1} = w_k - \\eta\\,\\nabla L(w_k)`, same interface;
- :func:`halving_error` -- the integrator error estimated by comparing steps :math:`h` and
  :math:`2h` (Richardson's idea): :math:`\\lVert w_{2h}(T) - w_{h}(T)\\rVert`, which for an
  order-:math:`p` method is :math:`2^p - 1` times the error of the step-:math:`h` solution;
  :func:`step_doubling` does the same with records of both runs at common times;
- :func:`locate_switch` -- where inside one RK4 step the pattern of a piecewise-smooth field changes.

Fixed steps rather than an adaptive solver: the vector fields of ReLU models are only piecewise smooth
(they switch when an example changes sides), and a fixed step keeps every run's arithmetic identical
across reruns and devices, makes the recorded times a shared grid, and keeps the loop one tensor
program. The price, a loss of order at switching times, is measured with :func:`halving_error` and
avoided at isolated switches with :func:`rk4_event_step` (not for a run *sliding* along a surface,
which crosses it at every step). Reference: the models of ``vardi2021implicit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Grad = Callable[[torch.Tensor], torch.Tensor]


def _per_run(x: float | torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x`` (scalar or ``[B]``) as a ``[B, 1, ..., 1]`` tensor broadcasting against ``w``."""
    t = torch.as_tensor(x, dtype=w.dtype, device=w.device)
    if t.ndim == 0:
        t = t.expand(w.shape[0])
    if t.shape != (w.shape[0],):
        raise ValueError(f"per-run value has shape {tuple(t.shape)}, expected ({w.shape[0]},)")
    return t.reshape(-1, *([1] * (w.ndim - 1)))


def rk4_step(grad: Grad, w: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """One classical RK4 step of :math:`\\dot w = -\\nabla L(w)` for every run.

    :math:`k_1 = -g(w),\\ k_2 = -g(w + \\tfrac h2 k_1),\\ k_3 = -g(w + \\tfrac h2 k_2),\\
    k_4 = -g(w + h k_3)`, :math:`w^+ = w + \\tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4)`.

    Args:
        grad: batched gradient ``[B, ...] -> [B, ...]``.
        w: states ``[B, ...]``.
        dt: step sizes broadcastable against ``w`` (``[B, 1, ...]``; 0 freezes a run).
    """
    k1 = grad(w)
    k2 = grad(w - 0.5 * dt * k1)
    k3 = grad(w - 0.5 * dt * k2)
    k4 = grad(w - dt * k3)
    return w - (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def gd_step(grad: Grad, w: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """One gradient-descent step :math:`w - \\eta\\,\\nabla L(w)` for every run."""
    return w - lr * grad(w)


def rk4_event_step(
    piece_grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    events: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    dt: torch.Tensor,
    *,
    bisect: int = 40,
    max_events: int = 4,
) -> torch.Tensor:
    """One RK4 step of a piecewise-smooth gradient flow that stops at switching surfaces instead of
    stepping across them.

    ``events(w) -> [B, E]`` are the switching functions (for a ReLU model, the pre-activations
    :math:`w^\top x_i`); on each piece their signs ``s = events(w) > 0`` are fixed, and
    ``piece_grad(w, s)`` is the smooth extension of the gradient of that piece (the activation
    pattern frozen at ``s``). A step integrates the piece it starts in. If its end lies in
    another piece, the first crossing is located by bisection on the fraction :math:`\theta` of the
    step (``bisect`` halvings, each one RK4 step of the batch). The run is advanced by
    :math:`\theta h` to just past the surface, and the rest of the step is taken in the new piece.
    All stages of a sub-step evaluate one smooth field, so RK4 keeps its fourth order across
    isolated switches (a plain step across a jump of the field is first order). After
    ``max_events`` crossings in one step (a run sliding along a surface) the remainder is a plain
    RK4 step with the pattern re-evaluated at every stage.
    """
    B = w.shape[0]
    shape = (B,) + (1,) * (w.ndim - 1)
    remaining = torch.ones(B, dtype=w.dtype, device=w.device)
    out = w
    for _ in range(max_events):
        h = dt * remaining.reshape(shape)
        s0 = events(out) > 0
        f = lambda v, s0=s0: piece_grad(v, s0)
        trial = rk4_step(f, out, h)
        crossed = ((events(trial) > 0) != s0).reshape(B, -1).any(1) & (remaining > 0)
        if not bool(crossed.any()):
            return trial
        lo = torch.zeros_like(remaining)
        hi = torch.ones_like(remaining)
        for _ in range(bisect):
            mid = 0.5 * (lo + hi)
            c = ((events(rk4_step(f, out, h * mid.reshape(shape))) > 0) != s0).reshape(B, -1).any(1)
            hi = torch.where(c, mid, hi)
            lo = torch.where(c, lo, mid)
        theta = torch.where(crossed, hi, torch.ones_like(hi))
        out = torch.where(crossed.reshape(shape), rk4_step(f, out, h * theta.reshape(shape)), trial)
        remaining = remaining * (1 - theta)
    return rk4_step(lambda v: piece_grad(v, events(v) > 0), out, dt * remaining.reshape(shape))


@dataclass
class Flow:
    """The result of :func:`integrate` or :func:`gd`.

    Attributes:
        w: final states ``[B, ...]``.
        t: final time of each run ``[B]`` (``steps_b * dt_b``).
        steps: number of steps taken by each run ``[B]``.
        record_steps: the global step indices at which observables were recorded ``[K]``.
        records: the recorded observables, each ``[K, B, ...]`` (``None`` when nothing was recorded).
        last_change: per run, the first step after which the pattern never changed again ``[B]``
            (0 if it never changed; ``None`` without a pattern function).
        w_last_change: the state at that step ``[B, ...]``.
        n_changes: per run, how many steps changed the pattern ``[B]``.
    """

    w: torch.Tensor
    t: torch.Tensor
    steps: torch.Tensor
    record_steps: torch.Tensor | None = None
    records: dict[str, torch.Tensor] = field(default_factory=dict)
    last_change: torch.Tensor | None = None
    w_last_change: torch.Tensor | None = None
    n_changes: torch.Tensor | None = None


def _run(
    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    w0: torch.Tensor,
    h: float | torch.Tensor,
    steps: int | torch.Tensor,
    *,
    record_every: int | None,
    observe: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None,
    pattern: Callable[[torch.Tensor], torch.Tensor] | None,
    check: Callable[[torch.Tensor], None] | None,
    check_every: int,
    pattern_every: int = 1,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> Flow:
    B = w0.shape[0]
    h_run = _per_run(h, w0)
    if not torch.isfinite(h_run).all() or (h_run <= 0).any():
        raise ValueError("step sizes must be finite and > 0")
    n = torch.as_tensor(steps, device=w0.device).long()
    if n.ndim == 0:
        n = n.expand(B)
    if n.shape != (B,) or (n < 0).any():
        raise ValueError(
            f"steps must be a non-negative int or a [B] tensor, got shape {tuple(n.shape)}"
        )
    total = int(n.max().item()) if B else 0
    n_b = n.reshape(-1, *([1] * (w0.ndim - 1)))
    observe = observe or {}
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in observe}
    rec_steps: list[int] = []

    def record(k: int, w: torch.Tensor) -> None:
        rec_steps.append(k)
        for name, fn in observe.items():
            rec[name].append(fn(w))

    w = w0.clone()
    if record_every:
        record(0, w)
    if pattern is not None:
        pat = pattern(w)
        last = torch.zeros(B, dtype=torch.long, device=w.device)
        n_changes = torch.zeros(B, dtype=torch.long, device=w.device)
        w_last = w.clone()
    stops = set(n.unique().tolist())  # the steps at which some run reaches its horizon
    h_k = torch.where(n_b > 0, h_run, torch.zeros_like(h_run))
    for k in range(total):
        if k in stops:
            h_k = torch.where(n_b > k, h_run, torch.zeros_like(h_run))
        w = step_fn(w, h_k)
        if callback is not None:
            callback(k + 1, w)
        if pattern is not None and ((k + 1) % pattern_every == 0 or k + 1 == total):
            new = pattern(w)
            changed = (new != pat).reshape(B, -1).any(dim=1)
            last = torch.where(changed, torch.full_like(last, k + 1), last)
            n_changes += changed.long()
            w_last = torch.where(changed.reshape(-1, *([1] * (w.ndim - 1))), w, w_last)
            pat = new
        if check is not None and (k + 1) % check_every == 0:
            check(w)
        if record_every and ((k + 1) % record_every == 0 or k + 1 == total):
            record(k + 1, w)
    if check is not None:
        check(w)
    out = Flow(w=w, t=n.to(w.dtype) * h_run.reshape(B), steps=n)
    if record_every:
        out.record_steps = torch.tensor(rec_steps, device=w.device)
        out.records = {name: torch.stack(v) for name, v in rec.items()}
    if pattern is not None:
        out.last_change, out.w_last_change, out.n_changes = last, w_last, n_changes
    return out


def integrate(
    grad: Grad,
    w0: torch.Tensor,
    dt: float | torch.Tensor,
    steps: int | torch.Tensor,
    *,
    record_every: int | None = None,
    observe: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    pattern: Callable[[torch.Tensor], torch.Tensor] | None = None,
    check: Callable[[torch.Tensor], None] | None = None,
    check_every: int = 1000,
    pattern_every: int = 1,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    events: Callable[[torch.Tensor], torch.Tensor] | None = None,
    piece_grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Flow:
    """Integrate gradient flow :math:`\\dot w = -\\nabla L(w)` with fixed-step RK4, batched over runs.

    Args:
        grad: batched gradient ``[B, ...] -> [B, ...]``.
        w0: initial states ``[B, ...]`` (float64 recommended).
        dt: step size, scalar or per run ``[B]``.
        steps: number of steps, scalar or per run ``[B]``; run ``b`` stops at time ``steps_b * dt_b``.
        record_every: record ``observe`` every this many steps (and at steps 0 and the last).
        observe: named functions ``[B, ...] -> [B, ...]`` recorded at those steps (e.g. the state
            itself, a loss, an activation pattern).
        pattern: a discrete per-run pattern ``[B, ...] -> [B, ...]`` (e.g. ``x_i . w > 0``) checked
            every ``pattern_every`` steps; the result reports the first checked step after which it
            never changed again, and the state there (a state *after* the last change: for a model
            that is linear once its pattern is frozen, any such state determines the limit).
        callback: ``callback(k, w)`` after every step ``k = 1, 2, ...`` (streaming measurements,
            e.g. the largest increase of a distance along the run).
        events, piece_grad: switching functions ``[B, ...] -> [B, E]`` of a piecewise-smooth field and
            the gradient of one piece ``(w, signs [B, E]) -> [B, ...]``; when given, every step is
            :func:`rk4_event_step`, which locates the switches instead of stepping across them.
        check: called with the state every ``check_every`` steps and at the end (e.g. a divergence test
            such as :func:`lib.engine.check_finite`).

    Returns:
        :class:`Flow`.
    """
    if events is None:
        step = lambda w, h: rk4_step(grad, w, h)
    else:
        if piece_grad is None:
            raise ValueError(
                "events need piece_grad, the gradient with the activation pattern frozen"
            )
        step = lambda w, h: rk4_event_step(piece_grad, events, w, h)
    return _run(
        step,
        w0,
        dt,
        steps,
        record_every=record_every,
        observe=observe,
        pattern=pattern,
        check=check,
        check_every=check_every,
        pattern_every=pattern_every,
        callback=callback,
    )


def gd(
    grad: Grad,
    w0: torch.Tensor,
    lr: float | torch.Tensor,
    steps: int | torch.Tensor,
    *,
    record_every: int | None = None,
    observe: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    pattern: Callable[[torch.Tensor], torch.Tensor] | None = None,
    check: Callable[[torch.Tensor], None] | None = None,
    check_every: int = 1000,
    pattern_every: int = 1,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> Flow:
    """Plain gradient descent :math:`w_{k+1} = w_k - \\eta_b \\nabla L(w_k)` with per-run step sizes
    ``lr`` and step counts ``steps``; same interface and result as :func:`integrate`."""
    return _run(
        lambda w, h: gd_step(grad, w, h),
        w0,
        lr,
        steps,
        record_every=record_every,
        observe=observe,
        pattern=pattern,
        check=check,
        check_every=check_every,
        pattern_every=pattern_every,
        callback=callback,
    )


def halving_error(
    grad: Grad,
    w0: torch.Tensor,
    dt: float | torch.Tensor,
    steps: int | torch.Tensor,
    **kw,
) -> tuple[Flow, torch.Tensor]:
    """Integrate with step ``dt`` (``steps`` steps) and with ``2 dt`` (half as many, same final time).

    Returns the step-``dt`` flow (with its records; ``kw`` are the options of :func:`integrate`) and
    the per-run difference :math:`e = \\lVert w_{2\\,dt}(T) - w_{dt}(T)\\rVert` (Euclidean norm over all
    but the leading axis). For a method of order :math:`p`, :math:`e \\approx (2^p - 1)` times the error
    of the step-``dt`` solution (15 times for RK4 where the field is smooth, less across the kinks
    of a ReLU model), so :math:`e` is a conservative estimate of the error of the reported run and
    costs only half a run more. ``steps`` must be even.
    """
    B = w0.shape[0]
    h = _per_run(dt, w0).reshape(B)
    n = torch.as_tensor(steps, device=w0.device).long()
    n = n.expand(B) if n.ndim == 0 else n
    if (n % 2 != 0).any():
        raise ValueError("halving_error needs an even number of steps")
    fine = integrate(grad, w0, h, n, **kw)
    coarse = integrate(
        grad,
        w0,
        2 * h,
        n // 2,
        check=kw.get("check"),
        events=kw.get("events"),
        piece_grad=kw.get("piece_grad"),
    )
    err = (coarse.w - fine.w).reshape(B, -1).norm(dim=1)
    return fine, err


def step_doubling(
    grad: Grad,
    w0: torch.Tensor,
    dt: float | torch.Tensor,
    steps: int | torch.Tensor,
    *,
    record_every: int,
    observe: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    **kw,
) -> tuple[Flow, Flow, torch.Tensor]:
    """:func:`halving_error` with the observables recorded on *both* runs at the same times: the
    step-``2 dt`` run records every ``record_every / 2`` of its steps, so ``coarse.records[k]`` and
    ``fine.records[k]`` belong to the same time and their difference estimates the error of each
    recorded observable along the way (not only at the end). ``record_every`` and ``steps`` must be
    even. Returns ``(fine, coarse, err)`` with ``err`` as in :func:`halving_error`."""
    if record_every % 2:
        raise ValueError("step_doubling needs an even record_every")
    B = w0.shape[0]
    h = _per_run(dt, w0).reshape(B)
    n = torch.as_tensor(steps, device=w0.device).long()
    n = n.expand(B) if n.ndim == 0 else n
    if (n % 2 != 0).any():
        raise ValueError("step_doubling needs an even number of steps")
    fine = integrate(grad, w0, h, n, record_every=record_every, observe=observe, **kw)
    coarse_kw = {k: kw[k] for k in ("check", "events", "piece_grad") if k in kw}
    coarse = integrate(
        grad, w0, 2 * h, n // 2, record_every=record_every // 2, observe=observe, **coarse_kw
    )
    err = (coarse.w - fine.w).reshape(B, -1).norm(dim=1)
    return fine, coarse, err


def locate_switch(
    piece_grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    events: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    dt: torch.Tensor,
    *,
    bisect: int = 50,
) -> torch.Tensor:
    """The fraction :math:`\\theta \\in (0, 1]` of an RK4 step of size ``dt`` from ``w`` at which the
    sign pattern of ``events`` first changes, located by ``bisect`` halvings of RK4 sub-steps on the
    smooth piece ``w`` starts in (as in :func:`rk4_event_step`); 1 for runs whose pattern does not
    change within the step. The switch time is then :math:`t + \\theta\\,dt`, accurate to
    :math:`2^{-\\text{bisect}}\\,dt` plus the RK4 error of the sub-step. ``w: [B, ...]``, ``dt: [B]``."""
    B = w.shape[0]
    shape = (B,) + (1,) * (w.ndim - 1)
    h = _per_run(dt, w).reshape(shape)
    s0 = events(w) > 0
    f = lambda v: piece_grad(v, s0)
    crossed = ((events(rk4_step(f, w, h)) > 0) != s0).reshape(B, -1).any(1)
    lo = torch.zeros(B, dtype=w.dtype, device=w.device)
    hi = torch.ones_like(lo)
    for _ in range(bisect):
        mid = 0.5 * (lo + hi)
        c = ((events(rk4_step(f, w, h * mid.reshape(shape))) > 0) != s0).reshape(B, -1).any(1)
        hi = torch.where(c, mid, hi)
        lo = torch.where(c, lo, mid)
    return torch.where(crossed, hi, torch.ones_like(hi))
