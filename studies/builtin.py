"""Built-in study specs, runnable by name (``dilution study run quick``) and listed by ``dilution study list``.

* ``smoke``: a 16 x 4 teacher and 16 x 6 students, two protocols, for tests (seconds);
* ``quick``: the planted teacher of issue 10 (64 visible, 10 hidden at connectivity 0.25),
  students of 16 hidden units (exact likelihood), pruning at initialisation, after convergence
  (fine-tuned), rewound to initialisation, and from scratch on the converged run's mask, eleven
  fractions, three seeds: the README's first study, minutes on 2 cores. Its budget is too short
  for the slowest points: pruned at initialisation to f >= 0.8, the students sit on the
  independent-unit plateau (-19.40 nats, teacher -18.54) past epoch 30 (a run of f = 0.8 leaves
  it near epoch 50 and still gains at 120; f = 0.9 is still on it at 120). The stopping rule's
  ``plateau_margin`` keeps it from calling the plateau converged: those points train to
  ``max_epochs`` and are flagged ``converged = False``, and the "init" transition is read with
  that flag (a lower bound on the fraction where the budget, not the capacity, decides);
* ``teacher``: the same teacher, finite-size scaling over ``n_hidden`` = 8, 12, 16, 24;
* ``mnist``: binarised MNIST with 16, 20 and 24 hidden units (exact likelihood);
* ``mnist-500``: MNIST with the papers' 500 hidden units (10,000 training images), likelihood by AIS.

The MNIST studies read ``mnist.npz`` from ``data=`` (the command line's ``--data``) or from
``$DILUTION_DATA/mnist/mnist.npz``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import NamedTuple

from .spec import SpecError, StudySpec, spec_from_dict

__all__ = ["BuiltinStudy", "BUILTIN", "builtin_spec", "mnist_path"]


class BuiltinStudy(NamedTuple):
    """A built-in study: a one-line description, its cost and its TOML text.

    ``cost`` is the wall time with 2 workers on this project's 2 idle cores: measured for smoke
    and quick (2026-12-02: smoke 27 s on one worker of the loaded machine; quick 401 CPU-seconds,
    178 s per worker, 15 min wall with the machine at load 15), from
    :func:`studies.cost.estimate_cost` timed in CPU seconds for the others (the geometric mean
    of its bounds).
    """

    description: str
    cost: str
    toml: str


# Planted teacher 16 x 4, students 16 x 6: exact likelihood everywhere, well under a minute.
_SMOKE = """
name = "smoke"
output = "runs/study-smoke"
n_hidden = [6]
pruning_fractions = [0.0, 0.5, 0.8]
seeds = [0, 1]

[data]
kind = "teacher"
n_visible = 16
n_hidden = 4
weight_scale = 2.0
seed = 0
n_train = 500
n_validation = 500
n_test = 1000

# The exact gradient (6 hidden units enumerate at once): smooth held-out curves, so the
# stopping rule is tested on learning, not on PCD noise.
[training]
estimator = "exact"
batch_size = 100
learning_rate = 0.1
momentum = 0.9
weight_scale = 0.3
max_epochs = 60

[stopping]
every = 2
window = 4
tolerance = 0.01
min_epochs = 30

[evaluation]
log_likelihood = "exact"

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epoch = 20
"""

# The teacher of issue 10 (64 x 10 at connectivity 0.25) and its students: the data, training
# and stopping tables shared by quick and teacher.
_TEACHER_COMMON = """
[data]
kind = "teacher"
n_visible = 64
n_hidden = 10
connectivity = 0.25
weight_scale = 3.0
seed = 0
n_train = 5000
n_validation = 1000
n_test = 2000

[training]
estimator = "pcd"
k = 10
batch_size = 100
learning_rate = 0.05
weight_scale = 0.01
max_epochs = {max_epochs}

[stopping]
every = 2
window = 5
tolerance = 0.005
min_epochs = {min_epochs}
plateau_margin = 0.05

[evaluation]
log_likelihood = "exact"
metrics = ["mask"]

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epochs = ["converged"]

[protocols.rewind]
kind = "rewind"
epochs = ["converged"]
rewind_epoch = 0

[protocols.scratch]
kind = "scratch"
epochs = ["converged"]
"""

_QUICK = """
name = "quick"
output = "runs/study-quick"
n_hidden = [16]
pruning_fractions = [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99]
seeds = [0, 1, 2]
""" + _TEACHER_COMMON.format(max_epochs=60, min_epochs=30)

# max_epochs 240: on the 64 x 16 student the init transition moved from 0.717 (60 epochs) to 0.792
# (120) and 0.810 (240), then stayed at 0.810 (480; every point that stopped before 240 epochs
# bit-identical). The fractions past 0.99 (5, 2, 1 and 0 of 1,024 connections left) give a model
# pruned after training its collapse and its floor (fit it with --axis log-remaining).
_TEACHER = """
name = "teacher"
output = "runs/study-teacher"
n_hidden = [8, 12, 16, 24]
pruning_fractions = [0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 0.995, 0.998, 0.999, 0.9999]
seeds = [0, 1, 2, 3, 4]
""" + _TEACHER_COMMON.format(max_epochs=240, min_epochs=20)

_MNIST_COMMON = """
[data]
kind = "mnist"
n_train = 10000
n_validation = 1000
n_test = 2000
binarize = "threshold"

