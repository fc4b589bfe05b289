"""Annealed importance sampling (AIS) of the partition function of a masked RBM, forward and reverse.

Intermediate distributions (Salakhutdinov & Murray 2008, eqs. 11-14; Neal 2001)

    p_k(v, h)  proportional to  exp( (1 - beta_k) a0.v - beta_k E(v, h) ),   0 = beta_0 <= ... <= beta_K = 1

run from a base-rate model ``p_0`` (independent visible units with biases ``a0``; hidden units
uniform; ``log Z_0 = sum_i softplus(a0_i) + n_hidden log 2``) to the RBM. With the hidden units
summed out, ``p_k(v) = exp(-F_k(v)) / Z_k`` with ``F_k`` the free energy of
:func:`dilution.conditionals.free_energy`. A forward chain draws ``v_1 ~ p_0`` and, for k = 1..K,
multiplies its weight by ``exp(F_{k-1}(v_k) - F_k(v_k))`` and then moves by one Gibbs sweep that
leaves ``p_k`` invariant. The mean weight is an unbiased estimate of ``Z_K / Z_0``; by Jensen's
inequality the log of the estimate is a stochastic lower bound on ``log Z``.

Reverse AIS runs the same path from ``beta = 1`` to ``0``, started from samples of the RBM. Its mean
weight estimates ``Z_0 / Z_K``, so ``log Z_0 - log mean(w_rev)`` is a stochastic *upper* bound on
``log Z`` (Burda, Grosse & Salakhutdinov 2015; Grosse, Ghahramani & Adams 2015) when the starting
states are exact samples. Starts from Gibbs chains (the default) or parallel tempering are only
approximate samples, and the upper bound is then approximate too. The two together bracket
``log Z``.

RAISE (reverse AIS started from the data, Burda, Grosse & Salakhutdinov 2015) needs no samples of the
RBM: a reverse chain started at a data row ``v`` (hidden units from ``p(h | v)``) gives
``exp(-F(v)) w_rev / Z_0``, an unbiased estimate of ``p_ann(v)``, the probability that the
annealing process itself (base model, then the reverse chain's transitions run forwards) ends at
``v``. Its log is a stochastic lower bound on ``log p_ann(v)``; ``p_ann`` is the RBM when the
annealing equilibrates and a model that has not reached the RBM's modes when it does not, so the
estimate is conservative in practice, not a bound on the RBM's likelihood
(:func:`raise_log_likelihood`).

AIS along a path of models (:func:`path_log_partition`) anneals through a sequence of RBMs, such as
the ones saved along the model's training run, joined by straight lines in parameter space; the
straight line from the base-rate model to the RBM is the temperature path above.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from numba import njit, prange

from . import interrupt
from .conditionals import free_energy, hidden_field, visible_half_sweep
from .gibbs import sample as gibbs_sample
from .io import atomic_write
from .model import RBM
from .progress import WORK_PER_SECOND, progress_bar
from .provenance import provenance
from .rng import chain_keys, derive_seed, uniform32, uniform64
from .schedules import check_schedule, classic
from .validation import check_binary, check_finite, check_int

__all__ = [
    "log_partition",
    "log_likelihood",
    "raise_log_likelihood",
    "base_rate_bias",
    "padded_weights",
    "ais_kernel",
    "weight_summary",
    "check_log_z",
    "check_resampling",
    "CHECKPOINT_EVERY",
    "CheckpointMismatchError",
    "CheckpointWriteWarning",
    "DegenerateWeightsWarning",
    "DegenerateReverseWeightsWarning",
    "LOW_ESS_FRACTION",
    "REVERSE_BURN_IN",
    "path_log_partition",
    "path_kernel",
    "segment_steps",
]

# Below this effective sample size per chain the estimate rests on a handful of chains.
LOW_ESS_FRACTION = 0.1

# Gibbs sweeps at beta = 1 from the forward chains' end states before the reverse run starts
# (log_partition's default; the studies' evaluation and cost estimate use it through this name).
REVERSE_BURN_IN = 1000

# sum_j log(1 + e^{-|x_j|}) is taken as the log of a product of factors in [1, 2] (ratios in
# [1/2, 2]); 2**512 is far from float64 overflow.
_PRODUCT_CHUNK = 512


class DegenerateWeightsWarning(RuntimeWarning):
    """The AIS importance weights are dominated by a few chains (low effective sample size)."""


class DegenerateReverseWeightsWarning(DegenerateWeightsWarning):
    """The reverse AIS weights are degenerate (the forward estimate may still be sound)."""


class CheckpointWriteWarning(RuntimeWarning):
    """An AIS checkpoint could not be written; the run went on without it."""


class CheckpointMismatchError(ValueError):
    """An AIS checkpoint file (:func:`log_partition`, :func:`raise_log_likelihood`) that cannot serve
    this call: another run's, or unreadable."""


@njit(inline="always", cache=True)
def _dot(x, vc):
    acc = 0.0
    for i in range(vc.shape[0]):
        if vc[i] != 0:
            acc += x[i]
    return acc


@njit(parallel=True, cache=True)
def ais_kernel(
    v, log_w, weights, weights_t, visible_bias, hidden_bias, base_bias, betas, keys, step0, transition_last, single
):
    """Advance AIS chains along ``betas[0] -> betas[1] -> ... -> betas[-1]``.

    For t = 1..m (``m = len(betas) - 1``) each chain adds ``F_{t-1}(v) - F_t(v)`` to its
    log-weight and then makes one Gibbs sweep at ``betas[t]`` (skipped after the last beta when
    ``transition_last`` is False). One hidden field ``b + v W`` per step (in the model dtype)
    serves both free energies and the hidden draw; the free energies, and with them the hidden
    probabilities that share their exponentials, are evaluated in float64. The schedule may run
    either way (reverse AIS passes it backwards).

    Parameters
    ----------
    v : ndarray, shape (n_chains, n_visible)
        Binary states, distributed (approximately) as ``p_{betas[0]}``; not modified.
    log_w : ndarray of float64, shape (n_chains,)
        Log-weights so far; not modified.
    weights : ndarray, shape (n_visible, >= n_hidden)
    weights_t : ndarray, shape (n_hidden, >= n_visible)
        The weights and their transpose, C-contiguous; rows may be padded (:func:`padded_weights`).
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    base_bias : ndarray, shape (n_visible,)
        Base-rate visible bias ``a0``.
    betas : ndarray of float64, shape (m + 1,)
    keys : ndarray of uint64, shape (n_chains,)
    step0 : int
        Global index of the step to ``betas[1]``: step ``s`` draws from stream indices
        ``s * (n_hidden + n_visible) + u``, so splitting a schedule into calls changes nothing.
    transition_last : bool
    single : bool
        Draw 24-bit uniforms (float32 models) instead of 53-bit ones.

    Returns
    -------
    v_out : ndarray, shape (n_chains, n_visible)
    log_w_out : ndarray of float64, shape (n_chains,)
    """
    n_chains, n_visible = v.shape
    n_hidden = hidden_bias.shape[0]
    dt = weights.dtype
    m = betas.shape[0] - 1
    stride = np.uint64(n_visible + n_hidden)
    v_out = np.empty_like(v)
    log_w_out = np.empty(n_chains, dtype=np.float64)
    one = dt.type(1.0)
    zero = dt.type(0.0)
    for c in prange(n_chains):
        key = keys[c]
        vc = v[c].copy()
        lw = log_w[c]
        fh = np.empty(n_hidden, dtype=dt)
        hc = np.empty(n_hidden, dtype=dt)
        fv = np.empty(n_visible, dtype=dt)
        hidden_field(vc, weights, hidden_bias, fh)
        lin = _dot(visible_bias, vc) - _dot(base_bias, vc)
        for t in range(1, m + 1):
            b_new = betas[t]
            b_old = betas[t - 1]
            # -F_new + F_old = (b_new - b_old)(a - a0).v + sum_j [sp(b_new f_j) - sp(b_old f_j)],
            # sp(x) = max(x, 0) + log(1 + e^{-|x|}); the logs of the second part are taken once
            # per chunk of a product. e^{-|b_new f|} also gives the hidden sampling probability.
            inc = (b_new - b_old) * lin
            prod = 1.0
            start = (np.uint64(step0) + np.uint64(t - 1)) * stride
            sample_now = t < m or transition_last
            for j in range(n_hidden):
                f = np.float64(fh[j])
                x = b_new * f
                y = b_old * f
                ex = math.exp(-abs(x))
                ey = math.exp(-abs(y))
                inc += max(x, 0.0) - max(y, 0.0)
                prod *= (1.0 + ex) / (1.0 + ey)
                if (j + 1) % _PRODUCT_CHUNK == 0:
                    inc += math.log(prod)
                    prod = 1.0
                if sample_now:
                    p = 1.0 / (1.0 + ex) if x >= 0 else ex / (1.0 + ex)
                    if single:
                        u = np.float64(uniform32(key, start + np.uint64(j)))
                    else:
                        u = uniform64(key, start + np.uint64(j))
                    hc[j] = one if u < p else zero
            lw += inc + math.log(prod)
            if not sample_now:
                break
            visible_half_sweep(vc, hc, weights_t, visible_bias, base_bias, dt.type(b_new), key,
                               start + np.uint64(n_hidden), fv, single)
            hidden_field(vc, weights, hidden_bias, fh)
            lin = _dot(visible_bias, vc) - _dot(base_bias, vc)
        v_out[c] = vc
        log_w_out[c] = lw
    return v_out, log_w_out


