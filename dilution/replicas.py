"""Many independent replicas of DEEP R, soft-DEEP R or NCG on a tiny RBM, in one numba kernel.

The stationary-law studies (issue 12; digest ``shared/papers/ncg_deepr.md``, parts B and C) run
a rewiring rule as thousands of independent chains for millions of steps on models of a few
units (4 x 2, 6 x 3, bars-and-stripes 3 x 3), where the trainer's Python loop per update costs
a thousand times the arithmetic. :func:`run_replicas` runs all replicas in one numba call,
replicas in parallel, every update on the whole data set, and records masks, parameters and the
exact log-likelihood every ``record_every`` updates.

What a replica is
-----------------
Replica ``r`` is, update for update, the trainer's run of the same rule
(:func:`dilution.training.train_step`) with

* seed ``replica_seeds(seed, n_replicas)[r]`` (a function of ``seed`` and ``r`` only);
* the whole data set as the batch, in its given order (``batch_size = n_samples``,
  ``shuffle=False``), plain SGD (``momentum = l1 = l2 = 0``), a constant learning rate,
  float64: the :class:`~dilution.training.TrainConfig` of :func:`trainer_config`;
* the gradient estimator ``"exact"`` (model moments by enumerating the smaller layer), CD-k
  (chains started at the data rows) or PCD-k (persistent chains), drawing the same random
  numbers as the trainer's estimators (their chain keys and draw counters);
* the rule's own draws (DEEP R's counter-based noise and reactivation streams) and its own
  initialisation (``rule.init`` with the replica's seed).

The replica kernel calls the rules' own update arithmetic (:func:`dilution.deep_r.rewire_step`,
:func:`dilution.ncg.ncg_pair_update`) and the trainer's gradient kernels
(:func:`dilution.conditionals.hidden_row`, :func:`dilution.statistics.gradient_row`). Only the
exact model moments are summed in another order (plain enumeration instead of Gray-code blocks),
so replica and trainer agree to rounding (``tests/dilution/test_replicas.py`` checks masks equal
and parameters to 1e-10 for hundreds of updates, for each rule). Every replica's draws are a pure
function of its seed and the update index, so results do not depend on the number of threads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal

import numpy as np
import xarray as xr
from numba import njit, prange

from .conditionals import hidden_row, sigmoid, softplus
from .connectivity import StepContext
from .deep_r import DeepR, SoftDeepR, normal_draw, rewire_step
from .estimators import CD, PCD, Exact
from .model import RBM
from .ncg import NCG, ncg_pair_update
from .parameters import Parameters
from .provenance import provenance
from .rng import derive_seed, uniform64
from .statistics import gradient_row
from .validation import check_binary, check_finite, check_int, check_seed

__all__ = ["MAX_ENUMERATED", "run_replicas", "replica_seeds", "trainer_config"]

# Smaller layer enumerated at every update (the exact gradient) and at every record (the exact
# log-likelihood): 2**12 states times the other layer is still microseconds per replica-update.
MAX_ENUMERATED = 12

_DEEP_R, _SOFT_DEEP_R, _NCG = 0, 1, 2
_EXACT, _CD, _PCD = 0, 1, 2
_BIAS_MODES = {"langevin": 0, "sgd": 1, "fixed": 2}


# ----------------------------------------------------------------------------------------------
# Kernels


@njit(inline="always", cache=True)
def _state_field(code, enum_hidden, w, a, b, field):
    """Field of the other layer given enumerated state ``code``; returns the linear term ``e . s``."""
    n_v, n_h = w.shape
    lin = 0.0
    if enum_hidden:
        for i in range(n_v):
            field[i] = a[i]
        for j in range(n_h):
            if (code >> j) & 1:
                lin += b[j]
                for i in range(n_v):
                    field[i] += w[i, j]
    else:
        for j in range(n_h):
            field[j] = b[j]
        for i in range(n_v):
            if (code >> i) & 1:
                lin += a[i]
                for j in range(n_h):
                    field[j] += w[i, j]
    return lin


@njit(cache=True)
def _log_partition(w, a, b, xs, field):
    """Exact log Z by plain enumeration of the smaller layer; ``xs`` (2**n_e) gets each state's log weight."""
    n_v, n_h = w.shape
    enum_hidden = n_h <= n_v
    n_e = n_h if enum_hidden else n_v
    n_o = n_v if enum_hidden else n_h
    top = -np.inf
    for code in range(1 << n_e):
        x = _state_field(code, enum_hidden, w, a, b, field)
        for k in range(n_o):
            x += softplus(field[k])
        xs[code] = x
        if x > top:
            top = x
    total = 0.0
    for code in range(1 << n_e):
        total += np.exp(xs[code] - top)
    return top + np.log(total)


