"""Parallel tempering (replica exchange) for masked RBMs.

Each of ``n_chains`` independent tempering systems holds one replica per inverse temperature of a
ladder ``beta_0 < ... < beta_{T-1} = 1``. Replica ``k`` samples

    p_k(v, h)  proportional to  exp( -beta_k E(v, h) + (1 - beta_k) a0.v )

(``a0 = 0`` by default: plain ``exp(-beta E)``). A sweep is one block-Gibbs update of every replica
followed by exchange attempts between neighbouring temperatures, on even pairs ``(0,1), (2,3),
...`` after even sweeps and odd pairs after odd ones (the deterministic even-odd scheme, which
moves replicas along the ladder faster than random pair choice; Okabe et al. 2001, Syed et al.
2022). Swapping the visible states ``v_k`` and ``v_{k+1}`` is accepted with probability

    min(1, exp( F_k(v_k) + F_{k+1}(v_{k+1}) - F_k(v_{k+1}) - F_{k+1}(v_k) ))

with ``F_k`` the free energy at ``beta_k`` with the hidden layer summed out
(:func:`dilution.conditionals.free_energy`), so each tempering system leaves the product of the
``p_k(v)`` invariant (Swendsen & Wang 1986; Hukushima & Nemoto 1996; Desjardins et al. 2010 for
RBMs). Every draw comes from the system's own counter-based stream, so results do not depend on
the number of threads.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import xarray as xr
from numba import njit, prange

from .ais import padded_weights
from .conditionals import hidden_field, sigmoid, softplus, visible_half_sweep
from .model import RBM
from .progress import progress_bar
from .rng import chain_keys, derive_seed, uniform32, uniform64
from .schedules import check_ladder, geometric_ladder
from .validation import check_binary

__all__ = ["sample", "TemperingResult", "tempering_kernel", "adapt_ladder", "draws_per_sweep"]

_HOT, _COLD = np.int8(-1), np.int8(1)


class TemperingResult(NamedTuple):
    """Output of :func:`sample`.

    samples : ndarray, shape (n_draws, n_chains, n_visible)
        Visible states of the beta = 1 replica, one draw every ``thin`` sweeps after burn-in.
    replicas : ndarray, shape (n_chains, n_temps, n_visible)
        Final visible state of every replica (hottest first), to continue a run with ``init``.
    diagnostics : xarray.Dataset
        ``betas`` (final ladder), ``swap_acceptance`` per pair (and per chain), ``round_trips``
        per chain and ``round_trip_time`` (mean sweeps per hot -> cold -> hot trip), all counted
        after burn-in.
    """

    samples: np.ndarray
    replicas: np.ndarray
    diagnostics: xr.Dataset


def draws_per_sweep(n_visible: int, n_hidden: int, n_temps: int) -> int:
    """Random numbers one tempering system consumes per sweep (Gibbs updates, then swaps)."""
    return n_temps * (n_visible + n_hidden) + n_temps


@njit(inline="always", cache=True)
def _free_energy(beta, lin_a, lin_a0, fh):
    """F_beta(v) from the hidden field of v and the linear terms a.v, a0.v."""
    acc = beta * lin_a + (1.0 - beta) * lin_a0
    for j in range(fh.shape[0]):
        acc += softplus(beta * np.float64(fh[j]))
    return -acc


@njit(inline="always", cache=True)
def _linear_terms(vc, visible_bias, base_bias):
    la = 0.0
    l0 = 0.0
    for i in range(vc.shape[0]):
        if vc[i] != 0:
            la += visible_bias[i]
            l0 += base_bias[i]
    return la, l0


@njit(parallel=True, cache=True)
def tempering_kernel(
    v, betas, weights, weights_t, visible_bias, hidden_bias, base_bias, keys, sweep0, n_sweeps, thin,
    walker, last_end, trip_start, single,
):
    """Run ``n_sweeps`` tempering sweeps (Gibbs updates of all replicas, then even-odd swaps).

    Parameters
    ----------
    v : ndarray, shape (n_chains, n_temps, n_visible)
        Replica states, hottest first; not modified.
    betas : ndarray of float64, shape (n_temps,)
    weights : ndarray, shape (n_visible, >= n_hidden)
    weights_t : ndarray, shape (n_hidden, >= n_visible)
        The weights and their transpose, C-contiguous; rows may be padded
        (:func:`dilution.ais.padded_weights`).
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    base_bias : ndarray, shape (n_visible,)
        Base-rate bias ``a0`` weighted by ``1 - beta``.
    keys : ndarray of uint64, shape (n_chains,)
    sweep0 : int
        Global index of the first sweep: sweep ``g`` uses stream indices ``g * draws_per_sweep + u``
        and swaps pairs of parity ``g % 2``.
    n_sweeps, thin : int
        The beta = 1 replica is recorded after every ``thin``-th sweep of this call.
    walker : ndarray of int64, shape (n_chains, n_temps)
        Which walker (replica label) sits at each temperature; not modified.
    last_end : ndarray of int8, shape (n_chains, n_temps)
        Per walker: -1 if it last touched the hottest end, +1 the coldest, 0 neither yet.
    trip_start : ndarray of int64, shape (n_chains, n_temps)
        Per walker: sweep at which its current round trip began.
    single : bool
        Draw 24-bit uniforms (float32 models).

    Returns
    -------
    v_out, walker_out, last_end_out, trip_start_out : ndarray
        Updated copies of the inputs.
    samples : ndarray, shape (n_sweeps // thin, n_chains, n_visible)
    accepts : ndarray of int64, shape (n_chains, n_temps - 1)
        Accepted swaps per pair in this call (attempts: every other sweep per pair).
    trips : ndarray of int64, shape (n_chains,)
        Round trips (hot -> cold -> hot) completed in this call.
    trip_sweeps : ndarray of int64, shape (n_chains,)
        Total length in sweeps of those round trips.
    """
    n_chains, n_temps, n_visible = v.shape
    n_hidden = hidden_bias.shape[0]
    dt = weights.dtype
    one = dt.type(1.0)
    zero = dt.type(0.0)
    stride = np.uint64(n_temps * (n_visible + n_hidden) + n_temps)
    unit_stride = n_visible + n_hidden
    n_rec = n_sweeps // thin
    v_out = v.copy()
    walker_out = walker.copy()
    last_end_out = last_end.copy()
    trip_start_out = trip_start.copy()
    samples = np.empty((n_rec, n_chains, n_visible), dtype=dt)
    accepts = np.zeros((n_chains, max(n_temps - 1, 0)), dtype=np.int64)
    trips = np.zeros(n_chains, dtype=np.int64)
    trip_sweeps = np.zeros(n_chains, dtype=np.int64)
    for c in prange(n_chains):
        key = keys[c]
        vs = v_out[c]
        wk = walker_out[c]
        le = last_end_out[c]
        ts = trip_start_out[c]
        fh = np.empty((n_temps, n_hidden), dtype=dt)
        lin_a = np.empty(n_temps)
        lin_0 = np.empty(n_temps)
        hc = np.empty(n_hidden, dtype=dt)
        fv = np.empty(n_visible, dtype=dt)
        tmp_v = np.empty(n_visible, dtype=dt)
        tmp_f = np.empty(n_hidden, dtype=dt)
        for k in range(n_temps):
            hidden_field(vs[k], weights, hidden_bias, fh[k])
            lin_a[k], lin_0[k] = _linear_terms(vs[k], visible_bias, base_bias)
        for s in range(n_sweeps):
            g = sweep0 + s
            base = np.uint64(g) * stride
            for k in range(n_temps):
                b = betas[k]
                bt = dt.type(b)
                start = base + np.uint64(k * unit_stride)
                for j in range(n_hidden):
                    p = sigmoid(b * np.float64(fh[k, j]))
                    if single:
                        u = np.float64(uniform32(key, start + np.uint64(j)))
                    else:
                        u = uniform64(key, start + np.uint64(j))
                    hc[j] = one if u < p else zero
                visible_half_sweep(vs[k], hc, weights_t, visible_bias, base_bias, bt, key,
                                   start + np.uint64(n_hidden), fv, single)
                hidden_field(vs[k], weights, hidden_bias, fh[k])
                lin_a[k], lin_0[k] = _linear_terms(vs[k], visible_bias, base_bias)
            swap_base = base + np.uint64(n_temps * unit_stride)
            for k in range(g % 2, n_temps - 1, 2):
                b1 = betas[k]
                b2 = betas[k + 1]
                log_acc = (
                    _free_energy(b1, lin_a[k], lin_0[k], fh[k])
                    + _free_energy(b2, lin_a[k + 1], lin_0[k + 1], fh[k + 1])
                    - _free_energy(b1, lin_a[k + 1], lin_0[k + 1], fh[k + 1])
                    - _free_energy(b2, lin_a[k], lin_0[k], fh[k])
                )
                u = uniform64(key, swap_base + np.uint64(k))
                if log_acc >= 0.0 or u < math.exp(log_acc):
                    accepts[c, k] += 1
                    tmp_v[:] = vs[k]
                    vs[k] = vs[k + 1]
                    vs[k + 1] = tmp_v
                    tmp_f[:] = fh[k]
                    fh[k] = fh[k + 1]
                    fh[k + 1] = tmp_f
                    lin_a[k], lin_a[k + 1] = lin_a[k + 1], lin_a[k]
                    lin_0[k], lin_0[k + 1] = lin_0[k + 1], lin_0[k]
                    wk[k], wk[k + 1] = wk[k + 1], wk[k]
            if n_temps > 1:
                hot = wk[0]
                if le[hot] == _COLD:
                    trips[c] += 1
                    trip_sweeps[c] += g + 1 - ts[hot]
                if le[hot] != _HOT:
                    ts[hot] = g + 1
                    le[hot] = _HOT
                cold = wk[n_temps - 1]
                if le[cold] == _HOT:
                    le[cold] = _COLD
            if (s + 1) % thin == 0:
                samples[(s + 1) // thin - 1, c] = vs[n_temps - 1]
    return v_out, walker_out, last_end_out, trip_start_out, samples, accepts, trips, trip_sweeps


def adapt_ladder(
    betas: np.ndarray, acceptance: np.ndarray, target: float, *, rate: float = 1.0, beta_floor: float = 1e-3
) -> np.ndarray:
    """Move a ladder toward a target swap rate on every pair, keeping beta = 1 at the top.

    The log-gap of each pair grows when its acceptance is above ``target`` and shrinks when
    below: ``log(beta_{k+1}/beta_k) *= exp(rate (A_k - target))``; the hottest beta then floats
    (never below ``beta_floor``).

    Parameters
    ----------
    betas : ndarray, shape (n_temps,)
    acceptance : ndarray, shape (n_temps - 1,)

    Returns
    -------
    ndarray of float64, shape (n_temps,)
    """
    log_b = np.log(np.maximum(betas, beta_floor))
    gaps = np.diff(log_b) * np.exp(rate * (np.asarray(acceptance) - target))
    log_b = -np.concatenate([np.cumsum(gaps[::-1])[::-1], [0.0]])
    log_b = np.maximum(log_b, np.log(beta_floor))
    new = np.exp(log_b)
    new[-1] = 1.0
    # Keep the ladder strictly increasing even where the floor squeezed it.
    for k in range(new.size - 2, -1, -1):
        new[k] = min(new[k], new[k + 1] * (1 - 1e-9))
    return new


def _int(name: str, value, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def sample(
    rbm: RBM,
    n_chains: int,
    n_sweeps: int,
    *,
    betas=None,
    n_temps: int = 10,
    beta_min: float = 0.1,
    seed: int,
    burn_in: int = 0,
    thin: int | None = None,
    adapt: bool = False,
    target_swap_rate: float = 0.3,
    base_bias=None,
    init=None,
    progress: bool | None = None,
) -> TemperingResult:
    """Sample an RBM by parallel tempering; return the beta = 1 replica and diagnostics.

    Parameters
    ----------
    rbm : RBM
    n_chains : int
        Independent tempering systems (each with one replica per temperature).
    n_sweeps : int
        Sweeps after burn-in.
    betas : array_like, shape (n_temps,), optional
        Ladder, strictly increasing, ending at 1; default ``geometric_ladder(n_temps, beta_min)``.
    seed : int
        Fixes the initial states and every draw; results do not depend on the thread count.
    burn_in : int
        Sweeps run (and, with ``adapt``, used to tune the ladder) before recording.
    thin : int, optional
        Record the beta = 1 replica every ``thin`` sweeps; default ``n_sweeps`` (the final state only).
    adapt : bool
        During burn-in, move the ladder toward ``target_swap_rate`` on every pair
        (:func:`adapt_ladder`, in 20 rounds); the ladder is then frozen, so the recorded part is an
        ordinary Markov chain.
    base_bias : array_like, shape (n_visible,), optional
        Base measure ``a0`` of the tempered family; default 0 (plain ``exp(-beta E)``).
    init : array_like, shape (n_chains, n_temps, n_visible), optional
        Initial replica states (e.g. ``replicas`` of a previous run); default uniform random.
    progress : bool, optional

    Returns
    -------
    TemperingResult
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    n_chains = _int("n_chains", n_chains, 1)
    n_sweeps = _int("n_sweeps", n_sweeps, 1)
    burn_in = _int("burn_in", burn_in, 0)
    thin = n_sweeps if thin is None else _int("thin", thin, 1)
    if thin > n_sweeps:
        raise ValueError(f"thin must be <= n_sweeps ({n_sweeps}), got {thin}")
    ladder = geometric_ladder(n_temps, beta_min) if betas is None else check_ladder(betas)
    n_temps = ladder.size
    if adapt and not 0.0 < target_swap_rate < 1.0:
        raise ValueError(f"target_swap_rate must be in (0, 1), got {target_swap_rate!r}")
    if adapt and (n_temps < 2 or burn_in < 20):
        raise ValueError(f"adapt needs at least 2 temperatures and burn_in >= 20 sweeps, got {n_temps} and {burn_in}")
    dt = rbm.dtype
    n_v, n_h = rbm.n_visible, rbm.n_hidden
    if base_bias is None:
        a0 = np.zeros(n_v, dtype=dt)
    else:
        a0 = np.asarray(base_bias, dtype=np.float64)
        if a0.shape != (n_v,) or not np.all(np.isfinite(a0)):
            raise ValueError(f"base_bias must be a finite array of shape ({n_v},), got shape {a0.shape}")
        a0 = a0.astype(dt)
    if init is None:
        rng = np.random.default_rng(derive_seed(seed, "tempering-init"))
        v = (rng.random((n_chains, n_temps, n_v)) < 0.5).astype(dt)
    else:
        arr = np.asarray(init)
        if arr.shape != (n_chains, n_temps, n_v):
            want = (n_chains, n_temps, n_v)
            raise ValueError(f"init must have shape (n_chains, n_temps, n_visible) = {want}, got {arr.shape}")
        v = check_binary("init", arr.reshape(-1, n_v), n_v, dt).reshape(arr.shape)
    keys = chain_keys(derive_seed(seed, "tempering"), n_chains)
    w, w_t = padded_weights(rbm)
    single = dt == np.float32
    walker = np.tile(np.arange(n_temps, dtype=np.int64), (n_chains, 1))
    last_end = np.zeros((n_chains, n_temps), dtype=np.int8)
    trip_start = np.zeros((n_chains, n_temps), dtype=np.int64)

    total = burn_in + n_sweeps
    work = n_chains * n_temps * (n_v * n_h)
    chunk = max(1, int(1e9 // max(work, 1)))
    initial_ladder = ladder.copy()
    samples = np.empty((n_sweeps // thin, n_chains, n_v), dtype=dt)
    accepts = np.zeros((n_chains, max(n_temps - 1, 0)), dtype=np.int64)
    attempts = np.zeros(max(n_temps - 1, 0), dtype=np.int64)
    trips = np.zeros(n_chains, dtype=np.int64)
    trip_sweeps = np.zeros(n_chains, dtype=np.int64)
    done = 0
    with progress_bar(total, "tempering sweeps", enabled=progress, expected_seconds=work * total / 1e9) as bar:
        # Burn-in: rounds of equal length so the ladder can adapt between them.
        round_len = max(1, burn_in // 20) if adapt else max(1, min(chunk, burn_in))
        while done < burn_in:
            step = min(round_len, burn_in - done)
            v, walker, last_end, trip_start, _, acc, _, _ = tempering_kernel(
                v, ladder, w, w_t, rbm.visible_bias, rbm.hidden_bias, a0, keys, done, step, step,
                walker, last_end, trip_start, single,
            )
            if adapt:
                tried = _attempts(done, step, n_temps)
                ladder = adapt_ladder(ladder, acc.sum(axis=0) / np.maximum(tried * n_chains, 1), target_swap_rate)
            done += step
            bar.update(step)
        # Recording: chunks are multiples of thin so the records line up with the global sweeps.
        rec_chunk = max(thin, (chunk // thin) * thin)
        rec = 0
        while done < total:
            step = min(rec_chunk, total - done)
            v, walker, last_end, trip_start, smp, acc, tr, tsw = tempering_kernel(
                v, ladder, w, w_t, rbm.visible_bias, rbm.hidden_bias, a0, keys, done, step, thin,
                walker, last_end, trip_start, single,
            )
            samples[rec : rec + smp.shape[0]] = smp
            rec += smp.shape[0]
            accepts += acc
            attempts += _attempts(done, step, n_temps)
            trips += tr
            trip_sweeps += tsw
            done += step
            bar.update(step)

    per_chain = accepts / np.maximum(attempts, 1)
    n_trips = int(trips.sum())
    diagnostics = xr.Dataset(
        {
            "betas": (("temp",), ladder,
                      {"long_name": "inverse temperature used while recording (hottest first)", "units": "1"}),
            "initial_betas": (("temp",), initial_ladder,
                              {"long_name": "inverse temperature before adaptation", "units": "1"}),
            "swap_acceptance": (
                ("pair",),
                accepts.sum(axis=0) / np.maximum(attempts * n_chains, 1),
                {"long_name": "fraction of accepted exchanges between temperatures pair and pair + 1", "units": "1"},
            ),
            "swap_acceptance_per_chain": (
                ("chain", "pair"),
                per_chain,
                {"long_name": "fraction of accepted exchanges per tempering system", "units": "1"},
            ),
            "round_trips": (("chain",), trips,
                            {"long_name": "completed hot -> cold -> hot trips of walkers", "units": "1"}),
            "round_trip_time": (
                (),
                trip_sweeps.sum() / n_trips if n_trips else math.nan,
                {"long_name": "mean length of a completed round trip", "units": "sweeps"},
            ),
        },
        coords={
            "temp": ("temp", np.arange(n_temps), {"long_name": "temperature index, hottest first", "units": "1"}),
            "pair": ("pair", np.arange(max(n_temps - 1, 0)),
                     {"long_name": "index k of the temperature pair (k, k + 1)", "units": "1"}),
            "chain": ("chain", np.arange(n_chains), {"long_name": "tempering system index", "units": "1"}),
        },
        attrs={
            "method": "parallel tempering, deterministic even-odd swaps",
            "n_sweeps": n_sweeps,
            "burn_in": burn_in,
            "thin": thin,
            "seed": int(seed),
            "adapted": int(bool(adapt)),
            "target_swap_rate": float(target_swap_rate) if adapt else math.nan,
            "base_measure": "exp(-beta E)" if base_bias is None else "exp(-beta E + (1 - beta) a0.v)",
            "dtype": dt.name,
        },
    )
    return TemperingResult(samples, v, diagnostics)


def _attempts(sweep0: int, n_sweeps: int, n_temps: int) -> np.ndarray:
    """Swap attempts per pair over sweeps ``sweep0 .. sweep0 + n_sweeps - 1`` (pair k on sweeps of parity k % 2)."""
    k = np.arange(max(n_temps - 1, 0))
    g = np.arange(sweep0, sweep0 + n_sweeps)
    return ((g[None, :] % 2) == (k[:, None] % 2)).sum(axis=1)
