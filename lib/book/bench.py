"""Benchmarks: ``python -m lib bench [ch01 ... minnorm1d]``.

**Chapter workloads.**  For each chapter's main workload (``lib.studies.chNN.bench_workload``) and each
number of runs, it measures run-steps per second of the batched tensor program and of a
straightforward per-run loop in the same process (the second figure: *speedup over the per-run loop*),
on the CPU and (when present) on CUDA.

**Ceilings of the machine, not of the workload.**  Once per bench run, on the same device and thread
count, it measures the device's peak FLOP/s per dtype (a large square GEMM, ``gemm_n`` = 1024 on a
CPU, 8192 on CUDA) and its memory bandwidth (a streaming triad ``a = b + s c`` on ``2^24`` float32
elements per array on a CPU, ``2^28`` on CUDA; 3 arrays' bytes per call).  A workload with
``F`` FLOPs and ``Q`` bytes of compulsory traffic per run-step (its *arithmetic intensity*
``I = F / Q``) is then reported against the roofline ``min(peak[dtype], bandwidth * I)``
(the roofline model of Williams, Waterman & Patterson, ``williams2009roofline`` in references.bib).  ``Q`` is ``Workload.bytes_per_run_step`` where a
workload states it, else the operands and result of its dominant product (``matmul_shape``): a lower
bound on the traffic, so the ceiling is an upper bound.  A workload far below its roofline (under 10%)
is bound by neither arithmetic nor memory but by the launch/dispatch overhead of many small tensor
ops: the row counts the ops of one step (``ops_per_step``) and the time per op; ``torch.compile``
fusion (the compiled column, reported against the same ceilings) and fewer, larger ops (more runs per
program) are what close the gap.  A plain ``torch.bmm`` of the workload's own shapes is still timed
(``bmm_same_shape_*``): it is overhead-bound too, which is why it is no ceiling.

**The exact solver.**  ``minnorm1d`` rows time :func:`lib.minnorm1d.solve` (``l2``, free affine term)
on random data for ``n = 25, 100, 400, 1000`` with the fitted growth exponent of the time over
``n >= 100``, next to the generic baseline: one dense LP (HiGHS through ``scipy.optimize.linprog``) on
a fixed grid of the data points plus ``3 n`` uniform kink positions, whose certified relative gap is
computed by the same closed-form dual check.  A fixed grid's gap falls like ``h^2``, so the baseline
needs ``G sqrt(gap / target)`` columns for the target gap; since a dense LP's time is at least linear
in its columns, ``baseline_seconds_at_target`` is a lower bound on the baseline's time at equal
certified accuracy.

It prints a table and writes ``_build/bench/bench-<device>.json``.  Speed goals are checked here, by
measurement, never by timed tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..engine import Workload
from . import paths, provenance

#: speed targets from the speed issues, reported next to the measurements
TARGETS = {
    ("cpu", "overhead"): "batched >= 30x the per-run loop at 256 runs",
    ("cpu", "compute"): "batched >= 50% of a same-shape batched matmul (bmm_same_shape) at 256 runs",
    ("cuda", "compute"): ">= 120,000 run-steps/s and >= 70% of the fp32 roofline at 400 runs (n = 100)",
    ("cpu", "solver"): "minnorm1d.solve: n = 1000 random points certified (relative gap <= 1e-9) in <= 30 s "
                       "on one core; growth exponent <= 1.5 from n = 100 to 1000; at every n no slower than "
                       "the dense-LP baseline at equal certified accuracy",
}

#: optional modules a chapter's study module may need; a workload missing one is skipped by name
OPTIONAL_MODULES = ("cvxpy",)

#: rows below this fraction of their roofline get an explanation: launch/dispatch overhead when an op
#: takes at most LAUNCH_US microseconds (a few us is the dispatch cost of one small eager op), else the
#: memory traffic of unfused ops
FAR_BELOW = 0.10
LAUNCH_US = 20.0

#: the ceilings measured by the last :func:`run`, per device (written next to its rows by :func:`write`)
LAST_CEILINGS: dict = {}


@dataclass
class Ceilings:
    """Measured ceilings of one device at one thread count."""

    device: str
    threads: int
    peak_flops: dict[str, float]  # dtype name -> FLOP/s of a gemm_n x gemm_n GEMM
    bandwidth: float  # bytes/s of the streaming triad
    gemm_n: int
    triad_elements: int

    def roofline(self, dtype: str, intensity: float | None) -> tuple[float | None, str | None]:
        """``min(peak[dtype], bandwidth * intensity)`` and which term binds."""
        peak = self.peak_flops.get(dtype)
        if peak is None or intensity is None:
            return None, None
        mem = self.bandwidth * intensity
        return (peak, "compute") if peak <= mem else (mem, "memory")

    def describe(self) -> str:
        peaks = ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in self.peak_flops.items())
        return (f"{self.device} ({self.threads} threads): peak {peaks} ({self.gemm_n}^2 GEMM); "
                f"bandwidth {self.bandwidth / 1e9:.1f} GB/s (triad, {self.triad_elements:,} float32 per array)")


@dataclass
class Row:
    workload: str
    device: str
    runs: int
    loop_run_steps_per_s: float | None
    batched_run_steps_per_s: float
    speedup: float | None
    achieved_flops: float | None = None
    roofline_flops: float | None = None  # min(peak[dtype], bandwidth * intensity), measured on this device
    roofline_fraction: float | None = None
    compiled_run_steps_per_s: float | None = None
    compile_s: float | None = None
    dtype: str | None = None
    intensity: float | None = None  # FLOPs per byte per run-step
    bound: str | None = None  # which ceiling binds: "compute" or "memory"
    peak_flops: float | None = None
    bandwidth: float | None = None
    compiled_fraction: float | None = None
    bmm_same_shape_flops: float | None = None
    bmm_same_shape_fraction: float | None = None
    ops_per_step: int | None = None
    us_per_op: float | None = None
    note: str = ""


@dataclass
class SolverRow:
    workload: str
    device: str
    n: int
    seconds: float
    rounds: int
    lps: int
    rel_gap: float
    converged: bool
    newton: bool
    baseline_seconds: float
    baseline_columns: int
    baseline_rel_gap: float
    baseline_columns_at_target: float
    baseline_seconds_at_target: float  # a lower bound: time at least linear in the columns
    growth_exponent: float | None = None
    peak_flops: float | None = None
    bandwidth: float | None = None
    note: str = field(default="sparse simplex + Newton: latency-bound pivots and sparse LU, not a dense "
                              "kernel, so no FLOP roofline applies; the machine's ceilings are stated")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(step: Callable[[], None], device: str, *, min_time: float = 0.3, warmup: int = 2) -> float:
    """Calls of ``step`` per second, timed over at least ``min_time`` seconds after a warm-up."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n % 4 == 0 or n < 4:
            _sync(device)
            dt = time.perf_counter() - t0
            if dt >= min_time:
                return n / dt


