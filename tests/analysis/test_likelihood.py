from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

from analysis.likelihood import ais_log_likelihood, exact_log_likelihood, log_likelihood
from dilution import exact
from dilution.model import RBM


def tiny_rbm(seed=0):
    return RBM.random(8, 5, connectivity=0.7, weight_scale=1.0, bias_scale=0.5, seed=seed)


def test_exact_matches_dilution_exact():
    rbm = tiny_rbm()
    data = exact.all_states(8)[np.random.default_rng(0).integers(0, 256, 50)]
    ds = exact_log_likelihood(rbm, data)
    np.testing.assert_allclose(ds.log_likelihood.values, exact.log_likelihood(rbm, data), rtol=0, atol=1e-12)
    assert float(ds.mean_log_likelihood) == pytest.approx(exact.log_likelihood(rbm, data).mean(), abs=1e-12)
    assert float(ds.log_z) == pytest.approx(exact.log_partition(rbm), abs=1e-12)
    # Normalisation: all states together carry probability 1.
    all_ll = exact_log_likelihood(rbm, exact.all_states(8)).log_likelihood.values
    assert np.exp(all_ll).sum() == pytest.approx(1.0, abs=1e-12)
    assert ds.attrs["is_proxy"] == 0


def test_log_likelihood_with_a_given_log_z():
    rbm = tiny_rbm(2)
    data = exact.all_states(8)[np.random.default_rng(2).integers(0, 256, 30)]
    log_z = exact.log_partition(rbm)
    np.testing.assert_allclose(log_likelihood(rbm, data, log_z), exact.log_likelihood(rbm, data), rtol=0, atol=1e-12)
    # another log Z shifts every value by the difference and nothing else
    np.testing.assert_allclose(log_likelihood(rbm, data, log_z + 2.5), exact.log_likelihood(rbm, data) - 2.5,
                               rtol=0, atol=1e-12)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="^log_z must be finite, got"):
            log_likelihood(rbm, data, bad)
    with pytest.raises(ValueError, match="data"):
        log_likelihood(rbm, data[:, :5], log_z)


def test_ais_agrees_with_exact():
    rbm = tiny_rbm(1)
    data = exact.all_states(8)[np.random.default_rng(1).integers(0, 256, 40)]
    ds = ais_log_likelihood(rbm, data, n_chains=200, seed=3, betas=np.linspace(0.0, 1.0, 500), reverse=False)
    ref = exact_log_likelihood(rbm, data)
    # Same free energies, so the difference is the AIS error of log Z: asymptotically normal with
    # the delta-method standard error se, two-sided at total false-alarm probability 1e-3, plus
    # the Jensen bias of the log of a mean of weights, -se^2 / 2 to second order.
    diff = float(ds.mean_log_likelihood - ref.mean_log_likelihood)
    se = float(ds.log_z_std)
    assert abs(diff) < norm.isf(1e-3 / 2) * se + se**2 / 2
    np.testing.assert_allclose(ds.log_likelihood - ref.log_likelihood, -float(ds.log_z) + float(ref.log_z), atol=1e-9)


def _fake_log_partition(estimates: dict[int, tuple[float, float]]):
    """A stand-in for dilution.ais.log_partition returning ``estimates[n_betas] = (log_z, se)``."""
    import xarray as xr

    def fake(rbm, *, n_chains, betas, data, seed, reverse=True, **options):
        log_z, se = estimates[len(betas)]
        return xr.Dataset({"log_z": log_z, "log_z_std": se}, attrs={"n_betas": len(betas), "resample": 0.0,
                                                                      "n_groups": 0})
    return fake


# NCG from p = 1 on a 784 x 500 MNIST RBM (seed 0, 800 epochs; 200 chains in 10 populations, classic
# betas): forward log Z and its SE at 160k, 320k, 640k and 1.28M betas, measured two sessions ago
NCG_CREEP = ([584.738, 584.720, 585.302, 585.820], [0.576, 0.262, 0.144, 0.102])


