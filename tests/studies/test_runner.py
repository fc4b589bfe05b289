"""The runner: the smoke study end to end through ``dilution study run``, a rerun that skips
everything, and the same study.nc from the serial executor and from two dask workers."""

from __future__ import annotations

import numpy as np
import pytest

from dilution import io
from dilution.cli import main
from studies.builtin import builtin_spec
from studies.runner import run_study

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
    assert dict(study.sizes) == {"n_hidden": 1, "protocol": 2, "pruning_fraction": 3, "seed": 2}
    assert study["finished"].values.all()
    assert (study["epochs_used"] <= spec.training.max_epochs).all()
    assert study.attrs["spec"] == spec.to_json() and "dilution_version" in study.attrs
    # pruning fraction 0 under either protocol is the same dense run
    np.testing.assert_array_equal(study["test_log_likelihood"].sel(protocol="init", pruning_fraction=0.0),
                                  study["test_log_likelihood"].sel(protocol="after", pruning_fraction=0.0))
    np.testing.assert_allclose(study["connectivity"].sel(pruning_fraction=0.8), round(0.2 * 96) / 96)
    assert main(["study", "run", "smoke", "--output", spec.output, "--quiet"]) == 0
    assert "0 run, 12 skipped, 0 failed, 12/12 finished" in capsys.readouterr().out
    rerun = io.load_dataset(f"{spec.output}/study.nc")
    for name, value in _values(study).items():
        np.testing.assert_array_equal(rerun[name].values, value, err_msg=name)


def test_two_dask_workers_give_the_serial_study(serial, tmp_path):
    from studies.runner import local_client

    reference = f"{serial.output}/study.nc"
    spec = builtin_spec("smoke", output=str(tmp_path / "dask"))
    with local_client(2) as client:
        result = run_study(spec, client=client)
        client.cluster.close()
    assert result.count("done") == 12
    ours, theirs = io.load_dataset(result.path), io.load_dataset(reference)
    for name, value in _values(theirs).items():
        np.testing.assert_array_equal(ours[name].values, value, err_msg=name)


def test_malformed_spec_fails_before_any_compute(tmp_path, capsys):
    from studies.builtin import BUILTIN

    (tmp_path / "bad.toml").write_text(BUILTIN["smoke"].replace("[0.0, 0.5, 0.8]", "[0.0, 1.5]"))
    assert main(["study", "run", str(tmp_path / "bad.toml")]) != 0
    assert "pruning_fractions[1]: expected a fraction in [0, 1), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
