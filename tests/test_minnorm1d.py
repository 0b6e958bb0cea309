"""Unit tests of lib.minnorm1d: closed forms, the cost formula, dual certificates, validation, the
old solver's values, and the certificate at n = 1000 (speed is measured by ``python -m lib bench``)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import minnorm1d as mn

FAST = settings(max_examples=12, deadline=None, derandomize=True)


def _data(seed, n, lo=-3.0, hi=3.0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(lo, hi, n))
    while np.min(np.diff(x)) < 0.05:
        x = np.sort(rng.uniform(lo, hi, n))
    return x, rng.normal(size=n)


def test_weights_and_kink_cost():
    p = np.array([-2.0, 0.0, 3.0])
    assert np.allclose(mn.weight(p, "l2"), np.sqrt(1 + p**2))
    assert np.allclose(mn.weight(p, "l1"), 1 + np.abs(p))
    assert np.allclose(mn.weight(p, "free"), 1.0)
    assert mn.kink_cost(p, [1.0, -2.0, 0.5], "l2") == pytest.approx(np.sqrt(5) + 2 + 0.5 * np.sqrt(10))
    x, y = _data(0, 6)
    p, s, v, c = mn.linear_spline(x, y)
    assert mn.pl_cost(x, y, "l2") == pytest.approx(mn.kink_cost(p, s, "l2"))
    assert np.allclose(mn.evaluate_kinks(x, p, s, v, c), y)


@FAST
@given(st.integers(0, 10_000))
def test_three_point_closed_form(seed):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-4, 4, 3))
    if np.min(np.diff(x)) < 0.1:
        x = np.array([-3.0, 0.2, 2.0])
    y = rng.normal(size=3)
    p, cost = mn.three_point(x, y)
    sol = mn.solve(x, y, penalty="l2")
    assert sol.cost == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert sol.n_kinks == 1 and sol.kinks[0][0] == pytest.approx(p, abs=1e-6)
    assert sol.gap < 1e-8 * (1 + cost)


def test_three_point_cases():
    # straddling 0 with x1 x2 < -1: kink at -1/x1, cheaper than at x2
    x, y = [-3.0, 0.5, 2.0], [1.0, 0.0, 1.0]
    p, cost = mn.three_point(x, y)
    kappa = abs(mn.secants(x, y)[1][0])
    assert p == pytest.approx(1 / 3)
    assert cost == pytest.approx(kappa * 3.5 / np.sqrt(10))
    assert cost < kappa * np.sqrt(1 + 0.25)
    assert mn.three_point([-2.0, 1.0, 3.0], [0, 2, 0])[0] == pytest.approx(0.5)  # x1 x2 < -1
    assert mn.three_point([-1.0, -0.5, 3.0], [0, 2, 0])[0] == pytest.approx(-1 / 3)  # x2 x3 < -1
    assert mn.three_point([1.0, 2.0, 3.0], [0, 1, 0])[0] == 2.0


@FAST
@given(st.integers(0, 10_000), st.integers(3, 8))
def test_biasfree_value_and_family(seed, n):
    x, y = _data(seed, n)
    sol = mn.solve(x, y, penalty="free")
    target = mn.biasfree_value(x, y)
    assert sol.cost == pytest.approx(target, rel=1e-9, abs=1e-12)
    assert sol.lower == pytest.approx(target, rel=1e-9, abs=1e-12)
    for p, s, v, c in (mn.linear_spline(x, y), mn.paired_interpolant(x, y), mn.paired_interpolant(x, y, offset=1)):
        assert np.allclose(mn.evaluate_kinks(x, p, s, v, c), y, atol=1e-9)
        assert mn.kink_cost(p, s, "free") == pytest.approx(target, rel=1e-12)
    assert mn.paired_interpolant(x, y)[0].size == mn.sparsest_kink_count(x, y)


def test_sparsest_count_runs():
    x = np.arange(7.0)
    assert mn.sparsest_kink_count(x, x**2) == 3  # one convex run of 5
    assert mn.sparsest_kink_count(x, np.array([0, 1, 0, 1, 0, 1, 0.0])) == 5  # alternating
    assert mn.sparsest_kink_count(x, np.abs(x - 3.0)) == 1
    assert mn.sparsest_kink_count(x, 2 * x + 1) == 0


@FAST
@given(st.integers(0, 10_000), st.integers(1, 4), st.sampled_from(["l2", "l1", "free"]))
def test_lp_value_equals_cost_formula_on_random_pl_functions(seed, k, penalty):
    """Force f on [p_1 - 1, p_k + 1] with regions between its kinks: the optimum is the formula."""
    rng = np.random.default_rng(seed)
    p = np.sort(rng.uniform(-4, 4, k))
    while k > 1 and np.min(np.diff(p)) < 0.1:
        p = np.sort(rng.uniform(-4, 4, k))
    s = rng.normal(size=k)
    v, c = rng.normal(size=2)
    knots = np.concatenate([[p[0] - 1], p, [p[-1] + 1]])
    vals = mn.evaluate_kinks(knots, p, s, v, c)
    regions = list(zip(knots[:-1], knots[1:], vals[:-1], vals[1:]))
    sol = mn.solve(None, None, regions=regions, penalty=penalty)
    formula = mn.kink_cost(p, s, penalty)
    assert sol.cost == pytest.approx(formula, rel=1e-9)
    assert sol.gap <= 1e-8 * (1 + formula)
    grid = np.linspace(knots[0], knots[-1], 101)
    assert np.allclose(sol(grid), mn.evaluate_kinks(grid, p, s, v, c), atol=1e-8)


@pytest.mark.parametrize("penalty", ["l2", "l1", "free"])
@pytest.mark.parametrize("affine", [True, False])
def test_dual_certificate(penalty, affine):
    x, y = _data(3, 7)
    sol = mn.solve(x, y, penalty=penalty, affine=affine)
    assert sol.residual < 1e-9
    assert sol.lower <= sol.cost + 1e-12
    assert sol.gap < 1e-8 * (1 + sol.cost)
    assert sol.cost <= sol.lp_value + 1e-9 * (1 + sol.cost)


def test_uniqueness_probe():
    x = np.arange(6.0) - 2.5
    y = (x + 2.5) ** 2 / 2
    l2 = mn.solve(x, y, penalty="l2")
    free = mn.solve(x, y, penalty="free")
    w6, w8 = (np.diff(mn.value_range(l2, 0.0, rel))[0] for rel in (1e-6, 1e-8))
    assert w8 < 1e-3 and w8 < 0.2 * w6  # shrinks like sqrt(rel): unique
    lo, hi = mn.value_range(free, 0.0, 1e-8)
    assert hi - lo > 0.4  # bias-free minimisers differ between the data


def test_counterexample_four_convex_points():
    """A run of four same-sign curvatures: the l2 minimiser has 3 kinks, the sparsest interpolant 2."""
    x = np.arange(6.0) - 2.5
    y = (x + 2.5) ** 2 / 2
    sol = mn.solve(x, y, penalty="l2")
    assert mn.sparsest_kink_count(x, y) == 2
    assert sol.n_kinks == 3
    p, s, _, _ = mn.paired_interpolant(x, y)
    assert mn.kink_cost(p, s, "l2") > sol.cost + 1e-3


def test_no_affine_term_conventions():
    x = np.array([-1.0, 0.5, 2.0])
    const = mn.solve(x, np.full(3, 2.0), penalty="l2", affine=False)
    assert const.cost == pytest.approx(2.0, rel=1e-9)
    assert mn.solve(x, np.full(3, 2.0), penalty="free", affine=False).cost == pytest.approx(0.0, abs=1e-9)
    y = np.array([0.3, -0.2, 1.0])
    with_aff = mn.solve(x, y, penalty="l2", affine=True)
    without = mn.solve(x, y, penalty="l2", affine=False)
    assert without.cost >= with_aff.cost - 1e-9
    assert without.residual < 1e-9 and without.gap < 1e-7 * (1 + without.cost)


def test_known_regions_without_affine_term():
    regions = [(-2.0, -1.0, 0.0, 0.0), (1.0, 2.0, 1.0, 1.0)]
    sol = mn.solve(None, None, regions=regions, penalty="l2", affine=False)
    grid = np.linspace(-2, -1, 11)
    assert np.allclose(sol(grid), 0.0, atol=1e-9)
    assert np.allclose(sol(np.linspace(1, 2, 11)), 1.0, atol=1e-9)
    assert sol.gap < 1e-7 * (1 + sol.cost)


def test_validation():
    with pytest.raises(ValueError, match="penalty"):
        mn.solve([0, 1], [0, 1], penalty="l3")
    with pytest.raises(ValueError, match="conflicting"):
        mn.solve([0, 0], [0, 1])
    with pytest.raises(ValueError, match="l < r"):
        mn.solve(None, None, regions=[(1.0, 0.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="disagrees"):
        mn.solve([0.5], [3.0], regions=[(0.0, 1.0, 0.0, 1.0)])
    with pytest.raises(ValueError):
        mn.three_point([0, 1], [0, 1])
    with pytest.raises(ValueError, match="distinct"):
        mn.secants([0, 0, 1], [0, 1, 2])


def test_penalized_fit_limits():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    y = np.array([3.0, 1.5, 0.8, 0.6, 1.2, 2.5])
    small = mn.solve_penalized(x, y, 1e-5)
    exact = mn.solve(x, y)
    assert np.max(np.abs(small(x) - y)) < 1e-3
    assert small.cost == pytest.approx(exact.cost, rel=1e-2)
    big = mn.solve_penalized(x, y, 1e3)  # the penalty wins: the affine least-squares fit
    assert big.cost < 1e-6
    slope, icpt = np.polyfit(x, y, 1)
    assert np.allclose(big(x), slope * x + icpt, atol=1e-5)
    with pytest.raises(ValueError):
        mn.solve_penalized(x, y, 0.0)


# -- regression: 32 points sampled from the known-regions examples (chapter 5) ---------------------
def _region_sample(name, n=32):
    import lib.known_regions as kr

    return kr.sample(kr.example(name), n, np.random.default_rng([0, 0, n]))


@pytest.mark.parametrize("penalty", mn.PENALTIES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("name", ["tent", "plateau", "hinge", "step", "shelf"])
def test_known_region_samples(name, affine, penalty):
    """Used to raise IndexError (column generation ran out of rounds after growing the dictionary past
    the last LP) or abort in SLSQP (polish with more equality constraints than variables)."""
    x, y = _region_sample(name)
    sol = mn.solve(x, y, penalty=penalty, affine=affine)
    assert sol.residual < 1e-9 * (1 + np.abs(y).max())
    assert np.all(np.isfinite(sol.p)) and sol.p.size == sol.r.size == sol.l.size
    assert sol.lower <= sol.cost + 1e-9 * (1 + sol.cost)
    assert sol.gap < 1e-8 * (1 + sol.cost)
    # lower = nu . T b / rho and dual = T^T nu / rho are the same number up to the rounding of the two
    # sums: at most 4 n eps sum_i |dual_i b_i|
    assert abs(sol.lower - float(sol.dual @ sol.b)) <= 4 * sol.b.size * 2.3e-16 * float(np.abs(sol.dual * sol.b).sum())
    assert sol.cost <= sol.lp_value + 1e-9 * (1 + sol.cost)
    d = np.diff(sol.dictionary)
    assert np.all(d > mn._COL_SEP * (1 + np.abs(sol.dictionary[1:])))  # no (near-)duplicate columns


def test_tent_sample_bias_penalised():
    """The reported case: one kink at 0 of jump -2 (the two lines of the tent meet there), cost 2."""
    x, y = _region_sample("tent")
    sol = mn.solve(x, y, penalty="l2", affine=True)
    p, s = sol.kinks
    assert sol.cost == pytest.approx(2.0, rel=1e-9)
    assert p.size == 1 and abs(p[0]) < 1e-6 and s[0] == pytest.approx(-2.0, rel=1e-9)
    lo, hi = mn.value_range(sol, 0.0, 1e-8)  # unique minimiser: f(0) = 1.5 pinned down
    assert lo <= 1.5 + 1e-6 and hi >= 1.5 - 1e-6 and hi - lo < 1e-3


@pytest.mark.parametrize("max_iter", [1, 2])
def test_column_generation_out_of_rounds(max_iter):
    """Stopping on max_iter returns the last LP's solution with a valid (if looser) certificate, and
    says so: a NotConvergedWarning naming the gap reached and the setting to change (or an error)."""
    x, y = _data(5, 40)
    with pytest.warns(mn.NotConvergedWarning, match=r"relative gap .* > gap_tol=1e-09 .*raise max_iter"):
        sol = mn.solve(x, y, penalty="l2", affine=True, max_iter=max_iter, polish=False)
    assert sol.iterations == max_iter and not sol.info["converged"]
    assert sol.info["rel_gap"] > 1e-9  # what the warning reports
    assert sol.residual < 1e-9 * (1 + np.abs(y).max())
    assert sol.lower <= sol.cost * (1 + 1e-12)
    with pytest.raises(mn.NotConvergedError, match="max_iter"):
        mn.solve(x, y, penalty="l2", max_iter=max_iter, polish=False, on_fail="raise")
    with pytest.raises(ValueError, match="max_iter"):
        mn.solve(x, y, max_iter=0)
    with pytest.raises(ValueError, match="on_fail"):
        mn.solve(x, y, on_fail="ignore")


def test_dictionary_has_no_near_duplicates():
    # linspace's midpoint (~1e-17) next to the exact 0, and column-generation candidates within
    # rounding of existing columns, must not give near-parallel LP columns
    t = np.linspace(-0.9998, 0.9971, 32)
    for affine in (True, False):
        P = mn._base_dictionary(t, "l2", affine, (), 201, 1e4)
        assert np.all(np.diff(P) > mn._COL_SEP * (1 + np.abs(P[1:])))
        assert np.isin(t, P).all() and 0.0 in P
    P = np.array([-1.0, 0.0, 1.0])
    out = mn._add_columns(P, [1e-17, np.nan, np.inf, 0.5, 0.5 + 1e-13, -1.0 - 1e-12])
    assert np.array_equal(out, [-1.0, 0.0, 0.5, 1.0])


def test_polish_skips_overdetermined_slsqp():
    """SLSQP cannot take more equality constraints than variables (and may corrupt the heap)."""
    x = np.linspace(-1, 1, 9)
    y = np.abs(x)
    sol = mn.solve(x, y, penalty="l2", affine=True)
    assert sol.n_kinks == 1 and sol.cost == pytest.approx(2.0, rel=1e-9)
    assert sol.residual < 1e-12


# -- inputs ------------------------------------------------------------------------------------------
def test_inputs_are_validated():
    with pytest.raises(ValueError, match=r"invalid x: expected a 1-D array .* shape \(3, 2\)"):
        mn.solve(np.zeros((3, 2)), np.zeros(6))
    with pytest.raises(ValueError, match=r"invalid y: expected a 1-D array .* shape \(1, 3\)"):
        mn.solve([0.0, 1.0, 2.0], [[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match=r"invalid x: expected a 1-D array"):
        mn.secants(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        mn.solve([0.0, np.nan, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        mn.solve([0.0, 1.0, 2.0], [0.0, np.inf, 2.0])
    with pytest.raises(ValueError, match="same length"):
        mn.solve([0.0, 1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="at least two"):
        mn.solve([1.0], [2.0])
    with pytest.raises(ValueError, match="gap_tol"):
        mn.solve([0.0, 1.0], [0.0, 1.0], gap_tol=0.0)


def test_unsorted_input_and_duplicates():
    x, y = _data(11, 9)
    o = np.random.default_rng(0).permutation(9)
    a, b = mn.solve(x, y), mn.solve(x[o], y[o])
    assert a.cost == b.cost and np.array_equal(a.p, b.p)
    # a repeated, consistent point is one constraint
    c = mn.solve(np.append(x, x[3]), np.append(y, y[3]))
    assert c.cost == pytest.approx(a.cost, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e6])
def test_scales(scale):
    """Certified to gap_tol at every scale; three points against the closed form (the LP's value
    carries a relative error of a few 1e-12 from HiGHS' tolerances and the rescaling)."""
    x, y = _data(2, 12)
    sol = mn.solve(scale * x, scale * y)
    assert sol.info["converged"] and sol.info["rel_gap"] <= 1e-9
    assert sol.residual <= 1e-9 * scale * (1 + np.abs(y).max())
    t = scale * np.array([-1.0, 0.3, 1.7])
    v = scale * np.array([0.5, -0.2, 1.0])
    p, cost = mn.three_point(t, v)
    s3 = mn.solve(t, v)
    assert s3.cost == pytest.approx(cost, rel=1e-9) and s3.kinks[0][0] == pytest.approx(p, rel=1e-9)


# -- structure and accuracy ----------------------------------------------------------------------------
def test_alternating_curvature_is_the_linear_spline():
    """Runs of length one and no x_i x_{i+1} < -1: the bias-penalised minimiser is the straight-line
    interpolant (book's proposition), cost sum_i |kappa_i| sqrt(1 + x_i^2)."""
    x = np.array([-3.0, -2.0, -0.5, 0.3, 1.2, 2.5])
    y = np.array([0.5, 1.5, 0.2, 0.6, -0.4, 0.9])
    sol = mn.solve(x, y)
    p, s, _, _ = mn.linear_spline(x, y)
    assert sol.cost == pytest.approx(mn.kink_cost(p, s, "l2"), rel=1e-12)
    assert np.allclose(sol.kinks[0], p, atol=1e-12)


def test_newton_positions_and_perturbation():
    """The convex run centred at 0 (chapter 3's counterexample): kinks at -4/3, 0, 4/3 to rounding
    (Newton on the tangency conditions), and perturbing the data by 1e-6 moves the unique minimiser by
    O(1e-6) (a kink position error of d would show as |jump| d ~ 2 d)."""
    x = np.arange(6.0) - 2.5
    y = (x + 2.5) ** 2 / 2
    sol = mn.solve(x, y)
    assert sol.info["newton"] and sol.info["rel_gap"] < 1e-14
    assert np.allclose(sol.kinks[0], [-4 / 3, 0.0, 4 / 3], atol=1e-12)
    u = np.random.default_rng(3).uniform(-1, 1, 6)
    pert = mn.solve(x, y + 1e-6 * u)
    grid = np.linspace(x[0], x[-1], 401)
    assert np.max(np.abs(pert(grid) - sol(grid))) <= 10 * 1e-6


def test_post_processing_has_one_kink_per_interval_and_sign():
    x, y = _data(7, 30)
    sol = mn.solve(x, y, penalty="l2")
    p, s = sol.kinks
    seg = np.searchsorted(sol.t, p, side="right")
    pairs = set(zip(seg.tolist(), np.sign(s).astype(int).tolist()))
    assert len(pairs) == p.size  # no two same-sign kinks in one interval between data points


# -- the old solver's values (computed with the code before issue #19, stored here) ----------------------
def _random(seed, n):
    rng = np.random.default_rng([seed, n])
    x = np.sort(rng.uniform(-3, 3, n))
    return x, rng.normal(size=n)


# (n, seed, penalty, affine, old cost, old certified gap); only rows where the old solver converged
OLD = [
    (8, 0, "l2", True, 41.68157046928729, 4.28e-10),
    (8, 1, "l2", False, 49.664827990273196, 1.23e-10),
    (15, 0, "l2", True, 209.34336553961273, 1.09e-09),
    (15, 0, "l1", True, 285.724019583566, 3.98e-12),
    (15, 1, "free", False, 347.0975123426965, 1.67e-11),
    (25, 0, "l2", True, 9889.056099167574, 1.36e-07),
    (25, 1, "l1", False, 588.3621968163611, 5.16e-10),
    (40, 1, "free", True, 1727.836028434119, 1.7e-09),
]


@pytest.mark.parametrize("n,seed,penalty,affine,old,old_gap", OLD)
def test_old_solver_values(n, seed, penalty, affine, old, old_gap):
    """Both costs lie in [optimum, optimum + own gap], so they differ by at most the larger gap (plus
    the rounding of summing costs of size ~old: 1e-13 old)."""
    x, y = _random(seed, n)
    sol = mn.solve(x, y, penalty=penalty, affine=affine)
    assert sol.info["converged"]
    assert abs(sol.cost - old) <= max(old_gap, sol.gap) + 1e-13 * old


def test_certificate_at_n_1000():
    """n = 1000 random points: certified to 1e-9, and the certificate checked independently by the
    closed-form dual check of lib.known_regions (prefix sums, another implementation): its ratio kappa
    is at most 1 up to rounding and its bound is the solver's lower bound."""
    from lib import known_regions as kr

    rng = np.random.default_rng([19, 1000])
    x, y = rng.uniform(-3, 3, 1000), rng.normal(size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mn.NotConvergedWarning)
        sol = mn.solve(x, y)
    assert sol.info["converged"] and sol.info["rel_gap"] <= 1e-9
    assert sol.lower <= sol.cost * (1 + 1e-12)
    # residual: rounding of sum_k s_k (t - p_k)_+, at most ~ 8 eps sum_k |s_k| |t - p_k|
    mag = np.maximum(sol.t[:, None] - sol.p, 0) @ np.abs(sol.r) + abs(sol.v) * np.abs(sol.t) + abs(sol.c)
    assert np.all(np.abs(sol(sol.t) - sol.b) <= 8 * 2.3e-16 * mag + 1e-15)
    bound, kappa = kr.dual_lower_bound(sol.dual, sol.t, sol.b, "l2", True, t_max=float(sol.t[-1]) + 1.0)
    assert kappa <= 1 + 1e-9
    assert bound == pytest.approx(sol.lower, rel=1e-9)


# -- the merge rule (both conventions) ------------------------------------------------------------------
def test_merge_rule_on_atoms():
    """Same-sign atoms of one facing merge at their jump-weighted mean unless a constraint point or a region
    lies strictly between them; an atom on a constraint point joins its left neighbours; mixed facings stay."""
    prob = mn._Problem(np.array([0.0, 1.0, 2.0, 3.0]), np.zeros(4), ((2.0, 3.0, 0.0, 0.0),), "l2", False, 1e4)
    atoms = {"R": (np.array([0.2, 0.6, 1.0, 1.5, 2.0]), np.array([1.0, 3.0, 2.0, 1.0, 1.0])),
             "L": (np.array([-1.0, -0.5, 0.4]), np.array([-1.0, -1.0, 5.0]))}
    out = mn._merge_runs(prob, atoms)
    # R: {0.2, 0.6, 1.0} merge (1.0 is a constraint point, none strictly inside); {1.5, 2.0} merge; but
    # 0.4 (an L atom) sits between 0.2 and 0.6: a mixed group, left as it is
    p, z = out["R"]
    assert np.allclose(p, [0.2, 0.6, 1.0, (1.5 + 2.0) / 2]) and np.allclose(z, [1.0, 3.0, 2.0, 2.0])
    p, z = out["L"]
    assert np.allclose(p, [-0.75, 0.4]) and np.allclose(z, [-2.0, 5.0])
    atoms = {"R": (np.array([0.2, 0.6, 1.0, 2.5]), np.array([1.0, 3.0, 2.0, 1.0]))}
    p, z = mn._merge_runs(prob, atoms)["R"]
    assert np.allclose(p, [(0.2 + 1.8 + 2.0) / 6, 2.5]) and np.allclose(z, [6.0, 1.0])  # 2.5: inside the region


def _random_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 20))
    return np.sort(rng.uniform(-3, 3, n)), rng.normal(size=n)


