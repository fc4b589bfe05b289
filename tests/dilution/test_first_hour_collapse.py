"""Issue 14, item 1: the library's driver notices a collapsing run (not only the CLI)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dilution import exact
from dilution.data import bars_stripes
from dilution.estimators import PCD
from dilution.training import (COLLAPSE_NATS, LikelihoodCollapseWarning, RunawayWeightsWarning, TrainConfig,
                               TrainingWarning, train)


def test_a_collapse_warns_and_the_history_names_the_best_checkpoint():
    # The CLI test's forced collapse: learning rate 5, momentum 0.9, two persistent chains.
    data = bars_stripes.sample(3, 200, seed=0)
    cfg = TrainConfig(estimator=PCD(k=10, n_chains=2), epochs=100, batch_size=10, learning_rate=5.0, momentum=0.9,
                      checkpoints=10)
    models = {}
    with pytest.warns(TrainingWarning) as caught:
        result = train((9, 16), data, cfg, seed=0, callbacks=[lambda r: models.setdefault(r.step, r.model)])
    h = result.history
    ll = h.log_likelihood.values
    best = int(np.argmax(ll))
    assert h.attrs["best_checkpoint"] == best and h.attrs["best_step"] == int(h.step.values[best])
    assert h.attrs["best_log_likelihood"] == ll[best] and ll[-1] < ll[best] - COLLAPSE_NATS
    # the recorded best is what enumeration gives for that checkpoint's model
    best_model = models[h.attrs["best_step"]]
    assert exact.log_likelihood(best_model, data).mean() == pytest.approx(ll[best], abs=1e-9)
    collapse = [w.message for w in caught if isinstance(w.message, LikelihoodCollapseWarning)]
    assert len(collapse) == 1 and collapse[0].best_step == h.attrs["best_step"] and collapse[0].final == ll[-1]
    assert any(isinstance(w.message, RunawayWeightsWarning) for w in caught)


def test_a_healthy_run_does_not_warn():
    data = bars_stripes.sample(3, 200, seed=0)
    cfg = TrainConfig(estimator=PCD(k=1, n_chains=50), epochs=3, batch_size=10, learning_rate=0.05, checkpoints=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        h = train((9, 8), data, cfg, seed=0).history
    assert h.attrs["best_step"] in h.step.values
