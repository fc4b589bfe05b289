"""``dilution reproduce --scale smoke|paper``: every dataset of the paper's figures, then the figures.

Into ``OUTPUT/data`` (the folder :mod:`paper_figures` reads), in order:

1. the built-in studies through the study runner (:func:`studies.runner.run_study`), each into
   ``data/study-<name>/``: at ``paper`` scale ``quick``, ``teacher``, ``mnist`` and
   ``mnist-500``; at ``smoke`` scale :func:`smoke_specs`, the ``smoke`` study standing in for
   ``quick`` (with a ``scratch`` protocol), for ``teacher`` (two sizes) and for ``mnist`` (a
   784 x 4 model on a few hundred images), so that every figure gets data in about two minutes;
2. each study's report (:func:`studies.report.study_report`: transition, masks, couplings,
   samples, gap);
3. the rewiring experiments (:mod:`studies.rewiring`): ``rewiring-ncg.nc`` and, with MNIST,
   ``rewiring-mnist.nc`` (784 x 16, exact likelihood) and ``rewiring-mnist-500.nc`` (784 x 500 at
   ``paper`` scale, AIS with resampling, 400 and 800 epochs); each comparison keeps its training
   states and scores in ``<name>.work/`` as it goes, so a stopped run continues where it was; when
   the MNIST study scores samples with the auxiliary classifier (``paper`` scale) the comparisons
   use the same classifier;
   and a ``dilution train`` run's ``train-teacher/history.nc``;
4. the stationary-law experiments (:func:`studies.stationary.run_experiments`):
   ``stationary-inclusion.nc``, ``stationary-divergence.nc``, ...; and the learning-rate halving
   and estimator-bias experiments (:func:`studies.stationary.run_bias_experiments`):
   ``stationary-discretisation.nc``, ``stationary-discretisation-prior.nc``,
   ``stationary-estimator-bias.nc``, ``stationary-estimator-bias-deep-r.nc``;

then ``python -m paper_figures --data OUTPUT/data --out OUTPUT/figures`` in a subprocess.

Resumable: finished study tasks are skipped by the runner, a report whose study did not change
is not recomputed (``report.json``), and a rewiring or stationary file that exists with the same
experiment settings is kept (a comparison file written before a variable of
:data:`studies.rewiring.BUDGET_VARIABLES` existed is remade from its work folder, without
training); so a second run recomputes nothing and only redraws the figures.
Without MNIST (no ``--data`` and no ``$DILUTION_DATA``) the MNIST studies and experiment are
skipped with the reason and their figures are listed as missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = ["Scale", "SCALES", "ReproduceRun", "smoke_specs", "paper_specs", "reproduce", "register"]

Scale = Literal["smoke", "paper"]


class _Rewiring(NamedTuple):
    ncg: dict
    mnist: dict
    mnist_500: dict  # the same comparison with AIS likelihoods (784 x 500 at paper scale)
    train: tuple[str, ...]  # options of the `dilution train` run whose history the training-curves figure draws


# Settings of the rewiring experiments per scale (keyword arguments of studies.rewiring's functions).
_REWIRING = {
    "smoke": _Rewiring(ncg={"epochs": 100, "n_seeds": 3, "n_checkpoints": 12},
                       mnist={"connectivities": (0.1, 0.3), "n_seeds": 2, "n_hidden": 6, "epochs": 2,
                              "n_train": 1000, "n_test": 500},
                       mnist_500={"connectivities": (0.1, 0.3), "n_seeds": 2, "n_hidden": 24, "epochs": (1, 2),
                                  "dtype": "float32", "n_train": 1000, "n_test": 500, "likelihood": "ais",
                                  "ais_chains": 40,
                                  "ais_groups": 4, "ais_betas": (100, 200), "ais_resample": 0.5,
                                  "ais_schedule": "classic"},
                       train=("--teacher-visible", "16", "--teacher-hidden", "4", "--n-hidden", "6", "--n-train",
                              "500", "--n-test", "500", "--epochs", "20", "--checkpoints", "10")),
    # issue 11, item 1: 10,000 epochs, 10 seeds per initial density
    "paper": _Rewiring(ncg={"epochs": 10_000, "n_seeds": 10, "n_checkpoints": 25},
                       # issue 11, item 4: DEEP R, static and magnitude at 1-5 % and NCG, at the setting whose
                       # levels hold when the budget doubles (PCD-10, lr 0.05; 200 -> 400 epochs moved them by at
                       # most 2.4 nats, PCD noise is +-1.5, the methods' gaps are 3-16)
                       mnist={"connectivities": (0.01, 0.02, 0.05), "n_seeds": 3, "n_hidden": 16, "epochs": 400,
                              "n_train": 10_000, "n_test": 2_000, "learning_rate": 0.05, "k": 10,
                              "ncg_densities": (1.0, 0.5, 0.1)},
                       # issue 11, item 4, at 500 hidden units. AIS with resampling in 10 populations of 50 on
                       # the classic shape (plain AIS collapses onto one or two chains; linear betas lost 8-12 nats
                       # on NCG models). The file scores 400 and 800 epochs (dim epochs) and every model with
                       # 10,000 and 20,000 betas (dim ais_betas): the two doubling checks. Measured at 800 epochs:
                       # static and magnitude move <= 0.9 nats from 400 to 800 epochs, DEEP R still +3 to +7; the
                       # sparse models' log Z moves by its SE when the betas double, the dense model's +8 nats
                       # and NCG's +2 to +3 (their values are upper bounds), and both overfit the 10,000 images
                       # (train - test 15-34 nats). About 10 h of both cores in float32 plus ~20 min of AIS per
                       # model: resumable in rewiring-mnist-500.work/
                       mnist_500={"connectivities": (0.01, 0.02, 0.05), "n_seeds": 3, "n_hidden": 500,
                                  "epochs": (400, 800), "dtype": "float32",
                                  "n_train": 10_000, "n_test": 2_000, "learning_rate": 0.05, "k": 10,
                                  "ncg_densities": (1.0, 0.5, 0.1), "likelihood": "ais", "ais_chains": 500,
                                  "ais_groups": 10, "ais_betas": (10_000, 20_000), "ais_resample": 0.5,
                                  "ais_schedule": "classic"},
                       train=()),  # `dilution train`'s defaults: the 64 x 10 teacher, 64 x 16 student
}
SCALES = tuple(_REWIRING)


class ReproduceRun(NamedTuple):
    """What :func:`reproduce` did.

    Attributes
    ----------
    computed : tuple of str
        What was computed in this run (study tasks, reports, experiments); empty when
        everything was up to date.
    missing : dict of str to str
        Datasets not made, with the reason (no MNIST, no stationary module, failed tasks).
    figures : Path
        The figures folder.
    figures_exit : int
        Exit status of ``python -m paper_figures`` (0 when not drawn).
    figures_output : str
        Its standard output (the drawn and missing figures).
    """

    computed: tuple[str, ...]
    missing: dict[str, str]
    figures: Path
    figures_exit: int
    figures_output: str


def _smoke_raw() -> dict:
    from .builtin import BUILTIN

    raw = tomllib.loads(BUILTIN["smoke"].toml)
    raw["protocols"]["scratch"] = {"kind": "scratch", "epoch": raw["protocols"]["after"]["epoch"]}
    return raw


def smoke_specs(output: str | Path, mnist: str | None) -> dict:
    """The smoke-scale studies by the figure name they stand in for (``quick``, ``teacher`` and,
    with ``mnist`` (the mnist.npz path), ``mnist``), each writing into ``output/study-<name>``."""
    from .spec import spec_from_dict

    out = Path(output)
    quick = _smoke_raw()
    quick.update(name="smoke-quick", output=str(out / "study-quick"))
    teacher = _smoke_raw()
    teacher.update(name="smoke-teacher", output=str(out / "study-teacher"), n_hidden=[4, 6])
    specs = {"quick": spec_from_dict(quick), "teacher": spec_from_dict(teacher)}
    if mnist is not None:
        raw = _smoke_raw()
        raw.update(name="smoke-mnist", output=str(out / "study-mnist"), n_hidden=[4])
        raw["data"] = {"kind": "mnist", "path": str(mnist), "n_train": 300, "n_validation": 100, "n_test": 300,
                       "binarize": "threshold"}
        raw["training"].update(max_epochs=6)
        raw["stopping"].update(min_epochs=2, every=2, window=2)
        for name in ("after", "scratch"):
            raw["protocols"][name]["epoch"] = 2
        specs["mnist"] = spec_from_dict(raw)
    return specs


def paper_specs(output: str | Path, mnist: str | None) -> dict:
    """The built-in studies quick, teacher and, with ``mnist``, mnist and mnist-500, each writing
    into ``output/study-<name>``."""
    from .builtin import builtin_spec

    out = Path(output)
    names = ("quick", "teacher") + (("mnist", "mnist-500") if mnist is not None else ())
    return {name: builtin_spec(name, output=str(out / f"study-{name}"),
                               data=mnist if "mnist" in name else None) for name in names}


def _mnist_path(data: str | None) -> tuple[str | None, str]:
    """The MNIST file, or None and why not."""
    if data is not None:
        if not Path(data).exists():
            raise ValueError(f"--data: {data} does not exist (expected mnist.npz or the MNIST IDX folder)")
        from dilution.data.mnist import load_mnist

        try:  # read now: a bad file found after the teacher studies would cost their minutes
            load_mnist(data, "test")
        except (OSError, ValueError) as err:
            raise ValueError(f"--data: {err}") from None
        return str(data), ""
    root = os.environ.get("DILUTION_DATA")
    if not root:
        return None, "no MNIST: pass --data PATH/mnist.npz or set DILUTION_DATA"
    path = Path(root) / "mnist" / "mnist.npz"
    if not path.exists():
        return None, f"no MNIST: {path} does not exist ($DILUTION_DATA={root})"
    return str(path), ""


def _experiment_file(path: Path, experiment: dict, make: Callable[[], Any], computed: list[str],
                     needs: tuple[str, ...] = ()) -> None:
    """Write ``make()`` to ``path`` unless it exists with the same ``experiment`` attr and the
    variables ``needs`` (a file written before one of them was recorded is remade; the work folder
    beside it keeps the models and scores, so only the missing variables are computed)."""
    from dilution import io

    settings = json.dumps(experiment, sort_keys=True)
    if path.exists():
        try:
            ds = io.load_dataset(path)
            saved = json.loads(ds.attrs.get("experiment", "null"))
            if json.dumps(saved, sort_keys=True) == settings and all(name in ds.variables for name in needs):
                return
        except (OSError, ValueError):
            pass  # an unreadable file is remade
    io.save(make(), path)
    computed.append(path.name)


def _experiment_settings(kwargs: dict, seed: int, **defaults) -> dict:
    settings = {**defaults, **kwargs, "seed": seed}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def _study_classifier(spec):
    """The MNIST study's auxiliary classifier when its evaluation uses one (the paper scale's does;
    cached in its output folder by then), for the rewiring comparisons' classifier scores."""
    if spec is None or "classifier" not in spec.evaluation.metrics:
        return None
    from .evaluate import study_classifier

    return study_classifier(spec)


