from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

import dilution
from dilution.training import TrainConfig
from paper_figures import training_curves


def _plot(paths, ax) -> str:
    return training_curves.plot(*training_curves.load(*paths), ax)


def _save(ds: xr.Dataset, folder: Path) -> Path:
    folder.mkdir()
    return dilution.save(ds, folder / "history.nc")


def test_axes_are_labelled_from_long_name_and_units_and_lines_hold_the_data(tmp_path, synthetic):
    runs = {"run_a": synthetic.history([-5.0, -4.0, -3.5, -3.2]), "run_b": synthetic.history([-5.5, -4.5, -3.0, -2.9])}
    paths = [_save(ds, tmp_path / name) for name, ds in runs.items()]
    fig, ax = plt.subplots()
    try:
        assert _plot(paths, ax) == "log_likelihood"
        assert ax.get_ylabel() == "mean exact log-likelihood of the training set (nats)"
        assert ax.get_xlabel() == "parameter updates done (updates)"
        assert ax.get_xscale() == "log"
        assert [line.get_label() for line in ax.lines] == list(runs)
        for line, ds in zip(ax.lines, runs.values()):
            np.testing.assert_array_equal(line.get_ydata(), ds["log_likelihood"].values)
            np.testing.assert_array_equal(line.get_xdata(), [1, 1, 4, 16])  # step 0 drawn at 1 on the log axis
    finally:
        plt.close(fig)


def test_one_run_without_log_likelihood_switches_every_run_to_reconstruction_error(tmp_path, synthetic):
    # Runs drawn on one axis must show one quantity: a model too large to enumerate (NaN
    # log-likelihood) makes the figure fall back to the reconstruction error for all runs.
    runs = {"small": synthetic.history([-5.0, -4.0, -3.5, -3.2]), "large": synthetic.history([np.nan] * 4)}
    paths = [_save(ds, tmp_path / name) for name, ds in runs.items()]
    fig, ax = plt.subplots()
    try:
        assert _plot(paths, ax) == "reconstruction_error"
        assert ax.get_ylabel() == "reconstruction error (1)"
        for line, ds in zip(ax.lines, runs.values()):
            np.testing.assert_array_equal(line.get_ydata(), ds["reconstruction_error"].values)
    finally:
        plt.close(fig)


def test_unlabelled_history_is_refused(tmp_path, synthetic):
    ds = synthetic.history([-5.0, -4.0, -3.5, -3.2])
    ds["log_likelihood"].attrs = {"units": "nats"}
    path = _save(ds, tmp_path / "run")
    with pytest.raises(ValueError, match="lacks the CF attributes long_name and units"):
        training_curves.main([str(path), "--output", str(tmp_path / "fig.png")])
    assert not (tmp_path / "fig.png").exists()


def test_figure_is_drawn_from_histories_written_by_training(tmp_path):
    data = dilution.data.bars_stripes.sample(3, 200, seed=0)
    paths = []
    for seed in (0, 1):
        result = dilution.train((9, 4), data, TrainConfig(epochs=2, batch_size=20, checkpoints=3), seed=seed,
                                progress=False)
        paths.append(_save(result.history, tmp_path / f"run{seed}"))
    mod = training_curves
    fig, ax = plt.subplots()
    try:
        assert _plot(paths, ax) == "log_likelihood"  # 9 x 4 is enumerable
        history = dilution.load(paths[1])
        assert ax.get_ylabel() == mod.axis_label(history["log_likelihood"])
        np.testing.assert_array_equal(ax.lines[1].get_ydata(), history["log_likelihood"].values)
        np.testing.assert_array_equal(ax.lines[1].get_xdata(), np.maximum(history["step"].values, 1))
    finally:
        plt.close(fig)
    out = tmp_path / "fig" / "curves.png"
    assert mod.main([str(p) for p in paths] + ["--output", str(out)]) == 0
    image = imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100
