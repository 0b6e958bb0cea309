"""Homogeneous model families: analytic Jacobians vs autograd, homogeneity, predictors, validation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import homogeneous as H

torch.set_num_threads(1)  # tiny tensor programs: one thread is far faster on a shared machine

FAMILIES = [H.fc(3, 4, 2), H.fc(3, 4, 3), H.fc(2, 3, 4), H.diagonal(3, 2), H.diagonal(3, 3), H.relu(3, 5)]


def _data(seed, n=6, d=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.sign(torch.randn(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f"{f.kind}-L{f.depth}")
def test_jacobian_matches_autograd(fam):
    X, _ = _data(0, d=fam.d)
    th = torch.randn(3, fam.size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    J = fam.jacobian(th, X)
    for b in range(3):
        Ja = torch.autograd.functional.jacobian(lambda t: fam.predict(t[None], X)[0], th[b])
        torch.testing.assert_close(J[b], Ja, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f"{f.kind}-L{f.depth}")
def test_euler_identity(fam):
    """For an L-homogeneous network, <theta, grad Phi> = L Phi (Euler)."""
    X, _ = _data(2, d=fam.d)
    th = torch.randn(4, fam.size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lhs = torch.einsum("bnp,bp->bn", fam.jacobian(th, X), th)
    torch.testing.assert_close(lhs, fam.degree * fam.predict(th, X), rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(c=st.floats(0.1, 10.0), seed=st.integers(0, 1000), which=st.integers(0, len(FAMILIES) - 1))
def test_homogeneity_and_scale_invariance(c, seed, which):
    fam = FAMILIES[which]
    X, y = _data(seed, d=fam.d)
    th = torch.randn(2, fam.size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(fam.predict(c * th, X), c**fam.degree * fam.predict(th, X), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(H.normalized_margin(fam, c * th, X, y), H.normalized_margin(fam, th, X, y), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fam", [f for f in FAMILIES if f.kind != "relu"], ids=lambda f: f"{f.kind}-L{f.depth}")
def test_linear_predictor(fam):
    X, _ = _data(4, d=fam.d)
    th = torch.randn(3, fam.size, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(fam.predictor(th) @ X.T, fam.predict(th, X), rtol=1e-10, atol=1e-12)


def test_pack_unpack_roundtrip_and_sizes():
    fam = H.fc(3, 4, 3)
    assert fam.size == 4 * 3 + 4 * 4 + 4
    th = torch.arange(2 * fam.size, dtype=torch.float64).reshape(2, -1)
    torch.testing.assert_close(fam.pack(fam.unpack(th)), th)
    assert H.relu(2, 5).size == 15 and H.diagonal(2, 3).size == 6


def test_relu_dead_neuron_has_zero_gradient():
    """A neuron with negative pre-activations on every point gets exactly zero gradient."""
    fam = H.relu(2, 2)
    X = torch.tensor([[1.0, 0.2], [-1.0, 0.2]], dtype=torch.float64)
    th = torch.tensor([[0.1, 1.0, 0.1, -1.0, 0.5, 0.7]], dtype=torch.float64)
    J = fam.jacobian(th, X)[0]
    assert torch.all(J[:, [2, 3, 5]] == 0)


def test_diagonal_margin_of_known_point():
    fam = H.diagonal(2, 2)
    X, y = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    th = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(H.normalized_margin(fam, th, X, y), torch.tensor([0.5, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("kw", [{"kind": "conv", "d": 2, "depth": 2}, {"kind": "fc", "d": 0, "depth": 2, "width": 2},
                                {"kind": "fc", "d": 2, "depth": 1, "width": 2}, {"kind": "relu", "d": 2, "depth": 3, "width": 2},
                                {"kind": "fc", "d": 2, "depth": 2, "width": 0}])
def test_invalid_families(kw):
    with pytest.raises(ValueError):
        H.Family(**kw)


def test_wrong_theta_shape():
    with pytest.raises(ValueError, match="expected"):
        H.relu(2, 2).predict(torch.zeros(1, 5, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))


def test_relu_has_no_linear_predictor():
    with pytest.raises(ValueError):
        H.relu(2, 2).predictor(torch.zeros(1, 6, dtype=torch.float64))
    assert np.isclose(H.fc(2, 2, 3).degree, 3)


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f"{f.kind}-L{f.depth}")
def test_weighted_gradient_is_jacobian_transpose_product(fam):
    X, _ = _data(6, d=fam.d)
    g = torch.Generator().manual_seed(7)
    th = torch.randn(3, fam.size, generator=g, dtype=torch.float64)
    c = torch.randn(3, X.shape[0], generator=g, dtype=torch.float64)
    ref = torch.einsum("bn,bnp->bp", c, fam.jacobian(th, X))
    torch.testing.assert_close(fam.weighted_gradient(th, X, c), ref, rtol=1e-11, atol=1e-12)
    # per-run inputs [B, n, d] give the same Jacobian as shared inputs
    torch.testing.assert_close(fam.jacobian(th, X.expand(3, -1, -1)), fam.jacobian(th, X))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f"{f.kind}-L{f.depth}")
def test_margins_and_pullback_match_the_separate_computations(fam):
    X, y = _data(2, d=fam.d)
    th = torch.randn(5, fam.size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c = torch.rand(5, X.shape[0], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q, pullback = fam.margins_and_pullback(th, X, y)
    torch.testing.assert_close(q, H.margins(fam, th, X, y), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(pullback(c), fam.weighted_gradient(th, X, c), rtol=1e-13, atol=1e-13)
