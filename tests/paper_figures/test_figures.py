"""Each figure is drawn from a synthetic Dataset of its schema and what it draws is compared with
the data: line values against seed means computed here with numpy, bands and error bars against
the Student-t bounds, transition markers against the table, labels against the attrs."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest
import xarray as xr
from scipy import stats

import dilution.io
from paper_figures import (
    deep_r_comparison,
    degree_maps,
    divergence,
    finite_size,
    inclusion_maps,
    ising_couplings,
    ncg_trajectories,
    phase_diagram,
    quality_fraction,
    retrain_scratch,
    sample_grids,
)
from paper_figures.schema import MissingData, SchemaError


def _mean_ci(x: np.ndarray, axis: int = -1, level: float = 0.95):
    """Seed mean and Student-t bounds, the slow obvious way (a loop over rows)."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    flat = x.reshape(-1, x.shape[-1])
    out = np.full((3, flat.shape[0]), np.nan)
    for i, row in enumerate(flat):
        row = row[np.isfinite(row)]
        if row.size:
            out[0, i] = row.mean()
        if row.size >= 2:
            half = stats.t.ppf(0.5 + level / 2, row.size - 1) * row.std(ddof=1) / np.sqrt(row.size)
            out[1, i], out[2, i] = row.mean() - half, row.mean() + half
    return out.reshape(3, *x.shape[:-1])


def _line(ax, label):
    found = [line for line in ax.lines if line.get_label() == label]
    assert len(found) == 1, f"{label!r} not among {[line.get_label() for line in ax.lines]}"
    return found[0]


def _band_bounds(collection, xs):
    """(min, max) of a fill_between polygon's vertices at each x of ``xs``."""
    v = np.concatenate([p.vertices for p in collection.get_paths()])
    return np.array([[v[np.isclose(v[:, 0], x), 1].min(), v[np.isclose(v[:, 0], x), 1].max()] for x in xs])


def _bands(ax):
    return [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")]


# --------------------------------------------------------------------------- quality vs fraction


def test_quality_lines_are_seed_means_bands_are_t_intervals_and_the_marker_sits_at_the_location(synthetic):
    merged, table = synthetic.merged(), synthetic.transition()
    fig = quality_fraction.draw(merged, table)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["pruned at initialisation", "pruned after epoch 20",
                                               "pruned after convergence"]
    assert fig.get_supxlabel() == "fraction of connections pruned (1)"
    assert fig.get_supylabel() == "mean test log-likelihood (nats per sample)"
    assert "8 hidden units" in fig.get_suptitle()  # the largest size
    q = merged["test_log_likelihood"].values[:, :, :, 1, :]  # n_hidden = 8
    fractions = merged["pruning_fraction"].values
    expected_lines = {0: ["init"], 1: ["after", "scratch"], 2: ["after", "scratch"]}
    protocols = list(merged["protocol"].values)
    for t, ax in enumerate(axes):
        drawn = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")
                 and ":" not in line.get_label() and line.get_label() in protocols]
        assert drawn == expected_lines[t]
        for k, protocol in enumerate(drawn):
            p = protocols.index(protocol)
            mean, lower, upper = _mean_ci(q[p, t])
            line = _line(ax, protocol)
            np.testing.assert_allclose(line.get_xdata(), fractions)
            np.testing.assert_allclose(line.get_ydata(), mean)
            np.testing.assert_allclose(_band_bounds(_bands(ax)[k], fractions), np.stack([lower, upper], axis=1))
            row = table.sel(protocol=protocol, pruning_time=merged["pruning_time"].values[t], n_hidden=8)
            markers = [line for line in ax.lines if line.get_label() == f"{protocol}: transition"]
            if str(row["verdict"].values) == "transition":
                np.testing.assert_allclose(markers[0].get_xdata(), [float(row["location"])] * 2)
            else:
                assert markers == []
    # the unfinished seed (after, "20", fraction 0.5) is left out of the mean, not counted as NaN
    assert np.isfinite(_line(axes[1], "after").get_ydata()[2])
    # the unconverged seed (after, "20", fraction 0.7) is flagged with an open marker there only
    flag = _line(axes[1], "after: a seed unconverged")
    np.testing.assert_allclose(flag.get_xdata(), [0.7])
    assert flag.get_markerfacecolor() == "white"
    # the transition span: after at "converged" has the verdict "no step", so one span less
    spans = [p for p in axes[1].patches]
    xs = sorted((p.get_x(), p.get_x() + p.get_width()) for p in spans)
    expect = sorted((float(table["location_lower"].sel(protocol=p, pruning_time="20", n_hidden=8)),
                     float(table["location_upper"].sel(protocol=p, pruning_time="20", n_hidden=8)))
                    for p in ("after", "scratch"))
    np.testing.assert_allclose(xs, expect)
    assert len(axes[2].patches) == 1
    verdicts = [t.get_text() for ax in axes for t in ax.texts if t.get_gid() == "verdicts"]
    assert verdicts == ["after: no step"]  # after at "converged": no transition, said in its panel
    references = {line.get_label(): line.get_ydata()[0] for line in axes[0].lines}
    assert references["planted teacher"] == -7.5 and references["independent pixels"] == -12.5
    # every panel's legend names the protocols drawn in it (the right panels have two)
    for t, ax in enumerate(axes):
        named = [text.get_text() for text in ax.get_legend().get_texts()]
        assert [n for n in named if n in protocols] == expected_lines[t]


