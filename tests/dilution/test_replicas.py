"""The replica kernel against the trainer's rule path, update for update, and its invariances.

Replica ``r`` of :func:`dilution.replicas.run_replicas` must be the trainer's run
(:func:`dilution.training.train_step` with :func:`dilution.replicas.trainer_config`) with seed
``replica_seeds(seed, n)[r]``: masks equal and parameters within 1e-10 after every update. The
two differ only in the summation order of the exact model moments (plain enumeration against
Gray-code blocks), a relative rounding difference near 1e-16 per update, so 1e-10 after a few
hundred updates leaves a margin of about 1e4 over the rounding and catches any difference of
arithmetic or random draws (an update's noise has scale sqrt(2 eta T) ~ 1e-1 here).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import dilution
from dilution import exact
from dilution.data import bars_stripes
from dilution.deep_r import DeepR, SoftDeepR
from dilution.estimators import CD, PCD, PTPCD, Exact
from dilution.model import RBM
from dilution.ncg import NCG, train_ncg_fused
from dilution.replicas import _model_moments, replica_seeds, run_replicas, trainer_config
from dilution.training import init_state, train_step

DATA = bars_stripes.patterns(2).astype(np.float64)  # the 6 patterns of 2 x 2 bars-and-stripes
TOL = 1e-10


def _trainer_run(rule, init, steps, lr, seed, estimator="exact"):
    """Per-update (mask, weights, visible bias, hidden bias, rule array) of the trainer's rule path."""
    config = trainer_config(rule, DATA.shape[0], steps, learning_rate=lr, estimator=estimator)
    state = init_state(init, DATA, config, seed=int(seed))
    out = []

    def snapshot(s):
        p = s.params
        extra = s.rule.strengths if isinstance(rule, NCG) else s.rule.theta
        out.append((p.mask.copy(), p.weights.copy(), p.visible_bias.copy(), p.hidden_bias.copy(), extra.copy()))

    snapshot(state)
    # One thread, as dilution.training.iterate runs updates this small (a parallel region costs
    # more than the work); the results do not depend on it.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for _ in range(steps):
            state, _ = train_step(state, DATA, data=DATA, epoch_end=True)
            snapshot(state)
    finally:
        numba.set_num_threads(threads)
    return out, state


def _assert_agree(ds, r, trail, rule):
    extra = ds["strength"] if isinstance(rule, NCG) else ds["theta"]
    flips = 0
    for t, (mask, w, a, b, x) in enumerate(trail):
        np.testing.assert_array_equal(ds["mask"].values[r, t], mask, err_msg=f"mask at update {t}")
        np.testing.assert_allclose(ds["weights"].values[r, t], w, rtol=0, atol=TOL, err_msg=f"weights, update {t}")
        np.testing.assert_allclose(ds["visible_bias"].values[r, t], a, rtol=0, atol=TOL, err_msg=f"a, update {t}")
        np.testing.assert_allclose(ds["hidden_bias"].values[r, t], b, rtol=0, atol=TOL, err_msg=f"b, update {t}")
        np.testing.assert_allclose(extra.values[r, t], x, rtol=0, atol=TOL, equal_nan=True,
                                   err_msg=f"rule state, update {t}")
        if t:
            flips += int(np.count_nonzero(trail[t - 1][0] != mask))
    return flips


RULES = {
    "deep-r": (DeepR(k=4, alpha=0.05, temperature=0.02), 0.05),
    "deep-r-hidden-sgd": (DeepR(k=2, alpha=0.05, temperature=0.02, scope="hidden", biases="sgd"), 0.05),
    "soft-deep-r": (SoftDeepR(alpha=0.05, temperature=0.02, p0=0.5), 0.05),
    "soft-deep-r-clip-fixed": (SoftDeepR(alpha=0.05, temperature=0.02, p0=0.3, floor="clip", biases="fixed"), 0.05),
    "ncg": (NCG(p=0.5), 0.5),
    # A Gaussian bias prior (weight decay on the biases) large enough to move them visibly per update.
    "deep-r-bias-l2": (DeepR(k=4, alpha=0.05, temperature=0.02, bias_l2=0.5), 0.05),
    "soft-deep-r-bias-l2-sgd": (SoftDeepR(alpha=0.05, temperature=0.02, p0=0.5, biases="sgd", bias_l2=0.5), 0.05),
}


