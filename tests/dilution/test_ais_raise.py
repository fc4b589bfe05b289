"""RAISE (reverse AIS from the data) against the exact probabilities of its annealing model."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import norm

from dilution import exact
from dilution.ais import base_rate_bias, raise_log_likelihood
from dilution.model import RBM

# A correct implementation fails a statistical check below with probability at most ALPHA (union
# bound over its two-sided per-row checks; the per-row means of i.i.d. chain estimates are normal
# by the central limit theorem, their standard errors the chains' own).
ALPHA = 1e-3


def _log_f(states: np.ndarray, rbm: RBM, a0: np.ndarray, beta: float) -> np.ndarray:
    """log of the unnormalised marginal of v on the AIS path at ``beta`` (hidden units summed out)."""
    w, a, b = (x.astype(np.float64) for x in (rbm.weights, rbm.visible_bias, rbm.hidden_bias))
    return states @ ((1.0 - beta) * a0 + beta * a) + np.logaddexp(0.0, beta * (b + states @ w)).sum(axis=1)


def _gibbs_matrix(states: np.ndarray, rbm: RBM, a0: np.ndarray, beta: float) -> np.ndarray:
    """T[v, v'] = sum_h p_beta(h | v) p_beta(v' | h): one sweep (hidden, then visible) at ``beta``."""
    w, a, b = (x.astype(np.float64) for x in (rbm.weights, rbm.visible_bias, rbm.hidden_bias))
    hs = exact.all_states(rbm.n_hidden)

    def layer_prob(field, units):  # P(units | field) for every row of field and every row of units
        p = expit(field)
        return np.prod(np.where(units[None, :, :] == 1, p[:, None, :], 1.0 - p[:, None, :]), axis=2)

    p_h = layer_prob(beta * (b + states @ w), hs)                      # (v, h)
    p_v = layer_prob((1.0 - beta) * a0 + beta * (a + hs @ w.T), states)  # (h, v')
    return p_h @ p_v


def annealing_model(rbm: RBM, a0: np.ndarray, betas) -> np.ndarray:
    """Exact p_ann(v) of RAISE's annealing model, for every visible state (enumeration order).

    The reverse chain from v at beta = 1 multiplies its weight by f_{r_t}(x) / f_{r_{t-1}}(x) at its
    state x for t = 1..K over the reversed schedule r, moving by the Gibbs sweep at r_t between two
    factors; the estimate is f_1(v) / Z_0 times that product. Its expectation, computed backwards.
    """
    states = exact.all_states(rbm.n_visible)
    r = np.asarray(betas, dtype=np.float64)[::-1]
    log_f = [_log_f(states, rbm, a0, beta) for beta in r]
    k = r.size - 1
    phi = np.exp(log_f[k] - log_f[k - 1])
    for t in range(k - 1, 0, -1):
        phi = np.exp(log_f[t] - log_f[t - 1]) * (_gibbs_matrix(states, rbm, a0, r[t]) @ phi)
    log_z0 = np.logaddexp(0.0, a0).sum() + rbm.n_hidden * np.log(2.0)
    return np.exp(log_f[0] - log_z0) * phi


@pytest.fixture(scope="module")
def tiny():
    rbm = RBM.random(5, 3, connectivity=1.0, weight_scale=1.5, bias_scale=0.5, dtype=np.float64, seed=11)
    rng = np.random.default_rng(5)
    base = (rng.random((40, 5)) < 0.3).astype(np.float64)
    return rbm, base


def test_annealing_model_reference_is_a_distribution_and_not_the_rbm(tiny):
    rbm, base = tiny
    a0 = base_rate_bias(base, 5)
    p_ann = annealing_model(rbm, a0, [0.0, 0.3, 0.7, 1.0])
    assert p_ann.sum() == pytest.approx(1.0, abs=1e-12)
    p = np.exp(exact.log_prob_visible(rbm))
    assert np.max(np.abs(p_ann - p)) > 0.02  # three betas do not reach the RBM: the checks below tell them apart


def test_two_beta_schedule_gives_the_base_model_exactly(tiny):
    rbm, base = tiny
    states = exact.all_states(5)
    ds = raise_log_likelihood(rbm, states, base_data=base, seed=3, betas=[0.0, 1.0], chains_per_row=3)
    a0 = base_rate_bias(base, 5)
    log_p0 = states @ a0 - np.logaddexp(0.0, a0).sum()
    np.testing.assert_allclose(ds["log_weights"].values, np.repeat(log_p0[:, None], 3, axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["log_likelihood_row"].values, log_p0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("betas", [[0.0, 0.5, 1.0], [0.0, 0.3, 0.7, 1.0]])
def test_each_row_estimates_the_annealing_models_probability(tiny, betas):
    rbm, base = tiny
    states = exact.all_states(5)
    reps = 3000
    ds = raise_log_likelihood(rbm, states, base_data=base, seed=7, betas=betas, chains_per_row=reps)
    r = np.exp(ds["log_weights"].values)
    mean = r.mean(axis=1)
    se = r.std(axis=1, ddof=1) / np.sqrt(reps)
    target = annealing_model(rbm, base_rate_bias(base, 5), betas)
    z = np.abs(mean - target) / se
    assert np.all(z < norm.isf(ALPHA / (2 * states.shape[0]))), z.max()
    # The per-row estimate is the log of the chains' mean.
    np.testing.assert_allclose(ds["log_likelihood_row"].values, np.log(mean), rtol=1e-12)
    # ... and the RBM's own probabilities are far outside those errors (the estimator targets p_ann).
    p = np.exp(exact.log_prob_visible(rbm))
    assert np.max(np.abs(mean - p) / se) > 10


def test_a_long_schedule_reaches_the_rbms_likelihood(tiny):
    rbm, base = tiny
    rng = np.random.default_rng(2)
    data = (rng.random((50, 5)) < 0.5).astype(np.float64)
    exact_ll = exact.log_likelihood(rbm, data)
    ds = raise_log_likelihood(rbm, data, base_data=base, seed=1, betas=np.linspace(0, 1, 2001), chains_per_row=20)
    # With 2000 betas p_ann is p to far below the chains' error (the three-beta model above differs by
    # up to 0.02 in probability); the per-row spread of log r over 20 chains bounds the Jensen gap.
    gap = ds["log_likelihood_row"].values - exact_ll
    spread = ds["log_weights"].std("repeat", ddof=1).values
    assert np.all(np.abs(gap) < 4 * spread / np.sqrt(20) + 1e-3), gap
    assert abs(float(ds["log_likelihood"]) - exact_ll.mean()) < 0.01


def test_same_seed_same_numbers_any_thread_count(tiny):
    rbm, base = tiny
    states = exact.all_states(5)
    kw = dict(base_data=base, seed=4, betas=np.linspace(0, 1, 50), chains_per_row=7)
    first = raise_log_likelihood(rbm, states, **kw)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = raise_log_likelihood(rbm, states, **kw)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(first["log_weights"].values, single["log_weights"].values)
    other = raise_log_likelihood(rbm, states, **{**kw, "seed": 5})
    assert not np.array_equal(first["log_weights"].values, other["log_weights"].values)


def test_float32_model_runs_on_its_own_dtype(tiny):
    rbm, base = tiny
    r32 = RBM(rbm.weights.astype(np.float32), rbm.visible_bias.astype(np.float32), rbm.hidden_bias.astype(np.float32))
    states = exact.all_states(5)
    ds = raise_log_likelihood(r32, states, base_data=base, seed=7, betas=[0.0, 0.5, 1.0], chains_per_row=3000)
    target = annealing_model(rbm, base_rate_bias(base, 5).astype(np.float32).astype(np.float64), [0.0, 0.5, 1.0])
    r = np.exp(ds["log_weights"].values)
    z = np.abs(r.mean(axis=1) - target) / (r.std(axis=1, ddof=1) / np.sqrt(3000))
    assert np.all(z < norm.isf(ALPHA / (2 * states.shape[0]))), z.max()
    assert ds.attrs["dtype"] == "float32"


def test_dataset_layout_and_summary(tiny):
    rbm, base = tiny
    states = exact.all_states(5)
    ds = raise_log_likelihood(rbm, states, base_data=None, seed=0, betas=np.linspace(0, 1, 20), chains_per_row=2)
    assert ds["log_weights"].dims == ("sample", "repeat") and ds["log_weights"].shape == (32, 2)
    rows = ds["log_likelihood_row"].values
    np.testing.assert_allclose(rows, logsumexp(ds["log_weights"].values, axis=1) - np.log(2), rtol=1e-12)
    assert float(ds["log_likelihood"]) == pytest.approx(rows.mean(), rel=1e-12)
    assert float(ds["log_likelihood_std"]) == pytest.approx(rows.std(ddof=1) / np.sqrt(32), rel=1e-12)
    assert float(ds["log_z_base"]) == pytest.approx(5 * np.log(2) + 3 * np.log(2), rel=1e-12)  # uniform base
    assert ds.attrs["base"] == "uniform" and ds.attrs["chains_per_row"] == 2
    for name in ds.data_vars:
        assert {"long_name", "units"} <= set(ds[name].attrs), name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"chains_per_row": 0}, "chains_per_row"),
        ({"data": np.zeros((1, 5))}, "at least 2 rows"),
        ({"data": np.full((3, 5), 0.5)}, "data"),
        ({"data": np.zeros((3, 4))}, "data"),
        ({"base_data": np.zeros((3, 4))}, "data"),
        ({"betas": [0.0, 0.5]}, "beta = 1"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_is_rejected(tiny, change, message):
    rbm, base = tiny
    kw = dict(data=exact.all_states(5), base_data=base, seed=0, betas=[0.0, 1.0])
    kw.update(change)
    data = kw.pop("data")
    with pytest.raises(ValueError, match=message):
        raise_log_likelihood(rbm, data, **kw)