def test_merge_rule_in_solutions():
    """No two kinks of a solution break the rule, in both conventions; the bias-free answer on a convex run
    is the paired interpolant (the straight-line interpolant's kinks at consecutive points merge)."""
    x, y = _random_case(2)  # without the merge, two left-facing kinks 3.6e-3 apart (one on a data point)
    sol = mn.solve(x, y, penalty="free", affine=False)
    assert np.min(np.diff(sol.kinks[0])) > 1e-2 and sol.gap < 1e-8 * sol.cost
    for penalty in ("l2", "free", "l1"):
        for affine in (True, False):
            sol = mn.solve(x, y, penalty=penalty, affine=affine)
            for fam in (sol.r, sol.l):
                q, j = sol.p[fam != 0], fam[fam != 0]
                for k in range(q.size - 1):
                    between = np.any((sol.t > q[k]) & (sol.t < q[k + 1]))
                    other = np.any((sol.p > q[k]) & (sol.p < q[k + 1]) & ((sol.r != 0) | (sol.l != 0)))
                    assert np.sign(j[k]) != np.sign(j[k + 1]) or between or other, (penalty, affine, q[k:k + 2])
    x = np.arange(6.0)
    y = (x - 1.7) ** 2
    free = mn.solve(x, y, penalty="free")
    pp, ss, _, _ = mn.paired_interpolant(x, y)
    assert free.n_kinks == mn.sparsest_kink_count(x, y) == 2
    assert np.allclose(free.kinks[0], pp, atol=1e-9) and np.allclose(free.kinks[1], ss, atol=1e-9)


