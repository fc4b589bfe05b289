"""Masked stochastic gradient ascent with momentum, weight decay and learning-rate schedules.

One step of :class:`SGD` (Hinton 2010, "A practical guide to training RBMs", secs. 9-10), for
the weights, with ``g`` the log-likelihood gradient estimate, ``M`` the connection mask,
``eta_t`` and ``mu_t`` the scheduled learning rate and momentum at step ``t``:

    u_W <- mu_t u_W + eta_t M * (g_W - l2 W - l1 sign(W))
    W   <- W + u_W

and the same for the biases without the decay terms (biases are not decayed, as in the
guide, sec. 10). The learning rate multiplies the gradient *before* it enters the velocity,
so a decaying learning rate also shrinks the momentum already accumulated. Gradient, velocity
and weights are all masked, so weights off the mask stay exactly 0 and a connection that
reappears starts with zero velocity.

Schedules are frozen dataclasses called as ``schedule(step, total_steps)`` with ``step`` the
0-based index of the update, so a run's hyper-parameters are plain values.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
from numba import njit, prange

from .parameters import Parameters
from .threads import sized_kernel
from .validation import check_finite, check_int

__all__ = [
    "Schedule",
    "Constant",
    "ExponentialDecay",
    "LinearDecay",
    "CosineDecay",
    "PiecewiseConstant",
    "as_schedule",
    "SGD",
    "SGDState",
]


@runtime_checkable
class Schedule(Protocol):
    """A hyper-parameter as a function of the update step."""

    def __call__(self, step: int, total_steps: int) -> float:
        """Value at 0-based update ``step`` of a run of ``total_steps`` updates."""
        ...


def _optional_steps(name: str, value) -> None:
    """A step count that may be None (= the whole run); the message says so."""
    if value is None:
        return
    try:
        check_int(name, value, low=1)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer or None (= the whole run), got {value!r}") from None


@dataclass(frozen=True)
class Constant:
    """``value`` at every step."""

    value: float

    def __post_init__(self):
        check_finite("Constant.value", self.value)

    def __call__(self, step: int, total_steps: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class ExponentialDecay:
    """``initial * rate ** (step / decay_steps)``; with ``staircase`` the exponent is floored.

    ``rate=0.8, decay_steps=updates_per_epoch, staircase=True`` is a x0.8 decay per epoch.
    """

    initial: float
    rate: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self):
        check_finite("ExponentialDecay.initial", self.initial)
        if not 0.0 < check_finite("ExponentialDecay.rate", self.rate) <= 1.0:
            raise ValueError(f"ExponentialDecay.rate must be in (0, 1], got {self.rate!r}")
        _optional_steps("ExponentialDecay.decay_steps", self.decay_steps)
        if self.decay_steps is None:
            raise ValueError("ExponentialDecay.decay_steps must be a positive integer, got None")
        # any truthy value would floor the exponent: staircase="false" did
        if not isinstance(self.staircase, (bool, np.bool_)):
            raise TypeError(f"ExponentialDecay.staircase must be True or False, got {self.staircase!r}")
        object.__setattr__(self, "staircase", bool(self.staircase))

    def __call__(self, step: int, total_steps: int) -> float:
        e = step / self.decay_steps
        if self.staircase:
            e = math.floor(e)
        return float(self.initial * self.rate**e)


@dataclass(frozen=True)
class LinearDecay:
    """Linear from ``initial`` at step 0 to ``final`` at step ``n_steps``, then ``final``.

    ``n_steps=None`` means the whole run (``total_steps``).
    """

    initial: float
    final: float = 0.0
    n_steps: int | None = None

    def __post_init__(self):
        check_finite("LinearDecay.initial", self.initial)
        check_finite("LinearDecay.final", self.final)
        _optional_steps("LinearDecay.n_steps", self.n_steps)

    def __call__(self, step: int, total_steps: int) -> float:
        n = self.n_steps if self.n_steps is not None else total_steps
        f = min(step / n, 1.0) if n > 0 else 1.0
        return float(self.initial + (self.final - self.initial) * f)


@dataclass(frozen=True)
class CosineDecay:
    """``final + (initial - final) (1 + cos(pi min(step / n_steps, 1))) / 2`` (Loshchilov & Hutter 2017).

    ``n_steps=None`` means the whole run (``total_steps``).
    """

    initial: float
    final: float = 0.0
    n_steps: int | None = None

    def __post_init__(self):
        check_finite("CosineDecay.initial", self.initial)
        check_finite("CosineDecay.final", self.final)
        _optional_steps("CosineDecay.n_steps", self.n_steps)

    def __call__(self, step: int, total_steps: int) -> float:
        n = self.n_steps if self.n_steps is not None else total_steps
        f = min(step / n, 1.0) if n > 0 else 1.0
        return float(self.final + (self.initial - self.final) * 0.5 * (1.0 + math.cos(math.pi * f)))


@dataclass(frozen=True)
class PiecewiseConstant:
    """``values[k]`` for ``boundaries[k-1] <= step < boundaries[k]``.

    E.g. Hinton's momentum ``PiecewiseConstant(boundaries=(5 * updates_per_epoch,), values=(0.5, 0.9))``.
    """

    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self):
        for name in ("boundaries", "values"):
            if isinstance(getattr(self, name), (str, bytes)) or not isinstance(getattr(self, name), Iterable):
                raise TypeError(f"PiecewiseConstant.{name} must be a sequence, got {getattr(self, name)!r}")
        # int(2.5) would move the switch silently to step 2
        boundaries = tuple(check_int("PiecewiseConstant.boundaries entry", b, low=0) for b in self.boundaries)
        object.__setattr__(self, "boundaries", boundaries)
        values = tuple(check_finite("PiecewiseConstant.values", v) for v in self.values)
        object.__setattr__(self, "values", values)
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstant needs one more value than boundaries, got {len(self.values)} values "
                f"and {len(self.boundaries)} boundaries"
            )
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:])) or any(b < 0 for b in self.boundaries):
            raise ValueError(
                f"PiecewiseConstant.boundaries must be non-negative and increasing, got {self.boundaries}"
            )

    def __call__(self, step: int, total_steps: int) -> float:
        k = 0
        while k < len(self.boundaries) and step >= self.boundaries[k]:
            k += 1
        return self.values[k]


def as_schedule(name: str, value) -> Schedule:
    """A number becomes :class:`Constant`; a schedule is returned as is.

    Raises
    ------
    TypeError
        For a value that is neither a number nor a schedule (a string too), a schedule class
        instead of an instance, or a callable that cannot be called as ``schedule(step, total_steps)``.
    """
    if isinstance(value, type):
        # a class is callable, so it passes the runtime Protocol check
        raise TypeError(f"{name} must be a number or a schedule instance such as LinearDecay(0.1), "
                        f"got the class {value.__name__}")
    if isinstance(value, Schedule) and not isinstance(value, (int, float, np.number)):
        try:
            inspect.signature(value).bind(0, 1)
        except TypeError:
            raise TypeError(f"{name} schedule {value!r} must be callable as schedule(step, total_steps) -> float "
                            f"(0-based update and the run's number of updates); its signature is "
                            f"{inspect.signature(value)}") from None
        except ValueError:
            pass  # no signature to inspect (a builtin): the check before the run calls it
        return value
    try:
        return Constant(check_finite(name, value))
    except TypeError:
        raise TypeError(f"{name} must be a number or a schedule, got {value!r}") from None


# Updates at which SGD.check_run calls a schedule it knows nothing about: every one up to this many.
_EVERY_STEP_LIMIT = 10_000


def _steps_to_check(schedule: Schedule, total_steps: int) -> list[int]:
    """The updates of a ``total_steps`` run at which ``schedule`` takes its extreme values (see SGD.check_run)."""
    last = total_steps - 1
    if type(schedule) is Constant:
        return [0]
    if type(schedule) in (ExponentialDecay, LinearDecay, CosineDecay):
        return [0, last]
    if type(schedule) is PiecewiseConstant:
        return [0] + [b for b in schedule.boundaries if 0 < b <= last]
    if total_steps <= _EVERY_STEP_LIMIT:
        return list(range(total_steps))
    return sorted({int(s) for s in np.linspace(0, last, _EVERY_STEP_LIMIT).round()})


class SGDState(NamedTuple):
    """Velocities of :class:`SGD`; the weight velocity is zero off the mask."""

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray


@sized_kernel(lambda weights, *_: weights.size)
def _masked_momentum_kernel(weights, velocity, grad, mask, lr, momentum, l2, l1):
    n_visible, n_hidden = weights.shape
    dt = weights.dtype
    lr_, mu, c2, c1 = dt.type(lr), dt.type(momentum), dt.type(l2), dt.type(l1)
    zero = dt.type(0.0)
    w_out = np.empty_like(weights)
    u_out = np.empty_like(velocity)
    for i in prange(n_visible):
        for j in range(n_hidden):
            if mask[i, j]:
                w = weights[i, j]
                g = grad[i, j] - c2 * w - c1 * np.sign(w)
                u = mu * velocity[i, j] + lr_ * g
                u_out[i, j] = u
                w_out[i, j] = w + u
            else:
                u_out[i, j] = zero
                w_out[i, j] = zero
    return w_out, u_out


@njit(cache=True)
def _masked(velocity, mask):
    """``velocity`` where ``mask``, 0 elsewhere (a new array)."""
    out = np.empty_like(velocity)
    zero = velocity.dtype.type(0.0)
    for i in range(velocity.shape[0]):
        for j in range(velocity.shape[1]):
            out[i, j] = velocity[i, j] if mask[i, j] else zero
    return out


@dataclass(frozen=True)
class SGD:
    """Masked stochastic gradient *ascent* on the log-likelihood with momentum (see module docstring).

    Parameters
    ----------
    learning_rate : float or Schedule
    momentum : float or Schedule
        Values in [0, 1).
    l2 : float
        Coefficient of the L2 weight decay (weights only), ``>= 0``.
    l1 : float
        Coefficient of the L1 weight decay (weights only), ``>= 0``.
    """

    learning_rate: float | Schedule = 0.01
    momentum: float | Schedule = 0.0
    l2: float = 0.0
    l1: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "learning_rate", as_schedule("learning_rate", self.learning_rate))
        object.__setattr__(self, "momentum", as_schedule("momentum", self.momentum))
        for name in ("l2", "l1"):
            if check_finite(name, getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if isinstance(self.learning_rate, Constant) and not self.learning_rate.value > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate.value!r}")
        if isinstance(self.momentum, Constant) and not 0 <= self.momentum.value < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum.value!r}")

    def hyperparameters(self, step: int, total_steps: int) -> tuple[float, float]:
        """(learning rate, momentum) at 0-based ``step``, checked for range."""
        lr = self.learning_rate(step, total_steps)
        mu = self.momentum(step, total_steps)
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning-rate schedule gave {lr!r} at step {step}; expected a finite value >= 0")
        if not 0 <= mu < 1:
            raise ValueError(f"momentum schedule gave {mu!r} at step {step}; expected a value in [0, 1)")
        return lr, mu

    def check_run(self, total_steps: int) -> None:
        """Refuse, before the first update, schedules that :meth:`hyperparameters` would refuse
        at some update of a run of ``total_steps`` updates (a failure mid-run loses the run).

        The built-in decays are monotone in the step, so their first and last updates bound them;
        :class:`PiecewiseConstant` takes each of its values from its first update. Any other
        callable is called at every update of runs up to ``_EVERY_STEP_LIMIT`` updates (a few ms),
        and at that many evenly spaced ones, first and last included, beyond. A rule that restarts
        the schedules evaluates them over a shorter run: those values are checked as the updates run.

        Raises
        ------
        ValueError
            Naming the schedule, its value, the update and the expected range.
        TypeError
            If a schedule cannot be called as ``schedule(step, total_steps)`` or gives no number.
        """
        for name, schedule, expected in (("learning_rate", self.learning_rate, "a finite value >= 0"),
                                         ("momentum", self.momentum, "a value in [0, 1)")):
            for step in _steps_to_check(schedule, total_steps):
                try:
                    value = schedule(step, total_steps)
                except TypeError as err:
                    raise TypeError(f"{name} schedule {schedule!r} failed at update {step} (0-based) of "
                                    f"{total_steps}: {err}; a schedule is called as schedule(step, total_steps) "
                                    "-> float") from None
                try:
                    if name == "learning_rate":
                        ok = math.isfinite(value) and value >= 0
                    else:
                        ok = 0 <= value < 1
                except TypeError:
                    raise TypeError(f"{name} schedule {schedule!r} gives {value!r} at update {step} (0-based) of "
                                    f"{total_steps}; expected a number") from None
                if not ok:
                    raise ValueError(f"{name} schedule {schedule!r} gives {value!r} at update {step} (0-based) "
                                     f"of {total_steps}; expected {expected}")

    def init(self, params: Parameters) -> SGDState:
        """Zero velocities."""
        return SGDState(
            np.zeros_like(params.weights), np.zeros_like(params.visible_bias), np.zeros_like(params.hidden_bias)
        )

    def update(
        self, params: Parameters, state: SGDState, gradient, step: int, total_steps: int
    ) -> tuple[Parameters, SGDState]:
        """One ascent step; returns new arrays, the inputs are not modified.

        Parameters
        ----------
        params : Parameters
        state : SGDState
        gradient : GradientEstimate or any object with ``weights``, ``visible_bias``, ``hidden_bias``
            Ascent direction (log-likelihood gradient) for every pair; it is masked here.
        step : int
            0-based index of this update (sets the scheduled values).
        total_steps : int
            Length of the run (for schedules defined over the whole run).
        """
        lr, mu = self.hyperparameters(step, total_steps)
        dt = params.weights.dtype
        w, u_w = _masked_momentum_kernel(
            params.weights, state.weights, gradient.weights, params.mask, lr, mu, self.l2, self.l1
        )
        lr_, mu_ = dt.type(lr), dt.type(mu)
        u_a = mu_ * state.visible_bias + lr_ * gradient.visible_bias
        u_b = mu_ * state.hidden_bias + lr_ * gradient.hidden_bias
        new = Parameters(w, params.visible_bias + u_a, params.hidden_bias + u_b, params.mask)
        return new, SGDState(u_w, u_a, u_b)

    def mask_state(self, state: SGDState, mask: np.ndarray) -> SGDState:
        """Velocities with the weight velocity zeroed off ``mask`` (after a connectivity change)."""
        return state._replace(weights=_masked(state.weights, mask))
