"""Trainer, KKT checker, certificates, local search and reference optima against known answers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import homogeneous as H
from lib import margins as M
from lib.checks import ParameterError
from lib.studies import ch02

torch.set_num_threads(1)  # tiny tensor programs: one thread is far faster on a shared machine

T = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64)
SQUARE = (np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]), np.array([1.0, 1.0, -1.0, -1.0]))


# -- reference optima ----------------------------------------------------------------------------
def test_svm_l2_on_symmetric_data():
    beta, g = M.svm_l2(*SQUARE)
    np.testing.assert_allclose(beta, [1.0, 0.0], atol=1e-7)
    assert g == pytest.approx(1.0, abs=1e-7)


def test_svm_l1_single_point():
    beta, g = M.svm_l1(np.array([[1.0, 2.0]]), np.array([1.0]))
    np.testing.assert_allclose(beta, [0.0, 0.5], atol=1e-10)
    assert g == pytest.approx(2.0)


def test_svms_reject_non_separable_data():
    X, y = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0])
    with pytest.raises(ValueError, match="separable"):
        M.svm_l2(X, y)
    with pytest.raises(ValueError, match="separable"):
        M.svm_l1(X, y)


# -- KKT checker -----------------------------------------------------------------------------------
def test_kkt_diagonal_bad_point():
    fam = H.diagonal(2, 2)
    k = M.kkt(fam, T([[3.0, 0.0, 3.0, 0.0]]), T([[1.0, 2.0]]), T([1.0]))  # rescaled to u = v = (1, 0)
    np.testing.assert_allclose(k.theta, [[1.0, 0.0, 1.0, 0.0]], atol=1e-12)
    assert k.lam[0, 0] == pytest.approx(1.0) and k.residual[0] < 1e-12 and k.gamma[0] == pytest.approx(0.5)
    z = M.l1_dual_vector(k.lam, np.array([[1.0, 2.0]]), np.array([1.0]))
    np.testing.assert_allclose(z, [[1.0, 2.0]])


def test_kkt_relu_dead_point_and_certificate():
    delta = 0.2
    X, y = ch02.relu_data(delta)
    pts = ch02.relu_points(delta)
    k = M.kkt(H.relu(2, 2), T(np.stack([pts["dead"], pts["split"], pts["optimum"]])), T(X), T(y))
    assert k.residual.max() < 1e-12
    np.testing.assert_allclose(k.lam[0], [1 / (2 * delta)] * 2, rtol=1e-12)
    hmax, u = M.relu_dual_max(k.lam, X, y)
    rho = np.sqrt(1 + delta**2)
    np.testing.assert_allclose(hmax, [rho / (2 * delta), rho / (2 * delta), 1.0], rtol=1e-8)
    np.testing.assert_allclose(np.abs(u[0]), np.abs(X[0]) / rho, atol=1e-6)
    np.testing.assert_allclose(k.gamma, [delta / 2, delta / 2, rho / 4], rtol=1e-12)


def test_kkt_fc_from_svm_solution_has_svm_multipliers():
    """A balanced rank-one FC net along the SVM is a KKT point; NNLS recovers multipliers that
    reproduce beta = sum_i lambda_i y_i x_i / ||a||^2 (here: on the four support vectors of SQUARE)."""
    X, y = SQUARE
    beta, g = M.svm_l2(X, y)
    fam = H.fc(2, 3, 2)
    th = ch02._balanced_fc(beta, 3, 2)
    k = M.kkt(fam, T(th[None]), T(X), T(y))
    assert k.residual[0] < 1e-6
    assert k.active[0].all()
    assert k.gamma[0] == pytest.approx(g / 2, rel=1e-6)


def test_kkt_detects_non_kkt_point():
    fam = H.diagonal(2, 2)
    k = M.kkt(fam, T([[1.0, 0.5, 2.0, 0.1]]), T([[1.0, 2.0]]), T([1.0]))
    assert k.residual[0] > 0.1


def test_kkt_non_separating_point_is_nan():
    fam = H.diagonal(2, 2)
    k = M.kkt(fam, T([[1.0, 0.0, -1.0, 0.0]]), T([[1.0, 2.0]]), T([1.0]))
    assert np.isnan(k.residual[0])


# -- smoothed margin and trainer -------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.5, 20.0))
def test_smoothed_margin_brackets(seed, scale):
    """gamma - log(n)/||theta||^L <= smoothed margin <= gamma."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(3, 5, generator=g, dtype=torch.float64).abs() * scale
    nrm = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    s = M.smoothed_margin(q, nrm, 2)
    gam = q.min(1).values / nrm**2
    assert torch.all(s <= gam + 1e-12)
    assert torch.all(s >= gam - np.log(5) / nrm**2 - 1e-12)


