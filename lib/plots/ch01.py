"""Figures of chapter 1 (single ReLU neuron, square loss): one function per figure, study results in,
``matplotlib.figure.Figure`` out. Colours from :data:`lib.style.COLORS` (colour-blind safe)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import NullFormatter

from .style import COLORS, FULL, PALETTE, legend_right, panel_labels

C = [COLORS[k] for k in ("blue", "red", "green", "yellow", "cyan", "purple", "grey")]


def _colors(k: int) -> list:
    if k <= len(PALETTE) - 1:
        return C[:k]
    return [plt.get_cmap("viridis")(t) for t in np.linspace(0, 0.9, k)]


def _round_ticks(values) -> list[float]:
    """Round tick positions (1, 2, 5 times a power of ten) within the range of ``values``, for a log axis
    whose default minor labels ("2x10^0", "3x10^0", ...) run into each other on a range under a decade."""
    v = np.asarray(values, float)
    lo, hi = v.min(), v.max()
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    return [t for e in decades for t in (10.0**e, 2 * 10.0**e, 5 * 10.0**e) if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


def gamma3d(res, show=None) -> plt.Figure:
    """(a) 3-D trajectories of GF on the datasets :math:`D_\\gamma` with :math:`\\gamma` in ``show`` (all
    by default) and the half-line :math:`Z`; (b) :math:`w_3^*(\\gamma)` over the whole grid: RK4 (dots)
    on the exact curve (line)."""
    full = res["table"]
    keep = np.ones(len(full), bool) if show is None else full["gamma"].isin(show).to_numpy()
    tab = full[keep].reset_index(drop=True)
    traj = res["traj"][:, keep]  # [K, B, 3]
    fig = plt.figure(figsize=(FULL, 3.7))
    ax = fig.add_axes([-0.06, 0.0, 0.66, 1.0], projection="3d")
    z = np.linspace(-0.4, 1.0, 2)
    ax.plot([5, 5], [-1, -1], z, color="k", lw=2.5, label=r"$Z=\{(5,-1,z): z\leq 1\}$")
    ax.plot([5, 5], [-1, -1], [1.0, 1.15], color="k", lw=1.0, ls=":")
    cols = _colors(len(tab))
    for b, (g, c) in enumerate(zip(tab["gamma"], cols)):
        ax.plot(
            traj[:, b, 0], traj[:, b, 1], traj[:, b, 2], color=c, lw=1.3, label=rf"$\gamma={g:g}$"
        )
        ax.scatter([tab["w1"][b]], [tab["w2"][b]], [tab["w3"][b]], color=c, s=18, depthshade=False)
    ax.scatter(*res["w0"], color="k", marker="x", s=25, label=r"$w(0)$")
    ax.set_xlabel(r"$w_1$")
    ax.set_ylabel(r"$w_2$")
    ax.set_zlabel(r"$w_3$")
    ax.view_init(elev=18, azim=-60)
    ax.legend(loc="upper left", ncol=1, bbox_to_anchor=(0.04, 0.93), fontsize=8.5, handlelength=1.6)
    ins = fig.add_axes([0.71, 0.2, 0.27, 0.55])
    pos = full[full["gamma"] > 0]
    ins.plot(pos["gamma"], pos["w3 exact"], "-", color=COLORS["grey"], lw=1.2, label="exact")
    ins.plot(pos["gamma"], pos["w3"], "o", color=COLORS["blue"], ms=2.5, label="RK4")
    ins.legend(loc="upper right")
    ins.set_xscale("log")
    ins.set_xlabel(r"$\gamma$")
    ins.set_ylabel(r"$w_3^*(\gamma)$")
    ins.set_title(r"height of the limit on $Z$" "\n" r"(all $\gamma>0$)")
    fig.text(0.02, 0.97, "(a)", fontsize=10, fontweight="bold", va="top")
    panel_labels([ins], start=1, x=-0.25, y=1.2)
    return fig


def phase_plane(res) -> plt.Figure:
    """(a) trajectories of the 2-D family with the zero-loss half-line and the switching line
    :math:`w_2 = w_1`; (b) :math:`w_2^*(\\gamma)`: exact, RK4, asymptote and the book's bound."""
    tab, traj, dense = res["table"], res["traj"], res["dense"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL, 4.2), layout="constrained")
    ax.plot([1, 1], [-0.1, 1.0], color="k", lw=2.5, label=r"$Z=\{(1,z): z\leq 1\}$")
    s = np.linspace(-0.05, 1.15, 2)
    ax.plot(s, s, color=COLORS["grey"], ls="--", lw=1, label=r"$w_2=w_1$ ($x_2$ switches)")
    cols = _colors(len(tab))
    for b, (g, c) in enumerate(zip(tab["gamma"], cols)):
        ax.plot(traj[:, b, 0], traj[:, b, 1], color=c, lw=1.4, label=rf"$\gamma={g:g}$")
        ax.scatter([1.0], [tab["w2* exact"][b]], color=c, s=22, zorder=3)
    w0 = res["w0"]
    ax.scatter([w0[0]], [w0[1]], color="k", marker="x", s=30, zorder=3, label=r"$w(0)$")
    ax.scatter(
        [1.0],
        [res["asymptote"]],
        color="k",
        marker="*",
        s=60,
        zorder=3,
        label=r"$\gamma\to\infty$: $(1, \frac{w_{0,1}+w_{0,2}}{2})$",
    )
    ax.scatter([1.0], [1.0], facecolor="none", edgecolor="k", s=40, zorder=3, label=r"$P_Z(w_0)$")
    ax.set_xlabel(r"$w_1$")
    ax.set_ylabel(r"$w_2$")
    ax.set_xlim(0.0, 1.15)
    ax.set_ylim(0.3, 1.08)
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8.5, handlelength=1.5,
              columnspacing=0.8)
    ax.set_title("trajectories and frozen endpoints")
    bx.plot(
        dense["gamma"], dense["w2_star"], color=COLORS["blue"], label="exact (piecewise linear)"
    )
    bx.scatter(tab["gamma"], tab["w2(T)"], color=COLORS["red"], zorder=3, s=20, label="RK4")
    bx.axhline(res["asymptote"], color="k", lw=1, ls=":", label=r"asymptote $0.55$")
    ok = dense["bound_valid"].to_numpy()
    bx.fill_between(
        dense["gamma"][ok],
        res["asymptote"],
        res["asymptote"] + dense["bound"][ok],
        color=COLORS["grey"],
        alpha=0.35,
        label=r"book's bound ($\gamma \geq 5$)",
    )
    bx.set_xscale("log")
    bx.set_xlabel(r"$\gamma$")
    bx.set_ylabel(r"$w_2^*(\gamma)$")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    bx.set_title(r"the limit as a function of $\gamma$")
    panel_labels((ax, bx))
    return fig


