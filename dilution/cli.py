"""The ``dilution`` command line: train, sample, convert and evaluate diluted RBMs, run studies and reproduce the
figures (``dilution --help``)."""

from __future__ import annotations

import os
import signal
import sys


def _quiet_start_up_interrupt(signum, frame) -> None:
    """Ctrl-C while the command starts (numpy, numba and the subcommands importing): nothing has
    been written, so leave at once with one line, not a traceback from inside an import."""
    os.write(2, b"dilution: interrupted\n")
    os._exit(130)


# The program itself (the ``dilution`` script or ``python -m dilution.cli``, not an importer such as
# a test): the quiet handler goes in before the imports below, which take a quarter of a second.
if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "dilution":
    signal.signal(signal.SIGINT, _quiet_start_up_interrupt)
    if os.environ.get("DILUTION_TEST_INTERRUPT") == "start-up":  # test hook, see _test_interrupt
        os.kill(os.getpid(), signal.SIGINT)

import argparse
import contextlib
import json
import math
import shutil
import time
import tomllib
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .interrupt import is_interrupt
from .validation import check_finite, check_int

__all__ = ["main", "build_parser", "default_text", "DEFAULTS", "DATASET_DEFAULTS", "RULE_DEFAULTS"]

def _description() -> str:
    mnist = DATASET_DEFAULTS["mnist"]
    return f"""\
Train and sample diluted (masked) binary Restricted Boltzmann Machines.

Start here:
  dilution study run quick --workers 2 --report   # where quality collapses under pruning (minutes)
  dilution train                         # planted-teacher demo: exact log-likelihoods, sample grid
  dilution train --data ../shared/data/mnist/mnist.npz   # MNIST: {mnist['n_hidden']} hidden units, {mnist['epochs']} epochs
  dilution sample runs/teacher-seed0 --n-samples 64
  dilution evaluate runs/teacher-seed0/model.nc --data runs/teacher-seed0/test.nc
  dilution convert ../shared/models/mnistvh.mat mnistvh.nc   # a Salakhutdinov & Murray MATLAB model

Every command writes netCDF files (open them with xarray.open_dataset) and prints a summary.
Run `dilution COMMAND --help` for the options of each command."""


TRAIN_EPILOG = """\
Datasets:
  teacher       (default, built in) i.i.d. samples drawn exactly from a random diluted teacher RBM
                whose hidden layer is small enough to enumerate, so the true log-likelihood of the
                test data is known; the student is trained on them and compared with it.
  bars-stripes  the n x n bars-and-stripes patterns (exact data distribution known).
  mnist         MNIST from --data (mnist.npz in the Keras layout, or a folder of IDX files),
                binarised by --binarize; nothing is downloaded.

Outputs in --output: model.nc (the trained RBM, its summary in the attrs), history.nc (metrics
and masks at checkpoints, metrics per epoch), state.nc (the full training state, saved at every
checkpoint and on Ctrl-C: `dilution train --resume DIR` continues the run), samples.png (the
model's samples: its persistent chains or parallel tempering), data.png (test data, for
comparison), best-model.nc (the model at the checkpoint of highest log-likelihood on the
training data, when the checkpoints measure one), and for generated data test.nc (the held-out set).

A TOML file given with --config may set any option by its long name (dashes or underscores),
e.g.  n_hidden = 100  or  method = "cd", and the rule's options as a table,
rule_options = {fraction = 0.8, at_epochs = [30]}; options given on the command line win (a
--rule-option flag over the same key of that table)."""

DEFAULTS: dict[str, Any] = {
    "dataset": "teacher",
    "data": None,
    "binarize": "threshold",
    "n_hidden": None,
    "connectivity": None,
    "method": "pcd",
    "k": 10,
    "epochs": None,
    "batch_size": 100,
    "n_chains": None,
    "learning_rate": None,
    "momentum": 0.5,
    "l2": 0.0,
    "l1": 0.0,
    "dtype": "float64",
    "seed": 0,
    "output": None,
    "checkpoints": 10,
    "checkpoint_log_likelihood": "auto",
    "rule": "static",
    "rule_options": {},
    "n_train": 20000,
    "n_test": 5000,
    "teacher_visible": 64,
    "teacher_hidden": 10,
    "teacher_connectivity": 0.25,
    "teacher_weight_scale": 3.0,
    "bars_size": 4,
    "sample_sweeps": 1000,
    "grid_samples": 100,
}

# Per-dataset defaults for options whose sensible value depends on the data.
DATASET_DEFAULTS = {
    "teacher": {"n_hidden": 16, "connectivity": 0.5, "epochs": 30, "learning_rate": 0.05},
    # PCD on bars-and-stripes (a few far-apart modes) collapsed with 10 chains, learning rate 0.05 and
    # momentum 0.5 (exact test log-likelihood -222 nats after 400 epochs); 200 chains, 0.02 and no
    # momentum reach -3.75 (optimum -log 30 = -3.40) after ~20k updates, and a constant rate drifts after.
    "bars-stripes": {"n_hidden": 16, "connectivity": 1.0, "epochs": 12, "learning_rate": 0.02, "batch_size": 10,
                     "momentum": 0.0, "n_chains": 200},
    "mnist": {"n_hidden": 100, "connectivity": 1.0, "epochs": 10, "learning_rate": 0.01},
}


# Rules whose sampler or reference protocol needs plain SGD: momentum defaults to 0 for them.
RULE_DEFAULTS = {"ncg": {"momentum": 0.0}, "deep-r": {"momentum": 0.0}, "soft-deep-r": {"momentum": 0.0}}
RULES = ("static", "prune", "ncg", "deep-r", "soft-deep-r")


