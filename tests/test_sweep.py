"""Sharded sweeps: the same numbers in-process, in any shard size, and on a Dask cluster (also when a
worker dies mid-sweep); content-addressed, atomic shard cache; the SLURM recipe."""

import dataclasses
import os
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from lib import engine
from lib.book import sweep


def toy_study(runs: pd.DataFrame, device: str) -> pd.DataFrame:
    """Batched GD on per-run least-squares problems; each run's data from its own seed."""
    A = torch.stack([torch.randn(6, 3, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                     for s in runs["seed"]])
    b = A.sum(-1)
    lr = torch.tensor(runs["lr"].to_numpy())[:, None]
    x = torch.zeros(len(runs), 3, dtype=torch.float64)
    for _ in range(200):
        g = torch.einsum("bij,bi->bj", A, torch.einsum("bij,bj->bi", A, x) - b)
        x = x - lr * g
    if "sleep" in runs:
        time.sleep(float(runs["sleep"].iloc[0]))
    return pd.DataFrame({"err": (x - 1).norm(dim=1).numpy()}, index=runs.index)


RUNS = engine.grid(seed=range(12), lr=[0.01, 0.02])


def test_shard_size_does_not_change_results(tmp_build):
    a = sweep.run("toy", toy_study, RUNS, max_batch=24, cache=False)
    b = sweep.run("toy", toy_study, RUNS, max_batch=5, cache=False)
    assert np.array_equal(a["err"].to_numpy(), b["err"].to_numpy())
    assert list(a.index) == list(RUNS.index)
    assert set(a["shard_worker"]) == {a["shard_worker"].iloc[0]} and (a["shard_device"] == "cpu").all()


def test_cache_resumes_and_keys_on_parameters(tmp_build, monkeypatch):
    calls = []

    def counted(runs, device):
        calls.append(len(runs))
        return toy_study(runs, device)

    sweep.run("toy", counted, RUNS, max_batch=8)
    assert calls == [8, 8, 8]
    # a resumed sweep recomputes nothing; a changed grid recomputes only the shards that changed
    sweep.run("toy", counted, RUNS, max_batch=8)
    assert calls == [8, 8, 8]
    changed = RUNS.copy()
    changed.loc[23, "lr"] = 0.03
    sweep.run("toy", counted, changed, max_batch=8)
    assert calls == [8, 8, 8, 8]
    files = list((tmp_build / "cache" / "sweeps" / "toy").iterdir())
    assert len(files) == 4 and all(f.suffix == ".pkl" for f in files)


def test_interrupted_sweep_leaves_only_whole_shards(tmp_build):
    def flaky(runs, device):
        if runs.index[0] >= 8:
            raise KeyboardInterrupt
        return toy_study(runs, device)

    with pytest.raises(KeyboardInterrupt):
        sweep.run("toy", flaky, RUNS, max_batch=8)
    files = list((tmp_build / "cache" / "sweeps" / "toy").iterdir())
    assert [f.suffix for f in files] == [".pkl"]
    full = sweep.run("toy", toy_study, RUNS, max_batch=8)
    assert len(full) == len(RUNS)


def test_bad_cluster_spec():
    with pytest.raises(ValueError, match="invalid cluster"):
        sweep.run("toy", toy_study, RUNS, max_batch=8, cluster="slurm:2", cache=False)


distributed = pytest.importorskip("distributed", reason="cluster tests need pip install '.[cluster]'")


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.mark.cluster
def test_local_cluster_gives_identical_results(tmp_build, client):
    ref = sweep.run("toy", toy_study, RUNS, max_batch=5, cache=False)
    got = sweep.run("toy", toy_study, RUNS, max_batch=5, cache=False, client=client)
    pd.testing.assert_frame_equal(ref.drop(columns="shard_worker"), got.drop(columns="shard_worker"))
    assert got["shard_worker"].str.startswith("worker-").all() or got["shard_worker"].str.contains("tcp").all()


@pytest.mark.cluster
def test_sweep_survives_a_killed_worker(tmp_build, client):
    runs = RUNS.assign(sleep=0.3)
    ref = sweep.run("toy-kill", toy_study, runs, max_batch=2, cache=False)

    def kill_one():
        time.sleep(1.0)
        victim = sorted(client.scheduler_info()["workers"])[0]
        try:
            client.run(os._exit, 1, workers=[victim])
        except Exception:  # the victim never answers: that is the point
            pass

    t = threading.Thread(target=kill_one)
    t.start()
    got = sweep.run("toy-kill", toy_study, runs, max_batch=2, cache=False, client=client)
    t.join()
    assert list(got.index) == list(runs.index)  # every run exactly once, in grid order
    assert np.array_equal(got["err"].to_numpy(), ref["err"].to_numpy())


@pytest.mark.cluster
def test_slurm_recipe_is_constructed_without_submitting():
    pytest.importorskip("dask_jobqueue")
    cluster = sweep.slurm_cluster(gpus_per_job=1, cores=8, memory="64GB", walltime="01:00:00", queue="gpu",
                                  scheduler_options={"dashboard_address": None})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -p gpu" in script
    assert "--resources GPU=1" in script


@pytest.mark.cluster
def test_chapter_study_on_local_cluster_matches_in_process(tmp_build, client, monkeypatch):
    """Chapter 2's random-initialisation study, on a 2-worker LocalCluster vs in-process (float64)."""
    from lib.studies import ch02

    monkeypatch.setenv("IB_CACHE", "0")  # both runs compute; nothing is read back from the shard cache
    p = {**dataclasses.asdict(ch02.params("fast").random_relu), "widths": [2, 4], "inits": 24, "steps": 300,
         "max_batch": 16}
    ref = ch02.random_relu(**p, device="cpu", seed=0)
    monkeypatch.setenv("IB_SCHEDULER", client.scheduler.address)
    with distributed.get_task_stream(client) as ts:
        got = ch02.random_relu(**p, device="cpu", seed=0)
    assert sum("ch02-random-relu-shard" in t["key"] for t in ts.data) == 3  # 48 runs in shards of 16
    pd.testing.assert_frame_equal(ref, got)
    assert len(got) == 48 and list(got.index) == list(range(48))
