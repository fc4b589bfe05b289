"""DEEP R and soft-DEEP R (Bellec, Kappel, Maass & Legenstein, ICLR 2018) as connectivity rules.

Every visible-hidden pair ``k`` has a parameter ``theta_k`` and a sign ``s_k`` in {-1, +1},
drawn once at initialisation and never changed. The pair is *active* when ``theta_k >= 0``,
with weight ``w_k = s_k theta_k``; it is *dormant* (weight 0, masked) when ``theta_k < 0``.
One update with learning rate ``eta``, L1 coefficient ``alpha`` and temperature ``T``
(Algorithm 1 of the paper; ``g`` the log-likelihood gradient estimate, so that
``-dE/dtheta_k = s_k g_k``):

DEEP R (:class:`DeepR`)
    for every active ``k``: ``theta_k <- theta_k + eta s_k g_k - eta alpha + sqrt(2 eta T) nu_k``
    (``nu_k ~ N(0, 1)``); an active ``theta_k < 0`` becomes dormant; then uniformly random
    dormant pairs (the ones just deactivated included) are activated at ``theta = 0`` until
    exactly ``k`` pairs are active, in the whole network or in every hidden unit's column.
    Dormant parameters receive nothing (their ``theta`` is kept as NaN: DEEP R has no use for it).
soft-DEEP R (:class:`SoftDeepR`)
    the same step on active pairs, the noise ``sqrt(2 eta T) nu_k`` on dormant ones too, then the
    floor ``theta_min < 0`` (reflecting by default; the reference code clips); no budget.

Who does what in the trainer
----------------------------
The rule owns the whole update of ``theta``: it recomputes the likelihood step
``eta s g`` from the gradient the trainer hands it and applies the prior step ``-eta alpha``
(on every active pair, the ones reactivated at ``theta = 0`` included: the optimiser's
``l1 sign(W)`` would be 0 there) and the noise itself. The trainer's optimiser must therefore
do plain SGD on the weights (``momentum = 0``, ``l1 = 0``, ``l2 = 0``, built by
:func:`deep_r_config`); the rule checks at every update that the optimiser's weights equal
``s (theta + eta s g)`` on the active pairs and raises otherwise (an ``l1``, ``l2`` or momentum
term would be applied twice or would break the sampler). ``init`` replaces the starting model's
weights and mask by its own draw (signs, ``theta``); the biases are kept.

Biases
------
``biases="langevin"`` (default) adds ``sqrt(2 eta T) nu`` to the optimiser's SGD step of the
biases: only then is the stationary law of the joint chain the tempered posterior
``exp((1/T)[mean log-likelihood - alpha sum theta_active - (bias_l2/2)(|b|^2 + |c|^2)])`` of
weights *and* biases that the paper's theorems describe (Theorems 1 and 2 with exact gradients;
digest C.2, option b), the target of :class:`analysis.posterior.Posterior`. ``bias_l2 = lambda``
is a Gaussian prior on the biases, i.e. weight decay: after the optimiser's step
``b' = b + eta g_b`` the rule sets ``b <- b' - eta lambda b' + sqrt(2 eta T) nu`` (decaying the
post-step value differs from decaying ``b`` by ``O(eta^2)``, the order of the Euler scheme's own
error). The default ``bias_l2 = 0`` is the flat prior, which on a tiny RBM is improper (a hidden
bias can drift to ``-inf``, switching its unit off at no cost in likelihood): use ``bias_l2 > 0``
to sample the posterior. At the paper's small temperatures the extra noise is negligible, so the
default costs nothing in practice. ``"sgd"`` keeps the optimiser's plain step (the paper's practice; the biases are then
optimised, not sampled); ``"fixed"`` keeps the initial biases.

Prior-only limit
----------------
With the likelihood switched off (``g = 0``; :func:`prior_dynamics`, a fused numba loop) the
stationary laws are known (digest B.7): DEEP R's mask is uniform over the ``C(D, K)`` choices
with active ``theta`` i.i.d. ``Exp(alpha / T)``; soft-DEEP R's pairs are independent, active with
probability ``(T / alpha) / (T / alpha + |theta_min|)`` (:func:`inclusion_probability`), active
``theta ~ Exp(alpha / T)``, dormant ``theta ~ U[theta_min, 0)``.

Random numbers are counter-based (:mod:`dilution.rng`): the draws of update ``t`` are a pure
function of the run seed and ``t``, so a resumed run repeats them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar, Literal, NamedTuple

import numpy as np
from numba import njit, types
from numba.typed import Dict

from .connectivity import StepContext
from .parameters import Parameters
from .rng import chain_keys, derive_seed, uniform64
from .statistics import GradientEstimate
from .validation import check_finite, check_int, check_seed

__all__ = [
    "DeepR",
    "SoftDeepR",
    "DeepRState",
    "DeepRInfo",
    "PriorRun",
    "deep_r_config",
    "from_options",
    "inclusion_probability",
    "normal_draw",
    "prior_dynamics",
    "rewire_step",
]

_BIASES = ("langevin", "sgd", "fixed")
_SCOPES = ("global", "hidden")
_FLOORS = ("reflect", "clip")


class DeepRState(NamedTuple):
    """State of :class:`DeepR` and :class:`SoftDeepR`.

    Attributes
    ----------
    theta : ndarray, shape (n_visible, n_hidden), dtype of the run
        Parameters; the pair is active where ``theta >= 0``. DEEP R keeps NaN on dormant pairs;
        soft-DEEP R keeps their value in ``[theta_min, 0)``.
    sign : ndarray of int8, shape (n_visible, n_hidden)
        The fixed signs ``s``.
    keys : ndarray of uint64, shape (2,)
        Counter-based stream keys: the Gaussian noise and the reactivation choices.
    visible_bias, hidden_bias : ndarray or None
        The initial biases (``biases="fixed"``), None otherwise.
    """

    theta: np.ndarray
    sign: np.ndarray
    keys: np.ndarray
    visible_bias: np.ndarray | None
    hidden_bias: np.ndarray | None


class DeepRInfo(NamedTuple):
    """What one update did.

    Attributes
    ----------
    n_added : int
        Births: pairs activated (DEEP R's reactivations at ``theta = 0``, soft-DEEP R's dormant
        parameters that crossed 0).
    n_removed : int
        Deaths: active pairs whose ``theta`` went below 0.
    n_active : int
        Active pairs after the update.
    n_flips : int
        Pairs whose mask differs from before the update (a DEEP R pair that died and was
        drawn again at once is a birth and a death but no flip).
    """

    n_added: int = 0
    n_removed: int = 0
    n_active: int = 0
    n_flips: int = 0


# ----------------------------------------------------------------------------------------------
# Kernels


@njit(inline="always", cache=True)
def normal_draw(key, index):
    """Standard normal draw ``index`` of stream ``key`` (Box-Muller on uniforms 2 index, 2 index + 1).

    Public for :mod:`dilution.replicas`, whose kernel draws the rule's bias noise with it.
    """
    two = np.uint64(2)
    u1 = 1.0 - uniform64(key, two * index)  # in (0, 1]: the log is finite
    u2 = uniform64(key, two * index + np.uint64(1))
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def _normals(key, first, n):
    """``n`` standard normal draws ``first, first + 1, ...`` of stream ``key``, float64."""
    out = np.empty(n)
    for r in range(n):
        out[r] = normal_draw(key, first + np.uint64(r))
    return out


@njit(cache=True)
def _dormant(kept, n_kept, rank):
    """Index of the ``rank``-th (0-based) dormant entry of a group whose active entries are ``kept[:n_kept]`` (sorted).

    ``kept[m] - m`` is the number of dormant entries before ``kept[m]`` (nondecreasing), so the
    answer is ``rank`` plus the number of active entries with ``kept[m] - m <= rank``.
    """
    lo, hi = 0, n_kept
    while lo < hi:
        mid = (lo + hi) // 2
        if kept[mid] - mid <= rank:
            lo = mid + 1
        else:
            hi = mid
    return rank + lo


@njit(cache=True)
def _reactivate(theta, kept, n_kept, group_size, n_pick, key, first, column):
    """Set ``theta = 0`` on ``n_pick`` uniformly chosen dormant entries of a group (partial Fisher-Yates).

    The group is the whole network (``column < 0``, entries are pair indices) or the rows of
    ``column``; its active entries are ``kept[:n_kept]``, sorted. The shuffle runs over the list of
    dormant entries in increasing order: step ``r`` swaps entry ``r`` with entry ``j``, drawn
    uniformly from ``r .. n_candidates - 1`` with uniform draw ``first + r`` of stream ``key``,
    and entry ``j`` is picked. The list is not written: an entry is computed from ``kept``
    (:func:`_dormant`) unless a swap has put another there.
    """
    n_candidates = group_size - n_kept
    swapped = Dict.empty(key_type=types.int64, value_type=types.int64)
    n_hidden = theta.shape[1]
    for r in range(n_pick):
        u = uniform64(key, first + np.uint64(r))
        j = r + min(int(u * (n_candidates - r)), n_candidates - r - 1)
        at_r = swapped[r] if r in swapped else _dormant(kept, n_kept, r)
        chosen = swapped[j] if j in swapped else _dormant(kept, n_kept, j)
        swapped[j] = at_r
        if column < 0:
            theta[chosen // n_hidden, chosen % n_hidden] = theta.dtype.type(0.0)
        else:
            theta[chosen, column] = theta.dtype.type(0.0)


@njit(inline="always", cache=True)
def _langevin(dt, t, s, g, eta_, alpha_, noise_scale, theta_min, soft, reflect, noise_key, index):
    """``theta`` of one pair (dtype ``dt``, sign ``s``, gradient ``g``) after the step of the module docstring.

    The likelihood and prior step on an active pair, the noise (normal draw ``index``),
    soft-DEEP R's floor; a DEEP R pair that falls below 0 is left to the caller.
    """
    if t >= dt.type(0.0):
        t = t + eta_ * (dt.type(s) * g - alpha_)
    t = t + dt.type(noise_scale * normal_draw(noise_key, index))
    if soft and t < theta_min:
        t = dt.type(2.0 * theta_min - t) if reflect else dt.type(theta_min)
        if t < theta_min:  # a step longer than |theta_min| past the floor
            t = dt.type(theta_min)
    return t


@njit(cache=True)
def rewire_step(theta, sign, grad, eta, alpha, noise_scale, theta_min, soft, reflect, budget, per_hidden,
                noise_key, choice_key, step, streams, scratch):
    """One DEEP R / soft-DEEP R update of ``theta`` in place (see the module docstring).

    The one home of the update's arithmetic: :meth:`DeepR.update`, :func:`prior_dynamics` and the
    replica kernel of :mod:`dilution.replicas` call it.

    ``streams`` is the number of normal draws reserved per step (pairs, then biases): pair ``p``
    at update ``step`` uses normal draw ``step * streams + p``; reactivation choices use uniform
    draws from ``step * n_pairs`` of ``choice_key``. ``theta`` must be C-contiguous.
    ``scratch`` (int64, ``n_pairs`` entries) holds the pairs that stay active and, from its end,
    the ones that die. Returns (births, deaths, flips).
    """
    n_visible, n_hidden = theta.shape
    n_pairs = n_visible * n_hidden
    dt = theta.dtype
    eta_, alpha_ = dt.type(eta), dt.type(alpha)
    zero = dt.type(0.0)
    base = np.uint64(step) * np.uint64(streams)
    births = 0
    deaths = 0
    flips = 0
    if soft:
        for i in range(n_visible):
            for j in range(n_hidden):
                t = theta[i, j]
                active = t >= zero
                t = _langevin(dt, t, sign[i, j], grad[i, j], eta_, alpha_, noise_scale, theta_min, True, reflect,
                              noise_key, base + np.uint64(i * n_hidden + j))
                theta[i, j] = t
                if t < zero:
                    if active:
                        deaths += 1
                elif not active:
                    births += 1
                if active != (t >= zero):
                    flips += 1
        return births, deaths, flips
    # One pass moves DEEP R's active pairs (its dormant ones are NaN and receive nothing) and lists
    # the survivors of each budget group in increasing order: column by column with a budget per
    # hidden unit (a column is complete when its turn comes), otherwise row by row, the order of
    # theta in memory.
    first = np.uint64(step) * np.uint64(n_pairs)
    flat = theta.reshape(n_pairs)  # a view: theta is C-contiguous
    n_outer, n_inner = (n_hidden, n_visible) if per_hidden else (n_visible, n_hidden)
    outer_stride, inner_stride = (1, n_hidden) if per_hidden else (n_hidden, 1)
    n_kept = 0
    n_lost = 0
    for a in range(n_outer):
        if per_hidden:
            n_kept = 0
        for b in range(n_inner):
            p = a * outer_stride + b * inner_stride
            t = flat[p]
            if not t >= zero:
                continue
            i, j = p // n_hidden, p % n_hidden
            t = _langevin(dt, t, sign[i, j], grad[i, j], eta_, alpha_, noise_scale, theta_min, False, False,
                          noise_key, base + np.uint64(p))
            if t >= zero:
                flat[p] = t
                scratch[n_kept] = b if per_hidden else p
                n_kept += 1
            else:
                if t < zero:  # not NaN
                    deaths += 1
                flat[p] = dt.type(np.nan)
                n_lost += 1
                scratch[n_pairs - n_lost] = p
        if per_hidden and budget > n_kept:
            _reactivate(theta, scratch, n_kept, n_visible, budget - n_kept, choice_key,
                        first + np.uint64(a * n_visible), a)
            births += budget - n_kept
    if not per_hidden and budget > n_kept:
        _reactivate(theta, scratch, n_kept, n_pairs, budget - n_kept, choice_key, first, -1)
        births += budget - n_kept
    # a pair that died and was drawn again at once is a birth and a death but no flip
    flips = n_lost + births
    for r in range(n_pairs - n_lost, n_pairs):
        if flat[scratch[r]] >= zero:
            flips -= 2
    return births, deaths, flips


@njit(cache=True)
def _weights_and_mask(theta, sign):
    """``W = s theta`` and ``M = theta >= 0`` (0 and False on dormant pairs)."""
    n_visible, n_hidden = theta.shape
    zero = theta.dtype.type(0.0)
    w = np.zeros_like(theta)
    mask = np.zeros(theta.shape, dtype=np.bool_)
    for i in range(n_visible):
        for j in range(n_hidden):
            t = theta[i, j]
            if t >= zero:
                mask[i, j] = True
                w[i, j] = theta.dtype.type(sign[i, j]) * t
    return w, mask


@njit(cache=True)
def _optimizer_excess(theta, sign, weights, grad, eta, eps):
    """Largest excess of ``|s W - (theta + eta s g)|`` over rounding on the active pairs.

    Positive when the optimiser's weight step was not plain SGD ``W + eta g`` (an ``l1``, ``l2``
    or momentum term). The bound is 4 ulp (``eps``, the dtype's machine epsilon) of the operands.
    """
    dt = theta.dtype
    eta_ = dt.type(eta)
    worst = 0.0
    for i in range(theta.shape[0]):
        for j in range(theta.shape[1]):
            t = theta[i, j]
            if t >= dt.type(0.0):
                s = dt.type(sign[i, j])
                step = eta_ * (s * grad[i, j])
                dev = abs(np.float64(s * weights[i, j]) - np.float64(t + step))
                tol = 4.0 * eps * (abs(np.float64(t)) + abs(np.float64(step))) + 1e-300
                if dev - tol > worst:
                    worst = dev - tol
    return worst


@njit(cache=True)
def _prior_loop(theta, sign, eta, alpha, noise_scale, theta_min, soft, reflect, budget, per_hidden,
                noise_key, choice_key, first_step, n_steps, streams, record_every, records, active, born, died):
    """``n_steps`` updates with zero gradient from update ``first_step + 1``; records theta every ``record_every``."""
    n_pairs = theta.size
    grad = np.zeros_like(theta)
    scratch = np.zeros(n_pairs, dtype=np.int64)
    zero = theta.dtype.type(0.0)
    r = 0
    for t in range(n_steps):
        b, d, _ = rewire_step(theta, sign, grad, eta, alpha, noise_scale, theta_min, soft, reflect, budget,
                              per_hidden, noise_key, choice_key, first_step + t + 1, streams, scratch)
        born[t] = b
        died[t] = d
        n = 0
        for i in range(theta.shape[0]):
            for j in range(theta.shape[1]):
                if theta[i, j] >= zero:
                    n += 1
        active[t] = n
        if record_every > 0 and (t + 1) % record_every == 0:
            records[r] = theta
            r += 1


# ----------------------------------------------------------------------------------------------
# Rules


def _check_common(rule) -> None:
    name = type(rule).__name__
    if check_finite(f"{name}.alpha", rule.alpha) < 0:
        raise ValueError(f"{name}.alpha (the L1 coefficient) must be >= 0, got {rule.alpha!r}")
    if check_finite(f"{name}.temperature", rule.temperature) < 0:
        raise ValueError(f"{name}.temperature must be >= 0, got {rule.temperature!r}")
    object.__setattr__(rule, "alpha", float(rule.alpha))
    object.__setattr__(rule, "temperature", float(rule.temperature))
    if rule.biases not in _BIASES:
        raise ValueError(f"{name}.biases must be one of {_BIASES}, got {rule.biases!r}")
    if check_finite(f"{name}.bias_l2", rule.bias_l2) < 0:
        raise ValueError(f"{name}.bias_l2 (Gaussian prior on the biases) must be >= 0, got {rule.bias_l2!r}")
    object.__setattr__(rule, "bias_l2", float(rule.bias_l2))
    if rule.bias_l2 > 0 and rule.biases == "fixed":
        raise ValueError(f"{name}.bias_l2={rule.bias_l2!r} decays biases that biases='fixed' never moves; use "
                         "biases='langevin' (or 'sgd'), or bias_l2=0")
    if rule.init_scale is not None:
        if not check_finite(f"{name}.init_scale", rule.init_scale) > 0:
            raise ValueError(f"{name}.init_scale must be > 0 or None (1 / sqrt(n_visible)), got {rule.init_scale!r}")
        object.__setattr__(rule, "init_scale", float(rule.init_scale))


class _Rewiring:
    """What DEEP R and soft-DEEP R share: the update, the biases, the state's arrays at checkpoints."""

    # The update reads the gradient of active pairs only (a dormant theta moves by noise alone),
    # so the trainer skips the absent pairs' gradient (dilution.connectivity).
    reads_absent_gradient: ClassVar[bool] = False
    plain_sgd: ClassVar[str] = ("the rule applies its L1 prior step -eta*alpha and its Langevin noise itself, and a "
                                "velocity carries past noise into the step, so the chain no longer samples the "
                                "posterior (dilution.deep_r.deep_r_config builds such a config)")

    def _scale(self, n_visible: int) -> float:
        # The reference scripts' N(0, 1) / sqrt(n_in), n_in the fan-in of a hidden unit.
        return self.init_scale if self.init_scale is not None else 1.0 / math.sqrt(n_visible)

    def _state(self, params: Parameters, theta: np.ndarray, sign: np.ndarray, context: StepContext) -> DeepRState:
        keys = chain_keys(derive_seed(context.run_seed, "deep-r", "steps"), 2)
        fixed = self.biases == "fixed"
        return DeepRState(
            theta, sign, keys,
            params.visible_bias.copy() if fixed else None, params.hidden_bias.copy() if fixed else None,
        )

    def _init_output(self, params: Parameters, state: DeepRState):
        w, mask = _weights_and_mask(state.theta, state.sign)
        n_added = int(np.count_nonzero(mask & ~params.mask))
        n_removed = int(np.count_nonzero(~mask & params.mask))
        n_active = int(np.count_nonzero(mask))
        info = DeepRInfo(n_added, n_removed, n_active, n_added + n_removed)
        return params._replace(weights=w, mask=mask), state, info

    def _noise_scale(self, eta: float) -> float:
        return math.sqrt(2.0 * eta * self.temperature)

    def _kernel_args(self, state: DeepRState, eta: float):
        soft = isinstance(self, SoftDeepR)
        return (
            eta, self.alpha, self._noise_scale(eta),
            self.floor_value if soft else 0.0, soft, soft and self.floor == "reflect",
            0 if soft else self.k, (not soft) and self.scope == "hidden", state.keys[0], state.keys[1],
        )

    def update(self, params: Parameters, state: DeepRState, gradient: GradientEstimate, context: StepContext):
        name = type(self).__name__
        if context.momentum != 0:
            raise ValueError(
                f"{name} needs momentum 0, got momentum={context.momentum!r}: a velocity carries past noise and "
                "gradients into the step, and the chain no longer samples the posterior; build the config with "
                "dilution.deep_r.deep_r_config(...)"
            )
        eta = float(context.learning_rate)
        excess = _optimizer_excess(state.theta, state.sign, params.weights, gradient.weights, eta,
                                   float(np.finfo(state.theta.dtype).eps))
        if excess > 0:
            raise ValueError(
                f"{name}: the optimiser's weight step differs from plain SGD W + eta g by up to {excess:.3g} on "
                "active pairs; the rule applies the L1 prior step -eta*alpha and the noise itself, so the config "
                "must have l1=0, l2=0 and momentum=0 (build it with dilution.deep_r.deep_r_config(...))"
            )
        v, h = state.theta.shape
        theta = state.theta.copy()
        scratch = np.empty(v * h, dtype=np.int64)
        streams = v * h + v + h
        births, deaths, flips = rewire_step(
            theta, state.sign, gradient.weights, *self._kernel_args(state, eta), context.step, streams, scratch,
        )
        w, mask = _weights_and_mask(theta, state.sign)
        new = params._replace(weights=w, mask=mask)
        if self.bias_l2 > 0:
            # The same expression as dilution.replicas' kernel, so the two agree to the last bit.
            decay = eta * self.bias_l2
            new = new._replace(visible_bias=new.visible_bias - (decay * new.visible_bias).astype(new.visible_bias.dtype),
                               hidden_bias=new.hidden_bias - (decay * new.hidden_bias).astype(new.hidden_bias.dtype))
        if self.biases == "langevin" and self.temperature > 0:
            noise = self._noise_scale(eta) * _normals(
                state.keys[0], np.uint64(context.step) * np.uint64(streams) + np.uint64(v * h), v + h
            )
            dt = params.visible_bias.dtype
            new = new._replace(
                visible_bias=new.visible_bias + noise[:v].astype(dt),
                hidden_bias=new.hidden_bias + noise[v:].astype(dt),
            )
        elif self.biases == "fixed":
            new = new._replace(visible_bias=state.visible_bias.copy(), hidden_bias=state.hidden_bias.copy())
        info = DeepRInfo(int(births), int(deaths), int(np.count_nonzero(mask)), int(flips))
        return new, state._replace(theta=theta), info

    def checkpoint_arrays(self, state: DeepRState) -> dict[str, np.ndarray]:
        """``theta`` (NaN on DEEP R's dormant pairs) and the fixed ``sign``, for the training history."""
        return {"theta": state.theta.copy(), "sign": state.sign.copy()}


@dataclass(frozen=True)
class DeepR(_Rewiring):
    """DEEP R: Langevin rewiring with exactly ``k`` active connections (Bellec et al. 2018, Algorithm 1).

    Parameters
    ----------
    k : int
        Active connections: in the whole network (``scope="global"``, at most
        ``n_visible * n_hidden``) or in every hidden unit's column (``scope="hidden"``, at most
        ``n_visible``).
    alpha : float
        L1 coefficient (rate of the exponential prior on active ``theta``), ``>= 0``.
    temperature : float
        ``T >= 0``; the noise of an update is ``sqrt(2 eta T) N(0, 1)``. With the mean
        log-likelihood of a batch as objective, ``T = 1 / n_samples`` targets the Bayesian
        posterior (digest B.7).
    scope : "global" or "hidden"
    biases : "langevin", "sgd" or "fixed"
        See the module docstring; ``"langevin"`` makes the theorem's target the joint posterior.
    init_scale : float or None
        Initial active ``theta`` are ``|N(0, init_scale**2)|`` on ``k`` uniformly random pairs
        (the reference script's ``|w_0|``); None is ``1 / sqrt(n_visible)``, as there.
    bias_l2 : float
        ``lambda >= 0``: Gaussian prior (weight decay) on the biases (module docstring); 0 is flat.

    Notes
    -----
    The reference code marks a pair active when ``theta > 0`` and reactivates at
    ``theta = 1e-12``; here (as in the paper) active is ``theta >= 0`` and reactivation is at 0.
    The initial mask has exactly ``k`` pairs (the reference draws with replacement and tops up
    at the first step).
    """

    k: int
    alpha: float
    temperature: float
    scope: Literal["global", "hidden"] = "global"
    biases: Literal["langevin", "sgd", "fixed"] = "langevin"
    init_scale: float | None = None
    bias_l2: float = 0.0

    # The option that sets how many connections the rule's own mask has (--connectivity does not apply).
    sparsity_option: ClassVar[tuple[str, str]] = (
        "k", "the number of active connections, e.g. k=7840 for 2 % of 784 x 500")

    def __post_init__(self):
        object.__setattr__(self, "k", check_int("DeepR.k (active connections)", self.k, low=1))
        if self.scope not in _SCOPES:
            raise ValueError(f"DeepR.scope must be 'global' (k in the network) or 'hidden' (k per hidden unit), "
                             f"got {self.scope!r}")
        _check_common(self)

    def check_shape(self, n_visible: int, n_hidden: int) -> None:
        """Raise ValueError if ``k`` does not fit a ``n_visible x n_hidden`` model."""
        room = n_visible * n_hidden if self.scope == "global" else n_visible
        if self.k > room:
            where = (f"the {n_visible} x {n_hidden} = {room} pairs" if self.scope == "global"
                     else f"the {n_visible} pairs of a hidden unit (scope='hidden')")
            raise ValueError(f"DeepR.k={self.k} is larger than {where}")

    def init(self, params: Parameters, context: StepContext):
        v, h = params.mask.shape
        self.check_shape(v, h)
        rng = np.random.default_rng(derive_seed(context.run_seed, "deep-r", "init"))
        sign = np.where(rng.random((v, h)) < 0.5, -1, 1).astype(np.int8)
        magnitude = np.abs(rng.standard_normal((v, h))) * self._scale(v)
        active = np.zeros((v, h), dtype=bool)
        if self.scope == "global":
            active.flat[rng.choice(v * h, self.k, replace=False)] = True
        else:
            for j in range(h):
                active[rng.choice(v, self.k, replace=False), j] = True
        dt = params.weights.dtype
        theta = np.where(active, magnitude, np.nan).astype(dt)
        return self._init_output(params, self._state(params, theta, sign, context))


@dataclass(frozen=True)
class SoftDeepR(_Rewiring):
    """soft-DEEP R: Langevin rewiring without a budget, dormant parameters above a floor (Bellec et al. 2018).

    Parameters
    ----------
    alpha : float
        L1 coefficient, ``>= 0``.
    temperature : float
        ``T >= 0``.
    p0 : float in (0, 1]
        Target prior connectivity. Initialisation (reference script): with probability ``p0``
        ``theta ~ N(0, init_scale**2)`` (no absolute value, so about half of these start
        dormant), otherwise ``theta ~ U[theta_min, 0)``; values below the floor start at it.
    theta_min : float or None
        The floor, ``< 0``. None derives it from ``p0`` as the reference script does,
        ``theta_min = -(1 - p0) T / (p0 alpha)``, which makes the prior-only inclusion probability
        :func:`inclusion_probability` equal to ``p0``.
    floor : "reflect" or "clip"
        ``theta < theta_min`` becomes ``2 theta_min - theta`` (a reflecting boundary: the
        dormant density stays uniform up to the floor) or ``theta_min`` (the reference code's
        ``max``, which piles up an atom at the floor).
    biases : "langevin", "sgd" or "fixed"
    init_scale : float or None
        None is ``1 / sqrt(n_visible)``.
    bias_l2 : float
        ``lambda >= 0``: Gaussian prior (weight decay) on the biases (module docstring); 0 is flat.
    """

    alpha: float
    temperature: float
    p0: float
    theta_min: float | None = None
    floor: Literal["reflect", "clip"] = "reflect"
    biases: Literal["langevin", "sgd", "fixed"] = "langevin"
    init_scale: float | None = None
    bias_l2: float = 0.0

    sparsity_option: ClassVar[tuple[str, str]] = ("p0", "the target prior connectivity")

    def __post_init__(self):
        _check_common(self)
        p0 = check_finite("SoftDeepR.p0", self.p0)
        if not 0.0 < p0 <= 1.0:
            raise ValueError(f"SoftDeepR.p0 (target prior connectivity) must be in (0, 1], got {self.p0!r}")
        object.__setattr__(self, "p0", p0)
        if self.theta_min is not None:
            if not check_finite("SoftDeepR.theta_min", self.theta_min) < 0:
                raise ValueError(f"SoftDeepR.theta_min (the floor of dormant parameters) must be < 0, "
                                 f"got {self.theta_min!r}")
            object.__setattr__(self, "theta_min", float(self.theta_min))
        elif not (p0 < 1 and self.temperature > 0 and self.alpha > 0):
            raise ValueError(
                f"SoftDeepR: theta_min derived from p0 is -(1 - p0) T / (p0 alpha), which needs p0 < 1, T > 0 and "
                f"alpha > 0 (got p0={p0!r}, temperature={self.temperature!r}, alpha={self.alpha!r}); give "
                "theta_min < 0 explicitly"
            )
        if self.floor not in _FLOORS:
            raise ValueError(f"SoftDeepR.floor must be 'reflect' or 'clip', got {self.floor!r}")

    @property
    def floor_value(self) -> float:
        """``theta_min``, given or derived from ``p0``."""
        if self.theta_min is not None:
            return self.theta_min
        return -(1.0 - self.p0) * self.temperature / (self.p0 * self.alpha)

    def init(self, params: Parameters, context: StepContext):
        v, h = params.mask.shape
        rng = np.random.default_rng(derive_seed(context.run_seed, "deep-r", "init"))
        sign = np.where(rng.random((v, h)) < 0.5, -1, 1).astype(np.int8)
        lo = self.floor_value
        theta = np.where(
            rng.random((v, h)) < self.p0, rng.standard_normal((v, h)) * self._scale(v), lo * rng.random((v, h))
        )
        theta = np.maximum(theta, lo).astype(params.weights.dtype)
        return self._init_output(params, self._state(params, theta, sign, context))


def inclusion_probability(alpha: float, temperature: float, theta_min: float) -> float:
    """soft-DEEP R's prior-only probability that a pair is active: ``(T/alpha) / (T/alpha + |theta_min|)``.

    The stationary density is ``exp(-alpha theta / T)`` on ``theta >= 0`` and flat (the same
    value at 0) on ``[theta_min, 0)`` (digest B.7).
    """
    scale = temperature / alpha
    return scale / (scale + abs(theta_min))


_OPTIONS = {"deep-r": DeepR, "soft-deep-r": SoftDeepR}


def from_options(name: str, **options) -> DeepR | SoftDeepR:
    """The rule called ``name`` ("deep-r" or "soft-deep-r") with keyword ``options``.

    Raises
    ------
    ValueError
        For an unknown name, or an option that belongs to the other rule (e.g. ``theta_min`` to
        DEEP R) or to neither, naming the options the rule takes.
    """
    if name not in _OPTIONS:
        raise ValueError(f"rule name must be one of {sorted(_OPTIONS)}, got {name!r}")
    cls = _OPTIONS[name]
    allowed = [f.name for f in fields(cls)]
    for option in options:
        if option not in allowed:
            owner = [n for n, c in _OPTIONS.items() if n != name and option in [f.name for f in fields(c)]]
            hint = f" (it is an option of {owner[0]})" if owner else ""
            raise ValueError(f"{name} has no option {option!r}{hint}; its options are {allowed}")
    return cls(**options)


def deep_r_config(rule: DeepR | SoftDeepR, **train_options):
    """A :class:`~dilution.training.TrainConfig` for a DEEP R rule: momentum 0, ``l1 = l2 = 0``.

    The rule applies the L1 prior step and the noise itself (module docstring), so the
    optimiser must do plain SGD on the weights. Any other :class:`TrainConfig` field may be given.

    Raises
    ------
    ValueError
        If ``momentum``, ``l1`` or ``l2`` is given a nonzero value, or ``rule`` is not a DEEP R rule.
    """
    from .training import TrainConfig

    if not isinstance(rule, (DeepR, SoftDeepR)):
        raise ValueError(f"deep_r_config takes a DeepR or SoftDeepR rule, got {rule!r}")
    for name in ("momentum", "l1", "l2"):
        value = train_options.pop(name, 0.0)
        if value != 0:
            raise ValueError(
                f"deep_r_config sets {name}=0, got {name}={value!r}: the rule applies the L1 prior (alpha="
                f"{rule.alpha}) and the Langevin noise itself, and momentum breaks the sampler"
            )
    return TrainConfig(rule=rule, momentum=0.0, l1=0.0, l2=0.0, **train_options)


class PriorRun(NamedTuple):
    """The output of :func:`prior_dynamics`.

    Attributes
    ----------
    state : DeepRState
        State after the last update.
    theta : ndarray, shape (n_records, n_visible, n_hidden)
        ``theta`` after every ``record_every``-th update.
    n_active, births, deaths : ndarray of int64, shape (n_steps,)
        Per update.
    """

    state: DeepRState
    theta: np.ndarray
    n_active: np.ndarray
    births: np.ndarray
    deaths: np.ndarray


def prior_dynamics(
    rule: DeepR | SoftDeepR,
    shape: tuple[int, int],
    n_steps: int,
    *,
    eta: float,
    seed: int,
    record_every: int = 0,
    state: DeepRState | None = None,
    first_step: int = 0,
    dtype=np.float64,
) -> PriorRun:
    """Run the rule with the likelihood switched off (``g = 0``), fused in one numba loop.

    Update ``t`` (``first_step + 1 ... first_step + n_steps``) is exactly ``rule.update`` at
    ``context.step = t`` with a zero gradient, learning rate ``eta`` and run seed ``seed``: the
    optimiser's part of the step is then nothing, and the rule's is ``-eta alpha`` on active
    pairs, the noise, deactivation, reactivation or the floor. Biases are left out (they have no
    prior).

    Parameters
    ----------
    rule : DeepR or SoftDeepR
    shape : (n_visible, n_hidden)
    n_steps : int
    eta : float
        Learning rate, > 0.
    seed : int
        Run seed: the initial state (``rule.init``) and the update's draws.
    record_every : int
        Record ``theta`` after every ``record_every``-th update (0: never).
    state : DeepRState, optional
        Start here instead of ``rule.init`` (its ``keys`` fix the draws).
    first_step : int
        Updates already done (the first update here is ``first_step + 1``).
    dtype : float32 or float64
        Of a new state.
    """
    if not isinstance(rule, (DeepR, SoftDeepR)):
        raise ValueError(f"prior_dynamics takes a DeepR or SoftDeepR rule, got {rule!r}")
    v, h = (check_int("n_visible", shape[0], low=1), check_int("n_hidden", shape[1], low=1))
    n_steps = check_int("n_steps", n_steps, low=0)
    record_every = check_int("record_every", record_every, low=0)
    first_step = check_int("first_step", first_step, low=0)
    if not check_finite("eta", eta) > 0:
        raise ValueError(f"eta must be > 0, got {eta!r}")
    seed = check_seed(seed)
    if state is None:
        dt = np.dtype(dtype)
        params = Parameters(np.zeros((v, h), dt), np.zeros(v, dt), np.zeros(h, dt), np.zeros((v, h), bool))
        context = StepContext(0, 0, False, 0.0, 0.0, n_steps, n_steps, 1, seed)
        _, state, _ = rule.init(params, context)
    elif state.theta.shape != (v, h):
        raise ValueError(f"state.theta has shape {state.theta.shape}, expected {(v, h)}")
    if isinstance(rule, DeepR):
        rule.check_shape(v, h)
    theta = state.theta.copy()
    n_records = n_steps // record_every if record_every else 0
    records = np.empty((n_records, v, h), dtype=theta.dtype)
    active = np.empty(n_steps, dtype=np.int64)
    born = np.empty(n_steps, dtype=np.int64)
    died = np.empty(n_steps, dtype=np.int64)
    _prior_loop(
        theta, state.sign, *rule._kernel_args(state, float(eta)), first_step, n_steps, v * h + v + h,
        record_every, records, active, born, died,
    )
    return PriorRun(state._replace(theta=theta), records, active, born, died)
