"""The connectivity-aging figure: the mask overlap with the previous budget of the methods whose mask
moves, seed means and seeds against the budget, with the chance level; a file without the overlap is
missing data, not a failure."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import dilution.io
from paper_figures import connectivity_aging, registry
from paper_figures.schema import MissingData


def _line(ax, label):
    found = [line for line in ax.lines if line.get_label() == label]
    assert len(found) == 1, f"{label!r} not among {[line.get_label() for line in ax.lines]}"
    return found[0]


def test_lines_are_the_seed_means_of_the_moving_masks_with_seeds_and_chance(synthetic):
    ds = synthetic.aging()
    ax = connectivity_aging.draw(ds).axes[0]
    # static and dense (overlap 1) and magnitude (a run per budget) are left out; NCG (repeated along
    # connectivity) is one line
    expected = [f"deep-r, connectivity {c:g}" for c in ds["connectivity"].values] + ["ncg-p0.5"]
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == expected
    budgets = ds["epochs"].values[1:]  # the first budget has no previous one
    for label in expected:
        method, _, c = label.partition(", connectivity ")
        at = ds.sel({"method": method, "connectivity": float(c) if c else ds["connectivity"].values[0]})
        overlap = at["mask_overlap"].transpose("seed", "epochs").values[:, 1:]
        line = _line(ax, label)
        np.testing.assert_array_equal(line.get_xdata(), budgets)
        np.testing.assert_allclose(line.get_ydata(), overlap.mean(axis=0))
        seeds = _line(ax, f"_seeds {label}")
        np.testing.assert_array_equal(np.sort(seeds.get_ydata()), np.sort(overlap.ravel()))
        chance = _line(ax, f"_chance {label}")
        assert chance.get_linestyle() == "--" and chance.get_color() == line.get_color()
        np.testing.assert_allclose(chance.get_ydata(), at["mask_overlap_chance"].values[:, 1:].mean(axis=0))
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{b:g}" for b in budgets]
    assert ax.get_ylabel() == "mask overlap C(t_w, t) (1)"  # the long_name cut before its explanation


def test_a_moving_static_mask_is_drawn_and_the_largest_ais_budget_is_read(synthetic):
    ds = synthetic.aging()
    ds["mask_overlap"].loc[{"method": "static", "epochs": 8}] = 0.99  # the data say it moved: drawn
    ds = xr.concat([ds, ds], dim="ais_betas")
    ax = connectivity_aging.draw(ds).axes[0]
    assert "static, connectivity 0.01" in [line.get_label() for line in ax.lines]


def test_a_file_without_the_overlap_or_without_a_moving_mask_is_missing_data(synthetic, tmp_path):
    old = tmp_path / "rewiring-mnist-500.nc"
    dilution.io.save(synthetic.deep_r(), old)  # an older comparison: no mask_overlap
    with pytest.raises(MissingData, match="has no 'mask_overlap'"):
        connectivity_aging.load(old)
    figure, = (f for f in registry.FIGURES if f.name == "connectivity-aging")
    outcome = registry.render(figure, tmp_path, tmp_path / "out", dpi=40)
    assert outcome.status == "missing" and "mask_overlap" in outcome.error
    still = synthetic.aging()
    still["mask_overlap"] = still["mask_overlap"].where(still["mask_overlap"].isnull(), 1.0)
    with pytest.raises(MissingData, match="no method's mask moves"):
        connectivity_aging.draw(still)
    # the file with it is drawn
    dilution.io.save(synthetic.aging(), old)
    (tmp_path / "out").mkdir(exist_ok=True)
    assert registry.render(figure, tmp_path, tmp_path / "out", dpi=40).status == "drawn"
