"""Maximum-likelihood training of masked RBMs: a training state, a step, and a thin driver.

A run is a value, :class:`TrainState`: parameters, optimiser velocities, the gradient
estimator's chains and counters, the connectivity rule's state, the update count, the planned
length of the run and the history gathered so far. One update (:func:`train_step`) maps a
state and a mini-batch ``v`` of the shuffled training set to the next state:

1. positive phase: ``p(h = 1 | v)``;
2. the gradient estimate ``<v h>_data - <v h>_model`` of the configured estimator
   (:mod:`dilution.estimators`: CD-k, PCD-k, PCD with parallel tempering, or exact);
3. a masked SGD step (:class:`dilution.optim.SGD`) at the scheduled learning rate;
4. the connectivity rule (:mod:`dilution.connectivity`, :mod:`dilution.pruning`), then
   ``W[~M] = 0`` and the velocity masked again; a rule may ask to zero the velocities, put the
   persistent chains back to their update-0 state and restart the schedule (rewinding).

The driver (:func:`iterate`, :func:`train`) picks the batches, evaluates checkpoints, runs
callbacks and the progress bar, outside the step (emcee's ``sample`` / ``run_mcmc`` split).
Because the state holds everything that moves, a run stopped at any update, saved with
:func:`dilution.save` and continued with ``train(None, data, resume=state_or_path)`` in a new process
ends bit-identical to an uninterrupted run. The planned length is part of the state: continuing
is not extending.

Every random choice derives from one seed through :func:`dilution.rng.derive_seed`: initial
parameters, epoch shuffles (a pure function of the epoch), Gibbs draws (per-chain
counter-based streams), reconstructions and the rule's choices (a pure function of the update).
No numpy matrix product runs in the loop (BLAS sums may depend on the thread count), so a run is
bit-identical for any ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, NamedTuple, Sequence

import numba
import numpy as np
import xarray as xr
from numba.core import event as numba_event

from . import ais, exact, interrupt
from .io import load_state, state_dataset
from .connectivity import ConnectivityRule, RuleInfo, StaticMask, StepContext
from .estimators import PCD, GradientEstimator
from .gibbs import hidden_probabilities_by_path, reconstruction_errors_by_path
from .conditionals import free_energy, hidden_probabilities
from .model import RBM, SUPPORTED_DTYPES, check_connectivity
from .optim import SGD, Constant, Schedule, SGDState
from .parameters import Parameters
from .progress import WORK_PER_SECOND, progress_bar
from .provenance import provenance
from .rng import chain_keys, derive_seed
from .statefile import to_dataset as state_to_dataset
from .statistics import reconstruction_errors
from .validation import check_binary, check_finite, check_int

__all__ = [
    "TrainConfig",
    "TrainPlan",
    "TrainState",
    "StepInfo",
    "TrainResult",
    "CheckpointRecord",
    "init_state",
    "extend",
    "extendable",
    "train_step",
    "iterate",
    "train",
    "initialize",
    "history",
    "checkpoint_steps",
    "data_fingerprint",
    "TrainingWarning",
    "LikelihoodCollapseWarning",
    "RunawayWeightsWarning",
    "COLLAPSE_NATS",
    "RUNAWAY_WEIGHT",
]

# Rows per chunk when a checkpoint evaluates the whole training set (bounds memory on MNIST).
_EVAL_CHUNK = 8192
# Below this chain-sweep work per update, numba runs on one thread: waking the thread pool
# costs more than the work (milliseconds per parallel region when other processes compete for
# the cores). Results do not depend on the thread count.
_PARALLEL_WORK = 2e6
_LL_METHODS = ("auto", "exact", "ais", "none")
# The train log-likelihood may fall this far (nats per sample) below its best checkpoint before the
# run is reported as collapsed; SGD fluctuations of small models stay well below it.
COLLAPSE_NATS = 0.5
# Largest |W| before the weights are reported as running away (sigmoid(20) = 1 - 2e-9: units frozen).
RUNAWAY_WEIGHT = 20.0


class TrainingWarning(RuntimeWarning):
    """A run that ended but did not learn what it should (base class of the checks below)."""


class LikelihoodCollapseWarning(TrainingWarning):
    """The final checkpoint's train log-likelihood is more than :data:`COLLAPSE_NATS` below the best
    checkpoint's (beyond three combined standard errors when estimated by AIS).

    Attributes
    ----------
    best, final : float
        Best and final train log-likelihood (nats per sample).
    best_step : int
        Update count of the best checkpoint (the history's ``best_step`` attribute).
    """

    def __init__(self, message: str, best: float, final: float, best_step: int):
        super().__init__(message)
        self.best, self.final, self.best_step = best, final, best_step


class RunawayWeightsWarning(TrainingWarning):
    """The largest ``|W|`` exceeds :data:`RUNAWAY_WEIGHT` at the end of the run (``largest``)."""

    def __init__(self, message: str, largest: float):
        super().__init__(message)
        self.largest = largest
# RuleInfo fields that are instructions to the trainer, not measurements to log.
_RESET_FIELDS = ("reset_optimizer", "reset_chains", "schedule_step")


class _CompileClock(numba_event.Listener):
    """Seconds numba has spent compiling in this process (outermost compilations only; loading
    from its cache is not compiling). Training times exclude them: on a cold cache the first
    updates compile for tens of seconds, which is not the speed of training."""

    def __init__(self):
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0

    def on_start(self, ev):
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1

    def on_end(self, ev):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start


_COMPILE_CLOCK = _CompileClock()
numba_event.register("numba:compile", _COMPILE_CLOCK)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run.

    Parameters
    ----------
    estimator : GradientEstimator
        The negative phase: :class:`~dilution.estimators.CD`, :class:`~dilution.estimators.PCD`
        (default ``PCD(k=1)``, as many chains as the batch size),
        :class:`~dilution.estimators.PTPCD` or :class:`~dilution.estimators.Exact`.
    epochs : int
    batch_size : int
        Training samples per update; the last batch of an epoch may be smaller.
    learning_rate : float or Schedule
    momentum : float or Schedule
        See :class:`dilution.optim.SGD` for the exact update.
    l2, l1 : float
        Weight-decay coefficients (weights only).
    rule : ConnectivityRule
        Changes the mask during training; default :class:`~dilution.connectivity.StaticMask`.
    connectivity, weight_scale, marginal_clip : float
        Initialisation when :func:`train` gets a shape instead of an RBM (see :func:`initialize`).
    checkpoints : int or tuple of int
        An int ``n`` gives ``n`` log-spaced update counts ending at the last update
        (:func:`checkpoint_steps`); a tuple lists update counts. The initial model (update 0)
        is always evaluated as well.
    exact_log_likelihood : bool
        False: no log-likelihood at checkpoints, whatever ``checkpoint_log_likelihood`` says.
    exact_max_units : int
        Default :data:`dilution.exact.MAX_UNITS`.
    checkpoint_log_likelihood : "auto", "exact", "ais" or "none"
        How checkpoints measure the train log-likelihood and log Z: by enumeration ("exact", NaN
        when the smaller layer has more than ``exact_max_units`` units), by a short forward AIS
        ("ais": ``checkpoint_ais_chains`` chains, ``checkpoint_ais_betas`` betas linear in beta,
        base rates of the training data, the same streams at every checkpoint; its standard
        error goes to the history's ``log_likelihood_se``), or not at all. "auto" (default):
        exact when enumerable, else AIS.
    checkpoint_ais_chains, checkpoint_ais_betas : int
        Size of the checkpoint AIS (default 100 chains, 1000 betas).
    dtype : "float32", "float64" or None
        Precision of the run; None keeps the dtype of a given RBM (float64 for a shape).
    shuffle : bool
        Shuffle the training set anew every epoch (default); False visits it in its given
        order every epoch (as the NCG reference code does).
    """

    estimator: GradientEstimator = PCD(k=1)
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float | Schedule = 0.01
    momentum: float | Schedule = 0.0
    l2: float = 0.0
    l1: float = 0.0
    rule: ConnectivityRule = StaticMask()
    connectivity: float = 1.0
    weight_scale: float = 0.01
    marginal_clip: float = 1e-3
    checkpoints: int | tuple[int, ...] = 10
    exact_log_likelihood: bool = True
    exact_max_units: int = exact.MAX_UNITS
    checkpoint_log_likelihood: Literal["auto", "exact", "ais", "none"] = "auto"
    checkpoint_ais_chains: int = 100
    checkpoint_ais_betas: int = 1000
    dtype: str | None = None
    shuffle: bool = True

    def __post_init__(self):
        # a class passes the runtime Protocol checks below and fails only inside train
        for name, example in (("estimator", "PCD(k=1)"), ("rule", "StaticMask()")):
            if isinstance(getattr(self, name), type):
                raise TypeError(f"{name} must be an instance such as {example}, got the class "
                                f"{getattr(self, name).__name__}")
        if not isinstance(self.estimator, GradientEstimator):
            raise TypeError(
                "estimator must be a gradient estimator such as dilution.estimators.PCD(k=10) "
                f"(init, estimate, restart, describe), got {self.estimator!r}"
            )
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        self.optimizer()  # validates learning_rate, momentum, l2, l1
        if not isinstance(self.rule, ConnectivityRule):
            raise TypeError(
                f"rule must implement dilution.connectivity.ConnectivityRule (init and update), "
                f"got {type(self.rule).__name__}"
            )
        reason = getattr(self.rule, "plain_sgd", None)
        if reason is not None:
            # momentum may be a schedule: only the constant 0 is plain SGD
            terms = (("momentum", self.momentum), ("l1", self.l1), ("l2", self.l2))
            stepped = [f"{name}={value!r}" for name, value in terms
                       if not (value == 0 or (isinstance(value, Constant) and value.value == 0))]
            if stepped:
                raise ValueError(f"{type(self.rule).__name__} needs momentum=0, l1=0 and l2=0, got "
                                 f"{', '.join(stepped)}: {reason}")
        check_connectivity(self.connectivity)
        check_finite("weight_scale", self.weight_scale, low=0.0)
        if not 0 < check_finite("marginal_clip", self.marginal_clip) < 0.5:
            raise ValueError(f"marginal_clip must be in (0, 0.5), got {self.marginal_clip!r}")
        if isinstance(self.checkpoints, (list, tuple, np.ndarray)):
            steps = tuple(check_int("checkpoints entry", c, low=0) for c in self.checkpoints)
            if list(steps) != sorted(set(steps)):
                raise ValueError(f"checkpoints must be strictly increasing update counts, got {steps}")
            object.__setattr__(self, "checkpoints", steps)
        else:
            check_int("checkpoints", self.checkpoints, low=1)
        if not isinstance(self.exact_log_likelihood, (bool, np.bool_)):
            raise TypeError(f"exact_log_likelihood must be True or False, got {self.exact_log_likelihood!r}")
        check_int("exact_max_units", self.exact_max_units, low=1)
        if self.checkpoint_log_likelihood not in _LL_METHODS:
            raise ValueError(f"checkpoint_log_likelihood must be one of {', '.join(map(repr, _LL_METHODS))}, "
                             f"got {self.checkpoint_log_likelihood!r}")
        check_int("checkpoint_ais_chains", self.checkpoint_ais_chains, low=2)  # two for a standard error
        check_int("checkpoint_ais_betas", self.checkpoint_ais_betas, low=2)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {self.shuffle!r}")
        if self.dtype is not None:
            try:
                dt = np.dtype(self.dtype)
            except (TypeError, ValueError):
                # numpy's "data type 'foo' not understood" does not say which argument
                raise ValueError(f"dtype must be 'float32', 'float64' or None, got {self.dtype!r}") from None
            if dt not in SUPPORTED_DTYPES:
                raise ValueError(f"dtype must be 'float32', 'float64' or None, got {self.dtype!r}")
            object.__setattr__(self, "dtype", dt.name)

    def optimizer(self) -> SGD:
        """The :class:`~dilution.optim.SGD` these hyper-parameters define (built once: the step calls this)."""
        sgd = self.__dict__.get("_sgd")
        if sgd is None:
            sgd = SGD(learning_rate=self.learning_rate, momentum=self.momentum, l2=self.l2, l1=self.l1)
            object.__setattr__(self, "_sgd", sgd)
        return sgd

    def to_json(self) -> str:
        """The configuration as JSON (estimator, schedules and rules as ``{"type": ..., fields}``)."""
        return json.dumps(_jsonable(self))


class TrainPlan(NamedTuple):
    """The planned run: fixed at the start, part of the state, so continuing is not extending.

    Attributes
    ----------
    n_samples, n_visible, n_hidden, batch_size, updates_per_epoch, epochs, total_steps : int
    checkpoints : tuple of int
        Update counts at which the history records the model (0 included).
    data_fingerprint : str
        BLAKE2b digest of the training data (shape and bits): a resumed run must see the same data.
    """

    n_samples: int
    n_visible: int
    n_hidden: int
    batch_size: int
    updates_per_epoch: int
    epochs: int
    total_steps: int
    checkpoints: tuple
    data_fingerprint: str


class EpochTally(NamedTuple):
    """Sums over the updates of the epoch in progress (folded into the history at its end)."""

    reconstruction_sum: float = 0.0
    n_added: int = 0
    n_removed: int = 0
    n_resets: int = 0
    n_updates: int = 0
    rule_sums: dict = {}
    wall_time: float = 0.0


class HistoryLog(NamedTuple):
    """What the history has gathered so far: one dict of numbers per checkpoint and per epoch.

    ``rule_arrays`` holds, per checkpoint, the arrays a rule exposes through an optional
    ``checkpoint_arrays(rule_state) -> {name: ndarray of shape (n_visible, n_hidden)}`` method
    (e.g. NCG's connection strengths); they become ``rule_<name>`` variables of the history.
    """

    checkpoints: tuple = ()
    masks: tuple = ()
    epochs: tuple = ()
    init_rule: dict = {}
    rule_arrays: tuple = ()


class TrainState(NamedTuple):
    """Everything that moves during a run (see the module docstring).

    Attributes
    ----------
    config : TrainConfig
    seed : int
    plan : TrainPlan
    params : Parameters
    optimizer : SGDState
    estimator : Any
        State of ``config.estimator`` (chains, stream keys, draw counters).
    rule : Any
        State of ``config.rule``.
    step : int
        Updates done.
    schedule_offset : int
        The schedules are evaluated at ``step - schedule_offset`` of a run of
        ``total_steps - schedule_offset`` updates (nonzero after a rule restarted them).
    reconstruction_keys : ndarray of uint64, shape (batch_size,)
    tally : EpochTally
    log : HistoryLog
    train_time : float
        Seconds of training so far, checkpoint evaluations and numba compilation excluded (not
        reproducible, and not compared when runs are).
    compile_time : float
        Seconds numba spent compiling kernels during the updates (a cold cache; 0 once cached).
    """

    config: TrainConfig
    seed: int
    plan: TrainPlan
    params: Parameters
    optimizer: SGDState
    estimator: Any
    rule: Any
    step: int
    schedule_offset: int
    reconstruction_keys: np.ndarray
    tally: EpochTally
    log: HistoryLog
    train_time: float
    compile_time: float = 0.0

    @property
    def epoch(self) -> int:
        """0-based epoch of the next update."""
        return self.step // self.plan.updates_per_epoch

    @property
    def model(self) -> RBM:
        return RBM(*self.params)

    @property
    def done(self) -> bool:
        return self.step >= self.plan.total_steps


@state_dataset.register
def _train_state_dataset(state: TrainState, **attrs: Any) -> xr.Dataset:
    """What :func:`dilution.io.save` writes for a training state."""
    return state_to_dataset(state, **provenance(title="RBM training state", seed=state.seed, step=state.step), **attrs)


class StepInfo(NamedTuple):
    """What one update did (returned by :func:`train_step`, folded into the epoch tally by the driver)."""

    reconstruction_sum: float
    learning_rate: float
    momentum: float
    n_added: int
    n_removed: int
    reset: bool
    rule_values: dict


class CheckpointRecord(NamedTuple):
    """State and metrics at one checkpoint, passed to callbacks.

    Attributes
    ----------
    index : int
        Position in the history's ``checkpoint`` dimension.
    step : int
        Updates done.
    epochs_trained : float
        ``step / updates_per_epoch``.
    model : RBM
        Snapshot of the model.
    chains : ndarray, shape (n_chains, n_visible), or None
        Copy of the persistent chains (PCD), None for other estimators.
    rule_state : Any
        State of the connectivity rule.
    reconstruction_error, log_likelihood, log_partition, connectivity, weight_l1, weight_l2, wall_time : float
        The checkpoint's row of the history.
    state : TrainState
        The full training state (save it with :func:`dilution.save` to continue later).
    log_likelihood_se : float
        Standard error of ``log_likelihood`` (0 when exact, NaN when not computed).
    """

    index: int
    step: int
    epochs_trained: float
    model: RBM
    chains: np.ndarray | None
    rule_state: Any
    reconstruction_error: float
    log_likelihood: float
    log_partition: float
    connectivity: float
    weight_l1: float
    weight_l2: float
    wall_time: float
    state: TrainState
    log_likelihood_se: float = math.nan


class TrainResult(NamedTuple):
    """Trained model, its labelled training history, and the final state (see :func:`train`)."""

    model: RBM
    history: xr.Dataset
    state: TrainState


def checkpoint_steps(n_checkpoints: int, total_steps: int) -> np.ndarray:
    """Up to ``n_checkpoints`` distinct, roughly log-spaced update counts in ``[1, total_steps]``.

    Always ends at ``total_steps``; fewer are returned only when ``total_steps < n_checkpoints``.

    Returns
    -------
    ndarray of int64
    """
    n = min(check_int("n_checkpoints", n_checkpoints, low=1), check_int("total_steps", total_steps, low=1))
    out = np.empty(n, dtype=np.int64)
    prev = 0
    for idx, x in enumerate(np.geomspace(1, total_steps, n)):
        prev = max(int(round(x)), prev + 1)
        out[idx] = prev
    out = np.minimum(out, total_steps)
    out[-1] = total_steps
    return np.unique(out)


def initialize(
    n_visible: int,
    n_hidden: int,
    data=None,
    *,
    connectivity: float = 1.0,
    weight_scale: float = 0.01,
    marginal_clip: float = 1e-3,
    dtype: type | np.dtype | str = np.float64,
    seed: int,
) -> RBM:
    """Initial RBM as in Hinton's practical guide (2010, sec. 8).

    Weights and mask of :meth:`RBM.random` (``N(0, weight_scale**2)`` on a uniformly random mask
    with exactly ``round(connectivity * n_visible * n_hidden)`` connections); hidden bias 0; visible bias
    ``log(p_i / (1 - p_i))`` from the data marginals ``p_i`` clipped to
    ``[marginal_clip, 1 - marginal_clip]`` (0 without data).

    Parameters
    ----------
    n_visible, n_hidden : int
    data : array_like, shape (n_samples, n_visible), optional
        Binary training data.
    connectivity, weight_scale, marginal_clip : float
    dtype : float32 or float64
    seed : int
    """
    rbm = RBM.random(n_visible, n_hidden, connectivity=connectivity, weight_scale=weight_scale, dtype=dtype,
                     seed=derive_seed(seed, "initialize"))
    if data is None:
        a = np.zeros(rbm.n_visible)
    else:
        v = check_binary("data", data, rbm.n_visible, np.float64)
        p = np.clip(v.mean(axis=0), marginal_clip, 1.0 - marginal_clip)
        a = np.log(p / (1.0 - p))
    return rbm.replace(visible_bias=a.astype(rbm.dtype), hidden_bias=np.zeros(rbm.n_hidden, dtype=rbm.dtype))


def data_fingerprint(data: np.ndarray) -> str:
    """BLAKE2b digest of a binary data matrix (its shape and bits, not its dtype)."""
    bits = np.ascontiguousarray(np.asarray(data) != 0)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(bits.shape).encode())
    h.update(np.packbits(bits, axis=None).tobytes())
    return h.hexdigest()