@njit(cache=True)
def _model_moments(w, a, b, xs, field, mean_v, mean_h, mean_vh):
    """Exact ``<v>``, ``<h>``, ``<v h>`` into the float64 outputs (the other layer Rao-Blackwellised)."""
    n_v, n_h = w.shape
    enum_hidden = n_h <= n_v
    n_e = n_h if enum_hidden else n_v
    log_z = _log_partition(w, a, b, xs, field)
    mean_v[:] = 0.0
    mean_h[:] = 0.0
    mean_vh[:] = 0.0
    for code in range(1 << n_e):
        p = np.exp(xs[code] - log_z)
        _state_field(code, enum_hidden, w, a, b, field)
        if enum_hidden:
            for i in range(n_v):
                s = p * sigmoid(field[i])
                mean_v[i] += s
                for j in range(n_h):
                    if (code >> j) & 1:
                        mean_vh[i, j] += s
            for j in range(n_h):
                if (code >> j) & 1:
                    mean_h[j] += p
        else:
            for j in range(n_h):
                mean_h[j] += p * sigmoid(field[j])
            for i in range(n_v):
                if (code >> i) & 1:
                    mean_v[i] += p
                    for j in range(n_h):
                        mean_vh[i, j] += p * sigmoid(field[j])
    return log_z


@njit(cache=True)
def _mean_log_likelihood(data, w, a, b, xs, field, fh):
    """Exact mean ``log p(v)`` over the rows of ``data``."""
    log_z = _log_partition(w, a, b, xs, field)
    n, n_v = data.shape
    n_h = w.shape[1]
    acc = 0.0
    for s in range(n):
        fh[:] = b
        lin = 0.0
        for i in range(n_v):
            if data[s, i] != 0.0:
                lin += a[i]
                for j in range(n_h):
                    fh[j] += w[i, j]
        for j in range(n_h):
            lin += softplus(fh[j])
        acc += lin - log_z
    return acc / n


@njit(inline="always", cache=True)
def _column_means(x, out):
    """Mean over rows into float64 ``out``, rows added in order (as :mod:`dilution.statistics`)."""
    out[:] = 0.0
    for s in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[j] += x[s, j]
    for j in range(x.shape[1]):
        out[j] /= x.shape[0]


@njit(cache=True)
def _gibbs(chains, w, a, b, keys, counter, k, hk, fh, fv):
    """``k`` block-Gibbs sweeps of every chain in place: the draws of :mod:`dilution.gibbs_reference`."""
    n_c, n_v = chains.shape
    n_h = w.shape[1]
    stride = np.uint64(n_v + n_h)
    for c in range(n_c):
        key = keys[c]
        vc = chains[c]
        hc = hk[c]
        for s in range(k):
            start = counter + np.uint64(s) * stride
            fh[:] = b
            for i in range(n_v):
                if vc[i] != 0.0:
                    for j in range(n_h):
                        fh[j] += w[i, j]
            for j in range(n_h):
                hc[j] = 1.0 if uniform64(key, start + np.uint64(j)) < sigmoid(fh[j]) else 0.0
            fv[:] = a
            for j in range(n_h):
                if hc[j] != 0.0:
                    for i in range(n_v):
                        fv[i] += w[i, j]
            start = start + np.uint64(n_h)
            for i in range(n_v):
                vc[i] = 1.0 if uniform64(key, start + np.uint64(i)) < sigmoid(fv[i]) else 0.0


@njit(cache=True)
def _gradient(data, w, a, b, estimator, k, chains, keys, counter, s):
    """The estimator's gradient of the mean log-likelihood of ``data`` into ``s[2]``, ``s[3][0]``, ``s[4][0]``.

    Weights, visible and hidden bias, as :class:`dilution.estimators.Exact`, ``CD`` or ``PCD``
    compute them (same kernels, same summation order, except the exact model moments). CD
    overwrites ``chains`` with the data; PCD advances them. ``s`` is :func:`_scratch`.
    """
    n, n_v = data.shape
    ph, fh = s[0], s[1]
    for r in range(n):
        hidden_row(data[r], w, b, 1.0, fh[0], ph[r])
    gw, ga, gb = s[2], s[3], s[4]
    mv_d, mh_d = s[5], s[6]
    pos, neg = s[7], s[8]
    _column_means(data, mv_d[0])
    _column_means(ph, mh_d[0])
    if estimator == _EXACT:
        # The data term through a zero model row, as dilution.estimators.Exact does.
        zv, zh = s[9], s[10]
        for i in range(n_v):
            gradient_row(i, data, ph, zv, zh, pos[0], neg[0], gw[i], 1.0 / n, 1.0)
        mean_v, mean_h, mean_vh, xs, field = s[11], s[12], s[13], s[14], s[15]
        _model_moments(w, a, b, xs[0], field[0], mean_v[0], mean_h[0], mean_vh)
        for i in range(n_v):
            for j in range(w.shape[1]):
                gw[i, j] = gw[i, j] - mean_vh[i, j]
            ga[0, i] = mv_d[0, i] - mean_v[0, i]
        for j in range(w.shape[1]):
            gb[0, j] = mh_d[0, j] - mean_h[0, j]
        return
    hk, pk, fv = s[16], s[17], s[18]
    if estimator == _CD:
        chains[:] = data
    _gibbs(chains, w, a, b, keys, counter, k, hk, fh[0], fv[0])
    for r in range(chains.shape[0]):
        hidden_row(chains[r], w, b, 1.0, fh[0], pk[r])
    for i in range(n_v):
        gradient_row(i, data, ph, chains, pk, pos[0], neg[0], gw[i], 1.0 / n, 1.0 / chains.shape[0])
    mv_m, mh_m = s[11], s[12]
    _column_means(chains, mv_m[0])
    _column_means(pk, mh_m[0])
    for i in range(n_v):
        ga[0, i] = mv_d[0, i] - mv_m[0, i]
    for j in range(w.shape[1]):
        gb[0, j] = mh_d[0, j] - mh_m[0, j]


