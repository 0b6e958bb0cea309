"""Tests of lib.flows: the batched RK4 / GD integrators against closed forms."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import flows

F64 = torch.float64


def linear_grad(a: torch.Tensor):
    """Gradient of 1/2 a_b |w|^2 per run: the flow is w(t) = exp(-a t) w0."""
    return lambda w: a.reshape(-1, *([1] * (w.ndim - 1))) * w


def test_rk4_matches_exponential_and_is_fourth_order():
    a = torch.tensor([0.5, 1.0, 3.0], dtype=F64)
    w0 = torch.tensor([[1.0, -2.0], [0.5, 0.1], [2.0, 1.0]], dtype=F64)
    errs = []
    for h in (0.02, 0.01):
        f = flows.integrate(linear_grad(a), w0, h, round(2.0 / h))
        exact = torch.exp(-a * 2.0)[:, None] * w0
        errs.append((f.w - exact).abs().max().item())
    assert errs[1] < 1e-8
    assert 14 < errs[0] / errs[1] < 18  # 2^4 = 16


def test_per_run_steps_and_step_sizes_freeze_runs():
    a = torch.ones(3, dtype=F64)
    w0 = torch.ones(3, 1, dtype=F64)
    dt = torch.tensor([0.01, 0.02, 0.01], dtype=F64)
    steps = torch.tensor([100, 50, 30])
    f = flows.integrate(linear_grad(a), w0, dt, steps)
    assert torch.allclose(f.t, torch.tensor([1.0, 1.0, 0.3], dtype=F64))
    assert torch.allclose(f.w[:, 0], torch.exp(-f.t), atol=1e-9)


def test_gd_closed_form():
    a = torch.tensor([1.0, 2.0], dtype=F64)
    w0 = torch.tensor([[1.0], [3.0]], dtype=F64)
    lr = torch.tensor([0.1, 0.05], dtype=F64)
    f = flows.gd(linear_grad(a), w0, lr, 7)
    expected = (1 - lr * a) ** 7 * w0[:, 0]
    assert torch.allclose(f.w[:, 0], expected, rtol=1e-14, atol=0)


def test_records_and_pattern_tracking():
    # w(t) = exp(-t) (w0 - 1) + 1 with w0 = -1 crosses 0 at t = ln 2 (pattern sign(w) changes once)
    grad = lambda w: w - 1.0
    w0 = torch.tensor([[-1.0], [2.0]], dtype=F64)
    f = flows.integrate(
        grad,
        w0,
        1e-3,
        2000,
        record_every=100,
        observe={"w": lambda w: w.clone()},
        pattern=lambda w: w > 0,
    )
    assert f.records["w"].shape == (21, 2, 1)
    assert f.record_steps.tolist() == list(range(0, 2001, 100))
    assert f.n_changes.tolist() == [1, 0]
    assert abs(f.last_change[0].item() * 1e-3 - math.log(2)) < 1e-3
    assert f.w_last_change[0, 0] > 0 and f.w_last_change[0, 0] < 2e-3


def test_callback_sees_every_step():
    seen = []
    flows.integrate(
        lambda w: w, torch.ones(2, 1, dtype=F64), 0.1, 5, callback=lambda k, w: seen.append(k)
    )
    assert seen == [1, 2, 3, 4, 5]


def test_halving_error_estimates_rk4_error():
    a = torch.tensor([2.0], dtype=F64)
    w0 = torch.ones(1, 1, dtype=F64)
    f, err = flows.halving_error(linear_grad(a), w0, 0.05, 40)
    true = (f.w[0, 0] - math.exp(-4.0)).abs().item()
    assert 10 < err.item() / true < 20  # (2^4 - 1) = 15 times the error of the step-h run


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 5.0), st.floats(1e-3, 0.05))
def test_rk4_one_step_taylor(a, h):
    """One RK4 step of w' = -a w multiplies w by the 4th-order Taylor polynomial of exp(-a h)."""
    w = torch.tensor([[1.0]], dtype=F64)
    out = flows.rk4_step(lambda v: a * v, w, torch.tensor([[h]], dtype=F64))
    z = -a * h
    assert abs(out.item() - (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)) < 1e-14


def test_invalid_inputs():
    w0 = torch.ones(2, 1, dtype=F64)
    with pytest.raises(ValueError, match="step sizes"):
        flows.integrate(lambda w: w, w0, -0.1, 3)
    with pytest.raises(ValueError, match="per-run"):
        flows.integrate(lambda w: w, w0, torch.ones(3, dtype=F64), 3)
    with pytest.raises(ValueError, match="even"):
        flows.halving_error(lambda w: w, w0, 0.1, 3)
    with pytest.raises(ValueError, match="steps"):
        flows.integrate(lambda w: w, w0, 0.1, torch.tensor([1, -1]))


