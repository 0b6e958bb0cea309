"""Every figure of the book fits the page column and its text stays readable there.

Each figure function of ``lib.plots`` is drawn from small synthetic inputs shaped like its study's
result (a few runs, a few steps: the layout, legends and labels are what is measured, not the data)
and measured as the page shows it (:func:`lib.book.figures.measure`): no wider than the column
(:data:`lib.plots.style.COLUMN_PX`, so that it is not scaled down) and no text under
:data:`lib.plots.style.MIN_FONT_PX` pixels. A figure with 5-pt text, or one 12 inches wide, must fail.
"""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lib.book.figures import measure  # noqa: E402
from lib.plots import ch01, ch02, ch03, ch04, ch05, style  # noqa: E402

R = np.random.default_rng(0)
T = np.linspace(0.0, 5.0, 30)


def _decay(k: int, b: int) -> np.ndarray:
    return np.exp(-np.outer(np.linspace(0, 5, k), R.uniform(0.5, 2, b)))


# -- chapter 1 -------------------------------------------------------------------------------------
def _g3():
    g = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 20.0])
    tab = pd.DataFrame({"gamma": g, "w1": 5.0, "w2": -1.0, "w3": -0.1 * g / (1 + g)})
    tab["w3 exact"] = tab["w3"]
    traj = np.cumsum(R.normal(size=(20, len(g), 3)), 0) * 0.1
    return {"table": tab, "traj": traj, "w0": np.full(3, 1e-6), "cross_loss": R.uniform(1e-30, 1e-20, (6, 6)),
            "dist": R.uniform(0, 1, (6, 6))}


def _random_runs(b=12):
    runs = pd.DataFrame({"status": ["converged"] * b, "ratio": np.r_[np.ones(4), 1 + R.uniform(1e-5, 0.5, b - 4)]})
    return {"runs": runs, "time": np.tile(T[:, None], (1, b)), "dist_curves": _decay(30, b)[..., None].repeat(3, 2),
            "n_rows": np.full(b, 4), "labels": np.ones((b, 4)),
            "showcase": {"run": 0, "time": T, "patterns": R.uniform(size=(30, 4)) > 0.5, "dist": _decay(30, 3),
                         "switch_times": np.array([1.05, 2.05])}}


def _phase():
    g = np.array([0.5, 1.0, 2.0, 5.0, 10.0])
    dense = pd.DataFrame({"gamma": np.geomspace(0.1, 1e4, 40)})
    dense["w2_star"] = 0.55 + 0.45 / (1 + dense.gamma)
    dense["bound"], dense["bound_valid"] = 1 / dense.gamma, dense.gamma >= 5
    tab = pd.DataFrame({"gamma": g, "w2* exact": 0.55 + 0.45 / (1 + g)})
    tab["w2(T)"] = tab["w2* exact"]
    return {"table": tab, "traj": R.uniform(0.5, 1, (20, 5, 2)), "dense": dense, "w0": np.array([0.1, 1.0]),
            "asymptote": 0.55}


