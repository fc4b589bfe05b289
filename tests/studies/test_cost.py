"""The cost estimate counts the work an AIS evaluation does: the forward run, the reverse run with
its burn-in sweeps when ``ais_reverse`` is on, and RAISE's chains from every test image when
``ais_raise`` is on. The clock is replaced by a count of chain-steps, so the expected totals are
exact sums and a term left out or scaled wrongly changes them."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from dilution.ais import log_partition
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


@pytest.mark.parametrize("reverse, n_raise", [(False, 0), (True, 0), (False, 3), (True, 2)])
def test_point_evaluation_counts_reverse_and_raise_chains(monkeypatch, reverse, n_raise):
    chains, betas = 40, 501
    raw = builtin_spec("smoke").to_dict()
    raw["evaluation"] = dict(raw["evaluation"], log_likelihood="ais", ais_chains=chains, ais_betas=betas,
                             ais_reverse=reverse, ais_raise=n_raise)
    spec = spec_from_dict(raw)
    data = load_data(spec.data)
    n_test = len(data.test)
    assert n_test > chains  # RAISE is timed on the first ais_chains images and scaled to all of them
    n_visible = data.train.shape[1]
    rbm = RBM(np.random.default_rng(0).normal(0.0, 0.1, (n_visible, 4)), np.zeros(n_visible), np.zeros(4))
    monkeypatch.setattr(cost, "_timed", _chain_steps)
    burn_in = inspect.signature(log_partition).parameters["reverse_burn_in"].default
    expected = chains * (betas - 1)
    if reverse:
        expected += chains * (betas - 1) + chains * burn_in
    expected += n_test * n_raise * (betas - 1)
    assert cost._point_evaluation_time(spec, rbm, data, seed=0) == pytest.approx(expected, rel=1e-12)


def test_point_evaluation_times_the_real_calls():
    """Unfaked: the probes call the real functions with arguments they accept, and RAISE's chains
    (3 from each of 1000 test images, 75 times the forward run's 40) show in the time."""
    raw = builtin_spec("smoke").to_dict()
    raw["evaluation"] = dict(raw["evaluation"], log_likelihood="ais", ais_chains=40, ais_betas=501)
    plain = spec_from_dict(raw)
    raw["evaluation"].update(ais_reverse=True, ais_raise=3)
    both = spec_from_dict(raw)
    data = load_data(plain.data)
    n_visible = data.train.shape[1]
    rbm = RBM(np.random.default_rng(0).normal(0.0, 0.1, (n_visible, 4)), np.zeros(n_visible), np.zeros(4))
    forward = cost._point_evaluation_time(plain, rbm, data, seed=0)
    assert 0.0 < forward < cost._point_evaluation_time(both, rbm, data, seed=0)
