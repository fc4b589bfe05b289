"""``dilution evaluate``: every quality measure of a saved model against held-out data.

Registered with the ``dilution`` command through the ``dilution.commands`` entry-point group,
so the engine's command line does not import this package.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

__all__ = ["register", "evaluate", "AIS_SCHEDULES", "DEFAULT_AIS_BETAS"]

AIS_SCHEDULES = ("classic", "linear")
# The length of Salakhutdinov & Murray's schedule: --ais-betas unset with the classic shape is their schedule.
DEFAULT_AIS_BETAS = 14_500
# classic(n) puts at least one beta in each of its first two pieces and two in the last
_MIN_BETAS = {"classic": 4, "linear": 2}

def _epilog() -> str:
    from dilution.exact import MAX_UNITS

    return f"""\
Data (--data): an MNIST .npz file or IDX folder (its test split is used, binarised at 0.5), or a
netCDF file written by dilution (a Dataset with `states` or `images`).

Log-likelihood: exact when the smaller layer has at most {MAX_UNITS} units (dilution.exact.MAX_UNITS), otherwise AIS with --ais
(forward estimate with its standard error and the reverse-AIS bound, so a bracket). An AIS log Z
is a result only when doubling the betas does not move it: --ais-doubling runs that check, and
--ais-doublings K a series of K doublings, which shows a creep one doubling can hide. The
--ais-* options are range-checked always; without --ais they are refused for a model too large to
enumerate (they would set up an AIS that does not run) and ignored, with a note, for one small
enough to enumerate.
For large trained models (e.g. 784 x 500 MNIST RBMs): --ais --ais-resample 0.5 --ais-doublings 2,
with --ais-checkpoint for runs of hours.
Samples for the sample-based metrics come from --n-samples independent Gibbs chains of
--n-sweeps sweeps each, started uniformly at random.

