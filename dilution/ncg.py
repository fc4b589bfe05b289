"""NCG, network connectivity gradients (de Oliveira & Figueiredo, arXiv 2209.06932; Neural Networks 190, 2025).

Every visible-hidden pair ``(i, j)`` carries a continuous connection strength ``S_ij`` in
``[0, 1]`` besides its weight. At each update, with ``G`` the gradient estimate of the batch for
**every** pair (absent ones included) and ``W`` the weights *before* the update, absent pairs
holding their stored (frozen) weight:

    W   <- W + eta G * M_old                       (the trainer's masked SGD step)
    S   <- clip(S + eta_A W * G, 0, 1)             (the "network gradient" W * G)
    M   <- 1 if S > threshold, 0 if S < threshold, unchanged if S == threshold

with ``eta_A = strength_ratio * eta`` (the reference code hard-codes ``5 * l_rate`` and the
threshold 0.5). ``W * G`` is the derivative of the mean log-likelihood with respect to a relaxed
mask entry, so NCG is a straight-through update of a thresholded mask (digest
``shared/papers/ncg_deepr.md``, part A). A removed pair keeps its weight in the rule state,
frozen, and gets it back when it is reconnected. Biases are trained by plain SGD; there is no
momentum, no weight decay, no noise and no budget: the final density is an outcome.

This module holds:

* :class:`NCG`, the rule for the trainer (:mod:`dilution.connectivity` contract), working with
  every gradient estimator (CD-k as in the paper; PCD, parallel tempering and the exact
  gradient as this toolkit's extensions);
* :func:`ncg_config`, a :class:`~dilution.training.TrainConfig` that NCG accepts (no momentum,
  no weight decay);
* :func:`train_ncg_fused`, whole epochs of CD-k + SGD + NCG in one numba kernel, batches in
  fixed order (the reference's setting), for tiny models where a Python loop per mini-batch
  costs more than the arithmetic. It consumes the same random streams as the trainer (CD chain
  keys and counters of :class:`dilution.estimators.CD`, the rule's per-update seeds), so it
  agrees with :func:`dilution.training.train_step` called on the same batches;
* :func:`ncg_pair_update`, the update of one pair in a numba kernel: the fused kernel and the
  replica kernel of :mod:`dilution.replicas` call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import xarray as xr
from numba import njit

from .blas import gemm_address
from .conditionals import hidden_row
from .connectivity import StepContext
from .fastexp import FAST_JIT
from .gibbs import draws_per_sweep
from .gibbs_blocked import dense_block, half_sweep
from .gibbs_tuning import GATHER_BELOW
from .parameters import Parameters
from .provenance import provenance
from .statistics import GradientEstimate, gradient_row
from .threads import single_threaded_blas
from .validation import check_binary, check_finite, check_int

__all__ = ["NCG", "NCGState", "NCGInfo", "ncg_config", "ncg_pair_update", "train_ncg_fused", "FusedResult"]


class NCGState(NamedTuple):
    """State of an :class:`NCG` rule.

    Attributes
    ----------
    strengths : ndarray, shape (n_visible, n_hidden), model dtype
        Connection strengths ``S`` in ``[0, 1]``.
    weights : ndarray, shape (n_visible, n_hidden), model dtype
        Weights of every pair: the current weight of a connected pair, the frozen weight of
        an absent one. Between updates it equals the trainer's weights on the mask, so it is
        also the pre-update ``W`` of the network gradient.
    mask : ndarray of bool, shape (n_visible, n_hidden)
        The rule's mask ``M``: the trainer's mask, except before the first update with
        ``reference_quirks`` (then the trainer's mask is full and this one is the Bernoulli draw).
    """

    strengths: np.ndarray
    weights: np.ndarray
    mask: np.ndarray


class NCGInfo(NamedTuple):
    """What one NCG call did.

    Attributes
    ----------
    n_added, n_removed : int
        Births and deaths of connections at this call.
    connectivity : float
        Fraction of connected pairs after the call.
    n_absent_gain : int
        Absent pairs whose network gradient ``W_stored * G`` is positive after the call: the
        pairs that would raise the likelihood to first order if added (0 at an NCG fixed point).
    """

    n_added: int = 0
    n_removed: int = 0
    connectivity: float = 0.0
    n_absent_gain: int = 0


def _check_rate(name: str, value) -> float:
    v = check_finite(name, value)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


@dataclass(frozen=True)
class NCG:
    """Network connectivity gradients as a connectivity rule (see the module docstring).

    The defaults follow the authors' code (``RBM.cpp::optSetup``, ``optimizer_SGD``, commit
    8f0317d). **The rule's ``init`` sets the initial model**, as the reference does, whatever
    the trainer initialised: mask ``M_ij ~ Bernoulli(p)``, weights ``W_ij ~ U(-1, 1)`` on every
    pair (absent ones stored), biases 0, strengths uniform on the half-interval of their state
    (``[0, threshold)`` when absent, ``[threshold, 1)`` when connected). Its draws use the
    update-0 seed of the run (``context.seed``).

    The trainer must run plain SGD: ``momentum=0`` and ``l1 = l2 = 0``
    (:class:`~dilution.training.TrainConfig` refuses others, :data:`plain_sgd`; :func:`ncg_config`
    sets them).

    Parameters
    ----------
    p : float in (0, 1]
        Initial density: probability that a pair starts connected.
    strength_ratio : float > 0
        ``eta_A / eta``: strength learning rate over weight learning rate (5 in the reference).
    threshold : float in (0, 1)
        A pair is connected when its strength exceeds it (0.5 in the reference).
    reference_quirks : bool
        Reproduce two oddities of the reference code, for side-by-side checks (default off):
        (1) the initial Bernoulli mask is not applied before the first update: the first
        update samples and evaluates the fully connected model, while its weight step is
        already masked (the reference sets ``C = W * A`` only after the first update; so does
        this rule, and the trainer's update-0 checkpoint then shows the full model, as the
        reference's first NLL does); (2) the strengths are re-drawn from the current mask at
        the start of every call of ``optimizer_SGD``, see ``redraw_epochs``.
    redraw_epochs : int >= 0
        With ``reference_quirks``: re-draw the strengths uniformly in the half-interval of
        their state after every ``redraw_epochs`` epochs (before the next epoch). The
        reference's classification drivers call ``optimizer_SGD`` every ``f_acc = 10`` epochs
        (re-drawing each time); its bars-and-stripes driver (``sgd.cpp``) calls it once, which is
        ``redraw_epochs=0``, never. Must be 0 without ``reference_quirks``.
    """

    p: float = 1.0
    strength_ratio: float = 5.0
    threshold: float = 0.5
    reference_quirks: bool = False
    redraw_epochs: int = 0

    plain_sgd: ClassVar[str] = ("NCG is plain SGD without momentum or weight decay, as the reference code "
                                "(dilution.ncg.ncg_config builds such a config)")
    # The option that sets the rule's own initial mask (--connectivity does not apply).
    sparsity_option: ClassVar[tuple[str, str]] = ("p", "the initial density, default 1")

    def __post_init__(self):
        p = check_finite("NCG initial density p", self.p)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"NCG initial density p must be in (0, 1], got {self.p!r}")
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "strength_ratio", _check_rate("NCG strength_ratio", self.strength_ratio))
        t = check_finite("NCG threshold", self.threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"NCG threshold must be in (0, 1), got {self.threshold!r}")
        object.__setattr__(self, "threshold", t)
        if not isinstance(self.reference_quirks, (bool, np.bool_)):
            raise TypeError(f"NCG reference_quirks must be True or False, got {self.reference_quirks!r}")
        object.__setattr__(self, "reference_quirks", bool(self.reference_quirks))
        r = check_int("NCG redraw_epochs", self.redraw_epochs, low=0)
        if r and not self.reference_quirks:
            raise ValueError(
                f"NCG redraw_epochs={r} re-draws the strengths, a quirk of the reference code: it needs "
                "reference_quirks=True (or redraw_epochs=0)"
            )
        object.__setattr__(self, "redraw_epochs", r)

    def draw_strengths(self, mask: np.ndarray, rng: np.random.Generator, dtype) -> np.ndarray:
        """Strengths uniform on ``[threshold, 1)`` where ``mask``, on ``[0, threshold)`` elsewhere.

        Returns
        -------
        ndarray, shape of ``mask``, dtype ``dtype``
        """
        u = rng.random(mask.shape)
        t = self.threshold
        return np.where(mask, t + (1.0 - t) * u, t * u).astype(dtype)

    def init(self, params: Parameters, context: StepContext) -> tuple[Parameters, NCGState, NCGInfo]:
        w = params.weights
        dt = w.dtype
        rng = np.random.default_rng(context.seed)
        # Order of the reference's draws: weights (trainSetup), mask (optSetup), strengths (optimizer_SGD).
        weights = (2.0 * rng.random(w.shape) - 1.0).astype(dt)
        mask = rng.random(w.shape) < self.p
        strengths = self.draw_strengths(mask, rng, dt)
        shown = np.ones(w.shape, dtype=bool) if self.reference_quirks else mask
        new = Parameters(
            np.where(shown, weights, dt.type(0)), np.zeros_like(params.visible_bias),
            np.zeros_like(params.hidden_bias), shown,
        )
        old = params.mask
        info = NCGInfo(
            int(np.count_nonzero(shown & ~old)), int(np.count_nonzero(old & ~shown)),
            float(np.count_nonzero(shown)) / shown.size, 0,
        )
        return new, NCGState(strengths, weights, mask), info

    def update(
        self, params: Parameters, state: NCGState, gradient: GradientEstimate, context: StepContext
    ) -> tuple[Parameters, NCGState, NCGInfo]:
        if context.momentum != 0:
            raise ValueError(
                f"NCG is plain SGD (the reference code has no momentum), got momentum={context.momentum!r} at update "
                f"{context.step}; build the config with dilution.ncg.ncg_config(...) or set momentum=0"
            )
        old, w_pre = state.mask, state.weights
        dt = w_pre.dtype
        # Connected pairs take the optimiser's step; absent ones keep their frozen weight (the
        # trainer stepped them too before the first update with reference_quirks: undone here,
        # as the reference masks that step with the Bernoulli mask).
        w_new = np.where(old, params.weights, w_pre)
        eta_a = self.strength_ratio * context.learning_rate
        s = state.strengths + (eta_a * w_pre) * gradient.weights
        t = dt.type(self.threshold)
        mask = np.where(s < t, False, np.where(s > t, True, old))
        s = np.clip(s, dt.type(0), dt.type(1))
        done = context.epoch + 1
        if (self.redraw_epochs and context.epoch_end and done % self.redraw_epochs == 0
                and done < context.epochs):
            s = self.draw_strengths(mask, np.random.default_rng(context.seed), dt)
        n_gain = int(np.count_nonzero(~mask & (w_new * gradient.weights > 0)))
        info = NCGInfo(
            int(np.count_nonzero(mask & ~old)), int(np.count_nonzero(old & ~mask)),
            float(np.count_nonzero(mask)) / mask.size, n_gain,
        )
        new = params._replace(weights=np.where(mask, w_new, dt.type(0)), mask=mask)
        return new, NCGState(s, w_new, mask), info

    def checkpoint_arrays(self, state: NCGState) -> dict[str, np.ndarray]:
        """Arrays recorded at checkpoints: ``strength`` (S) and ``stored_weight`` (W of every pair)."""
        return {"strength": state.strengths, "stored_weight": state.weights}


def ncg_config(rule: NCG | None = None, **config: Any):
    """A :class:`~dilution.training.TrainConfig` for NCG: plain SGD, no momentum, no weight decay.

    ``estimator`` defaults to ``CD(k=1)``, ``batch_size`` to 5 and ``learning_rate`` to 0.01
    (the reference's bars-and-stripes setting).

    Parameters
    ----------
    rule : NCG, optional
        Default ``NCG()``.
    **config
        Any other :class:`~dilution.training.TrainConfig` field.

    Raises
    ------
    ValueError
        If ``momentum``, ``l1`` or ``l2`` is given nonzero (NCG's update is plain SGD).
    """
    from .estimators import CD
    from .optim import Constant
    from .training import TrainConfig

    rule = NCG() if rule is None else rule
    if not isinstance(rule, NCG):
        raise TypeError(f"ncg_config needs an NCG rule, got {rule!r}")
    if "rule" in config:
        raise TypeError("ncg_config takes the rule as its first argument, not rule=")
    mu = config.get("momentum", 0.0)
    if not (isinstance(mu, Constant) and mu.value == 0) and not (isinstance(mu, (int, float)) and mu == 0):
        raise ValueError(f"NCG is plain SGD without momentum (as the reference code), got momentum={mu!r}")
    for name in ("l1", "l2"):
        if config.get(name, 0.0) != 0:
            raise ValueError(f"NCG has no weight decay (as the reference code), got {name}={config[name]!r}")
    config.setdefault("estimator", CD(k=1))
    config.setdefault("batch_size", 5)
    config.setdefault("learning_rate", 0.01)
    return TrainConfig(rule=rule, **config)


# --- fused kernel -------------------------------------------------------------------------------


@njit(cache=True, **FAST_JIT)
def _cd_sweeps(vb, hb, w, wt, hbias, vbias, bt, keys, counter, k, block, gather_below, gemm_at, fh, fv, g, idx, ef,
               eb):
    """``k`` sweeps of the chains ``vb`` (in place) exactly as :func:`dilution.gibbs_blocked.gibbs_blocked`
    runs them: the same blocks, half-sweeps and jit options, so the same floating-point results."""
    m, n_visible = vb.shape
    n_hidden = w.shape[1]
    stride = np.uint64(n_visible + n_hidden)
    hb[:m] = 0.0
    for c0 in range(0, m, block):
        c1 = min(c0 + block, m)
        for s in range(k):
            start = counter + np.uint64(s) * stride
            half_sweep(vb[c0:c1], w, hb[c0:c1], hbias, bt[c0:c1], True, keys[c0:c1], start, gather_below, gemm_at,
                       fh[: c1 - c0], g, idx, ef, eb)
            half_sweep(hb[c0:c1], wt, vb[c0:c1], vbias, bt[c0:c1], False, keys[c0:c1], start + np.uint64(n_hidden),
                       gather_below, gemm_at, fv[: c1 - c0], g, idx, ef, eb)


@njit(cache=True)
def _hidden_probabilities(v, w, hidden_bias, out):
    """:func:`dilution.conditionals.hidden_probabilities` at beta = 1, same operations, into ``out``."""
    f = np.empty(w.shape[1], dtype=w.dtype)
    for s in range(v.shape[0]):
        hidden_row(v[s], w, hidden_bias, 1.0, f, out[s])


@njit(cache=True)
def _gradient(v_data, h_data, v_model, h_model, gw, ga, gb, pos, neg, mv, mm):
    """:func:`dilution.statistics.gradient_statistics` (same summation order, float64 sums), into ``gw, ga, gb``."""
    inv = 1.0 / v_data.shape[0]
    for i in range(v_data.shape[1]):
        gradient_row(i, v_data, h_data, v_model, h_model, pos, neg, gw[i], inv, inv)
    _mean_difference(v_data, v_model, ga, mv, mm)
    _mean_difference(h_data, h_model, gb, mv, mm)


@njit(cache=True)
def _mean_difference(x, y, out, mx, my):
    """``out = mean(x, 0) - mean(y, 0)``, rows summed in order in float64 (``statistics._column_means``)."""
    n_x, n_y, n_col = x.shape[0], y.shape[0], x.shape[1]
    mx[:] = 0.0
    my[:] = 0.0
    for s in range(n_x):
        for j in range(n_col):
            mx[j] += x[s, j]
    for s in range(n_y):
        for j in range(n_col):
            my[j] += y[s, j]
    for j in range(n_col):
        out[j] = mx[j] / n_x - my[j] / n_y


@njit(inline="always", cache=True)
def ncg_pair_update(i, j, g, w, mask, rule_mask, strengths, stored, lr, eta_a, threshold, zero, one):
    """Update pair ``(i, j)`` in place: the trainer's SGD step, then NCG (module docstring).

    The one statement of the per-pair update, public for :mod:`dilution.replicas`. The SGD step
    is :mod:`dilution.optim`'s with momentum 0 and no decay, written in its operation order
    (the zero terms included) so that the result is the trainer's to the bit.

    Parameters
    ----------
    i, j : int
        The pair.
    g : float
        Its gradient estimate ``G_ij``.
    w : ndarray, shape (n_visible, n_hidden)
        The trainer's weights (zero off ``mask``); ``w[i, j]`` becomes ``W_ij M_ij`` after the update.
    mask, rule_mask : ndarray of bool, shape (n_visible, n_hidden)
        The trainer's mask (the pairs that take the SGD step) and the rule's ``M``
        (:class:`NCGState`); both get the new ``M_ij``. The same array where the two agree.
    strengths, stored : ndarray, shape (n_visible, n_hidden)
        ``S`` and the stored weights of :class:`NCGState`.
    lr, eta_a, threshold, zero, one : float, the dtype of ``w``
        ``eta``, ``eta_A``, the threshold, 0 and 1. Typed by the caller: a float literal here
        would turn a float32 model's arithmetic into float64.

    Returns
    -------
    born, died : bool
        Whether the pair was connected (``M_ij`` 0 -> 1) or removed (1 -> 0).
    """
    if mask[i, j]:
        wij = w[i, j]
        w_post = wij + (zero * zero + lr * (g - zero * wij - zero * np.sign(wij)))
    else:
        w_post = zero
    old = rule_mask[i, j]
    w_pre = stored[i, j]
    w_new = w_post if old else w_pre
    s = strengths[i, j] + (eta_a * w_pre) * g
    if s < threshold:
        new = False
    elif s > threshold:
        new = True
    else:
        new = old
    strengths[i, j] = min(max(s, zero), one)
    stored[i, j] = w_new
    rule_mask[i, j] = new
    mask[i, j] = new
    w[i, j] = w_new if new else zero
    return new and not old, old and not new


@njit(cache=True)
def _ncg_kernel(data, first_step, n_steps, updates_per_epoch, batch_size, k, lr, eta_a, threshold, w, a, b, mask,
                strengths, stored, rule_mask, keys, counter, blocks, gather_below, gemm_at):
    """Updates ``first_step .. first_step + n_steps - 1`` of CD-k + plain SGD + NCG, batches in fixed order.

    Update ``t`` (0-based) uses rows ``[b * batch_size, (b + 1) * batch_size)`` of ``data`` with
    ``b = t % updates_per_epoch`` and the chain draws ``counter + (t - first_step) * k * (n_visible
    + n_hidden)`` of the streams ``keys``. Inputs are not modified.

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_visible)
    w : ndarray, shape (n_visible, n_hidden)
        Weights as the trainer holds them (zero off ``mask``).
    a, b : ndarray, shapes (n_visible,), (n_hidden,)
    mask, rule_mask : ndarray of bool, shape (n_visible, n_hidden)
        The trainer's mask and the rule's (:class:`NCGState`).
    strengths, stored : ndarray, shape (n_visible, n_hidden)
    keys : ndarray of uint64, shape (batch_size,)
    counter : uint64
    blocks : ndarray of int64, shape (batch_size + 1,)
        :func:`dilution.gibbs_blocked.dense_block` of every batch size.

    Returns
    -------
    w, a, b, mask, strengths, stored : new arrays (after the last update; ``mask`` is the rule's)
    added, removed : ndarray of int64, shape (n_steps,)
        Births and deaths at each update.
    """
    n_samples, n_visible = data.shape
    n_hidden = w.shape[1]
    dt = w.dtype
    w = w.copy()
    a = a.copy()
    b = b.copy()
    mask = mask.copy()
    strengths = strengths.copy()
    stored = stored.copy()
    rule_mask = rule_mask.copy()
    wt = np.ascontiguousarray(w.T)
    added = np.zeros(n_steps, dtype=np.int64)
    removed = np.zeros(n_steps, dtype=np.int64)
    m_max = batch_size
    n_max = max(n_visible, n_hidden)
    vk = np.empty((m_max, n_visible), dtype=dt)
    hk = np.empty((m_max, n_hidden), dtype=dt)
    ph = np.empty((m_max, n_hidden), dtype=dt)
    pk = np.empty((m_max, n_hidden), dtype=dt)
    fh = np.empty((m_max, n_hidden), dtype=dt)
    fv = np.empty((m_max, n_visible), dtype=dt)
    g = np.empty(n_max, dtype=dt)
    ef = np.empty(n_max, dtype=dt)
    eb = np.empty(n_max, dtype=dt)
    idx = np.empty(n_max, dtype=np.int64)
    bt = np.ones(m_max, dtype=dt)
    one = dt.type(1.0)
    zero = dt.type(0.0)
    hbias = np.empty((1, n_hidden), dtype=dt)
    vbias = np.empty((1, n_visible), dtype=dt)
    gw = np.empty((n_visible, n_hidden), dtype=dt)
    ga = np.empty(n_visible, dtype=dt)
    gb = np.empty(n_hidden, dtype=dt)
    pos = np.empty(n_hidden)
    neg = np.empty(n_hidden)
    mv = np.empty(n_max)
    mm = np.empty(n_max)
    lr_ = dt.type(lr)
    eta = dt.type(eta_a)
    th = dt.type(threshold)
    stride = np.uint64(k * (n_visible + n_hidden))
    for t in range(n_steps):
        step = first_step + t
        lo = (step % updates_per_epoch) * batch_size
        hi = min(lo + batch_size, n_samples)
        m = hi - lo
        batch = data[lo:hi]
        _hidden_probabilities(batch, w, b, ph[:m])
        vk[:m] = batch
        hbias[0] = b
        vbias[0] = a
        _cd_sweeps(vk[:m], hk, w, wt, hbias, vbias, bt, keys, counter + np.uint64(t) * stride, k, blocks[m],
                   gather_below, gemm_at, fh, fv, g, idx, ef, eb)
        _hidden_probabilities(vk[:m], w, b, pk[:m])
        _gradient(batch, ph[:m], vk[:m], pk[:m], gw, ga, gb, pos, neg, mv, mm)
        n_add = 0
        n_rem = 0
        for i in range(n_visible):
            for j in range(n_hidden):
                born, died = ncg_pair_update(i, j, gw[i, j], w, mask, rule_mask, strengths, stored, lr_, eta, th,
                                             zero, one)
                wt[j, i] = w[i, j]
                n_add += born
                n_rem += died
        for i in range(n_visible):
            a[i] = a[i] + (zero * zero + lr_ * ga[i])
        for j in range(n_hidden):
            b[j] = b[j] + (zero * zero + lr_ * gb[j])
        added[t] = n_add
        removed[t] = n_rem
    return w, a, b, mask, strengths, stored, added, removed


class FusedResult(NamedTuple):
    """Result of :func:`train_ncg_fused`.

    Attributes
    ----------
    params : Parameters
        The trained model's arrays (weights zero off the mask).
    rule_state : NCGState
    counter : int
        Next draw index of the CD chain streams (the CD estimator state's ``counter``).
    history : xarray.Dataset
        Dims ``epoch`` (``connections_added``, ``connections_removed``, ``connectivity_end``)
        and ``checkpoint`` (coord ``epochs_trained``; ``connectivity``, ``log_likelihood``
        (exact mean over the training rows, duplicates included; NaN when not computed),
        ``mask``, ``rule_strength``).
    train_time : float
        Seconds in the kernel (compilation excluded when the cache is warm).
    """

    params: Parameters
    rule_state: NCGState
    counter: int
    history: xr.Dataset
    train_time: float


def train_ncg_fused(rbm_or_shape, data, config, *, seed: int, checkpoint_epochs=(), log_likelihood: bool = True,
                    init=None) -> FusedResult:
    """Train with NCG in whole-epoch numba calls: CD-k, plain SGD, NCG; batches in fixed order.

    Batch ``b`` of every epoch is rows ``[b * batch_size, (b + 1) * batch_size)`` of ``data``
    (no shuffling: the reference code's order). The start is :func:`dilution.training.init_state`
    of the same arguments and the draws are those of the trainer's streams, so the result
    equals calling :func:`dilution.training.train_step` on the same batches (tested bit for
    bit in float64 for batches of fewer than ``SPARSE_MIN_CHAINS`` rows; with more rows at low
    density the trainer's Gibbs sampler takes its CSR path, which sums the fields in another
    order). Reconstruction errors and the trainer's history are not computed.

    Parameters
    ----------
    rbm_or_shape : RBM or (n_visible, n_hidden)
    data : array_like, shape (n_samples, n_visible)
    config : TrainConfig
        ``estimator`` a :class:`~dilution.estimators.CD`, ``rule`` an :class:`NCG`, a constant
        learning rate, no momentum or weight decay (see :func:`ncg_config`).
    seed : int
    checkpoint_epochs : sequence of int
        Epochs (0 = the start) at which the history records the model.
    log_likelihood : bool
        Exact mean log-likelihood at the checkpoints (enumeration of the smaller layer).
    init : TrainState, optional
        Continue this state (made with the same arguments) instead of a fresh start.

    Returns
    -------
    FusedResult
    """
    import time

    from . import exact
    from .estimators import CD
    from .model import RBM
    from .optim import Constant
    from .training import init_state

    rule = config.rule
    if not isinstance(rule, NCG):
        raise TypeError(f"train_ncg_fused runs the NCG rule, got config.rule={rule!r}")
    if not isinstance(config.estimator, CD):
        raise TypeError(f"train_ncg_fused runs CD-k, got estimator {config.estimator.describe()}")
    lr_s = config.optimizer().learning_rate
    if not isinstance(lr_s, Constant):
        raise ValueError(f"train_ncg_fused needs a constant learning rate, got {lr_s!r}")
    ncg_config(rule, momentum=config.momentum, l1=config.l1, l2=config.l2)  # validates
    state = init_state(rbm_or_shape, data, config, seed=seed) if init is None else init
    plan = state.plan
    v_data = check_binary("data", data, plan.n_visible, state.params.weights.dtype)
    epochs = sorted({check_int("checkpoint epoch", e, low=0, high=plan.epochs) for e in checkpoint_epochs})
    start_epoch, rem = divmod(state.step, plan.updates_per_epoch)
    if rem:
        raise ValueError(f"train_ncg_fused continues at an epoch boundary; the state is at update {state.step}")
    lr = float(lr_s.value)
    eta_a = rule.strength_ratio * lr
    dt = state.params.weights.dtype
    blocks = np.array([dense_block(max(m, 1)) for m in range(plan.batch_size + 1)], dtype=np.int64)
    w, a, b, mask = (np.ascontiguousarray(x) for x in state.params)
    rs = state.rule
    strengths, stored, rule_mask = rs.strengths, rs.weights, rs.mask
    keys, counter = state.estimator.keys, int(state.estimator.counter)
    stride = config.estimator.k * draws_per_sweep(plan.n_visible, plan.n_hidden)
    # Kernel calls end at checkpoints and at the epochs after which the quirk re-draws strengths.
    stops = set(e for e in epochs if e > start_epoch) | {plan.epochs}
    if rule.redraw_epochs:
        stops |= set(range(rule.redraw_epochs, plan.epochs, rule.redraw_epochs))
    added = np.zeros(plan.epochs, dtype=np.int64)
    removed = np.zeros(plan.epochs, dtype=np.int64)
    rows = []

    def record(epoch):
        if epoch not in epochs:
            return
        ll = math.nan
        if log_likelihood:
            ll = float(exact.log_likelihood(RBM(w, a, b, mask), v_data).mean())
        rows.append((epoch, ll, mask.copy(), strengths.copy()))

    record(start_epoch)
    train_time = 0.0
    epoch = start_epoch
    gemm_at = gemm_address(dt)
    for stop in sorted(s for s in stops if s > start_epoch):
        n_steps = (stop - epoch) * plan.updates_per_epoch
        first = epoch * plan.updates_per_epoch
        t0 = time.perf_counter()
        with single_threaded_blas():
            w, a, b, mask, strengths, stored, add, rem_ = _ncg_kernel(
                v_data, first, n_steps, plan.updates_per_epoch, plan.batch_size, config.estimator.k, lr, eta_a,
                rule.threshold, w, a, b, mask, strengths, stored, rule_mask, keys, np.uint64(counter), blocks,
                GATHER_BELOW[dt.itemsize], gemm_at,
            )
        train_time += time.perf_counter() - t0
        rule_mask = mask
        counter += n_steps * stride
        added[epoch:stop] = add.reshape(-1, plan.updates_per_epoch).sum(axis=1)
        removed[epoch:stop] = rem_.reshape(-1, plan.updates_per_epoch).sum(axis=1)
        epoch = stop
        if rule.redraw_epochs and stop % rule.redraw_epochs == 0 and stop < plan.epochs:
            ctx_step = stop * plan.updates_per_epoch
            strengths = rule.draw_strengths(
                mask, np.random.default_rng(StepContext(ctx_step, stop - 1, True, lr, 0.0, plan.total_steps,
                                                        plan.updates_per_epoch, plan.epochs, state.seed).seed), dt)
        record(stop)
    # Births and deaths count against the rule's mask (the Bernoulli one before the first update).
    density = (np.count_nonzero(rs.mask) + np.cumsum(added - removed)) / mask.size
    params = Parameters(w, a, b, mask)
    history = _fused_history(rows, added[start_epoch:], removed[start_epoch:], density[start_epoch:], start_epoch,
                             plan, config, state.seed)
    return FusedResult(params, NCGState(strengths, stored, rule_mask), counter, history, train_time)


def _fused_history(rows, added, removed, density, start_epoch, plan, config, seed) -> xr.Dataset:
    n_v, n_h = plan.n_visible, plan.n_hidden
    ck = np.array([r[0] for r in rows], dtype=np.int64)
    data_vars = {
        "connections_added": ("epoch", added, {"long_name": "connections added", "units": "1"}),
        "connections_removed": ("epoch", removed, {"long_name": "connections removed", "units": "1"}),
        "connectivity_end": ("epoch", density, {"long_name": "connectivity at epoch end", "units": "1"}),
        "log_likelihood": ("checkpoint", np.array([r[1] for r in rows], dtype=np.float64),
                           {"long_name": "train log-likelihood", "units": "nats",
                            "comment": "exact mean over the training rows, duplicates included"}),
        "connectivity": ("checkpoint", np.array([r[2].mean() for r in rows], dtype=np.float64),
                         {"long_name": "connectivity", "units": "1"}),
        "mask": (("checkpoint", "visible", "hidden"), np.array([r[2] for r in rows], dtype=np.int8).reshape(-1, n_v, n_h),
                 {"long_name": "connection mask", "units": "1"}),
        "rule_strength": (("checkpoint", "visible", "hidden"),
                          np.array([r[3] for r in rows]).reshape(-1, n_v, n_h),
                          {"long_name": "NCG connection strength", "units": "1"}),
    }
    coords = {
        "epoch": ("epoch", np.arange(start_epoch + 1, plan.epochs + 1), {"long_name": "epoch (1-based)",
                                                                           "units": "epochs"}),
        "epochs_trained": ("checkpoint", ck, {"long_name": "epochs trained", "units": "epochs"}),
        "visible": ("visible", np.arange(n_v), {"long_name": "visible unit", "units": "1"}),
        "hidden": ("hidden", np.arange(n_h), {"long_name": "hidden unit", "units": "1"}),
    }
    attrs = provenance(title="NCG training history (fused kernel, batches in fixed order)", config=config.to_json(),
                       seed=int(seed), n_visible=n_v, n_hidden=n_h)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
