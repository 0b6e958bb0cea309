"""Chapter 2: margin maximization in linear and ReLU networks (``vardi2022margin``).

Studies (plain functions, no plotting): each takes keyword parameters plus ``device`` and ``seed``
and batches all its runs (initialisations, widths, perturbations, radii) along a leading axis.

- :func:`fc_linear` -- fully connected linear nets of depth 2 and 3 on random separable data vs the
  L2-SVM (global optimum row of the table);
- :func:`diagonal` -- diagonal nets: depth 2 special vs generic initialisation, depth 2 on data
  where a sparse KKT point is not global (generic limits have non-zero weights), depth 3 symmetric vs
  asymmetric initialisation, improving curves, dual vectors, per-layer QPs;
- :func:`relu_width2` -- the depth-2 ReLU dead-neuron KKT point, its certificate and improving curve,
  the split-neuron point and the per-layer statements;
- :func:`local` -- ball-constrained multi-start local search around the constructions;
- :func:`random_relu` -- random Gaussian initialisations of ReLU nets of several widths;
- :func:`escape` -- steps to leave the special initialisations' bad points when perturbed by e;
- :func:`smoothed` -- the smoothed margin along the trainer without norm cap.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import homogeneous as H
from .. import margins as M
from ..book import sweep
from ..checks import check_positive
from ..engine import Workload, check_finite, grid, tidy

DELTA = 0.2  # the ReLU example's x_{1,2} = (+-1, delta)


def params(profile: str) -> dict[str, dict[str, Any]]:
    """Parameters of every study for the ``fast`` (CI, one CPU core) or ``full`` (paper scale) profile."""
    train = {"eta": 0.05, "eta_min": 1e-5, "temp": 1000.0}
    if profile == "fast":
        return {
            "fc": dict(n=12, d=4, width=6, depths=[2, 3], inits=16, steps=6000, **train),
            "diagonal": dict(inits=8, steps=2000, **train),
            "relu": dict(delta=DELTA, steps=2000, **train),
            "local": {"radii": list(np.geomspace(3e-3, 1e-1, 6)), "starts": 64, "iters": 1000},
            "random": dict(delta=DELTA, widths=[2, 4], inits=1024, init_scale=1.0, steps=3000, **train),
            "escape": {"eps": list(np.geomspace(1e-2, 1e-10, 9)), "eta": 0.05, "max_steps": 1500},
            "smoothed": {"etas": [0.02, 0.005], "inits": 16, "horizon": 12.0},
        }
    if profile == "full":
        return {
            "fc": dict(n=12, d=4, width=6, depths=[2, 3, 4], inits=256, steps=20000, **train),
            "diagonal": dict(inits=256, steps=10000, **train),
            "relu": dict(delta=DELTA, steps=10000, **train),
            "local": {"radii": list(np.geomspace(3e-3, 1e-1, 11)), "starts": 256, "iters": 3000},
            "random": dict(delta=DELTA, widths=[2, 4, 8, 16, 32], inits=2048, init_scale=1.0, steps=6000, **train),
            "escape": {"eps": list(np.geomspace(1e-2, 1e-13, 23)), "eta": 0.05, "max_steps": 4000},
            "smoothed": {"etas": [0.02, 0.01, 0.005, 0.0025], "inits": 256, "horizon": 20.0},
        }
    raise ValueError(f"invalid profile={profile!r}: allowed values are 'fast', 'full'")


def params_table(P: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The profile's parameters as a compact table (study, parameter, value)."""

    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return f"{len(v)} values in [{min(v):.3g}, {max(v):.3g}]" if len(v) > 4 else ", ".join(f"{x:g}" for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    rows = [{"study": s, "parameter": k, "value": fmt(v)} for s, kv in P.items() for k, v in kv.items()]
    return pd.DataFrame(rows).set_index(["study", "parameter"])


def _t(x: Any, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device)


# -- data -----------------------------------------------------------------------------------------
def separable_data(n: int, d: int, seed: int, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points labelled by a random teacher ``beta_0`` and pushed ``margin`` away from its hyperplane."""
    rng = np.random.default_rng([seed, 2])
    b0 = rng.standard_normal(d)
    b0 /= np.linalg.norm(b0)
    X = rng.standard_normal((n, d))
    y = np.where(X @ b0 >= 0, 1.0, -1.0)
    return X + margin * y[:, None] * b0[None, :], y


def relu_data(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """``x_1 = (1, delta)``, ``x_2 = (-1, delta)``, both labelled +1."""
    return np.array([[1.0, delta], [-1.0, delta]]), np.array([1.0, 1.0])


def relu_optimum_gamma(delta: float) -> float:
    """Max normalized margin of a depth-2 ReLU net (width >= 2) on :func:`relu_data`: one neuron per
    point, ``gamma* = ||x_i|| / 4 = sqrt(1 + delta^2) / 4`` (book's derivation)."""
    return float(np.sqrt(1 + delta**2) / 4)


def diag_face_gamma(t: np.ndarray, depth: int) -> np.ndarray:
    """Normalized margin of the balanced depth-L diagonal net with ``beta = (1/2 + t, 1/2 - t)`` on
    ``x = (1, 1)``: ``gamma = 1 / (L sum_j |beta_j|^{2/L})^{L/2}``."""
    b = np.stack([0.5 + t, 0.5 - t], -1)
    return 1.0 / (depth * (np.abs(b) ** (2.0 / depth)).sum(-1)) ** (depth / 2)


# -- fully connected linear ---------------------------------------------------------------------------
def _balanced_fc(beta: np.ndarray, width: int, depth: int) -> np.ndarray:
    """A balanced rank-one FC linear net with end-to-end predictor ``beta`` (flat parameters)."""
    nb = np.linalg.norm(beta)
    s = nb ** (1.0 / depth)
    e = np.zeros(width)
    e[0] = 1.0
    layers = [s * np.outer(e, beta / nb)] + [s * np.outer(e, e)] * (depth - 2) + [s * e[None, :]]
    return np.concatenate([w.ravel() for w in layers])


def fc_linear(
    *, n: int, d: int, width: int, depths: list[int], inits: int, steps: int, eta: float, eta_min: float,
    temp: float, device, seed: int,
) -> dict[str, Any]:
    """Fully connected linear nets of each depth from ``inits`` Gaussian initialisations vs the L2 SVM.

    Measures per run: final gamma against ``gamma_SVM / L^{L/2}``, alignment ``1 - cos(beta, beta_SVM)``,
    the layers' rank-one defect ``sigma_2 / sigma_1``, the KKT residual; for the first run of each depth,
    the per-layer QP ratios (1 when every layer is optimal given the others).
    """
    for name, v in {"n": n, "d": d, "width": width, "inits": inits, "steps": steps}.items():
        check_positive(name, v, integer=True)
    X, y = separable_data(n, d, seed)
    beta_svm, g_svm = M.svm_l2(X, y)
    Xt, yt = _t(X, device), _t(y, device)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 11)
    rows, curves, layer_rows = [], {}, []
    for L in depths:
        fam = H.fc(d, width, L)
        th0 = torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device) / np.sqrt(width)
        tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=20)
        k = M.kkt(fam, tr.theta, Xt, yt)
        beta = fam.predictor(tr.theta).cpu().numpy()
        cos = beta @ beta_svm / np.linalg.norm(beta, axis=1) / np.linalg.norm(beta_svm)
        layers = fam.unpack(tr.theta)
        defect = torch.stack(
            [torch.linalg.svdvals(W)[:, 1] / torch.linalg.svdvals(W)[:, 0] for W in layers[:-1]], 1
        ).max(1).values.cpu().numpy()
        for r in range(inits):
            rows.append({"depth": L, "run": r, "gamma": tr.gamma[-1, r], "target": g_svm / L ** (L / 2),
                             "align": 1 - cos[r], "rank1_defect": defect[r], "kkt_residual": k.residual[r]})
        curves[L] = {"steps": tr.steps, "gamma": tr.gamma}
        for layer in range(L):
            layer_rows.append({"depth": L, "layer": layer + 1, "ratio": M.layer_qp(fam, k.theta[0], X, y, layer)})
    return {"X": X, "y": y, "beta_svm": beta_svm, "gamma_svm": g_svm, "runs": pd.DataFrame(rows),
            "curves": curves, "per_layer": pd.DataFrame(layer_rows)}


