"""The step-fit transition estimator, its verdict, the protocol gap and finite-size scaling, on
synthetic sweeps whose truth is known: noise-free steps (exact answers), a multi-start scipy
fit (slow reference), and coverage over replications (binomial bands derived in comments)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.optimize import least_squares
from scipy.stats import binom

from analysis.transition import (
    collapse_quality,
    finite_size_scaling,
    fit_step,
    fit_transition,
    gap_table,
    quality_gap,
    scaling_table,
    step_curve,
    transition_table,
)

F_STAR, WIDTH, NOISE = 0.62, 0.04, 0.1
FRACTIONS = np.round(np.linspace(0.0, 0.95, 20), 10)


def _sweep(n_seeds: int, seed: int, step: float = 1.0, location: float = F_STAR, width: float = WIDTH,
           noise: float = NOISE, fractions: np.ndarray = FRACTIONS) -> xr.DataArray:
    """Seed-by-seed quality: an erf step from 0 down to -step plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    clean = step_curve(fractions, location, width, 0.0, -step)
    q = clean[:, None] + noise * rng.standard_normal((fractions.size, n_seeds))
    return xr.DataArray(q, dims=("pruning_fraction", "seed"),
                        coords={"pruning_fraction": fractions, "seed": np.arange(n_seeds)},
                        attrs={"long_name": "test log-likelihood", "units": "nats"})


# --------------------------------------------------------------------------- the fit itself

@pytest.mark.parametrize("form", ["erf", "logistic"])
def test_noise_free_steps_are_recovered_exactly_also_with_missing_points(form):
    rng = np.random.default_rng(0)
    n = 200
    truth = (rng.uniform(0.1, 0.85, n), np.exp(rng.uniform(np.log(0.015), np.log(0.3), n)),
             rng.normal(0, 2, n), rng.normal(-3, 1, n))
    curves = step_curve(FRACTIONS[:, None], *truth, form=form)
    curves[rng.random(curves.shape) < 0.1] = np.nan  # a tenth of the points missing
    fit = fit_step(curves, FRACTIONS, form=form)
    for got, want in zip(fit[:4], truth):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(fit.rss < 1e-18)


def test_noisy_fits_are_as_good_as_a_multistart_scipy_fit():
    # Slow reference: scipy's bounded least squares from a 5 x 3 grid of starts, best of all.
    rng = np.random.default_rng(1)
    curves = step_curve(FRACTIONS[:, None], rng.uniform(0.2, 0.8, 5), 0.05, 0.0, -1.0)
    curves += 0.1 * rng.standard_normal(curves.shape)
    fit = fit_step(curves, FRACTIONS)
    w_lo, w_hi = 0.05 / 4, 0.95
    for c in range(curves.shape[1]):
        def resid(p, y=curves[:, c]):
            return step_curve(FRACTIONS, p[0], np.exp(p[1]), p[2], p[3]) - y

        best = min(
            least_squares(resid, [l0, np.log(w0), 0.0, -1.0],
                          bounds=([0.0, np.log(w_lo), -np.inf, -np.inf], [0.95, np.log(w_hi), np.inf, np.inf])).cost
            for l0 in np.linspace(0.1, 0.9, 5) for w0 in (0.02, 0.08, 0.3)
        )
        assert fit.rss[c] <= 2 * best * (1 + 1e-6) + 1e-12  # least_squares' cost is rss / 2


def test_steepest_descent_and_variance_peak_on_noise_free_replicas():
    # Replicas collapse at F_STAR + d_s with symmetric offsets d_s and no other noise. The mean of
    # the grid chord of a symmetric unimodal slope is largest for the chord centred nearest F_STAR;
    # the seed variance ~ S'(f - F_STAR)^2 var(d) (small d) peaks at the grid point nearest F_STAR.
    offsets = np.array([-0.004, -0.002, 0.0, 0.002, 0.004])
    q = step_curve(FRACTIONS[:, None], F_STAR + offsets, WIDTH, 0.0, -1.0)
    da = xr.DataArray(q, dims=("pruning_fraction", "seed"), coords={"pruning_fraction": FRACTIONS, "seed": range(5)})
    ds = fit_transition(da, n_bootstrap=50)
    mids = (FRACTIONS[:-1] + FRACTIONS[1:]) / 2
    assert float(ds["steepest"]) == mids[np.argmin(np.abs(mids - F_STAR))]
    assert float(ds["susceptibility_location"]) == FRACTIONS[np.argmin(np.abs(FRACTIONS - F_STAR))]
    assert float(ds["location"]) == pytest.approx(F_STAR, abs=1e-4)  # mean of symmetric offsets


