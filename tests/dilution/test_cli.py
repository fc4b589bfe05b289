from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution import exact
from dilution.cli import build_parser, main

SMALL = ["--n-train", "400", "--n-test", "200", "--epochs", "2", "--sample-sweeps", "5", "--grid-samples", "9",
         "--teacher-visible", "16", "--teacher-hidden", "4", "--n-hidden", "6", "--quiet"]


def test_train_on_teacher_writes_consistent_outputs(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--output", str(out), "--seed", "3"]) == 0
    for name in ("model.nc", "history.nc", "samples.png", "data.png", "summary.json"):
        assert (out / name).is_file(), name
    model = dilution.load(out / "model.nc")
    assert isinstance(model, dilution.RBM) and model.n_hidden == 6
    assert model.connectivity == pytest.approx(0.5, abs=1 / 96)
    summary = json.loads((out / "summary.json").read_text())
    # the reported log-likelihood is the exact one of the saved model on the teacher's test set
    assert summary["log_partition"] == pytest.approx(exact.log_partition(model), rel=1e-12)
    assert summary["test_log_likelihood"] <= 0
    assert summary["test_log_likelihood_gap"] == pytest.approx(
        summary["teacher_test_log_likelihood"] - summary["test_log_likelihood"])
    history = xr.open_dataset(out / "history.nc", engine="h5netcdf")
    assert history.sizes["epoch"] == 2


def test_same_seed_same_model(tmp_path):
    for name in ("a", "b"):
        assert main(["train", *SMALL, "--output", str(tmp_path / name), "--seed", "1"]) == 0
    assert dilution.load(tmp_path / "a" / "model.nc") == dilution.load(tmp_path / "b" / "model.nc")


def test_toml_config_is_read_and_flags_win(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('n_hidden = 5\nmethod = "cd"\nk = 1\nepochs = 1\nconnectivity = 1.0\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), *SMALL[:-5], "--quiet", "--output", str(out)]) == 0
    model = dilution.load(out / "model.nc")
    assert model.n_hidden == 5 and model.connectivity == 1.0
    assert main(["train", "--config", str(cfg), *SMALL, "--output", str(out)]) == 0
    assert dilution.load(out / "model.nc").n_hidden == 6


def test_sample_command(tmp_path):
    model = dilution.RBM.random(16, 4, connectivity=0.5, weight_scale=1.0, seed=0)
    dilution.save(model, tmp_path / "m.nc")
    assert main(["sample", str(tmp_path / "m.nc"), "--n-samples", "8", "--n-sweeps", "3", "--seed", "2", "--quiet"]) == 0
    ds = dilution.load(tmp_path / "m-samples.nc")
    assert ds["samples"].shape == (8, 16)
    assert np.array_equal(ds["samples"].values, dilution.sample(model, 8, 3, seed=2))
    assert (tmp_path / "m-samples.png").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "mnist", "--quiet"], "needs --data"),
        (["train", "--config", "/nonexistent/run.toml"], "cannot read config file"),
        (["train", "--connectivity", "1.5", *SMALL], "connectivity must be in [0, 1]"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_key(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("n_hiden = 5\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown option 'n_hiden'" in capsys.readouterr().err


def test_sample_refuses_a_dataset_file(tmp_path, capsys):
    dilution.save(xr.Dataset({"x": ("a", np.arange(3))}), tmp_path / "d.nc")
    assert main(["sample", str(tmp_path / "d.nc")]) == 2
    assert "not an RBM" in capsys.readouterr().err


def test_help_mentions_every_command():
    text = build_parser().format_help()
    assert "train" in text and "sample" in text
