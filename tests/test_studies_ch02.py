"""Tests of lib.studies.ch02: the parameter dataclasses, describe, the measurements behind the
chapter's claims (on small hand-made inputs with known answers), and tiny runs of the studies."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lib import homogeneous as H
from lib.book.claims import ClaimRegistry
from lib.checks import ParameterError
from lib.studies import ch02

torch.set_num_threads(1)  # tiny tensor programs: one thread is far faster on a shared machine
CPU = torch.device("cpu")
T = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64)
TINY_SEARCH = ch02.Search(radii=(0.01, 0.03), starts=8, iters=60)


def _kw(p) -> dict:
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


# -- parameters -------------------------------------------------------------------------------
def test_params_are_one_frozen_dataclass_per_profile_fast_derived_from_full():
    fast, full = ch02.params("fast"), ch02.params("full")
    assert [f.name for f in dataclasses.fields(fast)] == [fn.__name__ for fn in ch02.STUDIES]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.fc_linear.steps = 1
    # the shared training settings come from the module constants
    for P in (fast, full):
        for name in ("fc_linear", "diagonal", "relu_width2", "open_sets", "random_relu"):
            p = getattr(P, name)
            assert (p.eta, p.eta_min) == (ch02.ETA, ch02.ETA_MIN)
        assert P.escape.eta == ch02.ETA
        assert P.fc_linear.temp == P.diagonal.temp == P.relu_width2.temp == P.open_sets.temp_control == ch02.TEMP
        assert P.random_relu.temp == P.open_sets.temp == ch02.TEMP_SOFT
        assert P.relu_width2.delta == P.open_sets.delta == P.random_relu.delta == ch02.DELTA
        # the smoothed-margin study runs on the data of the FC study
        assert (P.smoothed.n, P.smoothed.d, P.smoothed.width) == (P.fc_linear.n, P.fc_linear.d, P.fc_linear.width)
        assert P.diagonal.search is P.relu_width2.search
    assert fast.fc_linear.n == full.fc_linear.n and fast.escape.eta == full.escape.eta
    with pytest.raises(ParameterError, match="profile"):
        ch02.params("huge")


@pytest.mark.parametrize(
    ("study", "field", "value"),
    [
        ("fc_linear", "depths", (1, 2)),
        ("fc_linear", "steps", 0),
        ("fc_linear", "early", 5000),
        ("diagonal", "eta_min", 1.0),
        ("relu_width2", "delta", -0.2),
        ("open_sets", "local_points", 0),
        ("random_relu", "widths", (0, 2)),
        ("random_relu", "compare", -1),
        ("escape", "eps", (1e-3, 0.7)),
        ("smoothed", "h", 0.0),
    ],
)
def test_parameter_validation_names_the_field(study, field, value):
    with pytest.raises(ParameterError, match=field):
        dataclasses.replace(getattr(ch02.FAST, study), **{field: value})
    with pytest.raises(ParameterError, match="radii"):
        ch02.Search(radii=(), starts=1, iters=1)


def test_describe_lists_shared_values_once():
    df = ch02.describe(ch02.params("fast")).reset_index()
    assert list(df.columns) == ["study", "parameter", "value"]
    shared = df[df.study == "(shared)"]
    assert {"eta", "eta_min", "delta"} <= set(shared.parameter)
    assert (df.parameter == "eta").sum() == 1  # listed once
    assert df[(df.study == "escape") & (df.parameter == "eps")].value.item() == "9 values in [1e-10, 0.01]"
    assert len(df) < 45


# -- data, open sets and classes ----------------------------------------------------------------------
def test_open_set_probabilities_match_the_gaussian():
    """The closed-form Gaussian probability of each open set against a Monte Carlo estimate."""
    delta, n = ch02.DELTA, 400_000
    rng = np.random.default_rng(0)
    X, _ = ch02.relu_data(delta)
    w, v = rng.standard_normal((n, 2, 2)), rng.standard_normal((n, 2))
    pre = w @ X.T  # [n, neuron, point]
    both, dead = (pre > 0).all(-1), (pre < 0).all(-1)
    x1 = (pre[..., 0] > 0) & (pre[..., 1] < 0)
    x2 = (pre[..., 0] < 0) & (pre[..., 1] > 0)
    pos = v > 0
    mc = {
        "split set": (both & pos).all(1).mean(),
        "dead set": ((both[:, 0] & pos[:, 0] & dead[:, 1]) | (both[:, 1] & pos[:, 1] & dead[:, 0])).mean(),
        "one per point": ((x1[:, 0] & x2[:, 1]) | (x1[:, 1] & x2[:, 0]))[pos.all(1)].mean() * 0.25,
    }
    for name, p in mc.items():
        q = ch02.open_set_probability(name, delta)
        assert q == pytest.approx(p, rel=4 / math.sqrt(p * n)), name
    assert ch02.open_set_probability("split set", delta) == pytest.approx((math.atan(delta) / (2 * math.pi)) ** 2)


def test_cone_sample_stays_in_its_cone_and_is_gaussian_in_radius():
    rng = np.random.default_rng(1)
    lo, hi = ch02.open_set_cones(0.2)["both"]
    w = ch02.cone_sample(rng, 20_000, lo, hi)
    ang = np.arctan2(w[:, 1], w[:, 0])
    assert (ang > lo).all() and (ang < hi).all()
    assert np.mean(np.sum(w**2, 1)) == pytest.approx(2.0, rel=0.03)  # E|w|^2 = 2 for N(0, I_2)


def test_classify_relu_on_the_analytic_points():
    delta = 0.2
    X, y = ch02.relu_data(delta)
    pts = ch02.relu_points(delta)
    th = T(np.stack([pts["dead"], pts["split"], pts["optimum"], -pts["optimum"]]))
    c = ch02.classify_relu(H.relu(2, 2), th, T(X), T(y), delta)
    assert list(c["limit"]) == ["bad, zero neuron", "bad, split", "global optimum", "not separated"]
    np.testing.assert_array_equal(c["n_zero"][:3], [1, 0, 0])
    # a padded (zero) neuron does not count as a zero neuron
    fam4 = H.relu(2, 4)
    w, v = np.zeros((1, 4, 2)), np.zeros((1, 4))
    w[0, :2] = pts["split"][:4].reshape(2, 2)
    v[0, :2] = pts["split"][4:]
    c4 = ch02.classify_relu(fam4, fam4.pack([T(w), T(v)]), T(X), T(y), delta, mask=T([[1, 1, 0, 0]]))
    assert c4["limit"][0] == "bad, split"


# -- measurements -------------------------------------------------------------------------------------
def test_dead_coordinate_dual():
    theta = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    z = np.array([[1.0, 2.0], [0.5, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(ch02.dead_coordinate_dual(theta, z, 2), [2.0, 0.5, -np.inf])


def test_loglog_slope_and_non_global_fraction():
    r = np.geomspace(1e-3, 1e-1, 7)
    assert ch02.loglog_slope(r, 3 * r**2) == pytest.approx(2.0)
    assert math.isnan(ch02.loglog_slope(r, r - 0.01))
    assert ch02.non_global_fraction(np.array([1.0, 1.0005, 0.9]), 1.0) == pytest.approx(1 / 3)


def _local_table() -> pd.DataFrame:
    r = np.array([0.01, 0.02, 0.04])
    rows = [("second order", 0, 0.2 * r**2), ("second order", 1, 0.1 * r**2), ("first order", 0, 0.5 * r),
            ("none", 0, -(r**2))]
    return pd.DataFrame([{"point": p, "centre": c, "radius": ri, "gain": gi} for p, c, g in rows for ri, gi in zip(r, g)])


def test_second_order_and_local_verdicts():
    so = ch02.second_order(_local_table())
    assert so["gain / r^2"].tolist() == pytest.approx([0.2, 0.1, 50.0, -1.0])
    assert so["exponent"].iloc[:3].tolist() == pytest.approx([2.0, 2.0, 1.0])
    v = ch02.local_verdicts([_local_table()])
    assert v.loc["second order", "centres"] == 2
    assert v.loc["second order", "min_gain_over_r2"] == pytest.approx(0.1)
    assert v.loc["first order", "max_exponent_error"] == pytest.approx(1.0)
    assert np.isnan(v.loc["none", "max_exponent_error"])


def test_local_checks_reads_the_named_points():
    names = list(ch02.NONLOCAL_POINTS) + [ch02.NOT_KKT, ch02.SPLIT, ch02.SPLIT + ch02.LAYER1, ch02.SPLIT_CONTROL,
                                          ch02.SPLIT_CONTROL + ch02.LAYER1]
    v = pd.DataFrame({"centres": 1, "min_gain_over_r2": np.arange(len(names), dtype=float),
                      "max_gain_over_r2": 10 + np.arange(len(names), dtype=float),
                      "max_exponent_error": 0.01 * np.arange(len(names))}, index=names)
    m = ch02.local_checks(v)
    assert m["nonlocal_min"] == 0.0 and m["nonlocal_min_split"] == 5.0
    assert m["exponent_error"] == pytest.approx(0.02) and m["exponent_error_not_kkt"] == pytest.approx(0.04)
    assert m["split_max"] == 15.0 and m["split_max_zero"] == 13.0
    assert m["split_layer1_max"] == 16.0 and m["split_layer1_control"] == 18.0
    assert ch02.nonlocal_coefficients(v) == dict(zip(ch02.NONLOCAL_POINTS, [0.0, 1.0, 2.0, 3.0]))


def test_binomial_lower_tail_is_hoeffding():
    assert ch02.binomial_lower_tail(128, 1.0, 64) == pytest.approx(math.exp(-64))
    assert ch02.binomial_lower_tail(10, 0.3, 5) == 1.0


def test_escape_fit_and_flow_exponent_on_synthetic_tables():
    x = np.log(1 / np.geomspace(1e-2, 1e-8, 7))
    df = pd.DataFrame({"depth": 2, "log_inv_eps": x, "steps": 3 + 20 * x, "clock_s": 0.05 * (3 + 20 * x),
                       "log_flow_time": 5 * np.exp(2.1 * x)})
    fit = ch02.escape_fit(df)
    assert fit.loc[2, "slope"] == pytest.approx(20.0) and fit.loc[2, "R2"] == pytest.approx(1.0)
    assert ch02.flow_time_exponent(df, 2) == pytest.approx(2.1)
    assert ch02.flow_time_exponent(df, 2, "clock_s") < 0.2
    with pytest.raises(ParameterError, match="max_steps"):
        ch02.escape_fit(df.assign(steps=np.nan))


def test_fc_checks_and_random_checks_on_a_hand_made_result():
    runs = pd.DataFrame({"depth": [2, 2], "run": [0, 1], "gamma": [1.0, 0.9995], "target": 1.0,
                         "align": [1e-9, 2e-9], "rank1_defect": [1e-15, 0.0], "kkt_residual": [0.01, 0.02],
                         "gamma_unannealed": [0.7, 0.8], "align_unannealed": [0.1, 0.2], "rank1_early": [0.9, 0.5],
                         "kkt_unannealed": [0.9, 0.8]})
    fc = {"runs": runs, "gamma_svm": 2.0,
          "per_layer": pd.DataFrame({"depth": [2, 2], "layer": [1, 2], "ratio": [0.9999, 1.0],
                                     "ratio_teacher_point": [0.6, 1.0]}),
          "teacher_point": pd.DataFrame({"depth": [2], "gamma": [0.5], "kkt_residual": [0.8]})}
    m = ch02.fc_checks(fc)
    assert m["gamma_error"] == pytest.approx(5e-4) and m["gamma_error_unannealed"] == pytest.approx(0.3)
    assert m["align"] == 2e-9 and m["rank1_early"] == 0.9 and m["kkt"] == 0.02 and m["kkt_teacher"] == 0.8
    assert m["layer"] == pytest.approx(1e-4) and m["layer_teacher"] == pytest.approx(0.4)
    assert ch02.fc_reported(fc) == {"gamma depth 2": pytest.approx(0.99975), "target depth 2": 1.0, "gamma_SVM": 2.0}
    rsum = pd.DataFrame({"P(bad | separated)": [0.1], "bad (gamma=delta/2)": [30]}, index=pd.Index([2], name="width"))
    assert ch02.random_checks(rsum, fc) == {"bad_fraction": 0.1, "bad_events": 30, "fc_non_global": 0.0}


def test_summary_table_counts_evidence_and_lists_identities_apart(tmp_path):
    reg = ClaimRegistry("t", {}, path=tmp_path / "t.json", write=False)
    reg.check("ch02-a", "a", paper="p", where="w", source="paper", measured=0.0, upper=1.0, control=("wrong", 2.0), quiet=True)
    reg.check("ch02-b", "b", paper="p", where="w", source="paper", measured=0.0, upper=1.0, kind="identity", quiet=True)
    tab = ch02.summary_table(reg.claims, rows=[("row 1", ["ch02-a", "ch02-b"]), ("row 2", ["ch02-b"])])
    assert tab.loc["row 1", "evidence"] == "a" and tab.loc["row 1", "identities"] == "b"
    assert tab.loc["row 1", "passed"] == "1/1" and tab.loc["row 1", "check"] == "✓"
    assert tab.loc["row 2", "check"] == "identities only"
    with pytest.raises(KeyError, match="ch02-c"):
        ch02.summary_table(reg.claims, rows=[("row", ["ch02-c"])])
    ct = ch02.claims_table(reg.claims)
    assert ct.loc["ch02-a", "control"] == 2.0 and np.isnan(ct.loc["ch02-b", "control"])


def test_every_summary_row_cites_the_claims_of_the_chapter():
    """Every claim id of the chapter source appears in a summary row, and vice versa."""
    import re
    from pathlib import Path

    src = (Path(__file__).resolve().parents[1] / "book" / "02-margin-maximization.md").read_text()
    ids = set(re.findall(r'ctx\.claim\("(ch02-[a-z0-9-]+)"', src))
    cited = {i for _, row in ch02.SUMMARY_ROWS for i in row}
    assert cited == ids


# -- tiny runs of the studies ---------------------------------------------------------------------------
def test_diagonal_tiny_run_controls_fail_and_limits_hold():
    res = ch02.diagonal(inits=2, steps=1000, search=TINY_SEARCH, early=10, eta=ch02.ETA, eta_min=1e-4,
                        temp=ch02.TEMP, device=CPU, seed=0)
    m = ch02.diagonal_checks(res)
    assert m["d2_special_gamma"] == pytest.approx(0.5, abs=1e-8) and m["d2_perturbed_gamma"] > 0.9
    assert m["d2_kkt"] < 1e-8 < 1e-2 < m["d2_kkt_early"]
    assert m["d2_dead_dual"] == pytest.approx(2.0) and m["d2_dead_dual_generic"] == pytest.approx(0.5)
    assert m["dense_min_weight_zero_weight"] == 0.0 and m["dense_error_zero_weight"] == pytest.approx(0.25)
    assert m["d3_kkt"] < 1e-8 < 1e-2 < m["d3_kkt_face"] and m["layer"] < 1e-6 < 1e-3 < m["layer_face"]
    assert len(ch02.diag2_table(res)) == 3 and len(ch02.diag3_table(res)) == 4 and len(ch02.dense_table(res)) == 3
    assert set(res["local"]["point"]) == {ch02.NONLOCAL_POINTS[0], ch02.NONLOCAL_POINTS[1], ch02.NOT_KKT}


def test_relu_width2_tiny_run():
    res = ch02.relu_width2(steps=2000, search=TINY_SEARCH, early=10, delta=0.2, eta=ch02.ETA, eta_min=ch02.ETA_MIN,
                           temp=ch02.TEMP, device=CPU, seed=0)
    m = ch02.relu_checks(res)
    assert m["dead_gamma"] == pytest.approx(0.1, rel=1e-6) and m["optimum_gamma"] == pytest.approx(res["gamma_opt"], rel=1e-6)
    assert m["dead_kkt"] < 1e-2 < m["dead_kkt_early"]
    assert m["dead_hmax"] == pytest.approx(np.sqrt(1.04) / 0.4, rel=1e-5) and m["optimum_hmax"] == pytest.approx(1.0)
    assert m["layer1_ratio"] < 1 and len(ch02.relu_table(res)) == 2


def test_open_sets_tiny_run():
    res = ch02.open_sets(n=6, steps=3000, search=TINY_SEARCH, local_points=2, delta=0.2, eta=ch02.ETA, eta_min=ch02.ETA_MIN,
                         temp=ch02.TEMP_SOFT, temp_control=ch02.TEMP, device=CPU, seed=0)
    runs = res["runs"]
    assert len(runs) == 24 and set(runs["set"]) == set(ch02.OPEN_SETS)
    m = ch02.open_set_checks(res)
    assert m["dead_set_zero"] == 1.0 and m["one_per_point_split"] == 0.0 and m["one_per_point_global"] == 1.0
    assert m["split_set_split"] > 0.5 and m["split_kkt"] < 1e-4 < 1e-3 < m["split_kkt_control_cap"]
    tab = ch02.open_set_summary(res)
    assert tab.loc[("split set", ch02.TEMP_SOFT), "runs"] == 6


def test_random_relu_tiny_run_compares_the_uncapped_trainer():
    kw = {**_kw(ch02.params("fast").random_relu), "widths": (2, 3), "inits": 6, "steps": 300, "compare": 2}
    df = ch02.random_relu(**kw, device=CPU, seed=0)
    assert len(df) == 12 and (df["limit_uncapped"] != "").sum() == 4
    s = ch02.random_summary(df)
    assert list(s.index) == [2, 3] and (s["compared uncapped"] == 2).all()
    assert set(ch02.random_reported(s)) >= {"width 2 inits", "width 3 same class uncapped"}


def test_escape_flow_time_matches_the_derivation():
    res = ch02.escape(eps=(1e-2, 1e-4, 1e-6, 1e-8), eta=0.05, max_steps=1000, device=CPU, seed=0)
    m = ch02.escape_checks(res)
    assert m["slope_error"] < 0.01 < m["slope_error_continuous"]
    assert m["flow_exponent"] == pytest.approx(res["flow_exponent_pred_depth2"], abs=0.02)
    assert m["flow_exponent_clock"] < 0.5 and m["r2"] > 0.999 > m["r2_flow_time"]
    with pytest.raises(ParameterError, match="eps"):
        ch02.escape(eps=(0.0,), eta=0.05, max_steps=10, device=CPU, seed=0)


def test_smoothed_tiny_run_smoothed_monotone_hard_margin_falls():
    res = ch02.smoothed(n=12, d=4, width=6, inits=2, h=0.2, scale_max=15.0, max_steps=2000, q0=3.0, device=CPU, seed=0)
    m = ch02.smoothed_checks(res)
    assert m["fall_smoothed"] <= 1e-9 and m["fall_hard"] > 1e-2 and m["halving"] < 1e-5