# --------------------------------------------------------------------------- coverage and verdict

def _replicated(reps: int, start: int, **kwargs) -> xr.DataArray:
    """``reps`` independent sweeps along a ``rep`` dim (fit_transition fits them in one batch)."""
    return xr.concat([_sweep(10, start + r, **kwargs) for r in range(reps)], dim="rep").assign_coords(rep=range(reps))


def _coverage(reps: int, n_bootstrap: int, start: int) -> tuple[int, int, int]:
    ds = fit_transition(_replicated(reps, start), n_bootstrap=n_bootstrap, seed=start)
    covered = int(((ds["location_lower"] <= F_STAR) & (F_STAR <= ds["location_upper"])).sum())
    covered_width = int(((ds["width_lower"] <= WIDTH) & (WIDTH <= ds["width_upper"])).sum())
    return covered, covered_width, int(ds["has_transition"].sum())


def test_ci_covers_the_truth_in_60_replications():
    # 10 seeds, 200 bootstrap draws (fewer than the default 1000 to keep the suite fast; the
    # expanded interval's tails are then read off about 2 draws each, which loosens it a little).
    # Out of 60 replications at a true coverage of at least 0.90, the count is below
    # binom.ppf(1e-3, 60, 0.90) = 47 with probability below 1e-3; a CI that ignores the seed noise
    # or a biased estimate fails it.
    reps = 60
    covered, covered_width, found = _coverage(reps, 200, 100)
    assert found == reps
    assert binom.ppf(1e-3, reps, 0.90) <= covered
    assert binom.ppf(1e-3, reps, 0.90) <= covered_width


@pytest.mark.slow
def test_ci_covers_the_truth_in_90_to_99_percent_of_200_replications():
    # Issue 10, item 5: the 95 % CI covers the truth in 90-99 % of 200 replications. At a true
    # coverage between 0.93 and 0.96 the count of 200 leaves [180, 198] with probability at most
    # binom.cdf(179, 200, 0.93) + binom.sf(198, 200, 0.96) < 0.05.
    reps = 200
    covered, covered_width, found = _coverage(reps, 1000, 20_000)
    assert found == reps
    assert 0.90 * reps <= covered <= 0.99 * reps
    assert 0.90 * reps <= covered_width <= 0.99 * reps


def _false_transitions(reps: int, n_bootstrap: int) -> int:
    ds = fit_transition(_replicated(reps, 50_000, step=0.0), n_bootstrap=n_bootstrap, seed=1)
    assert np.all(np.isin(ds["verdict"].values, ["no step", "edge", "broad", "transition"]))
    return int(ds["has_transition"].sum())


def test_a_flat_curve_has_no_transition():
    # The step test alone is a 5 % test; "edge" and "broad" reject more, so the false-transition
    # rate p is at most about 0.05. Out of 60, at p = 0.05 the count exceeds
    # binom.ppf(1 - 1e-3, 60, 0.05) = 9 with probability below 1e-3, and "no transition in at least
    # 95 %" allows 3 of 60: the assertion takes the stricter of the two.
    reps = 60
    assert _false_transitions(reps, 200) <= min(binom.ppf(1 - 1e-3, reps, 0.05), 0.05 * reps)


@pytest.mark.slow
def test_a_flat_curve_has_no_transition_in_at_least_95_percent_of_200_replications():
    assert _false_transitions(200, 1000) <= 0.05 * 200


# a collapse near f = 1, as a trained model's: a step in x = -log10(1 - f) at x* = 2 (f* = 0.99)
LOG_FRACTIONS = 1.0 - 10.0 ** -np.array([0.0, 0.3, 0.6, 1.0, 1.3, 1.5, 1.7, 2.0, 2.3, 2.7, 3.0, 3.5, 4.0])
X_STAR, X_WIDTH = 2.0, 0.4


def _log_sweep(n_seeds: int, seed: int) -> xr.DataArray:
    q = _sweep(n_seeds, seed, location=X_STAR, width=X_WIDTH, fractions=-np.log10(1.0 - LOG_FRACTIONS))
    return q.assign_coords(pruning_fraction=LOG_FRACTIONS)


