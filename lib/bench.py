"""Benchmark of the batched engine: ``python -m lib bench``.

For each chapter's main workload (``lib.studies.chNN.bench_workload``) and each number of runs, it
measures run-steps per second of the batched tensor program and of a straightforward per-run loop in
the same process, on the CPU and (when present) on CUDA; for compute-bound workloads it also reports
the achieved FLOP/s next to a plain batched matrix product of the same shapes on the same device
(the roofline). It prints a table and writes ``_build/bench/bench-<device>.json``.

Speed goals are checked here, by measurement, never by timed tests.
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .book import paths, provenance
from .engine import Workload

#: speed targets from the speed issue, reported next to the measurements
TARGETS = {
    ("cpu", "overhead"): "batched >= 30x the per-run loop at 256 runs",
    ("cpu", "compute"): "batched >= 50% of the batched-matmul roofline at 256 runs",
    ("cuda", "compute"): ">= 120,000 run-steps/s and >= 70% of the fp32 roofline at 400 runs (n = 100)",
}


@dataclass
class Row:
    workload: str
    device: str
    runs: int
    loop_run_steps_per_s: float | None
    batched_run_steps_per_s: float
    speedup: float | None
    achieved_flops: float | None = None
    roofline_flops: float | None = None
    roofline_fraction: float | None = None
    compiled_run_steps_per_s: float | None = None
    compile_s: float | None = None


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


def matmul_roofline(shape: tuple[int, int, int, int], device: str, dtype=torch.float32) -> float:
    """FLOP/s of ``torch.bmm`` on ``[b, n, k] x [b, k, m]`` on ``device`` (the achievable ceiling)."""
    b, n, k, m = shape
    x = torch.randn(b, n, k, device=device, dtype=dtype)
    y = torch.randn(b, k, m, device=device, dtype=dtype)
    calls = rate(lambda: torch.bmm(x, y), device)
    return calls * 2.0 * b * n * k * m


def compiled_step(w: Workload) -> Callable[[], None]:
    """``w.batched_step`` through ``torch.compile``: one fused C++/OpenMP kernel program on a CPU
    (needs a C++ compiler), and on CUDA the ``reduce-overhead`` mode, which replays the step from a
    CUDA graph -- the cure for launch-bound steps (few runs, small tensors)."""
    mode = "reduce-overhead" if w.device.startswith("cuda") else None
    return torch.compile(w.batched_step, mode=mode)  # automatic dynamic shapes: a step counter does not recompile


def measure(w: Workload, *, loop: bool = True, min_time: float = 0.3, compile: bool = False) -> Row:
    batched = rate(w.batched_step, w.device, min_time=min_time) * w.runs
    looped = rate(w.loop_step, w.device, min_time=min_time) * w.runs if loop else None
    row = Row(w.name, w.device, w.runs, looped, batched, batched / looped if looped else None)
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
        if w.matmul_shape:
            row.roofline_flops = matmul_roofline(w.matmul_shape, w.device)
            row.roofline_fraction = row.achieved_flops / row.roofline_flops
    return row


def workloads() -> dict[str, Callable[[int, str], Workload]]:
    from .book import chapters

    out = {}
    for stem in chapters.chapters():
        num = stem.split("-")[0]
        try:
            mod = importlib.import_module(f"lib.studies.ch{num}")
        except ImportError:
            continue
        if hasattr(mod, "bench_workload"):
            out[f"ch{num}"] = mod.bench_workload
    return out


def run(
    chapters: list[str] | None = None,
    devices: list[str] | None = None,
    runs: list[int] | None = None,
    *,
    min_time: float = 0.3,
    loop_max_runs: int = 256,
    compile: bool = False,
) -> list[Row]:
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for name, make in workloads().items():
        if chapters and name not in chapters:
            continue
        for dev in devices:
            for r in runs or ([1, 16, 256, 1024] if dev == "cuda" else [1, 16, 256]):
                w = make(r, dev)
                row = measure(w, loop=r <= loop_max_runs, min_time=min_time, compile=compile)
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(r: Row) -> str:
    def f(x, fmt="{:,.0f}"):
        return "-" if x is None else fmt.format(x)

    return (
        f"{r.workload:<14} {r.device:<5} {r.runs:>5}  loop {f(r.loop_run_steps_per_s):>12}  "
        f"batched {f(r.batched_run_steps_per_s):>13}  speedup {f(r.speedup, '{:.1f}x'):>8}  "
        f"GFLOP/s {f(r.achieved_flops and r.achieved_flops / 1e9, '{:.1f}'):>7} "
        f"of {f(r.roofline_flops and r.roofline_flops / 1e9, '{:.1f}'):>7} "
        f"({f(r.roofline_fraction and 100 * r.roofline_fraction, '{:.0f}%')})"
        + (f"  compiled {f(r.compiled_run_steps_per_s):>13} ({r.compile_s:.0f} s to compile)"
           if r.compiled_run_steps_per_s else "")
    )


def write(rows: list[Row], directory=None) -> None:
    """Write ``bench-<device>.json`` under ``_build/bench/`` (or ``directory``, e.g. ``benchmarks/``
    for results that the book's reproducibility appendix renders)."""
    from pathlib import Path

    out_dir = Path(directory) if directory else paths.build_dir() / "bench"
    by_device: dict[str, list[Row]] = {}
    for r in rows:
        by_device.setdefault(r.device.split(":")[0], []).append(r)
    for dev, rs in by_device.items():
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
                "targets": {f"{k[0]}/{k[1]}": v for k, v in TARGETS.items() if k[0] == dev},
                "rows": [asdict(r) for r in rs],
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
    for f in files:
        d = json.loads(f.read_text())
        out.append(
            f"**{d['device_name']}** ({d['machine']}), torch {d['torch']}, {d['threads']} threads, "
            f"commit `{d['commit']}`, {d.get('date', '')}. Targets: "
            + "; ".join(f"{k}: {v}" for k, v in d.get("targets", {}).items())
            + "\n"
        )
        out.append("| workload | runs | per-run loop (run-steps/s) | batched (run-steps/s) | speedup | GFLOP/s | roofline GFLOP/s | fraction | compiled (run-steps/s) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

        def f_(x, fmt):
            return "" if x is None else fmt.format(x)

        for r in d["rows"]:
            out.append(
                f"| {r['workload']} | {r['runs']} | {f_(r['loop_run_steps_per_s'], '{:,.0f}')} | "
                f"{f_(r['batched_run_steps_per_s'], '{:,.0f}')} | {f_(r['speedup'], '{:.1f}x')} | "
                f"{f_(r['achieved_flops'] and r['achieved_flops'] / 1e9, '{:.1f}')} | "
                f"{f_(r['roofline_flops'] and r['roofline_flops'] / 1e9, '{:.1f}')} | "
                f"{f_(r['roofline_fraction'] and 100 * r['roofline_fraction'], '{:.0f}%')} | "
                f"{f_(r.get('compiled_run_steps_per_s'), '{:,.0f}')} |"
            )
        out.append("")
    return "\n".join(out) + "\n"


def sweep_scaling(workers: tuple[int, ...] = (1, 2, 4), *, inits: int = 512, max_batch: int = 128) -> dict:
    """Wall time of one chapter study (chapter 2's random initialisations, ``2 * inits`` runs in shards
    of ``max_batch``) in-process and on a Dask ``LocalCluster`` of 1, 2 and 4 single-threaded workers;
    the first row is the in-process baseline, so the difference shows the shard overhead."""
    from distributed import Client, LocalCluster

    from .book import cache
    from .studies import ch02

    p = {**ch02.params("fast")["random"], "inits": inits, "max_batch": max_batch}
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
                from .book import sweep

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
        f"Measured on {d['machine']} at commit `{d['commit']}` ({d['date']}): the {d['study']} study, "
        f"{d['runs']} runs in {d['shards']} shards.\n",
        "| execution | wall time (s) | speed-up vs in-process | same numbers |",
        "|---|---:|---:|---|",
    ]
    for r in d["rows"]:
        out.append(f"| {r['mode']} | {r['wall_s']:.1f} | {base / r['wall_s']:.2f}x | {'yes' if r['identical'] else 'NO'} |")
    return "\n".join(out) + "\n"
