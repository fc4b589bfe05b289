"""Study specifications: a TOML file, validated into a frozen dataclass before any compute starts.

A study is the product of the axes :data:`DIMS`, ``protocol x pruning_time x pruning_fraction x
n_hidden x seed`` (each protocol with its own pruning times); every point of the grid is trained
until the stopping rule (:class:`StoppingRule`) says it has converged, or up to
``training.max_epochs`` after its pruning, and evaluated on held-out data. The TOML layout::

    name = "smoke"
    output = "runs/study-smoke"        # relative to the spec file's folder (cwd for built-ins)
    n_hidden = [6]
    pruning_fractions = [0.0, 0.5, 0.8]
    seeds = [0, 1]

    [data]                             # kind = "teacher" (planted teacher) or "mnist"
    kind = "teacher"
    n_visible = 16
    n_hidden = 4
    weight_scale = 2.0
    seed = 0
    n_train = 500
    n_validation = 300
    n_test = 1000

    [training]                         # -> dilution.training.TrainConfig, dilution.estimators
    estimator = "pcd"                  # cd, pcd, ptpcd, exact
    k = 1
    batch_size = 50
    learning_rate = 0.05
    max_epochs = 40

    [stopping]                         # see StoppingRule
    every = 2
    window = 3
    tolerance = 0.005

    [evaluation]
    log_likelihood = "exact"           # or "ais" with ais_chains, ais_betas

    [protocols.init]                   # a table per protocol; the table name is its label
    kind = "init"
    [protocols.after]
    kind = "after"
    epochs = [10, "converged"]         # pruning times: after epoch 10, after the dense run converged
    criterion = "global_magnitude"

Pruning times (``epochs``, or one ``epoch``) are grid values of the ``pruning_time`` axis, labelled
``"10"``, ``"converged"`` (:func:`time_label`; ``"0"`` for ``init``); ``"converged"`` prunes when
the dense run's stopping rule fires, so "after training" means after convergence, not after a
fixed budget. Protocol kinds (all map to :class:`dilution.pruning_rules.PruningProtocol` with one
round): ``init`` prunes the initial model, then trains; ``after`` trains ``epoch`` epochs dense,
prunes, and fine-tunes the survivors; ``rewind`` prunes after ``epoch`` and rewinds the survivors to
their values after ``rewind_epoch`` (0: initialisation, the lottery ticket); ``reinit`` prunes
after ``epoch`` and draws the survivors anew; ``scratch`` takes the mask that ``after`` would
have at ``epoch`` and trains a fresh model on it (:func:`dilution.pruning_rules.from_scratch`'s
initial model), the "from scratch at equal sparsity" baseline.

Kinds that never prune a trained network (their ``pruning_time`` is one label, no epoch):
``static`` trains on a uniformly random mask of the point's sparsity, never changed (the
control of the rewiring rules, and ``init`` with the ``random`` criterion); ``deep-r``,
``soft-deep-r`` and ``ncg`` (:data:`RULE_KINDS`, ``pruning_time = "during"``) move connections
throughout training with :class:`dilution.deep_r.DeepR`, :class:`dilution.deep_r.SoftDeepR` and
:class:`dilution.ncg.NCG`, their sparsity set by the grid's ``pruning_fraction`` f: DEEP R keeps
``K = round((1 - f) n_pairs)`` connections active (per hidden unit, ``round((1 - f) n_visible)``,
with ``scope = "hidden"``), soft-DEEP R's prior connectivity is ``p0 = 1 - f``, NCG's initial
density is ``p = 1 - f`` (its final density is an outcome, recorded as ``connectivity``).
soft-DEEP R's floor ``theta_min`` is then derived from ``p0`` so that the prior's inclusion
probability is ``p0``; an explicit ``theta_min`` (needed at f = 0) leaves ``p0`` only the initial
density, the prior's inclusion probability being ``(T/alpha) / (T/alpha + |theta_min|)``. The
rule's other options go in ``rule_options`` (checked by the rule itself)::

    [protocols.deep-r]
    kind = "deep-r"
    rule_options = {alpha = 1e-4, temperature = 1e-6}

These rules apply their own prior and noise on plain SGD, so they need ``training.momentum``,
``training.l1`` and ``training.l2`` all 0.

Every error names the TOML key and what it expected, e.g.
``training.learning_rate: expected a number > 0, got -1.0``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = [
    "SpecError",
    "TeacherData",
    "MnistData",
    "TrainingSpec",
    "StoppingRule",
    "EvaluationSpec",
    "ProtocolSpec",
    "GridPoint",
    "RefineSpec",
    "StudySpec",
    "load_spec",
    "spec_from_toml",
    "spec_from_dict",
    "PROTOCOL_KINDS",
    "RULE_KINDS",
    "DURING",
    "METRICS",
    "DIMS",
    "CONVERGED",
    "TIMED_KINDS",
    "ESTIMATOR_OPTIONS",
    "time_label",
    "time_order",
]

PROTOCOL_KINDS = ("init", "after", "rewind", "reinit", "scratch", "static", "deep-r", "soft-deep-r", "ncg")
# Connectivity rules that move connections during training; the pruning fraction sets their sparsity.
RULE_KINDS = ("deep-r", "soft-deep-r", "ncg")
# The pruning time of RULE_KINDS: they act throughout training, not at an epoch.
DURING = "during"
# Optional metrics of [evaluation] metrics (studies.evaluate computes them).
METRICS = ("classifier", "moments", "aats", "couplings", "mixing", "mask")
AIS_SCHEDULES = ("linear", "classic")
# Dimension order of the merged study Dataset (studies.merge).
DIMS = ("protocol", "pruning_time", "pruning_fraction", "n_hidden", "seed")
# Protocol kinds that prune a dense run at chosen times (the others act from initialisation).
TIMED_KINDS = ("after", "rewind", "reinit", "scratch")
# The pruning time of a protocol that prunes once the dense run has converged.
CONVERGED = "converged"
_MNIST_TRAIN, _MNIST_TEST = 60_000, 10_000
# The [training] options of the estimators (dilution.estimators): option -> estimators that take it.
ESTIMATOR_OPTIONS = {"k": ("cd", "pcd", "ptpcd"), "n_chains": ("pcd", "ptpcd"), "n_temps": ("ptpcd",)}


class SpecError(ValueError):
    """A study specification is malformed; the message names the TOML key and what was expected."""


def _fail(key: str, expected: str, got: Any) -> SpecError:
    return SpecError(f"{key}: expected {expected}, got {got!r}")


def _unused_estimator_option(key: str, name: str, estimator: str, got: Any) -> SpecError:
    takers = ", ".join(repr(t) for t in ESTIMATOR_OPTIONS[name])
    return _fail(f"{key}.{name}", f"no {name} with estimator {estimator!r} ({name} is an option of {takers}; remove "
                 f"it or change {key}.estimator)", got)


def _no_rewind(key: str, kind: str, got: Any) -> SpecError:
    return _fail(f"{key}.rewind_epoch", f"no rewind_epoch for kind {kind!r} (only kind 'rewind' returns the survivors "
                 "to an earlier epoch)", got)


def _int(key: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(key, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise _fail(key, f"an integer {bounds}", value)
    return int(value)


def _float(key: str, value: Any, low: float | None = None, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(key, "a number", value)
    value = float(value)
    if not math.isfinite(value):
        raise _fail(key, "a finite number", value)
    if low is not None and (value <= low if strict else value < low):
        raise _fail(key, f"a number {'>' if strict else '>='} {low:g}", value)
    return value


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(key, "one of " + ", ".join(repr(a) for a in allowed), value)
    return value


def _table(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _fail(key, "a table", value)
    return value


def _take(key: str, table: dict, cls) -> dict:
    """The entries of ``table`` that are fields of ``cls``; unknown keys are an error."""
    names = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise SpecError(f"{key}: unknown key(s) {', '.join(repr(u) for u in unknown)}; allowed keys: {', '.join(names)}")
    return dict(table)


def _build(key: str, cls, table: dict):
    """``cls(**table)`` after checking that every field without a default is given."""
    missing = [f.name for f in fields(cls)
               if f.init and f.name not in table and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise SpecError(f"{key}.{missing[0]}: required key is missing (required in [{key}]: {', '.join(missing)})")
    return cls(**table)


def _required(key: str, table: dict, name: str) -> Any:
    if name not in table:
        raise SpecError(f"{key}.{name}: required key is missing")
    return table[name]


@dataclass(frozen=True)
class TeacherData:
    """Exact samples of a planted teacher (:func:`dilution.data.teacher.planted_teacher`).

    Training, validation and test sets are independent streams of ``seed``; the validation set
    drives the stopping rule, the test set the reported quality.
    """

    n_visible: int
    n_hidden: int
    n_train: int
    n_validation: int
    n_test: int
    connectivity: float = 1.0
    weight_scale: float = 1.0
    visible_bias_scale: float = 0.0
    hidden_bias_scale: float = 0.0
    visible_bias_mean: float = 0.0
    hidden_bias_mean: float = 0.0
    seed: int = 0
    kind: Literal["teacher"] = "teacher"

    def validate(self, key: str = "data") -> None:
        from dilution.data.teacher import MAX_HIDDEN

        _int(f"{key}.n_visible", self.n_visible, 1)
        _int(f"{key}.n_hidden", self.n_hidden, 1, MAX_HIDDEN)
        for name in ("n_train", "n_validation", "n_test"):
            _int(f"{key}.{name}", getattr(self, name), 1)
        c = _float(f"{key}.connectivity", self.connectivity, 0.0)
        if c > 1:
            raise _fail(f"{key}.connectivity", "a number in [0, 1]", c)
        for name in ("weight_scale", "visible_bias_scale", "hidden_bias_scale"):
            _float(f"{key}.{name}", getattr(self, name), 0.0)
        for name in ("visible_bias_mean", "hidden_bias_mean"):
            _float(f"{key}.{name}", getattr(self, name))
        _int(f"{key}.seed", self.seed, 0)

    @property
    def n_input(self) -> int:
        return self.n_visible


@dataclass(frozen=True)
class MnistData:
    """Binarised MNIST: ``n_train`` and ``n_validation`` disjoint samples of the training split
    (shuffled with ``seed``), the first ``n_test`` of the test split."""

    path: str
    n_train: int
    n_validation: int
    n_test: int
    binarize: Literal["threshold", "stochastic"] = "threshold"
    threshold: float = 0.5
    seed: int = 0
    kind: Literal["mnist"] = "mnist"

    def validate(self, key: str = "data") -> None:
        if not isinstance(self.path, str) or not self.path:
            raise _fail(f"{key}.path", "the path of mnist.npz or of a folder of IDX files", self.path)
        p = Path(self.path)
        if not p.exists() or not os.access(p, os.R_OK):
            raise _fail(f"{key}.path", "a readable mnist.npz file or IDX folder", self.path)
        _int(f"{key}.n_train", self.n_train, 1)
        _int(f"{key}.n_validation", self.n_validation, 1)
        if self.n_train + self.n_validation > _MNIST_TRAIN:
            raise _fail(f"{key}.n_train + {key}.n_validation", f"at most {_MNIST_TRAIN} (the training split)",
                        self.n_train + self.n_validation)
        _int(f"{key}.n_test", self.n_test, 1, _MNIST_TEST)
        _choice(f"{key}.binarize", self.binarize, ("threshold", "stochastic"))
        t = _float(f"{key}.threshold", self.threshold, 0.0)
        if t > 1:
            raise _fail(f"{key}.threshold", "a number in [0, 1]", t)
        _int(f"{key}.seed", self.seed, 0)

    @property
    def n_input(self) -> int:
        return 784


@dataclass(frozen=True)
class TrainingSpec:
    """Hyper-parameters of every run (-> :class:`dilution.training.TrainConfig`).

    ``max_epochs`` is the planned length of each run; the stopping rule usually ends it sooner.
    ``k``, ``n_chains`` and ``n_temps`` are options of the estimators that take them
    (:data:`ESTIMATOR_OPTIONS`); one set for an estimator that does not take it is an error.
    """

    estimator: Literal["cd", "pcd", "ptpcd", "exact"] = "pcd"
    k: int = 1
    n_chains: int | None = None
    n_temps: int | None = None
    batch_size: int = 100
    learning_rate: float = 0.01
    momentum: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    weight_scale: float = 0.01
    max_epochs: int = 100
    dtype: Literal["float32", "float64"] = "float64"

    def validate(self, key: str = "training") -> None:
        _choice(f"{key}.estimator", self.estimator, ("cd", "pcd", "ptpcd", "exact"))
        _int(f"{key}.batch_size", self.batch_size, 1)
        _float(f"{key}.learning_rate", self.learning_rate, 0.0, strict=True)
        m = _float(f"{key}.momentum", self.momentum, 0.0)
        if m >= 1:
            raise _fail(f"{key}.momentum", "a number in [0, 1)", m)
        _float(f"{key}.l2", self.l2, 0.0)
        _float(f"{key}.l1", self.l1, 0.0)
        _float(f"{key}.weight_scale", self.weight_scale, 0.0)
        _int(f"{key}.max_epochs", self.max_epochs, 1)
        _choice(f"{key}.dtype", self.dtype, ("float32", "float64"))
        # An option the estimator does not take would be dropped, yet still change the points'
        # keys. A field at its default counts as not set here (a dataclass cannot tell it from
        # unset); spec_from_dict refuses the key in a file whatever its value.
        for name, takers in ESTIMATOR_OPTIONS.items():
            value, default = getattr(self, name), _TRAINING_DEFAULTS[name]
            unset = value is None if default is None else (type(value) is type(default) and value == default)
            if self.estimator not in takers and not unset:
                raise _unused_estimator_option(key, name, self.estimator, value)
        try:
            self.estimator_value()
        except (TypeError, ValueError) as e:
            name, _, rest = str(e).partition(" ")  # "k must be an integer >= 1, got 0": the key is training.k
            if name in ESTIMATOR_OPTIONS:
                raise SpecError(f"{key}.{name}: {rest}") from None
            raise SpecError(f"{key}.estimator: {e}") from None

    def estimator_value(self):
        """The :mod:`dilution.estimators` value these fields define."""
        from dilution.estimators import estimator_from_name

        params: dict[str, Any] = {}
        if self.estimator != "exact":
            params["k"] = self.k
        if self.estimator in ("pcd", "ptpcd") and self.n_chains is not None:
            params["n_chains"] = self.n_chains
        if self.estimator == "ptpcd" and self.n_temps is not None:
            params["n_temps"] = self.n_temps
        return estimator_from_name(self.estimator, **params)

    def config(self, rule=None, epochs: int | None = None):
        """The :class:`~dilution.training.TrainConfig` of one run with connectivity rule ``rule``.

        Checkpoints evaluate only the initial and final model without likelihood: the study
        evaluates held-out data itself (:mod:`studies.convergence`).
        """
        from dilution.connectivity import StaticMask
        from dilution.training import TrainConfig

        return TrainConfig(
            estimator=self.estimator_value(), epochs=epochs or self.max_epochs, batch_size=self.batch_size,
            learning_rate=self.learning_rate, momentum=self.momentum, l2=self.l2, l1=self.l1,
            rule=rule if rule is not None else StaticMask(), weight_scale=self.weight_scale, checkpoints=1,
            exact_log_likelihood=False, dtype=self.dtype,
        )


_TRAINING_DEFAULTS = {f.name: f.default for f in fields(TrainingSpec)}


@dataclass(frozen=True)
class StoppingRule:
    """When a run has converged: early stopping on held-out quality.

    Every ``every`` epochs the held-out ``metric`` is evaluated (exact mean log-likelihood of
    the validation set, or its pseudo-log-likelihood as a labelled proxy when ``log Z`` cannot be
    enumerated). Evaluations start at the end of the last pruning epoch (the pruning itself
    changes the model; counting from there measures the recovery). With ``L_1, ..., L_n`` the
    evaluations so far, the run has converged at evaluation ``n > window`` when

        max(L_{n-window+1}, ..., L_n) - max(L_1, ..., L_{n-window}) < tolerance,

    that is, the last ``window`` evaluations improved on the best earlier one by less than
    ``tolerance`` nats (patience-based early stopping, Prechelt 1998). Taking maxima rather
    than the last value keeps the rule from stopping on one noisy PCD dip. No run stops before
    ``min_epochs`` epochs: a diluted model can sit on the initial plateau (the independent-unit
    model) for longer than a window before it starts to learn, and the rule would call that
    plateau converged. ``min_epochs`` alone does not settle that (on the planted teacher a model
    pruned at initialisation to 80 % leaves the plateau near epoch 50 and still gains at 120), so
    with ``plateau_margin`` > 0 the rule fires only once the best held-out value is at least
    ``plateau_margin`` nats above the independent-unit model's (fitted to the training set; the
    ``baseline`` of :meth:`converged`): a run that never leaves the plateau trains to
    ``training.max_epochs`` and is recorded as not converged, so the analysis flags it instead
    of reading the plateau as the collapse. A run that reaches ``training.max_epochs`` first is
    recorded with ``converged = False``.
    """

    every: int = 1
    window: int = 5
    tolerance: float = 0.01
    min_epochs: int = 0
    plateau_margin: float = 0.0
    metric: Literal["log_likelihood", "pseudo_log_likelihood"] = "log_likelihood"

    def validate(self, key: str = "stopping") -> None:
        _int(f"{key}.min_epochs", self.min_epochs, 0)
        _int(f"{key}.every", self.every, 1)
        _int(f"{key}.window", self.window, 1)
        _float(f"{key}.tolerance", self.tolerance, 0.0)
        _float(f"{key}.plateau_margin", self.plateau_margin, 0.0)
        _choice(f"{key}.metric", self.metric, ("log_likelihood", "pseudo_log_likelihood"))

    def gain(self, values) -> float:
        """The improvement the rule compares with ``tolerance`` (inf while fewer than ``window + 1`` values)."""
        values = np.asarray(values, dtype=np.float64)
        if values.size <= self.window:
            return math.inf
        return float(values[-self.window:].max() - values[: -self.window].max())

    def converged(self, values, baseline: float = -math.inf) -> bool:
        """Whether the trace ``values`` has converged; ``baseline`` is the held-out value of the
        independent-unit model (the plateau), which the best value must clear by ``plateau_margin``."""
        if self.gain(values) >= self.tolerance:
            return False
        return self.plateau_margin <= 0.0 or max(values) >= baseline + self.plateau_margin


@dataclass(frozen=True)
class EvaluationSpec:
    """Quality of every trained model on the test set (computed by :func:`studies.evaluate.evaluate`).

    ``log_likelihood = "exact"`` enumerates the smaller layer (at most
    :data:`dilution.exact.MAX_UNITS` units); ``"ais"`` estimates ``log Z`` with ``ais_chains``
    forward AIS runs over ``ais_betas`` inverse temperatures, linearly spaced or, with
    ``ais_schedule = "classic"``, in the proportions of Salakhutdinov & Murray's schedule (1/29 of
    them in [0, 0.5), 8/29 in [0.5, 0.9), 20/29 in [0.9, 1]: :func:`dilution.schedules.classic`)
    (:func:`analysis.likelihood.ais_log_likelihood`, base rate from the training data), and
    records the AIS standard error of ``log Z`` beside the estimate. ``ais_resample > 0`` runs AIS
    with adaptive resampling in ``ais_groups`` independent populations
    (:func:`dilution.ais.log_partition`'s ``resample``): for models whose annealing path crosses a
    sharp transition (PCD-trained MNIST RBMs with hundreds of hidden units), where plain AIS's
    weights collapse onto a chain or two. ``ais_reverse = true`` runs reverse AIS after the forward
    run, from the forward chains' end states after :data:`dilution.ais.REVERSE_BURN_IN` (1000) Gibbs
    sweeps (:func:`dilution.ais.log_partition`; the forward numbers are unchanged, its draws have
    streams of their own), and records the other side of the sandwich: ``log_partition_upper`` (a
    stochastic upper bound on ``log Z``, approximate since its chains start from Gibbs samples), its
    standard error and effective sample size, and ``test_log_likelihood_lower``, the test
    log-likelihood with that ``log Z``. ``ais_raise = n > 0`` also runs RAISE
    (:func:`dilution.ais.raise_log_likelihood`, Burda, Grosse & Salakhutdinov 2015): ``n`` reverse chains started at every test image, over the forward run's
    betas, whose mean estimate ``test_log_likelihood_raise`` is conservative where the annealing does
    not equilibrate (it is not a bound on the RBM's log-likelihood), and ``raise_gap``, the forward
    test log-likelihood less it, paired over the test images. It costs ``n`` x n_test reverse chains,
    about ``n * n_test / ais_chains`` forward runs. Like the other ``ais_*`` fields, ``ais_reverse``
    and ``ais_raise`` are ignored with ``log_likelihood = "exact"``.

    ``metrics`` switches on the optional metrics (:data:`METRICS`): ``"classifier"`` (auxiliary
    digit-classifier scores of model samples; MNIST only), ``"moments"`` (errors of pixel means
    and connected correlations), ``"aats"`` (nearest-neighbour adversarial accuracy against the
    test set), ``"couplings"`` (summaries of the effective Ising couplings, fraction above
    ``coupling_threshold``), ``"mixing"`` (integrated autocorrelation time of the free energy
    along ``mixing_chains`` Gibbs chains of ``mixing_sweeps`` sweeps after ``mixing_burn_in``),
    ``"mask"`` (isolated units and mean degrees). Model samples are the last states of
    ``n_samples`` Gibbs chains of ``n_sweeps`` sweeps from uniform random states. The classifier
    is trained once per study with ``classifier_seed`` and cached in the output folder.
    """

    log_likelihood: Literal["exact", "ais"] = "exact"
    ais_chains: int = 100
    ais_betas: int = 10_000
    ais_resample: float = 0.0
    ais_groups: int = 10
    ais_schedule: Literal["linear", "classic"] = "linear"
    ais_reverse: bool = False
    ais_raise: int = 0
    metrics: tuple = ()
    n_samples: int = 1000
    n_sweeps: int = 1000
    mixing_chains: int = 16
    mixing_sweeps: int = 2000
    mixing_burn_in: int = 200
    coupling_threshold: float = 0.01
    classifier_seed: int = 0

    def __post_init__(self):
        if isinstance(self.metrics, list):
            object.__setattr__(self, "metrics", tuple(self.metrics))

    def __repr__(self) -> str:
        # The dataclass repr without ais_reverse and ais_raise when they are off: studies.rewiring
        # keys its kept scores by this repr, and those of evaluations without them stay as they were.
        shown = (f for f in fields(self) if f.name not in ("ais_reverse", "ais_raise") or getattr(self, f.name))
        return f"{type(self).__qualname__}(" + ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in shown) + ")"

    def validate(self, key: str = "evaluation", data: TeacherData | MnistData | None = None) -> None:
        _choice(f"{key}.log_likelihood", self.log_likelihood, ("exact", "ais"))
        _int(f"{key}.ais_chains", self.ais_chains, 2)
        _int(f"{key}.ais_betas", self.ais_betas, 2)
        _choice(f"{key}.ais_schedule", self.ais_schedule, AIS_SCHEDULES)
        if self.ais_schedule == "classic":
            _int(f"{key}.ais_betas", self.ais_betas, 4)  # one beta in each of the first two pieces, two in the last
        if not 0.0 <= _float(f"{key}.ais_resample", self.ais_resample, 0.0) < 1.0:
            raise _fail(f"{key}.ais_resample", "a number in [0, 1) (0: plain AIS; 0.5 is usual)", self.ais_resample)
        if self.ais_resample:
            _int(f"{key}.ais_groups", self.ais_groups, 2)
            if self.ais_chains % self.ais_groups or self.ais_chains // self.ais_groups < 2:
                raise _fail(f"{key}.ais_groups", f"a divisor of ais_chains ({self.ais_chains}) leaving at least 2 "
                            "chains per population", self.ais_groups)
        if not isinstance(self.ais_reverse, bool):
            raise _fail(f"{key}.ais_reverse", "true or false", self.ais_reverse)
        _int(f"{key}.ais_raise", self.ais_raise, 0)
        if not isinstance(self.metrics, tuple):
            raise _fail(f"{key}.metrics", "a list of metric names (" + ", ".join(METRICS) + ")", self.metrics)
        for i, name in enumerate(self.metrics):
            _choice(f"{key}.metrics[{i}]", name, METRICS)
        if len(set(self.metrics)) != len(self.metrics):
            raise _fail(f"{key}.metrics", "distinct metric names", list(self.metrics))
        _int(f"{key}.n_samples", self.n_samples, 2)
        _int(f"{key}.n_sweeps", self.n_sweeps, 0)
        _int(f"{key}.mixing_chains", self.mixing_chains, 1)
        _int(f"{key}.mixing_sweeps", self.mixing_sweeps, 2)
        _int(f"{key}.mixing_burn_in", self.mixing_burn_in, 0)
        _float(f"{key}.coupling_threshold", self.coupling_threshold, 0.0)
        _int(f"{key}.classifier_seed", self.classifier_seed, 0)
        if "classifier" in self.metrics and data is not None and data.kind != "mnist":
            raise _fail(f"{key}.metrics", f"no 'classifier' for data.kind = {data.kind!r} (the auxiliary classifier "
                        "scores digits: data.kind = 'mnist' only)", list(self.metrics))


def time_label(epoch: int | str) -> str:
    """The ``pruning_time`` coordinate of a pruning time: the epoch as a string (``"0"``: at
    initialisation, ``"10"``: after epoch 10) or ``"converged"``. Strings, so that fixed epochs and
    "after convergence" share one axis; sort with :func:`time_order`."""
    return CONVERGED if epoch == CONVERGED else str(int(epoch))


def time_order(label: str) -> tuple:
    """Sort key of ``pruning_time`` labels: ``"during"`` (:data:`DURING`), epochs in increasing
    order, then ``"converged"``."""
    if label == DURING:
        return (-1, 0)
    return (1, 0) if label == CONVERGED else (0, int(label))


@dataclass(frozen=True)
class ProtocolSpec:
    """One pruning protocol (see the module docstring for the kinds).

    Parameters
    ----------
    name : str
        Its label (the TOML table name, the ``protocol`` coordinate).
    kind : str
        One of :data:`PROTOCOL_KINDS`: the pruning protocols "init", "after", "rewind", "reinit",
        "scratch", "static" (a fixed random mask), or a rule of :data:`RULE_KINDS`.
    epoch : int
        Epoch after which the network is pruned (0 and only 0 for ``init``); the same as
        ``epochs = [epoch]`` (give one of the two).
    epochs : tuple of int or "converged"
        The pruning times, each one grid value of the ``pruning_time`` axis: an epoch in
        ``[1, training.max_epochs]``, or ``"converged"``, the epoch at which the dense run's
        stopping rule fired (or ``max_epochs`` if it never did). The network trains dense up
        to that time, is pruned, and trains up to ``training.max_epochs`` more epochs.
    rewind_epoch : int
        ``rewind`` only (an error for the other kinds): the epoch whose parameters the
        survivors return to.
    criterion : str
        A :mod:`dilution.pruning` criterion name.
    criterion_options : dict
        Its parameters (e.g. ``{axis = "visible"}`` for ``unit_magnitude``).
    rule_options : dict
        :data:`RULE_KINDS` only: the rule's options but its sparsity (e.g. ``alpha``,
        ``temperature``, ``scope`` of DEEP R; ``theta_min`` of soft-DEEP R; ``strength_ratio``,
        ``threshold`` of NCG).
    """

    name: str
    kind: str
    epoch: int = 0
    rewind_epoch: int = 0
    criterion: str = "global_magnitude"
    criterion_options: dict = field(default_factory=dict)
    epochs: tuple = ()
    rule_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.epochs, list):
            object.__setattr__(self, "epochs", tuple(self.epochs))

    def validate(self, key: str, max_epochs: int) -> None:
        _choice(f"{key}.kind", self.kind, PROTOCOL_KINDS)
        if not isinstance(self.epochs, tuple):
            raise _fail(f"{key}.epochs", f"a list of epochs and/or {CONVERGED!r}", self.epochs)
        if self.kind not in TIMED_KINDS:
            if self.epoch != 0 or self.epochs:
                raise _fail(f"{key}.epoch" if self.epoch else f"{key}.epochs",
                            f"no pruning time for kind {self.kind!r} (it acts from initialisation; kinds with "
                            f"pruning times: {', '.join(TIMED_KINDS)})", self.epoch or list(self.epochs))
        else:
            if self.epoch and self.epochs:
                raise _fail(f"{key}.epoch", f"either epoch or epochs, not both (epochs = {list(self.epochs)})",
                            self.epoch)
            if not self.epoch and not self.epochs:
                raise SpecError(f"{key}.epochs: required key is missing (a list of epochs and/or {CONVERGED!r}, "
                                f"for kind {self.kind!r})")
            times = self.epochs or (self.epoch,)
            for i, t in enumerate(times):
                name = f"{key}.epochs[{i}]" if self.epochs else f"{key}.epoch"
                if t == CONVERGED:
                    continue
                if isinstance(t, str):
                    raise _fail(name, f"an epoch or {CONVERGED!r}", t)
                _int(name, t, 1)
                if t > max_epochs:
                    raise _fail(name, f"an epoch <= training.max_epochs = {max_epochs} (the dense phase is at most "
                                "max_epochs long)", t)
            if len(set(times)) != len(times):
                raise _fail(f"{key}.epochs", "distinct pruning times", list(times))
        if self.kind != "rewind" and not (type(self.rewind_epoch) is int and self.rewind_epoch == 0):
            raise _no_rewind(key, self.kind, self.rewind_epoch)
        _int(f"{key}.rewind_epoch", self.rewind_epoch, 0)
        fixed = [t for t in self.pruning_epochs if t != CONVERGED]
        if self.kind == "rewind" and fixed and self.rewind_epoch > min(fixed):
            raise _fail(f"{key}.rewind_epoch", f"an epoch <= every pruning epoch (the first is {min(fixed)})",
                        self.rewind_epoch)
        if not isinstance(self.criterion_options, dict):
            raise _fail(f"{key}.criterion_options", "a table of criterion parameters", self.criterion_options)
        from dilution.pruning import CRITERION_NAMES, criterion_from_name

        _choice(f"{key}.criterion", self.criterion, tuple(CRITERION_NAMES))
        try:
            criterion_from_name(self.criterion, **self.criterion_options)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{key}.criterion_options: {e}") from None

    @property
    def pruning_epochs(self) -> tuple:
        """The pruning times as given: epochs and/or :data:`CONVERGED` (0 for the kinds that act
        from initialisation, not in :data:`TIMED_KINDS`)."""
        if self.kind not in TIMED_KINDS:
            return (0,)
        return self.epochs or (self.epoch,)

    @property
    def pruning_times(self) -> tuple[str, ...]:
        """The ``pruning_time`` labels of :attr:`pruning_epochs` (see :func:`time_label`);
        :data:`DURING` for :data:`RULE_KINDS`."""
        if self.kind in RULE_KINDS:
            return (DURING,)
        return tuple(time_label(t) for t in self.pruning_epochs)

    def validate_rule(self, key: str, training: TrainingSpec, fractions: tuple, shapes: tuple) -> None:
        """Check ``rule_options`` (and ``criterion`` for ``static``) by building the rule of every
        grid point, ``shapes`` the ``(n_visible, n_hidden)`` of the grid's models."""
        if not isinstance(self.rule_options, dict):
            raise _fail(f"{key}.rule_options", "a table of rule options", self.rule_options)
        if self.kind not in RULE_KINDS:
            if self.rule_options:
                raise _fail(f"{key}.rule_options", f"no rule options for kind {self.kind!r} (only for "
                            f"{', '.join(RULE_KINDS)})", self.rule_options)
            if self.kind == "static" and (self.criterion != "global_magnitude" or self.criterion_options):
                raise _fail(f"{key}.criterion", "no criterion for kind 'static' (its mask is uniformly random)",
                            self.criterion)
            return
        if self.criterion != "global_magnitude" or self.criterion_options:
            raise _fail(f"{key}.criterion", f"no pruning criterion for kind {self.kind!r} (the rule moves the "
                        "connections itself)", self.criterion)
        for name in ("momentum", "l1", "l2"):
            if getattr(training, name) != 0:
                raise _fail(f"training.{name}", f"0 for protocol kind {self.kind!r} ({key}): the rule runs on plain "
                            "SGD and applies its own prior and noise", getattr(training, name))
        sparsity = _rule_class(self.kind).sparsity_option[0]  # the option the pruning fraction sets
        if sparsity in self.rule_options:
            raise _fail(f"{key}.rule_options.{sparsity}", "no value: the grid's pruning_fraction f sets it "
                        f"({sparsity} = {'round((1 - f) n_pairs)' if sparsity == 'k' else '1 - f'})",
                        self.rule_options[sparsity])
        cls = _rule_class(self.kind)
        names = [f.name for f in fields(cls)]
        for option in self.rule_options:
            if option not in names:
                raise SpecError(f"{key}.rule_options: {self.kind} has no option {option!r}; its options are "
                                f"{', '.join(n for n in names if n != sparsity)}")
        for f in fields(cls):
            if f.name != sparsity and f.default is MISSING and f.name not in self.rule_options:
                raise SpecError(f"{key}.rule_options.{f.name}: required key is missing")
        for fraction in fractions:
            for shape in shapes:
                try:
                    self.rule(fraction, training.weight_scale, shape=shape)
                except (TypeError, ValueError) as e:
                    raise SpecError(f"{key}.rule_options: at pruning_fraction {fraction:g} and model {shape[0]} x "
                                    f"{shape[1]}: {e}") from None

    def rule(self, fraction: float, weight_scale: float, at_epoch: int | None = None,
             shape: tuple[int, int] | None = None):
        """The connectivity rule of a point: the :class:`~dilution.pruning_rules.PruningProtocol`
        that prunes after epoch ``at_epoch`` (default ``epoch``; for ``scratch``: the one whose
        mask the fresh model takes; for ``static``: a random one at initialisation), or the
        :data:`RULE_KINDS` rule with the sparsity of ``fraction`` on a model of ``shape``
        ``(n_visible, n_hidden)`` (required by ``deep-r``)."""
        from dilution.pruning import RandomPruning, criterion_from_name
        from dilution.pruning_rules import PruningProtocol

        if self.kind == "static":
            return PruningProtocol(fraction=fraction, at_epochs=(0,), criterion=RandomPruning(), then="continue")
        if self.kind in RULE_KINDS:
            options = dict(self.rule_options)
            if self.kind == "deep-r":
                if shape is None:
                    raise ValueError("a deep-r protocol's rule needs the model shape (n_visible, n_hidden) for K")
                pairs = shape[0] * shape[1] if options.get("scope", "global") == "global" else shape[0]
                options["k"] = int(round((1.0 - fraction) * pairs))
            else:
                options[_rule_class(self.kind).sparsity_option[0]] = 1.0 - fraction
            rule = _rule_class(self.kind)(**options)
            if self.kind == "deep-r":
                rule.check_shape(*shape)
            return rule

        then = {"init": "continue", "after": "continue", "scratch": "continue", "rewind": "rewind",
                "reinit": "reinit"}[self.kind]
        return PruningProtocol(
            fraction=fraction, at_epochs=(self.epoch if at_epoch is None else at_epoch,),
            criterion=criterion_from_name(self.criterion, **self.criterion_options), then=then, rewind_epoch=self.rewind_epoch if self.kind == "rewind" else 0, reinit_scale=weight_scale,
        )


def _rule_class(kind: str):
    from dilution.deep_r import DeepR, SoftDeepR
    from dilution.ncg import NCG

    return {"deep-r": DeepR, "soft-deep-r": SoftDeepR, "ncg": NCG}[kind]


@dataclass(frozen=True)
class RefineSpec:
    """Adaptive refinement of the fraction axis (:mod:`studies.refine`).

    After the grid is computed, the transition of ``test_log_likelihood`` against the fraction
    is located on every ``(protocol, pruning_time, n_hidden)`` curve
    (:func:`analysis.transition.locate_transition`, bootstrap over seeds); wherever its
    ``confidence`` interval, widened to the grid cell that contains the location, is wider than
    ``target_width``, the midpoints of the grid intervals that it overlaps become new fractions,
    and the new points are computed; until every interval is narrower, or ``max_points``
    fractions have been added, or the grid cannot be split further (spacing ``resolution``).
    """

    target_width: float
    max_points: int
    confidence: float = 0.95
    n_bootstrap: int = 1000
    resolution: float = 0.001

    def validate(self, key: str = "refine") -> None:
        _float(f"{key}.target_width", self.target_width, 0.0, strict=True)
        _int(f"{key}.max_points", self.max_points, 1)
        c = _float(f"{key}.confidence", self.confidence, 0.0, strict=True)
        if c >= 1:
            raise _fail(f"{key}.confidence", "a number in (0, 1)", c)
        _int(f"{key}.n_bootstrap", self.n_bootstrap, 10)
        _float(f"{key}.resolution", self.resolution, 0.0, strict=True)


class GridPoint(NamedTuple):
    """One point of the grid.

    Attributes
    ----------
    n_hidden : int
    protocol : str
    pruning_time : str
        A :func:`time_label` of one of the protocol's pruning times.
    pruning_fraction : float
    seed : int
        The replica seed (the ``seed`` coordinate); the run's own seed is derived from it.
    key : str
        Stable name: readable coordinates and a digest of everything that determines the result
        (data, training, stopping, evaluation, the protocol's definition with this point's
        pruning time), so adding grid points (pruning times included) or changing the output
        folder never renames a point, and changing a setting does.
    """

    n_hidden: int
    protocol: str
    pruning_time: str
    pruning_fraction: float
    seed: int
    key: str


@dataclass(frozen=True)
class StudySpec:
    """A validated study (build with :func:`load_spec`, :func:`spec_from_toml` or :func:`spec_from_dict`)."""

    name: str
    data: TeacherData | MnistData
    n_hidden: tuple[int, ...]
    training: TrainingSpec
    protocols: tuple[ProtocolSpec, ...]
    pruning_fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    evaluation: EvaluationSpec
    stopping: StoppingRule
    output: str
    refine: RefineSpec | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _fail("name", "a non-empty string", self.name)
        self.data.validate("data")
        self.training.validate("training")
        self.stopping.validate("stopping")
        self.evaluation.validate("evaluation", self.data)
        for axis, values in (("n_hidden", self.n_hidden), ("pruning_fractions", self.pruning_fractions),
                             ("seeds", self.seeds), ("protocols", self.protocols)):
            if len(values) == 0:
                raise _fail(axis, "a non-empty list (the grid is the product of every axis)", list(values))
        for i, n in enumerate(self.n_hidden):
            _int(f"n_hidden[{i}]", n, 1)
        for i, f in enumerate(self.pruning_fractions):
            f = _float(f"pruning_fractions[{i}]", f)
            if not 0.0 <= f < 1.0:
                raise _fail(f"pruning_fractions[{i}]", "a fraction in [0, 1)", f)
        for i, s in enumerate(self.seeds):
            _int(f"seeds[{i}]", s, 0)
        for axis, values in (("n_hidden", self.n_hidden), ("pruning_fractions", self.pruning_fractions),
                             ("seeds", self.seeds), ("protocols", [p.name for p in self.protocols])):
            if len(set(values)) != len(values):
                raise _fail(axis, "distinct values", list(values))
        for p in self.protocols:
            p.validate(f"protocols.{p.name}", self.training.max_epochs)
            p.validate_rule(f"protocols.{p.name}", self.training, self.pruning_fractions,
                            tuple((self.data.n_input, h) for h in self.n_hidden))
        if self.stopping.min_epochs > self.training.max_epochs:
            raise _fail("stopping.min_epochs", f"at most training.max_epochs = {self.training.max_epochs}",
                        self.stopping.min_epochs)
        # evaluations at the phase's first epoch and every `every` epochs after: the rule compares
        # window + 1 of them, so it fires at the earliest window * every epochs in
        reach = self.stopping.window * self.stopping.every
        if reach > self.training.max_epochs:
            raise _fail("stopping.window", f"window * every (here {self.stopping.window} * {self.stopping.every} = "
                        f"{reach} epochs, the earliest the rule can fire) at most training.max_epochs = "
                        f"{self.training.max_epochs}", self.stopping.window)
        n_train = self.data.n_train
        if self.training.batch_size > n_train:
            raise _fail("training.batch_size", f"at most data.n_train = {n_train}", self.training.batch_size)
        from dilution.exact import MAX_UNITS

        too_big = [n for n in self.n_hidden if min(self.data.n_input, n) > MAX_UNITS]
        if too_big:
            smaller = f"min(n_visible = {self.data.n_input}, n_hidden) <= {MAX_UNITS}"
            if self.evaluation.log_likelihood == "exact":
                raise _fail("evaluation.log_likelihood", f"'ais' for n_hidden {too_big} (exact enumeration needs "
                            f"{smaller})", "exact")
            if self.stopping.metric == "log_likelihood":
                raise _fail("stopping.metric", f"'pseudo_log_likelihood' for n_hidden {too_big} (the exact "
                            f"held-out log-likelihood needs {smaller})", "log_likelihood")
        if not isinstance(self.output, str) or not self.output:
            raise _fail("output", "a folder path", self.output)
        if self.refine is not None:
            self.refine.validate("refine")
            if len(self.seeds) < 2:
                raise _fail("seeds", "at least 2 seeds with [refine] (the transition's interval is a bootstrap "
                            "over seeds)", list(self.seeds))

    # -- the grid --------------------------------------------------------------------------

    def protocol(self, name: str) -> ProtocolSpec:
        for p in self.protocols:
            if p.name == name:
                return p
        raise KeyError(f"no protocol {name!r} in study {self.name!r}; it has {[p.name for p in self.protocols]}")

    def point_config(self, n_hidden: int, protocol: str, pruning_time: str, fraction: float, seed: int) -> dict:
        """Everything that determines a point's result, as JSON-able values (what its key hashes).

        The protocol enters without its list of pruning times (only this point's time), so
        adding a time to a protocol keeps the keys of its other points.
        """
        proto = asdict(self.protocol(protocol))
        del proto["epoch"], proto["epochs"]
        evaluation = asdict(self.evaluation)
        if not evaluation["ais_resample"]:  # plain AIS: the keys of studies from before resampling existed
            del evaluation["ais_resample"], evaluation["ais_groups"]
        if evaluation["ais_schedule"] == "linear":  # and of those from before the schedule was a choice
            del evaluation["ais_schedule"]
        if not evaluation["ais_reverse"]:  # and of those from before the reverse run was an option
            del evaluation["ais_reverse"]
        if not evaluation["ais_raise"]:  # and of those from before RAISE was an option
            del evaluation["ais_raise"]
        return {
            "data": asdict(self.data), "training": asdict(self.training), "stopping": asdict(self.stopping),
            "evaluation": evaluation, "protocol": proto, "pruning_time": pruning_time,
            "n_hidden": int(n_hidden), "pruning_fraction": float(fraction), "seed": int(seed),
        }

    def points(self) -> list[GridPoint]:
        """Every grid point, in the order of :data:`DIMS`."""
        out = []
        for p in self.protocols:
            for t in p.pruning_times:
                for f in self.pruning_fractions:
                    for h in self.n_hidden:
                        for s in self.seeds:
                            blob = json.dumps(self.point_config(h, p.name, t, f, s), sort_keys=True).encode()
                            digest = hashlib.blake2b(blob, digest_size=6).hexdigest()
                            key = f"{p.name}-t{t}-h{h}-f{float(f):.4f}-s{s}-{digest}"
                            out.append(GridPoint(int(h), p.name, t, float(f), int(s), key))
        return out

    def coords(self) -> dict[str, list]:
        """The coordinates of :data:`DIMS`; ``pruning_time`` is the union of the protocols' times in
        :func:`time_order` (a protocol without a time has no points there)."""
        times = sorted({t for p in self.protocols for t in p.pruning_times}, key=time_order)
        return {
            "protocol": [p.name for p in self.protocols], "pruning_time": times,
            "pruning_fraction": [float(f) for f in self.pruning_fractions], "n_hidden": list(self.n_hidden),
            "seed": list(self.seeds),
        }

    def to_dict(self) -> dict:
        """The resolved spec as TOML-shaped values (:func:`spec_from_dict` inverts it): every field
        but the options the choices ignore (an estimator's option for another estimator,
        ``rewind_epoch`` for a kind that does not rewind), which a spec may not set."""
        raw = self._fields()
        for name, takers in ESTIMATOR_OPTIONS.items():
            if self.training.estimator not in takers:
                del raw["training"][name]
        for p in self.protocols:
            if p.kind != "rewind":
                del raw["protocols"][p.name]["rewind_epoch"]
        return raw

    def _fields(self) -> dict:
        """Every field as TOML-shaped values, the ignored options included: what :meth:`to_json`
        stamps, and so what stored studies are keyed by."""
        protocols = {}
        for p in self.protocols:
            d = asdict(p)
            del d["name"]
            protocols[p.name] = d
        return {
            "name": self.name, "output": self.output, "n_hidden": list(self.n_hidden),
            "pruning_fractions": list(self.pruning_fractions), "seeds": list(self.seeds), "data": asdict(self.data),
            "training": asdict(self.training), "stopping": asdict(self.stopping), "evaluation": asdict(self.evaluation),
            "protocols": protocols, **({"refine": asdict(self.refine)} if self.refine is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self._fields(), sort_keys=True)


_TOP = ("name", "output", "n_hidden", "pruning_fractions", "seeds", "data", "training", "stopping", "evaluation",
        "protocols", "refine")


def _list(key: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _fail(key, "a list", value)
    return tuple(value)


def _resolve(path: str, base: Path | None) -> str:
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if base is not None and not p.is_absolute():
        p = base / p
    return str(p)


def spec_from_dict(raw: dict, *, base: str | os.PathLike | None = None) -> StudySpec:
    """Validate TOML-shaped values into a :class:`StudySpec`.

    Parameters
    ----------
    raw : dict
        As :func:`tomllib.load` gives (see the module docstring for the keys).
    base : path-like, optional
        Folder that relative paths (``output``, ``data.path``) are relative to; default the
        current folder. ``$VARIABLES`` and ``~`` in paths are expanded.

    Raises
    ------
    SpecError
        Naming the key and what was expected.
    """
    raw = _table("spec", raw)
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise SpecError(f"unknown top-level key(s) {', '.join(repr(u) for u in unknown)}; allowed keys: {', '.join(_TOP)}")
    for key in ("name", "output", "n_hidden", "pruning_fractions", "seeds", "data", "training", "protocols"):
        if key not in raw:
            raise SpecError(f"{key}: required key is missing")
    base_dir = Path(base) if base is not None else None
    data = dict(_table("data", raw["data"]))
    kind = _choice("data.kind", data.pop("kind", None), ("teacher", "mnist"))
    cls = TeacherData if kind == "teacher" else MnistData
    data = _take("data", data, cls)
    if kind == "mnist" and isinstance(data.get("path"), str):
        data["path"] = _resolve(data["path"], base_dir)
    data_value = _build("data", cls, data)
    training_table = _take("training", _table("training", raw["training"]), TrainingSpec)
    training = _build("training", TrainingSpec, training_table)
    # A field at its default passes TrainingSpec.validate (the Python API cannot tell it from unset);
    # a key in the file is set, whatever its value.
    for name, takers in ESTIMATOR_OPTIONS.items():
        if name in training_table and training.estimator not in takers:
            raise _unused_estimator_option("training", name, training.estimator, training_table[name])
    stopping = _build("stopping", StoppingRule, _take("stopping", _table("stopping", raw.get("stopping", {})),
                                                      StoppingRule))
    evaluation = _build("evaluation", EvaluationSpec,
                        _take("evaluation", _table("evaluation", raw.get("evaluation", {})), EvaluationSpec))
    refine = None
    if "refine" in raw:
        refine = _build("refine", RefineSpec, _take("refine", _table("refine", raw["refine"]), RefineSpec))
    protocols = []
    for label, table in _table("protocols", raw["protocols"]).items():
        table = _take(f"protocols.{label}", _table(f"protocols.{label}", table), ProtocolSpec)
        if "name" in table:
            raise SpecError(f"protocols.{label}.name: the table name is the protocol's name; remove this key")
        _required(f"protocols.{label}", table, "kind")
        protocol = ProtocolSpec(name=label, **table)
        if "rewind_epoch" in table and protocol.kind in PROTOCOL_KINDS and protocol.kind != "rewind":
            raise _no_rewind(f"protocols.{label}", protocol.kind, table["rewind_epoch"])
        protocols.append(protocol)
    output = raw["output"]
    if isinstance(output, str):
        output = _resolve(output, base_dir)
    return StudySpec(
        name=raw["name"], data=data_value, n_hidden=_list("n_hidden", raw["n_hidden"]), training=training,
        protocols=tuple(protocols), pruning_fractions=_list("pruning_fractions", raw["pruning_fractions"]),
        seeds=_list("seeds", raw["seeds"]), evaluation=evaluation, stopping=stopping, output=output, refine=refine,
    )


def spec_from_toml(text: str, *, base: str | os.PathLike | None = None,
                   output: str | os.PathLike | None = None) -> StudySpec:
    """Parse and validate TOML text (see :func:`spec_from_dict`); ``output``, when given, replaces
    the text's ``output`` (or stands in for a missing one), relative to the current folder."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"not valid TOML: {e}") from None
    if output is not None:
        raw["output"] = str(Path(output).absolute())
    return spec_from_dict(raw, base=base)


def load_spec(path: str | os.PathLike, *, output: str | os.PathLike | None = None) -> StudySpec:
    """Read and validate a study spec file; relative paths in it are relative to its folder.
    ``output``, when given, replaces the file's ``output`` (a spec without one needs it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read study spec {p}: {e.strerror}") from None
    except UnicodeDecodeError:  # e.g. a study.nc given in its place
        raise SpecError(f"{p}: not valid TOML: not UTF-8 text") from None
    try:
        return spec_from_toml(text, base=p.resolve().parent, output=output)
    except SpecError as e:
        raise SpecError(f"{p}: {e}") from None