def test_the_log_axis_recovers_a_collapse_near_one_that_the_fraction_axis_puts_at_the_edge():
    # 30 replications of 10 seeds: the log-axis 95 % interval of f* = 1 - 10^-x* must cover the
    # truth in at least binom.ppf(1e-3, 30, 0.90) = 22 of them (probability < 1e-3 of fewer at a
    # true coverage of 0.90); along f the step's lower plateau is one grid point wide, and the fit
    # puts the midpoint at the grid's edge
    reps = 30
    q = xr.concat([_log_sweep(10, 300 + r) for r in range(reps)], dim="rep").assign_coords(rep=range(reps))
    log_fit = fit_transition(q, n_bootstrap=200, axis="log-remaining", seed=3, keep_bootstrap=True)
    f_star = 1.0 - 10.0 ** -X_STAR
    covered = int(((log_fit["location_lower"] <= f_star) & (f_star <= log_fit["location_upper"])).sum())
    assert covered >= binom.ppf(1e-3, reps, 0.90)
    assert int(log_fit["has_transition"].sum()) == reps
    # the width is in decades: the truth 0.4 within the interval as often
    covered_width = int(((log_fit["width_lower"] <= X_WIDTH) & (X_WIDTH <= log_fit["width_upper"])).sum())
    assert covered_width >= binom.ppf(1e-3, reps, 0.90)
    assert log_fit.attrs["axis"] == "log-remaining" and "decades" in log_fit["width"].attrs["long_name"]
    assert np.all((log_fit["location_bootstrap"] > 0.9) & (log_fit["location_bootstrap"] < 1.0))
    linear = fit_transition(q.isel(rep=slice(0, 5)), n_bootstrap=200, seed=3)
    assert set(linear["verdict"].values.tolist()) == {"edge"}


def test_an_unknown_axis_or_a_fraction_of_one_is_named():
    with pytest.raises(ValueError, match="axis must be 'fraction' or 'log-remaining'"):
        fit_transition(_sweep(5, 0), n_bootstrap=50, axis="log")
    with pytest.raises(ValueError, match="log-remaining.*\\[0, 1\\)"):
        fit_transition(_sweep(5, 0).assign_coords(pruning_fraction=np.linspace(0, 1, 20)), n_bootstrap=50,
                       axis="log-remaining")


def test_edge_broad_and_insufficient_verdicts():
    # a step whose midpoint is past the last fraction (its upper part visible in the grid), one at
    # the first fraction, a straight decline, and two seeds
    for location in (0.97, 0.0):
        beyond = fit_transition(_sweep(10, 1, location=location, width=0.03), n_bootstrap=200)
        assert str(beyond["verdict"].values) == "edge" and not bool(beyond["has_transition"])
        assert float(beyond["p_value"]) < 0.05
    line = _sweep(10, 2, noise=0.02).copy(data=-FRACTIONS[:, None] + 0.02 * np.random.default_rng(2).standard_normal((20, 10)))
    assert str(fit_transition(line, n_bootstrap=200)["verdict"].values) == "broad"
    few = fit_transition(_sweep(2, 3), n_bootstrap=50)
    assert str(few["verdict"].values) == "insufficient data" and int(few["n_seeds"]) == 2


def test_unconverged_points_are_excluded_and_counted():
    q = _sweep(8, 4)
    converged = xr.ones_like(q, dtype=bool)
    converged[15:, 0] = False  # seed 0 never converged at the six largest fractions
    finished = xr.ones_like(q, dtype=bool)
    finished[3, 5] = False
    ds = fit_transition(q, converged=converged, finished=finished, n_bootstrap=100, seed=1)
    by_hand = q.where(converged & finished)
    reference = fit_transition(by_hand, n_bootstrap=100, seed=1)
    assert int(ds["n_excluded"]) == 6 and int(ds["n_unconverged_used"]) == 0 and int(ds["n_seeds"]) == 8
    assert int(ds["n_points"]) == 20 * 8 - 6
    for name in ("location", "location_lower", "width", "steepest"):
        assert float(ds[name]) == float(reference[name])
    kept = fit_transition(q, converged=converged, finished=finished, exclude="unfinished", n_bootstrap=100)
    assert int(kept["n_excluded"]) == 1 and int(kept["n_unconverged_used"]) == 5
    with pytest.raises(ValueError, match="exclude must be"):
        fit_transition(q, exclude="all")
    with pytest.raises(ValueError, match="converged must have the same coordinates"):
        fit_transition(q, converged=converged.isel(seed=slice(0, 4)).assign_coords(seed=[10, 11, 12, 13]))