# -- diagonal linear ----------------------------------------------------------------------------------
def diagonal(*, inits: int, steps: int, eta: float, eta_min: float, temp: float, device, seed: int) -> dict[str, Any]:
    """Diagonal linear nets: the three constructions of the chapter, all in three batched runs.

    - depth 2, ``x = (1, 2)``: run 0 the special init ``u = (1, 1), v = (1, -1)``, runs 1.. Gaussian;
    - depth 2, ``x_1 = (1, 2), x_2 = (2, 1)``: Gaussian inits, whose limits have every weight non-zero
      (the l1-SVM solution ``beta = (1/3, 1/3)`` is dense), and the hand-built sparse point
      ``u = v = (0, 1)`` (key ``"sparse"``), a KKT point with ``z = (2, 1)`` that is not global;
    - depth 3, ``x = (1, 1)``: run 0 symmetric ``u_l = (1/2, 1/2)``, run 1 ``u_3 = (0.51, 0.5)``, runs 2.. Gaussian.

    ``lam`` is the multiplier of the first point; ``lam_all`` holds all of them.
    """
    check_positive("inits", inits, integer=True)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 21)
    out: dict[str, Any] = {}
    specs = {
        "d2": (2, np.array([[1.0, 2.0]]), np.array([[1.0, 1.0, 1.0, -1.0]])),
        "d2dense": (2, np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros((0, 4))),
        "d3": (3, np.array([[1.0, 1.0]]), np.array([[0.5] * 6, [0.5] * 4 + [0.51, 0.5]])),
    }
    for name, (L, X, special) in specs.items():
        fam = H.diagonal(2, L)
        y = np.ones(len(X))
        rand = torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device)
        th0 = torch.cat([_t(special, device), rand], 0)
        Xt, yt = _t(X, device), _t(y, device)
        tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=10)
        k = M.kkt(fam, tr.theta, Xt, yt)
        beta = fam.predictor(_t(k.theta, device)).cpu().numpy()
        _, g_l1 = M.svm_l1(X, y)
        minw = np.abs(k.theta).reshape(len(k.theta), L, 2).min(axis=(1, 2)) / np.linalg.norm(k.theta, axis=1)
        out[name] = {
            "X": X, "depth": L, "n_special": len(special), "steps": tr.steps, "gamma": tr.gamma,
            "final_gamma": tr.gamma[-1], "theta": k.theta, "beta": beta, "lam": k.lam[:, 0], "lam_all": k.lam,
            "z": M.l1_dual_vector(k.lam, X, y), "residual": k.residual, "gamma_l1": g_l1,
            "min_weight": minw,
            "per_layer": [M.layer_qp(fam, k.theta[0], X, y, layer) for layer in range(L)],
        }
    # the sparse point u = v = (0, 1) on the two-point data: a KKT point (only x_2 active) that is not global
    X, fam2 = specs["d2dense"][1], H.diagonal(2, 2)
    Xt, yt = _t(X, device), _t(np.ones(len(X)), device)
    th_sp = _t([[0.0, 1.0, 0.0, 1.0]], device)
    ks = M.kkt(fam2, th_sp, Xt, yt)
    out["d2dense"]["sparse"] = {
        "theta": th_sp.cpu().numpy()[0], "residual": float(ks.residual[0]), "lam": ks.lam[0],
        "z": M.l1_dual_vector(ks.lam, X, np.ones(len(X)))[0],
        "gamma": float(H.normalized_margin(fam2, th_sp, Xt, yt)[0]),
    }
    # improving curves: revive coordinate 2 at the depth-2 bad point; move along the depth-3 face
    y = np.array([1.0])
    eps = np.geomspace(1e-4, 1e-1, 13)
    curve = np.stack([np.ones_like(eps), eps, np.ones_like(eps), eps], 1)  # u = (1, e), v = (1, e)
    th_bad = np.array([[1.0, 0.0, 1.0, 0.0]])
    X2, yt = _t(specs["d2"][1], device), _t(y, device)
    g_curve = H.normalized_margin(fam2, _t(curve, device), X2, yt).cpu().numpy()
    g_bad = H.normalized_margin(fam2, _t(th_bad, device), X2, yt).cpu().numpy()[0]
    unit = curve / np.linalg.norm(curve, axis=1, keepdims=True)
    dist = np.linalg.norm(unit - th_bad / np.linalg.norm(th_bad), axis=1)
    out["curve_d2"] = pd.DataFrame({"eps": eps, "distance": dist, "gain": g_curve - g_bad})
    t = np.linspace(-0.5, 0.5, 201)
    ts = np.geomspace(1e-3, 1e-1, 9)
    out["face_d3"] = pd.DataFrame({"t": t, "gamma": diag_face_gamma(t, 3), "norm2": 3 * (np.abs(np.stack([0.5 + t, 0.5 - t], 1)) ** (2 / 3)).sum(1)})
    out["curve_d3"] = pd.DataFrame({"t": ts, "gain": diag_face_gamma(ts, 3) - diag_face_gamma(np.zeros(1), 3)[0]})
    return out


