"""The cost estimate counts the work an AIS evaluation does: the forward run, the reverse run with
its burn-in sweeps when ``ais_reverse`` is on, and RAISE's chains from every test image when
``ais_raise`` is on. The clock is replaced by a count of chain-steps, so the expected totals are
exact sums and a term left out or scaled wrongly changes them."""

from __future__ import annotations

import numpy as np
import pytest

from dilution.ais import REVERSE_BURN_IN
from dilution.model import RBM
from studies import cost
from studies.builtin import builtin_spec
from studies.data import load_data
from studies.spec import spec_from_dict


def _chain_steps(fn, *args, **kwargs) -> float:
    """Stands in for ``cost._timed``: the chain-steps the call would run, in place of its seconds."""
    name = fn.__name__
    if name == "ais_log_likelihood":
        return float(kwargs["n_chains"] * (len(kwargs["betas"]) - 1))
    if name == "raise_log_likelihood":
        return float(len(args[1]) * kwargs["chains_per_row"] * (len(kwargs["betas"]) - 1))
    if name == "advance":
        return float(args[1].visible.shape[0] * args[2])
    raise AssertionError(f"unexpected timed call {name}")


def _ais_spec(**evaluation):
    """The smoke spec with an AIS evaluation of 40 chains over 501 betas, and ``evaluation``."""
    raw = builtin_spec("smoke").to_dict()
    raw["evaluation"] = dict(raw["evaluation"], log_likelihood="ais", ais_chains=40, ais_betas=501, **evaluation)
    return spec_from_dict(raw)


@pytest.fixture(scope="module")
def data_and_rbm():
    data = load_data(_ais_spec().data)
    n_visible = data.train.shape[1]
    rbm = RBM(np.random.default_rng(0).normal(0.0, 0.1, (n_visible, 4)), np.zeros(n_visible), np.zeros(4))
    return data, rbm


@pytest.mark.parametrize("reverse, n_raise", [(False, 0), (True, 0), (False, 3), (True, 2)])
def test_point_evaluation_counts_reverse_and_raise_chains(monkeypatch, data_and_rbm, reverse, n_raise):
    data, rbm = data_and_rbm
    spec = _ais_spec(ais_reverse=reverse, ais_raise=n_raise)
    chains, betas = spec.evaluation.ais_chains, spec.evaluation.ais_betas
    n_test = len(data.test)
    assert n_test > chains  # RAISE is timed on the first ais_chains images and scaled to all of them
    monkeypatch.setattr(cost, "_timed", _chain_steps)
    expected = chains * (betas - 1)
    if reverse:
        expected += chains * (betas - 1) + chains * REVERSE_BURN_IN
    expected += n_test * n_raise * (betas - 1)
    assert cost._point_evaluation_time(spec, rbm, data, seed=0) == pytest.approx(expected, rel=1e-12)


def test_point_evaluation_times_the_real_calls(data_and_rbm):
    """Unfaked: the probes call the real functions with arguments they accept, and RAISE's chains
    (3 from each of 1000 test images, 75 times the forward run's 40) show in the time."""
    data, rbm = data_and_rbm
    forward = cost._point_evaluation_time(_ais_spec(), rbm, data, seed=0)
    assert 0.0 < forward < cost._point_evaluation_time(_ais_spec(ais_reverse=True, ais_raise=3), rbm, data, seed=0)