def _merged() -> xr.Dataset:
    """A small merged study: protocol x pruning_time x n_hidden x pruning_fraction x seed."""
    blocks = []
    for i, (p, t) in enumerate([("init", 0), ("init", 20), ("after", 0), ("after", 20)]):
        for j, n in enumerate((8, 16)):
            blocks.append(_sweep(6, 10 * i + j, location=0.5 + 0.05 * i).expand_dims(
                protocol=[p], pruning_time=[t], n_hidden=[n]))
    q = xr.combine_by_coords([b.to_dataset(name="test_log_likelihood") for b in blocks])["test_log_likelihood"]
    q.attrs.update(long_name="test log-likelihood", units="nats")
    merged = xr.Dataset({"test_log_likelihood": q, "converged": xr.ones_like(q, dtype=bool),
                         "finished": xr.ones_like(q, dtype=bool)})
    for d in merged.dims:
        merged[d].attrs.update(long_name=d.replace("_", " "), units="1")
    return merged


def test_transition_table_lifts_over_the_other_dims_and_is_labelled():
    merged = _merged()
    table = transition_table(merged, n_bootstrap=60, seed=5)
    assert set(table["location"].dims) == {"protocol", "pruning_time", "n_hidden"}
    for name, var in table.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
    assert "git_commit" in table.attrs or "dilution_version" in table.attrs
    one = merged.sel(protocol="after", pruning_time=20, n_hidden=16)
    alone = fit_transition(one["test_log_likelihood"], n_bootstrap=60, seed=5)
    for name in ("location", "location_lower", "location_upper", "p_value"):
        assert float(table[name].sel(protocol="after", pruning_time=20, n_hidden=16)) == float(alone[name])
    assert table["location_bootstrap"].sizes["bootstrap"] == 60
    with pytest.raises(ValueError, match="quality 'nll'"):
        transition_table(merged, quality="nll")
    # the gap and scaling tables over the same study: labelled, and equal to the functions they wrap
    gap = gap_table(merged, {"protocol": "after"}, {"protocol": "init"}, n_bootstrap=60)
    q = merged["test_log_likelihood"]
    direct = quality_gap(q, {"protocol": "after"}, {"protocol": "init"}, n_bootstrap=60)
    np.testing.assert_array_equal(gap["gap_lower"], direct["gap_lower"])
    np.testing.assert_allclose(gap["gap"], (q.sel(protocol="after") - q.sel(protocol="init")).mean("seed")
                               .transpose(*gap["gap"].dims))
    scaling = scaling_table(merged, table, require_transition=False)
    np.testing.assert_array_equal(scaling["f_inf"], finite_size_scaling(table, require_transition=False)["f_inf"])
    for ds in (gap, scaling):
        for name, var in ds.variables.items():
            assert var.attrs.get("long_name") and var.attrs.get("units"), name


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no dimension 'seed'"):
        fit_transition(_sweep(4, 0).rename(seed="replica"))
    with pytest.raises(ValueError, match="form must be"):
        fit_transition(_sweep(4, 0), form="tanh")
    with pytest.raises(ValueError, match="n_bootstrap must be"):
        fit_transition(_sweep(4, 0), n_bootstrap=10)
    with pytest.raises(ValueError, match="must hold distinct values"):
        fit_transition(_sweep(4, 0).isel(pruning_fraction=[0, 1, 1, 2]))
    # a grid too short to fit is not an error: every block says so
    short = fit_transition(_sweep(4, 0).isel(pruning_fraction=slice(0, 3)), n_bootstrap=50)
    assert str(short["verdict"].values) == "insufficient data" and np.isnan(float(short["location"]))


