"""Chapter 4: reading the studies' results -- the tables the chapter shows and the measurements its
claims make (each a function with a unit test in ``tests/test_studies_ch04.py``).

Kept apart from :mod:`lib.studies.ch04` on purpose: a study's cache key covers its own module and the
mathematics it reaches (:func:`lib.book.provenance.code_version`), so a change to a table or a claim's
measurement here does not recompute the paper-scale studies (an hour on two CPU cores).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import matrix_completion as mc
from .. import polar
from ..book import paths
from . import ch04

#: what the reader sees for the number of observed entries (``m`` in the code)
N_OBS = "|Ω|"


def config_name(depth: int, optimizer: str, lam: float) -> str:
    """Short name of a grid configuration, e.g. ``d1 Adam+ratio`` or ``d3 GD``."""
    return f"d{depth} {'Adam' if optimizer == 'adam' else 'GD'}" + ("+ratio" if lam > 0 else "")


def summary(grid_result: dict, baseline_runs: pd.DataFrame | None = None, col: str = "test",
            stat: str = "median") -> pd.DataFrame:
    """One row per configuration, one column per ``m/dof``: the ``stat`` over seeds of ``col``."""
    runs = grid_result["runs"].copy()
    runs["config"] = [config_name(d, o, lam) for d, o, lam in zip(runs.depth, runs.optimizer, runs.lam)]
    frames = [runs[["config", "m", col]]]
    if baseline_runs is not None:
        b = baseline_runs[["m", col]].copy()
        b["config"] = "nuclear-norm min"
        frames.append(b)
    allr = pd.concat(frames, ignore_index=True)
    order = list(dict.fromkeys(allr["config"]))
    table = allr.groupby(["config", "m"])[col].agg(stat).unstack("m").reindex(order)
    table.columns = [f"{m / grid_result['dof']:.2f}x" for m in table.columns]
    table.columns.name = f"{N_OBS} / dof"
    return table


def fmt(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Round every number to ``digits`` significant digits, as text (empty where missing)."""
    def one(x):
        if isinstance(x, (bool, np.bool_)):
            return "yes" if x else "no"
        if isinstance(x, str):
            return x
        return "" if pd.isna(x) else f"{x:.{digits}g}"

    return table.apply(lambda c: c.map(one))


def mechanism_table(mech: dict, step: int) -> pd.DataFrame:
    """Mean movement of unobserved and observed entries at ``step``, averaged over seeds, per
    optimizer and penalty weight, and the unobserved movement in units of ``lr * step``."""
    h, runs = mech["hist"], mech["runs"]
    k = int(np.searchsorted(h["steps"], step))
    if k >= len(h["steps"]) or h["steps"][k] != step:
        raise ValueError(f"step {step} is not a logging step of the mechanism study")
    df = runs[["optimizer", "lam", "lr"]].copy()
    df["unobserved"] = h["move_unobs"][k]
    df["observed"] = h["move_obs"][k]
    out = df.groupby(["optimizer", "lam"]).mean()
    out["unobserved / (lr t)"] = out["unobserved"] / (out["lr"] * step)
    return out.drop(columns="lr")


def ablation_table(abl: dict, grid_result: dict, P: ch04.Params) -> pd.DataFrame:
    """The ablations with the grid's reference runs (same depth, optimizer, ``m`` and seeds) first,
    one row per run, labelled by variant."""
    a = P.ablations
    ref = select(grid_result["runs"], depth=1, optimizer="adam", lam=a.lam, m=a.m, seed=list(range(a.seeds))).copy()
    ref["label"] = "reference"
    runs = abl["runs"].copy()
    runs["label"] = [
        {"beta1=0": "beta1=0", "lam sweep": f"lambda={lam:g}", "lr sweep": f"lr={lr:g}",
         "nuclear": f"nuclear {lam:g}", "no penalty": "no penalty"}[v]
        for v, lam, lr in zip(runs.variant, runs.lam, runs.lr)
    ]
    if "budget" not in ref.columns:
        ref["budget"] = P.grid.steps
    cols = ["label", "seed", "lam", "lr", "test", "train", "erank", "ratio", "s1", "runaway", "stopped", "stop_step",
            "budget"]
    out = pd.concat([ref[cols], runs[cols]], ignore_index=True)
    order = {lab: i for i, lab in enumerate(dict.fromkeys(
        ["reference", "beta1=0", *sorted(l for l in out.label if l.startswith("lambda=")),
         *sorted((l for l in out.label if l.startswith("lr=")), key=lambda l: float(l[3:])),
         *sorted((l for l in out.label if l.startswith("nuclear")), key=lambda l: float(l[8:])),
         "no penalty"]))}
    return out.sort_values(["label", "seed"], key=lambda c: c.map(order) if c.name == "label" else c,
                           kind="stable").reset_index(drop=True)


