"""Tests of chapter 5's study module: parameters (frozen, validated, fast derived from full), and the
measurements behind the chapter's claims, each with its control, on small known inputs."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lib.checks import ParameterError
from lib.studies import ch05


# -- parameters ---------------------------------------------------------------------------------------
def test_params_one_field_per_study_named_as_the_function():
    P = ch05.params("fast")
    for f in dataclasses.fields(P):
        assert callable(getattr(ch05, f.name)), f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.lasso_schedules.levels = 9
    with pytest.raises(ParameterError, match="profile"):
        ch05.params("huge")


def test_fast_is_full_with_only_the_differing_values_replaced():
    fast, full = ch05.params("fast"), ch05.params("full")
    assert fast.conventions == full.conventions
    assert fast.lasso_schedules == dataclasses.replace(full.lasso_schedules, levels=4, seeds=1)
    # values shared with the lasso grid are derived from it, in both profiles
    for P in (fast, full):
        for k in ("example", "schedules", "n0", "m0"):
            assert getattr(P.trained_schedules, k) == getattr(P.lasso_schedules, k)
        assert P.trained_schedules.lam0 == P.optimizer_bias.lam == ch05.LAM_TRAINED
        assert P.trained_schedules.long_level < P.trained_schedules.levels
    assert fast.optimizer_bias.lr == {"gd": 0.1, "sgd": 0.1, "momentum": 0.01, "adam": 3e-3}


def test_parameter_validation_names_the_field():
    base = ch05.params("fast")
    with pytest.raises(ParameterError, match="examples"):
        dataclasses.replace(base.conventions, examples=("step", "nope"))
    with pytest.raises(ParameterError, match="schedules"):
        dataclasses.replace(base.lasso_schedules, schedules=("derived", "sometimes"))
    with pytest.raises(ParameterError, match="levels"):
        dataclasses.replace(base.lasso_schedules, levels=0)
    with pytest.raises(ParameterError, match="long_level"):
        dataclasses.replace(base.trained_schedules, long_level=3)
    with pytest.raises(ParameterError, match="fast"):
        dataclasses.replace(base.trained_schedules, schedules=("derived", "fixed"))
    with pytest.raises(ParameterError, match="momentum"):
        dataclasses.replace(base.optimizer_bias, momentum=1.0)
    with pytest.raises(ParameterError, match="scales"):
        dataclasses.replace(base.optimizer_bias, scales=())


def test_describe_is_short_and_marks_shared_values():
    P = ch05.params("fast")
    d = ch05.describe(P)
    assert list(d.index.names) == ["study", "parameter"] and len(d) == sum(
        len(dataclasses.fields(getattr(P, f.name))) for f in dataclasses.fields(P))
    assert d.loc[("trained_schedules", "n0"), "value"] == "as in lasso_schedules"
    assert d.loc[("lasso_schedules", "schedules"), "value"] == "derived, slow, fixed, fast, n-fixed"
    assert ch05._short(tuple(np.linspace(0, 1, 7))) == "7 values in [0, 1]"


# -- closed forms and their control --------------------------------------------------------------------
def test_classical_norm_differs_from_the_closed_form_exactly_on_sloped_targets():
    for conv, aff in ch05.CONVENTION_ROWS:
        assert ch05.classical_norm("step", conv, aff) == ch05.closed_form_norm("step", conv, aff)
    # tent, l2, no affine term: the tent h + 2 against the plateau (h - a) + 2 sqrt(1 + a^2)
    assert ch05.classical_norm("tent", "l2", False) == pytest.approx(3.5)
    assert ch05.closed_form_norm("tent", "l2", False) == pytest.approx(1 + np.sqrt(5))
    # shelf: h + rho(p) against rho(p) + h / rho(p); equal with a free affine term
    assert ch05.classical_norm("shelf", "l2", False) == pytest.approx(1 + np.sqrt(5))
    assert ch05.classical_norm("shelf", "l2", True) == ch05.closed_form_norm("shelf", "l2", True)


@pytest.fixture(scope="module")
def conv():
    return ch05.conventions(examples=("step", "tent", "shelf"), plot_points=81)


def test_table_measures_and_controls(conv):
    M = ch05.table_measures(conv)
    assert set(M) == {"closed_forms", "certified", "two_solvers", "step_agree", "step_unique", "tent_differ",
                      "free_nonunique", "shelf_outside"}
    assert M["closed_forms"].value < 1e-8 and M["closed_forms"].control[1] == pytest.approx(1 - 1 / np.sqrt(5))  # shelf, l2
    assert M["certified"].value < 1e-8 < 1e-3 < M["certified"].control[1]
    assert M["two_solvers"].value < 1e-4 < M["two_solvers"].control[1]
    assert M["step_agree"].value < 1e-8 and M["step_agree"].control[1] == pytest.approx(0.5, abs=1e-6)
    assert M["step_unique"].value < 1e-2 < M["step_unique"].control[1]
    assert M["tent_differ"].value == pytest.approx(M["tent_differ"].expected, abs=1e-6) and M["tent_differ"].expected == 0.5
    assert M["tent_differ"].control[1] < 1e-6  # |w|+|b| gives the tent, as the free affine term does
    assert M["free_nonunique"].value == pytest.approx(0.5, abs=1e-6) and M["free_nonunique"].control[1] < 1e-2
    assert M["shelf_outside"].value == pytest.approx(-0.5, abs=1e-6) and M["shelf_outside"].control[1] == pytest.approx(2.0)
    with pytest.raises(KeyError):
        ch05._row(conv["table"], "hinge", "l2", False)


# -- the (n, m) grid ------------------------------------------------------------------------------------
def _lasso_study():
    d = {"derived": [0.4, 0.2, 0.1], "slow": [0.4, 0.3, 0.25], "fixed": [0.4, 0.3, 0.3],
         "fast": [0.4, 0.1, 0.02], "n-fixed": [0.4, 0.39, 0.38]}
    runs = pd.DataFrame([{"schedule": k, "level": l, "seed": 0, "distance": v} for k, vs in d.items() for l, v in enumerate(vs)])
    return {"runs": runs, "sample_interpolant_distance": np.array([0.36]), "sample_with_ends_distance": np.array([0.0])}


def _trained_study():
    rows = []
    for k in ch05.SCHEDULES:
        for l in range(2):
            lam = 1e-2 * (0.25 if (k == "fast" and l == 1) else 1.0)
            rows.append({"schedule": k, "level": l, "lr": 0.1, "lam": lam, "m": 16 * 2**l,
                         "objective": 1.0 if k != "slow" else 1.5, "lasso_objective": 1.0, "lasso_norm": 2.0})
    runs = pd.DataFrame(rows)
    steps = np.array([0, 500, 1000, 2000, 4000])
    # the objective falls to the optimum: ratio 10 until t = 1000 (eta lambda t = 1), then 1
    hist = np.where(steps[None, :] <= 1000, 10.0, 1.0) * np.ones((len(runs), 1))
    long = {"level": 1, "ratio": np.array([1.01, 1.03, 1.2]), "ratio_budget": np.array([5.0, 6.0, 7.0]),
            "ratio_wd_off": np.array([5.0, 6.0, 7.0]), "eta_lam_T_budget": 0.375, "eta_lam_t": np.array([0.375, 6.0]),
            "steps": np.array([4000, 192000]), "norm_ratio": np.array([1.0, 1.1, 1.3]), "m_lam": np.array([0.08]),
            "distance": np.array([0.05, 0.05, 0.05])}
    return {"runs": runs, "steps": steps, "objective_history": hist, "long": long}


def test_schedule_measures_on_a_known_grid():
    M = ch05.schedule_measures(_lasso_study(), _trained_study())
    assert M["derived_trend"].value == pytest.approx(0.25) and M["derived_trend"].control[1] == pytest.approx(0.95)
    assert M["derived_rate"].value == pytest.approx(-1.0) and M["derived_rate"].control[1] > -0.1
    assert M["fixed_bias"].value == pytest.approx(3.0) and M["fixed_bias"].control[1] == pytest.approx(0.2)
    assert M["nfixed"].value == pytest.approx(0.02) and M["nfixed"].control[1] == pytest.approx(-0.26)
    assert M["nfixed_floor"].value == pytest.approx(0.36) and M["nfixed_floor"].control[1] == 0.0
    # 8 non-fast runs, the two "slow" ones at ratio 1.5; stopped at eta lambda t <= 1 every run is at 10
    assert M["trained_optimum"].value == pytest.approx(6 / 8) and M["trained_optimum"].control[1] == 0.0
    assert M["trained_optimum"].values["smallest eta lambda T"] == pytest.approx(0.1 * 1e-2 * 4000)
    assert M["fast_acts"].value == pytest.approx(1.03) and M["fast_acts"].control[1] == pytest.approx(6.0)
    assert "0.375" in M["fast_acts"].control[0] and M["fast_acts"].values["worst ratio over seeds"] == pytest.approx(1.2)


def test_at_acted_takes_the_last_record_before_weight_decay_acts():
    T = _trained_study()
    T["objective_history"] = np.tile(np.arange(5.0), (len(T["runs"]), 1))
    got = ch05._at_acted(T, np.array([0, 1]), 1.0)  # eta lambda = 1e-3: t <= 1000 is record 2
    assert got.tolist() == [2.0, 2.0]
    assert ch05._at_acted(T, np.array([0]), 4.0).tolist() == [4.0]


# -- optimisers ------------------------------------------------------------------------------------------
def _bias_study():
    rows = []
    for wd in (0.0, 0.01):
        for init in (1.0, 0.05):
            for method in ("gd", "adam"):
                small, on = init < 1, wd > 0
                rows.append({"method": method, "init": init, "wd": wd, "seed": 0,
                             "risk": 0.02 if (on or method == "adam" and small) else 0.0,
                             "norm": 1.5 if on else (3.5 if small else 9.0),
                             "d_lasso": 0.01 if on else 0.5, "d_lasso_l1": 0.2 if on else 0.4,
                             "d_l2": 0.2 if on else (0.45 if small else 0.3), "d_l1": 0.7 if on else (0.1 if small else 0.2)})
    runs = pd.DataFrame(rows)
    penalty = np.where(runs.wd > 0, 1.5, 20.0)
    penalty[(runs.wd > 0).values & (runs.method == "adam").values & (runs.init == 1.0).values] = 3.0  # misses the optimum
    return {"runs": runs, "penalty": penalty, "lam": 0.01, "ref_norm": {"l2": 3.0},
            "lasso": {"objective": 0.035, "f0": 0.8, "d_l2": 0.18}, "lasso_l1": {"d_lasso": 0.17, "f0": 0.99},
            "y": np.array([0.5, 1.0, 1.0, 0.5]), "z": np.linspace(-1, 1, 5),
            "ref_curves": {"l1": np.array([0, 1, 1.5, 1, 0.0]), "l2": np.array([0, 1, 1.0, 1, 0.0])}}


def test_bias_measures_and_controls():
    M = ch05.bias_measures(_bias_study())
    assert M["wd_optimum"].value == pytest.approx(0.75) and M["wd_optimum"].control[1] == 0.0
    assert M["wd_matching"].value == pytest.approx(0.05) and M["wd_matching"].control[1] == pytest.approx(1.25)
    assert M["std_init_norm"].value == pytest.approx(3.0) and M["std_init_norm"].control[1] == pytest.approx(3.5 / 3)
    assert M["small_init_tent"].value == 1.0 and M["small_init_tent"].control[1] == 0.0
    assert M["small_init_tent"].values["fitted runs"] == 1 and M["small_init_tent"].values["runs"] == 2


def test_bias_report_lists_the_exceptions():
    R = ch05.bias_report(_bias_study())
    assert R["references"].loc["f(0), tent (|w|+|b| interpolant)", "value"] == 1.5
    assert R["references"].loc["label variance (risk of the constant fit)", "value"] == pytest.approx(0.0625)
    assert R["not_reached"][["method", "init"]].values.tolist() == [["adam", 1.0]]
    assert R["not_fitted"][["method", "init"]].values.tolist() == [["adam", 0.05]]


def test_study_functions_validate_through_their_parameter_classes():
    with pytest.raises(ParameterError, match="levels"):
        ch05.lasso_schedules(example="step", schedules=("derived",), levels=0, n0=8, m0=8, lam0=1e-2, seeds=1)
    with pytest.raises(ParameterError, match="lr_adam"):
        ch05.optimizer_bias(example="tent", n=8, width=4, lam=1e-2, steps=10, lr_gd=0.1, lr_momentum=0.01, lr_adam=-1.0,
                            momentum=0.9, scales=(1.0,), seeds=1, batch_size=4)
    with pytest.raises(ParameterError, match="plot_points"):
        ch05.conventions(examples=("step",), plot_points=0)


def test_trained_schedules_long_run_is_the_fast_schedule_continued():
    """A tiny grid: the long run starts where the common budget left the fast runs and its control (weight
    decay off over the extra steps) keeps a larger objective at lambda."""
    out = ch05.trained_schedules(example="step", schedules=("derived", "fast"), levels=2, n0=8, m0=8, lam0=5e-2,
                                 lr_width=3.2, steps=300, seeds=1, long_level=1, long_acted=1.0)
    L, T = out["long"], out["runs"]
    (row,) = L["rows"]
    assert T.schedule[row] == "fast" and T.level[row] == 1
    assert L["ratio_budget"][0] == pytest.approx(T.objective[row] / T.lasso_objective[row])
    assert L["eta_lam_t"][-1] == pytest.approx(1.0, rel=1e-3) and L["steps"][0] == 300
    assert L["ratio"][0] < L["ratio_budget"][0] and L["ratio"][0] < L["ratio_wd_off"][0]
