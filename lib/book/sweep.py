"""Sweeps: a study's grid of runs, split into shards, run in-process or on a Dask cluster.

A *sharded study* is a function ``study(runs, device) -> DataFrame`` that advances the runs of one
shard (a slice of the grid, one row per run) as one batched tensor program and returns one row of
measurements per run, indexed like ``runs``. Each run's randomness must depend on its own row (e.g. a
``seed`` column), never on which other runs share its shard: then the result is the same however the
grid is split and wherever the shards run.

:func:`run` splits the grid into shards of at most ``max_batch`` runs (sized to fit a device), and
executes them

- in-process (the default: no cluster, no extra dependency), or
- on a Dask cluster: ``cluster="local:N"`` starts a ``LocalCluster`` with N single-threaded worker
  processes; ``scheduler="tcp://host:8786"`` connects to a running one (e.g. started by
  ``dask-jobqueue`` on SLURM, see :func:`slurm_cluster`). GPU shards ask for the worker resource
  ``GPU=1``, so a worker started with ``--resources GPU=1`` runs one shard at a time on its GPU.

Every finished shard is stored in a content-addressed cache (study name, the shard's rows, device type,
code version) by an atomic write, so an interrupted sweep resumes where it stopped and never mixes
results of other code or parameters. A worker lost mid-sweep is survived: Dask reruns its shards.
The gathered table has the grid's order, every run exactly once, and records which worker and device
ran each shard. ``IB_CLUSTER`` / ``IB_SCHEDULER`` set the default cluster for every sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .. import engine
from . import paths, provenance

Study = Callable[[pd.DataFrame, str], pd.DataFrame]


def shard_key(name: str, shard: pd.DataFrame, device: str, code: str | None = None) -> str:
    """The cache key of one shard: its rows, the device type and ``code`` (the version of the code
    the study can reach, :func:`lib.provenance.code_version`; of all ``lib`` by default)."""
    blob = json.dumps(
        {
            "study": name,
            "rows": json.loads(shard.to_json(orient="split", double_precision=15)),
            "device": device.split(":")[0],
            "code": code or provenance.code_version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_path(cache_dir: Path, name: str, key: str) -> Path:
    return cache_dir / "sweeps" / name / f"{key}.pkl"


def run_shard(study: Study, shard: pd.DataFrame, device: str, name: str, key: str, cache_dir: str | None) -> pd.DataFrame:
    """Run one shard (on whatever process calls it), store it in the cache, and tag its rows."""
    out = study(shard, device)
    if not isinstance(out, pd.DataFrame) or not out.index.equals(shard.index):
        raise ValueError(f"study {name!r} must return one row per run, indexed like its shard")
    out = out.copy()
    out["shard_worker"] = _worker_name()
    out["shard_device"] = device
    if cache_dir is not None:
        paths.atomic_write_bytes(_cache_path(Path(cache_dir), name, key), pickle.dumps(out, protocol=5))
    return out


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().name if isinstance(get_worker().name, str) else f"worker-{get_worker().name}"
    except (ImportError, ValueError):
        return f"in-process@{socket.gethostname()}"


def _client(cluster: str | None, scheduler: str | None):
    """A ``distributed.Client`` and whatever must be closed with it; ``(None, [])`` in-process."""
    cluster = cluster or os.environ.get("IB_CLUSTER")
    scheduler = scheduler or os.environ.get("IB_SCHEDULER")
    if not cluster and not scheduler:
        return None, []
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("running on a cluster needs dask.distributed: pip install '.[cluster]'") from exc
    if scheduler:
        client = Client(scheduler)
        return client, [client]
    kind, _, n = cluster.partition(":")
    if kind != "local" or not n.isdigit() or int(n) < 1:
        raise ValueError(f"invalid cluster={cluster!r}: use 'local:N' (N >= 1 workers) or give a scheduler address")
    lc = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(lc)
    return client, [client, lc]


def run(
    name: str,
    study: Study,
    runs: pd.DataFrame,
    *,
    max_batch: int,
    device: str = "cpu",
    cluster: str | None = None,
    scheduler: str | None = None,
    cache: bool = True,
    client=None,
) -> pd.DataFrame:
    """Run ``study`` over every row of ``runs`` in shards; return the tidy table in grid order."""
    if runs.index.has_duplicates:
        raise ValueError("the runs of a sweep need a unique index")
    slices = engine.shards(len(runs), max_batch)
    shards = [runs.iloc[s] for s in slices]
    code = provenance.code_version([study.__module__]) if getattr(study, "__module__", "").startswith("lib.") else None
    keys = [shard_key(name, sh, device, code) for sh in shards]
    cache_dir = paths.cache_dir() if cache and _cache_on() else None
    results: dict[int, pd.DataFrame] = {}
    if cache_dir is not None:
        for i, k in enumerate(keys):
            p = _cache_path(cache_dir, name, k)
            if p.exists():
                try:
                    results[i] = pickle.loads(p.read_bytes())
                except (OSError, EOFError, pickle.UnpicklingError):
                    p.unlink(missing_ok=True)
    todo = [i for i in range(len(shards)) if i not in results]
    own, closers = (client, []) if client is not None else _client(cluster, scheduler)
    cdir = None if cache_dir is None else str(cache_dir)
    try:
        if own is None:
            for i in engine.progress(todo, desc=f"{name} shards"):
                results[i] = run_shard(study, shards[i], device, name, keys[i], cdir)
        else:
            from distributed import as_completed

            resources = {"GPU": 1} if device.startswith("cuda") else None
            futures = {
                own.submit(run_shard, study, shards[i], device, name, keys[i], cdir,
                           key=f"{name}-shard-{i}-{keys[i][:8]}", pure=False, retries=3,
                           resources=resources): i
                for i in todo
            }
            for fut in engine.progress(as_completed(futures), desc=f"{name} shards", total=len(futures)):
                results[futures[fut]] = fut.result()
    finally:
        for c in closers:
            c.close()
    out = pd.concat([results[i] for i in range(len(shards))]) if shards else runs.iloc[:0].copy()
    if not out.index.equals(runs.index):
        raise RuntimeError(f"sweep {name!r} lost or duplicated runs while gathering shards")
    return out


def _cache_on() -> bool:
    from . import cache

    return cache.enabled()


def slurm_cluster(*, gpus_per_job: int = 1, cores: int = 8, memory: str = "64GB", walltime: str = "02:00:00",
                  queue: str | None = None, account: str | None = None, **kw):
    """A ``dask_jobqueue.SLURMCluster`` whose workers each own one GPU (worker resource ``GPU=1``).

    Nothing is submitted until ``cluster.scale(jobs=N)``; ``cluster.job_script()`` shows the batch
    script. Connect a sweep with ``run(..., client=Client(cluster))`` or ``scheduler=cluster.scheduler_address``.
    """
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(
        cores=cores,
        processes=1,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        job_extra_directives=[f"--gres=gpu:{gpus_per_job}"],
        worker_extra_args=["--resources", f"GPU={gpus_per_job}"],
        **kw,
    )