@njit(cache=True)
def _scratch(n, n_v, n_h, n_chains):
    """Work arrays of one replica, a tuple of 2-D float64 arrays (one type, so numba can index it).

    0 ``p(h | data)`` (n, n_h); 1 hidden field (1, n_h); 2-4 gradient of W, a, b ((n_v, n_h),
    (1, n_v), (1, n_h)); 5-6 data means of v and h; 7-8 float64 rows of :func:`gradient_row`;
    9-10 the zero model row of the exact data term; 11-13 model means of v, h, v h; 14 log weight
    of every enumerated state (1, 2**n_e); 15 field of the other layer (1, n_o); 16-17 chains'
    hidden samples and ``p(h | chain)`` (n_chains, n_h); 18 visible field (1, n_v).
    """
    n_e = min(n_v, n_h)
    n_o = max(n_v, n_h)
    return (
        np.empty((n, n_h)), np.empty((1, n_h)), np.empty((n_v, n_h)), np.empty((1, n_v)), np.empty((1, n_h)),
        np.empty((1, n_v)), np.empty((1, n_h)), np.empty((1, n_h)), np.empty((1, n_h)),
        np.zeros((1, n_v)), np.zeros((1, n_h)), np.empty((1, n_v)), np.empty((1, n_h)), np.empty((n_v, n_h)),
        np.empty((1, 1 << n_e)), np.empty((1, n_o)), np.empty((n_chains, n_h)), np.empty((n_chains, n_h)),
        np.empty((1, n_v)),
    )


@njit(cache=True)
def _record(rec, kind, theta, strengths, w, mask, a, b, ll, r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll):
    """Copy one replica's state into record ``rec`` of its record arrays (``theta`` or NCG's ``strengths``)."""
    if kind == _NCG:
        r_strength[rec] = strengths
    else:
        r_theta[rec] = theta
    r_w[rec] = w
    r_mask[rec] = mask
    r_a[rec] = a
    r_b[rec] = b
    r_ll[rec] = ll


