"""Run a study's task graph, skip what is finished, retry what failed, and merge the results.

The tasks (:mod:`studies.tasks`) run on an executor:

* ``"serial"`` (``client=None``): one after the other in this process, in a topological order
  (debugging, small studies);
* a ``dask.distributed.Client``: each task is a dask task whose arguments include the outcomes
  of the tasks it depends on, so dask runs it after them. :func:`local_client` starts a
  ``LocalCluster`` of single-threaded worker processes; ``Client("tcp://host:8786")`` joins a
  running scheduler (on a SLURM cluster, ``dask_jobqueue.SLURMCluster`` gives one, an optional
  extra). Every task is a pure function of the spec and its key (its files, its seed), so the
  results do not depend on the executor or the number of workers. A worker that dies in the
  middle of a task (killed, out of memory) is replaced by its nanny and dask reruns the task
  elsewhere (up to ``distributed.scheduler.allowed-failures`` times); the rerun starts from the
  task's dependencies' files (or its own partial state) and gives the identical result.

Never dies on one bad task: :func:`execute` turns an exception into a ``failed`` outcome with its
traceback, after ``1 + retries`` attempts; the tasks depending on it fail without running
("dependency failed"), every other task completes. Each attempt is recorded in the manifest
(:mod:`studies.manifest`); a rerun skips the tasks whose files are in place and valid. A Ctrl-C
is no failure: it stops the study. A serial run (:func:`serial_interrupt`) defers it to the next
training update, AIS chunk or task, and one that numba wrapped in a ``SystemError`` is still
recognised; a dask task runs in a worker thread, which never receives it, and the client's wait
for the results raises it.

Numba threads: dask does not set ``NUMBA_NUM_THREADS`` in its workers, so each would use one
thread per core and N workers would oversubscribe the machine. :func:`local_client` puts the
BLAS thread counts in ``distributed.nanny.pre-spawn-environ``, which the nanny sets (in this
process) before it spawns a worker, hence before numpy loads its BLAS there; and
``NUMBA_NUM_THREADS`` in ``distributed.nanny.environ``, which the worker process sets itself
before it runs a task: numba reads it when it first launches its threads, and setting it in this
process instead would break this process's own numba once its threads run (a nanny that restarts
a dead worker sets its pre-spawn environment here again, in the middle of a study). Numba's
``cache=True`` cache can break when several processes compile the same kernels at once, so
:func:`warm_numba` compiles (and caches) the kernels a study uses in this process before any
task is submitted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, NamedTuple

import xarray as xr

from dilution import io
from dilution import interrupt

from . import manifest
from .merge import merge
from .point import IO_CLOCK, compute
from .refine import next_fractions, refined_spec, save_refined
from .spec import StudySpec
from .tasks import Task, build_graph

__all__ = ["TaskOutcome", "StudyRun", "StudyStatus", "execute", "run_study", "study_status", "local_client",
           "study_client", "serial_interrupt", "resume_hint", "close_client", "warm_numba", "SINGLE_THREAD_ENV"]

# Set in every worker process before it starts (see the module docstring).
SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}


class TaskOutcome(NamedTuple):
    """What happened to one task in this run.

    ``status`` is "done" (computed now), "skipped" (its files were in place) or "failed";
    ``attempts`` counts every attempt in the manifest, earlier runs included; ``error`` is the
    last attempt's traceback (or which dependency failed).
    """

    key: str
    kind: str
    status: str
    seconds: float
    attempts: int
    error: str


class StudyRun(NamedTuple):
    """Result of :func:`run_study`: the merged Dataset, its path and every task's outcome."""

    study: xr.Dataset
    path: Path
    outcomes: tuple

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def execute(spec: StudySpec, task: Task, retries: int = 2, checkpoint_seconds: float = 60.0,
            *dependencies: TaskOutcome) -> TaskOutcome:
    """Run ``task`` unless it is finished, with up to ``retries`` more attempts after a failure.

    ``dependencies`` are the outcomes of the tasks it depends on (a dask executor passes their
    futures, so the task waits for them); if one failed, this one fails without running.
    """
    out = spec.output
    failed = [d.key for d in dependencies if d.status == "failed"]
    if failed:
        record = manifest.read_record(out, task)
        error = f"not run: dependency {', '.join(failed)} failed"
        manifest.finish(out, record, "failed", 0.0, error)
        return TaskOutcome(task.key, task.kind, "failed", 0.0, record.attempts, error)
    if manifest.is_finished(out, task):
        record = manifest.read_record(out, task)
        if record.status != "done":  # killed between its last file and its record
            manifest.finish(out, record, "done", record.wall_time, io_time=record.io_time)
        return TaskOutcome(task.key, task.kind, "skipped", 0.0, record.attempts, "")
    for _ in range(1 + retries):
        record = manifest.start(out, task)
        IO_CLOCK.reset()
        t0 = time.perf_counter()
        try:
            compute(spec, task, checkpoint_seconds=checkpoint_seconds)
        except Exception as err:  # noqa: BLE001 - recorded per task with its traceback; the study goes on
            if interrupt.is_interrupt(err):
                # a Ctrl-C inside a numba call: stop the study as one in Python code does (the
                # record stays "running", so a rerun runs the task again), not a failure to retry
                raise KeyboardInterrupt from err
            error, seconds = traceback.format_exc(), time.perf_counter() - t0
            manifest.finish(out, record, "failed", seconds, error, io_time=IO_CLOCK.seconds)
            continue
        seconds = time.perf_counter() - t0
        manifest.finish(out, record, "done", seconds, io_time=IO_CLOCK.seconds)
        return TaskOutcome(task.key, task.kind, "done", seconds, record.attempts, "")
    return TaskOutcome(task.key, task.kind, "failed", seconds, record.attempts, error)


