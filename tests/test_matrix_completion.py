"""lib.matrix_completion: problems and masks, the deep factorization and its chain rule, the penalty
gradients, the batched training loop (batch = independent runs; its Adam and normalised-GD steps
against references), per-run early stopping (keeps the state, ignores the test entries, does not
couple runs), measurements, divergence reporting and the nuclear-norm baseline; plus the chapter's
studies: problems and initialisations that depend on a run's own row only (shards give the same
numbers), input validation."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import engine, polar
from lib import matrix_completion as mc
from lib.checks import ParameterError
from lib.studies import ch04, ch04_results


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
    for kw in (dict(method="newton-schulz", iters=40), dict()):  # the default is the exact SVD
        g = mc.penalty_grad(w, torch.tensor([True, False]), **kw)
        assert torch.allclose(g[0], polar.ratio_grad(w[0], method="svd")[0], atol=1e-10)
        assert torch.allclose(g[1], polar.polar_svd(w[1]), atol=1e-10)
    with pytest.raises(ValueError, match="method"):
        mc.penalty_grad(w, True, method="eigh")


def _small_problem(b=4, n=8, rank=1, m=40, seed=0):
    pb = mc.make_problems(n, rank, b, generator=_gen(seed))
    return pb, mc.observation_mask(pb.order, m, n)


def test_batched_training_equals_separate_runs():
    """Runs of one batch do not interact: training a batch equals training each run alone."""
    pb, mask = _small_problem(b=3)
    kw = dict(depth=2, method="adam", lam=1e-2, steps=30, log_every=10, dtype=torch.float64)
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
    kw = dict(depth=1, method="adam", lr=3e-2, steps=2000, log_every=1000)
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
    p = dataclasses.asdict(ch04.params("fast").grid)
    with pytest.raises(ParameterError, match="lam"):
        ch04.grid(**{**p, "lam": -1.0}, device=torch.device("cpu"), seed=0)
    with pytest.raises(ParameterError, match="m="):
        ch04.grid(**{**p, "m": [3000]}, device=torch.device("cpu"), seed=0)
    with pytest.raises(ParameterError, match="rank"):
        ch04.baseline(n=5, rank=5, seeds=1, m=[10], device=torch.device("cpu"), seed=0)


def test_identities_study_small():
    r = ch04.identities(n=6, count=8, n_bulk=20, rank=2, bulk_count=4, old_ns_iters=15,
                        device=torch.device("cpu"), seed=0)
    for k in ("err_grad", "err_sigma", "err_scale"):
        assert r[k] < 1e-10, k
    assert r["in_range"] == 1.0
    # the trained path meets 1e-6 on W* + bulk; Newton-Schulz at 15 iterations does not
    assert r["bulk_rel_err"] <= 1e-6 and r["bulk_cos"] > 1 - 1e-12
    assert r["bulk_ns_rel_err_min"] > 1e-3 and r["bulk_ns_iters_needed_max"] > 30


def test_bench_workload_runs():
    wl = ch04.bench_workload(3, "cpu", n=10)
    wl.batched_step()
    wl.loop_step()
    assert wl.runs == 3 and wl.flops_per_run_step is None
    ns = ch04.bench_workload(3, "cpu", n=10, polar="newton-schulz", polar_iters=5)
    ns.batched_step()
    assert ns.flops_per_run_step > 0


def test_mechanism_and_normalized_studies_small():
    cpu = torch.device("cpu")
    small = dict(n=8, rank=1, seeds=1, init_scale=1e-3, polar="svd")
    mech = ch04.mechanism(**small, m=30, steps=20, log_every=10, lams=[1e-4, 1e-2], lr_adam=1e-2,
                          lr_gd=1e-2, gd_eps=1e-4, lr_plain=1.0, device=cpu, seed=0)
    table = ch04_results.mechanism_table(mech, step=10)
    assert set(table.index.get_level_values("optimizer")) == {"adam", "gd", "ngd"}
    # plain GD: the unobserved entries move in proportion to lambda (they see the penalty only)
    gd = table.loc["gd", "unobserved"]
    assert gd.iloc[1] > 10 * gd.iloc[0]
    stop = dict(stop_window=10, stop_rtol=1e-3, stop_train=1e-4)
    nz = ch04.normalized(**small, m=30, lam=1e-3, lr=1e-2, eps=[1e-8, 1e-4], lrs_plain=[1.0, 30.0], steps=20,
                         log_every=10, device=cpu, seed=0, **stop)
    runs = nz["runs"]
    assert sorted(zip(runs.method, runs.penalty, runs.eps, runs.lr)) == [
        ("gd", "ratio", 0.0, 1.0), ("gd", "ratio", 0.0, 30.0), ("ngd", "none", 1e-8, 1e-2),
        ("ngd", "ratio", 1e-8, 1e-2), ("ngd", "ratio", 1e-4, 1e-2)]
    assert {"train", "test", "erank", "stopped", "stop_step"} <= set(runs.columns)
    assert runs.loc[runs.penalty == "none", "move_unobs"].max() == 0.0
    assert nz["hist"]["test"].shape == (3, 5)
    with pytest.raises(ParameterError, match="lr_plain"):
        ch04.mechanism(**small, m=30, steps=20, log_every=10, lams=[1e-3], lr_adam=1e-2, lr_gd=1e-2,
                       gd_eps=1e-4, lr_plain=0.0, device=cpu, seed=0)


# -- optimizer steps against references ------------------------------------------------------------
def _loss(layers, target, mask):
    w = mc.end_to_end(layers)
    return ((w - target) ** 2 * mask).sum((1, 2)) / mask.sum((1, 2))


def test_adam_step_matches_torch_adam():
    """The fused per-run Adam of train equals torch.optim.Adam run by run (float64, no penalty)."""
    pb, mask = _small_problem(b=2, n=6, m=20)
    init = mc.init_layers(2, 6, 2, scale=0.5, generator=_gen(2), dtype=torch.float64)
    lrs, b1s = [1e-2, 3e-2], [0.9, 0.0]
    res = mc.train(pb.target, mask, depth=2, method="adam", lr=torch.tensor(lrs, dtype=torch.float64),
                   beta1=torch.tensor(b1s, dtype=torch.float64), lam=0.0, steps=25, log_every=25,
                   dtype=torch.float64, init=init)
    for i in range(2):
        ls = [x[i:i + 1].clone().requires_grad_(True) for x in init]
        opt = torch.optim.Adam(ls, lr=lrs[i], betas=(b1s[i], 0.999))
        for _ in range(25):
            opt.zero_grad()
            _loss(ls, pb.target[i:i + 1], mask[i:i + 1]).sum().backward()
            opt.step()
        assert np.allclose(res.final[i], mc.end_to_end([x.detach() for x in ls])[0].numpy(), atol=1e-12)


def test_ngd_step_matches_group_rmsprop():
    """The normalised step: lr / (sqrt(bias-corrected EMA of ||grad||^2) + eps), one per run, eps per run."""
    pb, mask = _small_problem(b=2, n=6, m=20)
    init = mc.init_layers(2, 6, 2, scale=0.5, generator=_gen(4), dtype=torch.float64)
    eps = [1e-8, 1e-1]
    res = mc.train(pb.target, mask, depth=2, method="ngd", lr=1e-2, lam=0.0, steps=20, log_every=20,
                   dtype=torch.float64, init=init, ngd_eps=torch.tensor(eps, dtype=torch.float64))
    for i in range(2):
        ls = [x[i:i + 1].clone().requires_grad_(True) for x in init]
        v = 0.0
        for t in range(1, 21):
            gs = torch.autograd.grad(_loss(ls, pb.target[i:i + 1], mask[i:i + 1]).sum(), ls)
            v = 0.99 * v + 0.01 * sum(float((g**2).sum()) for g in gs)
            size = 1e-2 / ((v / (1 - 0.99**t)) ** 0.5 + eps[i])
            ls = [(x - size * g).detach().requires_grad_(True) for x, g in zip(ls, gs)]
        assert np.allclose(res.final[i], mc.end_to_end([x.detach() for x in ls])[0].numpy(), atol=1e-12)


# -- early stopping -----------------------------------------------------------------------------------
_STOP = dict(stop_window=200, stop_rtol=1e-3, stop_train=1e-4)


def test_early_stop_keeps_state_and_matches_unstopped_run():
    """Adam without the penalty fits the observed entries and freezes: the run stops, its final state
    is the one at the stop step of the same run without stopping, and its log stays constant."""
    pb, mask = _small_problem(b=2, n=8, m=40)
    init = mc.init_layers(2, 8, 1, generator=_gen(1))
    kw = dict(depth=1, method="adam", lr=1e-2, lam=0.0, steps=3000, log_every=100)
    stopped = mc.train(pb.target, mask, init=init, **kw, **_STOP)
    free = mc.train(pb.target, mask, init=init, **kw)
    assert stopped.stopped.all() and (stopped.stop_step < 3000).all() and not free.stopped.any()
    assert (free.stop_step == 3000).all()
    h, hf = stopped.history, free.history
    for i in range(2):
        k = int(np.searchsorted(h.steps, stopped.stop_step[i]))
        assert np.array_equal(h.test[k:, i], np.full(len(h.steps) - k, h.test[k, i]))
        assert np.array_equal(h.test[: k + 1, i], hf.test[: k + 1, i])  # identical until the stop
        # the final state is the state at the stop step
        w = torch.as_tensor(stopped.final[i:i + 1]).double()
        assert float(mc.test_error(w, pb.target[i:i + 1], mask[i:i + 1])) == pytest.approx(h.test[k, i], rel=1e-12)
    assert np.isnan(h.spec_change[0]).all() and np.isfinite(h.spec_change[2]).all()


def test_early_stop_never_looks_at_the_test_entries():
    """Two problems that agree on the observed entries and differ elsewhere stop at the same step in
    the same state: the decision uses the train error and the spectrum only."""
    pb, mask = _small_problem(b=1, n=8, m=40)
    other = pb.target + 5.0 * (1 - mask) * torch.randn(1, 8, 8, generator=_gen(9), dtype=torch.float64)
    targets = torch.cat([pb.target, other])
    res = mc.train(targets, mask.expand(2, 8, 8), depth=1, method="adam", lr=1e-2, lam=1e-3, steps=3000,
                   log_every=100, init=[mc.init_layers(1, 8, 1, generator=_gen(2))[0].expand(2, 8, 8)], **_STOP)
    assert res.stop_step[0] == res.stop_step[1]
    assert np.array_equal(res.final[0], res.final[1])
    assert res.history.test[-1, 0] != res.history.test[-1, 1]


def test_early_stop_does_not_couple_runs():
    """A batch with stopping equals each run trained alone with stopping (the batch shrinks as runs stop)."""
    pb, mask = _small_problem(b=3, n=8, m=40)
    init = mc.init_layers(3, 8, 1, generator=_gen(6))
    lam = torch.tensor([0.0, 1e-3, 1e-3])
    kw = dict(depth=1, method="adam", lr=1e-2, steps=2000, log_every=100, **_STOP)
    batch = mc.train(pb.target, mask, lam=lam, init=init, **kw)
    assert len(set(batch.stop_step.tolist())) > 1  # the runs stop at different steps
    for i in range(3):
        one = mc.train(pb.target[i:i + 1], mask[i:i + 1], lam=float(lam[i]), init=[init[0][i:i + 1]], **kw)
        assert one.stop_step[0] == batch.stop_step[i]
        assert np.array_equal(one.final[0], batch.final[i])
        assert np.array_equal(one.history.test[:, 0], batch.history.test[:, i])


def test_stop_window_validation():
    pb, mask = _small_problem(b=1)
    with pytest.raises(ValueError, match="stop_window"):
        mc.train(pb.target, mask, depth=1, method="adam", lr=1e-2, steps=10, log_every=4, stop_window=6)


# -- the chapter's run tables -----------------------------------------------------------------------
def test_problems_do_not_depend_on_the_count():
    """The bug of the first version: studies that drew 2 problems got other ground truths and masks than
    the grid's 3. Problem s is now the same whatever the count."""
    cpu = torch.device("cpu")
    a = ch04._problems(10, 2, 2, cpu, 0)
    b = ch04._problems(10, 2, 3, cpu, 0)
    assert torch.equal(a.target, b.target[:2]) and torch.equal(a.order, b.order[:2])
    assert not torch.equal(b.target[0], b.target[1])


