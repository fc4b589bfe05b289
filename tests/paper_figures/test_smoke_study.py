"""End to end: the built-in smoke study is run, its transition table computed, and the figures
that read them are drawn by ``render_all`` from the files alone, their lines equal to the seed
means of the real study. Slow (the study trains 12 points); the fast version of the same schema
check is tests/paper_figures/test_producers.py on a synthetic study."""

from __future__ import annotations

import numpy as np
import pytest

import dilution.io
from analysis.transition import transition_table
from paper_figures import registry
from studies.builtin import builtin_spec
from studies.runner import run_study


@pytest.mark.slow
def test_the_smoke_study_is_drawn_from_its_files(tmp_path):
    data = tmp_path / "figures-data"
    folder = data / "study-quick"
    run_study(builtin_spec("smoke", output=str(folder)))
    merged = dilution.io.load_dataset(folder / registry.STUDY_FILE)
    dilution.io.save(transition_table(merged, n_bootstrap=50), folder / registry.TRANSITION_FILE)
    figures = [f for f in registry.FIGURES if f.name in ("quality-vs-fraction-quick", "phase-diagram-quick")]
    report = registry.render_all(data, tmp_path / "figures", figures, dpi=40)
    assert [o.status for o in report.outcomes] == ["drawn", "drawn"], [o.error for o in report.outcomes]
    fig = registry.quality_fraction.draw(*registry.quality_fraction.load(folder / registry.STUDY_FILE,
                                                                         folder / registry.TRANSITION_FILE))
    q = merged["test_log_likelihood"].isel(n_hidden=-1)
    times = [t for t in merged["pruning_time"].values if bool(q.sel(pruning_time=t).notnull().any())]
    assert len(fig.axes) == len(times)
    for ax, time in zip(fig.axes, times):
        for protocol in merged["protocol"].values:
            values = q.sel(protocol=protocol, pruning_time=time).values  # (fraction, seed)
            if not np.isfinite(values).any():
                continue
            line = next(line for line in ax.lines if line.get_label() == protocol)
            np.testing.assert_allclose(line.get_ydata(), np.nanmean(values, axis=-1))