@njit(cache=True)
def _run_replica(data, first_step, n_steps, record_every, lr, kind, alpha, noise_scale, theta_min, reflect, budget,
                 per_hidden, bias_mode, bias_noise, bias_l2, eta_a, threshold, estimator, k, theta, sign, rule_keys,
                 strengths, stored, mask, a, b, a0, b0, chains, keys, r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll, r_added,
                 r_removed):
    """Updates ``first_step + 1 .. first_step + n_steps`` of one replica; its state arrays are updated in place."""
    n, n_v = data.shape
    n_h = theta.shape[1]
    n_pairs = n_v * n_h
    s = _scratch(n, n_v, n_h, chains.shape[0])
    w = np.zeros((n_v, n_h))
    scratch = np.empty(n_pairs, dtype=np.int64)
    streams = n_pairs + n_v + n_h
    draws = np.uint64(k * (n_v + n_h))
    counter = np.uint64(first_step) * draws
    zero = 0.0
    lr_ = np.float64(lr)
    for i in range(n_v):
        for j in range(n_h):
            if kind == _NCG:
                w[i, j] = stored[i, j] if mask[i, j] else 0.0
            elif theta[i, j] >= 0.0:
                w[i, j] = np.float64(sign[i, j]) * theta[i, j]
    fh = s[1][0]
    _record(0, kind, theta, strengths, w, mask, a, b, _mean_log_likelihood(data, w, a, b, s[14][0], s[15][0], fh),
            r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll)
    n_add = 0
    n_rem = 0
    gw, ga, gb = s[2], s[3][0], s[4][0]
    for t in range(n_steps):
        step = first_step + t + 1
        _gradient(data, w, a, b, estimator, k, chains, keys, counter, s)
        counter += draws
        if kind == _NCG:
            # The trainer's mask is the rule's (no reference_quirks).
            for i in range(n_v):
                for j in range(n_h):
                    born, died = ncg_pair_update(i, j, gw[i, j], w, mask, mask, strengths, stored, lr_, eta_a,
                                                 threshold, zero, 1.0)
                    n_add += born
                    n_rem += died
            for i in range(n_v):
                a[i] = a[i] + (zero * zero + lr_ * ga[i])
            for j in range(n_h):
                b[j] = b[j] + (zero * zero + lr_ * gb[j])
        else:
            births, deaths, _ = rewire_step(theta, sign, gw, lr, alpha, noise_scale, theta_min, kind == _SOFT_DEEP_R,
                                            reflect, budget, per_hidden, rule_keys[0], rule_keys[1], step, streams,
                                            scratch)
            n_add += births
            n_rem += deaths
            for i in range(n_v):
                for j in range(n_h):
                    active = theta[i, j] >= 0.0
                    mask[i, j] = active
                    w[i, j] = np.float64(sign[i, j]) * theta[i, j] if active else 0.0
            # dilution.deep_r: the optimiser's SGD step of the biases, the rule's decay bias_l2 and noise (or the
            # start values).
            first = np.uint64(step) * np.uint64(streams) + np.uint64(n_pairs)
            for i in range(n_v):
                if bias_mode == 2:
                    a[i] = a0[i]
                else:
                    a[i] = a[i] + (zero * zero + lr_ * ga[i])
                    if bias_l2 > 0.0:
                        a[i] = a[i] - lr_ * bias_l2 * a[i]
                    if bias_noise:
                        a[i] = a[i] + noise_scale * normal_draw(rule_keys[0], first + np.uint64(i))
            for j in range(n_h):
                if bias_mode == 2:
                    b[j] = b0[j]
                else:
                    b[j] = b[j] + (zero * zero + lr_ * gb[j])
                    if bias_l2 > 0.0:
                        b[j] = b[j] - lr_ * bias_l2 * b[j]
                    if bias_noise:
                        b[j] = b[j] + noise_scale * normal_draw(rule_keys[0], first + np.uint64(n_v + j))
        if (t + 1) % record_every == 0:
            rec = (t + 1) // record_every
            r_added[rec] = n_add
            r_removed[rec] = n_rem
            n_add = 0
            n_rem = 0
            _record(rec, kind, theta, strengths, w, mask, a, b,
                    _mean_log_likelihood(data, w, a, b, s[14][0], s[15][0], fh),
                    r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll)


@njit(parallel=True, cache=True)
def _replica_kernel(data, first_step, n_steps, record_every, lr, kind, alpha, noise_scale, theta_min, reflect,
                    budget, per_hidden, bias_mode, bias_noise, bias_l2, eta_a, threshold, estimator, k, theta, sign,
                    rule_keys, strengths, stored, mask, a, b, a0, b0, chains, keys, r_theta, r_strength, r_w, r_mask, r_a, r_b,
                    r_ll, r_added, r_removed):
    """All replicas (leading axis of every state and record array), in parallel; arrays updated in place."""
    for r in prange(theta.shape[0]):
        _run_replica(data, first_step, n_steps, record_every, lr, kind, alpha, noise_scale, theta_min, reflect, budget,
                     per_hidden, bias_mode, bias_noise, bias_l2, eta_a, threshold, estimator, k, theta[r], sign[r],
                     rule_keys[r], strengths[r], stored[r], mask[r], a[r], b[r], a0[r], b0[r], chains[r], keys[r],
                     r_theta[r], r_strength[r], r_w[r], r_mask[r], r_a[r], r_b[r], r_ll[r], r_added[r], r_removed[r])


# ----------------------------------------------------------------------------------------------
# Driver


def replica_seeds(seed: int, n_replicas: int) -> np.ndarray:
    """The trainer seed of each replica: entry ``r`` depends on ``seed`` and ``r`` only.

    Returns
    -------
    ndarray of int64, shape (n_replicas,)
        Non-negative 63-bit seeds (words of the ``"replicas"`` stream of ``seed``).
    """
    seed = check_seed(seed)
    n_replicas = check_int("n_replicas", n_replicas, low=0)
    words = derive_seed(seed, "replicas").generate_state(n_replicas, dtype=np.uint64)
    return (words >> np.uint64(1)).astype(np.int64)


def _estimator(estimator) -> Exact | CD | PCD:
    if isinstance(estimator, str):
        if estimator != "exact":
            raise ValueError(f"estimator must be 'exact', an Exact, a CD or a PCD, got {estimator!r}")
        return Exact()
    if not isinstance(estimator, (Exact, CD, PCD)):
        raise ValueError(
            f"estimator must be 'exact', dilution.estimators.Exact(), CD(k) or PCD(k), got {estimator!r} "
            "(parallel tempering has no replica kernel)"
        )
    return estimator


