"""Issue 14, item 9: a likelihood at every checkpoint when enumeration is impossible (a short AIS)."""

from __future__ import annotations

import numpy as np
import pytest

from dilution.data import bars_stripes
from dilution.estimators import PCD
from dilution.training import TrainConfig, train


def _run(method: str, **kw):
    data = bars_stripes.sample(3, 300, seed=1)
    cfg = TrainConfig(estimator=PCD(k=1, n_chains=50), epochs=4, batch_size=20, learning_rate=0.1, checkpoints=3, weight_scale=1.5,
                      checkpoint_log_likelihood=method, **kw)
    return train((9, 6), data, cfg, seed=3)


def test_ais_checkpoints_agree_with_exact_within_their_standard_error():
    exact, est = _run("exact"), _run("ais")
    # the evaluation draws from its own streams: the two runs train the same models
    np.testing.assert_array_equal(exact.model.weights, est.model.weights)
    he, ha = exact.history, est.history
    assert ha.attrs["log_likelihood_method"] == "ais" and he.attrs["log_likelihood_method"] == "exact"
    assert ha.log_likelihood.attrs["method"].startswith("AIS") and np.all(he.log_likelihood_se.values == 0)
    se = ha.log_likelihood_se.values
    assert np.all(np.isfinite(ha.log_likelihood.values)) and np.all((se > 0) & (se < 0.5))
    # The training set is the whole population, so the estimate's only error is that of the AIS
    # log Z: asymptotically normal with the reported (delta-method) standard error. Five standard
    # errors: P(|z| > 5) = 6e-7 per checkpoint, 4 checkpoints. AIS's Jensen bias (about se^2 / 2,
    # below 0.02 nats here) is far inside that band.
    z = (ha.log_likelihood.values - he.log_likelihood.values) / se
    assert np.all(np.abs(z) < 5), z
    np.testing.assert_allclose(ha.log_partition.values, he.log_partition.values, atol=float(5 * se.max()))


def test_auto_uses_ais_beyond_the_enumeration_limit_and_none_computes_nothing():
    h = _run("auto", exact_max_units=3).history
    assert h.attrs["log_likelihood_method"] == "ais" and np.all(np.isfinite(h.log_likelihood.values))
    h = _run("none").history
    assert h.attrs["log_likelihood_method"] == "none" and np.all(np.isnan(h.log_likelihood.values))
    assert np.all(np.isnan(h.log_likelihood_se.values))


@pytest.mark.parametrize("field, value, message", [
    ("checkpoint_log_likelihood", "sometimes", "checkpoint_log_likelihood must be one of"),
    ("checkpoint_ais_chains", 1, "checkpoint_ais_chains"),
    ("checkpoint_ais_betas", 1, "checkpoint_ais_betas"),
])
def test_bad_checkpoint_likelihood_options(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})
