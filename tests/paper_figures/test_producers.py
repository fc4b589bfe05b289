"""The figures read what the producers write: the transition table of analysis.transition and the
mask summary of analysis.masks, computed here from the synthetic study, are drawn, and the marks
sit at the producers' numbers (the figure modules themselves import neither)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.masks import mask_summary
from analysis.transition import finite_size_scaling, transition_table
from paper_figures import degree_maps, finite_size, quality_fraction
from paper_figures.schema import check


def test_transition_table_of_the_study_draws_its_markers_at_the_located_fractions(synthetic):
    merged = synthetic.merged()
    table = check(transition_table(merged, n_bootstrap=50, keep_bootstrap=False), quality_fraction.TRANSITION,
                  "transition_table(merged)")
    fig = quality_fraction.draw(merged, table)
    located = 0
    for ax, time in zip(fig.axes, merged["pruning_time"].values):
        for protocol in merged["protocol"].values:
            row = table.sel(protocol=protocol, pruning_time=time, n_hidden=8)
            markers = [line for line in ax.lines if line.get_label() == f"{protocol}: transition"]
            if str(row["verdict"].values) == "transition":
                located += 1
                np.testing.assert_allclose(markers[0].get_xdata(), [float(row["location"])] * 2)
            else:
                assert markers == []
    assert located == 5  # the synthetic step sits inside the grid at every (protocol, time) with data
    # the finite-size fit merged into the table, as transition.nc is expected to hold it
    full = transition_table(merged, n_bootstrap=50)
    fit = finite_size_scaling(full)
    table = xr.merge([table, fit], combine_attrs="override")
    fig = finite_size.draw(check(table, finite_size.TABLE, "transition_table + finite_size_scaling"))
    curve = next(line for line in fig.axes[0].lines if line.get_label().startswith("after, pruned after epoch 20"))
    row = fit.sel(protocol="after", pruning_time="20")
    n = curve.get_xdata()
    np.testing.assert_allclose(curve.get_ydata(), float(row["f_inf"]) + float(row["inverse_size_slope"]) / n)


def test_mask_summary_draws_the_seed_mean_degrees(synthetic):
    rng = np.random.default_rng(0)
    keep = np.array([0.9, 0.5, 0.1])[:, None, None, None]
    masks = xr.DataArray(rng.random((3, 2, 16, 5)) < keep, dims=("pruning_fraction", "seed", "visible", "hidden"),
                         coords={"pruning_fraction": [0.1, 0.5, 0.9], "seed": [0, 1]})
    summary = check(mask_summary(masks, teacher_mask=rng.random((16, 3)) < 0.5, n_null=20), degree_maps.MASKS,
                    "mask_summary(masks)")
    fig = degree_maps.draw(summary)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    for f, image in enumerate(images):
        np.testing.assert_allclose(image.get_array(), masks.values[f].sum(axis=-1).mean(axis=0).reshape(4, 4))