# -- depth-2 ReLU ------------------------------------------------------------------------------------
def relu_points(delta: float, split: float = 0.6) -> dict[str, np.ndarray]:
    """Analytic points of (P) on :func:`relu_data` (width 2, layout ``w_A, w_B, v_A, v_B``), ``min q = 1``:
    the dead-neuron KKT point (A along ``(0, 1)``, B zero), the split point (A and B along ``(0, 1)``
    with mass fractions ``split`` and ``1 - split``) and the global optimum (one neuron per point)."""
    s = 1 / np.sqrt(delta)
    sa, sb = np.sqrt(split) * s, np.sqrt(1 - split) * s
    # v_j = |w_j| = s_j; q = delta (s_A^2 + s_B^2) = 1
    dead = np.array([0.0, s, 0.0, 0.0, s, 0.0])
    spl = np.array([0.0, sa, 0.0, sb, sa, sb])
    rho = np.sqrt(1 + delta**2)
    c = 1 / np.sqrt(rho)
    opt = np.array([c / rho, c * delta / rho, -c / rho, c * delta / rho, c, c])
    return {"dead": dead, "split": spl, "optimum": opt}


def relu_improving_curve(delta: float, eps: np.ndarray) -> np.ndarray:
    """Points ``theta_eps`` (``min q = 1``) leaving the dead-neuron point: neuron B revived along
    ``x_1/||x_1||`` with weights ``eps``, neuron A rotated by ``phi`` toward ``x_2`` so that
    ``q_1 = q_2`` and rescaled so that ``q = 1`` (book's construction). ``||theta_eps||^2`` decreases
    by ``2 eps^2 (max h - 1) + O(eps^4)``."""
    rho = np.sqrt(1 + delta**2)
    u = np.array([1.0, delta]) / rho
    # q_1 = s^2 (delta cos phi - sin phi) + eps^2 rho, q_2 = s^2 (delta cos phi + sin phi)
    # q_1 = q_2  <=>  2 s^2 sin phi = eps^2 rho ; q_2 = 1 fixes s
    # solve for phi, s: sin phi = eps^2 rho / (2 s^2), s^2 (delta cos phi) + eps^2 rho / 2 = 1
    s2 = (1 - eps**2 * rho / 2) / delta
    for _ in range(50):  # fixed point for cos(phi)
        phi = np.arcsin(eps**2 * rho / (2 * s2))
        s2 = (1 - eps**2 * rho / 2) / (delta * np.cos(phi))
    s = np.sqrt(s2)
    wA = s[:, None] * np.stack([-np.sin(phi), np.cos(phi)], 1)
    wB = eps[:, None] * u[None, :]
    return np.concatenate([wA, wB, s[:, None], eps[:, None]], 1)


