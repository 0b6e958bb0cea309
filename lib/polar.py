"""The polar factor of a batch of matrices, exactly (SVD) or by matrix products (Newton-Schulz),
and the penalties built on it.

For ``W = U diag(sigma) V^T`` (thin SVD, ``sigma > 0``) the *polar factor* is ``P(W) = U V^T``. It is
the gradient of the nuclear norm wherever ``W`` has full rank (and a subgradient otherwise), and it
gives the gradient of Zhao's scale-invariant low-rank penalty (``zhao2022combining``)

.. math::

    r(W) = \\frac{\\|W\\|_*}{\\|W\\|_F}, \\qquad
    \\nabla r(W) = \\frac{1}{\\|W\\|_F}\\Big(P(W) - \\frac{\\|W\\|_*}{\\|W\\|_F^2} W\\Big),
    \\qquad \\|W\\|_* = \\langle P(W), W \\rangle .

Two ways to compute ``P``:

- :func:`polar_svd` (the one training uses): a batched SVD **in float64** whatever the input's dtype,
  rounded back to it. Singular values at or below ``max(n, k) * eps64 * sigma_max`` (``eps64 = 2.2e-16``)
  are numerically zero and their directions are dropped (the minimal-norm subgradient); every other
  direction gets its full unit weight. Its error on a float32 matrix is the float32 rounding of the
  result (relative ``<= 6e-8``) plus the SVD's backward error amplified by the polar factor's
  condition, ``~2 eps64 sigma_max / sigma_min`` (``<= 1e-7`` for ``sigma_min >= 1e-8 sigma_max``).
- :func:`newton_schulz`: the cubic iteration (``higham1986computing``)

  .. math:: X_0 = W / \\|W\\|_F, \\qquad X_{k+1} = \\tfrac12 X_k (3 I - X_k^T X_k),

  which maps every singular value ``s`` of ``X_k`` to ``s (3 - s^2) / 2``: values in ``(0, sqrt 3)``
  converge quadratically to 1 once close, and a tiny value grows by a factor 1.5 per iteration. After
  ``k`` iterations the result is ``U f_k(sigma / ||W||_F) V^T`` with ``f_k`` a smooth, odd "soft
  sign": singular values below about ``1.5^{-k} ||W||_F`` are only partly mapped to 1, so the push the
  penalty puts on them is dropped. Reaching a relative error ``1e-6`` on a matrix whose smallest
  singular value is ``sigma_min`` takes about ``log_1.5(||W||_F / sigma_min) + 6`` iterations
  (:func:`newton_schulz_iters_needed`), in float64: the final matrices of chapter 4's ``fast`` depth-1
  runs (a low-rank signal plus a bulk reaching ``1e-7 ||W||_F``) need 37 to 43, a bulk reaching
  ``1e-9 ||W||_F`` about 60; in float32 the iteration cannot resolve singular values below about
  ``1e-7 ||W||_F`` at all. It uses matrix products only (fast on a GPU), and it is kept as a compared
  alternative.

An eigendecomposition of ``W^T W`` in float64 is cheaper than the SVD on a CPU (about 2x for
``n = 50``) but squares the condition number: a singular value ``sigma`` comes out with relative error
``~eps64 (sigma_max / sigma)^2``, i.e. ``1e-6`` already at ``sigma = 1.5e-5 sigma_max``, far above the
bulk training produces; it is therefore not offered.

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


def polar_svd(w: torch.Tensor, *, with_sigma: bool = False):
    """Exact polar factor ``U V^T`` of each matrix, from ``torch.linalg.svd`` computed in float64.

    Singular values ``<= max(n, k) * eps64 * sigma_max`` are numerically zero: their directions are
    dropped, which makes the result the minimal-norm nuclear-norm subgradient. The result has the
    input's dtype (rounded once, at the end).

    Args:
        w: ``[B, n, k]`` or ``[n, k]``.
        with_sigma: also return the float64 singular values ``[B, min(n, k)]`` (dropped ones set to 0).

    Returns:
        ``P`` (shape and dtype of ``w``), or ``(P, sigma)`` with ``with_sigma``.
    """
    x, single = _batched(w)
    u, s, vh, keep = svd_kept(x)
    p = torch.bmm(u * keep.to(u.dtype).unsqueeze(1), vh).to(w.dtype)
    if single:
        p, s = p[0], s[0]
    return (p, s) if with_sigma else p


def svd_kept(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of a batch ``[B, n, k]`` in float64, with the numerically zero singular values
    (``<= max(n, k) * eps64 * sigma_max``) set to 0: ``(U, sigma, V^T, keep)``, ``keep [B, min(n, k)]``
    marking the others. The polar factor is ``U diag(keep) V^T`` (:func:`polar_svd`)."""
    u, s, vh = torch.linalg.svd(x.to(torch.float64), full_matrices=False)
    keep = s > s[:, :1] * (max(x.shape[1:]) * torch.finfo(torch.float64).eps)
    return u, torch.where(keep, s, torch.zeros_like(s)), vh, keep


