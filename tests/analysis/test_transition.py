"""Transition location on synthetic sweeps with a known logistic step.

Truth: ``q_s(f) = -1 / (1 + exp(-(f - F_STAR) / WIDTH)) + noise``, i.e. plateaus 0 and -1 and
midpoint ``F_STAR``; both estimators (the interpolated midpoint crossing and the logistic fit)
have ``F_STAR`` as their target. ``F_STAR`` sits between grid points, where linear
interpolation of the logistic is off by 2e-4 (computed from the chord), far below the noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import binom

from analysis.transition import crossing, locate_transition

F_STAR, WIDTH, NOISE = 0.62, 0.04, 0.1
FRACTIONS = np.round(np.linspace(0.0, 0.95, 20), 10)


def _sweep(n_seeds: int, seed: int, step: float = 1.0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    clean = -step / (1.0 + np.exp(-(FRACTIONS - F_STAR) / WIDTH))
    q = clean[:, None] + NOISE * rng.standard_normal((FRACTIONS.size, n_seeds))
    return xr.DataArray(q, dims=("pruning_fraction", "seed"),
                        coords={"pruning_fraction": FRACTIONS, "seed": np.arange(n_seeds)},
                        attrs={"long_name": "test log-likelihood", "units": "nats"})


def test_crossing_by_hand():
    curves = np.array([[1.0, 1.0], [0.8, 0.2], [0.0, 0.1]])
    # midpoint 0.5: curve 0 crosses between 0.5 and 1.0 at 0.5 + 0.5 * 0.3 / 0.8; curve 1 between 0 and 0.5
    np.testing.assert_allclose(crossing(curves, np.array([0.0, 0.5, 1.0]), np.ones(2), np.zeros(2)),
                               [0.5 + 0.5 * 0.3 / 0.8, 0.5 * 0.5 / 0.8])
    assert np.isnan(crossing(np.array([[0.2], [0.1]]), np.array([0.0, 1.0]), np.ones(1), np.zeros(1)))[0]


def test_ci_covers_the_truth_at_the_nominal_rate_and_is_as_wide_as_the_spread():
    # 200 replications of 10 seeds. A percentile bootstrap over n = 10 seeds under-covers: its
    # spread is the plug-in one (factor sqrt((n-1)/n)) and z replaces t_{n-1}, so the coverage of
    # a nominal 95 % interval is about P(|t_9| < 1.96 sqrt(0.9)) = 0.90. Out of 200, the count has
    # sd sqrt(200 * 0.9 * 0.1) = 4.2; the band is the binomial 1e-3 / 1 - 1e-3 quantiles of p = 0.90
    # widened to admit the nominal 0.95.
    reps, covered, widths, estimates = 200, 0, [], []
    for r in range(reps):
        ds = locate_transition(_sweep(10, r), n_bootstrap=300, seed=r)
        assert bool(ds["has_transition"])
        covered += float(ds["location_lower"]) <= F_STAR <= float(ds["location_upper"])
        widths.append(float(ds["location_upper"] - ds["location_lower"]))
        estimates.append(float(ds["location"]))
    assert binom.ppf(1e-3, reps, 0.90) <= covered <= binom.ppf(1 - 1e-3, reps, 0.95)
    # the interval is about 2 x 1.96 sd of the estimate (not trivially wide); the sd of a sample sd
    # of 200 draws is 5 %, so 0.7 to 1.3 allows the bootstrap's sqrt(0.9) shrinkage and 4 sd more
    ratio = np.mean(widths) / (2 * 1.96 * np.std(estimates, ddof=1))
    assert 0.7 < ratio < 1.3
    # unbiased within 4 standard errors of the mean of 200 estimates
    assert abs(np.mean(estimates) - F_STAR) < 4 * np.std(estimates, ddof=1) / np.sqrt(reps)


def test_error_shrinks_with_more_seeds():
    # RMSE ~ 1 / sqrt(n_seeds): 4 -> 16 seeds halves it. Each RMSE from 200 replications has a
    # relative standard error of about 1 / sqrt(2 * 200) = 5 %, so the ratio is 2 +- 0.14; 1.5
    # is 3.5 standard errors below.
    def rmse(n):
        est = [float(locate_transition(_sweep(n, 1000 + r), n_bootstrap=10, seed=r)["location"]) for r in range(200)]
        return np.sqrt(np.mean((np.array(est) - F_STAR) ** 2))

    assert rmse(4) / rmse(16) > 1.5


def test_flat_curve_has_no_transition():
    # With no step the drop's one-sided 95 % lower bound exceeds 0 in about 5 % (bootstrap over 10
    # seeds under-covers: up to about 10 %) of replications; out of 100 the binomial 1 - 1e-3
    # quantile at p = 0.10 bounds the count of false transitions.
    false = 0
    for r in range(100):
        ds = locate_transition(_sweep(10, 5000 + r, step=0.0), n_bootstrap=200, seed=r)
        false += bool(ds["has_transition"])
        if not bool(ds["has_transition"]):
            assert np.isnan(float(ds["location"]))
    assert false <= binom.ppf(1 - 1e-3, 100, 0.10)


def test_logistic_fit_covers_location_and_width():
    # 12 replications, coverage ~0.90 each (as above): at least the binomial 1e-3 quantile.
    reps, cover_loc, cover_width = 12, 0, 0
    for r in range(reps):
        ds = locate_transition(_sweep(10, 9000 + r), method="logistic", n_bootstrap=60, seed=r)
        cover_loc += float(ds["location_lower"]) <= F_STAR <= float(ds["location_upper"])
        cover_width += float(ds["width_lower"]) <= WIDTH <= float(ds["width_upper"])
    assert cover_loc >= binom.ppf(1e-3, reps, 0.90)
    assert cover_width >= binom.ppf(1e-3, reps, 0.90)


def test_other_dims_are_lifted_and_labelled():
    a, b = _sweep(6, 1), _sweep(6, 2)
    both = xr.concat([a, b], dim=xr.DataArray(["init", "after"], dims="protocol", name="protocol"))
    ds = locate_transition(both, n_bootstrap=50, seed=3)
    assert ds["location"].dims == ("protocol",)
    assert list(ds["protocol"].values) == ["init", "after"]
    assert float(ds["location"].sel(protocol="after")) == float(locate_transition(b, n_bootstrap=50)["location"])
    for name, var in ds.data_vars.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no dimension 'pruning_fraction'"):
        locate_transition(_sweep(4, 0).rename(pruning_fraction="p"))
    with pytest.raises(ValueError, match="method must be"):
        locate_transition(_sweep(4, 0), method="spline")


def test_fractions_min_drop_and_confidence_are_checked():
    q = _sweep(4, 0)
    with pytest.raises(ValueError, match=r"^pruning_fraction must be finite, got \[0\.0, .*, nan\]$"):
        locate_transition(q.assign_coords(pruning_fraction=np.r_[FRACTIONS[:-1], np.nan]))
    with pytest.raises(ValueError, match=r"^pruning_fraction needs a coordinate of pruning fractions in \[0, 1\]"):
        locate_transition(q.drop_vars("pruning_fraction"))
    with pytest.raises(ValueError, match=r"^pruning_fraction must hold pruning fractions in \[0, 1\]"):
        locate_transition(q.assign_coords(pruning_fraction=100 * FRACTIONS))
    with pytest.raises(ValueError, match=r"^min_drop must be finite, got nan$"):
        locate_transition(q, min_drop=float("nan"))
    with pytest.raises(ValueError, match=r"^min_drop must be a finite number >= 0, got -1$"):
        locate_transition(q, min_drop=-1)
    with pytest.raises(TypeError, match=r"^confidence must be a number in \(0, 1\), got '0\.9'$"):
        locate_transition(q, confidence="0.9")


@pytest.mark.parametrize("levels", [("0", "-1"), (True, False), 5, "ab", (0.0,), (0.0, float("nan")),
                                    [[0.0, 1.0], [2.0, 3.0]]])
def test_fixed_levels_are_two_numbers(levels):
    # strings and bools passed the old check one at a time (float("0")) and failed in numpy's
    # arithmetic; a bare number failed on len()
    with pytest.raises(ValueError, match=r"^levels must be two finite numbers \(high, low\), got "):
        locate_transition(_sweep(4, 0), levels=levels, n_bootstrap=20)


def test_fixed_levels_in_any_sequence_give_the_same_transition():
    q = _sweep(4, 0)
    found = [locate_transition(q, levels=levels, n_bootstrap=20, seed=1)
             for levels in ((0.0, -1.0), [0, -1], np.array([0.0, -1.0]))]
    for ds in found[1:]:
        xr.testing.assert_identical(ds, found[0])