def test_a_fraction_axis_that_is_not_finite_fractions_is_refused():
    # a NaN passes the ordering check (np.diff is NaN, not <= 0); without a coordinate the fit ran
    # along the indices 0..19, and in percent it reported f* = 62
    q = _sweep(5, 0)
    with pytest.raises(ValueError, match=r"^pruning_fraction must be finite, got \[0\.0, 0\.05, .*, 0\.9, nan\]$"):
        fit_transition(q.assign_coords(pruning_fraction=np.r_[FRACTIONS[:-1], np.nan]), n_bootstrap=50)
    with pytest.raises(ValueError, match="^pruning_fraction needs a coordinate of pruning fractions in \\[0, 1\\]"):
        fit_transition(q.drop_vars("pruning_fraction"), n_bootstrap=50)
    percent = r"^pruning_fraction must hold pruning fractions in \[0, 1\], got \[0\.0, 5\.0, 10\.0, "
    with pytest.raises(ValueError, match=percent):
        fit_transition(q.assign_coords(pruning_fraction=100 * FRACTIONS), n_bootstrap=50)
    with pytest.raises(ValueError, match="^pruning_fraction must be a numeric coordinate"):
        fit_transition(q.assign_coords(pruning_fraction=[str(f) for f in FRACTIONS]), n_bootstrap=50)
    # the log axis takes the same fractions (its own check refuses f = 1)
    assert fit_transition(_log_sweep(5, 0), n_bootstrap=50, axis="log-remaining").attrs["axis"] == "log-remaining"


@pytest.mark.parametrize("min_drop, error, message", [
    (float("nan"), ValueError, "min_drop must be finite, got nan"),
    (-0.5, ValueError, "min_drop must be a finite number >= 0, got -0.5"),
    ("x", TypeError, "min_drop must be a number, got 'x'"),
    ("0.5", TypeError, "min_drop must be a number, got '0.5'"),
])
def test_a_min_drop_that_is_not_a_finite_number_at_least_zero_is_refused(min_drop, error, message):
    # a NaN min_drop made the clear step of the sweep "no step" (drop > nan is False)
    with pytest.raises(error) as err:
        transition_table(_merged(), n_bootstrap=50, min_drop=min_drop)
    assert str(err.value) == message


@pytest.mark.parametrize("confidence, error, message", [
    ("0.9", TypeError, "confidence must be a number in (0, 1), got '0.9'"),
    (None, TypeError, "confidence must be a number in (0, 1), got None"),
    (float("nan"), ValueError, "confidence must be in (0, 1), got nan"),
    (1, ValueError, "confidence must be in (0, 1), got 1"),
])
def test_a_confidence_that_is_not_a_number_in_0_1_is_refused(confidence, error, message):
    with pytest.raises(error) as err:
        transition_table(_merged(), n_bootstrap=50, confidence=confidence)
    assert str(err.value) == message


def test_keep_bootstrap_must_be_a_bool():
    # bool("no") is True: the draws were kept
    with pytest.raises(TypeError) as err:
        transition_table(_merged(), n_bootstrap=50, keep_bootstrap="no")
    assert str(err.value) == "keep_bootstrap must be True or False, got 'no'"
    table = transition_table(_merged(), n_bootstrap=50, keep_bootstrap=np.bool_(False))
    assert "location_bootstrap" not in table
    with pytest.raises(TypeError, match="^require_transition must be True or False, got 1$"):
        finite_size_scaling(transition_table(_merged(), n_bootstrap=50), require_transition=1)


def test_converged_flags_must_be_bool_or_0_1_without_missing_values():
    # astype(bool) read NaN and the string "False" as True: the unconverged points were used
    merged = _merged()
    n = merged["converged"].size
    unknown = merged["converged"].astype(float).where(merged["pruning_fraction"] < 0.6)  # NaN past f = 0.6
    expected = "converged must be bool (or 0/1 without missing values), got "
    for flag, message in (
        (unknown, f"float64 with {int(unknown.isnull().sum())} NaN"),
        (merged["converged"].copy(data=np.full(merged["converged"].shape, "False")), "<U5"),
        (merged["converged"].astype(np.int64) * 2, f"int64 with {n} other values, e.g. 2"),
    ):
        with pytest.raises(ValueError) as err:
            transition_table(merged.assign(converged=flag), n_bootstrap=50)
        assert str(err.value) == expected + message
    # a flag with other seed labels, assigned to the Dataset, is all NaN there: not "all converged"
    shifted = merged.assign(converged=xr.zeros_like(merged["converged"]).assign_coords(seed=merged["seed"] + 10))
    assert bool(shifted["converged"].isnull().all())
    with pytest.raises(ValueError) as err:
        transition_table(shifted, n_bootstrap=50)
    assert str(err.value) == (expected + f"float64 with {n} NaN, all of them "
                              "(was it assigned to a Dataset with other coordinates?)")
    with pytest.raises(ValueError, match="^finished must be bool"):
        transition_table(merged.assign(finished=merged["finished"].astype(float).where(merged["seed"] > 0)),
                         n_bootstrap=50)
    # 0/1 as integers or floats is read as bool: the same table as with bool flags
    by_bool = transition_table(merged.assign(converged=merged["converged"] & (merged["seed"] > 0)), n_bootstrap=50)
    for dtype in (np.int8, np.float64):
        by_number = transition_table(merged.assign(converged=(merged["converged"] & (merged["seed"] > 0)).astype(dtype)),
                                     n_bootstrap=50)
        assert int(by_number["n_excluded"].sum()) == int(by_bool["n_excluded"].sum()) > 0
        np.testing.assert_array_equal(by_number["location"], by_bool["location"])