Example:
  dilution evaluate runs/mnist-seed0/model.nc --data ../shared/data/mnist/mnist.npz --ais \\
      --classifier classifier_seed0.nc --output runs/mnist-seed0/evaluation.nc"""


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand to the ``dilution`` parser."""
    ev = subparsers.add_parser(
        "evaluate",
        help="quality metrics of a saved model against held-out data (log-likelihood, moments, PCA, AATS, classifier)",
        description="Evaluate a saved RBM against held-out data: exact or AIS log-likelihood, "
        "pseudo-likelihood and reconstruction error (proxies), moment errors, PCA distance, "
        "nearest-neighbour adversarial accuracy and, for MNIST, the auxiliary-classifier scores.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("model", type=Path, help="model file written by `dilution train` or dilution.save, "
                    "or a run folder holding model.nc")
    ev.add_argument("--data", type=Path, required=True, help="held-out data (see below)")
    ev.add_argument("--max-data", type=int, default=10000, help="use at most this many data rows (default 10000)")
    ev.add_argument("--n-samples", type=int, default=1000, help="Gibbs chains for the sample-based metrics (default 1000)")
    ev.add_argument("--n-sweeps", type=int, default=1000, help="sweeps per chain (default 1000)")
    ev.add_argument("--ais", action="store_true", help="estimate log Z by AIS when exact enumeration is impossible")
    ev.add_argument("--ais-chains", type=int, default=100, help="AIS chains (default 100)")
    ev.add_argument("--ais-betas", type=int, default=None,
                    help=f"number of AIS betas, in the shape of --ais-schedule (default {DEFAULT_AIS_BETAS:,}: "
                    "with the classic shape, Salakhutdinov & Murray's schedule)")
    ev.add_argument("--ais-schedule", choices=AIS_SCHEDULES, default="classic",
                    help="shape of the AIS betas: classic (default), Salakhutdinov & Murray's proportions, 1/29 of "
                    "the betas in [0, 0.5), 8/29 in [0.5, 0.9) and 20/29 in [0.9, 1], dense near beta = 1 where "
                    "a trained RBM's distributions change fastest; or linear, equally spaced, the behaviour of "
                    "--ais-betas before this option, which underestimated log Z by 8-12 nats on some PCD-trained "
                    "784 x 500 MNIST RBMs where the classic shape cost nothing on easy ones")
    ev.add_argument("--ais-resample", type=float, default=0.0, metavar="R",
                    help="AIS with adaptive resampling (an SMC sampler): a population of chains is resampled when "
                    "its effective sample size falls below R times its size; 0 (default) is plain AIS, 0.5 is usual. "
                    "Use it for large trained models, where plain AIS's weights collapse onto one or two chains")
    ev.add_argument("--ais-groups", type=int, default=10, metavar="G",
                    help="independent populations for --ais-resample (default 10), each of --ais-chains / G chains "
                    "(at least 2); log Z's standard error is taken over them. Ignored when --ais-resample is 0")
    ev.add_argument("--ais-doubling", action="store_true",
                    help="the budget-doubling check: estimate log Z again, independently, with twice the betas in "
                    "the same shape, and record the doubled estimate, its standard error, the shift and "
                    "ais_log_z_converged (1 if |shift| <= 3 combined standard errors); warns when log Z moved, "
                    "since a log Z is not a result until doubling the betas does not move it (necessary, not "
                    "sufficient: a slow creep can pass one doubling; see --ais-doublings). "
                    "Costs a forward run of twice the betas (about doubling the AIS time)")
    ev.add_argument("--ais-doublings", type=int, metavar="K",
                    help="the doubling check K times: 2, 4, ..., 2^K times the betas, each an independent forward "
                    "run, recorded as ais_log_z_series; converged only when no two budgets give log Z more than "
                    "3 combined standard errors apart, which catches a creep that passes each single doubling. "
                    "The most betas give the best estimate, ais_log_z_doubled (and the test log-likelihood with "
                    "it, ais_mean_log_likelihood_doubled). Costs forward runs of "
                    "2 + 4 + ... + 2^K times the betas")
    ev.add_argument("--ais-checkpoint", type=Path, metavar="FILE",
                    help="make the AIS runs resumable: their chains are saved to FILE (.npz) every few minutes, "
                    "at the end of each direction and on Ctrl-C; the same command run again continues from it "
                    "and gives the uninterrupted run's numbers (a command with other AIS options, seed or model "
                    "is refused). The doubling runs keep FILE's stem + '-doubled', '-doubled2', .... Worth it for runs of an "
                    "hour or more, e.g. --ais-betas in the millions on a 784 x 500 model")
    ev.add_argument("--classifier", type=Path,
                    help="digit-classifier cache (netCDF); trained on the MNIST training split of --data if missing")
    ev.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ev.add_argument("--output", "-o", type=Path, help="results file (default: <model>-evaluation.nc)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    # what the --ais-* options are when not given: an AIS option given where no AIS runs is named
    ev.set_defaults(func=_run, ais_option_defaults={
        a.dest: a.default for a in ev._actions if a.dest.startswith("ais_")})


def _load_data(path: Path, n_visible: int, max_rows: int) -> tuple[np.ndarray, str]:
    from dilution import io
    from dilution.data import binarize, mnist
    from dilution.data.split import as_matrix

    if path.suffix == ".nc":
        ds = io.load(path)
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"{path} holds a model, not data")
        x = as_matrix(ds)
        what = f"dataset {path.absolute()}"
    else:
        x = as_matrix(binarize.binarize(mnist.load_mnist(path, "test")))
        what = f"MNIST test split of {path.absolute()}, threshold 0.5"
    if x.shape[1] != n_visible:
        raise ValueError(f"data from {path} has {x.shape[1]} visible units, the model has {n_visible}")
    return np.ascontiguousarray(x[:max_rows], dtype=np.float64), what


def _prefixed(ds: xr.Dataset, prefix: str) -> xr.Dataset:
    """Variables and dimensions renamed ``prefix_name`` so that metrics merge without clashes."""
    names = {name: f"{prefix}_{name}" for name in list(ds.variables) + list(ds.dims)}
    out = ds.rename(names)
    # the metric's own description (e.g. is_proxy) travels with each of its variables
    inherited = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float, np.number))}
    for name in out.data_vars:
        out[name].attrs = {**inherited, **out[name].attrs}
        out[name].attrs.setdefault("metric", prefix)
    out.attrs = {}
    return out


