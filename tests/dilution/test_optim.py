from __future__ import annotations

import math

import numpy as np
import pytest

from dilution.optim import (
    SGD,
    Constant,
    CosineDecay,
    ExponentialDecay,
    LinearDecay,
    PiecewiseConstant,
    SGDState,
)
from dilution.parameters import Parameters
from dilution.statistics import GradientEstimate


def _params(rng, dtype=np.float64):
    mask = rng.random((4, 3)) < 0.6
    w = np.where(mask, rng.standard_normal((4, 3)), 0.0).astype(dtype)
    return Parameters(w, rng.standard_normal(4).astype(dtype), rng.standard_normal(3).astype(dtype), mask)


def _grad(rng, dtype=np.float64):
    return GradientEstimate(*(rng.standard_normal(s).astype(dtype) for s in ((4, 3), (4,), (3,))))


def test_two_steps_match_hand_computation():
    rng = np.random.default_rng(0)
    p0 = _params(rng)
    g1, g2 = _grad(rng), _grad(rng)
    lr0, rate, mu, l2, l1 = 0.1, 0.5, 0.9, 0.01, 0.003
    opt = SGD(learning_rate=ExponentialDecay(lr0, rate, decay_steps=1), momentum=mu, l2=l2, l1=l1)
    s0 = opt.init(p0)
    p1, s1 = opt.update(p0, s0, g1, step=0, total_steps=10)
    p2, s2 = opt.update(p1, s1, g2, step=1, total_steps=10)

    m = p0.mask
    # Step 0: eta = lr0, velocity starts at 0.
    u1 = np.where(m, lr0 * (g1.weights - l2 * p0.weights - l1 * np.sign(p0.weights)), 0.0)
    w1 = p0.weights + u1
    # Step 1: eta = lr0 * rate.
    u2 = np.where(m, mu * u1 + lr0 * rate * (g2.weights - l2 * w1 - l1 * np.sign(w1)), 0.0)
    w2 = w1 + u2
    np.testing.assert_allclose(p1.weights, w1, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(p2.weights, w2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(s2.weights, u2, rtol=1e-14, atol=1e-15)
    ua1 = lr0 * g1.visible_bias
    ub1 = lr0 * g1.hidden_bias
    np.testing.assert_allclose(p2.visible_bias, p0.visible_bias + ua1 + mu * ua1 + lr0 * rate * g2.visible_bias,
                               rtol=1e-14)
    np.testing.assert_allclose(p2.hidden_bias, p0.hidden_bias + ub1 + mu * ub1 + lr0 * rate * g2.hidden_bias,
                               rtol=1e-14)
    # Off the mask: weights and velocity exactly zero though the gradient there is not.
    assert np.all(p2.weights[~m] == 0) and np.all(s2.weights[~m] == 0)
    assert np.any(g2.weights[~m] != 0)
    # Inputs are not modified.
    assert np.all(s0.weights == 0)


def test_float32_stays_float32():
    rng = np.random.default_rng(1)
    p = _params(rng, np.float32)
    opt = SGD(learning_rate=0.1, momentum=0.5)
    p1, s1 = opt.update(p, opt.init(p), _grad(rng, np.float32), 0, 1)
    assert p1.weights.dtype == np.float32 and s1.weights.dtype == np.float32 and p1.visible_bias.dtype == np.float32


def test_mask_state_zeroes_velocity_off_mask():
    rng = np.random.default_rng(2)
    state = SGDState(rng.standard_normal((4, 3)), np.ones(4), np.ones(3))
    mask = rng.random((4, 3)) < 0.5
    out = SGD().mask_state(state, mask)
    assert np.all(out.weights[~mask] == 0) and np.array_equal(out.weights[mask], state.weights[mask])


@pytest.mark.parametrize(
    ("schedule", "step", "total", "expected"),
    [
        (Constant(0.3), 17, 100, 0.3),
        (ExponentialDecay(0.1, 0.8, decay_steps=10), 15, 100, 0.1 * 0.8**1.5),
        (ExponentialDecay(0.1, 0.8, decay_steps=10, staircase=True), 15, 100, 0.1 * 0.8),
        (LinearDecay(0.1, 0.02), 25, 100, 0.1 + (0.02 - 0.1) * 0.25),
        (LinearDecay(0.1, 0.02, n_steps=50), 80, 100, 0.02),
        (CosineDecay(0.1), 50, 100, 0.05),
        (CosineDecay(0.1, 0.01, n_steps=40), 10, 1000, 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi / 4))),
        (PiecewiseConstant((5, 10), (0.5, 0.7, 0.9)), 4, 100, 0.5),
        (PiecewiseConstant((5, 10), (0.5, 0.7, 0.9)), 5, 100, 0.7),
        (PiecewiseConstant((5, 10), (0.5, 0.7, 0.9)), 10, 100, 0.9),
    ],
)
def test_schedule_values(schedule, step, total, expected):
    assert schedule(step, total) == pytest.approx(expected, rel=1e-14)