# --------------------------------------------------------------------------- protocol gap

def test_paired_gap_is_the_mean_of_per_seed_differences_and_covers_the_truth():
    # 200 replications (a "rep" dim lifted by quality_gap) of 8 seeds sharing a per-seed effect
    # (sd 1) with independent noise (sd 0.2) and a true gap of 0.3 at every fraction. Coverage of
    # the expanded interval for a normal mean is ~0.95; the count out of 200 lies within the
    # binomial 1e-3 / 1 - 1e-3 quantiles of p = 0.93 and p = 0.97 (allowing the bootstrap's
    # approximation) except with probability 2e-3.
    rng = np.random.default_rng(6)
    reps, n, gap = 200, 8, 0.3
    shared = rng.standard_normal((reps, 1, n))
    a = shared + gap + 0.2 * rng.standard_normal((reps, 3, n))
    b = shared + 0.2 * rng.standard_normal((reps, 3, n))
    q = xr.DataArray(np.stack([a, b]), dims=("protocol", "rep", "pruning_fraction", "seed"),
                     coords={"protocol": ["after", "scratch"], "pruning_fraction": [0.2, 0.5, 0.8]},
                     attrs={"long_name": "test log-likelihood", "units": "nats"})
    ds = quality_gap(q, {"protocol": "after"}, {"protocol": "scratch"}, n_bootstrap=400)
    np.testing.assert_allclose(ds["gap"].transpose("rep", "pruning_fraction"), (a - b).mean(axis=2))
    assert bool(ds["paired"].all()) and int(ds["n_pairs"].min()) == n
    covered = int(((ds["gap_lower"] <= gap) & (gap <= ds["gap_upper"])).isel(pruning_fraction=0).sum())
    assert binom.ppf(1e-3, reps, 0.93) <= covered <= binom.ppf(1 - 1e-3, reps, 0.97)
    # pairing removes the shared per-seed effect: the paired interval is about 2 x 2.5 x the
    # standard error 0.2 sqrt(2 / 8) = 0.1 wide (0.5), an unpaired one 2 x 2.5 x sqrt(2 x 1.04 / 8)
    # = 2.6 wide; 1.0 separates the two
    assert float((ds["gap_upper"] - ds["gap_lower"]).mean()) < 1.0


def test_unpaired_gap_when_the_seeds_have_no_data_in_common():
    rng = np.random.default_rng(7)
    values = rng.standard_normal((2, 3, 6))
    values[0, :, 3:] = np.nan  # protocol a: seeds 0-2; protocol b: seeds 3-5
    values[1, :, :3] = np.nan
    q = xr.DataArray(values, dims=("protocol", "pruning_fraction", "seed"),
                     coords={"protocol": ["a", "b"], "pruning_fraction": [0.1, 0.5, 0.9], "seed": range(6)})
    ds = quality_gap(q, {"protocol": "a"}, {"protocol": "b"}, n_bootstrap=100)
    assert not bool(ds["paired"].any())
    np.testing.assert_allclose(ds["gap"], np.nanmean(values[0], axis=1) - np.nanmean(values[1], axis=1))
    with pytest.raises(ValueError, match="select the same dims"):
        quality_gap(q, {"protocol": "a"}, {"pruning_fraction": 0.1})


# --------------------------------------------------------------------------- finite-size scaling

SIZES = np.array([16, 32, 64, 128])


def _law(n):
    """The synthetic scaling law: f*(N) = 0.8 - 3 / N, w(N) = 0.3 N^-0.5."""
    return 0.8 - 3.0 / n, 0.3 * n ** -0.5