def test_a_log_axis_table_draws_the_same_data_along_decades_of_connections_removed(synthetic):
    merged, table = synthetic.merged(), synthetic.transition()
    table.attrs["axis"] = "log-remaining"
    fig = quality_fraction.draw(merged, table)
    ax = fig.axes[0]
    assert ax.get_xscale() == "function"
    fractions = merged["pruning_fraction"].values
    np.testing.assert_allclose(_line(ax, "init").get_xdata(), fractions)  # data stay in fractions
    # the axis maps f to -log10(1 - f): 0.9 sits one decade right of 0
    to_axis = ax.xaxis.get_transform()
    one_decade = to_axis.transform([0.9])[0] - to_axis.transform([0.0])[0]
    np.testing.assert_allclose(one_decade, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["0", "0.9"]
    assert quality_fraction.draw(merged, synthetic.transition()).axes[0].get_xscale() == "linear"


def test_quality_figure_refuses_a_quality_without_units_and_a_table_without_verdicts(synthetic, tmp_path):
    merged = synthetic.merged()
    del merged["test_log_likelihood"].attrs["units"]
    with pytest.raises(ValueError, match="'test_log_likelihood' lacks the CF attributes long_name and units"):
        quality_fraction.draw(merged, synthetic.transition())
    dilution.io.save(synthetic.merged(), tmp_path / "merged.nc")
    dilution.io.save(synthetic.transition().drop_vars("verdict"), tmp_path / "transition.nc")
    with pytest.raises(SchemaError, match=r"transition.nc \(.*\) lacks the variable 'verdict'"):
        quality_fraction.load(tmp_path / "merged.nc", tmp_path / "transition.nc")


# --------------------------------------------------------------------------- phase diagram


def test_phase_diagram_cells_are_the_seed_means(synthetic):
    merged, table = synthetic.merged(), synthetic.transition()
    fig = phase_diagram.draw(merged, table)
    axes = [ax for ax in fig.axes if ax.get_title()]  # the colour bar's axes has no title
    assert [ax.get_title() for ax in axes] == ["init", "after", "scratch"]
    q = merged["test_log_likelihood"].values[:, :, :, 1, :]
    for p, ax in enumerate(axes):
        mean = _mean_ci(q[p])[0]  # (time, fraction)
        drawn = ax.collections[0].get_array()
        np.testing.assert_allclose(np.ma.filled(drawn, np.nan).reshape(mean.shape), mean)
    # the boundary: one point per row with a located transition, at (location, row) with its interval
    for protocol, ax, rows in (("init", axes[0], [0]), ("after", axes[1], [1]), ("scratch", axes[2], [1, 2])):
        container, = ax.containers
        t = table.sel(protocol=protocol, n_hidden=8).isel(pruning_time=rows)
        np.testing.assert_allclose(container.lines[0].get_xdata(), t["location"].values)
        np.testing.assert_allclose(container.lines[0].get_ydata(), rows)
        segments = np.array(container.lines[2][0].get_segments())
        np.testing.assert_allclose(segments[:, :, 0], np.stack([t["location_lower"].values,
                                                                t["location_upper"].values], 1))
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["at initialisation", "after epoch 20",
                                                                 "after convergence"]
    colourbar = fig.axes[-1]
    assert colourbar.get_ylabel() == "mean test log-likelihood (nats per sample)"
    assert fig.get_supylabel() == "pruning time (epoch, or converged) (1)"


def test_cell_edges_centre_the_cells_on_the_fractions():
    np.testing.assert_allclose(phase_diagram.cell_edges(np.array([0.0, 0.5, 0.7])), [-0.25, 0.25, 0.6, 0.8])


# --------------------------------------------------------------------------- retrained vs scratch


def test_retrain_lines_are_seed_means_and_the_gap_is_the_gap_tables(synthetic):
    merged, gap = synthetic.merged(), synthetic.gap()
    assert retrain_scratch.protocol_kinds(merged) == {"init": "init", "after": "after", "scratch": "scratch"}
    fig = retrain_scratch.draw(merged, gap)
    top, bottom = fig.axes[:2], fig.axes[2:4]
    assert [ax.get_title() for ax in top] == ["pruned after epoch 20", "pruned after convergence"]
    q = merged["test_log_likelihood"].values[:, :, :, 1, :]
    for i, t in enumerate((1, 2)):
        np.testing.assert_allclose(_line(top[i], "scratch (scratch)").get_ydata(), _mean_ci(q[2, t])[0])
        np.testing.assert_allclose(_line(top[i], "after (after)").get_ydata(), _mean_ci(q[1, t])[0])
        np.testing.assert_allclose(_line(bottom[i], "retrained - scratch").get_ydata(), gap["gap"].values[t, :, 1])
        np.testing.assert_allclose(_band_bounds(_bands(bottom[i])[0], merged["pruning_fraction"].values),
                                   np.stack([gap["gap_lower"].values[t, :, 1], gap["gap_upper"].values[t, :, 1]], 1))
    assert top[0].get_ylabel() == "mean test log-likelihood (nats per sample)"
    assert bottom[0].get_ylabel() == "retrained - scratch (nats per sample)"


def test_retrain_kinds_come_from_a_coordinate_first_and_a_study_without_scratch_is_refused(synthetic, tmp_path):
    merged = synthetic.merged().assign_coords(
        protocol_kind=("protocol", ["init", "rewind", "scratch"], {"long_name": "protocol kind", "units": "1"}))
    assert retrain_scratch.protocol_kinds(merged)["after"] == "rewind"
    plain = synthetic.merged()
    plain.attrs["spec"] = '{"protocols": {"init": {"kind": "init"}, "after": {"kind": "after"}, ' \
                          '"scratch": {"kind": "after"}}}'
    dilution.io.save(plain, tmp_path / "merged.nc")
    dilution.io.save(synthetic.gap(), tmp_path / "gap.nc")
    with pytest.raises(MissingData, match="merged.nc has no protocol of kind 'scratch'"):
        retrain_scratch.load(tmp_path / "merged.nc", tmp_path / "gap.nc")


# --------------------------------------------------------------------------- finite-size scaling


def test_finite_size_points_are_the_located_transitions_with_their_intervals(synthetic):
    table = synthetic.transition()
    fig = finite_size.draw(table)
    location_ax, width_ax = fig.axes
    labels = [c.get_label() for c in location_ax.containers]
    # after at "converged" has no transition at any size: no curve
    assert labels == ["init, pruned at initialisation", "after, pruned after epoch 20",
                      "scratch, pruned after epoch 20", "scratch, pruned after convergence"]
    sizes = table["n_hidden"].values
    for ax, name in ((location_ax, "location"), (width_ax, "width")):
        assert ax.get_ylabel() == f"transition {name} (1)" and ax.get_xlabel() == "hidden units (1)"
        container = ax.containers[1]  # after at "20"
        row = table.sel(protocol="after", pruning_time="20")
        np.testing.assert_allclose(container.lines[0].get_xdata(), sizes)
        np.testing.assert_allclose(container.lines[0].get_ydata(), row[name].values)
        segments = np.array(container.lines[2][0].get_segments())  # (size, 2 ends, xy)
        np.testing.assert_allclose(segments[:, 0, 1], row[f"{name}_lower"].values)
        np.testing.assert_allclose(segments[:, 1, 1], row[f"{name}_upper"].values)


def test_finite_size_fit_curves_are_the_fitted_laws(synthetic):
    table = synthetic.transition()
    dims = ("protocol", "pruning_time")
    for k, v in (("f_inf", 0.8), ("inverse_size_slope", -1.0), ("width_amplitude", 0.2), ("width_exponent", 0.5)):
        table[k] = (dims, np.full((3, 3), v), {"long_name": k, "units": "1"})
    table["f_inf"][0, 0] = np.nan  # init at "0": no fit, no curve
    fig = finite_size.draw(table)
    location_ax, width_ax = fig.axes
    fits = [line for line in location_ax.lines if line.get_label().endswith(": fit")]
    assert [line.get_label() for line in fits] == [
        "after, pruned after epoch 20 (f_inf = 0.8): fit", "scratch, pruned after epoch 20 (f_inf = 0.8): fit",
        "scratch, pruned after convergence (f_inf = 0.8): fit"]
    n = fits[0].get_xdata()
    assert n[0] == 4 and n[-1] == 8
    np.testing.assert_allclose(fits[0].get_ydata(), 0.8 - 1.0 / n)
    width_fit = next(line for line in width_ax.lines if line.get_label().endswith(": fit"))
    np.testing.assert_allclose(width_fit.get_ydata(), 0.2 * n ** -0.5)


# --------------------------------------------------------------------------- degree maps


def test_degree_maps_show_the_mean_degrees_on_the_image_grid_and_the_teacher_recall(synthetic):
    ds = synthetic.masks()
    assert degree_maps.image_shape(ds) == (4, 4)
    # the last protocol with data ("after"), at its largest size with data (4: 8 is all NaN there)
    assert degree_maps.chosen_point(ds) == {"protocol": "after", "n_hidden": 4}
    ds["mean_visible_degree"][1] = np.nan  # now "after" has no data at all: "init" at 8 hidden units
    assert degree_maps.chosen_point(ds) == {"protocol": "init", "n_hidden": 8}
    fig = degree_maps.draw(ds)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["f = 0.1", "f = 0.5", "f = 0.9"]
    assert fig.get_suptitle() == "protocol = init, n_hidden = 8; f: fraction of connections pruned"
    for f, image in enumerate(images):
        np.testing.assert_array_equal(image.get_array(), ds["mean_visible_degree"].values[0, f, 1].reshape(4, 4))
        assert image.get_clim() == (0, 5)
    recall_ax = next(ax for ax in fig.axes if ax.lines)
    mean, lower, upper = _mean_ci(ds["teacher_recall"].values[0, :, 1])
    np.testing.assert_allclose(_line(recall_ax, "student").get_ydata(), mean)
    np.testing.assert_allclose(_band_bounds(_bands(recall_ax)[0], [0.1, 0.5, 0.9]), np.stack([lower, upper], 1))
    np.testing.assert_allclose(_line(recall_ax, "random masks").get_ydata(),
                               ds["teacher_chance_recall"].values[0, :, 1].mean(axis=-1))
    assert recall_ax.get_ylabel().replace("\n", " ") == \
        "fraction of the teacher's connections kept (hidden units matched) (1)"
    ds["mean_visible_degree"].attrs["image_shape"] = [2, 9]
    with pytest.raises(ValueError, match="image_shape 2x9 does not hold the 16 visible units"):
        degree_maps.image_shape(ds)


# --------------------------------------------------------------------------- rewiring


def test_ncg_lines_are_seed_means_reference_dashed(synthetic):
    ds = synthetic.ncg()
    fig = ncg_trajectories.draw(ds)
    for ax, name in zip(fig.axes, ("density", "nll")):
        assert ax.get_ylabel() == f"{ds[name].attrs['long_name']} ({ds[name].attrs['units']})"
        assert ax.get_xlabel() == "epochs trained (epochs)"
        for i, impl in enumerate(ds["implementation"].values):
            for k, p in enumerate(ds["initial_density"].values):
                line = _line(ax, f"{impl}, p = {p:g}")
                mean, lower, upper = _mean_ci(ds[name].values[i, k].T)
                np.testing.assert_allclose(line.get_ydata(), mean)
                np.testing.assert_array_equal(line.get_xdata(), ds["epoch"].values)
                assert line.get_linestyle() == ("-" if impl == "dilution" else "--")
                band = _bands(ax)[2 * i + k]
                np.testing.assert_allclose(_band_bounds(band, ds["epoch"].values), np.stack([lower, upper], 1))


def test_deep_r_error_bars_are_t_intervals_over_seeds(synthetic):
    ds = synthetic.deep_r()
    fig = deep_r_comparison.draw(ds)
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == ["deep-r", "static", "magnitude"]
    for m, container in enumerate(ax.containers):
        mean, lower, upper = _mean_ci(ds["test_log_likelihood"].values[m])
        np.testing.assert_allclose(container.lines[0].get_ydata(), mean)
        segments = np.array(container.lines[2][0].get_segments())
        np.testing.assert_allclose(segments[:, :, 1], np.stack([lower, upper], 1))
    # dense: a reference level, a dashed line with its band, not an errorbar per connectivity
    mean, lower, upper = _mean_ci(ds["test_log_likelihood"].values[3])
    dense = _line(ax, "dense")
    np.testing.assert_allclose(dense.get_ydata(), mean)
    assert dense.get_linestyle() == "--"
    np.testing.assert_allclose(_band_bounds(_bands(ax)[0], ds["connectivity"].values), np.stack([lower, upper], 1))
    assert ax.get_xlabel() == "fraction of connected pairs (1)"
    assert ax.get_ylabel() == "test log-likelihood (AIS) (nats per sample)"
    # the legend covers no point: it sits below the axes (it hid DEEP R's point at 5 % inside them)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).y1 < ax.get_window_extent(renderer).y0
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:g}" for v in ds["connectivity"].values]


