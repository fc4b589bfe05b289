"""``dilution study run|status|merge|report|list``: studies (a ``dilution.commands`` entry point)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register"]

EPILOG = """\
SPEC is a study TOML file (see studies/spec.py for its keys) or a built-in study name
(`dilution study list`: smoke, quick, teacher, mnist, mnist-500; the MNIST ones read --data or
$DILUTION_DATA/mnist/mnist.npz). The estimated cost is printed before the study starts.
The study is a graph of tasks (dense runs shared by the points pruned from them, and one task
per pruned point); finished tasks are skipped, so rerunning a study continues it, and a failed
task is retried --retries times without stopping the others (exit status 1 if some failed).
Results: OUTPUT/tasks/<key>.nc per task, OUTPUT/manifest/<key>.json (status, attempts, wall
time, host, error) and OUTPUT/study.nc with dims (protocol, pruning_time, pruning_fraction,
n_hidden, seed).

Executors: serial by default; --workers N starts a dask LocalCluster of N single-threaded
worker processes; --scheduler ADDRESS joins a running dask scheduler (e.g. one started by
dask_jobqueue.SLURMCluster, `pip install dilution[cluster]`).

Examples:
  dilution study run smoke
  dilution study run teacher --workers 2
  dilution study run my-study.toml --scheduler tcp://10.0.0.5:8786
  dilution study status smoke
  dilution study merge smoke -o smoke.nc
  dilution study run quick --workers 2 --report
  dilution study report quick --figures figures"""


AXES = ("fraction", "log-remaining")
AXIS_HELP = ("transition fit along the pruning fraction f (default) or along -log10(1 - f), the decades of "
             "connections removed (for a collapse close to f = 1, as a trained model's)")

DATA_HELP = "built-in MNIST studies: mnist.npz or IDX folder (default $DILUTION_DATA/mnist/mnist.npz)"


def register(subparsers) -> None:
    """Add the ``study`` command (subcommands ``run``, ``status``, ``merge``, ``report``, ``list``) to ``dilution``."""
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
    run.add_argument("--data", help=DATA_HELP)
    run.add_argument("--checkpoint-seconds", type=float, default=60.0,
                     help="save a running point's training state at most this often (default 60)")
    run.add_argument("--retries", type=int, default=2,
                     help="attempts after a failed one, per task (default 2)")
    run.add_argument("--quiet", action="store_true", help="no per-task lines")
    run.add_argument("--report", action="store_true",
                     help="then report: analysis files, the transition table and the figures (as `study report`)")
    run.add_argument("--figures", help="with --report: figures folder (default OUTPUT/figures); each figure is "
                     "named <figure>-<study name>.pdf / .png (index.html shows the last study drawn there)")
    run.add_argument("--axis", choices=AXES, default="fraction", help="with --report: " + AXIS_HELP)
    run.set_defaults(func=_run)
    status = sub.add_parser("status", help="done / failed / pending tasks of a study and an ETA")
    status.add_argument("spec", help="study TOML file or built-in study name")
    status.add_argument("--output", help="output folder (default: the spec's)")
    status.add_argument("--data", help=DATA_HELP + "; the one the study ran on")
    status.set_defaults(func=_status)
    merge = sub.add_parser("merge", help="merge a study's finished tasks into one netCDF Dataset")
    merge.add_argument("spec", help="study TOML file or built-in study name")
    merge.add_argument("--output", help="output folder of the study (default: the spec's)")
    merge.add_argument("-o", "--file", help="where to write the Dataset (default OUTPUT/study.nc)")
    merge.add_argument("--data", help=DATA_HELP + "; the one the study ran on")
    merge.set_defaults(func=_merge)
    report = sub.add_parser("report", help="a finished study's analysis files, transition table and figures",
                            description="Merge the study and write beside study.nc: transition.nc, masks.nc, "
                            "ising.nc, samples.nc and gap.nc (studies.report); print the transition table; draw "
                            "the study's figures with python -m paper_figures.")
    report.add_argument("spec", help="study TOML file or built-in study name")
    report.add_argument("--output", help="output folder of the study (default: the spec's)")
    report.add_argument("--data", help=DATA_HELP + "; the one the study ran on")
    report.add_argument("--figures", help="figures folder (default OUTPUT/figures); each figure is named "
                        "<figure>-<study name>.pdf / .png (index.html shows the last study drawn there)")
    report.add_argument("--axis", choices=AXES, default="fraction", help=AXIS_HELP)
    report.set_defaults(func=_report)
    listing = sub.add_parser("list", help="the built-in studies: name, cost, description")
    listing.set_defaults(func=_list)


def _spec(text: str, output: str | None, data: str | None = None):
    from .builtin import BUILTIN, builtin_spec
    from .spec import load_spec

    if text in BUILTIN and not Path(text).exists():
        if data is not None and not Path(data).exists():  # else named by the spec's key, data.path
            raise ValueError(f"--data {data} does not exist (expected mnist.npz or the MNIST IDX folder)")
        return builtin_spec(text, output=output, data=data)
    if data is not None:
        raise ValueError(f"--data is for the built-in MNIST studies; the spec file {text} sets its data in [data]")
    return load_spec(text, output=output)


def _run(args: argparse.Namespace) -> int:
    from dilution import interrupt

    from .cost import estimate_cost, format_cost
    from .runner import resume_hint, run_study, serial_interrupt, study_client

    spec = _spec(args.spec, args.output, args.data)  # validated before any compute starts
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {args.retries}")
    if not (args.checkpoint_seconds >= 0):  # NaN too
        raise ValueError(f"--checkpoint-seconds must be a number of seconds >= 0, got {args.checkpoint_seconds}")
    from dilution.io import check_output_folder

    check_output_folder("--output" if args.output is not None else "the spec's output", Path(spec.output))
    if not args.report:
        unused = [flag for flag, given in (("--figures", args.figures is not None), ("--axis", args.axis != "fraction"))
                  if given]
        if unused:
            raise ValueError(f"{' and '.join(unused)} set up the report: add --report (or run `dilution study "
                             f"report` after the study)")
    elif args.figures is not None:
        check_output_folder("--figures", Path(args.figures))

    ran = []

    def report(outcome, n_done, n_tasks):
        if outcome.status == "done":
            ran.append(outcome.key)
        if not args.quiet:
            line = (f"[{n_done}/{n_tasks}] {outcome.key}: {outcome.status} ({outcome.seconds:.1f} s, "
                    f"attempt {outcome.attempts})")
            print(line if outcome.status != "failed" else f"{line}\n{outcome.error}", flush=True)

    with resume_hint(spec.output, lambda: len(ran)):
        with interrupt.deferred():  # the estimate's probe updates run kernels too: stop between two of them
            print(format_cost(estimate_cost(spec, workers=args.workers or 1, remaining=True)), flush=True)
            interrupt.check()
        t0 = time.perf_counter()
        with study_client(args.workers, args.scheduler, warm=[spec]) as client, serial_interrupt(client):
            result = run_study(spec, client=client, retries=args.retries,
                               checkpoint_seconds=args.checkpoint_seconds, report=report)
    study = result.study
    finished = study["finished"].values
    not_converged = int((finished & ~study["converged"].values).sum())
    print(f"study {spec.name!r}: {result.count('done')} tasks run, {result.count('skipped')} skipped, "
          f"{result.count('failed')} failed; {int(finished.sum())}/{int(study['planned'].sum())} points finished "
          f"({not_converged} stopped at max_epochs without converging) in {time.perf_counter() - t0:.1f} s; "
          f"wrote {result.path}")
    failed = 1 if result.count("failed") else 0
    if args.report:
        return max(failed, _print_report(spec, args.figures, study, axis=args.axis))
    return failed


def _print_report(spec, figures: str | None, study=None, axis: str = "fraction") -> int:
    from .report import draw_study_figures, format_transitions, study_report

    made = study_report(spec, study=study, axis=axis)
    print(format_transitions(made.study, made.transition))
    print("wrote " + ", ".join(str(p) for p in made.files.values()) + ("" if made.recomputed else " (up to date)"))
    folder = Path(figures) if figures is not None else Path(spec.output) / "figures"
    drawn = draw_study_figures(spec, folder)
    for line in drawn.stdout.splitlines():
        if line.startswith(("drew ", "gallery")):
            print(line)
    if drawn.returncode != 0:
        print(drawn.stderr, file=sys.stderr, end="")
    return 0 if drawn.returncode == 0 else 1


def _report(args: argparse.Namespace) -> int:
    spec = _spec(args.spec, args.output, args.data)
    if args.figures is not None:
        from dilution.io import check_output_folder

        check_output_folder("--figures", Path(args.figures))
    return _print_report(spec, args.figures, axis=args.axis)


def _check_ran(args: argparse.Namespace, spec) -> None:
    """The folder of a study that `status` or `merge` reads: one a `dilution study run` made."""
    out = Path(spec.output)
    if not out.is_dir():
        where = f"--output {out}" if args.output is not None else f"the study's output folder {out}"
        if out.exists():
            raise ValueError(f"{where} is not a folder; expected the folder a `dilution study run` wrote")
        raise ValueError(f"{where} does not exist: study {spec.name!r} has not been run there (start it with: "
                         f"dilution study run {args.spec}{'' if args.output is None else f' --output {out}'}"
                         f"{'' if args.data is None else f' --data {args.data}'})")


def _status(args: argparse.Namespace) -> int:
    import math

    from .runner import study_status

    spec = _spec(args.spec, args.output, args.data)
    _check_ran(args, spec)  # not "0/N tasks done", which reads as a study that has started
    st = study_status(spec)
    n = len(st.done) + len(st.failed) + len(st.pending)
    eta = "unknown (no finished task yet)" if math.isnan(st.eta_seconds) else (
        f"{st.eta_seconds:.0f} s on one worker ({st.mean_seconds:.1f} s per finished task)")
    print(f"study {spec.name!r} in {spec.output}: {len(st.done)}/{n} tasks done, {len(st.failed)} failed, "
          f"{len(st.pending)} pending; ETA {eta}")
    for key, error in st.errors.items():
        last = error.strip().splitlines()[-1] if error.strip() else "(no message)"
        print(f"  failed {key}: {last}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from dilution import io

    from .merge import merge
    from .refine import refined_spec

    from dilution.io import check_new_file

    spec = refined_spec(_spec(args.spec, args.output, args.data))
    target = Path(args.file) if args.file is not None else Path(spec.output) / "study.nc"
    if args.file is not None:  # `-o tiny.toml` wrote the Dataset over the spec
        check_new_file("--file", target, inputs=[Path(args.spec)])
    _check_ran(args, spec)
    study = merge(spec)
    path = io.save(study, target)
    print(f"study {spec.name!r}: {int(study['finished'].sum())}/{int(study['planned'].sum())} points finished; "
          f"wrote {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from .builtin import BUILTIN

    width = max(map(len, BUILTIN))
    for name, study in BUILTIN.items():
        print(f"{name:<{width}}  {study.cost:<28}  {study.description}")
    return 0
