"""Figures of chapter 3 (penalising the biases enforces sparsity): results in, Figure out."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import minnorm1d as mn
from .style import COLORS, FULL, MARKERS, legend_below, legend_right, panel_labels

METHOD_LABEL = {"wd_all": "weight decay on all parameters", "wd_nobias": "weight decay without biases",
                "gd_small": "plain GD, small initialisation"}
METHOD_COLOR = {"wd_all": COLORS["blue"], "wd_nobias": COLORS["red"], "gd_small": COLORS["green"]}


def _mark_kinks(ax, p, f, color, marker="v", label=None):
    ax.plot(p, f(p), linestyle="none", marker=marker, color=color, markersize=7, markeredgecolor="black",
            markeredgewidth=0.6, label=label, zorder=5)


def fig_weight(triples: dict[str, tuple[list[float], list[float]]]):
    """(a) The kink weights rho(p): sqrt(1 + p^2) (biases penalised), 1 + |p| (the |w| + |b| penalty) and 1
    (biases free). (b) For each data set of ``triples`` (name: (x, y); its first three points are used), the
    bias-penalised cost |s| rho(q) of the one-kink interpolant against the kink position q, with the
    closed-form minimiser (:func:`lib.minnorm1d.three_point`) marked."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(FULL, 3.5), layout="constrained")
    p = np.linspace(-4, 4, 401)
    for pen, col, lab in (("l2", "blue", r"$\sqrt{1+p^2}$ (biases penalised)"),
                          ("l1", "yellow", r"$1+|p|$ ($|w|+|b|$ penalty)"), ("free", "red", r"$1$ (biases free)")):
        ax0.plot(p, mn.weight(p, pen), color=COLORS[col], label=lab)
    ax0.set_xlabel("kink position $p = -b/w$")
    ax0.set_ylabel("cost per unit slope jump $\\rho(p)$")
    ax0.set_ylim(0.8, 7.2)
    ax0.legend(loc="upper center", ncol=1)
    ax0.set_title("one neuron: $|a|\\,\\|(w,b)\\| = |s|\\,\\rho(p)$")
    for (name, (x, y)), col in zip(triples.items(), ("blue", "purple", "green")):
        x, y = np.asarray(x, float)[:3], np.asarray(y, float)[:3]
        kappa = abs(mn.secants(x, y)[1][0])
        qa = np.linspace(x[0], x[1], 300)[1:]  # kink left of x2: lines through (x1,y1) and (x2,x3)
        qb = np.linspace(x[1], x[2], 300)[:-1]
        ca = kappa * (x[1] - x[0]) * np.hypot(1, qa) / (qa - x[0])
        cb = kappa * (x[2] - x[1]) * np.hypot(1, qb) / (x[2] - qb)
        q, c = np.concatenate([qa, qb]), np.concatenate([ca, cb])
        ax1.plot(q, c, color=COLORS[col], label=f"{name}: $x$ = {', '.join(f'{v:g}' for v in x)}")
        p_star, c_star = mn.three_point(x, y)
        ax1.plot([p_star], [c_star], marker="o", color=COLORS[col], markeredgecolor="black")
        for v in x:
            ax1.axvline(v, color=COLORS[col], lw=0.6, ls=":")
    ax1.set_ylim(0, None)
    top = ax1.get_ylim()[1]
    ax1.set_ylim(0, min(top, 6))
    ax1.set_xlabel("position $q$ of the single kink")
    ax1.set_ylabel(r"cost $|s|\sqrt{1+q^2}$ of the interpolant")
    ax1.set_title("three points: minimiser at $x_2$ or $-1/x_1$")
    ax1.legend(loc="lower left", ncol=1)
    panel_labels((ax0, ax1))
    return fig