def test_deep_r_figure_draws_the_generalisation_gap_beside_when_the_file_has_it(synthetic):
    ds = synthetic.deep_r()
    assert len(deep_r_comparison.draw(ds).axes) == 1  # no training log-likelihood: one panel
    rng = np.random.default_rng(5)
    ds["train_log_likelihood"] = ds["test_log_likelihood"] + rng.exponential(3.0, ds["test_log_likelihood"].shape)
    fig = deep_r_comparison.draw(ds)
    quality, gap = fig.axes
    assert gap.get_ylabel() == "train - test log-likelihood (nats per sample)"
    assert [c.get_label() for c in gap.containers] == ["deep-r", "static", "magnitude"]
    values = ds["train_log_likelihood"].values - ds["test_log_likelihood"].values
    for m, container in enumerate(gap.containers):
        mean, lower, upper = _mean_ci(values[m])
        np.testing.assert_allclose(container.lines[0].get_ydata(), mean)
        np.testing.assert_allclose(np.array(container.lines[2][0].get_segments())[:, :, 1], np.stack([lower, upper], 1))
    np.testing.assert_allclose(_line(gap, "dense").get_ydata(), _mean_ci(values[3])[0])
    # the first panel is the test log-likelihood as before
    np.testing.assert_allclose(quality.containers[0].lines[0].get_ydata(),
                               _mean_ci(ds["test_log_likelihood"].values[0])[0])
    assert quality.get_legend() is not None and gap.get_legend() is None


