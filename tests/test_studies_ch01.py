"""Tests of lib.studies.ch01: the parameter dataclasses, describe, the measurements behind the
chapter's claims (on small hand-made tables with known answers), and tiny runs of the studies."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from lib.checks import ParameterError
from lib.studies import ch01

# -- parameters -------------------------------------------------------------------------------


def test_params_are_one_frozen_dataclass_per_profile_fast_derived_from_full():
    fast, full = ch01.params("fast"), ch01.params("full")
    assert [f.name for f in dataclasses.fields(fast)] == [fn.__name__ for fn in ch01.STUDIES]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.gamma3d.T = 1.0
    # values shared between studies come from one place
    assert fast.gamma3d.dt_max == fast.phase2d.dt_max == ch01.DT_MAX
    assert fast.leaky.kappa_max == fast.relu_random.kappa_max == ch01.KAPPA_MAX
    assert fast.leaky.horizon == full.relu_random.horizon == ch01.HORIZON
    # fast differs from full only where it says so
    assert fast.gamma3d.init == full.gamma3d.init and fast.net.dt_gamma == full.net.dt_gamma
    assert set(ch01.SPEC_GAMMAS) <= set(fast.gamma3d.gammas) and len(fast.gamma3d.gammas) == 25
    with pytest.raises(ParameterError, match="profile"):
        ch01.params("medium")


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (ch01.Gamma3d, "gammas", (1.0, -1.0)),
        (ch01.Gamma3d, "T", -1.0),
        (ch01.Phase2d, "gammas", (0.0, 1.0)),
        (ch01.Phase2d, "w0", (1.0, 0.5)),
        (ch01.Leaky, "slopes", (1.5,)),
        (ch01.Leaky, "record_every", 99),
        (ch01.RatioSearch, "keep", 10_000),
        (ch01.Balance, "etas", (0.0,)),
        (ch01.Net, "widths", (0, 2)),
    ],
)
def test_parameter_validation_names_the_field(cls, field, value):
    name = {
        ch01.Gamma3d: "gamma3d",
        ch01.Phase2d: "phase2d",
        ch01.Leaky: "leaky",
        ch01.RatioSearch: "ratio_search",
        ch01.Balance: "balance",
        ch01.Net: "net",
    }[cls]
    base = getattr(ch01.FAST, name)
    with pytest.raises(ParameterError, match=field):
        dataclasses.replace(base, **{field: value})


def test_study_functions_validate_their_keywords():
    with pytest.raises(ParameterError, match="gammas"):
        ch01.gamma3d(gammas=[-1.0], T=1.0, dt_max=1e-3, dt_gamma=0.2, init=1e-6, record_every=10)


def test_describe_summarises_long_lists():
    d = ch01.describe(ch01.params("fast"))
    assert list(d.columns) == ["value"] and d.index.names == ["study", "parameter"]
    assert d.loc[("gamma3d", "gammas"), "value"] == "25 values in [0, 20]"
    assert d.loc[("leaky", "slopes"), "value"] == "0.3, 0.6"
    assert d.loc[("net", "dt_max"), "value"] == "0.00025"


def test_run_all_calls_every_study_with_its_dataclass():
    calls = []

    class Ctx:
        profile = "fast"

        def study(self, fn, p):
            calls.append((fn.__name__, p))
            return fn.__name__

    out = ch01.run_all(Ctx())
    assert list(out) == [fn.__name__ for fn in ch01.STUDIES]
    assert all(p is getattr(ch01.FAST, name) for name, p in calls)


# -- measurements -----------------------------------------------------------------------------


def gamma_table():
    return pd.DataFrame(
        {
            "gamma": [0.0, 0.5, 1.0, 2.0],
            "w1": [5.0, 5.0 + 1e-12, 5.0, 5.0],
            "w2": [-1.0, -1.0, -1.0 - 2e-12, -1.0],
            "w3": [1e-6, -0.1, -0.2, -0.4],
            "w3 leaky": [1e-6, 1.0, 1.0, 1.0],
            "|RK4 - exact|": [0.0, 1e-10, 2e-10, 1e-10],
            "|GD - exact|": [0.0, 1e-4, 2e-4, 3e-4],
            "tol": [1e-3, 1e-9, 1e-9, 4e-9],
            "switches": [0, 1, 1, 1],
            "rate_at_switch": [math.nan, -1.0, -2.0, -0.5],
        }
    )


def test_gamma_family_measures():
    t = gamma_table()
    assert ch01.w1_w2_error(t) == pytest.approx(2e-12)
    assert ch01.exact_ratio(t) == pytest.approx(0.2)  # gamma = 0 is left out
    assert ch01.exact_ratio(t, "GD") == pytest.approx(2e5)
    # consecutive decreases 0.1 and 0.2 over tolerance sums 2e-9 and 5e-9
    assert ch01.monotone_margin(t) == pytest.approx(min(0.1 / 2e-9, 0.2 / 5e-9))
    assert ch01.monotone_margin(t, "w3 leaky") == 0.0
    assert (
        ch01.single_switch_fraction(t) == 1.0 and ch01.single_switch_fraction(t, zero=True) == 0.0
    )
    t.loc[2, "rate_at_switch"] = 0.1  # a tangential or backwards crossing
    assert ch01.single_switch_fraction(t) == pytest.approx(2 / 3)
    assert ch01.by_gamma(t, "w3", "w3*", [0.5, 2.0]) == {"w3* gamma=0.5": -0.1, "w3* gamma=2": -0.4}
    assert list(ch01.by_gamma(t, "rate_at_switch", "rate")) == [
        "rate gamma=0.5",
        "rate gamma=1",
        "rate gamma=2",
    ]


def test_cross_loss_measures():
    res = {
        "cross_loss": np.array([[0.0, 1e-26], [2e-26, 0.0]]),
        "cross_loss_early": np.full((2, 2), 1e-5),
    }
    assert ch01.max_cross_loss(res) == 2e-26 and ch01.max_cross_loss(res, at="early") == 1e-5
    net = {
        "per_width": {
            1: res,
            3: {"cross_loss": np.zeros((2, 2)), "cross_loss_early": np.ones((2, 2))},
        }
    }
    assert ch01.net_cross_loss(net) == 2e-26 and ch01.net_cross_loss(net, at="early") == 1.0


def test_band_excess():
    dense = pd.DataFrame(
        {
            "w2_star": [0.55, 0.6, 0.575, 9.0],
            "bound": [0.1, 0.1, 0.05, 1.0],
            "bound_valid": [True, True, True, False],
        }
    )
    res = {"dense": dense, "asymptote": 0.55}
    assert ch01.band_excess(res) == pytest.approx(1.0)  # 0.55 and 0.6 sit on the band's edges
    assert ch01.band_excess(res, asymptote=1.0) == pytest.approx(
        2 * 0.425 / 0.05 + 1
    )  # the third row


def test_rate_excess_against_exponential_curves():
    t = np.linspace(0, 10, 11)[:, None].repeat(2, 1)
    runs = pd.DataFrame(
        {"slope": [0.5, 0.5], "lam_min": [4.0, 4.0]}
    )  # rate 1 (power 2), 2 (power 1)
    curve = np.exp(-1.0 * t)
    res = {"runs": runs, "time": t, "err_curve": curve, "err_curve_coarse": curve}
    assert ch01.rate_excess(res) == pytest.approx(1.0)
    assert ch01.rate_excess(res, power=1) == pytest.approx(
        math.exp(10.0 - 0)
    )  # e^{-t}/e^{-2t} at t = 10
    slow = dict(res, err_curve=np.exp(-0.9 * t), err_curve_coarse=np.exp(-0.9 * t))
    assert ch01.rate_excess(slow) > 1
    # the step-doubling difference is subtracted before comparing
    assert ch01.rate_excess(dict(slow, err_curve_coarse=np.exp(-1.0 * t))) <= 1 + 1e-12


def random_runs():
    return pd.DataFrame(
        {
            "n": [1, 2, 2, 3, 3],
            "status": ["converged", "converged", "converged", "stalled", "converged"],
            "ratio": [1.0, 1.0, 1.3, 1.9, 1.00000001],
            "err_halving": [0.0, 0.0, 1e-4, 0.0, 1e-12],
            "fejer_inc_proj": [1e-16, -1.0, 2e-16, 0.0, 0.0],
            "fejer_inc_teacher": [0.0, 3e-16, 0.0, 0.0, 0.0],
            "fejer_inc_affine": [0.0, 0.2, 0.0, 0.0, 0.0],
            "traj_proj_err": [1e-15, 2e-15, 0.0, 5.0, 1e-14],
            "traj_proj_err_w0": [1e-15, 0.5, 0.0, 5.0, 0.1],
            "n_changes": [0, 1, 0, 3, 2],
        }
    )


def test_random_problem_measures():
    r = random_runs()
    assert ch01.fejer_increase(r) == 3e-16 and ch01.fejer_increase(r, ("affine",)) == 0.2
    # converged with n >= 2: ratios 1.0, 1.3 and 1 + 1e-8, the last two above 1 + max(1e-9, 10 err)
    assert ch01.frac_above_one(r) == pytest.approx(2 / 3)
    assert ch01.frac_above_one(r, n_min=1) == pytest.approx(2 / 4)
    assert ch01.ratio_max(r) == 1.3  # the stalled run does not count
    assert ch01.traj_projection_error(r) == 1e-14 and ch01.traj_projection_error(r, "w0") == 0.5
    tab = ch01.ratio_table(r)
    assert list(tab.index) == [1, 2, 3] and tab.loc[2, "frac_above_1"] == 0.5
    assert ch01.error_summary(r).loc["integrator error (converged runs)", "max"] == 1e-4
    leaky_runs = pd.DataFrame({"n": [2, 3], "ratio": [1 + 1e-14, 1.0], "err_halving": [0.0, 0.0]})
    assert ch01.frac_above_one(leaky_runs) == 0.0  # no status column: every run counts as converged


def test_showcase_choice_prefers_a_clean_switch():
    r = random_runs().assign(n_changes=[0, 1, 1, 1, 5])
    assert ch01.showcase_choice(r) == 2  # converged, one change, ratio > 1
    assert ch01.showcase_choice(r.assign(status="stalled")) in r.index  # falls back to any run


def test_separation_measures():
    dist = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    assert ch01.min_separation(dist, np.array([0.1, 0.1, 0.05])) == pytest.approx(1.0 / 0.2)
    runs = pd.DataFrame({"width": [1, 1, 3, 3], "err_halving": [0.1, 0.1, 0.01, 0.01]})
    pw = {
        1: {"dist": dist[:2, :2], "dist_Q": np.zeros((2, 2))},
        3: {"dist": 2 * dist[:2, :2], "dist_Q": np.full((2, 2), 1e-3)},
    }
    res = {"runs": runs, "per_width": pw}
    assert ch01.net_separation(res) == pytest.approx(5.0)
    assert ch01.net_separation(res, by="Q") == 0.0


def drift_table():
    """Drift = h^p per init and method; RK4 init 2 changes its switch count with h (slides)."""
    rows = []
    for h in (1e-3, 2e-3, 4e-3, 8e-3):
        for init, (p_gd, p_rk, sw) in enumerate([(1.0, 2.0, 6), (1.0, 2.2, 8), (1.0, 1.0, None)]):
            rows.append(
                {"h": h, "init": init, "method": "GD", "drift": h**p_gd, "switches": math.nan}
            )
            s = sw if sw is not None else int(1 / h / 100)
            rows.append(
                {"h": h, "init": init, "method": "RK4", "drift": 3 * h**p_rk, "switches": s}
            )
    return pd.DataFrame(rows)


def test_drift_measures():
    d = drift_table()
    s = ch01.drift_slopes(d)
    assert s.query("method == 'RK4' and init == 1")["slope"].item() == pytest.approx(2.2)
    assert ch01.worst_local_slope(d) == pytest.approx(1.0)
    fixed = d[d["method"] == "GD"].assign(drift=lambda x: x["h"] ** 2)
    assert ch01.worst_local_slope(fixed) == pytest.approx(2.0)
    assert ch01.isolated_inits(d) == [0, 1]
    assert ch01.isolated_order(d) == pytest.approx(
        2.1
    )  # median of 2.0 and 2.2; the sliding init is left out
    assert ch01.isolated_order(d, "GD") == pytest.approx(1.0)
    sw = ch01.rk4_switches(d)
    assert list(sw.columns)[-1] == "drift at finest h" and sw.loc[2, "switches h=0.001"] == 10


# -- tiny runs of the studies ------------------------------------------------------------------


def test_tiny_gamma3d_agrees_with_its_exact_reference_and_gd_does_not():
    r = ch01.gamma3d(
        gammas=[0.0, 1.0, 3.0], T=3.0, dt_max=1e-3, dt_gamma=0.2, init=1e-6, record_every=100
    )
    t = r["table"]
    assert np.allclose(t["w1"], 5, atol=1e-4) and np.allclose(t["w2"], -1, atol=1e-4)
    assert t["w3"][0] == 1e-6 and (t["w3"][1:] < 0).all()
    assert ch01.exact_ratio(t) <= 1 < ch01.exact_ratio(t, "GD")
    assert ch01.monotone_margin(t) > 10 > ch01.monotone_margin(t, "w3 leaky")
    assert ch01.single_switch_fraction(t) == 1.0
    assert ch01.max_cross_loss(r, at="early") > ch01.max_cross_loss(r)
    assert list(ch01.gamma3d_view(r).index) == [0.0, 1.0]


def test_tiny_ratio_search_stays_below_two():
    r = ch01.ratio_search(d=2, batch=64, rounds=2, keep=8, spread=0.3, grid=200, t_max=20.0)
    assert len(r["best"]) == 2 and 1 <= r["best"].max() <= 2
    assert r["counted"] > 0 and r["wrong_max"] >= r["best"].max()


def test_tiny_relu_random_records_a_showcase_with_located_switches():
    r = ch01.relu_random(
        batch=24, kappa_max=20.0, c=0.5, horizon=2.0, init_scale=1.0, record_every=10, n_qp=2
    )
    sc = r["showcase"]
    assert sc["patterns"].shape[0] == len(sc["time"]) == r["steps"] + 1
    runs = r["runs"]
    row, dt = runs.loc[sc["run"]], sc["time"][1]
    if (
        row["n_changes"] > 0
    ):  # the located switch lies within a step or two of the batch's step-resolved tau
        assert abs(sc["switch_times"][-1] - row["tau"]) <= 2 * dt
    assert ch01.fejer_increase(runs) < 1e-12
    assert set(ch01.showcase_table(r).columns) >= {"tau", "tau located"}
