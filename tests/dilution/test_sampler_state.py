"""Sampler states: continued Gibbs and tempering runs equal one run bit for bit, and the drivers
give the numbers of a direct kernel run."""

from __future__ import annotations

import numpy as np
import pytest

from dilution import RBM, gibbs, tempering
from dilution.ais import padded_weights
from dilution.rng import chain_keys, derive_seed

DTYPES = [np.float32, np.float64]

# (connectivity, n_chains, path the kernel takes): 128 dense chains make blocks of 32, whose
# half-sweeps may go through the GEMM; 40 chains at connectivity 0.1 run the sparse path; 8
# chains at 0.1 fall back to the gathering dense path.
GIBBS_CASES = [(1.0, 128, "blocked"), (0.1, 40, "sparse"), (0.1, 8, "blocked")]


def gibbs_model(connectivity: float, dtype) -> RBM:
    return RBM.random(30, 20, connectivity=connectivity, weight_scale=1.0, bias_scale=0.5, dtype=dtype, seed=3)


def old_gibbs_driver(rbm: RBM, n_chains: int, n_sweeps: int, seed: int, beta: float):
    """What ``gibbs.sample`` did before states existed: initial states and keys from the seed, one
    kernel call for all the sweeps."""
    rng = np.random.default_rng(derive_seed(seed, "gibbs-init"))
    v = (rng.random((n_chains, rbm.n_visible)) < 0.5).astype(rbm.dtype)
    keys = chain_keys(derive_seed(seed, "gibbs"), n_chains)
    return gibbs.gibbs_kernel(
        v, rbm.weights, np.ascontiguousarray(rbm.weights.T), rbm.visible_bias, rbm.hidden_bias,
        np.full(n_chains, beta, dtype=rbm.dtype), np.zeros(rbm.n_visible, dtype=rbm.dtype), keys, np.uint64(0),
        n_sweeps,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("connectivity, n_chains, path", GIBBS_CASES)
def test_gibbs_sample_matches_the_kernel_and_continues_exactly(dtype, connectivity, n_chains, path):
    rbm = gibbs_model(connectivity, dtype)
    assert gibbs.gibbs_path(rbm.weights, n_chains) == path
    v_ref, h_ref = old_gibbs_driver(rbm, n_chains, 20, seed=4, beta=0.9)
    v, h = gibbs.sample(rbm, n_chains, 20, seed=4, beta=0.9, return_hidden=True)
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(h, h_ref)
    assert h.any() and v.dtype == h.dtype == dtype
    # 10 + 10 sweeps through sample()
    _, st = gibbs.sample(rbm, n_chains, 10, seed=4, beta=0.9, return_state=True)
    v2, h2, st2 = gibbs.sample(rbm, None, 10, state=st, return_hidden=True, return_state=True)
    np.testing.assert_array_equal(v2, v_ref)
    np.testing.assert_array_equal(h2, h_ref)
    assert st2.sweeps == 20
    # 3 + 17 and 0 + 20 sweeps through advance()
    st = gibbs.init_state(rbm, n_chains, seed=4, beta=0.9)
    for split in ([3, 17], [0, 20]):
        out = st
        for n in split:
            out = gibbs.advance(rbm, out, n)
        np.testing.assert_array_equal(out.visible, v_ref)
        np.testing.assert_array_equal(out.hidden, h_ref)


def test_gibbs_chunks_do_not_change_the_draws(monkeypatch):
    rbm = gibbs_model(0.1, np.float64)
    whole = gibbs.sample(rbm, 40, 10, seed=5, return_hidden=True)
    # one sweep of 40 chains is 40 * 50 * 20 multiply-adds: force kernel calls of 3 sweeps
    monkeypatch.setattr(gibbs, "_CHUNK_WORK", 3 * 40 * 50 * 20)
    chunked = gibbs.sample(rbm, 40, 10, seed=5, return_hidden=True)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_gibbs_advance_is_pure():
    rbm = gibbs_model(0.1, np.float32)
    st = gibbs.advance(rbm, gibbs.init_state(rbm, 40, seed=6), 2)
    before = [x.copy() for x in (st.visible, st.hidden, st.keys)]
    a = gibbs.advance(rbm, st, 5)
    b = gibbs.advance(rbm, st, 5)
    for x, y in zip(before, (st.visible, st.hidden, st.keys)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_array_equal(a.hidden, b.hidden)
    assert st.sweeps == 2 and a.sweeps == 7
    assert a.visible is not st.visible
    # zero sweeps: an equal state with new arrays
    c = gibbs.advance(rbm, st, 0)
    np.testing.assert_array_equal(c.visible, st.visible)
    assert c.visible is not st.visible and c.sweeps == 2


def test_gibbs_model_changes_between_advances():
    rbm_a = gibbs_model(0.1, np.float64)
    rbm_b = rbm_a.replace(weights=rbm_a.weights * 1.5, hidden_bias=rbm_a.hidden_bias - 0.2)
    st = gibbs.init_state(rbm_a, 40, seed=7)
    out = gibbs.advance(rbm_b, gibbs.advance(rbm_a, st, 4), 5)
    # reference: the kernel with the draw counter continued across the change of model
    stride = gibbs.draws_per_sweep(30, 20)
    args = (np.ones(40), np.zeros(30), st.keys)
    v, _ = gibbs.gibbs_kernel(st.visible, rbm_a.weights, np.ascontiguousarray(rbm_a.weights.T),
                              rbm_a.visible_bias, rbm_a.hidden_bias, *args, np.uint64(0), 4)
    v, h = gibbs.gibbs_kernel(v, rbm_b.weights, np.ascontiguousarray(rbm_b.weights.T),
                              rbm_b.visible_bias, rbm_b.hidden_bias, *args, np.uint64(4 * stride), 5)
    np.testing.assert_array_equal(out.visible, v)
    np.testing.assert_array_equal(out.hidden, h)
    with pytest.raises(ValueError, match="30 visible units but the model has 21"):
        gibbs.advance(RBM.random(21, 20, seed=0), st, 1)
    with pytest.raises(ValueError, match="20 hidden units but the model has 19"):
        gibbs.advance(RBM.random(30, 19, seed=0), st, 1)
    with pytest.raises(ValueError, match="dtype float64 but the model is float32"):
        gibbs.advance(rbm_a.astype(np.float32), st, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_chains=41), "n_chains=41 conflicts"),
        (dict(seed=9), "seed=9 conflicts"),
        (dict(beta=0.5), "beta=0.5 conflicts"),
        (dict(init=np.zeros((40, 30))), "init conflicts"),
    ],
)
def test_gibbs_continuation_rejects_conflicting_arguments(kwargs, match):
    rbm = gibbs_model(0.1, np.float64)
    st = gibbs.init_state(rbm, 40, seed=8, beta=0.7)
    args = dict(n_chains=None, n_sweeps=1, state=st)
    with pytest.raises(ValueError, match=match):
        gibbs.sample(rbm, **{**args, **kwargs})
    # the same arguments, agreeing, are accepted
    agree = dict(n_chains=40, seed=8, beta=0.7, init=st.visible)
    np.testing.assert_array_equal(gibbs.sample(rbm, **{**args, **agree}), gibbs.advance(rbm, st, 1).visible)
    with pytest.raises(ValueError, match="needs n_chains and seed"):
        gibbs.sample(rbm, 40, 1)