def test_deep_r_figure_draws_each_model_at_its_early_stopped_budget(synthetic):
    # two training budgets; the file's early-stopped budget differs between models (the dense model's
    # largest budget is its overfit one): each model is drawn at its own, test and gap alike
    base = synthetic.deep_r()
    rng = np.random.default_rng(11)
    ds = xr.concat([base, base + rng.normal(0, 5, base["test_log_likelihood"].shape)], dim="epochs")
    ds = ds.assign_coords(epochs=("epochs", [200, 800], {"long_name": "epochs", "units": "epochs"}))
    ds["test_log_likelihood"].attrs = base["test_log_likelihood"].attrs
    ds["train_log_likelihood"] = ds["test_log_likelihood"] + rng.exponential(3.0, ds["test_log_likelihood"].shape)
    ds["train_log_likelihood"].attrs = base["test_log_likelihood"].attrs
    pick = rng.integers(0, 2, base["test_log_likelihood"].shape)
    pick[3] = 0  # dense: the smaller budget for every seed and connectivity
    ds["early_stopped_epochs"] = (("method", "connectivity", "seed"), np.array([200.0, 800.0])[pick])
    test, train = (np.take_along_axis(ds[v].values, pick[None], 0)[0]
                   for v in ("test_log_likelihood", "train_log_likelihood"))
    ds["early_stopped_test_log_likelihood"] = (("method", "connectivity", "seed"), test)
    quality, gap = deep_r_comparison.draw(ds).axes
    for m, container in enumerate(quality.containers):
        np.testing.assert_allclose(container.lines[0].get_ydata(), _mean_ci(test[m])[0])
    np.testing.assert_allclose(_line(quality, "dense").get_ydata(), _mean_ci(test[3])[0])
    np.testing.assert_allclose(_line(gap, "dense").get_ydata(), _mean_ci(train[3] - test[3])[0])
    for m, container in enumerate(gap.containers):
        np.testing.assert_allclose(container.lines[0].get_ydata(), _mean_ci(train[m] - test[m])[0])
    assert quality.get_ylabel() == "test log-likelihood (AIS) (nats per sample)"  # the caption names the budget
    # without the early-stopped variables: the largest budget, as before
    plain = deep_r_comparison.draw(ds.drop_vars(["early_stopped_epochs", "early_stopped_test_log_likelihood"]))
    np.testing.assert_allclose(_line(plain.axes[0], "dense").get_ydata(),
                               _mean_ci(ds["test_log_likelihood"].values[1, 3])[0])
    # a model with no scored budget (NaN) stays NaN, not the value of some budget
    ds["early_stopped_epochs"][0, 0, 0] = np.nan
    drawn = deep_r_comparison.at_drawn_budget(ds)
    assert np.isnan(drawn["test_log_likelihood"].values[0, 0, 0])
    assert np.isnan(drawn["train_log_likelihood"].values[0, 0, 0])
    np.testing.assert_array_equal(drawn["test_log_likelihood"].values.ravel()[1:], test.ravel()[1:])


