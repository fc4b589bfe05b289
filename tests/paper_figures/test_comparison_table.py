"""The rewiring comparison table: every number against a direct computation from a comparison file
built by hand (budgets chosen by early stopping, several AIS budgets, flags set on chosen and on
decoy entries), its Markdown, LaTeX and CSV forms, and its place in `python -m paper_figures`."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import dilution.io
from paper_figures import comparison_table, deep_r_comparison, registry
from paper_figures.schema import MissingData, SchemaError

METHODS = ["deep-r", "static", "dense", "ncg-p1"]
USES = [1, 1, 0, 0]
CONN = [0.01, 0.05]
EPOCHS = [400, 800, 1600]
BETAS = [10_000, 20_000]
CUBE = ("method", "connectivity", "seed", "epochs")


def _attrs(long_name, units):
    return {"long_name": long_name, "units": units}


def make_comparison() -> xr.Dataset:
    """4 methods x 2 connectivities x 3 seeds x 3 training budgets x 2 AIS budgets, with the flags set
    on the entries the table reads and on decoys it must not read (another AIS budget, another epoch)."""
    rng = np.random.default_rng(11)
    shape = (len(METHODS), len(CONN), 3, len(EPOCHS))
    test = rng.normal(-100, 3, shape + (len(BETAS),))
    test[0, 1, 2, 2] = np.nan  # deep-r 0.05 seed 2: 1600 epochs not scored, its largest scored budget is 800
    gain = np.zeros(shape + (len(BETAS),))
    gain[..., 0, :] = np.nan
    se = np.full(gain.shape, 0.1)
    se[..., 0, :] = np.nan
    gain[0, 0, 0, 2, 1] = gain[0, 0, 1, 2, 1] = 1.0  # deep-r 0.01 seeds 0, 1 rising at 1600 (seed 1 stopped at 800)
    gain[0, 0, 2, 2, 1] = 0.2  # seed 2: 2 SE, not rising
    gain[0, 1, 2, 1, 1] = 5.0  # deep-r 0.05 seed 2 rising into 800, its largest scored budget
    gain[1, 0, 0, 2, 0] = 10.0  # static: a rise at the smaller AIS budget only (decoy)
    stopped = np.full(shape[:3], 1600.0)
    stopped[0, 0, 1] = 800
    stopped[0, 1, 2] = 800
    stopped[2] = 400  # the dense model stops early
    stopped[3, :, 0] = np.nan  # ncg seed 0: no scored budget
    test[3, :, 0] = np.nan
    converged = np.ones(shape)
    converged[2, :, 1, 0] = 0  # dense seed 1 at its chosen budget: AIS budgets disagree
    converged[2, :, 0, 2] = 0  # dense seed 0 at a budget it did not stop at (decoy)
    degenerate = np.zeros(shape + (len(BETAS),))
    degenerate[3, :, 2, 2, 1] = 1  # ncg seed 2 at the largest AIS budget
    degenerate[3, :, 1, 2, 0] = 1  # ncg seed 1 at the smaller one (decoy)
    density = np.broadcast_to(np.array([0.01, 0.05])[None, :, None, None], shape).copy()
    density[2] = 1.0
    density[3] = 0.6 + 0.01 * np.arange(len(EPOCHS))  # NCG's density moves with the budget
    data = {
        "test_log_likelihood": (CUBE + ("ais_betas",), test, _attrs("test log-likelihood (AIS)", "nats per sample")),
        "train_log_likelihood": (CUBE + ("ais_betas",), test + rng.uniform(0, 2, test.shape),
                                 _attrs("train log-likelihood", "nats per sample")),
        "epoch_gain": (CUBE + ("ais_betas",), gain, _attrs("gain", "nats per sample")),
        "epoch_gain_se": (CUBE + ("ais_betas",), se, _attrs("gain se", "nats per sample")),
        "ais_degenerate": (CUBE + ("ais_betas",), degenerate, _attrs("degenerate", "1")),
        "log_partition_converged": (CUBE, converged, _attrs("AIS budgets agree", "1")),
        "final_density": (CUBE, density, _attrs("final density", "1")),
        "train_seconds": (CUBE, rng.uniform(100, 9000, shape), _attrs("training time", "s")),
        "classifier_inception_score": (CUBE, rng.uniform(2, 6, shape), _attrs("inception score", "1")),
        "early_stopped_epochs": (CUBE[:3], stopped, _attrs("budget by validation", "epochs")),
    }
    coords = {"method": ("method", METHODS, _attrs("method", "1")),
              "connectivity": ("connectivity", CONN, _attrs("connectivity", "1")),
              "seed": ("seed", [0, 1, 2], _attrs("seed", "1")),
              "epochs": ("epochs", EPOCHS, _attrs("training budget", "epochs")),
              "ais_betas": ("ais_betas", BETAS, _attrs("AIS betas", "1")),
              "uses_connectivity": ("method", np.array(USES, dtype=np.int8), _attrs("uses connectivity", "1"))}
    return xr.Dataset(data, coords=coords, attrs={"deep_r_alpha": 1e-4, "git_commit": "0123abcd"})


def _expected(ds: xr.Dataset, m: int, c: int) -> dict:
    """One row computed directly: per seed the chosen budget, values there at the largest AIS budget."""
    v = {name: ds[name].values for name in ds.data_vars}
    quality, budget, rising, unconv, degen, density, gap, seconds, score = ([] for _ in range(9))
    for s in range(3):
        stop = v["early_stopped_epochs"][m, c, s]
        if not np.isfinite(stop):
            continue
        e = EPOCHS.index(int(stop))
        scored = [i for i in range(len(EPOCHS)) if np.isfinite(v["test_log_likelihood"][m, c, s, i, -1])]
        quality.append(v["test_log_likelihood"][m, c, s, e, -1])
        budget.append(stop)
        largest = max(scored)
        rising.append(e == largest and v["epoch_gain"][m, c, s, largest, -1] > 3 * v["epoch_gain_se"][m, c, s,
                                                                                                         largest, -1])
        unconv.append(v["log_partition_converged"][m, c, s, e] == 0)
        degen.append(v["ais_degenerate"][m, c, s, e, -1] == 1)
        density.append(v["final_density"][m, c, s, e])
        gap.append(v["train_log_likelihood"][m, c, s, e, -1] - v["test_log_likelihood"][m, c, s, e, -1])
        seconds.append(v["train_seconds"][m, c, s, e])
        score.append(v["classifier_inception_score"][m, c, s, e])
    n = len(quality)
    half = stats.t.ppf(0.975, n - 1) * np.std(quality, ddof=1) / np.sqrt(n)
    return {"n_seeds": n, "test_log_likelihood": np.mean(quality), "half": half, "epochs_min": min(budget),
            "epochs_max": max(budget), "rising_seeds": sum(rising), "ais_unconverged_seeds": sum(unconv),
            "ais_degenerate_seeds": sum(degen), "final_density": np.mean(density),
            "generalisation_gap": np.mean(gap), "train_seconds": np.median(seconds),
            "classifier_inception_score": np.mean(score)}


def test_every_number_of_the_table_is_the_direct_computation():
    ds = make_comparison()
    table = comparison_table.tabulate(ds)
    rows = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0)]  # dense and NCG once: repeated along connectivity
    assert table.sizes["row"] == len(rows)
    assert list(table["method"].values) == ["deep-r", "deep-r", "static", "static", "dense", "ncg-p1"]
    np.testing.assert_array_equal(table["connectivity"].values, [0.01, 0.05, 0.01, 0.05, np.nan, np.nan])
    for i, (m, c) in enumerate(rows):
        row, want = table.isel(row=i), _expected(ds, m, c)
        for name, value in want.items():
            if name == "half":
                got = (float(row["test_log_likelihood_upper"]) - float(row["test_log_likelihood_lower"])) / 2
            else:
                got = float(row[name])
            assert got == pytest.approx(value, rel=1e-12), (METHODS[m], CONN[c], name)
    # the flags, by construction: each counted once, the decoys (other AIS budget, other epoch) not at all
    assert list(table["rising_seeds"].values) == [1, 1, 0, 0, 0, 0]
    assert list(table["ais_unconverged_seeds"].values) == [0, 0, 0, 0, 1, 0]
    assert list(table["ais_degenerate_seeds"].values) == [0, 0, 0, 0, 0, 1]
    assert list(table["n_seeds"].values) == [3, 3, 3, 3, 3, 2]
    for name in table.variables:  # the conventions of every Dataset the packages write
        assert {"long_name", "units"} <= set(table[name].attrs), name


def test_without_early_stopping_the_table_reads_the_largest_budget_as_the_figure_does():
    ds = make_comparison().drop_vars("early_stopped_epochs")
    table = comparison_table.tabulate(ds)
    test = ds["test_log_likelihood"].values[..., -1]
    # deep-r 0.05 seed 2 has no 1600-epoch score: left out, as the figure leaves it out
    assert float(table["test_log_likelihood"][1]) == pytest.approx(np.mean(test[0, 1, :2, 2]), rel=1e-12)
    assert int(table["n_seeds"][1]) == 2
    assert (float(table["epochs_min"][1]), float(table["epochs_max"][1])) == (1600, 1600)
    figure = deep_r_comparison.at_drawn_budget(ds)["test_log_likelihood"]
    np.testing.assert_allclose(table["test_log_likelihood"].values[:4],
                               figure.mean("seed").values[:2].ravel(), rtol=1e-12)
    # every model at the largest budget now: deep-r 0.01 seed 1's rise at 1600 counts too
    assert list(table["rising_seeds"].values) == [2, 0, 0, 0, 0, 0]


def test_markdown_has_the_numbers_the_marks_where_flagged_and_says_what_they_mean():
    ds = make_comparison()
    table = comparison_table.tabulate(ds)
    text = comparison_table.markdown(table, caption="The caption.")
    lines = text.splitlines()
    assert lines[0] == "The caption."
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == ["method", "connectivity", "seeds", "test log-likelihood", "density (%)", "epochs",
                      "train - test", "inception score", "training time"]
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:10]]
    want = _expected(ds, 0, 0)
    assert body[0][:4] == ["deep-r (alpha 0.0001)", "0.01", "3",
                           f"{want['test_log_likelihood']:.2f} ± {want['half']:.2f}†"]
    assert body[0][4:6] == ["1.0", "800–1600"]  # seeds stopped at 800 and 1600
    assert body[2][3] == f"{_expected(ds, 1, 0)['test_log_likelihood']:.2f} ± {_expected(ds, 1, 0)['half']:.2f}"
    assert body[4][1] == "–" and body[4][3].endswith("‡") and body[4][5] == "400"
    assert body[5][3].endswith("*") and body[5][2] == "2"
    for row, (m, c) in zip(body, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0)]):
        seconds = _expected(ds, m, c)["train_seconds"]
        assert row[8] == (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200
                          else f"{seconds / 3600:.1f} h")
    notes = lines[11:]
    assert notes[0].startswith("± is the half-width of the 95 % Student-t interval")
    assert [note[0] for note in notes[1:]] == ["†", "‡", "*"]
    # a table without flags explains only the interval
    calm = table.assign(rising_seeds=table["rising_seeds"] * 0, ais_unconverged_seeds=table["rising_seeds"] * 0,
                        ais_degenerate_seeds=table["rising_seeds"] * 0)
    assert "†" not in comparison_table.markdown(calm) and len(comparison_table.markdown(calm).splitlines()) == 10


def test_latex_is_a_booktabs_table_with_escaped_text_and_the_marks_in_math():
    table = comparison_table.tabulate(make_comparison())
    text = comparison_table.latex(table, caption="Rates in %.")
    lines = text.splitlines()
    assert lines[:4] == [r"\begin{table}", r"\centering", r"\begin{tabular}{lrrrrrrrr}", r"\toprule"]
    assert lines[-1] == r"\end{table}" and r"\usepackage" not in text
    rows = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    assert len(rows) == 6 and all(row.count("&") == 8 and row.endswith(r"\\") for row in rows)
    assert r"$\pm$" in rows[0] and rows[0].split(" & ")[3].endswith(r"$^{\dag}$")
    assert rows[4].split(" & ")[1] == "--" and rows[4].split(" & ")[3].endswith(r"$^{\ddag}$")
    assert "density (\\%)" in text and r"\caption{Rates in \%." in text
    assert not re.search(r"(?<!\\)[%_†‡±–]", text)  # nothing LaTeX would misread


def test_write_saves_three_files_atomically_and_the_csv_holds_every_number(tmp_path):
    ds = make_comparison()
    table = comparison_table.tabulate(ds)
    md, tex, csv = comparison_table.write(table, tmp_path / "t", caption="C.", datasets=[ds],
                                          sources=[tmp_path / "in.nc"])
    assert [p.name for p in (md, tex, csv)] == ["t.md", "t.tex", "t.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md", "t.tex"]  # no temporary left
    assert md.read_text().endswith(f"<!-- git_commit=0123abcd; sources={tmp_path / 'in.nc'} -->\n")
    assert tex.read_text().splitlines()[-1] == f"% git_commit=0123abcd; sources={tmp_path / 'in.nc'}"
    frame = pd.read_csv(csv)
    assert list(frame.columns) == [name for name in table.data_vars]
    for name in table.data_vars:
        if table[name].dtype.kind in "iuf":
            np.testing.assert_allclose(frame[name].to_numpy(dtype=float), table[name].values.astype(float),
                                       rtol=1e-15, equal_nan=True)
        else:
            assert list(frame[name]) == list(table[name].values)


def test_the_drawn_budget_takes_every_epochs_variable_at_the_early_stopped_budget():
    # the figure's NCG label reads final_density: at the chosen budget, not the largest
    ds = make_comparison()
    drawn = deep_r_comparison.at_drawn_budget(ds)
    assert float(drawn["final_density"][3, 0, 1]) == pytest.approx(0.62)  # ncg seed 1 stopped at 1600
    ds["early_stopped_epochs"][3, 0, 1] = 400
    assert float(deep_r_comparison.at_drawn_budget(ds)["final_density"][3, 0, 1]) == pytest.approx(0.60)
    assert math.isnan(float(drawn["final_density"][3, 0, 0]))  # no scored budget


def test_a_file_without_scores_is_missing_data_and_a_bad_file_fails_only_its_table(tmp_path):
    ds = make_comparison()
    with pytest.raises(MissingData, match="no scored model"):
        comparison_table.tabulate(ds.assign(test_log_likelihood=ds["test_log_likelihood"] * np.nan))
    data = tmp_path / "data"
    data.mkdir()
    dilution.io.save(ds, data / "rewiring-mnist-500.nc")
    dilution.io.save(ds.drop_vars("test_log_likelihood"), data / "rewiring-mnist.nc")
    report = registry.render_all(data, tmp_path / "out", figures=(), tables=registry.TABLES)
    outcome = {o.figure.name: o for o in report.tables}
    assert outcome["deep-r-vs-static-table"].status == "failed"
    assert "lacks the variable 'test_log_likelihood'" in outcome["deep-r-vs-static-table"].error
    assert outcome["deep-r-vs-static-500-table"].status == "drawn"
    (data / "rewiring-mnist-500.nc").unlink()
    report = registry.render_all(data, tmp_path / "out2", figures=(), tables=registry.TABLES[1:])
    missing, = report.tables_by_status("missing")
    assert missing.files == (Path("rewiring-mnist-500.nc"),)
    assert "dilution reproduce --scale smoke" in report.gallery.read_text()


def test_tabulate_names_what_is_wrong_with_its_input():
    with pytest.raises(TypeError, match="^ds must be an xarray.Dataset .*got DataArray$"):
        comparison_table.tabulate(make_comparison()["test_log_likelihood"])
    with pytest.raises(SchemaError, match="the comparison .* lacks the variable 'test_log_likelihood'"):
        comparison_table.tabulate(make_comparison().drop_vars("test_log_likelihood"))
    with pytest.raises(SchemaError, match=r"variable 'test_log_likelihood' has dims .* \(missing \['seed'\]\)"):
        comparison_table.tabulate(make_comparison().isel(seed=0))


def test_the_figure_marks_the_points_where_a_seed_is_still_rising_as_the_table_counts_them():
    ds = make_comparison()
    table = comparison_table.tabulate(ds)
    ax = deep_r_comparison.draw(ds).axes[0]
    marked = {line.get_label(): line for line in ax.lines if line.get_label().endswith("still rising")}
    assert set(marked) == {"deep-r: a seed still rising"}  # static's rise at the smaller AIS budget is a decoy
    line = marked["deep-r: a seed still rising"]
    assert line.get_markerfacecolor() == "white" and line.get_linestyle() == "None"
    np.testing.assert_allclose(line.get_xdata(), CONN)
    np.testing.assert_allclose(line.get_ydata(), table["test_log_likelihood"].values[:2], rtol=1e-12)
    calm = ds.assign(epoch_gain=ds["epoch_gain"] * 0)
    assert not [line for line in deep_r_comparison.draw(calm).axes[0].lines
                if line.get_label().endswith("still rising")]


def test_the_command_prints_the_table_of_a_file_or_one_line_saying_what_is_wrong(tmp_path, capsys):
    ds = make_comparison()
    dilution.io.save(ds, tmp_path / "c.nc")
    table = comparison_table.tabulate(ds)
    assert comparison_table.main([str(tmp_path / "c.nc")]) == 0
    assert capsys.readouterr().out == comparison_table.markdown(table)
    assert comparison_table.main([str(tmp_path / "c.nc"), "--latex"]) == 0
    assert capsys.readouterr().out == comparison_table.latex(table)
    (tmp_path / "notes.txt").write_text("not netCDF")
    dilution.io.save(ds.drop_vars("test_log_likelihood"), tmp_path / "other.nc")
    for name, words in (("missing.nc", "missing.nc"), ("notes.txt", "notes.txt"),
                        ("other.nc", "lacks the variable 'test_log_likelihood'")):
        assert comparison_table.main([str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1 and "Traceback" not in err
