"""The manifest of a study: one small JSON file per task, ``<output>/manifest/<key>.json``.

A record says the task's status (``running``, ``done`` or ``failed``; no file: ``pending``), how
many attempts it took in total across runs, the wall time of the last attempt and the part of it
spent reading and writing task files (``io_time``), the host and
process that ran it, and the error (traceback) of a failed attempt. One file per task, written
atomically (:func:`dilution.io.atomic_write`): workers on several machines write their own
tasks' records without sharing a file, and a kill leaves every record whole.

The task's files are the truth, the manifest the bookkeeping: :func:`is_finished` checks the
files (present, readable, holding the task's key), so a task killed after its result was
renamed into place but before its record said ``done`` counts as finished, and a "done" task
whose file was truncated or deleted is pending again.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Literal, NamedTuple

from dilution.io import atomic_write

from .point import read_point, read_state_attrs, task_paths
from .tasks import Task

__all__ = ["TaskRecord", "record_path", "read_record", "write_record", "start", "finish", "is_finished"]


class TaskRecord(NamedTuple):
    """One task's manifest entry (see the module docstring)."""

    key: str
    kind: str
    status: Literal["pending", "running", "done", "failed"] = "pending"
    attempts: int = 0
    wall_time: float = 0.0
    io_time: float = 0.0
    host: str = ""
    pid: int = 0
    error: str = ""
    updated: str = ""


def record_path(out: str | Path, key: str) -> Path:
    return Path(out) / "manifest" / f"{key}.json"


def read_record(out: str | Path, task: Task) -> TaskRecord:
    """The task's record (``pending`` with no attempts when there is none or it is unreadable)."""
    try:
        raw = json.loads(record_path(out, task.key).read_text())
        return TaskRecord(**raw)
    except (OSError, ValueError, TypeError):
        return TaskRecord(task.key, task.kind)


def write_record(out: str | Path, record: TaskRecord) -> TaskRecord:
    path = record_path(out, record.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = record._replace(updated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(record._asdict(), indent=1))
    return record


def start(out: str | Path, task: Task) -> TaskRecord:
    """Record the start of an attempt (``running``, one more attempt, this host and process)."""
    old = read_record(out, task)
    return write_record(out, old._replace(status="running", attempts=old.attempts + 1, host=socket.gethostname(),
                                          pid=os.getpid(), error=""))


def finish(out: str | Path, record: TaskRecord, status: Literal["done", "failed"], wall_time: float,
           error: str = "", io_time: float = 0.0) -> TaskRecord:
    return write_record(out, record._replace(status=status, wall_time=float(wall_time), error=error,
                                             io_time=float(io_time)))


def is_finished(out: str | Path, task: Task) -> bool:
    """Whether every file ``task`` writes is in place, readable and holds its key."""
    paths = task_paths(out, task.key)
    if task.kind in ("dense", "converged") and read_state_attrs(paths["state"], task.key) is None:
        return False
    return task.kind == "dense" or read_point(paths["result"], task.key) is not None