def relu_width2(*, delta: float, steps: int, eta: float, eta_min: float, temp: float, device, seed: int) -> dict[str, Any]:
    """The depth-2 ReLU constructions on ``x_{1,2} = (+-1, delta)``.

    Trains from two initialisations (run 0: neuron B dead on both points, ``w_B = (0.1, -1)``, A active on
    both; run 1: one neuron per point), checks KKT, computes the certificate ``max_u h(u)`` and the
    explicit improving curve at the dead-neuron point, and the per-layer statements at the split point.
    """
    check_positive("delta", delta)
    X, y = relu_data(delta)
    Xt, yt = _t(X, device), _t(y, device)
    fam = H.relu(2, 2)
    th0 = np.array([[0.1, 1.0, 0.1, -1.0, 0.5, 0.5], [1.0, 0.3, -1.0, 0.3, 0.5, 0.5]])
    tr = M.train(fam, _t(th0, device), Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=10)
    k = M.kkt(fam, tr.theta, Xt, yt)
    hmax, umax = M.relu_dual_max(k.lam, X, y)
    ang = np.linspace(-np.pi, np.pi, 721)
    h_curve = M.relu_dual(k.lam, X, y, np.stack([np.cos(ang), np.sin(ang)], 1))
    pts = relu_points(delta)
    eps = np.geomspace(1e-4, 1e-1, 13)
    curve = relu_improving_curve(delta, eps)
    g_curve = H.normalized_margin(fam, _t(curve, device), Xt, yt).cpu().numpy()
    g_pts = {n: float(H.normalized_margin(fam, _t(p[None], device), Xt, yt)[0]) for n, p in pts.items()}
    unit = curve / np.linalg.norm(curve, axis=1, keepdims=True)
    dist = np.linalg.norm(unit - pts["dead"] / np.linalg.norm(pts["dead"]), axis=1)
    ks = M.kkt(fam, _t(np.stack([pts["dead"], pts["split"]]), device), Xt, yt)
    # per-layer global at the split point: with v fixed, put one neuron on each point instead
    sp = pts["split"]
    vA, vB = sp[4], sp[5]
    rho = np.sqrt(1 + delta**2)
    layer1_now = sp[:4] @ sp[:4]
    layer1_alt = 1 / (vA * rho) ** 2 + 1 / (vB * rho) ** 2  # |w_A| = 1/(v_A rho), |w_B| = 1/(v_B rho)
    return {
        "X": X, "y": y, "steps": tr.steps, "gamma": tr.gamma, "final_gamma": tr.gamma[-1], "theta": k.theta,
        "lam": k.lam, "residual": k.residual, "hmax": hmax, "umax": umax, "angles": ang, "h": h_curve,
        "gamma_opt": relu_optimum_gamma(delta), "points": pts, "gamma_points": g_pts,
        "curve": pd.DataFrame({"eps": eps, "distance": dist, "gain": g_curve - g_pts["dead"]}),
        "points_kkt_residual": ks.residual, "points_lam": ks.lam,
        "split_hmax": M.relu_dual_max(ks.lam[1:], X, y)[0][0],
        "layer1_ratio": layer1_alt / layer1_now,
        "pre_split": fam.preactivations(_t(sp[None], device), Xt).cpu().numpy()[0],
    }