def _check_data(data, n_visible: int | None, dtype: np.dtype) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D with shape (n_samples, n_visible), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("data must hold at least one sample, got 0 rows")
    if n_visible is not None and arr.shape[1] != n_visible:
        raise ValueError(f"data has {arr.shape[1]} columns but the model has {n_visible} visible units")
    if np.issubdtype(arr.dtype, np.floating):
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        if n_nan:
            raise ValueError(f"data contains {n_nan} NaN entries; expected binary values 0 or 1")
    return check_binary("data", arr, arr.shape[1], dtype)


def _read_only(params: Parameters) -> Parameters:
    views = []
    for arr in params:
        view = arr.view()
        view.flags.writeable = False
        views.append(view)
    return Parameters(*views)


def _check_rule_output(rule, old: Parameters, new) -> Parameters:
    if not isinstance(new, Parameters):
        raise TypeError(f"{type(rule).__name__} must return dilution.parameters.Parameters, got {type(new).__name__}")
    for name, a, b in zip(Parameters._fields, old, new):
        if not isinstance(b, np.ndarray) or b.shape != a.shape or b.dtype != a.dtype:
            raise ValueError(
                f"{type(rule).__name__} returned {name} as {getattr(b, 'dtype', type(b))} {getattr(b, 'shape', '')}; "
                f"expected {a.dtype} {a.shape}"
            )
    return new