def fig_interpolants(examples: dict[str, Any], names: list[str]):
    """One panel per data set of ``names``, (a), (b), ...: the exact minimal-norm interpolants with the
    bias penalty (minimising R-bar, kinks ▼) and without it (minimising R, the solver's member of the
    family, kinks ▲), over the data."""
    fig, axes = plt.subplots(1, len(names), figsize=(FULL - 0.2, 3.3), layout="constrained")
    for ax, name in zip(np.atleast_1d(axes), names):
        e = examples[name]
        ax.plot(e["grid"], e["f_free"], color=COLORS["red"], lw=3.2, alpha=0.55, label="biases free (kinks ▲)")
        ax.plot(e["grid"], e["f_l2"], color=COLORS["blue"], ls=(0, (5, 2)), lw=1.5,
                label="biases penalised (kinks ▼)")
        for key, col, mk in (("free", "red", "^"), ("l2", "blue", "v")):
            p = e[key]["kinks"]
            ax.plot(p, np.interp(p, e["grid"], e[f"f_{key}"]), ls="none", marker=mk, color=COLORS[col],
                    markeredgecolor="black", markeredgewidth=0.6, markersize=7, zorder=5)
        ax.plot(e["x"], e["y"], "o", color="black", markersize=4, zorder=6, label="data")
        ax.set_title(f"{name}\nkinks: ▲ {e['free']['n_kinks']}, ▼ {e['l2']['n_kinks']}, fewest {e['sparsest']}",
                     fontsize=9)
        ax.set_xlabel("$x$")
    np.atleast_1d(axes)[0].set_ylabel("$f(x)$")
    legend_below(fig, np.atleast_1d(axes)[:1], ncol=3)
    panel_labels(np.atleast_1d(axes))
    return fig


def fig_family(e: dict[str, Any], name: str):
    """The bias-free family on one data set, one member per panel, (a), (b), ... (they coincide outside
    the middle of the data, so one panel would hide them behind each other): equal cost R = sum_i |kappa_i|,
    different kink counts; the bias-penalised minimiser dashed in every panel."""
    members = list(e["family"].items())
    fig, axes = plt.subplots(1, len(members), figsize=(FULL, 3.4), sharey=True, layout="constrained")
    cols = [COLORS["red"], COLORS["yellow"], COLORS["purple"]]
    for ax, (label, fam), col, mk in zip(np.atleast_1d(axes), members, cols, MARKERS):
        ax.plot(e["grid"], fam["values"], color=col, lw=2.2)
        ax.plot(e["grid"], e["f_l2"], color=COLORS["blue"], ls="--", lw=1.2,
                label=f"biases penalised (unique): {e['l2']['n_kinks']} kinks")
        ax.plot(fam["kinks"], np.interp(fam["kinks"], e["grid"], fam["values"]), ls="none", marker=mk, color=col,
                markeredgecolor="black", markeredgewidth=0.6, zorder=5)
        ax.plot(e["x"], e["y"], "o", color="black", markersize=4, zorder=6, label="data")
        ax.set_title(f"{label}\n{fam['kinks'].size} kinks, $R$ = {fam['cost_free']:.4f}", fontsize=9, color=col)
        ax.set_xlabel("$x$")
    np.atleast_1d(axes)[0].set_ylabel("$f(x)$")
    fig.suptitle(f"{name}: bias-free minimisers, all with $R = \\sum_i|\\kappa_i|$ = {e['biasfree_value']:.4f}")
    legend_below(fig, np.atleast_1d(axes)[:1], ncol=2)
    panel_labels(np.atleast_1d(axes))
    return fig


