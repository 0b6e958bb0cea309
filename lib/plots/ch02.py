"""Figures of chapter 2 (margin maximization, ``vardi2022margin``): results in, Figure out.

Notation as in the book: depth :math:`N`, normalized margin :math:`\\gamma`, step index :math:`k` of the
trainer, width :math:`m`; panels are labelled (a), (b), ...
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import COLORS, FULL, MARKERS, legend_below, legend_right, panel_labels

PAL = [COLORS[c] for c in ("blue", "red", "green", "purple", "yellow", "cyan")]


def fc_gamma(res: dict) -> plt.Figure:
    """Normalized margin :math:`\\gamma(\\theta_k)` vs step :math:`k` for FC linear nets of each depth
    :math:`N`, divided by :math:`\\gamma_{\\mathrm{SVM}} / N^{N/2}`."""
    fig, ax = plt.subplots(figsize=(6.4, 3.3), layout="constrained")
    for i, (N, c) in enumerate(res["curves"].items()):
        target = res["gamma_svm"] / N ** (N / 2)
        g = c["gamma"] / target
        ax.plot(c["steps"], g, color=PAL[i], lw=0.8, alpha=0.6)
        ax.plot([], [], color=PAL[i], label=f"depth N = {N} ({g.shape[1]} inits)")
    ax.axhline(1.0, color="k", ls="--", lw=1, label=r"$\gamma_{\mathrm{SVM}} / N^{N/2}$")
    ax.set_ylim(0.0, 1.1)
    ax.set_xlabel("step k")
    ax.set_ylabel(r"$\gamma(\theta_k)\; / \;(\gamma_{\mathrm{SVM}} / N^{N/2})$")
    ax.legend(loc="lower right")
    return fig


def diag2(res: dict) -> plt.Figure:
    """(a) :math:`\\gamma(\\theta_k)` vs step :math:`k` of the depth-2 diagonal net on :math:`x = (1, 2)`:
    the special init (plateau at 1/2) and generic inits (to 1); (b) gain of :math:`\\gamma` along the
    improving curve :math:`u = v = (1, \\epsilon)` vs distance (log-log, slope 2)."""
    d = res["d2"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(FULL, 3.9), layout="constrained")
    a.plot(d["steps"], d["gamma"][:, 1:], color=PAL[0], lw=0.8, alpha=0.5)
    a.plot([], [], color=PAL[0], label="generic inits")
    a.plot(d["steps"], d["gamma"][:, 0], color=PAL[1], lw=2, label="special init\n$u=(1,1), v=(1,-1)$")
    a.axhline(1.0, color="k", ls="--", lw=1, label="global optimum\n" r"$\gamma_{\ell_1}/2 = 1$")
    a.axhline(0.5, color="grey", ls=":", lw=1)
    a.set_xlabel("step k")
    a.set_ylabel(r"$\gamma(\theta_k)$")
    a.set_ylim(0, 1.08)
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    a.set_title("diagonal depth 2, $x = (1, 2)$")
    c = res["curve_d2"]
    b.loglog(c["distance"], c["gain"], "o-", color=PAL[1], ms=4, label=r"curve $u=v=(1,\epsilon)$")
    ref = c["gain"].iloc[0] * (c["distance"] / c["distance"].iloc[0]) ** 2
    b.loglog(c["distance"], ref, "k--", lw=1, label="slope 2")
    b.set_xlabel(r"distance $\|\hat\theta_\epsilon - \hat\theta\|$")
    b.set_ylabel(r"gain $\gamma(\theta_\epsilon) - \gamma(\theta)$")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    b.set_title("improving curve at the special limit")
    panel_labels((a, b))
    return fig


def diag3_face(res: dict) -> plt.Figure:
    """Depth :math:`N = 3` on :math:`x = (1, 1)`: minimal :math:`\\lVert\\theta\\rVert^2` realising
    :math:`\\beta = (1/2 + t, 1/2 - t)` along the feasible face, with the limits of gradient flow from the
    symmetric, the asymmetric and generic inits marked."""
    f = res["face_d3"]
    d = res["d3"]
    fig, ax = plt.subplots(figsize=(FULL, 3.3), layout="constrained")
    ax.plot(f["t"], f["norm2"], color=PAL[0], label=r"$3\,(|\beta_1|^{2/3} + |\beta_2|^{2/3})$")
    tt = lambda beta: (beta[:, 0] - beta[:, 1]) / (2 * beta.sum(1))
    t_lim = tt(d["beta"])
    n_lim = 3 * (np.abs(d["beta"] / d["beta"].sum(1, keepdims=True)) ** (2 / 3)).sum(1)
    ax.plot(t_lim[2:], n_lim[2:], "s", color=PAL[2], ms=7, mfc="none", label="limits from generic inits")
    ax.plot(t_lim[1], n_lim[1], "^", color=PAL[3], ms=9, label=r"limit from $u_{3} = (0.51, 0.5)$")
    ax.plot(t_lim[0], n_lim[0], "o", color=PAL[1], ms=9, label="limit from symmetric init")
    ax.set_xlabel(r"position on the face $t$, $\beta = (1/2 + t,\, 1/2 - t)$")
    ax.set_ylabel(r"$\min \|\theta\|^2$ realising $\beta$")
    legend_right(ax)
    return fig


def relu_points(res: dict) -> plt.Figure:
    """(a) The two data points and the neurons' directions :math:`w_j/\\lVert w_j\\rVert` at the
    dead-neuron limit and at the optimum; (b) the dual function
    :math:`h(u) = \\sum_i \\lambda_i y_i\\,\\mathrm{relu}(u\\cdot x_i)` over the unit circle at both limits,
    with the level 1 (the formula in the panel's title, so that the axis label stays short)."""
    X = res["X"]
    th = res["theta"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(FULL, 4.2), layout="constrained")
    a.scatter(X[:, 0], X[:, 1], s=60, color="k", zorder=3, label="data $x_1, x_2$ ($y = +1$)")
    labels = [("dead-neuron limit", PAL[1], "-"), ("optimum", PAL[0], "--")]
    for r, (name, col, ls) in enumerate(labels):
        w = th[r, :4].reshape(2, 2)
        v = th[r, 4:]
        for j in range(2):
            size = abs(v[j]) * np.linalg.norm(w[j])
            if size < 1e-6 * np.abs(th[r]).max() ** 2:
                continue
            u = w[j] / np.linalg.norm(w[j])
            a.annotate("", xy=u, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": col, "lw": 2, "ls": ls})
        a.plot([], [], color=col, ls=ls, lw=2, label=f"{name}:\nneurons $w_j/\\|w_j\\|$")
    wb0 = np.array([0.1, -1.0])
    a.annotate("", xy=wb0 / np.linalg.norm(wb0), xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": COLORS["grey"], "lw": 1.5, "ls": ":"})
    a.plot([], [], color="grey", ls=":", label="dead neuron B\n(weight $\\to 0$ relative)")
    a.set_xlim(-1.3, 1.3)
    a.set_ylim(-1.1, 1.2)
    a.set_aspect("equal")
    a.set_xlabel("$x^{(1)}$")
    a.set_ylabel("$x^{(2)}$")
    a.set_title("neuron directions")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8.5, handlelength=1.6,
             columnspacing=0.8)
    ang = res["angles"]
    b.plot(ang, res["h"][0], color=PAL[1], label="at the dead-neuron limit")
    b.plot(ang, res["h"][1], color=PAL[0], ls="--", label="at the optimum")
    b.axhline(1.0, color="k", lw=1, ls=":", label="level 1")
    b.set_xlabel(r"angle of $u$ (rad)")
    b.set_ylabel(r"$h(u)$")
    b.set_title(r"$h(u) = \sum_i \lambda_i y_i\, \mathrm{relu}(u \cdot x_i)$, $\|u\| = 1$")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    panel_labels((a, b))
    return fig


def random_hist(df: pd.DataFrame, gamma_opt: float, gamma_bad: float) -> plt.Figure:
    """Histogram of the final :math:`\\gamma` over random initialisations that separate the data, one panel
    per width :math:`m`, labelled (a), (b), ... when there are several."""
    widths = sorted(df["width"].unique())
    cols = min(len(widths), 3)
    rows = -(-len(widths) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(FULL, 2.6 * cols + 0.6), 2.6 * rows + 0.4), sharey=True,
                             squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(widths):]:
        ax.set_visible(False)
    bins = np.linspace(0, 0.28, 57)
    for ax, wdt in zip(axes.ravel(), widths):
        g = df[(df["width"] == wdt) & df["separated"]]
        ax.hist(g["gamma"], bins=bins, color=PAL[0])
        ax.axvline(gamma_opt, color="k", ls="--", lw=1)
        ax.axvline(gamma_bad, color=PAL[1], ls=":", lw=1.5)
        ax.set_yscale("log")
        ax.set_title(f"width {wdt}: {len(g)} of {int((df['width'] == wdt).sum())}\nseparate the data")
        ax.set_xlabel(r"final $\gamma$")
    for ax in axes[:, 0]:
        ax.set_ylabel("number of inits")
    axes[0, 0].plot([], [], color="k", ls="--", label=r"$\gamma^* = \|x_i\|/4$")
    axes[0, 0].plot([], [], color=PAL[1], ls=":", label=r"$\delta/2$")
    legend_below(fig, [axes[0, 0]], ncol=2)
    if len(widths) > 1:
        panel_labels(axes.ravel()[: len(widths)])
    return fig


def local_gain(df: pd.DataFrame) -> plt.Figure:
    """Best gain of :math:`\\gamma` found by the ball-constrained search vs the radius :math:`r` (log-log),
    one colour per kind of point and one thin line per centre; no improvement (gain <= 0) is drawn at the
    floor."""
    fig, ax = plt.subplots(figsize=(FULL, 3.6), layout="constrained")
    floor = 1e-10
    colours = PAL + [COLORS[c] for c in ("grey",)] + list(plt.get_cmap("Dark2").colors)
    for i, (name, g) in enumerate(df.groupby("point", sort=False)):
        col, mk = colours[i % len(colours)], MARKERS[i % len(MARKERS)]
        for j, (_, c) in enumerate(g.groupby("centre", sort=False)):
            y = np.where(c["gain"] > floor, c["gain"], floor)
            ax.loglog(c["radius"], y, marker=mk, color=col, ms=3, lw=0.8, alpha=0.7,
                      label=f"{name} ({g['centre'].nunique()})" if j == 0 else None)
    r = np.array(sorted(df["radius"].unique()))
    ax.loglog(r, 0.1 * r**2, "k--", lw=1, label=r"$0.1\, r^2$")
    ax.axhline(floor, color="grey", lw=0.8)
    ax.text(r[0], floor * 2, "no improvement found", color="grey")
    ax.set_xlabel("ball radius r")
    ax.set_ylabel(r"best gain of $\gamma$")
    legend_right(ax, fontsize=8.5, title="point (centres)", title_fontsize=8.5)
    return fig


def escape_steps(esc: dict, fit: pd.DataFrame) -> plt.Figure:
    """(a) :math:`\\gamma(\\theta_k)` vs step :math:`k` for the depth-2 special init perturbed by :math:`e`
    (plateau, then escape); (b) steps to escape vs :math:`\\log(1/e)` for depths :math:`N = 2, 3`, with
    least-squares lines; (c) the gradient-flow time of the escape, :math:`\\log_{10}\\log t` vs
    :math:`\\log(1/e)`."""
    df = esc["table"]
    fig = plt.figure(figsize=(FULL, 5.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    a = top.subplots()
    b, c3 = bottom.subplots(1, 2)
    c = esc["curves"][2]
    e = df[df["depth"] == 2]["eps"].to_numpy()
    cmap = plt.get_cmap("viridis")
    for i in range(0, len(e), 2):
        a.plot(c["steps"], c["gamma"][:, i], color=cmap(0.85 * i / max(len(e) - 1, 1)),
               label=f"$e = 10^{{{np.log10(e[i]):.0f}}}$")
    a.set_xlim(0, 1.3 * df[df["depth"] == 2]["steps"].max())
    a.axhline(0.5, color="grey", ls=":", lw=1)
    a.axhline(1.0, color="k", ls="--", lw=1)
    a.set_xlabel("step k")
    a.set_ylabel(r"$\gamma(\theta_k)$")
    a.set_title("diagonal depth 2: plateau at 1/2, then escape")
    legend_right(a, title="perturbation", title_fontsize=9)
    for i, (N, g) in enumerate(df.groupby("depth")):
        b.plot(g["log_inv_eps"], g["steps"], MARKERS[i], color=PAL[i], label=f"diagonal depth {N}")
        f = fit.loc[N]
        x = np.array([g["log_inv_eps"].min(), g["log_inv_eps"].max()])
        b.plot(x, f["intercept"] + f["slope"] * x, color=PAL[i], lw=1, label=f"fit: {f['slope']:.2f} steps per unit")
        c3.plot(g["log_inv_eps"], np.log10(g["log_flow_time"]), MARKERS[i], color=PAL[i], label=f"diagonal depth {N}")
    b.set_xlabel(r"$\log(1/e)$")
    b.set_ylabel("trainer steps to escape")
    c3.set_xlabel(r"$\log(1/e)$")
    c3.set_ylabel(r"$\log_{10} \log t_{\mathrm{esc}}$")
    b.set_title("trainer steps")
    c3.set_title(r"gradient-flow time: $\log t_{\mathrm{esc}} \sim e^{-p}$")
    bottom.legend(*b.get_legend_handles_labels(), loc="outside lower center", ncol=2)
    panel_labels((a, b, c3))
    return fig


def smoothed_curves(res: dict) -> plt.Figure:
    """Smoothed margin :math:`\\tilde\\gamma` (solid) and normalized margin :math:`\\gamma` (dotted) along
    the accurate flow against the trainer's clock :math:`s`, one panel per model ((a), (b), ...), for one
    Gaussian initialisation and the start at the SVM optimum."""
    names = list(res["curves"])
    cols = min(len(names), 2)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(FULL, 2.7 * rows + 0.6), squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        c = res["curves"][name]
        for i, lab in enumerate(c["labels"]):
            ax.plot(c["s"][:, i], c["smoothed"][:, i], color=PAL[i], label=f"smoothed, {lab}")
            ax.plot(c["s"][:, i], c["gamma"][:, i], color=PAL[i], lw=0.9, ls=":", label=f"hard, {lab}")
        ax.set_title(name)
        ax.set_xlabel(r"clock $s$ (loss $< 1$ only)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\tilde\gamma$ (solid), $\gamma$ (dotted)")
    legend_below(fig, [axes[0, 0]], ncol=2)
    if len(names) > 1:
        panel_labels(axes.ravel()[: len(names)])
    return fig