def cross_matrices(res) -> plt.Figure:
    """(a) Cross-loss matrix :math:`L_{D_{\\gamma_i}}(w^*(\\gamma_j))`; (b) distances
    :math:`\\lVert w^*(\\gamma_i) - w^*(\\gamma_j)\\rVert` between the limits."""
    g = res["table"]["gamma"].to_numpy()
    labels = [f"{x:.3g}" for x in g]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL, 3.5), layout="constrained")
    cl = np.maximum(res["cross_loss"], 1e-32)
    im = ax.imshow(cl, norm=LogNorm(vmin=1e-32, vmax=1.0), cmap="viridis")
    fig.colorbar(im, ax=ax, label=r"$L_{D_{\gamma_i}}(w^*(\gamma_j))$ (floored at $10^{-32}$)")
    im2 = bx.imshow(res["dist"], cmap="viridis")
    fig.colorbar(im2, ax=bx, label=r"$\|w^*(\gamma_i) - w^*(\gamma_j)\|$")
    for a, t in (
        (ax, "every limit minimises\nevery dataset"),
        (bx, "but the limits differ"),
    ):
        every = max(1, len(g) // 8)  # at most about eight tick labels
        ticks = range(0, len(g), every)
        a.set_xticks(ticks, [labels[i] for i in ticks], fontsize=8, rotation=90)
        a.set_yticks(ticks, [labels[i] for i in ticks], fontsize=8)
        a.set_xlabel(r"limit $w^*(\gamma_j)$")
        a.set_ylabel(r"dataset $D_{\gamma_i}$")
        a.set_title(t)
        a.grid(False)
    panel_labels((ax, bx))
    return fig


def approx_ratio(res) -> plt.Figure:
    """(a) histogram of :math:`\\lVert w^*-w_0\\rVert/\\mathrm{dist}(w_0,Z)` over converged runs, lines
    at 1 and 2; (b) :math:`\\lVert w(t) - P_Z(w_0)\\rVert` along the runs with the largest ratios."""
    runs = res["runs"]
    conv = runs[runs["status"] == "converged"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL, 4.0), layout="constrained")
    r = conv["ratio"].to_numpy()
    ax.hist(
        r[r > 1 + 1e-9],
        bins=np.linspace(1.0, 2.0, 101),
        color=COLORS["blue"],
        label=r"runs with ratio $> 1$",
    )
    ax.axvline(1.0, color="k", lw=1.2)
    ax.axvline(2.0, color=COLORS["red"], lw=1.2, ls="--", label="factor-2 bound")
    n1 = int((r <= 1 + 1e-9).sum())
    ax.text(
        0.98,
        0.95,
        f"{len(r)} converged runs\n{n1} with ratio = 1\n(not shown)",
        transform=ax.transAxes,
        ha="right",
        va="top",
    )
    ax.set_xlim(0.98, 2.05)
    ax.set_xlabel(r"$\|w^*-w_0\| \,/\, \mathrm{dist}(w_0, Z)$")
    ax.set_ylabel("runs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, handlelength=1.5, columnspacing=0.8)
    ax.set_title("approximation ratio")
    ins = ax.inset_axes([0.33, 0.3, 0.45, 0.3])
    ins.hist(r[r > 1 + 1e-9] - 1, bins=np.geomspace(1e-6, 1, 31), color=COLORS["blue"])
    ins.set_xscale("log")
    ins.set_xlabel("ratio $-$ 1 (log)", fontsize=8)
    ins.tick_params(labelsize=8)
    top = conv.sort_values("ratio", ascending=False).index[:6]
    t = res["time"]
    for c, i in zip(_colors(len(top)), top):
        d = res["dist_curves"][:, i, 0]
        bx.plot(t[:, i], d / d[0], color=c, lw=1.3, label=f"run {i}: {runs['ratio'][i]:.3f}")
    bx.set_xscale("symlog", linthresh=0.1)
    bx.set_xlabel(r"time $t$")
    bx.set_ylabel(r"$\|w(t)-P_Z(w_0)\| \,/\, \|w_0 - P_Z(w_0)\|$")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, title="largest ratios",
              fontsize=8.5, title_fontsize=8.5, handlelength=1.5, columnspacing=0.8)
    bx.set_title("distances never increase")
    panel_labels((ax, bx))
    return fig