def _comparison_settings(kwargs: dict, seed: int, classifier) -> tuple[dict, dict]:
    """The ``experiment`` attr that :func:`studies.rewiring.mnist_comparison` writes for ``kwargs``
    (the file's up-to-date check) and the keyword arguments of the call, with ``classifier``."""
    call = {**kwargs, "seed": seed}
    if classifier is None:  # the samples' size is recorded only when a classifier scores them
        recorded = {k: v for k, v in kwargs.items() if k not in ("n_samples", "n_sweeps")}
        return _experiment_settings(recorded, seed, learning_rate=0.01), call
    call["classifier"] = classifier
    return _experiment_settings(kwargs, seed, learning_rate=0.01, classifier_seed=classifier.seed,
                                n_samples=1000, n_sweeps=1000), call


def reproduce(scale: Scale, output: str | Path, *, client: Any = None, data: str | None = None, retries: int = 2,
              seed: int = 0, figures: bool = True, log: Callable[[str], None] = print) -> ReproduceRun:
    """Make every dataset of the paper's figures at ``scale`` under ``output/data`` and draw the
    figures into ``output/figures`` (module docstring).

    Parameters
    ----------
    scale : "smoke" or "paper"
    output : path
    client : dask.distributed.Client, optional
        Runs the studies' tasks (default: serially in this process).
    data : str, optional
        MNIST (mnist.npz or IDX folder); default ``$DILUTION_DATA/mnist/mnist.npz``.
    retries : int
        Per study task.
    seed : int
        Seed of the rewiring and stationary experiments (the studies' seeds are in their specs).
    figures : bool
        Draw the figures at the end (False: only make the data).
    log : callable
        Receives one line per step.

    Returns
    -------
    ReproduceRun
    """
    from .report import draw_figures, study_report
    from .runner import run_study
    from .rewiring import BUDGET_VARIABLES, mnist_comparison, ncg_trajectories

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    out = Path(output)
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    mnist, why = _mnist_path(data)
    specs = (smoke_specs if scale == "smoke" else paper_specs)(folder, mnist)
    computed: list[str] = []
    missing: dict[str, str] = {}
    if mnist is None:
        missing.update({"study-mnist": why, "rewiring-mnist.nc": why, "rewiring-mnist-500.nc": why})
    for name, spec in specs.items():
        t0 = time.perf_counter()
        run = run_study(spec, client=client, retries=retries)
        done, failed = run.count("done"), run.count("failed")
        computed.extend(f"{name}: {o.key}" for o in run.outcomes if o.status == "done")
        log(f"study {name} ({spec.name}): {done} tasks run, {run.count('skipped')} skipped, {failed} failed "
            f"({time.perf_counter() - t0:.1f} s)")
        if failed:
            errors = Path(spec.output) / "manifest"
            missing[f"study-{name}"] = (f"{failed} tasks failed (their errors: {errors}/*.json; running the same "
                                        "command again retries them)")
        t0 = time.perf_counter()
        made = study_report(spec, study=run.study)
        if made.recomputed:
            computed.append(f"{name}: report")
        log(f"report {name}: {', '.join(sorted(made.files))}" + (
            f" ({time.perf_counter() - t0:.1f} s)" if made.recomputed else " (up to date)"))
    settings = _REWIRING[scale]
    t0 = time.perf_counter()
    _experiment_file(folder / "rewiring-ncg.nc", _experiment_settings(
        settings.ncg, seed, initial_densities=[1.0, 0.5, 0.1], n_hidden=16),
        lambda: ncg_trajectories(**settings.ncg, seed=seed), computed)
    log(f"rewiring-ncg.nc ({time.perf_counter() - t0:.1f} s)")
    if mnist is not None:
        classifier = _study_classifier(specs.get("mnist"))
        for name, kwargs in (("rewiring-mnist.nc", settings.mnist), ("rewiring-mnist-500.nc", settings.mnist_500)):
            t0 = time.perf_counter()
            experiment, kwargs = _comparison_settings(kwargs, seed, classifier)
            several = not isinstance(kwargs["epochs"], int) and len(kwargs["epochs"]) > 1
            _experiment_file(folder / name, experiment,
                             lambda kwargs=kwargs, work=folder / name.replace(".nc", ".work"):
                             mnist_comparison(mnist, **kwargs, work_dir=work), computed,
                             needs=BUDGET_VARIABLES if several else ())
            log(f"{name} ({time.perf_counter() - t0:.1f} s)")
    history = folder / "train-teacher" / "history.nc"
    if not history.exists():
        t0 = time.perf_counter()
        trained = subprocess.run([sys.executable, "-m", "dilution.cli", "train", *settings.train, "--seed", str(seed),
                                  "--quiet", "--overwrite", "--output", str(history.parent)],
                                 capture_output=True, text=True, check=False)
        if trained.returncode == 0:
            computed.append("train-teacher")
            log(f"train-teacher/history.nc ({time.perf_counter() - t0:.1f} s)")
        else:
            missing["train-teacher"] = f"dilution train failed: {trained.stderr.strip()[-500:]}"
    try:
        from .stationary import run_bias_experiments, run_experiments
    except ImportError as err:
        missing["stationary-*.nc"] = f"studies.stationary is not available ({err})"
    else:
        # the stationary-law experiments, then the learning-rate halving and estimator-bias ones,
        # each kept while its stamp records the same scale and seed and its files exist
        for stamp_name, step, run in (("stationary.json", "stationary", run_experiments),
                                      ("stationary-bias.json", "stationary bias", run_bias_experiments)):
            stamp = folder / stamp_name
            wanted = {"scale": scale, "seed": seed}
            previous = json.loads(stamp.read_text(encoding="utf-8")) if stamp.exists() else None
            if previous is None or previous.get("settings") != wanted or not all(
                    (folder / f).exists() for f in previous.get("files", ())):
                t0 = time.perf_counter()
                files = run(scale, folder, seed=seed, progress=False)
                from dilution.io import atomic_write

                with atomic_write(stamp) as tmp:
                    tmp.write_text(json.dumps({"settings": wanted, "files": sorted(Path(f).name for f in files)}),
                                   encoding="utf-8")
                computed.append(step)
                log(f"{step}: {', '.join(Path(f).name for f in files)} ({time.perf_counter() - t0:.1f} s)")
    folder_out = out / "figures"
    if not figures:
        return ReproduceRun(tuple(computed), missing, folder_out, 0, "")
    drawn = draw_figures(folder, folder_out)
    if drawn.returncode != 0:
        log(drawn.stderr.rstrip())
    return ReproduceRun(tuple(computed), missing, folder_out, drawn.returncode, drawn.stdout)