def fig_counterexample(c: dict[str, Any], title: str):
    """A certified counterexample (a record of ``ch03.counterexamples``): (a) the bias-penalised minimiser
    (minimising R-bar) and the sparsest interpolant over the data, kinks marked; (b) their difference."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(FULL, 3.5), gridspec_kw={"width_ratios": [1.3, 1]},
                                   layout="constrained")
    paired = c["paired"]
    ax0.plot(c["grid"], paired["values"], color=COLORS["red"],
             label=f"sparsest interpolant: {paired['kinks'].size} kinks, $\\bar R$ = {paired['cost_l2']:.4f}")
    ax0.plot(c["grid"], c["f_l2"], color=COLORS["blue"],
             label=f"$\\bar R$-minimiser: {c['l2']['n_kinks']} kinks, $\\bar R$ = {c['l2']['cost']:.4f}")
    for p, vals, col, mk in ((paired["kinks"], paired["values"], "red", "^"), (c["l2"]["kinks"], c["f_l2"], "blue", "v")):
        ax0.plot(p, np.interp(p, c["grid"], vals), ls="none", marker=mk, color=COLORS[col], markeredgecolor="black",
                 markeredgewidth=0.6, markersize=7, zorder=5)
    ax0.plot(c["x"], c["y"], "o", color="black", markersize=4, zorder=6, label="data")
    ax0.set_xlabel("$x$")
    ax0.set_ylabel("$f(x)$")
    ax0.legend(loc="upper left", ncol=1)
    ax0.set_title(title, fontsize=9)
    ax1.plot(c["grid"], c["f_l2"] - paired["values"], color=COLORS["purple"])
    ax1.axhline(0, color="black", lw=0.6)
    ax1.plot(c["x"], 0 * c["x"], "o", color="black", markersize=4)
    ax1.set_xlabel("$x$")
    ax1.set_ylabel("$f_{\\bar R}(x) - f_{\\mathrm{sparsest}}(x)$")
    ax1.set_title("difference (zero at the data)")
    panel_labels((ax0, ax1))
    return fig


def fig_dual_certificate(c: dict[str, Any]):
    """A counterexample with its certificate: (a) the minimiser and the sparsest interpolant; (b) the
    certified dual function g_lambda against the weight rho(p) = sqrt(1 + p^2), touching it where the
    minimiser has kinks."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(FULL, 3.6), layout="constrained")
    paired = c["paired"]
    ax0.plot(c["grid"], paired["values"], color=COLORS["red"],
             label=f"sparsest interpolant: {paired['kinks'].size} kink, $\\bar R$ = {paired['cost_l2']:.4f}")
    ax0.plot(c["grid"], c["f_l2"], color=COLORS["blue"],
             label=f"$\\bar R$-minimiser: {c['l2']['n_kinks']} kinks, $\\bar R$ = {c['l2']['cost']:.4f}")
    for p, vals, col, mk in ((paired["kinks"], paired["values"], "red", "^"), (c["l2"]["kinks"], c["f_l2"], "blue", "v")):
        ax0.plot(p, np.interp(p, c["grid"], vals), ls="none", marker=mk, color=COLORS[col], markeredgecolor="black",
                 markeredgewidth=0.6, markersize=7, zorder=5)
    ax0.plot(c["x"], c["y"], "o", color="black", markersize=4, zorder=6, label="data")
    ax0.set_xlabel("$x$")
    ax0.set_ylabel("$f(x)$")
    ax0.legend(loc="upper left", ncol=1)
    ax0.set_title("two curvatures after $x_1 x_2 < -1$")
    p = c["dual_grid"]
    ax1.plot(p, mn.weight(p, "l2"), color="black", ls="--", lw=1.2, label="$\\rho(p) = \\sqrt{1+p^2}$")
    ax1.plot(p, c["dual"], color=COLORS["blue"], label="certified dual function $g_\\lambda(p)$")
    q = c["l2"]["kinks"]
    ax1.plot(q, mn.weight(q, "l2"), ls="none", marker="v", color=COLORS["blue"], markeredgecolor="black", markersize=7,
             zorder=5, label="kinks of the minimiser")
    for v in c["x"]:
        ax1.axvline(v, color="gray", lw=0.6, ls=":")
    ax1.set_xlabel("kink position $p$")
    ax1.set_title("certificate touches $\\rho$ at the kinks")
    ax1.set_ylim(None, 1.45 * float(np.max(mn.weight(p, "l2"))))
    ax1.legend(loc="upper center", ncol=1)
    panel_labels((ax0, ax1))
    return fig


