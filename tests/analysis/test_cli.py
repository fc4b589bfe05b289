from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution import exact
from dilution.cli import main


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
    for prefix in ("pll_", "reconstruction_", "moments_", "pca_", "aats_"):
        assert any(name.startswith(prefix) for name in result.data_vars), prefix
    # proxies are labelled as such in the printout
    assert "pll_mean_pseudo_log_likelihood" in printed and "(proxy)" in printed
    assert result.attrs["seed"] == 0 and "dilution_version" in result.attrs


def test_evaluate_rejects_data_of_the_wrong_width(saved, capsys):
    _, _, tmp = saved
    dilution.save(xr.Dataset({"states": (("sample", "visible"), np.zeros((4, 7), np.uint8))}), tmp / "bad.nc")
    assert main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "bad.nc"), "--quiet"]) == 2
    assert "7 visible units, the model has 12" in capsys.readouterr().err