# -- ceilings ---------------------------------------------------------------------------------------
def measure_ceilings(device: str, *, min_time: float = 0.3, gemm_n: int | None = None,
                     triad_elements: int | None = None) -> Ceilings:
    """Peak FLOP/s (``torch.mm`` of two ``gemm_n x gemm_n`` matrices: ``2 n^3`` FLOPs, float32 and
    float64) and bandwidth (``torch.add(b, c, alpha=s, out=a)``: ``3 * 4 * N`` bytes) of ``device``
    at the current thread count."""
    cuda = device.startswith("cuda")
    gemm_n = gemm_n or (8192 if cuda else 1024)
    triad_elements = triad_elements or (2**28 if cuda else 2**24)
    peaks = {}
    for dtype in (torch.float32, torch.float64):
        n = gemm_n if dtype == torch.float32 or cuda is False else gemm_n // 2
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        peaks[str(dtype).removeprefix("torch.")] = rate(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), device,
                                                        min_time=min_time) * 2.0 * n**3
    x = torch.rand(triad_elements, device=device)
    y = torch.rand(triad_elements, device=device)
    z = torch.empty(triad_elements, device=device)
    bw = rate(lambda: torch.add(x, y, alpha=2.0, out=z), device, min_time=min_time) * 3 * 4 * triad_elements
    return Ceilings(device, torch.get_num_threads(), peaks, bw, gemm_n, triad_elements)


