"""The benchmark machinery (speed itself is measured by `python -m lib bench`, never asserted by a timed
test): ceilings and rooflines, equal work in the loop and batched steps, optional modules named, the
solver rows."""

import importlib
import inspect
import json

import numpy as np
import pytest
import torch

from lib.book import bench
from lib.engine import Workload

#: small ceilings for unit tests (the bench itself uses a 1024^2 GEMM and 2^24-element triad)
SMALL = {"gemm_n": 96, "triad_elements": 2**16}


def _toy(runs, device="cpu"):
    x = torch.ones(runs, 8, 8)

    def batched():
        torch.bmm(x, x)

    def loop():
        for r in range(runs):
            x[r] @ x[r]

    return Workload("toy", runs, device, batched, loop, flops_per_run_step=2 * 8**3, matmul_shape=(runs, 8, 8, 8))


def test_ceilings_are_measured():
    c = bench.measure_ceilings("cpu", min_time=0.02, **SMALL)
    assert set(c.peak_flops) == {"float32", "float64"} and all(v > 0 for v in c.peak_flops.values())
    assert c.bandwidth > 0 and c.threads == torch.get_num_threads()
    assert "GFLOP/s" in c.describe() and "GB/s" in c.describe()


def test_roofline_is_min_of_peak_and_bandwidth_times_intensity():
    c = bench.Ceilings("cpu", 1, {"float32": 80e9, "float64": 40e9}, 20e9, 1024, 2**24)
    assert c.roofline("float64", 1.0) == (20e9, "memory")  # 20 GB/s x 1 FLOP/B < 40 GFLOP/s
    assert c.roofline("float64", 4.0) == (40e9, "compute")  # 80 GFLOP/s from memory > the peak
    assert c.roofline("float32", 3.0) == (60e9, "memory")
    assert c.roofline("float64", None) == (None, None)


def test_measure_reports_every_field(tmp_build):
    ceil = bench.measure_ceilings("cpu", min_time=0.02, **SMALL)
    row = bench.measure(_toy(4), min_time=0.02, ceilings=ceil)
    assert row.batched_run_steps_per_s > 0 and row.loop_run_steps_per_s > 0
    assert row.speedup == row.batched_run_steps_per_s / row.loop_run_steps_per_s
    assert row.dtype == "float32" and row.peak_flops == ceil.peak_flops["float32"]
    # intensity of one 8x8x8 product in float32: 1024 FLOPs / (4 B x 3 x 64)
    assert row.intensity == pytest.approx(1024 / (4 * 3 * 64))
    assert row.roofline_flops == pytest.approx(min(ceil.peak_flops["float32"], ceil.bandwidth * row.intensity))
    assert row.roofline_fraction == pytest.approx(row.achieved_flops / row.roofline_flops)
    assert row.bmm_same_shape_flops > 0 and row.ops_per_step >= 1
    if row.roofline_fraction < bench.FAR_BELOW:
        assert "torch.compile" in row.note
    bench.write([row])
    d = json.loads((tmp_build / "bench" / "bench-cpu.json").read_text())
    assert d["rows"][0]["intensity"] == pytest.approx(row.intensity)
    assert "toy" in bench.format_row(row)


def test_workload_dtype_and_ops_are_read_off_the_step():
    x = torch.ones(3, 4, dtype=torch.float64)
    w = Workload("w", 3, "cpu", lambda: torch.mul(x, 2.0).add_(1.0), lambda: None)
    assert bench.workload_dtype(w) == "float64"
    assert bench.count_ops(w.batched_step) == 2


def test_every_chapter_workload_runs_one_step():
    for name, make in bench.workloads().items():
        w = make(2, "cpu")
        assert w.runs == 2 and w.device == "cpu", name
        w.batched_step()
        w.loop_step()


# -- equal work: the loop and the batched step compute the same state --------------------------------
def _nl(f):
    return inspect.getclosurevars(f).nonlocals


def _np(t):
    return t.detach().cpu().numpy()


#: chapter -> (sync initial states, batched state, loop state, tolerance with its error estimate)
ADAPTERS = {
    # float64, same operations in another order: a few ulps
    "ch01": (None, lambda w: _np(_nl(w.batched_step)["state"]["w"]), lambda w: np.stack(_nl(w.loop_step)["wn"]), 1e-13),
    "ch02": (None, lambda w: _np(_nl(w.batched_step)["state"]["theta"]), lambda w: np.stack(_nl(w.loop_step)["thetas"]), 1e-13),
    "ch03": (None,
             lambda w: np.concatenate([_np(t).reshape(w.runs, -1) for t in _nl(w.batched_step)["tr"].params()], 1),
             lambda w: np.concatenate([np.stack(_nl(w.loop_step)["th"]).reshape(w.runs, -1),
                                       np.stack(_nl(w.loop_step)["ph"])], 1), 1e-12),
    # float32 weights |w| < 1 (rounding 6e-8) and Adam's first step lr g / |g| = 5e-3 sign(g): the two
    # gradients (batched float64 SVD, NumPy float32 SVD) can only differ in rounding
    "ch04": (None, lambda w: _np(_nl(w.batched_step)["w"][0]), lambda w: _nl(w.loop_step)["w_np"], 1e-6),
    "ch05": (None,
             lambda w: np.concatenate([_np(_nl(w.batched_step)["net"].a), _np(_nl(w.batched_step)["net"].w)[..., 0],
                                       _np(_nl(w.batched_step)["net"].b)], 1),
             lambda w: np.stack([np.concatenate(p) for p in _nl(w.loop_step)["P"]]), 1e-13),
}