def test_close_kinks_of_both_facings_can_be_genuine():
    """Without the affine term a right- and a left-facing kink 4e-3 apart belong to the certified minimiser:
    the best interpolant with one kink there instead costs more, by far more than the certified gap."""
    x, y = _random_case(48)
    sol = mn.solve(x, y, penalty="l2", affine=False)
    p, s = sol.kinks
    i = int(np.argmin(np.diff(p)))
    assert np.diff(p)[i] < 5e-3 and np.sign(s[i]) == np.sign(s[i + 1])
    pbar = (abs(s[i]) * p[i] + abs(s[i + 1]) * p[i + 1]) / (abs(s[i]) + abs(s[i + 1]))
    prob = mn._Problem(sol.t, sol.b, (), "l2", False, sol.far)
    merged = prob.lp(mn._dictionary(prob, np.sort(np.concatenate([np.delete(p, [i, i + 1]), [pbar]]))))
    assert merged["value"] > sol.cost + 1e3 * max(sol.gap, 1e-12 * sol.cost)


# -- interpolants with prescribed kinks, and the best fit with few kinks --------------------------------
def test_interpolant_with_kinks():
    x, y = [-2.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 3.0]
    p, s, v, c = mn.interpolant_with_kinks(x, y, [2.0, 0.5])
    assert np.allclose(p, [0.5, 2.0]) and np.allclose(s, [1.2, 1.0]) and v == pytest.approx(-0.2)
    assert mn.kink_cost(p, s, "l2") == pytest.approx(8 / np.sqrt(5))
    with pytest.raises(ValueError, match="no interpolant"):
        mn.interpolant_with_kinks(x, y, [0.0])  # 1, 2, 3 would be collinear
    assert mn.interpolant_with_kinks(x, y, [1.5])[1] == pytest.approx([2.0])  # the sparsest interpolant


def test_best_fit_with_kinks():
    """Enough kinks: the best fit is the global minimum of the lasso (whose grid overestimates it by at most
    a few 1e-7 relative); the sparsest number of kinks on the run of four costs more; lam -> the limits."""
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    y = np.array([3.0, 1.5, 0.8, 0.6, 1.2, 2.5])
    lasso = mn.solve_penalized(x, y, 1e-2)
    two, p, s = mn.best_fit_with_kinks(x, y, 1e-2, 2)
    assert two > lasso.objective * 1.005 and p.size == s.size == 2 and (s > 0).all()
    three = mn.best_fit_with_kinks(x, y, 1e-2, 3, grid=21)[0]
    assert three == pytest.approx(lasso.objective, rel=1e-6)
    with pytest.raises(ValueError, match="n_kinks"):
        mn.best_fit_with_kinks(x, y, 1e-2, 0)
    with pytest.raises(ValueError, match="lam"):
        mn.best_fit_with_kinks(x, y, 0.0, 2)
