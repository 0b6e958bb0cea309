"""Tests of lib.known_regions (and the chapter 5 study helpers): closed forms, the two exact solvers
against each other, the dual bound, the lasso's known optima, and the batched trainer's gradients."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import known_regions as kr
from lib import minnorm1d, optim, shallow
from lib.checks import ParameterError
from lib.studies import ch05

CONV = [(c, a) for c in kr.CONVENTIONS for a in (False, True)]


# -- conventions and targets ---------------------------------------------------------------------
def test_kink_costs():
    t = np.array([-2.0, 0.0, 0.75])
    assert np.allclose(kr.kink_cost(t, "l2"), [np.sqrt(5), 1.0, 1.25])
    assert np.allclose(kr.kink_cost(t, "l1"), [3.0, 1.0, 1.75])
    assert np.allclose(kr.kink_cost(t, "free"), 1.0)
    assert [kr.constant_cost(c) for c in kr.CONVENTIONS] == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="convention"):
        kr.kink_cost(t, "l3")


def test_regions_validation_and_target():
    with pytest.raises(ValueError, match="disjoint"):
        kr.Regions("bad", ((0, 1), (0.5, 2)), (0, 0), (0, 0))
    with pytest.raises(ValueError, match="one slope"):
        kr.Regions("bad", ((0, 1), (2, 3)), (0,), (0, 0))
    R = kr.tent()
    assert R.gaps == [(-0.5, 0.5)]
    assert np.allclose(R.target(np.array([-1.0, -0.5, 0.5, 1.0])), [0.5, 1.0, 1.0, 0.5])
    assert np.isnan(R.target(np.array([0.0])))[0]
    z = R.gap_points(11)
    assert R.in_gaps(z).all() and len(z) == 11
    with pytest.raises(ValueError, match="example"):
        kr.example("nope")


def test_sample_lies_in_regions():
    R = kr.plateau()
    x, y = kr.sample(R, 500, np.random.default_rng(1))
    assert len(x) == 500 and np.all(np.diff(x) >= 0)
    assert np.isfinite(y).all() and np.allclose(y, R.target(x))
    # uniform on the union: the inner region (length 0.5) gets ~ 0.5 / 2.5 of the points
    inner = np.mean((x >= -0.25) & (x <= 0.25))
    assert abs(inner - 0.2) < 0.06


def test_kink_grid_reaches_far_and_contains_endpoints():
    R = kr.shelf()
    t = kr.kink_grid(R)
    assert t.min() <= -1e4 * 0.999 and t.max() >= 1e4 * 0.999
    assert np.isin(np.ravel(R.intervals), t).all() and 0.0 in t


# -- exact interpolants: closed forms and two solvers --------------------------------------------
@settings(max_examples=8, deadline=None)
@given(x1=st.floats(-0.9, 0.5), width=st.floats(0.1, 0.8), conv=st.sampled_from(CONV))
def test_step_closed_form_property(x1, width, conv):
    """The ramp is the minimiser for every convention, with norm (rho(x1) + rho(x2)) / (x2 - x1)."""
    x1 = round(x1, 2)
    x2 = round(x1 + width, 2)
    R = kr.step(gap=(x1, x2), hull=(-1.5, 1.5))
    sol = kr.min_norm_interpolant(R, conv[0], affine=conv[1], probes=[0.5 * (x1 + x2)])
    assert sol.norm == pytest.approx(kr.step_norm(x1, x2, conv[0]), rel=1e-7)
    assert sol.lower_bound <= sol.norm * (1 + 1e-9)
    assert sol.unique
    z = np.linspace(x1, x2, 7)
    assert np.allclose(sol(z), kr.ramp(z, x1, x2), atol=1e-7)


@pytest.mark.parametrize("name", ["step", "plateau", "tent", "shelf"])
@pytest.mark.parametrize("conv", CONV)
def test_closed_forms_both_solvers(name, conv):
    R = kr.example(name)
    expected = ch05.closed_form_norm(name, *conv)
    mine = kr.min_norm_interpolant(R, conv[0], affine=conv[1], probes=[])
    ch3 = ch05.exact(R, *conv)
    assert mine.norm == pytest.approx(expected, rel=1e-7)
    assert ch3.cost == pytest.approx(expected, rel=1e-7)
    assert mine.lower_bound == pytest.approx(expected, rel=5e-3)
    assert mine.lower_bound <= mine.norm * (1 + 1e-9)


def test_tent_plateau_and_non_uniqueness():
    R = kr.tent()
    plateau = kr.min_norm_interpolant(R, "l2", affine=False, probes=[0.0])
    free = kr.min_norm_interpolant(R, "free", affine=False, probes=[0.0])
    assert plateau(np.array([0.0]))[0] == pytest.approx(1.0, abs=1e-7)
    assert plateau.unique
    lo, hi = free.spread[0.0]
    assert lo == pytest.approx(1.0, abs=1e-6) and hi == pytest.approx(1.5, abs=1e-6)
    assert not free.unique


@settings(max_examples=5, deadline=None)
@given(p=st.floats(1.2, 3.0), h=st.floats(0.3, 1.0))
def test_shelf_kink_outside_data(p, h):
    """l2 without an affine term: an extra kink at t = -1/p and norm rho(p) + h / rho(p)."""
    p = round(p, 2)
    R = kr.shelf(height=h, left=(0.5, 1.0), p=p, right=p + 1.0)
    sol = ch05.exact(R, "l2", False)
    rho = np.hypot(1.0, p)
    if h * p / (1 + p * p) <= 1.0:  # the construction needs alpha = h / (p + 1/p) <= 1
        assert sol.cost == pytest.approx(rho + h / rho, rel=1e-7)
        kinks, _ = sol.kinks
        assert kinks.min() == pytest.approx(-1.0 / p, abs=1e-4)


@pytest.mark.parametrize("scale", [1e-3, 1e3, 1e6])
def test_scale_alone_never_exhausts_memory(scale):
    """The default grid step is relative to the hull: a step at scale 1e3 or 1e6 builds a few hundred
    knots (the old absolute 0.01 tried to allocate 56.6 GiB at 1e3) and gives the closed form; an
    absolute spacing that would build too many knots is a ParameterError, not a MemoryError."""
    R = kr.step(gap=(-0.25 * scale, 0.25 * scale), hull=(-scale, scale))
    sol = kr.min_norm_interpolant(R, "l2", probes=[])
    assert len(sol.dictionary.knots) < 2000
    assert sol.norm == pytest.approx(kr.step_norm(-0.25 * scale, 0.25 * scale, "l2"), rel=1e-9)
    assert 0 <= sol.certified_gap < 1e-6
    if scale >= 1e3:
        with pytest.raises(ParameterError, match="max_knots"):
            kr.kink_grid(R, spacing=0.01)
    with pytest.raises(ParameterError, match="max_entries"):
        kr.min_norm_interpolant(R, "l2", probes=[], max_entries=1e3)


@pytest.mark.parametrize("gap", [2e-3, 1e-5])
def test_narrow_gaps_are_resolved_and_certified(gap):
    """A gap narrower than the default step gets gap / 50: the ramp's kinks sit on the grid (the region
    ends), so the norm is the closed form to rounding, and the certified gap (dual checked on the
    continuum, pairs only inside the regions) is at rounding level too: the old absolute grid left
    0.12% at gap 2e-3."""
    R = kr.step(gap=(0.3, 0.3 + gap), hull=(-1.0, 1.0))
    sol = kr.min_norm_interpolant(R, "l2", probes=[])
    assert sol.norm == pytest.approx(kr.step_norm(0.3, 0.3 + gap, "l2"), rel=1e-9)
    assert -1e-12 < sol.certified_gap < 1e-9
    assert np.diff(kr.kink_grid(R)[(kr.kink_grid(R) > 0.3) & (kr.kink_grid(R) < 0.3 + gap)]).max() <= gap / 50 * (1 + 1e-9)


def test_dual_bound_is_exact_on_the_continuum():
    """kappa is the supremum over all kink positions: at least the maximum over a fine grid (which it
    must dominate), and within the grid's O(h^2) of it; for these weights the l2 supremum sits strictly
    between two data points (a tangency), where a check at the data alone would miss it."""
    x = np.array([-3.0, 1.0])
    lam = np.array([-0.2, 1.0])  # g_R = 1 - t on [-3, 1]: tangent to sqrt(1 + t^2) direction at t = -1
    _, kappa = kr.dual_lower_bound(lam, x, np.zeros(2), "l2", False, t_max=50.0)
    assert kappa == pytest.approx(np.sqrt(2.0), rel=1e-15)
    t = np.linspace(-50.0, 50.0, 2_000_001)
    gR = np.maximum(x[None, :] - t[:, None], 0.0) @ lam
    gL = np.maximum(t[:, None] - x[None, :], 0.0) @ lam
    grid = float(max(np.max(np.abs(gR) / np.hypot(1, t)), np.max(np.abs(gL) / np.hypot(1, t)), abs(lam.sum())))
    assert grid <= kappa <= grid * (1 + 1e-8)
    at_data = max(np.max(np.abs(np.maximum(x[None, :] - x[:, None], 0.0) @ lam) / np.hypot(1, x)),
                  np.max(np.abs(np.maximum(x[:, None] - x[None, :], 0.0) @ lam) / np.hypot(1, x)), abs(lam.sum()))
    assert kappa > at_data * (1 + 1e-3)


def test_dual_bound_rejects_infeasible_weights():
    """Scaling dual weights up cannot raise the certified bound (kappa grows by the same factor)."""
    R = kr.step()
    sol = kr.min_norm_interpolant(R, "l2", probes=[])
    lb1, k1 = kr.dual_lower_bound(sol.dual, sol.dual_points, R.target(sol.dual_points), "l2", False)
    lb3, k3 = kr.dual_lower_bound(3 * sol.dual, sol.dual_points, R.target(sol.dual_points), "l2", False)
    assert k3 == pytest.approx(3 * k1, rel=1e-9)
    assert lb3 == pytest.approx(lb1, rel=1e-9) and lb1 <= sol.norm * (1 + 1e-9)


# -- the lasso -------------------------------------------------------------------------------------
def test_lasso_zero_above_lambda_max():
    """For lambda >= max_k |2/n Phi_k^T y| / cost_k the lasso's minimiser is 0."""
    R = kr.step()
    x, y = kr.sample(R, 30, np.random.default_rng(0))
    knots = kr.kink_grid(R, spacing=0.05)
    dic = kr.Dictionary(knots, "l2", False)
    lam_max = np.max(np.abs(2.0 / len(y) * dic.features(x).T @ y) / dic.cost)
    _, risk, norm = kr.lasso(x, y, 1.01 * lam_max, knots=knots)
    assert norm < 1e-6 and risk == pytest.approx(np.mean(y**2), rel=1e-5)
    _c, risk, norm = kr.lasso(x, y, 0.5 * lam_max, knots=knots)
    assert norm > 1e-3
    with pytest.raises(ValueError, match="lam"):
        kr.lasso(x, y, 0.0, knots=knots)