# -- local search -------------------------------------------------------------------------------------
def local(*, radii: list[float], starts: int, iters: int, device, seed: int) -> pd.DataFrame:
    """Best gain of the normalized margin in balls of radius r around five points (tidy, one row per
    point and radius): diagonal depth 2 bad point, diagonal depth 3 symmetric point, ReLU dead-neuron
    point, ReLU split point (all parameters, and layer 1 only), FC linear depth-2 optimum."""
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 31)
    y1 = np.array([1.0])
    Xr, yr = relu_data(DELTA)
    pts = relu_points(DELTA)
    Xf, yf = separable_data(12, 4, seed)
    beta, _ = M.svm_l2(Xf, yf)
    relu = H.relu(2, 2)
    layer1 = torch.tensor([1.0] * 4 + [0.0] * 2)
    cases = [
        ("diagonal depth 2, special-init limit", H.diagonal(2, 2), [1.0, 0, 1, 0], np.array([[1.0, 2.0]]), y1, None),
        ("diagonal depth 3, symmetric limit", H.diagonal(2, 3), [2 ** (-1 / 3)] * 6, np.array([[1.0, 1.0]]), y1, None),
        ("ReLU dead-neuron point", relu, pts["dead"], Xr, yr, None),
        ("ReLU split point", relu, pts["split"], Xr, yr, None),
        ("ReLU split point, layer 1 only", relu, pts["split"], Xr, yr, layer1),
        ("FC linear depth 2, optimum", H.fc(4, 6, 2), _balanced_fc(beta, 6, 2), Xf, yf, None),
    ]
    frames = []
    for name, fam, th, X, y, mask in cases:
        r = M.local_search(fam, _t(np.asarray(th)[None], device)[0], _t(X, device), _t(y, device),
                           np.asarray(radii), starts=starts, iters=iters, mask=mask, generator=gen)
        frames.append(pd.DataFrame({"point": name, "radius": r["radius"], "gain": r["gain"], "gamma0": r["gamma0"]}))
    return pd.concat(frames, ignore_index=True)


# -- random initialisations ---------------------------------------------------------------------------
def random_relu(
    *, delta: float, widths: list[int], inits: int, init_scale: float, steps: int, eta: float, eta_min: float,
    temp: float, device, seed: int, max_batch: int = 4096,
) -> pd.DataFrame:
    """Depth-2 ReLU nets of several widths from Gaussian inits (``w, v ~ N(0, init_scale^2)``), all widths
    in one batch (narrower nets padded with zero neurons, which stay exactly zero). One row per run:
    whether it separates, its final gamma, the class of its limit, its number of zero neurons
    (share of ``||theta||`` below 1e-3: dead neurons whose weights the growing ones leave behind), and
    its number of non-zero neurons along ``(0, 1)`` (``1 - cos`` below 1e-6, ``v_j > 0``): a limit with
    no zero neuron and every neuron along ``(0, 1)`` is the split configuration.

    The grid of runs goes through :func:`lib.sweep.run` in shards of at most ``max_batch`` runs, in
    process or on a Dask cluster (``--cluster``/``--scheduler``), with the same numbers either way: each
    run draws its initialisation from its own seed (chapter seed, width, init index)."""
    check_positive("inits", inits, integer=True)
    check_positive("init_scale", init_scale)
    check_positive("max_batch", max_batch, integer=True)
    runs = grid(width=widths, init=range(inits))
    shard = functools.partial(
        random_relu_shard, delta=delta, mmax=max(widths), init_scale=init_scale, steps=steps, eta=eta,
        eta_min=eta_min, temp=temp, seed=seed,
    )
    out = sweep.run("ch02-random-relu", shard, runs, max_batch=max_batch, device=str(device))
    return out.drop(columns=["shard_worker", "shard_device"])


