"""The stationary-law experiments (studies.stationary) and the law the replica kernel samples.

The smoke run is checked for the schema the figures read and against direct calls (one
inclusion map recomputed from a replica run of the same seed, the NCG ranks against the profile
table's order). The bias prior ``bias_l2`` is checked where it matters: on a one-connection-at-a-
time model (DEEP R with K = 1 on a 2 x 1 RBM with data) the replica kernel's stationary law of
the mask, the hidden bias and the likelihood matches the reference posterior sampler's.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.posterior import Posterior, mask_profiles, sample_posterior
from analysis.stationary import effective_sample_size
from dilution.deep_r import DeepR
from dilution.estimators import Exact
from paper_figures import divergence, inclusion_maps
from studies.stationary import (
    ESTIMATORS,
    SCALES,
    experiment_setup,
    fixed_sign_replicas,
    main,
    run_experiments,
    stream_seed,
)

FILES = ("stationary-divergence.nc", "stationary-divergence-soft-deep-r.nc", "stationary-estimators.nc",
         "stationary-learning-rate.nc", "stationary-ncg.nc", "stationary-inclusion.nc")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("stationary")
    paths = run_experiments("smoke", out, seed=0, progress=False)
    return out, paths


def test_smoke_writes_every_file_with_the_figures_schema(smoke):
    out, paths = smoke
    assert sorted(p.name for p in paths) == sorted(FILES)
    assert not list(out.glob(".*.tmp"))
    for name in FILES:
        ds = xr.open_dataset(out / name)
        for var in list(ds.data_vars) + list(ds.coords):
            assert {"long_name", "units"} <= set(ds[var].attrs), f"{name}: {var} lacks CF attrs"
        assert "git_commit" in ds.attrs and ds.attrs["seed"] == 0
    (inc,) = inclusion_maps.load(out / "stationary-inclusion.nc")
    assert [title for title, _ in inclusion_maps.panels(inc)] == ["reference", "deep-r", "soft-deep-r", "ncg"]
    for name in ("stationary-divergence.nc", "stationary-divergence-soft-deep-r.nc"):
        (div,) = divergence.load(out / name)
        assert list(div["estimator"].values) == list(ESTIMATORS)
        assert np.all(np.diff(div["steps"].values) > 0)
        assert {"total_variation_floor", "total_variation_floor_upper", "kl_reference_estimate"} <= set(div.data_vars)


def test_smoke_numbers_equal_direct_calls(smoke):
    out, _ = smoke
    setup = experiment_setup(0)
    sc = SCALES["smoke"]
    # DEEP R with exact gradients, rerun with the experiment's seed: its inclusion map after burn-in.
    run = fixed_sign_replicas(setup["deep_r"], setup["signs"], sc.replicas, setup["data"], sc.steps,
                              sc.steps // sc.records, learning_rate=sc.learning_rate, seed=stream_seed(0, "deep-r", "exact"),
                              estimator=Exact())
    np.testing.assert_array_equal(run["sign"].values, np.broadcast_to(setup["signs"], run["sign"].shape))
    assert np.all(run["mask"].values.sum(axis=(2, 3)) == setup["k"])
    masks = run["mask"].values[:, run.sizes["record"] // 10:]
    inc = xr.open_dataset(out / "stationary-inclusion.nc")
    np.testing.assert_allclose(inc["inclusion"].sel({"method": "deep-r"}).values, masks.mean(axis=(0, 1)), rtol=0,
                               atol=1e-12)
    table = xr.open_dataset(out / "stationary-estimators.nc")
    np.testing.assert_allclose(table["inclusion"].sel({"method": "deep-r", "estimator": "exact"}).values,
                               masks.mean(axis=(0, 1)), rtol=0, atol=1e-12)
    # The reference column is one posterior sample for every estimator of a rule.
    ref = table["reference"].sel({"method": "soft-deep-r"}).values
    np.testing.assert_array_equal(ref, np.broadcast_to(ref[:1], ref.shape))
    np.testing.assert_allclose(inc["inclusion"].sel({"method": "reference"}).values, ref[0], rtol=0, atol=1e-12)
    # (``method`` is also DataArray.sel's own keyword: select it by a dict.)
    # With exact gradients the longest run's mask law is within the divergence's own noise band
    # (the 95% quantile of the two-sample floor at the measured ESS), for DEEP R's size-K slice.
    div = xr.open_dataset(out / "stationary-divergence.nc").sel(estimator="exact").isel(steps=-1)
    assert float(div["total_variation"]) <= float(div["total_variation_floor_upper"])


def test_smoke_ncg_ranks_follow_the_profile_table(smoke):
    out, _ = smoke
    ncg = xr.open_dataset(out / "stationary-ncg.nc")
    assert ncg.sizes["seed"] >= 50
    ranked = np.isfinite(ncg["rank"].values)
    assert ranked.sum() > 0
    assert np.all(ncg["final_size"].values[ranked] == int(ncg["modal_size"]))
    rank, regret, n_masks = (ncg[v].values[ranked] for v in ("rank", "regret", "n_masks_of_size"))
    assert np.all((rank >= 1) & (rank <= n_masks))
    np.testing.assert_array_equal(rank == 1, regret <= 1e-6)
    # The oracle's profile, recomputed with the same settings, is the best of the modal size.
    setup = experiment_setup(0)
    size = int(ncg["modal_size"])
    profiles = mask_profiles(setup["data"], (4, 2), sizes=[size], n_restarts=SCALES["smoke"].profile_restarts,
                             seed=stream_seed(0, "profiles"))
    best = float(profiles["profile_log_likelihood"].max())
    np.testing.assert_allclose(float(ncg["oracle_log_likelihood"].sel(size=size)), best, rtol=0, atol=1e-12)
    mine = ncg["profile_log_likelihood"].values[ranked]
    np.testing.assert_allclose(regret, best - mine, rtol=0, atol=1e-12)
    assert np.all((ncg["last_flip_step"].values >= 0) & (ncg["last_flip_step"].values <= ncg.attrs["ncg_steps"]))


def test_bad_arguments_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="scale must be one of"):
        run_experiments("huge", tmp_path)
    with pytest.raises(ValueError, match="out must be an existing folder"):
        run_experiments("smoke", tmp_path / "missing")
    with pytest.raises(SystemExit):
        main(["--scale", "huge", "--out", str(tmp_path)])


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std() / np.sqrt(effective_sample_size(x)))


def test_replica_kernel_with_bias_l2_samples_the_reference_posterior_on_a_one_connection_model():
    # DEEP R with K = 1 on a 2 x 1 RBM: one of two connections active, the hidden bias sampled
    # under the Gaussian prior bias_l2. The kernel's update is the Euler step of the Langevin
    # dynamics whose law is Posterior.log_density (module docstring of studies.stationary); at
    # eta = 0.01 its O(eta) bias is below the Monte Carlo error here. Both samples carry a
    # standard error from their ESS; a difference beyond 4 combined standard errors fails (a
    # false alarm per quantity has probability 6e-5 under the null).
    data = np.array([[1, 1], [1, 1], [1, 0], [0, 0], [0, 0], [1, 1]], dtype=np.float64)
    temperature, alpha, bias_l2 = 1 / 6, 1 / 6, 0.5
    signs = np.array([[1], [-1]], dtype=np.int8)
    rule = DeepR(k=1, alpha=alpha, temperature=temperature, bias_l2=bias_l2)
    run = fixed_sign_replicas(rule, signs, 32, data, 20_000, 10, learning_rate=0.01, seed=3, estimator=Exact())
    burn = run.sizes["record"] // 10
    post = Posterior("deep-r", signs, alpha, temperature, data=data, n_active=1, bias_l2=bias_l2)
    ref = sample_posterior(post, n_chains=16, n_draws=3000, n_warmup=500, seed=4)
    quantities = {
        "first pair active": (run["mask"].values[:, burn:, 0, 0].astype(float), ref.masks[:, :, 0, 0].astype(float)),
        "hidden bias": (run["hidden_bias"].values[:, burn:, 0], ref.hidden_bias[:, :, 0]),
        "mean log-likelihood": (run["log_likelihood"].values[:, burn:], ref.log_likelihood),
    }
    for name, (x, y) in quantities.items():
        (mx, sx), (my, sy) = _mean_se(x), _mean_se(y)
        assert abs(mx - my) < 4 * np.hypot(sx, sy), f"{name}: kernel {mx:.4f} +- {sx:.4f}, reference {my:.4f} +- {sy:.4f}"
