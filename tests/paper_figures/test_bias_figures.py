"""The bias figures of issue 12 draw their data: discretisation-bias markers at |deviation|, bars at
the interval's |ends|, bound triangles where the interval includes 0, guide lines of slopes 1 and
1/2; estimator-bias markers at the differences with bars at the interval bounds; labels from attrs;
and a missing input makes the registry name the command that makes it."""

from __future__ import annotations

import numpy as np
import pytest

import dilution.io
from paper_figures import discretisation_bias, estimator_bias, registry


def _by_gid(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, f"{gid!r} not among {[line.get_gid() for line in ax.lines]}"
    return found[0]


def _bar_ends(ax, line):
    """(lower, upper) y of the error bar segments drawn at each x of ``line`` (NaN where none)."""
    segments = [seg for coll in ax.collections if coll.__class__.__name__ == "LineCollection"
                for seg in coll.get_segments() if len(seg)]
    x = line.get_xdata()
    out = np.full((2, len(x)), np.nan)
    for i, xi in enumerate(x):
        ys = [seg[:, 1] for seg in segments if np.allclose(seg[:, 0], xi) and line.get_ydata()[i] >= seg[:, 1].min()
              and line.get_ydata()[i] <= seg[:, 1].max()]
        if ys:
            out[:, i] = min(y.min() for y in ys), max(y.max() for y in ys)
    return out


def test_discretisation_markers_bars_bounds_and_guides_equal_the_data(synthetic):
    posterior, prior = synthetic.discretisation(), synthetic.discretisation(prior=True)
    fig = discretisation_bias.draw(posterior, prior)
    axes = np.array(fig.axes[:4]).reshape(2, 2)
    eta = posterior["learning_rate"].values
    for r, ds in enumerate((posterior, prior)):
        for c, rule in enumerate(["deep-r", "soft-deep-r"]):
            ax = axes[r, c]
            assert ax.get_xscale() == ax.get_yscale() == "log"
            for s in ds["statistic"].values:
                dev = ds["deviation"].sel(rule=rule, statistic=s).values
                lo = ds["deviation_lower"].sel(rule=rule, statistic=s).values
                hi = ds["deviation_upper"].sel(rule=rule, statistic=s).values
                if rule == "deep-r" and s == "count":  # zero exactly: nothing drawn, said in the panel
                    assert not [line for line in ax.lines if line.get_gid() == f"deviation {s}"]
                    assert any("deviation = 0 exactly" in t.get_text() and "the count" in t.get_text()
                               for t in ax.texts)
                    continue
                excludes = (lo > 0) | (hi < 0)
                marker = _by_gid(ax, f"deviation {s}")
                np.testing.assert_allclose(marker.get_xdata(), eta)
                np.testing.assert_allclose(marker.get_ydata(), np.where(excludes, np.abs(dev), np.nan))
                ends = _bar_ends(ax, marker)
                want = np.sort(np.abs([lo, hi]), axis=0)
                np.testing.assert_allclose(ends[:, excludes], want[:, excludes])
                bound = _by_gid(ax, f"bound {s}")
                np.testing.assert_allclose(bound.get_ydata(), np.where(excludes, np.nan, np.maximum(abs(lo), abs(hi))))
            for name, slope in (("O(eta)", 1.0), ("O(sqrt eta)", 0.5)):
                (guide,) = [line for line in ax.lines if line.get_label() == name]
                x, y = guide.get_xdata(), guide.get_ydata()
                np.testing.assert_allclose(np.diff(np.log(y)) / np.diff(np.log(x)), slope)
    # exactly one straddling interval in the synthetic data: soft-deep-r, l1, smallest rate
    assert np.isfinite(_by_gid(axes[0, 1], "bound l1").get_ydata()).sum() == 1
    assert fig.get_supxlabel() == "learning rate eta (1)"
    assert fig.get_supylabel() == "|stationary mean minus the reference| (units in the legend)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "the log_likelihood (nats)" in legend and "the l1 (1)" in legend
    assert legend[-1].startswith("95 % interval includes 0")
    assert [ax.get_title() for ax in axes[:, 0]] == ["deep-r: reference posterior mean",
                                                      "deep-r: exact prior-only stationary mean"]


def test_estimator_bias_markers_and_bars_are_the_differences_and_their_intervals(synthetic):
    soft, hard = synthetic.estimator_bias("soft-deep-r"), synthetic.estimator_bias("deep-r", seed=1)
    fig = estimator_bias.draw(soft, hard)
    for ax, ds in zip(fig.axes, (soft, hard)):
        assert ax.get_title() == ds.attrs["rule"]
        # within each connection's group the estimators sit left to right in the file's order
        xs = np.array([_by_gid(ax, f"difference {est}").get_xdata() for est in ds["estimator"].values])
        assert (np.diff(xs, axis=0) > 0).all() and (np.abs(xs - np.round(xs)) < 0.5).all()
        assert any(np.allclose(line.get_ydata(), 0.0) and line.get_xdata()[0] == 0 for line in ax.lines)
        for k, est in enumerate(ds["estimator"].values):
            marker = _by_gid(ax, f"difference {est}")
            row = ds.sel(estimator=est)
            # slow obvious order: connections visible-major, hidden-minor
            want = np.array([[row[v].sel(visible=i, hidden=j).item() for i in ds["visible"].values
                              for j in ds["hidden"].values]
                             for v in ("difference", "difference_lower", "difference_upper")])
            np.testing.assert_allclose(marker.get_ydata(), want[0])
            np.testing.assert_allclose(np.round(marker.get_xdata()), np.arange(want.shape[1]))
            np.testing.assert_allclose(_bar_ends(ax, marker), want[1:])
        assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["(0,0)", "(0,1)", "(1,0)"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["exact", "cd-1", "cd-10", "pcd"]
    assert fig.get_supylabel() == "inclusion probability minus the reference (1)"
    assert fig.get_supxlabel() == "connection (visible unit, hidden unit)"


def test_a_bias_file_missing_makes_the_registry_name_its_command(synthetic, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    dilution.io.save(synthetic.discretisation(), data / "stationary-discretisation.nc")
    figures = {f.name: f for f in registry.FIGURES}
    outcome = registry.render(figures["discretisation-bias"], data, tmp_path / "out")
    assert outcome.status == "missing"
    assert [str(p) for p in outcome.files] == ["stationary-discretisation-prior.nc"]
    assert figures["discretisation-bias"].commands(data, ["stationary-discretisation-prior.nc"]) == [
        f"dilution reproduce --scale smoke --output {tmp_path}"]
    (tmp_path / "out").mkdir()
    dilution.io.save(synthetic.discretisation(prior=True), data / "stationary-discretisation-prior.nc")
    assert registry.render(figures["discretisation-bias"], data, tmp_path / "out", dpi=40).status == "drawn"
    assert registry.render(figures["estimator-bias"], data, tmp_path / "out").status == "missing"


def test_a_file_without_the_interval_is_refused_naming_the_variable(synthetic, tmp_path):
    path = tmp_path / "stationary-estimator-bias.nc"
    dilution.io.save(synthetic.estimator_bias().drop_vars("difference_upper"), path)
    with pytest.raises(ValueError, match="lacks the variable 'difference_upper'"):
        estimator_bias.load(path)