def _info_values(info) -> dict[str, float]:
    if not (isinstance(info, tuple) and hasattr(info, "_fields") and info._fields[:2] == RuleInfo._fields[:2]):
        raise TypeError(
            f"a connectivity rule must return a NamedTuple info starting with (n_added, n_removed), got {info!r}"
        )
    return {
        k: float(v) for k, v in info._asdict().items()
        if np.isscalar(v) and not isinstance(v, str) and k not in _RESET_FIELDS
    }


def _context(state_step: int, plan: TrainPlan, seed: int, epoch_end: bool, lr: float, mu: float, **extra):
    epoch = 0 if state_step == 0 else (state_step - 1) // plan.updates_per_epoch
    return StepContext(
        state_step, epoch, epoch_end, lr, mu, plan.total_steps, plan.updates_per_epoch, plan.epochs, seed, **extra
    )


class _Applied(NamedTuple):
    params: Parameters
    optimizer: SGDState
    estimator: Any
    schedule_offset: int
    values: dict
    reset: bool


def _apply_rule(state: TrainState, current: Parameters, shown: Parameters, new, info, step: int, data) -> _Applied:
    """Take a rule's output: re-apply ``W[~M] = 0``, mask the velocity, carry out the resets it asks for."""
    rule = state.config.rule
    opt = state.config.optimizer()
    opt_state, est_state, offset = state.optimizer, state.estimator, state.schedule_offset
    values = _info_values(info)
    if new is not shown:
        new = _check_rule_output(rule, shown, new)
        unchanged = [n is s for n, s in zip(new, shown)]
        if all(unchanged):
            new = current
        else:
            mask = current.mask if unchanged[3] else np.array(new.mask, dtype=bool)
            weights = np.where(mask, new.weights, new.weights.dtype.type(0))
            biases = [c if u else np.array(n) for c, n, u in zip(current[1:3], new[1:3], unchanged[1:3])]
            new = Parameters(weights, biases[0], biases[1], mask)
            if not unchanged[3]:
                opt_state = opt.mask_state(opt_state, mask)
    else:
        new = current
    reset = False
    if getattr(info, "reset_optimizer", False):
        opt_state, reset = opt.init(new), True
    if getattr(info, "reset_chains", False):
        initial = state.config.estimator.init(new, data, state.plan.batch_size, state.seed)
        est_state, reset = state.config.estimator.restart(est_state, initial), True
    schedule_step = int(getattr(info, "schedule_step", -1))
    if schedule_step >= 0:
        if schedule_step > step:
            raise ValueError(f"{type(rule).__name__} asked to restart the schedule at update {schedule_step}, "
                             f"after the current update {step}")
        offset, reset = step - schedule_step, True
    return _Applied(new, opt_state, est_state, offset, values, reset)