def evaluate(
    rbm,
    data: np.ndarray,
    *,
    n_samples: int,
    n_sweeps: int,
    seed: int,
    ais: bool = False,
    ais_chains: int = 100,
    ais_betas: int | None = None,
    ais_schedule: Literal["classic", "linear"] = "classic",
    ais_resample: float = 0.0,
    ais_groups: int = 10,
    ais_doubling: int = 0,
    ais_checkpoint: str | os.PathLike | None = None,
    classifier=None,
    progress: bool | None = None,
) -> xr.Dataset:
    """All quality measures of ``rbm`` against ``data`` as one Dataset (variables prefixed by metric).

    Parameters
    ----------
    rbm : dilution.RBM
    data : ndarray, shape (n, n_visible)
        Held-out binary data.
    n_samples, n_sweeps : int
        Independent Gibbs chains and their length, for the sample-based metrics.
    seed : int
    ais : bool
        Run AIS when the model is too large for exact enumeration (:func:`analysis.likelihood.ais_log_likelihood`,
        forward and reverse, base rates from ``data``). The ``ais_*`` options are checked but otherwise
        ignored without it.
    ais_chains : int >= 2
        AIS chains.
    ais_betas : int, optional
        Number of betas, in the shape ``ais_schedule``; default ``DEFAULT_AIS_BETAS`` (14,500),
        which with the classic shape is Salakhutdinov & Murray's schedule.
    ais_schedule : {"classic", "linear"}
        :func:`dilution.schedules.classic` (the proportions of Salakhutdinov & Murray 2008, at least
        4 betas) or :func:`dilution.schedules.linear` (at least 2).
    ais_resample : float in [0, 1)
        0: plain AIS. Above 0: AIS with adaptive resampling in ``ais_groups`` populations
        (:func:`dilution.ais.log_partition`'s ``resample``; 0.5 is usual).
    ais_groups : int
        Populations for ``ais_resample``; must divide ``ais_chains`` into populations of at least 2.
    ais_doubling : int >= 0
        Also estimate ``log Z`` with 2, 4, ..., 2^K times the betas in the same shape (independent
        forward runs; ``True`` is one doubling): adds ``ais_log_z_doubled``,
        ``ais_log_z_doubled_std``, ``ais_mean_log_likelihood_doubled``, ``ais_log_z_shift``, ``ais_log_z_converged`` and the series
        ``ais_log_z_series`` and ``ais_log_z_series_std`` on dim ``ais_n_betas``
        (:func:`analysis.likelihood.ais_log_likelihood`'s ``doubled_betas``).
    ais_checkpoint : path, optional
        Checkpoint file of the AIS runs (:func:`dilution.ais.log_partition`'s ``checkpoint``): an
        interrupted call, made again, continues from it.
    classifier : analysis.classifier.DigitClassifier, optional

    Returns
    -------
    xarray.Dataset
    """
    from dilution import schedules
    from dilution.ais import check_resampling
    from dilution.exact import MAX_UNITS
    from dilution.gibbs import sample
    from dilution.validation import check_int

    from . import aats, classifier as clf, likelihood, moments, pca, pseudolikelihood, reconstruction

    if ais_schedule not in AIS_SCHEDULES:
        raise ValueError(f"ais_schedule must be one of {', '.join(AIS_SCHEDULES)}, got {ais_schedule!r}")
    check_int("ais_chains", ais_chains, low=2)
    n_betas = DEFAULT_AIS_BETAS if ais_betas is None else check_int("ais_betas", ais_betas, low=_MIN_BETAS[ais_schedule])
    check_int("ais_groups", ais_groups, low=2)
    ais_resample = check_resampling(ais_resample, ais_groups, ais_chains,
                                    names=("ais_resample", "ais_groups", "ais_chains"))
    n_doublings = int(ais_doubling) if isinstance(ais_doubling, bool) else check_int("ais_doubling", ais_doubling,
                                                                                     low=0)
    parts: list[xr.Dataset] = []
    if min(rbm.n_visible, rbm.n_hidden) <= MAX_UNITS:
        parts.append(_prefixed(likelihood.exact_log_likelihood(rbm, data), "exact"))
    elif ais:
        shape = schedules.classic if ais_schedule == "classic" else schedules.linear
        part = likelihood.ais_log_likelihood(
            rbm, data, n_chains=ais_chains, seed=seed, betas=shape(n_betas), base_data=data,
            doubled_betas=[shape(2**k * n_betas) for k in range(1, n_doublings + 1)] or None,
            resample=ais_resample, n_groups=ais_groups,
            checkpoint=ais_checkpoint, progress=progress,
        )
        part.attrs["ais_schedule"] = ais_schedule
        parts.append(_prefixed(part, "ais"))
    parts.append(_prefixed(pseudolikelihood.pseudo_log_likelihood(rbm, data, method="stochastic", seed=seed), "pll"))
    parts.append(_prefixed(reconstruction.reconstruction_error(rbm, data), "reconstruction"))
    samples = sample(rbm, n_samples, n_sweeps, seed=seed, progress=progress).astype(np.float64)
    parts.append(_prefixed(moments.moment_errors(samples, data), "moments"))
    parts.append(_prefixed(pca.pca_comparison(samples, data), "pca"))
    parts.append(_prefixed(aats.adversarial_accuracy(data[: len(samples)], samples[: len(data)]), "aats"))
    if classifier is not None:
        parts.append(_prefixed(clf.classifier_score(classifier, samples), "classifier"))
    out = xr.merge(parts, combine_attrs="drop_conflicts")
    out.attrs.update(n_samples=n_samples, n_sweeps=n_sweeps, seed=seed, n_data=len(data))
    return out