def random_relu_shard(
    runs: pd.DataFrame, device: str, *, delta: float, mmax: int, init_scale: float, steps: int, eta: float,
    eta_min: float, temp: float, seed: int,
) -> pd.DataFrame:
    """One shard of :func:`random_relu`: its runs trained as one tensor program."""
    X, y = relu_data(delta)
    Xt, yt = _t(X, device), _t(y, device)
    fam = H.relu(2, mmax)
    B = len(runs)
    w = torch.zeros(B, mmax, 2, dtype=torch.float64)
    v = torch.zeros(B, mmax, dtype=torch.float64)
    for i, (width, init) in enumerate(zip(runs["width"], runs["init"])):
        g = torch.Generator().manual_seed(seed * 1_000_003 + 41 + 7919 * int(width) + 104_729 * int(init))
        w[i, :width] = torch.randn(width, 2, generator=g, dtype=torch.float64) * init_scale
        v[i, :width] = torch.randn(width, generator=g, dtype=torch.float64) * init_scale
    mask = (torch.arange(mmax)[None, :] < torch.tensor(runs["width"].tolist())[:, None]).double().to(device)
    th0 = fam.pack([w.to(device), v.to(device)])
    tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=max(steps // 20, 1))
    check_finite(tr.theta, what="random-init ReLU training", hint="reduce the step size eta", runs=runs)
    wf, vf = fam.unpack(tr.theta)
    share = torch.sqrt(wf.pow(2).sum(-1) + vf.pow(2)) / tr.theta.norm(dim=1, keepdim=True)
    n_zero = ((share < 1e-3) & (mask > 0)).sum(1).cpu().numpy()
    cos_axis = wf[..., 1] / wf.norm(dim=-1).clamp_min(1e-300)  # cosine between w_j and (0, 1)
    n_axis = ((share >= 1e-3) & (mask > 0) & (cos_axis > 1 - 1e-6) & (vf > 0)).sum(1).cpu().numpy()
    qmin = H.margins(fam, tr.theta, Xt, yt).min(1).values.cpu().numpy()
    g = tr.gamma[-1]
    g_opt, g_bad = relu_optimum_gamma(delta), delta / 2
    cls = np.where(qmin <= 0, "not separated",
          np.where(np.abs(g - g_opt) <= 1e-3 * g_opt, "global optimum",
          np.where(np.abs(g - g_bad) <= 1e-3 * g_bad, "one direction (gamma = delta/2)", "other")))
    return tidy(runs, separated=qmin > 0, gamma=g, limit=cls, n_zero=n_zero, n_axis=n_axis)


def random_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Counts and fractions per width: separated among all; each limit class among the separated.

    ``bad, split``: bad limits with no zero neuron and every neuron along ``(0, 1)`` (the split
    configuration of the chapter)."""
    rows = []
    for wdt, g in df.groupby("width"):
        sep = g[g["separated"]]
        bad = sep[sep["limit"] == "one direction (gamma = delta/2)"]
        rows.append({
            "width": wdt, "inits": len(g), "separated": len(sep),
            "global": int((sep["limit"] == "global optimum").sum()),
            "bad (gamma=delta/2)": len(bad),
            "bad, with zero neuron": int((bad["n_zero"] > 0).sum()),
            "bad, split": int(((bad["n_zero"] == 0) & (bad["n_axis"] == wdt)).sum()),
            "other": int((sep["limit"] == "other").sum()),
            "P(bad | separated)": len(bad) / max(len(sep), 1),
        })
    return pd.DataFrame(rows).set_index("width")


# -- escape times -------------------------------------------------------------------------------------
def escape(*, eps: list[float], eta: float, max_steps: int, device, seed: int) -> dict[str, Any]:
    """Steps to escape the special initialisations' bad points when perturbed by ``e`` (constant step eta;
    the norm cap only prevents overflow): depth 2, ``v_2(0) = -1 + e`` on ``x = (1, 2)``; depth 3, ``u_{3,1}(0) = 1/2 + e`` on
    ``x = (1, 1)``. A run has escaped when gamma passes halfway from the bad value to the optimum.

    Returns ``table`` (one row per depth and e), ``curves`` (gamma vs step per depth, ``[T, len(eps)]``)
    and ``slope_pred_depth2``: the depth-2 trainer is an exact linear recursion, whose escape step grows
    by ``1/log((1 + 2 eta)/(1 + eta))`` per unit of ``log(1/e)``.
    """
    check_positive("eta", eta)
    check_positive("max_steps", max_steps, integer=True)
    e = np.asarray(eps, dtype=float)
    if (e <= 0).any() or (e >= 0.5).any():
        raise ValueError("invalid eps: every perturbation must lie in (0, 0.5)")
    y = _t([1.0], device)
    cases = {
        2: (np.array([[1.0, 2.0]]), np.stack([np.ones_like(e), np.ones_like(e), np.ones_like(e), -1 + e], 1), 0.5, 1.0),
        3: (np.array([[1.0, 1.0]]), np.concatenate([np.full((len(e), 4), 0.5), 0.5 + e[:, None], np.full((len(e), 1), 0.5)], 1),
            diag_face_gamma(np.zeros(1), 3)[0], 3 ** -1.5),
    }
    frames, curves = [], {}
    for L, (X, th0, g_bad, g_opt) in cases.items():
        fam = H.diagonal(2, L)
        # one data point: the softmax weight is 1 and the dynamics of the direction is exactly scale
        # equivariant, so a norm cap changes nothing but keeps the margins below overflow
        tr = M.train(fam, _t(th0, device), _t(X, device), y, steps=max_steps, eta=eta, eta_min=eta, anneal=0.0,
                     temp=1e200, record_every=1)
        thr = (g_bad + g_opt) / 2
        passed = tr.gamma >= thr
        k = np.where(passed.any(0), passed.argmax(0), -1)
        frames.append(pd.DataFrame({"depth": L, "eps": e, "log_inv_eps": np.log(1 / e),
                                    "steps": np.where(k >= 0, tr.steps[k], np.nan),
                                    "gamma_bad": g_bad, "gamma_opt": g_opt}))
        curves[L] = {"steps": tr.steps, "gamma": tr.gamma}
    return {"table": pd.concat(frames, ignore_index=True), "curves": curves,
            "slope_pred_depth2": float(1 / np.log((1 + 2 * eta) / (1 + eta)))}


def escape_fit(df: pd.DataFrame) -> pd.DataFrame:
    """Least-squares line ``steps = a + b log(1/e)`` per depth, with R^2 (``df``: the escape table)."""
    if df["steps"].isna().any():
        raise ValueError("some perturbed runs did not escape within max_steps: increase max_steps")
    rows = []
    for L, g in df.groupby("depth"):
        b, a = np.polyfit(g["log_inv_eps"], g["steps"], 1)
        pred = a + b * g["log_inv_eps"]
        r2 = 1 - ((g["steps"] - pred) ** 2).sum() / ((g["steps"] - g["steps"].mean()) ** 2).sum()
        rows.append({"depth": L, "slope": b, "intercept": a, "R2": r2})
    return pd.DataFrame(rows).set_index("depth")


# -- the smoothed margin ------------------------------------------------------------------------------
def smoothed(*, etas: list[float], inits: int, horizon: float, device, seed: int) -> dict[str, Any]:
    """The smoothed margin ``log(1/loss)/||theta||^L`` along the trainer without norm cap (so that it is
    the time-rescaled gradient descent of the exponential loss), for FC linear depth 2 and 3 (data of
    :func:`fc_linear`) and ReLU width 4 (data of :func:`relu_width2`), one batch per step size, each
    for ``horizon / eta`` steps (the same rescaled time ``s = k eta``).

    Measures, per step size, the largest fall of the smoothed margin below its running maximum after
    the loss drops below 1, relative to its final value (0 for a non-decreasing curve), and that fall
    divided by eta."""
    check_positive("horizon", horizon)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 51)
    Xf, yf = separable_data(12, 4, seed)
    Xr, yr = relu_data(DELTA)
    models = {"FC linear depth 2": (H.fc(4, 6, 2), Xf, yf), "FC linear depth 3": (H.fc(4, 6, 3), Xf, yf),
              "ReLU width 4": (H.relu(2, 4), Xr, yr)}
    rows, curves = [], {}
    for name, (fam, X, y) in models.items():
        th0 = torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device)
        for eta in etas:
            check_positive("eta", eta)
            steps = round(horizon / eta)
            tr = M.train(fam, th0, _t(X, device), _t(y, device), steps=steps, eta=eta, eta_min=eta, anneal=0.0,
                         temp=None, record_every=1)
            s = tr.smoothed.copy()
            s[tr.log_loss >= 0] = np.nan  # Lyu-Li's condition: loss < 1
            ok = np.isfinite(s[-1])
            run_max = np.fmax.accumulate(np.where(np.isfinite(s), s, -np.inf), axis=0)
            fall = np.where(np.isfinite(s), run_max - s, 0.0).max(0) / np.abs(s[-1])
            worst = float(fall[ok].max()) if ok.any() else np.nan
            rows.append({"model": name, "eta": eta, "runs": inits, "separated": int(ok.sum()),
                         "max relative fall": worst, "fall / eta": worst / eta})
            curves[(name, eta)] = {"steps": tr.steps, "smoothed": s[:, ok][:, :8], "gamma": tr.gamma[:, ok][:, :8]}
    return {"table": pd.DataFrame(rows), "curves": curves}


# -- the summary table --------------------------------------------------------------------------------
SUMMARY_ROWS: list[tuple[str, list[str]]] = [
    ("FC linear", ["ch02-fc-gamma", "ch02-fc-align", "ch02-fc-rank1", "ch02-fc-kkt"]),
    ("diagonal, depth 2", [
        "ch02-diag2-special-gamma", "ch02-diag2-kkt", "ch02-diag2-certificate", "ch02-diag2-curve-exponent",
        "ch02-diag2-generic-gamma", "ch02-local-exponent"]),
    ("diagonal, depth 2, non-zero weights", [
        "ch02-diag2-sparse-kkt", "ch02-diag2-sparse-certificate", "ch02-diag2-dense-global", "ch02-diag2-dense-weights"]),
    ("diagonal, depth 3", [
        "ch02-diag3-symmetric-gamma", "ch02-diag3-kkt", "ch02-diag3-asymmetric-gamma", "ch02-diag3-curve-exponent",
        "ch02-local-exponent"]),
    ("depth-2 ReLU, dead neuron", [
        "ch02-relu-dead-gamma", "ch02-relu-dead-kkt", "ch02-relu-certificate", "ch02-relu-curve-exponent",
        "ch02-local-exponent", "ch02-random-bad-fraction", "ch02-random-bad-zero-neuron"]),
    ("depth-2 ReLU, split neurons", [
        "ch02-local-none", "ch02-split-not-global", "ch02-relu-optimum", "ch02-relu-optimum-certificate",
        "ch02-random-split"]),
    ("per layer", ["ch02-layer-diag", "ch02-layer-fc", "ch02-layer-relu-local", "ch02-layer-relu-not-global"]),
    ("dynamics", ["ch02-escape-linear", "ch02-escape-slope", "ch02-smoothed-order"]),
]
"""Rows of the chapter's summary table: architecture (as in the chapter's table) and the ids of the
claims that test it."""


def summary_table(claims: list, rows: list[tuple[str, list[str]]] = SUMMARY_ROWS) -> pd.DataFrame:
    """The chapter's summary table built from its registered claims (``ctx.claims.claims``): per row,
    the claims that test it and how many of them passed in this execution (``check``: a check mark
    only when all did). A claim id that was not registered raises ``KeyError``."""
    by_id = {c.id: c for c in claims}
    out = []
    for arch, ids in rows:
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"summary row {arch!r} cites claims that were not registered: {missing}")
        n_pass = sum(by_id[i].passed for i in ids)
        out.append({"architecture": arch, "claims": ", ".join(i.removeprefix("ch02-") for i in ids),
                    "passed": f"{n_pass}/{len(ids)}", "check": "✓" if n_pass == len(ids) else "✗"})
    return pd.DataFrame(out).set_index("architecture")


# -- everything ---------------------------------------------------------------------------------------
def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through the context's cache."""
    P = params(ctx.profile)
    fns = {"fc": fc_linear, "diagonal": diagonal, "relu": relu_width2, "local": local,
           "random": random_relu, "escape": escape, "smoothed": smoothed}
    return {name: ctx.study(name, fn, **P[name]) for name, fn in fns.items()}