def test_lasso_small_lambda_tends_to_min_norm_interpolant_of_samples():
    R = kr.tent()
    x, y = kr.sample(R, 20, np.random.default_rng(3))
    knots = np.unique(np.concatenate([kr.kink_grid(R, spacing=0.01, region_spacing=0.01), x]))
    ref = minnorm1d.solve(x, y, penalty="l2", affine=False)
    _c, risk, norm = kr.lasso(x, y, 1e-6, knots=knots)
    assert risk < 1e-8
    assert norm == pytest.approx(ref.cost, rel=2e-3)
    assert norm <= ref.cost * (1 + 1e-6) + 1e-6  # a regularised fit never needs more norm


# -- the batched trainer -------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [False, True])
def test_manual_gradients_match_autograd(affine):
    g = torch.Generator().manual_seed(0)
    net = shallow.init(3, 7, 1, skip=affine, generator=g)
    if affine:
        net.v.normal_(generator=g), net.c.normal_(generator=g)
    x = torch.rand(3, 11, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(3, 11, generator=g, dtype=torch.float64)
    w = torch.rand(3, 11, generator=g, dtype=torch.float64)
    risk, grads = kr._grads(net, x, y, w)
    net.requires_grad_(True)
    f = shallow.forward(net, x[..., None])
    loss = (w * (f - y) ** 2).sum()
    auto = torch.autograd.grad(loss, net.tensors)
    assert torch.allclose(risk.sum(), loss.detach())
    for a, b in zip(grads, auto):
        assert torch.allclose(a, b.reshape(a.shape), atol=1e-12)


def test_train_batched_masks_and_records():
    R = kr.step()
    x, y = kr.sample(R, 12, np.random.default_rng(0))
    B = 4
    X = torch.tensor(np.tile(x, (B, 1)))
    V = torch.ones_like(X)
    V[1, 8:] = 0.0  # run 1 sees only its first 8 points
    res = kr.train(X, torch.tensor(np.tile(y, (B, 1))), V, width=6, widths=torch.tensor([6, 3, 6, 6]),
                   methods=["gd", "sgd", "momentum", "adam"], lr=torch.tensor([0.05, 0.05, 0.005, 1e-2], dtype=torch.float64),
                   wd=torch.full((B,), 1e-2, dtype=torch.float64), steps=200,
                   init_scale=torch.ones(B, dtype=torch.float64), generator=torch.Generator().manual_seed(0), records=5)
    assert torch.all(res.net.a[1, 3:] == 0) and torch.all(res.net.b[1, 3:] == 0)
    assert res.loss.shape == (B, 5) and res.steps[0] == 0 and res.steps[-1] == 200
    pen = shallow.penalty(res.net)
    assert np.allclose(res.objective[:, -1], res.loss[:, -1] + 1e-2 * pen.numpy())
    assert (res.objective[:, -1] < res.objective[:, 0]).all()
    assert np.allclose(res.norm[:, -1], shallow.variation_norm(res.net).numpy())


def test_train_validates_methods():
    X = torch.zeros(2, 3, dtype=torch.float64)
    kw = {"width": 2, "lr": torch.ones(2), "wd": torch.zeros(2), "steps": 1, "init_scale": torch.ones(2)}
    with pytest.raises(ValueError, match="method"):
        kr.train(X, X, X + 1, methods=["gd", "lbfgs"], **kw)
    with pytest.raises(ValueError, match="sorted"):
        kr.train(X.repeat(2, 1), X.repeat(2, 1), X.repeat(2, 1) + 1, methods=["gd", "adam", "gd", "adam"],
                 **{**kw, "lr": torch.ones(4), "wd": torch.zeros(4), "init_scale": torch.ones(4)})


def test_batched_gd_step_equals_numpy_reference():
    """One batched GD + weight decay step (BatchedOptimizer on manual gradients) equals the per-run
    NumPy reference used by the benchmark's loop."""
    R = kr.tent()
    x, y = kr.sample(R, 9, np.random.default_rng(0))
    B, lr, wd = 3, 0.07, 0.02
    X = torch.tensor(np.tile(x, (B, 1)))
    net = shallow.init(B, 5, 1, generator=torch.Generator().manual_seed(2))
    ref = [(net.a[i].numpy().copy(), net.w[i, :, 0].numpy().copy(), net.b[i].numpy().copy()) for i in range(B)]
    opt = optim.BatchedOptimizer(net.tensors, method="gd", lr=lr, wd=wd)
    _, grads = kr._grads(net, X, torch.tensor(np.tile(y, (B, 1))), torch.full_like(X, 1.0 / len(x)))
    opt.step(grads)
    for i, (a, w, b) in enumerate(ref):
        kr.gd_step_numpy(a, w, b, x, y, lr, wd)
        assert np.allclose(a, net.a[i].numpy()) and np.allclose(w, net.w[i, :, 0].numpy()) and np.allclose(b, net.b[i].numpy())
    wl = ch05.bench_workload(2, "cpu")
    wl.batched_step()
    wl.loop_step()
    assert wl.runs == 2 and wl.flops_per_run_step > 0


# -- study helpers -----------------------------------------------------------------------------
def test_schedules_satisfy_the_derived_condition():
    n0, m0, lam0 = 16, 16, 1e-2
    lam = [ch05.schedule("derived", l, n0=n0, m0=m0, lam0=lam0)[2] for l in (0, 5, 10)]
    mlam = [ch05.schedule("derived", l, n0=n0, m0=m0, lam0=lam0)[1] * x for l, x in zip((0, 5, 10), lam)]
    assert lam[0] > lam[1] > lam[2] and mlam[0] < mlam[1] < mlam[2]
    _n, m, l = ch05.schedule("fast", 6, n0=n0, m0=m0, lam0=lam0)
    assert m * l < m0 * lam0
    assert ch05.schedule("n-fixed", 4, n0=n0, m0=m0, lam0=lam0)[0] == n0
    with pytest.raises(ParameterError, match="schedule"):
        ch05.schedule("sometimes", 1, n0=n0, m0=m0, lam0=lam0)


def test_study_parameter_validation():
    with pytest.raises(ParameterError, match="levels"):
        ch05.lasso_schedules(example="step", schedules=["derived"], levels=0, n0=8, m0=8, lam0=1e-2, seeds=1)
    with pytest.raises(ParameterError, match="lr_gd"):
        ch05.optimizer_bias(example="tent", n=8, width=4, lam=1e-2, steps=10, lr_gd=0.0, lr_momentum=0.01, lr_adam=1e-3,
                            momentum=0.9, scales=[1.0], seeds=1, batch_size=4)
    with pytest.raises(ParameterError, match="profile"):
        ch05.params("huge")


def test_continue_gd_continues_train_exactly():
    """``train`` for 300 GD steps equals ``train`` for 100 then :func:`continue_gd` for 200 (masked widths,
    padded data, one run without weight decay): the same update, in NumPy instead of torch."""
    R = kr.step()
    x, y = kr.sample(R, 12, np.random.default_rng(0))
    B = 3
    X, Y = torch.tensor(np.tile(x, (B, 1))), torch.tensor(np.tile(y, (B, 1)))
    V = torch.ones_like(X)
    V[1, 8:] = 0.0
    kw = dict(width=6, widths=torch.tensor([6, 3, 6]), methods=["gd"] * B, lr=torch.tensor([0.05, 0.05, 0.1], dtype=torch.float64),
              wd=torch.tensor([1e-2, 0.0, 3e-2], dtype=torch.float64), init_scale=torch.ones(B, dtype=torch.float64), records=5)
    whole = kr.train(X, Y, V, steps=300, generator=torch.Generator().manual_seed(0), **kw)
    first = kr.train(X, Y, V, steps=100, generator=torch.Generator().manual_seed(0), **kw)
    rest = kr.continue_gd(first.net, X.numpy(), Y.numpy(), V.numpy(), lr=kw["lr"].numpy(), wd=kw["wd"].numpy(), steps=200, records=5)
    for p, q in zip(whole.net.tensors, rest.net.tensors):
        assert torch.allclose(p, q, atol=1e-13, rtol=0)
    for k in ("loss", "norm", "objective"):
        assert np.allclose(getattr(whole, k)[:, -1], getattr(rest, k)[:, -1], atol=1e-13, rtol=0)
    assert np.allclose(whole.grad_norm, rest.grad_norm, atol=1e-13) and rest.steps.tolist() == [0, 50, 100, 150, 200]
    assert torch.all(rest.net.a[1, 3:] == 0)
    with pytest.raises(ParameterError, match="steps"):
        kr.continue_gd(first.net, X.numpy(), Y.numpy(), V.numpy(), lr=kw["lr"].numpy(), wd=kw["wd"].numpy(), steps=-1)