def fig_sparsity_map(df: pd.DataFrame):
    """Against the longest same-sign curvature run ell (rows) and the data centre (columns; the last: one
    interval straddles 0 with x_i x_{i+1} < -1): (a) the fraction of random data sets whose bias-penalised
    minimiser is as sparse as possible, (b) the mean number of kinks in excess of the fewest."""
    order = [f"{o:g}" for o in sorted(df.loc[df.regime == "centred", "offset"].unique())]
    order += ["straddling"] if (df.regime == "straddling").any() else []
    frac = df.groupby(["L", "centre"]).is_sparsest.mean().unstack()[order]
    excess = df.groupby(["L", "centre"]).excess.mean().unstack()[order]
    n = df.groupby(["L", "centre"]).size().unstack()[order]
    counts = sorted(set(int(v) for v in n.to_numpy().ravel()))
    fig, axes = plt.subplots(2, 1, figsize=(FULL, 4.6), sharex=True, layout="constrained")
    first = f"fraction with minimiser = sparsest ({' or '.join(map(str, counts))} data sets per cell, {int(df.shape[0])} in all)"
    for ax, M, title, cmap, vmax in ((axes[0], frac, first, "cividis", 1.0),
                                     (axes[1], excess, "mean excess kinks over the sparsest", "viridis", None)):
        top = vmax or max(1.0, float(M.max().max()))
        im = ax.imshow(M.to_numpy(), origin="lower", cmap=cmap, vmin=0, vmax=top, aspect="auto")
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                v = M.to_numpy()[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if v < 0.5 * top else "black")
        ax.set_xticks(range(M.shape[1]), list(M.columns))
        ax.set_yticks(range(M.shape[0]), [str(r) for r in M.index])
        if "straddling" in M.columns:
            ax.axvline(M.shape[1] - 1.5, color="white", lw=2)
        ax.set_ylabel("longest same-sign\nrun $\\ell$ of $\\kappa_i$")
        ax.set_title(title)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[-1].set_xlabel("centre of the data (last column: an interval with $x_i x_{i+1} < -1$)")
    panel_labels(axes)
    return fig


def fig_trained(tr: dict[str, Any], width: int | None = None):
    """Trained networks of one width (default: the smallest; all lambdas and seeds) over the exact
    bias-penalised interpolant, one panel per method, (a), (b), ..., merged kinks marked."""
    runs = tr["runs"]
    width = int(runs.width.min()) if width is None else width
    methods = list(dict.fromkeys(runs.method))
    fig, axes = plt.subplots(1, len(methods), figsize=(FULL, 3.5), sharey=True, layout="constrained")
    for ax, me in zip(np.atleast_1d(axes), methods):
        sel = np.flatnonzero((runs.method == me).to_numpy() & (runs.width == width).to_numpy())
        for k, i in enumerate(sel):
            ax.plot(tr["grid"], tr["f_grid"][i], color=METHOD_COLOR[me], lw=1.0, alpha=0.7,
                    label="trained networks (colour: method)" if k == 0 else None)
            kp = tr["kinks_pos"][i][np.isfinite(tr["kinks_pos"][i])]
            ax.plot(kp, np.interp(kp, tr["grid"], tr["f_grid"][i]), ls="none", marker="|", color="black",
                    markersize=8, label="merged kinks" if k == 0 else None)
        ax.plot(tr["grid"], tr["exact_grid"]["l2"], color="black", ls="--", lw=1.2,
                label=f"exact $\\bar R$-interpolant ({tr['exact']['l2']['n_kinks']} kinks)")
        ax.plot(tr["x"], tr["y"], "o", color="black", markersize=4, zorder=6)
        ax.set_title(METHOD_LABEL[me].replace(" on all", "\non all").replace(" without", "\nwithout")
                     .replace(", small", ",\nsmall"), fontsize=9, color=METHOD_COLOR[me])
        ax.set_xlabel("$x$")
    np.atleast_1d(axes)[0].set_ylabel("$f(x)$")
    legend_below(fig, ncol=2)
    panel_labels(np.atleast_1d(axes))
    return fig


