from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import dilution
from analysis.aats import adversarial_accuracy
from analysis.moments import moment_errors
from analysis.pca import pca_comparison
from analysis.pseudolikelihood import pseudo_log_likelihood
from analysis.reconstruction import reconstruction_error
from dilution import exact
from dilution.cli import build_parser, main


@pytest.fixture()
def saved(tmp_path):
    rbm = dilution.RBM.random(12, 5, connectivity=0.5, weight_scale=1.5, bias_scale=0.5, seed=0)
    data = dilution.sample(rbm, 300, 50, seed=1).astype(np.uint8)
    dilution.save(rbm, tmp_path / "m.nc")
    dilution.save(xr.Dataset({"states": (("sample", "visible"), data)}), tmp_path / "test.nc")
    return rbm, data, tmp_path


def test_evaluate_reports_the_exact_log_likelihood_and_every_metric(saved, capsys):
    rbm, data, tmp = saved
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "300", "--n-sweeps", "20",
            "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = dilution.load(tmp / "m-evaluation.nc")
    assert float(result["exact_mean_log_likelihood"]) == pytest.approx(exact.log_likelihood(rbm, data).mean(), rel=1e-12)
    # Every metric is the one its function computes on the same data and the same Gibbs samples
    # (evaluate draws them with its seed, 0).
    x = data.astype(np.float64)
    samples = dilution.sample(rbm, 300, 20, seed=0).astype(np.float64)
    expected = {
        "pll": pseudo_log_likelihood(rbm, x, method="stochastic", seed=0),
        "reconstruction": reconstruction_error(rbm, x),
        "moments": moment_errors(samples, x),
        "pca": pca_comparison(samples, x),
        "aats": adversarial_accuracy(x, samples),
    }
    for prefix, ds in expected.items():
        for name in ds.data_vars:
            np.testing.assert_array_equal(result[f"{prefix}_{name}"].values, ds[name].values, err_msg=f"{prefix}_{name}")
    # proxies are labelled as such in the printout
    assert "pll_mean_pseudo_log_likelihood" in printed and "(proxy)" in printed
    assert result.attrs["seed"] == 0 and "dilution_version" in result.attrs


def test_dilution_command_line_has_evaluate():
    # evaluate reaches the engine's command line only through the dilution.commands entry point.
    # (The help text names every command in its examples anyway, so parse instead of searching it.)
    args = build_parser().parse_args(["evaluate", "m.nc", "--data", "d.nc"])
    assert args.command == "evaluate" and args.func.__module__ == "analysis.cli"


def test_evaluate_rejects_data_of_the_wrong_width(saved, capsys):
    _, _, tmp = saved
    dilution.save(xr.Dataset({"states": (("sample", "visible"), np.zeros((4, 7), np.uint8))}), tmp / "bad.nc")
    assert main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "bad.nc"), "--quiet"]) == 2
    assert "7 visible units, the model has 12" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-data", "0"], "--max-data must be an integer >= 1, got 0"),
        (["--n-samples", "0"], "--n-samples must be an integer >= 1, got 0"),
        (["--ais-chains", "0"], "--ais-chains must be an integer >= 1"),
        (["--ais-betas", "1"], "--ais-betas must be an integer >= 2"),
    ],
)
def test_evaluate_checks_flags_before_computing_anything(saved, capsys, flags, message):
    import os
    import warnings

    _, _, tmp = saved
    before = sorted(os.listdir(tmp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Mean of empty slice" from metrics run on no data
        assert main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp)) == before


def test_evaluate_takes_a_run_folder_and_records_absolute_paths(saved, monkeypatch):
    _, _, tmp = saved
    (tmp / "run").mkdir()
    (tmp / "m.nc").rename(tmp / "run" / "model.nc")
    monkeypatch.chdir(tmp)
    assert main(["evaluate", "run", "--data", "test.nc", "--n-samples", "20", "--n-sweeps", "2", "--quiet"]) == 0
    attrs = dilution.load(tmp / "run" / "model-evaluation.nc").attrs
    assert attrs["model"] == str(tmp / "run" / "model.nc") and str(tmp / "test.nc") in attrs["data"]


def test_evaluate_says_how_to_get_a_likelihood_it_cannot_enumerate(tmp_path, capsys):
    rbm = dilution.RBM.random(30, 30, connectivity=0.5, weight_scale=0.5, seed=0)
    dilution.save(rbm, tmp_path / "big.nc")
    data = dilution.sample(rbm, 50, 10, seed=1).astype(np.uint8)
    dilution.save(xr.Dataset({"states": (("sample", "visible"), data)}), tmp_path / "d.nc")
    argv = ["evaluate", str(tmp_path / "big.nc"), "--data", str(tmp_path / "d.nc"), "--n-samples", "20",
            "--n-sweeps", "2", "--quiet"]
    assert main(argv) == 0
    assert f"more than {exact.MAX_UNITS} for exact enumeration; add --ais" in capsys.readouterr().out


def test_evaluate_help_states_the_enumeration_limit_in_use(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    assert f"at most {exact.MAX_UNITS} units (dilution.exact.MAX_UNITS)" in capsys.readouterr().out
