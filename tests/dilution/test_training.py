from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from dilution import exact, io
from dilution.data.bars_stripes import patterns
from dilution.data.teacher import Teacher
from dilution.conditionals import hidden_probabilities
from dilution.model import RBM
from dilution.statistics import gradient_statistics, reconstruction_errors
from dilution.estimators import CD, PCD, estimator_from_name
from dilution.connectivity import StaticMask
from dilution.optim import ExponentialDecay, LinearDecay, Parameters, PiecewiseConstant
from dilution.training import (
    CheckpointRecord,
    TrainConfig,
    checkpoint_steps,
    init_state,
    initialize,
    train,
)


def estimate_gradient(rbm, batch, *, k, seed, chains=None):
    """One CD-k (chains None) or PCD-k estimate through the estimators' public interface."""
    params = Parameters(rbm.weights, rbm.visible_bias, rbm.hidden_bias, rbm.mask)
    est = CD(k) if chains is None else PCD(k, n_chains=len(chains))
    state = est.init(params, batch, len(batch), seed)
    if chains is not None:
        state = state._replace(chains=np.asarray(chains, dtype=rbm.dtype))
    h = hidden_probabilities(batch, rbm.weights, rbm.hidden_bias, 1.0)
    g, state = est.estimate(params, batch, h, state)
    return g, (state.chains if chains is not None else None)


def _invariant_callback(store):
    def check(record: CheckpointRecord):
        assert np.all(record.model.weights[~record.model.mask] == 0), f"masked weight nonzero at {record.step}"
        store.append(record)

    return check


# --------------------------------------------------------------------------- learning


def _exact_reference(shape, data, cfg):
    """The same run (same mask, initial weights, batches and schedule) with the exact gradient."""
    from dataclasses import replace

    from dilution.estimators import Exact

    return train(shape, data, replace(cfg, estimator=Exact()), seed=0).history.log_likelihood.values


@pytest.mark.parametrize("method", ["cd", "pcd"])
@pytest.mark.parametrize("connectivity", [1.0, 0.3])
def test_bars_and_stripes_likelihood_rises(method, connectivity):
    data = patterns(3).astype(np.float64)  # 14 distinct 3x3 patterns
    cfg = TrainConfig(estimator=estimator_from_name(method, k=5), epochs=200, batch_size=2, learning_rate=0.1,
                      momentum=0.5, connectivity=connectivity, checkpoints=4)
    seen = []
    result = train((9, 16), data, cfg, seed=0, callbacks=[_invariant_callback(seen)])
    ll = result.history.log_likelihood.values
    assert len(seen) == result.history.sizes["checkpoint"] == 5
    # Closed forms: every pixel of bars-and-stripes is on with probability 1/2, so the initial model
    # (visible biases at the marginals, weights ~0.01) is the uniform model, -9 log 2 up to the weights'
    # O(W^2) effect; the empirical entropy -log 14 bounds the train likelihood from above.
    assert ll[0] == pytest.approx(-9 * np.log(2), abs=1e-2)
    assert ll[-1] <= -np.log(14) + 1e-9
    # The same run with the exact gradient (no sampling in the model term, same batches) is what the
    # budget can achieve. A sampled learner with 2 chains (batch 2) pays for its noisy model term, so
    # this is a floor, not an estimate: a broken negative phase (chains that do not move, a sign
    # error) gains nothing or diverges, while a working one keeps a sizeable share of the exact gain.
    ll_exact = _exact_reference((9, 16), data, cfg)
    assert ll_exact[-1] - ll_exact[0] > 0.5  # the budget suffices to learn something at all
    assert ll[-1] - ll[0] > 0.25 * (ll_exact[-1] - ll_exact[0])
    final = result.model
    assert np.all(final.weights[~final.mask] == 0)
    assert final.n_connections == round(connectivity * 9 * 16)
    assert np.array_equal(final.mask, seen[0].model.mask)  # StaticMask