def activation_pattern(res) -> plt.Figure:
    """(a) The activation pattern of the showcase run of :func:`lib.studies.ch01.relu_random` over time
    (recorded at every step), with each switch drawn at its located time and the last one,
    :math:`\\tau`, marked; (b) its distances to :math:`P_Z(w_0)` and to the teacher."""
    sc = res["showcase"]
    run = sc["run"]
    n = int(res["n_rows"][run])
    t = sc["time"]
    pat = sc["patterns"][:, :n].T.astype(float)
    switches = sc["switch_times"]
    tau = switches[-1] if len(switches) else np.nan
    fig, (ax, bx) = plt.subplots(
        2, 1, figsize=(6.6, 3.7), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}, layout="constrained"
    )
    # the pattern recorded after step k holds on (t_k, t_{k+1}); a change inside a step is drawn at its
    # located time: the cell edges are the step times with the switch times put in their place
    edges = np.concatenate([t, [t[-1] + (t[-1] - t[-2])]])
    k = np.searchsorted(t, switches)  # the step ending just after each switch
    edges[k] = switches
    ax.pcolormesh(
        edges, np.arange(n + 1) - 0.5, pat, cmap="Greys", vmin=0, vmax=1.6, shading="flat"
    )
    ax.set_yticks(
        range(n),
        [f"$x_{i + 1}$ (y={'+' if v > 0 else '0'})" for i, v in enumerate(res["labels"][run][:n])],
    )
    ax.set_title(f"run {run}: active examples (dark) over time")
    ax.grid(False)
    for s in switches[:-1]:
        for a in (ax, bx):
            a.axvline(s, color=COLORS["grey"], lw=0.9, ls=":")
    for a in (ax, bx):
        a.axvline(tau, color=COLORS["red"], lw=1.3, ls="--")
    bx.plot(t, sc["dist"][:, 0], color=COLORS["blue"], label=r"$\|w(t) - P_Z(w_0)\|$")
    bx.plot(t, sc["dist"][:, 1], color=COLORS["green"], label=r"$\|w(t) - v\|$ (teacher)")
    bx.text(
        tau, bx.get_ylim()[1], r" $\tau$ (last change)", color=COLORS["red"], va="top"
    )
    bx.set_xscale("symlog", linthresh=0.1)
    bx.set_xlabel(r"time $t$")
    bx.set_ylabel("distance")
    legend_right(bx)
    panel_labels((ax, bx))
    return fig


