"""``dilution study run SPEC|NAME``: run a study, registered through the ``dilution.commands`` entry points."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register"]

EPILOG = """\
SPEC is a study TOML file (see studies/spec.py for its keys) or a built-in study name (smoke).
Finished grid points are skipped, so rerunning a study continues it. Results: OUTPUT/points/<key>.nc
per point and OUTPUT/study.nc with dims (n_hidden, protocol, pruning_fraction, seed).

Executors: serial by default; --workers N starts a dask LocalCluster of N single-threaded
worker processes; --scheduler ADDRESS joins a running dask scheduler (e.g. one started by
dask_jobqueue.SLURMCluster, `pip install dilution[cluster]`).

Examples:
  dilution study run smoke
  dilution study run studies/teacher.toml --workers 2
  dilution study run studies/teacher.toml --scheduler tcp://10.0.0.5:8786"""


def register(subparsers) -> None:
    """Add the ``study`` command (with its ``run`` subcommand) to the ``dilution`` parser."""
    st = subparsers.add_parser("study", help="phase-diagram studies: sweep pruning fraction x protocol x size x seed",
                               description="Run a study: every grid point trained to convergence and evaluated.")
    sub = st.add_subparsers(dest="study_command", required=True)
    run = sub.add_parser("run", help="run (or continue) a study", epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("spec", help="study TOML file or built-in study name")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="dask LocalCluster with this many worker processes")
    where.add_argument("--scheduler", help="address of a running dask scheduler")
    run.add_argument("--output", "-o", help="output folder (default: the spec's)")
    run.add_argument("--checkpoint-seconds", type=float, default=60.0,
                     help="save a running point's training state at most this often (default 60)")
    run.add_argument("--quiet", action="store_true", help="no per-point lines")
    run.set_defaults(func=_run)


def _spec(text: str, output: str | None):
    from dataclasses import replace

    from .builtin import BUILTIN, builtin_spec
    from .spec import load_spec

    if text in BUILTIN and not Path(text).exists():
        return builtin_spec(text, output=output)
    spec = load_spec(text)
    return replace(spec, output=output) if output is not None else spec


def _run(args: argparse.Namespace) -> int:
    from .runner import local_client, run_study

    spec = _spec(args.spec, args.output)  # validated before any compute starts
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")

    def report(outcome, n_done, n_points):
        if not args.quiet:
            line = f"[{n_done}/{n_points}] {outcome.key}: {outcome.status} ({outcome.seconds:.1f} s)"
            print(line if outcome.status != "failed" else f"{line}\n{outcome.error}", flush=True)

    t0 = time.perf_counter()
    client = None
    if args.workers is not None:
        client = local_client(args.workers)
    elif args.scheduler is not None:
        from distributed import Client

        client = Client(args.scheduler)
    try:
        result = run_study(spec, client=client, checkpoint_seconds=args.checkpoint_seconds, report=report)
    finally:
        if client is not None:
            cluster = client.cluster if args.workers is not None else None
            client.close()
            if cluster is not None:
                cluster.close()
    study = result.study
    finished = study["finished"].values
    not_converged = int((finished & ~study["converged"].values).sum())
    print(f"study {spec.name!r}: {result.count('done')} run, {result.count('skipped')} skipped, "
          f"{result.count('failed')} failed, {int(finished.sum())}/{finished.size} finished "
          f"({not_converged} stopped at max_epochs without converging) in {time.perf_counter() - t0:.1f} s; "
          f"wrote {result.path}")
    return 1 if result.count("failed") else 0
