from __future__ import annotations

import math

import numpy as np
import pytest

from dilution import exact
from dilution.data.split import as_matrix
from dilution.data.teacher import MAX_HIDDEN, Teacher, planted_teacher, teacher_datasets
from dilution.model import RBM


def _bits(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _joint_reference(rbm: RBM) -> np.ndarray:
    """log p(v, h) over all joint states, [v_code, h_code], straight from the energy."""
    v, h = _bits(rbm.n_visible), _bits(rbm.n_hidden)
    w, a, b = (np.asarray(x, dtype=np.float64) for x in (rbm.weights, rbm.visible_bias, rbm.hidden_bias))
    neg_e = (v @ a)[:, None] + (h @ b)[None, :] + v @ w @ h.T
    m = neg_e.max()
    return neg_e - (m + math.log(np.exp(neg_e - m).sum()))


def _tv_bound(p: np.ndarray, n: int, delta: float = 1e-6) -> float:
    """High-probability bound on the total variation between p and an n-sample empirical histogram.

    E[TV] = 1/2 sum_x E|phat_x - p_x| <= 1/2 sum_x sqrt(p_x (1 - p_x) / n) (Jensen), and TV moves by at
    most 1/n when one sample changes, so McDiarmid gives P(TV > E[TV] + t) <= exp(-2 n t^2);
    t = sqrt(log(1/delta) / (2n)) makes the false-alarm probability delta.
    """
    return 0.5 * np.sqrt(p * (1 - p) / n).sum() + math.sqrt(math.log(1 / delta) / (2 * n))


@pytest.fixture(scope="module")
def tiny() -> Teacher:
    return planted_teacher(6, 3, connectivity=0.6, weight_scale=1.5, visible_bias_scale=0.5,
                           hidden_bias_scale=0.5, visible_bias_mean=-0.5, seed=7)


def test_exact_quantities_match_brute_force(tiny):
    joint = _joint_reference(tiny.rbm)
    log_pv = np.log(np.exp(joint).sum(axis=1))
    log_ph = np.log(np.exp(joint).sum(axis=0))
    assert tiny.log_z == pytest.approx(exact.log_partition(tiny.rbm), abs=1e-12)
    np.testing.assert_allclose(tiny.log_p_hidden, log_ph, atol=1e-12)
    np.testing.assert_allclose(tiny.log_prob_visible(), log_pv, atol=1e-12)
    np.testing.assert_allclose(tiny.log_likelihood(_bits(6)[[0, 5, 63]]), log_pv[[0, 5, 63]], atol=1e-12)
    ent = tiny.entropy()
    assert ent.method == "exact" and ent.stderr == 0.0
    assert ent.value == pytest.approx(-(np.exp(log_pv) * log_pv).sum(), abs=1e-12)


def test_dilution_is_planted(tiny):
    assert tiny.rbm.n_connections == round(0.6 * 18)
    assert np.all(tiny.rbm.weights[~tiny.rbm.mask] == 0)
    assert tiny.info["connectivity"] == 0.6 and tiny.info["seed"] == 7


def test_samples_follow_the_exact_joint_distribution(tiny):
    n = 100_000
    v, h = tiny.sample(n, seed=1, return_hidden=True)
    assert v.dtype == np.uint8 and v.shape == (n, 6) and h.shape == (n, 3)
    p_joint = np.exp(_joint_reference(tiny.rbm))
    codes_v = (v.astype(np.int64) << np.arange(6)).sum(axis=1)
    codes_h = (h.astype(np.int64) << np.arange(3)).sum(axis=1)
    for p, codes in (
        (p_joint.ravel(), codes_v * 8 + codes_h),  # joint (v, h): checks p(h) and p(v | h) together
        (p_joint.sum(axis=1), codes_v),  # visible marginal, vs log_prob_visible
        (np.exp(tiny.log_p_hidden), codes_h),  # hidden marginal
    ):
        emp = np.bincount(codes, minlength=p.size) / n
        tv = 0.5 * np.abs(emp - p).sum()
        assert tv < _tv_bound(p, n), (tv, _tv_bound(p, n))
    # the bound is tight enough to notice a wrong hidden marginal (uniform instead of exact)
    ph = np.exp(tiny.log_p_hidden)
    assert 0.5 * np.abs(ph - 1 / 8).sum() > 3 * _tv_bound(ph, n)


def test_sampling_reproducible(tiny):
    a = tiny.sample(500, seed=4)
    np.testing.assert_array_equal(a, tiny.sample(500, seed=4))
    assert not np.array_equal(a, tiny.sample(500, seed=5))


def test_monte_carlo_entropy_agrees_with_exact():
    t = planted_teacher(12, 4, connectivity=0.5, weight_scale=1.0, visible_bias_scale=0.5, seed=2)
    ex = t.entropy()
    mc = t.entropy(n_samples=20_000, seed=3, max_visible=8)
    assert mc.method == "monte-carlo" and mc.n_samples == 20_000 and mc.stderr > 0
    # -log p(v) has sd sigma; the mean of n draws is within 5 sigma / sqrt(n) of H (P ~ 6e-7)
    assert abs(mc.value - ex.value) < 5 * mc.stderr
    with pytest.raises(ValueError, match="needs a seed"):
        t.entropy(max_visible=8)


def test_entropy_estimate_does_not_reuse_the_training_samples():
    # With the same user seed, the Monte-Carlo entropy must come from its own stream: under the
    # old 8-byte purpose prefix, "teacher-entropy" and "teacher-sample" drew identical samples.
    t = planted_teacher(12, 4, connectivity=0.5, weight_scale=1.0, visible_bias_scale=0.5, seed=2)
    mc = t.entropy(n_samples=2_000, seed=3, max_visible=8)
    reused = -float(t.log_likelihood(t.sample(2_000, seed=3)).mean())
    assert mc.value != reused


def test_datasets(tiny):
    train, test = teacher_datasets(tiny, 300, 200, seed=9)
    assert train.attrs["subset"] == "train" and test.attrs["subset"] == "test"
    assert train.attrs["teacher_log_z"] == tiny.log_z and train.attrs["sample_seed"] == 9
    assert as_matrix(train).shape == (300, 6) and test["hidden_states"].shape == (200, 3)
    _, test2 = teacher_datasets(tiny, 50, 200, seed=9)
    assert test.identical(test2), "the test set must not depend on n_train"
    assert not np.array_equal(as_matrix(train)[:200], as_matrix(test))


def test_float32_teacher_enumerates_in_float64():
    t32 = planted_teacher(8, 3, weight_scale=1.0, dtype=np.float32, seed=1)
    assert t32.rbm.dtype == np.float32
    assert t32.log_z == pytest.approx(exact.log_partition(t32.rbm), abs=1e-10)


def test_refuses_hidden_layer_too_large_to_enumerate():
    with pytest.raises(ValueError, match=r"2\*\*n_hidden.*n_hidden=21"):
        planted_teacher(5, MAX_HIDDEN + 1, seed=0)
    with pytest.raises(ValueError, match=r"n_hidden=5 is above max_hidden=4"):
        Teacher.from_rbm(RBM.random(3, 5, seed=0), max_hidden=4)
    with pytest.raises(ValueError, match="max_hidden must be"):
        Teacher.from_rbm(RBM.random(3, 5, seed=0), max_hidden=40)


def test_bad_parameters(tiny):
    with pytest.raises(ValueError, match="weight_scale"):
        planted_teacher(4, 2, weight_scale=-1.0, seed=0)
    with pytest.raises(ValueError, match="connectivity"):
        planted_teacher(4, 2, connectivity=1.5, seed=0)
    with pytest.raises(ValueError, match="n_samples"):
        tiny.sample(0, seed=0)
    with pytest.raises(ValueError, match="binary"):
        tiny.log_likelihood(np.full((1, 6), 0.5))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 6\)"):
        tiny.log_likelihood(np.zeros((2, 5)))
