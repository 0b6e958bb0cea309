"""Low-rank matrix completion with deep matrix factorizations, batched over every run of a study.

A *problem* is a ground truth ``W* = U V^T`` (``U, V`` with i.i.d. N(0, 1) entries, rescaled so that
``||W*||_F = n``: root-mean-square entry 1) and a set ``Omega`` of ``m`` observed entries drawn
uniformly without replacement; the test set is every unobserved entry, without noise.

The model of depth ``N`` is the end-to-end matrix ``W = W_N ... W_1`` of ``N`` square ``n x n``
layers (``arora2019implicit``), trained on

.. math::

    L(W_1, \\dots, W_N) = \\frac1m \\sum_{(i,j) \\in \\Omega} (W_{ij} - W^*_{ij})^2
                         + \\lambda \\, \\rho(W),

with ``rho`` the ratio ``||W||_*/||W||_F`` of Zhao (``zhao2022combining``), the nuclear norm (an
ablation), or nothing, always applied to the end-to-end matrix, never layer by layer.

B runs (seeds, numbers of observations, penalty weights, learning rates, betas) are stacked along a
leading axis: every layer is a ``[B, n, n]`` tensor, products are ``torch.bmm``, and the penalty's
polar factor comes from one batched float64 SVD (:func:`lib.polar.polar_svd`; the matrix-product-only
:func:`lib.polar.newton_schulz` is an option, which needs ~50 float64 iterations on trained matrices).
Runs of one call share a depth and an optimizer family (a study groups its runs by depth and optimizer).

Optimizers (:func:`train`, ``method``):

- ``"adam"``: Adam with per-run ``lr``/``beta1`` (``kingma2015adam``; the update of ``torch.optim.Adam``,
  written with in-place operations on the stacked parameter);
- ``"gd"``: plain gradient descent with a constant step;
- ``"ngd"``: the gradient-descent *direction* with one global adaptive step size per run,
  ``lr / (sqrt(v_t) + eps)`` where ``v_t`` is a bias-corrected moving average (``alpha = 0.99``) of the
  squared norm of the whole gradient (all layers): the ``GroupRMSprop`` of the code released with
  Arora et al.'s paper (where ``eps = 1e-4``; here ``eps`` is per run). Unlike Adam it does not
  rescale coordinates separately, and once ``||grad|| << eps`` it is plain GD with step ``lr / eps``.

Runs may stop early, one by one, on a plateau of the train error and the spectrum (see :func:`train`).

Measurements: test error (mean squared error over the unobserved entries), the effective rank of
Roy & Vetterli (``roy2007effective``), singular values at logging steps only, and the movement of
observed and unobserved entries since initialisation. The nuclear-norm minimisation baseline
(``candes2009exact``) is solved with cvxpy, one problem at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import engine, polar

METHODS = ("adam", "gd", "ngd")
PENALTIES = ("none", "ratio", "nuclear")


# -- problems ------------------------------------------------------------------------------------
@dataclass
class Problems:
    """``S`` ground truths and their observation orders (``order[s]`` ranks the ``n^2`` entries)."""

    target: torch.Tensor  # [S, n, n], ||W*||_F = n
    order: torch.Tensor  # [S, n*n] a random permutation rank of the entries
    rank: int

    @property
    def n(self) -> int:
        return self.target.shape[-1]

    def dof(self) -> int:
        """Degrees of freedom of an ``n x n`` matrix of rank ``r``: ``r (2n - r)``."""
        return degrees_of_freedom(self.n, self.rank)


def degrees_of_freedom(n: int, rank: int) -> int:
    return rank * (2 * n - rank)


def make_problems(
    n: int,
    rank: int,
    count: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Problems:
    """``count`` ground truths ``W* = c U V^T`` (``U, V ~ N(0,1)^{n x r}``, ``c`` s.t. ``||W*||_F = n``)
    with a uniformly random observation order each, generated as one batch."""
    if n < 2 or rank < 1 or rank > n or count < 1:
        raise ValueError(f"invalid problem size n={n}, rank={rank}, count={count}")
    kw = dict(dtype=dtype, device=device)
    u = torch.randn(count, n, rank, generator=generator, **kw)
    v = torch.randn(count, n, rank, generator=generator, **kw)
    w = torch.bmm(u, v.transpose(1, 2))
    w = w * (n / torch.linalg.matrix_norm(w)).reshape(-1, 1, 1)
    scores = torch.rand(count, n * n, generator=generator, dtype=torch.float64, device=device)
    order = scores.argsort(dim=1).argsort(dim=1)
    return Problems(target=w, order=order, rank=rank)


def observation_mask(order: torch.Tensor, m: torch.Tensor | int, n: int, dtype=torch.float64) -> torch.Tensor:
    """``[B, n, n]`` 0/1 masks observing the ``m[b]`` first entries of ``order[b]``.

    Masks of one problem are nested: fewer observations are a subset of more.
    """
    m = torch.as_tensor(m, device=order.device).reshape(-1, 1)
    if (m < 1).any() or (m > n * n).any():
        raise ValueError(f"invalid m={m.flatten().tolist()}: each must lie in 1..{n * n}")
    return (order < m).to(dtype).reshape(-1, n, n)


# -- measurements ---------------------------------------------------------------------------------
def effective_rank(sigma: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Roy & Vetterli's effective rank ``exp(-sum_i p_i log p_i)``, ``p = sigma / ||sigma||_1`` (last axis)."""
    if isinstance(sigma, np.ndarray):
        p = sigma / sigma.sum(-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)
        return np.exp(h)
    p = sigma / sigma.sum(-1, keepdim=True)
    h = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(-1)
    return torch.exp(h)


