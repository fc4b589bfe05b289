"""A study killed with SIGKILL five times, the first inside a file write and the others at random
(seeded) moments of runs whose writes are slowed, then rerun: it completes, recomputes nothing
that had finished, and its merged Dataset equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from studies.point import PAUSE_ENV
from studies.runner import run_study
from studies.spec import spec_from_toml

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_TOML = """
name = "kill"
output = "{output}"
n_hidden = [3]
pruning_fractions = [0.0, 0.5, 0.8]
seeds = [0]

[data]
kind = "teacher"
n_visible = 8
n_hidden = 2
weight_scale = 2.0
n_train = 100
n_validation = 100
n_test = 100

[training]
estimator = "pcd"
n_chains = 20
batch_size = 25
learning_rate = 0.05
weight_scale = 0.3
max_epochs = 10

[stopping]
every = 1
window = 2
tolerance = 0.01
min_epochs = 3

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epochs = [2, "converged"]
"""
# A result or state file being written: the temporary file dilution.io.atomic_write renames.
_WRITING = re.compile(r"^\.(?P<target>.+\.nc)\.[0-9a-f]{12}\.tmp$")


def _finished(out: Path) -> dict:
    """Every finished task's files -> (mtime, inode), and every done task's attempts.

    A ``converged`` task writes its state file, then its result: killed between the two it has
    not finished, and its rerun writes the state again. Its state counts once the result exists.
    """
    tasks = out / "tasks"
    files = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in tasks.glob("*.nc")
             if not p.name.endswith(".partial.nc")
             and not ("-converged-" in p.name and p.name.endswith(".state.nc")
                      and not (tasks / p.name.replace(".state.nc", ".nc")).exists())}
    done = {}
    for p in (out / "manifest").glob("*.json"):
        record = json.loads(p.read_text())
        if record["status"] == "done":
            done[record["key"]] = record["attempts"]
    return {"files": files, "done": done}


def _wait_for(predicate, proc, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.005)
    return None


def test_sigkill_at_five_moments_then_rerun(tmp_path):
    reference = run_study(spec_from_toml(_TOML.format(output=tmp_path / "reference"))).study
    out = tmp_path / "killed"
    spec_file = tmp_path / "kill.toml"
    spec_file.write_text(_TOML.format(output=out))
    command = [sys.executable, "-m", "dilution.cli", "study", "run", str(spec_file), "--quiet",
               "--checkpoint-seconds", "0"]
    rng = np.random.default_rng(20261202)
    seen: dict = {"files": {}, "done": {}}
    kills = 0
    for i in range(5):
        # The first run is killed inside a result write (a 1 s pause holds the write open). Every
        # write of the others takes 0.4 s (a slow disk): the study's compute is ~0.3 s, and with
        # fast writes it finished before the kills that should land in its work.
        during_write = i == 0
        env = dict(os.environ, **{PAUSE_ENV: "1" if during_write else "0.4"})
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if during_write:
            def writing():
                return next((m for p in (out / "tasks").glob(".*.tmp") if (m := _WRITING.match(p.name))
                             and not m["target"].endswith(".partial.nc")), None)

            match = _wait_for(writing, proc)
            assert match is not None, "the run ended before a result write was caught"
        else:
            # a random moment after the run has started a task (before that a kill tests nothing)
            _wait_for(lambda: any((out / "manifest").glob("*.json")) or None, proc)
            time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if during_write:
            assert not (out / "tasks" / match["target"]).exists(), "the kill did not land inside the write"
        now = _finished(out)
        for name, stamp in seen["files"].items():
            assert now["files"].get(name) == stamp, f"{name} was rewritten after it had finished"
        for key, attempts in seen["done"].items():
            assert now["done"].get(key) == attempts, f"{key} was recomputed after it had finished"
        seen = {"files": {**now["files"], **seen["files"]}, "done": {**now["done"], **seen["done"]}}
    assert kills >= 3  # the study outlived most kills: they landed in its work
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    assert not list((out / "tasks").glob("*.tmp"))  # the killed writes' temporary files were cleared
    final = _finished(out)
    for name, stamp in seen["files"].items():
        assert final["files"][name] == stamp, f"{name} was rewritten after it had finished"
    for key, attempts in seen["done"].items():
        assert final["done"][key] == attempts, f"{key} was recomputed after it had finished"
    from dilution import io

    merged = io.load_dataset(out / "study.nc")
    assert merged["finished"].values.sum() == merged["planned"].values.sum()
    for name in reference.variables:
        if name != "train_time":
            np.testing.assert_array_equal(merged[name].values, reference[name].values, err_msg=name)