@pytest.mark.parametrize("name", list(RULES))
def test_replicas_agree_with_the_rule_path_step_for_step_exact_gradient(name):
    rule, lr = RULES[name]
    steps = 300
    ds = run_replicas(rule, 3, DATA, steps, 1, init=(4, 2), learning_rate=lr, seed=11)
    seeds = ds["replica_seed"].values
    np.testing.assert_array_equal(seeds, replica_seeds(11, 3))
    flips = 0
    for r in (0, 2):
        trail, state = _trainer_run(rule, (4, 2), steps, lr, seeds[r])
        flips += _assert_agree(ds, r, trail, rule)
        ll = exact.log_likelihood(state.model, DATA).mean()
        assert abs(ds["log_likelihood"].values[r, -1] - ll) < TOL
    # The comparison is only worth something if masks moved: the rewiring rules flip every few updates.
    assert flips > 0


@pytest.mark.parametrize("estimator", [CD(k=2), PCD(k=1, n_chains=4)], ids=["cd2", "pcd1"])
@pytest.mark.parametrize("name", ["deep-r", "ncg"])
def test_replicas_agree_with_the_rule_path_with_sampled_gradients(name, estimator):
    # The same uniforms per (chain, sweep, unit); the trainer's Gibbs path sums the fields in another
    # order and uses a vectorised exp (relative error 1e-14), so a draw could differ only when it
    # falls within ~1e-14 of its probability: about 1e-10 over the ~1e4 draws here.
    rule, lr = RULES[name]
    steps = 150
    ds = run_replicas(rule, 2, DATA, steps, 1, init=(4, 2), learning_rate=lr, seed=5, estimator=estimator)
    trail, _ = _trainer_run(rule, (4, 2), steps, lr, ds["replica_seed"].values[1], estimator=estimator)
    _assert_agree(ds, 1, trail, rule)


def test_ncg_replicas_equal_the_fused_kernel_bit_for_bit():
    # Both kernels run CD-k on the whole data set with the same uniforms, the same conditional and
    # gradient kernels and the same per-pair update (dilution.ncg.ncg_pair_update). Only the Gibbs
    # fields are summed in another order, which changes a draw only when it falls within ~1e-14 of
    # its probability: about 1e-10 over the ~1.4e4 draws here. So equal bits, not a tolerance.
    rule, lr = RULES["ncg"]
    steps = 200
    ds = run_replicas(rule, 2, DATA, steps, 1, init=(4, 2), learning_rate=lr, seed=5, estimator=CD(k=1))
    config = trainer_config(rule, DATA.shape[0], steps, learning_rate=lr, estimator=CD(k=1))
    flips = 0
    for r, seed in enumerate(ds["replica_seed"].values):
        fused = train_ncg_fused((4, 2), DATA, config, seed=int(seed), checkpoint_epochs=range(steps + 1),
                                log_likelihood=False)
        np.testing.assert_array_equal(fused.history["mask"].values.astype(bool), ds["mask"].values[r])
        np.testing.assert_array_equal(fused.history["rule_strength"].values, ds["strength"].values[r])
        for got, want in zip(fused.params, ("weights", "visible_bias", "hidden_bias", "mask")):
            np.testing.assert_array_equal(got, ds[want].values[r, -1], err_msg=want)
        np.testing.assert_array_equal(fused.rule_state.weights, ds["stored_weight"].values[r])
        flips += int(np.count_nonzero(np.diff(ds["mask"].values[r], axis=0)))
    assert flips > 0


