"""A checkpointed AIS run, interrupted and resumed, returns what the uninterrupted run returns, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dilution import ais, schedules
from dilution.model import RBM

N_BETAS = 120
N_CHAINS = 12


def model(dtype=np.float64, seed: int = 3) -> RBM:
    # Strong enough weights that the resampling populations (4 chains) resample along the way (5 times in all).
    return RBM.random(60, 9, connectivity=0.5, weight_scale=3.0, bias_scale=0.5, dtype=dtype, seed=seed)


def run(rbm: RBM, **kw) -> xr.Dataset:
    options = dict(n_chains=N_CHAINS, betas=schedules.linear(N_BETAS), seed=7, reverse_burn_in=5, n_bootstrap=50,
                   progress=False)
    return ais.log_partition(rbm, **{**options, **kw})


class Counted:
    """ais_kernel, counting its calls and raising ``error`` instead of making call ``fail_at`` (1-based)."""

    def __init__(self, fail_at: int | None = None, error: type[BaseException] = KeyboardInterrupt) -> None:
        self.calls, self.fail_at, self.error = 0, fail_at, error
        self.kernel = ais.ais_kernel

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error("interrupted by the test")
        return self.kernel(*args)


@pytest.fixture
def one_step_chunks(monkeypatch):
    # A call of ais_kernel per beta (plain AIS's chunks last "about a second" of work, all of a tiny model's
    # schedule otherwise), so that an interruption can fall anywhere.
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)


CASES = {
    "plain": dict(resample=0.0),
    "plain-float32": dict(resample=0.0, dtype=np.float32),
    "resampling": dict(resample=0.5, n_groups=3),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("where", ["forward", "reverse"])
@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(case, where, how, tmp_path, monkeypatch,
                                                                one_step_chunks):
    options = dict(CASES[case])
    rbm = model(options.pop("dtype", np.float64))
    reference = run(rbm, **options)
    if options["resample"]:
        assert int(reference["n_resamples"].sum()) > 0  # else the resampling state's resume goes untested
    # Forward and reverse each make N_BETAS - 1 kernel calls (one per step; resampling checks after every step).
    fail_at = 40 if where == "forward" else N_BETAS - 1 + 30
    path = tmp_path / "ais.npz"
    if how == "ctrl-c":
        # No periodic write: what resumes is what the Ctrl-C handler wrote.
        kernel, every = Counted(fail_at, KeyboardInterrupt), 1e9
    else:
        # SIGKILL writes nothing on the way out: what resumes is the last periodic write, made after every call.
        kernel, every = Counted(fail_at, RuntimeError), 0.0
        monkeypatch.setattr(ais._Saver, "flush", lambda self: None)
    monkeypatch.setattr(ais, "ais_kernel", kernel)
    with pytest.raises(kernel.error, match="interrupted by the test"):
        run(rbm, checkpoint=path, checkpoint_every=every, **options)
    assert path.exists()
    monkeypatch.undo()
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)

    resumed_kernel = Counted()
    monkeypatch.setattr(ais, "ais_kernel", resumed_kernel)
    resumed = run(rbm, checkpoint=path, checkpoint_every=every, **options)
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    assert {k: v for k, v in resumed.attrs.items() if k != "created"} == \
        {k: v for k, v in reference.attrs.items() if k != "created"}
    # It went on from the interrupted step, not from the start: fail_at - 1 calls had been made and saved.
    assert resumed_kernel.calls == 2 * (N_BETAS - 1) - (fail_at - 1)


def test_a_finished_checkpoint_gives_the_result_without_running_again(tmp_path, monkeypatch, one_step_chunks):
    rbm = model()
    path = tmp_path / "ais.npz"
    first = run(rbm, checkpoint=path, resample=0.5, n_groups=3)
    kernel = Counted()
    monkeypatch.setattr(ais, "ais_kernel", kernel)
    again = run(rbm, checkpoint=path, resample=0.5, n_groups=3)
    assert kernel.calls == 0
    xr.testing.assert_identical(again.drop_attrs(), first.drop_attrs())


def test_a_run_without_reverse_and_with_user_reverse_starts_resume_too(tmp_path, monkeypatch, one_step_chunks):
    rbm = model()
    starts = (np.random.default_rng(1).random((N_CHAINS, rbm.n_visible)) < 0.5).astype(rbm.dtype)
    for options in (dict(reverse=False), dict(reverse_init=starts)):
        reference = run(rbm, **options)
        path = tmp_path / f"ais-{len(options)}-{'reverse' in options}.npz"
        monkeypatch.setattr(ais, "ais_kernel", Counted(N_BETAS + 5 if "reverse_init" in options else 50))
        with pytest.raises(KeyboardInterrupt):
            run(rbm, checkpoint=path, **options)
        monkeypatch.setattr(ais, "ais_kernel", Counted())
        xr.testing.assert_identical(run(rbm, checkpoint=path, **options).drop_attrs(), reference.drop_attrs())


@pytest.mark.parametrize("change, field", [
    (dict(seed=8), "seed"),
    (dict(n_chains=2 * N_CHAINS), "n_chains"),
    (dict(betas=schedules.linear(N_BETAS + 1)), "betas"),
    (dict(resample=0.5, n_groups=3), "resample"),
    (dict(reverse=False), "reverse"),
    (dict(reverse_burn_in=6), "reverse_start"),
    (dict(data=np.eye(60)), "base_bias"),
    (dict(rbm=model(seed=4)), "model"),
])
def test_a_checkpoint_of_another_run_is_refused_and_left_as_it_was(change, field, tmp_path, monkeypatch,
                                                                    one_step_chunks):
    rbm = change.pop("rbm", model())
    path = tmp_path / "ais.npz"
    monkeypatch.setattr(ais, "ais_kernel", Counted(30))
    with pytest.raises(KeyboardInterrupt):
        run(model(), checkpoint=path)
    before = path.read_bytes()
    monkeypatch.setattr(ais, "ais_kernel", Counted())
    message = f"checkpoint .*ais.npz belongs to another AIS run \\(.*different {field}\\b"
    with pytest.raises(ais.CheckpointMismatchError, match=message):
        run(rbm, checkpoint=path, **change)
    assert path.read_bytes() == before


def test_bad_checkpoint_options_and_files_are_refused(tmp_path):
    rbm = model()
    with pytest.raises(ValueError, match="checkpoint must be a file in an existing folder"):
        run(rbm, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="checkpoint must be a file in an existing folder"):
        run(rbm, checkpoint=tmp_path / "missing" / "ais.npz")
    for every in (-1, "soon", True, float("nan")):
        with pytest.raises(ValueError, match="checkpoint_every must be a number of seconds >= 0"):
            run(rbm, checkpoint=tmp_path / "ais.npz", checkpoint_every=every)
    junk = tmp_path / "junk.npz"
    np.savez(junk, something=np.zeros(3))
    with pytest.raises(ais.CheckpointMismatchError, match="junk.npz is not an AIS checkpoint this version can"):
        run(rbm, checkpoint=junk)
    # a file of another kind (a model given by mistake) is not to be deleted: the message does not say so
    hdf5 = tmp_path / "model.nc"
    hdf5.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ais.CheckpointMismatchError, match=r"model\.nc is not an AIS checkpoint \(not an \.npz file\)") \
            as err:
        run(rbm, checkpoint=hdf5)
    assert "delete" not in str(err.value) and hdf5.read_bytes() == b"\x89HDF\r\n\x1a\n"


def raise_run(rbm: RBM, data, **kw) -> xr.Dataset:
    return ais.raise_log_likelihood(rbm, data, base_data=data, seed=5, betas=schedules.linear(N_BETAS),
                                    chains_per_row=2, progress=False, **kw)


@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_an_interrupted_raise_run_resumes_to_the_uninterrupted_result(how, tmp_path, monkeypatch, one_step_chunks):
    rbm = model()
    data = (np.random.default_rng(2).random((6, rbm.n_visible)) < 0.3).astype(np.float64)
    reference = raise_run(rbm, data)
    path = tmp_path / "raise.npz"
    if how == "killed":
        monkeypatch.setattr(ais._Saver, "flush", lambda self: None)
    monkeypatch.setattr(ais, "ais_kernel", Counted(50, KeyboardInterrupt if how == "ctrl-c" else RuntimeError))
    with pytest.raises((KeyboardInterrupt, RuntimeError), match="interrupted by the test"):
        raise_run(rbm, data, checkpoint=path, checkpoint_every=1e9 if how == "ctrl-c" else 0.0)
    monkeypatch.undo()
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)
    kernel = Counted()
    monkeypatch.setattr(ais, "ais_kernel", kernel)
    resumed = raise_run(rbm, data, checkpoint=path)
    assert kernel.calls == (N_BETAS - 1) - 49
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    # other rows to score are another run: refused, the file left as it was
    before = path.read_bytes()
    with pytest.raises(ais.CheckpointMismatchError, match="different data"):
        raise_run(rbm, data[::-1].copy(), checkpoint=path)
    assert path.read_bytes() == before


def test_a_checkpoint_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, one_step_chunks):
    rbm = model()
    reference = run(rbm)

    def full_disk(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ais, "atomic_write", full_disk)
    with pytest.warns(ais.CheckpointWriteWarning, match="could not write the AIS checkpoint .*No space left") as caught:
        result = run(rbm, checkpoint=tmp_path / "ais.npz", checkpoint_every=0.0)
    assert sum(issubclass(w.category, ais.CheckpointWriteWarning) for w in caught) == 1  # once, not per chunk
    xr.testing.assert_identical(result.drop_attrs(), reference.drop_attrs())
    assert not (tmp_path / "ais.npz").exists()