def _leaky():
    b = 8
    runs = pd.DataFrame({"slope": np.repeat([0.3, 0.6], b // 2), "rate_bound": R.uniform(0.5, 2, b)})
    return {"runs": runs, "time": np.tile(np.linspace(0, 40, 30)[:, None], (1, b)), "err_curve": _decay(30, b) + 1e-16}


def _balance():
    drift = pd.DataFrame([(h, i, m, h ** (1 if m == "GD" else 2)) for h in (1e-3, 2e-3, 4e-3) for i in range(3)
                          for m in ("GD", "RK4")], columns=["h", "init", "method", "drift"])
    return {"curve_time": T, "curve_w2": _decay(30, 3), "curve_v2": _decay(30, 3), "curve_Q": np.zeros((30, 3)),
            "drift": drift, "T": 4.0}


def _network():
    runs = pd.DataFrame([(w, g, g / (1 + g), 1e-10 * g) for w in (1, 3) for g in (0.5, 1, 2, 5)],
                        columns=["width", "gamma", "f_e3", "balance_drift"])
    return {"runs": runs}


# -- chapter 2 -------------------------------------------------------------------------------------
def _margins():
    steps = np.arange(50)
    gam = np.clip(np.linspace(0, 1, 50)[:, None] * R.uniform(0.5, 1, (1, 4)), 0, 1)
    return {"d2": {"steps": steps, "gamma": gam},
            "curve_d2": pd.DataFrame({"distance": np.geomspace(1e-3, 1e-1, 5), "gain": np.geomspace(1e-6, 1e-2, 5)}),
            "face_d3": pd.DataFrame({"t": np.linspace(-0.5, 0.5, 20), "norm2": 3 + np.linspace(-0.5, 0.5, 20) ** 2}),
            "d3": {"beta": R.uniform(0.2, 1, (5, 2))}}


def _fc():
    return {"gamma_svm": 0.5, "curves": {L: {"steps": np.arange(20), "gamma": R.uniform(0, 0.1, (20, 4))} for L in (2, 3)}}


def _relu():
    return {"X": np.array([[1, 0.2], [-1, 0.2]]), "theta": R.normal(size=(2, 6)), "angles": np.linspace(0, 6.28, 50),
            "h": R.uniform(0, 1, (2, 50))}


def _local():
    return pd.DataFrame([(p, c, r, r**2 * (p != "optimum")) for p in ("KKT point", "optimum") for c in range(2)
                         for r in (1e-3, 1e-2, 1e-1)], columns=["point", "centre", "radius", "gain"])


def _hist():
    return pd.DataFrame({"width": np.repeat([2, 4], 40), "separated": True, "gamma": R.uniform(0, 0.28, 80)})


def _escape():
    rows = [(L, e, np.log(1 / e), 100 * L * np.log(1 / e), np.exp(np.log(1 / e) ** 1.1)) for L in (2, 3)
            for e in (1e-2, 1e-4, 1e-6, 1e-8)]
    tab = pd.DataFrame(rows, columns=["depth", "eps", "log_inv_eps", "steps", "log_flow_time"])
    fit = pd.DataFrame({"slope": [20.0, 50.0], "intercept": [0.0, 10.0]}, index=pd.Index([2, 3], name="depth"))
    return {"table": tab, "curves": {2: {"steps": np.arange(100), "gamma": R.uniform(0, 1, (100, 4))}}}, fit


def _smoothed():
    c = {"labels": ["Gaussian init", "SVM start"], "s": np.tile(T[:, None], (1, 2)), "smoothed": R.uniform(0, 1, (30, 2)),
         "gamma": R.uniform(0, 1, (30, 2))}
    return {"curves": {"FC linear depth 2": c, "FC linear depth 3": c}}


# -- chapter 3 -------------------------------------------------------------------------------------
def _interp(name="convex"):
    x = np.array([1.0, 2, 3, 4, 5])
    y = (x - 3) ** 2 / 4
    grid = np.linspace(0, 6, 61)
    kinks = {"kinks": np.array([2.5, 3.5]), "n_kinks": 2, "cost": 1.0}
    fam = {"values": np.interp(grid, x, y), "kinks": x[1:-1], "cost_free": 1.0, "cost_l2": 1.2}
    return {"x": x, "y": y, "grid": grid, "f_free": np.interp(grid, x, y), "f_l2": np.interp(grid, x, y),
            "free": kinks, "l2": kinks, "sparsest": 2, "biasfree_value": 1.0, "paired": fam,
            "family": {"linear spline": fam, "paired": fam, "paired, shifted": fam},
            "dual_grid": np.linspace(-4, 4, 41), "dual": np.ones(41)}


def _smap():
    rows = [(L, c, "centred", float(c), s, e) for L in (1, 2, 3) for c in ("0", "2", "4") for s, e in ((True, 0), (False, 1))]
    rows += [(L, "straddling", "straddling", np.nan, True, 0) for L in (1, 2, 3)]
    return pd.DataFrame(rows, columns=["L", "centre", "regime", "offset", "is_sparsest", "excess"])


def _trained():
    runs = pd.DataFrame([(me, w, lam) for me, lams in (("wd_all", (1e-3, 1e-2)), ("wd_nobias", (1e-3, 1e-2)),
                                                       ("gd_small", (0.0,))) for w in (16, 48) for lam in lams],
                        columns=["method", "width", "lam"])
    runs["n_kinks"] = R.integers(2, 8, len(runs))
    grid = np.linspace(-3, 3, 31)
    n = len(runs)
    return {"runs": runs, "grid": grid, "f_grid": R.normal(size=(n, 31)), "kinks_pos": R.uniform(-3, 3, (n, 4)),
            "exact_grid": {"l2": np.zeros(31)}, "exact": {"l2": {"n_kinks": 3, "cost": 2.0}},
            "x": np.array([-1.0, 0, 1]), "y": np.array([0.0, 1, 0]), "steps": np.arange(20),
            "curves": {"norm_l2": R.uniform(1, 3, (n, 20)), "loss": R.uniform(1e-6, 1, (n, 20))}}


# -- chapter 4 -------------------------------------------------------------------------------------
def _grid():
    cfg = [(1, "adam", 1e-3), (1, "adam", 0.0), (1, "gd", 0.0), (2, "adam", 0.0), (2, "gd", 0.0), (3, "adam", 0.0),
           (3, "gd", 0.0)]
    rows = [(d, o, lam, m, s, 3e-3) for d, o, lam in cfg for m in (300, 600, 900) for s in range(2)]
    runs = pd.DataFrame(rows, columns=["depth", "optimizer", "lam", "m", "seed", "lr"])
    runs["test"], runs["erank"], runs["budget"] = R.uniform(1e-7, 1, len(runs)), R.uniform(3, 30, len(runs)), 40
    k = 41
    hist = {"steps": np.arange(k) * 10, "sigma": R.uniform(1e-3, 30, (k, len(runs), 5)),
            "train": R.uniform(1e-7, 1, (k, len(runs))), "test": R.uniform(1e-7, 1, (k, len(runs)))}
    truth = pd.DataFrame({"seed": [0, 1], "s1": [30.0, 25], "s2": [20.0, 15], "s3": [10.0, 8], "erank": 3.0})
    base = pd.DataFrame([(m, s, 10.0 ** -(m / 100), 4.0) for m in (300, 600, 900) for s in range(2)],
                        columns=["m", "seed", "test", "erank"])
    return {"runs": runs, "hist": hist, "truth": truth, "dof": 291}, base


def _ablations():
    ar = pd.DataFrame({"variant": ["lr sweep"] * 4 + ["reference"] * 2, "lr": [0.01, 0.01, 0.1, 0.1, 3e-3, 3e-3],
                       "m": 600, "budget": 400, "seed": [0, 1] * 3})
    h = {"steps": np.arange(41) * 10, "sigma": R.uniform(1e-3, 300, (41, 6, 5)), "train": R.uniform(0, 1, (41, 6)),
         "test": R.uniform(0, 10, (41, 6))}
    return {"runs": ar, "hist": h}


def _mech():
    runs = pd.DataFrame([(o, lam) for o in ("adam", "gd", "ngd") for lam in (1e-4, 1e-3, 1e-2)], columns=["optimizer", "lam"])
    h = {"steps": np.arange(30), "move_unobs": R.uniform(1e-6, 1, (30, 9)), "move_obs": R.uniform(1e-6, 1, (30, 9))}
    return {"runs": runs, "hist": h}


def _abl_table():
    return pd.DataFrame({"label": ["reference", "reference", "lr=0.1", "lr=0.1", "no penalty", "no penalty"],
                         "test": R.uniform(1e-6, 10, 6), "runaway": [False, False, True, True, False, False]})


# -- chapter 5 -------------------------------------------------------------------------------------
def _conv():
    x = np.linspace(-2, 2, 41)
    curves = {}
    for name in ("step", "tent", "shelf", "hinge"):
        target = np.where(np.abs(x) > 0.5, np.abs(x), np.nan)
        curves[(name, "x")], curves[(name, "target")] = x, target
        for key in ch05.CONV_STYLE:
            curves[(name, *key)] = np.abs(x) + (0.1 if key[0] == "free" else 0.0)
        curves[(name, "kinks")] = (np.array([-0.5, 0.5]), np.array([0.5, 0.5]))
    return {"curves": curves}


def _schedules():
    lasso = pd.DataFrame([(s, lv, 0.1 / (lv + 1)) for s in ch05.SCHED_STYLE for lv in range(3)],
                         columns=["schedule", "level", "distance"])
    trained = pd.DataFrame([(s, lv, 1.1, 1.0) for s in ch05.SCHED_STYLE for lv in range(3)],
                           columns=["schedule", "level", "objective", "lasso_objective"])
    long = {"level": 2, "ratio": np.array([1.05, 1.1]), "eta_lam_t": np.array([5.0, 40.0])}
    return {"runs": lasso, "sample_interpolant_distance": [0.2]}, {"runs": trained, "long": long}


def _bias():
    runs = pd.DataFrame([(m, i, wd, s) for m in ch05.METHOD_COLOR for i in (1.0, 0.05) for wd in (0.0, 0.01)
                         for s in range(2)], columns=["method", "init", "wd", "seed"])
    z = np.linspace(-1.2, 1.2, 81)
    return {"runs": runs, "z": z, "f": R.uniform(0, 1.5, (len(runs), 81)),
            "ref_curves": {"l2": np.minimum(1 - np.abs(z), 0.5), "l1": 1.5 - np.abs(z)}, "lasso_curve": 1 - np.abs(z),
            "x": np.linspace(-1, 1, 8), "y": np.ones(8), "steps": np.arange(30),
            "norm_history": R.uniform(1, 5, (len(runs), 30)), "ref_norm": {"l2": 2.0}, "lasso": {"norm": 1.5}}


FIGURES = {
    "ch01.gamma3d": lambda: ch01.gamma3d(_g3()),
    "ch01.cross_matrices": lambda: ch01.cross_matrices(_g3()),
    "ch01.phase_plane": lambda: ch01.phase_plane(_phase()),
    "ch01.leaky": lambda: ch01.leaky(_leaky()),
    "ch01.approx_ratio": lambda: ch01.approx_ratio(_random_runs()),
    "ch01.activation_pattern": lambda: ch01.activation_pattern(_random_runs()),
    "ch01.balance": lambda: ch01.balance(_balance()),
    "ch01.network": lambda: ch01.network(_network()),
    "ch02.fc_gamma": lambda: ch02.fc_gamma(_fc()),
    "ch02.diag2": lambda: ch02.diag2(_margins()),
    "ch02.diag3_face": lambda: ch02.diag3_face(_margins()),
    "ch02.relu_points": lambda: ch02.relu_points(_relu()),
    "ch02.random_hist": lambda: ch02.random_hist(_hist(), 0.25, 0.1),
    "ch02.local_gain": lambda: ch02.local_gain(_local()),
    "ch02.escape_steps": lambda: ch02.escape_steps(*_escape()),
    "ch02.smoothed_curves": lambda: ch02.smoothed_curves(_smoothed()),
    "ch03.fig_weight": lambda: ch03.fig_weight({"a": ([1.0, 2, 3], [0.0, 1, 0]), "b": ([-1.0, 1, 2], [0.0, 1, 0])}),
    "ch03.fig_interpolants": lambda: ch03.fig_interpolants({k: _interp() for k in "abc"}, list("abc")),
    "ch03.fig_family": lambda: ch03.fig_family(_interp(), "convex"),
    "ch03.fig_counterexample": lambda: ch03.fig_counterexample(_interp(), "a counterexample"),
    "ch03.fig_dual_certificate": lambda: ch03.fig_dual_certificate(_interp()),
    "ch03.fig_sparsity_map": lambda: ch03.fig_sparsity_map(_smap()),
    "ch03.fig_trained": lambda: ch03.fig_trained(_trained(), 16),
    "ch03.fig_kinks_vs": lambda: ch03.fig_kinks_vs(_trained()),
    "ch03.fig_cost_curves": lambda: ch03.fig_cost_curves(_trained()),
    "ch04.fig_penalty_dynamics": lambda: ch04.fig_penalty_dynamics(np.array([30.0, 20, 10, 1, 0.5, 0.1])),
    "ch04.fig_grid": lambda: ch04.fig_grid(*_grid()),
    "ch04.fig_headline": lambda: ch04.fig_headline(*_grid()),
    "ch04.fig_singular_values": lambda: ch04.fig_singular_values(_grid()[0], m=600),
    "ch04.fig_mechanism": lambda: ch04.fig_mechanism(_mech(), {"adam": 3e-3}),
    "ch04.fig_blowup": lambda: ch04.fig_blowup(_grid()[0], _ablations(), m_few=300, m_ok=600),
    "ch04.fig_ablations": lambda: ch04.fig_ablations(_abl_table()),
    "ch05.interpolants": lambda: ch05.interpolants(_conv(), ["step", "tent", "shelf", "hinge"]),
    "ch05.schedules": lambda: ch05.schedules(*_schedules()),
    "ch05.trained_overlay": lambda: ch05.trained_overlay(_bias()),
    "ch05.norm_history": lambda: ch05.norm_history(_bias()),
}


@pytest.fixture(autouse=True)
def _book_style():
    style.apply()
    yield
    plt.close("all")


def _is_figure(name, f, module) -> bool:
    return (inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")
            and (name.startswith("fig_") or inspect.signature(f).return_annotation == "plt.Figure"))


def test_every_figure_function_is_covered():
    names = {f"{m.__name__.rsplit('.', 1)[1]}.{n}" for m in (ch01, ch02, ch03, ch04, ch05)
             for n, f in vars(m).items() if _is_figure(n, f, m)}
    assert len(names) >= 36 and names <= set(FIGURES), sorted(names - set(FIGURES))


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_fits_the_column(name):
    on_page = measure(FIGURES[name]())
    assert on_page.width_px <= style.COLUMN_PX, f"{name}: {on_page.width_px} px wide, scaled by {on_page.scale:.2f}"
    assert on_page.height_px <= 1.1 * style.COLUMN_PX, f"{name}: {on_page.height_px} px tall"
    assert on_page.min_font_px >= style.MIN_FONT_PX, (
        f"{name}: text {on_page.smallest!r} shows at {on_page.min_font_px:.1f} px (< {style.MIN_FONT_PX:.1f})")
    assert on_page.fits


def test_measure_catches_small_text_and_wide_figures():
    fig, ax = plt.subplots(figsize=(style.SINGLE, 3), layout="constrained")
    ax.plot([0, 1], [0, 1], label="a curve")
    ok = measure(fig)
    assert ok.fits and ok.scale == 1.0
    ax.legend(fontsize=5)  # 5-pt legend: 6.9 px on the page
    small = measure(fig)
    assert small.smallest == "a curve" and small.min_font_px == pytest.approx(5 * style.SCREEN_DPI / 72)
    assert not small.fits
    wide, ax = plt.subplots(figsize=(12, 3))  # 9-pt ticks, but the column scales it to 78%
    ax.plot([0, 1], [0, 1])
    m = measure(wide)
    assert m.scale < 0.8 and m.min_font_px < style.MIN_FONT_PX and not m.fits