# ---------------------------------------------------------------------------------------------
# Tempering


def tempering_model(dtype) -> RBM:
    """Strong enough couplings that swaps are sometimes rejected, weak enough for round trips."""
    return RBM.random(12, 6, connectivity=0.6, weight_scale=2.0, bias_scale=0.5, dtype=dtype, seed=3)


def old_tempering_driver(rbm, n_chains, n_sweeps, *, n_temps, beta_min, seed, burn_in, thin, adapt):
    """What ``tempering.sample`` did before states existed, as direct kernel calls: one call for
    the burn-in (rounds of ``burn_in // 20`` sweeps with ``adapt``), one for the recorded sweeps."""
    n_v, dt = rbm.n_visible, rbm.dtype
    rng = np.random.default_rng(derive_seed(seed, "tempering-init"))
    v = (rng.random((n_chains, n_temps, n_v)) < 0.5).astype(dt)
    keys = chain_keys(derive_seed(seed, "tempering"), n_chains)
    ladder = np.geomspace(beta_min, 1.0, n_temps)
    ladder[-1] = 1.0
    walker = np.tile(np.arange(n_temps, dtype=np.int64), (n_chains, 1))
    last_end = np.zeros((n_chains, n_temps), dtype=np.int8)
    trip_start = np.zeros((n_chains, n_temps), dtype=np.int64)
    w, w_t = padded_weights(rbm)
    common = (rbm.visible_bias, rbm.hidden_bias, np.zeros(n_v, dtype=dt), keys)
    single = dt == np.float32
    length = max(1, burn_in // 20)
    rounds = [length] * (burn_in // length) + [burn_in % length] if adapt else [burn_in]
    done = 0
    for step in rounds:
        if step:
            v, walker, last_end, trip_start, _, acc, _, _ = tempering.tempering_kernel(
                v, ladder, w, w_t, *common, done, step, step, walker, last_end, trip_start, single
            )
            if adapt:
                tried = np.array([sum((g % 2) == (k % 2) for g in range(done, done + step)) for k in range(n_temps - 1)])
                ladder = tempering.adapt_ladder(ladder, acc.sum(axis=0) / np.maximum(tried * n_chains, 1), 0.3)
            done += step
    out = tempering.tempering_kernel(v, ladder, w, w_t, *common, done, n_sweeps, thin, walker, last_end, trip_start,
                                     single)
    return ladder, out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("burn_in, adapt", [(0, False), (33, False), (45, True)])
def test_tempering_sample_matches_the_kernel(dtype, burn_in, adapt):
    rbm = tempering_model(dtype)
    kw = dict(n_temps=5, beta_min=0.2, seed=11, burn_in=burn_in)
    res = tempering.sample(rbm, 7, 40, thin=3, adapt=adapt, **kw)
    ladder, (v, walker, last_end, trip_start, smp, acc, trips, trip_sweeps) = old_tempering_driver(
        rbm, 7, 40, thin=3, adapt=adapt, **kw
    )
    d = res.diagnostics
    np.testing.assert_array_equal(res.samples, smp)
    np.testing.assert_array_equal(res.replicas, v)
    np.testing.assert_array_equal(d.betas.values, ladder)
    np.testing.assert_array_equal(d.swap_accepts.values, acc)
    np.testing.assert_array_equal(d.round_trips.values, trips)
    np.testing.assert_array_equal(d.round_trip_sweeps.values, trip_sweeps)
    assert res.state is None
    assert adapt == (not np.array_equal(ladder, d.initial_betas.values))


def assert_same_run(one, parts):
    """One ``sample`` result against the results of its continued pieces (with states)."""
    np.testing.assert_array_equal(one.samples, np.concatenate([p.samples for p in parts]))
    np.testing.assert_array_equal(one.replicas, parts[-1].replicas)
    a, b = one.state, parts[-1].state
    for name in ("replicas", "betas", "walker", "last_end", "trip_start", "keys", "base_bias"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.sweeps, a.record_from, a.seed, a.n_hidden) == (b.sweeps, b.record_from, b.seed, b.n_hidden)
    d = one.diagnostics
    np.testing.assert_array_equal(d.betas.values, parts[-1].diagnostics.betas.values)
    for name in ("swap_accepts", "swap_attempts", "round_trips", "round_trip_sweeps"):
        np.testing.assert_array_equal(d[name].values, sum(p.diagnostics[name].values for p in parts), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "split, thin, burn_in, adapt",
    [
        ((10, 10), 5, 0, False),  # thin divides the split
        ((10, 10), 3, 0, False),  # it does not: the second piece starts between two records
        ((3, 17), 3, 0, False),
        ((7, 13), 4, 25, False),
        ((10, 10), 3, 45, True),  # adapted ladder carried over
        ((4, 6, 10), 4, 20, True),
    ],
)
def test_tempering_sample_continues_exactly(dtype, split, thin, burn_in, adapt):
    rbm = tempering_model(dtype)
    kw = dict(n_temps=5, beta_min=0.2, seed=12, thin=thin, return_state=True)
    one = tempering.sample(rbm, 7, sum(split), burn_in=burn_in, adapt=adapt, **kw)
    parts = [tempering.sample(rbm, 7, split[0], burn_in=burn_in, adapt=adapt, **kw)]
    for n in split[1:]:
        parts.append(tempering.sample(rbm, None, n, state=parts[-1].state, thin=thin, return_state=True))
    assert_same_run(one, parts)
    assert one.diagnostics.round_trips.sum() > 0 and one.diagnostics.swap_accepts.sum() > 0
    assert one.samples.shape[0] == sum(split) // thin


def test_tempering_advance_continues_exactly_and_records_on_global_sweeps():
    rbm = tempering_model(np.float64)
    st = tempering.init_state(rbm, 6, seed=13, n_temps=4, beta_min=0.2)
    whole, stats = tempering.advance(rbm, st, 10, thin=2)
    np.testing.assert_array_equal(stats.record_sweeps, [2, 4, 6, 8, 10])
    np.testing.assert_array_equal(stats.samples[-1], tempering.cold_visible(whole))
    pieces, got = st, []
    for n in (3, 7):
        pieces, s = tempering.advance(rbm, pieces, n, thin=2)
        got.append(s)
    np.testing.assert_array_equal(np.concatenate([s.record_sweeps for s in got]), stats.record_sweeps)
    np.testing.assert_array_equal(np.concatenate([s.samples for s in got]), stats.samples)
    for name in ("accepts", "attempts", "round_trips", "round_trip_sweeps"):
        np.testing.assert_array_equal(getattr(stats, name), sum(getattr(s, name) for s in got), err_msg=name)
    for name in ("replicas", "walker", "last_end", "trip_start"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name), err_msg=name)
    assert whole.sweeps == pieces.sweeps == 10
    # thin=None records nothing; the state is the same
    quiet, none = tempering.advance(rbm, st, 10)
    assert none.samples.shape == (0, 6, 12) and none.record_sweeps.size == 0
    np.testing.assert_array_equal(quiet.replicas, whole.replicas)
    np.testing.assert_array_equal(none.accepts, stats.accepts)


def test_tempering_chunks_do_not_change_the_draws(monkeypatch):
    rbm = tempering_model(np.float32)
    kw = dict(n_temps=4, beta_min=0.2, seed=14, burn_in=9, thin=3, return_state=True)
    whole = tempering.sample(rbm, 5, 20, **kw)
    # one sweep is 5 * 4 * 12 * 6 multiply-adds: force kernel calls of 2 sweeps
    monkeypatch.setattr(tempering, "_CHUNK_WORK", 2 * 5 * 4 * 12 * 6)
    chunked = tempering.sample(rbm, 5, 20, **kw)
    assert_same_run(whole, [chunked])


def test_tempering_advance_is_pure():
    rbm = tempering_model(np.float64)
    st, _ = tempering.advance(rbm, tempering.init_state(rbm, 5, seed=15, n_temps=4), 7)
    before = {name: np.copy(getattr(st, name)) for name in st._fields}
    a, sa = tempering.advance(rbm, st, 6, thin=2)
    b, sb = tempering.advance(rbm, st, 6, thin=2)
    for name, x in before.items():
        np.testing.assert_array_equal(x, getattr(st, name), err_msg=name)
    for x, y in zip(a + sa, b + sb):
        np.testing.assert_array_equal(x, y)
    assert a.replicas is not st.replicas and a.walker is not st.walker


def test_tempering_model_changes_between_advances():
    """The PCD use: a fixed ladder, a different model for every few sweeps."""
    rbm_a = tempering_model(np.float32)
    rbm_b = rbm_a.replace(weights=rbm_a.weights * 0.5, visible_bias=rbm_a.visible_bias + 0.3)
    ladder = np.array([0.2, 0.5, 1.0])
    st = tempering.init_state(rbm_a, 6, seed=16, betas=ladder)
    mid, _ = tempering.advance(rbm_a, st, 4)
    out, stats = tempering.advance(rbm_b, mid, 4, thin=2)
    # reference: the kernel with the global sweep index continued across the change of model
    args = (st.base_bias, st.keys)
    ref = (st.replicas, st.walker, st.last_end, st.trip_start)
    for rbm, sweep0, n in ((rbm_a, 0, 4), (rbm_b, 4, 4)):
        w, w_t = padded_weights(rbm)
        v, walker, last_end, trip_start, smp, *_ = tempering.tempering_kernel(
            ref[0], ladder, w, w_t, rbm.visible_bias, rbm.hidden_bias, *args, sweep0, n, 2, *ref[1:], True
        )
        ref = (v, walker, last_end, trip_start)
    np.testing.assert_array_equal(out.replicas, ref[0])
    np.testing.assert_array_equal(stats.samples, smp)
    np.testing.assert_array_equal(tempering.cold_visible(out), ref[0][:, -1])
    np.testing.assert_array_equal(out.betas, ladder)
    with pytest.raises(ValueError, match="12 visible units but the model has 13"):
        tempering.advance(RBM.random(13, 6, dtype=np.float32, seed=0), st, 1)
    with pytest.raises(ValueError, match="6 hidden units but the model has 7"):
        tempering.advance(RBM.random(12, 7, dtype=np.float32, seed=0), st, 1)
    with pytest.raises(ValueError, match="dtype float32 but the model is float64"):
        tempering.advance(rbm_a.astype(np.float64), st, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_chains=5),
        dict(seed=1),
        dict(betas=[0.5, 1.0]),
        dict(n_temps=3),
        dict(beta_min=0.3),
        dict(base_bias=np.ones(12)),
        dict(init=np.zeros((6, 4, 12))),
    ],
)
def test_tempering_continuation_rejects_conflicting_arguments(kwargs):
    rbm = tempering_model(np.float64)
    st = tempering.init_state(rbm, 6, seed=17, n_temps=4, beta_min=0.2)
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"{name} conflicts"):
        tempering.sample(rbm, **{"n_chains": None, **kwargs}, n_sweeps=2, state=st)
    agree = dict(n_chains=6, seed=17, betas=st.betas, n_temps=4, beta_min=0.2, base_bias=np.zeros(12),
                 init=st.replicas)
    res = tempering.sample(rbm, **agree, n_sweeps=2, state=st)
    np.testing.assert_array_equal(res.replicas, tempering.advance(rbm, st, 2)[0].replicas)
    with pytest.raises(ValueError, match="needs n_chains and seed"):
        tempering.sample(rbm, 6, 2)
