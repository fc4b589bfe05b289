"""How long a study will take: measured per-update and per-evaluation times times the work of its task graph.

:func:`estimate_cost` times, for every ``n_hidden`` of the spec, a few training updates of a fresh
model on the study's data, one held-out evaluation of the stopping rule, the final evaluation
of a point (AIS, with its reverse run and RAISE when the evaluation asks for them, and the
sampling metrics, each timed on a short run and scaled to its budget) and the saving of a
training state (every task writes files), then counts the work of the task
graph (:func:`studies.tasks.build_graph`): every run trains at least until the stopping rule
can first fire (``window * every`` epochs after its pruning epoch and not before epoch
``min_epochs``: ``low``) and at most ``training.max_epochs`` (``high``). The estimate is their
geometric mean, divided among the workers; a study whose grid points all train to
``max_epochs`` takes ``high``. A fresh run by default; with ``remaining=True`` only the tasks not yet
finished in the output folder (what `dilution study run` prints before a rerun).
Times are wall-clock times of this machine as loaded now.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import NamedTuple

import numpy as np

from .spec import StudySpec

__all__ = ["CostEstimate", "estimate_cost", "format_cost"]

# Timing probes: short enough to cost a fraction of a second per model size.
_PROBE_UPDATES = 20
_PROBE_BETAS = 101
_PROBE_SWEEPS = 10
# analysis.classifier's documented training time (6 Adam epochs on the 60,000 MNIST images).
_CLASSIFIER_SECONDS = 90.0


class CostEstimate(NamedTuple):
    """Output of :func:`estimate_cost` (all times in seconds).

    Attributes
    ----------
    seconds : float
        The estimate: ``sqrt(low * high)``.
    low, high : float
        Wall time if every run stops as early as the stopping rule allows / trains to ``max_epochs``.
    workers : int
        The work is divided among this many workers.
    per_update, per_evaluation, per_point_evaluation, per_task : dict of int to float
        Measured per ``n_hidden`` that has tasks to run: one training update, one held-out evaluation of the stopping
        rule, the final evaluation of one point, the files of one task (two saves of a training
        state: its checkpoint or dependency state and its result).
    n_tasks : int
        Tasks estimated (with ``remaining=True``: those not finished yet).
    total_tasks : int
        Tasks of the study's graph.
    """

    seconds: float
    low: float
    high: float
    workers: int
    per_update: dict
    per_evaluation: dict
    per_point_evaluation: dict
    per_task: dict
    n_tasks: int
    total_tasks: int = 0


def _timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def _save_time(state) -> float:
    import tempfile
    from pathlib import Path

    from dilution import io

    with tempfile.TemporaryDirectory() as folder:
        return _timed(io.save, state, Path(folder) / "state.nc")


def _update_time(spec: StudySpec, train: np.ndarray, n_hidden: int, seed: int) -> tuple[float, object]:
    from dilution.training import init_state, iterate

    state = init_state((train.shape[1], n_hidden), train, spec.training.config(), seed=seed)
    for state in iterate(state, train, until=3):  # compiles the kernels before the clock starts
        pass
    t0 = time.perf_counter()
    for state in iterate(state, train, until=3 + _PROBE_UPDATES):
        pass
    return (time.perf_counter() - t0) / _PROBE_UPDATES, state


def _point_evaluation_time(spec: StudySpec, rbm, data, seed: int) -> float:
    from dilution import gibbs

    ev = spec.evaluation
    if ev.log_likelihood == "exact":
        from analysis.likelihood import exact_log_likelihood

        total = _timed(exact_log_likelihood, rbm, data.test)
    else:
        from analysis.likelihood import ais_log_likelihood
        from dilution.ais import REVERSE_BURN_IN, DegenerateWeightsWarning, raise_log_likelihood
        from dilution.schedules import linear

        def ais(n_betas):
            with warnings.catch_warnings():  # so short a schedule is degenerate; only its time is used
                warnings.simplefilter("ignore", DegenerateWeightsWarning)
                return _timed(ais_log_likelihood, rbm, data.test, n_chains=ev.ais_chains, seed=seed,
                              betas=linear(n_betas), base_data=data.train, reverse=False, progress=False)

        ais(3)  # compiles
        forward = ais(_PROBE_BETAS) * (ev.ais_betas - 1) / (_PROBE_BETAS - 1)
        total = forward
        if ev.ais_reverse:  # as many reverse chains over the same betas, after the reverse burn-in sweeps
            state = gibbs.init_state(rbm, ev.ais_chains, seed=seed)
            gibbs.advance(rbm, state, 1, progress=False)
            sweep = _timed(gibbs.advance, rbm, state, _PROBE_SWEEPS, progress=False) / _PROBE_SWEEPS
            total += forward + sweep * REVERSE_BURN_IN
        if ev.ais_raise:  # ais_raise chains from each test image: timed on at most ais_chains images, scaled
            rows = data.test[: min(len(data.test), ev.ais_chains)]

            def raised(n_betas, x):
                return _timed(raise_log_likelihood, rbm, x, base_data=data.train, seed=seed, betas=linear(n_betas),
                              chains_per_row=ev.ais_raise, progress=False)

            raised(3, rows[:2])  # compiles
            total += raised(_PROBE_BETAS, rows) * (ev.ais_betas - 1) / (_PROBE_BETAS - 1) * len(data.test) / len(rows)
    wanted = set(ev.metrics)
    if wanted & {"classifier", "moments", "aats"}:
        gibbs.sample(rbm, ev.n_samples, 1, seed=seed, progress=False)
        sweep = _timed(gibbs.sample, rbm, ev.n_samples, _PROBE_SWEEPS, seed=seed, progress=False) / _PROBE_SWEEPS
        total += sweep * ev.n_sweeps
    if "mixing" in wanted:
        state = gibbs.init_state(rbm, ev.mixing_chains, seed=seed)
        gibbs.advance(rbm, state, 1, progress=False)
        t0 = time.perf_counter()
        for _ in range(_PROBE_SWEEPS):
            state = gibbs.advance(rbm, state, 1, progress=False)
        total += (time.perf_counter() - t0) / _PROBE_SWEEPS * (ev.mixing_burn_in + ev.mixing_sweeps)
    if "couplings" in wanted:
        from analysis.ising import ising_parameters

        total += _timed(ising_parameters, rbm)
    return total


def estimate_cost(spec: StudySpec, *, workers: int = 1, remaining: bool = False) -> CostEstimate:
    """Estimated wall time of running ``spec`` on ``workers`` workers (see the module docstring).

    Parameters
    ----------
    spec : StudySpec
    workers : int
        Parallel workers (each single-threaded); the work is assumed to divide evenly.
    remaining : bool
        Count only the tasks whose files in ``spec.output`` are not finished
        (:func:`studies.manifest.is_finished`): what a rerun still has to do. Default: a fresh run.

    Returns
    -------
    CostEstimate
    """
    from . import manifest
    from .convergence import held_out_metric
    from .data import load_data
    from .tasks import build_graph

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    data = load_data(spec.data)
    tr, st = spec.training, spec.stopping
    graph = build_graph(spec)
    todo = [t for t in graph.tasks.values() if not (remaining and manifest.is_finished(spec.output, t))]
    per_update, per_evaluation, per_point, per_task = {}, {}, {}, {}
    for h in sorted({t.n_hidden for t in todo}):  # timing probes only where work is left
        per_update[h], state = _update_time(spec, data.train, h, seed=0)
        _save_time(state)  # the first save imports and opens the netCDF machinery
        per_task[h] = 2 * _save_time(state)
        held_out_metric(state.model, data.validation[:2], st.metric)  # compiles
        per_evaluation[h] = _timed(held_out_metric, state.model, data.validation, st.metric)
        per_point[h] = _point_evaluation_time(spec, state.model, data, seed=0)
    updates_per_epoch = math.ceil(data.train.shape[0] / tr.batch_size)

    def epoch_cost(h: int) -> float:
        return updates_per_epoch * per_update[h] + per_evaluation[h] / st.every

    earliest = min(tr.max_epochs, max(st.min_epochs, st.window * st.every))

    def first_stop(task) -> int:
        """Fewest epochs a run can train: the rule needs ``window + 1`` evaluations from the pruning
        epoch ``t`` and an absolute epoch >= ``min_epochs`` (a scratch run starts again at 0)."""
        if task.kind == "converged" or not task.depends or spec.protocol(task.point.protocol).kind == "scratch":
            return earliest
        start = graph.tasks[task.depends[0]]
        t = start.until if start.kind == "dense" else earliest
        return min(tr.max_epochs, max(st.min_epochs - t, st.window * st.every))
    low = high = 0.0
    for task in todo:
        h = task.n_hidden
        low += per_task[h]
        high += per_task[h]
        if task.kind == "dense":
            before = sum(graph.tasks[k].until for k in task.depends)
            fixed = (task.until - before) * updates_per_epoch * per_update[h]
            low += fixed
            high += fixed
            continue
        low += first_stop(task) * epoch_cost(h) + per_point[h]
        high += tr.max_epochs * epoch_cost(h) + per_point[h]
    if "classifier" in spec.evaluation.metrics and todo:
        low += _CLASSIFIER_SECONDS
        high += _CLASSIFIER_SECONDS
    low, high = low / workers, high / workers
    return CostEstimate(math.sqrt(low * high), low, high, workers, per_update, per_evaluation, per_point, per_task,
                        len(todo), len(graph.tasks))


def format_cost(estimate: CostEstimate) -> str:
    """One line for the command line, e.g. ``estimated cost: 6.2 min (2.1 min to 18 min) on 2 workers``."""

    def span(seconds: float) -> str:
        for unit, size in (("h", 3600.0), ("min", 60.0)):
            if seconds >= size:
                return f"{seconds / size:.2g} {unit}"
        return f"{seconds:.2g} s"

    n, total = estimate.n_tasks, estimate.total_tasks
    if not n:
        return f"estimated cost: nothing to run (all {total} tasks finished)"
    noun = "task" if n == 1 else "tasks"
    tasks = f"the {n} unfinished {noun} of {total}" if total and total != n else f"{n} {noun}"
    return (f"estimated cost: {span(estimate.seconds)} ({span(estimate.low)} if every run stops as early as the "
            f"stopping rule allows, {span(estimate.high)} if every run trains to max_epochs) for {tasks} on "
            f"{estimate.workers} worker{'s' if estimate.workers > 1 else ''}")