def trainer_config(rule, n_samples: int, steps: int, *, learning_rate: float, estimator="exact"):
    """The :class:`~dilution.training.TrainConfig` whose run with seed ``replica_seeds(seed, n)[r]`` is replica ``r``.

    The whole data set is the batch of every update, in its given order (``shuffle=False``), so
    ``epochs = steps``; plain SGD (momentum, ``l1``, ``l2`` 0), a constant learning rate, float64,
    no checkpoint evaluation.
    """
    from .training import TrainConfig

    return TrainConfig(
        estimator=_estimator(estimator), epochs=max(int(steps), 1), batch_size=int(n_samples),
        learning_rate=float(learning_rate), momentum=0.0, l1=0.0, l2=0.0, rule=rule, checkpoints=(),
        exact_log_likelihood=False, dtype="float64", shuffle=False,
    )


def _initial_model(init, v_data: np.ndarray | None) -> RBM:
    from .training import initialize

    if isinstance(init, RBM):
        return init.astype(np.float64)
    try:
        n_visible, n_hidden = init
    except (TypeError, ValueError):
        raise TypeError(f"init must be an RBM or a tuple (n_visible, n_hidden), got {init!r}") from None
    n_visible = check_int("init n_visible", n_visible, low=1)
    n_hidden = check_int("init n_hidden", n_hidden, low=1)
    # The trainer's start from a shape; only its biases survive the rules' init, and they do not
    # depend on the seed (visible: logit of the data marginals; hidden: 0).
    return initialize(n_visible, n_hidden, v_data, seed=0)


def _check_rule(rule) -> int:
    if isinstance(rule, DeepR):
        return _DEEP_R
    if isinstance(rule, SoftDeepR):
        return _SOFT_DEEP_R
    if isinstance(rule, NCG):
        if rule.reference_quirks:
            raise ValueError("run_replicas runs NCG without reference_quirks (the first update would sample the "
                             "full model while the rule's mask is diluted); use NCG(reference_quirks=False)")
        return _NCG
    raise TypeError(f"rule must be a DeepR, SoftDeepR or NCG, got {rule!r}")