def select(runs: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Rows of a tidy run table matching every ``column=value`` (a value may be a list)."""
    keep = np.ones(len(runs), dtype=bool)
    for k, v in where.items():
        keep &= runs[k].isin(v).to_numpy() if isinstance(v, (list, tuple)) else (runs[k] == v).to_numpy()
    return runs[keep]


def stop_table(runs: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Per configuration of a run table: how many runs stopped early on a plateau, the earliest and the
    median step of the final state, and the share of the step budget used (run-steps / budget)."""
    r = runs.copy()
    r["config"] = [config_name(d, o, lam) for d, o, lam in zip(r.depth, r.optimizer, r.lam)]
    g = r.groupby("config", sort=False)
    return pd.DataFrame({"runs": g.size(), "stopped": g["stopped"].sum(),
                         "first stop": g["stop_step"].min(), "median stop": g["stop_step"].median(),
                         "budget used": g["stop_step"].sum() / (g.size() * steps)})


# -- the claims' measurements -------------------------------------------------------------------------
def _median(df: pd.DataFrame, m: int, col: str = "test") -> float:
    """Median over seeds of ``col`` at ``m`` observations (raises if no run there)."""
    x = df.loc[df.m == m, col]
    if x.empty:
        raise ValueError(f"no runs at m = {m}")
    return float(x.median())


def _by_seed(df: pd.DataFrame, col: str) -> pd.Series:
    return df.set_index("seed")[col]


def mechanism_measures(mech: dict, p: ch04.Mechanism) -> dict[str, Any]:
    """The mechanism study's claims: Adam's speed of the unobserved entries in units of ``lr t`` after
    the first logged steps (per ``lambda``: ``adam_speed``; its smallest value and its spread over
    ``lambda``), plain GD's movement there (``gd_move``; its growth over the ``lambda`` range), and the
    movement added after the first logged steps up to the end (``added``): plain GD's over Adam's (the
    largest ratio over ``lambda``: ``gd_over_adam``) with, as the control, Adam at the smallest
    ``lambda`` in place of plain GD (the smallest ratio: ``adam_lo_over_adam``)."""
    t = p.log_every
    mv, mv_end = mechanism_table(mech, step=t), mechanism_table(mech, step=p.steps)
    speed = mv.loc["adam", "unobserved / (lr t)"]
    gd_move = mv.loc["gd", "unobserved"]
    added = mv_end["unobserved"] - mv["unobserved"]
    lam_lo = min(p.lams)
    return dict(first_steps=t, table=mv, adam_speed=speed, adam_speed_min=float(speed.min()),
                adam_speed_spread=float(speed.max() / speed.min()), gd_move=gd_move,
                gd_growth=float(gd_move.loc[max(p.lams)] / gd_move.loc[lam_lo]), added=added,
                gd_over_adam=float((added.loc["gd"] / added.loc["adam"]).max()), lam_lo=lam_lo,
                adam_lo_over_adam=float((added.loc[("adam", lam_lo)] / added.loc["adam"]).min()))


def configs(grid_result: dict, P: ch04.Params) -> dict[str, pd.DataFrame]:
    """The grid's runs of the configurations the claims compare: ``d1`` (depth 1 + Adam + ratio),
    ``d1_nopen`` (depth 1 + Adam, no penalty), ``d2`` and ``d3`` (GD, no penalty)."""
    R, lam = grid_result["runs"], P.grid.lam
    return dict(d1=select(R, depth=1, optimizer="adam", lam=lam), d1_nopen=select(R, depth=1, optimizer="adam", lam=0.0),
                d2=select(R, depth=2, optimizer="gd", lam=0.0), d3=select(R, depth=3, optimizer="gd", lam=0.0))


def per_seed_table(grid_result: dict, base: pd.DataFrame, P: ch04.Params) -> pd.DataFrame:
    """Test errors per seed (columns) of depth 1 + ratio + Adam, depth 3 + GD and the nuclear norm at
    the claims' numbers of observations."""
    c = configs(grid_result, P)
    mk = P.marks
    per = pd.concat({"d1 Adam+ratio": c["d1"], "d3 GD": c["d3"], "nuclear-norm min": base}, names=["config"])
    per = per[per.m.isin([mk.m_few, mk.m_mid, mk.m_hi])].reset_index(level=0).rename(columns={"m": N_OBS})
    return per.pivot_table(index=["config", N_OBS], columns="seed", values="test")


def grid_measures(grid_result: dict, base: pd.DataFrame, P: ch04.Params) -> dict[str, Any]:
    """The main study's claims, each with its control (suffix ``_control``): depth 2 over depth 3 under
    GD at 2x the dof (control: the nuclear norm in place of depth 3); the nuclear norm over depth 3
    (control: depth 2 in place of depth 3); depth 1 + ratio + Adam's completion (largest test error at
    3x, median at 2x, against the floor ``lr^2 + lam^2``: Adam's jitter and the penalty's bias; control:
    no penalty), its ``(r+1)``-th singular value at 3x (control: no penalty),
    its median test error over depth 3's at 2x and 3x (control: no penalty), its effective rank and top
    singular values at 3x against ``W*`` (controls: no penalty); the runs at 1.5x (largest
    ``sigma_1(W)/sigma_1(W*)``, runs flagged as runaway, largest over smallest test error); Adam without the penalty's largest movement of
    an unobserved entry (an identity)."""
    c = configs(grid_result, P)
    d1, d1n, d2, d3 = c["d1"], c["d1_nopen"], c["d2"], c["d3"]
    mk, g = P.marks, P.grid
    mid, hi, r = mk.m_mid, mk.m_hi, g.rank
    truth = grid_result["truth"].set_index("seed")
    hi1, hin = d1[d1.m == hi].set_index("seed"), d1n[d1n.m == hi].set_index("seed")
    few = d1[d1.m == mk.m_few].set_index("seed")
    s_next = f"s{r + 1}"

    def sv_dev(runs: pd.DataFrame, agg: str) -> float:
        """Largest (over the top ``r`` values) of the ``agg`` over seeds of |sigma_i(W)/sigma_i(W*) - 1|."""
        return max(float(getattr((runs[f"s{i}"] / truth[f"s{i}"].loc[runs.index] - 1).abs(), agg)())
                   for i in range(1, r + 1))

    return dict(
        depth_helps=_median(d2, mid) / _median(d3, mid), depth_helps_control=_median(d2, mid) / _median(base, mid),
        depth2={m: _median(d2, m) for m in g.deep_m}, depth3={m: _median(d3, m) for m in g.deep_m},
        nuclear_over_d3=_median(base, mid) / _median(d3, mid),
        nuclear_over_d3_control=_median(base, mid) / _median(d2, mid),
        nuclear={m: _median(base, m) for m in P.baseline.m},
        nuclear_hi_by_seed=_by_seed(base[base.m == hi], "test").to_dict(),
        completes=max(float(hi1.test.max()), _median(d1, mid)),
        completes_control=min(float(d1n[d1n.m == m].test.min()) for m in (mid, hi)),
        d1_median={m: _median(d1, m) for m in g.penalty_m}, d1_largest_mid=float(d1[d1.m == mid].test.max()),
        floor=g.lr_adam**2 + g.lam**2, spurious_bound=2 * g.lr_adam * g.n**0.5,
        spurious=float(hi1[s_next].max()), spurious_control=float(hin[s_next].min()),
        spurious_by_seed=hi1[s_next].to_dict(),
        d1_over_d3=max(_median(d1, m) / _median(d3, m) for m in (mid, hi)),
        d1_over_d3_control=min(_median(d1n, m) / _median(d3, m) for m in (mid, hi)),
        d1_over_d3_by_m={m: _median(d1, m) / _median(d3, m) for m in (mid, hi)},
        erank_dev=float((hi1.erank - truth.erank.loc[hi1.index]).abs().max()),
        erank_dev_control=float((hin.erank - truth.erank.loc[hin.index]).abs().min()),
        erank_by_seed=hi1.erank.to_dict(), erank_star=truth.erank.to_dict(),
        sv_dev=sv_dev(hi1, "max"), sv_dev_control=sv_dev(hin, "min"),
        sv_weyl=g.n * g.lr_adam / float(truth[f"s{r}"].min()),
        few_s1_ratio=float((few.s1 / truth.s1.loc[few.index]).max()), few_runaway=int(few.runaway.sum()),
        few_spread=float(few.test.max() / few.test.min()),
        frozen=float(d1n.move_unobs.max()), frozen_best_test=float(d1n.test.min()),
    )


def trained_gradient(grid_result: dict, P: ch04.Params) -> dict[str, float]:
    """:func:`lib.studies.ch04.gradient_check` on the final matrices of the grid's depth-1 runs with the
    penalty (the matrices training actually produced), with the old Newton-Schulz count as control."""
    rows = select(grid_result["runs"], depth=1, lam=P.grid.lam).index.to_numpy()
    return ch04.gradient_check(ch04.final_matrices(grid_result, rows), P.identities.old_ns_iters)


def normalized_table(nz: dict) -> pd.DataFrame:
    """The optimizer study's runs with a readable ``variant`` label (optimizer, rate, eps, penalty)."""
    NZ = nz["runs"].copy()
    NZ["variant"] = [f"{'normalized GD' if o == 'ngd' else 'plain GD'}, lr={lr:g}" + (f", eps={e:g}" if o == "ngd" else "")
                     + ("" if p == "ratio" else ", no penalty") for o, lr, e, p in zip(NZ.method, NZ.lr, NZ.eps, NZ.penalty)]
    return NZ


def normalized_measures(nz: dict, grid_result: dict, P: ch04.Params) -> dict[str, Any]:
    """The optimizer study's claims, each with its control: normalized GD (small eps) with the penalty
    completes (largest test error; control: no penalty, smallest) and is within a factor of Adam's
    median at the same ``m`` (control: Arora et al.'s eps); Arora et al.'s eps ends far above (smallest
    per-seed ratio; control: Adam in its place, largest); plain GD at the smaller step fits the data
    (largest train error; control: the same runs after a tenth of the budget) and does not complete
    (smallest test error; control: Adam, largest), nor at the larger step."""
    NZ, p = nz["runs"], P.normalized
    eps_lo, eps_hi = sorted(p.eps)
    lr_small, lr_big = sorted(p.lrs_plain)

    def ngd(e: float, pen: str = "ratio") -> pd.DataFrame:
        return NZ[(NZ.method == "ngd") & (NZ.eps == e) & (NZ.penalty == pen)]

    pen, arora, nopen = ngd(eps_lo), ngd(eps_hi), ngd(eps_lo, "none")
    gd = NZ[NZ.method == "gd"]
    small, big = gd[gd.lr == lr_small], gd[gd.lr == lr_big]
    adam = select(grid_result["runs"], depth=1, optimizer="adam", lam=P.grid.lam, m=p.m)

    def pair(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
        return (_by_seed(a, "test") / _by_seed(b, "test")).dropna()

    tenth = len(nz["hist"]["steps"]) // 10
    return dict(
        eps_lo=eps_lo, eps_hi=eps_hi, lr_small=lr_small, lr_big=lr_big,
        ngd_completes=float(pen.test.max()), ngd_completes_control=float(nopen.test.min()),
        ngd_erank=float(pen.erank.median()), erank_star=float(grid_result["truth"].erank.median()),
        ngd_vs_adam=float(pen.test.median() / adam.test.median()),
        ngd_vs_adam_control=float(arora.test.median() / adam.test.median()),
        eps_matters=float(pair(arora, pen).min()), eps_matters_control=float(pair(adam, pen).max()),
        arora_median=float(arora.test.median()), arora_min=float(arora.test.min()),
        arora_erank=float(arora.erank.median()), arora_train_max=float(arora.train.max()),
        gd_fits=float(small.train.max()),
        gd_fits_control=float(min(nz["hist"]["train"][tenth, i] for i in small.index)),
        gd_fails=float(small.test.min()), adam_worst=float(adam.test.max()),
        gd_move=float(small.move_unobs.max()), adam_move=float(adam.move_unobs.min()),
        gd_big_fails=float(big.test.min()),
        gd_medians={f"median {k}, lr = {lr:g}": float(df[c].median()) for lr, df in ((lr_big, big), (lr_small, small))
                    for k, c in (("test MSE", "test"), ("erank", "erank"), ("movement of unobserved entries", "move_unobs"))},
    )


def ablation_measures(tab: pd.DataFrame, grid_result: dict) -> dict[str, Any]:
    """The ablations' claims from :func:`ablation_table`, each with its control: the best nuclear-norm
    median over the reference median (control: the reference's own largest/smallest seed); ``beta1 = 0``'s
    largest test error (control: no penalty, smallest); the largest median over the lambda sweep
    (control: no penalty's median); at the largest learning rate, the smallest ``sigma_1(W)/sigma_1(W*)``
    (control: the reference runs, largest) and the largest ``r(W) - r(W*)`` (control: the reference,
    smallest)."""
    ref = tab[tab.label == "reference"]

    def get(prefix: str) -> pd.DataFrame:
        return tab[tab.label.str.startswith(prefix)]

    labels = list(tab.label.unique())
    nuclear = [l for l in labels if l.startswith("nuclear")]
    lams = [l for l in labels if l.startswith("lambda=")]
    lrs = [l for l in labels if l.startswith("lr=")]
    if not (nuclear and lams and lrs and len(ref)):
        raise ValueError(f"ablation table lacks a variant: labels {labels}")
    blow = tab[tab.label == max(lrs, key=lambda l: float(l[3:]))]
    truth = grid_result["truth"].set_index("seed")

    def s1_ratio(rows: pd.DataFrame) -> np.ndarray:
        return rows.s1.to_numpy() / truth.s1.loc[rows.seed].to_numpy()

    def r_gap(rows: pd.DataFrame) -> np.ndarray:
        return rows.ratio.to_numpy() - truth.ratio.loc[rows.seed].to_numpy()

    return dict(
        ref_median=float(ref.test.median()), ref_train_median=float(ref.train.median()),
        nuclear_worse=min(float(get(l).test.median()) for l in nuclear) / float(ref.test.median()),
        nuclear_worse_control=float(ref.test.max() / ref.test.min()),
        nuclear_medians={l: float(get(l).test.median()) for l in nuclear},
        beta1_zero=float(get("beta1=0").test.max()), beta1_zero_median=float(get("beta1=0").test.median()),
        no_penalty_min=float(get("no penalty").test.min()), no_penalty_median=float(get("no penalty").test.median()),
        lambda_sweep=max(float(get(l).test.median()) for l in lams),
        lambda_values={f"{l}: median test MSE": float(get(l).test.median()) for l in lams}
        | {f"{l}: median train MSE": float(get(l).train.median()) for l in lams}
        | {f"{l}: latest stop step": float(get(l).stop_step.max()) for l in lams},
        blow_lr=float(blow.lr.iloc[0]), runaway=float(s1_ratio(blow).min()), runaway_control=float(s1_ratio(ref).max()),
        blow_train_max=float(blow.train.max()), blow_test_min=float(blow.test.min()),
        lower_penalty=float(r_gap(blow).max()), lower_penalty_control=float(r_gap(ref).min()),
        r_star=truth.ratio.to_dict(),
    )


def newton_schulz_float32(grid_result: dict, P: ch04.Params, iters: int) -> dict[str, float]:
    """The penalty gradient from ``iters`` Newton-Schulz iterations run in float32 (the iteration's own
    precision, :func:`lib.matrix_completion.penalty_grad`) on the final depth-1 matrices trained with the
    penalty, against autograd through an exact float64 SVD: smallest and largest relative error
    ``||g - g_ref||_F / ||g_ref||_F`` over the matrices."""
    rows = select(grid_result["runs"], depth=1, lam=P.grid.lam).index.to_numpy()
    w = ch04.final_matrices(grid_result, rows).to(torch.float32)
    x = w.to(torch.float64).requires_grad_(True)
    (ref,) = torch.autograd.grad((torch.linalg.svdvals(x).sum(-1) / torch.linalg.matrix_norm(x)).sum(), x)
    g = mc.penalty_grad(w, True, method="newton-schulz", iters=iters).to(torch.float64)
    rel = (g - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))
    return dict(min=float(rel.min()), max=float(rel.max()))


# -- numbers for the prose (glued into the text, never retyped) -----------------------------------------
_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(x: float, digits: int = 1) -> str:
    """``x`` rounded to ``digits`` significant digits, as the prose writes it: plainly from 0.01 to 9,999
    (``0.04``, ``3,000``), otherwise as ``a·10^k`` with superscripts (``3·10⁻³``, ``10⁻⁸``, ``1.5·10⁴``)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    e = math.floor(math.log10(abs(x)))
    mant = round(x / 10.0**e, digits - 1)
    if abs(mant) >= 10:
        mant, e = mant / 10, e + 1
    if -2 <= e <= 3:
        return f"{round(x, digits - 1 - e):,.{max(0, digits - 1 - e)}f}"
    m = f"{mant:.{digits - 1}f}".rstrip("0").rstrip(".") if digits > 1 else f"{mant:.0f}"
    power = "10" + str(e).translate(_SUP)
    return power if m == "1" else ("−" + power if m == "-1" else f"{m}·{power}")


def adam_defaults() -> dict[str, float]:
    """Adam's ``beta1``, ``beta2`` and ``eps`` and the normalised step's averaging constant, as
    :func:`lib.matrix_completion.train` sets them (PyTorch's defaults for Adam)."""
    d = inspect.signature(mc.train).parameters
    return {k: float(d[k].default) for k in ("beta1", "beta2", "adam_eps", "ngd_alpha")}


def adam_step_bound(beta1: float, beta2: float) -> float:
    """The largest step of Adam (with ``eps = 0``) on one coordinate in units of the learning rate:
    by Cauchy-Schwarz, ``|m_t| / sqrt(v_t) <= (1 - beta1) / sqrt((1 - beta2)(1 - beta1^2/beta2))``."""
    return (1 - beta1) / math.sqrt((1 - beta2) * (1 - beta1**2 / beta2))


def prose_values(P: ch04.Params, full: ch04.Params) -> dict[str, str]:
    """The parameters the chapter's prose quotes, as text to glue (keys without the chapter prefix;
    ``full-`` for the paper-scale profile): problem sizes and their degrees of freedom ``r(2n - r)``,
    rates, budgets, Adam's constants and the estimates the text derives from them (the size
    ``lam / (||W||_F sqrt n)`` of the penalty's gradient at an unobserved entry and its norm
    ``lam sqrt(n) / ||W||_F``, with ``||W||_F = ||W*||_F = n``; the Newton-Schulz threshold
    ``1.5^-k``; Adam's largest step)."""
    out: dict[str, str] = {}
    for pre, p in (("", P), ("full-", full)):
        g = p.grid
        out |= {
            pre + "n": str(g.n), pre + "rank": str(g.rank), pre + "seeds": str(g.seeds),
            pre + "dof": f"{mc.degrees_of_freedom(g.n, g.rank):,}", pre + "lr-adam": sci(g.lr_adam),
            pre + "steps": sci(g.steps, 2), pre + "log-every": str(g.log_every),
            pre + "stop-window": f"{g.stop_window:,}",
            pre + "side-seeds": "one seed" if p.ablations.seeds == 1 else f"{p.ablations.seeds} seeds",
            pre + "m-range": f"{min(g.m):,} to {max(g.m):,}", pre + "ns-old": str(p.identities.old_ns_iters),
            pre + "ns-threshold": sci(1.5 ** -p.identities.old_ns_iters),
            pre + "lr-factors": " and ".join(f"{lr / g.lr_adam:g}" for lr in p.ablations.lrs),
        }
    g, a = P.grid, adam_defaults()
    out |= {
        "lam": sci(g.lam), "init": sci(g.init_scale), "lr-ngd": sci(g.lr_gd), "ngd-eps": sci(g.gd_eps),
        "lr-plain": sci(g.lr_plain), "lr-plain-big": sci(max(P.normalized.lrs_plain)),
        "lr-ngd-study": sci(P.normalized.lr), "eps-small": sci(min(P.normalized.eps)),
        "stop-train": sci(g.stop_train), "stop-rtol": sci(g.stop_rtol), "mech-steps": str(P.mechanism.steps),
        "mech-lams": f"{sci(min(P.mechanism.lams))} to {sci(max(P.mechanism.lams))}",
        "m-few": f"{P.marks.m_few:,}", "m-mid": f"{P.marks.m_mid:,}", "m-hi": f"{P.marks.m_hi:,}",
        "beta1": f"{a['beta1']:g}", "beta2": f"{a['beta2']:g}", "adam-eps": sci(a["adam_eps"]),
        "ngd-alpha": f"{a['ngd_alpha']:g}", "adam-bound": f"{adam_step_bound(a['beta1'], a['beta2']):.2g}",
        "unobs-grad": sci(g.lam / (g.n * math.sqrt(g.n))), "pen-grad-norm": sci(g.lam * math.sqrt(g.n) / g.n),
    }
    return out


def recorded(stem: str = ch04.STEM, directory: Path | None = None) -> dict[str, Any]:
    """The committed record of the paper-scale execution (``records/full/<stem>.run.json`` and
    ``.claims.json``, written by ``python -m lib archive``): claims passed and checked, every claim by
    id (``measured``, ``values``, ...), the wall time of each study and of all together in minutes, and
    the latter as text (``wall``, e.g. ``2 h 6 min``)."""
    d = directory or paths.root() / "records" / "full"
    run = json.loads((d / f"{stem}.run.json").read_text())
    claims = json.loads((d / f"{stem}.claims.json").read_text())
    minutes = {s["study"]: s["wall_s"] / 60 for s in run["studies"]}
    h, m = divmod(round(sum(minutes.values())), 60)
    return dict(profile=run["profile"], passed=run["n_passed"], total=run["n_claims"],
                claims={c["id"]: c for c in claims["claims"]}, minutes=minutes,
                wall_min=sum(minutes.values()), wall=f"{h} h {m} min" if h else f"{m} min")


def recorded_values(rec: dict[str, Any], full: ch04.Params) -> dict[str, str]:
    """The numbers of the paper-scale record (:func:`recorded`) that the prose quotes, as text to glue
    (prefix ``full-``): claims passed and checked, wall times (in all and per study, in minutes), the
    mechanism study's GD-over-Adam ratio, the depth-1 median test error at ``marks.m_mid``, Adam without
    momentum's largest test error, and the floor terms ``lr^2`` and ``lr^2 + lam^2`` they are compared
    with."""
    c, g = rec["claims"], full.grid
    return {
        "full-passed": str(rec["passed"]), "full-claims": str(rec["total"]), "full-wall": rec["wall"],
        **{f"full-min-{k}": f"{v:.0f}" for k, v in rec["minutes"].items()},
        "full-gd-stalls": sci(c["ch04-gd-stalls"]["measured"], 2),
        "full-d1-mid": sci(c["ch04-depth1-completes"]["values"][f"median m={full.marks.m_mid}"], 2),
        "full-beta1-zero": sci(c["ch04-beta1-zero"]["measured"], 2),
        "full-lr-sq": sci(g.lr_adam**2), "full-floor": sci(g.lr_adam**2 + g.lam**2),
    }


def penalty_path(w0: torch.Tensor, lams: torch.Tensor, *, steps: int, lr: float, eps: float,
                 adam: bool = True) -> torch.Tensor:
    """``steps`` steps of Adam (PyTorch's, with ``eps``) or of plain GD (``adam=False``) on the penalty
    alone, ``lam * Psi(W)`` with ``Psi = ||W||_*/||W||_F`` (gradient :func:`lib.polar.ratio_grad`), from
    ``w0`` (``[n, k]``) for each weight of ``lams`` (``[B]``) as one batch; returns ``W`` ``[B, n, k]``.
    With ``eps = 0`` Adam's path does not depend on ``lam`` (chapter 4's lemma); plain GD's depends on
    ``lr * lam`` only."""
    lam = lams.to(w0).reshape(-1, 1, 1)
    w = w0.repeat(len(lam), 1, 1).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, eps=eps) if adam else torch.optim.SGD([w], lr=lr)
    for _ in range(steps):  # one batched step per iteration, every lambda at once
        w.grad = lam * polar.ratio_grad(w.detach())[0]
        opt.step()
    return w.detach()