def _run(args: argparse.Namespace) -> int:
    from dilution import interrupt, io
    from dilution.ais import CheckpointMismatchError, check_resampling
    from dilution.model import RBM
    from dilution.provenance import provenance
    from dilution.io import check_new_file
    from dilution.validation import check_int

    # every flag is checked before a file is read or a metric computed
    max_data = check_int("--max-data", args.max_data, low=1)
    n_samples = check_int("--n-samples", args.n_samples, low=1)
    n_sweeps = check_int("--n-sweeps", args.n_sweeps, low=0)
    # the --ais-* options are checked even without --ais, as --ais-chains always was
    ais_chains = check_int("--ais-chains", args.ais_chains, low=2)  # two at least, for a standard error
    if args.ais_betas is not None:
        low = _MIN_BETAS[args.ais_schedule]
        if args.ais_betas < low:
            raise ValueError(f"--ais-betas must be an integer >= {low} with --ais-schedule {args.ais_schedule}, "
                             f"got {args.ais_betas}")
    check_int("--ais-groups", args.ais_groups, low=2)
    doublings = int(args.ais_doubling)
    if args.ais_doublings is not None:
        doublings = check_int("--ais-doublings", args.ais_doublings, low=1)
        if args.ais_doubling and doublings != 1:
            raise ValueError(f"--ais-doubling is one doubling and --ais-doublings {doublings} asks for "
                             f"{doublings}; give one of them")
    ais_resample = check_resampling(args.ais_resample, args.ais_groups, ais_chains,
                                    names=("--ais-resample", "--ais-groups", "--ais-chains"))
    seed = check_int("--seed", args.seed, low=0)
    checkpoint = args.ais_checkpoint
    if checkpoint is not None and (checkpoint.is_dir() or not checkpoint.absolute().parent.is_dir()):
        raise ValueError(f"--ais-checkpoint {checkpoint} must be a file in an existing folder, e.g. "
                         "runs/mnist-seed0/ais-checkpoint.npz")
    path = args.model
    if path.is_dir():
        if not (path / "model.nc").is_file():
            raise ValueError(f"{path} is a folder without model.nc; expected a model file written by "
                             "`dilution train` or dilution.save, or the run folder holding it")
        path = path / "model.nc"
    output = args.output or path.with_name(path.stem + "-evaluation.nc")
    # the files this command writes, checked before hours of AIS: none of them one of its inputs
    check_new_file("--output", output, inputs=[path, args.data], overwrite=args.overwrite)
    if checkpoint is not None:
        check_new_file("--ais-checkpoint", checkpoint, inputs=[path, args.data, output])
    if args.classifier is not None:  # read if it exists, else trained and written there
        check_new_file("--classifier", args.classifier, inputs=[path, args.data, output]
                       + ([checkpoint] if checkpoint is not None else []))
    model = io.load(path)
    if not isinstance(model, RBM):
        raise ValueError(f"{path} holds a dataset, not an RBM model")
    unused_ais = _unused_ais_options(args, model)
    data, described = _load_data(args.data, model.n_visible, max_data)
    classifier = None
    # a Ctrl-C stops between two chunks of the drivers (the AIS chains offered to the checkpoint),
    # never inside a kernel, where it could crash the process (dilution.interrupt)
    try:
        with interrupt.deferred():
            if args.classifier is not None:
                classifier = _classifier(args.classifier, args.data, seed, progress=False if args.quiet else None)
            result = evaluate(
                model, data, n_samples=n_samples, n_sweeps=n_sweeps, seed=seed, ais=args.ais,
                ais_chains=ais_chains, ais_betas=args.ais_betas, ais_schedule=args.ais_schedule,
                ais_resample=ais_resample, ais_groups=args.ais_groups, ais_doubling=doublings,
                ais_checkpoint=checkpoint, classifier=classifier, progress=False if args.quiet else None,
            )
    except CheckpointMismatchError as err:  # its message says what to do; here it names the flag
        raise CheckpointMismatchError("--ais-checkpoint " + str(err).removeprefix("checkpoint ")) from None
    except BaseException:
        if checkpoint is not None and checkpoint.exists():
            print(f"dilution evaluate: the AIS chains are saved in {checkpoint}; the same command continues "
                  "from them", file=sys.stderr)
        raise
    result.attrs.update(provenance(model=str(path.absolute()), data=described, seed=seed))
    io.save(result, output)
    _print(result)
    if "ais_log_z_converged" in result and not int(result["ais_log_z_converged"]) \
            and result.sizes["ais_n_betas"] > 2:
        steps = ", ".join(f"{int(n):,}: {float(z):.2f} ({float(e):.2f})" for n, z, e in zip(
            result["ais_n_betas"].values, result["ais_log_z_series"].values, result["ais_log_z_series_std"].values))
        print(f"dilution evaluate: warning: log Z moved along the doublings of the betas: not converged at these "
              f"budgets; use more betas (betas: log Z (standard error): {steps})", file=sys.stderr)
    elif "ais_log_z_converged" in result and not int(result["ais_log_z_converged"]):
        shift = float(result["ais_log_z_shift"])
        se = math.hypot(float(result["ais_log_z_std"]), float(result["ais_log_z_doubled_std"]))
        attrs = result["ais_log_z_shift"].attrs
        print(f"dilution evaluate: warning: log Z moved by {shift:+.3g} nats when the betas doubled: not converged "
              f"at this budget; use more betas ({attrs['ais_n_betas']:,} -> {attrs['ais_n_betas_doubled']:,} betas; "
              f"the shift is {abs(shift) / se if se else math.inf:.1f} combined standard errors of {se:.3g} nats)",
              file=sys.stderr)
    if unused_ais:
        print(f"  log Z is exact for this model: {unused_ais} not used")
    if not any(name.startswith(("exact_", "ais_")) for name in result.data_vars):
        from dilution.exact import MAX_UNITS

        print(f"  log-likelihood not computed: {min(model.n_visible, model.n_hidden)} units in the smaller layer, "
              f"more than {MAX_UNITS} for exact enumeration; add --ais for an AIS estimate with its error bar")
    print(f"wrote {output}")
    return 0


