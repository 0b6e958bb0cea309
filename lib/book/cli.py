"""The book's command line: ``python -m lib <command>``.

    python -m lib build [--profile fast|full] [--device auto|cpu|cuda] [--jobs N]  # execute all, render
    python -m lib run ch01 [ch02 ...] [--profile full] [--device cuda]  # execute chapters (papermill)
    python -m lib study ch01 [--profile full] [--device cuda]           # a chapter's studies, no Jupyter
    python -m lib claims [--profile fast]                                # the claims of executed chapters
    python -m lib archive [--profile full]                               # keep run records in records/
    python -m lib bench [ch01 ...] [--device cpu] [--runs 256]           # batched vs per-run loop
    python -m lib list                                                   # the chapters
    python -m lib notebooks [--check]                                    # .ipynb twins for Binder/Colab
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from ..checks import DEVICES, PROFILES


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="fast", choices=PROFILES, help="fast (CI, CPU) or full (paper scale)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto picks CUDA when present")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cluster", metavar="local:N", help="run sharded sweeps on a Dask LocalCluster of N workers")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run sharded sweeps on a running Dask scheduler")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="execute every chapter for one profile and render the book")
    _common(b)
    b.add_argument("--force", action="store_true", help="re-execute even if an execution is up to date")
    b.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    b.add_argument("--jobs", type=int, default=None,
                   help="chapters executed at once, each in its own process (default: one per CPU core)")
    b.add_argument("chapters", nargs="*", help="a subset of chapters (default: all)")

    r = sub.add_parser("run", help="execute chapters with papermill into _build/executed/<profile>/")
    _common(r)
    r.add_argument("--force", action="store_true")
    r.add_argument("chapters", nargs="*", help="ch01, 02, a full stem, or all (default)")

    s = sub.add_parser("study", help="run a chapter's studies as plain Python (fills the study cache)")
    _common(s)
    s.add_argument("chapters", nargs="*")

    c = sub.add_parser("claims", help="print the claims of the executed chapters")
    c.add_argument("--profile", default="fast", choices=PROFILES)

    a = sub.add_parser("archive", help="copy execution and claim records into records/<profile>/ (listed by the book)")
    a.add_argument("--profile", default="full", choices=PROFILES)
    a.add_argument("chapters", nargs="*")

    sub.add_parser("list", help="list the chapters")

    nb = sub.add_parser("notebooks", help="write the .ipynb twins that Binder and Colab open (needs repository.url)")
    nb.add_argument("--check", action="store_true", help="only check that the twins are present and up to date")

    be = sub.add_parser("bench", help="run-steps/s of the batched engine vs a per-run loop, per chapter")
    be.add_argument("chapters", nargs="*", help="ch01 ... (default: all with a workload)")
    be.add_argument("--device", action="append", choices=["cpu", "cuda"], help="repeatable; default: all present")
    be.add_argument("--runs", type=int, action="append", help="repeatable; default 1, 16, 256 (and 1024 on CUDA)")
    be.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    be.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    be.add_argument("--sweep", action="store_true", help="measure one study in-process and on 1, 2, 4 Dask workers")
    be.add_argument("--compile", action="store_true",
                    help="also time the batched step through torch.compile (CUDA graphs on CUDA); needs a C++ compiler on CPU")
    be.add_argument("--save", metavar="DIR", help="also write the results to DIR (e.g. benchmarks/, rendered by the book)")

    args = ap.parse_args(argv)
    import os

    from . import chapters, execute, site

    # Sweeps (lib.sweep) read these, in this process and in the kernels it starts.
    if getattr(args, "cluster", None):
        os.environ["IB_CLUSTER"] = args.cluster
    if getattr(args, "scheduler", None):
        os.environ["IB_SCHEDULER"] = args.scheduler

    if args.cmd == "list":
        for stem in chapters.chapters():
            print(stem)
        return 0
    if args.cmd == "build":
        if args.jobs is not None and args.jobs < 1:
            ap.error(f"invalid --jobs={args.jobs}: must be a positive integer")
        site.build(args.profile, args.device, args.seed, names=args.chapters, force=args.force,
                     strict=not args.no_strict, jobs=args.jobs)
        return 0
    if args.cmd == "run":
        stems = chapters.resolve(args.chapters)
        failed = 0
        for stem in stems:
            t0 = time.perf_counter()
            print(f"{stem} ({args.profile}, device={args.device}) ...", flush=True)
            try:
                e = execute.execute(stem, args.profile, args.device, args.seed, force=args.force)
            except Exception as exc:  # report and go on with the next chapter
                failed += 1
                print(f"  FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", file=sys.stderr)
                continue
            rec = e.record
            state = "up to date" if e.reused else f"{time.perf_counter() - t0:.1f} s"
            print(f"  {state}: {rec['n_passed']}/{rec['n_claims']} claims pass -> {e.notebook}")
        return 1 if failed else 0
    if args.cmd == "study":
        from .chapter import start

        for stem in chapters.resolve(args.chapters):
            mod = importlib.import_module(f"lib.studies.ch{stem.split('-')[0]}")
            ctx = start(stem, args.profile, args.device, args.seed, record=False)
            ctx.skip_missing_modules = True
            t0 = time.perf_counter()
            mod.run_all(ctx)
            print(f"{stem}: studies done in {time.perf_counter() - t0:.1f} s on {ctx.device}")
            for s_ in ctx.studies_run:
                state = (f"skipped: needs {s_['missing']}, the book build computes it" if s_.get("skipped")
                         else "cached" if s_["cached"] else "computed")
                print(f"  {s_['study']}: {state} ({s_['wall_s']} s)")
        return 0
    if args.cmd == "notebooks":
        from . import launch

        url, branch = launch.repository()
        if args.check:
            problems = launch.check_twins()
            for p in problems:
                print(p)
            print("notebook twins: " + ("OK" if not problems else f"{len(problems)} problem(s)")
                  + (f" (repository {url}, branch {branch})" if url else " (no repository URL: no twins, no launch links)"))
            return 1 if problems else 0
        written = launch.write_twins()
        print(f"wrote {len(written)} notebook twins for {url} ({branch})" if url
              else "no repository URL configured (repository.url in _config.yml): removed any twins")
        return 0
    if args.cmd == "bench":
        import torch

        from . import bench

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.sweep:
            from . import paths

            res = bench.sweep_scaling()
            for d in [paths.build_dir() / "bench"] + ([args.save] if args.save else []):
                paths.atomic_write_json(Path(d) / "sweep-scaling.json", res)
            print(bench.scaling_markdown(args.save or paths.build_dir() / "bench"))
            return 0
        rows = bench.run(args.chapters or None, args.device, args.runs, min_time=args.min_time, compile=args.compile)
        bench.write(rows)
        if args.save:
            bench.write(rows, args.save)
        print(f"wrote {len(rows)} rows under _build/bench/" + (f" and {args.save}" if args.save else ""))
        return 0
    if args.cmd == "archive":
        written = execute.archive(args.profile, args.chapters or None)
        for w in written:
            print(w)
        print(f"archived {len(written)} records of the {args.profile} profile under records/{args.profile}/")
        return 0
    if args.cmd == "claims":
        for data in execute.claims_summary(args.profile):
            print(f"{data['chapter']}: {data['n_passed']}/{data['n_claims']} pass")
            for cl in data["claims"]:
                print(f"  [{'PASS' if cl['passed'] else 'FAIL'}] {cl['id']}: m = {cl['measured']} ({cl['criterion']})")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