def _table():
    rows = [dict(seed=s, m=m, depth=d, method=meth, lr=lr, lam=lam, penalty=pen, beta1=0.9, eps=eps, optimizer=meth)
            for s in (0, 1) for m in (30, 40)
            for d, meth, lr, lam, pen, eps in ((1, "adam", 1e-2, 1e-3, "ratio", 1e-8), (2, "ngd", 1e-2, 0.0, "none", 1e-4),
                                               (1, "gd", 1.0, 1e-3, "ratio", 0.0))]
    return pd.DataFrame(rows)


def test_train_runs_same_numbers_in_any_shards():
    """Runs depend on their own row only: one shard, two shards, or another order give identical results."""
    runs = _table()
    kw = dict(n=8, rank=1, seed=0, steps=60, log_every=20, init_scale=1e-3, stop_window=20)
    whole = ch04.train_runs(runs, "cpu", **kw)
    parts = pd.concat([ch04.train_runs(runs.iloc[i::2], "cpu", **kw) for i in range(2)]).loc[runs.index]
    for col in ("test", "train", "erank", "stop_step"):
        assert np.array_equal(whole[col].to_numpy(), parts[col].to_numpy()), col
    table, hist = ch04._collect(whole)
    assert hist["test"].shape == (4, len(runs)) and hist["sigma"].shape == (4, len(runs), 3)
    assert np.array_equal(hist["test"][-1], table["test"].to_numpy())
    # the same (seed, depth) starts from the same layers whatever the optimizer, m or penalty
    same = ch04._init(runs[runs.depth == 1], 8, 1, 1e-3, torch.device("cpu"), 0)[0]
    assert torch.equal(same[0], same[1])