def test_schedules_are_frozen_values():
    s = LinearDecay(0.1)
    with pytest.raises(AttributeError):
        s.initial = 0.2
    assert s == LinearDecay(0.1) and hash(s) == hash(LinearDecay(0.1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -0.1}, "learning_rate must be > 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be finite"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"l2": -1.0}, "l2 must be >= 0"),
        ({"l1": -1.0}, "l1 must be >= 0"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SGD(**kwargs)


def test_bad_schedules():
    with pytest.raises(ValueError, match="rate must be in"):
        ExponentialDecay(0.1, 1.5)
    with pytest.raises(ValueError, match="one more value than boundaries"):
        PiecewiseConstant((5,), (0.1,))
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        CosineDecay(0.1, n_steps=0)
    opt = SGD(momentum=LinearDecay(0.5, 1.2))
    with pytest.raises(ValueError, match=r"momentum schedule gave .* at step 100"):
        opt.hyperparameters(100, 100)


@pytest.mark.parametrize("staircase", ["false", 0, None])
def test_staircase_must_be_a_bool(staircase):
    # "false" is truthy: the exponent was floored
    with pytest.raises(TypeError, match=f"^ExponentialDecay.staircase must be True or False, got {staircase!r}$"):
        ExponentialDecay(1.0, 0.5, decay_steps=4, staircase=staircase)
    assert ExponentialDecay(1.0, 0.5, decay_steps=4, staircase=np.bool_(True))(3, 10) == 1.0


@pytest.mark.parametrize(("boundaries", "error", "match"), [
    ((2.5,), ValueError, "PiecewiseConstant.boundaries entry must be an integer >= 0, got 2.5"),
    (("a",), ValueError, "PiecewiseConstant.boundaries entry must be an integer >= 0, got 'a'"),
    ((-1,), ValueError, "PiecewiseConstant.boundaries entry must be an integer >= 0, got -1"),
    (5, TypeError, "PiecewiseConstant.boundaries must be a sequence, got 5"),
])
def test_piecewise_boundaries_must_be_integers(boundaries, error, match):
    # int(2.5) moved the switch to step 2 without a word
    with pytest.raises(error, match=f"^{match}$"):
        PiecewiseConstant(boundaries=boundaries, values=(0.1, 0.01))
    assert PiecewiseConstant(boundaries=(np.int64(3),), values=(0.1, 0.01)).boundaries == (3,)


@pytest.mark.parametrize("make", [
    lambda: Constant("0.3"), lambda: LinearDecay("0.1"), lambda: CosineDecay(0.1, final="0"),
    lambda: ExponentialDecay(0.1, "0.5"), lambda: PiecewiseConstant((5,), (0.5, "0.9")),
])
def test_schedules_refuse_numeric_strings(make):
    with pytest.raises(TypeError, match=r"^\w+\.\w+ must be a number, got '0"):
        make()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"learning_rate": "0.05"}, "^learning_rate must be a number or a schedule, got '0.05'$"),
    ({"momentum": "0"}, "^momentum must be a number or a schedule, got '0'$"),
    ({"l2": "0.1"}, "^l2 must be a number, got '0.1'$"),
    ({"learning_rate": LinearDecay}, "^learning_rate must be a number or a schedule instance such as "
                                     r"LinearDecay\(0.1\), got the class LinearDecay$"),
    ({"learning_rate": lambda s: 0.1}, r"^learning_rate schedule .* must be callable as schedule\(step, total_steps\) "
                                       r".* its signature is \(s\)$"),
])
def test_hyperparameters_of_the_wrong_kind(kwargs, match):
    # "0.05" was accepted and recorded as a string; a one-argument callable failed at the first update
    with pytest.raises(TypeError, match=match):
        SGD(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"learning_rate": LinearDecay(0.1, final=-0.1)},
     r"^learning_rate schedule LinearDecay\(initial=0.1, final=-0.1, n_steps=None\) gives -0.05\d* at update 3 "
     r"\(0-based\) of 4; expected a finite value >= 0$"),
    ({"learning_rate": ExponentialDecay(-0.1, 0.5)}, r"^learning_rate schedule ExponentialDecay\(.*\) gives -0.1 at "
                                                     r"update 0 \(0-based\) of 4"),
    ({"momentum": PiecewiseConstant((3,), (0.5, 1.0))},
     r"^momentum schedule PiecewiseConstant\(.*\) gives 1.0 at update 3 \(0-based\) of 4; expected a value in \[0, 1\)$"),
    ({"momentum": CosineDecay(1.0, 0.5)}, r"^momentum schedule CosineDecay\(.*\) gives 1.0 at update 0 "),
    ({"learning_rate": lambda step, total: 0.1 - 0.04 * step}, r"^learning_rate schedule .* gives -0.0\d* at update 3 "),
    ({"learning_rate": lambda step, total: "fast"}, r"^learning_rate schedule .* gives 'fast' at update 0 \(0-based\) "
                                                    r"of 4; expected a number$"),
])
def test_check_run_refuses_schedules_that_leave_their_range(kwargs, match):
    # hyperparameters() found these only at the update concerned, losing the run so far
    with pytest.raises((ValueError, TypeError), match=match):
        SGD(**kwargs).check_run(4)