def _unused_ais_options(args: argparse.Namespace, model) -> str:
    """The --ais options given (``"--ais-betas 1000, ..."``) where no AIS runs: an enumerable model takes
    exact log Z (returned, for a note); a larger one without --ais raises, since the user meant AIS."""
    from dilution.exact import MAX_UNITS

    defaults = getattr(args, "ais_option_defaults", {})
    given = [f"--{dest.replace('_', '-')}" + ("" if value is True else f" {value}")
             for dest, value in vars(args).items()
             if dest in defaults and dest != "ais_option_defaults" and value != defaults[dest]]
    if not given:
        return ""
    units = min(model.n_visible, model.n_hidden)
    if units <= MAX_UNITS:
        return ", ".join(given)
    if not args.ais:
        raise ValueError(f"{', '.join(given)} set up AIS, which runs only with --ais: add --ais (this model's smaller "
                         f"layer has {units} units, more than {MAX_UNITS} for exact enumeration)")
    return ""


def _classifier(path: Path, data: Path, seed: int, progress: bool | None):
    from dilution.data import mnist

    from .classifier import load_or_train_classifier

    train = mnist.load_mnist(data, "train")
    test = mnist.load_mnist(data, "test")
    return load_or_train_classifier(
        path, train["images"].values, train["labels"].values, seed=seed,
        test_images=test["images"].values, test_labels=test["labels"].values, progress=progress,
    )


def _print(result: xr.Dataset) -> None:
    """Scalars, and short labelled vectors (e.g. one value per statistic), one line each."""
    for name in sorted(result.data_vars):
        var = result[name]
        if not np.issubdtype(var.dtype, np.number) or var.ndim > 1 or var.size > 4:
            continue
        proxy = " (proxy)" if var.attrs.get("is_proxy") else ""
        if var.ndim == 0:
            rows: list[tuple[str, Any]] = [(name, float(var))]
        else:
            dim = var.dims[0]
            labels = result[dim].values if dim in result.coords else range(var.size)
            rows = [(f"{name}[{label}]", float(v)) for label, v in zip(labels, var.values)]
        for label, value in rows:
            if math.isfinite(value):
                print(f"  {label:<45} {value: .5g}{proxy}")