def init_state(rbm_or_shape: RBM | tuple[int, int], data, config: TrainConfig, *, seed: int) -> TrainState:
    """The state at update 0: initial model, zero velocities, the estimator's chains, the rule's init.

    Parameters
    ----------
    rbm_or_shape : RBM or (n_visible, n_hidden)
        A starting model (its mask is the starting mask), or the layer sizes of a model
        created by :func:`initialize` with the config's ``connectivity``, ``weight_scale`` and
        ``marginal_clip``.
    data : array_like, shape (n_samples, n_visible)
        Binary training data.
    config : TrainConfig
    seed : int
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    seed = check_int("seed", seed, low=0)
    if isinstance(rbm_or_shape, RBM):
        dtype = np.dtype(config.dtype) if config.dtype is not None else rbm_or_shape.dtype
        v_data = _check_data(data, rbm_or_shape.n_visible, dtype)
        rbm = rbm_or_shape.astype(dtype)
    else:
        try:
            n_visible, n_hidden = rbm_or_shape
        except (TypeError, ValueError):
            raise TypeError(
                f"rbm_or_shape must be an RBM or a tuple (n_visible, n_hidden), got {rbm_or_shape!r}"
            ) from None
        dtype = np.dtype(config.dtype or "float64")
        v_data = _check_data(data, check_int("n_visible", n_visible, low=1), dtype)
        rbm = initialize(
            n_visible, n_hidden, v_data, connectivity=config.connectivity, weight_scale=config.weight_scale,
            marginal_clip=config.marginal_clip, dtype=dtype, seed=seed,
        )
    n_samples = v_data.shape[0]
    if config.batch_size > n_samples:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n_samples} training samples")
    updates_per_epoch = -(-n_samples // config.batch_size)
    total_steps = updates_per_epoch * config.epochs
    config.optimizer().check_run(total_steps)
    if isinstance(config.checkpoints, tuple):
        steps = tuple(sorted(set((0,) + config.checkpoints)))
        if steps[-1] > total_steps:
            raise ValueError(f"checkpoint at update {steps[-1]} is beyond the run's {total_steps} updates")
    else:
        steps = (0,) + tuple(int(s) for s in checkpoint_steps(config.checkpoints, total_steps))
    plan = TrainPlan(
        n_samples, rbm.n_visible, rbm.n_hidden, config.batch_size, updates_per_epoch, config.epochs, total_steps,
        steps, data_fingerprint(v_data),
    )
    params = Parameters(
        np.array(rbm.weights), np.array(rbm.visible_bias), np.array(rbm.hidden_bias), np.array(rbm.mask)
    )
    state = TrainState(
        config=config, seed=seed, plan=plan, params=params, optimizer=config.optimizer().init(params),
        estimator=config.estimator.init(params, v_data, config.batch_size, seed), rule=None, step=0,
        schedule_offset=0, reconstruction_keys=chain_keys(derive_seed(seed, "reconstruction"), config.batch_size),
        tally=EpochTally(), log=HistoryLog(), train_time=0.0,
    )

    t0 = time.perf_counter()
    first = v_data[_epoch_order(config, seed, 0, n_samples)[: config.batch_size]]

    def estimate_gradient(p: Parameters):
        # Its own streams: the training chains and counters are not touched.
        score_seed = int(derive_seed(seed, "initial-gradient").generate_state(1)[0])
        est = config.estimator.init(p, v_data, config.batch_size, score_seed)
        h = hidden_probabilities(first, p.weights, p.hidden_bias, 1.0)
        return config.estimator.estimate(p, first, h, est)[0]

    shown = _read_only(params)
    new, rule_state, info = config.rule.init(
        shown, _context(0, plan, seed, False, 0.0, 0.0, estimate_gradient=estimate_gradient)
    )
    applied = _apply_rule(state, params, shown, new, info, 0, v_data)
    return state._replace(
        params=applied.params, optimizer=applied.optimizer, estimator=applied.estimator,
        schedule_offset=applied.schedule_offset, rule=rule_state,
        log=state.log._replace(init_rule=applied.values), train_time=time.perf_counter() - t0,
    )


def extendable(config: TrainConfig) -> str | None:
    """Why a run of ``config`` cannot be extended by :func:`extend` (None: it can)."""
    from .optim import Constant

    for name in ("learning_rate", "momentum"):
        value = getattr(config, name)
        if not isinstance(value, (int, float, np.floating, Constant)):
            return f"its {name} is a schedule ({value!r}), whose values depend on the run's length"
    if getattr(config.rule, "redraw_epochs", 0):
        return "its NCG rule redraws the strengths at every redraw_epochs but the last epoch (reference quirks)"
    return None


def extend(state: TrainState, epochs: int) -> TrainState:
    """The state of the same run planned for ``epochs`` epochs (more than planned): the budget-
    doubling check without training the first half again.

    Valid for runs whose updates do not depend on their length: constant learning rate and
    momentum, and rules that read no run length (every rule here but NCG's reference-quirk
    redraws); others are refused. Continuing the extended state gives the parameters, chains and
    rule state of a run planned for ``epochs`` from the start, bit for bit (tested); its history
    keeps the checkpoints already recorded (a log-spaced ``checkpoints`` count adds the new
    schedule's ones after the current update), so it may hold one more than that run's.

    Raises
    ------
    ValueError
        If ``epochs`` is not more than the planned epochs, or the run cannot be extended.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    plan = state.plan
    epochs = check_int("epochs", epochs, low=plan.epochs + 1)
    why = extendable(state.config)
    if why is not None:
        raise ValueError(f"cannot extend this run: {why}")
    total = plan.updates_per_epoch * epochs
    if isinstance(state.config.checkpoints, tuple):
        steps = plan.checkpoints
    else:
        later = (int(c) for c in checkpoint_steps(state.config.checkpoints, total) if c > state.step)
        steps = tuple(sorted({c for c in plan.checkpoints if c <= state.step} | set(later)))
    return state._replace(config=dataclasses.replace(state.config, epochs=epochs),
                          plan=plan._replace(epochs=epochs, total_steps=total, checkpoints=steps))


def train_step(state: TrainState, batch: np.ndarray, *, data: np.ndarray, epoch_end: bool) -> tuple[TrainState, StepInfo]:
    """One update (see the module docstring); returns the next state and what the update did.

    Parameters
    ----------
    state : TrainState
    batch : ndarray, shape (m, n_visible), dtype of the run
    data : ndarray, shape (n_samples, n_visible)
        The training set (a rule that resets the persistent chains re-creates them from it).
    epoch_end : bool
        Whether this update closes an epoch (rules that act at epoch ends look at it).
    """
    config, plan, params = state.config, state.plan, state.params
    w, a, hb, _ = params
    m = batch.shape[0]
    n_nonzero = int(np.count_nonzero(w))
    ph = hidden_probabilities_by_path(batch, w, hb, 1.0, n_nonzero)
    if getattr(config.rule, "reads_absent_gradient", True) or not _takes_present_only(type(config.estimator)):
        grad, est_state = config.estimator.estimate(params, batch, ph, state.estimator)
    else:
        grad, est_state = config.estimator.estimate(params, batch, ph, state.estimator, present_only=True)
    errors = reconstruction_errors_by_path(
        batch, ph, w, a, state.reconstruction_keys[:m], np.uint64(state.step * plan.n_hidden), n_nonzero,
    )
    opt = config.optimizer()
    s_step, s_total = state.step - state.schedule_offset, plan.total_steps - state.schedule_offset
    lr, mu = opt.hyperparameters(s_step, s_total)
    params, opt_state = opt.update(params, state.optimizer, grad, s_step, s_total)
    step = state.step + 1
    shown = _read_only(params)
    ctx = _context(step, plan, state.seed, epoch_end, lr, mu)
    new, rule_state, info = config.rule.update(shown, state.rule, grad, ctx)
    moved = state._replace(optimizer=opt_state, estimator=est_state)
    applied = _apply_rule(moved, params, shown, new, info, step, data)
    next_state = moved._replace(
        params=applied.params, optimizer=applied.optimizer, estimator=applied.estimator, rule=rule_state, step=step,
        schedule_offset=applied.schedule_offset,
    )
    values = applied.values
    step_info = StepInfo(
        float(errors.sum()), lr, mu, int(values.get("n_added", 0)), int(values.get("n_removed", 0)), applied.reset,
        {k: v for k, v in values.items() if k not in ("n_added", "n_removed")},
    )
    return next_state, step_info


@functools.cache
def _takes_present_only(estimator_type: type) -> bool:
    """Whether an estimator's ``estimate`` has the ``present_only`` keyword (an estimator written
    before it existed is still called without it, and gets the gradient of every pair computed)."""
    return "present_only" in inspect.signature(estimator_type.estimate).parameters


def _epoch_order(config: TrainConfig, seed: int, epoch: int, n_samples: int) -> np.ndarray:
    if not config.shuffle:
        return np.arange(n_samples)
    return np.random.default_rng(derive_seed(seed, "shuffle", epoch)).permutation(n_samples)


def _tally(tally: EpochTally, info: StepInfo, seconds: float) -> EpochTally:
    sums = dict(tally.rule_sums)
    for k, v in info.rule_values.items():
        sums[k] = sums.get(k, 0.0) + v
    return EpochTally(
        tally.reconstruction_sum + info.reconstruction_sum, tally.n_added + info.n_added,
        tally.n_removed + info.n_removed, tally.n_resets + int(info.reset), tally.n_updates + 1, sums,
        tally.wall_time + seconds,
    )


def _close_epoch(state: TrainState, info: StepInfo) -> TrainState:
    t = state.tally
    row = {
        "epoch_reconstruction_error": t.reconstruction_sum / state.plan.n_samples,
        "epoch_wall_time": t.wall_time,
        "learning_rate": info.learning_rate,
        "connectivity_end": float(np.count_nonzero(state.params.mask)) / state.params.mask.size,
        "connections_added": t.n_added,
        "connections_removed": t.n_removed,
        "resets": t.n_resets,
        **{f"rule_{k}": v / max(t.n_updates, 1) for k, v in t.rule_sums.items()},
    }
    return state._replace(tally=EpochTally(), log=state.log._replace(epochs=state.log.epochs + (row,)))


def _ll_method(config: TrainConfig, n_visible: int, n_hidden: int) -> str:
    """The checkpoints' log-likelihood method in effect: "exact", "ais" or "none"."""
    chosen = config.checkpoint_log_likelihood if config.exact_log_likelihood else "none"
    if chosen == "auto":
        return "exact" if min(n_visible, n_hidden) <= config.exact_max_units else "ais"
    return chosen


def _exact_note(config: TrainConfig, n_visible: int, n_hidden: int) -> str:
    """How the checkpoints' log-likelihood is computed ("exact, ...", "AIS, ..." or "not computed: ...")."""
    n_e = min(n_visible, n_hidden)
    method = _ll_method(config, n_visible, n_hidden)
    if method == "none":
        why = "exact_log_likelihood=False" if not config.exact_log_likelihood else "checkpoint_log_likelihood='none'"
        return f"not computed: {why}"
    if method == "ais":
        return (f"AIS, forward, {config.checkpoint_ais_chains} chains x {config.checkpoint_ais_betas} betas linear "
                "in beta from the training data's base rates, the same streams at every checkpoint (a stochastic "
                "lower bound on log Z, so an upper bound in expectation on the log-likelihood up to its standard "
                "error log_likelihood_se)")
    if n_e > config.exact_max_units:
        return (f"not computed: exact enumeration of the smaller layer ({n_e} units) exceeds "
                f"exact_max_units={config.exact_max_units}; estimate with AIS (checkpoint_log_likelihood='ais')")
    return f"exact, enumerating the smaller layer ({n_e} units)"


class _Evaluator:
    """Checkpoint metrics on the whole training set."""

    def __init__(self, data: np.ndarray, config: TrainConfig, seed: int, n_visible: int, n_hidden: int):
        self.data = data
        self.config = config
        # The same streams at every checkpoint (common random numbers): differences between
        # checkpoints come from the model, not from the draws.
        self.keys = chain_keys(derive_seed(seed, "checkpoint-reconstruction"), data.shape[0])
        self.exact = _exact_note(config, n_visible, n_hidden).startswith("exact")
        self.ais = _ll_method(config, n_visible, n_hidden) == "ais"
        self.ais_seed = int(derive_seed(seed, "checkpoint-ais").generate_state(1)[0])

    def __call__(self, params: Parameters) -> dict[str, float]:
        w, a, b, mask = params
        w_t = np.ascontiguousarray(w.T)
        n = self.data.shape[0]
        errors = np.empty(n)
        for lo in range(0, n, _EVAL_CHUNK):
            v = self.data[lo : lo + _EVAL_CHUNK]
            ph = hidden_probabilities(v, w, b, 1.0)
            errors[lo : lo + len(v)] = reconstruction_errors(v, ph, w_t, a, self.keys[lo : lo + len(v)], np.uint64(0))
        out = {"reconstruction_error": float(errors.mean()), "log_likelihood": math.nan, "log_partition": math.nan,
               "log_likelihood_se": math.nan}
        if self.exact:
            model = RBM(w, a, b, mask)
            log_z = exact.log_partition(model, max_units=self.config.exact_max_units)
            total = 0.0
            for lo in range(0, n, _EVAL_CHUNK):
                total += float(exact.log_likelihood(model, self.data[lo : lo + _EVAL_CHUNK], log_z=log_z).sum())
            out.update(log_likelihood=total / n, log_partition=log_z, log_likelihood_se=0.0)
        elif self.ais:
            out.update(self._ais(RBM(w, a, b, mask)))
        w64 = w.astype(np.float64)
        out["connectivity"] = float(np.count_nonzero(mask)) / mask.size
        out["weight_l1"] = float(np.abs(w64).sum())
        out["weight_l2"] = float(math.sqrt((w64 * w64).sum()))
        return out


    def _ais(self, model: RBM) -> dict[str, float]:
        """Train log-likelihood, log Z and the likelihood's standard error from a short forward AIS."""
        cfg = self.config
        with warnings.catch_warnings():
            # a degenerate run still has a (large) standard error, which the history records
            warnings.simplefilter("ignore", ais.DegenerateWeightsWarning)
            log_z = ais.log_partition(model, n_chains=cfg.checkpoint_ais_chains,
                                      betas=np.linspace(0.0, 1.0, cfg.checkpoint_ais_betas), data=self.data,
                                      seed=self.ais_seed, reverse=False, n_bootstrap=0, progress=False)
        n = self.data.shape[0]
        neg_f = np.empty(n)
        zeros = np.zeros(model.n_visible, dtype=model.dtype)
        for lo in range(0, n, _EVAL_CHUNK):
            v = self.data[lo : lo + _EVAL_CHUNK]
            neg_f[lo : lo + len(v)] = -free_energy(v, model.weights, model.visible_bias, model.hidden_bias, 1.0, zeros)
        lz, lz_se = float(log_z["log_z"]), float(log_z["log_z_std"])
        # the training set is the whole population here: only log Z carries sampling error
        return {"log_likelihood": float(neg_f.mean()) - lz, "log_partition": lz, "log_likelihood_se": lz_se}


def _checkpoint(state: TrainState, evaluator: _Evaluator, callbacks, threads: int) -> TrainState:
    # The whole training set is evaluated: worth the thread pool even when the updates are not.
    in_loop = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        metrics = evaluator(state.params)
    finally:
        numba.set_num_threads(in_loop)
    row = {"update": state.step, "wall_time": state.train_time, **metrics}
    exposed = getattr(state.config.rule, "checkpoint_arrays", None)
    arrays = {k: np.array(v) for k, v in exposed(state.rule).items()} if exposed is not None else {}
    log = state.log._replace(
        checkpoints=state.log.checkpoints + (row,), masks=state.log.masks + (state.params.mask.copy(),),
        rule_arrays=state.log.rule_arrays + (arrays,),
    )
    state = state._replace(log=log)
    if callbacks:
        chains = getattr(state.estimator, "chains", None)
        record = CheckpointRecord(
            index=len(log.checkpoints) - 1, step=state.step, epochs_trained=state.step / state.plan.updates_per_epoch,
            model=state.model, chains=None if chains is None else chains.copy(), rule_state=state.rule,
            reconstruction_error=metrics["reconstruction_error"], log_likelihood=metrics["log_likelihood"],
            log_partition=metrics["log_partition"], connectivity=metrics["connectivity"],
            weight_l1=metrics["weight_l1"], weight_l2=metrics["weight_l2"], wall_time=state.train_time, state=state,
            log_likelihood_se=metrics["log_likelihood_se"],
        )
        for cb in callbacks:
            cb(record)
    return state


def _best_checkpoint(rows) -> int | None:
    """Index of the checkpoint with the highest train log-likelihood, None when none was computed."""
    ll = np.array([r["log_likelihood"] for r in rows], dtype=np.float64)
    return int(np.nanargmax(ll)) if np.isfinite(ll).any() else None


def _warn_if_unhealthy(state: TrainState) -> None:
    """At the end of a run: warn when the likelihood collapsed below its best checkpoint or the weights ran away."""
    rows = state.log.checkpoints
    best = _best_checkpoint(rows)
    if best is not None and math.isfinite(rows[-1]["log_likelihood"]):
        top, final = rows[best], rows[-1]
        # estimated likelihoods (AIS) fluctuate by their standard errors: three of them more are allowed
        noise = 3 * math.hypot(top.get("log_likelihood_se", 0.0), final.get("log_likelihood_se", 0.0))
        if final["log_likelihood"] < top["log_likelihood"] - COLLAPSE_NATS - noise:
            warnings.warn(LikelihoodCollapseWarning(
                f"the train log-likelihood fell from {top['log_likelihood']:.3f} (update {top['update']}) to "
                f"{final['log_likelihood']:.3f} nats per sample at the end of the run; the best checkpoint is "
                "recorded in the history (attrs best_step, best_log_likelihood). Lower the learning rate or the "
                "momentum, or use more persistent chains.",
                top["log_likelihood"], final["log_likelihood"], int(top["update"])), stacklevel=3)
    w = state.params.weights
    largest = float(np.abs(w).max()) if w.size else 0.0
    if largest > RUNAWAY_WEIGHT:
        warnings.warn(RunawayWeightsWarning(
            f"the largest |weight| is {largest:.1f} (> {RUNAWAY_WEIGHT:g}) at the end of the run: the weights are "
            "running away and the units freeze; lower the learning rate or add L2 decay.", largest), stacklevel=3)


def _work_per_update(state: TrainState) -> float:
    est, plan = state.config.estimator, state.plan
    chains = getattr(est, "n_chains", None) or plan.batch_size
    return chains * getattr(est, "k", 1) * getattr(est, "n_temps", 1) * (plan.n_visible + plan.n_hidden) * plan.n_hidden


def iterate(
    state: TrainState,
    data,
    *,
    until: int | None = None,
    callbacks: Sequence[Callable[[CheckpointRecord], Any]] = (),
) -> Iterator[TrainState]:
    """Run updates from ``state``, yielding the state after each one; stops at ``until`` updates or the plan's end.

    Checkpoints (the history's rows) are evaluated here, between updates, and each is passed
    to the callbacks as a :class:`CheckpointRecord`. The update-0 checkpoint is evaluated first
    if the state has none yet.

    Warns
    -----
    LikelihoodCollapseWarning, RunawayWeightsWarning
        After the last update of the plan, when the run collapsed or its weights ran away.

    Parameters
    ----------
    state : TrainState
    data : array_like, shape (n_samples, n_visible)
        The training set the state was made with (checked by fingerprint).
    until : int, optional
        Stop after this many updates in total (not more than the plan's ``total_steps``).
    callbacks : sequence of callables
    """
    v_data = _matching_data(state, data)
    plan = state.plan
    stop = plan.total_steps if until is None else min(check_int("until", until, low=0), plan.total_steps)
    evaluator = _Evaluator(v_data, state.config, state.seed, plan.n_visible, plan.n_hidden)
    checkpoint_set = set(plan.checkpoints)
    threads = numba.get_num_threads()
    loop_threads = 1 if _work_per_update(state) < _PARALLEL_WORK else threads
    if not state.log.checkpoints:
        state = _checkpoint(state, evaluator, callbacks, threads)
    order_epoch, order = -1, None
    # One thread setting for the whole loop (restored when the generator ends or is closed):
    # setting it around every update costs more than a tiny model's update.
    numba.set_num_threads(loop_threads)
    try:
        while state.step < stop:
            interrupt.check()  # a deferred Ctrl-C stops here, between two updates
            epoch, b_idx = divmod(state.step, plan.updates_per_epoch)
            if epoch != order_epoch:
                order_epoch, order = epoch, _epoch_order(state.config, state.seed, epoch, plan.n_samples)
            batch = v_data[order[b_idx * plan.batch_size : (b_idx + 1) * plan.batch_size]]
            epoch_end = b_idx == plan.updates_per_epoch - 1
            t0, c0 = time.perf_counter(), _COMPILE_CLOCK.seconds
            state, info = train_step(state, batch, data=v_data, epoch_end=epoch_end)
            compiling = _COMPILE_CLOCK.seconds - c0
            seconds = time.perf_counter() - t0 - compiling
            state = state._replace(tally=_tally(state.tally, info, seconds), train_time=state.train_time + seconds,
                                   compile_time=state.compile_time + compiling)
            if epoch_end:
                if not np.all(np.isfinite(state.params.weights)):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch + 1}: non-finite weights; lower the learning rate "
                        f"(now {info.learning_rate:g}) or the momentum"
                    )
                state = _close_epoch(state, info)
            if state.step in checkpoint_set:
                state = _checkpoint(state, evaluator, callbacks, threads)
            if state.done:
                _warn_if_unhealthy(state)
            yield state
    finally:
        numba.set_num_threads(threads)