def test_sweep_shards_balance_and_keep_order(monkeypatch, tmp_path):
    monkeypatch.setenv("IB_BUILD", str(tmp_path))
    runs = _table()
    kw = dict(n=8, rank=1, seed=0, steps=20, log_every=10, init_scale=1e-3)
    one, h1 = ch04._sweep("test", runs, "cpu", shards=1, **kw)
    three, h3 = ch04._sweep("test", runs, "cpu", shards=3, **kw)
    assert np.array_equal(one["test"].to_numpy(), three["test"].to_numpy())
    assert np.array_equal(h1["sigma"], h3["sigma"])
    assert list(one["seed"]) == list(runs["seed"])


def test_grid_run_table_and_cost_estimate():
    """The fast grid's run table (plain GD with the penalty runs in the optimizer study, the penalty at
    depth 1 only) and the cost estimate's cells (a couple of probe steps each)."""
    runs = ch04.grid_runs(**dataclasses.asdict(ch04.params("fast").grid))
    counts = runs.groupby(["depth", "method", "penalty"]).size().to_dict()
    assert counts[(1, "adam", "ratio")] == 9 and (1, "gd", "ratio") not in counts
    assert set(runs.method) == {"adam", "gd", "ngd"} and (runs[runs.method == "ngd"].eps == ch04.ARORA_EPS).all()
    full = ch04.grid_runs(**dataclasses.asdict(ch04.params("full").grid))
    deep_pen = full[(full.depth > 1) & (full.lam > 0)]
    assert set(deep_pen.m) == {2000, 3000} and set(full[(full.depth == 1) & (full.method == "gd") & (full.lam > 0)].m) == {1500, 2000}
    est = ch04.cost_estimate("fast", probe_steps=2, stop_fraction={"1 adam ratio": 0.5})
    assert (est.core_s > 0).all() and set(est.study) == {"grid", "ablations", "normalized"}
    row = est[(est.study == "grid") & (est.method == "adam") & (est.penalty == "ratio") & (est.depth == 1)].iloc[0]
    assert row.runs == 9 and row.core_s_stopped == pytest.approx(0.5 * row.core_s)