def run_replicas(
    rule: DeepR | SoftDeepR | NCG,
    n_replicas: int,
    data,
    steps: int,
    record_every: int,
    *,
    learning_rate: float,
    seed: int,
    init: RBM | tuple[int, int] | None = None,
    estimator: Literal["exact"] | Exact | CD | PCD = "exact",
    resume: xr.Dataset | None = None,
) -> xr.Dataset:
    """Run ``n_replicas`` independent replicas of a rewiring rule for ``steps`` updates each.

    Every update is the trainer's update on the whole data set (module docstring); replica ``r``
    equals ``dilution.training`` run with :func:`trainer_config` and seed
    ``replica_seeds(seed, n_replicas)[r]``.

    Parameters
    ----------
    rule : DeepR, SoftDeepR or NCG
        NCG without ``reference_quirks``.
    n_replicas : int
    data : array_like, shape (n_samples, n_visible)
        Binary training data; every update uses all of it.
    steps : int
        Updates per replica (in this call).
    record_every : int
        Record after every ``record_every``-th update of this call, and the state it starts from.
    learning_rate : float
        Constant, > 0.
    seed : int
    init : RBM or (n_visible, n_hidden)
        The starting model (as the trainer's ``rbm_or_shape``): the rule's ``init`` replaces its
        weights and mask (NCG its biases too); a shape starts from the trainer's biases.
        Required unless ``resume`` is given.
    estimator : "exact", Exact, CD or PCD
        The gradient: exact enumeration, CD-k from the data rows, or PCD-k (default as many
        persistent chains as data rows).
    resume : xarray.Dataset, optional
        The output of an earlier call with the same rule, replicas, data, learning rate, seed
        and estimator whose last record is its last update (``steps`` a multiple of
        ``record_every``): continue from there. The draws are those of one long run, so ``m``
        updates and then ``n`` more equal ``m + n`` updates, record for record.

    Returns
    -------
    xarray.Dataset
        Dims ``replica``, ``record`` (coord ``step``, updates done), ``visible``, ``hidden``:
        ``mask`` (bool), ``weights`` (zero off the mask), ``visible_bias``, ``hidden_bias``,
        ``log_likelihood`` (exact mean over ``data``), ``connections_added`` and
        ``connections_removed`` (since the previous record); DEEP R rules add ``theta`` (NaN on
        DEEP R's dormant pairs), ``sign`` (replica, visible, hidden) and ``rule_key`` (replica,
        stream); NCG adds ``strength`` and ``stored_weight`` (the weights of every pair after the
        last update); PCD adds ``chains`` (replica, chain, visible) after the last update.
        Coordinate ``replica_seed``; provenance attrs, with ``last_step`` the updates done.

    Raises
    ------
    ValueError
        For a bad count, rate or seed, data that is not binary with ``n_visible`` columns, a
        smaller layer above :data:`MAX_ENUMERATED` units (or above an ``Exact`` estimator's
        ``max_units``), an unsupported estimator, or a ``resume`` Dataset made with other
        settings or without its final state.
    """
    kind = _check_rule(rule)
    n_replicas = check_int("n_replicas", n_replicas, low=1)
    steps = check_int("steps", steps, low=0)
    record_every = check_int("record_every", record_every, low=1)
    lr = check_finite("learning_rate", learning_rate)
    if not lr > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    seed = check_seed(seed)
    est = _estimator(estimator)
    if resume is None and init is None:
        raise ValueError("run_replicas needs init (an RBM or (n_visible, n_hidden)) unless it continues a resume "
                         "Dataset")
    if resume is not None:
        resume = _resume_dataset(resume)
        n_visible = int(resume.sizes["visible"])
    elif isinstance(init, RBM):
        n_visible = init.n_visible
    else:
        try:
            n_visible = check_int("init n_visible", init[0], low=1)
        except (TypeError, IndexError, KeyError):
            raise TypeError(f"init must be an RBM or a tuple (n_visible, n_hidden), got {init!r}") from None
    v_data = check_binary("data", data, n_visible, np.float64)
    if v_data.shape[0] == 0:
        raise ValueError("data must hold at least one sample, got 0 rows")
    n = v_data.shape[0]
    n_chains = (est.n_chains or n) if isinstance(est, PCD) else (n if isinstance(est, CD) else 1)
    k = est.k if isinstance(est, (CD, PCD)) else 1
    estimator_kind = _CD if isinstance(est, CD) else (_PCD if isinstance(est, PCD) else _EXACT)
    seeds = replica_seeds(seed, n_replicas)
    config = _config(rule, est, lr)
    if resume is None:
        start = _initial_model(init, v_data)
        _check_size(rule, est, start.n_visible, start.n_hidden)
        state, first_step = _fresh_state(rule, kind, est, estimator_kind, start, v_data, seeds, n_chains), 0
    else:
        _check_size(rule, est, n_visible, int(resume.sizes["hidden"]))
        state, first_step = _resumed_state(resume, config, kind, est, estimator_kind, v_data, seed, seeds, n_chains)
    theta, sign, rule_keys, strengths, stored, mask, a, b, chains, keys = state
    a0, b0 = a.copy(), b.copy()
    n_v, n_h = mask.shape[1:]

    n_records = steps // record_every + 1
    cube = (n_replicas, n_records, n_v, n_h)
    r_theta = np.empty(cube if kind != _NCG else (n_replicas, 1, 1, 1))
    r_strength = np.empty(cube if kind == _NCG else (n_replicas, 1, 1, 1))
    r_w = np.empty(cube)
    r_mask = np.empty(cube, dtype=bool)
    r_a = np.empty((n_replicas, n_records, n_v))
    r_b = np.empty((n_replicas, n_records, n_h))
    r_ll = np.empty((n_replicas, n_records))
    r_added = np.zeros((n_replicas, n_records), dtype=np.int64)
    r_removed = np.zeros((n_replicas, n_records), dtype=np.int64)

    soft = kind == _SOFT_DEEP_R
    if kind == _NCG:
        rule_args = (0.0, 0.0, 0.0, False, 0, False, 1, False, 0.0, rule.strength_ratio * lr, rule.threshold)
    else:
        # The rule's own expression (DeepR._noise_scale), so that the noise is the same float.
        noise_scale = math.sqrt(2.0 * lr * rule.temperature)
        rule_args = (
            rule.alpha, noise_scale, rule.floor_value if soft else 0.0, soft and rule.floor == "reflect",
            0 if soft else rule.k, (not soft) and rule.scope == "hidden", _BIAS_MODES[rule.biases],
            rule.biases == "langevin" and rule.temperature > 0, rule.bias_l2, 0.0, 0.0,
        )
    _replica_kernel(v_data, first_step, steps, record_every, lr, kind, *rule_args, estimator_kind, k, theta, sign,
                    rule_keys, strengths, stored, mask, a, b, a0, b0, chains, keys, r_theta, r_strength, r_w, r_mask,
                    r_a, r_b, r_ll, r_added, r_removed)
    records = (r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll, r_added, r_removed)
    final = (sign, rule_keys, stored, chains if estimator_kind == _PCD else None)
    return _dataset(rule, kind, config, seed, seeds, first_step, steps, record_every, v_data, records, final)


def _check_size(rule, est, n_v: int, n_h: int) -> None:
    if min(n_v, n_h) > MAX_ENUMERATED:
        raise ValueError(
            f"run_replicas enumerates the smaller layer at every update and record: {n_v} x {n_h} has "
            f"{min(n_v, n_h)} units there, above MAX_ENUMERATED={MAX_ENUMERATED}"
        )
    # The bound the trainer's Exact.init enforces: the replicas are that run, so they refuse alike.
    if isinstance(est, Exact) and min(n_v, n_h) > est.max_units:
        raise ValueError(
            f"estimator Exact(max_units={est.max_units}) enumerates the smaller layer for the gradient: {n_v} x "
            f"{n_h} has {min(n_v, n_h)} units there, above its max_units; raise max_units or use CD or PCD"
        )
    if isinstance(rule, DeepR):
        rule.check_shape(n_v, n_h)