def newton_schulz_iters_needed(w: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Newton-Schulz iterations after which every singular value of ``W / ||W||_F`` (computed exactly)
    has been mapped to within ``rtol`` of 1, per matrix ``[B]`` (the iteration acts on each singular
    value separately, so this is the count that makes the polar factor accurate to ``~rtol``).
    Singular values dropped by :func:`polar_svd` are ignored."""
    x, single = _batched(w)
    s = torch.linalg.svdvals(x.to(torch.float64))
    keep = s > s[:, :1] * (max(x.shape[1:]) * torch.finfo(torch.float64).eps)
    y = torch.where(keep, s / torch.linalg.vector_norm(s, dim=-1, keepdim=True), torch.ones_like(s))
    k = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    for _ in range(400):
        done = ((1 - y).abs() <= rtol).all(-1)
        if done.all():
            break
        y = torch.where(done.unsqueeze(-1), y, y * (3 - y**2) / 2)
        k = k + (~done).to(k.dtype)
    return k[0] if single else k


def polar(w: torch.Tensor, method: str = "svd", iters: int = 25) -> torch.Tensor:
    """Polar factor by ``method`` in ``{"svd", "newton-schulz"}`` (``iters`` for the latter)."""
    if method == "newton-schulz":
        return newton_schulz(w, iters)
    if method == "svd":
        return polar_svd(w)
    raise ValueError(f"invalid method={method!r}: allowed values are 'svd', 'newton-schulz'")


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

    with ``P = polar(W, **polar_kw)`` (exact SVD by default) unless ``P`` is given. The arithmetic is
    done in float64 and the result rounded to ``w``'s dtype. Returns ``(grad [B, n, k], r [B])``.
    References: ``zhao2022combining`` (the penalty); the gradient is the book's derivation.
    """
    x, single = _batched(w)
    if p is None:
        p = polar(x, **polar_kw)
    elif single:
        p = p.unsqueeze(0)
    x64, p64 = x.to(torch.float64), p.to(torch.float64)
    fro = torch.linalg.matrix_norm(x64).clamp_min(torch.finfo(torch.float64).tiny ** 0.5)
    nuc = (p64 * x64).sum(dim=(1, 2))
    r = nuc / fro
    coef = (nuc / fro**2).reshape(-1, 1, 1)
    g = ((p64 - coef * x64) / fro.reshape(-1, 1, 1)).to(w.dtype)
    r = r.to(w.dtype)
    return (g[0], r[0]) if single else (g, r)


def ratio_sigma_grad(sigma: torch.Tensor) -> torch.Tensor:
    """``d r / d sigma_i = (1 - sigma_i ||sigma||_1 / ||sigma||_2^2) / ||sigma||_2`` (last axis).

    Positive (the penalty pushes ``sigma_i`` down) exactly when ``sigma_i < ||sigma||_2^2/||sigma||_1``.
    """
    l1 = sigma.sum(-1, keepdim=True)
    l2 = torch.linalg.vector_norm(sigma, dim=-1, keepdim=True)
    return (1 - sigma * l1 / l2**2) / l2