def padded_weights(rbm: RBM) -> tuple[np.ndarray, np.ndarray]:
    """The weights and their transpose with each row padded with zeros to a multiple of 64 bytes.

    Rows that start off a 64-byte boundary make the vectorised row sums of the kernels split
    cache lines: on AVX-512 hardware a 784 x 500 float32 field sum ran 6x slower unpadded.

    Returns
    -------
    weights : ndarray, shape (n_visible, n_hidden_padded)
    weights_t : ndarray, shape (n_hidden, n_visible_padded)
    """
    per_line = 64 // rbm.dtype.itemsize
    out = []
    for w in (rbm.weights, rbm.weights.T):
        cols = -(-w.shape[1] // per_line) * per_line
        p = np.zeros((w.shape[0], cols), dtype=rbm.dtype)
        p[:, : w.shape[1]] = w
        out.append(p)
    return out[0], out[1]


def base_rate_bias(data, n_visible: int, *, pseudo_count: float = 0.05, name: str = "data") -> np.ndarray:
    """Visible biases of the base-rate model: the log-odds of each unit's smoothed mean in ``data``.

    ``p_i = (sum_n v_ni + pseudo_count * n) / (n + 2 * pseudo_count * n)``, ``a0_i = log(p_i / (1 - p_i))``.
    The smoothing (as in Salakhutdinov's AIS code, which adds 5 pseudo-counts per 100 cases)
    keeps the base model's tails heavy, so units that are always off in the data still get
    explored. No data gives ``a0 = 0`` (uniform base).

    Parameters
    ----------
    data : array_like, shape (n, n_visible), or None
    n_visible : int
    pseudo_count : float
        Pseudo-counts per data row added to both outcomes (> 0).
    name : str
        The caller's name for ``data``, in the error messages.

    Returns
    -------
    ndarray of float64, shape (n_visible,)
    """
    n_visible = check_int("n_visible", n_visible, low=1)
    if data is None:
        return np.zeros(n_visible)
    if not check_finite("pseudo_count", pseudo_count) > 0:
        raise ValueError(f"pseudo_count must be > 0, got {pseudo_count!r}")
    x = check_binary(name, data, n_visible, np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{name} must hold at least one row to fit base rates (or pass {name}=None for a uniform "
                         "base)")
    extra = pseudo_count * n
    p = (x.sum(axis=0) + extra) / (n + 2 * extra)
    return np.log(p) - np.log1p(-p)


def weight_summary(log_w, *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, float]:
    """Log of the mean importance weight, with its standard errors and effective sample size.

    Parameters
    ----------
    log_w : ndarray, shape (n_chains,)
    n_bootstrap : int
        Bootstrap resamples of the chains (0 skips the bootstrap).
    seed : int

    Returns
    -------
    dict with keys
        ``log_mean`` (log-mean-exp of ``log_w``); ``std`` (delta method:
        ``std(w) / (sqrt(n) mean(w))``); ``bootstrap_std``, ``ci_low``, ``ci_high`` (std and
        2.5 / 97.5 percentiles of the bootstrap distribution of ``log_mean``); ``ess``
        (``(sum w)^2 / sum w^2``).
    """
    check_int("n_bootstrap", n_bootstrap, low=0)
    lw = np.asarray(log_w, dtype=np.float64)
    n = lw.size
    if n == 0 or not np.all(np.isfinite(lw)):
        raise ValueError(f"log-weights must be a non-empty array of finite values, got {lw!r}")
    top = lw.max()
    r = np.exp(lw - top)
    mean_r = r.mean()
    out = {
        "log_mean": float(top + np.log(mean_r)),
        "std": float(r.std(ddof=1) / (np.sqrt(n) * mean_r)) if n > 1 else math.nan,
        "ess": float(r.sum() ** 2 / np.sum(r * r)),
    }
    if n_bootstrap:
        rng = np.random.default_rng(derive_seed(seed, "ais-bootstrap"))
        boot = np.empty(n_bootstrap)
        block = max(1, 2**22 // n)
        for s in range(0, n_bootstrap, block):
            k = min(block, n_bootstrap - s)
            boot[s : s + k] = top + np.log(r[rng.integers(0, n, size=(k, n))].mean(axis=1))
        out["bootstrap_std"] = float(boot.std(ddof=1)) if n_bootstrap > 1 else math.nan
        out["ci_low"], out["ci_high"] = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    else:
        out["bootstrap_std"] = out["ci_low"] = out["ci_high"] = math.nan
    return out


def _run(rbm: RBM, v, betas, a0, keys, *, desc: str, progress, start: int = 0, log_w=None,
         saver: _Saver | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drive ``ais_kernel`` over the schedule in chunks that keep the progress bar alive.

    A resumed run passes the ``start`` step, the chains' states ``v`` and ``log_w`` there; after
    every chunk ``saver`` (if any) is offered ``step``, ``v`` and ``log_w``.
    """
    dt = rbm.dtype
    w, w_t = padded_weights(rbm)
    a0 = a0.astype(dt)
    n_chains = v.shape[0]
    log_w = np.zeros(n_chains) if log_w is None else log_w
    n_steps = betas.size - 1
    work = n_chains * (rbm.n_visible + rbm.n_hidden) * rbm.n_hidden  # per step, as WORK_PER_SECOND counts it
    chunk = max(1, min(n_steps, int(WORK_PER_SECOND // max(work, 1))))  # about a second per call
    with progress_bar(n_steps, desc, enabled=progress, expected_seconds=work * (n_steps - start) / WORK_PER_SECOND,
                      initial=start) as bar:
        for s in range(start, n_steps, chunk):
            e = min(n_steps, s + chunk)
            v, log_w = ais_kernel(
                v, log_w, w, w_t, rbm.visible_bias, rbm.hidden_bias, a0, betas[s : e + 1], keys, s + 1, e < n_steps,
                dt == np.float32,
            )
            bar.update(e - s)
            if saver is not None:
                saver.offer(step=e, v=v, log_w=log_w)
            interrupt.check()  # a deferred Ctrl-C stops here, the chunk offered to the checkpoint
    return v, log_w


# With resampling the effective sample size is examined after every 1/RESAMPLE_CHECKS of the schedule.
RESAMPLE_CHECKS = 200


def _log_mean_exp(x: np.ndarray) -> float:
    top = x.max()
    return float(top + np.log(np.mean(np.exp(x - top))))


def _ess(log_w: np.ndarray) -> float:
    r = np.exp(log_w - log_w.max())
    return float(r.sum() ** 2 / np.sum(r * r))


def _systematic(log_w: np.ndarray, u: float) -> np.ndarray:
    """Ancestor indices by systematic resampling with offset ``u`` in [0, 1)."""
    r = np.exp(log_w - log_w.max())
    cdf = np.cumsum(r / r.sum())
    n = log_w.size
    return np.minimum(np.searchsorted(cdf, (u + np.arange(n)) / n, side="right"), n - 1)


def check_resampling(resample, n_groups, n_chains: int, *,
                     names: tuple[str, str, str] = ("resample", "n_groups", "n_chains")) -> float:
    """Check the resampling options of :func:`log_partition` and return ``resample`` as a float.

    ``resample`` must be a number in [0, 1); above 0, ``n_groups`` must be an integer >= 2 that
    divides ``n_chains`` into populations of at least 2 chains. ``names`` are the option names the
    errors use (a caller with its own names, e.g. ``ais_resample``, passes them).
    """
    r_name, g_name, c_name = names
    if isinstance(resample, bool) or not isinstance(resample, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(resample) < 1.0:
        raise ValueError(f"{r_name} must be a number in [0, 1) (0: plain AIS; 0.5 is usual), got {resample!r}")
    if resample:
        check_int(g_name, n_groups, low=2)
        if n_chains % n_groups or n_chains // n_groups < 2:
            raise ValueError(f"{c_name} ({n_chains}) must be a multiple of {g_name} ({n_groups}) with at least 2 "
                             f"chains per population when {r_name} > 0")
    return float(resample)


def _run_smc(rbm: RBM, v, betas, a0, keys, *, n_groups: int, threshold: float, seed: int, desc: str,
             progress, start: int = 0, log_w=None, log_ratio=None, n_resamples=None,
             saver: _Saver | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AIS with adaptive resampling (an SMC sampler) in ``n_groups`` independent populations.

    The schedule is walked in blocks of ``ceil(K / RESAMPLE_CHECKS)`` steps. After a block (not
    the last), every population whose effective sample size fell below ``threshold`` times its
    size adds the log of its mean weight to its running log ratio, draws ancestors by systematic
    resampling (offset from a stream of its own for that block) and restarts its weights at 0.
    Each chain keeps its own random key, so a copied state moves on independently. The
    population's estimate of ``Z / Z_0`` (the product of its stage means) is unbiased
    (Del Moral, Doucet & Jasra 2006).

    A resumed run passes ``start`` (a block boundary) and the state there: ``v``, ``log_w``,
    ``log_ratio`` and ``n_resamples``; after every block's resampling ``saver`` (if any) is offered
    that state.

    Returns
    -------
    v : ndarray, shape (n_chains, n_visible)
    log_w : ndarray, shape (n_chains,)
        Weights since each population's last resampling.
    group_log_ratio : ndarray, shape (n_groups,)
        Log of each population's estimate of ``Z / Z_0``.
    n_resamples : ndarray of int, shape (n_groups,)
    """
    dt = rbm.dtype
    w, w_t = padded_weights(rbm)
    a0 = a0.astype(dt)
    n_chains = v.shape[0]
    size = n_chains // n_groups
    log_w = np.zeros(n_chains) if log_w is None else log_w
    log_ratio = np.zeros(n_groups) if log_ratio is None else log_ratio
    n_resamples = np.zeros(n_groups, dtype=np.int64) if n_resamples is None else n_resamples
    n_steps = betas.size - 1
    block = -(-n_steps // RESAMPLE_CHECKS)
    work = n_chains * (rbm.n_visible + rbm.n_hidden) * rbm.n_hidden
    with progress_bar(n_steps, desc, enabled=progress, expected_seconds=work * (n_steps - start) / WORK_PER_SECOND,
                      initial=start) as bar:
        for s in range(start, n_steps, block):
            b = s // block
            e = min(n_steps, s + block)
            v, log_w = ais_kernel(
                v, log_w, w, w_t, rbm.visible_bias, rbm.hidden_bias, a0, betas[s : e + 1], keys, s + 1, e < n_steps,
                dt == np.float32,
            )
            bar.update(e - s)
            if e == n_steps:
                break
            for g in range(n_groups):
                part = slice(g * size, (g + 1) * size)
                if _ess(log_w[part]) >= threshold * size:
                    continue
                u = np.random.default_rng(derive_seed(seed, "ais-resample", g, b)).random()
                ancestors = g * size + _systematic(log_w[part], u)
                log_ratio[g] += _log_mean_exp(log_w[part])
                v[part] = v[ancestors]
                log_w[part] = 0.0
                n_resamples[g] += 1
            if saver is not None:
                saver.offer(step=e, v=v, log_w=log_w, log_ratio=log_ratio, n_resamples=n_resamples)
            interrupt.check()
    for g in range(n_groups):
        log_ratio[g] += _log_mean_exp(log_w[g * size : (g + 1) * size])
    return v, log_w, log_ratio, n_resamples


# A checkpoint's layout; a file of another version is refused, not misread.
CHECKPOINT_VERSION = 1

# log_partition's default: a checkpoint is written at most this often (seconds).
CHECKPOINT_EVERY = 300.0


def _digest(*arrays) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes: a run's inputs, compared on resume."""
    h = hashlib.sha256()
    for x in arrays:
        x = np.ascontiguousarray(x)
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _check_checkpoint(checkpoint, checkpoint_every) -> Path | None:
    """``checkpoint`` as a Path (None stays None), after checking both options."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if path.is_dir() or not path.absolute().parent.is_dir():
        raise ValueError(f"checkpoint must be a file in an existing folder (e.g. ais-checkpoint.npz), got {str(path)!r}")
    number = isinstance(checkpoint_every, (int, float, np.integer, np.floating))
    if isinstance(checkpoint_every, bool) or not number or not checkpoint_every >= 0:
        raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {checkpoint_every!r}")
    return path


def _open_checkpoint(path: Path, every: float, identity: dict) -> tuple[_Saver, dict]:
    """The saver of checkpoint ``path`` and what the file holds ({} when new)."""
    saver = _Saver(path, {"version": CHECKPOINT_VERSION, **identity}, float(every))
    return saver, saver.load()


class _Saver:
    """The checkpoint file of one :func:`log_partition` call: what it must match, and when to write.

    ``fixed`` holds the arrays of finished phases (written with every save); ``offer`` takes the
    running phase's state, copies it as the latest consistent one, and writes when ``every``
    seconds have passed since the last write; ``flush`` writes the latest state now.
    """

    def __init__(self, path: Path, identity: dict, every: float) -> None:
        self.path, self.identity, self.every = path, identity, every
        self.fixed: dict[str, np.ndarray] = {}
        self.phase = ""
        self._latest: dict[str, np.ndarray] | None = None
        self._written = time.monotonic()
        self._failed = False

    def load(self) -> dict[str, np.ndarray]:
        """The saved arrays, or {} when there is no file; a file of another run is refused."""
        if not self.path.exists():
            return {}
        again = "pass another checkpoint path, or delete the file to start again"
        if not zipfile.is_zipfile(self.path):  # another kind of file: a model, say, not to be deleted
            raise CheckpointMismatchError(f"checkpoint {self.path} is not an AIS checkpoint (not an .npz file); pass "
                                          "the path of a checkpoint, or of a new file")
        try:
            with np.load(self.path, allow_pickle=False) as f:
                saved = {k: f[k] for k in f.files}
            identity = json.loads(str(saved.pop("identity")))
        except Exception as err:  # any unreadable file gets the same clear message
            raise CheckpointMismatchError(f"checkpoint {self.path} is not an AIS checkpoint this version can read "
                             f"({type(err).__name__}: {err}); {again}") from None
        differ = []
        for key in sorted(set(identity) | set(self.identity)):
            there, here = identity.get(key), self.identity.get(key)
            if there != here:
                digest = isinstance(here, str) and len(here) == 64  # an array's, not worth printing
                differ.append(f"different {key}" + ("" if digest else f": {there!r} there, {here!r} here"))
        if differ:
            raise CheckpointMismatchError(f"checkpoint {self.path} belongs to another AIS run ({'; '.join(differ)}); "
                                          f"{again}")
        return saved

    def start(self, phase: str) -> None:
        self.phase, self._latest = phase, None

    def offer(self, **state) -> None:
        self._latest = {f"{self.phase}_{k}": np.array(x, copy=True) for k, x in state.items()}
        if time.monotonic() - self._written >= self.every:
            self._write(self._latest)

    def finish(self, **arrays) -> None:
        """The running phase is done: keep its results and write them now."""
        self.fixed.update(arrays)
        self._latest = None
        self._write({})

    def flush(self) -> None:
        if self._latest is not None:
            self._write(self._latest)

    def _write(self, running: dict[str, np.ndarray]) -> None:
        # The checkpoint serves the run, not the other way round: a write that fails (a full disk,
        # a vanished folder) is reported once and the run goes on; the file keeps its last state.
        try:
            with atomic_write(self.path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, identity=np.array(json.dumps(self.identity)), phase=np.array(self.phase),
                         **self.fixed, **running)
        except OSError as err:
            if not self._failed:
                warnings.warn(f"could not write the AIS checkpoint {self.path} ({err}); the run goes on, and an "
                              "interruption would resume from the file's last state", CheckpointWriteWarning,
                              stacklevel=2)
            self._failed = True
        self._written = time.monotonic()


def _log_z_base(a0_model: np.ndarray, n_hidden: int) -> float:
    """log Z of the base-rate model: independent visible units with biases ``a0_model`` (in the model
    dtype the chains see), hidden units uniform."""
    return float(np.sum(np.logaddexp(0.0, a0_model.astype(np.float64))) + n_hidden * math.log(2.0))


def _var(value, long_name: str, units: str, dim: str | None = None) -> tuple:
    """A Dataset variable: scalar, or 1-D on ``dim``, with its CF ``long_name`` and ``units``."""
    return ((dim,) if dim else (), value, {"long_name": long_name, "units": units})


def _warn_if_degenerate(ess: float, n: int, direction: str) -> None:
    if ess < LOW_ESS_FRACTION * n:
        warnings.warn(
            f"{direction} AIS weights are degenerate: effective sample size {ess:.1f} of {n} chains "
            f"(below {LOW_ESS_FRACTION:.0%}); the estimate and its standard error are unreliable. "
            "Use more betas (a finer schedule) or more chains.",
            DegenerateReverseWeightsWarning if direction == "reverse" else DegenerateWeightsWarning,
            stacklevel=3,
        )


def log_partition(
    rbm: RBM,
    *,
    n_chains: int,
    betas=None,
    data=None,
    seed: int,
    reverse: bool = True,
    reverse_init=None,
    reverse_burn_in: int = REVERSE_BURN_IN,
    resample: float = 0.0,
    n_groups: int = 10,
    n_bootstrap: int = 1000,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY,
    data_name: str = "data",
) -> xr.Dataset:
    """Estimate log Z of an RBM by forward AIS, with a reverse-AIS bound from the other side.

    Parameters
    ----------
    rbm : RBM
    n_chains : int
        Independent AIS runs (each direction).
    betas : array_like, shape (K + 1,), optional
        Schedule from 0 to 1 (:mod:`dilution.schedules`); default the classic 14,500-beta one.
    data : array_like, shape (n, n_visible), optional
        Binary data whose smoothed unit means set the base-rate model (:func:`base_rate_bias`);
        default a uniform base. Any base gives an unbiased estimate; a base close to the model
        gives a smaller variance.
    seed : int
        Fixes every draw: same seed, same log-weights, whatever the number of threads.
    reverse : bool
        Also run reverse AIS for the upper bound.
    reverse_init : array_like, shape (n_chains, n_visible), optional
        Starting states of the reverse chains, ideally exact samples of the RBM. Default: the final
        states of the forward chains after ``reverse_burn_in`` more Gibbs sweeps at beta = 1.
        Only exact samples make ``log_z_upper`` a true stochastic upper bound; with approximate
        ones (Gibbs, or parallel tempering: ``dilution.tempering.sample(rbm, n_chains, n_sweeps,
        seed=...).samples[-1]``) it is an approximate bound (``attrs["reverse_init"]`` says which).
    reverse_burn_in : int
        Gibbs sweeps applied to the default reverse starting states (ignored with ``reverse_init``).
    resample : float in [0, 1)
        0 (default): plain AIS, independent chains. Above 0: AIS with adaptive resampling (an SMC
        sampler, :func:`_run_smc`) in ``n_groups`` independent populations of
        ``n_chains / n_groups`` chains; a population is resampled when its effective sample size
        falls below ``resample`` times its size (0.5 is the usual choice). Meant for models whose
        annealing path crosses a sharp transition, where plain AIS's weights are carried by one
        or two chains (a PCD-trained 784 x 500 MNIST RBM is one). The forward estimate is
        then the log of the mean of the populations' unbiased estimates of ``Z``, its standard
        error and bootstrap are over populations, and ``ess`` is that of the populations'
        estimates. The reverse run (``reverse``) stays plain AIS.
    n_groups : int >= 2
        Independent populations with ``resample`` (ignored without); must divide ``n_chains``
        into populations of at least 2 chains.
    n_bootstrap : int
        Bootstrap resamples for ``*_bootstrap_std`` and the confidence interval.
    progress : bool, optional
        Progress bar with ETA; default when the run is long and stderr is a terminal.
    checkpoint : path, optional
        A file (``.npz``) that makes a long run resumable: the chains' states are written to it,
        atomically, at most every ``checkpoint_every`` seconds, at the end of each direction, and
        on Ctrl-C or an exception (a killed process keeps the last periodic write). A call that
        finds the file continues from it and returns what the uninterrupted run returns, bit for
        bit; one that finds it finished only recomputes the summaries. The file records the model,
        the schedule and every option that changes a draw, and a call with different ones is
        refused (:class:`CheckpointMismatchError`) rather than mixed with it. It is left in place.
    checkpoint_every : float >= 0
        Seconds between checkpoint writes (0: after every chunk of work, about a second).
    data_name : str
        The caller's name for ``data``, in the error messages (``base_data`` in :func:`log_likelihood`).

    Returns
    -------
    xarray.Dataset
        Scalars ``log_z`` (forward estimate, a stochastic lower bound), ``log_z_std`` (delta-method
        standard error), ``log_z_bootstrap_std``, ``log_z_ci_low``/``log_z_ci_high`` (bootstrap
        95 % interval), ``ess``, ``log_z_base``; with ``reverse``: ``log_z_upper``,
        ``log_z_upper_std``, ``log_z_upper_bootstrap_std``, ``ess_reverse``. Per-chain
        ``log_weights`` (and ``log_weights_reverse``) on dim ``chain``; ``base_bias`` on dim
        ``visible``.

    Warns
    -----
    DegenerateWeightsWarning
        When the effective sample size is below ``LOW_ESS_FRACTION * n_chains`` in either direction
        (:class:`DegenerateReverseWeightsWarning`, a subclass, for the reverse run); with
        ``resample``, when the populations' estimates have an effective sample size below half of
        ``n_groups`` (one or two populations carry the estimate).
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    check_int("n_chains", n_chains, low=2)  # two runs at least, for a standard error
    check_int("reverse_burn_in", reverse_burn_in, low=0)
    check_int("n_bootstrap", n_bootstrap, low=0)
    resample = check_resampling(resample, n_groups, n_chains)
    schedule = classic() if betas is None else check_schedule(betas)
    checkpoint = _check_checkpoint(checkpoint, checkpoint_every)
    dt = rbm.dtype
    a0 = base_rate_bias(data, rbm.n_visible, name=data_name)
    if not reverse and reverse_init is not None:
        raise ValueError("reverse_init gives the starts of the reverse run, which reverse=False turns off: give "
                         "reverse=True, or drop reverse_init")
    if reverse and reverse_init is not None:
        start_rev = check_binary("reverse_init", reverse_init, rbm.n_visible, dt)
        if start_rev.shape[0] != n_chains:
            raise ValueError(f"reverse_init must have {n_chains} rows (one per chain), got {start_rev.shape[0]}")
    a0_model = a0.astype(dt)  # the chains see the bias in the model dtype; log Z_0 must match it
    log_z_base = _log_z_base(a0_model, rbm.n_hidden)

    saver, saved = _open_checkpoint(checkpoint, checkpoint_every, {
        "model": _digest(rbm.weights, rbm.mask, rbm.visible_bias, rbm.hidden_bias), "betas": _digest(schedule),
        "base_bias": _digest(a0_model), "n_chains": int(n_chains), "seed": int(seed), "resample": resample,
        "n_groups": int(n_groups) if resample else 0, "reverse": bool(reverse),
        "reverse_start": ("none" if not reverse else _digest(start_rev) if reverse_init is not None
                          else f"forward end states + {reverse_burn_in} Gibbs sweeps"),
    }) if checkpoint is not None else (None, {})
    keys = chain_keys(derive_seed(seed, "ais-forward"), n_chains)
    keys_rev = chain_keys(derive_seed(seed, "ais-reverse"), n_chains)
    try:
        if "forward_done" in saved:
            v_end, log_w = saved["forward_v_end"], saved["forward_log_w"]
            group_log_ratio, n_resamples = saved["forward_group_log_ratio"], saved["forward_n_resamples"]
        else:
            if saver is not None:
                saver.start("forward")
            if "forward_step" in saved:
                start, v0 = int(saved["forward_step"]), saved["forward_v"]
            else:
                start = 0
                rng = np.random.default_rng(derive_seed(seed, "ais-init"))
                p0 = 1.0 / (1.0 + np.exp(-a0_model.astype(np.float64)))
                v0 = (rng.random((n_chains, rbm.n_visible)) < p0).astype(dt)
            resumed = {"start": start, "log_w": saved.get("forward_log_w"), "saver": saver}
            if resample:
                v_end, log_w, group_log_ratio, n_resamples = _run_smc(
                    rbm, v0, schedule, a0_model, keys, n_groups=n_groups, threshold=resample, seed=seed,
                    desc="AIS forward (resampling)", progress=progress, log_ratio=saved.get("forward_log_ratio"),
                    n_resamples=saved.get("forward_n_resamples"), **resumed,
                )
            else:
                v_end, log_w = _run(rbm, v0, schedule, a0_model, keys, desc="AIS forward", progress=progress,
                                    **resumed)
                group_log_ratio, n_resamples = np.zeros(0), np.zeros(0, dtype=np.int64)
            if saver is not None:
                saver.finish(forward_done=np.array(True), forward_v_end=v_end, forward_log_w=log_w,
                             forward_group_log_ratio=group_log_ratio, forward_n_resamples=n_resamples)
        if not reverse:
            log_w_rev = None
        elif "reverse_done" in saved:
            log_w_rev = saved["reverse_log_w_end"]
        else:
            if saver is not None:
                saver.start("reverse")
            if "reverse_step" in saved:
                start, start_rev = int(saved["reverse_step"]), saved["reverse_v"]
            else:
                start = 0
                if reverse_init is None:
                    start_rev = v_end
                    if reverse_burn_in:
                        start_rev = gibbs_sample(rbm, n_chains, reverse_burn_in, seed=seed, init=v_end,
                                                 progress=progress)
            _, log_w_rev = _run(rbm, start_rev, schedule[::-1].copy(), a0_model, keys_rev, desc="AIS reverse",
                                progress=progress, start=start, log_w=saved.get("reverse_log_w"), saver=saver)
            if saver is not None:
                saver.finish(reverse_done=np.array(True), reverse_log_w_end=log_w_rev)
    except BaseException:  # Ctrl-C (perhaps wrapped by numba in a SystemError), or a failure
        if saver is not None:
            saver.flush()  # the last consistent state: the work done so far is kept
        raise
    if resample:
        fwd = weight_summary(group_log_ratio, n_bootstrap=n_bootstrap, seed=seed)
        if fwd["ess"] < 0.5 * n_groups:
            warnings.warn(
                f"forward AIS with resampling is degenerate: the {n_groups} populations' estimates of Z have an "
                f"effective sample size of {fwd['ess']:.1f} (below half of them); the estimate and its standard "
                "error are unreliable. Use more betas or more chains per population.",
                DegenerateWeightsWarning,
                stacklevel=2,
            )
    else:
        fwd = weight_summary(log_w, n_bootstrap=n_bootstrap, seed=seed)
        _warn_if_degenerate(fwd["ess"], n_chains, "forward")

    nats = "nats"
    ds = xr.Dataset(
        {
            "log_z": _var(log_z_base + fwd["log_mean"], "forward AIS estimate of log Z (stochastic lower bound)", nats),
            "log_z_std": _var(fwd["std"], "standard error of log_z (delta method)", nats),
            "log_z_bootstrap_std": _var(fwd["bootstrap_std"], "standard error of log_z (bootstrap over chains)", nats),
            "log_z_ci_low": _var(log_z_base + fwd["ci_low"], "2.5 % bootstrap percentile of log_z", nats),
            "log_z_ci_high": _var(log_z_base + fwd["ci_high"], "97.5 % bootstrap percentile of log_z", nats),
            "ess": _var(fwd["ess"], "effective sample size of the forward weights, (sum w)^2 / sum w^2", "1"),
            "log_z_base": _var(log_z_base, "log Z of the base-rate model", nats),
            "log_weights": _var(log_w, "forward log importance weights, log(Z / Z_base) per chain", nats, "chain"),
            "base_bias": _var(a0, "visible biases a0 of the base-rate model", "1", "visible"),
        },
        coords={"chain": _var(np.arange(n_chains), "AIS chain index", "1", "chain")},
    )
    if resample:
        ds["ess"].attrs["long_name"] = "effective sample size of the populations' estimates of Z"
        ds["log_z_std"].attrs["long_name"] = "standard error of log_z (delta method over populations)"
        ds["log_z_bootstrap_std"].attrs["long_name"] = "standard error of log_z (bootstrap over populations)"
        ds["log_weights"].attrs["long_name"] = "forward log importance weights since the chain's last resampling"
        ds["group_log_ratio"] = _var(group_log_ratio, "log of a population's estimate of Z / Z_base", nats, "group")
        ds["n_resamples"] = _var(n_resamples, "resampling events of a population", "1", "group")
        ds = ds.assign_coords(group=_var(np.arange(n_groups), "AIS population index", "1", "group"))
    reverse_source = "none"
    if reverse:
        if reverse_init is None:
            reverse_source = f"forward AIS end states + {reverse_burn_in} Gibbs sweeps (approximate samples)"
        else:
            reverse_source = "user-supplied reverse_init"
        rev = weight_summary(log_w_rev, n_bootstrap=n_bootstrap, seed=seed + 1)  # a bootstrap stream of its own
        _warn_if_degenerate(rev["ess"], n_chains, "reverse")
        ds["log_z_upper"] = _var(
            log_z_base - rev["log_mean"],
            "reverse AIS estimate of log Z (stochastic upper bound when reverse_init holds exact samples)",
            nats,
        )
        ds["log_z_upper_std"] = _var(rev["std"], "standard error of log_z_upper (delta method)", nats)
        ds["log_z_upper_bootstrap_std"] = _var(rev["bootstrap_std"], "standard error of log_z_upper (bootstrap)", nats)
        ds["ess_reverse"] = _var(rev["ess"], "effective sample size of the reverse weights", "1")
        ds["log_weights_reverse"] = _var(
            log_w_rev, "reverse log importance weights, log(Z_base / Z) per chain", nats, "chain"
        )

    ds.attrs.update(
        provenance(
            method="annealed importance sampling (Neal 2001; Salakhutdinov & Murray 2008)",
            n_chains=int(n_chains),
            n_betas=int(schedule.size),
            schedule="classic 14,500-beta" if betas is None else "user",
            seed=int(seed),
            base="base rates fitted to data" if data is not None else "uniform",
            resample=resample,
            n_groups=int(n_groups) if resample else 0,
            reverse_init=reverse_source,
            dtype=dt.name,
            n_visible=rbm.n_visible,
            n_hidden=rbm.n_hidden,
            connectivity=rbm.connectivity,
        )
    )
    return ds


def check_log_z(log_z, *, require_std: bool = True) -> float:
    """The ``log_z`` given to a log-likelihood, as a float.

    Parameters
    ----------
    log_z : float, 0-d array or DataArray, or xarray.Dataset
        A finite number, or a :func:`log_partition` result: a Dataset holding a finite ``log_z``
        and, with ``require_std``, its ``log_z_std``.
    require_std : bool
        Whether a Dataset must carry ``log_z_std`` (the caller propagates the AIS error).

    Raises
    ------
    TypeError
        If ``log_z`` (or the Dataset's ``log_z``) is not a number.
    ValueError
        If it is not finite, or a Dataset lacks a variable.
    """
    if isinstance(log_z, xr.Dataset):
        needed = ("log_z", "log_z_std") if require_std else ("log_z",)
        missing = [name for name in needed if name not in log_z]
        if missing:
            raise ValueError(f"log_z Dataset lacks {missing}: expected a result of log_partition (or a number)")
        log_z = log_z["log_z"]
    return check_finite("log_z", log_z)  # a 0-d DataArray too


def log_likelihood(
    rbm: RBM,
    data,
    *,
    log_z: xr.Dataset | float | None = None,
    n_chains: int = 100,
    betas=None,
    base_data=None,
    seed: int | None = None,
    **ais_options,
) -> xr.Dataset:
    """Average log-likelihood of ``data`` under the RBM: mean of ``-F(v)`` minus an AIS log Z.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary data to score (e.g. a test set).
    log_z : xarray.Dataset or float, optional
        A result of :func:`log_partition` (its uncertainty and bracket are carried over) or a
        number known exactly. Default: run :func:`log_partition` with ``n_chains``, ``betas``,
        ``seed`` and ``ais_options``.
    base_data : array_like, optional
        Data for the base rates of a new AIS run (default ``data``; any choice is unbiased).
    seed : int
        Required when ``log_z`` is None.

    Returns
    -------
    xarray.Dataset
        ``log_likelihood`` (mean log p(v) per row, nats) with ``log_likelihood_std`` =
        sqrt(var(-F) / n + log_z_std^2) (independent errors of the data mean and of log Z);
        ``mean_neg_free_energy`` with ``mean_neg_free_energy_std``; ``log_z``; with a reverse
        bound also ``log_likelihood_lower`` = mean(-F) - log_z_upper (the conservative side).
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    v = check_binary("data", data, rbm.n_visible, rbm.dtype)
    n = v.shape[0]
    if n < 2:
        raise ValueError(f"data must hold at least 2 rows for a standard error, got {n}")
    if log_z is not None:
        value = check_log_z(log_z)
        if not isinstance(log_z, xr.Dataset):
            log_z = value
        if base_data is not None:
            check_binary("base_data", base_data, rbm.n_visible, np.float64)  # unused, but refused if wrong
    else:
        if seed is None:
            raise ValueError("seed is required when log_z is not given (an AIS run is needed)")
        # log_partition checks base_data (under its name) before the run
        log_z = log_partition(rbm, n_chains=n_chains, betas=betas, data=v if base_data is None else base_data,
                              data_name="data" if base_data is None else "base_data", seed=seed, **ais_options)
    zeros = np.zeros(rbm.n_visible, dtype=rbm.dtype)
    neg_f = -free_energy(v, rbm.weights, rbm.visible_bias, rbm.hidden_bias, 1.0, zeros)
    mean_f = float(neg_f.mean())
    se_f = float(neg_f.std(ddof=1) / math.sqrt(n))
    if isinstance(log_z, xr.Dataset):
        lz, lz_std = float(log_z["log_z"]), float(log_z["log_z_std"])
        upper = float(log_z["log_z_upper"]) if "log_z_upper" in log_z else None
        upper_std = float(log_z["log_z_upper_std"]) if "log_z_upper" in log_z else None
        attrs = {f"ais_{k}": v for k, v in log_z.attrs.items()}
    else:
        lz, lz_std, upper, upper_std, attrs = float(log_z), 0.0, None, None, {"log_z_source": "given number"}
    per = "nats per sample"
    ds = xr.Dataset(
        {
            "log_likelihood": _var(mean_f - lz, "mean log p(v) over the data (forward-AIS log Z)", per),
            "log_likelihood_std": _var(
                math.hypot(se_f, lz_std), "standard error of log_likelihood: data mean and log Z combined", per
            ),
            "mean_neg_free_energy": _var(mean_f, "mean of -F(v) over the data", "nats"),
            "mean_neg_free_energy_std": _var(se_f, "standard error of mean_neg_free_energy", "nats"),
            "log_z": _var(lz, "log Z used", "nats"),
            "log_z_std": _var(lz_std, "standard error of log Z", "nats"),
        }
    )
    if upper is not None:
        ds["log_likelihood_lower"] = _var(
            mean_f - upper, "mean log p(v) with the reverse-AIS upper bound on log Z (conservative)", per
        )
        ds["log_likelihood_lower_std"] = _var(
            math.hypot(se_f, upper_std), "standard error of log_likelihood_lower", per
        )
    ds.attrs.update(provenance(n_samples=int(n), **attrs))
    return ds


def raise_log_likelihood(
    rbm: RBM,
    data,
    *,
    base_data,
    seed: int,
    betas=None,
    chains_per_row: int = 1,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY,
) -> xr.Dataset:
    """Log-likelihood of each data row by RAISE: reverse AIS started from the row itself.

    For every row ``v`` of ``data``, ``chains_per_row`` reverse chains start at ``v`` (the first
    step draws ``h ~ p(h | v)``) and run the AIS path from ``beta = 1`` to the base-rate model.
    ``r = exp(-F(v) + log w_rev - log Z_0)`` of one chain is an unbiased estimate of ``p_ann(v)``,
    the probability of ``v`` under the annealing model: draw from the base model and apply the
    reversals of the chain's transitions from ``beta = 0`` to 1 (Burda, Grosse & Salakhutdinov
    2015). ``p_ann`` sums to 1 over ``v`` whatever the schedule (tested against enumeration), and
    equals the RBM when the annealing equilibrates. Per row, ``log mean(r)`` over its chains is a
    stochastic lower bound on ``log p_ann(v)``.

    Read it beside forward AIS (:func:`log_likelihood`, a stochastic *upper* bound on the RBM's
    log-likelihood): unlike reverse AIS from the forward chains' end states it needs no
    equilibrium samples of the RBM, so it cannot cross the forward estimate because its starting
    states are off-equilibrium. It is not a bound on the RBM's log-likelihood: an annealing that
    misses the RBM's modes gives a ``p_ann`` that puts less mass on data-like rows (conservative,
    as Burda et al. found), and the two agreeing is the evidence that both hold.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary rows to score (e.g. test images), at least 2.
    base_data : array_like, shape (m, n_visible), or None
        Data for the base-rate model (:func:`base_rate_bias`): the *training* images. Fitting the
        base to the scored rows would give the annealing model their pixel means; ``None`` gives a
        uniform base (valid, but a much longer path).
    seed : int
        Fixes every draw: same seed, same numbers, whatever the number of threads.
    betas : array_like, optional
        AIS schedule from 0 to 1 (:mod:`dilution.schedules`); default the classic 14,500-beta one.
    chains_per_row : int >= 1
        Reverse chains per row; more tighten the per-row Jensen gap (the cost is linear).
    progress : bool, optional
        Progress bar with ETA; default when the run is long and stderr is a terminal.
    checkpoint : path, optional
        A file (``.npz``) that makes the run resumable, as :func:`log_partition`'s: a call that
        finds it continues from it to the uninterrupted run's numbers, bit for bit; one of another
        run is refused (:class:`CheckpointMismatchError`).
    checkpoint_every : float >= 0
        Seconds between checkpoint writes.

    Returns
    -------
    xarray.Dataset
        ``log_likelihood`` (mean over rows of the per-row estimate, nats per row) with
        ``log_likelihood_std`` (their standard deviation / sqrt(n)); per row (dim ``sample``)
        ``log_likelihood_row`` and ``neg_free_energy``; per chain (dims ``sample``, ``repeat``)
        ``log_weights`` (``log r``); ``log_z_base``. Attributes: provenance and settings.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    check_int("chains_per_row", chains_per_row, low=1)
    check_int("seed", seed, low=0)
    dt = rbm.dtype
    v = check_binary("data", data, rbm.n_visible, dt)
    n = v.shape[0]
    if n < 2:
        raise ValueError(f"data must hold at least 2 rows for a standard error, got {n}")
    schedule = classic() if betas is None else check_schedule(betas)
    checkpoint = _check_checkpoint(checkpoint, checkpoint_every)
    a0 = base_rate_bias(base_data, rbm.n_visible, name="base_data")
    a0_model = a0.astype(dt)
    log_z_base = _log_z_base(a0_model, rbm.n_hidden)
    starts = np.repeat(v, chains_per_row, axis=0)
    keys = chain_keys(derive_seed(seed, "ais-raise"), n * chains_per_row)
    saver, saved = _open_checkpoint(checkpoint, checkpoint_every, {
        "model": _digest(rbm.weights, rbm.mask, rbm.visible_bias, rbm.hidden_bias), "betas": _digest(schedule),
        "base_bias": _digest(a0_model), "data": _digest(v), "chains_per_row": int(chains_per_row), "seed": int(seed),
    }) if checkpoint is not None else (None, {})
    if "raise_done" in saved:
        log_w_rev = saved["raise_log_w_end"]
    else:
        start, log_w = 0, None
        if "raise_step" in saved:
            start, starts, log_w = int(saved["raise_step"]), saved["raise_v"], saved["raise_log_w"]
        if saver is not None:
            saver.start("raise")
        try:
            _, log_w_rev = _run(rbm, starts, schedule[::-1].copy(), a0_model, keys, desc="RAISE", progress=progress,
                                start=start, log_w=log_w, saver=saver)
        except BaseException:
            if saver is not None:
                saver.flush()
            raise
        if saver is not None:
            saver.finish(raise_done=np.array(True), raise_log_w_end=log_w_rev)
    zeros = np.zeros(rbm.n_visible, dtype=dt)
    neg_f = -free_energy(v, rbm.weights, rbm.visible_bias, rbm.hidden_bias, 1.0, zeros).astype(np.float64)
    log_r = (neg_f[:, None] - log_z_base) + log_w_rev.reshape(n, chains_per_row)
    top = log_r.max(axis=1)
    per_row = top + np.log(np.mean(np.exp(log_r - top[:, None]), axis=1))
    per = "nats per sample"
    ds = xr.Dataset(
        {
            "log_likelihood": _var(float(per_row.mean()),
                                   "mean over rows of log p_ann(v) by RAISE (conservative estimate)", per),
            "log_likelihood_std": _var(float(per_row.std(ddof=1) / math.sqrt(n)),
                                       "standard error of log_likelihood over rows", per),
            "log_likelihood_row": _var(per_row, "RAISE estimate of log p_ann(v) of each row", "nats", "sample"),
            "neg_free_energy": _var(neg_f, "-F(v) of each row", "nats", "sample"),
            "log_weights": (("sample", "repeat"), log_r,
                            {"long_name": "log of one chain's unbiased estimate of p_ann(v)", "units": "nats"}),
            "log_z_base": _var(log_z_base, "log Z of the base-rate model", "nats"),
        },
        coords={"sample": _var(np.arange(n), "data row", "1", "sample"),
                "repeat": _var(np.arange(chains_per_row), "reverse chain of a row", "1", "repeat")},
    )
    ds.attrs.update(
        provenance(
            method="RAISE: reverse AIS from the data (Burda, Grosse & Salakhutdinov 2015)",
            n_rows=int(n),
            chains_per_row=int(chains_per_row),
            n_betas=int(schedule.size),
            schedule="classic 14,500-beta" if betas is None else "user",
            seed=int(seed),
            base="base rates fitted to base_data" if base_data is not None else "uniform",
            dtype=dt.name,
            n_visible=rbm.n_visible,
            n_hidden=rbm.n_hidden,
            connectivity=rbm.connectivity,
        )
    )
    return ds


# AIS along a path of models


@njit(parallel=True, cache=True)
def _interpolate(w_a, w_b, wt_a, wt_b, a_a, a_b, c_a, c_b, lam, w, wt, a, c):
    """``x = x_a + lam (x_b - x_a)`` for the weights (both orientations, padded rows) and biases."""
    for i in prange(w.shape[0]):
        for j in range(w.shape[1]):
            w[i, j] = w_a[i, j] + lam * (w_b[i, j] - w_a[i, j])
    for j in prange(wt.shape[0]):
        for i in range(wt.shape[1]):
            wt[j, i] = wt_a[j, i] + lam * (wt_b[j, i] - wt_a[j, i])
    for i in range(a.shape[0]):
        a[i] = a_a[i] + lam * (a_b[i] - a_a[i])
    for j in range(c.shape[0]):
        c[j] = c_a[j] + lam * (c_b[j] - c_a[j])


@njit(parallel=True, cache=True)
def _fields(v, w, c, a, fh, lin):
    """Hidden fields ``c + v W`` into ``fh`` and ``a.v`` into ``lin``, per chain."""
    for ch in prange(v.shape[0]):
        hidden_field(v[ch], w, c, fh[ch])
        lin[ch] = _dot(a, v[ch])


@njit(parallel=True, cache=True)
def _step(v, log_w, w, wt, a, c, fh_old, lin_old, fh_new, hc, fv, keys, start, sample, single):
    """One AIS step of every chain to the parameters ``(w, wt, a, c)``: add ``F_old(v) - F_new(v)``
    to the log-weight (the old free energy from ``fh_old`` and ``lin_old``), then, when ``sample``,
    one Gibbs sweep at the new parameters (draws ``start + j`` for hidden unit j and
    ``start + n_hidden + i`` for visible unit i of each chain's stream) and the old-side fields of
    the next step (the new parameters at the new state) into ``fh_old`` and ``lin_old``."""
    n_hidden = c.shape[0]
    dt = w.dtype
    one = dt.type(1.0)
    zero = dt.type(0.0)
    for ch in prange(v.shape[0]):
        vc = v[ch]
        key = keys[ch]
        fn = fh_new[ch]
        fo = fh_old[ch]
        h = hc[ch]
        hidden_field(vc, w, c, fn)
        inc = _dot(a, vc) - lin_old[ch]
        prod = 1.0
        for j in range(n_hidden):
            x = np.float64(fn[j])
            y = np.float64(fo[j])
            ex = math.exp(-abs(x))
            inc += max(x, 0.0) - max(y, 0.0)
            prod *= (1.0 + ex) / (1.0 + math.exp(-abs(y)))
            if (j + 1) % _PRODUCT_CHUNK == 0:
                inc += math.log(prod)
                prod = 1.0
            if sample:
                p = 1.0 / (1.0 + ex) if x >= 0 else ex / (1.0 + ex)
                u = np.float64(uniform32(key, start + np.uint64(j))) if single else uniform64(key, start + np.uint64(j))
                h[j] = one if u < p else zero
        log_w[ch] += inc + math.log(prod)
        if sample:
            visible_half_sweep(vc, h, wt, a, a, one, key, start + np.uint64(n_hidden), fv[ch], single)
            hidden_field(vc, w, c, fo)
            lin_old[ch] = _dot(a, vc)


def path_kernel(v, log_w, ends, lambdas, keys, step0: int, transition_last: bool, buffers=None):
    """Advance AIS chains along one straight segment ``theta(lambdas[0]) -> ... -> theta(lambdas[-1])``.

    ``ends`` is ``(w_a, wt_a, a_a, c_a, w_b, wt_b, a_b, c_b)``: the segment's end points, weights in
    both orientations with padded rows (:func:`padded_weights`), all in one float dtype. Step ``t``
    (1-based within the call) draws from stream indices ``(step0 + t - 1) * (n_hidden + n_visible) + u``,
    as :func:`ais_kernel` does, so splitting a path into calls changes nothing. ``v`` and ``log_w``
    are updated in place; ``buffers`` (optional) is scratch space reused between calls.
    """
    w_a, wt_a, a_a, c_a, w_b, wt_b, a_b, c_b = ends
    dt = w_a.dtype
    n_chains, n_visible = v.shape
    n_hidden = c_a.shape[0]
    if buffers is None:
        buffers = _buffers(n_chains, n_visible, n_hidden, w_a.shape[1], wt_a.shape[1], dt)
    w, wt, a, c, fh_old, lin_old, fh_new, hc, fv = buffers
    stride = n_visible + n_hidden
    _interpolate(w_a, w_b, wt_a, wt_b, a_a, a_b, c_a, c_b, dt.type(lambdas[0]), w, wt, a, c)
    _fields(v, w, c, a, fh_old, lin_old)
    m = len(lambdas) - 1
    for t in range(1, m + 1):
        _interpolate(w_a, w_b, wt_a, wt_b, a_a, a_b, c_a, c_b, dt.type(lambdas[t]), w, wt, a, c)
        _step(v, log_w, w, wt, a, c, fh_old, lin_old, fh_new, hc, fv, keys, np.uint64((step0 + t - 1) * stride),
              t < m or transition_last, dt == np.float32)


def _buffers(n_chains, n_visible, n_hidden, w_cols, wt_cols, dt):
    return (np.zeros((n_visible, w_cols), dt), np.zeros((n_hidden, wt_cols), dt), np.empty(n_visible, dt),
            np.empty(n_hidden, dt), np.empty((n_chains, n_hidden), dt), np.empty(n_chains),
            np.empty((n_chains, n_hidden), dt), np.empty((n_chains, n_hidden), dt),
            np.empty((n_chains, n_visible), dt))


def _node(m: RBM, dt) -> tuple:
    """A model's point on the path: effective weights ``W * mask``, visible and hidden biases, in ``dt``."""
    return (m.weights * m.mask).astype(dt), m.visible_bias.astype(dt), m.hidden_bias.astype(dt)


def _padded_node(node: tuple) -> tuple:
    """``node`` as :func:`path_kernel` takes an end point: padded weights in both orientations, then biases."""
    w, a, c = node
    return (*padded_weights(RBM(w, a, c)), a, c)


def _path_length(x: tuple, y: tuple) -> float:
    return math.sqrt(sum(float(np.sum((np.asarray(q, np.float64) - np.asarray(p, np.float64)) ** 2))
                         for p, q in zip(x, y)))


def segment_steps(lengths, n_steps: int) -> np.ndarray:
    """Split ``n_steps`` over segments in proportion to ``lengths``, at least one step each
    (largest remainders; segments of length 0 get one step)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    n = lengths.size
    if n_steps < n:
        raise ValueError(f"n_steps must be at least the number of segments ({n}), got {n_steps}")
    total = lengths.sum()
    if total == 0:
        share = np.full(n, (n_steps - n) / n)
    else:
        share = lengths / total * (n_steps - n)
    steps = np.floor(share).astype(np.int64)
    left = n_steps - n - int(steps.sum())
    steps[np.argsort(-(share - steps), kind="stable")[:left]] += 1
    return steps + 1


def path_log_partition(
    models: Sequence[RBM],
    *,
    n_chains: int,
    n_steps: int | None = None,
    steps=None,
    data=None,
    seed: int,
    n_bootstrap: int = 1000,
    progress: bool | None = None,
) -> xr.Dataset:
    """Estimate log Z of the last of ``models`` by AIS through all of them, the base-rate model first.

    A path through the models saved along the RBM's training run (Béreux, Decelle, Furtlehner,
    Rosset & Seoane 2025 estimate RBM log-likelihoods this way) meets the model's modes as training
    grew them, instead of at the sharp transition that the temperature path (:func:`log_partition`)
    crosses on RBMs trained on clustered data. It is no shortcut in general: what sets the AIS
    bias is the path's length in the model's own metric, and a noisy run wanders. On a dense 784 x 500
    RBM trained on 10,000 binarised MNIST images (PCD-10, learning rate 0.05, batches of 100, 200
    epochs; 100 chains) the path through 140 log-spaced models of its run gave log Z 346 and 395 at
    10,000 and 20,000 steps, through 26 of them 660.5 and 662.3, and the temperature path (linear
    betas) 668.8 and 669.6: the more of the trajectory, the farther from converged. Check a path by
    doubling ``n_steps``.

    The path: the base-rate model ``theta_0`` (visible biases ``a0``, no weights, hidden units
    uniform; ``log Z_0 = sum_i softplus(a0_i) + n_hidden log 2``), then the given models
    ``theta_1 .. theta_S`` (weights times mask, visible and hidden biases), joined by straight lines
    in parameter space: ``theta(lam) = (1 - lam) theta_s + lam theta_{s+1}``. Any such path gives
    an unbiased estimate of ``Z_S / Z_0`` (Neal 2001). The straight line from the base to the RBM
    alone is temperature AIS with linear steps in beta, and with the same seed it draws the same
    numbers as :func:`log_partition`'s forward run on those betas. A chain draws ``v ~ p_0`` and at
    each step multiplies its weight by ``exp(F_old(v) - F_new(v))`` (free energies with the hidden
    units summed out), then makes one Gibbs sweep at the new parameters.

    The steps of a segment are spread evenly in ``lam``. The segments share ``n_steps`` in
    proportion to the length of their parameter change, ``sqrt(|dW|^2 + |da|^2 + |db|^2)``, at
    least one step each (for small steps the variance of a log-weight increment grows as the square
    of the parameter change, so this allocation equalises the per-step changes); or ``steps``
    gives them.

    Parameters
    ----------
    models : sequence of RBM
        The path after the base-rate model, ending at the RBM whose log Z is wanted: typically the
        models saved along its training run, earliest first (:func:`dilution.training.train` with
        ``callbacks`` can keep them). All of one shape and dtype; their effective weights
        (``weights * mask``) are interpolated, so masks may differ between them.
    n_chains : int
        Independent AIS runs (>= 2, for a standard error).
    n_steps : int, optional
        Total steps, shared between the segments in proportion to their parameter change.
    steps : array_like of int, optional
        Steps per segment instead (``len(models)`` entries, each >= 1: base to ``models[0]``, then
        between consecutive models). Give exactly one of ``n_steps`` and ``steps``.
    data : array_like, shape (n, n_visible), optional
        Binary data for the base rates (:func:`base_rate_bias`); default uniform.
    seed : int
        Fixes every draw: same seed, same log-weights, whatever the number of threads.
    n_bootstrap : int
        Bootstrap resamples for ``log_z_bootstrap_std``.
    progress : bool, optional
        Progress bar; default when the run is long and stderr is a terminal.

    Returns
    -------
    xarray.Dataset
        ``log_z`` (a stochastic lower bound, as forward AIS), ``log_z_std`` (delta method),
        ``log_z_bootstrap_std``, ``ess``, ``log_z_base``; per chain ``log_weights``; per segment
        ``steps`` and ``segment_length``; ``segment_log_ratio``, the running estimate of
        ``log Z`` at the end of each segment minus ``log Z_0``, an AIS estimate of that model's
        ``log(Z_s / Z_0)`` in its own right (where along the path the estimate moves), with its
        ``segment_log_ratio_std``.

    Warns
    -----
    DegenerateWeightsWarning
        When the effective sample size is below ``LOW_ESS_FRACTION * n_chains``.
    """
    models = list(models) if not isinstance(models, RBM) else [models]
    if not models:
        raise ValueError("models must hold at least one RBM (the path's end)")
    for i, m in enumerate(models):
        if not isinstance(m, RBM):
            raise TypeError(f"models[{i}] must be a dilution.RBM, got {type(m).__name__}")
    last = models[-1]
    for i, m in enumerate(models):
        if (m.n_visible, m.n_hidden) != (last.n_visible, last.n_hidden) or m.dtype != last.dtype:
            raise ValueError(f"models[{i}] is {m.n_visible} x {m.n_hidden} {m.dtype.name}, the last model "
                             f"{last.n_visible} x {last.n_hidden} {last.dtype.name}: a path needs one shape and dtype")
    check_int("n_chains", n_chains, low=2)
    check_int("n_bootstrap", n_bootstrap, low=0)
    dt = last.dtype
    a0 = base_rate_bias(data, last.n_visible).astype(dt)
    log_z_base = _log_z_base(a0, last.n_hidden)
    base = (np.zeros((last.n_visible, last.n_hidden), dt), a0, np.zeros(last.n_hidden, dt))
    # one model's parameters at a time: a run's few hundred 784 x 500 snapshots are held once, by the caller
    lengths = np.empty(len(models))
    previous = base
    for s, m in enumerate(models):
        current = _node(m, dt)
        lengths[s] = _path_length(previous, current)
        previous = current
    if (n_steps is None) == (steps is None):
        raise ValueError("give exactly one of n_steps (a total shared by parameter change) and steps (per segment)")
    if steps is None:
        per_segment = segment_steps(lengths, check_int("n_steps", n_steps, low=1))
    else:
        per_segment = np.asarray(steps)
        if per_segment.shape != (len(models),) or per_segment.dtype.kind not in "iu" or np.any(per_segment < 1):
            raise ValueError(f"steps must be {len(models)} integers >= 1 (one per segment: base to models[0], then "
                             f"between consecutive models), got {steps!r}")
        per_segment = per_segment.astype(np.int64)
    total = int(per_segment.sum())

    rng = np.random.default_rng(derive_seed(seed, "ais-init"))
    p0 = 1.0 / (1.0 + np.exp(-a0.astype(np.float64)))
    v = (rng.random((n_chains, last.n_visible)) < p0).astype(dt)
    # the streams of log_partition's forward run: a one-model path is its run on linear betas
    keys = chain_keys(derive_seed(seed, "ais-forward"), n_chains)
    log_w = np.zeros(n_chains)
    start = _padded_node(base)
    buffers = _buffers(n_chains, last.n_visible, last.n_hidden, start[0].shape[1], start[1].shape[1], dt)
    work = n_chains * (last.n_visible + 2 * last.n_hidden) * last.n_hidden  # per step, as WORK_PER_SECOND counts
    chunk = max(1, int(WORK_PER_SECOND // max(work, 1)))
    segment_log_ratio = np.empty(len(models))
    segment_std = np.empty(len(models))
    step = 1
    with progress_bar(total, "AIS along the path", enabled=progress,
                      expected_seconds=work * total / WORK_PER_SECOND) as bar:
        for s, k in enumerate(per_segment):
            end = _padded_node(_node(models[s], dt))
            (w_a, wt_a, a_a, c_a), (w_b, wt_b, a_b, c_b) = start, end
            lam = np.linspace(0.0, 1.0, int(k) + 1)
            for lo in range(0, int(k), chunk):
                hi = min(int(k), lo + chunk)
                final = s == len(models) - 1 and hi == k
                path_kernel(v, log_w, (w_a, wt_a, a_a, c_a, w_b, wt_b, a_b, c_b), lam[lo : hi + 1], keys,
                            step + lo, not final, buffers)
                bar.update(hi - lo)
                interrupt.check()
            step += int(k)
            start = end
            running = weight_summary(log_w, n_bootstrap=0)
            segment_log_ratio[s], segment_std[s] = running["log_mean"], running["std"]
    summary = weight_summary(log_w, n_bootstrap=n_bootstrap, seed=seed)
    _warn_if_degenerate(summary["ess"], n_chains, "forward")
    nats = "nats"
    ds = xr.Dataset(
        {
            "log_z": _var(log_z_base + summary["log_mean"], "AIS estimate of log Z along the path (stochastic lower "
                          "bound)", nats),
            "log_z_std": _var(summary["std"], "standard error of log_z (delta method)", nats),
            "log_z_bootstrap_std": _var(summary["bootstrap_std"], "standard error of log_z (bootstrap over chains)",
                                        nats),
            "ess": _var(summary["ess"], "effective sample size of the weights, (sum w)^2 / sum w^2", "1"),
            "log_z_base": _var(log_z_base, "log Z of the base-rate model", nats),
            "log_weights": _var(log_w, "log importance weights, log(Z / Z_base) per chain", nats, "chain"),
            "steps": _var(per_segment, "AIS steps of the segment (base to models[0], then between models)", "1",
                          "segment"),
            "segment_length": _var(lengths, "parameter change of the segment, sqrt(|dW|^2 + |da|^2 + |db|^2)", "1",
                                   "segment"),
            "segment_log_ratio": _var(segment_log_ratio, "running estimate of log(Z / Z_base) at the segment's end",
                                      nats, "segment"),
            "segment_log_ratio_std": _var(segment_std, "standard error of segment_log_ratio (delta method)", nats,
                                          "segment"),
        },
        coords={"chain": _var(np.arange(n_chains), "AIS chain index", "1", "chain"),
                "segment": _var(np.arange(len(models)), "segment index (ends at models[segment])", "1", "segment")},
    )
    ds.attrs.update(provenance(
        method="annealed importance sampling along a path of models (Neal 2001; training-trajectory path as in "
               "Béreux et al. 2025)",
        n_chains=int(n_chains), n_models=len(models), n_steps=total, seed=int(seed),
        base="base rates fitted to data" if data is not None else "uniform", dtype=dt.name,
        n_visible=last.n_visible, n_hidden=last.n_hidden, connectivity=last.connectivity))
    return ds
