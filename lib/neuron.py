"""A single ReLU (or leaky-ReLU) neuron with the square loss, and bias-free one-hidden-layer networks.

Model and loss (Vardi & Shamir, ``vardi2021implicit``), batched over ``B`` runs, each with its own
dataset ``X: [B, n, d]``, ``y: [B, n]`` (datasets of different sizes are zero-padded: a zero row with
label 0 is never active and changes nothing):

.. math::
    f_w(x) = \\sigma(w^\\top x),\\qquad L(w) = \\tfrac12 \\sum_i (\\sigma(w^\\top x_i) - y_i)^2,\\qquad
    \\nabla L(w) = \\sum_i \\sigma'(w^\\top x_i)\\,(\\sigma(w^\\top x_i) - y_i)\\, x_i,

with :math:`\\sigma(z) = \\max(z, \\alpha z)` (``slope`` :math:`\\alpha = 0` is the ReLU) and the
convention :math:`\\mathrm{relu}'(0) = 0` (PyTorch's). For labels :math:`y_i \\ge 0` the zero-loss set
of the ReLU neuron is the convex polyhedron

.. math::
    Z = \\{w : w^\\top x_i = y_i \\ (y_i > 0),\\ w^\\top x_i \\le 0 \\ (y_i = 0)\\},

and projections onto it are small quadratic programs (:func:`project_Z` solves them exactly and in a
batch by enumerating active sets; :func:`project_Z_qp` calls CLARABEL through cvxpy, one problem at a
time, as a cross-check).

The module also holds the book's constructions (the :math:`\\gamma`-families), the closed-form limits
(:func:`leaky_limit`, :func:`project_affine`), the exact solution of the 2-D family
(:func:`phase2d_exact`), and bias-free one-hidden-layer networks
:math:`f(x) = \\sum_j v_j\\,\\mathrm{relu}(w_j^\\top x)` for the balancedness law of Du, Hu & Lee
(``du2018algorithmic``).
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# the neuron
# ---------------------------------------------------------------------------------------------


def act(z: torch.Tensor, slope: float | torch.Tensor = 0.0) -> torch.Tensor:
    """:math:`\\sigma(z) = z` for :math:`z > 0`, :math:`\\alpha z` otherwise (``slope`` scalar or
    broadcastable)."""
    return torch.where(z > 0, z, slope * z)


def act_prime(z: torch.Tensor, slope: float | torch.Tensor = 0.0) -> torch.Tensor:
    """:math:`\\sigma'(z)`: 1 for :math:`z > 0`, :math:`\\alpha` for :math:`z \\le 0` (so relu'(0) = 0)."""
    one = torch.ones_like(z)
    return torch.where(z > 0, one, slope * one)


def act_inverse(y: torch.Tensor, slope: float | torch.Tensor) -> torch.Tensor:
    """:math:`\\sigma^{-1}(y)` of the leaky ReLU (``slope`` > 0)."""
    return torch.where(y > 0, y, y / slope)


def _slope(slope: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
    """A per-run ``[B]`` slope as ``[B, 1]`` (against ``[B, n]`` pre-activations)."""
    if isinstance(slope, torch.Tensor) and slope.ndim == 1:
        return slope.to(like).reshape(-1, 1)
    return slope


def preact(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """:math:`(w_b^\\top x_{b,i})_{b,i}`: ``w: [B, d]``, ``X: [B, n, d]`` (or shared ``[n, d]``) -> ``[B, n]``."""
    if X.ndim == 2:
        return w @ X.T
    return torch.bmm(X, w.unsqueeze(-1)).squeeze(-1)


def pattern(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Activation pattern :math:`1[w^\\top x_i > 0]`, ``[B, n]`` booleans."""
    return preact(w, X) > 0


def loss(
    w: torch.Tensor, X: torch.Tensor, y: torch.Tensor, slope: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Per-run square loss :math:`\\tfrac12 \\sum_i (\\sigma(w^\\top x_i) - y_i)^2`, ``[B]``."""
    z = preact(w, X)
    return 0.5 * (act(z, _slope(slope, z)) - y).pow(2).sum(-1)


def grad(
    w: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    slope: float | torch.Tensor = 0.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-run gradient :math:`\\sum_i \\sigma'(w^\\top x_i)(\\sigma(w^\\top x_i) - y_i)\\,x_i`, ``[B, d]``.

    With ``mask`` (``[B, n]`` booleans) the activation pattern is frozen: example :math:`i` is treated as
    active (:math:`\\sigma(z) = z`) where ``mask`` is true and inactive (:math:`\\sigma(z) = \\alpha z`)
    elsewhere, whatever the sign of :math:`z`: the smooth extension of one piece of the field, for
    :func:`lib.flows.rk4_event_step`.
    """
    z = preact(w, X)
    if mask is not None:
        s = _slope(slope, z)
        r = torch.where(mask, z - y, s * (s * z - y))
    elif isinstance(slope, (int, float)) and slope == 0:
        r = (z > 0) * (
            torch.relu(z) - y
        )  # the ReLU fast path (this is the inner loop of every flow)
    else:
        s = _slope(slope, z)
        r = act_prime(z, s) * (act(z, s) - y)
    if X.ndim == 2:
        return r @ X
    return torch.bmm(r.unsqueeze(1), X).squeeze(1)


def grad_fn(X: torch.Tensor, y: torch.Tensor, slope: float | torch.Tensor = 0.0):
    """The batched gradient ``w -> grad(w, X, y, slope)`` for :mod:`lib.flows`.

    For the ReLU (``slope == 0``) with per-run data ``X: [B, n, d]`` -- the inner loop of every flow of
    chapter 1 -- the closure keeps ``X^T`` contiguous and works with column vectors, so that both
    products are plain batched matrix-vector products and the residual is formed in place: the same
    arithmetic as :func:`grad`, bit for bit, in fewer and cheaper kernel calls (about 1.25x faster
    for 256 small problems on a CPU; see ``python -m lib bench ch01``).
    """
    if isinstance(slope, (int, float)) and slope == 0 and X.ndim == 3:
        XT = X.transpose(1, 2).contiguous()  # [B, d, n]
        yc = y.unsqueeze(-1)  # [B, n, 1]

        def relu_grad(w: torch.Tensor) -> torch.Tensor:
            z = torch.bmm(X, w.unsqueeze(-1))  # [B, n, 1]
            return torch.bmm(XT, (torch.relu(z) - yc).mul_(z > 0)).squeeze(-1)

        return relu_grad
    return lambda w: grad(w, X, y, slope)


def flow_kw(X: torch.Tensor, y: torch.Tensor, slope: float | torch.Tensor = 0.0) -> dict:
    """Keyword arguments of :func:`lib.flows.integrate` for event-located integration of the neuron:
    switching functions :math:`w^\\top x_i` and the gradient with a frozen pattern."""
    return {"events": lambda w: preact(w, X), "piece_grad": lambda w, m: grad(w, X, y, slope, m)}


# ---------------------------------------------------------------------------------------------
# zero-loss sets and projections
# ---------------------------------------------------------------------------------------------


def project_affine(
    w: torch.Tensor, X: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Euclidean projection of ``w`` onto :math:`\\{u : x_i^\\top u = b_i \\text{ for } i \\in \\text{mask}\\}`.

    .. math:: P(w) = w - X_M^\\top (X_M X_M^\\top)^{+} (X_M w - b_M),

    with the pseudo-inverse so that zero or repeated rows are harmless. ``w: [B, d]``, ``X: [B, n, d]``,
    ``b, mask: [B, n]`` (``mask`` default: all rows).
    """
    m = torch.ones_like(b) if mask is None else mask.to(b.dtype)
    Xm = X * m.unsqueeze(-1)
    r = (preact(w, Xm) - b) * m
    G = Xm @ Xm.transpose(-1, -2)
    lam = torch.einsum("bij,bj->bi", torch.linalg.pinv(G, hermitian=True), r)
    return w - torch.einsum("bn,bnd->bd", lam, Xm)


def leaky_limit(
    w0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, slope: float | torch.Tensor
) -> torch.Tensor:
    """The gradient-flow limit of a leaky-ReLU neuron in closed form (full-row-rank ``X``):

    .. math:: w^* = w_0 + X^\\top (X X^\\top)^{-1} (\\sigma^{-1}(y) - X w_0),

    the point of the zero-loss set :math:`\\{X w = \\sigma^{-1}(y)\\}` closest to :math:`w_0`
    (``vardi2021implicit``, strictly monotone activations).
    """
    return project_affine(w0, X, act_inverse(y, _slope(slope, y)))


def in_Z_violation(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How far ``w`` is from satisfying the constraints of :math:`Z`: the largest of
    :math:`|w^\\top x_i - y_i|` (:math:`y_i > 0`) and :math:`(w^\\top x_i)_+` (:math:`y_i = 0`), ``[B]``."""
    z = preact(w, X)
    v = torch.where(y > 0, (z - y).abs(), z.clamp(min=0))
    return v.amax(-1)


def project_Z(
    w0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, tol: float = 1e-9
) -> torch.Tensor:
    """Exact Euclidean projection of ``w0`` onto the zero-loss polyhedron :math:`Z`, batched.

    The projection is the affine projection onto :math:`\\{x_i^\\top w = y_i,\\ i \\in E \\cup S\\}` for
    the right set :math:`S` of tight inequality constraints (:math:`E`: the positive labels). With
    at most a handful of zero-label rows, all :math:`2^{|I|}` candidate sets are tried at once; the
    answer is the closest candidate that satisfies every constraint (the projection is feasible and
    is a candidate, and every feasible candidate is a point of :math:`Z`). Rows that are entirely
    zero (padding) are ignored. Returns ``NaN`` rows where :math:`Z` is empty.

    ``w0: [B, d]``, ``X: [B, n, d]``, ``y: [B, n]``; ``n`` up to ~10 (the enumeration is ``2^n``).
    """
    B, n, d = X.shape
    if n > 12:
        raise ValueError(
            f"project_Z enumerates 2^n active sets; n={n} is too large (use project_Z_qp)"
        )
    valid = X.abs().sum(-1) > 0
    eq = valid & (y > 0)
    ineq = valid & (y <= 0)
    subsets = torch.tensor(list(product([False, True], repeat=n)), device=X.device)  # [S, n]
    S = subsets.shape[0]
    mask = eq.unsqueeze(1) | (subsets.unsqueeze(0) & ineq.unsqueeze(1))  # [B, S, n]
    Xs = X.unsqueeze(1).expand(B, S, n, d).reshape(B * S, n, d)
    ys = y.unsqueeze(1).expand(B, S, n).reshape(B * S, n)
    ws = w0.unsqueeze(1).expand(B, S, d).reshape(B * S, d)
    cand = project_affine(ws, Xs, ys, mask.reshape(B * S, n)).reshape(B, S, d)
    scale = 1.0 + y.abs().amax(-1, keepdim=True)  # [B, 1]
    viol = in_Z_violation(cand.reshape(B * S, d), Xs, ys).reshape(B, S)
    feasible = viol <= tol * scale
    dist = (cand - w0.unsqueeze(1)).norm(dim=-1)
    dist = torch.where(feasible, dist, torch.full_like(dist, math.inf))
    best = dist.argmin(dim=1)
    out = cand[torch.arange(B, device=X.device), best]
    empty = ~feasible.any(dim=1)
    return torch.where(empty.unsqueeze(-1), torch.full_like(out, math.nan), out)


def project_Z_qp(
    w0: np.ndarray, X: np.ndarray, y: np.ndarray, *, solver: str = "CLARABEL"
) -> np.ndarray:
    """Projection onto :math:`Z` of one problem as a QP (cvxpy), a cross-check of :func:`project_Z`:

    .. math:: \\min_w \\tfrac12\\lVert w - w_0\\rVert^2 \\ \\text{s.t.}\\ x_i^\\top w = y_i\\ (y_i>0),\\
       x_i^\\top w \\le 0\\ (y_i = 0).

    ``w0: [d]``, ``X: [n, d]``, ``y: [n]`` (NumPy). Raises ``ValueError`` if the QP is not solved.
    """
    import cvxpy as cp

    X, y, w0 = np.asarray(X, float), np.asarray(y, float), np.asarray(w0, float)
    valid = np.abs(X).sum(1) > 0
    w = cp.Variable(X.shape[1])
    cons = []
    pos, zero = valid & (y > 0), valid & (y <= 0)
    if pos.any():
        cons.append(X[pos] @ w == y[pos])
    if zero.any():
        cons.append(X[zero] @ w <= 0)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w - w0)), cons)
    prob.solve(solver=solver)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise ValueError(f"projection QP not solved: status {prob.status}")
    return np.asarray(w.value)


# ---------------------------------------------------------------------------------------------
# the book's constructions
# ---------------------------------------------------------------------------------------------


def gamma_family_3d(gammas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Datasets :math:`D_\\gamma`: :math:`x_1 = (3,-1,0), y_1 = 16`; :math:`x_2 = (4,2,0), y_2 = 18`;
    :math:`x_3 = \\gamma(0,1,1), y_3 = 0`. For every :math:`\\gamma > 0` the zero-loss set is
    :math:`Z = \\{(5,-1,z) : z \\le 1\\}`; for :math:`\\gamma = 0` it is the whole line :math:`z \\in \\mathbb R`.

    ``gammas: [B]`` -> ``X: [B, 3, 3]``, ``y: [B, 3]``.
    """
    g = gammas.reshape(-1, 1)
    base = torch.tensor(
        [[3.0, -1.0, 0.0], [4.0, 2.0, 0.0], [0.0, 1.0, 1.0]],
        dtype=gammas.dtype,
        device=gammas.device,
    )
    scale = torch.cat([torch.ones_like(g), torch.ones_like(g), g], dim=1)  # [B, 3]
    X = base.unsqueeze(0) * scale.unsqueeze(-1)
    y = (
        torch.tensor([16.0, 18.0, 0.0], dtype=gammas.dtype, device=gammas.device)
        .expand(len(gammas), 3)
        .clone()
    )
    return X, y


def project_Z_3d(w: torch.Tensor) -> torch.Tensor:
    """Closed-form projection onto :math:`Z = \\{(5,-1,z): z\\le 1\\}`: :math:`(5, -1, \\min(w_3, 1))`."""
    out = torch.empty_like(w)
    out[:, 0], out[:, 1] = 5.0, -1.0
    out[:, 2] = w[:, 2].clamp(max=1.0)
    return out


def gamma_family_2d(gammas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Datasets :math:`x_1 = (1,0), y_1 = 1`; :math:`x_2 = \\gamma(-1,1), y_2 = 0`; zero-loss set
    :math:`\\{(1,z): z \\le 1\\}` for every :math:`\\gamma > 0`. ``gammas: [B]`` -> ``X: [B,2,2]``, ``y: [B,2]``."""
    g = gammas.reshape(-1, 1)
    X = torch.stack(
        [torch.cat([torch.ones_like(g), torch.zeros_like(g)], 1), torch.cat([-g, g], 1)], dim=1
    )
    y = (
        torch.tensor([1.0, 0.0], dtype=gammas.dtype, device=gammas.device)
        .expand(len(gammas), 2)
        .clone()
    )
    return X, y


def phase2d_exact(gammas: torch.Tensor, w0: tuple[float, float] = (0.1, 1.0), *, iters: int = 200):
    """Exact gradient-flow limit of the 2-D family from :math:`w_0` with :math:`0 < w_{0,1} < w_{0,2}`.

    While both examples are active the flow is linear, :math:`\\dot w = -A w + b` with
    :math:`A = \\begin{psmallmatrix}1+\\gamma^2 & -\\gamma^2\\\\ -\\gamma^2 & \\gamma^2\\end{psmallmatrix}`,
    :math:`b = (1, 0)`, whose equilibrium is :math:`(1, 1)`; so
    :math:`w(t) = (1,1) + e^{-At}(w_0 - (1,1))`. The second example switches off at the first root
    :math:`\\tau` of :math:`u(t) = w_2(t) - w_1(t)` (found by bisection on the exact solution); after
    that :math:`w_2` is frozen and :math:`w_1 \\to 1`. So :math:`w^* = (1, w_2(\\tau))`.

    Returns ``(w2_star, tau)``, each ``[B]`` (``tau = inf`` and ``w2_star = 1`` if :math:`u` never
    vanishes, as for :math:`\\gamma = 0`).
    """
    a, c = w0
    if not 0 < a < c:
        raise ValueError(f"phase2d_exact needs 0 < w0[0] < w0[1] (both examples active), got {w0}")
    g2 = gammas.to(torch.float64) ** 2
    B = len(g2)
    A = torch.stack([torch.stack([1 + g2, -g2], -1), torch.stack([-g2, g2], -1)], -2)  # [B,2,2]
    lam, Q = torch.linalg.eigh(A)
    d0 = torch.tensor([a - 1.0, c - 1.0], dtype=torch.float64, device=gammas.device)
    coef = torch.einsum("bij,j->bi", Q.transpose(-1, -2), d0)  # components in the eigenbasis

    def state(t: torch.Tensor) -> torch.Tensor:
        e = torch.exp(-lam * t.unsqueeze(-1)) * coef  # [B, 2]
        return 1.0 + torch.einsum("bij,bj->bi", Q, e)

    def u(t: torch.Tensor) -> torch.Tensor:
        s = state(t)
        return s[:, 1] - s[:, 0]

    hi = torch.full((B,), 1.0, dtype=torch.float64, device=gammas.device) / (1 + g2)
    for _ in range(80):  # grow the bracket until u(hi) < 0 (or give up: no root)
        grow = u(hi) >= 0
        if not grow.any():
            break
        hi = torch.where(grow, hi * 2, hi)
    has_root = u(hi) < 0
    lo = torch.zeros_like(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = u(mid) >= 0
        lo, hi = torch.where(pos, mid, lo), torch.where(pos, hi, mid)
    tau = torch.where(has_root, hi, torch.full_like(hi, math.inf))
    w2 = torch.where(has_root, state(hi)[:, 1], torch.ones_like(hi))
    return w2, tau


def linear_flow(
    w0: torch.Tensor, X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
):
    """The exact linear least-squares flow of the examples in ``mask`` (all by default), as a function
    of time: with the pattern frozen, :math:`\\dot w = -X_M^\\top (X_M w - y_M)`, so

    .. math:: w(t) = w_\\infty + e^{-X_M^\\top X_M t}\\,(w_0 - w_\\infty),\\qquad
       w_\\infty = P_{\\{x_i^\\top w = y_i,\\ i \\in M\\}}(w_0)

    (:func:`project_affine`; :math:`w_0 - w_\\infty` lies in the row space, where the matrix exponential
    is computed from one symmetric eigendecomposition per run). ``w0: [B, d]``, ``X: [B, n, d]``,
    ``y, mask: [B, n]``. Returns ``state(t)``: ``t: [B]`` or ``[B, K]`` -> ``[B, d]`` or ``[B, K, d]``.
    """
    m = torch.ones_like(y, dtype=torch.bool) if mask is None else mask
    Xm = X * m.unsqueeze(-1).to(X.dtype)
    w_inf = project_affine(w0, X, y, m)
    lam, Q = torch.linalg.eigh(Xm.transpose(-1, -2) @ Xm)  # [B, d], [B, d, d]
    coef = torch.einsum("bji,bj->bi", Q, w0 - w_inf)  # components of w0 - w_inf in the eigenbasis

    def state(t: torch.Tensor) -> torch.Tensor:
        tt = t if t.ndim == 2 else t.unsqueeze(-1)  # [B, K]
        e = torch.exp(-lam.unsqueeze(1) * tt.unsqueeze(-1)) * coef.unsqueeze(1)  # [B, K, d]
        out = w_inf.unsqueeze(1) + torch.einsum("bij,bkj->bki", Q, e)
        return out if t.ndim == 2 else out.squeeze(1)

    return state


def single_switch_limit(
    w0: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    t_max: float,
    grid: int = 2000,
    iters: int = 100,
) -> dict[str, torch.Tensor]:
    """Exact gradient-flow limit of a ReLU neuron along which the activation pattern changes once:
    every example is active at :math:`w_0`, example ``k`` switches off at the first root :math:`\\tau`
    of :math:`x_k^\\top w(t)` and the others stay active (the book's construction, chapter 1).

    Between switches the flow is linear (:func:`linear_flow`): all examples active on
    :math:`[0, \\tau]`, the others after :math:`\\tau`, so :math:`w^*` is the projection of
    :math:`w(\\tau)` onto :math:`\\{x_i^\\top w = y_i,\\ i \\ne k\\}` (the trajectory-dependent
    projection of ``vardi2021implicit``'s single neuron). :math:`\\tau` is bracketed on a uniform grid of
    ``grid`` times in :math:`[0, t_{max}]` and refined by ``iters`` bisections. ``valid`` says the
    premises hold on the grids: all examples active at :math:`w_0`, a root in :math:`[0, t_{max}]`, the
    other examples active before :math:`\\tau`, and after it, example ``k`` inactive and the others
    active up to :math:`\\tau + t_{max}` (where the post-switch flow has converged).

    ``w0: [B, d]``, ``X: [B, n, d]``, ``y: [B, n]``. Returns ``w_star [B, d]``, ``tau [B]``,
    ``w_tau [B, d]``, ``valid [B]`` (``NaN`` values where no root is found).
    """
    B, n, d = X.shape
    on = torch.ones(B, n, dtype=torch.bool, device=X.device)
    before = linear_flow(w0, X, y, on)
    t = torch.linspace(0.0, t_max, grid, dtype=X.dtype, device=X.device).expand(B, grid)
    z = torch.einsum("bkd,bnd->bkn", before(t), X)  # [B, K, n] pre-activations on the grid
    off = z[..., k] <= 0
    has_root = off.any(1) & (z[:, 0] > 0).all(1)
    first = torch.where(
        has_root,
        off.to(torch.int64).argmax(1),
        torch.full_like(off[:, 0], grid - 1, dtype=torch.int64),
    )
    lo = t.gather(1, (first - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    hi = t.gather(1, first.unsqueeze(1)).squeeze(1)
    xk = X[:, k]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = (before(mid) * xk).sum(-1) > 0
        lo, hi = torch.where(pos, mid, lo), torch.where(pos, hi, mid)
    tau = hi
    w_tau = before(tau)
    others = on.clone()
    others[:, k] = False
    idx = torch.arange(grid, device=X.device).expand(B, grid)
    stay_on = ((z[..., others[0]] > 0).all(-1) | (idx >= first.unsqueeze(1))).all(1)
    after = linear_flow(w_tau, X, y, others)
    za = torch.einsum("bkd,bnd->bkn", after(t[:, 1:]), X)
    ok_after = (za[..., k] <= 0).all(1) & (za[..., others[0]] > 0).all(-1).all(1)
    w_star = project_affine(w_tau, X, y, others)
    valid = has_root & stay_on & ok_after
    nan = torch.full_like(tau, float("nan"))
    return {
        "w_star": torch.where(has_root.unsqueeze(-1), w_star, nan.unsqueeze(-1).expand(B, d)),
        "tau": torch.where(has_root, tau, nan),
        "w_tau": w_tau,
        "valid": valid,
    }


def phase2d_bound(gamma: torch.Tensor | float, w0: tuple[float, float] = (0.1, 1.0)):
    """Upper bound on :math:`w_2^*(\\gamma) - (w_{0,1}+w_{0,2})/2` from the book's derivation, for
    :math:`w_0 = (0.1, 1)`: :math:`0.45\\,\\ln(1 + 4.5\\gamma^2)/(2\\gamma^2)`, valid when
    :math:`\\ln(1 + 4.5\\gamma^2)/(2\\gamma^2) \\le 1/9` (:math:`\\gamma \\ge 5`)."""
    if tuple(w0) != (0.1, 1.0):
        raise ValueError("phase2d_bound is derived for w0 = (0.1, 1)")
    g2 = torch.as_tensor(gamma, dtype=torch.float64) ** 2
    t_star = torch.log1p(4.5 * g2) / (2 * g2)
    return 0.45 * t_star, t_star <= 1.0 / 9.0


# ---------------------------------------------------------------------------------------------
# random planted problems
# ---------------------------------------------------------------------------------------------


def planted_problems(
    batch: int,
    *,
    d_min: int = 3,
    d_max: int = 7,
    kappa_max: float = math.inf,
    init_scale: float = 1.0,
    slope: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    oversample: int = 8,
):
    """Random problems with a planted neuron, zero-padded to ``n_max = d_max - 1`` rows and ``d_max`` columns.

    For each problem: :math:`d \\sim U\\{d_{min},\\dots,d_{max}\\}`, :math:`n \\sim U\\{1,\\dots,d-1\\}`,
    :math:`x_i \\sim N(0, I_d)`, a teacher :math:`v \\sim N(0, I_d)`, labels :math:`y = \\sigma(Xv)`
    (``slope`` 0: ReLU), and an initialisation :math:`w_0 \\sim N(0, s^2 I_d / d)`. Problems whose Gram
    matrix :math:`XX^\\top` has condition number above ``kappa_max`` are rejected (the flow's time to
    converge grows like :math:`\\kappa`); ``oversample * batch`` candidates are drawn.

    Returns a dict with ``X [B,n,d]``, ``y [B,n]``, ``v [B,d]``, ``w0 [B,d]``, ``d [B]``, ``n [B]``,
    ``kappa [B]``, ``lam_max [B]`` (largest eigenvalue of the Gram) and ``accepted`` (the fraction).
    """
    n_max = d_max - 1
    M = oversample * batch
    kw = {"dtype": dtype, "device": device}
    d = torch.randint(d_min, d_max + 1, (M,), generator=generator, device=device)
    u = torch.rand(M, generator=generator, **kw)
    n = 1 + (u * (d - 1).to(dtype)).floor().long()
    cols = torch.arange(d_max, device=device)
    rows = torch.arange(n_max, device=device)
    cmask = (cols[None, :] < d[:, None]).to(dtype)
    rmask = (rows[None, :] < n[:, None]).to(dtype)
    X = (
        torch.randn(M, n_max, d_max, generator=generator, **kw)
        * rmask[:, :, None]
        * cmask[:, None, :]
    )
    v = torch.randn(M, d_max, generator=generator, **kw) * cmask
    w0 = (
        torch.randn(M, d_max, generator=generator, **kw)
        * cmask
        * init_scale
        / d.to(dtype).sqrt()[:, None]
    )
    y = act(preact(v, X), slope) * rmask
    ev = torch.linalg.eigvalsh(X @ X.transpose(1, 2))  # ascending; padded rows give zeros
    lam_max = ev[:, -1]
    lam_min = ev.gather(1, (n_max - n).unsqueeze(1)).squeeze(1)  # the n-th largest
    kappa = lam_max / lam_min
    ok = torch.nonzero(kappa <= kappa_max).squeeze(1)
    if len(ok) < batch:
        raise ValueError(
            f"only {len(ok)} of {M} random problems have kappa <= kappa_max={kappa_max}; raise kappa_max"
        )
    keep = ok[:batch]
    return {
        "X": X[keep],
        "y": y[keep],
        "v": v[keep],
        "w0": w0[keep],
        "d": d[keep],
        "n": n[keep],
        "kappa": kappa[keep],
        "lam_max": lam_max[keep],
        "accepted": len(ok) / M,
    }


# ---------------------------------------------------------------------------------------------
# bias-free one-hidden-layer networks
# ---------------------------------------------------------------------------------------------


def net_split(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameters packed per neuron as ``theta: [B, m, d+1]`` = (:math:`w_j`, :math:`v_j`) -> ``(w [B,m,d], v [B,m])``."""
    return theta[..., :-1], theta[..., -1]


def net_forward(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """:math:`f(x_i) = \\sum_j v_j\\,\\mathrm{relu}(w_j^\\top x_i)`, ``[B, n]`` (``X: [B, n, d]``)."""
    w, v = net_split(theta)
    return torch.bmm(torch.relu(torch.bmm(X, w.transpose(1, 2))), v.unsqueeze(-1)).squeeze(-1)


def net_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-run square loss :math:`\\tfrac12 \\sum_i (f(x_i) - y_i)^2`, ``[B]``."""
    return 0.5 * (net_forward(theta, X) - y).pow(2).sum(-1)


def net_grad(
    theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Analytic gradient, packed like ``theta``:

    .. math:: g_{v_j} = \\sum_i r_i\\,\\mathrm{relu}(w_j^\\top x_i),\\qquad
       g_{w_j} = v_j \\sum_i r_i\\,1[w_j^\\top x_i > 0]\\, x_i,\\qquad r_i = f(x_i) - y_i.

    With ``mask`` (``[B, n, m]`` or ``[B, n*m]`` booleans) the pattern :math:`1[w_j^\\top x_i > 0]` is
    frozen (and :math:`\\mathrm{relu}` replaced by the identity where it is on): one smooth piece.
    """
    w, v = net_split(theta)
    pre = torch.bmm(X, w.transpose(1, 2))  # [B, n, m]
    on = pre > 0 if mask is None else mask.reshape(pre.shape)
    act_ = pre * on  # relu(pre), or its linear extension on a frozen pattern
    r = torch.bmm(act_, v.unsqueeze(-1)) - y.unsqueeze(-1)  # [B, n, 1]
    gv = torch.bmm(act_.transpose(1, 2), r)  # [B, m, 1]
    gw = torch.bmm((on * r).transpose(1, 2), X) * v.unsqueeze(-1)  # [B, m, d]
    return torch.cat([gw, gv], dim=-1)


def net_grad_fn(X: torch.Tensor, y: torch.Tensor):
    """The batched gradient ``theta -> net_grad(theta, X, y)`` for :mod:`lib.flows`."""
    return lambda theta: net_grad(theta, X, y)


def net_preact(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Pre-activations :math:`w_j^\\top x_i` flattened to ``[B, n*m]`` (the switching functions)."""
    return torch.bmm(X, theta[..., :-1].transpose(1, 2)).reshape(len(theta), -1)


def net_flow_kw(X: torch.Tensor, y: torch.Tensor) -> dict:
    """Keyword arguments of :func:`lib.flows.integrate` for event-located integration of the network."""
    return {"events": lambda t: net_preact(t, X), "piece_grad": lambda t, m: net_grad(t, X, y, m)}


def balance(theta: torch.Tensor) -> torch.Tensor:
    """The conserved quantities :math:`\\lVert w_j\\rVert^2 - v_j^2` of gradient flow, ``[B, m]``
    (Du, Hu & Lee, ``du2018algorithmic``)."""
    w, v = net_split(theta)
    return w.pow(2).sum(-1) - v.pow(2)


def gd_balance_change(
    theta: torch.Tensor, g: torch.Tensor, lr: torch.Tensor | float
) -> torch.Tensor:
    """The exact change of :func:`balance` in one GD step with gradient ``g`` (packed like ``theta``):
    :math:`\\eta^2(\\lVert g_{w_j}\\rVert^2 - g_{v_j}^2)`, ``[B, m]``."""
    lr = torch.as_tensor(lr, dtype=theta.dtype, device=theta.device)
    lr = lr.reshape(-1, 1) if lr.ndim == 1 else lr
    return lr**2 * balance(g)
