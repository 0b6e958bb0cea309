"""Figures of chapter 5 (minimum norm interpolation between known regions): results in, figure out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from .style import COLORS, FULL, legend_below, panel_labels

#: drawn in this order, widest first, so that coinciding curves stay visible: a thick line under a thinner
#: one of another colour and dash pattern
CONV_STYLE = {
    ("l2", False): {"color": COLORS["blue"], "ls": "-", "lw": 4.5, "alpha": 0.55, "label": r"(1) $\ell_2$ bias, no affine term (primary)"},
    ("l2", True): {"color": COLORS["red"], "ls": (0, (6, 3)), "lw": 2.6, "label": r"(2) $\ell_2$ bias, free affine term"},
    ("l1", False): {"color": COLORS["green"], "ls": (0, (4, 2, 1, 2)), "lw": 1.6, "label": r"(3) $|w|+|b|$, no affine term"},
    ("free", False): {"color": COLORS["purple"], "ls": (0, (1, 1.5)), "lw": 1.3, "label": "(4) bias unpenalised (the solver's minimiser)"},
}
SCHED_STYLE = {
    "derived": {"color": COLORS["blue"], "marker": "o"},
    "slow": {"color": COLORS["cyan"], "marker": "v"},
    "fixed": {"color": COLORS["red"], "marker": "s"},
    "fast": {"color": COLORS["yellow"], "marker": "^"},
    "n-fixed": {"color": COLORS["purple"], "marker": "D"},
}
METHOD_COLOR = {"gd": COLORS["blue"], "sgd": COLORS["cyan"], "momentum": COLORS["green"], "adam": COLORS["red"]}
METHOD_DASH = {"gd": "-", "sgd": (0, (5, 2)), "momentum": (0, (6, 2, 1, 2)), "adam": (0, (2, 1.5))}
METHOD_MARKER = {"gd": "o", "sgd": "v", "momentum": "s", "adam": "^"}
METHOD_OFFSET = {"gd": 0, "sgd": 10, "momentum": 20, "adam": 30}
METHOD_NAME = {"gd": "GD", "sgd": "SGD", "momentum": "heavy ball", "adam": "Adam"}


def _regions(ax, x, target) -> None:
    ax.plot(x, target, color="black", lw=7, alpha=0.2, solid_capstyle="butt", label="target on the regions")


def coincide(curves: dict, name: str, tol: float = 1e-6) -> list[list[int]]:
    """Which conventions of :data:`CONV_STYLE` give the same function on example ``name`` (sup
    distance on the plotted grid at most ``tol`` times the target's range): groups of their numbers
    (1-4, the legend's), each group of two or more."""
    keys = list(CONV_STYLE)
    scale = tol * max(1.0, float(np.ptp(curves[(name, "target")][np.isfinite(curves[(name, "target")])])))
    groups: list[list[int]] = []
    for k, key in enumerate(keys):
        for g in groups:
            if np.max(np.abs(curves[(name, *keys[g[0] - 1])] - curves[(name, *key)])) <= scale:
                g.append(k + 1)
                break
        else:
            groups.append([k + 1])
    return [g for g in groups if len(g) > 1]


def interpolants(table: dict, examples: list[str]) -> plt.Figure:
    """Each example's regions and its exact minimum norm interpolants f^* under four conventions, one
    panel per example, (a), (b), ... two a row. Curves are drawn widest first, so that where two
    conventions give the same function both stay visible, and each panel's title says which conventions
    coincide there (:func:`coincide`); open circles: the kinks t of the primary interpolant."""
    curves = table["curves"]
    cols = min(2, len(examples))
    rows = -(-len(examples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(FULL, 2.5 * rows + 0.9), squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(examples):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), examples):
        x = curves[(name, "x")]
        _regions(ax, x, curves[(name, "target")])
        for key, st in CONV_STYLE.items():
            ax.plot(x, curves[(name, *key)], **st)
        k, fk = curves[(name, "kinks")]
        shown = (k >= x[0]) & (k <= x[-1])
        ax.plot(k[shown], fk[shown], "o", ms=5, mfc="white", color=COLORS["blue"], label="kinks of the primary interpolant")
        same = coincide(curves, name)
        note = "; ".join(" = ".join(f"({i})" for i in g) for g in same) if same else "all differ"
        ax.set_title(f"{name}: {note}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("$x$")
    for ax in axes[:, 0]:
        ax.set_ylabel("$f^*(x)$")
    legend_below(fig, axes.ravel()[:1], ncol=2)
    panel_labels(axes.ravel()[: len(examples)])
    return fig


def schedules(lasso_study: dict, trained_study: dict) -> plt.Figure:
    """Along the (n, m) grid, per schedule of lambda: (a) the exact infinite-width problem, the sup
    distance in the gap between the lasso optimum and the minimum norm interpolant f^*; (b) trained
    networks, objective J over the exact optimum's at the common step budget T (a star: the fast
    schedule's runs continued until eta lambda T = ``long_acted``, where weight decay has acted)."""
    lasso, trained, long = lasso_study["runs"], trained_study["runs"], trained_study.get("long")
    sample_distance = float(np.mean(lasso_study["sample_interpolant_distance"]))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(FULL, 4.0), layout="constrained")
    for name, st in SCHED_STYLE.items():
        d = lasso[lasso.schedule == name].groupby("level").distance.mean()
        if len(d):
            a1.loglog(2.0 ** d.index, d.values, label=name, **st)
        t = trained[trained.schedule == name].groupby("level")
        if len(t):
            ratio = t.objective.mean() / t.lasso_objective.mean()
            a2.semilogx(2.0 ** ratio.index, ratio.values, label=name, base=2, **st)
    if long is not None:
        a2.semilogx([2.0 ** long["level"]], [float(np.median(long["ratio"]))], base=2, ls="none", marker="*", ms=13,
                    color=SCHED_STYLE["fast"]["color"], mec="black",
                    label=rf"fast, run on to $\eta\lambda T = {long['eta_lam_t'][-1]:.0f}$")
    a1.axhline(sample_distance, color="grey", lw=1, ls="--", label=r"$n=n_0$ sample interpolant")
    a1.set_xscale("log", base=2)
    a1.set_xlabel(r"scale $s$ ($n = n_0 s$, $m = m_0 s$)")
    a1.set_ylabel(r"$\sup_{\mathrm{gap}} |f_\lambda - f^*|$")
    a1.set_title("infinite width (lasso)")
    a2.axhline(1.0, color="grey", lw=1)
    a2.set_yscale("log")
    a2.set_xlabel(r"scale $s$ ($n = n_0 s$, $m = m_0 s$)")
    a2.set_ylabel("trained objective / exact optimum")
    a2.set_title("trained networks (GD, weight decay)")
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(h2, l2) if lab not in l1]
    legend_below(fig, handles=h1 + [h for h, _ in extra], labels=l1 + [lab for _, lab in extra], ncol=3)
    panel_labels((a1, a2))
    return fig


def trained_overlay(bias: dict) -> plt.Figure:
    """Trained networks (seed 0) over the data and the exact references: (a), (b) without weight decay,
    (c), (d) with weight decay lambda; (a), (c) standard and (b), (d) small initialisation, one curve per
    optimiser."""
    runs = bias["runs"]
    z, f = bias["z"], bias["f"]
    fig, axes = plt.subplots(2, 2, figsize=(FULL, 6.1), sharex=True, sharey=True, layout="constrained")
    inits = sorted(runs.init.unique(), reverse=True)
    for i, wd in enumerate(sorted(runs.wd.unique())):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            ax.plot(z, bias["ref_curves"]["l2"], color="black", lw=2.5, alpha=0.35, label=r"min norm, $\ell_2$ bias (plateau)")
            ax.plot(z, bias["ref_curves"]["l1"], color="black", lw=1.2, ls="--", alpha=0.6, label=r"min norm, $|w|+|b|$ (tent)")
            if wd > 0:  # a wide band under the runs, so that it shows around runs that land on it
                ax.plot(z, bias["lasso_curve"], color=COLORS["yellow"], lw=6, alpha=0.55, solid_capstyle="butt",
                        label=r"exact optimum at $\lambda$", zorder=1.5)
            sel = runs[(runs.wd == wd) & (runs.init == init) & (runs.seed == 0)]
            for r in sel.itertuples():  # dash and marker per method: coinciding runs stay distinguishable
                ax.plot(z, f[r.Index], color=METHOD_COLOR[r.method], lw=1.3, ls=METHOD_DASH[r.method],
                        marker=METHOD_MARKER[r.method], ms=4, markevery=(METHOD_OFFSET[r.method], 40),
                        label=METHOD_NAME[r.method])
            ax.scatter(bias["x"], bias["y"], s=10, color="black", zorder=5, label="data")
            head = f"weight decay $\\lambda$ = {wd:g}" if wd > 0 else "no weight decay"
            ax.set_title(f"{head}, init scale {init:g}", fontsize=9)
            ax.set_ylim(-0.2, 2.2)
            if i == 1:
                ax.set_xlabel("$x$")
            if j == 0:
                ax.set_ylabel("$f(x)$")
    legend_below(fig, axes[1, :1], ncol=3)
    panel_labels(axes.ravel())
    return fig


def norm_history(bias: dict) -> plt.Figure:
    """The variation norm V(theta) = sum_j |a_j| ||(w_j, b_j)|| over the steps t (mean over seeds) per
    optimiser and initialisation: (a) without weight decay, against the minimum norm of the data; (b) with
    weight decay lambda, also against the norm of the exact regularised optimum."""
    runs = bias["runs"]
    steps, hist = bias["steps"], bias["norm_history"]
    fig, axes = plt.subplots(1, 2, figsize=(FULL, 4.2), sharey=True, layout="constrained")
    for ax, wd in zip(axes, sorted(runs.wd.unique())):
        for k, init in enumerate(sorted(runs.init.unique(), reverse=True)):
            for method, color in METHOD_COLOR.items():
                idx = runs[(runs.wd == wd) & (runs.init == init) & (runs.method == method)].index
                ax.plot(steps[1:], hist[idx, 1:].mean(0), color=color, ls="-" if k == 0 else "--",
                        label=f"{METHOD_NAME[method]}, init {init:g}")
        ax.axhline(bias["ref_norm"]["l2"], color="black", lw=1, label=r"min norm of the data ($\ell_2$ bias)")
        if wd > 0:
            ax.axhline(bias["lasso"]["norm"], color=COLORS["yellow"], lw=2, label=r"norm of the exact optimum at $\lambda$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("step")
        ax.set_title("no weight decay" if wd == 0 else f"weight decay $\\lambda$ = {wd:g}", fontsize=9)
    axes[0].set_ylabel(r"$\sum_j |a_j|\,\|(w_j, b_j)\|$")
    legend_below(fig, axes[-1:], ncol=3)
    panel_labels(axes)
    return fig
