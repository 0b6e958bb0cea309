"""Figures of chapter 4 (explicit ratio penalty + Adam vs depth in matrix completion).

One function per figure: study results in, ``matplotlib.figure.Figure`` out. Colours come from
:data:`lib.style.COLORS` (colour-blind safe); depth is coded by colour, the optimizer by line style
and the penalty by marker fill.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import torch

from .. import polar
from .style import COLORS, FULL, legend_below, legend_right, panel_labels

DEPTH_COLOR = {1: COLORS["blue"], 2: COLORS["green"], 3: COLORS["red"]}
OPT_STYLE = {"adam": "-", "gd": "--", "ngd": "-."}
OPT_NAME = {"adam": "Adam", "gd": "GD", "ngd": "normalized GD"}
OPT_MARKER = {"adam": "s", "gd": "^", "ngd": "v"}
#: the number of observed entries as the figures write it (``m`` in the run tables)
N_OBS = r"$|\Omega|$"
OBS_LABEL = r"observed entries $|\Omega|$ / degrees of freedom $r(2n-r)$"


def _label(depth: int, opt: str, lam: float) -> str:
    return f"depth {depth}, {OPT_NAME[opt]}" + (", ratio penalty" if lam > 0 else "")


def fig_penalty_dynamics(sigma: np.ndarray, depths=(1, 2, 3)) -> plt.Figure:
    """(a) The ratio penalty's drift ``-dPsi/dsigma_i`` (``Psi = ||W||_*/||W||_F``) on each singular
    value of a spectrum ``sigma`` (positive: the value grows). (b) The depth-N speed factor
    ``N sigma^{2 - 2/N}`` of deep linear networks (``arora2019implicit``) on the same values, normalised
    at ``sigma_max``."""
    s = torch.as_tensor(np.sort(np.asarray(sigma, dtype=np.float64))[::-1].copy())
    drift = -polar.ratio_sigma_grad(s).numpy()
    thresh = float((s**2).sum() / s.sum())
    fig, axes = plt.subplots(1, 2, figsize=(FULL, 3.5), layout="constrained")
    ax = axes[0]
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(thresh, color=COLORS["grey"], ls=":", label=r"threshold $\|\sigma\|_2^2/\|\sigma\|_1$")
    ax.plot(s.numpy(), drift * float(torch.linalg.vector_norm(s)), "o", color=COLORS["purple"], ms=4,
            label=r"$-\|\sigma\|_2\,\partial \Psi/\partial\sigma_i$")
    ax.set_xlabel(r"singular value $\sigma_i$")
    ax.set_ylabel("penalty drift (scaled)")
    ax.set_title(r"ratio penalty: $\dot\sigma_i = -\lambda\,\partial \Psi/\partial\sigma_i$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    ax = axes[1]
    grid = np.linspace(1e-3, float(s.max()), 200)
    for n_layers in depths:
        f = n_layers * grid ** (2 - 2 / n_layers)
        ax.plot(grid, f / f[-1], color=DEPTH_COLOR.get(n_layers, COLORS["grey"]), label=f"N = {n_layers}")
    ax.set_xlabel(r"singular value $\sigma$")
    ax.set_ylabel(r"$N\sigma^{2-2/N}$ (normalised)")
    ax.set_title("deep linear net: speed of $\\sigma$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    panel_labels(axes)
    return fig


def _agg(runs: pd.DataFrame, col: str) -> pd.DataFrame:
    g = runs.groupby(["depth", "optimizer", "lam", "m"])[col]
    return pd.DataFrame({"med": g.median(), "lo": g.min(), "hi": g.max()}).reset_index()


def fig_grid(grid: dict, baseline: pd.DataFrame) -> plt.Figure:
    """(a) Test error (log) and (b) effective rank against the number of observed entries ``|Omega|``
    (``m`` in the run table) over the degrees of freedom, for every configuration of the grid: median
    over seeds with the min-max range, and the nuclear-norm minimisation baseline."""
    runs, dof = grid["runs"], grid["dof"]
    fig, axes = plt.subplots(2, 1, figsize=(FULL, 5.6), sharex=True, layout="constrained")
    for ax, col in zip(axes, ("test", "erank")):
        a = _agg(runs, col)
        for (depth, opt, lam), d in a.groupby(["depth", "optimizer", "lam"], sort=True):
            c = DEPTH_COLOR[int(depth)]
            x = d.m / dof
            ax.plot(x, d.med, OPT_STYLE[opt], color=c, marker="o" if lam > 0 else OPT_MARKER[opt], ms=5,
                    mfc=c if lam > 0 else "white", label=_label(int(depth), opt, lam))
            ax.fill_between(x, d.lo, d.hi, color=c, alpha=0.08, lw=0)
        b = baseline.groupby("m")[col]
        ax.plot(b.median().index / dof, b.median(), ":", color="k", marker="s", ms=4,
                label="nuclear-norm minimisation")
    axes[1].set_xlabel(OBS_LABEL)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test MSE (unobserved entries)")
    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_formatter(mticker.ScalarFormatter())
    axes[1].yaxis.set_minor_formatter(mticker.NullFormatter())
    axes[1].set_yticks([3, 5, 10, 20, 30])
    axes[1].axhline(grid["truth"]["erank"].mean(), color=COLORS["grey"], lw=2, alpha=0.7,
                    label=r"erank$(W^*)$")
    axes[1].set_ylabel("effective rank")
    legend_right(axes[0], fontsize=8.5)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8.5,
                   handles=axes[1].get_legend_handles_labels()[0][-1:])
    panel_labels(axes)
    return fig


def fig_singular_values(grid: dict, m: int, seed: int = 0, gd: dict | None = None,
                        configs=((1, "adam", True), (1, "gd", True), (2, "gd", False), (3, "gd", False))) -> plt.Figure:
    """Top singular values of the end-to-end matrix over training (one seed, ``m = |Omega|`` observed
    entries) for a few configurations of the grid, one panel each, (a), (b), ..., with those of ``W*``
    (dashed). A configuration the grid did not run at ``m`` is taken from ``gd`` (a study result with
    ``runs`` and ``hist``, e.g. the optimizer study's plain GD with the penalty at its smallest step)
    when given."""
    truth = grid["truth"].iloc[seed]
    rank = sum(1 for c in grid["truth"].columns if c.startswith("s") and c[1:].isdigit())
    cols = min(len(configs), 2)
    rows = -(-len(configs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(FULL, 2.5 * rows), sharey=True, sharex=True, squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[len(configs):]:
        ax.set_visible(False)
    for ax, (depth, opt, pen) in zip(axes.ravel(), configs):
        title = _label(depth, opt, 1.0 if pen else 0.0)
        for source in (grid, gd):
            if source is None:
                continue
            runs, h = source["runs"], source["hist"]
            sel = runs.index[(runs.depth == depth) & (runs.optimizer == opt) & ((runs.lam > 0) == pen)
                             & (runs.m == m) & (runs.seed == seed)]
            if len(sel):
                i = sel[np.argmin(runs.lr[sel].to_numpy())]  # the smallest step (plain GD: lr = 1)
                if source is gd:
                    title += f", lr = {runs.lr[i]:g}"
                keep = h["steps"] <= (runs["budget"][i] if "budget" in runs.columns else np.inf)  # its own budget
                sv = h["sigma"][keep, i, :]
                for k in range(sv.shape[1]):
                    ax.plot(h["steps"][keep], sv[:, k], color=DEPTH_COLOR[depth] if k < rank else COLORS["yellow"],
                            lw=1.3)
                break
        ax.set_title(title, fontsize=9)
        for i in range(rank):
            ax.axhline(truth[f"s{i + 1}"], color=COLORS["grey"], ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 3e2)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"singular values $\sigma_i(W)$")
    panel_labels(axes.ravel()[: len(configs)])
    return fig


def fig_mechanism(mech: dict, lr: dict[str, float]) -> plt.Figure:
    """Mean movement ``|W_ij(t) - W_ij(0)|`` of (a) the unobserved and (b) the observed entries in
    the first steps, depth 1 + ratio penalty, Adam vs plain GD vs normalized GD, for several penalty
    weights ``lambda``."""
    runs, h = mech["runs"], mech["hist"]
    fig, axes = plt.subplots(1, 2, figsize=(FULL, 3.7), sharey=True, layout="constrained")
    lams = sorted(runs.lam.unique())
    shades = dict(zip(lams, (0.35, 0.65, 1.0)))
    for ax, key, title in ((axes[0], "move_unobs", "unobserved entries"), (axes[1], "move_obs", "observed entries")):
        for (opt, lam), d in runs.groupby(["optimizer", "lam"], sort=True):
            y = h[key][:, d.index].mean(axis=1)
            c = {"adam": COLORS["blue"], "gd": COLORS["red"]}.get(opt, COLORS["purple"])
            ax.plot(h["steps"][1:], y[1:], OPT_STYLE[opt], color=c, alpha=shades.get(lam, 1.0),
                    label=fr"{OPT_NAME[opt]}, $\lambda$ = {lam:g}")
        t = h["steps"][1:]
        ax.plot(t, lr["adam"] * t, ":", color="k", lw=1, label=r"$\eta_{\rm Adam}\, t$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step $t$")
        ax.set_title(title)
    axes[0].set_ylabel(r"mean $|W_{ij}(t) - W_{ij}(0)|$")
    legend_below(fig, axes[:1], ncol=3)
    panel_labels(axes)
    return fig


def fig_blowup(grid: dict, ablations: dict, m_few: int, m_ok: int) -> plt.Figure:
    """The runaway failure mode of depth 1 + ratio + Adam: (a) top singular value, (b) train and (c)
    test error over training, for the reference runs of the grid (``m_ok`` observed entries), each
    learning rate of the ablations' "lr sweep" (labelled by its own ``lr`` and ``|Omega|``) and the
    grid's runs with few observed entries (``m_few``)."""
    fig, axes = plt.subplots(1, 3, figsize=(FULL, 3.6), sharex=True, layout="constrained")
    gr, gh = grid["runs"], grid["hist"]
    ar, ah = ablations["runs"], ablations["hist"]
    base = (gr.depth == 1) & (gr.optimizer == "adam") & (gr.lam > 0)
    ref = gr.index[base & (gr.m == m_ok)]
    lr_ref = ", ".join(f"{v:g}" for v in sorted(gr.lr[ref].unique()))
    curves = [(gh, ref, COLORS["blue"], "-", f"reference: lr = {lr_ref}, {N_OBS} = {m_ok}")]
    sweep = ar[ar.variant == "lr sweep"]
    lrs = sorted(sweep.lr.unique(), reverse=True)
    dashes = ["-", (0, (5, 2)), (0, (2, 1.5)), (0, (6, 2, 1, 2))]
    for k, lr in enumerate(lrs):  # one entry per learning rate of the sweep, largest first
        d = sweep[sweep.lr == lr]
        ms = ", ".join(f"{v:g}" for v in sorted(d.m.unique()))
        curves.append((ah, d.index, COLORS["red"], dashes[k % len(dashes)], f"lr = {lr:g}, {N_OBS} = {ms}"))
    few = gr.index[base & (gr.m == m_few)]
    curves.append((gh, few, COLORS["purple"], "-", f"few observations: lr = {lr_ref}, {N_OBS} = {m_few}"))
    s1 = float(grid["truth"]["s1"].max())
    budget = ar["budget"] if "budget" in ar.columns else None
    for h, idx, c, ls, name in curves:
        for j, i in enumerate(idx):
            lab = name if j == 0 else None
            keep = slice(None)
            if h is ah and budget is not None:  # a run with a smaller budget: up to its end only
                keep = h["steps"] <= budget[i]
            for ax, y in zip(axes, (h["sigma"][keep, i, 0], h["train"][keep, i], h["test"][keep, i])):
                ax.plot(h["steps"][keep], y, color=c, ls=ls, lw=1.2, label=lab)
    axes[0].axhline(s1, color=COLORS["grey"], ls="--", label=r"largest $\sigma_1(W^*)$")
    for ax, title in zip(axes, (r"top singular value $\sigma_1(W)$", "train MSE (observed)",
                                "test MSE (unobserved)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    legend_below(fig, axes[:1], ncol=2)
    panel_labels(axes)
    return fig


def _best_optimizer(runs: pd.DataFrame, depth: int) -> str:
    """The optimizer whose median test error (no penalty, depth ``depth``) is lower at more of the
    values of ``m`` where both ran (ties: the lower geometric mean of the medians)."""
    med = runs[(runs.depth == depth) & (runs.lam == 0)].groupby(["optimizer", "m"]).test.median().unstack(0)
    med = med.dropna()
    if med.shape[1] == 1 or med.empty:
        return str(runs[(runs.depth == depth) & (runs.lam == 0)].optimizer.iloc[0])
    wins = med.eq(med.min(axis=1), axis=0).sum()
    geo = np.log(med).mean()
    return str(min(med.columns, key=lambda o: (-wins[o], geo[o])))


def fig_headline(grid: dict, baseline: pd.DataFrame) -> plt.Figure:
    """The chapter's main comparison on one panel: test error against ``|Omega| / dof`` of depth 1 + Adam +
    ratio penalty, of the deep models without the penalty (depth 2 and 3, each with the optimizer
    that does better on the grid, :func:`_best_optimizer`), of depth 1 + Adam without the penalty, and
    of minimum-nuclear-norm completion: median over seeds (markers) with the range over seeds (bars),
    the series offset sideways a little so that the bars stay apart."""
    runs, dof = grid["runs"], grid["dof"]
    fig, ax = plt.subplots(figsize=(FULL, 3.5), layout="constrained")
    series = [(runs[(runs.depth == 1) & (runs.optimizer == "adam") & (runs.lam > 0)], COLORS["blue"], "o", "-",
               "depth 1, Adam, ratio penalty")]
    for depth, mk in ((2, "s"), (3, "^")):
        opt = _best_optimizer(runs, depth)
        series.append((runs[(runs.depth == depth) & (runs.optimizer == opt) & (runs.lam == 0)], DEPTH_COLOR[depth],
                       mk, OPT_STYLE[opt], f"depth {depth}, {OPT_NAME[opt]}, no penalty"))
    series.append((baseline, "black", "D", ":", "minimum nuclear norm"))
    series.append((runs[(runs.depth == 1) & (runs.optimizer == "adam") & (runs.lam == 0)], COLORS["grey"], "x", "-",
                   "depth 1, Adam, no penalty"))
    span = np.ptp(np.asarray(sorted(set(runs.m) | set(baseline.m)), float) / dof) or 1.0
    for k, (d, c, mk, ls, name) in enumerate(series):
        g = d.groupby("m").test
        med, lo, hi = g.median(), g.min(), g.max()
        x = med.index.to_numpy() / dof + (k - (len(series) - 1) / 2) * 0.012 * span
        ax.errorbar(x, med.to_numpy(), yerr=[med.to_numpy() - lo.to_numpy(), hi.to_numpy() - med.to_numpy()],
                    color=c, ls=ls, marker=mk, ms=6, lw=1.6, capsize=3, label=name,
                    mfc="white" if mk in ("s", "^", "D") else c, mew=1.4)
    ax.set_yscale("log")
    ax.set_xlabel(OBS_LABEL)
    ax.set_ylabel("test MSE (unobserved entries)")
    legend_right(ax, fontsize=9)
    return fig


def fig_ablations(table: pd.DataFrame) -> plt.Figure:
    """Final test error of each ablation variant (one point per seed, bar at the median)."""
    fig, ax = plt.subplots(figsize=(FULL, 3.8), layout="constrained")
    names = list(dict.fromkeys(table["label"]))
    for k, name in enumerate(names):
        d = table[table["label"] == name]
        c = COLORS["red"] if d["runaway"].any() else COLORS["blue"]
        ax.scatter(np.full(len(d), k), d["test"], color=c, s=18, zorder=3)
        ax.hlines(d["test"].median(), k - 0.3, k + 0.3, color="k", lw=1.5)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("test MSE (unobserved)")
    ax.scatter([], [], color=COLORS["red"], s=18, label="a seed ran away")
    ax.scatter([], [], color=COLORS["blue"], s=18, label="no runaway")
    legend_right(ax)
    return fig
