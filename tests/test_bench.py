"""The benchmark machinery on a toy workload (speed itself is measured by `python -m lib bench`,
never asserted by a timed test)."""

import torch

from lib import bench
from lib.engine import Workload


def _toy(runs, device="cpu"):
    x = torch.ones(runs, 8, 8)

    def batched():
        torch.bmm(x, x)

    def loop():
        for r in range(runs):
            x[r] @ x[r]

    return Workload("toy", runs, device, batched, loop, flops_per_run_step=2 * 8**3, matmul_shape=(runs, 8, 8, 8))


def test_measure_reports_every_field(tmp_build):
    row = bench.measure(_toy(4), min_time=0.02)
    assert row.batched_run_steps_per_s > 0 and row.loop_run_steps_per_s > 0
    assert row.speedup == row.batched_run_steps_per_s / row.loop_run_steps_per_s
    assert row.achieved_flops > 0 and row.roofline_flops > 0 and row.roofline_fraction > 0
    bench.write([row])
    assert (tmp_build / "bench" / "bench-cpu.json").exists()
    assert "toy" in bench.format_row(row)


def test_every_chapter_workload_runs_one_step():
    for name, make in bench.workloads().items():
        w = make(2, "cpu")
        assert w.runs == 2 and w.device == "cpu", name
        w.batched_step()
        w.loop_step()


def test_compiled_column_is_measured_or_reported(capsys):
    """torch.compile either gives a compiled rate or an explained gap, never an exception."""
    row = bench.measure(_toy(2), loop=False, min_time=0.02, compile=True)
    if row.compiled_run_steps_per_s is None:
        assert "torch.compile failed" in capsys.readouterr().out
    else:
        assert row.compiled_run_steps_per_s > 0 and row.compile_s >= 0