def test_batched_equals_separate_runs():
    rng = np.random.default_rng(0)
    A = torch.tensor(rng.normal(size=(4, 3, 3)), dtype=F64)
    A = A @ A.transpose(1, 2) / 3 + torch.eye(3, dtype=F64)

    def grad_of(M):
        return lambda w: torch.einsum("bij,bj->bi", M, w)

    w0 = torch.tensor(rng.normal(size=(4, 3)), dtype=F64)
    both = flows.integrate(grad_of(A), w0, 0.01, 50).w
    for i in range(4):
        one = flows.integrate(grad_of(A[i : i + 1]), w0[i : i + 1], 0.01, 50).w
        assert torch.allclose(one, both[i : i + 1], rtol=0, atol=1e-14)


def test_event_located_rk4_keeps_fourth_order_across_a_jump():
    """w' = 1 for w <= 0 and w' = 2 - w for w > 0 (the field jumps from 1 to 2 at w = 0): from
    w0 = -0.5 the switch is at t = 0.5 and w(1.5) = 2 - 2/e."""

    def piece(w, on):
        return torch.where(on, w - 2.0, torch.full_like(w, -1.0))

    events = lambda w: w
    plain = lambda w: piece(w, w > 0)
    w0 = torch.full((1, 1), -0.5, dtype=F64)
    exact = 2 - 2 / math.e
    errs_ev, errs_plain = [], []
    for h in (0.0375, 0.01875):  # the switch falls inside a step
        n = round(1.5 / h)
        errs_ev.append(
            abs(flows.integrate(plain, w0, h, n, events=events, piece_grad=piece).w.item() - exact)
        )
        errs_plain.append(abs(flows.integrate(plain, w0, h, n).w.item() - exact))
    assert errs_ev[1] < 1e-7
    assert errs_ev[0] / errs_ev[1] > 10  # ~16: fourth order
    assert errs_plain[1] > 100 * errs_ev[1]  # a plain step across the jump is low order
    with pytest.raises(ValueError, match="piece_grad"):
        flows.integrate(plain, w0, 0.1, 2, events=events)


def test_masked_neuron_grad_is_the_smooth_piece():
    from lib import neuron

    g = torch.Generator().manual_seed(0)
    P = neuron.planted_problems(6, generator=g)
    on = neuron.pattern(P["w0"], P["X"])
    assert torch.allclose(
        neuron.grad(P["w0"], P["X"], P["y"], 0.0, on), neuron.grad(P["w0"], P["X"], P["y"])
    )


def test_step_doubling_records_both_runs_at_the_same_times():
    a = torch.tensor([1.0, 3.0], dtype=F64)
    w0 = torch.ones(2, 1, dtype=F64)
    obs = {"w": lambda w: w[:, 0].clone()}
    fine, coarse, err = flows.step_doubling(
        linear_grad(a), w0, 0.05, 40, record_every=4, observe=obs
    )
    assert torch.equal(fine.record_steps, 2 * coarse.record_steps)
    t = fine.record_steps.to(F64).unsqueeze(1) * 0.05
    exact = torch.exp(-a * t)
    # the difference of the two records bounds the error of the fine one (RK4: about 15 times it)
    diff = (fine.records["w"] - coarse.records["w"]).abs()
    assert ((fine.records["w"] - exact).abs() <= diff + 1e-15).all()
    _, err2 = flows.halving_error(linear_grad(a), w0, 0.05, 40)
    assert torch.equal(err, err2)
    with pytest.raises(ValueError, match="record_every"):
        flows.step_doubling(linear_grad(a), w0, 0.05, 40, record_every=3, observe=obs)


def test_locate_switch_finds_the_crossing_inside_a_step():
    """w' = 1 for w <= 0 (w' = 2 - w beyond): from w = -0.5 the switch is 0.5 later; a step of 0.8
    crosses it at the fraction 0.625, a step of 0.4 does not cross (fraction 1)."""

    def piece(w, on):
        return torch.where(on, w - 2.0, torch.full_like(w, -1.0))

    w = torch.full((2, 1), -0.5, dtype=F64)
    theta = flows.locate_switch(piece, lambda v: v, w, torch.tensor([0.8, 0.4], dtype=F64))
    assert abs(theta[0].item() - 0.625) < 1e-12
    assert theta[1].item() == 1.0
