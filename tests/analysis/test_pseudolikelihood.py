from __future__ import annotations

import numpy as np
import pytest

from analysis.pseudolikelihood import conditional_log_probabilities, pseudo_log_likelihood
from dilution import exact
from dilution.model import RBM


def enumerated_conditionals(rbm, data):
    """log p(v_i | v_-i) = log p(v) - log(p(v) + p(v with i flipped)) from the exact marginal."""
    lp = exact.log_prob_visible(rbm)
    codes = (data.astype(np.int64) << np.arange(rbm.n_visible)).sum(axis=1)
    out = np.empty(data.shape)
    for i in range(rbm.n_visible):
        flipped = codes ^ (1 << i)
        out[:, i] = lp[codes] - np.logaddexp(lp[codes], lp[flipped])
    return out


def test_conditionals_equal_enumeration():
    rbm = RBM.random(7, 4, connectivity=0.6, weight_scale=1.5, bias_scale=0.7, seed=4)
    data = exact.all_states(7)
    ref = enumerated_conditionals(rbm, data)
    np.testing.assert_allclose(conditional_log_probabilities(rbm, data).values, ref, atol=1e-12)
    ds = pseudo_log_likelihood(rbm, data)
    np.testing.assert_allclose(ds.pseudo_log_likelihood.values, ref.sum(axis=1), atol=1e-11)
    assert ds.attrs["is_proxy"] == 1


def test_stochastic_estimate_scores_one_unit():
    rbm = RBM.random(7, 4, weight_scale=1.0, bias_scale=0.5, seed=5)
    data = exact.all_states(7)
    ref = enumerated_conditionals(rbm, data)
    ds = pseudo_log_likelihood(rbm, data, method="stochastic", seed=11)
    unit = ds.unit.values
    np.testing.assert_allclose(ds.pseudo_log_likelihood.values, 7 * ref[np.arange(len(data)), unit], atol=1e-11)
    again = pseudo_log_likelihood(rbm, data, method="stochastic", seed=11)
    np.testing.assert_array_equal(again.unit.values, unit)
    assert len(np.unique(unit)) == 7
    with pytest.raises(ValueError, match="seed"):
        pseudo_log_likelihood(rbm, data, method="stochastic")
