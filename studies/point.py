"""One grid point of a study: build its run, train it to convergence, evaluate it, write its file.

The point's run seed is derived from the replica seed and ``n_hidden`` only
(``derive_seed(seed, "studies.run", n_hidden)``): every protocol and every pruning fraction of a
replica starts from the same initial model and draws the same batches until it prunes (common
random numbers, so differences along the fraction axis are those of the pruning, not of the
draws), and adding grid points never changes an existing point.

A point's result is ``<out>/points/<key>.nc`` (written atomically, with the point's coordinates,
metrics, stopping trace, final model and provenance). While it trains, its training state is
saved to ``<out>/points/<key>.state.nc`` at evaluations (at most every ``checkpoint_seconds``), so
an interrupted point continues from there, bit-identically.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from dilution import io
from dilution.connectivity import StaticMask
from dilution.model import RBM
from dilution.provenance import provenance
from dilution.rng import derive_seed
from dilution.statefile import from_dataset as state_from_dataset
from dilution.training import TrainState, init_state, initialize, iterate

from .convergence import Convergence, train_to_convergence
from .data import StudyData, load_data
from .spec import GridPoint, StudySpec

__all__ = ["POINT_VARIABLES", "run_seed", "scratch_start", "point_paths", "run_point", "read_point"]

# Scalar results of a point: name -> (long_name, units, fill value in the gathered study).
POINT_VARIABLES = {
    "test_log_likelihood": ("mean test log-likelihood", "nats per sample", math.nan),
    "test_log_likelihood_se": ("standard error of the mean test log-likelihood over test samples",
                               "nats per sample", math.nan),
    "log_partition": ("log partition function", "nats", math.nan),
    "validation_metric": ("held-out stopping metric at the end", "nats per sample", math.nan),
    "stopping_gain": ("last improvement measured by the stopping rule", "nats per sample", math.nan),
    "epochs_used": ("epochs trained", "epochs", -1),
    "converged": ("stopping rule fired before the maximum number of epochs", "1", False),
    "connectivity": ("final fraction of connected pairs", "1", math.nan),
    "n_connections": ("final number of connected pairs", "1", -1),
    "train_time": ("training wall time", "s", math.nan),
}
_PHASE_ATTR = "studies_phase"


def run_seed(point: GridPoint) -> int:
    """The run's seed (see the module docstring)."""
    return int(derive_seed(point.seed, "studies.run", point.n_hidden).generate_state(1)[0])


def scratch_start(mask: np.ndarray, train: np.ndarray, weight_scale: float, marginal_clip: float, dtype: str,
                  seed: int) -> RBM:
    """The initial model of :func:`dilution.pruning_rules.from_scratch` on ``mask`` (its ``train`` call is
    replaced by the study's own driver, which stops at convergence)."""
    dense = initialize(mask.shape[0], mask.shape[1], train, connectivity=1.0, weight_scale=weight_scale,
                       marginal_clip=marginal_clip, dtype=dtype, seed=seed)
    zero = dense.weights.dtype.type(0)
    return RBM(np.where(mask, dense.weights, zero), dense.visible_bias, dense.hidden_bias, mask)


def point_paths(out: str | Path, point: GridPoint) -> tuple[Path, Path]:
    """``(result, state)`` file paths of a point."""
    folder = Path(out) / "points"
    return folder / f"{point.key}.nc", folder / f"{point.key}.state.nc"


def _initial_state(spec: StudySpec, point: GridPoint, data: StudyData, seed: int) -> TrainState:
    protocol = spec.protocol(point.protocol)
    tr = spec.training
    shape = (data.train.shape[1], point.n_hidden)
    pruning = tr.config(protocol.rule(point.pruning_fraction, tr.weight_scale))
    if protocol.kind != "scratch":
        return init_state(shape, data.train, pruning, seed=seed)
    # The mask "after" would have: the same run (same seed) up to the end of the pruning epoch.
    state = init_state(shape, data.train, pruning, seed=seed)
    for state in iterate(state, data.train, until=protocol.epoch * state.plan.updates_per_epoch):
        pass
    fixed = tr.config(StaticMask())
    start = scratch_start(state.params.mask, data.train, fixed.weight_scale, fixed.marginal_clip, tr.dtype, seed)
    return init_state(start, data.train, fixed, seed=seed)


def _evaluate(spec: StudySpec, rbm: RBM, data: StudyData, seed: int) -> dict:
    from analysis.likelihood import ais_log_likelihood, exact_log_likelihood

    ev = spec.evaluation
    if ev.log_likelihood == "exact":
        ds = exact_log_likelihood(rbm, data.test)
        method = "exact enumeration of the smaller layer"
    else:
        from dilution.schedules import linear

        ds = ais_log_likelihood(rbm, data.test, n_chains=ev.ais_chains, seed=int(derive_seed(seed, "studies.ais")
                                .generate_state(1)[0]), betas=linear(ev.ais_betas), base_data=data.train,
                                progress=False)
        method = f"AIS, {ev.ais_chains} chains, {ev.ais_betas} linear betas"
    return {
        "test_log_likelihood": float(ds["mean_log_likelihood"]), "test_log_likelihood_se": float(ds["std_error"]),
        "log_partition": float(ds["log_z"]), "method": method,
    }