def _matching_data(state: TrainState, data) -> np.ndarray:
    dtype = state.params.weights.dtype
    v_data = _check_data(data, state.plan.n_visible, dtype)
    if data_fingerprint(v_data) != state.plan.data_fingerprint:
        raise ValueError(
            f"the training data differ from those the state was made with ({v_data.shape[0]} samples given, "
            f"{state.plan.n_samples} expected, fingerprints differ): resume with the same data"
        )
    return v_data


def train(
    rbm_or_shape: RBM | tuple[int, int] | None,
    data,
    config: TrainConfig | None = None,
    *,
    seed: int | None = None,
    resume: TrainState | str | Any = None,
    until: int | None = None,
    callbacks: Sequence[Callable[[CheckpointRecord], Any]] = (),
    progress: bool | None = None,
) -> TrainResult:
    """Train a masked RBM (see the module docstring for one update), or continue a run.

    Parameters
    ----------
    rbm_or_shape : RBM, (n_visible, n_hidden) or None
        A starting model (its mask is the starting mask), or the layer sizes of a model created
        by :func:`initialize`. None (or the same shape) when resuming.
    data : array_like, shape (n_samples, n_visible)
        Binary training data (0/1 or bool), shuffled anew every epoch.
    config : TrainConfig
        Required for a new run; when resuming, None or the state's own config.
    seed : int
        Fixes every random choice of a new run; same seed, bit-identical result for any number
        of threads. Ignored (may be None or must match) when resuming.
    resume : TrainState or path, optional
        Continue this state (or a state file written by :func:`dilution.save`) to the end of its
        planned run: the result equals the uninterrupted run's.
    until : int, optional
        Stop after this many updates in total, at most the plan's ``total_steps`` (a longer run is
        planned with :func:`extend`); ``result.state`` continues it later.
    callbacks : sequence of callables
        Each is called with a :class:`CheckpointRecord` at every checkpoint (update 0 included).
    progress : bool, optional
        Progress bar with ETA over the updates; default: for long runs on a terminal.

    Returns
    -------
    TrainResult
        ``model``: the trained RBM; ``history``: :func:`history` of the final state;
        ``state``: the final :class:`TrainState`.
    """
    if callbacks is None:
        callbacks = ()
    if callable(callbacks) or isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks must be a sequence of callables taking a CheckpointRecord (one as callbacks=[f]), "
                        f"got {callbacks!r}")
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables taking a CheckpointRecord, got {cb!r}")
    if resume is not None:
        state = _resume_state(resume, rbm_or_shape, config, seed)
    else:
        if config is None or seed is None:
            raise TypeError("a new run needs a config and a seed (or resume=STATE to continue a run)")
        state = init_state(rbm_or_shape, data, config, seed=seed)
    plan = state.plan
    if until is not None and check_int("until", until, low=0) > plan.total_steps:
        # a silent stop at the plan's end would read as a doubled budget that was not trained
        raise ValueError(f"until={until} is past the end of the planned run ({plan.total_steps} updates, {plan.epochs} "
                         f"epochs): to train longer, plan the run longer first with "
                         f"dilution.training.extend(state, epochs)")
    stop = plan.total_steps if until is None else int(until)
    expected = (stop - state.step) * _work_per_update(state) / WORK_PER_SECOND
    desc = f"{state.config.estimator.describe()} training"
    with progress_bar(stop - state.step, desc, enabled=progress, expected_seconds=expected) as bar:
        for state in iterate(state, data, until=stop, callbacks=callbacks):
            bar.update(1)
    return TrainResult(state.model, history(state), state)


