"""Tests of lib.studies.ch03: the parameter dataclasses, describe, the measurements behind the
chapter's claims (on small hand-made tables with known answers, controls included), and tiny runs of
the studies."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from lib import minnorm1d as mn
from lib.checks import ParameterError
from lib.studies import ch03

# -- parameters -------------------------------------------------------------------------------


def test_params_are_one_frozen_dataclass_per_profile_fast_derived_from_full():
    fast, full = ch03.params("fast"), ch03.params("full")
    assert [f.name for f in dataclasses.fields(fast)] == [fn.__name__ for fn in ch03.STUDIES]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.training.steps = 1
    # the exact fits are those of the training study's own objectives: derived, not retyped
    for P in (fast, full):
        assert P.regularised.data == P.training.data and P.regularised.lams == P.training.lams
        assert P.regularised.threshold == P.training.threshold
    # the training schedule is a parameter, shared by both profiles
    assert fast.training.decay_start == full.training.decay_start == 0.6
    assert fast.training.lr_floor == full.training.lr_floor == 0.01
    assert fast.examples == full.examples and fast.counterexamples == full.counterexamples
    assert fast.sparsity_map.spacing == full.sparsity_map.spacing
    with pytest.raises(ParameterError, match="profile"):
        ch03.params("medium")


@pytest.mark.parametrize(
    ("study", "field", "value"),
    [
        ("three_point", "n_triples", 0),
        ("examples", "names", ("no-such-data",)),
        ("examples", "moved", 1.5),
        ("sparsity_map", "spacing", (1.5, 0.5)),
        ("sparsity_map", "n_points", 3),
        ("training", "methods", ("adamw",)),
        ("training", "decay_start", 0.0),
        ("training", "lr_floor", 2.0),
        ("training", "widths", (0, 16)),
        ("regularised", "lams", (-1e-3,)),
    ],
)
def test_parameter_validation_names_the_field(study, field, value):
    with pytest.raises(ParameterError, match=field):
        dataclasses.replace(getattr(ch03.FAST, study), **{field: value})


def test_study_functions_validate_their_keywords():
    with pytest.raises(ParameterError, match="n_triples"):
        ch03.three_point(n_triples=-1)
    with pytest.raises(ParameterError, match="names"):
        ch03.counterexamples(names=("nowhere",))


def test_describe_summarises_long_lists():
    d = ch03.describe(ch03.params("full"))
    assert list(d.columns) == ["value"] and d.index.names == ["study", "parameter"]
    assert d.loc[("sparsity_map", "offsets"), "value"] == "6 values in [0, 8]"
    assert d.loc[("training", "lams"), "value"] == "0.003, 0.01, 0.03"
    assert d.loc[("training", "data"), "value"] == "convex-centred-train"
    assert d.loc[("examples", "names"), "value"].startswith("convex-far, straddle")


def test_run_all_calls_every_study_with_its_dataclass():
    calls = []

    class Ctx:
        profile = "fast"

        def study(self, fn, p):
            calls.append((fn.__name__, p))
            return fn.__name__

    out = ch03.run_all(Ctx())
    assert list(out) == [fn.__name__ for fn in ch03.STUDIES]
    assert all(p is getattr(ch03.FAST, name) for name, p in calls)


def test_lr_schedule():
    assert ch03.lr_factor(0.0, 0.6, 0.01) == 1.0 and ch03.lr_factor(0.6, 0.6, 0.01) == 1.0
    assert ch03.lr_factor(0.8, 0.6, 0.01) == pytest.approx(0.1)
    assert ch03.lr_factor(1.0, 0.6, 0.01) == pytest.approx(0.01)
    assert ch03.lr_factor(0.9, 1.0, 0.01) == 1.0  # no decay


# -- data and helpers ---------------------------------------------------------------------------


def test_straddles_and_the_map_generator():
    assert ch03.straddles([-2.0, 1.0, 2.0]) and not ch03.straddles([-0.5, 1.0, 2.0])
    assert not ch03.straddles([-3.0, -1.0, 0.5])  # -1 * 0.5 > -1
    rng = np.random.default_rng(0)
    for L in (1, 2, 4):
        x, y = ch03._dataset_with_runs(rng, 7, L, 0.0, (0.5, 1.5))
        runs = [n for _, n, _ in mn._runs(mn.secants(x, y)[1], 1e-12)]
        assert max(runs) == L and not ch03.straddles(x)  # narrow spacings never straddle
        assert abs(x.mean()) < 1e-12
        x, y = ch03._dataset_with_runs(rng, 7, L, 0.0, (0.5, 1.5), straddle=True)
        assert ch03.straddles(x)
        assert max(n for _, n, _ in mn._runs(mn.secants(x, y)[1], 1e-12)) == L


def test_moved_kink_leaves_the_family():
    x, y = ch03._data("convex-far")
    p, s, v, c = ch03.moved_kink(x, y, 0.9)
    assert np.allclose(mn.evaluate_kinks(x, p, s, v, c), y, atol=1e-12)
    assert p[1] == pytest.approx(3.9) and (s < 0).any()
    assert mn.kink_cost(p, s, "free") > mn.biasfree_value(x, y) + 1.0
    p, s, _, _ = ch03.moved_kink(x, y, 0.2)  # a small move stays in the family
    assert mn.kink_cost(p, s, "free") == pytest.approx(mn.biasfree_value(x, y), rel=1e-12)


# -- measurements (with their controls) ----------------------------------------------------------


def test_cost_measures():
    nets = pd.DataFrame({
        "network": [0, 0, 1, 1], "penalty": ["l2", "free", "l2", "free"], "optimal_representation": [True, True, False, False],
        "norm": [2.0, 1.5, 3.0, 2.2], "formula": [2.0, 1.0, 2.5, 1.1], "formula_l2": [2.0, 2.0, 2.5, 2.5]})
    nets["excess"] = nets.norm / nets.formula - 1
    assert ch03.lower_bound_excess(nets) == pytest.approx(0.0)
    assert ch03.lower_bound_excess(nets, bias_left_out=True) == pytest.approx(1.5 / 2.0 - 1)
    assert ch03.attained_excess(nets) == 0.0


def test_three_point_measures():
    t = pd.DataFrame({"x2": [1.0, 0.5], "kappa": [2.0, -1.0], "cost_err": [1e-12, 3e-12], "pos_err": [0.0, 1e-13],
                      "cost_lp": [2 * math.sqrt(2), 0.9], "p_lp": [1.0, 1 / 3]})
    assert ch03.three_point_error(t) == 3e-12 and ch03.three_point_error(t, "position") == 1e-13
    assert ch03.three_point_error(t, always_x2=True) == pytest.approx(math.sqrt(1.25) - 0.9)
    assert ch03.three_point_error(t, "position", always_x2=True) == pytest.approx(0.5 - 1 / 3)
    with pytest.raises(ParameterError):
        ch03.three_point_error(t, "slope")


def _example():
    return {"x": np.array([-3.0, 1.5, 2.5]), "free": {"lower": 4.0, "cost": 4.0, "kinks": np.array([1.5])},
            "l2": {"cost": 5.0, "kinks": np.array([1 / 3])}, "biasfree_value": 4.0,
            "family": {"a": {"cost_free": 4.0}, "b": {"cost_free": 4.0 + 4e-12}}, "moved": {"cost_free": 6.0},
            "probe_widths": {"l2": {1e-6: np.array([1e-2, 2e-3]), 1e-8: np.array([1e-4, 0.0])},
                             "free": {1e-6: np.array([0.5]), 1e-8: np.array([0.5])}}}


def test_example_measures():
    e = _example()
    assert ch03.family_cost_error(e) == pytest.approx(1e-12)
    assert ch03.family_cost_error(e, "moved") == pytest.approx(0.5)
    assert ch03.biasfree_value_error({"e": e}) == 0.0 and ch03.biasfree_value_error({"e": e}, "l2") == 0.25
    assert ch03.straddle_kink_error(e) == 0.0
    assert ch03.straddle_kink_error(e, tangency=False) == pytest.approx(1.5 - 1 / 3)
    ex = {"e": e}
    assert ch03.probe_width(ex, "l2", 1e-8) == 1e-4 and ch03.probe_width(ex, "free", 1e-8) == 0.5
    assert ch03.probe_width({**ex, "f": {"probe_widths": {"l2": {1e-8: np.array([1.0])}}}}, "l2", 1e-8, names=["e"]) == 1e-4
    assert ch03.probe_ratios(ex, (1e-6, 1e-8)) == {"e width ratio": pytest.approx(1e-2)}


def test_counterexample_measures():
    c = {"x": None, "l2": {"n_kinks": 2, "cost": 8 / math.sqrt(5), "kinks": np.array([0.5, 2.0]), "lower": 8 / math.sqrt(5)},
         "free": {"lower": 2.0}, "sparsest": 1,
         "paired": {"cost_l2": math.sqrt(13), "cost_free": 2.0, "kinks": np.array([1.5])}}
    assert ch03.excess_kinks(c) == 1
    cs = {"straddle-run": c}
    assert ch03.certified_margin(cs, ["straddle-run"]) == pytest.approx(math.sqrt(13) / (8 / math.sqrt(5)) - 1)
    assert ch03.certified_margin(cs, ["straddle-run"], "free") == 0.0
    assert ch03.closed_form_error(c, "straddle-run") == pytest.approx(0.0, abs=1e-15)
    assert ch03.closed_form_error(c, "straddle-run", sparsest=True) == pytest.approx(
        math.sqrt(13) - 8 / math.sqrt(5) + 1.0)  # |3/2 - 1/2| is the farther kink


def _map():
    rows = [  # L, regime, offset, straddles, is_sparsest
        (2, "centred", 0.0, False, True), (3, "centred", 1.0, False, True), (2, "straddling", math.nan, True, False),
        (3, "straddling", math.nan, True, True), (4, "centred", 0.0, False, False), (4, "centred", 1.0, False, True),
        (5, "centred", 1.0, False, False), (4, "straddling", math.nan, True, False)]
    df = pd.DataFrame(rows, columns=["L", "regime", "offset", "straddles", "is_sparsest"])
    df["gap"], df["cost"], df["grid_gap"] = 1e-12, 1.0, [1e-4] + [math.nan] * 7
    return df


def test_map_measures():
    m = _map()
    assert ch03.sparsest_fraction(m) == 1.0 and ch03.sparsest_fraction(m, straddling=True) == 0.5
    assert ch03.failure_fraction(m) == pytest.approx(2 / 3)  # L >= 4 without straddling: 2 of 3 fail
    assert ch03.failure_fraction(m, 1, 3) == 0.0
    assert ch03.failure_fraction(m, 4, straddling=None) == pytest.approx(3 / 4)
    by = ch03.failure_by_centre(m)
    assert by.to_dict() == {0.0: 1.0, 1.0: 0.5}
    assert ch03.failure_by_centre(m, 1, 3).max() == 0.0
    assert ch03.max_relative_gap(m) == pytest.approx(5e-13) and ch03.max_relative_gap(m, "grid_gap") == 1e-4


def _runs():
    r = pd.DataFrame({
        "method": ["wd_all"] * 4 + ["wd_nobias"] * 2 + ["gd_small"],
        "lam": [1e-3, 1e-3, 1e-2, 1e-2, 1e-3, 1e-2, 0.0], "width": [8, 8, 8, 8, 8, 8, 8], "seed": [0, 1, 0, 1, 0, 0, 0],
        "objective": [1.0001, 1.0, 2.0, 2.0002, 3.0, 4.0, np.nan], "exact_objective": [1.0, 1.0, 2.0, 2.0, 3.0, 4.0, np.nan],
        "n_kinks": [3, 3, 3, 4, 6, 7, 2], "n_kinks_init": [9, 8, 8, 9, 8, 9, 0], "n_kinks_neurons": [5, 3, 6, 7, 9, 9, 4],
        "exact_regularised_kinks": [3, 3, 3, 3, 4, 4, -1], "sup_to_regularised": [0.01, 0.02, 0.0, 0.01, 0.1, 0.1, np.nan],
        "sup_to_other_fit": [0.2, 0.2, 0.3, 0.3, 0.2, 0.2, np.nan], "imbalance": [1e-3, 2e-3, 1e-3, 1e-3, 2.0, 5.0, 0.01]})
    r["loss"] = (r.lam * 10) ** 2
    r["penalty_term"] = r.lam * 3
    return r


def test_training_measures():
    r = _runs()
    assert ch03.objective_excess(r) == pytest.approx(1e-4)
    assert ch03.objective_seed_spread(r) == pytest.approx(1e-4)
    e = ch03.loss_exponents(r)
    assert e["wd_all"] == pytest.approx(2.0) and e["wd_nobias"] == pytest.approx(2.0)
    assert ch03.exponent_error(r) == pytest.approx(0.0, abs=1e-12)
    assert ch03.exponent_error(r, "penalty_term") == pytest.approx(1.0)
    assert ch03.kink_match_fraction(r) == 0.75 and ch03.kink_match_fraction(r, "n_kinks_neurons") == 0.25
    assert ch03.kink_gap(r) == 2 and ch03.kink_gap(r, "n_kinks_init") == -1
    assert ch03.sup_distance(r) == 0.02 and ch03.sup_distance(r, "sup_to_other_fit") == 0.3
    assert ch03.max_imbalance(r) == 0.01 and ch03.max_imbalance(r, ["wd_nobias"], smallest=True) == 2.0
    reg = {("l2", 1e-3): {"objective": 1.0, "sparse_objective": 1.01},
           ("l2", 1e-2): {"objective": 2.0, "sparse_objective": 2.01}, ("free", 1e-3): {"objective": 1.0}}
    assert ch03.sparse_fit_excess(reg) == pytest.approx(0.005)


# -- tiny runs of the studies --------------------------------------------------------------------


def test_counterexamples_study_certifies_both():
    cs = ch03.counterexamples(names=("straddle-run", "straddle-run-near"))
    c = cs["straddle-run"]
    assert ch03.excess_kinks(c) == 1 and ch03.excess_kinks(cs["straddle-run-near"]) == 0
    assert ch03.closed_form_error(c, "straddle-run") < 1e-9 and c["l2"]["gap"] < 1e-12
    # the dual function is the certificate: |g| <= W, with equality at the two kinks
    assert np.all(np.abs(c["dual"]) <= mn.weight(c["dual_grid"], "l2") + 1e-9)
    g = ch03._dual_function(mn.solve(c["x"], c["y"]), np.array([0.5, 2.0]))
    assert np.allclose(g, mn.weight(np.array([0.5, 2.0])), atol=1e-9)


def test_three_point_and_map_studies_run_small():
    t = ch03.three_point(n_triples=3)
    assert len(t) == 3 and ch03.three_point_error(t) < 1e-8
    m = ch03.sparsity_map(n_points=5, offsets=(0.0,), per_cell=1, straddle_per_cell=1, spacing=(0.5, 1.5))
    assert len(m) == 6 and set(m.regime) == {"centred", "straddling"}
    assert m.loc[m.regime == "straddling", "straddles"].all() and not m.loc[m.regime == "centred", "straddles"].any()
    assert ch03.max_relative_gap(m) < 1e-8 and ch03.max_relative_gap(m, "grid_gap") > ch03.max_relative_gap(m)


def test_training_study_runs_small():
    p = dataclasses.replace(ch03.FAST.training, lams=(1e-2,), widths=(4,), seeds=1, steps=20, snapshots=2)
    tr = ch03.training(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)})
    runs = tr["runs"]
    assert list(runs.method) == ["wd_all", "wd_nobias", "gd_small"]
    assert (runs.objective >= runs.loss).all() and np.allclose(runs.objective - runs.loss, runs.penalty_term)
    assert (runs.n_kinks_neurons >= 0).all() and tr["curves"]["loss"].shape == (3, 2)


def test_tables_and_kink_values():
    assert ch03.kink_values({"kinks": np.array([0.5, 2.0])}) == {"kink 0": 0.5, "kink 1": 2.0}
    assert ch03.kink_values({"kinks": np.array([1.0])}, "interpolant kink") == {"interpolant kink 0": 1.0}
    m = _map()
    m["rep"], m["excess"] = 0, (~m.is_sparsest).astype(int)
    s = ch03.map_summary(m)
    assert s.loc[(2, "straddling"), "fraction_sparsest"] == 0.0 and s.loc[(4, "centred"), "datasets"] == 2
    r = _runs().assign(exact_regularised_kinks=3, sup_to_l2_interpolant=0.1)
    t = ch03.training_summary(r)
    assert t.loc[("wd_all", 1e-3, 8), "objective_excess"] == pytest.approx(1e-4)
    reg = {("l2", 1e-3): {"n_kinks": 2, "objective": 1.0, "sparse_objective": 1.1, "kinks": np.array([0.1, 0.5, 0.9]),
                          "jumps": np.array([1.0, 0.01, 1.0])}}
    row = ch03.regularised_table(reg, 0.02).iloc[0]
    assert list(row.positions) == [0.1, 0.9] and row["best sparse fit"] == 1.1


def test_examples_study_and_its_tables():
    ex = ch03.examples(names=("straddle",), probe_rel=(1e-6,), perturbation=1e-6, moved=0.9)
    e = ex["straddle"]
    assert ch03.straddle_kink_error(e) < 1e-9 and ch03.biasfree_value_error(ex) < 1e-9
    t = ch03.examples_table(ex)
    assert t.loc["straddle", "kinks, biases penalised"] == 3 and t.loc["straddle", "sparsest"] == 3
    f = ch03.family_table(e)
    assert f.index[-1] == "kink at x_3 moved (control)" and f["R (biases free)"].iloc[-1] > e["biasfree_value"]
    assert ch03.probe_table(ex).shape == (2, 1)
    cs = ch03.counterexamples(names=("straddle-run",))
    c = ch03.counterexample_table(cs, ["straddle-run"])
    assert list(c.kinks) == [2, 1] and c.cost.iloc[0] == pytest.approx(8 / math.sqrt(5))