def warm_numba(spec: StudySpec) -> None:
    """Compile the kernels ``spec``'s tasks use, in this process, so worker processes load them
    from numba's cache instead of compiling them all at once (see the module docstring)."""
    from dilution.training import init_state, iterate

    from .convergence import held_out_metric
    from .data import load_data
    from .evaluate import evaluate

    data = load_data(spec.data)
    tiny = replace(spec.training, max_epochs=1)
    state = init_state((data.train.shape[1], min(spec.n_hidden)), data.train, tiny.config(), seed=0)
    for state in iterate(state, data.train, until=min(2, state.plan.total_steps)):
        pass
    held_out_metric(state.model, data.validation[:10], spec.stopping.metric)
    likelihood_only = replace(spec.evaluation, ais_chains=2, ais_betas=10, metrics=())
    evaluate(likelihood_only, state.model, data._replace(test=data.test[:10]), 0)


def local_client(n_workers: int):
    """A ``dask.distributed`` client of a local cluster of ``n_workers`` single-threaded processes
    (:data:`SINGLE_THREAD_ENV` set in each worker: see the module docstring)."""
    import dask
    from distributed import Client, LocalCluster

    saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    blas = {name: value for name, value in SINGLE_THREAD_ENV.items() if name != "NUMBA_NUM_THREADS"}
    numba_env = {"NUMBA_NUM_THREADS": SINGLE_THREAD_ENV["NUMBA_NUM_THREADS"]}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": blas, "distributed.nanny.environ": numba_env}):
        # silence_logs: the nannies' shutdown chatter ("still alive after 4.0 seconds, killing")
        # is not the user's business; errors still print
        # dashboard_address ":0", not None: with None the scheduler still binds its HTTP server to
        # port 8787 and warns "Port 8787 is already in use" when a second study runs beside the first
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    # The nannies run in this process and set the (BLAS) pre-spawn environment here too: undo it,
    # so that a subprocess this process starts later does not inherit single-threaded BLAS.
    _restore_environ(saved)
    client = Client(cluster)
    client.dilution_saved_environ = saved
    return client


