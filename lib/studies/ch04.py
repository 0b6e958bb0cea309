"""Chapter 4: an explicit scale-invariant penalty with Adam replaces depth in matrix completion.

Studies (plain functions; every run of a study is one tensor program, grouped by depth and
optimizer family, see :mod:`lib.matrix_completion`):

- :func:`identities` -- the penalty's calculus in float64 (the gradient formula, the per-singular-value
  derivative, scale invariance, ``1 <= r <= sqrt(rank)``), and the gradient that training uses checked
  against autograd through an exact SVD on matrices like those training produces (a low-rank ``W*``
  plus a small bulk, in float32), with Newton-Schulz at the old iteration counts as a negative control;
- :func:`grid` -- depth 1-3 x {Adam, GD} x {no penalty, ratio penalty} x number of observations
  x seeds (GD: plain at depth 1, Arora et al.'s globally normalised step for the deep models);
- :func:`baseline` -- minimum-nuclear-norm completion (cvxpy) of the same problems;
- :func:`ablations` -- depth 1 + Adam at the grid's largest claimed number of observations, on the
  grid's problems and initialisations: the nuclear penalty, ``beta1 = 0``, a penalty-weight sweep and
  a learning-rate sweep;
- :func:`mechanism` -- the first steps of depth 1 + ratio under Adam, plain GD and normalised GD,
  for several penalty weights: how far the unobserved entries move;
- :func:`normalized` -- depth 1 with the ratio penalty under normalised GD with ``eps = 1e-8`` and with
  Arora et al.'s ``eps = 1e-4``, without the penalty, and under plain GD with a large step.

Every run is defined by one row of a run table (problem seed, ``m``, depth, method, learning rate,
penalty and its weight, ``beta1``, ``eps``); its problem and its initialisation depend on that row only
(the problem on the seed, the initialisation on the seed and the depth), never on which other runs
share its batch. So the ablations' reference runs *are* the grid's runs, and a study can be split into
shards run by several processes (:func:`lib.sweep.run`, ``--cluster local:2``) with the same numbers.

Runs stop early, one by one, on a plateau of the train error and the spectrum (never on the test
error; see :func:`lib.matrix_completion.train`): a stopped run keeps its state and is reported with
``stopped`` and ``stop_step``.

References: ``zhao2022combining`` (the penalty with Adam), ``arora2019implicit`` (deep matrix
factorization), ``candes2009exact`` (nuclear-norm minimisation), ``roy2007effective``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine, polar
from .. import matrix_completion as mc
from ..book import sweep
from ..checks import (
    ParameterError,
    check_choice,
    check_fields,
    check_numbers,
    check_positive,
    check_profile,
)

STEM = "04-explicit-penalty-adam"
#: the eps of the globally normalised step in Arora et al.'s released code (their GroupRMSprop)
ARORA_EPS = 1e-4


# -- parameters: one frozen dataclass per study, validated on construction ---------------------------
POLARS = ("svd", "newton-schulz")


def _problem_ok(p: Any, m_values: tuple = ()) -> None:
    """Problem size, rank and seed count, and every number of observations below ``n^2``."""
    check_fields(p, "n", "rank", "seeds", integer=True)
    if p.rank >= p.n:
        raise ParameterError(f"invalid rank={p.rank!r}: must be < n = {p.n}")
    for m in m_values:
        check_positive("m", m, integer=True)
        if m >= p.n * p.n:
            raise ParameterError(f"invalid m={m!r}: must be < n^2 = {p.n * p.n}")


def _training_ok(p: Any) -> None:
    """The training budget, logging, initialisation, polar factor and early stopping of a study."""
    check_fields(p, "steps", "log_every", integer=True)
    check_fields(p, "init_scale", "stop_rtol", "stop_train")
    check_choice("polar", p.polar, POLARS)
    if p.steps % p.log_every:
        raise ParameterError(f"invalid steps={p.steps!r}: must be a multiple of log_every={p.log_every}")
    if p.stop_window is not None:
        check_positive("stop_window", p.stop_window, integer=True)


@dataclass(frozen=True)
class Identities:
    """The penalty's calculus on ``count`` random ``n x n`` matrices, and the trained gradient on
    ``bulk_count`` matrices like those training produces (size and rank of the grid's ground truths);
    ``old_ns_iters``: the Newton-Schulz iterations of the first version of the chapter (the control)."""

    n: int
    count: int
    n_bulk: int
    rank: int
    bulk_count: int
    old_ns_iters: int

    def __post_init__(self) -> None:
        check_fields(self, "n", "count", "n_bulk", "rank", "bulk_count", "old_ns_iters", integer=True)


@dataclass(frozen=True)
class Grid:
    """The main study (:func:`grid`): depth x optimizer x penalty x ``m`` x seed, with the restrictions
    documented there, the learning rates of Adam (``lr_adam``), normalised GD (``lr_gd``, ``gd_eps``)
    and plain GD (``lr_plain``), the penalty weight ``lam`` and the training budget."""

    n: int
    rank: int
    seeds: int
    m: tuple[int, ...]
    penalty_m: tuple[int, ...]
    gd_penalty_m: tuple[int, ...]
    deep_m: tuple[int, ...]
    deep_adam_m: tuple[int, ...]
    depths: tuple[int, ...]
    penalty_depths: tuple[int, ...]
    deep_penalty_m: tuple[int, ...]
    lam: float
    lr_adam: float
    lr_gd: float
    gd_eps: float
    lr_plain: float
    steps: int
    log_every: int
    init_scale: float
    polar: str
    stop_window: int | None
    stop_rtol: float
    stop_train: float

    def __post_init__(self) -> None:
        check_numbers("m", self.m, integer=True)
        for name in ("penalty_m", "gd_penalty_m", "deep_m", "deep_adam_m", "deep_penalty_m"):
            sub = check_numbers(name, getattr(self, name), integer=True, allow_empty=True)
            if not set(sub) <= set(self.m):
                raise ParameterError(f"invalid {name}={sub!r}: must be values of m={self.m!r}")
        check_numbers("depths", self.depths, integer=True)
        check_numbers("penalty_depths", self.penalty_depths, integer=True, allow_empty=True)
        _problem_ok(self, self.m)
        check_fields(self, "lam", "lr_adam", "lr_gd", "gd_eps", "lr_plain")
        _training_ok(self)


@dataclass(frozen=True)
class Baseline:
    """Minimum-nuclear-norm completion of the grid's problems (:func:`baseline`)."""

    n: int
    rank: int
    seeds: int
    m: tuple[int, ...]

    def __post_init__(self) -> None:
        _problem_ok(self, check_numbers("m", self.m, integer=True))


@dataclass(frozen=True)
class Ablations:
    """Variants of depth 1 + ratio + Adam at ``m`` (:func:`ablations`): penalty weights ``lams``,
    learning rates ``lrs`` (budget ``lr_steps``), nuclear-norm weights ``nuclear_lams``, ``beta1 = 0``."""

    n: int
    rank: int
    seeds: int
    m: int
    lam: float
    lr: float
    lams: tuple[float, ...]
    lrs: tuple[float, ...]
    nuclear_lams: tuple[float, ...]
    lr_steps: int
    steps: int
    log_every: int
    init_scale: float
    polar: str
    stop_window: int | None
    stop_rtol: float
    stop_train: float

    def __post_init__(self) -> None:
        _problem_ok(self, (self.m,))
        check_fields(self, "lam", "lr")
        for name in ("lams", "lrs", "nuclear_lams"):
            check_numbers(name, getattr(self, name))
        _training_ok(self)
        check_positive("lr_steps", self.lr_steps, integer=True)
        if self.lr_steps > self.steps or self.lr_steps % self.log_every:
            raise ParameterError(f"invalid lr_steps={self.lr_steps!r}: must be a multiple of "
                                 f"log_every={self.log_every} and <= steps={self.steps}")


@dataclass(frozen=True)
class Mechanism:
    """The first ``steps`` steps of depth 1 + ratio under Adam, plain GD and normalised GD, for the
    penalty weights ``lams`` (:func:`mechanism`)."""

    n: int
    rank: int
    seeds: int
    m: int
    steps: int
    log_every: int
    init_scale: float
    polar: str
    lams: tuple[float, ...]
    lr_adam: float
    lr_gd: float
    gd_eps: float
    lr_plain: float

    def __post_init__(self) -> None:
        _problem_ok(self, (self.m,))
        check_fields(self, "steps", "log_every", integer=True)
        check_fields(self, "init_scale", "lr_adam", "lr_gd", "gd_eps", "lr_plain")
        check_choice("polar", self.polar, POLARS)
        check_numbers("lams", self.lams)


@dataclass(frozen=True)
class Normalized:
    """Depth 1 under the gradient-descent family at ``m`` (:func:`normalized`): normalised GD at rate
    ``lr`` with each ``eps`` (with and without the penalty), plain GD with each step in ``lrs_plain``
    (budgets ``plain_steps``)."""

    n: int
    rank: int
    seeds: int
    m: int
    lam: float
    lr: float
    eps: tuple[float, ...]
    lrs_plain: tuple[float, ...]
    plain_steps: tuple[int, ...]
    steps: int
    log_every: int
    init_scale: float
    polar: str
    stop_window: int | None
    stop_rtol: float
    stop_train: float

    def __post_init__(self) -> None:
        _problem_ok(self, (self.m,))
        check_fields(self, "lam", "lr")
        check_numbers("eps", self.eps)
        check_numbers("lrs_plain", self.lrs_plain)
        check_numbers("plain_steps", self.plain_steps, integer=True)
        if len(self.plain_steps) != len(self.lrs_plain):
            raise ParameterError(f"invalid plain_steps={self.plain_steps!r}: one budget per step in "
                                 f"lrs_plain={self.lrs_plain!r}")
        _training_ok(self)


@dataclass(frozen=True)
class Marks:
    """The numbers of observations the claims are made at: about 1.5, 2 and 3 times the degrees of
    freedom ``rank (2n - rank)``."""

    m_few: int
    m_mid: int
    m_hi: int

    def __post_init__(self) -> None:
        check_numbers("marks", (self.m_few, self.m_mid, self.m_hi), integer=True)
        if not self.m_few < self.m_mid < self.m_hi:
            raise ParameterError(f"invalid marks={(self.m_few, self.m_mid, self.m_hi)!r}: must increase")


@dataclass(frozen=True)
class Params:
    """Every study's parameters (a field per study, named after its function) and the claims' marks."""

    identities: Identities
    grid: Grid
    baseline: Baseline
    ablations: Ablations
    mechanism: Mechanism
    normalized: Normalized
    marks: Marks


def _derived(g: Grid, marks: Marks, *, side_seeds: int, nuclear_factors: tuple[float, ...],
             lr_factors: tuple[float, ...], lr_steps: int, plain_steps: tuple[int, int], old_ns_iters: int) -> Params:
    """The other studies from the grid: its problems (size, rank, first ``side_seeds`` seeds), its
    penalty weight, learning rates, initialisation, polar factor and early stopping, at ``marks.m_hi``.

    The ablations get the grid's step budget (their reference rows are grid runs, and a smaller penalty
    weight converges later); the optimizer study gets two thirds of it (Adam converges within that at
    three times the degrees of freedom, and its runs are compared with the grid's Adam runs, which had
    more)."""
    same = dict(n=g.n, rank=g.rank)
    train = dict(log_every=g.log_every, init_scale=g.init_scale, polar=g.polar, stop_window=g.stop_window,
                 stop_rtol=g.stop_rtol, stop_train=g.stop_train)
    return Params(
        identities=Identities(n=12, count=64, n_bulk=g.n, rank=g.rank, bulk_count=16, old_ns_iters=old_ns_iters),
        grid=g,
        baseline=Baseline(**same, seeds=g.seeds, m=g.m),
        ablations=Ablations(**same, seeds=side_seeds, m=marks.m_hi, lam=g.lam, lr=g.lr_adam,
                            lams=(g.lam / 10, g.lam * 10), lrs=tuple(f * g.lr_adam for f in lr_factors),
                            nuclear_lams=tuple(f * g.lam / g.n for f in nuclear_factors), lr_steps=lr_steps,
                            steps=g.steps, **train),
        mechanism=Mechanism(**same, seeds=side_seeds, m=marks.m_hi, steps=300, log_every=10,
                            init_scale=g.init_scale, polar=g.polar, lams=(g.lam / 10, g.lam, g.lam * 10),
                            lr_adam=g.lr_adam, lr_gd=g.lr_gd, gd_eps=g.gd_eps, lr_plain=g.lr_plain),
        normalized=Normalized(**same, seeds=side_seeds, m=marks.m_hi, lam=g.lam, lr=10 * g.lr_gd,
                              eps=(1e-8, ARORA_EPS), lrs_plain=(g.lr_plain, 30 * g.lr_plain),
                              plain_steps=plain_steps, steps=2 * g.steps // 3, **train),
        marks=marks,
    )


#: ``full``: paper scale, n = 100, rank 5 (975 degrees of freedom), five seeds, every configuration at
#: every m except plain GD with the penalty (at 1.5x and 2x the dof here, at 3x in :func:`normalized`)
#: and the deep models with the penalty (at 2x and 3x).
_MARKS_FULL = Marks(m_few=1500, m_mid=2000, m_hi=3000)
_M_FULL = (1000, 1500, 2000, 2500, 3000, 4000, 5000)
_GRID_FULL = Grid(
    n=100, rank=5, seeds=5, m=_M_FULL, penalty_m=_M_FULL, gd_penalty_m=(_MARKS_FULL.m_few, _MARKS_FULL.m_mid),
    deep_m=_M_FULL, deep_adam_m=_M_FULL, depths=(1, 2, 3), penalty_depths=(1, 2, 3),
    deep_penalty_m=(_MARKS_FULL.m_mid, _MARKS_FULL.m_hi), lam=1e-3, lr_adam=1e-3, lr_gd=3e-3, gd_eps=ARORA_EPS,
    lr_plain=1.0, steps=30_000, log_every=500, init_scale=1e-3, polar="svd", stop_window=6000, stop_rtol=1e-3,
    stop_train=1e-4)
FULL = _derived(_GRID_FULL, _MARKS_FULL, side_seeds=_GRID_FULL.seeds, nuclear_factors=(1, 10, 100),
                lr_factors=(3, 30), lr_steps=_GRID_FULL.steps, plain_steps=(2 * _GRID_FULL.steps // 3,) * 2,
                old_ns_iters=25)

#: ``fast``: CI on one CPU core, n = 50, rank 3 (291 dof), three seeds; the penalty at depth 1 only, at
#: 1.5x, 2x and 3x the dof, the deep models where they separate. The side studies run on the grid's first
#: seed (nearly all of their steps carry the penalty, whose exact float64 SVD, about 0.4 ms per 50 x 50
#: matrix on a CPU core, is most of this profile's cost, and a second seed nearly doubles their time); the
#: ablations keep one nuclear-norm weight and the larger learning rate, which runs away within a third of
#: the budget (its own budget here); plain GD with the penalty at ``lr = 1`` (it fits the data, then
#: drifts by a few 1e-6 per entry and step) gets a third of the budget.
_MARKS_FAST = Marks(m_few=450, m_mid=600, m_hi=900)
_MARKED_FAST = (_MARKS_FAST.m_few, _MARKS_FAST.m_mid, _MARKS_FAST.m_hi)
_GRID_FAST = dataclasses.replace(
    _GRID_FULL, n=50, rank=3, seeds=3, m=(300, *_MARKED_FAST, 1200), penalty_m=_MARKED_FAST, gd_penalty_m=(),
    deep_m=_MARKED_FAST, deep_adam_m=_MARKED_FAST[1:], penalty_depths=(1,), deep_penalty_m=(), lr_adam=3e-3,
    steps=15_000, log_every=250, stop_window=3000)
FAST = _derived(_GRID_FAST, _MARKS_FAST, side_seeds=1, nuclear_factors=(1,), lr_factors=(30,),
                lr_steps=_GRID_FAST.steps // 3, plain_steps=(_GRID_FAST.steps // 3, 2 * _GRID_FAST.steps // 3),
                old_ns_iters=15)


def params(profile: str) -> Params:
    """The parameters of every study for ``profile`` (``"fast"``: CI, one CPU core; ``"full"``: paper
    scale, two CPU cores or a GPU)."""
    return {"fast": FAST, "full": FULL}[check_profile(profile)]


def _valid(cls: type, kw: dict[str, Any]) -> Any:
    """Validate a study's keyword arguments by building its parameter dataclass from them."""
    return cls(**{f.name: tuple(v) if isinstance(v, list) else v
                  for f in dataclasses.fields(cls) for k, v in kw.items() if k == f.name})

# -- helpers --------------------------------------------------------------------------------------
def _problems(n: int, rank: int, seeds: int, device, seed: int) -> mc.Problems:
    """The problems of seeds ``0..seeds-1``, each drawn from its own generator: problem ``s`` is the same
    whatever ``seeds`` is (every study uses the grid's problems)."""
    parts = []
    for s in range(seeds):
        g = torch.Generator(device=device)
        g.manual_seed(1_000_003 * seed + 4 + 7919 * s)
        parts.append(mc.make_problems(n, rank, 1, generator=g, device=device))
    return mc.Problems(target=torch.cat([p.target for p in parts]), order=torch.cat([p.order for p in parts]),
                       rank=rank)


def _init(rows: pd.DataFrame, n: int, depth: int, init_scale: float, device, seed: int) -> list[torch.Tensor]:
    """Initial layers for the runs ``rows`` of one depth: each run's from a generator of its problem
    seed and depth only, so runs that share them (other m, optimizer or penalty) start alike."""
    per_run = []
    for s in rows["seed"].to_numpy(dtype=np.int64):
        g = torch.Generator(device=device)
        g.manual_seed(1_000_003 * seed + 100 + 7919 * int(s) + 104_729 * depth)
        per_run.append(mc.init_layers(1, n, depth, scale=init_scale, generator=g, device=device))
    return [torch.cat([layers[k] for layers in per_run]) for k in range(depth)]



def _truth(pb: mc.Problems) -> pd.DataFrame:
    s = torch.linalg.svdvals(pb.target).cpu().numpy()
    return pd.DataFrame({"seed": np.arange(len(s)), "erank": mc.effective_rank(s[:, : pb.rank]),
                         "ratio": s.sum(1) / np.linalg.norm(s, axis=1),
                         **{f"s{i + 1}": s[:, i] for i in range(pb.rank)}})


HIST_KEYS = ("test", "train", "sigma", "erank", "ratio", "move_unobs", "move_obs", "spec_change")
RUN_COLUMNS = ("seed", "m", "depth", "method", "lr", "lam", "penalty", "beta1", "eps")


def train_runs(runs: pd.DataFrame, device: str | torch.device, *, n: int, rank: int, seed: int, steps: int,
               log_every: int, init_scale: float, polar: str = "svd", polar_iters: int = 25,
               stop_window: int | None = None, stop_rtol: float = 1e-3, stop_train: float = 1e-4,
               on_divergence: str = "raise") -> pd.DataFrame:
    """Train the runs of a run table (columns :data:`RUN_COLUMNS`), one batch per (depth, method).

    Each run's problem (its seed and ``m``) and initialisation (its seed and depth) depend on its own
    row only, so the result is the same however a study's runs are split into shards
    (:func:`lib.sweep.run`). Returns ``runs`` with the final measurements (``test``, ``train``,
    ``erank``, ``ratio``, ``move_unobs``, ``s1..s{rank+2}``, the flags ``runaway``, ``diverged``,
    ``stopped``, ``stop_step``) and the logged histories in columns ``h_<name>``."""
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"run table lacks columns {missing}")
    _single_thread_in_worker()
    dev = torch.device(device)
    pb = _problems(n, rank, int(runs["seed"].max()) + 1, dev, seed)
    n_sv = rank + 2
    out = []
    for (depth, method), rows in runs.groupby(["depth", "method"], sort=True):
        idx = torch.tensor(rows["seed"].to_numpy(dtype=np.int64), device=dev)
        mask = mc.observation_mask(pb.order[idx], torch.tensor(rows["m"].to_numpy(dtype=np.int64), device=dev), n)
        f32 = dict(dtype=torch.float32, device=dev)
        res = mc.train(
            pb.target[idx], mask, depth=int(depth), method=str(method),
            lr=torch.tensor(rows["lr"].to_numpy(dtype=np.float64), **f32),
            lam=torch.tensor(rows["lam"].to_numpy(dtype=np.float64), **f32),
            beta1=torch.tensor(rows["beta1"].to_numpy(dtype=np.float64), **f32),
            ngd_eps=torch.tensor(rows["eps"].to_numpy(dtype=np.float64), dtype=torch.float64, device=dev),
            penalty=list(rows["penalty"]), steps=steps, log_every=log_every, polar=polar,
            polar_iters=polar_iters, on_divergence=on_divergence, runs=rows, n_sv=n_sv,
            init=_init(rows, n, int(depth), init_scale, dev, seed), stop_window=stop_window,
            stop_rtol=stop_rtol, stop_train=stop_train,
        )
        h = res.history
        meas = dict(test=h.test[-1], train=h.train[-1], erank=h.erank[-1], ratio=h.ratio[-1],
                    move_unobs=h.move_unobs[-1], runaway=res.runaway, diverged=res.diverged,
                    stopped=res.stopped, stop_step=res.stop_step,
                    **{f"s{i + 1}": h.sigma[-1, :, i] for i in range(n_sv)})
        hist = {f"h_{k}": np.moveaxis(getattr(h, k), 0, 1) for k in HIST_KEYS}
        hist["h_steps"] = np.broadcast_to(h.steps, (len(rows), len(h.steps)))
        hist["h_final"] = res.final
        out.append(engine.tidy(rows, **meas, **hist))
    return pd.concat(out).loc[runs.index]


def _collect(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Split the output of :func:`train_runs` into the run table and the histories ``[T, B, ...]``
    (with ``final``: the final end-to-end matrices ``[B, n, n]``, float32)."""
    hist = {"steps": np.asarray(table["h_steps"].iloc[0])}
    for k in HIST_KEYS:
        hist[k] = np.moveaxis(np.stack(table[f"h_{k}"].to_list()), 0, 1)
    hist["final"] = np.stack(table["h_final"].to_list())
    runs = table.drop(columns=[c for c in table.columns if c.startswith("h_") or c.startswith("shard_")])
    return runs.reset_index(drop=True), hist


def _single_thread_in_worker() -> None:
    """In a Dask worker process of a sweep (``--cluster local:N``: N single-threaded workers) use one
    torch thread, whatever torch's default: two processes on two cores, not four threads."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    torch.set_num_threads(1)


def _cost(runs: pd.DataFrame) -> np.ndarray:
    """Relative cost of a run-step (measured on a CPU core at n = 50 and 100): the penalty's SVD
    dominates; each extra layer adds a few matrix products."""
    return 0.05 + (runs["lam"] > 0).to_numpy() * 1.0 + 0.15 * (runs["depth"].to_numpy() - 1)


def workers() -> int:
    """The number of worker processes a sweep gets: N for ``IB_CLUSTER=local:N``, else 1 (in process)."""
    c = os.environ.get("IB_CLUSTER", "")
    kind, _, k = c.partition(":")
    return int(k) if kind == "local" and k.isdigit() and int(k) > 0 else 1


def _sweep(name: str, runs: pd.DataFrame, device, *, shards: int | None = None, **kw) -> tuple[pd.DataFrame, dict]:
    """Run ``runs`` through :func:`train_runs` in ``shards`` shards of about equal cost (default: one
    per worker process, see :func:`workers`), via :func:`lib.sweep.run` (cached per shard)."""
    runs = runs.reset_index(drop=True)
    runs.index.name = "run"
    s = max(1, min(len(runs), shards or workers()))
    size = -(-len(runs) // s)
    caps = [size] * (s - 1) + [len(runs) - size * (s - 1)]
    load, members = [0.0] * s, [[] for _ in range(s)]
    cost = _cost(runs)
    for i in np.argsort(-cost, kind="stable"):  # longest first, to the least loaded shard with room
        k = min((j for j in range(s) if len(members[j]) < caps[j]), key=lambda j: load[j])
        members[k].append(int(i))
        load[k] += cost[i]
    order = [i for mem in members for i in sorted(mem)]
    ordered = runs.iloc[order]
    out = sweep.run(f"ch04-{name}", functools.partial(train_runs, **kw), ordered, max_batch=size,
                    device=str(device))
    return _collect(out.loc[runs.index])


def _sweep_budgets(name: str, runs: pd.DataFrame, device, *, steps: int, log_every: int,
                   stop_window: int | None, on_divergence: str = "raise", **kw) -> tuple[pd.DataFrame, dict]:
    """:func:`_sweep` for a run table whose column ``budget`` gives each run's step budget (at most
    ``steps``): one sweep per budget. A run with a smaller budget keeps its last logged values to the
    end of ``steps``, like a stopped run (its ``stop_step`` is its budget)."""
    runs = runs.reset_index(drop=True)
    if (runs["budget"] > steps).any() or (runs["budget"] % log_every).any():
        raise ParameterError(f"invalid budget={sorted(set(runs['budget']))!r}: must be multiples of log_every={log_every} "
                             f"and at most steps={steps}")
    all_steps = np.asarray(range(0, steps + 1, log_every))
    parts = []
    for budget, sub in runs.groupby("budget", sort=False):
        window = None if stop_window is None else min(stop_window, int(budget))
        table, hist = _sweep(name, sub, device, steps=int(budget), log_every=log_every, stop_window=window,
                             on_divergence=on_divergence, **kw)
        pad = len(all_steps) - len(hist["steps"])
        if pad:
            hist = {k: all_steps if k == "steps" else v if k == "final" else
                    np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in hist.items()}
            hist["spec_change"][-pad:] = np.nan
        table.index = sub.index
        parts.append((table, hist))
    order = np.argsort(np.concatenate([t.index.to_numpy() for t, _ in parts]), kind="stable")
    hist = {"steps": all_steps} | {k: np.concatenate([h[k] for _, h in parts], axis=(0 if k == "final" else 1))
                                   [(order if k == "final" else (slice(None), order))]
                                   for k in parts[0][1] if k != "steps"}
    return pd.concat([t for t, _ in parts]).sort_index(), hist


def _train_kw(n, rank, seed, steps, log_every, init_scale, polar, stop_window, stop_rtol, stop_train,
              polar_iters=25):
    return dict(n=n, rank=rank, seed=seed, steps=steps, log_every=log_every, init_scale=init_scale,
                polar=polar, polar_iters=polar_iters, stop_window=stop_window, stop_rtol=stop_rtol,
                stop_train=stop_train)


# -- the penalty's calculus and the trained gradient ---------------------------------------------------
def _eigh_polar(w: torch.Tensor) -> torch.Tensor:
    """Polar factor from an eigendecomposition of ``W^T W`` in float64 (squares the condition number;
    singular values at or below the SVD's numerical-rank threshold are dropped): shown for comparison."""
    x = w.to(torch.float64)
    lam, v = torch.linalg.eigh(x.transpose(1, 2) @ x)
    s = lam.clamp_min(0).sqrt()
    keep = s > s[:, -1:] * (max(x.shape[1:]) * torch.finfo(torch.float64).eps)
    inv = torch.where(keep, 1 / s.clamp_min(1e-300), torch.zeros_like(s))
    return x @ (v * inv.unsqueeze(1)) @ v.transpose(1, 2)


def gradient_check(w: torch.Tensor, old_ns_iters: int) -> dict[str, float]:
    """The penalty gradient that training uses (:func:`lib.matrix_completion.penalty_grad`, exact SVD,
    on the float32 matrices ``w``) against autograd through ``torch.linalg.svdvals`` in float64 on the
    same matrices: largest relative error ``||g - g_ref||_F / ||g_ref||_F`` and smallest cosine. The same
    for Newton-Schulz at ``old_ns_iters`` iterations (float32, the former training path, and float64),
    for the polar factor from ``eigh(W^T W)`` in float64, and the Newton-Schulz iterations each matrix
    needs (:func:`lib.polar.newton_schulz_iters_needed`)."""
    w32 = w.to(torch.float32)
    x = w32.to(torch.float64).clone().requires_grad_(True)
    r = torch.linalg.svdvals(x).sum(-1) / torch.linalg.matrix_norm(x)
    (ref,) = torch.autograd.grad(r.sum(), x)

    def err(g: torch.Tensor) -> tuple[float, float, float]:
        """Largest and smallest relative error, smallest cosine, over the matrices."""
        g = g.to(torch.float64)
        rel = (g - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))
        cos = (g * ref).sum((1, 2)) / (g.norm(dim=(1, 2)) * ref.norm(dim=(1, 2)))
        return float(rel.max()), float(rel.min()), float(cos.min())

    x64 = w32.to(torch.float64)
    e_train, _, c_train = err(mc.penalty_grad(w32, True))
    e_ns, ns_min, c_ns = err(mc.penalty_grad(w32, True, method="newton-schulz", iters=old_ns_iters))
    e_ns64, _, _ = err(mc.penalty_grad(x64, True, method="newton-schulz", iters=old_ns_iters))
    need = polar.newton_schulz_iters_needed(w32)
    e_need64, _, _ = err(mc.penalty_grad(x64, True, method="newton-schulz", iters=int(need.max())))
    e_eigh, _, _ = err(polar.ratio_grad(x64, _eigh_polar(x64))[0])
    s = torch.linalg.svdvals(x64)
    fro = s.norm(dim=1)
    return dict(rel_err=e_train, cos=c_train, ns_rel_err_max=e_ns, ns_rel_err_min=ns_min, ns_cos=c_ns,
                ns64_rel_err=e_ns64, ns_iters_needed_max=float(need.max()), ns_iters_needed_min=float(need.min()),
                ns_needed64_rel_err=e_need64, eigh_rel_err=e_eigh,
                smin_rel_min=float((s[:, -1] / fro).min()), smin_rel_max=float((s[:, -1] / fro).max()))


def identities(*, n: int, count: int, n_bulk: int, rank: int, bulk_count: int, old_ns_iters: int,
               device, seed: int) -> dict[str, float]:
    """The calculus of ``r(W) = ||W||_*/||W||_F`` in float64 on random matrices, and the trained gradient.

    Returns the largest errors of: the polar-factor gradient (exact SVD) vs autograd through
    ``torch.linalg.svdvals`` on well-conditioned matrices (``err_grad``; the formula), ``<grad r, u_i
    v_i^T>`` vs the per-singular-value formula, ``r(cW) - r(W)``, and the range of ``r`` over
    matrices of each rank ``k``; and :func:`gradient_check` (prefix ``bulk_``) on ``bulk_count``
    float32 matrices like those training produces: a ground truth of :func:`grid` (``n_bulk``,
    ``rank``) plus a bulk with singular values log-uniform in ``[1e-9, 1e-4] ||W*||_F``."""
    _valid(Identities, locals())
    g = torch.Generator(device=device)
    g.manual_seed(1_000_003 * seed + 40)
    kw = dict(dtype=torch.float64, device=device)
    # well-conditioned full-rank matrices (singular values in [0.5, 2]): the formula
    q1 = torch.linalg.qr(torch.randn(count, n, n, generator=g, **kw))[0]
    q2 = torch.linalg.qr(torch.randn(count, n, n, generator=g, **kw))[0]
    s = 0.5 + 1.5 * torch.rand(count, n, generator=g, **kw)
    w = q1 @ torch.diag_embed(s) @ q2.transpose(1, 2)
    wr = w.clone().requires_grad_(True)
    r_auto = torch.linalg.svdvals(wr).sum(-1) / torch.linalg.matrix_norm(wr)
    (g_auto,) = torch.autograd.grad(r_auto.sum(), wr)
    g_f, r_f = polar.ratio_grad(w)
    err_grad = ((g_f - g_auto).abs().amax() / g_auto.abs().amax()).item()
    err_value = (r_f - r_auto.detach()).abs().amax().item()
    # per singular value: <grad r, u_i v_i^T> = (1 - s_i ||s||_1/||s||_2^2)/||s||_2
    u, sv, vh = torch.linalg.svd(w)
    proj = torch.einsum("bij,bik,bkj->bk", g_f, u, vh)  # (U^T G V)_kk
    err_sigma = (proj - polar.ratio_sigma_grad(sv)).abs().amax().item()
    c = torch.exp(4 * torch.randn(count, 1, 1, generator=g, **kw))
    err_scale = (polar.ratio_penalty(c * w) - polar.ratio_penalty(w)).abs().amax().item()
    # range over matrices of rank k: r in [1, sqrt(k)], ends attained by rank 1 and flat spectra
    ks = torch.arange(1, n + 1, device=device)
    a = torch.randn(n, n, n, generator=g, **kw)
    bm = torch.randn(n, n, n, generator=g, **kw)
    keep = (torch.arange(n, device=device)[None, :] < ks[:, None]).to(torch.float64)
    lowrank = torch.bmm(a * keep[:, None, :], bm.transpose(1, 2))
    r_k = polar.ratio_penalty(lowrank)
    in_range = ((r_k >= 1 - 1e-12) & (r_k <= ks.to(torch.float64).sqrt() + 1e-12)).all().item()
    flat = q1[:n] @ torch.diag_embed(keep) @ q2[:n].transpose(1, 2) if count >= n else None
    err_flat = ((polar.ratio_penalty(flat) - ks.to(torch.float64).sqrt()).abs().amax().item()
                if flat is not None else float("nan"))
    # matrices like those training produces: W* + a bulk reaching down to 1e-9 ||W*||_F, in float32
    pb = _problems(n_bulk, rank, min(bulk_count, 3), device, seed)
    tgt = pb.target[torch.arange(bulk_count, device=device) % pb.target.shape[0]]
    o1 = torch.linalg.qr(torch.randn(bulk_count, n_bulk, n_bulk, generator=g, **kw))[0]
    o2 = torch.linalg.qr(torch.randn(bulk_count, n_bulk, n_bulk, generator=g, **kw))[0]
    expo = -4 - 5 * torch.rand(bulk_count, n_bulk, generator=g, **kw)
    bulk = o1 @ torch.diag_embed(n_bulk * 10**expo) @ o2.transpose(1, 2)
    chk = gradient_check((tgt + bulk).to(torch.float32), old_ns_iters)
    return dict(err_grad=err_grad, err_value=err_value, err_sigma=err_sigma, err_scale=err_scale,
                in_range=float(in_range), err_flat=err_flat, r_rank1=float(r_k[0]), r_min=float(r_k.min()),
                r_over_sqrtk_max=float((r_k / ks.to(torch.float64).sqrt()).max()),
                **{f"bulk_{k}": v for k, v in chk.items()})


# -- the main grid, the baseline and the other studies ---------------------------------------------------
def grid(*, n: int, rank: int, seeds: int, m: list[int], penalty_m: list[int], gd_penalty_m: list[int],
         deep_m: list[int], deep_adam_m: list[int], depths: list[int], penalty_depths: list[int],
         deep_penalty_m: list[int], lam: float, lr_adam: float, lr_gd: float, gd_eps: float, lr_plain: float,
         steps: int, log_every: int, init_scale: float, polar: str, stop_window: int | None, stop_rtol: float,
         stop_train: float, device, seed: int) -> dict:
    """Depth x optimizer (Adam, GD) x penalty (off, ratio) x m x seed.

    Penalty runs are restricted to ``penalty_depths``, at depth 1 to ``penalty_m`` (Adam) or
    ``gd_penalty_m`` (GD), and at depth > 1 to ``deep_penalty_m`` (both); deep runs (depth > 1) to
    ``deep_m`` (GD) or ``deep_adam_m`` (Adam). "GD" is plain gradient descent with the constant step ``lr_plain`` at depth
    1 (it fits the observed entries well within the budget) and, for deep models, the ``"ngd"``
    optimizer: the gradient direction with one global RMS-normalised step ``lr_gd / (sqrt(v) + gd_eps)``
    per run, Arora et al.'s GroupRMSprop (their eps is 1e-4), without which the small initialisation of
    a deep product would not move in any realistic number of steps.

    Returns ``runs`` (one row per run with its final measurements), ``hist`` (logged histories,
    aligned with ``runs``), ``truth`` (per seed: effective rank, ratio and singular values of W*),
    ``dof`` and the wall time.
    """
    _valid(Grid, locals())
    t0 = time.perf_counter()
    pb = _problems(n, rank, seeds, device, seed)
    runs = grid_runs(seeds=seeds, m=m, penalty_m=penalty_m, gd_penalty_m=gd_penalty_m, deep_m=deep_m,
                     deep_adam_m=deep_adam_m, depths=depths, penalty_depths=penalty_depths,
                     deep_penalty_m=deep_penalty_m, lam=lam, lr_adam=lr_adam, lr_gd=lr_gd, gd_eps=gd_eps,
                     lr_plain=lr_plain)
    table, hist = _sweep("grid", runs, device, **_train_kw(n, rank, seed, steps, log_every, init_scale, polar,
                                                            stop_window, stop_rtol, stop_train))
    final = hist.pop("final")
    return dict(runs=table, hist=hist, final=final, truth=_truth(pb), dof=pb.dof(),
                wall_s=time.perf_counter() - t0)


def final_matrices(grid_result: dict, rows) -> torch.Tensor:
    """The final end-to-end matrices (float32) of the grid's runs ``rows`` (row indices)."""
    return torch.as_tensor(grid_result["final"][np.asarray(rows, dtype=np.int64)])


def grid_runs(*, seeds: int, m: list[int], penalty_m: list[int], gd_penalty_m: list[int], deep_m: list[int],
              deep_adam_m: list[int], depths: list[int], penalty_depths: list[int], deep_penalty_m: list[int],
              lam: float, lr_adam: float, lr_gd: float, gd_eps: float, lr_plain: float, **_: Any) -> pd.DataFrame:
    """The run table of :func:`grid` (one row per run; extra keyword arguments, e.g. the training
    budget, are ignored so that ``grid_runs(**params["grid"])`` works)."""
    runs = engine.grid(depth=depths, optimizer=["adam", "gd"], lam=[0.0, lam], m=m, seed=range(seeds))
    adam = runs.optimizer == "adam"
    pen_m = np.where(runs.depth > 1, runs.m.isin(deep_penalty_m),
                     np.where(adam, runs.m.isin(penalty_m), runs.m.isin(gd_penalty_m)))
    deep = np.where(adam, runs.m.isin(deep_adam_m), runs.m.isin(deep_m))
    pen_ok = runs.depth.isin(penalty_depths) & pen_m
    runs = runs[((runs.lam == 0) | pen_ok) & ((runs.depth == 1) | deep)].reset_index(drop=True)
    runs["method"] = np.where(runs.optimizer == "adam", "adam", np.where(runs.depth == 1, "gd", "ngd"))
    runs["lr"] = np.where(runs.optimizer == "adam", lr_adam, np.where(runs.depth == 1, lr_plain, lr_gd))
    runs["eps"] = np.where(runs.method == "adam", 1e-8, np.where(runs.method == "ngd", gd_eps, 0.0))
    runs["beta1"] = 0.9
    runs["penalty"] = np.where(runs.lam > 0, "ratio", "none")
    return runs


def baseline(*, n: int, rank: int, seeds: int, m: list[int], device, seed: int,
             solver: str = "SCS", eps: float = 1e-5) -> pd.DataFrame:
    """Minimum-nuclear-norm completion of the problems of :func:`grid` (same seeds), via cvxpy."""
    _valid(Baseline, locals())
    check_choice("solver", solver, ("SCS", "CLARABEL"))
    pb = _problems(n, rank, seeds, device, seed)
    runs = engine.grid(m=m, seed=range(seeds))
    idx = torch.tensor(runs["seed"].to_numpy(dtype=np.int64), device=pb.target.device)
    mask = mc.observation_mask(pb.order[idx], torch.tensor(runs["m"].to_numpy(dtype=np.int64), device=idx.device), n)
    z = mc.nuclear_norm_min(pb.target[idx].cpu().numpy(), mask.cpu().numpy(), solver=solver, eps=eps)
    zt = torch.as_tensor(z, device=idx.device)
    s = torch.linalg.svdvals(zt)
    return engine.tidy(runs, test=mc.test_error(zt, pb.target[idx], mask),
                       erank=mc.effective_rank(s), s1=s[:, 0])


def ablations(*, n: int, rank: int, seeds: int, m: int, lam: float, lr: float, lams: list[float],
              lrs: list[float], nuclear_lams: list[float], steps: int, log_every: int, init_scale: float,
              polar: str, stop_window: int | None, stop_rtol: float, stop_train: float, device, seed: int,
              lr_steps: int | None = None) -> dict:
    """Depth 1 + Adam at ``m`` observations on the grid's problems and initialisations (seeds
    ``0..seeds-1``), variants of the reference (ratio penalty, ``lam``, ``lr``; the reference runs
    themselves are the :func:`grid` runs with the same seeds): the nuclear penalty (``nuclear_lams``),
    ``beta1 = 0``, the ratio with other weights (``lams``), other learning rates (``lrs``, with the
    budget ``lr_steps`` if given) and no penalty. Runaway runs are flagged, not raised: they are a
    result here. The column ``budget`` holds each run's step budget; the histories of runs with a
    smaller budget keep their last values to the end of ``steps``."""
    lr_steps = steps if lr_steps is None else lr_steps
    _valid(Ablations, locals())
    t0 = time.perf_counter()
    rows = []
    for s in range(seeds):
        rows.append(dict(variant="beta1=0", penalty="ratio", lam=lam, lr=lr, beta1=0.0, seed=s))
        rows += [dict(variant="lam sweep", penalty="ratio", lam=x, lr=lr, beta1=0.9, seed=s) for x in lams]
        rows += [dict(variant="lr sweep", penalty="ratio", lam=lam, lr=x, beta1=0.9, seed=s) for x in lrs]
        rows += [dict(variant="nuclear", penalty="nuclear", lam=x, lr=lr, beta1=0.9, seed=s)
                 for x in nuclear_lams]
        rows.append(dict(variant="no penalty", penalty="none", lam=0.0, lr=lr, beta1=0.9, seed=s))
    runs = pd.DataFrame(rows)
    runs["m"], runs["depth"], runs["method"], runs["optimizer"], runs["eps"] = m, 1, "adam", "adam", 1e-8
    runs["budget"] = np.where(runs.variant == "lr sweep", lr_steps, steps)
    kw = _train_kw(n, rank, seed, steps, log_every, init_scale, polar, stop_window, stop_rtol, stop_train)
    table, hist = _sweep_budgets("ablations", runs, device, on_divergence="flag", **kw)
    hist.pop("final")
    return dict(runs=table.reset_index(drop=True), hist=hist, truth=_truth(_problems(n, rank, seeds, device, seed)),
                wall_s=time.perf_counter() - t0)


def mechanism(*, n: int, rank: int, seeds: int, m: int, steps: int, log_every: int, init_scale: float,
              polar: str, lams: list[float], lr_adam: float, lr_gd: float, gd_eps: float, lr_plain: float,
              device, seed: int) -> dict:
    """The first ``steps`` steps of depth 1 + ratio penalty under Adam (``lr_adam``), plain GD
    (``lr_plain``) and the globally normalised GD (``"ngd"``, ``lr_gd``, ``gd_eps``), for each penalty
    weight in ``lams``, on the grid's problems and initialisations: mean movement of unobserved and
    observed entries over time."""
    _valid(Mechanism, locals())
    parts = []
    for opt, lr, eps in (("adam", lr_adam, 1e-8), ("gd", lr_plain, 0.0), ("ngd", lr_gd, gd_eps)):
        rows = engine.grid(optimizer=[opt], lam=lams, seed=range(seeds))
        rows["method"], rows["m"], rows["lr"], rows["eps"] = opt, m, lr, eps
        rows["beta1"], rows["penalty"], rows["depth"] = 0.9, "ratio", 1
        parts.append(rows)
    runs = pd.concat(parts, ignore_index=True)
    out = train_runs(runs, device, n=n, rank=rank, seed=seed, steps=steps, log_every=log_every,
                     init_scale=init_scale, polar=polar)
    table, hist = _collect(out)
    hist.pop("final")
    return dict(runs=table, hist=hist)


def normalized(*, n: int, rank: int, seeds: int, m: int, lam: float, lr: float, eps: list[float],
               lrs_plain: list[float], steps: int, log_every: int, init_scale: float, polar: str,
               stop_window: int | None, stop_rtol: float, stop_train: float, device, seed: int,
               plain_steps: list[int] | None = None) -> dict:
    """Depth 1 at ``m`` observations on the grid's problems and initialisations, the gradient-descent
    family: the ratio penalty under the globally normalised GD (``"ngd"``, learning rate ``lr``) with
    each ``eps`` in ``eps`` (``1e-8``, and Arora et al.'s ``1e-4``, with which the step becomes plain GD
    with rate ``lr/eps`` once the gradient is small), the same without the penalty (first ``eps``), and
    the penalty under plain GD with each step in ``lrs_plain`` (with the budgets ``plain_steps`` if
    given; column ``budget``). Does the penalty need Adam, or only a step whose size does not scale with
    the gradient?"""
    plain_steps = [steps] * len(lrs_plain) if plain_steps is None else list(plain_steps)
    _valid(Normalized, locals())
    rows = [dict(method="ngd", eps=e, penalty="ratio", lam=lam, lr=lr) for e in eps]
    rows += [dict(method="ngd", eps=eps[0], penalty="none", lam=0.0, lr=lr)]
    rows = [dict(r, budget=steps) for r in rows]
    rows += [dict(method="gd", eps=0.0, penalty="ratio", lam=lam, lr=x, budget=b) for x, b in zip(lrs_plain, plain_steps)]
    runs = pd.DataFrame([dict(r, seed=s) for r in rows for s in range(seeds)])
    runs["m"], runs["depth"], runs["beta1"] = m, 1, 0.9
    runs["optimizer"] = runs["method"]
    kw = _train_kw(n, rank, seed, steps, log_every, init_scale, polar, stop_window, stop_rtol, stop_train)
    table, hist = _sweep_budgets("normalized", runs, device, **kw)
    hist.pop("final")
    return dict(runs=table.reset_index(drop=True), hist=hist)


def cost_estimate(profile: str = "full", *, probe_steps: int = 200, workers: int = 2,
                  stop_fraction: dict[str, float] | None = None, device="cpu") -> pd.DataFrame:
    """Time ``probe_steps`` steps of every cell (study, depth, method, penalty) of a profile at its
    full size, with the batch one worker process gets (a cell's runs split over ``workers`` shards),
    and extrapolate: ``core_s`` is runs x step budget x CPU seconds per run-step (no early stopping),
    ``core_s_stopped`` the same times the share of the budget that cell used in a measured run
    (``stop_fraction``, keyed ``"<depth> <method> <penalty>"``; 1 where missing). The sum over cells
    divided by ``workers`` estimates the profile's training time on that many single-threaded
    processes (the nuclear-norm programs and the short mechanism study come on top)."""
    import math

    P = params(profile)
    g = P.grid
    cells = []
    runs = grid_runs(**dataclasses.asdict(g))
    for (d, meth, pen), x in runs.groupby(["depth", "method", "penalty"]):
        cells.append(("grid", int(d), meth, pen, len(x), g.steps))
    a, nz = P.ablations, P.normalized
    n_pen = a.seeds * (1 + len(a.lams) + len(a.nuclear_lams))
    cells += [("ablations", 1, "adam", "ratio", n_pen, a.steps),
              ("ablations", 1, "adam", "ratio", a.seeds * len(a.lrs), a.lr_steps),
              ("ablations", 1, "adam", "none", a.seeds, a.steps),
              ("normalized", 1, "ngd", "ratio", nz.seeds * len(nz.eps), nz.steps),
              ("normalized", 1, "ngd", "none", nz.seeds, nz.steps),
              *[("normalized", 1, "gd", "ratio", nz.seeds, b) for b in nz.plain_steps]]
    out = []
    for study, d, meth, pen, count, budget in cells:
        b = math.ceil(count / workers)
        lr = {"adam": g.lr_adam, "ngd": g.lr_gd, "gd": g.lr_plain}[meth]
        rows = pd.DataFrame([dict(seed=i % g.seeds, m=g.m[i % len(g.m)], depth=d, method=meth, lr=lr,
                                  lam=g.lam if pen != "none" else 0.0, penalty=pen, beta1=0.9, eps=g.gd_eps)
                             for i in range(b)])
        kw = dict(n=g.n, rank=g.rank, seed=0, init_scale=g.init_scale, polar=g.polar)
        train_runs(rows.iloc[:1], device, steps=4, log_every=2, **kw)  # warm-up
        c0 = time.process_time()
        train_runs(rows, device, steps=probe_steps, log_every=max(1, probe_steps // 2), **kw)
        per = (time.process_time() - c0) / (b * probe_steps)
        frac = (stop_fraction or {}).get(f"{d} {meth} {pen}", 1.0)
        out.append(dict(study=study, depth=d, method=meth, penalty=pen, runs=count, budget=budget,
                        ms_per_run_step=1e3 * per, core_s=count * budget * per,
                        stop_fraction=frac, core_s_stopped=count * budget * per * frac))
    return pd.DataFrame(out)


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (cached)."""
    P = params(ctx.profile)
    return {fn.__name__: ctx.study(fn, getattr(P, fn.__name__))
            for fn in (identities, grid, baseline, ablations, mechanism, normalized)}


# -- benchmark ------------------------------------------------------------------------------------
def bench_workload(runs: int, device, n: int = 50, polar: str = "svd", polar_iters: int = 15) -> engine.Workload:
    """One step of depth 1 + ratio penalty + Adam on ``runs`` problems of size ``n x n`` (float32).

    ``batched_step`` advances all runs as one tensor program (the penalty's polar factor from one
    batched float64 SVD, as training does, or ``polar_iters`` Newton-Schulz iterations with
    ``polar="newton-schulz"``; a batched Adam); ``loop_step`` advances the same runs one at a time with
    NumPy (exact SVD for the polar factor, and a NumPy Adam).
    """
    from ..optim import BatchedOptimizer

    dev = torch.device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(0)
    pb = mc.make_problems(n, 3, runs, generator=g, device=dev)
    m_obs = min(3 * mc.degrees_of_freedom(n, 3), n * n // 2)
    mask = mc.observation_mask(pb.order, m_obs, n, dtype=torch.float32)
    tgt = pb.target.to(torch.float32)
    w = [mc.init_layers(runs, n, 1, generator=g, device=dev)[0]]
    opt = BatchedOptimizer(w, method="adam", lr=5e-3)
    m = mask.sum((1, 2)).reshape(-1, 1, 1)

    def batched_step() -> None:
        grad = 2 * mask * (w[0] - tgt) / m + 1e-3 * mc.penalty_grad(w[0], True, method=polar, iters=polar_iters)
        opt.step([grad])

    w_np = w[0].cpu().numpy().copy()
    tgt_np, mask_np = tgt.cpu().numpy(), mask.cpu().numpy()
    m1 = np.zeros_like(w_np)
    v1 = np.zeros_like(w_np)
    state = {"t": 0}

    def loop_step() -> None:
        state["t"] += 1
        t = state["t"]
        for b in range(runs):
            x = w_np[b]
            u, s, vt = np.linalg.svd(x)
            fro = np.linalg.norm(s)
            gr = 2 * mask_np[b] * (x - tgt_np[b]) / mask_np[b].sum()
            gr += 1e-3 * (u @ vt - s.sum() / fro**2 * x) / fro
            m1[b] = 0.9 * m1[b] + 0.1 * gr
            v1[b] = 0.999 * v1[b] + 0.001 * gr * gr
            x -= 5e-3 * (m1[b] / (1 - 0.9**t)) / (np.sqrt(v1[b] / (1 - 0.999**t)) + 1e-8)

    # two n^3 products per Newton-Schulz iteration; an SVD is not a product, so no roofline for it
    flops = float((2 * polar_iters * 2 + 2) * n**3) if polar == "newton-schulz" else None
    return engine.Workload(name="ch04 depth-1 Adam + ratio penalty", runs=runs, device=str(dev),
                           batched_step=batched_step, loop_step=loop_step, flops_per_run_step=flops,
                           matmul_shape=(runs, n, n, n) if flops else None)


# -- illustration ----------------------------------------------------------------------------------
def example_spectrum(*, n: int, rank: int, noise: float, device, seed: int) -> np.ndarray:
    """Singular values of ``W* + noise * G`` (``G`` i.i.d. N(0, 1)) for the first ground truth of
    :func:`grid`: a low-rank signal plus a bulk, to illustrate the penalty's threshold."""
    check_positive("noise", noise)
    pb = _problems(n, rank, 1, device, seed)
    g = torch.Generator(device=device)
    g.manual_seed(1_000_003 * seed + 50)
    w = pb.target[0] + noise * torch.randn(n, n, generator=g, dtype=torch.float64, device=pb.target.device)
    return torch.linalg.svdvals(w).cpu().numpy()
