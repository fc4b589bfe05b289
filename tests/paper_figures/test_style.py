from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from PIL import Image
from scipy import stats

from paper_figures import intervals, schema, style


def test_axis_label_reads_long_name_and_units_and_refuses_a_variable_without_them():
    da = xr.DataArray([1.0], dims="x", name="q", attrs={"long_name": "quality", "units": "nats"})
    assert style.axis_label(da) == "quality (nats)"
    da.attrs["long_name"] = "pruning time: epoch after which the network is pruned ('0': at initialisation)"
    assert style.axis_label(da) == "pruning time (nats)"  # the explanation belongs in the caption
    da.attrs.pop("units")
    with pytest.raises(ValueError, match="'q' lacks the CF attributes long_name and units"):
        style.axis_label(da)


def test_seed_interval_equals_a_loop_over_the_t_formula_and_skips_nan_seeds():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 5))
    values[1, :3] = np.nan  # 2 seeds left
    values[2, :4] = np.nan  # 1 seed left: no interval
    values[3, :] = np.nan  # none
    da = xr.DataArray(values, dims=("fraction", "seed"), attrs={"long_name": "q", "units": "nats"})
    out = intervals.seed_interval(da, level=0.9)
    for i in range(4):
        x = values[i][np.isfinite(values[i])]
        assert out["n"].values[i] == x.size
        if x.size == 0:
            assert np.isnan(out["mean"].values[i])
            continue
        np.testing.assert_allclose(out["mean"].values[i], x.mean())
        if x.size < 2:
            assert np.isnan(out["lower"].values[i]) and np.isnan(out["upper"].values[i])
            continue
        half = stats.t.ppf(0.95, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
        np.testing.assert_allclose([out["lower"].values[i], out["upper"].values[i]],
                                   [x.mean() - half, x.mean() + half])
    assert out["mean"].attrs["units"] == "nats"


def test_save_writes_pdf_and_png_with_the_provenance_and_leaves_no_temporary_file(tmp_path):
    fig, axes = style.new_figure(1)
    axes[0, 0].plot([0, 1], [0, 1])
    ds = xr.Dataset(attrs={"study": "teacher", "git_commit": "feedbeef", "dilution_version": "0.1.0"})
    try:
        pdf, png = style.save(fig, tmp_path / "fig", caption="a line", datasets=[ds], sources=["x/merged.nc"])
    finally:
        plt.close(fig)
    assert (pdf.name, png.name) == ("fig.pdf", "fig.png")
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF") and b"/Subject (a line)" in raw
    assert b"study=teacher; git_commit=feedbeef; dilution_version=0.1.0; sources=x/merged.nc" in raw
    text = Image.open(png).text
    assert text["Description"] == "a line" and "git_commit=feedbeef" in text["Keywords"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]


def test_figure_widths_are_the_journal_columns():
    for columns, width in ((1, 3.4), (2, 7.0)):
        fig, _ = style.new_figure(columns)
        assert fig.get_size_inches()[0] == pytest.approx(width)
        plt.close(fig)
    with pytest.raises(ValueError, match="columns must be 1 or 2"):
        style.new_figure(3)


def test_schema_names_the_file_and_the_missing_variable_or_dimension():
    s = schema.Schema({"location": ("n_hidden",)}, description="a transition table")
    ok = xr.Dataset({"location": ("n_hidden", [0.5])})
    assert schema.check(ok, s, "t.nc") is ok
    with pytest.raises(schema.SchemaError, match=r"t.nc \(a transition table\) lacks the variable 'location'"):
        schema.check(xr.Dataset({"width": ("n_hidden", [0.1])}), s, "t.nc")
    with pytest.raises(schema.SchemaError, match=r"variable 'location' has dims \('size',\).*missing \['n_hidden'\]"):
        schema.check(xr.Dataset({"location": ("size", [0.5])}), s, "t.nc")