def _restore_environ(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def study_client(workers: int | None = None, scheduler: str | None = None, warm=()):
    """The executor of ``dilution study run`` and ``dilution reproduce``, closed on exit: None
    (serial), a :func:`local_client` of ``workers`` processes (numba warmed here first for every
    spec in ``warm``), or a client of the running scheduler at ``scheduler``."""
    client = None
    if workers is not None:
        for spec in warm:
            warm_numba(spec)
        client = local_client(workers)
    elif scheduler is not None:
        from distributed import Client

        client = Client(scheduler)
    try:
        yield client
    finally:
        if client is not None:
            close_client(client)


def serial_interrupt(client):
    """The context a study command runs in with ``client`` (from :func:`study_client`): with tasks
    in this process (no client) a Ctrl-C waits for the update or AIS chunk in flight
    (:mod:`dilution.interrupt`), not a kernel call, where it could crash the process. With dask
    workers the tasks run in worker threads that never get the signal, and the wait is plain Python."""
    return interrupt.deferred() if client is None else contextlib.nullcontext()


@contextlib.contextmanager
def resume_hint(output: str | Path, finished: Callable[[], int] | None = None):
    """Turn a Ctrl-C (or numba's wrapping of one) in a study command into a ``KeyboardInterrupt``
    whose message says what is kept and how to continue: the finished tasks (``finished()`` of them in
    this run, when given) and each running task's last checkpoint stay in ``output``, and the same
    command continues from them."""
    try:
        yield
    except (KeyboardInterrupt, SystemError) as err:
        if not interrupt.is_interrupt(err):
            raise
        n = None if finished is None else finished()
        done = "the finished tasks" if n is None else f"the {n} task{'' if n == 1 else 's'} finished in this run"
        raise KeyboardInterrupt(f"{done} and the last checkpoint of each running task are kept in {output}; run "
                                "the same command again to continue") from None


def close_client(client) -> None:
    """Close a study's client; for one made by :func:`local_client`, also its cluster, and undo the
    environment its nannies set in this process (again: a restarted worker sets it anew)."""
    saved = getattr(client, "dilution_saved_environ", None)
    cluster = client.cluster if saved is not None else None
    client.close()
    if cluster is not None:
        cluster.close()
    if saved is not None:
        _restore_environ(saved)


def run_study(
    spec: StudySpec,
    *,
    client: Any = None,
    retries: int = 2,
    checkpoint_seconds: float = 60.0,
    report: Callable[[TaskOutcome, int, int], None] | None = None,
) -> StudyRun:
    """Run the unfinished tasks of ``spec`` and merge every finished point into ``<output>/study.nc``.

    Parameters
    ----------
    spec : StudySpec
    client : dask.distributed.Client, optional
        Run the tasks on its cluster (default: serially in this process). Call
        :func:`warm_numba` before starting the cluster's workers.
    retries : int
        Attempts after a failed one, per task and run.
    checkpoint_seconds : float
        Passed to :func:`studies.point.compute`.
    report : callable, optional
        ``report(outcome, n_finished, n_tasks)`` after each task.

    Returns
    -------
    StudyRun
        With ``[refine]``, of the refined spec (:func:`studies.refine.refined_spec`), after every
        round; ``outcomes`` of every round.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    if isinstance(checkpoint_seconds, bool) or not isinstance(checkpoint_seconds, (int, float)) \
            or not checkpoint_seconds >= 0:
        raise ValueError(f"checkpoint_seconds must be a number of seconds >= 0, got {checkpoint_seconds!r}")
    out = Path(spec.output)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    current = refined_spec(spec)
    outcomes: dict[str, TaskOutcome] = {}
    while True:
        for outcome in _run_graph(current, client, retries, checkpoint_seconds, report):
            # a later round skips what an earlier one did: keep the earlier outcome
            if outcome.key not in outcomes or outcome.status != "skipped":
                outcomes[outcome.key] = outcome
        study = merge(current)
        if spec.refine is None:
            break
        budget = spec.refine.max_points - (len(current.pruning_fractions) - len(spec.pruning_fractions))
        new = next_fractions(current, study, budget)
        if not new:
            break
        current = replace(current, pruning_fractions=tuple(sorted(current.pruning_fractions + new)))
        save_refined(spec, current)
    path = io.save(study, out / "study.nc")
    return StudyRun(study, path, tuple(outcomes.values()))


def _run_graph(spec: StudySpec, client: Any, retries: int, checkpoint_seconds: float, report) -> list[TaskOutcome]:
    out = Path(spec.output)
    graph = build_graph(spec)
    outcomes: dict[str, TaskOutcome] = {}

    def note(outcome: TaskOutcome) -> None:
        outcomes[outcome.key] = outcome
        if report is not None:
            report(outcome, len(outcomes), len(graph.tasks))

    if client is None:
        for task in graph.tasks.values():
            interrupt.check()  # under dilution.interrupt.deferred (the CLI's serial run), a Ctrl-C stops here
            note(execute(spec, task, retries, checkpoint_seconds, *(outcomes[d] for d in task.depends)))
    else:
        from distributed import as_completed

        submitted: dict[str, Any] = {}
        for task in graph.tasks.values():
            if manifest.is_finished(out, task):
                note(execute(spec, task, retries, checkpoint_seconds))
                continue
            args = [submitted.get(d, outcomes.get(d)) for d in task.depends]
            submitted[task.key] = client.submit(execute, spec, task, retries, checkpoint_seconds, *args,
                                                key=f"{task.key}-{uuid.uuid4().hex[:8]}", pure=False)
        keys = {future.key: key for key, future in submitted.items()}
        for future in as_completed(list(submitted.values())):
            key = keys[future.key]
            try:
                note(future.result())
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker after too many worker deaths
                task = graph.tasks[key]
                note(TaskOutcome(key, task.kind, "failed", 0.0, manifest.read_record(out, task).attempts,
                                 f"{type(err).__name__}: {err}"))
    return [outcomes[k] for k in graph.tasks]


class StudyStatus(NamedTuple):
    """Result of :func:`study_status`.

    Attributes
    ----------
    done, failed, pending : tuple of str
        Task keys; ``pending`` includes running tasks and tasks never started.
    mean_seconds : float
        Mean wall time of the finished tasks' last attempts (NaN when none).
    eta_seconds : float
        ``len(pending + failed) * mean_seconds``: the remaining time on one worker.
    errors : dict of str to str
        The last error of each failed task.
    """

    done: tuple
    failed: tuple
    pending: tuple
    mean_seconds: float
    eta_seconds: float
    errors: dict


def study_status(spec: StudySpec) -> StudyStatus:
    """Done / failed / pending tasks of ``spec`` (refined, :func:`studies.refine.refined_spec`) from
    its files and manifest, and an ETA."""
    spec = refined_spec(spec)
    done, failed, pending, errors, walls = [], [], [], {}, []
    for task in build_graph(spec).tasks.values():
        record = manifest.read_record(spec.output, task)
        if manifest.is_finished(spec.output, task):
            done.append(task.key)
            if record.status == "done":
                walls.append(record.wall_time)
        elif record.status == "failed":
            failed.append(task.key)
            errors[task.key] = record.error
        else:
            pending.append(task.key)
    mean = sum(walls) / len(walls) if walls else float("nan")
    return StudyStatus(tuple(done), tuple(failed), tuple(pending), mean, (len(pending) + len(failed)) * mean, errors)
