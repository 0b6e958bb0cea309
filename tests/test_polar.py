"""lib.polar: the exact (float64 SVD) polar factor and the Newton-Schulz iteration, the ratio
penalty's gradient against autograd through an exact SVD -- on well-conditioned matrices and on the
ill-conditioned ones training produces (a low-rank W* plus a bulk reaching 1e-9 ||W||_F, in float32),
where Newton-Schulz at the iteration counts the book used before (15, 25) fails -- and the penalty's
identities (scale invariance, Euler, range)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import polar


def _conditioned(batch, n, k, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    q1 = torch.linalg.qr(torch.randn(batch, n, n, generator=g, dtype=torch.float64))[0][:, :, :k]
    q2 = torch.linalg.qr(torch.randn(batch, k, k, generator=g, dtype=torch.float64))[0]
    s = lo + (hi - lo) * torch.rand(batch, k, generator=g, dtype=torch.float64)
    return q1 @ torch.diag_embed(s) @ q2.transpose(1, 2), s


@pytest.mark.parametrize("shape", [(7, 7), (9, 5), (5, 9)])
def test_newton_schulz_matches_svd_float64(shape):
    n, k = shape
    w, _ = _conditioned(16, max(n, k), min(n, k), 0.2, 3.0, 0)
    if n < k:
        w = w.transpose(1, 2)
    p = polar.newton_schulz(w, 40)
    assert p.shape == w.shape and p.dtype == torch.float64
    assert torch.allclose(p, polar.polar_svd(w), atol=1e-12)
    # orthogonality of the polar factor on the small side
    small = p.transpose(1, 2) @ p if n >= k else p @ p.transpose(1, 2)
    assert torch.allclose(small, torch.eye(min(n, k), dtype=torch.float64).expand_as(small), atol=1e-12)


def test_newton_schulz_rank_deficient_and_zero():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 8, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, 8, 2, generator=g, dtype=torch.float64)
    w = a @ b.transpose(1, 2)  # rank 2: the polar factor is U_2 V_2^T (minimal-norm subgradient)
    # rounding-level singular values (~1e-16) grow by 1.5 per iteration: 30 iterations keep them
    # below 1e-10 while the two true ones have converged
    assert torch.allclose(polar.newton_schulz(w, 30), polar.polar_svd(w), atol=1e-9)
    z = torch.zeros(2, 5, 5, dtype=torch.float64)
    assert torch.equal(polar.newton_schulz(z, 5), z)


def test_newton_schulz_singular_value_map():
    """After k iterations a singular value s (of W/||W||_F) becomes f_k(s), f(s) = s(3 - s^2)/2."""
    s = torch.tensor([0.9, 0.3, 1e-3], dtype=torch.float64)
    w = torch.diag(s) / torch.linalg.vector_norm(s)  # already Frobenius-normalised
    out = torch.diagonal(polar.newton_schulz(w, 3))
    x = s / torch.linalg.vector_norm(s)
    for _ in range(3):
        x = x * (3 - x**2) / 2
    assert torch.allclose(out, x, atol=1e-15)


def test_single_matrix_and_float32():
    w, _ = _conditioned(1, 6, 6, 0.5, 1.5, 2)
    p = polar.newton_schulz(w[0].float(), 30)
    assert p.shape == (6, 6) and p.dtype == torch.float32
    assert torch.allclose(p.double(), polar.polar_svd(w[0]), atol=1e-5)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="iters"):
        polar.newton_schulz(torch.eye(3), 0)
    with pytest.raises(ValueError, match="shape"):
        polar.newton_schulz(torch.zeros(3), 3)
    with pytest.raises(ValueError, match="method"):
        polar.polar(torch.eye(3), method="qr")


def test_ratio_grad_matches_autograd():
    w, _ = _conditioned(8, 10, 10, 0.3, 2.0, 3)
    wr = w.clone().requires_grad_(True)
    r = torch.linalg.svdvals(wr).sum(-1) / torch.linalg.matrix_norm(wr)
    (ga,) = torch.autograd.grad(r.sum(), wr)
    g, rv = polar.ratio_grad(w, method="newton-schulz", iters=40)
    assert torch.allclose(rv, r.detach(), atol=1e-12)
    assert torch.allclose(g, ga, atol=1e-12)
    g1, r1 = polar.ratio_grad(w[0], method="svd")
    assert torch.allclose(g1, ga[0], atol=1e-12) and abs(float(r1) - float(r[0].detach())) < 1e-12


def test_ratio_sigma_grad_is_derivative():
    s = torch.tensor([[5.0, 2.0, 1.0, 0.1]], dtype=torch.float64, requires_grad=True)
    r = s.sum(-1) / torch.linalg.vector_norm(s, dim=-1)
    (ga,) = torch.autograd.grad(r.sum(), s)
    assert torch.allclose(polar.ratio_sigma_grad(s.detach()), ga, atol=1e-14)
    # sign: values above ||s||_2^2/||s||_1 are pushed up (negative derivative)
    thresh = float((s.detach() ** 2).sum() / s.detach().sum())
    assert ((polar.ratio_sigma_grad(s.detach()) < 0) == (s.detach() > thresh)).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), k=st.integers(1, 8), c=st.floats(-1e3, 1e3).filter(lambda x: abs(x) > 1e-3),
       seed=st.integers(0, 10_000))
def test_ratio_scale_invariance_euler_and_range(n, k, c, seed):
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g, dtype=torch.float64) @ torch.randn(k, n, generator=g, dtype=torch.float64)
    r = float(polar.ratio_penalty(w))
    assert abs(float(polar.ratio_penalty(c * w)) - r) <= 1e-10 * r
    assert 1 - 1e-12 <= r <= math.sqrt(k) + 1e-12
    grad, _ = polar.ratio_grad(w, method="svd")
    # r is scale invariant, so its gradient is orthogonal to W (Euler's identity)
    assert abs(float((grad * w).sum())) <= 1e-10  # <grad r, W> is dimensionless (r is 0-homogeneous)


def test_ratio_range_ends():
    q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))[0]
    for k in range(1, 7):
        flat = q[:, :k] @ q[:, :k].T  # k equal singular values: r = sqrt(k)
        assert abs(float(polar.ratio_penalty(flat)) - math.sqrt(k)) < 1e-12
    assert np.isclose(float(polar.ratio_penalty(torch.outer(q[:, 0], q[:, 1]))), 1.0)


def _trained_like(batch, n, rank, seed, lo=-9.0, hi=-4.0):
    """float32 matrices like those training produces: a rank-``rank`` W* (||W*||_F = n) plus a bulk
    whose singular values are log-uniform in [10^lo, 10^hi] ||W*||_F."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=torch.float64)
    w = torch.randn(batch, n, rank, **kw) @ torch.randn(batch, rank, n, **kw)
    w = w * (n / torch.linalg.matrix_norm(w)).reshape(-1, 1, 1)
    q1 = torch.linalg.qr(torch.randn(batch, n, n, **kw))[0]
    q2 = torch.linalg.qr(torch.randn(batch, n, n, **kw))[0]
    expo = lo + (hi - lo) * torch.rand(batch, n, **kw)
    return (w + q1 @ torch.diag_embed(n * 10**expo) @ q2.transpose(1, 2)).float()


