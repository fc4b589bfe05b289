"""The runner: the smoke study end to end through ``dilution study run``, a rerun that skips
everything, status and merge, the same study.nc from the serial executor and from two dask
workers, a dask worker killed in the middle of a task, and a Ctrl-C inside a numba call."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from dilution import io
from dilution.cli import main
from studies.builtin import builtin_spec
from studies.point import KILL_ONCE_ENV
from studies.runner import run_study
from studies.spec import DIMS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _values(ds):
    """Every data variable and coordinate except wall times (not reproducible)."""
    return {name: ds[name].values for name in ds.variables if name != "train_time"}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("serial"))
    assert main(["study", "run", "smoke", "--output", out, "--quiet"]) == 0
    return builtin_spec("smoke", output=out)


def test_smoke_study_runs_and_a_rerun_skips_everything(serial, capsys):
    spec = serial
    study = io.load_dataset(f"{spec.output}/study.nc")
    assert study["test_log_likelihood"].dims == DIMS
    assert dict(study.sizes) == {"protocol": 2, "pruning_time": 2, "pruning_fraction": 3, "n_hidden": 1, "seed": 2}
    assert list(study["pruning_time"].values) == ["0", "20"]
    # init has only time "0", after only "20": the other cells are not in the grid
    np.testing.assert_array_equal(study["planned"].sel(protocol="init").values.any(axis=(1, 2, 3)), [True, False])
    assert (study["finished"] == study["planned"]).all()
    planned = study["planned"].values
    assert (study["epochs_used"].values[planned] <= spec.training.max_epochs + 20).all()
    np.testing.assert_array_equal(study["pruned_at_epoch"].sel(protocol="after", pruning_time="20"),
                                  [[[-1, -1]], [[20, 20]], [[20, 20]]])
    assert study.attrs["spec"] == spec.to_json() and "dilution_version" in study.attrs
    # pruning fraction 0 under either protocol is the same dense run
    np.testing.assert_array_equal(study["test_log_likelihood"].sel(protocol="init", pruning_time="0",
                                                                   pruning_fraction=0.0),
                                  study["test_log_likelihood"].sel(protocol="after", pruning_time="20",
                                                                   pruning_fraction=0.0))
    sparse = study.sel(pruning_fraction=0.8)
    np.testing.assert_allclose(sparse["connectivity"].values[sparse["planned"].values], round(0.2 * 96) / 96)
    capsys.readouterr()
    assert main(["study", "run", "smoke", "--output", spec.output, "--quiet"]) == 0
    assert "0 tasks run, 12 skipped, 0 failed; 12/12 points finished" in capsys.readouterr().out
    rerun = io.load_dataset(f"{spec.output}/study.nc")
    for name, value in _values(study).items():
        np.testing.assert_array_equal(rerun[name].values, value, err_msg=name)
    assert main(["study", "status", "smoke", "--output", spec.output]) == 0
    assert "12/12 tasks done, 0 failed, 0 pending" in capsys.readouterr().out
    merged = spec.output + "/merged.nc"
    assert main(["study", "merge", "smoke", "--output", spec.output, "-o", merged]) == 0
    for name, value in _values(study).items():
        np.testing.assert_array_equal(io.load_dataset(merged)[name].values, value, err_msg=name)


def _numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def test_two_dask_workers_give_the_serial_study(serial, tmp_path):
    from studies.runner import local_client

    reference = f"{serial.output}/study.nc"
    spec = builtin_spec("smoke", output=str(tmp_path / "dask"))
    with local_client(2) as client:
        result = run_study(spec, client=client)
        threads = client.run(_numba_threads)
        client.cluster.close()
    assert list(threads.values()) == [1, 1]  # set before numba was imported in each worker
    assert result.count("done") == 12
    ours, theirs = io.load_dataset(result.path), io.load_dataset(reference)
    for name, value in _values(theirs).items():
        np.testing.assert_array_equal(ours[name].values, value, err_msg=name)


def test_a_worker_killed_in_a_task_gets_it_retried_with_the_identical_result(serial, tmp_path, monkeypatch):
    from studies.runner import local_client

    # The first task to write a result kills its own worker process (SIGKILL, nothing cleaned
    # up); the nanny starts a new worker and dask reruns the task there.
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    spec = builtin_spec("smoke", output=str(tmp_path / "dask"))
    with local_client(2) as client:
        result = run_study(spec, client=client)
        client.cluster.close()
    assert marker.exists()
    assert result.count("done") == 12 and result.count("failed") == 0
    attempts = [json.loads(p.read_text())["attempts"] for p in (tmp_path / "dask" / "manifest").glob("*.json")]
    assert sorted(attempts) == [1] * 11 + [2]
    ours, theirs = io.load_dataset(result.path), io.load_dataset(f"{serial.output}/study.nc")
    for name, value in _values(theirs).items():
        np.testing.assert_array_equal(ours[name].values, value, err_msg=name)


def test_malformed_spec_fails_before_any_compute(tmp_path, capsys):
    from studies.builtin import BUILTIN

    (tmp_path / "bad.toml").write_text(BUILTIN["smoke"].toml.replace("[0.0, 0.5, 0.8]", "[0.0, 1.5]"))
    assert main(["study", "run", str(tmp_path / "bad.toml")]) != 0
    assert "pruning_fractions[1]: expected a fraction in [0, 1), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags, message", [
    # the first two were ignored without --report, the third saved at every update
    (["--figures", "f"], "--figures set up the report: add --report"),
    (["--axis", "log-remaining"], "--axis set up the report: add --report"),
    (["--checkpoint-seconds", "-1"], "--checkpoint-seconds must be a number of seconds >= 0, got -1.0"),
])
def test_study_run_flags_that_would_do_nothing_or_harm_are_refused_before_any_compute(flags, message, tmp_path,
                                                                                     capsys):
    assert main(["study", "run", "smoke", "--output", str(tmp_path / "out"), "--quiet", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _raise_numba_interrupt(chained: str) -> None:
    """What numba's dispatcher raises when a Ctrl-C lands while it boxes a kernel's result."""
    message = "CPUDispatcher(<function _gibbs_sweep at 0x7f>) returned a result with an exception set"
    if chained == "cause":
        raise SystemError(message) from KeyboardInterrupt()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise SystemError(message)  # noqa: B904 - its __context__ is the interrupt, as numba's


@pytest.mark.parametrize("chained", ["cause", "context"])
def test_a_ctrl_c_inside_a_numba_call_stops_the_study_instead_of_failing_the_task(chained, tmp_path, monkeypatch):
    calls = []

    def interrupted(spec, task, checkpoint_seconds):
        calls.append(task.key)
        _raise_numba_interrupt(chained)

    monkeypatch.setattr("studies.runner.compute", interrupted)
    spec = builtin_spec("smoke", output=str(tmp_path / "out"))
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, retries=2)
    assert len(calls) == 1  # neither retried nor followed by the next task
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "manifest").glob("*.json")]
    # left as a Ctrl-C in Python code leaves it: running, so a rerun runs it again
    assert [(r["status"], r["attempts"]) for r in records] == [("running", 1)]


def test_study_run_interrupted_inside_a_numba_call_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(spec, task, checkpoint_seconds):
        _raise_numba_interrupt("cause")

    monkeypatch.setattr("studies.runner.compute", interrupted)
    assert main(["study", "run", "smoke", "--output", str(tmp_path / "out"), "--retries", "0"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().endswith(
        f"dilution study: interrupted; the 0 tasks finished in this run and the last checkpoint of each running task "
        f"are kept in {tmp_path / 'out'}; run the same command again to continue")
    assert "failed" not in captured.out and not (tmp_path / "out" / "study.nc").exists()


def test_an_interrupted_study_run_says_how_many_tasks_it_finished_and_how_to_continue(tmp_path, monkeypatch, capsys):
    from studies import runner

    real = runner.compute
    calls = []

    def second_interrupted(spec, task, checkpoint_seconds):
        calls.append(task.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec, task, checkpoint_seconds=checkpoint_seconds)

    monkeypatch.setattr("studies.runner.compute", second_interrupted)
    monkeypatch.setattr("studies.cost.estimate_cost", lambda *args, **kwargs: None)
    monkeypatch.setattr("studies.cost.format_cost", lambda cost: "cost: not estimated in this test")
    out = tmp_path / "out"
    assert main(["study", "run", "smoke", "--output", str(out)]) == 130
    captured = capsys.readouterr()
    assert captured.out.count(": done (") == 2
    assert captured.err.strip().endswith(
        f"dilution study: interrupted; the 2 tasks finished in this run and the last checkpoint of each running task "
        f"are kept in {out}; run the same command again to continue")
    records = [json.loads(p.read_text()) for p in (out / "manifest").glob("*.json")]
    assert sorted(r["status"] for r in records) == ["done", "done", "running"]


def test_a_serial_study_run_stops_on_ctrl_c_between_two_updates(tmp_path, monkeypatch, capsys, ctrl_c_inside):
    # the signal landing inside a kernel could crash the process; now the update in flight finishes and
    # the study stops at the next one (exit 130), its task left to be run again, not failed
    import dilution.training as training

    # the cost estimate's probe updates run before the study (outside the deferred Ctrl-C)
    monkeypatch.setattr("studies.cost.estimate_cost", lambda *args, **kwargs: None)
    monkeypatch.setattr("studies.cost.format_cost", lambda cost: "cost: not estimated in this test")
    finished = ctrl_c_inside(training, "train_step")
    out = tmp_path / "out"
    assert main(["study", "run", "smoke", "--output", str(out), "--quiet"]) == 130
    assert len(finished) == 1  # the update in flight, and no other
    records = [json.loads(p.read_text()) for p in (out / "manifest").glob("*.json")]
    assert [(r["status"], r["attempts"]) for r in records] == [("running", 1)]
    assert capsys.readouterr().err.strip().endswith(
        f"dilution study: interrupted; the 0 tasks finished in this run and the last checkpoint of each running task "
        f"are kept in {out}; run the same command again to continue")


def test_a_ctrl_c_in_the_cost_estimate_waits_for_its_update_and_stops_before_any_task(tmp_path, capsys,
                                                                                    ctrl_c_inside):
    # the estimate's probe updates ran outside the deferred Ctrl-C: the signal raised at once, inside
    # the update (in a kernel it could crash the process); now the update finishes and the study stops
    import dilution.training as training

    finished = ctrl_c_inside(training, "train_step")
    out = tmp_path / "out"
    assert main(["study", "run", "smoke", "--output", str(out), "--quiet"]) == 130
    assert len(finished) == 1
    assert not (out / "manifest").exists() or not list((out / "manifest").glob("*.json"))
    assert capsys.readouterr().err.strip().endswith(
        f"dilution study: interrupted; the 0 tasks finished in this run and the last checkpoint of each running task "
        f"are kept in {out}; run the same command again to continue")

def test_run_study_checks_checkpoint_seconds(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_seconds must be a number of seconds >= 0, got -5"):
        run_study(replace(builtin_spec("smoke"), output=str(tmp_path / "out")), checkpoint_seconds=-5)
    assert not (tmp_path / "out").exists()


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    """The nannies run in this process and set their pre-spawn environment here too; numba re-reads
    NUMBA_NUM_THREADS at every compilation, so the report compiled after a study crashed with
    'Cannot set NUMBA_NUM_THREADS to a different value once the threads have been launched' (a
    fresh clone's `dilution study run quick --workers 2 --report`, 2026-12-02). The variables are
    restored once the workers are spawned and again when the client is closed."""
    import os

    from studies.runner import SINGLE_THREAD_ENV, close_client, local_client

    before = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    client = local_client(1)
    try:
        assert {name: os.environ.get(name) for name in SINGLE_THREAD_ENV} == before
        assert client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")) == {w: "1" for w in client.run(lambda: 0)}
    finally:
        close_client(client)
    assert {name: os.environ.get(name) for name in SINGLE_THREAD_ENV} == before


def test_a_restarted_worker_is_single_threaded_and_leaves_this_process_numba_alone():
    """A nanny that restarts a dead worker sets its pre-spawn environment in this process again,
    mid-study. With NUMBA_NUM_THREADS among it, this process's numba threads (launched by the
    merge during the study) started with 1 and the report compiled after close_client (which
    restores the variable) crashed ('Cannot set NUMBA_NUM_THREADS to a different value once the
    threads have been launched'; seen when the killed-worker test ran before the analysis tests).
    The workers set it themselves now: this process never sees it, a restarted worker still has it."""
    import os

    from studies.runner import close_client, local_client

    def worker_threads():
        import numba

        return os.environ.get("NUMBA_NUM_THREADS"), numba.config.NUMBA_NUM_THREADS

    before = os.environ.get("NUMBA_NUM_THREADS")
    client = local_client(1)
    try:
        assert list(client.run(worker_threads).values()) == [("1", 1)]
        client.restart()
        assert os.environ.get("NUMBA_NUM_THREADS") == before
        assert list(client.run(worker_threads).values()) == [("1", 1)]
    finally:
        close_client(client)
    assert os.environ.get("NUMBA_NUM_THREADS") == before


def test_a_task_file_written_in_a_worker_takes_no_scheduler_lock(tmp_path):
    """Dataset.to_netcdf inside a dask.distributed worker guards the file with a distributed.Lock,
    a round trip to the scheduler each of the ~100 times one write takes it: 127 ms against 7 ms
    for a small file, 8-10 % of the quick study's compute. dilution.io.save takes none."""
    from studies.runner import close_client, local_client

    # defined here, so that the worker gets it by value (it cannot import this test module)
    def save_counting_distributed_locks(path: str) -> int:
        import distributed
        import xarray as xr

        import dilution.io as dio

        taken = []
        acquire = distributed.Lock.acquire

        def counting(self, *args, **kwargs):
            taken.append(self.name)
            return acquire(self, *args, **kwargs)

        distributed.Lock.acquire = counting
        try:
            dio.save(xr.Dataset({f"v{i}": ((), float(i)) for i in range(5)}), path)
        finally:
            distributed.Lock.acquire = acquire
        return len(taken)

    client = local_client(1)
    try:
        taken = client.submit(save_counting_distributed_locks, str(tmp_path / "x.nc"), pure=False).result()
    finally:
        close_client(client)
    assert taken == 0
    assert float(io.load_dataset(tmp_path / "x.nc")["v4"]) == 4.0


def test_two_local_clusters_at_once_start_without_a_port_warning():
    """With ``dashboard_address=None`` the scheduler still bound its HTTP server to port 8787, and a
    second study on the same machine printed "Port 8787 is already in use" (seen 2026-12-02)."""
    import warnings

    from studies.runner import close_client, local_client

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = local_client(1)
        try:
            close_client(local_client(1))
        finally:
            close_client(first)
    assert not [str(w.message) for w in caught if "already in use" in str(w.message)]