def test_replicas_start_from_a_given_model_and_record_every_n_updates():
    rng = np.random.default_rng(0)
    start = RBM(rng.normal(size=(4, 2)), rng.normal(size=4), rng.normal(size=2))
    rule, lr = RULES["soft-deep-r"]
    ds = run_replicas(rule, 2, DATA, 40, 10, init=start, learning_rate=lr, seed=3)
    assert ds["step"].values.tolist() == [0, 10, 20, 30, 40]
    trail, _ = _trainer_run(rule, start, 40, lr, ds["replica_seed"].values[0])
    np.testing.assert_allclose(ds["visible_bias"].values[0, 0], start.visible_bias, rtol=0, atol=0)
    for rec, t in enumerate(range(0, 41, 10)):
        np.testing.assert_array_equal(ds["mask"].values[0, rec], trail[t][0])
        np.testing.assert_allclose(ds["weights"].values[0, rec], trail[t][1], rtol=0, atol=TOL)
    # births and deaths since the previous record add up to the change of the active count
    active = ds["mask"].sum(("visible", "hidden")).values
    net = ds["connections_added"].values - ds["connections_removed"].values
    np.testing.assert_array_equal(np.diff(active, axis=1), net[:, 1:])


def test_replicas_do_not_depend_on_thread_count_or_on_how_many_replicas_run():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    rule, lr = RULES["deep-r"]
    args = dict(init=(4, 2), learning_rate=lr, seed=9, estimator=CD(k=1))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_replicas(rule, 5, DATA, 50, 5, **args)
        numba.set_num_threads(2)
        two = run_replicas(rule, 5, DATA, 50, 5, **args)
    finally:
        numba.set_num_threads(threads)
    three = run_replicas(rule, 3, DATA, 50, 5, **args)
    for var in ("mask", "weights", "theta", "visible_bias", "hidden_bias", "log_likelihood"):
        np.testing.assert_array_equal(one[var].values, two[var].values)
        np.testing.assert_array_equal(one[var].values[:3], three[var].values)
    # distinct replicas are distinct chains
    assert not np.array_equal(one["weights"].values[0], one["weights"].values[1])


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_model_moments_enumerate_either_layer(shape):
    rng = np.random.default_rng(shape[0])
    w, a, b = rng.normal(size=shape), rng.normal(size=shape[0]), rng.normal(size=shape[1])
    mean_v, mean_h, mean_vh = np.empty((1, shape[0])), np.empty((1, shape[1])), np.empty(shape)
    n_e = min(shape)
    log_z = _model_moments(w, a, b, np.empty(1 << n_e), np.empty(max(shape)), mean_v[0], mean_h[0], mean_vh)
    rbm = RBM(w, a, b)
    assert abs(log_z - exact.log_partition(rbm)) < 1e-12
    ref = exact.model_moments(rbm)
    for got, want in zip((mean_v[0], mean_h[0], mean_vh), ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


def test_dataset_labels():
    ds = run_replicas(NCG(p=0.5), 2, DATA, 4, 2, init=(4, 2), learning_rate=0.1, seed=0)
    assert ds["mask"].dims == ("replica", "record", "visible", "hidden") and ds["mask"].dtype == bool
    assert set(ds.data_vars) >= {"strength", "stored_weight", "log_likelihood", "weights"}
    assert ds["step"].values.tolist() == [0, 2, 4]
    for name in list(ds.data_vars) + list(ds.coords):
        assert {"long_name", "units"} <= set(ds[name].attrs), name
    assert ds.attrs["seed"] == 0 and "dilution_version" in ds.attrs


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(rule=NCG(reference_quirks=True)), "reference_quirks"),
        (dict(rule="deep-r"), "rule must be"),
        (dict(n_replicas=0), "n_replicas"),
        (dict(record_every=0), "record_every"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(estimator="cd"), "estimator"),
        (dict(estimator=PTPCD()), "estimator"),
        (dict(init=(13, 13), data=np.zeros((2, 13))), "MAX_ENUMERATED"),
        (dict(init=(5, 2)), "data must have shape"),
        (dict(rule=DeepR(k=9, alpha=0.1, temperature=0.1)), "larger than"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_input_names_what_was_wrong(change, message):
    args = dict(rule=DeepR(k=2, alpha=0.1, temperature=0.1), n_replicas=2, data=DATA, steps=3, record_every=1,
                init=(4, 2), learning_rate=0.1, seed=0)
    args.update(change)
    rule, n, data, steps, every = (args.pop(k) for k in ("rule", "n_replicas", "data", "steps", "record_every"))
    with pytest.raises((ValueError, TypeError), match=message):
        run_replicas(rule, n, data, steps, every, **args)


def test_an_exact_estimator_is_held_to_its_max_units():
    # The trainer refuses a model above Exact's max_units (Exact.init); the replicas enumerated it anyway.
    args = dict(learning_rate=0.1, seed=0, init=(4, 2))
    rule = DeepR(k=2, alpha=0.1, temperature=0.1)
    with pytest.raises(ValueError, match=r"Exact\(max_units=1\) .* 4 x 2 has 2 units there, above its max_units"):
        run_replicas(rule, 2, DATA, 3, 1, estimator=Exact(max_units=1), **args)
    at_bound = run_replicas(rule, 2, DATA, 3, 1, estimator=Exact(max_units=2), **args)
    np.testing.assert_array_equal(at_bound["weights"].values, run_replicas(rule, 2, DATA, 3, 1, **args)["weights"].values)


@pytest.mark.parametrize("name, estimator", [("soft-deep-r", PCD(k=1, n_chains=3)), ("ncg", "exact"),
                                             ("deep-r", CD(k=1))])
def test_resume_continues_the_same_chains(name, estimator):
    rule, lr = RULES[name]
    args = dict(learning_rate=lr, seed=4, estimator=estimator)
    whole = run_replicas(rule, 3, DATA, 100, 20, init=(4, 2), **args)
    first = run_replicas(rule, 3, DATA, 60, 20, init=(4, 2), **args)
    rest = run_replicas(rule, 3, DATA, 40, 20, resume=first, **args)
    assert rest["step"].values.tolist() == [60, 80, 100] and rest.attrs["last_step"] == 100
    for var in whole.data_vars:
        if var.startswith("connections_"):  # counts since the previous record: none before the first
            np.testing.assert_array_equal(rest[var].values[:, 1:], whole[var].values[:, 4:], err_msg=var)
        elif "record" in whole[var].dims:
            np.testing.assert_array_equal(rest[var].values, whole[var].values[:, 3:], err_msg=var)
        else:
            np.testing.assert_array_equal(rest[var].values, whole[var].values, err_msg=var)


def test_resume_refuses_other_settings_or_a_run_without_its_final_state():
    rule, lr = RULES["deep-r"]
    done = run_replicas(rule, 2, DATA, 10, 5, init=(4, 2), learning_rate=lr, seed=1)
    with pytest.raises(ValueError, match="config"):
        run_replicas(rule, 2, DATA, 10, 5, learning_rate=lr / 2, seed=1, resume=done)
    with pytest.raises(ValueError, match="seed"):
        run_replicas(rule, 2, DATA, 10, 5, learning_rate=lr, seed=2, resume=done)
    with pytest.raises(ValueError, match="asks for 3"):
        run_replicas(rule, 3, DATA, 10, 5, learning_rate=lr, seed=1, resume=done)
    ragged = run_replicas(rule, 2, DATA, 12, 5, init=(4, 2), learning_rate=lr, seed=1)
    with pytest.raises(ValueError, match="final state"):
        run_replicas(rule, 2, DATA, 10, 5, learning_rate=lr, seed=1, resume=ragged)
    with pytest.raises(ValueError, match="needs init"):
        run_replicas(rule, 2, DATA, 10, 5, learning_rate=lr, seed=1)


def test_a_saved_run_resumes_from_disk(tmp_path):
    rule, lr = RULES["deep-r"]
    args = dict(learning_rate=lr, seed=6, estimator=PCD(k=1))
    whole = run_replicas(rule, 2, DATA, 20, 10, init=(4, 2), **args)
    first = run_replicas(rule, 2, DATA, 10, 10, init=(4, 2), **args)
    dilution.io.save(first, tmp_path / "replicas.nc")
    loaded = dilution.io.load_dataset(tmp_path / "replicas.nc")
    assert loaded["mask"].dtype == bool and loaded["rule_key"].dtype == np.uint64
    rest = run_replicas(rule, 2, DATA, 10, 10, resume=loaded, **args)
    np.testing.assert_array_equal(rest["theta"].values[:, -1], whole["theta"].values[:, -1])
    np.testing.assert_array_equal(rest["chains"].values, whole["chains"].values)