def _resume_state(resume, rbm_or_shape, config, seed) -> TrainState:
    # the arguments' types first: a state file can take a while to read
    if not isinstance(resume, (TrainState, str, os.PathLike)):
        raise TypeError(f"resume must be a TrainState or the path of a state file written by dilution.save, "
                        f"got {type(resume).__name__}")
    shape = None
    if isinstance(rbm_or_shape, RBM):
        shape = (rbm_or_shape.n_visible, rbm_or_shape.n_hidden)
    elif rbm_or_shape is not None:
        try:
            shape = tuple(rbm_or_shape)
        except TypeError:
            raise TypeError(f"rbm_or_shape must be None, an RBM or a tuple (n_visible, n_hidden) when resuming, "
                            f"got {rbm_or_shape!r}") from None
    state = resume if isinstance(resume, TrainState) else load_state(resume)
    if config is not None and config.to_json() != state.config.to_json():
        raise ValueError(
            "resume: the given config differs from the one the state was made with; pass config=None to continue "
            "the state's own run"
        )
    if seed is not None and seed != state.seed:
        raise ValueError(f"resume: seed={seed} differs from the state's seed {state.seed}")
    if shape is not None and shape != (state.plan.n_visible, state.plan.n_hidden):
        raise ValueError(f"resume: the state is a {state.plan.n_visible} x {state.plan.n_hidden} model, got {shape}")
    return state