def leaky(res, floor: float = 1e-11) -> plt.Figure:
    """Distance to the closed-form limit against the rescaled time :math:`\\alpha^2\\lambda_{min} t`,
    relative to the initial distance, with the rate bound :math:`e^{-\\alpha^2\\lambda_{min} t}`
    (dashed). Each curve is solid while the bound is above ``floor`` in absolute terms (the times
    :func:`lib.studies.ch01.rate_excess` compares) and dotted below it, where distances are rounding
    and integration error; there a curve may cross the dashed line."""
    runs = res["runs"]
    fig, ax = plt.subplots(figsize=(6.6, 3.1), layout="constrained")
    slopes = sorted(runs["slope"].unique())
    for c, a in zip(_colors(len(slopes)), slopes):
        idx = np.flatnonzero(runs["slope"].to_numpy() == a)[:40]
        for k, i in enumerate(idx):
            s = res["time"][:, i] * runs["rate_bound"][i]
            e = np.maximum(res["err_curve"][:, i], 1e-17)
            y = e / e[0]
            checked = e[0] * np.exp(-s) >= floor
            last = int(np.flatnonzero(checked)[-1]) if checked.any() else 0
            ax.plot(s[: last + 1], y[: last + 1], color=c, lw=0.8, alpha=0.6,
                    label=rf"slope $\alpha={a:g}$" if k == 0 else None)
            ax.plot(s[last:], y[last:], color=c, lw=0.8, alpha=0.5, ls=":")
    s = np.linspace(0, 30, 50)
    ax.plot(s, np.exp(-s), color="k", lw=1.5, ls="--", label=r"bound $e^{-\alpha^2\lambda_{\min} t}$")
    ax.plot([], [], color=COLORS["grey"], ls=":", label=f"bound below {floor:.0e}:\nrounding, not compared")
    ax.set_yscale("log")
    ax.set_xlim(0, 30)
    ax.set_ylim(1e-17, 10)
    ax.set_xlabel(r"rescaled time $\alpha^2 \lambda_{\min}(XX^\top)\, t$")
    ax.set_ylabel(r"$\|w(t) - w^*_{\rm closed}\| / \|w_0 - w^*_{\rm closed}\|$")
    legend_right(ax)
    return fig


