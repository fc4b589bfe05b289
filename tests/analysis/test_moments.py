from __future__ import annotations

import numpy as np
import pytest

from analysis.moments import connected_correlations, moment_errors


def binary(shape, p, seed):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float64)


def test_connected_correlations_match_numpy():
    x = binary((200, 6), 0.3, 0)
    m, c = connected_correlations(x)
    np.testing.assert_allclose(m, x.mean(axis=0), atol=1e-15)
    np.testing.assert_allclose(c, np.cov(x.T, bias=True), atol=1e-14)


def test_identical_sets_have_zero_error():
    x = binary((300, 10), np.linspace(0.1, 0.9, 10), 1)
    x[:, 1] = x[:, 0]  # a strong correlation, so the correlation statistic has spread
    ds = moment_errors(x, x)
    np.testing.assert_array_equal(ds.rmse.values, [0.0, 0.0])
    np.testing.assert_allclose(ds.slope.values, [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(ds.pearson_r.values, [1.0, 1.0], atol=1e-12)


def test_empty_samples_closed_form_and_reference():
    data = binary((400, 8), np.linspace(0.2, 0.8, 8), 2)
    data[:, 3] = 1 - data[:, 2]
    ds = moment_errors(np.zeros((50, 8)), data)
    md, cd = connected_correlations(data)
    iu = np.triu_indices(8, 1)
    # All-zero samples: model means and correlations vanish, so rmse = rms of the data statistic,
    # and a constant model statistic has slope 0 and undefined r.
    assert float(ds.rmse.sel(statistic="mean")) == pytest.approx(np.sqrt(np.mean(md**2)), abs=1e-15)
    assert float(ds.rmse.sel(statistic="correlation")) == pytest.approx(np.sqrt(np.mean(cd[iu] ** 2)), abs=1e-15)
    assert float(ds.slope.sel(statistic="mean")) == 0.0
    assert np.isnan(float(ds.pearson_r.sel(statistic="mean")))
    # Slow reference for slope and r of pair correlations between two different sets.
    samples = binary((500, 8), 0.5, 3)
    ds = moment_errors(samples, data)
    cs = connected_correlations(samples)[1][iu]
    dd = cd[iu]
    slope = np.polyfit(dd, cs, 1)[0]
    assert float(ds.slope.sel(statistic="correlation")) == pytest.approx(slope, rel=1e-10)
    assert float(ds.pearson_r.sel(statistic="correlation")) == pytest.approx(np.corrcoef(dd, cs)[0, 1], rel=1e-10)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same number of units"):
        moment_errors(np.zeros((3, 4)), np.zeros((3, 5)))