def _autograd_ratio_grad(w):
    x = w.double().clone().requires_grad_(True)
    r = torch.linalg.svdvals(x).sum(-1) / torch.linalg.matrix_norm(x)
    return torch.autograd.grad(r.sum(), x)[0]


def _rel(g, ref):
    return (g.double() - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))


# error budget of the exact route on float32 input: rounding the float64 gradient to float32
# (relative <= 2^-24 ~ 6e-8 per entry) plus the SVD's backward error times the polar factor's
# condition (~2 eps64 sigma_max / sigma_min <= 1e-7 for sigma_min >= 1e-8 sigma_max): below 1e-6
TOL_EXACT = 1e-6


@pytest.mark.parametrize("n,rank", [(30, 3), (50, 3)])
def test_exact_gradient_on_trained_like_matrices(n, rank):
    w = _trained_like(6, n, rank, seed=n)
    ref = _autograd_ratio_grad(w)
    g, r = polar.ratio_grad(w)  # default: exact polar factor (float64 SVD)
    assert g.dtype == torch.float32
    assert _rel(g, ref).max() <= TOL_EXACT
    assert torch.allclose(r.double(), torch.linalg.svdvals(w.double()).sum(-1) / torch.linalg.matrix_norm(w.double()),
                          rtol=1e-6)


@pytest.mark.parametrize("iters", [15, 25])
def test_old_newton_schulz_counts_fail_the_same_tolerance(iters):
    """The negative control: 15 and 25 iterations (the former fast and full settings) drop the push on
    the bulk's small singular values, far outside the tolerance the exact route meets."""
    w = _trained_like(6, 50, 3, seed=7)
    ref = _autograd_ratio_grad(w)
    for x in (w, w.double()):  # not a float32 effect: float64 iterations fail as well
        e = _rel(polar.ratio_grad(x, method="newton-schulz", iters=iters)[0], ref)
        assert e.min() > 1e3 * TOL_EXACT


def test_polar_svd_computes_in_float64():
    w = _trained_like(4, 40, 2, seed=3)
    p32 = polar.polar_svd(w)
    p64 = polar.polar_svd(w.double())
    assert p32.dtype == torch.float32
    assert ((p32.double() - p64).norm(dim=(1, 2)) / p64.norm(dim=(1, 2))).max() <= 1e-6
    p, s = polar.polar_svd(w[0], with_sigma=True)
    assert p.shape == (40, 40) and s.shape == (40,) and s.dtype == torch.float64


def test_newton_schulz_iters_needed():
    """With the reported number of iterations (float64) Newton-Schulz reaches the exact gradient; with
    ten fewer it does not. Matrices like training's need far more than 25."""
    w = _trained_like(4, 40, 2, seed=5).double()
    need = polar.newton_schulz_iters_needed(w)
    assert (need > 30).all()
    ref = _autograd_ratio_grad(w)
    k = int(need.max())
    assert _rel(polar.ratio_grad(w, method="newton-schulz", iters=k)[0], ref).max() <= 1e-5
    assert _rel(polar.ratio_grad(w, method="newton-schulz", iters=k - 10)[0], ref).max() > 1e-3
    # well-conditioned matrices need few
    wc, _ = _conditioned(4, 10, 10, 0.5, 2.0, 1)
    assert (polar.newton_schulz_iters_needed(wc) < 15).all()