def test_deep_r_figure_labels_ncg_with_its_final_density(synthetic):
    ds = synthetic.deep_r()
    ncg = ds.isel(method=[0]).assign_coords(method=["ncg-p0.5"])
    ds = xr.concat([ds, ncg], dim="method")
    ds = ds.assign_coords(uses_connectivity=("method", [1, 1, 1, 0, 0]))
    ds["final_density"] = xr.full_like(ds["test_log_likelihood"], 0.25)
    ds["final_density"].loc[{"method": "ncg-p0.5"}] = 0.4321
    ax = deep_r_comparison.draw(ds).axes[0]
    assert _line(ax, "ncg-p0.5 (density 0.43)").get_linestyle() == ":"


def test_deep_r_figure_names_the_l1_prior_of_deep_r_when_the_file_has_one(synthetic):
    # mnist_comparison(deep_r_alpha=...) writes the attr; without it the label reads as the run without a prior
    ds = synthetic.deep_r()
    ds.attrs["deep_r_alpha"] = 1e-4
    ax = deep_r_comparison.draw(ds).axes[0]
    assert [c.get_label() for c in ax.containers] == ["deep-r (alpha 0.0001)", "static", "magnitude"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["deep-r (alpha 0.0001)", "dense", "magnitude",
                                                                          "static"]
    ds.attrs["deep_r_alpha"] = 0.0  # what every comparison without the prior writes
    assert deep_r_comparison.draw(ds).axes[0].containers[0].get_label() == "deep-r"


def test_inclusion_maps_put_the_reference_first_and_show_the_probabilities(synthetic):
    ds = synthetic.inclusion()
    fig = inclusion_maps.draw(ds)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["reference", "deep-r", "soft-deep-r", "ncg"]
    for ax in panels:
        m = list(ds["method"].values).index(ax.get_title())
        np.testing.assert_array_equal(ax.images[0].get_array(), ds["inclusion"].values[m])
        assert ax.images[0].get_clim() == (0, 1)
    assert panels[0].get_ylabel() == "visible unit (1)"


def test_inclusion_reference_may_be_the_variable_inclusion_probabilities_writes(synthetic):
    ds = synthetic.inclusion()
    reference = ds["inclusion"].sel({"method": "reference"})
    ds = ds.drop_sel({"method": "reference"})
    ds["reference"] = reference.drop_vars("method").expand_dims(method=ds["method"].values).assign_attrs(
        long_name="reference inclusion probability", units="1")
    fig = inclusion_maps.draw(ds)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["reference", "deep-r", "soft-deep-r", "ncg"]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), reference.values)


