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

from . import interrupt
from .ais import padded_weights
from .conditionals import hidden_field, sigmoid, softplus, visible_half_sweep
from .model import RBM
from .progress import WORK_PER_SECOND, progress_bar
from .rng import chain_keys, derive_seed, uniform32, uniform64
from .schedules import check_ladder, geometric_ladder
from .validation import check_binary, check_int, check_real_array

__all__ = [
    "sample",
    "TemperingResult",
    "TemperingState",
    "TemperingStats",
    "init_state",
    "advance",
    "cold_visible",
    "tempering_kernel",
    "adapt_ladder",
    "draws_per_system_sweep",
]

_HOT, _COLD = np.int8(-1), np.int8(1)


class TemperingResult(NamedTuple):
    """Output of :func:`sample`.

    samples : ndarray, shape (n_draws, n_chains, n_visible)
        Visible states of the beta = 1 replica, one draw every ``thin`` sweeps after burn-in.
    replicas : ndarray, shape (n_chains, n_temps, n_visible)
        Final visible state of every replica (hottest first).
    diagnostics : xarray.Dataset
        ``betas`` (final ladder), ``swap_acceptance`` per pair (and per chain), ``round_trips``
        per chain and ``round_trip_time`` (mean sweeps per hot -> cold -> hot trip), all counted
        after burn-in, and the raw counts ``swap_accepts``, ``swap_attempts`` and
        ``round_trip_sweeps``, which add up over continued calls.
    state : TemperingState or None
        With ``return_state``: the final state, to continue the run exactly (``sample(...,
        state=result.state)`` or :func:`advance`); None otherwise.
    """

    samples: np.ndarray
    replicas: np.ndarray
    diagnostics: xr.Dataset
    state: TemperingState | None = None


def draws_per_system_sweep(n_visible: int, n_hidden: int, n_temps: int) -> int:
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
        Global index of the first sweep: sweep ``g`` uses stream indices ``g * draws_per_system_sweep + u``
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


