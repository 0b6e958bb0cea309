"""The polar factor of a batch of matrices from matrix products only, and the penalties built on it.

For ``W = U diag(sigma) V^T`` (thin SVD, ``sigma > 0``) the *polar factor* is ``P(W) = U V^T``. It is
the gradient of the nuclear norm wherever ``W`` has full rank (and a subgradient otherwise), and it
gives the gradient of Zhao's scale-invariant low-rank penalty (``zhao2022combining``)

.. math::

    r(W) = \\frac{\\|W\\|_*}{\\|W\\|_F}, \\qquad
    \\nabla r(W) = \\frac{1}{\\|W\\|_F}\\Big(P(W) - \\frac{\\|W\\|_*}{\\|W\\|_F^2} W\\Big),
    \\qquad \\|W\\|_* = \\langle P(W), W \\rangle .

Exact SVDs of batched ``100 x 100`` matrices are slow on a GPU, so :func:`newton_schulz` computes
``P(W)`` with the cubic Newton-Schulz iteration (``higham1986computing``)

.. math::

    X_0 = W / \\|W\\|_F, \\qquad X_{k+1} = \\tfrac12 X_k (3 I - X_k^T X_k),

which maps every singular value ``s`` of ``X_k`` to ``s (3 - s^2) / 2``: values in ``(0, sqrt 3)``
converge quadratically to 1 once close, and a tiny value grows by a factor 1.5 per iteration.
After ``k`` iterations the result is therefore ``U f_k(sigma / ||W||_F) V^T`` with ``f_k`` a smooth,
odd "soft sign": singular values below about ``1.5^{-k} ||W||_F`` are only partly mapped to 1. For
well-conditioned matrices it agrees with the SVD to rounding (``tests/test_polar.py`` checks this in
float64); in training it acts as a smoothed nuclear-norm subgradient on the negligible directions.

All functions take ``[B, n, k]`` batches (a single matrix is promoted) and keep device and dtype.
"""

from __future__ import annotations

import torch


def _batched(w: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if w.ndim == 2:
        return w.unsqueeze(0), True
    if w.ndim != 3:
        raise ValueError(f"expected a matrix [n, k] or a batch [B, n, k], got shape {tuple(w.shape)}")
    return w, False


def newton_schulz(w: torch.Tensor, iters: int = 25) -> torch.Tensor:
    """Polar factor ``U V^T`` of each matrix of ``w`` by ``iters`` cubic Newton-Schulz iterations.

    Only matrix products are used (two ``bmm`` per iteration, on the smaller side of the matrix).
    A zero matrix maps to zero.

    References: Higham, *Computing the polar decomposition* (``higham1986computing``).

    Args:
        w: ``[B, n, k]`` or ``[n, k]``.
        iters: number of iterations (>= 1). Singular values above ``~1.5^{-iters} ||W||_F`` converge.

    Returns:
        Tensor of the shape of ``w``.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"invalid iters={iters!r}: must be an integer >= 1")
    x, single = _batched(w)
    transpose = x.shape[1] < x.shape[2]  # iterate on the tall orientation: the Gram is the small side
    if transpose:
        x = x.transpose(1, 2)
    norm = torch.linalg.matrix_norm(x, keepdim=True)  # Frobenius >= spectral: all s <= 1
    x = x / torch.where(norm > 0, norm, torch.ones_like(norm))
    for _ in range(iters):
        gram = torch.bmm(x.transpose(1, 2), x)
        x = torch.baddbmm(x, x, gram, beta=1.5, alpha=-0.5)  # 1.5 X - 0.5 X X^T X
    if transpose:
        x = x.transpose(1, 2)
    return x[0] if single else x


def polar_svd(w: torch.Tensor) -> torch.Tensor:
    """Exact polar factor ``U V^T`` from ``torch.linalg.svd`` (reference for tests and small runs).

    Singular values below ``max(n, k) * eps * sigma_max`` are treated as zero (their directions
    are dropped), which makes the result the minimal-norm nuclear-norm subgradient.
    """
    x, single = _batched(w)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    tol = s[:, :1] * max(x.shape[1:]) * torch.finfo(x.dtype).eps
    keep = (s > tol).to(x.dtype)
    p = (u * keep.unsqueeze(1)) @ vh
    return p[0] if single else p


def polar(w: torch.Tensor, method: str = "newton-schulz", iters: int = 25) -> torch.Tensor:
    """Polar factor by ``method`` in ``{"newton-schulz", "svd"}``."""
    if method == "newton-schulz":
        return newton_schulz(w, iters)
    if method == "svd":
        return polar_svd(w)
    raise ValueError(f"invalid method={method!r}: allowed values are 'newton-schulz', 'svd'")


def ratio_penalty(w: torch.Tensor) -> torch.Tensor:
    """``r(W) = ||W||_* / ||W||_F`` per matrix (exact singular values), shape ``[B]``.

    Scale invariant (``r(cW) = r(W)`` for ``c != 0``) and ``1 <= r(W) <= sqrt(rank W)``.
    References: ``zhao2022combining``.
    """
    x, single = _batched(w)
    s = torch.linalg.svdvals(x)
    r = s.sum(-1) / torch.linalg.vector_norm(s, dim=-1)
    return r[0] if single else r


def ratio_grad(w: torch.Tensor, p: torch.Tensor | None = None, **polar_kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of ``r(W) = ||W||_*/||W||_F`` and the value ``r(W)``, from the polar factor.

    .. math:: \\nabla r(W) = \\big(P - (\\|W\\|_*/\\|W\\|_F^2) W\\big) / \\|W\\|_F,
              \\qquad \\|W\\|_* = \\langle P, W\\rangle,

    with ``P = polar(W)`` (computed unless given). Returns ``(grad [B, n, k], r [B])``.
    References: ``zhao2022combining`` (the penalty); the gradient is the book's derivation.
    """
    x, single = _batched(w)
    if p is None:
        p = polar(x, **polar_kw)
    elif single:
        p = p.unsqueeze(0)
    fro = torch.linalg.matrix_norm(x).clamp_min(torch.finfo(x.dtype).tiny ** 0.5)
    nuc = (p * x).sum(dim=(1, 2))
    r = nuc / fro
    coef = (nuc / fro**2).reshape(-1, 1, 1)
    g = (p - coef * x) / fro.reshape(-1, 1, 1)
    return (g[0], r[0]) if single else (g, r)


def ratio_sigma_grad(sigma: torch.Tensor) -> torch.Tensor:
    """``d r / d sigma_i = (1 - sigma_i ||sigma||_1 / ||sigma||_2^2) / ||sigma||_2`` (last axis).

    Positive (the penalty pushes ``sigma_i`` down) exactly when ``sigma_i < ||sigma||_2^2/||sigma||_1``.
    """
    l1 = sigma.sum(-1, keepdim=True)
    l2 = torch.linalg.vector_norm(sigma, dim=-1, keepdim=True)
    return (1 - sigma * l1 / l2**2) / l2