def test_check_run_agrees_with_every_update():
    """The breakpoints check_run evaluates refuse exactly the runs that hyperparameters() would refuse
    at some update (checked against every update)."""
    schedules = [
        ExponentialDecay(0.1, 0.8, decay_steps=3, staircase=True), LinearDecay(0.1, 0.0), LinearDecay(0.1, -0.1),
        LinearDecay(0.1, -0.1, n_steps=40), CosineDecay(0.2, -0.01, n_steps=5), PiecewiseConstant((3, 7), (0.1, 0.2, -1.0)),
        PiecewiseConstant((3, 50), (0.1, 0.2, -1.0)), PiecewiseConstant((0, 7), (-1.0, 0.2, 0.3)),
    ]
    for total in (1, 7, 8, 30):
        for lr in schedules:
            for opt in (SGD(learning_rate=lr), SGD(momentum=lr)):
                try:
                    for step in range(total):
                        opt.hyperparameters(step, total)
                    fails = False
                except ValueError:
                    fails = True
                if fails:
                    with pytest.raises(ValueError, match="gives"):
                        opt.check_run(total)
                else:
                    opt.check_run(total)


def test_check_run_samples_a_plain_callable_on_long_runs():
    calls = []

    def rate(step, total):
        calls.append(step)
        return 0.1

    SGD(learning_rate=rate).check_run(2_000_000)
    assert len(calls) == 10_000 and calls[0] == 0 and calls[-1] == 1_999_999
    calls.clear()
    SGD(learning_rate=rate).check_run(500)
    assert calls == list(range(500))
