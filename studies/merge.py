"""Merge the finished tasks of a study into one labelled Dataset.

Dims :data:`studies.spec.DIMS` = ``(protocol, pruning_time, pruning_fraction, n_hidden, seed)``:

* ``protocol`` (str): the protocol tables' names;
* ``pruning_time`` (str): ``"0"``, ``"10"``, ..., ``"converged"`` (:func:`studies.spec.time_label`),
  the union of every protocol's times in increasing order with ``"converged"`` last; the epoch a
  point was actually pruned at is the variable ``pruned_at_epoch``;
* ``pruning_fraction`` (float64), ``n_hidden`` (int64), ``seed`` (int64, the replica seed).

One variable per scalar result (:func:`studies.point.point_variables`: the evaluation's metrics
and the run's epochs, flags and connectivity), missing points filled with NaN, -1 or False; ``finished`` (the point's result is in), ``planned`` (the point is in the
grid: False where a protocol has no such pruning time); ``dense_epochs`` and
``dense_converged`` over ``(n_hidden, seed)``, when the dense run converged; the data's
reference levels; provenance (the spec as JSON, package version, git commit). Fraction-0
points of every protocol are the dense run itself (:mod:`studies.tasks`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from dilution.provenance import provenance

from .data import load_data
from .point import point_variables, read_point, task_paths
from .spec import DIMS, StudySpec
from .tasks import build_graph

__all__ = ["merge", "COORD_ATTRS"]

COORD_ATTRS = {
    "protocol": ("pruning protocol", "1"),
    "pruning_time": ("pruning time: epoch after which the network is pruned ('0': at initialisation), or "
                     "'converged' (once the dense run converged)", "1"),
    "pruning_fraction": ("fraction of connections pruned", "1"),
    "n_hidden": ("hidden units", "1"),
    "seed": ("replica seed", "1"),
}


def merge(spec: StudySpec) -> xr.Dataset:
    """All finished points of ``spec`` as one Dataset (see the module docstring)."""
    coords = spec.coords()
    shape = tuple(len(coords[d]) for d in DIMS)
    index = {d: {v: i for i, v in enumerate(coords[d])} for d in DIMS}
    dtypes = {bool: np.bool_, int: np.int64, float: np.float64}
    variables = point_variables(spec)
    arrays = {name: np.full(shape, fill, dtype=dtypes[type(fill)]) for name, (_, _, fill) in variables.items()}
    finished = np.zeros(shape, dtype=bool)
    planned = np.zeros(shape, dtype=bool)
    dense_shape = (len(coords["n_hidden"]), len(coords["seed"]))
    dense_epochs = np.full(dense_shape, -1, dtype=np.int64)
    dense_converged = np.zeros(dense_shape, dtype=bool)
    methods = set()
    graph = build_graph(spec)
    cache: dict[str, dict | None] = {}
    for p, key in graph.cells.items():
        at = tuple(index[d][getattr(p, d)] for d in DIMS)
        planned[at] = True
        if key not in cache:
            cache[key] = read_point(task_paths(spec.output, key)["result"], key, tuple(variables))
        values = cache[key]
        if values is None:
            continue
        for name in variables:
            arrays[name][at] = values[name]
        finished[at] = True
        methods.add(values["method"])
    for task in graph.tasks.values():
        values = cache.get(task.key)
        if task.kind == "converged" and values is not None:
            at = (index["n_hidden"][task.n_hidden], index["seed"][task.seed])
            dense_epochs[at] = values["epochs_used"]
            dense_converged[at] = values["converged"]
    data_vars = {}
    for name, (long_name, units, _) in variables.items():
        attrs = {"long_name": long_name, "units": units}
        if name == "test_log_likelihood":
            attrs["method"] = "; ".join(sorted(methods))
        data_vars[name] = (DIMS, arrays[name], attrs)
    data_vars["finished"] = (DIMS, finished, {"long_name": "point finished", "units": "1"})
    data_vars["planned"] = (DIMS, planned, {"long_name": "point in the grid (the protocol has this pruning time)",
                                            "units": "1"})
    data_vars["dense_epochs"] = (("n_hidden", "seed"), dense_epochs, {
        "long_name": "epochs of the dense run to convergence (the 'converged' pruning time; -1: not run)",
        "units": "epochs"})
    data_vars["dense_converged"] = (("n_hidden", "seed"), dense_converged, {
        "long_name": "the dense run's stopping rule fired before training.max_epochs", "units": "1"})
    data = load_data(spec.data)
    data_vars["teacher_test_log_likelihood"] = ((), data.teacher_test_log_likelihood, {
        "long_name": "mean test log-likelihood under the planted teacher (NaN without a teacher)",
        "units": "nats per sample"})
    data_vars["independent_test_log_likelihood"] = ((), data.independent_test_log_likelihood, {
        "long_name": "mean test log-likelihood of independent units with the training marginals",
        "units": "nats per sample"})
    dtype = {"protocol": str, "pruning_time": str, "pruning_fraction": np.float64, "n_hidden": np.int64,
             "seed": np.int64}
    ds_coords = {d: (d, np.asarray(coords[d], dtype=dtype[d]), {"long_name": COORD_ATTRS[d][0],
                                                                "units": COORD_ATTRS[d][1]})
                 for d in DIMS}
    attrs = provenance(title=f"study {spec.name!r}", study=spec.name, spec=spec.to_json(),
                       max_epochs=spec.training.max_epochs, n_points=int(planned.sum()),
                       n_finished=int(finished.sum()),
                       stopping_rule=(f"every {spec.stopping.every} epochs, held-out {spec.stopping.metric}; "
                                      f"converged when the best of the last {spec.stopping.window} evaluations "
                                      f"beats the best earlier one by less than {spec.stopping.tolerance:g} nats"))
    return xr.Dataset(data_vars, coords=ds_coords, attrs=attrs)