def _rule_option(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE such as fraction=0.8, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string option such as criterion=random
    return name.strip().replace("-", "_"), parsed


def _format_default(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def default_text(name: str) -> str:
    """The default of train option ``name`` as its help shows it, read from DEFAULTS, DATASET_DEFAULTS
    and RULE_DEFAULTS (so the help cannot drift from what a run uses): ``"default 0.5"``, or
    ``"default: 30 teacher, 12 bars-stripes, 10 mnist"`` when it depends on the dataset."""
    per_dataset = {d: table.get(name, DEFAULTS[name]) for d, table in DATASET_DEFAULTS.items()}
    if len({_format_default(v) for v in per_dataset.values()}) > 1:
        text = "default: " + ", ".join(f"{_format_default(v)} {d}" for d, v in per_dataset.items())
    else:
        text = f"default {_format_default(next(iter(per_dataset.values())))}"
    by_rule: dict[str, list[str]] = {}
    for rule, table in RULE_DEFAULTS.items():
        if name in table:
            by_rule.setdefault(_format_default(table[name]), []).append(rule)
    for value, rules in by_rule.items():
        text += f"; {value} with --rule {', '.join(rules)}"
    return text


def _option(group, *flags: str, help: str, **kwargs: Any) -> None:
    """``group.add_argument`` with the option's default appended to its help from the tables."""
    name = kwargs.get("dest") or flags[-1].lstrip("-").replace("-", "_")
    if name in DEFAULTS and DEFAULTS[name] is not None or any(name in t for t in DATASET_DEFAULTS.values()):
        help = f"{help} ({default_text(name)})"
    group.add_argument(*flags, help=help, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from .data.teacher import MAX_HIDDEN
    from .exact import MAX_UNITS
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="dilution", description=_description(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dilution {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tr = sub.add_parser(
        "train",
        help="train a diluted RBM (CD-k, PCD-k, parallel tempering or exact gradient; a fixed mask, pruning or "
             "rewiring) and write model, history and a sample grid",
        description="Train a diluted RBM by CD-k, PCD-k, PCD with parallel-tempering chains or the exact gradient, "
                    "with a fixed random connection mask (--connectivity), pruning or a rewiring rule (--rule).",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    tr.add_argument("--config", type=Path, help="TOML file with option values (command-line flags override it)")
    g = tr.add_argument_group("data")
    _option(g, "--dataset", choices=list(DATASET_DEFAULTS), help="training data; --data alone implies mnist")
    g.add_argument("--data", type=Path, help="MNIST file (.npz) or folder of IDX files (implies --dataset mnist)")
    _option(g, "--binarize", choices=["threshold", "stochastic"],
            help="MNIST binarisation: pixel/255 > 0.5, or Bernoulli(pixel/255) seeded by --seed")
    _option(g, "--n-train", type=int, help="teacher, bars-stripes: training samples")
    _option(g, "--n-test", type=int, help="teacher: test samples")
    _option(g, "--teacher-visible", type=int, help="teacher: visible units")
    _option(g, "--teacher-hidden", type=int, help=f"teacher: hidden units, at most {MAX_HIDDEN}")
    _option(g, "--teacher-connectivity", type=float, help="teacher: fraction of connections")
    _option(g, "--teacher-weight-scale", type=float, help="teacher: std of its weights")
    _option(g, "--bars-size", type=int, help="bars-and-stripes: image side n")
    g = tr.add_argument_group("model")
    _option(g, "--n-hidden", type=int, help="hidden units of the trained RBM")
    _option(g, "--connectivity", type=float,
            help="fraction of visible-hidden connections kept, mask drawn at random (not with --rule ncg, deep-r "
                 "or soft-deep-r, which draw their own: see their options)")
    _option(g, "--dtype", choices=["float32", "float64"], help="precision")
    g = tr.add_argument_group("training")
    _option(g, "--method", choices=["pcd", "cd", "ptpcd", "exact"],
            help="gradient estimator: persistent CD, plain CD, PCD with parallel-tempering chains, "
                 "or the exact gradient (small models)")
    _option(g, "-k", "--k", type=int, help="Gibbs sweeps per update")
    _option(g, "--epochs", type=int, help="passes over the training data")
    _option(g, "--batch-size", type=int, help="samples per update")
    g.add_argument("--n-chains", type=int,
                   help="PCD persistent chains (default: 200 bars-stripes, the batch size otherwise)")
    _option(g, "--learning-rate", "--lr", dest="learning_rate", type=float, help="SGD learning rate")
    _option(g, "--momentum", type=float, help="SGD momentum")
    _option(g, "--l2", type=float, help="L2 weight decay")
    _option(g, "--l1", type=float, help="L1 weight decay")
    _option(g, "--checkpoints", type=int, help="log-spaced checkpoints in the history")
    _option(g, "--checkpoint-log-likelihood", choices=["auto", "exact", "ais", "none"],
            help="train log-likelihood at checkpoints: by enumeration, by a short AIS (100 chains x 1000 betas, "
                 f"with its standard error), or none; auto: exact when the smaller layer has at most "
                 f"{MAX_UNITS} units, else AIS")
    _option(g, "--seed", type=int, help="seed of every random choice")
    g = tr.add_argument_group(
        "connectivity rule",
        "What changes the mask during training. Options are the fields of the rule's class, given as\n"
        "--rule-option NAME=VALUE (repeatable; values in TOML syntax, e.g. at_epochs=[10,20]); the\n"
        "options before the semicolon are required:\n"
        "  prune        dilution.pruning_rules.PruningProtocol: fraction; at_epochs, criterion\n"
        "               (global_magnitude, unit_magnitude, random, degree_preserving_random, saliency),\n"
        "               then (continue, rewind, reinit), rewind_epoch, reinit_scale\n"
        "  ncg          dilution.ncg.NCG: none; p, strength_ratio, threshold, reference_quirks,\n"
        "               redraw_epochs\n"
        "  deep-r       dilution.deep_r.DeepR: k, alpha, temperature; scope, biases, init_scale, bias_l2\n"
        "  soft-deep-r  dilution.deep_r.SoftDeepR: alpha, temperature, p0; theta_min, floor, biases,\n"
        "               init_scale, bias_l2",
    )
    _option(g, "--rule", choices=RULES, help="connectivity rule (static: the initial random mask)")
    g.add_argument("--rule-option", dest="rule_options", action="append", type=_rule_option, metavar="NAME=VALUE",
                   help="an option of the rule (repeatable)")
    g = tr.add_argument_group("output")
    g.add_argument("--output", "-o", type=Path, help="output folder (default runs/<dataset>-seed<seed>); "
                   "it must be new or empty unless --overwrite is given")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the files of a previous run in --output (without it a non-empty folder is "
                        "refused); they wait in OUTPUT/previous-run until the new run finishes")
    _option(g, "--sample-sweeps", type=int, help="Gibbs sweeps for the sample grid")
    _option(g, "--grid-samples", type=int, help="samples in the grid")
    tr.add_argument("--resume", type=Path, metavar="DIR",
                    help="continue the interrupted run in DIR from its state.nc (no other options but --epochs, "
                         "which extends a run to more epochs, finished or not: the budget-doubling check)")
    tr.add_argument("--quiet", action="store_true", help="no progress report")
    tr.set_defaults(func=_train)

    sa = sub.add_parser(
        "sample",
        help="draw samples from a saved model: a netCDF file and a PNG grid",
        description="Draw samples from a saved RBM by block Gibbs sampling of independent chains, "
        "each started uniformly at random.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  dilution sample runs/mnist-seed0/model.nc --n-samples 100 --n-sweeps 2000 --seed 1",
    )
    sa.add_argument("model", type=Path, help="model file written by `dilution train` or dilution.save, "
                    "or a run folder holding model.nc")
    sa.add_argument("--n-samples", type=int, default=100, help="independent chains, one sample each (default 100)")
    sa.add_argument("--n-sweeps", type=int, default=1000, help="Gibbs sweeps per chain (default 1000)")
    sa.add_argument("--beta", type=float, default=1.0, help="inverse temperature (default 1)")
    sa.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    sa.add_argument("--output", "-o", type=Path, help="samples file (default: <model>-samples.nc)")
    sa.add_argument("--png", type=Path, help="sample grid image (default: <output>.png)")
    sa.add_argument("--image-shape", type=_shape, help="HxW of one sample, e.g. 28x28 (default: square if possible)")
    sa.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sa.add_argument("--quiet", action="store_true", help="no progress report")
    sa.set_defaults(func=_sample)

    co = sub.add_parser(
        "convert",
        help="convert an RBM from another program (Salakhutdinov & Murray's MATLAB .mat) to a dilution model file",
        description="Read an RBM saved by Salakhutdinov & Murray's MATLAB code (variables vishid, visbiases, "
        "hidbiases) and write it as a dilution model file (netCDF), fully connected, float64.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  dilution convert ../shared/models/mnistvh_CD25.mat cd25.nc\n"
        "  dilution evaluate cd25.nc --data ../shared/data/mnist/mnist.npz --ais",
    )
    co.add_argument("source", type=Path, help="MATLAB .mat file")
    co.add_argument("output", type=Path, nargs="?", help="model file to write (default: <source>.nc)")
    co.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    co.set_defaults(func=_convert)
    for entry in entry_points(group="dilution.commands"):
        entry.load()(sub)
    return parser


def _shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 28x28, got {text!r}") from None
    return h, w


def _image_shape(n_visible: int) -> tuple[int, int]:
    side = math.isqrt(n_visible)
    return (side, side) if side * side == n_visible else (1, n_visible)


# Options that only one kind of data reads: given for another dataset they would be ignored silently.
DATASET_OPTIONS = {
    "data": ("mnist",), "binarize": ("mnist",), "n_train": ("teacher", "bars-stripes"), "n_test": ("teacher",),
    "teacher_visible": ("teacher",), "teacher_hidden": ("teacher",), "teacher_connectivity": ("teacher",),
    "teacher_weight_scale": ("teacher",), "bars_size": ("bars-stripes",),
}
CHOICES = {
    "dataset": tuple(DATASET_DEFAULTS), "method": ("pcd", "cd", "ptpcd", "exact"), "binarize": ("threshold", "stochastic"),
    "dtype": ("float32", "float64"), "rule": RULES, "checkpoint_log_likelihood": ("auto", "exact", "ais", "none"),
}
# (lowest, highest) of the integer options; None: unbounded.
INT_RANGES = {
    "n_hidden": (1, None), "k": (1, None), "epochs": (1, None), "batch_size": (1, None), "n_chains": (1, None),
    "checkpoints": (1, None), "seed": (0, None), "n_train": (1, None), "n_test": (1, None), "teacher_visible": (1, None),
    "teacher_hidden": (1, None), "bars_size": (2, None), "sample_sweeps": (0, None), "grid_samples": (1, None),
}
# Real options: (lowest, highest, lowest allowed, highest allowed); None: unbounded.
FLOAT_RANGES = {
    "learning_rate": (0.0, None, False, True), "momentum": (0.0, 1.0, True, False), "l2": (0.0, None, True, True),
    "l1": (0.0, None, True, True), "connectivity": (0.0, 1.0, True, True), "teacher_connectivity": (0.0, 1.0, False, True),
    "teacher_weight_scale": (0.0, None, True, True),
}
# What a run writes in its folder; --overwrite moves these (and nothing else) aside first.
RUN_FILES = ("model.nc", "history.nc", "state.nc", "test.nc", "samples.png", "data.png", "best-model.nc")
# With --overwrite, the replaced run's files wait here until the new run has written its own.
PREVIOUS_RUN = "previous-run"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_float(name: str, value: Any, low: float | None, high: float | None, low_in: bool, high_in: bool) -> float:
    flag = _flag(name)
    x = check_finite(flag, value)
    if (low is not None and (x < low or (x == low and not low_in))) or (
        high is not None and (x > high or (x == high and not high_in))
    ):
        if high is None:
            expected = f"{'>=' if low_in else '>'} {low:g}"
        else:
            expected = f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise ValueError(f"{flag} must be {expected}, got {value!r}")
    return x


def _validate_options(opts: dict[str, Any]) -> None:
    """Every option's type and range, named by its flag, before anything is printed, read or written."""
    from .data.teacher import MAX_HIDDEN

    for name, choices in CHOICES.items():
        if opts[name] not in choices:
            raise ValueError(f"{_flag(name)} must be one of {', '.join(choices)}, got {opts[name]!r}")
    for name, (low, high) in INT_RANGES.items():
        if name == "teacher_hidden":
            high = MAX_HIDDEN
        if not (name == "n_chains" and opts[name] is None):
            opts[name] = check_int(_flag(name), opts[name], low=low, high=high)
    for name, bounds in FLOAT_RANGES.items():
        opts[name] = _check_float(name, opts[name], *bounds)


CONFIG_ALIASES = {"lr": "learning_rate"}
"""A config file's other spellings of an option: each second long flag of ``dilution train``."""

# The TOML type each config-file option needs, and how the message says it (numbers are then
# range-checked with the command line's).
_CONFIG_KINDS = {name: (str, "a string") for name in ("dataset", "data", "binarize", "method", "dtype", "output",
                                                      "checkpoint_log_likelihood", "rule")}
_CONFIG_KINDS["rule_options"] = (dict, "a table such as {k = 7840, alpha = 1e-4}")
# A number in quotes ("0.05") is TOML's string: named by its key, not parsed.
_CONFIG_KINDS.update({name: (int, "an integer") for name in INT_RANGES})
_CONFIG_KINDS.update({name: ((int, float), "a number") for name in FLOAT_RANGES})


def _resolve_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults < dataset defaults < TOML config < command line, validated.

    ``--data`` without ``--dataset`` means MNIST (the only data read from a file); an option
    that the chosen dataset would ignore is refused, naming both flags.
    """
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "quiet", "overwrite")}
    from_file: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        try:
            with open(args.config, "rb") as f:
                raw = tomllib.load(f)
        except OSError as e:
            raise ValueError(f"cannot read config file {args.config}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {args.config} is not valid TOML: {e}") from None
        except UnicodeDecodeError:
            raise ValueError(f"config file {args.config} is not valid TOML: not UTF-8 text") from None
        spelled: dict[str, str] = {}
        for key, value in raw.items():
            name = key.replace("-", "_")
            name = "rule_options" if name == "rule_option" else name  # the flag is --rule-option
            name = CONFIG_ALIASES.get(name, name)  # e.g. lr = 0.05, as the --lr flag
            if name in spelled:
                raise ValueError(f"config file {args.config}: {spelled[name]!r} and {key!r} set the same option; "
                                 "keep one")
            spelled[name] = key
            if name not in DEFAULTS:
                raise ValueError(f"config file {args.config}: unknown option {key!r}; known: {', '.join(sorted(DEFAULTS))}")
            expected = _CONFIG_KINDS.get(name)
            if expected is not None and (not isinstance(value, expected[0]) or isinstance(value, bool)):
                raise ValueError(f"config file {args.config}: {key} must be {expected[1]}, got {value!r}")
            from_file[name] = value
    chosen = {**from_file, **given}
    if "dataset" in chosen:
        dataset = chosen["dataset"]
        if dataset not in DATASET_DEFAULTS:
            raise ValueError(f"--dataset must be one of {', '.join(DATASET_DEFAULTS)}, got {dataset!r}")
    else:
        dataset = "mnist" if chosen.get("data") is not None else DEFAULTS["dataset"]
    for name, datasets in DATASET_OPTIONS.items():
        if chosen.get(name) is not None and dataset not in datasets:
            raise ValueError(
                f"{_flag(name)} applies to --dataset {' or '.join(datasets)}, not --dataset {dataset}: drop "
                f"{_flag(name)}" + (", or give --dataset mnist" if name == "data" else "")
            )
    rule = chosen.get("rule", DEFAULTS["rule"])
    if "rule_options" in given:  # a --rule-option flag adds to (or replaces one of) the config file's
        given["rule_options"] = {**from_file.get("rule_options", {}), **dict(given["rule_options"])}
    own_mask = getattr(_rule_class(rule), "sparsity_option", None) if rule in RULES else None
    if own_mask is not None and chosen.get("connectivity") is not None:
        option, meaning = own_mask
        raise ValueError(f"--connectivity does not apply to --rule {rule}, which draws its own mask: drop it and give "
                         f"--rule-option {option}=VALUE ({meaning})")
    if chosen.get("method") == "exact" and chosen.get("k") is not None:
        raise ValueError(f"-k {chosen['k']}: --method exact has no Gibbs sweeps (the model term is enumerated); drop -k")
    stepped = [name for name in ("momentum", "l1", "l2") if chosen.get(name) not in (None, 0)]
    # the rule's own declaration, the one TrainConfig enforces, names it a plain-SGD rule
    if stepped and rule in RULES and getattr(_rule_class(rule), "plain_sgd", None):
        prior = "; its L1 prior is --rule-option alpha" if rule != "ncg" else ""
        raise ValueError(f"--rule {rule} trains by plain SGD (no momentum, no weight decay{prior}): drop "
                         + ", ".join(f"{_flag(name)} {chosen[name]}" for name in stepped))
    opts = {**DEFAULTS, **DATASET_DEFAULTS[dataset], **RULE_DEFAULTS.get(rule, {}), **from_file, **given}
    opts["dataset"] = dataset
    _validate_options(opts)
    if opts["data"] is not None:
        # stored in the run's files: absolute, so that it means the same from any working directory
        opts["data"] = Path(opts["data"]).expanduser().absolute()
    if opts["output"] is None:
        opts["output"] = Path("runs") / f"{dataset}-seed{opts['seed']}"
    return opts


def _check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse a path that is a file, a folder one cannot write to, and a non-empty folder unless ``overwrite``."""
    from .io import check_output_folder

    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; expected a folder for the run's files (new or empty)")
    check_output_folder("--output", out)  # a read-only folder failed after "training ..." was printed
    if out.is_dir() and not overwrite:
        present = sorted(p.name for p in out.iterdir())
        if present:
            shown = ", ".join(present[:6]) + (", ..." if len(present) > 6 else "")
            raise ValueError(
                f"--output {out} is not empty ({shown}); give --overwrite to replace a previous run, "
                f"--resume {out} to continue it, or another --output"
            )


def _prepare_output_folder(out: Path, overwrite: bool) -> None:
    """Make ``out``; with ``overwrite``, move a previous run's files into ``out/previous-run``, removed
    when this run finishes (so an interrupted replacement loses nothing). A ``previous-run`` already
    there holds the last finished run, and the files beside it are an unfinished one: those go."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the output folder {out}: {e.strerror}") from None
    present = [name for name in RUN_FILES if (out / name).exists()] if overwrite else []
    if not present:
        return
    aside = out / PREVIOUS_RUN
    if aside.is_dir():
        for name in present:
            (out / name).unlink()
        return
    aside.mkdir()
    for name in present:
        os.replace(out / name, aside / name)


def _previous_run_note(out: Path) -> str:
    aside = out / PREVIOUS_RUN
    return f" (the replaced run's files stay in {aside} until then)" if aside.is_dir() else ""


def _load_training_data(opts: dict[str, Any]):
    """(train, test, reference) arrays; reference describes the true distribution when known."""
    from .data import bars_stripes, teacher
    from .data.split import as_matrix

    seed = opts["seed"]
    if opts["dataset"] == "teacher":
        t = teacher.planted_teacher(
            opts["teacher_visible"], opts["teacher_hidden"], connectivity=opts["teacher_connectivity"],
            weight_scale=opts["teacher_weight_scale"], visible_bias_mean=-1.0, visible_bias_scale=0.5, seed=seed,
        )
        train_ds, test_ds = teacher.teacher_datasets(t, opts["n_train"], opts["n_test"], seed=seed)
        test = as_matrix(test_ds)
        return as_matrix(train_ds), test, {"teacher": t, "teacher_test_log_likelihood": float(t.log_likelihood(test).mean())}
    if opts["dataset"] == "bars-stripes":
        n = opts["bars_size"]
        pats = bars_stripes.patterns(n)
        return bars_stripes.sample(n, opts["n_train"], seed=seed), pats, {"bars_entropy": bars_stripes.entropy(n)}
    from .data import binarize, mnist

    if opts["data"] is None:
        raise ValueError("--dataset mnist needs --data PATH (mnist.npz or a folder of IDX files); nothing is downloaded")
    kw = {"method": opts["binarize"]} | ({"seed": seed} if opts["binarize"] == "stochastic" else {})
    train = as_matrix(binarize.binarize(mnist.load_mnist(opts["data"], "train"), **kw))
    test = as_matrix(binarize.binarize(mnist.load_mnist(opts["data"], "test"), **kw))
    return train, test, {}


def _train_config(opts: dict[str, Any]):
    from .estimators import estimator_from_name
    from .training import TrainConfig

    est_params: dict[str, Any] = {"k": opts["k"]}
    dataset_chains = DATASET_DEFAULTS[opts["dataset"]].get("n_chains")
    if opts["method"] in ("cd", "exact") and opts["n_chains"] == dataset_chains:
        opts = {**opts, "n_chains": None}  # the dataset's default number of persistent chains, not asked for
    if opts["n_chains"] is not None:
        if opts["method"] in ("cd", "exact"):
            raise ValueError(f"--n-chains applies to pcd and ptpcd; --method {opts['method']} has no persistent chains")
        est_params["n_chains"] = opts["n_chains"]
    if opts["method"] == "exact":
        est_params = {}
    return TrainConfig(
        estimator=estimator_from_name(opts["method"], **est_params), epochs=opts["epochs"], rule=_rule(opts),
        batch_size=opts["batch_size"], learning_rate=opts["learning_rate"], momentum=opts["momentum"],
        l2=opts["l2"], l1=opts["l1"], connectivity=opts["connectivity"], checkpoints=opts["checkpoints"],
        dtype=opts["dtype"], checkpoint_log_likelihood=opts["checkpoint_log_likelihood"],
    )


def _rule_class(name: str) -> type:
    from . import connectivity, deep_r, ncg, pruning_rules

    return {"static": connectivity.StaticMask, "prune": pruning_rules.PruningProtocol, "ncg": ncg.NCG,
            "deep-r": deep_r.DeepR, "soft-deep-r": deep_r.SoftDeepR}[name]


def _rule(opts: dict[str, Any]):
    """The connectivity rule of ``--rule`` with its ``--rule-option`` values, checked by name."""
    import dataclasses

    name, options = opts["rule"], dict(opts["rule_options"] or {})
    if name not in RULES:
        raise ValueError(f"--rule must be one of {', '.join(RULES)}, got {name!r}")
    cls = _rule_class(name)
    if isinstance(options.get("at_epochs"), list):
        options["at_epochs"] = tuple(options["at_epochs"])
    known = [f.name for f in dataclasses.fields(cls)]
    for option in options:
        if option not in known:
            others = [r for r in RULES if r != name and option in [f.name for f in dataclasses.fields(_rule_class(r))]]
            hint = f" (it is an option of --rule {others[0]})" if others else ""
            raise ValueError(f"--rule-option {option}: --rule {name} has no such option{hint}; "
                             f"its options are {', '.join(known) or 'none'}")
    missing = [option for option in _required_rule_options(cls) if option not in options]
    if missing:
        raise ValueError(f"--rule {name} needs " + ", ".join(f"--rule-option {m}=VALUE" for m in missing)
                         + " (`dilution train --help` lists every rule's options)")
    return cls(**options)


def _required_rule_options(cls: type) -> list[str]:
    """The fields of a rule's class that have no default, in their order."""
    import dataclasses

    return [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING]


def _resume_options(folder: Path) -> dict[str, Any]:
    from .io import load_dataset

    path = folder / "state.nc"
    if folder.is_file():
        raise ValueError(f"--resume {folder} is a file; expected the run folder holding state.nc")
    if not path.is_file():
        raise ValueError(f"--resume {folder}: no state.nc there (a run saves one at every checkpoint)")
    attrs = load_dataset(path).attrs
    if "cli_options" not in attrs:
        raise ValueError(f"--resume {folder}: state.nc was not written by `dilution train` (no cli_options)")
    try:
        opts = json.loads(attrs["cli_options"])
    except (TypeError, ValueError):
        opts = None
    if not isinstance(opts, dict):
        raise ValueError(f"--resume {folder}: state.nc's cli_options are not the JSON object `dilution train` writes")
    missing = sorted(set(DEFAULTS) - set(opts))
    if missing:  # a default would be a guess: the seed, say, also draws the data split
        raise ValueError(f"--resume {folder}: state.nc's cli_options lack {', '.join(missing)} (written by another "
                         "version of `dilution train`, or by hand); start a new run instead")
    opts["output"] = folder
    if opts.get("data") is not None:
        opts["data"] = Path(opts["data"])
    return opts


def _test_interrupt(moment: str) -> None:
    """Test hook: this process sends itself SIGINT at ``moment`` ("start-up", "compilation": when numba
    starts compiling a kernel, "checkpoint-save", "results") when $DILUTION_TEST_INTERRUPT names it:
    moments a timed signal cannot hit reliably. Once per process: a second Ctrl-C means "stop now"."""
    if os.environ.get("DILUTION_TEST_INTERRUPT") == moment and moment not in _INTERRUPTED:
        _INTERRUPTED.add(moment)
        os.kill(os.getpid(), signal.SIGINT)


_INTERRUPTED: set[str] = set()


def _train(args: argparse.Namespace) -> int:
    from numba.core import event as numba_event

    class _InterruptCompiler(numba_event.Listener):
        def on_start(self, ev):
            _test_interrupt("compilation")

        def on_end(self, ev):
            pass

    # numba's compilation (tens of seconds on a cold cache) is reported apart from the training speed
    with numba_event.install_listener("numba:compile", numba_event.TimingListener()) as compiling, \
            numba_event.install_listener("numba:compile", _InterruptCompiler()):
        return _train_run(args, lambda: compiling.duration if compiling.done else 0.0)


def _train_run(args: argparse.Namespace, compile_seconds) -> int:
    from . import interrupt, io
    from .io import load_state
    from .training import TrainingWarning, init_state, iterate

    progress = False if getattr(args, "quiet", False) else None
    resuming = getattr(args, "resume", None) is not None
    more_epochs = None
    if resuming:
        given = {k for k, v in vars(args).items() if k not in ("func", "command", "quiet", "resume", "epochs")}
        if given:
            raise ValueError(
                f"--resume continues a run with its own options (and --epochs to extend it); drop "
                f"{', '.join('--' + g.replace('_', '-') for g in sorted(given))}"
            )
        opts = _resume_options(Path(args.resume))
        more_epochs = getattr(args, "epochs", None)
    else:
        opts = _resolve_train_options(args)
    out = Path(opts["output"])
    overwrite = getattr(args, "overwrite", False)
    if not resuming:
        # every check that needs no data runs before anything is read, printed or written
        config = _train_config(opts)
        _check_output_folder(out, overwrite)
    t0 = time.perf_counter()
    train_x, test_x, reference = _load_training_data(opts)
    n_visible = train_x.shape[1]
    if not resuming and opts["checkpoint_log_likelihood"] == "exact":
        from .exact import MAX_UNITS

        if min(n_visible, opts["n_hidden"]) > MAX_UNITS:
            raise ValueError(f"--checkpoint-log-likelihood exact enumerates the smaller layer, at most {MAX_UNITS} "
                             f"units; this {n_visible} x {opts['n_hidden']} RBM has {min(n_visible, opts['n_hidden'])}"
                             ": give ais (or auto, which chooses)")
    cli_options = json.dumps(opts, default=str)
    if resuming:
        state = load_state(out / "state.nc")
        if state.plan.n_visible != n_visible:
            raise ValueError(f"--resume {out}: the state is for {state.plan.n_visible} visible units, the data have {n_visible}")
        if more_epochs is not None and more_epochs != state.plan.epochs:
            from .training import extend, extendable

            if more_epochs < state.plan.epochs:
                raise ValueError(f"--epochs {more_epochs} with --resume: the run is planned for {state.plan.epochs} "
                                 "epochs; --epochs can only extend it")
            why = extendable(state.config)
            if why is not None:
                raise ValueError(f"--epochs with --resume: this run cannot be extended: {why}")
            state = extend(state, more_epochs)
            opts["epochs"] = more_epochs
            cli_options = json.dumps(opts, default=str)
            print(f"extending {out} to {more_epochs} epochs", flush=True)
        print(f"resuming {out} at update {state.step} of {state.plan.total_steps}", flush=True)
    else:
        state = init_state((n_visible, opts["n_hidden"]), train_x, config, seed=opts["seed"])
        _prepare_output_folder(out, overwrite)
    config = state.config
    from .progress import progress_bar

    # The best checkpoint by train log-likelihood (exact, or estimated by AIS for large models).
    logged = [r["log_likelihood"] for r in state.log.checkpoints if math.isfinite(r["log_likelihood"])]
    best = {"log_likelihood": max(logged) if logged and (out / "best-model.nc").exists() else -math.inf,
            "step": -1}

    def save_state(record) -> None:
        _test_interrupt("checkpoint-save")
        io.save(record.state, out / "state.nc", attrs={"cli_options": cli_options})
        if math.isfinite(record.log_likelihood) and record.log_likelihood > best["log_likelihood"]:
            best.update(log_likelihood=record.log_likelihood, step=record.step)
            io.save(record.model, out / "best-model.nc",
                    attrs={"step": record.step, "train_log_likelihood": record.log_likelihood,
                           "cli_options": cli_options})

    guard = contextlib.ExitStack()
    # a first Ctrl-C is a request the loop reads after the update in flight (dilution.interrupt)
    stop = guard.enter_context(interrupt.deferred())
    # the library's end-of-run checks (collapse, running-away weights) become the CLI's one-line warnings
    caught = guard.enter_context(warnings.catch_warnings(record=True))
    warnings.simplefilter("always", TrainingWarning)
    trained = False
    try:
        connectivity = float(state.params.mask.mean())  # of the initial mask: a rule may draw its own
        print(f"training {n_visible} x {state.plan.n_hidden} RBM (connectivity {connectivity:.4g}) on "
              f"{train_x.shape[0]} {opts['dataset']} samples: {config.estimator.describe()}, "
              f"{config.epochs} epochs, seed {state.seed}", flush=True)
        with progress_bar(state.plan.total_steps, f"{config.estimator.describe()} training", enabled=progress) as bar:
            bar.update(state.step)
            for state in iterate(state, train_x, callbacks=[save_state]):
                bar.update(1)
                if stop.requested:
                    raise KeyboardInterrupt
        guard.close()  # while the results are written, Ctrl-C raises at once again
        _report_warnings(caught, out)
        trained = True
        _finish_training(state, opts, train_x, test_x, reference, out, t0, progress, compile_seconds)
    except (KeyboardInterrupt, SystemError) as err:
        if not is_interrupt(err):
            raise
        # the states iterate yields are values, so the last one is whole whatever the signal interrupted
        io.save(state, out / "state.nc", attrs={"cli_options": cli_options})
        where = ("after training, while writing the results" if trained
                 else f"at update {state.step} of {state.plan.total_steps}")
        print(f"dilution train: interrupted {where}; state saved, continue with: dilution train --resume {out}"
              f"{_previous_run_note(out)}", file=sys.stderr, flush=True)
        return 130
    finally:
        guard.close()
    return 0


def _report_warnings(caught, out: Path) -> None:
    """The library's end-of-run warnings as one line each (the best model is in best-model.nc);
    any other warning is shown as Python would have."""
    from .training import RUNAWAY_WEIGHT, LikelihoodCollapseWarning, RunawayWeightsWarning

    for w in caught:
        msg = w.message
        if isinstance(msg, LikelihoodCollapseWarning):
            print(f"dilution train: warning: the train log-likelihood fell from {msg.best:.3f} (update "
                  f"{msg.best_step}) to {msg.final:.3f} nats per sample; the best model is in "
                  f"{out / 'best-model.nc'}. Lower the learning rate or the momentum, or use more persistent "
                  "chains (--n-chains).", file=sys.stderr)
        elif isinstance(msg, RunawayWeightsWarning):
            print(f"dilution train: warning: the largest |weight| is {msg.largest:.1f} (> {RUNAWAY_WEIGHT:g}): the "
                  "weights are running away and the units freeze; lower the learning rate or add --l2 decay.",
                  file=sys.stderr)
        else:
            warnings.showwarning(msg, w.category, w.filename, w.lineno)


def _finish_training(state, opts, train_x, test_x, reference, out: Path, t0: float, progress, compile_seconds) -> None:
    import xarray as xr

    from . import exact, io
    from .images import save_sample_grid
    from .provenance import provenance
    from .training import history

    model = state.model
    hist = history(state)
    summary: dict[str, Any] = {
        "dataset": opts["dataset"], "connectivity": model.connectivity,
        "seconds_per_epoch": float(hist["epoch_wall_time"].mean()),
        "final_reconstruction_error": float(hist["reconstruction_error"][-1]),
    }
    if min(model.n_visible, model.n_hidden) <= exact.MAX_UNITS:
        log_z = exact.log_partition(model)
        summary["log_partition"] = log_z
        summary["test_log_likelihood"] = float(exact.log_likelihood(model, test_x, log_z=log_z).mean())
        summary["train_log_likelihood"] = float(exact.log_likelihood(model, train_x[:20000], log_z=log_z).mean())
    else:
        summary.update(_ais_test_log_likelihood(model, train_x, test_x, opts["seed"], progress))
    summary["independent_pixels_test_log_likelihood"] = _independent_pixels(train_x, test_x)
    if "teacher_test_log_likelihood" in reference:
        summary["teacher_test_log_likelihood"] = reference["teacher_test_log_likelihood"]
        summary["test_log_likelihood_gap"] = summary["teacher_test_log_likelihood"] - summary["test_log_likelihood"]
    if "bars_entropy" in reference:
        from .data import bars_stripes

        summary["kl_data_to_model"] = bars_stripes.kl_divergence(opts["bars_size"], exact.log_prob_visible(model))
    summary["compile_seconds"] = round(compile_seconds(), 2)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    cli_options = json.dumps(opts, default=str)
    run_attrs = {"seed": state.seed, "config": state.config.to_json(), "cli_options": cli_options,
                 **{f"summary_{k}": v for k, v in summary.items()}}
    io.save(model, out / "model.nc", attrs=run_attrs)
    _test_interrupt("results")
    io.save(hist, out / "history.nc", attrs={f"summary_{k}": v for k, v in summary.items()})
    written = ["model.nc", "history.nc", "state.nc"] + (["best-model.nc"] if (out / "best-model.nc").exists() else [])
    if opts["dataset"] != "mnist":
        # generated held-out data, so that `dilution evaluate --data test.nc` sees the same set
        io.save(xr.Dataset({"states": (("sample", "visible"), test_x.astype(np.uint8),
                                       {"long_name": "held-out visible state", "units": "1"})},
                           attrs=provenance(dataset=opts["dataset"], seed=state.seed, subset="test",
                                            cli_options=cli_options)), out / "test.nc")
        written.append("test.nc")
    grid, how = _grid_samples(state, opts, progress)
    shape = _image_shape(model.n_visible)
    save_sample_grid(grid, out / "samples.png", image_shape=shape, title=f"model samples: {how}")
    # the data beside the model's samples, for a by-eye comparison
    save_sample_grid(test_x[: opts["grid_samples"]], out / "data.png", image_shape=shape,
                     title=f"{opts['dataset']} test data")
    written += [f"samples.png ({how})", "data.png (test data)"]
    # the printed times cover the whole command (the files hold them as of writing model.nc)
    summary.update(compile_seconds=compile_seconds(), seconds=time.perf_counter() - t0)
    _print_summary(summary, out, written)


# The final AIS of a model too large to enumerate (the careful version, with the budget-doubling
# check, is `dilution evaluate --ais --ais-resample 0.5 --ais-doubling`; this one costs a few epochs'
# worth of sweeps at most). The classic shape and resampling in populations: on 784 x 500 MNIST
# RBMs plain AIS's weights collapse onto one or two chains and linear betas lose 8-12 nats.
FINAL_AIS_CHAINS = 100
FINAL_AIS_BETAS = 5000
FINAL_AIS_GROUPS = 10


def _ais_test_log_likelihood(model, train_x, test_x, seed: int, progress) -> dict[str, Any]:
    from . import ais, schedules

    with warnings.catch_warnings():
        # a degenerate run shows in its standard error, which is printed
        warnings.simplefilter("ignore", ais.DegenerateWeightsWarning)
        ds = ais.log_likelihood(model, test_x, n_chains=FINAL_AIS_CHAINS, betas=schedules.classic(FINAL_AIS_BETAS),
                                base_data=train_x, seed=seed, reverse=False, n_bootstrap=0, progress=progress,
                                resample=0.5, n_groups=FINAL_AIS_GROUPS)
    return {"test_log_likelihood": float(ds["log_likelihood"]), "test_log_likelihood_se": float(ds["log_likelihood_std"]),
            "log_partition": float(ds["log_z"]), "log_partition_se": float(ds["log_z_std"]),
            "test_log_likelihood_method": f"forward AIS with resampling, {FINAL_AIS_CHAINS} chains in "
                                          f"{FINAL_AIS_GROUPS} populations x {FINAL_AIS_BETAS} betas (classic shape)"}


def _independent_pixels(train_x, test_x) -> float:
    """Test log-likelihood of independent pixels with the training marginals (clipped like the
    trainer's initial biases): the baseline any RBM should beat."""
    p = np.clip(np.asarray(train_x, dtype=np.float64).mean(axis=0), 1e-3, 1 - 1e-3)
    t = np.asarray(test_x, dtype=np.float64)
    return float((t @ np.log(p) + (1 - t) @ np.log1p(-p)).mean())


def _grid_samples(state, opts, progress) -> tuple[np.ndarray, str]:
    """Samples that show the model: the persistent chains continued, or parallel tempering.

    Plain Gibbs chains from random starts stay near their starts on a trained MNIST model (the
    grids collapse onto one or two digits); the training's persistent chains have been mixing
    all along, and parallel tempering crosses between modes.
    """
    from . import gibbs, tempering

    n, sweeps = opts["grid_samples"], opts["sample_sweeps"]
    chains = getattr(state.estimator, "chains", None)
    model = state.model
    if chains is not None and chains.shape[0] >= n:
        v = gibbs.sample(model, n, sweeps, seed=opts["seed"], init=chains[:n], progress=progress)
        return v, f"the training's persistent chains, {sweeps} more Gibbs sweeps"
    result = tempering.sample(model, n, max(sweeps, 1), seed=opts["seed"], n_temps=10, progress=progress)
    return result.samples[-1], f"parallel tempering, 10 temperatures, {sweeps} sweeps"


def _print_summary(summary: dict[str, Any], out: Path, written: list[str]) -> None:
    labels = {
        "test_log_likelihood": "exact test log-likelihood (nats/sample)",
        "teacher_test_log_likelihood": "teacher's test log-likelihood (the optimum)",
        "test_log_likelihood_gap": "gap to the teacher (nats/sample)",
        "train_log_likelihood": "exact train log-likelihood",
        "independent_pixels_test_log_likelihood": "independent pixels' test log-likelihood",
        "kl_data_to_model": "KL(data || model) (nats)",
        "final_reconstruction_error": "reconstruction error (proxy)",
        "connectivity": "connectivity",
        "seconds_per_epoch": "seconds per epoch (compilation excluded)",
        "compile_seconds": "numba compilation, s (0 once cached)",
        "seconds": "seconds in all (data, training, results)",
    }
    if "test_log_likelihood_se" in summary:
        labels["test_log_likelihood"] = "test log-likelihood, AIS (nats/sample)"
    for key, label in labels.items():
        if key in summary:
            se = f" +- {summary['test_log_likelihood_se']:.4f}" if key == "test_log_likelihood" and "test_log_likelihood_se" in summary else ""
            print(f"  {label:<45} {summary[key]:.4f}{se}")
    if (out / PREVIOUS_RUN).is_dir():  # the run it replaced (--overwrite), kept until now
        shutil.rmtree(out / PREVIOUS_RUN)
    print(f"wrote {', '.join(written)} in {out}")


def _model_path(path: Path) -> Path:
    """A model file; a run folder means its model.nc."""
    if path.is_dir():
        if (path / "model.nc").is_file():
            return path / "model.nc"
        raise ValueError(f"{path} is a folder without model.nc; expected a model file written by `dilution train` "
                         "or dilution.save, or the run folder holding it")
    return path


def _sample(args: argparse.Namespace) -> int:
    import xarray as xr

    from . import interrupt, io
    from .gibbs import sample
    from .images import check_image_shape, save_sample_grid
    from .model import RBM
    from .provenance import provenance

    n_samples = check_int("--n-samples", args.n_samples, low=1)
    n_sweeps = check_int("--n-sweeps", args.n_sweeps, low=0)
    seed = check_int("--seed", args.seed, low=0)
    beta = _check_float("beta", args.beta, 0.0, None, True, True)
    path = _model_path(args.model)
    model = io.load(path)
    if not isinstance(model, RBM):
        raise ValueError(f"{path} holds a dataset, not an RBM model (expected a file written by `dilution train`)")
    output = args.output or path.with_name(path.stem + "-samples.nc")
    png = args.png or output.with_suffix(".png")
    io.check_new_file("--output", output, inputs=[path], overwrite=args.overwrite)
    io.check_new_file("--png", png, ".png", inputs=[path, output], overwrite=args.overwrite)
    shape = args.image_shape or _image_shape(model.n_visible)
    try:
        check_image_shape(shape, model.n_visible)
    except ValueError as e:
        raise ValueError(f"--image-shape: {e}") from None
    # everything is checked: nothing is written unless all of it can be
    with interrupt.deferred():  # a Ctrl-C stops between two chunks of sweeps, never inside the kernel
        v = sample(model, n_samples, n_sweeps, seed=seed, beta=beta, progress=False if args.quiet else None)
    ds = xr.Dataset(
        {"samples": (("sample", "visible"), v.astype(np.uint8),
                     {"long_name": "final visible state of each chain", "units": "1"})},
        attrs=provenance(model=str(path.absolute()), seed=seed, n_sweeps=n_sweeps, beta=beta, init="uniform random"),
    )
    title = f"{n_samples} samples, {n_sweeps} Gibbs sweeps" + (f", beta {beta:g}" if beta != 1 else "")
    save_sample_grid(v, png, image_shape=shape, title=title)
    io.save(ds, output)
    print(f"wrote {n_samples} samples to {output} and {png}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from . import io
    from .io import load_matlab_rbm

    output = args.output or args.source.with_suffix(".nc")
    io.check_new_file("output", output, inputs=[args.source], overwrite=args.overwrite)
    rbm = load_matlab_rbm(args.source)
    io.save(rbm, output, attrs={"converted_from": str(args.source.absolute()),
                                "source_format": "MATLAB (Salakhutdinov & Murray: vishid, visbiases, hidbiases)"})
    print(f"wrote {rbm.n_visible} x {rbm.n_hidden} RBM (connectivity {rbm.connectivity:g}) from {args.source} to {output}")
    return 0


def _show_warning(command: str):
    """How a command shows warnings: the toolkit's own (``dilution``, ``analysis``, ``studies``) as one
    line, ``dilution <command>: warning: <message>``, where Python would add its source file and line;
    any other as Python would."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] in ("dilution", "analysis", "studies"):
            print(f"dilution {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dilution`` command: 0 on success, 2 with a one-line message for bad input, 130 on Ctrl-C."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("dilution: interrupted", file=sys.stderr)
        return 130
    if signal.getsignal(signal.SIGINT) is _quiet_start_up_interrupt:
        # from here on a Ctrl-C is a KeyboardInterrupt that the command handles (saving its state)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with warnings.catch_warnings():  # restores Python's display afterwards (main is also called in-process)
            warnings.showwarning = _show_warning(args.command)
            return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError) as e:
        print(f"dilution {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemError) as e:
        if not is_interrupt(e):
            raise
        # a KeyboardInterrupt with a message says what was kept and how to continue (studies.runner.resume_hint)
        hint = str(e) if isinstance(e, KeyboardInterrupt) else ""
        print(f"dilution {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