def fig_kinks_vs(tr: dict[str, Any]):
    """Merged kink count against lambda (weight-decay runs; colour: method, marker: width), with plain GD
    from small initialisation (lambda = 0) in the last column and the exact interpolant's count dashed."""
    runs = tr["runs"]
    widths = sorted(runs.width.unique())
    lams = sorted(runs.lam[runs.lam > 0].unique())
    fig, ax = plt.subplots(figsize=(FULL, 3.8), layout="constrained")
    rng = np.random.default_rng(0)  # horizontal jitter only, for visibility
    xs = {lam: k for k, lam in enumerate(lams)}
    xs[0.0] = len(lams)
    for me in dict.fromkeys(runs.method):
        for wi, (m, mk) in enumerate(zip(widths, MARKERS)):
            sel = runs[(runs.method == me) & (runs.width == m)]
            x = np.array([xs[v] for v in sel.lam]) + (wi - (len(widths) - 1) / 2) * 0.12
            ax.plot(x + rng.uniform(-0.03, 0.03, x.size), sel.n_kinks, ls="none", marker=mk, color=METHOD_COLOR[me],
                    markeredgecolor="black", markeredgewidth=0.4)
    ax.axhline(tr["exact"]["l2"]["n_kinks"], color="black", ls="--", lw=1, label="exact $\\bar R$-interpolant")
    for me in dict.fromkeys(runs.method):  # colour: the method; marker: the width
        ax.plot([], [], ls="none", marker="o", color=METHOD_COLOR[me], markeredgecolor="black",
                markeredgewidth=0.4, label=METHOD_LABEL[me].replace(" without", "\nwithout").replace(", small", ",\nsmall"))
    for m, mk in zip(widths, MARKERS):
        ax.plot([], [], ls="none", marker=mk, color=COLORS["grey"], markeredgecolor="black", markeredgewidth=0.4,
                label=f"width {m}")
    ax.set_xticks(range(len(lams) + 1), [f"$\\lambda$ = {v:g}" for v in lams] + ["$\\lambda$ = 0\n(GD, small init)"])
    ax.set_ylabel("kinks after merging")
    ax.set_ylim(0, None)
    legend_right(ax, fontsize=8.5)
    return fig


def fig_cost_curves(tr: dict[str, Any]):
    """Over the training steps, median and range over runs per method: (a) the bias-penalised norm
    sum_j |a_j| ||(w_j, b_j)|| (the exact minimal R-bar dashed); (b) the square loss L(theta)."""
    runs = tr["runs"]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(FULL, 3.7), layout="constrained")
    t = tr["steps"]
    for me in dict.fromkeys(runs.method):
        sel = (runs.method == me).to_numpy()
        for ax, key in ((ax0, "norm_l2"), (ax1, "loss")):
            c = tr["curves"][key][sel]
            ax.plot(t, np.median(c, 0), color=METHOD_COLOR[me], label=METHOD_LABEL[me])
            ax.fill_between(t, c.min(0), c.max(0), color=METHOD_COLOR[me], alpha=0.2)
    ax0.axhline(tr["exact"]["l2"]["cost"], color="black", ls="--", lw=1, label="exact minimal $\\bar R$")
    ax0.set_ylabel(r"$\sum_j |a_j|\,\|(w_j, b_j)\|$")
    ax0.set_ylim(0, 2.5 * tr["exact"]["l2"]["cost"])
    ax1.set_yscale("log")
    ax1.set_ylabel(r"$\frac{1}{2}\sum_i (f(x_i)-y_i)^2$")
    for ax in (ax0, ax1):
        ax.set_xlabel("training step")
    legend_below(fig, ncol=2)
    panel_labels((ax0, ax1))
    return fig