def _tensors_in(obj, depth: int = 0):
    """Tensors reachable from a closure variable (tensors, lists/tuples/dicts of them, objects with
    tensor attributes), two levels deep."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 2:
        if isinstance(obj, (list, tuple)):
            items = obj
        elif isinstance(obj, dict):
            items = obj.values()
        elif hasattr(obj, "__dict__") and not inspect.isroutine(obj) and not inspect.ismodule(obj):
            items = vars(obj).values()
        else:
            items = ()
        for v in items:
            yield from _tensors_in(v, depth + 1)


def workload_dtype(w: Workload) -> str:
    """``w.dtype`` if the workload states it, else the floating dtype holding most elements among the
    tensors its batched step closes over (float32 if none is found)."""
    d = getattr(w, "dtype", None)
    if d is not None:
        return str(d).removeprefix("torch.")
    sizes: dict[str, int] = {}
    for v in inspect.getclosurevars(w.batched_step).nonlocals.values():
        for t in _tensors_in(v):
            if t.is_floating_point():
                key = str(t.dtype).removeprefix("torch.")
                sizes[key] = sizes.get(key, 0) + t.numel()
    return max(sizes, key=sizes.get) if sizes else "float32"


def workload_bytes(w: Workload, dtype: str) -> float | None:
    """Compulsory bytes per run-step: ``w.bytes_per_run_step`` if stated, else the operands and result of
    the dominant product ``[n, k] x [k, m]`` of ``matmul_shape``: ``itemsize (n k + k m + n m)``."""
    q = getattr(w, "bytes_per_run_step", None)
    if q:
        return float(q)
    if not w.matmul_shape:
        return None
    _, n, k, m = w.matmul_shape
    return float(torch.empty(0, dtype=getattr(torch, dtype)).element_size() * (n * k + k * m + n * m))


def count_ops(step: Callable[[], None]) -> int:
    """Number of ATen operators one call of ``step`` dispatches (the launches a fused program saves)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    with _Count() as c:
        step()
    return c.n


def matmul_rate(shape: tuple[int, int, int, int], device: str, dtype=torch.float32, *, min_time: float = 0.3) -> float:
    """FLOP/s of ``torch.bmm`` on ``[b, n, k] x [b, k, m]`` on ``device`` (the workload's own shapes:
    overhead-bound for small shapes, so context, not a ceiling)."""
    b, n, k, m = shape
    x = torch.randn(b, n, k, device=device, dtype=dtype)
    y = torch.randn(b, k, m, device=device, dtype=dtype)
    calls = rate(lambda: torch.bmm(x, y), device, min_time=min_time)
    return calls * 2.0 * b * n * k * m


def compiled_step(w: Workload) -> Callable[[], None]:
    """``w.batched_step`` through ``torch.compile``: one fused C++/OpenMP kernel program on a CPU
    (needs a C++ compiler), and on CUDA the ``reduce-overhead`` mode, which replays the step from a
    CUDA graph -- the cure for launch-bound steps (few runs, small tensors)."""
    mode = "reduce-overhead" if w.device.startswith("cuda") else None
    return torch.compile(w.batched_step, mode=mode)  # automatic dynamic shapes: a step counter does not recompile