def sample(
    rbm: RBM,
    n_chains: int,
    n_sweeps: int,
    *,
    betas=None,
    n_temps: int | None = None,
    beta_min: float | None = None,
    seed: int | None = None,
    burn_in: int = 0,
    thin: int | None = None,
    adapt: bool = False,
    target_swap_rate: float = 0.3,
    base_bias=None,
    init=None,
    progress: bool | None = None,
    state: TemperingState | None = None,
    return_state: bool = False,
) -> TemperingResult:
    """Sample an RBM by parallel tempering; return the beta = 1 replica and diagnostics.

    Parameters
    ----------
    rbm : RBM
    n_chains : int or None
        Independent tempering systems (each with one replica per temperature). May be None
        with ``state``.
    n_sweeps : int
        Sweeps after burn-in.
    betas : array_like, shape (n_temps,), optional
        Ladder, strictly increasing, ending at 1; default ``geometric_ladder(n_temps, beta_min)``
        with ``n_temps = 10`` and ``beta_min = 0.1`` unless given.
    seed : int
        Fixes the initial states and every draw; results do not depend on the thread count.
        Required unless ``state`` is given.
    burn_in : int
        Sweeps run (and, with ``adapt``, used to tune the ladder) before recording.
    thin : int, optional
        Record the beta = 1 replica every ``thin`` sweeps after burn-in; default ``n_sweeps``
        (the final state only).
    adapt : bool
        During burn-in, move the ladder toward ``target_swap_rate`` on every pair
        (:func:`adapt_ladder`, in 20 rounds); the ladder is then frozen, so the recorded part is an
        ordinary Markov chain.
    base_bias : array_like, shape (n_visible,), optional
        Base measure ``a0`` of the tempered family; default 0 (plain ``exp(-beta E)``).
    init : array_like, shape (n_chains, n_temps, n_visible), optional
        Initial replica states; default uniform random.
    progress : bool, optional
    state : TemperingState, optional
        Continue this run (from :func:`init_state`, :func:`advance` or ``result.state`` of a
        call with ``return_state``): its replicas, ladder, walkers, keys and sweep count, so
        that ``n`` sweeps and then ``m`` more equal ``n + m`` sweeps bit for bit (records
        concatenated, counts summed). Without burn-in and with an explicit ``thin``, records
        keep the spacing of the run continued (``state.record_from``); ``burn_in > 0`` or
        ``thin=None`` count ``thin`` afresh from the end of this call's burn-in. ``n_chains``,
        ``seed``, ``betas``, ``n_temps``, ``beta_min`` (the hottest beta), ``base_bias`` and
        ``init`` (the replicas) must then be omitted or agree with the state.
    return_state : bool
        Fill ``result.state`` with the final :class:`TemperingState`.

    Returns
    -------
    TemperingResult
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    continued = state is not None
    if not continued and (n_chains is None or seed is None):
        raise ValueError("sample needs n_chains and seed unless it continues a state (state=...)")
    if not continued:
        n_chains = check_int("n_chains", n_chains, 1)
    n_sweeps = check_int("n_sweeps", n_sweeps, 1)
    burn_in = check_int("burn_in", burn_in, 0)
    restart_thin = thin is None or burn_in > 0 or not continued
    thin = n_sweeps if thin is None else check_int("thin", thin, 1)
    if thin > n_sweeps:
        raise ValueError(f"thin must be <= n_sweeps ({n_sweeps}), got {thin}")
    if not isinstance(adapt, (bool, np.bool_)):
        raise TypeError(f"adapt must be True or False, got {adapt!r}")
    if continued:
        _check_continuation(rbm, state, n_chains=n_chains, seed=seed, betas=betas, n_temps=n_temps,
                            beta_min=beta_min, base_bias=base_bias, init=init)
    else:
        if betas is not None and (n_temps is not None or beta_min is not None):
            given = ", ".join(f"{k}={v!r}" for k, v in (("n_temps", n_temps), ("beta_min", beta_min)) if v is not None)
            raise ValueError(f"give a ladder (betas) or the geometric ladder's n_temps / beta_min, not both: got betas "
                             f"and {given}")
        state = init_state(rbm, n_chains, seed=seed, betas=betas, n_temps=10 if n_temps is None else n_temps,
                           beta_min=0.1 if beta_min is None else beta_min, base_bias=base_bias, init=init)
    n_chains, n_temps, _ = state.replicas.shape
    if adapt and not 0.0 < target_swap_rate < 1.0:
        raise ValueError(f"target_swap_rate must be in (0, 1), got {target_swap_rate!r}")
    if adapt and (n_temps < 2 or burn_in < 20):
        raise ValueError(f"adapt needs at least 2 temperatures and burn_in >= 20 sweeps, got {n_temps} and {burn_in}")
    dt = rbm.dtype
    weights = padded_weights(rbm)
    total = burn_in + n_sweeps
    work = _work(state)
    initial_ladder = state.betas
    expected = work * total / WORK_PER_SECOND
    with progress_bar(total, "tempering sweeps", enabled=progress, expected_seconds=expected) as bar:
        # Burn-in: rounds of equal length so the ladder can adapt between them.
        round_len = max(1, burn_in // 20) if adapt else max(1, burn_in)
        done = 0
        while done < burn_in:
            step = min(round_len, burn_in - done)
            state, seen = _run(rbm, state, step, None, weights, bar)
            if adapt:
                rate = seen.accepts.sum(axis=0) / np.maximum(seen.attempts * n_chains, 1)
                state = state._replace(betas=adapt_ladder(state.betas, rate, target_swap_rate))
            done += step
        if restart_thin:
            state = state._replace(record_from=state.sweeps)
        state, stats = _run(rbm, state, n_sweeps, thin, weights, bar)
    # The result's arrays must not alias the state's, which stays read-only by convention.
    ladder, v, samples = state.betas.copy(), state.replicas.copy(), stats.samples
    accepts, attempts = stats.accepts, stats.attempts
    trips, trip_sweeps = stats.round_trips, stats.round_trip_sweeps
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
            "swap_accepts": (("chain", "pair"), accepts,
                             {"long_name": "accepted exchanges per tempering system", "units": "1"}),
            "swap_attempts": (("pair",), attempts,
                              {"long_name": "exchange attempts per tempering system", "units": "1"}),
            "round_trip_sweeps": (("chain",), trip_sweeps,
                                  {"long_name": "total length of the completed round trips", "units": "sweeps"}),
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
            "seed": state.seed,
            "first_sweep": state.sweeps - n_sweeps,
            "adapted": int(bool(adapt)),
            "target_swap_rate": float(target_swap_rate) if adapt else math.nan,
            "base_measure": (
                "exp(-beta E)" if base_bias is None and not np.any(state.base_bias) else "exp(-beta E + (1 - beta) a0.v)"
            ),
            "dtype": dt.name,
        },
    )
    return TemperingResult(samples, v, diagnostics, state if return_state else None)


def _attempts(sweep0: int, n_sweeps: int, n_temps: int) -> np.ndarray:
    """Swap attempts per pair over sweeps ``sweep0 .. sweep0 + n_sweeps - 1`` (pair k on sweeps of parity k % 2)."""
    k = np.arange(max(n_temps - 1, 0))
    g = np.arange(sweep0, sweep0 + n_sweeps)
    return ((g[None, :] % 2) == (k[:, None] % 2)).sum(axis=1)


class TemperingState(NamedTuple):
    """Everything a tempering run needs to continue exactly where it stopped.

    replicas : ndarray, shape (n_chains, n_temps, n_visible), model dtype
        Visible state of every replica, hottest first.
    betas : ndarray of float64, shape (n_temps,)
        The ladder (hottest first, ends at 1).
    walker : ndarray of int64, shape (n_chains, n_temps)
        Which walker (replica label) sits at each temperature.
    last_end : ndarray of int8, shape (n_chains, n_temps)
        Per walker: -1 if it last touched the hottest end, +1 the coldest, 0 neither yet.
    trip_start : ndarray of int64, shape (n_chains, n_temps)
        Per walker: sweep at which its current round trip began.
    keys : ndarray of uint64, shape (n_chains,)
        The tempering systems' stream keys (:mod:`dilution.rng`).
    sweeps : int
        Global sweep index: sweep ``g`` uses draws ``g * draws_per_system_sweep + u`` and swaps pairs of
        parity ``g % 2``.
    base_bias : ndarray, shape (n_visible,), model dtype
        Base measure ``a0`` of the tempered family.
    n_hidden : int
        Hidden units of the models the state runs on (the draw indices depend on it).
    record_from : int
        Sweep from which ``thin`` is counted: :func:`advance` records the beta = 1 replica after
        the sweeps that bring ``sweeps - record_from`` to a multiple of ``thin``.
    seed : int
        The seed the state was made from (checked when :func:`sample` continues it).

    The arrays are never written by :func:`advance` or :func:`sample`; don't write them either.
    """

    replicas: np.ndarray
    betas: np.ndarray
    walker: np.ndarray
    last_end: np.ndarray
    trip_start: np.ndarray
    keys: np.ndarray
    sweeps: int
    base_bias: np.ndarray
    n_hidden: int
    record_from: int
    seed: int


class TemperingStats(NamedTuple):
    """What one :func:`advance` call saw; counts add up over consecutive calls.

    samples : ndarray, shape (n_records, n_chains, n_visible)
        The beta = 1 replica after each recorded sweep (none when ``thin`` is None).
    record_sweeps : ndarray of int64, shape (n_records,)
        ``sweeps`` of the state right after each record.
    accepts : ndarray of int64, shape (n_chains, n_temps - 1)
        Accepted swaps per system and pair.
    attempts : ndarray of int64, shape (n_temps - 1,)
        Swap attempts per pair (the same for every system: pair ``k`` on sweeps of parity ``k % 2``).
    round_trips : ndarray of int64, shape (n_chains,)
        Round trips (hot -> cold -> hot) completed, per system.
    round_trip_sweeps : ndarray of int64, shape (n_chains,)
        Total length in sweeps of those round trips (from where each began, possibly in an earlier call).
    """

    samples: np.ndarray
    record_sweeps: np.ndarray
    accepts: np.ndarray
    attempts: np.ndarray
    round_trips: np.ndarray
    round_trip_sweeps: np.ndarray


def init_state(
    rbm: RBM,
    n_chains: int,
    *,
    seed: int,
    betas=None,
    n_temps: int = 10,
    beta_min: float = 0.1,
    base_bias=None,
    init=None,
) -> TemperingState:
    """Start ``n_chains`` tempering systems for models shaped like ``rbm``.

    Parameters
    ----------
    rbm : RBM
        Fixes the dtype and layer sizes; any model of the same shapes and dtype can then
        :func:`advance` the state.
    n_chains : int
        Independent tempering systems (each with one replica per temperature).
    seed : int
        Fixes the initial states (when ``init`` is None) and every draw.
    betas : array_like, shape (n_temps,), optional
        Ladder, strictly increasing, ending at 1; default ``geometric_ladder(n_temps, beta_min)``.
    n_temps : int
    beta_min : float
    base_bias : array_like, shape (n_visible,), optional
        Base measure ``a0`` of the tempered family; default 0 (plain ``exp(-beta E)``).
    init : array_like, shape (n_chains, n_temps, n_visible), optional
        Initial replica states; default uniform random.

    Returns
    -------
    TemperingState
        At sweep 0, walker ``k`` at temperature ``k``, no end touched yet.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    n_chains = check_int("n_chains", n_chains, 1)
    ladder = geometric_ladder(n_temps, beta_min) if betas is None else check_ladder(betas)
    n_temps = ladder.size
    dt = rbm.dtype
    n_v = rbm.n_visible
    if base_bias is None:
        a0 = np.zeros(n_v, dtype=dt)
    else:
        a0 = check_real_array("base_bias", base_bias)
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
    walker = np.tile(np.arange(n_temps, dtype=np.int64), (n_chains, 1))
    last_end = np.zeros((n_chains, n_temps), dtype=np.int8)
    trip_start = np.zeros((n_chains, n_temps), dtype=np.int64)
    return TemperingState(v, ladder, walker, last_end, trip_start, keys, 0, a0, rbm.n_hidden, 0, int(seed))


