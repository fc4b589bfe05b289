"""The bias experiments of studies.stationary (issue 12, items 2 and 3) and their estimators.

``analysis.stationary.deviation_ratios`` is checked against closed forms (exact ratios, the
delta-method variance with the shared reference error); ``studies.stationary.replica_mean``
against its definition; the smoke runs for their labels, for numbers equal to direct calls and
for the one effect the smoke scale resolves: DEEP R's stationary ``sum |w|`` at ``eta = 0.4``
is further from the reference posterior's than at ``eta = 0.1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.stationary import deviation_ratios
from dilution.estimators import CD
from studies.stationary import (
    BIAS_SCALES,
    ESTIMATORS,
    STATISTICS,
    copies_setup,
    discretisation_bias,
    estimator_bias,
    fixed_sign_replicas,
    main,
    replica_mean,
    run_bias_experiments,
    stream_seed,
)

ETA = np.array([0.4, 0.2, 0.1, 0.05])


def test_deviation_ratios_of_an_exactly_linear_bias_are_two():
    ds = deviation_ratios(1.0 + 0.5 * ETA, np.zeros(4), 1.0, 0.0, seed=0)
    np.testing.assert_allclose(ds["deviation"].values, 0.5 * ETA, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds["ratio"].values, 2.0, rtol=1e-12)
    np.testing.assert_allclose(ds["ratio_lower"].values, 2.0, rtol=1e-12)
    np.testing.assert_allclose(ds["ratio_standard_error"].values, 0.0, atol=1e-15)
    # sqrt(eta): sqrt(2) per halving.
    ds = deviation_ratios(np.sqrt(ETA), np.zeros(4), 0.0, 0.0, seed=0)
    np.testing.assert_allclose(ds["ratio"].values, np.sqrt(2.0), rtol=1e-12)


@pytest.mark.parametrize("estimate_se, reference_se", [(0.004, 0.0), (0.0, 0.004), (0.003, 0.003)])
def test_deviation_ratio_intervals_match_the_delta_method_for_small_errors(estimate_se, reference_se):
    # Deviations 0.2, 0.1, 0.05, 0.025 with errors of a few per cent: the ratio is nearly normal,
    # so the 95% percentile interval of the draws has half-width 1.96 x the delta-method standard
    # error up to O(relative error) skew and the draws' own noise (20,000 draws: the quantiles
    # are good to ~1%); 8% covers both. With only the reference's error the deviations move
    # together and the first ratio's variance is s_r^2 / d_2^2 (the covariance term cancels
    # four fifths of it): the interval then checks that the shared error is treated as shared.
    m = 1.0 + 0.5 * ETA
    ds = deviation_ratios(m, np.full(4, estimate_se), 1.0, reference_se, seed=1)
    half = (ds["ratio_upper"] - ds["ratio_lower"]).values / 2
    se = ds["ratio_standard_error"].values
    d = 0.5 * ETA
    expected = np.sqrt(estimate_se**2 * (1 / d[1:] ** 2 + d[:-1] ** 2 / d[1:] ** 4)
                       + reference_se**2 * (1 - d[:-1] / d[1:]) ** 2 / d[1:] ** 2)
    np.testing.assert_allclose(se, expected, rtol=1e-12)
    np.testing.assert_allclose(half[:2], 1.959964 * se[:2], rtol=0.08)
    assert np.all((ds["ratio_lower"].values < 2) & (ds["ratio_upper"].values > 2))


def test_deviation_ratios_refuse_bad_shapes():
    with pytest.raises(ValueError, match="estimates and standard_errors"):
        deviation_ratios([1.0], [0.1], 0.0, 0.0)
    with pytest.raises(ValueError, match="standard errors must be >= 0"):
        deviation_ratios([1.0, 2.0], [0.1, -0.1], 0.0, 0.0)


def test_replica_mean_is_the_spread_of_replica_averages():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 50)) + np.arange(8)[:, None]
    mean, se = replica_mean(x)
    rows = x.mean(axis=1)
    assert mean == pytest.approx(rows.mean(), abs=1e-14)
    assert se == pytest.approx(rows.std(ddof=1) / np.sqrt(8), abs=1e-14)
    with pytest.raises(ValueError, match="at least 2 replicas"):
        replica_mean(x[:1])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("stationary-bias")
    return out, run_bias_experiments("smoke", out, seed=0, progress=False)


def test_smoke_files_are_labelled(smoke):
    out, paths = smoke
    assert [p.name for p in paths] == ["stationary-discretisation.nc", "stationary-discretisation-prior.nc",
                                       "stationary-estimator-bias.nc", "stationary-estimator-bias-deep-r.nc"]
    for path in paths:
        ds = xr.open_dataset(path)
        for var in list(ds.data_vars) + list(ds.coords):
            assert {"long_name", "units"} <= set(ds[var].attrs), f"{path.name}: {var} lacks CF attrs"
        assert "git_commit" in ds.attrs and ds.attrs["seed"] == 0
    disc = xr.open_dataset(out / "stationary-discretisation.nc")
    sc = BIAS_SCALES["smoke"]
    assert dict(disc.sizes) == {"rule": 2, "learning_rate": 3, "statistic": len(STATISTICS), "halving": 2}
    assert list(disc["statistic"].values) == list(STATISTICS)
    np.testing.assert_allclose(disc["learning_rate"].values * disc["steps"].values, sc.time)
    np.testing.assert_allclose(disc["deviation"], disc["estimate"] - disc["reference"], rtol=0, atol=1e-12)
    bias = xr.open_dataset(out / "stationary-estimator-bias.nc")
    assert list(bias["estimator"].values) == list(ESTIMATORS)
    assert bias.attrs["rule"] == "soft-deep-r"
    deep = xr.open_dataset(out / "stationary-estimator-bias-deep-r.nc")
    assert deep.attrs["rule"] == "deep-r" and deep.attrs["deep_r_k"] == copies_setup()["k"]
    # DEEP R keeps exactly K pairs active in every record of every estimator's replicas.
    np.testing.assert_allclose(deep["inclusion"].sum(dim=("visible", "hidden")).values, copies_setup()["k"],
                               rtol=0, atol=1e-9)


def test_smoke_deep_r_weight_bias_shrinks_with_the_learning_rate(smoke):
    # DEEP R's sum |w| at eta = 0.4 is measured 0.68 below the reference at the paper scale (the
    # rule's O(sqrt(eta)) bias); at eta = 0.1 0.38 below. With 16 replicas the deviations'
    # standard errors are ~0.04: both statements hold by several standard errors, and fail if
    # the statistic, the reference or the learning rates are mixed up.
    out, _ = smoke
    d = xr.open_dataset(out / "stationary-discretisation.nc").sel(rule="deep-r", statistic="weight_l1")
    assert int(d["deviation_excludes_zero"].sel(learning_rate=0.4)) == 1
    big, small = d["deviation"].sel(learning_rate=0.4), d["deviation"].sel(learning_rate=0.1)
    err = d["estimate_standard_error"]
    se = np.hypot(err.sel(learning_rate=0.4), err.sel(learning_rate=0.1))
    assert abs(float(big)) - abs(float(small)) > 2 * float(se)
    # DEEP R keeps |M| = K: no deviation at all.
    np.testing.assert_array_equal(xr.open_dataset(out / "stationary-discretisation.nc")["deviation"]
                                  .sel(rule="deep-r", statistic="active_count").values, 0.0)


def test_smoke_prior_only_deviations_against_the_closed_form(smoke):
    # Prior-only limit: references are exact (DEEP R: K T / alpha = 4 x 0.5; soft-DEEP R: D p and
    # D p T / alpha with p = 1/2 here), so each deviation's error is the replicas' spread alone.
    # DEEP R's sum |w| is measured 0.74, 0.54, 0.40 below 2 at eta = 0.4, 0.2, 0.1 (paper scale),
    # standard errors ~0.02 at the smoke scale: every interval excludes 0 and the deviation
    # shrinks at each halving by more than 2 combined standard errors.
    out, _ = smoke
    ds = xr.open_dataset(out / "stationary-discretisation-prior.nc")
    np.testing.assert_allclose(ds["reference"].values, [[4.0, 2.0], [4.0, 2.0]], rtol=1e-12)
    np.testing.assert_array_equal(ds["reference_standard_error"].values, 0.0)
    np.testing.assert_array_equal(ds["deviation"].sel(rule="deep-r", statistic="active_count").values, 0.0)
    d = ds.sel(rule="deep-r", statistic="weight_l1")
    assert np.all(d["deviation_upper"].values < 0)
    dev, se = d["deviation"].values, d["estimate_standard_error"].values
    assert np.all(np.abs(dev[:-1]) - np.abs(dev[1:]) > 2 * np.hypot(se[:-1], se[1:]))


def test_smoke_estimator_bias_equals_a_direct_run(smoke):
    out, _ = smoke
    sc = BIAS_SCALES["smoke"]
    setup = copies_setup()
    run = fixed_sign_replicas(setup["soft_deep_r"], setup["signs"], sc.replicas, setup["data"], sc.estimator_steps,
                              sc.estimator_steps // sc.records, learning_rate=sc.estimator_learning_rate,
                              estimator=CD(k=1), seed=stream_seed(0, "estimator-bias", "soft-deep-r", "cd-1"))
    masks = run["mask"].values[:, run.sizes["record"] // 10:]
    bias = xr.open_dataset(out / "stationary-estimator-bias.nc")
    np.testing.assert_allclose(bias["inclusion"].sel(estimator="cd-1").values, masks.mean(axis=(0, 1)), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(bias["difference"], bias["inclusion"] - bias["reference"], rtol=0, atol=1e-12)
    assert np.all(bias["n_pairs_excluding_zero"].values <= 8)


def test_bias_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="scale must be one of"):
        discretisation_bias("huge")
    with pytest.raises(ValueError, match="rule must be"):
        estimator_bias("smoke", rule="ncg")
    with pytest.raises(ValueError, match="out must be an existing folder"):
        run_bias_experiments("smoke", tmp_path / "missing")
    with pytest.raises(SystemExit):
        main(["--bias", "--scale", "huge", "--out", str(tmp_path)])


def test_cd1_lowers_the_inclusion_of_the_independent_bit_on_the_copies_model():
    # Issue 12 item 3 at a fast scale: soft-DEEP R on copies_setup, CD-1 against exact gradients
    # at the same learning rate (0.2; 8000 updates, the time of the paper run's 80,000 at 0.05)
    # and the same replica count. The paper run (64 replicas x 80,000 updates at eta = 0.05)
    # measured the pair (v3, hidden 1) at 0.510 under CD-1 against 0.563 exact and 0.566 for the
    # reference posterior. Replicas are independent chains, so each mean's standard error is the
    # spread of the 64 replica averages over 8 (~0.009 here); the expected difference -0.05 is
    # ~4 combined standard errors, and the check asks for 2 (the 95% interval excludes 0). With
    # CD-1 replaced by exact gradients it fails in 97.5% of seeds.
    setup = copies_setup()
    means = {}
    for name, est in (("exact", ESTIMATORS["exact"]), ("cd-1", ESTIMATORS["cd-1"])):
        run = fixed_sign_replicas(setup["soft_deep_r"], setup["signs"], 64, setup["data"], 8000, 40,
                                  learning_rate=0.2, estimator=est, seed=5)
        means[name] = replica_mean(run["mask"].values[:, 20:, 3, 1].astype(np.float64))
    (cd, cd_se), (ex, ex_se) = means["cd-1"], means["exact"]
    assert cd - ex < -2 * np.hypot(cd_se, ex_se), f"cd-1 {cd:.3f} +- {cd_se:.3f}, exact {ex:.3f} +- {ex_se:.3f}"