_CHECKPOINT_ATTRS = {
    "reconstruction_error": ("reconstruction error", "1",
                             "mean over training samples and visible units of (v_i - p(v'_i=1|h))^2, h sampled "
                             "from p(h|v); same random streams at every checkpoint"),
    "log_likelihood": ("train log-likelihood", "nats", "mean log-likelihood of the training set (method: attrs)"),
    "log_likelihood_se": ("standard error of the train log-likelihood", "nats",
                          "0 when exact; the AIS standard error of log Z (delta method) when estimated"),
    "log_partition": ("log partition function", "nats", "log partition function log Z (method: attrs)"),
    "connectivity": ("connectivity", "1", "fraction of connected visible-hidden pairs"),
    "n_connections": ("connections", "1", "number of connected visible-hidden pairs"),
    "weight_l1": ("L1 norm of the weights", "1", "sum of |W_ij|"),
    "weight_l2": ("L2 norm of the weights", "1", "Frobenius norm of W"),
    "wall_time": ("training time", "s", "training wall time since the start, checkpoint evaluations and numba "
                                        "compilation excluded"),
}
_EPOCH_ATTRS = {
    "epoch_reconstruction_error": ("epoch reconstruction error", "1",
                                   "reconstruction error averaged over the epoch's batches (parameters changing "
                                   "during the epoch)"),
    "epoch_wall_time": ("epoch training time", "s", "training wall time of the epoch, checkpoint evaluations "
                                                     "and numba compilation excluded"),
    "learning_rate": ("learning rate", "1", "learning rate of the epoch's last update"),
    "connectivity_end": ("connectivity at epoch end", "1", "fraction of connected pairs at the end of the epoch"),
    "connections_added": ("connections added", "1", "connections added by the connectivity rule during the epoch"),
    "connections_removed": ("connections removed", "1",
                            "connections removed by the connectivity rule during the epoch"),
    "resets": ("resets", "1", "updates after which the rule reset the velocities, chains or schedule"),
}


