"""Maximum-likelihood training of masked RBMs with CD-k and PCD-k.

One update on a mini-batch ``v`` of the shuffled training set:

1. positive phase: ``p(h = 1 | v)``;
2. negative phase: ``k`` block-Gibbs sweeps (:func:`dilution.gibbs.gibbs_kernel`) from the
   batch (CD-k, Hinton 2002) or from persistent chains carried over from the previous update
   (PCD-k, Tieleman 2008; their number ``n_chains`` is independent of the batch size), then
   ``p(h = 1 | v_k)``;
3. the gradient estimate ``<v h>_data - <v h>_model`` for every pair (:mod:`dilution.statistics`);
4. a masked SGD step (:class:`dilution.optim.SGD`);
5. the connectivity rule (:mod:`dilution.connectivity`), then ``W[~M] = 0`` and the optimiser
   velocity is masked again.

Every random choice derives from one seed through :func:`dilution.rng.derive_seed`: initial
parameters, epoch shuffles, Gibbs draws (per-chain counter-based streams, counter advanced by
``k * (n_visible + n_hidden)`` per update), reconstructions and the rule's choices. No numpy
matrix product runs in the loop (BLAS and numba thread pools fight on few cores, and BLAS
sums may depend on the thread count), so a run is bit-identical for any ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple, Sequence

import numba
import numpy as np
import xarray as xr

from . import exact
from .connectivity import ConnectivityRule, RuleInfo, StaticMask, StepContext
from .gibbs import check_binary, draws_per_sweep, gibbs_kernel, hidden_probabilities
from .model import RBM, SUPPORTED_DTYPES, check_connectivity, random_mask
from .optim import SGD, Parameters, Schedule
from .progress import progress_bar
from .provenance import provenance
from .rng import chain_keys, derive_seed
from .statistics import gradient_statistics, reconstruction_errors

__all__ = [
    "TrainConfig",
    "TrainResult",
    "CheckpointRecord",
    "train",
    "initialize",
    "estimate_gradient",
    "checkpoint_steps",
]

# Rows per chunk when a checkpoint evaluates the whole training set (bounds memory on MNIST).
_EVAL_CHUNK = 8192
# Below this chain-sweep work per update, numba runs on one thread: waking the thread pool
# costs more than the work (milliseconds per parallel region when other processes compete for
# the cores). Results do not depend on the thread count.
_PARALLEL_WORK = 2e6
# Chain-sweep work (n_chains * k * (n_visible + n_hidden) * n_hidden) per second, for the ETA guess.
_WORK_PER_SECOND = 2e10


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run.

    Parameters
    ----------
    method : "cd" or "pcd"
    k : int
        Gibbs sweeps per update in the negative phase.
    epochs : int
    batch_size : int
        Training samples per update; the last batch of an epoch may be smaller.
    n_chains : int, optional
        PCD only: number of persistent chains (default ``batch_size``). CD runs one chain per
        batch sample, so it must be left unset.
    chain_init : "data" or "uniform"
        PCD only: persistent chains start at training samples drawn with replacement, or at
        uniformly random states.
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
        Evaluate the exact train log-likelihood and log Z at checkpoints when the smaller layer
        has at most ``exact_max_units`` units.
    exact_max_units : int
    dtype : "float32", "float64" or None
        Precision of the run; None keeps the dtype of a given RBM (float64 for a shape).
    """

    method: Literal["cd", "pcd"] = "pcd"
    k: int = 1
    epochs: int = 10
    batch_size: int = 100
    n_chains: int | None = None
    chain_init: Literal["data", "uniform"] = "data"
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
    exact_max_units: int = 20
    dtype: Literal["float32", "float64"] | None = None

    def __post_init__(self):
        if self.method not in ("cd", "pcd"):
            raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")
        _positive_int("k", self.k)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if self.n_chains is not None:
            if self.method == "cd":
                raise ValueError(
                    "n_chains applies to PCD only: CD starts one chain at each batch sample; leave n_chains=None"
                )
            _positive_int("n_chains", self.n_chains)
        if self.chain_init not in ("data", "uniform"):
            raise ValueError(f"chain_init must be 'data' or 'uniform', got {self.chain_init!r}")
        self.optimizer()  # validates learning_rate, momentum, l2, l1
        if not isinstance(self.rule, ConnectivityRule):
            raise TypeError(
                f"rule must implement dilution.connectivity.ConnectivityRule (init and update), "
                f"got {type(self.rule).__name__}"
            )
        check_connectivity(self.connectivity)
        if not (math.isfinite(self.weight_scale) and self.weight_scale >= 0):
            raise ValueError(f"weight_scale must be a finite number >= 0, got {self.weight_scale!r}")
        if not 0 < self.marginal_clip < 0.5:
            raise ValueError(f"marginal_clip must be in (0, 0.5), got {self.marginal_clip!r}")
        if isinstance(self.checkpoints, (list, tuple, np.ndarray)):
            steps = tuple(_positive_int("checkpoints entry", c, low=0) for c in self.checkpoints)
            if list(steps) != sorted(set(steps)):
                raise ValueError(f"checkpoints must be strictly increasing update counts, got {steps}")
            object.__setattr__(self, "checkpoints", steps)
        else:
            _positive_int("checkpoints", self.checkpoints)
        if not isinstance(self.exact_log_likelihood, (bool, np.bool_)):
            raise TypeError(f"exact_log_likelihood must be True or False, got {self.exact_log_likelihood!r}")
        _positive_int("exact_max_units", self.exact_max_units)
        if self.dtype is not None:
            dt = np.dtype(self.dtype)
            if dt not in SUPPORTED_DTYPES:
                raise ValueError(f"dtype must be 'float32', 'float64' or None, got {self.dtype!r}")
            object.__setattr__(self, "dtype", dt.name)

    def optimizer(self) -> SGD:
        """The :class:`~dilution.optim.SGD` these hyper-parameters define."""
        return SGD(learning_rate=self.learning_rate, momentum=self.momentum, l2=self.l2, l1=self.l1)

    def to_json(self) -> str:
        """The configuration as JSON (schedules and rules as ``{"type": ..., fields}``)."""
        return json.dumps(_jsonable(self))


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
        Copy of the persistent chains (PCD).
    rule_state : Any
        State of the connectivity rule.
    reconstruction_error : float
        Mean over the training set and visible units of ``(v_i - p(v'_i = 1 | h))**2``, ``h ~ p(h | v)``.
    log_likelihood : float
        Exact mean train log-likelihood (nats), NaN when not computed.
    log_partition : float
        Exact log Z, NaN when not computed.
    connectivity : float
    weight_l1, weight_l2 : float
        ``sum |W|`` and the Frobenius norm of ``W``.
    wall_time : float
        Seconds of training so far (checkpoint evaluations excluded).
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


class TrainResult(NamedTuple):
    """Trained model and its labelled training history (see :func:`train`)."""

    model: RBM
    history: xr.Dataset


def checkpoint_steps(n_checkpoints: int, total_steps: int) -> np.ndarray:
    """Up to ``n_checkpoints`` distinct, roughly log-spaced update counts in ``[1, total_steps]``.

    Always ends at ``total_steps``; fewer are returned only when ``total_steps < n_checkpoints``.

    Returns
    -------
    ndarray of int64
    """
    n = min(_positive_int("n_checkpoints", n_checkpoints), _positive_int("total_steps", total_steps))
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

    Weights ``N(0, weight_scale**2)`` on a uniformly random mask with exactly
    ``round(connectivity * n_visible * n_hidden)`` connections; hidden bias 0; visible bias
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
    n_visible, n_hidden = _positive_int("n_visible", n_visible), _positive_int("n_hidden", n_hidden)
    connectivity = check_connectivity(connectivity)
    dt = np.dtype(dtype)
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    rng = np.random.default_rng(derive_seed(seed, "initialize"))
    mask = random_mask((n_visible, n_hidden), connectivity, rng)
    weights = np.where(mask, weight_scale * rng.standard_normal((n_visible, n_hidden)), 0.0)
    if data is None:
        a = np.zeros(n_visible)
    else:
        v = check_binary("data", data, n_visible, np.float64)
        p = np.clip(v.mean(axis=0), marginal_clip, 1.0 - marginal_clip)
        a = np.log(p / (1.0 - p))
    return RBM(weights.astype(dt), a.astype(dt), np.zeros(n_hidden, dtype=dt), mask)


def _negative_phase(start, weights, weights_t, visible_bias, hidden_bias, keys, counter, k):
    """Chains after ``k`` sweeps from ``start`` and their ``p(h = 1 | v_k)``."""
    n, n_visible = start.shape
    dt = weights.dtype
    beta = np.ones(n, dtype=dt)
    base = np.zeros(n_visible, dtype=dt)
    v_k, _ = gibbs_kernel(start, weights, weights_t, visible_bias, hidden_bias, beta, base, keys, np.uint64(counter), k)
    return v_k, hidden_probabilities(v_k, weights, hidden_bias, 1.0)


def estimate_gradient(rbm: RBM, batch, *, k: int, seed: int, chains=None, counter: int = 0):
    """One CD-k or PCD-k estimate of the mean log-likelihood gradient of ``batch``.

    Parameters
    ----------
    rbm : RBM
    batch : array_like, shape (n, n_visible)
        Binary data.
    k : int
        Gibbs sweeps of the negative phase.
    seed : int
        Seed of the chains' streams (keys from ``derive_seed(seed, "estimate-gradient")``).
    chains : array_like, shape (n_chains, n_visible), optional
        Starting states of persistent chains (PCD); None starts one chain at each batch row (CD).
    counter : int
        Index of the first draw of each stream (advance it by ``k * (n_visible + n_hidden)``
        between calls to continue the streams).

    Returns
    -------
    gradient : GradientEstimate
        For every pair, masked ones included.
    chains : ndarray, shape (n_chains, n_visible)
        Chain states after the ``k`` sweeps.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    k = _positive_int("k", k)
    dt = rbm.dtype
    v = check_binary("batch", batch, rbm.n_visible, dt)
    start = v if chains is None else check_binary("chains", chains, rbm.n_visible, dt)
    keys = chain_keys(derive_seed(seed, "estimate-gradient"), start.shape[0])
    w_t = np.ascontiguousarray(rbm.weights.T)
    ph = hidden_probabilities(v, rbm.weights, rbm.hidden_bias, 1.0)
    v_k, ph_k = _negative_phase(start, rbm.weights, w_t, rbm.visible_bias, rbm.hidden_bias, keys, counter, k)
    return gradient_statistics(v, ph, v_k, ph_k), v_k


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
        raise TypeError(f"{type(rule).__name__} must return dilution.optim.Parameters, got {type(new).__name__}")
    for name, a, b in zip(Parameters._fields, old, new):
        if not isinstance(b, np.ndarray) or b.shape != a.shape or b.dtype != a.dtype:
            raise ValueError(
                f"{type(rule).__name__} returned {name} as {getattr(b, 'dtype', type(b))} {getattr(b, 'shape', '')}; "
                f"expected {a.dtype} {a.shape}"
            )
    return new


def _info_values(info) -> dict[str, float]:
    if not (isinstance(info, tuple) and hasattr(info, "_fields") and info._fields[:2] == RuleInfo._fields):
        raise TypeError(
            f"a connectivity rule must return a NamedTuple info starting with (n_added, n_removed), got {info!r}"
        )
    return {k: float(v) for k, v in info._asdict().items() if np.isscalar(v) and not isinstance(v, str)}


class _Evaluator:
    """Checkpoint metrics on the whole training set."""

    def __init__(self, data: np.ndarray, config: TrainConfig, seed: int, n_visible: int, n_hidden: int):
        self.data = data
        self.config = config
        # The same streams at every checkpoint (common random numbers): differences between
        # checkpoints come from the model, not from the draws.
        self.keys = chain_keys(derive_seed(seed, "checkpoint-reconstruction"), data.shape[0])
        n_e = min(n_visible, n_hidden)
        if not config.exact_log_likelihood:
            self.exact_note = "not computed: exact_log_likelihood=False"
        elif n_e > config.exact_max_units:
            self.exact_note = (
                f"not computed: exact enumeration of the smaller layer ({n_e} units) exceeds "
                f"exact_max_units={config.exact_max_units}; estimate with AIS"
            )
        else:
            self.exact_note = f"exact, enumerating the smaller layer ({n_e} units)"
        self.exact = config.exact_log_likelihood and n_e <= config.exact_max_units

    def __call__(self, params: Parameters) -> dict[str, float]:
        w, a, b, mask = params
        w_t = np.ascontiguousarray(w.T)
        n = self.data.shape[0]
        errors = np.empty(n)
        for lo in range(0, n, _EVAL_CHUNK):
            v = self.data[lo : lo + _EVAL_CHUNK]
            ph = hidden_probabilities(v, w, b, 1.0)
            errors[lo : lo + len(v)] = reconstruction_errors(v, ph, w_t, a, self.keys[lo : lo + len(v)], np.uint64(0))
        out = {"reconstruction_error": float(errors.mean()), "log_likelihood": math.nan, "log_partition": math.nan}
        if self.exact:
            model = RBM(w, a, b, mask)
            log_z = exact.log_partition(model, max_units=self.config.exact_max_units)
            total = 0.0
            for lo in range(0, n, _EVAL_CHUNK):
                total += float(exact.log_likelihood(model, self.data[lo : lo + _EVAL_CHUNK], log_z=log_z).sum())
            out["log_likelihood"] = total / n
            out["log_partition"] = log_z
        w64 = w.astype(np.float64)
        out["connectivity"] = float(np.count_nonzero(mask)) / mask.size
        out["weight_l1"] = float(np.abs(w64).sum())
        out["weight_l2"] = float(math.sqrt((w64 * w64).sum()))
        return out


def train(
    rbm_or_shape: RBM | tuple[int, int],
    data,
    config: TrainConfig,
    *,
    seed: int,
    callbacks: Sequence[Callable[[CheckpointRecord], Any]] = (),
    progress: bool | None = None,
) -> TrainResult:
    """Train a masked RBM by CD-k or PCD-k (see the module docstring for one update).

    Parameters
    ----------
    rbm_or_shape : RBM or (n_visible, n_hidden)
        A starting model (its mask is the starting mask), or the layer sizes of a model
        created by :func:`initialize` with the config's ``connectivity``, ``weight_scale`` and
        ``marginal_clip``.
    data : array_like, shape (n_samples, n_visible)
        Binary training data (0/1 or bool), shuffled anew every epoch.
    config : TrainConfig
    seed : int
        Fixes every random choice; same seed, bit-identical result for any number of threads.
    callbacks : sequence of callables
        Each is called with a :class:`CheckpointRecord` at every checkpoint (update 0 included).
    progress : bool, optional
        Progress bar with ETA over the updates; default: for long runs on a terminal.

    Returns
    -------
    TrainResult
        ``model``: the trained RBM. ``history``: an ``xarray.Dataset`` with dims

        * ``checkpoint`` (coords ``step``: updates done, ``epochs_trained``): ``reconstruction_error``,
          ``log_likelihood``, ``log_partition``, ``connectivity``, ``n_connections``,
          ``weight_l1``, ``weight_l2``, ``wall_time``;
        * ``epoch`` (1-based): ``epoch_reconstruction_error`` (mean over the epoch's batches,
          parameters changing), ``epoch_wall_time``, ``learning_rate`` (last update of the
          epoch), ``connectivity_end``, ``connections_added``, ``connections_removed``;
        * ``rule_event`` (coords ``event_step``, ``event_epoch``): the rule's info at every
          call that added or removed connections.

        Attributes hold the config (JSON), seed, sizes and package version.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    seed = _positive_int("seed", seed, low=0)
    callbacks = tuple(callbacks) if callbacks is not None else ()
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables taking a CheckpointRecord, got {cb!r}")

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
        v_data = _check_data(data, _positive_int("n_visible", n_visible), dtype)
        rbm = initialize(
            n_visible, n_hidden, v_data, connectivity=config.connectivity, weight_scale=config.weight_scale,
            marginal_clip=config.marginal_clip, dtype=dtype, seed=seed,
        )
    n_samples = v_data.shape[0]
    n_visible, n_hidden = rbm.n_visible, rbm.n_hidden
    if config.batch_size > n_samples:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n_samples} training samples")

    batch_size = config.batch_size
    updates_per_epoch = -(-n_samples // batch_size)
    total_steps = updates_per_epoch * config.epochs
    if isinstance(config.checkpoints, tuple):
        steps = np.array(sorted(set((0,) + config.checkpoints)), dtype=np.int64)
        if steps[-1] > total_steps:
            raise ValueError(f"checkpoint at update {steps[-1]} is beyond the run's {total_steps} updates")
    else:
        steps = np.concatenate([[0], checkpoint_steps(config.checkpoints, total_steps)])
    checkpoint_set = set(int(s) for s in steps)

    opt = config.optimizer()
    rule = config.rule
    params = Parameters(
        np.array(rbm.weights), np.array(rbm.visible_bias), np.array(rbm.hidden_bias), np.array(rbm.mask)
    )
    opt_state = opt.init(params)
    stride = draws_per_sweep(n_visible, n_hidden)

    if config.method == "pcd":
        n_chains = config.n_chains or batch_size
        init_rng = np.random.default_rng(derive_seed(seed, "pcd-chain-init"))
        if config.chain_init == "data":
            chains = v_data[init_rng.integers(0, n_samples, size=n_chains)]
        else:
            chains = (init_rng.random((n_chains, n_visible)) < 0.5).astype(dtype)
        sampler_keys = chain_keys(derive_seed(seed, "pcd"), n_chains)
    else:
        n_chains = batch_size
        chains = None
        sampler_keys = chain_keys(derive_seed(seed, "cd"), batch_size)
    recon_keys = chain_keys(derive_seed(seed, "reconstruction"), batch_size)

    evaluator = _Evaluator(v_data, config, seed, n_visible, n_hidden)
    records: list[dict[str, float]] = []
    epoch_rows: list[dict[str, float]] = []
    events: list[dict[str, float]] = []
    rule_state = None
    train_time = 0.0

    work = n_chains * config.k * stride * n_hidden
    saved_threads = numba.get_num_threads()

    def context(step: int, epoch: int, epoch_end: bool, lr: float, mu: float) -> StepContext:
        return StepContext(
            step, epoch, epoch_end, lr, mu, total_steps, updates_per_epoch, config.epochs,
            derive_seed(seed, "connectivity", step),
        )

    def apply_rule(current: Parameters, shown: Parameters, new, info, step: int, epoch: int):
        """Take the rule's output: re-apply ``W[~M] = 0`` and mask the velocity if it changed anything."""
        nonlocal opt_state
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
        if values["n_added"] or values["n_removed"]:
            events.append({"event_step": step, "event_epoch": epoch, **values})
        return new, values

    def checkpoint(step: int) -> None:
        # The whole training set is evaluated: worth the thread pool even when the updates are not.
        in_loop_threads = numba.get_num_threads()
        numba.set_num_threads(saved_threads)
        try:
            metrics = evaluator(params)
        finally:
            numba.set_num_threads(in_loop_threads)
        index = len(records)
        records.append({"update": step, "wall_time": train_time, **metrics})
        if callbacks:
            record = CheckpointRecord(
                index=index, step=step, epochs_trained=step / updates_per_epoch, model=RBM(*params),
                chains=None if chains is None else chains.copy(), rule_state=rule_state,
                reconstruction_error=metrics["reconstruction_error"], log_likelihood=metrics["log_likelihood"],
                log_partition=metrics["log_partition"], connectivity=metrics["connectivity"],
                weight_l1=metrics["weight_l1"], weight_l2=metrics["weight_l2"], wall_time=train_time,
            )
            for cb in callbacks:
                cb(record)

    if work < _PARALLEL_WORK:
        numba.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        shown = _read_only(params)
        new, rule_state, info = rule.init(shown, context(0, 0, False, 0.0, 0.0))
        params, _ = apply_rule(params, shown, new, info, 0, 0)
        train_time += time.perf_counter() - t0
        checkpoint(0)

        step = 0
        sampler_counter = 0
        recon_counter = 0
        expected = total_steps * work / _WORK_PER_SECOND
        desc = f"{config.method.upper()}-{config.k} training"
        with progress_bar(total_steps, desc, enabled=progress, expected_seconds=expected) as bar:
            for epoch in range(config.epochs):
                t_epoch = time.perf_counter()
                epoch_eval = 0.0
                order = np.random.default_rng(derive_seed(seed, "shuffle", epoch)).permutation(n_samples)
                err_sum = 0.0
                added = removed = 0
                for b_idx in range(updates_per_epoch):
                    t_step = time.perf_counter()
                    v = v_data[order[b_idx * batch_size : (b_idx + 1) * batch_size]]
                    m = v.shape[0]
                    w, a, hb, _ = params
                    w_t = np.ascontiguousarray(w.T)
                    ph = hidden_probabilities(v, w, hb, 1.0)
                    if chains is None:
                        v_k, ph_k = _negative_phase(v, w, w_t, a, hb, sampler_keys[:m], sampler_counter, config.k)
                    else:
                        v_k, ph_k = _negative_phase(chains, w, w_t, a, hb, sampler_keys, sampler_counter, config.k)
                        chains = v_k
                    sampler_counter += config.k * stride
                    grad = gradient_statistics(v, ph, v_k, ph_k)
                    errors = reconstruction_errors(v, ph, w_t, a, recon_keys[:m], np.uint64(recon_counter))
                    err_sum += float(errors.sum())
                    recon_counter += n_hidden
                    lr, mu = opt.hyperparameters(step, total_steps)
                    params, opt_state = opt.update(params, opt_state, grad, step, total_steps)
                    step += 1
                    ctx = context(step, epoch, b_idx == updates_per_epoch - 1, lr, mu)
                    shown = _read_only(params)
                    new, rule_state, info = rule.update(shown, rule_state, grad, ctx)
                    params, values = apply_rule(params, shown, new, info, step, epoch)
                    added += int(values["n_added"])
                    removed += int(values["n_removed"])
                    train_time += time.perf_counter() - t_step
                    bar.update(1)
                    if step in checkpoint_set:
                        t_eval = time.perf_counter()
                        checkpoint(step)
                        epoch_eval += time.perf_counter() - t_eval
                if not np.all(np.isfinite(params.weights)):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch + 1}: non-finite weights; lower the learning rate "
                        f"(now {lr:g}) or the momentum"
                    )
                bar.set_postfix(epoch=epoch + 1, recon=f"{err_sum / n_samples:.4g}")
                epoch_rows.append({
                    "epoch_reconstruction_error": err_sum / n_samples,
                    "epoch_wall_time": time.perf_counter() - t_epoch - epoch_eval,
                    "learning_rate": lr,
                    "connectivity_end": float(np.count_nonzero(params.mask)) / params.mask.size,
                    "connections_added": added,
                    "connections_removed": removed,
                })
    finally:
        numba.set_num_threads(saved_threads)

    model = RBM(*params)
    history = _history(records, epoch_rows, events, updates_per_epoch, evaluator.exact_note, config, seed, model,
                       n_samples, n_chains)
    return TrainResult(model, history)


