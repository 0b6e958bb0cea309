"""lib.matrix_completion: problems and masks, the deep factorization and its chain rule, the penalty
gradients, the batched training loop (batch = independent runs), measurements, divergence
reporting and the nuclear-norm baseline; plus input validation of the chapter's studies."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import engine, polar
from lib import matrix_completion as mc
from lib.checks import ParameterError
from lib.studies import ch04


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_problems_scale_rank_and_dof():
    pb = mc.make_problems(12, 2, 3, generator=_gen())
    assert pb.target.shape == (3, 12, 12)
    assert torch.allclose(torch.linalg.matrix_norm(pb.target), torch.full((3,), 12.0, dtype=torch.float64))
    assert (torch.linalg.matrix_rank(pb.target) == 2).all()
    assert pb.dof() == 2 * (2 * 12 - 2) == mc.degrees_of_freedom(12, 2)
    # each order is a permutation of the n^2 entries
    assert torch.equal(pb.order.sort(dim=1).values, torch.arange(144).expand(3, 144))


def test_masks_count_and_nesting():
    pb = mc.make_problems(10, 2, 2, generator=_gen(1))
    small = mc.observation_mask(pb.order, torch.tensor([20, 30]), 10)
    big = mc.observation_mask(pb.order, torch.tensor([50, 60]), 10)
    assert small.sum((1, 2)).tolist() == [20.0, 30.0]
    assert ((small <= big).all()) and big.sum((1, 2)).tolist() == [50.0, 60.0]
    with pytest.raises(ValueError, match="m="):
        mc.observation_mask(pb.order, 0, 10)
    with pytest.raises(ValueError, match="m="):
        mc.observation_mask(pb.order, 101, 10)


def test_effective_rank_closed_forms():
    s = torch.tensor([[3.0, 3.0, 3.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(mc.effective_rank(s), torch.tensor([3.0, 1.0], dtype=torch.float64))
    npv = mc.effective_rank(np.array([2.0, 1.0, 1.0]))
    p = np.array([0.5, 0.25, 0.25])
    assert np.isclose(npv, np.exp(-(p * np.log(p)).sum()))


def test_errors_split_observed_and_unobserved():
    target = torch.zeros(1, 2, 2, dtype=torch.float64)
    w = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    assert float(mc.train_error(w, target, mask)) == pytest.approx((1 + 16) / 2)
    assert float(mc.test_error(w, target, mask)) == pytest.approx((4 + 9) / 2)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_layer_grads_match_autograd(depth):
    g = _gen(depth)
    layers = [torch.randn(3, 5, 5, generator=g, dtype=torch.float64) for _ in range(depth)]
    c = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    ls = [x.clone().requires_grad_(True) for x in layers]
    loss = (mc.end_to_end(ls) * c).sum()
    auto = torch.autograd.grad(loss, ls)
    right = mc.partial_products(layers)
    manual = mc.layer_grads(layers, right, c)  # dL/dW = c for a linear loss
    for a, m in zip(auto, manual):
        assert torch.allclose(a, m, atol=1e-12)
    expect = layers[0]
    for w in layers[1:]:
        expect = w @ expect
    assert torch.allclose(right[-1], expect)


def test_init_scale_independent_of_depth():
    norms = []
    for depth in (1, 2, 3):
        w = mc.end_to_end(mc.init_layers(64, 40, depth, scale=1e-3, generator=_gen(), dtype=torch.float64))
        norms.append(float(torch.linalg.matrix_norm(w).mean()))
    # ||W|| ~ scale * sqrt(n) for every depth (within sampling spread)
    for v in norms:
        assert 0.5 * 1e-3 * 40**0.5 < v < 2.0 * 1e-3 * 40**0.5


def test_penalty_grad_mixed_kinds():
    w, _ = torch.linalg.qr(torch.randn(2, 6, 6, generator=_gen(3), dtype=torch.float64))
    w = w @ torch.diag_embed(torch.tensor([[3.0, 2, 1, 1, 0.5, 0.5]] * 2, dtype=torch.float64))
    g = mc.penalty_grad(w, torch.tensor([True, False]), iters=40)
    assert torch.allclose(g[0], polar.ratio_grad(w[0], method="svd")[0], atol=1e-10)
    assert torch.allclose(g[1], polar.polar_svd(w[1]), atol=1e-10)


def _small_problem(b=4, n=8, rank=1, m=40, seed=0):
    pb = mc.make_problems(n, rank, b, generator=_gen(seed))
    return pb, mc.observation_mask(pb.order, m, n)


def test_batched_training_equals_separate_runs():
    """Runs of one batch do not interact: training a batch equals training each run alone."""
    pb, mask = _small_problem(b=3)
    kw = dict(depth=2, method="adam", lam=1e-2, steps=30, log_every=10, polar_iters=10, dtype=torch.float64)
    lr = torch.tensor([1e-2, 2e-2, 5e-3], dtype=torch.float64)
    init = mc.init_layers(3, 8, 2, generator=_gen(5), dtype=torch.float64)
    batch = mc.train(pb.target, mask, lr=lr, init=init, **kw)
    assert np.allclose(batch.history.steps, [0, 10, 20, 30])
    for i in range(3):
        # re-create the same initial layers for run i alone
        one = mc.train(pb.target[i:i + 1], mask[i:i + 1], lr=float(lr[i]), generator=None,
                       init=[x[i:i + 1] for x in init], **kw)
        assert np.allclose(one.final[0], batch.final[i], atol=1e-10)


def test_adam_without_penalty_leaves_unobserved_entries():
    pb, mask = _small_problem()
    res = mc.train(pb.target, mask, depth=1, method="adam", lr=1e-2, lam=0.0, steps=50, log_every=25,
                   generator=_gen(1))
    assert (res.history.move_unobs == 0).all()
    assert (res.history.move_obs[-1] > 0).all()


def test_depth1_adam_ratio_fills_unobserved_entries():
    """Depth 1 + ratio + Adam lowers the test error tenfold where Adam alone cannot move it."""
    pb, mask = _small_problem(b=3, n=10, rank=1, m=60, seed=2)
    kw = dict(depth=1, method="adam", lr=3e-2, steps=2000, log_every=1000, polar_iters=20)
    res = mc.train(pb.target, mask, lam=1e-3, generator=_gen(3), **kw)
    assert (res.history.test[-1] < 0.1 * res.history.test[0]).all()
    plain = mc.train(pb.target, mask, lam=0.0, generator=_gen(3), **kw)
    assert np.allclose(plain.history.test[-1], plain.history.test[0])


def test_divergence_reports_runaway_singular_value():
    pb, mask = _small_problem(b=2)
    with pytest.raises(engine.DivergenceError, match="sigma_1") as err:
        mc.train(pb.target, mask, depth=3, method="gd", lr=torch.tensor([1e-3, 1e6]), lam=0.0, steps=200,
                 log_every=10, init_scale=1.0)
    assert "lr" in str(err.value)
    res = mc.train(pb.target, mask, depth=3, method="gd", lr=torch.tensor([1e-3, 1e6]), lam=0.0, steps=200,
                   log_every=10, init_scale=1.0, on_divergence="flag")
    assert res.diverged.tolist() == [False, True] and res.runaway[1]


def test_train_validation():
    pb, mask = _small_problem(b=1)
    with pytest.raises(ValueError, match="method"):
        mc.train(pb.target, mask, depth=1, method="sgd", lr=1e-2, steps=1)
    with pytest.raises(ValueError, match="penalty"):
        mc.train(pb.target, mask, depth=1, method="adam", lr=1e-2, penalty="l1", steps=1)
    with pytest.raises(ValueError, match="depth"):
        mc.init_layers(1, 3, 0)


def test_nuclear_norm_min_recovers_low_rank():
    pb, mask = _small_problem(b=1, n=8, rank=1, m=50, seed=4)  # >= 3x the 15 degrees of freedom
    z = mc.nuclear_norm_min(pb.target[0].numpy(), mask[0].numpy())
    assert np.abs(z - pb.target[0].numpy()).max() < 1e-3
    # observed entries are matched
    mk = mask[0].numpy().astype(bool)
    assert np.abs(z[mk] - pb.target[0].numpy()[mk]).max() < 1e-4


@settings(max_examples=15, deadline=None)
@given(c=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_penalty_grad_scale_homogeneous(c, seed):
    """grad r(cW) = grad r(W) / c (r is 0-homogeneous)."""
    w = torch.randn(6, 6, generator=_gen(seed), dtype=torch.float64)
    g1, _ = polar.ratio_grad(w, method="svd")
    g2, _ = polar.ratio_grad(c * w, method="svd")
    assert torch.allclose(g2 * c, g1, atol=1e-9)


def test_study_parameter_validation():
    with pytest.raises(ParameterError, match="profile"):
        ch04.params("medium")
    p = ch04.params("fast")["grid"]
    with pytest.raises(ParameterError, match="lam"):
        ch04.grid(**{**p, "lam": -1.0}, device=torch.device("cpu"), seed=0)
    with pytest.raises(ParameterError, match="m="):
        ch04.grid(**{**p, "m": [3000]}, device=torch.device("cpu"), seed=0)
    with pytest.raises(ParameterError, match="rank"):
        ch04.baseline(n=5, rank=5, seeds=1, m=[10], device=torch.device("cpu"), seed=0)


def test_identities_study_small():
    r = ch04.identities(n=6, count=8, device=torch.device("cpu"), seed=0)
    for k in ("err_polar", "err_grad", "err_sigma", "err_scale", "err_euler"):
        assert r[k] < 1e-10, k
    assert r["in_range"] == 1.0


def test_bench_workload_runs():
    wl = ch04.bench_workload(3, "cpu", n=10, polar_iters=5)
    wl.batched_step()
    wl.loop_step()
    assert wl.runs == 3 and wl.flops_per_run_step > 0


def test_mechanism_and_normalized_studies_small():
    cpu = torch.device("cpu")
    small = dict(n=8, rank=1, seeds=1, init_scale=1e-3, polar_iters=5)
    mech = ch04.mechanism(**small, m=30, steps=20, log_every=10, lams=[1e-4, 1e-2], lr_adam=1e-2,
                          lr_gd=1e-2, lr_plain=1.0, device=cpu, seed=0)
    table = ch04.mechanism_table(mech, step=10)
    assert set(table.index.get_level_values("optimizer")) == {"adam", "gd", "ngd"}
    # plain GD: the unobserved entries move in proportion to lambda (they see the penalty only)
    gd = table.loc["gd", "unobserved"]
    assert gd.iloc[1] > 10 * gd.iloc[0]
    nz = ch04.normalized(**small, m=30, lam=1e-3, lrs=[1e-2], steps=20, log_every=10, device=cpu, seed=0)
    runs = nz["runs"]
    assert sorted(runs.penalty) == ["none", "ratio"] and {"train", "test", "erank"} <= set(runs.columns)
    assert runs.loc[runs.penalty == "none", "move_unobs"].max() == 0.0
    with pytest.raises(ParameterError, match="lr_plain"):
        ch04.mechanism(**small, m=30, steps=20, log_every=10, lams=[1e-3], lr_adam=1e-2, lr_gd=1e-2,
                       lr_plain=0.0, device=cpu, seed=0)