@pytest.mark.parametrize("name", list(bench.workloads()))
def test_loop_and_batched_steps_compute_the_same_state(name):
    assert name in ADAPTERS, f"add an adapter for {name}'s bench workload to this test"
    sync, batched_state, loop_state, atol = ADAPTERS[name]
    w = bench.workloads()[name](3, "cpu")
    if sync:
        sync(w)
    before = np.array(batched_state(w), copy=True)
    assert np.abs(before - loop_state(w)).max() <= atol  # the same initial state
    w.batched_step()
    w.loop_step()
    after = batched_state(w)
    assert np.abs(after - before).max() > 10 * atol  # the step does something
    assert np.abs(after - loop_state(w)).max() <= atol


def test_workloads_name_a_missing_optional_module(monkeypatch, capsys):
    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "lib.studies.ch04":
            raise ModuleNotFoundError("No module named 'cvxpy'", name="cvxpy")
        return real(name, *a, **k)

    monkeypatch.setattr(bench.importlib, "import_module", fake)
    got = bench.workloads()
    assert "ch04" not in got and "ch05" in got
    assert "needs the optional module 'cvxpy'" in capsys.readouterr().out

    def broken(name, *a, **k):
        if name == "lib.studies.ch04":
            raise ModuleNotFoundError("No module named 'scipy.nothere'", name="scipy.nothere")
        return real(name, *a, **k)

    monkeypatch.setattr(bench.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="nothere"):
        bench.workloads()


def test_compiled_column_is_measured_or_reported(capsys):
    """torch.compile either gives a compiled rate or an explained gap, never an exception."""
    ceil = bench.Ceilings("cpu", 1, {"float32": 1e11, "float64": 5e10}, 2e10, 1024, 2**24)
    row = bench.measure(_toy(2), loop=False, min_time=0.02, compile=True, ceilings=ceil)
    if row.compiled_run_steps_per_s is None:
        assert "torch.compile failed" in capsys.readouterr().out
    else:
        assert row.compiled_run_steps_per_s > 0 and row.compile_s >= 0
        assert row.compiled_fraction == pytest.approx(row.compiled_run_steps_per_s * 1024 / row.roofline_flops)


# -- the exact solver's rows ------------------------------------------------------------------------
def test_solver_rows_and_markdown(tmp_path):
    ceil = bench.Ceilings("cpu", 1, {"float32": 1e11, "float64": 5e10}, 2e10, 1024, 2**24)
    rows = bench.solver_rows((25, 100, 200), ceilings=ceil, repeats=1)
    assert [r.n for r in rows] == [25, 100, 200]
    for r in rows:
        assert r.converged and r.rel_gap <= 1e-9 and r.seconds > 0
        # a fixed grid of 4n columns is far from 1e-9 (its gap falls like h^2): the baseline needs more
        assert r.baseline_rel_gap > 1e-9 and r.baseline_columns_at_target > r.baseline_columns
        assert r.peak_flops == 5e10 and r.bandwidth == 2e10
    slope = np.polyfit(np.log([100, 200]), np.log([rows[1].seconds, rows[2].seconds]), 1)[0]
    assert rows[0].growth_exponent == pytest.approx(slope)
    bench.LAST_CEILINGS.clear()
    bench.LAST_CEILINGS["cpu"] = ceil
    bench.write(rows, tmp_path)
    d = json.loads((tmp_path / "bench-cpu.json").read_text())
    assert d["ceilings"]["bandwidth"] == 2e10 and len(d["solver"]) == 3 and d["rows"] == []
    md = bench.markdown(tmp_path)
    assert "minnorm1d.solve (s)" in md and "Growth exponent" in md and "bandwidth 20.0 GB/s" in md


def test_dense_lp_baseline_certificate():
    """The baseline's certified gap uses the same closed-form dual check: its bound value (1 - gap) is
    below the exact optimum, and its value (a grid LP) above it."""
    from lib import minnorm1d as mn

    x, y = bench.solver_data(30)
    _, cols, gap, value = bench.dense_lp_baseline(x, y)
    exact = mn.solve(x, y)
    assert cols == np.union1d(x, np.linspace(x.min(), x.max(), 90)).size
    assert 1e-9 < gap < 1e-2
    assert value >= exact.lower * (1 - 1e-12)
    assert value * (1 - gap) <= exact.cost * (1 + 1e-12)