def measure(w: Workload, *, loop: bool = True, min_time: float = 0.3, compile: bool = False,
            ceilings: Ceilings | None = None) -> Row:
    """One row: loop and batched rates, and (for workloads with a FLOP count) the fraction of the
    machine's roofline; ``ceilings`` are measured here if not given."""
    ceilings = ceilings or measure_ceilings(w.device, min_time=min_time)
    batched = rate(w.batched_step, w.device, min_time=min_time) * w.runs
    looped = rate(w.loop_step, w.device, min_time=min_time) * w.runs if loop else None
    row = Row(w.name, w.device, w.runs, looped, batched, batched / looped if looped else None)
    row.dtype = workload_dtype(w)
    row.peak_flops, row.bandwidth = ceilings.peak_flops.get(row.dtype), ceilings.bandwidth
    row.ops_per_step = count_ops(w.batched_step)
    row.us_per_op = 1e6 * w.runs / batched / max(row.ops_per_step, 1)
    if compile:
        try:
            step = compiled_step(w)
            t0 = time.perf_counter()
            step()  # the first call compiles
            _sync(w.device)
            row.compile_s = time.perf_counter() - t0
            row.compiled_run_steps_per_s = rate(step, w.device, min_time=min_time, warmup=3) * w.runs
        except Exception as exc:  # noqa: BLE001 -- e.g. no C++ compiler: report it, keep the eager rates
            print(f"{w.name}: torch.compile failed ({type(exc).__name__}: {exc}); compiled column left empty")
    if w.flops_per_run_step:
        row.achieved_flops = batched * w.flops_per_run_step
        q = workload_bytes(w, row.dtype)
        row.intensity = w.flops_per_run_step / q if q else None
        row.roofline_flops, row.bound = ceilings.roofline(row.dtype, row.intensity)
        if row.roofline_flops:
            row.roofline_fraction = row.achieved_flops / row.roofline_flops
            if row.compiled_run_steps_per_s:
                row.compiled_fraction = row.compiled_run_steps_per_s * w.flops_per_run_step / row.roofline_flops
        if w.matmul_shape:
            row.bmm_same_shape_flops = matmul_rate(w.matmul_shape, w.device, getattr(torch, row.dtype),
                                                   min_time=min_time)
            row.bmm_same_shape_fraction = row.achieved_flops / row.bmm_same_shape_flops
    if row.roofline_fraction is None:
        row.note = (f"no FLOP count: fraction of the ceilings (stated) not computed; {row.ops_per_step} tensor ops "
                    f"per step at {row.us_per_op:.1f} us each")
    elif row.roofline_fraction < FAR_BELOW and row.us_per_op <= LAUNCH_US:
        row.note = (f"{row.ops_per_step} tensor ops per step at {row.us_per_op:.1f} us each: launch/dispatch "
                    "overhead of many small ops, not arithmetic or memory traffic, bounds this step; "
                    "torch.compile fusion (compiled column) and fewer, larger ops (more runs per program) close the gap")
    elif row.roofline_fraction < FAR_BELOW:
        row.note = (f"{row.ops_per_step} unfused tensor ops per step at {row.us_per_op:.1f} us each: every op "
                    "makes its own pass over [runs x ...] temporaries in memory, far more traffic than the "
                    "one fused pass the intensity assumes; torch.compile fusion (compiled column) and fewer, "
                    "larger ops close the gap")
    return row


def workloads() -> dict[str, Callable[[int, str], Workload]]:
    """``chNN -> bench_workload`` for every chapter whose study module has one.  A study module that
    needs an optional module (:data:`OPTIONAL_MODULES`) that is not installed is skipped with a message
    naming it; any other import error is raised."""
    from . import chapters

    out = {}
    for stem in chapters.chapters():
        num = stem.split("-")[0]
        name = f"lib.studies.ch{num}"
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # no study module: no workload
                continue
            if exc.name in OPTIONAL_MODULES:
                print(f"ch{num}: bench workload skipped: needs the optional module {exc.name!r}")
                continue
            raise
        if hasattr(mod, "bench_workload"):
            out[f"ch{num}"] = mod.bench_workload
    return out