def advance(
    rbm: RBM, state: TemperingState, n_sweeps: int, *, thin: int | None = None, progress: bool | None = None
) -> tuple[TemperingState, TemperingStats]:
    """Run ``n_sweeps`` more tempering sweeps of ``state`` on ``rbm``, with its ladder held fixed.

    Pure: ``state`` is not modified. Draws, swap parities and records depend only on the keys
    and the global sweep index, so ``advance(advance(st, n), m)`` equals ``advance(st, n + m)``
    bit for bit (records concatenated, counts summed); ``rbm`` may differ between calls (e.g.
    between training updates) as long as its layer sizes and dtype match the state.

    Parameters
    ----------
    rbm : RBM
    state : TemperingState
    n_sweeps : int
    thin : int, optional
        Record the beta = 1 replica after every sweep that brings ``sweeps - state.record_from``
        to a multiple of ``thin``. None records nothing: read the final one with
        :func:`cold_visible`.
    progress : bool, optional
        Show a progress bar; default: when the run is long and stderr is a terminal.

    Returns
    -------
    state : TemperingState
        New arrays; ``sweeps`` advanced by ``n_sweeps``.
    stats : TemperingStats
        Records and counts of these sweeps.

    Raises
    ------
    ValueError
        If the state does not fit the model (layer sizes, dtype) or is malformed.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    _check_state(rbm, state)
    n_sweeps = check_int("n_sweeps", n_sweeps, 0)
    thin = None if thin is None else check_int("thin", thin, 1)
    work = _work(state)
    expected = work * n_sweeps / WORK_PER_SECOND
    with progress_bar(n_sweeps, "tempering sweeps", enabled=progress, expected_seconds=expected) as bar:
        return _run(rbm, state, n_sweeps, thin, padded_weights(rbm), bar)


def cold_visible(state: TemperingState) -> np.ndarray:
    """The beta = 1 replica's visible states, shape (n_chains, n_visible) (a copy)."""
    return np.ascontiguousarray(state.replicas[:, -1])