def test_step_schedule():
    e = M.step_schedule(100, 0.1, 1e-4, 0.5)
    assert len(e) == 100 and e[0] == 0.1 and e[49] == 0.1 and e[-1] == pytest.approx(1e-4)
    assert np.all(np.diff(e[50:]) < 0)


def test_trainer_is_exact_linear_recursion_for_depth2_single_point():
    """Diagonal depth 2, one point, no cap: u + v is multiplied by (1 + eta x) per step."""
    fam, eta, k = H.diagonal(2, 2), 0.05, 40
    th0 = T([[1.0, 1.0, 1.0, -0.9]])
    tr = M.train(fam, th0, T([[1.0, 2.0]]), T([1.0]), steps=k, eta=eta, eta_min=eta, anneal=0.0, temp=None)
    u, v = tr.theta[0, :2].numpy(), tr.theta[0, 2:].numpy()
    np.testing.assert_allclose(u + v, np.array([2.0, 0.1]) * (1 + eta * np.array([1.0, 2.0])) ** k, rtol=1e-12)
    np.testing.assert_allclose(u - v, np.array([0.0, 1.9]) * (1 - eta * np.array([1.0, 2.0])) ** k, atol=1e-12)


def test_trainer_reaches_known_limits():
    fam = H.diagonal(2, 2)
    th0 = T([[1.0, 1.0, 1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    tr = M.train(fam, th0, T([[1.0, 2.0]]), T([1.0]), steps=1500, eta=0.05, eta_min=1e-5, temp=1e3)
    np.testing.assert_allclose(tr.gamma[-1], [0.5, 1.0], atol=1e-8)
    assert np.all(np.isfinite(tr.smoothed[-1]))


@pytest.mark.parametrize("kw,name", [({"steps": 0}, "steps"), ({"eta": -1.0}, "eta"), ({"temp": 0.0}, "temp"),
                                     ({"record_every": 0}, "record_every")])
def test_trainer_validates(kw, name):
    args = {"steps": 10, "eta": 0.1}
    args.update(kw)
    with pytest.raises(ParameterError, match=name):
        M.train(H.diagonal(2, 2), T([[1.0, 1, 1, 1]]), T([[1.0, 2.0]]), T([1.0]), **args)


# -- certificates, curves, local search, per-layer -------------------------------------------------
def test_relu_improving_curve_is_feasible_and_shorter():
    delta, eps = 0.2, np.geomspace(1e-3, 1e-1, 5)
    X, y = ch02.relu_data(delta)
    th = ch02.relu_improving_curve(delta, eps)
    q = H.margins(H.relu(2, 2), T(th), T(X), T(y)).numpy()
    np.testing.assert_allclose(q, 1.0, atol=1e-10)
    rho = np.sqrt(1 + delta**2)
    pred = 2 / delta - eps**2 * (rho / delta - 2)
    np.testing.assert_allclose((th**2).sum(1), pred, rtol=1e-4)


def test_face_gamma_closed_forms():
    np.testing.assert_allclose(ch02.diag_face_gamma(np.array([0.0, 0.5]), 3), [2 / 6**1.5, 3**-1.5])
    np.testing.assert_allclose(ch02.diag_face_gamma(np.array([0.0, 0.3]), 2), [0.5, 0.5])  # flat for depth 2


def test_local_search_quadratic_gain_and_none():
    g = torch.Generator().manual_seed(0)
    radii = np.array([0.01, 0.04])
    bad = M.local_search(H.diagonal(2, 2), T([1.0, 0, 1, 0]), T([[1.0, 2.0]]), T([1.0]), radii,
                         starts=16, iters=200, generator=g)
    assert np.all(bad["gain"] > 0.2 * radii**2) and np.all(bad["gain"] < radii**2)
    X, y = SQUARE
    beta, _ = M.svm_l2(X, y)
    good = M.local_search(H.fc(2, 3, 2), T(ch02._balanced_fc(beta, 3, 2)), T(X), T(y), radii,
                          starts=16, iters=200, generator=g)
    assert np.all(good["gain"] <= 1e-9)


def test_local_search_validates_radii():
    with pytest.raises(ValueError, match="radius"):
        M.local_search(H.diagonal(2, 2), T([1.0, 0, 1, 0]), T([[1.0, 2.0]]), T([1.0]), np.array([0.0]))


def test_layer_qp_at_per_layer_optimal_point():
    fam = H.diagonal(2, 2)
    for layer in range(2):
        assert M.layer_qp(fam, np.array([1.0, 0, 1, 0]), np.array([[1.0, 2.0]]), np.array([1.0]), layer) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        M.layer_qp(H.relu(2, 2), np.zeros(6), np.eye(2), np.ones(2), 0)


def test_bench_workload_steps_run():
    w = ch02.bench_workload(4, "cpu")
    w.batched_step()
    w.loop_step()
    assert w.runs == 4


# -- snapshots, per-run caps, the accurate flow, batched local search ----------------------------------
def test_train_keeps_snapshots_and_takes_per_run_caps():
    """A list of caps (None: no cap) gives each run the trajectory it has when trained alone."""
    fam, X, y = H.relu(2, 2), T([[1.0, 0.2], [-1.0, 0.2]]), T([1.0, 1.0])
    th0 = T([[0.3, 1.0, -0.2, 1.0, 0.5, 0.4], [1.0, 0.3, -1.0, 0.3, 0.5, 0.5]])
    both = M.train(fam, th0, X, y, steps=200, eta=0.05, eta_min=1e-3, temp=[1.0, None], keep=(0, 50))
    a = M.train(fam, th0[:1], X, y, steps=200, eta=0.05, eta_min=1e-3, temp=1.0, keep=(50,))
    b = M.train(fam, th0[1:], X, y, steps=200, eta=0.05, eta_min=1e-3, temp=None)
    torch.testing.assert_close(both.theta, torch.cat([a.theta, b.theta]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(both.snapshots[0], th0)
    torch.testing.assert_close(both.snapshots[50][:1], a.snapshots[50], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="keep"):
        M.train(fam, th0, X, y, steps=10, keep=(11,))
    with pytest.raises(ValueError, match="temp"):
        M.train(fam, th0, X, y, steps=10, temp=[1.0])


def test_accurate_flow_is_fourth_order_and_smoothed_margin_monotone():
    """RK4 in the clock tau: halving the step shrinks the difference ~16x; the smoothed margin never
    falls once the loss is below 1 (lyu2020gradient), on a small FC net."""
    X, y = SQUARE
    fam = H.fc(2, 3, 2)
    th0 = torch.randn(3, fam.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    runs = [M.accurate_flow(fam, th0, T(X), T(y), h=h, scale_max=30.0, max_steps=4000) for h in (0.4, 0.2, 0.1)]
    g1 = max(M.halving_gap(runs[0].smoothed[:, j], runs[1].smoothed[:, j]) for j in range(3))
    g2 = max(M.halving_gap(runs[1].smoothed[:, j], runs[2].smoothed[:, j]) for j in range(3))
    assert g2 < g1 / 8
    fall = M.largest_fall(runs[2].smoothed, runs[2].log_loss)
    assert np.nanmax(fall) == 0.0 and np.isfinite(fall).all()
    assert (runs[2].norm[-1] ** 2 >= 30.0).all()


def test_largest_fall_and_halving_gap():
    c = np.array([[0.0, 1.0], [1.0, 2.0], [0.5, 3.0], [2.0, 4.0]])
    ll = np.array([[1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]])
    np.testing.assert_allclose(M.largest_fall(c, ll), [0.25, 0.0])  # fall 0.5 relative to the last value 2
    assert np.isnan(M.largest_fall(c[:, :1], np.ones((4, 1))))[0]
    assert M.halving_gap(np.array([1.0, 2.0]), np.array([1.0, 1.4, 2.1])) == pytest.approx(0.1)


def test_batched_local_search_matches_single_centres():
    """K centres in one batch, each with its own generator, give each centre's single-point result."""
    fam, X, y = H.diagonal(2, 2), T([[1.0, 2.0]]), T([1.0])
    centres = T([[1.0, 0.0, 1.0, 0.0], [1.0, 0.3, 1.0, -0.3]])
    radii = np.array([0.01, 0.04])
    gens = lambda: [torch.Generator().manual_seed(s) for s in (3, 4)]
    batch = M.local_search(fam, centres, X, y, radii, starts=8, iters=100, generator=gens())
    for k in range(2):
        one = M.local_search(fam, centres[k], X, y, radii, starts=8, iters=100, generator=[gens()[k]])
        np.testing.assert_allclose(batch["gain"][k], one["gain"], rtol=1e-10, atol=1e-14)
    c = M.second_order_gain(radii, batch["gain"])
    assert c[0] > 0.1  # the depth-2 bad point: gain ~ r^2 / 2
    mask = T([0.0, 1.0, 0.0, 1.0])  # only the second coordinate may move
    masked = M.local_search(fam, centres[0], X, y, radii, starts=8, iters=100, mask=mask,
                            generator=torch.Generator().manual_seed(0))
    assert masked["gain"].shape == (2,) and (masked["gain"] > 0).all()
    with pytest.raises(ValueError, match="generators"):
        M.local_search(fam, centres, X, y, radii, starts=2, iters=2, generator=[torch.Generator()])
