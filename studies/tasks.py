"""The task graph of a study: the work its grid points share is one task, done once.

Three kinds of task, for every ``(n_hidden, seed)`` of the grid:

* ``dense`` (``until = t``): the dense run (static full mask) up to one update before the end of
  epoch ``t``, saved as a training state. Every point pruned "after epoch t" continues from it
  with its own pruning rule, whose last dense update is the one that prunes; the dense states of
  increasing ``t`` form a chain, each starting from the one before.
* ``converged``: the dense run trained from scratch until the stopping rule fires (or to
  ``training.max_epochs``), at epoch ``T``. It saves the state one update before the end of
  epoch ``T``, from which the points pruned at ``"converged"`` continue, and its own evaluated
  result: the dense model, which is the fraction-0 point of every pruning protocol (pruning
  nothing leaves the dense run; rewinding or re-drawing an unpruned network would only restart
  it). The rewiring rules (:data:`studies.spec.RULE_KINDS`) move connections even at fraction 0,
  so their fraction-0 points are tasks of their own.
* ``point``: one grid point with a fraction > 0, depending on the dense task of its pruning
  time (and, for ``rewind`` with ``rewind_epoch > 0``, on the dense task of that epoch). The
  ``init`` kind and the kinds outside :data:`studies.spec.TIMED_KINDS` start from scratch and
  depend on nothing.

Every task's key is readable coordinates and a digest of its resolved config
(:func:`task_config`), and every task of ``(n_hidden, seed)`` runs with the same seed,
``derive_seed(seed, "studies.run", n_hidden)`` (:func:`studies.point.run_seed`), never a
function of the fraction or of the other grid values: adding grid points adds tasks and
changes no existing one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Literal, NamedTuple

from .spec import CONVERGED, RULE_KINDS, TIMED_KINDS, GridPoint, StudySpec

__all__ = ["Task", "TaskGraph", "task_config", "build_graph"]


class Task(NamedTuple):
    """One unit of work.

    Attributes
    ----------
    key : str
        Stable name (file names, manifest entries, dask keys).
    kind : "dense", "converged" or "point"
    n_hidden, seed : int
        The grid coordinates every task has (``seed`` is the replica seed).
    until : int
        ``dense``: the epoch whose last update the saved state stops before; else 0.
    point : GridPoint or None
        ``point``: the grid point it computes.
    depends : tuple of str
        Keys of the tasks whose saved states it starts from.
    """

    key: str
    kind: Literal["dense", "converged", "point"]
    n_hidden: int
    seed: int
    until: int = 0
    point: GridPoint | None = None
    depends: tuple = ()


class TaskGraph(NamedTuple):
    """The tasks of a study and where each grid point's result is.

    Attributes
    ----------
    tasks : dict of str to Task
        In a topological order (every task after the tasks it depends on).
    cells : dict of GridPoint to str
        The key of the task whose result file holds each grid point (the ``converged`` task
        for fraction 0).
    """

    tasks: dict
    cells: dict


def task_config(spec: StudySpec, kind: str, n_hidden: int, seed: int, until: int = 0) -> dict:
    """Everything that determines a ``dense`` or ``converged`` task's output, as JSON-able values.

    A dense state depends on the data and the training settings only; the converged task also
    on the stopping rule (when it stops) and the evaluation (its result).
    """
    config = {"task": kind, "data": asdict(spec.data), "training": asdict(spec.training), "n_hidden": int(n_hidden),
              "seed": int(seed)}
    if kind == "dense":
        config["until"] = int(until)
    else:
        config["stopping"] = asdict(spec.stopping)
        config["evaluation"] = asdict(spec.evaluation)
    return config


def _key(prefix: str, config: dict) -> str:
    digest = hashlib.blake2b(json.dumps(config, sort_keys=True).encode(), digest_size=6).hexdigest()
    return f"{prefix}-{digest}"


def build_graph(spec: StudySpec) -> TaskGraph:
    """The tasks of ``spec`` (see the module docstring)."""
    points = spec.points()
    def dense_at_zero(p: GridPoint) -> bool:
        return p.pruning_fraction == 0.0 and spec.protocol(p.protocol).kind not in RULE_KINDS

    pruned = [p for p in points if not dense_at_zero(p)]
    tasks: dict[str, Task] = {}
    for h in spec.n_hidden:
        for s in spec.seeds:
            mine = [p for p in pruned if p.n_hidden == h and p.seed == s]
            epochs = set()
            for p in mine:
                protocol = spec.protocol(p.protocol)
                if protocol.kind not in TIMED_KINDS:
                    continue
                if p.pruning_time != CONVERGED:
                    epochs.add(int(p.pruning_time))
                if protocol.kind == "rewind" and protocol.rewind_epoch > 0:
                    epochs.add(protocol.rewind_epoch)
            previous: tuple = ()
            for t in sorted(epochs):
                key = _key(f"dense-h{h}-s{s}-e{t}", task_config(spec, "dense", h, s, t))
                tasks[key] = Task(key, "dense", int(h), int(s), until=t, depends=previous)
                previous = (key,)
            needs_converged = any(dense_at_zero(p) or p.pruning_time == CONVERGED
                                  for p in points if p.n_hidden == h and p.seed == s)
            if needs_converged:
                key = _key(f"dense-h{h}-s{s}-converged", task_config(spec, "converged", h, s))
                tasks[key] = Task(key, "converged", int(h), int(s))
    dense = {(t.n_hidden, t.seed, t.until): t.key for t in tasks.values() if t.kind == "dense"}
    converged = {(t.n_hidden, t.seed): t.key for t in tasks.values() if t.kind == "converged"}
    cells = {}
    for p in points:
        if dense_at_zero(p):
            cells[p] = converged[(p.n_hidden, p.seed)]
            continue
        protocol = spec.protocol(p.protocol)
        depends: tuple = ()
        if protocol.kind in TIMED_KINDS:
            at = (converged[(p.n_hidden, p.seed)] if p.pruning_time == CONVERGED
                  else dense[(p.n_hidden, p.seed, int(p.pruning_time))])
            depends = (at,)
            if protocol.kind == "rewind" and protocol.rewind_epoch > 0:
                depends += (dense[(p.n_hidden, p.seed, protocol.rewind_epoch)],)
        tasks[p.key] = Task(p.key, "point", p.n_hidden, p.seed, point=p, depends=depends)
        cells[p] = p.key
    return TaskGraph(tasks, cells)