_CHECKPOINT_ATTRS = {
    "reconstruction_error": ("1", "mean over training samples and visible units of (v_i - p(v'_i=1|h))^2, "
                                  "h sampled from p(h|v); same random streams at every checkpoint"),
    "log_likelihood": ("nats", "mean exact log-likelihood of the training set"),
    "log_partition": ("nats", "exact log partition function log Z"),
    "connectivity": ("1", "fraction of connected visible-hidden pairs"),
    "n_connections": ("1", "number of connected visible-hidden pairs"),
    "weight_l1": ("1", "sum of |W_ij| (L1 norm of the weights)"),
    "weight_l2": ("1", "Frobenius (L2) norm of the weights"),
    "wall_time": ("s", "training wall time since the start, checkpoint evaluations excluded"),
}
_EPOCH_ATTRS = {
    "epoch_reconstruction_error": ("1", "reconstruction error averaged over the epoch's batches (parameters "
                                        "changing during the epoch)"),
    "epoch_wall_time": ("s", "training wall time of the epoch, checkpoint evaluations excluded"),
    "learning_rate": ("1", "learning rate of the epoch's last update"),
    "connectivity_end": ("1", "fraction of connected pairs at the end of the epoch"),
    "connections_added": ("1", "connections added by the connectivity rule during the epoch"),
    "connections_removed": ("1", "connections removed by the connectivity rule during the epoch"),
}