def test_divergence_lines_bands_and_floor_are_the_data(synthetic):
    ds = synthetic.divergence()
    fig = divergence.draw(ds)
    kl_ax, tv_ax = fig.axes
    steps = ds["steps"].values
    for k, est in enumerate(ds["estimator"].values):
        np.testing.assert_allclose(_line(kl_ax, est).get_ydata(), ds["kl_reference_estimate"].values[k])
        np.testing.assert_allclose(_line(tv_ax, est).get_ydata(), ds["total_variation"].values[k])
        np.testing.assert_allclose(_band_bounds(_bands(tv_ax)[k], steps),
                                   np.stack([ds["total_variation_lower"].values[k],
                                             ds["total_variation_upper"].values[k]], 1))
        floor = [line for line in kl_ax.lines if line.get_linestyle() == ":"][k]
        np.testing.assert_allclose(floor.get_ydata(), [0.01] * 3)
        np.testing.assert_allclose(_band_bounds(_bands(kl_ax)[k], steps), [[0.01, 0.02]] * 3)
    assert len(_bands(kl_ax)) == 2  # the KL has floor bands but no confidence band in this file
    assert kl_ax.get_ylabel().replace("\n", " ") == "KL(reference || estimate) over masks (nats)"
    assert tv_ax.get_ylabel().replace("\n", " ") == "total variation distance over masks (1)"
    assert tv_ax.get_xscale() == tv_ax.get_yscale() == "log"