def test_error(w: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the unobserved entries, per run ``[B]``."""
    un = 1 - mask.to(torch.float64)
    d = (w.to(torch.float64) - target.to(torch.float64)) ** 2
    return (d * un).sum((1, 2)) / un.sum((1, 2)).clamp_min(1)


def train_error(w: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the observed entries, per run ``[B]``."""
    mk = mask.to(torch.float64)
    d = (w.to(torch.float64) - target.to(torch.float64)) ** 2
    return (d * mk).sum((1, 2)) / mk.sum((1, 2)).clamp_min(1)


# -- the model ------------------------------------------------------------------------------------
def init_layers(
    batch: int,
    n: int,
    depth: int,
    *,
    scale: float = 1e-3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """``depth`` layers ``[B, n, n]`` with i.i.d. N(0, std^2) entries, ``std = scale^{1/N} / sqrt(n)``,
    so that the end-to-end matrix has norm of order ``scale * sqrt(n)`` whatever the depth."""
    if depth < 1:
        raise ValueError(f"invalid depth={depth!r}: must be >= 1")
    std = scale ** (1.0 / depth) / n**0.5
    return [torch.randn(batch, n, n, generator=generator, dtype=torch.float64, device=device).to(dtype) * std
            for _ in range(depth)]


def partial_products(layers: list[torch.Tensor]) -> list[torch.Tensor | None]:
    """``right[k] = W_k ... W_1`` for ``k = 0..N`` (``right[0] = None`` stands for the identity);
    ``right[N]`` is the end-to-end matrix. ``layers[0]`` is ``W_1``."""
    right: list[torch.Tensor | None] = [None]
    for w in layers:
        right.append(w if right[-1] is None else torch.bmm(w, right[-1]))
    return right


def end_to_end(layers: list[torch.Tensor]) -> torch.Tensor:
    """``W = W_N ... W_1``."""
    return partial_products(layers)[-1]


def layer_grads(layers: list[torch.Tensor], right: list[torch.Tensor | None], g: torch.Tensor) -> list[torch.Tensor]:
    """Chain rule through the product: ``dL/dW_k = (W_N..W_{k+1})^T G (W_{k-1}..W_1)^T`` for the
    end-to-end gradient ``G = dL/dW``."""
    n_layers = len(layers)
    grads: list[torch.Tensor] = [g] * n_layers
    left = None
    for k in reversed(range(n_layers)):
        gk = g if left is None else torch.bmm(left.transpose(1, 2), g)
        if right[k] is not None:
            gk = torch.bmm(gk, right[k].transpose(1, 2))
        grads[k] = gk
        if k > 0:
            left = layers[k] if left is None else torch.bmm(left, layers[k])
    return grads


def penalty_grad(w: torch.Tensor, ratio: torch.Tensor | bool, method: str = "svd", iters: int = 25) -> torch.Tensor:
    """Gradient at the end-to-end matrices ``w`` of the ratio ``||W||_*/||W||_F`` (runs where
    ``ratio`` is true) or of the nuclear norm ``||W||_*`` (the others), from one polar factor ``P``:
    ``P`` for the nuclear norm, ``(P - (||W||_*/||W||_F^2) W)/||W||_F`` for the ratio.

    ``method="svd"`` (the default, what training uses) takes ``P`` and ``||W||_*`` from an exact SVD in
    float64 (:func:`lib.polar.polar_svd`) and rounds the gradient to ``w``'s dtype once, at the end;
    ``method="newton-schulz"`` uses ``iters`` Newton-Schulz iterations in ``w``'s dtype (a compared
    alternative: see :mod:`lib.polar` for the iterations it needs)."""
    r = torch.as_tensor(ratio, device=w.device)
    r = r.expand(w.shape[0]) if r.ndim == 0 else r
    if method == "newton-schulz":
        p = polar.newton_schulz(w, iters)
        return torch.where(r.reshape(-1, 1, 1), polar.ratio_grad(w, p)[0], p)
    if method != "svd":
        raise ValueError(f"invalid method={method!r}: allowed values are 'svd', 'newton-schulz'")
    if w.ndim == 2:
        return penalty_grad(w.unsqueeze(0), r[:1], method, iters)[0]
    # one fused expression for both kinds: a U diag(keep) V^T - c W, with (a, c) = (1/||W||_F,
    # ||W||_* / ||W||_F^3) for the ratio and (1, 0) for the nuclear norm
    x = w.to(torch.float64)
    u, s, vh, keep = polar.svd_kept(x)
    fro = torch.linalg.vector_norm(s, dim=-1).clamp_min(torch.finfo(torch.float64).tiny ** 0.5)
    a = torch.where(r, 1 / fro, torch.ones_like(fro))
    c = torch.where(r, s.sum(-1) / fro**3, torch.zeros_like(fro))
    return torch.baddbmm(x * -c.reshape(-1, 1, 1), u * (keep * a.unsqueeze(1)).unsqueeze(1), vh).to(w.dtype)


# -- training -------------------------------------------------------------------------------------
@dataclass
class History:
    """Logged quantities, ``[T, B, ...]`` NumPy arrays at the steps ``steps`` (``[T]``). A run that
    stopped early (or diverged) keeps the values of its last logged state."""

    steps: np.ndarray
    test: np.ndarray  # [T, B] test MSE
    train: np.ndarray  # [T, B] train MSE
    sigma: np.ndarray  # [T, B, k] top singular values
    erank: np.ndarray  # [T, B]
    ratio: np.ndarray  # [T, B] ||W||_*/||W||_F (exact)
    move_unobs: np.ndarray  # [T, B] mean |W_ij - W_ij(0)| over unobserved entries
    move_obs: np.ndarray  # [T, B] the same over observed entries
    spec_change: np.ndarray  # [T, B] ||sigma(t) - sigma(t - window)||_1 / ||sigma(t)||_1 (NaN before)


@dataclass
class Result:
    history: History
    final: np.ndarray  # [B, n, n] end-to-end matrices (float32)
    diverged: np.ndarray  # [B] bool: NaN/inf reached
    runaway: np.ndarray  # [B] bool: top singular value above ``runaway * sigma_1(W*)``
    stopped: np.ndarray  # [B] bool: stopped early on a plateau (see :func:`train`)
    stop_step: np.ndarray  # [B] the step of the final state (``steps`` unless stopped or diverged)


_LOGGED = ("test", "train", "sigma", "erank", "ratio", "move_unobs", "move_obs")


def _log(w, w0, target, mask, n_sv):
    """Measurements of the end-to-end matrices ``w`` (float64), and their full spectra."""
    w64 = w.to(torch.float64)
    finite = torch.isfinite(w64.reshape(w.shape[0], -1)).all(1)
    safe = torch.where(finite.reshape(-1, 1, 1), w64, torch.zeros_like(w64))
    s = torch.linalg.svdvals(safe)
    un = 1 - mask
    mv = (safe - w0.to(torch.float64)).abs()
    nan = torch.full_like(finite, float("nan"), dtype=torch.float64)

    def fix(x: torch.Tensor) -> torch.Tensor:  # NaN for the runs that are no longer finite
        return torch.where(finite, x, nan)

    rec = dict(
        test=fix(test_error(safe, target, mask)),
        train=fix(train_error(safe, target, mask)),
        sigma=torch.where(finite.reshape(-1, 1), s[:, :n_sv], float("nan")),
        erank=fix(effective_rank(s.clamp_min(0))),
        ratio=fix(s.sum(-1) / torch.linalg.vector_norm(s, dim=-1).clamp_min(1e-300)),
        move_unobs=fix((mv * un).sum((1, 2)) / un.sum((1, 2)).clamp_min(1)),
        move_obs=fix((mv * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)),
    )
    return rec, torch.where(finite.reshape(-1, 1), s, float("nan"))


def _per_run(x, b: int, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device)
    if t.ndim == 0:
        return t.expand(b).clone()
    if t.shape != (b,):
        raise ValueError(f"per-run parameter has shape {tuple(t.shape)} for {b} runs")
    return t.clone()


def train(
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    depth: int,
    method: str,
    lr: float | torch.Tensor,
    lam: float | torch.Tensor = 0.0,
    penalty: str | list[str] = "ratio",
    steps: int,
    beta1: float | torch.Tensor = 0.9,
    beta2: float = 0.999,
    adam_eps: float = 1e-8,
    init_scale: float = 1e-3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    log_every: int = 100,
    n_sv: int = 8,
    polar: str = "svd",
    polar_iters: int = 25,
    ngd_alpha: float = 0.99,
    ngd_eps: float | torch.Tensor = 1e-8,
    runaway: float = 2.0,
    on_divergence: str = "raise",
    runs: pd.DataFrame | None = None,
    init: list[torch.Tensor] | None = None,
    stop_window: int | None = None,
    stop_rtol: float = 1e-3,
    stop_train: float = 1e-4,
) -> Result:
    """Train ``B`` deep matrix factorizations of one ``depth`` with one optimizer family, batched.

    Args:
        target: ``[B, n, n]`` ground truths; mask: ``[B, n, n]`` 0/1 observed entries.
        depth: number of layers ``N``; method: ``"adam"``, ``"gd"`` or ``"ngd"`` (see module doc).
        lr, lam, beta1, ngd_eps: scalars or ``[B]`` tensors (per-run learning rate, penalty weight,
            Adam beta1, and the ``eps`` of the normalised step).
        penalty: ``"ratio"``, ``"nuclear"`` or ``"none"``, or one of these per run (applied where
            ``lam > 0``).
        steps: the step budget; log_every: logging period (singular values are computed only then).
        polar: ``"svd"`` (exact, float64) or ``"newton-schulz"`` (``polar_iters`` iterations) for the
            penalty's polar factor (:func:`penalty_grad`).
        runaway: flag runs whose top singular value exceeds ``runaway * sigma_1(W*)``.
        on_divergence: ``"raise"`` (:class:`lib.engine.DivergenceError` naming the runs, their last
            finite top singular value and the parameter to change) or ``"flag"`` (the run stops
            there, reported in ``Result.diverged``).
        runs: the study's grid rows for these runs (quoted in divergence messages).
        init: initial layers (``depth`` tensors ``[B, n, n]``) instead of :func:`init_layers`.
        stop_window, stop_rtol, stop_train: per-run early stopping (off when ``stop_window`` is None).
            At a logging step ``t >= stop_window`` a run is on a *plateau* when its train MSE is at most
            ``stop_train`` (it has fitted its observations) and its whole spectrum has moved by at most
            ``stop_rtol`` in relative l1 norm over the window,
            ``||sigma(t) - sigma(t - window)||_1 <= stop_rtol ||sigma(t)||_1``. A long window lets a slow
            drift add up while the bounded jitter of a converged run does not. A run on a plateau at two
            consecutive logging steps stops: it keeps its state (``Result.stop_step``), its logged
            values stay constant from there, and the batch shrinks. The test error is never looked at.

    Returns:
        :class:`Result` with the history, the final end-to-end matrices and the per-run flags.
    """
    if method not in METHODS:
        raise ValueError(f"invalid method={method!r}: allowed values are {', '.join(map(repr, METHODS))}")
    kinds = [penalty] if isinstance(penalty, str) else list(penalty)
    for k in kinds:
        if k not in PENALTIES:
            raise ValueError(f"invalid penalty={k!r}: allowed values are {', '.join(map(repr, PENALTIES))}")
    if on_divergence not in ("raise", "flag"):
        raise ValueError(f"invalid on_divergence={on_divergence!r}: allowed values are 'raise', 'flag'")
    if steps < 1 or log_every < 1:
        raise ValueError(f"invalid steps={steps!r}/log_every={log_every!r}: must be >= 1")
    if polar not in ("svd", "newton-schulz"):
        raise ValueError(f"invalid polar={polar!r}: allowed values are 'svd', 'newton-schulz'")
    if stop_window is not None and (stop_window < log_every or stop_window % log_every):
        raise ValueError(f"invalid stop_window={stop_window!r}: must be a multiple of log_every={log_every}")
    b, n, _ = target.shape
    dev = target.device
    if len(kinds) == 1:
        kinds = kinds * b
    if len(kinds) != b:
        raise ValueError(f"penalty lists {len(kinds)} kinds for {b} runs")
    lr_t = _per_run(lr, b, dtype, dev)
    if not torch.isfinite(lr_t).all() or (lr_t <= 0).any():
        raise ValueError(f"invalid lr={lr!r}: the learning rate must be finite and > 0")
    lam_t = _per_run(lam, b, dtype, dev)
    b1_t = _per_run(beta1, b, torch.float64, dev)
    eps_t = _per_run(ngd_eps, b, torch.float64, dev)
    pen_t = torch.tensor([k != "none" for k in kinds], device=dev) & (lam_t > 0)
    ratio_t = torch.tensor([k == "ratio" for k in kinds], device=dev)
    target64, mask64 = target.to(torch.float64), mask.to(torch.float64)
    s1_star = torch.linalg.matrix_norm(target64, ord=2)

    if init is None:
        init = init_layers(b, n, depth, scale=init_scale, generator=generator, dtype=dtype, device=dev)
    if len(init) != depth or any(x.shape != (b, n, n) for x in init):
        raise ValueError(f"init must hold {depth} tensors of shape {(b, n, n)}")
    # the working set: one [b, N, n, n] parameter for the runs still training (ids); it shrinks as
    # runs stop or diverge, and every per-run tensor below is indexed like it
    ids = torch.arange(b, device=dev)
    th = torch.stack([x.to(dtype) for x in init], dim=1)
    w0_all = end_to_end(list(th.unbind(1))).clone()
    final = w0_all.clone()
    work = {}

    def gather(sel: torch.Tensor) -> None:
        work["tgt"] = target[sel].to(dtype)
        work["mk2"] = (2 * mask[sel] / mask[sel].sum((1, 2), keepdim=True)).to(dtype)  # d/dW of the MSE
        work["t64"], work["m64"], work["w0"] = target64[sel], mask64[sel], w0_all[sel]
        work["lr"], work["b1"], work["eps"] = lr_t[sel], b1_t[sel], eps_t[sel]
        pen = torch.nonzero(pen_t[sel]).flatten()
        work["pen"], work["lam"], work["ratio"] = pen, lam_t[sel][pen].reshape(-1, 1, 1), ratio_t[sel][pen]

    gather(ids)
    adam_m = torch.zeros_like(th) if method == "adam" else None
    adam_v = torch.zeros_like(th) if method == "adam" else None
    v_ngd = torch.zeros(b, dtype=torch.float64, device=dev)

    k_win = None if stop_window is None else stop_window // log_every
    spectra: list[torch.Tensor] = []  # full spectra [B, n] at the last k_win + 1 logging steps
    streak = torch.zeros(b, dtype=torch.int64, device=dev)
    logs: dict[str, list] = {k: [] for k in (*_LOGGED, "spec_change")}
    last: dict[str, torch.Tensor] = {}
    log_steps = []
    diverged = torch.zeros(b, dtype=torch.bool, device=dev)
    stopped = torch.zeros(b, dtype=torch.bool, device=dev)
    stop_step = torch.full((b,), steps, dtype=torch.int64, device=dev)
    last_s1 = torch.zeros(b, dtype=torch.float64, device=dev)
    for t in range(steps + 1):
        layers = list(th.unbind(1))
        right = partial_products(layers)
        w = right[-1]
        if t % log_every == 0 or t == steps:
            rec, spec = _log(w, work["w0"], work["t64"], work["m64"], n_sv)
            full_spec = torch.full((b, min(n, w.shape[2])), float("nan"), dtype=torch.float64, device=dev) \
                if not spectra else spectra[-1].clone()
            full_spec[ids] = spec
            for k in _LOGGED:  # runs no longer training keep their last values
                full = last[k].clone() if k in last else torch.full(
                    (b, *rec[k].shape[1:]), float("nan"), dtype=torch.float64, device=dev)
                full[ids] = rec[k]
                last[k] = full
            change = torch.full((b,), float("nan"), dtype=torch.float64, device=dev)
            if k_win is not None and len(spectra) >= k_win:
                old = spectra[-k_win]
                change = (full_spec - old).abs().sum(-1) / full_spec.sum(-1).clamp_min(1e-300)
            bad = torch.zeros(b, dtype=torch.bool, device=dev)
            bad[ids] = ~torch.isfinite(rec["test"])
            new_bad = bad & ~diverged
            if new_bad.any() and on_divergence == "raise":
                idx = torch.nonzero(new_bad).flatten().cpu().numpy()
                shown = runs.iloc[idx[:5]].to_dict("records") if runs is not None else idx[:5].tolist()
                raise engine.DivergenceError(
                    f"training diverged (NaN/inf) at step {t} in {len(idx)} of {b} runs: {shown}; the top "
                    f"singular value ran away (last finite sigma_1 = "
                    f"{[float(f'{x:.3g}') for x in last_s1[new_bad].cpu().numpy()[:5]]}, "
                    f"sigma_1(W*) = {float(s1_star[new_bad][0]):.3g}). Reduce the learning rate lr "
                    f"(or the penalty weight lam)."
                )
            diverged |= new_bad
            last_s1 = torch.where(torch.isfinite(last["sigma"][:, 0]), last["sigma"][:, 0], last_s1)
            spec_change = torch.where(stopped | diverged, torch.full_like(change, float("nan")), change)
            for k in _LOGGED:
                logs[k].append(last[k].cpu().numpy())
            logs["spec_change"].append(spec_change.cpu().numpy())
            log_steps.append(t)
            spectra = (spectra + [full_spec])[-(k_win + 1 if k_win else 1):]
            if t == steps:
                break
            # early stopping, judged on the train error and the spectrum only
            leave = new_bad[ids].clone()
            if k_win is not None and len(spectra) > k_win:
                flat = (last["train"][ids] <= stop_train) & (change[ids] <= stop_rtol)
                streak[ids] = torch.where(flat, streak[ids] + 1, torch.zeros_like(streak[ids]))
                done = streak[ids] >= 2
                stopped[ids[done]] = True
                stop_step[ids[done]] = t
                leave |= done
            stop_step[ids[new_bad[ids]]] = t
            if leave.any():
                final[ids[leave]] = w[leave].to(final.dtype)
                keep = ~leave
                ids, th = ids[keep], th[keep]
                if adam_m is not None:
                    adam_m, adam_v = adam_m[keep], adam_v[keep]
                gather(ids)
                if len(ids) == 0:
                    break
                layers = list(th.unbind(1))
                right = partial_products(layers)
                w = right[-1]
        if t == steps:
            break
        g = (w - work["tgt"]) * work["mk2"]
        pen = work["pen"]
        if len(pen):
            gp = penalty_grad(w[pen], work["ratio"], method=polar, iters=polar_iters)
            g = g.index_add(0, pen, work["lam"] * gp)
        grad = torch.stack(layer_grads(layers, right, g), dim=1) if depth > 1 else g.unsqueeze(1)
        step_no = t + 1
        if method == "adam":
            b1 = work["b1"].to(dtype).reshape(-1, 1, 1, 1)
            adam_m.lerp_(grad, 1 - b1)
            adam_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bc1 = (1 - work["b1"] ** step_no).to(dtype)  # per run (beta1 = 0: no correction)
            bc2_sqrt = (1 - beta2**step_no) ** 0.5
            # v below float32's smallest normal number (zero or subnormal: entries the loss does not reach)
            # is raised to it before the square root, whose vector kernel is 5-30x slower on such inputs
            # here; the change to the denominator is < 1.1e-19, invisible next to adam_eps
            denom = (adam_v.clamp_min(torch.finfo(dtype).tiny).sqrt_() / bc2_sqrt).add_(adam_eps)
            denom.div_((work["lr"] / bc1).reshape(-1, 1, 1, 1))
            th.addcdiv_(adam_m, denom, value=-1.0)
        elif method == "ngd":
            sq = (grad.to(torch.float64) ** 2).sum((1, 2, 3))
            v_ngd[ids] = ngd_alpha * v_ngd[ids] + (1 - ngd_alpha) * sq
            vhat = v_ngd[ids] / (1 - ngd_alpha**step_no)
            size = (work["lr"].to(torch.float64) / (vhat.sqrt() + work["eps"])).to(dtype)
            th.addcmul_(grad, size.reshape(-1, 1, 1, 1), value=-1.0)
        else:
            th.addcmul_(grad, work["lr"].reshape(-1, 1, 1, 1), value=-1.0)

    if len(ids):
        final[ids] = end_to_end(list(th.unbind(1))).to(final.dtype)
    hist = History(steps=np.asarray(log_steps), **{k: np.stack(v) for k, v in logs.items()})
    if len(log_steps) < len(range(0, steps, log_every)) + 1:  # every run stopped: pad the history
        all_steps = sorted(set(range(0, steps, log_every)) | {steps})
        pad = len(all_steps) - len(log_steps)
        hist = History(steps=np.asarray(all_steps), **{
            k: np.concatenate([getattr(hist, k), np.repeat(getattr(hist, k)[-1:], pad, axis=0)])
            for k in (*_LOGGED, "spec_change")})
        hist.spec_change[-pad:] = np.nan
    run_away = (torch.as_tensor(hist.sigma[-1, :, 0], device=dev) > runaway * s1_star) | diverged
    return Result(history=hist, final=final.cpu().numpy(), diverged=diverged.cpu().numpy(),
                  runaway=run_away.cpu().numpy(), stopped=stopped.cpu().numpy(),
                  stop_step=stop_step.cpu().numpy())


# -- the nuclear-norm baseline --------------------------------------------------------------------
def nuclear_norm_min(target: np.ndarray, mask: np.ndarray, *, solver: str = "SCS", eps: float = 1e-6) -> np.ndarray:
    """Minimum-nuclear-norm completion ``argmin ||Z||_*  s.t.  Z_ij = W*_ij  on  Omega``
    (``candes2009exact``), one cvxpy problem per matrix of the ``[B, n, n]`` batch.

    A convex program is solved per problem (no batching across problems in cvxpy)."""
    import cvxpy as cp

    target = np.asarray(target, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    single = target.ndim == 2
    if single:
        target, mask = target[None], mask[None]
    out = np.empty_like(target)
    n1, n2 = target.shape[1:]
    for b in range(target.shape[0]):  # inherently per problem: one convex program each
        rows, cols = np.nonzero(mask[b])
        z = cp.Variable((n1, n2))
        cons = [z[rows, cols] == target[b, rows, cols]]
        prob = cp.Problem(cp.Minimize(cp.normNuc(z)), cons)
        kw = {"eps": eps} if solver == "SCS" else {}
        prob.solve(solver=solver, **kw)
        if z.value is None:
            raise RuntimeError(f"nuclear-norm minimisation failed for problem {b}: status {prob.status}")
        out[b] = z.value
    return out[0] if single else out