def _config(rule, est, lr: float) -> str:
    return json.dumps({"rule": {"type": type(rule).__name__, **dataclasses.asdict(rule)},
                       "estimator": {"type": type(est).__name__, **dataclasses.asdict(est)},
                       "learning_rate": lr, "batch": "whole data set"}, sort_keys=True)


def _fresh_state(rule, kind, est, estimator_kind, start: RBM, v_data, seeds, n_chains):
    """Every replica's state at update 0: the rule's and the estimator's ``init`` with the replica's seed."""
    n_replicas = seeds.shape[0]
    n_v, n_h = start.n_visible, start.n_hidden
    n = v_data.shape[0]
    theta = np.full((n_replicas, n_v, n_h), np.nan)
    sign = np.ones((n_replicas, n_v, n_h), dtype=np.int8)
    rule_keys = np.zeros((n_replicas, 2), dtype=np.uint64)
    strengths = np.zeros((n_replicas, n_v, n_h))
    stored = np.zeros((n_replicas, n_v, n_h))
    mask = np.zeros((n_replicas, n_v, n_h), dtype=bool)
    a = np.empty((n_replicas, n_v))
    b = np.empty((n_replicas, n_h))
    chains = np.zeros((n_replicas, n_chains, n_v))
    keys = np.zeros((n_replicas, n_chains), dtype=np.uint64)
    base = Parameters(*(_read_only(x) for x in (start.weights, start.visible_bias, start.hidden_bias, start.mask)))
    for r, rs in enumerate(seeds):
        rs = int(rs)
        new, state, _ = rule.init(base, StepContext(0, 0, False, 0.0, 0.0, 1, 1, 1, rs))
        mask[r] = new.mask
        a[r] = new.visible_bias
        b[r] = new.hidden_bias
        if kind == _NCG:
            strengths[r], stored[r] = state.strengths, state.weights
        else:
            theta[r], sign[r], rule_keys[r] = state.theta, state.sign, state.keys
        if estimator_kind != _EXACT:
            chain_state = est.init(base, v_data, n, rs)
            keys[r] = chain_state.keys[:n_chains]
            if chain_state.chains is not None:
                chains[r] = chain_state.chains
    return theta, sign, rule_keys, strengths, stored, mask, a, b, chains, keys


def _resume_dataset(resume) -> xr.Dataset:
    """``run_replicas``' ``resume``: a Dataset (or the path of a file holding one) with what every
    run's output has; the rule's and estimator's own variables are checked by :func:`_resumed_state`."""
    import os

    if isinstance(resume, (str, os.PathLike)):
        from .io import load

        resume = load(resume)
    if not isinstance(resume, xr.Dataset):
        raise TypeError(f"resume must be a Dataset returned by run_replicas (or its file), got {type(resume).__name__}")
    _require(resume, dims=("replica", "record", "visible", "hidden"),
             variables=("step", "mask", "visible_bias", "hidden_bias"), attrs=("config", "seed", "data_fingerprint",
                                                                              "last_step"))
    return resume


def _require(ds: xr.Dataset, *, dims=(), variables=(), attrs=()) -> None:
    missing = ([f"dim {d}" for d in dims if d not in ds.sizes] + [v for v in variables if v not in ds.variables]
               + [f"attr {a}" for a in attrs if a not in ds.attrs])
    if missing:
        raise ValueError(f"resume must be a Dataset returned by run_replicas; this one lacks {', '.join(missing)}")


