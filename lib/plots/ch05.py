"""Figures of chapter 5 (minimum norm interpolation between known regions): results in, figure out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from .style import COLORS

#: drawn in this order, widest first, so that coinciding curves stay visible: a thick line under a thinner
#: one of another colour and dash pattern
CONV_STYLE = {
    ("l2", False): {"color": COLORS["blue"], "ls": "-", "lw": 4.5, "alpha": 0.55, "label": r"$\ell_2$ bias, no affine term (primary)"},
    ("l2", True): {"color": COLORS["red"], "ls": (0, (6, 3)), "lw": 2.6, "label": r"$\ell_2$ bias, free affine term"},
    ("l1", False): {"color": COLORS["green"], "ls": (0, (4, 2, 1, 2)), "lw": 1.6, "label": r"$|w|+|b|$, no affine term"},
    ("free", False): {"color": COLORS["purple"], "ls": (0, (1, 1.5)), "lw": 1.3, "label": "bias unpenalised (one of many minimisers)"},
}
SCHED_STYLE = {
    "derived": {"color": COLORS["blue"], "marker": "o"},
    "slow": {"color": COLORS["cyan"], "marker": "v"},
    "fixed": {"color": COLORS["red"], "marker": "s"},
    "fast": {"color": COLORS["yellow"], "marker": "^"},
    "n-fixed": {"color": COLORS["purple"], "marker": "D"},
}
METHOD_COLOR = {"gd": COLORS["blue"], "sgd": COLORS["cyan"], "momentum": COLORS["green"], "adam": COLORS["red"]}


def _regions(ax, x, target) -> None:
    ax.plot(x, target, color="black", lw=7, alpha=0.2, solid_capstyle="butt", label="target on the regions")


def interpolants(table: dict, examples: list[str]) -> plt.Figure:
    """Each example's regions and its exact minimum norm interpolants under four conventions (widest line
    first, so that where two conventions give the same function both stay visible)."""
    curves = table["curves"]
    fig, axes = plt.subplots(1, len(examples), figsize=(3.2 * len(examples), 3.3))
    for ax, name in zip(np.atleast_1d(axes), examples):
        x = curves[(name, "x")]
        _regions(ax, x, curves[(name, "target")])
        for key, st in CONV_STYLE.items():
            ax.plot(x, curves[(name, *key)], **st)
        k, fk = curves[(name, "kinks")]
        shown = (k >= x[0]) & (k <= x[-1])
        ax.plot(k[shown], fk[shown], "o", ms=5, mfc="white", color=COLORS["blue"], label="kinks of the primary interpolant")
        ax.set_title(name)
        ax.set_xlabel("$x$")
    np.atleast_1d(axes)[0].set_ylabel("$f^*(x)$")
    h, lab = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig


def schedules(lasso_study: dict, trained_study: dict) -> plt.Figure:
    """Gap distance to the region interpolant along the (n, m) grid, per lambda schedule: the exact
    infinite-width problem (left) and trained networks (right: objective relative to the exact optimum at
    the common step budget; a star: the fast schedule's runs continued until weight decay has acted)."""
    lasso, trained, long = lasso_study["runs"], trained_study["runs"], trained_study.get("long")
    sample_distance = float(np.mean(lasso_study["sample_interpolant_distance"]))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
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
    a1.set_title(r"infinite width (lasso over the kink dictionary)")
    a1.legend(ncol=2)
    a2.axhline(1.0, color="grey", lw=1)
    a2.set_yscale("log")
    a2.set_xlabel(r"scale $s$ ($n = n_0 s$, $m = m_0 s$)")
    a2.set_ylabel("trained objective / exact optimum")
    a2.set_title("trained networks (GD with weight decay)")
    a2.legend(ncol=2)
    fig.tight_layout()
    return fig


def trained_overlay(bias: dict) -> plt.Figure:
    """Trained networks (seed 0) per optimiser and initialisation, without and with weight decay, over
    the data and the exact references."""
    runs = bias["runs"]
    z, f = bias["z"], bias["f"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex=True, sharey=True)
    inits = sorted(runs.init.unique(), reverse=True)
    for i, wd in enumerate(sorted(runs.wd.unique())):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            ax.plot(z, bias["ref_curves"]["l2"], color="black", lw=2.5, alpha=0.35, label=r"min norm, $\ell_2$ bias (plateau)")
            ax.plot(z, bias["ref_curves"]["l1"], color="black", lw=1.2, ls="--", alpha=0.6, label=r"min norm, $|w|+|b|$ (tent)")
            if wd > 0:
                ax.plot(z, bias["lasso_curve"], color=COLORS["yellow"], lw=2.5, alpha=0.8, label=r"exact optimum at $\lambda$")
            sel = runs[(runs.wd == wd) & (runs.init == init) & (runs.seed == 0)]
            for r in sel.itertuples():
                ax.plot(z, f[r.Index], color=METHOD_COLOR[r.method], lw=1.2, label=r.method)
            ax.scatter(bias["x"], bias["y"], s=10, color="black", zorder=5, label="data")
            head = f"weight decay $\\lambda$ = {wd:g}" if wd > 0 else "no weight decay"
            ax.set_title(f"{head}, init scale {init:g}")
            ax.set_ylim(-0.2, 2.2)
            if i == 1:
                ax.set_xlabel("$x$")
            if j == 0:
                ax.set_ylabel("$f(x)$")
    h, lab = axes[1, 0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=5, bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout()
    return fig


def norm_history(bias: dict) -> plt.Figure:
    """Variation norm over training (mean over seeds) per optimiser, initialisation and weight decay,
    against the minimum norm of the data and the norm of the exact regularised optimum."""
    runs = bias["runs"]
    steps, hist = bias["steps"], bias["norm_history"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, wd in zip(axes, sorted(runs.wd.unique())):
        for k, init in enumerate(sorted(runs.init.unique(), reverse=True)):
            for method, color in METHOD_COLOR.items():
                idx = runs[(runs.wd == wd) & (runs.init == init) & (runs.method == method)].index
                ax.plot(steps[1:], hist[idx, 1:].mean(0), color=color, ls="-" if k == 0 else "--",
                        label=f"{method}, init {init:g}")
        ax.axhline(bias["ref_norm"]["l2"], color="black", lw=1, label=r"min norm of the data ($\ell_2$ bias)")
        if wd > 0:
            ax.axhline(bias["lasso"]["norm"], color=COLORS["yellow"], lw=2, label=r"norm of the exact optimum at $\lambda$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("step")
        ax.set_title("no weight decay" if wd == 0 else f"weight decay $\\lambda$ = {wd:g}")
    axes[0].set_ylabel(r"$\sum_j |a_j|\,\|(w_j, b_j)\|$")
    h, lab = axes[1].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig
