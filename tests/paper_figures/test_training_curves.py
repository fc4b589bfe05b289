from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from matplotlib.image import imread

import dilution
from dilution.training import TrainConfig

SCRIPT = Path(__file__).resolve().parents[2] / "paper_figures" / "training_curves.py"


def _module():
    spec = importlib.util.spec_from_file_location("training_curves", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_figure_is_drawn_from_saved_histories(tmp_path):
    data = dilution.data.bars_stripes.sample(3, 200, seed=0)
    for seed in (0, 1):
        result = dilution.train((9, 4), data, TrainConfig(k=1, epochs=2, batch_size=20, checkpoints=3), seed=seed,
                                progress=False)
        (tmp_path / f"run{seed}").mkdir()
        dilution.save(result.history, tmp_path / f"run{seed}" / "history.nc")
    out = _module().main([str(tmp_path / "run0" / "history.nc"), str(tmp_path / "run1" / "history.nc"),
                          "--output", str(tmp_path / "fig" / "curves.png")])
    assert out == 0
    image = imread(tmp_path / "fig" / "curves.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert np.ptp(image) > 0  # something was drawn