def _resumed_state(ds: xr.Dataset, config: str, kind, est, estimator_kind, v_data, seed, seeds, n_chains):
    """The state after the last update of ``ds`` (checked to be a run of the same settings)."""
    from .training import data_fingerprint

    expected = {"config": config, "seed": seed, "data_fingerprint": data_fingerprint(v_data)}
    for key, value in expected.items():
        if ds.attrs.get(key) != value:
            raise ValueError(f"resume Dataset has {key}={ds.attrs.get(key)!r}, this call has {value!r}: a run "
                             "continues only with the rule, estimator, learning rate, seed and data it started with")
    if ds.sizes["replica"] != seeds.shape[0]:
        raise ValueError(f"resume Dataset has {ds.sizes['replica']} replicas, this call asks for {seeds.shape[0]}")
    last = int(ds.attrs["last_step"])
    if int(ds["step"].values[-1]) != last:
        raise ValueError(f"resume Dataset's last record is update {int(ds['step'].values[-1])}, its run ended at "
                         f"update {last}: continuing needs the final state (steps a multiple of record_every)")
    _require(ds, variables=(("strength", "stored_weight") if kind == _NCG else ("theta", "sign", "rule_key"))
             + (("chains",) if estimator_kind == _PCD else ()))
    n_replicas, n_v, n_h = seeds.shape[0], ds.sizes["visible"], ds.sizes["hidden"]
    end = ds.isel(record=-1)
    mask = np.array(end["mask"].values, dtype=bool)
    a = np.array(end["visible_bias"].values, dtype=np.float64)
    b = np.array(end["hidden_bias"].values, dtype=np.float64)
    theta = np.full((n_replicas, n_v, n_h), np.nan)
    sign = np.ones((n_replicas, n_v, n_h), dtype=np.int8)
    rule_keys = np.zeros((n_replicas, 2), dtype=np.uint64)
    strengths = np.zeros((n_replicas, n_v, n_h))
    stored = np.zeros((n_replicas, n_v, n_h))
    if kind == _NCG:
        strengths[:] = end["strength"].values
        stored[:] = ds["stored_weight"].values
    else:
        theta[:] = end["theta"].values
        sign[:] = ds["sign"].values
        rule_keys[:] = ds["rule_key"].values
    chains = np.zeros((n_replicas, n_chains, n_v))
    keys = np.zeros((n_replicas, n_chains), dtype=np.uint64)
    if estimator_kind != _EXACT:
        # The chain keys are a function of the replica's seed (the chains PCD draws here are not used).
        base = Parameters(np.zeros((n_v, n_h)), np.zeros(n_v), np.zeros(n_h), np.ones((n_v, n_h), dtype=bool))
        for r, rs in enumerate(seeds):
            keys[r] = est.init(base, v_data, v_data.shape[0], int(rs)).keys[:n_chains]
        if estimator_kind == _PCD:
            chains[:] = ds["chains"].values
    return (theta, sign, rule_keys, strengths, stored, mask, a, b, chains, keys), last


def _read_only(x: np.ndarray) -> np.ndarray:
    view = np.array(x)
    view.flags.writeable = False
    return view


def _var(dims, values, long_name, units="1", **extra):
    return dims, values, {"long_name": long_name, "units": units, **extra}


def _dataset(rule, kind, config, seed, seeds, first_step, steps, record_every, v_data, records, final) -> xr.Dataset:
    from .training import data_fingerprint

    r_theta, r_strength, r_w, r_mask, r_a, r_b, r_ll, r_added, r_removed = records
    sign, rule_keys, stored, chains = final
    cube = ("replica", "record", "visible", "hidden")
    data_vars = {
        "mask": _var(cube, r_mask, "connection mask"),
        "weights": _var(cube, r_w, "weight (0 off the mask)"),
        "visible_bias": _var(("replica", "record", "visible"), r_a, "visible bias"),
        "hidden_bias": _var(("replica", "record", "hidden"), r_b, "hidden bias"),
        "log_likelihood": _var(("replica", "record"), r_ll, "mean log-likelihood of the data", "nats",
                               comment="exact: log Z by enumeration of the smaller layer"),
        "connections_added": _var(("replica", "record"), r_added, "connections added since the previous record"),
        "connections_removed": _var(("replica", "record"), r_removed,
                                    "connections removed since the previous record"),
    }
    if kind == _NCG:
        data_vars["strength"] = _var(cube, r_strength, "NCG connection strength")
        data_vars["stored_weight"] = _var(("replica", "visible", "hidden"), stored,
                                          "NCG stored weight of every pair after the last update")
    else:
        data_vars["theta"] = _var(cube, r_theta, "DEEP R parameter theta (active where >= 0)",
                                  comment="NaN on DEEP R's dormant pairs")
        data_vars["sign"] = _var(("replica", "visible", "hidden"), sign, "DEEP R fixed sign")
        data_vars["rule_key"] = _var(("replica", "stream"), rule_keys,
                                     "DEEP R counter-based stream keys (noise, reactivation choices)")
    if chains is not None:
        data_vars["chains"] = _var(("replica", "chain", "visible"), chains,
                                   "PCD persistent chains after the last update")
    coords = {
        "replica": _var("replica", np.arange(r_ll.shape[0]), "replica"),
        "replica_seed": _var("replica", seeds, "trainer seed of the replica"),
        "step": _var("record", first_step + np.arange(r_ll.shape[1], dtype=np.int64) * record_every, "updates done",
                     "updates"),
        "visible": _var("visible", np.arange(r_w.shape[2]), "visible unit"),
        "hidden": _var("hidden", np.arange(r_w.shape[3]), "hidden unit"),
    }
    attrs = provenance(
        title=f"{type(rule).__name__} replicas ({json.loads(config)['estimator']['type']} gradient)", config=config,
        seed=int(seed), last_step=int(first_step + steps), record_every=int(record_every),
        n_samples=int(v_data.shape[0]), data_fingerprint=data_fingerprint(v_data),
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