def register(subparsers) -> None:
    """Add the ``reproduce`` command to the ``dilution`` parser."""
    p = subparsers.add_parser("reproduce", help="every dataset of the paper's figures, then the figures",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", required=True, choices=SCALES,
                   help="smoke: minutes, every figure from tiny studies; paper: the built-in studies (hours)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="dask LocalCluster with this many worker processes")
    where.add_argument("--scheduler", help="address of a running dask scheduler")
    p.add_argument("--output", "-o", default="reproduce", help="output folder (default: reproduce)")
    p.add_argument("--data", help="MNIST: mnist.npz or IDX folder (default $DILUTION_DATA/mnist/mnist.npz)")
    p.add_argument("--retries", type=int, default=2, help="attempts after a failed one, per study task (default 2)")
    p.add_argument("--no-figures", action="store_true", help="only make the data, do not draw the figures")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from .runner import resume_hint, serial_interrupt, study_client

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {args.retries}")
    from dilution.io import check_output_folder

    check_output_folder("--output", Path(args.output))
    mnist, _ = _mnist_path(args.data)  # a bad --data is refused before any study starts
    t0 = time.perf_counter()
    with resume_hint(args.output):
        if args.scale == "paper":
            from dilution import interrupt

            from .cost import estimate_cost, format_cost

            with interrupt.deferred():  # the estimates' probe updates run kernels: stop between two of them
                for name, spec in paper_specs(Path(args.output) / "data", mnist).items():
                    print(f"{name}: " + format_cost(estimate_cost(spec, workers=args.workers or 1)), flush=True)
                    interrupt.check()
        warm = ()
        if args.workers is not None:
            warm = (smoke_specs if args.scale == "smoke" else paper_specs)(Path(args.output) / "data", mnist).values()
        with study_client(args.workers, args.scheduler, warm=warm) as client, serial_interrupt(client):
            run = reproduce(args.scale, args.output, client=client, data=args.data, retries=args.retries,
                            figures=not args.no_figures, log=lambda line: print(line, flush=True))
    print(run.figures_output.rstrip())
    for name, why in run.missing.items():
        print(f"not made: {name}: {why}")
    print(f"reproduce --scale {args.scale}: {len(run.computed)} steps computed"
          f"{'' if run.computed else ' (everything was up to date)'} in {time.perf_counter() - t0:.1f} s; "
          f"figures in {run.figures}", flush=True)
    return 1 if run.figures_exit != 0 or any("failed" in why for why in run.missing.values()) else 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m studies.reproduce")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["reproduce", *sys.argv[1:]])
    raise SystemExit(_args.func(_args))
