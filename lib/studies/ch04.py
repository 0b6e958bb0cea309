"""Chapter 4: an explicit scale-invariant penalty with Adam replaces depth in matrix completion.

Studies (plain functions; every run of a study is one tensor program, grouped by depth and
optimizer family, see :mod:`lib.matrix_completion`):

- :func:`identities` -- the penalty's calculus in float64: gradient from the Newton-Schulz polar
  factor vs autograd through an exact SVD, the per-singular-value derivative, scale invariance,
  ``1 <= r <= sqrt(rank)``;
- :func:`grid` -- depth 1-3 x {Adam, GD} x {no penalty, ratio penalty} x number of observations
  x seeds (GD: plain at depth 1, globally normalised for the deep models);
- :func:`baseline` -- minimum-nuclear-norm completion (cvxpy) of the same problems;
- :func:`ablations` -- depth 1 + Adam at one number of observations: the nuclear penalty,
  ``beta1 = 0``, a penalty-weight sweep and a learning-rate sweep (one batch);
- :func:`mechanism` -- the first steps of depth 1 + ratio under Adam, plain GD and normalised GD,
  for several penalty weights: how far the unobserved entries move;
- :func:`normalized` -- depth 1 with and without the ratio penalty under normalised GD at two
  learning rates: the penalty works without per-coordinate scaling once the step budget suffices.

References: ``zhao2022combining`` (the penalty with Adam), ``arora2019implicit`` (deep matrix
factorization), ``candes2009exact`` (nuclear-norm minimisation), ``roy2007effective``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine, polar
from .. import matrix_completion as mc
from ..checks import check_choice, check_positive
from ..optim import BatchedOptimizer

STEM = "04-explicit-penalty-adam"


def params(profile: str) -> dict[str, Any]:
    """The parameters of a profile: ``fast`` (CI, one CPU core) or ``full`` (paper scale, GPU)."""
    check_choice("profile", profile, ("fast", "full"))
    if profile == "fast":
        n, rank = 50, 3
        common = dict(n=n, rank=rank, steps=10_000, log_every=250, init_scale=1e-3, polar_iters=15)
        return dict(
            grid=dict(**common, seeds=3, m=[300, 450, 600, 900, 1200], penalty_m=[450, 600, 900],
                      gd_penalty_m=[900], deep_m=[450, 600, 900], deep_adam_m=[600, 900],
                      depths=[1, 2, 3], penalty_depths=[1], lam=1e-3, lr_adam=3e-3, lr_gd=3e-3, lr_plain=1.0),
            baseline=dict(n=n, rank=rank, seeds=3, m=[450, 600, 900]),
            ablations=dict(**common, seeds=2, m=900, lam=1e-3, lr=3e-3, lams=[1e-4, 1e-2],
                           lrs=[1e-2, 1e-1], nuclear_lams=[2e-5, 2e-4]),
            mechanism=dict(n=n, rank=rank, seeds=2, m=900, steps=300, log_every=10, init_scale=1e-3,
                           polar_iters=15, lams=[1e-4, 1e-3, 1e-2], lr_adam=3e-3, lr_gd=3e-3, lr_plain=1.0),
            normalized=dict(n=n, rank=rank, seeds=3, m=900, lam=1e-3, lrs=[3e-3, 3e-2], steps=10_000,
                            log_every=250, init_scale=1e-3, polar_iters=15),
            identities=dict(n=12, count=64),
            claims=dict(m_mid=600, m_hi=900, m_few=450),  # ~2x, ~3x and ~1.5x the dof (291)
        )
    n, rank = 100, 5
    common = dict(n=n, rank=rank, steps=30_000, log_every=500, init_scale=1e-3, polar_iters=25)
    return dict(
        grid=dict(**common, seeds=5, m=[1000, 1500, 2000, 2500, 3000, 4000, 5000],
                  penalty_m=[1000, 1500, 2000, 2500, 3000, 4000, 5000],
                  gd_penalty_m=[1000, 1500, 2000, 2500, 3000, 4000, 5000],
                  deep_m=[1000, 1500, 2000, 2500, 3000, 4000, 5000],
                  deep_adam_m=[1000, 1500, 2000, 2500, 3000, 4000, 5000], depths=[1, 2, 3],
                  penalty_depths=[1, 2, 3], lam=1e-3, lr_adam=1e-3, lr_gd=1e-3, lr_plain=1.0),
        baseline=dict(n=n, rank=rank, seeds=5, m=[1000, 1500, 2000, 2500, 3000, 4000, 5000]),
        ablations=dict(**common, seeds=5, m=3000, lam=1e-3, lr=1e-3, lams=[1e-4, 3e-4, 3e-3, 1e-2],
                       lrs=[3e-3, 3e-2], nuclear_lams=[1e-5, 1e-4, 1e-3]),
        mechanism=dict(n=n, rank=rank, seeds=5, m=2000, steps=500, log_every=10, init_scale=1e-3,
                       polar_iters=25, lams=[1e-4, 1e-3, 1e-2], lr_adam=1e-3, lr_gd=1e-3, lr_plain=1.0),
        normalized=dict(n=n, rank=rank, seeds=5, m=3000, lam=1e-3, lrs=[1e-3, 1e-2], steps=30_000,
                        log_every=500, init_scale=1e-3, polar_iters=25),
        identities=dict(n=20, count=256),
        claims=dict(m_mid=2000, m_hi=3000, m_few=1500),  # ~2x, ~3x and ~1.5x the dof (975)
    )


# -- helpers --------------------------------------------------------------------------------------
def _problems(n: int, rank: int, seeds: int, device, seed: int) -> mc.Problems:
    g = torch.Generator(device=device)
    g.manual_seed(1_000_003 * seed + 4)
    return mc.make_problems(n, rank, seeds, generator=g, device=device)


def _check(n, rank, seeds, steps=None, log_every=None):
    check_positive("n", n, integer=True)
    check_positive("rank", rank, integer=True)
    check_positive("seeds", seeds, integer=True)
    if rank >= n:
        raise mc_param_error("rank", rank, f"must be < n = {n}")
    if steps is not None:
        check_positive("steps", steps, integer=True)
        check_positive("log_every", log_every, integer=True)


def mc_param_error(name, value, why):
    from ..checks import ParameterError

    return ParameterError(f"invalid {name}={value!r}: {why}")


def _check_m(m_values, n):
    for m in m_values:
        check_positive("m", m, integer=True)
        if m >= n * n:
            raise mc_param_error("m", m, f"must be < n^2 = {n * n}")


def _truth(pb: mc.Problems) -> pd.DataFrame:
    s = torch.linalg.svdvals(pb.target).cpu().numpy()
    return pd.DataFrame({"seed": np.arange(len(s)), "erank": mc.effective_rank(s[:, : pb.rank]),
                         "ratio": s.sum(1) / np.linalg.norm(s, axis=1),
                         **{f"s{i + 1}": s[:, i] for i in range(pb.rank)}})


def _run_group(rows: pd.DataFrame, pb: mc.Problems, *, depth: int, method: str, steps: int,
               log_every: int, init_scale: float, polar_iters: int, device, gen_seed: int,
               on_divergence: str = "raise") -> mc.Result:
    """Train the runs ``rows`` (columns seed, m, lam, lr, beta1, penalty) of one depth and method."""
    dev = pb.target.device
    idx = torch.tensor(rows["seed"].to_numpy(dtype=np.int64), device=dev)
    m = torch.tensor(rows["m"].to_numpy(dtype=np.int64), device=dev)
    mask = mc.observation_mask(pb.order[idx], m, pb.n)
    g = torch.Generator(device=device)
    g.manual_seed(gen_seed)
    f32 = dict(dtype=torch.float32, device=dev)
    return mc.train(
        pb.target[idx], mask, depth=depth, method=method,
        lr=torch.tensor(rows["lr"].to_numpy(dtype=np.float64), **f32),
        lam=torch.tensor(rows["lam"].to_numpy(dtype=np.float64), **f32),
        beta1=torch.tensor(rows["beta1"].to_numpy(dtype=np.float64), **f32),
        penalty=list(rows["penalty"]), steps=steps, log_every=log_every, init_scale=init_scale,
        polar_iters=polar_iters, generator=g, on_divergence=on_divergence, runs=rows,
    )


def _measure(rows: pd.DataFrame, res: mc.Result, n_sv: int) -> pd.DataFrame:
    h = res.history
    return engine.tidy(
        rows.reset_index(drop=True),
        test=h.test[-1], train=h.train[-1], erank=h.erank[-1], ratio=h.ratio[-1],
        move_unobs=h.move_unobs[-1], runaway=res.runaway, diverged=res.diverged,
        **{f"s{i + 1}": h.sigma[-1, :, i] for i in range(n_sv)},
    )


def _stack_histories(parts: list[tuple[pd.DataFrame, mc.Result]]) -> dict[str, np.ndarray]:
    """Concatenate the histories of groups (same logging steps) along the run axis."""
    out = {"steps": parts[0][1].history.steps}
    for key in ("test", "train", "sigma", "erank", "ratio", "move_unobs", "move_obs"):
        out[key] = np.concatenate([getattr(r.history, key) for _, r in parts], axis=1)
    return out


# -- studies --------------------------------------------------------------------------------------
def identities(*, n: int, count: int, device, seed: int) -> dict[str, float]:
    """The calculus of ``r(W) = ||W||_*/||W||_F`` checked in float64 on random matrices.

    Returns the largest errors of: the Newton-Schulz polar factor vs the SVD; the polar-factor
    gradient vs autograd through ``torch.linalg.svdvals``; ``<grad r, u_i v_i^T>`` vs the
    per-singular-value formula; ``r(cW) - r(W)``; ``<grad r, W>`` (Euler: zero for a
    scale-invariant function); and the range of ``r`` over matrices of each rank ``k``.
    """
    check_positive("n", n, integer=True)
    check_positive("count", count, integer=True)
    g = torch.Generator(device=device)
    g.manual_seed(1_000_003 * seed + 40)
    kw = dict(dtype=torch.float64, device=device)
    # well-conditioned full-rank matrices (singular values in [0.5, 2]) for the polar factor
    q1 = torch.linalg.qr(torch.randn(count, n, n, generator=g, **kw))[0]
    q2 = torch.linalg.qr(torch.randn(count, n, n, generator=g, **kw))[0]
    s = 0.5 + 1.5 * torch.rand(count, n, generator=g, **kw)
    w = q1 @ torch.diag_embed(s) @ q2.transpose(1, 2)
    p_ns = polar.newton_schulz(w, 30)
    p_svd = polar.polar_svd(w)
    err_polar = (p_ns - p_svd).abs().amax().item()
    # gradient: polar formula vs autograd through the singular values
    wr = w.clone().requires_grad_(True)
    r_auto = torch.linalg.svdvals(wr).sum(-1) / torch.linalg.matrix_norm(wr)
    (g_auto,) = torch.autograd.grad(r_auto.sum(), wr)
    g_ns, r_ns = polar.ratio_grad(w, p_ns)
    err_grad = ((g_ns - g_auto).abs().amax() / g_auto.abs().amax()).item()
    err_value = (r_ns - r_auto.detach()).abs().amax().item()
    # per singular value: <grad r, u_i v_i^T> = (1 - s_i ||s||_1/||s||_2^2)/||s||_2
    u, sv, vh = torch.linalg.svd(w)
    proj = torch.einsum("bij,bik,bkj->bk", g_ns, u, vh)  # (U^T G V)_kk
    err_sigma = (proj - polar.ratio_sigma_grad(sv)).abs().amax().item()
    grows = (polar.ratio_sigma_grad(sv) < 0).float()
    thresh = (sv**2).sum(-1, keepdim=True) / sv.sum(-1, keepdim=True)
    err_sign = (grows - (sv > thresh).float()).abs().amax().item()
    # scale invariance and Euler's identity
    c = torch.exp(4 * torch.randn(count, 1, 1, generator=g, **kw))
    err_scale = (polar.ratio_penalty(c * w) - polar.ratio_penalty(w)).abs().amax().item()
    err_euler = ((g_ns * w).sum((1, 2)).abs() / (g_ns.norm(dim=(1, 2)) * w.norm(dim=(1, 2)))).amax().item()
    # range over matrices of rank k: r in [1, sqrt(k)], ends attained by rank 1 and flat spectra
    ks = torch.arange(1, n + 1, device=device)
    a = torch.randn(n, n, n, generator=g, **kw)
    bm = torch.randn(n, n, n, generator=g, **kw)
    keep = (torch.arange(n, device=device)[None, :] < ks[:, None]).to(torch.float64)
    lowrank = torch.bmm(a * keep[:, None, :], bm.transpose(1, 2))
    r_k = polar.ratio_penalty(lowrank)
    in_range = ((r_k >= 1 - 1e-12) & (r_k <= ks.to(torch.float64).sqrt() + 1e-12)).all().item()
    flat = q1[:n] @ torch.diag_embed(keep) @ q2[:n].transpose(1, 2) if count >= n else None
    err_flat = ((polar.ratio_penalty(flat) - ks.to(torch.float64).sqrt()).abs().amax().item()
                if flat is not None else float("nan"))
    return dict(err_polar=err_polar, err_grad=err_grad, err_value=err_value, err_sigma=err_sigma,
                err_sign=err_sign, err_scale=err_scale, err_euler=err_euler, in_range=float(in_range),
                err_flat=err_flat, r_rank1=float(r_k[0]), r_min=float(r_k.min()),
                r_over_sqrtk_max=float((r_k / ks.to(torch.float64).sqrt()).max()))


def grid(*, n: int, rank: int, seeds: int, m: list[int], penalty_m: list[int], gd_penalty_m: list[int],
         deep_m: list[int], deep_adam_m: list[int],
         depths: list[int], penalty_depths: list[int], lam: float, lr_adam: float, lr_gd: float,
         lr_plain: float, steps: int, log_every: int, init_scale: float, polar_iters: int, device,
         seed: int) -> dict:
    """Depth x optimizer (Adam, GD) x penalty (off, ratio) x m x seed, one batch per (depth, optimizer).

    Penalty runs are restricted to ``penalty_depths`` and to ``penalty_m`` (Adam) or ``gd_penalty_m``
    (GD), and deep runs (depth > 1) to ``deep_m`` (GD) or ``deep_adam_m`` (Adam): the ``fast``
    profile's budget; ``full`` runs everything. "GD" is plain gradient descent with the constant step
    ``lr_plain`` at depth 1 (it fits the observed entries well within the budget) and, for deep
    models, the ``"ngd"`` optimizer (the gradient direction with one global RMS-normalised step size
    ``lr_gd`` per run, as in Arora et al.'s experiments), without which the small initialisation of
    a deep product would not move in any realistic number of steps.

    Returns ``runs`` (one row per run with its final measurements), ``hist`` (logged histories,
    aligned with ``runs``), ``truth`` (per seed: effective rank, ratio and singular values of W*),
    ``dof`` and the wall time.
    """
    _check(n, rank, seeds, steps, log_every)
    _check_m(m, n)
    for d in depths:
        check_positive("depths", d, integer=True)
    for x, name in ((lam, "lam"), (lr_adam, "lr_adam"), (lr_gd, "lr_gd"), (lr_plain, "lr_plain"),
                    (init_scale, "init_scale")):
        check_positive(name, x)
    t0 = time.perf_counter()
    pb = _problems(n, rank, seeds, device, seed)
    runs = engine.grid(depth=depths, optimizer=["adam", "gd"], lam=[0.0, lam], m=m, seed=range(seeds))
    pen_m = np.where(runs.optimizer == "adam", runs.m.isin(penalty_m), runs.m.isin(gd_penalty_m))
    deep = np.where(runs.optimizer == "adam", runs.m.isin(deep_adam_m), runs.m.isin(deep_m))
    keep = ((runs.lam == 0) | (runs.depth.isin(penalty_depths) & pen_m)) & ((runs.depth == 1) | deep)
    runs = runs[keep].reset_index(drop=True)
    runs["lr"] = np.where(runs.optimizer == "adam", lr_adam, np.where(runs.depth == 1, lr_plain, lr_gd))
    runs["beta1"] = 0.9
    runs["penalty"] = np.where(runs.lam > 0, "ratio", "none")
    parts = []
    for k, ((depth, opt), rows) in enumerate(runs.groupby(["depth", "optimizer"], sort=True)):
        method = "adam" if opt == "adam" else ("gd" if depth == 1 else "ngd")
        res = _run_group(rows, pb, depth=int(depth), method=method,
                         steps=steps, log_every=log_every, init_scale=init_scale,
                         polar_iters=polar_iters, device=device, gen_seed=1_000_003 * seed + 100 + k)
        parts.append((rows, res))
    table = pd.concat([_measure(r, res, rank + 2) for r, res in parts], ignore_index=True)
    hist = _stack_histories(parts)
    return dict(runs=table, hist=hist, truth=_truth(pb), dof=pb.dof(),
                wall_s=time.perf_counter() - t0)


def baseline(*, n: int, rank: int, seeds: int, m: list[int], device, seed: int,
             solver: str = "SCS", eps: float = 1e-5) -> pd.DataFrame:
    """Minimum-nuclear-norm completion of the problems of :func:`grid` (same seeds), via cvxpy."""
    _check(n, rank, seeds)
    _check_m(m, n)
    check_choice("solver", solver, ("SCS", "CLARABEL"))
    pb = _problems(n, rank, seeds, device, seed)
    runs = engine.grid(m=m, seed=range(seeds))
    idx = torch.tensor(runs["seed"].to_numpy(dtype=np.int64), device=pb.target.device)
    mask = mc.observation_mask(pb.order[idx], torch.tensor(runs["m"].to_numpy(dtype=np.int64), device=idx.device), n)
    z = mc.nuclear_norm_min(pb.target[idx].cpu().numpy(), mask.cpu().numpy(), solver=solver, eps=eps)
    zt = torch.as_tensor(z, device=idx.device)
    s = torch.linalg.svdvals(zt)
    return engine.tidy(runs, test=mc.test_error(zt, pb.target[idx], mask),
                       erank=mc.effective_rank(s), s1=s[:, 0])


def ablations(*, n: int, rank: int, seeds: int, m: int, lam: float, lr: float, lams: list[float],
              lrs: list[float], nuclear_lams: list[float], steps: int, log_every: int,
              init_scale: float, polar_iters: int, device, seed: int) -> dict:
    """Depth 1 + Adam at ``m`` observations, one batch of variants of the reference (ratio penalty,
    ``lam``, ``lr``; the reference runs themselves are the :func:`grid` runs with the same seeds):
    the nuclear penalty (``nuclear_lams``), ``beta1 = 0``, the ratio with other weights (``lams``),
    other learning rates (``lrs``) and no penalty. Runaway runs are flagged, not raised: they are a
    result here."""
    _check(n, rank, seeds, steps, log_every)
    _check_m([m], n)
    for x in [lam, lr, *lams, *lrs, *nuclear_lams]:
        check_positive("lam/lr", x)
    t0 = time.perf_counter()
    pb = _problems(n, rank, seeds, device, seed)
    rows = []
    for s in range(seeds):
        rows.append(dict(variant="beta1=0", penalty="ratio", lam=lam, lr=lr, beta1=0.0, seed=s))
        rows += [dict(variant="lam sweep", penalty="ratio", lam=x, lr=lr, beta1=0.9, seed=s) for x in lams]
        rows += [dict(variant="lr sweep", penalty="ratio", lam=lam, lr=x, beta1=0.9, seed=s) for x in lrs]
        rows += [dict(variant="nuclear", penalty="nuclear", lam=x, lr=lr, beta1=0.9, seed=s)
                 for x in nuclear_lams]
        rows.append(dict(variant="no penalty", penalty="none", lam=0.0, lr=lr, beta1=0.9, seed=s))
    runs = pd.DataFrame(rows)
    runs["m"] = m
    res = _run_group(runs, pb, depth=1, method="adam", steps=steps, log_every=log_every,
                     init_scale=init_scale, polar_iters=polar_iters, device=device,
                     gen_seed=1_000_003 * seed + 200, on_divergence="flag")
    return dict(runs=_measure(runs, res, rank + 2), hist=_stack_histories([(runs, res)]),
                truth=_truth(pb), wall_s=time.perf_counter() - t0)


def mechanism(*, n: int, rank: int, seeds: int, m: int, steps: int, log_every: int, init_scale: float,
              polar_iters: int, lams: list[float], lr_adam: float, lr_gd: float, lr_plain: float,
              device, seed: int) -> dict:
    """The first ``steps`` steps of depth 1 + ratio penalty under Adam (``lr_adam``), plain GD
    (``lr_plain``) and the globally normalised GD (``"ngd"``, ``lr_gd``), for each penalty weight in
    ``lams``: mean movement of unobserved and observed entries over time."""
    _check(n, rank, seeds, steps, log_every)
    _check_m([m], n)
    for x, name in ((lr_adam, "lr_adam"), (lr_gd, "lr_gd"), (lr_plain, "lr_plain")):
        check_positive(name, x)
    pb = _problems(n, rank, seeds, device, seed)
    parts = []
    for k, (opt, lr) in enumerate((("adam", lr_adam), ("gd", lr_plain), ("ngd", lr_gd))):
        rows = engine.grid(optimizer=[opt], lam=lams, seed=range(seeds))
        rows["m"], rows["lr"], rows["beta1"], rows["penalty"] = m, lr, 0.9, "ratio"
        res = _run_group(rows, pb, depth=1, method=opt, steps=steps,
                         log_every=log_every, init_scale=init_scale, polar_iters=polar_iters,
                         device=device, gen_seed=1_000_003 * seed + 300 + k)
        parts.append((rows, res))
    runs = pd.concat([r for r, _ in parts], ignore_index=True)
    return dict(runs=runs, hist=_stack_histories(parts))


def normalized(*, n: int, rank: int, seeds: int, m: int, lam: float, lrs: list[float], steps: int,
               log_every: int, init_scale: float, polar_iters: int, device, seed: int) -> dict:
    """Depth 1 + ratio penalty under the globally normalised GD (``"ngd"``) at the learning rates
    ``lrs``, with and without the penalty, at ``m`` observations: does the penalty need Adam, or only
    a step whose size does not scale with the gradient? (The book's question; the grid's GD at
    depth 1 is plain GD.)"""
    _check(n, rank, seeds, steps, log_every)
    _check_m([m], n)
    for x in [lam, *lrs]:
        check_positive("lam/lrs", x)
    pb = _problems(n, rank, seeds, device, seed)
    runs = engine.grid(lr=lrs, penalty=["ratio", "none"], seed=range(seeds))
    runs["m"], runs["beta1"] = m, 0.9
    runs["lam"] = np.where(runs.penalty == "ratio", lam, 0.0)
    res = _run_group(runs, pb, depth=1, method="ngd", steps=steps, log_every=log_every,
                     init_scale=init_scale, polar_iters=polar_iters, device=device,
                     gen_seed=1_000_003 * seed + 400)
    return dict(runs=_measure(runs, res, rank + 2), hist=_stack_histories([(runs, res)]))


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (cached)."""
    p = params(ctx.profile)
    return {name: ctx.study(name, fn, **p[name]) for name, fn in
            (("identities", identities), ("grid", grid), ("baseline", baseline),
             ("ablations", ablations), ("mechanism", mechanism), ("normalized", normalized))}


# -- benchmark ------------------------------------------------------------------------------------
def bench_workload(runs: int, device, n: int = 50, polar_iters: int = 15) -> engine.Workload:
    """One step of depth 1 + ratio penalty + Adam on ``runs`` problems of size ``n x n`` (float32).

    ``batched_step`` advances all runs as one tensor program (``bmm`` Newton-Schulz polar factor,
    batched Adam); ``loop_step`` advances the same runs one at a time with NumPy (exact SVD for the
    polar factor, which is the fastest per-matrix route on a CPU, and a NumPy Adam).
    """
    dev = torch.device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(0)
    pb = mc.make_problems(n, 3, runs, generator=g, device=dev)
    m_obs = min(3 * mc.degrees_of_freedom(n, 3), n * n // 2)
    mask = mc.observation_mask(pb.order, m_obs, n, dtype=torch.float32)
    tgt = pb.target.to(torch.float32)
    w = [mc.init_layers(runs, n, 1, generator=g, device=dev)[0]]
    opt = BatchedOptimizer(w, method="adam", lr=5e-3)
    m = mask.sum((1, 2)).reshape(-1, 1, 1)

    def batched_step() -> None:
        grad = 2 * mask * (w[0] - tgt) / m + 1e-3 * mc.penalty_grad(w[0], True, polar_iters)
        opt.step([grad])

    w_np = w[0].cpu().numpy().copy()
    tgt_np, mask_np = tgt.cpu().numpy(), mask.cpu().numpy()
    m1 = np.zeros_like(w_np)
    v1 = np.zeros_like(w_np)
    state = {"t": 0}

    def loop_step() -> None:
        state["t"] += 1
        t = state["t"]
        for b in range(runs):
            x = w_np[b]
            u, s, vt = np.linalg.svd(x)
            fro = np.linalg.norm(s)
            gr = 2 * mask_np[b] * (x - tgt_np[b]) / mask_np[b].sum()
            gr += 1e-3 * (u @ vt - s.sum() / fro**2 * x) / fro
            m1[b] = 0.9 * m1[b] + 0.1 * gr
            v1[b] = 0.999 * v1[b] + 0.001 * gr * gr
            x -= 5e-3 * (m1[b] / (1 - 0.9**t)) / (np.sqrt(v1[b] / (1 - 0.999**t)) + 1e-8)

    flops = (2 * polar_iters * 2 + 2) * n**3  # two n^3 products per Newton-Schulz iteration
    return engine.Workload(name="ch04 depth-1 Adam + ratio penalty", runs=runs, device=str(dev),
                           batched_step=batched_step, loop_step=loop_step,
                           flops_per_run_step=float(flops), matmul_shape=(runs, n, n, n))


# -- tables ---------------------------------------------------------------------------------------
def config_name(depth: int, optimizer: str, lam: float) -> str:
    """Short name of a grid configuration, e.g. ``d1 Adam+ratio`` or ``d3 GD``."""
    return f"d{depth} {'Adam' if optimizer == 'adam' else 'GD'}" + ("+ratio" if lam > 0 else "")


def summary(grid_result: dict, baseline_runs: pd.DataFrame | None = None, col: str = "test",
            stat: str = "median") -> pd.DataFrame:
    """One row per configuration, one column per ``m/dof``: the ``stat`` over seeds of ``col``."""
    runs = grid_result["runs"].copy()
    runs["config"] = [config_name(d, o, lam) for d, o, lam in zip(runs.depth, runs.optimizer, runs.lam)]
    frames = [runs[["config", "m", col]]]
    if baseline_runs is not None:
        b = baseline_runs[["m", col]].copy()
        b["config"] = "nuclear-norm min"
        frames.append(b)
    allr = pd.concat(frames, ignore_index=True)
    order = list(dict.fromkeys(allr["config"]))
    table = allr.groupby(["config", "m"])[col].agg(stat).unstack("m").reindex(order)
    table.columns = [f"{m / grid_result['dof']:.2f}x" for m in table.columns]
    table.columns.name = "m / dof"
    return table


def fmt(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Round every number to ``digits`` significant digits, as text (empty where missing)."""
    def one(x):
        if isinstance(x, (bool, np.bool_)):
            return "yes" if x else "no"
        if isinstance(x, str):
            return x
        return "" if pd.isna(x) else f"{x:.{digits}g}"

    return table.apply(lambda c: c.map(one))


def mechanism_table(mech: dict, step: int) -> pd.DataFrame:
    """Mean movement of unobserved and observed entries at ``step``, averaged over seeds, per
    optimizer and penalty weight, and the unobserved movement in units of ``lr * step``."""
    h, runs = mech["hist"], mech["runs"]
    k = int(np.searchsorted(h["steps"], step))
    if k >= len(h["steps"]) or h["steps"][k] != step:
        raise ValueError(f"step {step} is not a logging step of the mechanism study")
    df = runs[["optimizer", "lam", "lr"]].copy()
    df["unobserved"] = h["move_unobs"][k]
    df["observed"] = h["move_obs"][k]
    out = df.groupby(["optimizer", "lam"]).mean()
    out["unobserved / (lr t)"] = out["unobserved"] / (out["lr"] * step)
    return out.drop(columns="lr")


def ablation_table(abl: dict, grid_result: dict, p: dict) -> pd.DataFrame:
    """The ablations with the grid's reference runs (same depth, optimizer, ``m`` and seeds) first,
    one row per run, labelled by variant."""
    a = p["ablations"]
    ref = select(grid_result["runs"], depth=1, optimizer="adam", lam=a["lam"], m=a["m"],
                 seed=list(range(a["seeds"]))).copy()
    ref["label"] = "reference"
    runs = abl["runs"].copy()
    runs["label"] = [
        {"beta1=0": "beta1=0", "lam sweep": f"lambda={lam:g}", "lr sweep": f"lr={lr:g}",
         "nuclear": f"nuclear {lam:g}", "no penalty": "no penalty"}[v]
        for v, lam, lr in zip(runs.variant, runs.lam, runs.lr)
    ]
    cols = ["label", "seed", "lam", "lr", "test", "train", "erank", "ratio", "s1", "runaway"]
    out = pd.concat([ref[cols], runs[cols]], ignore_index=True)
    order = {lab: i for i, lab in enumerate(dict.fromkeys(
        ["reference", "beta1=0", *sorted(l for l in out.label if l.startswith("lambda=")),
         *sorted((l for l in out.label if l.startswith("lr=")), key=lambda l: float(l[3:])),
         *sorted((l for l in out.label if l.startswith("nuclear")), key=lambda l: float(l[8:])),
         "no penalty"]))}
    return out.sort_values(["label", "seed"], key=lambda c: c.map(order) if c.name == "label" else c,
                           kind="stable").reset_index(drop=True)


def select(runs: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Rows of a tidy run table matching every ``column=value`` (a value may be a list)."""
    keep = np.ones(len(runs), dtype=bool)
    for k, v in where.items():
        keep &= runs[k].isin(v).to_numpy() if isinstance(v, (list, tuple)) else (runs[k] == v).to_numpy()
    return runs[keep]


def example_spectrum(*, n: int, rank: int, noise: float, device, seed: int) -> np.ndarray:
    """Singular values of ``W* + noise * G`` (``G`` i.i.d. N(0, 1)) for the first ground truth of
    :func:`grid`: a low-rank signal plus a bulk, to illustrate the penalty's threshold."""
    check_positive("noise", noise)
    pb = _problems(n, rank, 1, device, seed)
    g = torch.Generator(device=device)
    g.manual_seed(1_000_003 * seed + 50)
    w = pb.target[0] + noise * torch.randn(n, n, generator=g, dtype=torch.float64, device=pb.target.device)
    return torch.linalg.svdvals(w).cpu().numpy()
