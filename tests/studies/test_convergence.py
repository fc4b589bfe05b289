"""Training to convergence: the trace is the exact held-out log-likelihood, the run stops at the
first evaluation where the rule (recomputed by hand) fires, and a run that never converges is
the plain training run."""

from __future__ import annotations

import numpy as np
import pytest

from dilution import exact
from dilution.estimators import Exact
from dilution.training import TrainConfig, init_state, train
from studies.convergence import train_to_convergence
from studies.spec import StoppingRule


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    proto = rng.random((2, 8)) < 0.5
    rows = proto[rng.integers(0, 2, 240)] ^ (rng.random((240, 8)) < 0.1)
    return rows[:160].astype(np.float64), rows[160:].astype(np.float64)


def _config(epochs=30):
    return TrainConfig(estimator=Exact(), epochs=epochs, batch_size=40, learning_rate=0.1, momentum=0.5,
                       weight_scale=0.3, checkpoints=1, exact_log_likelihood=False)


def test_never_converging_run_is_the_plain_run(data):
    train_set, held_out = data
    rule = StoppingRule(every=3, window=50, tolerance=0.0)
    run = train_to_convergence(init_state((8, 3), train_set, _config(), seed=1), train_set, held_out, rule)
    assert not run.converged and run.epochs_used == 30
    assert run.epochs == tuple(range(0, 31, 3))
    plain = train((8, 3), train_set, _config(), seed=1, progress=False)
    np.testing.assert_array_equal(run.state.params.weights, plain.model.weights)


def test_stops_at_the_first_evaluation_where_the_rule_fires(data):
    train_set, held_out = data
    rule = StoppingRule(every=2, window=2, tolerance=0.02, min_epochs=6)
    run = train_to_convergence(init_state((8, 3), train_set, _config(), seed=1), train_set, held_out, rule,
                               count_from_epoch=2)
    assert run.converged and run.epochs[0] == 2 and run.epochs_used == run.epochs[-1] < 30
    # every traced value is the exact held-out log-likelihood of the model at that epoch
    upe = 4
    for epoch, value in zip(run.epochs, run.values):
        model = train((8, 3), train_set, _config(), seed=1, until=epoch * upe, progress=False).model
        assert value == pytest.approx(float(exact.log_likelihood(model, held_out).mean()), rel=0, abs=1e-12)
    # the rule, by hand: gain = best of the last `window` minus best before, below tolerance, after min_epochs
    fired = [e >= 6 and len(run.values[:i + 1]) > 2 and max(run.values[i - 1:i + 1]) - max(run.values[:i - 1]) < 0.02
             for i, e in enumerate(run.epochs)]
    assert fired.index(True) == len(run.epochs) - 1