def test_ablations_small_with_shorter_lr_budget(monkeypatch, tmp_path):
    """The ablations on the grid's problems: the learning-rate rows may get a smaller budget; their
    histories keep the last value from there, and the table says which budget each run had."""
    monkeypatch.setenv("IB_BUILD", str(tmp_path))
    kw = dict(n=8, rank=1, seeds=2, m=30, lam=1e-3, lr=1e-2, lams=[1e-4], lrs=[1e-1], nuclear_lams=[1e-4],
              steps=40, log_every=10, init_scale=1e-3, polar="svd", stop_window=None, stop_rtol=1e-3,
              stop_train=1e-4, device=torch.device("cpu"), seed=0)
    short = ch04.ablations(**kw, lr_steps=20)
    full = ch04.ablations(**kw)
    r, h = short["runs"], short["hist"]
    assert list(r.variant) == list(full["runs"].variant) and h["test"].shape == full["hist"]["test"].shape == (5, 10)
    lr_rows = np.flatnonzero(r.variant == "lr sweep")
    other = np.flatnonzero(r.variant != "lr sweep")
    assert (r.budget.to_numpy()[lr_rows] == 20).all() and (r.stop_step.to_numpy()[lr_rows] == 20).all()
    assert np.array_equal(h["test"][:, other], full["hist"]["test"][:, other])  # the other rows are unchanged
    assert np.array_equal(h["test"][:3, lr_rows], full["hist"]["test"][:3, lr_rows])  # same path up to step 20
    assert (h["test"][3:, lr_rows] == h["test"][2, lr_rows]).all()
    with pytest.raises(ParameterError, match="lr_steps"):
        ch04.ablations(**kw, lr_steps=25)
