"""Tests of lib.neuron: losses and gradients, zero-loss sets and projections, the book's
constructions, and the balancedness identities of bias-free networks."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import neuron
from lib.checks import ParameterError
from lib.studies import ch01

F64 = torch.float64


def problems(seed: int, batch: int = 16, slope: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    return neuron.planted_problems(batch, kappa_max=50.0, slope=slope, generator=g)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.5]))
def test_grad_matches_autograd(seed, slope):
    P = problems(seed, 4, slope)
    w = P["w0"].clone().requires_grad_(True)
    neuron.loss(w, P["X"], P["y"], slope).sum().backward()
    assert torch.allclose(w.grad, neuron.grad(P["w0"], P["X"], P["y"], slope), atol=1e-12)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_grad_fn_fast_path_equals_grad(slope):
    """The ReLU fast path of grad_fn (column layout, in-place residual) is the same arithmetic as grad."""
    P = problems(3, 64, slope)
    w = P["w0"] + 0.3 * torch.randn(P["w0"].shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    fast = neuron.grad_fn(P["X"], P["y"], slope)(w)
    assert torch.allclose(fast, neuron.grad(w, P["X"], P["y"], slope), rtol=0, atol=1e-14)


def test_gamma_family_zero_loss_set():
    g = torch.tensor([0.0, 0.5, 3.0], dtype=F64)
    X, y = neuron.gamma_family_3d(g)
    inside = torch.tensor([[5.0, -1.0, 1.0]], dtype=F64).expand(3, 3)
    below = torch.tensor([[5.0, -1.0, -7.0]], dtype=F64).expand(3, 3)
    above = torch.tensor([[5.0, -1.0, 1.5]], dtype=F64).expand(3, 3)
    assert neuron.loss(inside, X, y).abs().max() < 1e-25
    assert neuron.loss(below, X, y).abs().max() < 1e-25
    la = neuron.loss(above, X, y)
    assert la[0] == 0 and (la[1:] > 0).all()  # gamma = 0: the whole line has zero loss


@settings(max_examples=20, deadline=None)
@given(st.floats(-10, 10), st.floats(-10, 10), st.floats(-10, 10), st.floats(0.1, 20))
def test_projection_3d_closed_form(a, b, c, gamma):
    X, y = neuron.gamma_family_3d(torch.tensor([gamma], dtype=F64))
    w0 = torch.tensor([[a, b, c]], dtype=F64)
    assert torch.allclose(neuron.project_Z(w0, X, y), neuron.project_Z_3d(w0), atol=1e-9)


def test_projection_matches_clarabel_and_is_in_Z():
    P = problems(1, 12)
    proj = neuron.project_Z(P["w0"], P["X"], P["y"])
    assert neuron.in_Z_violation(proj, P["X"], P["y"]).max() < 1e-9
    for i in range(12):
        qp = neuron.project_Z_qp(P["w0"][i].numpy(), P["X"][i].numpy(), P["y"][i].numpy())
        assert np.abs(qp - proj[i].numpy()).max() < 1e-6
    # no point of Z is closer: the planted teacher is in Z
    assert ((proj - P["w0"]).norm(dim=1) <= (P["v"] - P["w0"]).norm(dim=1) + 1e-12).all()


def test_projection_of_a_point_of_Z_is_itself_and_empty_Z_is_nan():
    P = problems(2, 5)
    assert torch.allclose(neuron.project_Z(P["v"], P["X"], P["y"]), P["v"], atol=1e-10)
    X = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=F64)
    y = torch.tensor([[1.0, 0.0]], dtype=F64)  # x.w = 1 and x.w <= 0: infeasible
    assert torch.isnan(neuron.project_Z(torch.zeros(1, 2, dtype=F64), X, y)).all()


def test_leaky_limit_is_projection_onto_affine_zero_loss_set():
    P = problems(3, 8, slope=0.3)
    w = neuron.leaky_limit(P["w0"], P["X"], P["y"], 0.3)
    assert neuron.loss(w, P["X"], P["y"], 0.3).max() < 1e-24
    # w - w0 lies in the row space of X: orthogonal to the kernel
    for i in range(8):
        n, d = int(P["n"][i]), int(P["d"][i])
        Xi = P["X"][i, :n, :d].numpy()
        ker = np.linalg.svd(Xi)[2][n:]
        assert np.abs(ker @ (w[i, :d] - P["w0"][i, :d]).numpy()).max() < 1e-10


def test_project_affine_with_mask():
    X = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=F64)
    b = torch.tensor([[2.0, 3.0]], dtype=F64)
    w = torch.tensor([[5.0, 5.0, 5.0]], dtype=F64)
    out = neuron.project_affine(w, X, b, torch.tensor([[True, False]]))
    assert torch.allclose(out, torch.tensor([[2.0, 5.0, 5.0]], dtype=F64))


def test_phase2d_exact_against_fine_rk4_and_bound():
    from lib import flows

    g = torch.tensor([0.7, 2.0, 6.0], dtype=F64)
    w2, _tau = neuron.phase2d_exact(g)
    X, y = neuron.gamma_family_2d(g)
    w0 = torch.tensor([[0.1, 1.0]], dtype=F64).expand(3, 2).clone()
    f = flows.integrate(neuron.grad_fn(X, y), w0, 2.5e-4, 16000)  # T = 4 > tau
    assert torch.allclose(f.w[:, 1], w2, atol=1e-6)
    big = torch.tensor([5.0, 50.0, 1e4], dtype=F64)
    w2b, _ = neuron.phase2d_exact(big)
    bound, valid = neuron.phase2d_bound(big)
    assert valid.all() and (w2b - 0.55 >= 0).all() and (w2b - 0.55 <= bound).all()
    w2z, tauz = neuron.phase2d_exact(torch.tensor([0.0], dtype=F64))
    assert w2z.item() == 1.0 and math.isinf(tauz.item())  # gamma = 0: x2 = 0 never switches
    with pytest.raises(ValueError):
        neuron.phase2d_exact(g, (0.5, 0.2))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_net_grad_matches_autograd_and_balance_rate_vanishes(seed):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(3, 6, 2, generator=gen, dtype=F64)
    y = torch.randn(3, 6, generator=gen, dtype=F64)
    th = torch.randn(3, 4, 3, generator=gen, dtype=F64)
    t = th.clone().requires_grad_(True)
    neuron.net_loss(t, X, y).sum().backward()
    g = neuron.net_grad(th, X, y)
    assert torch.allclose(t.grad, g, atol=1e-12)
    w, v = neuron.net_split(th)
    gw, gv = neuron.net_split(g)
    assert ((w * gw).sum(-1) - v * gv).abs().max() < 1e-12  # <w_j, g_wj> = v_j g_vj


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-3, 0.5))
def test_gd_balance_identity_one_step(seed, lr):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(2, 5, 3, generator=gen, dtype=F64)
    y = torch.randn(2, 5, generator=gen, dtype=F64)
    th = torch.randn(2, 3, 4, generator=gen, dtype=F64)
    g = neuron.net_grad(th, X, y)
    change = neuron.balance(th - lr * g) - neuron.balance(th)
    assert torch.allclose(change, neuron.gd_balance_change(th, g, lr), atol=1e-12)


def test_planted_problems_shapes_and_filter():
    P = problems(4, 32)
    assert P["X"].shape == (32, 6, 7) and P["y"].shape == (32, 6)
    assert (P["kappa"] <= 50).all() and (P["n"] < P["d"]).all()
    assert neuron.in_Z_violation(P["v"], P["X"], P["y"]).max() < 1e-12  # the teacher is in Z
    with pytest.raises(ValueError, match="kappa_max"):
        neuron.planted_problems(
            8, kappa_max=1.0 + 1e-12, generator=torch.Generator().manual_seed(0), oversample=1
        )


def test_study_parameter_validation():
    with pytest.raises(ParameterError, match="T"):
        ch01.gamma3d(gammas=[1.0], T=-1.0, dt_max=1e-3, dt_gamma=0.2, init=1e-6, record_every=10)
    with pytest.raises(ParameterError, match="gammas"):
        ch01.gamma3d(gammas=[-1.0], T=1.0, dt_max=1e-3, dt_gamma=0.2, init=1e-6, record_every=10)
    with pytest.raises(ParameterError, match="slopes"):
        ch01.leaky(batch=4, slopes=[1.5], kappa_max=20.0, c=1.0, horizon=1.0, record_every=10)
    with pytest.raises(ParameterError, match="profile"):
        ch01.params("medium")


def test_bench_workload_steps_run():
    wl = ch01.bench_workload(3, "cpu")
    wl.batched_step()
    wl.loop_step()
    assert wl.runs == 3


def test_linear_flow_solves_the_frozen_least_squares_flow():
    from lib import flows

    P = problems(5, 6)
    X, y, w0 = P["X"], P["y"], P["w0"]
    on = P["y"] > -1  # every row (padding rows are zero and change nothing)
    state = neuron.linear_flow(w0, X, y, on)
    assert torch.allclose(state(torch.zeros(6, dtype=F64)), w0, atol=1e-12)
    f = flows.integrate(lambda w: neuron.grad(w, X, y, 0.0, on), w0, 1e-3, 500)  # t = 0.5
    assert torch.allclose(state(torch.full((6,), 0.5, dtype=F64)), f.w, atol=1e-9)
    far = state(torch.full((6,), 1e4, dtype=F64))
    assert torch.allclose(far, neuron.project_affine(w0, X, y), atol=1e-9)
    two = state(torch.tensor([[0.0, 0.5]], dtype=F64).expand(6, 2))  # [B, K] times -> [B, K, d]
    assert two.shape == (6, 2, 7) and torch.allclose(two[:, 1], f.w, atol=1e-9)


def test_single_switch_limit_matches_event_located_rk4_on_the_gamma_family():
    from lib import flows

    g = torch.tensor([0.5, 2.0, 20.0], dtype=F64)
    X, y = neuron.gamma_family_3d(g)
    w0 = torch.full((3, 3), 1e-6, dtype=F64)
    ex = neuron.single_switch_limit(w0, X, y, 2, t_max=6.0)
    assert ex["valid"].all()
    dt = torch.clamp(0.2 / g**2, max=1e-3)
    f = flows.integrate(neuron.grad_fn(X, y), w0, dt, torch.ceil(6.0 / dt).long(), **neuron.flow_kw(X, y))
    assert torch.allclose(f.w, ex["w_star"], atol=1e-8)
    assert torch.allclose(ex["w_star"][:, :2], torch.tensor([5.0, -1.0], dtype=F64).expand(3, 2), atol=1e-12)
    # at tau, w2 + w3 = 0 (x3 switches off there)
    assert (ex["w_tau"][:, 1] + ex["w_tau"][:, 2]).abs().max() < 1e-12


def test_single_switch_limit_flags_broken_premises():
    X, y = neuron.gamma_family_3d(torch.tensor([1.0, 1.0], dtype=F64))
    w0 = torch.tensor([[1e-6, 1e-6, -1.0], [-1e-6, -1e-6, 1.0]], dtype=F64)  # x3, resp. x1 and x2, inactive
    ex = neuron.single_switch_limit(w0, X, y, 2, t_max=4.0)
    assert not ex["valid"].any()