def balance(res) -> plt.Figure:
    """(a) :math:`\\lVert w_j\\rVert^2`, :math:`v_j^2` and their difference along RK4; (b) drift of the
    conserved quantities against the step size, GD and RK4 (median over initialisations)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL, 4.0), layout="constrained")
    t = res["curve_time"]
    cols = _colors(res["curve_w2"].shape[1])
    for j, c in enumerate(cols):
        ax.plot(
            t,
            res["curve_w2"][:, j],
            color=c,
            lw=1.4,
            label=rf"$\|w_{j + 1}\|^2$" if j < 2 else None,
        )
        ax.plot(
            t,
            res["curve_v2"][:, j],
            color=c,
            lw=1.4,
            ls="--",
            label=rf"$v_{j + 1}^2$" if j < 2 else None,
        )
        ax.plot(t, res["curve_Q"][:, j], color=c, lw=0.9, ls=":")
    ax.plot([], [], color="k", ls=":", lw=0.9, label=r"$\|w_j\|^2 - v_j^2$ (flat)")
    ax.set_xlabel(r"time $t$")
    ax.set_ylabel("squared norms")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, handlelength=1.8, columnspacing=0.8)
    ax.set_title("RK4: each neuron keeps its balance")
    dr = res["drift"]
    for method, c, m in (("GD", COLORS["red"], "o"), ("RK4", COLORS["blue"], "s")):
        sub = dr[dr["method"] == method]
        for _init, s in sub.groupby("init"):
            bx.plot(s["h"], s["drift"], color=c, lw=0.6, alpha=0.45)
        med = sub.groupby("h")["drift"].median()
        bx.plot(
            med.index,
            med.to_numpy(),
            marker=m,
            color=c,
            lw=1.8,
            label=f"{method}, median over inits",
        )
    h = np.array(sorted(dr["h"].unique()))
    gd_med = dr[dr["method"] == "GD"].groupby("h")["drift"].median()
    bx.plot(h, gd_med.iloc[0] * h / h[0], color="k", ls=":", lw=1, label="slope 1")
    bx.plot([], [], color=COLORS["grey"], lw=0.6, label="thin: each init")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel(r"step size $\eta$ (GD) or $h$ (RK4)")
    bx.set_ylabel(r"$\max_j |Q_j(T) - Q_j(0)|$")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, handlelength=1.8, columnspacing=0.8)
    bx.set_title(f"drift of $Q_j$ at $T={res['T']:g}$")
    panel_labels((ax, bx))
    return fig


def network(res) -> plt.Figure:
    """One-hidden-layer networks of width :math:`m` on the :math:`\\gamma`-family, one curve per width:
    (a) the learned function at the probe point :math:`e_3`; (b) the drift of the conserved quantities
    :math:`Q_j = \\lVert w_j\\rVert^2 - v_j^2`. The :math:`\\gamma` axis is labelled at round values only
    (minor log ticks unlabelled, which would overlap)."""
    runs = res["runs"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL, 3.2), layout="constrained")
    widths = sorted(runs["width"].unique())
    for c, k in zip(_colors(len(widths)), widths):
        s = runs[runs["width"] == k]
        ax.plot(s["gamma"], s["f_e3"], "o-", color=c, label=f"width {k}")
        bx.plot(s["gamma"], s["balance_drift"], "o-", color=c, label=f"width {k}")
    ticks = _round_ticks(runs["gamma"])
    for a in (ax, bx):
        a.set_xscale("log")
        a.set_xticks(ticks, [f"{t:g}" for t in ticks])
        a.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$\gamma$")
    ax.set_ylabel(r"$f_{\theta^*(\gamma)}(e_3)$")
    ax.set_title("learned function at $e_3$")
    bx.set_yscale("log")
    bx.set_xlabel(r"$\gamma$")
    bx.set_ylabel(r"$\max_j |Q_j(\theta^*) - Q_j(\theta_0)|$")
    bx.set_title("conserved quantities: drift")
    legend_right(bx)
    panel_labels((ax, bx))
    return fig