# --------------------------------------------------------------------------- effective couplings


def test_coupling_histograms_count_the_pairs_and_the_network_joins_the_strongest_pairs(synthetic):
    ds = synthetic.ising()
    fig = ising_couplings.draw(ds)
    hist_ax, *network_axes = fig.axes
    pairs = [ds["coupling"].values[m][np.triu_indices(9, 1)] for m in range(2)]
    edges = np.linspace(min(p.min() for p in pairs), max(p.max() for p in pairs), ising_couplings.BINS + 1)
    for m, stairs in enumerate(hist_ax.patches):
        values, drawn_edges, _ = stairs.get_data()
        np.testing.assert_allclose(drawn_edges, edges)
        np.testing.assert_array_equal(values, np.histogram(pairs[m], bins=edges)[0])
        assert values.sum() == 36  # every pair j < k of 9 units counted once
    nonzero = [int((p != 0).sum()) for p in pairs]
    assert nonzero[1] < 36  # the pruned model leaves pairs without a shared hidden unit: J = 0, not drawn
    assert [ax.get_title() for ax in network_axes] == [f"dense: {nonzero[0]} strongest |J|",
                                                       f"pruned 0.7: {nonzero[1]} strongest |J|"]
    xy = np.array([(i % 3, 2 - i // 3) for i in range(9)], dtype=float)  # row-major pixels, row 0 on top
    for m, ax in enumerate(network_axes):
        segments = np.array(ax.collections[0].get_segments())
        J = ds["coupling"].values[m]
        # the slow way: every coupled pair j < k, sorted by |J| (stable), the first TOP kept
        ranked = sorted(((abs(J[a, b]), a, b) for a in range(9) for b in range(a + 1, 9) if J[a, b] != 0),
                        key=lambda t: -t[0])
        expected = np.array([[xy[a], xy[b]] for _, a, b in ranked[:ising_couplings.TOP]])
        np.testing.assert_allclose(segments, expected)
        colours = ax.collections[0].get_colors()
        signs = np.array([J[a, b] > 0 for _, a, b in ranked[:ising_couplings.TOP]])
        np.testing.assert_allclose(colours[signs, :3], [matplotlib.colors.to_rgb("#0072B2")] * signs.sum())
    assert hist_ax.get_xlabel().replace("\n", " ") == "effective pairwise coupling J_jk (symmetric, zero diagonal) (1)"


# --------------------------------------------------------------------------- sample grids


def test_sample_grids_tile_each_fractions_samples_row_major(synthetic):
    ds = synthetic.samples()
    assert sample_grids.image_shape(ds) == (3, 4)
    fig = sample_grids.draw(ds)
    assert [ax.get_title() for ax in fig.axes] == ["f = 0", "f = 0.5", "f = 0.9"]
    assert fig.get_suptitle().endswith("f: fraction of connections pruned")
    for f, ax in enumerate(fig.axes):
        drawn = ax.images[0].get_array()
        assert drawn.shape == (4 * 4 - 1, 4 * 5 - 1)
        for i in range(16):  # tile i at row i // 4, column i % 4, each 3 x 4 plus a one-pixel gap
            r, c = divmod(i, 4)
            np.testing.assert_array_equal(drawn[4 * r: 4 * r + 3, 5 * c: 5 * c + 4],
                                          ds["samples"].values[f, i].reshape(3, 4))
        assert drawn.mask[3, :].all() and drawn.mask[:, 4].all()  # the gaps are masked (drawn grey)