@pytest.mark.parametrize("series, errors, converged", [
    # a creep of 0.5 nats per doubling, SE 0.15: each step is within 3 combined SE (0.64), the whole
    # series (1.5) is not. One doubling of it would have passed.
    ([0.0, 0.5, 1.0, 1.5], 0.15, 0),
    ([0.0, 0.5], 0.15, 1),
    ([0.0, 0.1, -0.1, 0.05], 0.15, 1),  # noise
    ([0.0, 0.1, 0.9, 1.0], 0.15, 0),  # one step too large
    # the measured creep: every step and the ends (first SE 0.58) pass; 320k against 1.28M does not
    (NCG_CREEP[0], NCG_CREEP[1], 0),
    (NCG_CREEP[0][:2], NCG_CREEP[1][:2], 1),  # its 160k -> 320k doubling alone passed
])
def test_a_doubling_series_is_converged_only_when_no_two_budgets_differ(series, errors, converged, monkeypatch):
    import analysis.likelihood as likelihood
    from dilution import schedules

    sizes = [100 * 2**k for k in range(len(series))]
    errors = np.broadcast_to(errors, len(series))
    monkeypatch.setattr(likelihood.ais, "log_partition", _fake_log_partition(
        {n: (600.0 + z, float(e)) for n, z, e in zip(sizes, series, errors)}))
    rbm = tiny_rbm()
    data = np.zeros((3, rbm.n_visible))
    ds = ais_log_likelihood(rbm, data, n_chains=10, seed=0, betas=schedules.linear(sizes[0]),
                            doubled_betas=[schedules.linear(n) for n in sizes[1:]])
    assert int(ds["log_z_converged"]) == converged
    np.testing.assert_array_equal(ds["n_betas"].values, sizes)
    np.testing.assert_allclose(ds["log_z_series"].values, 600.0 + np.array(series))
    assert float(ds["log_z_shift"]) == pytest.approx(series[-1] - series[-2])
    assert float(ds["log_z_doubled"]) == pytest.approx(600.0 + series[-1])
    # the mean log-likelihood with the largest budget's log Z: the base one's minus the difference
    assert float(ds["mean_log_likelihood_doubled"]) == pytest.approx(
        float(ds["mean_log_likelihood"]) - (series[-1] - series[0]), abs=1e-9)
    assert ds.attrs["ais_n_betas_doubled"] == sizes[-1]


def test_each_doubling_is_an_independent_run_of_its_own_seed(tmp_path):
    from analysis.likelihood import doubled_checkpoint, doubled_seed
    from dilution import ais, schedules

    rbm = tiny_rbm()
    data = (np.random.default_rng(0).random((20, rbm.n_visible)) < 0.5).astype(float)
    options = dict(n_chains=10, base_data=data, reverse=False, n_bootstrap=0, progress=False)
    ds = ais_log_likelihood(rbm, data, seed=4, betas=schedules.linear(50),
                            doubled_betas=[schedules.linear(100), schedules.linear(200)], **options,
                            checkpoint=tmp_path / "ais.npz")
    for k, n in ((1, 100), (2, 200)):
        direct = ais.log_partition(rbm, n_chains=10, betas=schedules.linear(n), data=data, seed=doubled_seed(4, k),
                                   reverse=False, n_bootstrap=0, progress=False)
        assert float(ds["log_z_series"].sel(n_betas=n)) == float(direct["log_z"])
    assert doubled_seed(4, 1) == doubled_seed(4) != doubled_seed(4, 2) != 4
    # one checkpoint per run, named apart
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ais-doubled.npz", "ais-doubled2.npz", "ais.npz"]
    assert doubled_checkpoint(tmp_path / "ais.npz", 2) == tmp_path / "ais-doubled2.npz"
    with pytest.raises(ValueError, match="doubled_betas must be a schedule or a non-empty sequence"):
        ais_log_likelihood(rbm, data, seed=4, betas=schedules.linear(50), doubled_betas=[], **options)
    # user reverse starts serve the base run's reverse side; the doubling runs, forward only, do not take them
    starts = (np.random.default_rng(1).random((10, rbm.n_visible)) < 0.5).astype(rbm.dtype)
    options.update(reverse=True, reverse_init=starts)
    ds = ais_log_likelihood(rbm, data, seed=4, betas=schedules.linear(50), doubled_betas=schedules.linear(100),
                            **options)
    direct = ais.log_partition(rbm, n_chains=10, betas=schedules.linear(100), data=data, seed=doubled_seed(4, 1),
                               reverse=False, n_bootstrap=0, progress=False)
    assert float(ds["log_z_doubled"]) == float(direct["log_z"]) and "log_z_upper" in ds