def _history(records, epoch_rows, events, updates_per_epoch, exact_note, config, seed, model, n_samples, n_chains):
    update = np.array([r["update"] for r in records], dtype=np.int64)
    data_vars = {}
    for name, (units, desc) in _CHECKPOINT_ATTRS.items():
        if name == "n_connections":
            values = np.rint(np.array([r["connectivity"] for r in records]) * model.mask.size).astype(np.int64)
        else:
            values = np.array([r[name] for r in records], dtype=np.float64)
        attrs = {"units": units, "description": desc}
        if name in ("log_likelihood", "log_partition"):
            attrs["method"] = exact_note
        data_vars[name] = ("checkpoint", values, attrs)
    for name, (units, desc) in _EPOCH_ATTRS.items():
        dt = np.int64 if name.startswith("connections_") else np.float64
        data_vars[name] = ("epoch", np.array([r[name] for r in epoch_rows], dtype=dt), {"units": units,
                                                                                         "description": desc})
    event_fields = sorted({k for e in events for k in e} - {"event_step", "event_epoch"})
    for name in event_fields:
        data_vars[f"rule_{name}"] = (
            "rule_event", np.array([e.get(name, math.nan) for e in events], dtype=np.float64),
            {"description": f"field {name!r} of the connectivity rule's info"},
        )
    coords = {
        "checkpoint": ("checkpoint", np.arange(len(records))),
        "step": ("checkpoint", update, {"units": "updates", "description": "parameter updates done"}),
        "epochs_trained": ("checkpoint", update / updates_per_epoch, {"units": "epochs"}),
        "epoch": ("epoch", np.arange(1, len(epoch_rows) + 1), {"description": "1-based epoch number"}),
        "event_step": ("rule_event", np.array([e["event_step"] for e in events], dtype=np.int64),
                         {"description": "update after which the rule changed the mask (0: before training)"}),
        "event_epoch": ("rule_event", np.array([e["event_epoch"] for e in events], dtype=np.int64),
                        {"description": "0-based epoch of the change"}),
    }
    attrs = provenance(
        title="RBM training history",
        config=config.to_json(),
        seed=seed,
        method=f"{config.method.upper()}-{config.k}",
        n_visible=model.n_visible,
        n_hidden=model.n_hidden,
        n_samples=n_samples,
        n_chains=n_chains,
        updates_per_epoch=updates_per_epoch,
        dtype=model.dtype.name,
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
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)
