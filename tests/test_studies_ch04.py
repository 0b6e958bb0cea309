"""Chapter 4's results: the parameters (stated once, shared values derived, validated) and the
measurements its claims make (lib.studies.ch04_results), on small synthetic study results whose
answers are known, each also shown to move the way a wrong ingredient would."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from lib.checks import ParameterError
from lib.studies import ch04, tables
from lib.studies import ch04_results as res

P = ch04.params("fast")


# -- parameters --------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["fast", "full"])
def test_side_studies_take_the_grids_values(profile):
    p = ch04.params(profile)
    g, mk = p.grid, p.marks
    for s in (p.ablations, p.mechanism, p.normalized):
        assert (s.n, s.rank, s.m, s.init_scale, s.polar) == (g.n, g.rank, mk.m_hi, g.init_scale, g.polar)
        assert s.seeds <= g.seeds  # their runs are the grid's first problems
    assert (p.ablations.lam, p.ablations.lr, p.ablations.steps) == (g.lam, g.lr_adam, g.steps)
    assert (p.mechanism.lr_adam, p.mechanism.lr_gd, p.mechanism.gd_eps, p.mechanism.lr_plain) == \
        (g.lr_adam, g.lr_gd, g.gd_eps, g.lr_plain)
    assert p.baseline.m == g.m and p.baseline.seeds == g.seeds
    assert (p.identities.n_bulk, p.identities.rank) == (g.n, g.rank)
    assert {mk.m_few, mk.m_mid, mk.m_hi} <= set(g.penalty_m)
    assert ch04.ARORA_EPS in p.normalized.eps and g.gd_eps == ch04.ARORA_EPS


def test_fast_is_derived_from_full_and_validated():
    full = ch04.params("full")
    same = [f.name for f in dataclasses.fields(ch04.Grid) if getattr(P.grid, f.name) == getattr(full.grid, f.name)]
    assert {"lam", "lr_gd", "gd_eps", "lr_plain", "init_scale", "polar", "stop_rtol", "stop_train"} <= set(same)
    with pytest.raises(ParameterError, match="profile"):
        ch04.params("medium")
    with pytest.raises(ParameterError, match="deep_m"):
        dataclasses.replace(P.grid, deep_m=(451,))
    with pytest.raises(ParameterError, match="rank"):
        dataclasses.replace(P.grid, rank=P.grid.n)
    with pytest.raises(ParameterError, match="lr_steps"):
        dataclasses.replace(P.ablations, lr_steps=P.ablations.steps + P.ablations.log_every)
    with pytest.raises(ParameterError, match="plain_steps"):
        dataclasses.replace(P.normalized, plain_steps=(1000,))
    with pytest.raises(ParameterError, match="marks"):
        ch04.Marks(m_few=900, m_mid=600, m_hi=450)


def test_describe_lists_every_parameter_once():
    d = tables.describe(P)
    n = sum(len(dataclasses.fields(getattr(P, s.name))) for s in dataclasses.fields(P))
    assert len(d) == n and not d.index.duplicated().any()
    assert d.loc[("grid", "m"), "value"] == "5 values in [300, 1200]"
    assert d.loc[("grid", "gd_penalty_m"), "value"] == "(none)"
    with pytest.raises(TypeError):
        tables.describe({"grid": 1})


# -- the mechanism study -------------------------------------------------------------------------------
def _mechanism(gd_drift: float) -> dict:
    """Adam moves the unobserved entries by lr per step whatever lambda; plain GD jumps by lambda at
    once and then drifts by ``gd_drift * lambda`` per step; normalised GD barely moves."""
    p = P.mechanism
    steps = np.arange(0, p.steps + 1, p.log_every)
    rows, moves = [], []
    for opt, lr in (("adam", p.lr_adam), ("gd", p.lr_plain), ("ngd", p.lr_gd)):
        for lam in p.lams:
            rows.append(dict(optimizer=opt, lam=lam, lr=lr))
            moves.append(lr * steps if opt == "adam" else
                         (lam + gd_drift * lam * steps) * (steps > 0) if opt == "gd" else 1e-6 * steps)
    move = np.stack(moves, axis=1)
    return dict(runs=pd.DataFrame(rows), hist=dict(steps=steps, move_unobs=move, move_obs=move / 2))


def test_mechanism_measures():
    p = P.mechanism
    M = res.mechanism_measures(_mechanism(gd_drift=1e-3), p)
    assert M["adam_speed_min"] == pytest.approx(1.0) and M["adam_speed_spread"] == pytest.approx(1.0)
    assert M["gd_growth"] == pytest.approx(max(p.lams) / min(p.lams))
    added_gd = 1e-3 * max(p.lams) * (p.steps - p.log_every)
    assert M["gd_over_adam"] == pytest.approx(added_gd / (p.lr_adam * (p.steps - p.log_every)))
    assert M["adam_lo_over_adam"] == pytest.approx(1.0)  # the control: Adam over Adam
    # a plain GD that kept drifting as fast as Adam moves would not stall
    fast = res.mechanism_measures(_mechanism(gd_drift=p.lr_adam / min(p.lams)), p)
    assert fast["gd_over_adam"] > 0.2
    with pytest.raises(ValueError, match="logging step"):
        res.mechanism_table(_mechanism(1e-3), step=p.log_every + 1)


# -- the main grid -----------------------------------------------------------------------------------
def _grid(d1_test: float = 1e-6, d1_spurious: float = 1e-3) -> tuple[dict, pd.DataFrame]:
    """Synthetic grid results at the fast profile's m values: every configuration with one test error
    per (configuration, m), seeds alike except seed 0 (10x worse)."""
    g, r = P.grid, P.grid.rank
    s_star = np.array([30.0, 20.0, 10.0])
    truth = pd.DataFrame({"seed": range(g.seeds), "erank": 2.9, "ratio": 1.6,
                          **{f"s{i + 1}": s_star[i] for i in range(r)}})
    level = {(1, "adam", g.lam): d1_test, (1, "adam", 0.0): 1.0, (2, "gd", 0.0): 1e-2, (3, "gd", 0.0): 1e-5}
    rows = []
    for (d, o, lam), t in level.items():
        for m in g.m:
            for s in range(g.seeds):
                pen = lam > 0
                sv = {f"s{i + 1}": s_star[i] * (1.001 if pen else 0.5) for i in range(r)}
                sv |= {f"s{r + 1}": d1_spurious if pen else 5.0, f"s{r + 2}": 0.0}
                rows.append(dict(depth=d, optimizer=o, lam=lam, m=m, seed=s, test=t * (10 if s == 0 else 1),
                                 erank=2.95 if pen else 40.0, runaway=False, move_unobs=0.0 if d == 1 and not pen else 0.3,
                                 **sv))
    base = pd.DataFrame([dict(m=m, seed=s, test=1e-3, erank=3.0, s1=30.0) for m in g.m for s in range(g.seeds)])
    return dict(runs=pd.DataFrame(rows), truth=truth), base


def test_grid_measures():
    grid, base = _grid()
    G = res.grid_measures(grid, base, P)
    assert G["depth_helps"] == pytest.approx(1e3) and G["depth_helps_control"] == pytest.approx(10)
    assert G["nuclear_over_d3"] == pytest.approx(100) and G["nuclear_over_d3_control"] == pytest.approx(0.1)
    assert G["completes"] == pytest.approx(1e-5)  # largest at 3x (seed 0) vs median at 2x
    assert G["completes_control"] == pytest.approx(1.0)
    assert G["d1_over_d3"] == pytest.approx(0.1) and G["d1_over_d3_control"] == pytest.approx(1e5)
    assert G["spurious"] == pytest.approx(1e-3) and G["spurious_control"] == pytest.approx(5.0)
    assert G["erank_dev"] == pytest.approx(0.05) and G["erank_dev_control"] == pytest.approx(37.1)
    assert G["sv_dev"] == pytest.approx(1e-3) and G["sv_dev_control"] == pytest.approx(0.5)
    assert G["frozen"] == 0.0 and G["floor"] == P.grid.lr_adam**2 + P.grid.lam**2
    assert G["few_spread"] == pytest.approx(10.0)  # seed 0 is ten times worse
    # a depth-1 model that does not complete, or keeps a spurious direction, fails the same criteria
    bad = res.grid_measures(*_grid(d1_test=1e-2, d1_spurious=1.0), P)
    assert bad["completes"] > bad["floor"] and bad["spurious"] > bad["spurious_bound"]
    with pytest.raises(ValueError, match="no runs"):
        res._median(grid["runs"], 12345)


def test_per_seed_table_has_the_marks_only():
    grid, base = _grid()
    t = res.per_seed_table(grid, base, P)
    assert set(t.index.get_level_values(res.N_OBS)) == {P.marks.m_few, P.marks.m_mid, P.marks.m_hi}
    assert res.summary(dict(grid, dof=291), base).columns.name == "|Ω| / dof"  # the reader sees |Omega|, not m
    assert list(t.columns) == list(range(P.grid.seeds))


# -- the optimizer study and the ablations ---------------------------------------------------------------
def test_normalized_measures():
    p = P.normalized
    grid, _ = _grid()
    rows, k = [], 0
    spec = [("ngd", 1e-8, "ratio", p.lr, 1e-6), ("ngd", ch04.ARORA_EPS, "ratio", p.lr, 1e-3),
            ("ngd", 1e-8, "none", p.lr, 1.0), ("gd", 0.0, "ratio", min(p.lrs_plain), 0.9),
            ("gd", 0.0, "ratio", max(p.lrs_plain), 0.1)]
    for method, eps, pen, lr, test in spec:
        for s in range(p.seeds):
            rows.append(dict(method=method, eps=eps, penalty=pen, lr=lr, seed=s, test=test, train=1e-6,
                             erank=3.0, s1=30.0, move_unobs=1e-3, stop_step=100))
            k += 1
    T = 20
    train = np.ones((T, k))
    nz = dict(runs=pd.DataFrame(rows), hist=dict(steps=np.arange(T), train=train))
    Z = res.normalized_measures(nz, grid, P)
    assert Z["ngd_completes"] == 1e-6 and Z["ngd_completes_control"] == 1.0
    assert Z["eps_matters"] == pytest.approx(1e3) and Z["eps_matters_control"] == pytest.approx(10.0)  # seed 0 of Adam is 10x worse
    assert Z["gd_fits"] == 1e-6 and Z["gd_fits_control"] == 1.0
    assert Z["gd_fails"] == 0.9 and Z["gd_big_fails"] == 0.1
    assert Z["ngd_vs_adam"] == pytest.approx(1e-6 / 1e-6)  # the grid's d1 Adam median at m_hi is 1e-6
    assert "variant" in res.normalized_table(nz)


def _ablation_table(blow_s1: float) -> pd.DataFrame:
    rows = []
    for label, lr, test, s1, ratio in [("reference", 3e-3, 1e-6, 30.0, 1.6), ("beta1=0", 3e-3, 5e-6, 30.0, 1.6),
                                       ("lambda=0.0001", 3e-3, 2e-6, 30.0, 1.6), ("lambda=0.01", 3e-3, 1e-5, 30.0, 1.6),
                                       ("lr=0.09", 0.09, 10.0, blow_s1, 1.2), ("nuclear 2e-05", 3e-3, 1e-4, 30.0, 1.7),
                                       ("no penalty", 3e-3, 1.0, 10.0, 5.0)]:
        for s in range(2):
            rows.append(dict(label=label, seed=s, lr=lr, test=test * (1 + s), train=1e-7, s1=s1, ratio=ratio,
                             stop_step=1000))
    return pd.DataFrame(rows)


def test_ablation_measures():
    grid, _ = _grid()
    A = res.ablation_measures(_ablation_table(blow_s1=300.0), grid)
    assert A["nuclear_worse"] == pytest.approx(1e2) and A["nuclear_worse_control"] == pytest.approx(2.0)
    assert A["beta1_zero"] == pytest.approx(1e-5) and A["lambda_sweep"] == pytest.approx(1.5e-5)
    assert A["runaway"] == pytest.approx(10.0) and A["runaway_control"] == pytest.approx(1.0)
    assert A["lower_penalty"] == pytest.approx(-0.4) and A["lower_penalty_control"] == pytest.approx(0.0)
    assert A["blow_lr"] == 0.09
    # a large learning rate that stays put does not run away
    assert res.ablation_measures(_ablation_table(blow_s1=30.0), grid)["runaway"] < 2.0
    with pytest.raises(ValueError, match="lacks a variant"):
        res.ablation_measures(_ablation_table(300.0).query("label != 'no penalty' and not label.str.startswith('nuclear')"), grid)


# -- numbers for the prose ---------------------------------------------------------------------------
@pytest.mark.parametrize("x, digits, text", [
    (3e-3, 1, "3·10⁻³"), (1e-8, 1, "10⁻⁸"), (15_000, 2, "1.5·10⁴"), (0.0424, 2, "0.042"), (0.0294, 1, "0.03"),
    (3000, 1, "3,000"), (1.0, 1, "1"), (30, 1, "30"), (1.3734e-6, 2, "1.4·10⁻⁶"), (9.6e-5, 1, "10⁻⁴"),
    (-2e-5, 1, "-2·10⁻⁵"), (0.0, 1, "0"),
])
def test_sci_writes_numbers_as_the_prose_does(x, digits, text):
    assert res.sci(x, digits) == text


def test_prose_values_follow_the_parameters():
    full = ch04.params("full")
    v = res.prose_values(P, full)
    assert (v["n"], v["rank"], v["dof"], v["full-n"], v["full-dof"]) == ("50", "3", "291", "100", "975")
    assert v["lr-adam"] == "3·10⁻³" and v["full-lr-adam"] == "10⁻³" and v["steps"] == "1.5·10⁴"
    assert v["ns-old"] == "15" and v["full-ns-old"] == "25" and v["ns-threshold"] == "2·10⁻³"
    assert v["m-mid"] == "600" and v["full-m-range"] == "1,000 to 5,000" and v["full-lr-factors"] == "3 and 30"
    assert v["adam-bound"] == "7.3" and v["unobs-grad"] == "3·10⁻⁶" and v["pen-grad-norm"] == "10⁻⁴"
    # a parameter changed in one place changes the prose
    other = dataclasses.replace(P, grid=dataclasses.replace(P.grid, n=40))
    assert res.prose_values(other, full)["dof"] == "231"
    assert res.adam_step_bound(0.0, 0.999) == pytest.approx(1 / np.sqrt(0.001))  # RMSprop: 1/sqrt(1-beta2)


def test_recorded_reads_the_archived_execution(tmp_path):
    stem = "04-x"
    run = {"profile": "full", "n_passed": 2, "n_claims": 3,
           "studies": [{"study": "grid", "wall_s": 5071.9}, {"study": "baseline", "wall_s": 2500.0}]}
    claims = {"claims": [{"id": "ch04-a", "measured": 1.5, "values": {"x": 2.0}}]}
    (tmp_path / f"{stem}.run.json").write_text(json.dumps(run))
    (tmp_path / f"{stem}.claims.json").write_text(json.dumps(claims))
    r = res.recorded(stem, tmp_path)
    assert (r["passed"], r["total"], r["profile"]) == (2, 3, "full")
    assert r["claims"]["ch04-a"]["measured"] == 1.5 and r["minutes"]["grid"] == pytest.approx(84.53, abs=0.01)
    assert r["wall"] == "2 h 6 min"
    with pytest.raises(FileNotFoundError):
        res.recorded("04-missing", tmp_path)
    committed = res.recorded()  # the repository's own record of the paper-scale run
    assert committed["profile"] == "full" and "ch04-depth1-completes" in committed["claims"]
    v = res.recorded_values(committed, ch04.params("full"))
    assert v["full-floor"] == "2·10⁻⁶" and v["full-lr-sq"] == "10⁻⁶" and int(v["full-passed"]) <= int(v["full-claims"])
    assert {"full-min-grid", "full-min-ablations", "full-min-normalized", "full-min-baseline"} <= set(v)


def test_newton_schulz_float32_error():
    """Accurate on a well-conditioned matrix, far off once singular values fall below float32's reach."""
    gen = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(2, 20, 20, dtype=torch.float64, generator=gen))[0]
    s = torch.stack([torch.linspace(1.0, 2.0, 20, dtype=torch.float64),
                     torch.cat([torch.linspace(1.0, 2.0, 3, dtype=torch.float64), torch.full((17,), 1e-9)])])
    w = (q @ torch.diag_embed(s) @ q.transpose(1, 2)).to(torch.float32).numpy()
    runs = pd.DataFrame({"depth": [1, 1], "lam": [P.grid.lam] * 2})
    e = res.newton_schulz_float32(dict(runs=runs, final=w), P, iters=60)
    assert e["min"] < 1e-5 and e["max"] > 1e-2


def test_penalty_path_adam_ignores_the_weight_and_gd_does_not():
    w0 = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lams = torch.tensor([1.0, 1e-3])
    adam = res.penalty_path(w0, lams, steps=5, lr=1e-2, eps=0.0)
    assert (adam[1] - adam[0]).abs().max() < 1e-12 and (adam[0] - w0).abs().max() > 1e-3
    gd = res.penalty_path(w0, lams, steps=1, lr=1e-2, eps=0.0, adam=False)
    assert ((gd[1] - w0).norm() / (gd[0] - w0).norm()).item() == pytest.approx(1e-3, rel=1e-6)
    # with Adam's eps far above the scaled gradient the weight matters again
    tiny = res.penalty_path(w0, torch.tensor([1.0, 1e-9]), steps=5, lr=1e-2, eps=1e-8)
    assert (tiny[1] - tiny[0]).norm() > 0.5 * (tiny[0] - w0).norm()