def test_rbm_and_log_z_are_checked():
    rbm = tiny_rbm(2)
    data = exact.all_states(8)[:10]
    log_z = exact.log_partition(rbm)
    for call in (lambda: log_likelihood(None, data, 8.7), lambda: exact_log_likelihood(None, data),
                 lambda: ais_log_likelihood(None, data, n_chains=10, seed=0)):
        with pytest.raises(TypeError) as err:
            call()
        assert str(err.value) == "rbm must be a dilution.RBM, got NoneType"
    for bad, got in (("8.7", "'8.7'"), (None, "None"), (True, "True"),
                     (np.array([8.7, 8.8]), "an array of shape (2,) and dtype float64"),
                     (xr.Dataset({"log_z": ("n", [8.7, 8.8])}), "an array of shape (2,) and dtype float64")):
        with pytest.raises(TypeError) as err:
            log_likelihood(rbm, data, bad)
        assert str(err.value) == f"log_z must be a number, got {got}"
    with pytest.raises(ValueError, match=r"^log_z Dataset lacks \['log_z'\]"):
        log_likelihood(rbm, data, xr.Dataset())
    # a log_partition result, a 0-d DataArray and a 0-d array give the same values as the number
    expected = log_likelihood(rbm, data, log_z)
    for given in (xr.Dataset({"log_z": log_z, "log_z_std": 0.1}), xr.DataArray(log_z), np.array(log_z)):
        np.testing.assert_array_equal(log_likelihood(rbm, data, given), expected)


def _recording_log_partition(calls: list):
    """A stand-in for dilution.ais.log_partition that records the size of each schedule it runs."""
    fake = _fake_log_partition({n: (600.0, 0.1) for n in range(2, 200)})

    def record(rbm, *, betas, **options):
        calls.append(len(betas))
        return fake(rbm, betas=betas, **options)
    return record


def _linear(n):
    return np.linspace(0.0, 1.0, n)  # dilution.schedules.linear(n)


@pytest.mark.parametrize("doubled_betas, error, message", [
    ([0.0, 0.5], ValueError, "doubled_betas is not a valid AIS schedule: an AIS schedule must start at beta = 0 and "
                             "end at beta = 1"),
    ([_linear(40), [0.0, 2.0, 1.0]], ValueError, "doubled_betas[1] is not a valid AIS schedule: betas must be "
                                                 "non-decreasing"),
    ([_linear(40), [0.0, 0.5]], ValueError, "doubled_betas[1] is not a valid AIS schedule: an AIS schedule must start"),
    (40, TypeError, "doubled_betas must be a schedule or a non-empty sequence of schedules, got 40"),
    # a "doubling" with fewer betas reported a converged log Z
    (_linear(10), ValueError, "doubled_betas must have more betas than betas (20), got 10"),
    ([_linear(40), _linear(40)], ValueError, "doubled_betas[1] must have more betas than doubled_betas[0] (40), got 40"),
    ([_linear(10), _linear(40)], ValueError, "doubled_betas[0] must have more betas than betas (20), got 10"),
])
def test_every_doubled_schedule_is_checked_before_any_run(doubled_betas, error, message, monkeypatch):
    import analysis.likelihood as likelihood

    calls = []
    monkeypatch.setattr(likelihood.ais, "log_partition", _recording_log_partition(calls))
    rbm = tiny_rbm()
    data = np.zeros((3, rbm.n_visible))
    with pytest.raises(error) as err:
        ais_log_likelihood(rbm, data, n_chains=10, seed=0, betas=_linear(20), doubled_betas=doubled_betas)
    assert str(err.value).startswith(message)
    assert calls == []
    # the default betas are the classic 14,500: a doubling must have more
    with pytest.raises(ValueError, match=r"^doubled_betas must have more betas than betas \(14500\), got 40$"):
        ais_log_likelihood(rbm, data, n_chains=10, seed=0, doubled_betas=_linear(40))
    assert calls == []
