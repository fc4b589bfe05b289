from __future__ import annotations

import os

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from dilution.images import PAD_VALUE, TITLE_PIXELS, default_scale, save_sample_grid, tile_samples


def _reference_tiles(x, rows, cols, n_cols, pad):
    """Slow reference: paste tile k at grid cell (k // n_cols, k % n_cols)."""
    n_rows = -(-len(x) // n_cols)
    out = np.full((pad + n_rows * (rows + pad), pad + n_cols * (cols + pad)), PAD_VALUE)
    for k, s in enumerate(x):
        i, j = divmod(k, n_cols)
        for r in range(rows):
            for c in range(cols):
                out[pad + i * (rows + pad) + r, pad + j * (cols + pad) + c] = s[r * cols + c]
    return out


def test_tiles_match_reference():
    x = np.random.default_rng(0).random((7, 20))
    np.testing.assert_array_equal(tile_samples(x, (5, 4), 3, padding=1), _reference_tiles(x, 5, 4, 3, 1))
    np.testing.assert_array_equal(tile_samples(x, (4, 5), None, padding=0), _reference_tiles(x, 4, 5, 3, 0))


def test_png_pixels_equal_samples(tmp_path):
    rows, cols, n_cols, pad, scale = 5, 4, 3, 1, 2
    x = (np.random.default_rng(1).random((7, rows * cols)) < 0.5).astype(np.uint8)
    path = save_sample_grid(x, tmp_path / "grid.png", (rows, cols), n_cols, padding=pad, scale=scale)
    img = matplotlib.image.imread(path)
    expected = np.kron(_reference_tiles(x, rows, cols, n_cols, pad), np.ones((scale, scale)))
    assert img.shape[:2] == expected.shape
    grey = img[..., 0]
    binary = expected != PAD_VALUE
    np.testing.assert_array_equal(grey[binary], expected[binary])  # 0 -> black, 1 -> white exactly
    assert np.all(np.abs(grey[~binary] - PAD_VALUE) <= 1 / 255)
    assert os.listdir(tmp_path) == ["grid.png"]


def test_mnist_shaped_default(tmp_path):
    x = np.random.default_rng(2).random((10, 784))
    img = matplotlib.image.imread(save_sample_grid(x, tmp_path / "g.png"))
    assert img.shape[:2] == (2 * (3 * 29 + 1), 2 * (4 * 29 + 1))  # ceil(sqrt(10)) = 4 columns, 3 rows


@pytest.mark.parametrize(
    "samples, kwargs, match",
    [
        (np.zeros((3, 783)), {}, r"shape \(n >= 1, 784\)"),
        (np.zeros((2, 3, 784)), {}, "shape"),
        (np.zeros((0, 784)), {}, "n >= 1"),
        (np.full((2, 784), np.nan), {}, "NaN"),
        (np.full((2, 784), 2.0), {}, r"\[0, 1\]"),
        (np.zeros((2, 784)), {"n_cols": 0}, "n_cols"),
        (np.zeros((2, 784)), {"image_shape": (28,)}, "pair"),
        (np.array([["a"] * 784]), {}, "real numbers"),
    ],
)
def test_bad_inputs(tmp_path, samples, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        save_sample_grid(samples, tmp_path / "g.png", **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_suffix_and_failed_render_keep_old_file(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"\.png"):
        save_sample_grid(np.zeros((1, 784)), tmp_path / "g.jpg")
    target = save_sample_grid(np.zeros((1, 784)), tmp_path / "g.png")
    before = target.read_bytes()

    def boom(self, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise RuntimeError("render failed")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        save_sample_grid(np.ones((1, 784)), target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["g.png"]


def test_small_patterns_are_scaled_up_and_titled(tmp_path):
    # 16 samples of 8 x 8: 4 x 4 tiles, 4 * (8 + 1) + 1 = 37 units a side; default scale
    # ceil(56 / 8) = 7 px per unit (nearest neighbour), plus the title band above.
    rng = np.random.default_rng(3)
    x = (rng.random((16, 64)) < 0.5).astype(np.uint8)
    img = matplotlib.image.imread(save_sample_grid(x, tmp_path / "g.png", (8, 8), title="model samples"))
    assert img.shape[:2] == (37 * 7 + TITLE_PIXELS, 37 * 7)
    grid = img[TITLE_PIXELS:, :, 0]
    expected = np.kron(_reference_tiles(x, 8, 8, 4, 1), np.ones((7, 7)))
    binary = expected != PAD_VALUE
    np.testing.assert_array_equal(grid[binary], expected[binary])
    band = img[:TITLE_PIXELS, :, 0]
    assert band.max() == 1.0 and band.min() < 0.5  # white band with dark text in it
    # a title longer than the grid widens the image, the grid centred under it
    long = "samples: the training's persistent chains, 1000 more Gibbs sweeps"
    img = matplotlib.image.imread(save_sample_grid(x[:1], tmp_path / "h.png", (8, 8), title=long))
    width = img.shape[1]
    assert width > 10 * 7 and img.shape[0] == 10 * 7 + TITLE_PIXELS
    left = (width - 10 * 7) // 2
    np.testing.assert_array_equal(img[TITLE_PIXELS:, left:left + 70, 0][binary[:70, :70]],
                                  expected[:70, :70][binary[:70, :70]])


def test_default_scale():
    assert default_scale((28, 28)) == 2 and default_scale((8, 8)) == 7 and default_scale((4, 4)) == 14
    assert default_scale((1, 64)) == 2  # a long strip is not blown up