# -- the exact solver -----------------------------------------------------------------------------
def solver_data(n: int, seed: int = 19) -> tuple[np.ndarray, np.ndarray]:
    """Random data: ``x ~ U(-3, 3)`` (unsorted), ``y ~ N(0, 1)``, seeded by ``(seed, n)``."""
    rng = np.random.default_rng([seed, n])
    return rng.uniform(-3.0, 3.0, n), rng.normal(size=n)


def dense_lp_baseline(x: np.ndarray, y: np.ndarray, grid_factor: int = 3) -> tuple[float, int, float, float]:
    """The generic baseline: one dense LP over the kink grid ``x`` plus ``grid_factor * n`` uniform
    positions on the hull (free affine term, ``l2`` weight), HiGHS through ``scipy.optimize.linprog``.
    Returns ``(seconds, columns, certified relative gap, value)``; the gap uses the LP's dual, checked on
    the continuum in closed form (:mod:`lib.minnorm1d`)."""
    from scipy.optimize import linprog

    from .. import minnorm1d as mn

    o = np.argsort(x)
    x, y = x[o], y[o]
    n = x.size
    t0 = time.perf_counter()
    P = np.union1d(x, np.linspace(x[0], x[-1], grid_factor * n))
    R = np.maximum(x[:, None] - P[None, :], 0.0)
    w = mn.weight(P, "l2")
    res = linprog(np.concatenate([w, w, [0.0, 0.0]]), A_eq=np.hstack([R, -R, x[:, None], np.ones((n, 1))]),
                  b_eq=y, bounds=[(0, None)] * (2 * P.size) + [(None, None)] * 2, method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    seconds = time.perf_counter() - t0
    if res.status != 0:
        return seconds, int(P.size), float("nan"), float("nan")
    mu = np.asarray(res.eqlin.marginals, float)
    prob = mn._Problem(x, y, (), "l2", True, 1e4 * max(1.0, float(np.abs(x).max())))
    # the dual function at the data points, g(x_k) = sum_i mu_i (x_i - x_k)_+, is the banded LP's dual
    s1, s2 = np.cumsum(mu[::-1])[::-1], np.cumsum((mu * x)[::-1])[::-1]
    g = s2 - x * s1
    cert = mn._certify(prob, {}, 0.0, 0.0, np.concatenate([[0.0], g[:-1]]))
    return seconds, int(P.size), float((res.fun - cert["bound"]) / res.fun), float(res.fun)


def solver_rows(ns: tuple[int, ...] = (25, 100, 400, 1000), *, ceilings: Ceilings | None = None,
                target: float = 1e-9, repeats: int = 3) -> list[SolverRow]:
    """Time :func:`lib.minnorm1d.solve` (best of ``repeats`` below ``n = 400``, one solve above) and the
    dense-LP baseline at each ``n``; the growth exponent is the least-squares slope of
    ``log seconds`` against ``log n`` over ``n >= 100``."""
    from .. import minnorm1d as mn

    rows = []
    for n in ns:
        x, y = solver_data(n)
        best, sol = np.inf, None
        for _ in range(repeats if n < 400 else 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", mn.NotConvergedWarning)  # reported in the row instead
                sol = mn.solve(x, y, penalty="l2", affine=True, gap_tol=target)
            best = min(best, time.perf_counter() - t0)
        bs, bcols, bgap, _ = dense_lp_baseline(x, y)
        need = bcols * np.sqrt(max(bgap, target) / target)
        rows.append(SolverRow(
            workload="minnorm1d.solve (l2, free affine term)", device="cpu", n=n, seconds=best,
            rounds=sol.iterations, lps=sol.info["lps"], rel_gap=sol.info["rel_gap"], converged=sol.info["converged"],
            newton=sol.info["newton"], baseline_seconds=bs, baseline_columns=bcols, baseline_rel_gap=bgap,
            baseline_columns_at_target=float(need), baseline_seconds_at_target=float(bs * need / bcols),
            peak_flops=ceilings.peak_flops.get("float64") if ceilings else None,
            bandwidth=ceilings.bandwidth if ceilings else None))
        print(format_solver_row(rows[-1]), flush=True)
    big = [r for r in rows if r.n >= 100]
    if len(big) >= 2:
        slope = float(np.polyfit(np.log([r.n for r in big]), np.log([r.seconds for r in big]), 1)[0])
        for r in rows:
            r.growth_exponent = slope
        print(f"minnorm1d.solve: growth exponent {slope:.2f} over n = {big[0].n} .. {big[-1].n}", flush=True)
    return rows


# -- the run --------------------------------------------------------------------------------------
def run(
    chapters: list[str] | None = None,
    devices: list[str] | None = None,
    runs: list[int] | None = None,
    *,
    min_time: float = 0.3,
    loop_max_runs: int = 256,
    compile: bool = False,
    solver_n: tuple[int, ...] = (25, 100, 400, 1000),
) -> list[Row | SolverRow]:
    """Every chapter workload (or those named in ``chapters``) and, unless ``chapters`` names only
    chapters, the ``minnorm1d`` solver rows; ceilings are measured once per device."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    chosen = {k: v for k, v in workloads().items() if not chapters or k in chapters}
    want_solver = not chapters or "minnorm1d" in chapters
    needed = sorted(set(devices if chosen else []) | ({"cpu"} if want_solver else set()))
    ceilings = {}
    for dev in needed:
        ceilings[dev] = measure_ceilings(dev, min_time=min_time)
        print("ceilings: " + ceilings[dev].describe(), flush=True)
    rows: list[Row | SolverRow] = []
    for make in chosen.values():
        for dev in devices:
            for r in runs or ([1, 16, 256, 1024] if dev == "cuda" else [1, 16, 256]):
                w = make(r, dev)
                row = measure(w, loop=r <= loop_max_runs, min_time=min_time, compile=compile, ceilings=ceilings[dev])
                rows.append(row)
                print(format_row(row), flush=True)
    if want_solver:
        rows += solver_rows(solver_n, ceilings=ceilings["cpu"])
    LAST_CEILINGS.clear()
    LAST_CEILINGS.update(ceilings)
    return rows


def _f(x, fmt="{:,.0f}", empty="-"):
    return empty if x is None else fmt.format(x)


def format_row(r: Row) -> str:
    return (
        f"{r.workload:<14} {r.device:<5} {r.runs:>5}  loop {_f(r.loop_run_steps_per_s):>12}  "
        f"batched {_f(r.batched_run_steps_per_s):>13}  speedup {_f(r.speedup, '{:.1f}x'):>8}  "
        f"GFLOP/s {_f(r.achieved_flops and r.achieved_flops / 1e9, '{:.2f}'):>7} "
        f"of {_f(r.roofline_flops and r.roofline_flops / 1e9, '{:.1f}'):>6} roofline "
        f"({_f(r.roofline_fraction and 100 * r.roofline_fraction, '{:.1f}%')}, {r.dtype}, "
        f"I = {_f(r.intensity, '{:.2f}')} FLOP/B, {r.bound or 'no FLOP count'})"
        + (f"  compiled {_f(r.compiled_run_steps_per_s):>13} ({_f(r.compiled_fraction and 100 * r.compiled_fraction, '{:.1f}%')}"
           f" of roofline, {r.compile_s:.0f} s to compile)" if r.compiled_run_steps_per_s else "")
        + (f"\n    {r.note}" if r.note else "")
    )


def format_solver_row(r: SolverRow) -> str:
    return (f"minnorm1d n={r.n:>5}  {r.seconds:8.3f} s ({r.rounds} rounds, {r.lps} LPs, rel gap {r.rel_gap:.1e}, "
            f"newton {'yes' if r.newton else 'no'})  dense LP {r.baseline_seconds:8.3f} s on {r.baseline_columns} "
            f"columns (rel gap {r.baseline_rel_gap:.1e}; >= {r.baseline_seconds_at_target:.3g} s for "
            f"{r.baseline_columns_at_target:.3g} columns at the target gap)")


def write(rows: list, directory=None) -> None:
    """Write ``bench-<device>.json`` under ``_build/bench/`` (or ``directory``, e.g. ``benchmarks/``
    for results that the book's reproducibility appendix renders)."""
    from pathlib import Path

    out_dir = Path(directory) if directory else paths.build_dir() / "bench"
    by_device: dict[str, list] = {}
    for r in rows:
        by_device.setdefault(r.device.split(":")[0], []).append(r)
    ceil = LAST_CEILINGS
    for dev, rs in by_device.items():
        c = ceil.get(dev)
        paths.atomic_write_json(
            out_dir / f"bench-{dev}.json",
            {
                "device": dev,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "date": time.strftime("%Y-%m-%d"),
                "device_name": provenance.device_description(torch.device(dev)),
                "commit": provenance.git_commit(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "ceilings": asdict(c) if c else None,
                "targets": {f"{k[0]}/{k[1]}": v for k, v in TARGETS.items() if k[0] == dev},
                "rows": [asdict(r) for r in rs if isinstance(r, Row)],
                "solver": [asdict(r) for r in rs if isinstance(r, SolverRow)],
            },
        )


def markdown(directory) -> str:
    """Tables of the benchmark results stored in ``directory`` (for the reproducibility appendix)."""
    import json
    from pathlib import Path

    files = sorted(Path(directory).glob("bench-*.json"))
    if not files:
        return "No benchmark results are stored with this version of the book.\n"
    out = []

    def f_(x, fmt):
        return "" if x is None else fmt.format(x)

    for f in files:
        d = json.loads(f.read_text())
        c = d.get("ceilings") or {}
        peaks = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in (c.get("peak_flops") or {}).items())
        out.append(
            f"**{d['device_name']}** ({d['machine']}), torch {d['torch']}, {d['threads']} threads, "
            f"commit `{d['commit']}`, {d.get('date', '')}. "
            + (f"Measured ceilings: peak GFLOP/s {peaks}; bandwidth {c['bandwidth'] / 1e9:.1f} GB/s. " if c else "")
            + "Targets: " + "; ".join(f"{k}: {v}" for k, v in d.get("targets", {}).items()) + "\n"
        )
        if d.get("rows"):
            out.append("| workload | runs | per-run loop (run-steps/s) | batched (run-steps/s) | speedup | GFLOP/s | "
                       "intensity (FLOP/B) | roofline GFLOP/s | fraction | compiled (run-steps/s) | compiled fraction | ops/step |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in d["rows"]:
                out.append(
                    f"| {r['workload']} | {r['runs']} | {f_(r['loop_run_steps_per_s'], '{:,.0f}')} | "
                    f"{f_(r['batched_run_steps_per_s'], '{:,.0f}')} | {f_(r['speedup'], '{:.1f}x')} | "
                    f"{f_(r['achieved_flops'] and r['achieved_flops'] / 1e9, '{:.2f}')} | "
                    f"{f_(r.get('intensity'), '{:.2f}')} | "
                    f"{f_(r['roofline_flops'] and r['roofline_flops'] / 1e9, '{:.1f}')} | "
                    f"{f_(r['roofline_fraction'] and 100 * r['roofline_fraction'], '{:.1f}%')} | "
                    f"{f_(r.get('compiled_run_steps_per_s'), '{:,.0f}')} | "
                    f"{f_(r.get('compiled_fraction') and 100 * r['compiled_fraction'], '{:.1f}%')} | "
                    f"{f_(r.get('ops_per_step'), '{}')} |"
                )
            out.append("")
            out.append("Roofline: min(peak, bandwidth x intensity) of this machine. Rows far below it are "
                       "bound by the launch overhead of many small tensor ops (ops/step); torch.compile "
                       "fusion and fewer, larger ops close the gap.\n")
        if d.get("solver"):
            s = d["solver"]
            out.append("| n | minnorm1d.solve (s) | rounds | certified rel. gap | dense LP (s) | columns | "
                       "dense LP rel. gap | dense LP at equal gap (s, lower bound) |")
            out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in s:
                out.append(f"| {r['n']} | {r['seconds']:.3f} | {r['rounds']} | {r['rel_gap']:.1e} | "
                           f"{r['baseline_seconds']:.3f} | {r['baseline_columns']} | {r['baseline_rel_gap']:.1e} | "
                           f"{r['baseline_seconds_at_target']:.3g} |")
            if s[0].get("growth_exponent") is not None:
                out.append(f"\nGrowth exponent of the solve time over n >= 100: {s[0]['growth_exponent']:.2f}.\n")
    return "\n".join(out) + "\n"


def sweep_scaling(workers: tuple[int, ...] = (1, 2, 4), *, inits: int = 512, max_batch: int = 128) -> dict:
    """Wall time of one chapter study (chapter 2's random initialisations, ``2 * inits`` runs in shards
    of ``max_batch``) in-process and on a Dask ``LocalCluster`` of 1, 2 and 4 single-threaded workers;
    the first row is the in-process baseline, so the difference shows the shard overhead."""
    from distributed import Client, LocalCluster

    from ..studies import ch02
    from . import cache

    p = {**dataclasses.asdict(ch02.params("fast").random_relu), "inits": inits, "max_batch": max_batch}
    rows = []
    os.environ["IB_CACHE"] = "0"  # measure computing, not reading the shard cache
    try:
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        ref = ch02.random_relu(**p, device="cpu", seed=0)
        rows.append({"mode": "in-process", "workers": 0, "wall_s": time.perf_counter() - t0, "identical": True})
        for n in workers:
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as lc, Client(lc) as client:
                client.run(lambda: __import__("lib.studies.ch02"))  # warm imports: measure the sweep
                from . import sweep

                runs = ch02.grid(width=p["widths"], init=range(p["inits"]))
                import functools

                shard = functools.partial(
                    ch02.random_relu_shard, delta=p["delta"], mmax=max(p["widths"]), init_scale=p["init_scale"],
                    steps=p["steps"], eta=p["eta"], eta_min=p["eta_min"], temp=p["temp"], seed=0,
                )
                t0 = time.perf_counter()
                got = sweep.run("ch02-random-relu", shard, runs, max_batch=max_batch, client=client, cache=False)
                wall = time.perf_counter() - t0
                same = bool((got["gamma"].to_numpy() == ref["gamma"].to_numpy()).all())
                rows.append({"mode": f"LocalCluster({n})", "workers": n, "wall_s": wall, "identical": same})
                print(rows[-1], flush=True)
    finally:
        os.environ.pop("IB_CACHE", None)
        del cache
    return {
        "study": "ch02 random initialisations",
        "runs": 2 * inits,
        "shards": -(-2 * inits // max_batch),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": provenance.git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }


def scaling_markdown(directory) -> str:
    import json
    from pathlib import Path

    f = Path(directory) / "sweep-scaling.json"
    if not f.exists():
        return ""
    d = json.loads(f.read_text())
    base = d["rows"][0]["wall_s"]
    out = [
        (f"Measured on {d['machine']} at commit `{d['commit']}` ({d['date']}): the {d['study']} study, "
         f"{d['runs']} runs in {d['shards']} shards.\n"),
        "| execution | wall time (s) | speed-up vs in-process | same numbers |",
        "|---|---:|---:|---|",
    ]
    for r in d["rows"]:
        out.append(f"| {r['mode']} | {r['wall_s']:.1f} | {base / r['wall_s']:.2f}x | {'yes' if r['identical'] else 'NO'} |")
    return "\n".join(out) + "\n"
