"""One task of a study's graph (:mod:`studies.tasks`): compute it and write its files atomically.

Every task of ``(n_hidden, seed)`` runs with the seed ``derive_seed(seed, "studies.run",
n_hidden)`` (:func:`run_seed`): every protocol and fraction of a replica starts from the same
initial model and draws the same batches until it prunes (common random numbers, so
differences along the fraction and time axes are those of the pruning, not of the draws), and
a pruned point continues the very dense run that its dense task saved.

Files, in ``<output>/tasks/`` and named by the task's key:

* ``<key>.state.nc``: a ``dense`` or ``converged`` task's training state, one update before the
  end of the pruning epoch (attrs ``key``, ``pruned_at_epoch``, ``dense_converged``);
* ``<key>.nc``: a ``point`` or ``converged`` task's result: coordinates, the scalars of
  :func:`point_variables` (:func:`studies.evaluate.evaluate`'s metrics and :data:`POINT_VARIABLES`),
  the stopping trace, the final model and provenance;
* ``<key>.partial.nc``: a running point's training state, saved at evaluations (at most every
  ``checkpoint_seconds``), so an interrupted point continues from there bit-identically;
* ``<key>.ais.npz`` (and ``<key>.ais-raise.npz`` with RAISE): a point's AIS run while it is
  evaluated (:func:`dilution.ais.log_partition`'s checkpoint, written every few minutes), so an
  interruption there loses minutes, not the AIS run; removed with ``partial`` once the result is
  written.

Every read and write of these files is timed on :data:`IO_CLOCK` (the runner records each task's
share in its manifest entry, ``io_time``). A worker process keeps the last few dense states it
read (:func:`_load_dense`, keyed by the file's path, size and modification time), so the points
that continue one dense run read its file once per worker, not once per point.

A pruned point's run: the dense state, with the config's rule replaced by the protocol's
:class:`~dilution.pruning_rules.PruningProtocol` (pruning after epoch ``t``) and its plan
extended to ``t + training.max_epochs`` epochs, takes the last update of epoch ``t``, which
prunes; then it trains until the stopping rule, counting from epoch ``t``, fires. This is
bit-identical to one run of that protocol from initialisation (tests/studies/test_tasks.py).
``scratch`` takes the mask of that update and trains a fresh model on it from epoch 0.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dilution import io
from dilution.connectivity import StepContext
from dilution.model import RBM
from dilution.provenance import provenance
from dilution.rng import derive_seed
from dilution.statefile import from_dataset as state_from_dataset
from dilution.training import TrainState, checkpoint_steps, init_state, initialize, iterate

from .convergence import Convergence, held_out_metric, train_to_convergence
from .data import StudyData, load_data
from .evaluate import Evaluation, evaluate, metric_variables, remove_checkpoints, study_classifier
from .spec import TIMED_KINDS, StudySpec
from .tasks import Task

__all__ = [
    "POINT_VARIABLES",
    "IO_CLOCK",
    "point_variables",
    "PAUSE_ENV",
    "KILL_ONCE_ENV",
    "run_seed",
    "scratch_start",
    "task_paths",
    "compute",
    "read_point",
    "read_state_attrs",
]

# Scalar results of every run besides its evaluation: name -> (long_name, units, fill value in
# the merged study).
POINT_VARIABLES = {
    "validation_metric": ("held-out stopping metric at the end", "nats per sample", math.nan),
    "stopping_gain": ("last improvement measured by the stopping rule", "nats per sample", math.nan),
    "epochs_used": ("epochs trained, the dense phase before pruning included", "epochs", -1),
    "pruned_at_epoch": ("epoch after which the network was pruned (0: at initialisation, -1: never)", "epochs",
                        -1),
    "converged": ("stopping rule fired before the maximum number of epochs", "1", False),
    "connectivity": ("final fraction of connected pairs", "1", math.nan),
    "n_connections": ("final number of connected pairs", "1", -1),
    "train_time": ("training wall time", "s", math.nan),
}
# Test hooks (tests/studies/test_kill.py, test_runner.py): hold every finished temporary result
# file this many seconds before its rename, so a SIGKILL provably lands inside a write; and
# SIGKILL the process at its first result write if this marker file does not exist yet.
PAUSE_ENV = "DILUTION_STUDY_TEST_WRITE_PAUSE"
KILL_ONCE_ENV = "DILUTION_STUDY_TEST_KILL_ONCE"
_TRACE_ATTR = "studies_trace"


class IOClock(threading.local):
    """Seconds this thread spent reading and writing task files since the last :meth:`reset`
    (one clock per thread: a worker thread runs one task at a time, so the runner reads that
    task's share even on a multi-threaded worker)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def timed(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0


IO_CLOCK = IOClock()
# Dense states read by this process: (path, size, mtime_ns) -> (state, pruned_at_epoch).
_DENSE_CACHE: OrderedDict = OrderedDict()
_DENSE_CACHE_SIZE = 4


def run_seed(n_hidden: int, seed: int) -> int:
    """The seed of every run of replica ``seed`` at size ``n_hidden`` (see the module docstring)."""
    return int(derive_seed(seed, "studies.run", n_hidden).generate_state(1)[0])


def scratch_start(mask: np.ndarray, train: np.ndarray, weight_scale: float, marginal_clip: float, dtype: str,
                  seed: int) -> RBM:
    """The initial model of :func:`dilution.pruning_rules.from_scratch` on ``mask`` (its ``train`` call is
    replaced by the study's own driver, which stops at convergence)."""
    dense = initialize(mask.shape[0], mask.shape[1], train, connectivity=1.0, weight_scale=weight_scale,
                       marginal_clip=marginal_clip, dtype=dtype, seed=seed)
    zero = dense.weights.dtype.type(0)
    return RBM(np.where(mask, dense.weights, zero), dense.visible_bias, dense.hidden_bias, mask)


def task_paths(out: str | Path, key: str) -> dict[str, Path]:
    """``{"result", "state", "partial", "ais"}`` file paths of task ``key`` (see the module docstring)."""
    folder = Path(out) / "tasks"
    return {"result": folder / f"{key}.nc", "state": folder / f"{key}.state.nc",
            "partial": folder / f"{key}.partial.nc", "ais": folder / f"{key}.ais.npz"}


def _save(obj: Any, path: Path, attrs: dict | None = None) -> None:
    kill_marker = os.environ.get(KILL_ONCE_ENV)
    if kill_marker and not os.path.exists(kill_marker):
        Path(kill_marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    with IO_CLOCK.timed():
        if not pause:
            io.save(obj, path, attrs=attrs)
            return
        with io.atomic_write(path) as tmp:
            io.save(obj, tmp, attrs=attrs)
            time.sleep(pause)


def _one_update(state: TrainState, train: np.ndarray) -> TrainState:
    for state in iterate(state, train, until=state.step + 1):
        pass
    return state


def _load_dense(out: Path, key: str) -> tuple[TrainState, int]:
    """The dense state task ``key`` saved and its pruning epoch: a private copy of the one this
    process last read from the same file (same size and modification time), or read now (the
    path names the key)."""
    path = task_paths(out, key)["state"]
    with IO_CLOCK.timed():
        stat = path.stat()
        tag = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if tag not in _DENSE_CACHE:
            ds = io.load_dataset(path)
            _DENSE_CACHE[tag] = (state_from_dataset(ds), int(ds.attrs["pruned_at_epoch"]))
            while len(_DENSE_CACHE) > _DENSE_CACHE_SIZE:
                _DENSE_CACHE.popitem(last=False)
        _DENSE_CACHE.move_to_end(tag)
        state, pruned_at = _DENSE_CACHE[tag]
    return copy.deepcopy(state), pruned_at


def _extend(state: TrainState, config, epochs: int) -> TrainState:
    """``state`` continuing as a run of ``epochs`` epochs under ``config`` (same estimator and
    optimiser; constant hyper-parameters, so only the plan's length changes)."""
    upe = state.plan.updates_per_epoch
    total = epochs * upe
    steps = (0,) + tuple(int(s) for s in checkpoint_steps(config.checkpoints, total))
    return state._replace(config=config, plan=state.plan._replace(epochs=epochs, total_steps=total, checkpoints=steps))


def _point_start(spec: StudySpec, task: Task, data: StudyData, seed: int, out: Path) -> tuple[TrainState, int, int]:
    """``(state, count_from_epoch, pruned_at_epoch)`` of a point's run (see the module docstring)."""
    p = task.point
    protocol = spec.protocol(p.protocol)
    tr = spec.training
    shape = (data.train.shape[1], p.n_hidden)
    if protocol.kind not in TIMED_KINDS:
        rule = protocol.rule(p.pruning_fraction, tr.weight_scale, shape=shape)
        return init_state(shape, data.train, tr.config(rule), seed=seed), 0, 0
    dense, t = _load_dense(out, task.depends[0])
    upe = dense.plan.updates_per_epoch
    epochs = t + tr.max_epochs
    rule = protocol.rule(p.pruning_fraction, tr.weight_scale, at_epoch=t)
    # The rule's state as a run with this rule from initialisation would have it.
    initial = init_state(shape, data.train, tr.config(), seed=seed).params
    _, rule_state, _ = rule.init(initial, StepContext(0, 0, False, 0.0, 0.0, epochs * upe, upe, epochs, seed))
    if protocol.kind == "rewind" and protocol.rewind_epoch > 0:
        before, _ = _load_dense(out, task.depends[1])
        at = _one_update(before, data.train)
        rule_state = rule_state._replace(
            rewind_weights=at.params.weights.copy(), rewind_visible_bias=at.params.visible_bias.copy(),
            rewind_hidden_bias=at.params.hidden_bias.copy(), rewind_step=at.step,
        )
    state = _extend(dense, tr.config(rule, epochs=epochs), epochs)._replace(rule=rule_state)
    if protocol.kind != "scratch":
        return state, t, t
    pruned = _one_update(state, data.train)
    fixed = tr.config()
    start = scratch_start(pruned.params.mask, data.train, fixed.weight_scale, fixed.marginal_clip, tr.dtype, seed)
    return init_state(start, data.train, fixed, seed=seed), 0, t


def point_variables(spec: StudySpec) -> dict[str, tuple]:
    """``name -> (long_name, units, fill value)`` of every scalar a result file of ``spec`` holds:
    the evaluation's (:func:`studies.evaluate.metric_variables`, fill NaN), then :data:`POINT_VARIABLES`."""
    out = {name: (long_name, units, math.nan) for name, (long_name, units) in metric_variables(spec.evaluation).items()}
    out.update(POINT_VARIABLES)
    return out


# The auxiliary classifier of a study, trained (or loaded) once per process.
_CLASSIFIERS: dict[tuple, Any] = {}


def _evaluate(spec: StudySpec, rbm: RBM, data: StudyData, seed: int, ais_checkpoint: Path) -> Evaluation:
    classifier = None
    if "classifier" in spec.evaluation.metrics:
        where = (spec.output, spec.evaluation.classifier_seed, getattr(spec.data, "path", ""))
        if where not in _CLASSIFIERS:
            _CLASSIFIERS[where] = study_classifier(spec)
        classifier = _CLASSIFIERS[where]
    return evaluate(spec.evaluation, rbm, data, seed, classifier=classifier, ais_checkpoint=ais_checkpoint)


def _dataset(spec: StudySpec, task: Task, run: Convergence, pruned_at: int, evaluation: Evaluation, seed: int,
             wall: float) -> xr.Dataset:
    state = run.state
    mask = state.params.mask
    values = {
        "validation_metric": run.values[-1] if run.values else math.nan,
        "stopping_gain": spec.stopping.gain(run.values),
        "epochs_used": np.int64(run.epochs_used),
        "pruned_at_epoch": np.int64(pruned_at),
        "converged": np.bool_(run.converged),
        "connectivity": float(np.count_nonzero(mask)) / mask.size,
        "n_connections": np.int64(np.count_nonzero(mask)),
        "train_time": float(state.train_time),
    }
    data_vars = {name: ((), np.float64(m.value), {"long_name": m.long_name, "units": m.units})
                 for name, m in evaluation.metrics.items()}
    data_vars.update({name: ((), value, {"long_name": POINT_VARIABLES[name][0], "units": POINT_VARIABLES[name][1]})
                      for name, value in values.items()})
    data_vars["test_log_likelihood"][2]["method"] = evaluation.method
    data_vars["validation_trace"] = ("evaluation", np.array(run.values, dtype=np.float64),
                                     {"long_name": f"held-out {spec.stopping.metric.replace('_', ' ')}",
                                      "units": "nats per sample"})
    model = state.model
    for name, dims, arr in (("weights", ("visible", "hidden"), model.weights), ("visible_bias", ("visible",),
                            model.visible_bias), ("hidden_bias", ("hidden",), model.hidden_bias),
                            ("mask", ("visible", "hidden"), mask.astype(np.int8))):
        data_vars[name] = (dims, np.array(arr), {"long_name": f"final {name.replace('_', ' ')}", "units": "1"})
    coords = {
        "evaluation_epoch": ("evaluation", np.array(run.epochs, dtype=np.int64),
                             {"long_name": "epochs completed at the evaluation", "units": "epochs"}),
        "n_hidden": ((), task.n_hidden, {"long_name": "hidden units", "units": "1"}),
        "seed": ((), task.seed, {"long_name": "replica seed", "units": "1"}),
    }
    if task.point is not None:
        coords["protocol"] = ((), task.point.protocol, {"long_name": "pruning protocol", "units": "1"})
        coords["pruning_time"] = ((), task.point.pruning_time, {"long_name": "pruning time (epoch or 'converged')",
                                                                "units": "1"})
        config = spec.point_config(*(getattr(task.point, d) for d in ("n_hidden", "protocol", "pruning_time",
                                                                       "pruning_fraction", "seed")))
    else:
        from .tasks import task_config

        config = task_config(spec, task.kind, task.n_hidden, task.seed)
    fraction = task.point.pruning_fraction if task.point is not None else 0.0
    coords["pruning_fraction"] = ((), fraction, {"long_name": "fraction of connections pruned", "units": "1"})
    attrs = provenance(
        title=f"study {spec.name!r}: task {task.key}", key=task.key, study=spec.name,
        task_config=json.dumps(config, sort_keys=True), run_seed=seed, max_epochs=spec.training.max_epochs,
        wall_time=wall,
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _load_partial(path: Path) -> tuple[TrainState, dict] | None:
    if not path.exists():
        return None
    try:
        with IO_CLOCK.timed():
            saved = io.load_dataset(path)
        return state_from_dataset(saved), dict(saved.attrs[_TRACE_ATTR])
    except (ValueError, KeyError, TypeError, OSError):
        return None  # an unreadable checkpoint costs a restart, not the study


def _run_dense(spec: StudySpec, task: Task, data: StudyData, seed: int, out: Path) -> None:
    if task.depends:
        state, _ = _load_dense(out, task.depends[0])
    else:
        state = init_state((data.train.shape[1], task.n_hidden), data.train, spec.training.config(), seed=seed)
    for state in iterate(state, data.train, until=task.until * state.plan.updates_per_epoch - 1):
        pass
    _save(state, task_paths(out, task.key)["state"],
          attrs={"key": task.key, "pruned_at_epoch": task.until, "dense_converged": 0})


def _run_converged(spec: StudySpec, task: Task, data: StudyData, seed: int, out: Path, checkpoint) -> tuple:
    """Train the dense run to convergence; save the state one update before its end. Returns
    ``(Convergence, pruned_at_epoch)``."""
    rule = spec.stopping
    paths = task_paths(out, task.key)
    saved = _load_partial(paths["partial"])
    if saved is None:
        state = init_state((data.train.shape[1], task.n_hidden), data.train, spec.training.config(), seed=seed)
        epochs, values = (), ()
    else:
        state, trace = saved
        epochs, values = tuple(trace["epochs"]), tuple(trace["values"])
    upe = state.plan.updates_per_epoch

    def evaluate(state: TrainState) -> bool:
        nonlocal epochs, values
        epochs += (state.step // upe,)
        values += (held_out_metric(state.model, data.validation, rule.metric),)
        return epochs[-1] >= rule.min_epochs and rule.converged(values, data.independent_validation_log_likelihood)

    if not epochs:
        evaluate(state)  # a fresh run (epoch 0) cannot have converged: the rule needs window + 1 values
    previous, converged = state, False
    for new in iterate(state, data.train):
        previous, state = state, new
        if state.step % upe == 0 and (state.step // upe) % rule.every == 0:
            if evaluate(state):
                converged = True
                break
            if not state.done:  # a saved state is never a finished run: its resume re-enters this loop
                checkpoint(state, {"epochs": list(epochs), "values": list(values)})
    pruned_at = math.ceil(state.step / upe)
    _save(previous, paths["state"], attrs={"key": task.key, "pruned_at_epoch": pruned_at,
                                           "dense_converged": int(converged)})
    return Convergence(state, pruned_at, converged, epochs, values)


def compute(spec: StudySpec, task: Task, *, checkpoint_seconds: float = 60.0) -> dict[str, Path]:
    """Compute ``task`` (its dependencies' files must exist) and write its files.

    Parameters
    ----------
    spec : StudySpec
    task : Task
    checkpoint_seconds : float
        Save a running point's (or converged task's) state at an evaluation when this long
        has passed since the last save (0: at every evaluation).

    Returns
    -------
    dict of str to Path
        The files written (keys as in :func:`task_paths`, ``partial`` and ``ais`` excepted).
    """
    t0 = time.perf_counter()
    out = Path(spec.output)
    paths = task_paths(out, task.key)
    paths["result"].parent.mkdir(parents=True, exist_ok=True)
    # Temporary files of an earlier attempt killed inside a write (only this task writes them).
    folder = paths["result"].parent
    for stale in (*folder.glob(f".{task.key}.*.tmp"), *folder.glob(f"..{task.key}.*.tmp")):
        stale.unlink(missing_ok=True)
    data = load_data(spec.data)
    seed = run_seed(task.n_hidden, task.seed)
    if task.kind == "dense":
        _run_dense(spec, task, data, seed, out)
        return {"state": paths["state"]}
    last_save = time.perf_counter()
    pruned_at = -1

    def checkpoint(state: TrainState, trace: dict) -> None:
        nonlocal last_save
        if time.perf_counter() - last_save >= checkpoint_seconds:
            with IO_CLOCK.timed():
                io.save(state, paths["partial"], attrs={_TRACE_ATTR: trace, "key": task.key})
            last_save = time.perf_counter()

    if task.kind == "converged":
        run = _run_converged(spec, task, data, seed, out, checkpoint)
        written = {"state": paths["state"], "result": paths["result"]}
    else:
        saved = _load_partial(paths["partial"])
        if saved is None:
            state, count_from, pruned_at = _point_start(spec, task, data, seed, out)
            epochs = values = ()
        else:
            state, trace = saved
            count_from, pruned_at = trace["count_from"], trace["pruned_at_epoch"]
            epochs, values = tuple(trace["epochs"]), tuple(trace["values"])
        fixed = {"count_from": count_from, "pruned_at_epoch": pruned_at}
        run = train_to_convergence(
            state, data.train, data.validation, spec.stopping, count_from_epoch=count_from, epochs=epochs,
            values=values,
            on_evaluation=lambda s, e, v: checkpoint(s, {**fixed, "epochs": list(e), "values": list(v)}),
            baseline=data.independent_validation_log_likelihood,
        )
        written = {"result": paths["result"]}
    evaluation = _evaluate(spec, run.state.model, data, seed, paths["ais"])
    _save(_dataset(spec, task, run, pruned_at, evaluation, seed, time.perf_counter() - t0), paths["result"])
    paths["partial"].unlink(missing_ok=True)
    remove_checkpoints(paths["ais"])
    return written


def read_point(path: str | Path, key: str, names=("test_log_likelihood", *POINT_VARIABLES)) -> dict | None:
    """The scalars ``names`` of a finished task (default: the test log-likelihood and
    :data:`POINT_VARIABLES`; all of them: :func:`point_variables`), its test method and wall time,
    or None when ``path`` is missing, unreadable, holds another key or lacks one of ``names``.

    Result files are written atomically, so a file under its final name is complete; reading
    the scalars with h5py directly is ten times faster than opening the Dataset.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("key")
            if isinstance(stored, bytes):
                stored = stored.decode()
            if stored != key or any(name not in f for name in names):
                return None
            out = {name: f[name][()] for name in names}
            method = f["test_log_likelihood"].attrs.get("method", "")
            out["wall_time"] = float(np.ravel(f.attrs.get("wall_time", math.nan))[0])
    except (OSError, KeyError, ValueError):
        return None
    out["method"] = method.decode() if isinstance(method, bytes) else str(method)
    return out


def read_state_attrs(path: str | Path, key: str) -> dict | None:
    """``{"pruned_at_epoch", "dense_converged"}`` of a dense task's state file, or None when it is
    missing, unreadable or holds another key (the attributes only: as fast as :func:`read_point`)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("key")
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if stored != key or "pruned_at_epoch" not in f.attrs:
                return None
            return {name: int(np.ravel(f.attrs[name])[0]) for name in ("pruned_at_epoch", "dense_converged")}
    except (OSError, KeyError, ValueError):
        return None