def test_noise_free_scaling_law_is_recovered_exactly_and_collapses():
    fractions = np.round(np.linspace(0.3, 0.95, 27), 10)
    blocks = []
    for n in SIZES:
        loc, w = _law(n)
        blocks.append(_sweep(4, 0, location=loc, width=w, noise=0.0, fractions=fractions).expand_dims(n_hidden=[n]))
    q = xr.concat(blocks, dim="n_hidden")
    table = fit_transition(q, n_bootstrap=50, keep_bootstrap=True)
    assert bool(table["has_transition"].all())
    fss = finite_size_scaling(table)
    assert float(fss["f_inf"]) == pytest.approx(0.8, abs=1e-7)
    assert float(fss["inverse_size_slope"]) == pytest.approx(-3.0, abs=1e-5)
    assert float(fss["width_exponent"]) == pytest.approx(0.5, abs=1e-6)
    assert float(fss["width_amplitude"]) == pytest.approx(0.3, rel=1e-5)
    assert int(fss["n_sizes"]) == 4
    # the collapse against a slow reference, with the fitted rescaling (noise-free: only the linear
    # interpolation's error remains) and with a wrong one (every width taken as the smallest size's)
    wrong = table.copy()
    wrong["width"] = xr.full_like(table["width"], float(table["width"].isel(n_hidden=0)))
    good, bad = float(collapse_quality(q, table)["collapse"]), float(collapse_quality(q, wrong)["collapse"])
    assert good == pytest.approx(_slow_collapse(q, table, fractions), rel=1e-9)
    assert bad == pytest.approx(_slow_collapse(q, wrong, fractions), rel=1e-9)
    assert good < bad / 100 and good < float(collapse_quality(q, table)["collapse_unscaled"]) / 100


def _slow_collapse(q: xr.DataArray, table: xr.Dataset, fractions: np.ndarray) -> float:
    xs, ys = [], []
    for k in range(len(SIZES)):
        t = table.isel(n_hidden=k)
        xs.append((fractions - float(t["location"])) / float(t["width"]))
        ys.append((q.isel(n_hidden=k).mean("seed").values - float(t["low"])) / float(t["high"] - t["low"]))
    grid = np.linspace(max(x.min() for x in xs), min(x.max() for x in xs), 50)
    pairs = [np.mean((np.interp(grid, xs[i], ys[i]) - np.interp(grid, xs[j], ys[j])) ** 2)
             for i in range(len(xs)) for j in range(i + 1, len(xs))]
    return float(np.mean(pairs))


def test_scaling_intervals_cover_the_law_in_200_synthetic_tables():
    # Per-size estimates f*_N = f*(N) + e_N with e_N ~ N(0, 0.01) and their bootstrap draws
    # e_N + N(0, 0.01) (a correct bootstrap of a normal estimate); with 30 "seeds" the expanded
    # interval is essentially the normal one, so coverage ~0.95 and the count out of 200 lies in
    # the binomial 1e-3 / 1 - 1e-3 quantiles of p = 0.93 / 0.97 except with probability 2e-3.
    rng = np.random.default_rng(8)
    reps, b = 200, 400
    loc, w = _law(SIZES.astype(float))
    sd = 0.01
    est = loc + sd * rng.standard_normal((reps, 4))
    west = w * np.exp(sd * rng.standard_normal((reps, 4)))
    ds = xr.Dataset(
        {"location": (("rep", "n_hidden"), est), "width": (("rep", "n_hidden"), west),
         "location_bootstrap": (("rep", "n_hidden", "bootstrap"), est[..., None] + sd * rng.standard_normal((reps, 4, b))),
         "width_bootstrap": (("rep", "n_hidden", "bootstrap"), west[..., None] * np.exp(sd * rng.standard_normal((reps, 4, b)))),
         "has_transition": (("rep", "n_hidden"), np.ones((reps, 4), bool)),
         "n_seeds": (("rep", "n_hidden"), np.full((reps, 4), 30))},
        coords={"n_hidden": SIZES},
    )
    fss = finite_size_scaling(ds)
    lo, hi = binom.ppf(1e-3, reps, 0.93), binom.ppf(1 - 1e-3, reps, 0.97)
    assert lo <= int(((fss["f_inf_lower"] <= 0.8) & (0.8 <= fss["f_inf_upper"])).sum()) <= hi
    assert lo <= int(((fss["width_exponent_lower"] <= 0.5) & (0.5 <= fss["width_exponent_upper"])).sum()) <= hi
    with pytest.raises(ValueError, match="keep_bootstrap=True"):
        finite_size_scaling(ds.drop_vars("location_bootstrap"))