[training]
estimator = "pcd"
k = 10
n_chains = 100
batch_size = 100
learning_rate = {learning_rate}
max_epochs = {max_epochs}

[stopping]
{stopping}
metric = "{metric}"
plateau_margin = 0.5

[evaluation]
log_likelihood = "{log_likelihood}"
ais_chains = 100
ais_betas = 10000
metrics = ["classifier", "moments", "mask"]

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epochs = ["converged"]

[protocols.scratch]
kind = "scratch"
epochs = ["converged"]
"""

# lr 0.05 and a stopping rule over 30 epochs (every 5, window 6, tolerance 0.1 nats): at lr 0.01 and
# 100 epochs (the earlier setting) 40 of 42 points of 784 x 16 stopped unconverged, the dense model
# at -150.3 and still rising; at lr 0.05 the dense model converges at 125-175 epochs (-142.6 +- 0.9),
# and doubling max_epochs to 400 moves no point that stopped before 200 and the others by <= 0.6 nats
# (784 x 16, 3 seeds; the init fit 0.284 [0.132, 0.348] -> 0.253 [0.044, 0.330] on the log axis).
# PCD at lr 0.05 leaves +-1.5 nats of epoch-to-epoch noise in the final model's likelihood: the
# tolerance is 0.1 nats, and the rule compares maxima, so one noisy epoch neither stops nor extends
# a run. The fractions past 0.99 (125, 25, 6 and 1 of 12,544 connections at 784 x 16) reach the floor.
_MNIST = """
name = "mnist"
output = "runs/study-mnist"
n_hidden = [16, 20, 24]
pruning_fractions = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.998, 0.9995, 0.9999]
seeds = [0, 1, 2]
""" + _MNIST_COMMON.format(max_epochs=200, learning_rate=0.05, metric="log_likelihood", log_likelihood="exact",
                           stopping="every = 5\nwindow = 6\ntolerance = 0.1\nmin_epochs = 20")

_MNIST_500 = """
name = "mnist-500"
output = "runs/study-mnist-500"
n_hidden = [500]
pruning_fractions = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98]
seeds = [0, 1]
""" + _MNIST_COMMON.format(max_epochs=50, learning_rate=0.01, metric="pseudo_log_likelihood", log_likelihood="ais",
                           stopping="every = 2\nwindow = 5\ntolerance = 0.01\nmin_epochs = 10")

BUILTIN = {
    "smoke": BuiltinStudy("16 x 4 teacher, 16 x 6 students, init and after pruning (tests)", "< 30 s (measured)", _SMOKE),
    "quick": BuiltinStudy("64 x 10 planted teacher, 64 x 16 students, init / after convergence / rewind / "
                          "scratch, 11 fractions up to 0.99, 3 seeds, exact likelihood", "~6 min (estimated)", _QUICK),
    "teacher": BuiltinStudy("finite-size scaling on the planted teacher: n_hidden 8, 12, 16, 24, 16 fractions up to 0.9999, "
                            "5 seeds, to 240 epochs", "~4-8 h (estimated; printed at the start)", _TEACHER),
    "mnist": BuiltinStudy("binarised MNIST, 784 x 16/20/24 (exact likelihood), init / after / scratch, "
                          "classifier score, 11 fractions to 0.9999, to 200 epochs",
                          "~8-10 h (estimated; the 784 x 16 third: 1.5 h measured on 2 workers)", _MNIST),
    "mnist-500": BuiltinStudy("binarised MNIST, 784 x 500 (the papers' model size), 10,000 training images, "
                              "likelihood by AIS", "~2.5 h (estimated)", _MNIST_500),
}


def mnist_path(data: str | os.PathLike | None = None) -> str:
    """``data``, or ``$DILUTION_DATA/mnist/mnist.npz``; a SpecError naming both when neither is given."""
    if data is not None:
        return str(data)
    root = os.environ.get("DILUTION_DATA")
    if not root:
        raise SpecError("data.path: this study reads MNIST; pass its mnist.npz (or IDX folder) with --data PATH, "
                        "or set DILUTION_DATA to the folder holding mnist/mnist.npz")
    return str(Path(root) / "mnist" / "mnist.npz")


def builtin_spec(name: str, *, output: str | None = None, data: str | os.PathLike | None = None) -> StudySpec:
    """A built-in spec by name (its relative output folder is relative to the current folder).

    Parameters
    ----------
    name : str
        A key of :data:`BUILTIN`.
    output : str, optional
        Replaces the spec's output folder.
    data : path-like, optional
        MNIST studies: the mnist.npz file or IDX folder (default ``$DILUTION_DATA/mnist/mnist.npz``);
        refused for the teacher studies, which generate their data.
    """
    if name not in BUILTIN:
        raise KeyError(f"no built-in study {name!r}; built-in studies: {', '.join(sorted(BUILTIN))}")
    raw = tomllib.loads(BUILTIN[name].toml)
    if raw["data"]["kind"] == "mnist":
        raw["data"]["path"] = mnist_path(data)
    elif data is not None:
        raise SpecError(f"data.path: study {name!r} generates its data (a planted teacher); --data is for the "
                        f"MNIST studies ({', '.join(n for n in BUILTIN if 'mnist' in n)})")
    if output is not None:
        raw["output"] = output
    return spec_from_dict(raw)