def _dataset(spec: StudySpec, point: GridPoint, run: Convergence, metrics: dict, seed: int, wall: float) -> xr.Dataset:
    state = run.state
    mask = state.params.mask
    values = {
        "test_log_likelihood": metrics["test_log_likelihood"],
        "test_log_likelihood_se": metrics["test_log_likelihood_se"],
        "log_partition": metrics["log_partition"],
        "validation_metric": run.values[-1] if run.values else math.nan,
        "stopping_gain": spec.stopping.gain(run.values),
        "epochs_used": np.int64(run.epochs_used),
        "converged": np.bool_(run.converged),
        "connectivity": float(np.count_nonzero(mask)) / mask.size,
        "n_connections": np.int64(np.count_nonzero(mask)),
        "train_time": float(state.train_time),
    }
    data_vars = {name: ((), value, {"long_name": POINT_VARIABLES[name][0], "units": POINT_VARIABLES[name][1]})
                 for name, value in values.items()}
    data_vars["test_log_likelihood"][2]["method"] = metrics["method"]
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
        "n_hidden": ((), point.n_hidden, {"long_name": "hidden units", "units": "1"}),
        "protocol": ((), point.protocol, {"long_name": "pruning protocol", "units": "1"}),
        "pruning_fraction": ((), point.pruning_fraction, {"long_name": "fraction of connections pruned",
                                                          "units": "1"}),
        "seed": ((), point.seed, {"long_name": "replica seed", "units": "1"}),
    }
    attrs = provenance(
        title=f"study {spec.name!r}: grid point {point.key}", key=point.key, study=spec.name,
        point_config=json.dumps(spec.point_config(point.n_hidden, point.protocol, point.pruning_fraction,
                                                  point.seed), sort_keys=True),
        run_seed=seed, max_epochs=spec.training.max_epochs, wall_time=wall,
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def run_point(spec: StudySpec, point: GridPoint, *, checkpoint_seconds: float = 60.0) -> Path:
    """Train, evaluate and save one grid point (continuing its saved state if there is one).

    Parameters
    ----------
    spec : StudySpec
    point : GridPoint
    checkpoint_seconds : float
        Save the training state at an evaluation when this long has passed since the last
        save (0: at every evaluation).

    Returns
    -------
    Path
        The point's result file.
    """
    t0 = time.perf_counter()
    data = load_data(spec.data)
    seed = run_seed(point)
    result_path, state_path = point_paths(spec.output, point)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    epochs: tuple = ()
    values: tuple = ()
    state = None
    if state_path.exists():
        try:
            saved = io.load_dataset(state_path)
            state = state_from_dataset(saved)
            epochs = tuple(int(e) for e in saved.attrs[_PHASE_ATTR]["epochs"])
            values = tuple(float(v) for v in saved.attrs[_PHASE_ATTR]["values"])
        except (ValueError, KeyError, TypeError):
            state = None  # an unreadable checkpoint costs a restart, not the study
    if state is None:
        state = _initial_state(spec, point, data, seed)
    last_save = time.perf_counter()

    def checkpoint(state: TrainState, epochs: tuple, values: tuple) -> None:
        nonlocal last_save
        if time.perf_counter() - last_save >= checkpoint_seconds:
            io.save(state, state_path, attrs={_PHASE_ATTR: {"epochs": list(epochs), "values": list(values)},
                                              "key": point.key})
            last_save = time.perf_counter()

    protocol = spec.protocol(point.protocol)
    run = train_to_convergence(state, data.train, data.validation, spec.stopping,
                               count_from_epoch=protocol.last_pruning_epoch, epochs=epochs, values=values,
                               on_evaluation=checkpoint)
    metrics = _evaluate(spec, run.state.model, data, seed)
    io.save(_dataset(spec, point, run, metrics, seed, time.perf_counter() - t0), result_path)
    state_path.unlink(missing_ok=True)
    return result_path


def read_point(path: str | Path, key: str) -> dict | None:
    """The scalar results of a finished point (:data:`POINT_VARIABLES` and the test method), or
    None when ``path`` is missing, unreadable or holds another key.

    Result files are written atomically, so a file under its final name is complete; reading
    the scalars with h5py directly is ten times faster than opening the Dataset.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("key")
            if isinstance(stored, bytes):
                stored = stored.decode()
            if stored != key or any(name not in f for name in POINT_VARIABLES):
                return None
            out = {name: f[name][()] for name in POINT_VARIABLES}
            method = f["test_log_likelihood"].attrs.get("method", "")
    except (OSError, KeyError):
        return None
    out["method"] = method.decode() if isinstance(method, bytes) else str(method)
    return out