def _balanced_teacher(n_visible=10, n_hidden=3, scale=2.5, seed=0):
    """A planted teacher whose {0,1} energy is a field-free +-1 model (a_i = -sum_j W_ij / 2,
    b_j = -sum_i W_ij / 2), so its modes are balanced and it is far from a product distribution
    (1.2 nats above the best product model for these parameters)."""
    w = scale * np.random.default_rng(seed).standard_normal((n_visible, n_hidden))
    return Teacher.from_rbm(RBM(w, -w.sum(axis=1) / 2, -w.sum(axis=0) / 2))


@pytest.mark.parametrize("method", ["cd", "pcd"])
@pytest.mark.parametrize("connectivity", [1.0, 0.3])
def test_planted_teacher_likelihood_rises(method, connectivity):
    teacher = _balanced_teacher()
    data = teacher.sample(500, seed=1)
    teacher_ll = float(teacher.log_likelihood(data).mean())
    cfg = TrainConfig(estimator=estimator_from_name(method, k=3), epochs=30, batch_size=10, learning_rate=0.1,
                      momentum=0.5, connectivity=connectivity, checkpoints=3)
    seen = []
    result = train((10, 6), data, cfg, seed=0, callbacks=[_invariant_callback(seen)])
    ll = result.history.log_likelihood.values
    # Closed form: the initial model is (up to the O(W^2) effect of weights ~0.01) the product of
    # the data marginals, whose log-likelihood is minus the sum of the marginal entropies.
    p = data.mean(axis=0)
    assert ll[0] == pytest.approx(np.sum(p * np.log(p) + (1 - p) * np.log(1 - p)), abs=1e-2)
    assert ll[0] < teacher_ll - 1.0  # far from a product distribution: there is something to learn
    # Against the same run with the exact gradient: a CD-3/PCD-3 learner keeps at least half its gain.
    ll_exact = _exact_reference((10, 6), data, cfg)
    assert ll_exact[-1] - ll_exact[0] > 0.25 * (teacher_ll - ll_exact[0])
    assert ll[-1] - ll[0] > 0.5 * (ll_exact[-1] - ll_exact[0])
    assert np.all(result.model.weights[~result.model.mask] == 0)


# --------------------------------------------------------------------------- gradient estimates


def _tiny_rbm():
    return RBM.random(9, 6, connectivity=0.6, weight_scale=0.7, bias_scale=0.3, seed=5)


def _data9(n=14, seed=0):
    return (np.random.default_rng(seed).random((n, 9)) < 0.5).astype(np.float64)


def _tolerance(n):
    # Each model moment is a mean of n values in [0, 1] (v_i p(h_j|v), v_i or p(h_j|v)): its
    # standard deviation is at most 0.5 / sqrt(n). 5 sigma over ~70 entries: false alarm < 1e-4.
    return 5 * 0.5 / np.sqrt(n)


def test_statistics_with_exact_model_samples_converge_to_exact_gradient():
    rbm = _tiny_rbm()
    data = _data9()
    ref = exact.gradient(rbm, data)
    n = 40_000
    p = np.exp(exact.log_prob_visible(rbm))
    states = exact.all_states(9)
    v_model = states[np.random.default_rng(1).choice(len(p), size=n, p=p / p.sum())]
    h = lambda v: hidden_probabilities(v, rbm.weights, rbm.hidden_bias, 1.0)  # noqa: E731
    g = gradient_statistics(data, h(data), v_model, h(v_model))
    tol = _tolerance(n)
    for name in ("weights", "visible_bias", "hidden_bias"):
        np.testing.assert_allclose(getattr(g, name), getattr(ref, name), atol=tol, rtol=0)
    # Masked pairs carry a gradient too (needed by rewiring rules).
    assert np.abs(g.weights[~rbm.mask]).max() > 10 * tol


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_long_chains_converge_to_exact_gradient(method):
    rbm = _tiny_rbm()
    data = _data9()
    ref = exact.gradient(rbm, data)
    n = 14 * 1500
    if method == "cd":
        # CD-k with k >> mixing time: chains start at the (replicated) data, end near equilibrium.
        g, _ = estimate_gradient(rbm, np.repeat(data, 1500, axis=0), k=60, seed=2)
        ref_pos = ref  # same data term after replication
    else:
        chains = (np.random.default_rng(3).random((n, 9)) < 0.5).astype(np.float64)
        g, v_k = estimate_gradient(rbm, data, k=60, seed=2, chains=chains)
        assert v_k.shape == (n, 9)
        ref_pos = ref
    tol = _tolerance(n)
    np.testing.assert_allclose(g.weights, ref_pos.weights, atol=tol, rtol=0)
    np.testing.assert_allclose(g.visible_bias, ref_pos.visible_bias, atol=tol, rtol=0)
    np.testing.assert_allclose(g.hidden_bias, ref_pos.hidden_bias, atol=tol, rtol=0)


