"""Run every grid point of a study, skip finished ones, and gather the results into one Dataset.

Each point writes its own file (:func:`studies.point.run_point`); a rerun skips points whose
file is complete, so an interrupted study continues where it stopped. The points run on an
executor:

* ``"serial"``: one after the other in this process (debugging, small studies);
* a ``dask.distributed.Client``: ``Client(LocalCluster(n_workers=N, threads_per_worker=1))`` on
  one machine (:func:`local_client`), or a client of a running scheduler
  (``Client("tcp://host:8786")``; on a SLURM cluster ``dask_jobqueue.SLURMCluster`` gives one,
  an optional extra). Every task is a pure function of the spec and its point, so the results
  do not depend on the executor or the number of workers.

Numba threads: dask does not set ``NUMBA_NUM_THREADS`` in its workers, so a worker would use one
thread per core and N workers would oversubscribe the machine; :func:`local_client` sets it to
1 in the workers' environment. Numba's ``cache=True`` cache can break when several processes
compile the same kernels at once, so the first pending point runs in this process before any
task is submitted: it compiles and caches the kernels the workers then load.

The gathered ``study.nc`` has dims ``(n_hidden, protocol, pruning_fraction, seed)``, one
variable per scalar result of a point (:data:`studies.point.POINT_VARIABLES`; missing points
filled with NaN, -1 or False and flagged by ``finished``), the data's reference levels and
provenance (the spec as JSON, package version, git commit).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import xarray as xr

from dilution import io
from dilution.provenance import provenance

from .data import load_data
from .point import POINT_VARIABLES, point_paths, read_point, run_point
from .spec import DIMS, GridPoint, StudySpec

__all__ = ["PointOutcome", "StudyRun", "run_study", "gather", "local_client", "run_task"]


class PointOutcome(NamedTuple):
    """What happened to one point: ``status`` is "done", "skipped" (finished before) or "failed"."""

    key: str
    status: str
    seconds: float
    error: str


class StudyRun(NamedTuple):
    """Result of :func:`run_study`: the gathered Dataset, its path and every point's outcome."""

    study: xr.Dataset
    path: Path
    outcomes: tuple

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def run_task(spec: StudySpec, point: GridPoint, checkpoint_seconds: float = 60.0) -> PointOutcome:
    """Run one point, turning any error into a "failed" outcome (one bad point never stops a study)."""
    t0 = time.perf_counter()
    try:
        run_point(spec, point, checkpoint_seconds=checkpoint_seconds)
    except Exception:  # noqa: BLE001 - reported per point, with its traceback
        return PointOutcome(point.key, "failed", time.perf_counter() - t0, traceback.format_exc())
    return PointOutcome(point.key, "done", time.perf_counter() - t0, "")


def local_client(n_workers: int):
    """A ``dask.distributed`` client of a local cluster of ``n_workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    single = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=single)
    return Client(cluster)


def run_study(
    spec: StudySpec,
    *,
    client: Any = None,
    checkpoint_seconds: float = 60.0,
    report: Callable[[PointOutcome, int, int], None] | None = None,
) -> StudyRun:
    """Run the pending points of ``spec`` and gather every finished point into ``<output>/study.nc``.

    Parameters
    ----------
    spec : StudySpec
    client : dask.distributed.Client, optional
        Run the points as dask tasks (default: serially in this process).
    checkpoint_seconds : float
        Passed to :func:`studies.point.run_point`.
    report : callable, optional
        ``report(outcome, n_finished, n_points)`` after each point.

    Returns
    -------
    StudyRun
    """
    out = Path(spec.output)
    (out / "points").mkdir(parents=True, exist_ok=True)
    points = spec.points()
    outcomes: list[PointOutcome] = []

    def note(outcome: PointOutcome) -> None:
        outcomes.append(outcome)
        if report is not None:
            report(outcome, len(outcomes), len(points))

    pending = []
    for p in points:
        if read_point(point_paths(out, p)[0], p.key) is not None:
            note(PointOutcome(p.key, "skipped", 0.0, ""))
        else:
            pending.append(p)
    if pending and client is not None:
        # Warm numba's cache in one process before the workers load it (see the module docstring).
        note(run_task(spec, pending[0], checkpoint_seconds))
        pending = pending[1:]
        from distributed import as_completed

        futures = client.map(run_task, [spec] * len(pending), pending, [checkpoint_seconds] * len(pending),
                             key=[f"studies-{p.key}" for p in pending], retries=2)
        for future in as_completed(futures):
            note(future.result())
    else:
        for p in pending:
            note(run_task(spec, p, checkpoint_seconds))
    study = gather(spec)
    path = io.save(study, out / "study.nc")
    return StudyRun(study, path, tuple(outcomes))


def gather(spec: StudySpec) -> xr.Dataset:
    """All finished points of ``spec`` as one labelled Dataset (see the module docstring)."""
    coords = spec.coords()
    shape = tuple(len(coords[d]) for d in DIMS)
    index = {d: {v: i for i, v in enumerate(coords[d])} for d in DIMS}
    dtypes = {bool: np.bool_, int: np.int64, float: np.float64}
    arrays = {name: np.full(shape, fill, dtype=dtypes[type(fill)]) for name, (_, _, fill) in POINT_VARIABLES.items()}
    finished = np.zeros(shape, dtype=bool)
    methods = set()
    for p in spec.points():
        values = read_point(point_paths(spec.output, p)[0], p.key)
        if values is None:
            continue
        at = tuple(index[d][getattr(p, d)] for d in DIMS)
        for name in POINT_VARIABLES:
            arrays[name][at] = values[name]
        finished[at] = True
        methods.add(values["method"])
    data_vars = {}
    for name, (long_name, units, _) in POINT_VARIABLES.items():
        attrs = {"long_name": long_name, "units": units}
        if name == "test_log_likelihood":
            attrs["method"] = "; ".join(sorted(methods))
        data_vars[name] = (DIMS, arrays[name], attrs)
    data_vars["finished"] = (DIMS, finished, {"long_name": "point finished", "units": "1"})
    data = load_data(spec.data)
    data_vars["teacher_test_log_likelihood"] = ((), data.teacher_test_log_likelihood, {
        "long_name": "mean test log-likelihood under the planted teacher (NaN without a teacher)",
        "units": "nats per sample"})
    data_vars["independent_test_log_likelihood"] = ((), data.independent_test_log_likelihood, {
        "long_name": "mean test log-likelihood of independent units with the training marginals",
        "units": "nats per sample"})
    coord_attrs = {
        "n_hidden": ("hidden units", "1"), "protocol": ("pruning protocol", "1"),
        "pruning_fraction": ("fraction of connections pruned", "1"), "seed": ("replica seed", "1"),
    }
    ds_coords = {d: (d, np.asarray(coords[d]), {"long_name": coord_attrs[d][0], "units": coord_attrs[d][1]})
                 for d in DIMS}
    attrs = provenance(title=f"study {spec.name!r}", study=spec.name, spec=spec.to_json(),
                       max_epochs=spec.training.max_epochs, n_points=int(finished.size),
                       n_finished=int(finished.sum()),
                       stopping_rule=(f"every {spec.stopping.every} epochs, held-out {spec.stopping.metric}; "
                                      f"converged when the best of the last {spec.stopping.window} evaluations "
                                      f"beats the best earlier one by less than {spec.stopping.tolerance:g} nats"))
    return xr.Dataset(data_vars, coords=ds_coords, attrs=attrs)