def _best_attrs(rows) -> dict[str, Any]:
    best = _best_checkpoint(rows)
    if best is None:
        return {}
    return {"best_checkpoint": best, "best_step": int(rows[best]["update"]),
            "best_log_likelihood": float(rows[best]["log_likelihood"])}


def history(state: TrainState) -> xr.Dataset:
    """The labelled history of a run so far.

    Dims ``checkpoint`` (coords ``step``: updates done, ``epochs_trained``) with
    ``reconstruction_error``, ``log_likelihood``, ``log_likelihood_se``, ``log_partition``, ``connectivity``,
    ``n_connections``, ``weight_l1``, ``weight_l2``, ``wall_time`` and ``mask`` (int8, dims
    ``checkpoint, visible, hidden``); ``epoch`` (1-based) with ``epoch_reconstruction_error``,
    ``epoch_wall_time``, ``learning_rate``, ``connectivity_end``, ``connections_added``,
    ``connections_removed``, ``resets`` and ``rule_<field>`` (the mean per update of every
    further numeric field of the rule's info). Attributes hold the config (JSON), the rule and
    estimator, the seed, sizes, provenance, ``log_likelihood_method``, ``compile_seconds`` and,
    when a likelihood was computed, the best checkpoint by it (``best_checkpoint``,
    ``best_step``, ``best_log_likelihood``).
    """
    log, plan, model = state.log, state.plan, state.model
    rows, epoch_rows = log.checkpoints, log.epochs
    update = np.array([r["update"] for r in rows], dtype=np.int64)
    cfg = state.config
    exact_note = _exact_note(cfg, plan.n_visible, plan.n_hidden)
    data_vars = {}
    for name, (long_name, units, desc) in _CHECKPOINT_ATTRS.items():
        if name == "n_connections":
            values = np.array([int(np.count_nonzero(m)) for m in log.masks], dtype=np.int64)
        else:
            # rows of states saved before a variable existed lack it
            values = np.array([r.get(name, math.nan) for r in rows], dtype=np.float64)
        attrs = {"long_name": long_name, "units": units, "comment": desc}
        if name in ("log_likelihood", "log_likelihood_se", "log_partition"):
            attrs["method"] = exact_note
        data_vars[name] = ("checkpoint", values, attrs)
    masks = np.array(log.masks, dtype=np.int8).reshape(len(log.masks), plan.n_visible, plan.n_hidden)
    data_vars["mask"] = (("checkpoint", "visible", "hidden"), masks,
                         {"long_name": "connection mask", "units": "1", "comment": "1: connected pair"})
    for name in sorted({k for arrays in log.rule_arrays for k in arrays}):
        stacked = np.array([arrays[name] for arrays in log.rule_arrays])
        data_vars[f"rule_{name}"] = (("checkpoint", "visible", "hidden"), stacked,
                                     {"long_name": f"rule {name.replace('_', ' ')}", "units": "1",
                                      "comment": f"array {name!r} of the connectivity rule's state at the checkpoint"})
    for name, (long_name, units, desc) in _EPOCH_ATTRS.items():
        dt = np.int64 if name.startswith("connections_") or name == "resets" else np.float64
        data_vars[name] = ("epoch", np.array([r[name] for r in epoch_rows], dtype=dt),
                           {"long_name": long_name, "units": units, "comment": desc})
    rule_fields = sorted({k for r in epoch_rows for k in r if k.startswith("rule_")})
    for name in rule_fields:
        data_vars[name] = ("epoch", np.array([r.get(name, math.nan) for r in epoch_rows], dtype=np.float64),
                           {"long_name": f"rule {name[5:].replace('_', ' ')} per update", "units": "1",
                            "comment": f"mean per update over the epoch of field {name[5:]!r} of the rule's info"})
    coords = {
        "checkpoint": ("checkpoint", np.arange(len(rows)), {"long_name": "checkpoint index", "units": "1"}),
        "step": ("checkpoint", update, {"long_name": "updates done", "units": "updates"}),
        "epochs_trained": ("checkpoint", update / plan.updates_per_epoch,
                           {"long_name": "epochs trained", "units": "epochs"}),
        "epoch": ("epoch", np.arange(1, len(epoch_rows) + 1), {"long_name": "epoch (1-based)", "units": "epochs"}),
        "visible": ("visible", np.arange(plan.n_visible), {"long_name": "visible unit", "units": "1"}),
        "hidden": ("hidden", np.arange(plan.n_hidden), {"long_name": "hidden unit", "units": "1"}),
    }
    attrs = provenance(
        title="RBM training history",
        config=cfg.to_json(),
        rule=json.dumps(_jsonable(cfg.rule)),
        estimator=cfg.estimator.describe(),
        seed=state.seed,
        method=cfg.estimator.describe(),
        n_visible=plan.n_visible,
        n_hidden=plan.n_hidden,
        n_samples=plan.n_samples,
        updates_per_epoch=plan.updates_per_epoch,
        total_steps=plan.total_steps,
        steps_done=state.step,
        compile_seconds=state.compile_time,
        **_best_attrs(rows),
        log_likelihood_method=_ll_method(cfg, plan.n_visible, plan.n_hidden),
        dtype=model.dtype.name,
        **{f"rule_at_init_{k}": v for k, v in log.init_rule.items()},
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = _jsonable(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)