def _work(state: TemperingState) -> int:
    """Work per sweep as :data:`dilution.progress.WORK_PER_SECOND` counts it (a replica sweep is a
    chain sweep), for progress estimates and chunk sizes."""
    n_chains, n_temps, n_v = state.replicas.shape
    return n_chains * n_temps * (n_v + state.n_hidden) * state.n_hidden


_CHUNK_WORK = WORK_PER_SECOND  # work per kernel call (about a second): the progress bar's step


def _run(rbm: RBM, state: TemperingState, n_sweeps: int, thin: int | None, weights, bar):
    """:func:`advance` on checked arguments, with the padded weights and a progress bar."""
    n_chains, n_temps, n_v = state.replicas.shape
    w, w_t = weights
    single = rbm.dtype == np.float32
    # Chunks keep the progress bar alive; the draws depend on the global sweep, not on chunking.
    chunk = max(1, int(_CHUNK_WORK // max(_work(state), 1)))
    v, walker, last_end, trip_start = state.replicas, state.walker, state.last_end, state.trip_start
    records, record_sweeps = [], []
    accepts = np.zeros((n_chains, max(n_temps - 1, 0)), dtype=np.int64)
    trips = np.zeros(n_chains, dtype=np.int64)
    trip_sweeps = np.zeros(n_chains, dtype=np.int64)
    g, end = state.sweeps, state.sweeps + n_sweeps
    while g < end:
        if thin is None:
            step = min(chunk, end - g)
            every = step + 1  # records nothing
        else:
            # The kernel records after every `every`-th sweep of the call: start each call on a
            # record boundary (a short first call reaches it when the previous stopped between two).
            to_next = thin - (g - state.record_from) % thin
            every = to_next if to_next < thin else thin
            step = min(every if to_next < thin else max(thin, chunk // thin * thin), end - g)
        v, walker, last_end, trip_start, smp, acc, tr, tsw = tempering_kernel(
            v, state.betas, w, w_t, rbm.visible_bias, rbm.hidden_bias, state.base_bias, state.keys, g, step, every,
            walker, last_end, trip_start, single,
        )
        records.append(smp)
        record_sweeps.append(g + every * np.arange(1, smp.shape[0] + 1, dtype=np.int64))
        accepts += acc
        trips += tr
        trip_sweeps += tsw
        g += step
        bar.update(step)
        interrupt.check()
    if not n_sweeps:
        v, walker, last_end, trip_start = v.copy(), walker.copy(), last_end.copy(), trip_start.copy()
    stats = TemperingStats(
        np.concatenate(records) if records else np.empty((0, n_chains, n_v), dtype=rbm.dtype),
        np.concatenate(record_sweeps) if record_sweeps else np.empty(0, dtype=np.int64),
        accepts,
        _attempts(state.sweeps, n_sweeps, n_temps).astype(np.int64),
        trips,
        trip_sweeps,
    )
    new = state._replace(replicas=v, walker=walker, last_end=last_end, trip_start=trip_start, sweeps=end)
    return new, stats


def _check_state(rbm: RBM, state: TemperingState) -> None:
    """Raise unless ``state`` is a well-formed tempering state for models shaped like ``rbm``."""
    if not isinstance(state, TemperingState):
        raise TypeError(f"state must be a dilution.tempering.TemperingState, got {type(state).__name__}")
    v = state.replicas
    if not (isinstance(v, np.ndarray) and v.ndim == 3 and v.shape[0] >= 1 and v.shape[1] >= 1):
        raise ValueError(f"state.replicas must be an array of shape (n_chains, n_temps, n_visible), got {np.shape(v)}")
    n_chains, n_temps, n_v = v.shape
    if n_v != rbm.n_visible:
        raise ValueError(f"state.replicas have {n_v} visible units but the model has {rbm.n_visible}")
    if state.n_hidden != rbm.n_hidden:
        raise ValueError(f"the state was made for models with {state.n_hidden} hidden units but the model has "
                         f"{rbm.n_hidden} (the draw indices depend on it); start a new state with init_state")
    for name, x, shape in (("replicas", v, v.shape), ("base_bias", state.base_bias, (n_v,))):
        if not (isinstance(x, np.ndarray) and x.shape == shape):
            raise ValueError(f"state.{name} must have shape {shape}, got {np.shape(x)}")
        if x.dtype != rbm.dtype:
            raise ValueError(f"state.{name} has dtype {x.dtype} but the model is {rbm.dtype}; state and model "
                             "must share a dtype (convert the model with RBM.astype)")
    betas = check_ladder(state.betas)
    if not isinstance(state.betas, np.ndarray) or state.betas.dtype != np.float64 or betas.shape != (n_temps,):
        raise ValueError(f"state.betas must be a float64 ladder of {n_temps} temperatures (one per replica), "
                         f"got {np.shape(state.betas)} of {getattr(state.betas, 'dtype', None)}")
    for name, x, dtype in (("walker", state.walker, np.int64), ("last_end", state.last_end, np.int8),
                           ("trip_start", state.trip_start, np.int64)):
        if not (isinstance(x, np.ndarray) and x.shape == (n_chains, n_temps) and x.dtype == dtype):
            raise ValueError(f"state.{name} must be a {np.dtype(dtype)} array of shape {(n_chains, n_temps)}, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} of shape {np.shape(x)}")
    if not (isinstance(state.keys, np.ndarray) and state.keys.dtype == np.uint64 and state.keys.shape == (n_chains,)):
        raise ValueError(f"state.keys must be a uint64 array of shape ({n_chains},), got "
                         f"{getattr(state.keys, 'dtype', type(state.keys).__name__)} of shape {np.shape(state.keys)}")
    check_int("state.sweeps", state.sweeps, 0)
    check_int("state.record_from", state.record_from, 0)


def _check_continuation(rbm: RBM, state: TemperingState, **given) -> None:
    """Raise unless the arguments :func:`sample` got beside ``state`` are omitted or agree with it."""
    _check_state(rbm, state)
    n_chains, n_temps, n_v = state.replicas.shape
    have = {
        "n_chains": (n_chains, lambda x: check_int("n_chains", x, 1) == n_chains),
        "seed": (state.seed, lambda x: x == state.seed),
        "n_temps": (n_temps, lambda x: x == n_temps),
        "beta_min": (state.betas[0], lambda x: float(x) == state.betas[0]),
        "betas": ("state.betas", lambda x: np.array_equal(check_ladder(x), state.betas)),
        "base_bias": ("state.base_bias", lambda x: np.array_equal(np.asarray(x, dtype=rbm.dtype), state.base_bias)),
        "init": ("state.replicas", lambda x: np.array_equal(np.asarray(x), state.replicas)),
    }
    for name, value in given.items():
        if value is not None:
            want, agrees = have[name]
            if not agrees(value):
                raise ValueError(f"{name} conflicts with the state it continues ({name} of the state: {want}); "
                                 f"omit {name} to continue the state")