def bench_workload(runs: int, device) -> Workload:
    """One trainer step of ``runs`` width-8 ReLU nets on the two-point data (the random-init study).

    ``batched_step``: one tensor program over ``[runs, P]``; ``loop_step``: each run in turn with NumPy
    (faster than per-run torch for these tiny problems). Overhead-bound, so no flop count.
    """
    check_positive("runs", runs, integer=True)
    dev = torch.device(device)
    X, y = relu_data(DELTA)
    Xt, yt = _t(X, dev), _t(y, dev)
    fam = H.relu(2, 8)
    gen = torch.Generator(device=dev).manual_seed(0)
    state = {"theta": torch.randn(runs, fam.size, generator=gen, dtype=torch.float64, device=dev)}
    thetas = [state["theta"][r].cpu().numpy().copy() for r in range(runs)]
    eta = 0.01

    def batched_step() -> None:  # exactly the step of lib.margins.train (degree 2, no norm cap)
        th = state["theta"]
        q, pullback = fam.margins_and_pullback(th, Xt, yt)
        state["theta"] = M.rescaled_step(th, q, th.norm(dim=1), pullback, yt, eta, fam.degree, None)

    def loop_step() -> None:
        for r in range(runs):
            th = thetas[r]
            w, v = th[:16].reshape(8, 2), th[16:]
            pre = w @ X.T  # [m, n]
            q = y * (v @ np.maximum(pre, 0.0))
            s = np.exp(-(q - q.min()))
            s /= s.sum()
            c = s * y
            gv = np.maximum(pre, 0.0) @ c
            gw = (v[:, None] * (pre > 0) * c[None, :]) @ X
            thetas[r] = th + eta * np.concatenate([gw.ravel(), gv])

    return Workload(name="ch02 time-rescaled step, ReLU width 8", runs=runs, device=str(dev),
                    batched_step=batched_step, loop_step=loop_step)