def test_cd1_differs_from_exact_gradient():
    # The tests above would pass for any estimator near the exact gradient; check that k matters
    # (CD-1 is biased: with strong couplings, chains one sweep from the data are far from
    # equilibrium; CD-60 on this model is within 0.3 tolerances of the exact gradient).
    rbm = RBM.random(9, 6, connectivity=0.6, weight_scale=2.0, bias_scale=0.3, seed=5)
    data = np.repeat(_data9(), 1500, axis=0)
    ref = exact.gradient(rbm, data)
    g, _ = estimate_gradient(rbm, data, k=1, seed=2)
    assert np.abs(g.weights - ref.weights).max() > 3 * _tolerance(len(data))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_statistics_kernel_equals_numpy_reference(dtype):
    rng = np.random.default_rng(4)
    v_d = (rng.random((37, 23)) < 0.3).astype(dtype)
    v_d[3] = 0.7  # non-binary rows are weighted correctly too
    h_d = rng.random((37, 11)).astype(dtype)
    v_m = (rng.random((53, 23)) < 0.6).astype(dtype)
    h_m = rng.random((53, 11)).astype(dtype)
    g = gradient_statistics(v_d, h_d, v_m, h_m)
    x = [a.astype(np.float64) for a in (v_d, h_d, v_m, h_m)]
    ref_w = x[0].T @ x[1] / 37 - x[2].T @ x[3] / 53
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert g.weights.dtype == dtype
    np.testing.assert_allclose(g.weights, ref_w, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(g.visible_bias, x[0].mean(0) - x[2].mean(0), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(g.hidden_bias, x[1].mean(0) - x[3].mean(0), rtol=rtol, atol=rtol)


def test_reconstruction_error_matches_reference():
    rbm = _tiny_rbm()
    v = _data9(20)
    ph = hidden_probabilities(v, rbm.weights, rbm.hidden_bias, 1.0)
    keys = np.arange(20, dtype=np.uint64) * np.uint64(7919) + np.uint64(1)
    err = reconstruction_errors(v, ph, np.ascontiguousarray(rbm.weights.T), rbm.visible_bias, keys, np.uint64(5))
    # Reference: the same uniforms drawn one by one.
    from dilution.rng import uniform64

    ref = np.empty(20)
    for s in range(20):
        u = np.array([uniform64(keys[s], np.uint64(5 + j)) for j in range(6)])
        h = (u < ph[s]).astype(float)
        p = 1 / (1 + np.exp(-(rbm.visible_bias + rbm.weights @ h)))
        ref[s] = np.mean((v[s] - p) ** 2)
    np.testing.assert_allclose(err, ref, rtol=1e-12)


# --------------------------------------------------------------------------- reproducibility

_THREAD_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, numba
    from dilution.training import train, TrainConfig
    from dilution.pruning_rules import PruningProtocol
    assert numba.get_num_threads() == int(sys.argv[2]), numba.get_num_threads()
    data = (np.random.default_rng(0).random((200, 16)) < 0.3).astype(np.float32)
    # Work per update 256 chains x 3 sweeps x 80 units x 64 > the trainer's parallel threshold.
    from dilution.estimators import PCD
    cfg = TrainConfig(estimator=PCD(3, n_chains=256), epochs=3, batch_size=50, learning_rate=0.05,
                      momentum=0.5, l2=1e-3, l1=1e-4, connectivity=0.5, dtype="float32", checkpoints=2,
                      rule=PruningProtocol(0.3, at_epochs=(1,), criterion="random"))
    r = train((16, 64), data, cfg, seed=11)
    h = r.history
    np.savez(sys.argv[1], weights=r.model.weights, a=r.model.visible_bias, b=r.model.hidden_bias,
             mask=r.model.mask, recon=h.reconstruction_error.values, epoch_recon=h.epoch_reconstruction_error.values)
    """
)


def test_bit_identical_for_one_and_two_threads(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_THREAD_SCRIPT)
    out = {}
    for n in (1, 2):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(n))
        path = tmp_path / f"out{n}.npz"
        subprocess.run([sys.executable, str(script), str(path), str(n)], env=env, check=True, timeout=300)
        out[n] = np.load(path)
    for key in out[1].files:
        assert np.array_equal(out[1][key], out[2][key]), key


def test_same_seed_same_result_different_seed_differs():
    data = _data9(28)
    cfg = TrainConfig(estimator=CD(1), epochs=3, batch_size=7, learning_rate=0.1, checkpoints=2)
    a, b, c = (train((9, 5), data, cfg, seed=s, progress=s == 3).model for s in (3, 3, 4))
    assert a == b and a != c


# --------------------------------------------------------------------------- history, checkpoints


def test_history_layout_and_callbacks(tmp_path):
    data = _data9(30)
    cfg = TrainConfig(estimator=PCD(2, n_chains=5), epochs=3, batch_size=8, checkpoints=(1, 5, 12))
    seen = []
    result = train((9, 4), data, cfg, seed=0, callbacks=[seen.append])
    h = result.history
    assert h.sizes == {"checkpoint": 4, "epoch": 3, "visible": 9, "hidden": 4}
    assert list(h.step.values) == [0, 1, 5, 12] and [r.step for r in seen] == [0, 1, 5, 12]
    np.testing.assert_allclose(h.epochs_trained.values, np.array([0, 1, 5, 12]) / 4)
    assert list(h.epoch.values) == [1, 2, 3]
    assert seen[-1].model == result.model and seen[-1].chains.shape == (5, 9)
    # Checkpoint metrics against direct computation.
    log_z = exact.log_partition(result.model)
    assert h.log_partition.values[-1] == pytest.approx(log_z, rel=1e-12)
    assert h.log_likelihood.values[-1] == pytest.approx(exact.log_likelihood(result.model, data).mean(), rel=1e-12)
    w = result.model.weights
    assert h.weight_l1.values[-1] == pytest.approx(np.abs(w).sum()) and h.weight_l2.values[-1] == pytest.approx(
        np.linalg.norm(w)
    )
    assert np.all(np.diff(h.wall_time.values) >= 0) and np.all(h.epoch_wall_time.values > 0)
    assert np.all((h.reconstruction_error.values > 0) & (h.reconstruction_error.values < 1))
    for name in ("reconstruction_error", "log_likelihood", "wall_time", "epoch_reconstruction_error"):
        assert h[name].attrs["units"] and h[name].attrs["long_name"]
    assert h.attrs["seed"] == 0 and json.loads(h.attrs["config"])["estimator"] == {
        "type": "PCD", "k": 2, "n_chains": 5, "chain_init": "data"}
    # The mask at every checkpoint, with named dims.
    assert h["mask"].dims == ("checkpoint", "visible", "hidden")
    assert np.array_equal(h["mask"].values[-1], result.model.mask)
    assert json.loads(h.attrs["config"])["rule"]["type"] == "StaticMask"
    io.save(h, tmp_path / "history.nc")
    xr.testing.assert_equal(io.load(tmp_path / "history.nc"), h)


def test_log_likelihood_absent_when_not_enumerable():
    data = _data9(10)
    cfg = TrainConfig(epochs=1, batch_size=5, exact_max_units=3, checkpoints=1, checkpoint_log_likelihood="exact")
    h = train((9, 4), data, cfg, seed=0).history
    assert np.all(np.isnan(h.log_likelihood.values)) and "exceeds exact_max_units=3" in h.log_likelihood.attrs["method"]


def test_checkpoint_steps():
    s = checkpoint_steps(10, 1000)
    assert len(s) == 10 and s[0] == 1 and s[-1] == 1000 and np.all(np.diff(s) > 0)
    assert list(checkpoint_steps(10, 4)) == [1, 2, 3, 4]
    assert list(checkpoint_steps(1, 7)) == [7]
    ratios = s[1:] / s[:-1]
    assert ratios.max() / ratios.min() < 2  # log-spaced


def test_initialize_follows_the_practical_guide():
    data = np.zeros((100, 5))
    data[:30, 0] = 1
    data[:, 1] = 1
    data[:50, 2] = 1
    rbm = initialize(5, 2000, data, connectivity=0.5, weight_scale=0.01, marginal_clip=1e-3, seed=0)
    p = np.array([0.3, 1 - 1e-3, 0.5, 1e-3, 1e-3])
    np.testing.assert_allclose(rbm.visible_bias, np.log(p / (1 - p)), rtol=1e-12)
    assert np.all(rbm.hidden_bias == 0) and rbm.n_connections == 5000
    w = rbm.weights[rbm.mask]
    # Sample std of 5000 N(0, 0.01^2) values: relative standard error 1 / sqrt(2 * 5000) = 1 %.
    assert abs(w.std() / 0.01 - 1) < 0.05 and np.all(rbm.weights[~rbm.mask] == 0)


def test_given_rbm_keeps_mask_and_dtype():
    rbm = RBM.random(9, 4, connectivity=0.5, seed=1, dtype=np.float32)
    result = train(rbm, _data9(10), TrainConfig(epochs=2, batch_size=5, checkpoints=1), seed=0)
    assert result.model.dtype == np.float32 and np.array_equal(result.model.mask, rbm.mask)
    result = train(rbm, _data9(10), TrainConfig(epochs=1, batch_size=5, dtype="float64", checkpoints=1), seed=0)
    assert result.model.dtype == np.float64


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimator": "pcd"}, "estimator must be a gradient estimator"),
        ({"epochs": 1.5}, "epochs must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"momentum": 1.2}, "momentum must be in"),
        ({"l2": -0.1}, "l2 must be >= 0"),
        ({"rule": "prune"}, "rule must implement"),
        ({"connectivity": 1.5}, r"connectivity must be in \[0, 1\]"),
        ({"checkpoints": 0}, "checkpoints must be an integer >= 1"),
        ({"checkpoints": (5, 3)}, "strictly increasing"),
        ({"dtype": "float16"}, "dtype must be"),
        ({"marginal_clip": 0.7}, "marginal_clip"),
        # a class passed the Protocol checks and failed inside train ("PCD.init() missing ... 'seed'")
        ({"estimator": PCD}, r"^estimator must be an instance such as PCD\(k=1\), got the class PCD$"),
        ({"rule": StaticMask}, r"^rule must be an instance such as StaticMask\(\), got the class StaticMask$"),
        # numeric strings were accepted and recorded as strings by to_json
        ({"learning_rate": "0.05"}, "^learning_rate must be a number or a schedule, got '0.05'$"),
        ({"connectivity": "0.5"}, r"^connectivity must be a number in \[0, 1\], got '0.5'$"),
        # these reached Python's comparison and math errors (the messages are RBM.random's)
        ({"weight_scale": "x"}, "^weight_scale must be a number, got 'x'$"),
        ({"weight_scale": None}, "^weight_scale must be a number, got None$"),
        ({"weight_scale": -1.0}, "^weight_scale must be a finite number >= 0, got -1.0$"),
        ({"marginal_clip": "x"}, "^marginal_clip must be a number, got 'x'$"),
        ({"marginal_clip": None}, "^marginal_clip must be a number, got None$"),
        # numpy's "data type 'foo' not understood" did not name dtype
        ({"dtype": "foo"}, "^dtype must be 'float32', 'float64' or None, got 'foo'$"),
        ({"dtype": 5}, "^dtype must be 'float32', 'float64' or None, got 5$"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**kwargs)


def test_bad_data_and_arguments():
    cfg = TrainConfig(epochs=1, batch_size=5)
    good = _data9(10)
    nan = good.copy()
    nan[2, 3] = np.nan
    with pytest.raises(ValueError, match="data contains 1 NaN entries"):
        train((9, 4), nan, cfg, seed=0)
    with pytest.raises(ValueError, match="must be binary"):
        train((9, 4), good * 0.5, cfg, seed=0)
    with pytest.raises(ValueError, match="data has 9 columns but the model has 8 visible units"):
        train(RBM.random(8, 4, seed=0), good, cfg, seed=0)
    with pytest.raises(ValueError, match="data must be 2-D"):
        train((9, 4), good[0], cfg, seed=0)
    with pytest.raises(ValueError, match="at least one sample"):
        train((9, 4), good[:0], cfg, seed=0)
    with pytest.raises(ValueError, match="batch_size=5 exceeds the 3 training samples"):
        train((9, 4), good[:3], cfg, seed=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        train((9, 4), good, cfg, seed=-1)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train((9, 4), good, {"epochs": 1}, seed=0)
    with pytest.raises(TypeError, match="rbm_or_shape must be an RBM or a tuple"):
        train(9, good, cfg, seed=0)
    with pytest.raises(ValueError, match="beyond the run's 2 updates"):
        train((9, 4), good, TrainConfig(epochs=1, batch_size=5, checkpoints=(1, 3)), seed=0)
    with pytest.raises(TypeError, match="2-D float32 or float64"):
        gradient_statistics(good.astype(int), good, good, good)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"learning_rate": LinearDecay(0.1, final=-0.1)},
     r"^learning_rate schedule LinearDecay\(.*\) gives -0.05\d* at update 3 \(0-based\) of 4; expected a finite "
     "value >= 0$"),
    ({"momentum": PiecewiseConstant((3,), (0.5, 1.0))},
     r"^momentum schedule PiecewiseConstant\(.*\) gives 1.0 at update 3 \(0-based\) of 4; expected a value in "
     r"\[0, 1\)$"),
    ({"learning_rate": ExponentialDecay(-0.1, 0.5)}, r"^learning_rate schedule ExponentialDecay\(.*\) gives -0.1 at "
                                                     r"update 0 \(0-based\) of 4"),
])
def test_schedules_are_checked_over_the_whole_run_before_it_starts(kwargs, match):
    # these failed at update 3 (or were accepted by TrainConfig), and train() returned nothing of the run
    cfg = TrainConfig(epochs=2, batch_size=5, checkpoints=1, **kwargs)
    with pytest.raises(ValueError, match=match):
        init_state((9, 4), _data9(10), cfg, seed=0)
    with pytest.raises(ValueError, match=match):
        train((9, 4), _data9(10), cfg, seed=0)


def test_divergence_is_reported():
    cfg = TrainConfig(epochs=3, batch_size=2, learning_rate=1e308, momentum=0.9, checkpoints=1,
                      exact_log_likelihood=False)
    with pytest.raises(FloatingPointError, match="training diverged"):
        with np.errstate(all="ignore"):
            train((9, 4), _data9(10), cfg, seed=0)


def test_without_shuffling_the_batches_come_in_the_given_order():
    from dilution.estimators import Exact
    from dilution.training import init_state, train_step

    data = _data9(12)
    cfg = TrainConfig(estimator=Exact(), epochs=2, batch_size=4, learning_rate=0.1, shuffle=False, checkpoints=1)
    result = train((9, 3), data, cfg, seed=0)
    # The same updates by hand, batches in row order every epoch.
    state = init_state((9, 3), data, cfg, seed=0)
    for _ in range(2):
        for b in range(3):
            state, _ = train_step(state, data[4 * b : 4 * b + 4], data=data, epoch_end=b == 2)
    assert result.model == state.model
