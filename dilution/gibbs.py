"""Block Gibbs sampling of masked RBMs: the kernel dispatch and the ``sample`` driver.

A sweep is one block update of the hidden layer given the visible one, then of the visible
layer given the hidden one (v -> h -> v). At inverse temperature ``beta`` the chains sample

    p_beta(v, h)  proportional to  exp(-beta E(v, h) + (1 - beta) sum_i a0_i v_i)

where ``a0`` is an optional base-rate visible bias (zero for plain tempering; the AIS base
model of Salakhutdinov & Murray 2008, eq. 13, otherwise). With ``beta = 1`` this is the RBM.

Kernels are pure: arrays and per-chain keys in, arrays out. Chain ``c`` uses draw indices
``counter + s * (n_hidden + n_visible) + u`` at sweep ``s`` and unit ``u`` (hidden units
first), so results do not depend on the number of threads, and running ``n`` sweeps at once
equals running them in pieces with the counter advanced in between.

:func:`gibbs_kernel` runs one of two fast paths, :mod:`dilution.gibbs_blocked` (dense blocks)
or :mod:`dilution.gibbs_sparse` (CSR, for diluted models), chosen by :func:`gibbs_path` from the
measured constants of :mod:`dilution.gibbs_tuning`; both draw the same uniforms as the slow
:mod:`dilution.gibbs_reference` kernel they are tested against. The conditionals and the free
energy are in :mod:`dilution.conditionals`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import interrupt
from .blas import gemm_address
from .gibbs_blocked import dense_block, gibbs_blocked
from .conditionals import hidden_probabilities
from .gibbs_sparse import csr_arrays, csr_hidden_probabilities, gibbs_sparse
from .gibbs_tuning import GATHER_BELOW, SPARSE_BELOW, SPARSE_BLOCK, SPARSE_MIN_CHAINS
from .model import RBM
from .progress import WORK_PER_SECOND, progress_bar
from .rng import chain_keys, derive_seed
from .statistics import csr_reconstruction_errors, reconstruction_errors
from .threads import single_threaded_blas
from .validation import check_binary, check_finite, check_int

__all__ = [
    "sample",
    "GibbsState",
    "init_state",
    "advance",
    "gibbs_kernel",
    "gibbs_path",
    "hidden_probabilities_by_path",
    "reconstruction_errors_by_path",
    "draws_per_sweep",
]


def draws_per_sweep(n_visible: int, n_hidden: int) -> int:
    """Random numbers one Gibbs chain consumes per sweep: one per unit (a tempering system's
    count is :func:`dilution.tempering.draws_per_system_sweep`)."""
    return n_visible + n_hidden


def gibbs_path(weights: np.ndarray, n_chains: int) -> str:
    """Name of the path :func:`gibbs_kernel` runs: ``"sparse"`` (CSR, connectivity below
    ``SPARSE_BELOW`` and at least ``SPARSE_MIN_CHAINS`` chains) or ``"blocked"`` (dense blocks; per
    block and half-sweep, rows of active units are summed when fewer than ``GATHER_BELOW`` of them
    are active, else a single-threaded GEMM)."""
    return _path(int(np.count_nonzero(weights)), weights.size, n_chains)


def _path(n_nonzero: int, size: int, n_chains: int) -> str:
    density = n_nonzero / max(size, 1)
    return "sparse" if density < SPARSE_BELOW and n_chains >= SPARSE_MIN_CHAINS else "blocked"


def hidden_probabilities_by_path(v, weights, hidden_bias, beta, n_nonzero: int | None = None):
    """:func:`dilution.conditionals.hidden_probabilities`, over the connections only when the weights
    are diluted (below ``SPARSE_BELOW`` nonzero): the same bits either way.

    The CSR kernel (:func:`dilution.gibbs_sparse.csr_hidden_probabilities`) adds, per hidden unit,
    the dense kernel's products in its order less the zero ones; at 784 x 500 and 1 % it takes
    0.1 ms for 100 images where the dense one takes 1.2 ms.

    Parameters
    ----------
    v, weights, hidden_bias, beta
        As :func:`dilution.conditionals.hidden_probabilities`.
    n_nonzero : int, optional
        ``np.count_nonzero(weights)``, when the caller has it already.
    """
    if n_nonzero is None:
        n_nonzero = int(np.count_nonzero(weights))
    if n_nonzero >= SPARSE_BELOW * weights.size:
        return hidden_probabilities(v, weights, hidden_bias, beta)
    indptr, indices, data, *_ = csr_arrays(weights, n_nonzero)
    return csr_hidden_probabilities(v, indptr, indices, data, hidden_bias, beta)


def reconstruction_errors_by_path(v, h_prob, weights, visible_bias, keys, counter, n_nonzero: int | None = None):
    """:func:`dilution.statistics.reconstruction_errors` from ``weights`` (not their transpose), over the
    connections only below ``SPARSE_BELOW`` nonzero (:func:`dilution.statistics.csr_reconstruction_errors`,
    the same bits), by the dense kernel on a copy of ``W^T`` otherwise.

    Parameters
    ----------
    v, h_prob, visible_bias, keys, counter
        As :func:`dilution.statistics.reconstruction_errors`.
    weights : ndarray, shape (n_visible, n_hidden)
    n_nonzero : int, optional
        ``np.count_nonzero(weights)``, when the caller has it already.
    """
    if n_nonzero is None:
        n_nonzero = int(np.count_nonzero(weights))
    if n_nonzero >= SPARSE_BELOW * weights.size:
        return reconstruction_errors(v, h_prob, np.ascontiguousarray(weights.T), visible_bias, keys, counter)
    *_, indptr_t, indices_t, data_t = csr_arrays(weights, n_nonzero)
    return csr_reconstruction_errors(v, h_prob, indptr_t, indices_t, data_t, visible_bias, keys, counter)


def gibbs_kernel(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps,
                 path="auto", n_nonzero: int | None = None):
    """Run ``n_sweeps`` block-Gibbs sweeps on every chain.

    Dispatches to the fastest path for the model (module docstring of the paths: README,
    "which path runs when"); results depend only on the arguments, never on the thread count.

    Parameters
    ----------
    v : ndarray, shape (n_chains, n_visible)
        Binary visible states (in the model dtype); not modified.
    weights : ndarray, shape (n_visible, n_hidden)
        Masked weights (zero where there is no connection).
    weights_t : ndarray, shape (n_hidden, n_visible), or None
        C-contiguous transpose of ``weights``; None: made here when the dense path needs it (the
        sparse one does not: a diluted model's caller saves the copy).
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    beta : ndarray, shape (n_chains,)
        Inverse temperature of each chain.
    base_bias : ndarray, shape (n_visible,)
        Base-rate visible bias ``a0`` weighted by ``1 - beta``.
    keys : ndarray of uint64, shape (n_chains,)
    counter : uint64
        Index of the first draw of each stream used by this call.
    n_sweeps : int
    path : {"auto", "blocked", "sparse"}
        ``"auto"`` runs :func:`gibbs_path`'s choice; the others force a path (benchmarks, tests).
    n_nonzero : int, optional
        ``np.count_nonzero(weights)``, when the caller has it already.

    Returns
    -------
    v_out : ndarray, shape (n_chains, n_visible)
    h_out : ndarray, shape (n_chains, n_hidden)
        Hidden states sampled in the last sweep (all zero when ``n_sweeps == 0``).
    """
    if path not in ("auto", "blocked", "sparse"):
        raise ValueError(f"path must be 'auto', 'blocked' or 'sparse', got {path!r}")
    dt = weights.dtype
    v = np.ascontiguousarray(v, dtype=dt)
    beta = np.ascontiguousarray(beta, dtype=dt)
    counter = np.uint64(counter)
    if n_nonzero is None:
        n_nonzero = int(np.count_nonzero(weights))
    if path == "auto":
        path = _path(n_nonzero, weights.size, v.shape[0])
    if weights_t is None and path != "sparse":
        weights_t = np.ascontiguousarray(weights.T)
    # Inputs as read-only views: numba compiles a specialisation per writeable flag, and callers
    # pass both (training's arrays, a saved RBM's frozen ones); one costs seconds on a cold cache.
    v, weights, visible_bias, hidden_bias, beta, base_bias, keys = _read_only(
        v, weights, visible_bias, hidden_bias, beta, base_bias, keys)
    if path == "sparse":
        return gibbs_sparse(v, *_read_only(*csr_arrays(weights, n_nonzero)), visible_bias, hidden_bias, beta,
                            base_bias, keys, counter, int(n_sweeps), SPARSE_BLOCK)
    (weights_t,) = _read_only(weights_t)
    with single_threaded_blas():
        return gibbs_blocked(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter,
                             int(n_sweeps), dense_block(v.shape[0]), GATHER_BELOW[dt.itemsize], gemm_address(dt))


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only views of ``arrays`` (no copy)."""
    views = tuple(a.view() for a in arrays)
    for a in views:
        a.flags.writeable = False
    return views


def _check_beta(beta) -> float:
    return check_finite("beta", beta, low=0.0)


def sample(
    rbm: RBM,
    n_chains: int | None,
    n_sweeps: int,
    *,
    seed: int | None = None,
    beta: float | None = None,
    init=None,
    return_hidden: bool = False,
    progress: bool | None = None,
    state: GibbsState | None = None,
    return_state: bool = False,
):
    """Draw visible states by block Gibbs sampling of independent chains.

    Parameters
    ----------
    rbm : RBM
    n_chains : int or None
        Number of independent chains; each returns its last state. May be None with ``state``.
    n_sweeps : int
        Sweeps (v -> h -> v) per chain.
    seed : int
        Fixes the initial states (when ``init`` is None) and every draw. Same seed, same samples,
        whatever the number of threads. Required unless ``state`` is given.
    beta : float, optional
        Inverse temperature; default 1 (or the state's).
    init : array_like, shape (n_chains, n_visible), optional
        Binary initial visible states; default uniform random.
    return_hidden : bool
        Also return the hidden states of the last sweep.
    progress : bool, optional
        Show a progress bar; default: when the run is long and stderr is a terminal.
    state : GibbsState, optional
        Continue these chains (from :func:`init_state`, :func:`advance` or a previous call with
        ``return_state``): their states, keys and sweep count, so that ``n`` sweeps and then ``m``
        more equal ``n + m`` sweeps bit for bit. ``n_chains``, ``seed``, ``beta`` and ``init``
        must then be omitted or agree with the state (``init``: equal to ``state.visible``).
    return_state : bool
        Also return the final :class:`GibbsState`, last in the returned tuple.

    Returns
    -------
    v : ndarray, shape (n_chains, n_visible), dtype of the model
    h : ndarray, shape (n_chains, n_hidden), only with ``return_hidden``
    state : GibbsState, only with ``return_state``
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    if state is None:
        if n_chains is None or seed is None:
            raise ValueError("sample needs n_chains and seed unless it continues a state (state=...)")
        n_chains = check_int("n_chains", n_chains, 1)
        n_sweeps = check_int("n_sweeps", n_sweeps, 0)
        state = init_state(rbm, n_chains, seed=seed, beta=1.0 if beta is None else beta, init=init)
    else:
        n_sweeps = check_int("n_sweeps", n_sweeps, 0)
        _check_continuation(rbm, state, n_chains=n_chains, seed=seed, beta=beta, init=init)
    state = advance(rbm, state, n_sweeps, progress=progress)
    out = (state.visible, state.hidden) if return_hidden else (state.visible,)
    if return_state:  # the returned arrays must not alias the state's
        out = tuple(x.copy() for x in out) + (state,)
    return out if len(out) > 1 else out[0]


class GibbsState(NamedTuple):
    """Everything a run of Gibbs chains needs to continue exactly where it stopped.

    visible : ndarray, shape (n_chains, n_visible), model dtype
        Current visible states.
    hidden : ndarray, shape (n_chains, n_hidden), model dtype
        Hidden states sampled in the last sweep (zeros before the first sweep).
    keys : ndarray of uint64, shape (n_chains,)
        The chains' stream keys (:mod:`dilution.rng`).
    sweeps : int
        Sweeps done; sweep ``s`` uses draws ``s * draws_per_sweep + u`` of each stream.
    beta : float
        Inverse temperature of every chain.
    seed : int
        The seed the state was made from (checked when :func:`sample` continues it).

    The arrays are never written by :func:`advance` or :func:`sample`; don't write them either.
    """

    visible: np.ndarray
    hidden: np.ndarray
    keys: np.ndarray
    sweeps: int
    beta: float
    seed: int


def init_state(rbm: RBM, n_chains: int, *, seed: int, beta: float = 1.0, init=None) -> GibbsState:
    """Start ``n_chains`` Gibbs chains for models shaped like ``rbm``.

    Parameters
    ----------
    rbm : RBM
        Fixes the dtype and layer sizes; any model of the same shapes and dtype can then
        :func:`advance` the state.
    n_chains : int
    seed : int
        Fixes the initial states (when ``init`` is None) and every draw of the chains.
    beta : float
        Inverse temperature.
    init : array_like, shape (n_chains, n_visible), optional
        Binary initial visible states; default uniform random.

    Returns
    -------
    GibbsState
        With ``sweeps == 0`` and zero hidden states.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    n_chains = check_int("n_chains", n_chains, 1)
    b = _check_beta(beta)
    dt = rbm.dtype
    if init is None:
        rng = np.random.default_rng(derive_seed(seed, "gibbs-init"))
        v = (rng.random((n_chains, rbm.n_visible)) < 0.5).astype(dt)
    else:
        v = check_binary("init", init, rbm.n_visible, dt)
        if v.shape[0] != n_chains:
            raise ValueError(f"init must have {n_chains} rows (one per chain), got {v.shape[0]}")
    keys = chain_keys(derive_seed(seed, "gibbs"), n_chains)
    h = np.zeros((n_chains, rbm.n_hidden), dtype=dt)
    return GibbsState(v, h, keys, 0, b, int(seed))


_CHUNK_WORK = 2e9  # multiply-adds per kernel call (a fraction of a second): the progress bar's step


def advance(rbm: RBM, state: GibbsState, n_sweeps: int, *, progress: bool | None = None) -> GibbsState:
    """Run ``n_sweeps`` more sweeps of the chains in ``state`` on ``rbm``.

    Pure: ``state`` is not modified. The draws of sweep ``s`` depend only on the keys and on the
    global sweep index ``state.sweeps + s``, so ``advance(advance(st, n), m)`` equals
    ``advance(st, n + m)`` bit for bit; ``rbm`` may differ between calls (e.g. between training
    updates) as long as its layer sizes and dtype match the state.

    Parameters
    ----------
    rbm : RBM
    state : GibbsState
    n_sweeps : int
    progress : bool, optional
        Show a progress bar; default: when the run is long and stderr is a terminal.

    Returns
    -------
    GibbsState
        New arrays; ``sweeps`` advanced by ``n_sweeps``.

    Raises
    ------
    ValueError
        If the state does not fit the model (layer sizes, dtype) or is malformed.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    _check_state(rbm, state)
    n_sweeps = check_int("n_sweeps", n_sweeps, 0)
    dt = rbm.dtype
    n_chains = state.visible.shape[0]
    v, h = state.visible, state.hidden
    betas = np.full(n_chains, state.beta, dtype=dt)
    w_t = np.ascontiguousarray(rbm.weights.T)
    base = np.zeros(rbm.n_visible, dtype=dt)
    stride = draws_per_sweep(rbm.n_visible, rbm.n_hidden)
    # Chunks keep the progress bar alive; chunking does not change the draws (module docstring).
    work = n_chains * stride * rbm.n_hidden
    chunk = max(1, min(n_sweeps, int(_CHUNK_WORK // max(work, 1)))) if n_sweeps else 0
    done = 0
    expected = work * n_sweeps / WORK_PER_SECOND
    with progress_bar(n_sweeps, "Gibbs sweeps", enabled=progress, expected_seconds=expected) as bar:
        while done < n_sweeps:
            step = min(chunk, n_sweeps - done)
            v, h = gibbs_kernel(
                v, rbm.weights, w_t, rbm.visible_bias, rbm.hidden_bias, betas, base, state.keys,
                np.uint64((state.sweeps + done) * stride), step,
            )
            done += step
            bar.update(step)
            interrupt.check()
    if not n_sweeps:
        v, h = v.copy(), h.copy()
    return state._replace(visible=v, hidden=h, sweeps=state.sweeps + n_sweeps)


def _check_state(rbm: RBM, state: GibbsState) -> None:
    """Raise unless ``state`` is a well-formed Gibbs state for models shaped like ``rbm``."""
    if not isinstance(state, GibbsState):
        raise TypeError(f"state must be a dilution.gibbs.GibbsState, got {type(state).__name__}")
    v, h, keys = state.visible, state.hidden, state.keys
    if not (isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] >= 1):
        raise ValueError(f"state.visible must be an array of shape (n_chains, n_visible), got {np.shape(v)}")
    n_chains = v.shape[0]
    if v.shape[1] != rbm.n_visible:
        raise ValueError(f"state.visible has {v.shape[1]} visible units but the model has {rbm.n_visible}")
    if isinstance(h, np.ndarray) and h.shape[:1] == (n_chains,) and h.ndim == 2 and h.shape[1] != rbm.n_hidden:
        raise ValueError(f"state.hidden has {h.shape[1]} hidden units but the model has {rbm.n_hidden}")
    if not (isinstance(h, np.ndarray) and h.shape == (n_chains, rbm.n_hidden)):
        raise ValueError(
            f"state.hidden must have shape (n_chains, n_hidden) = {(n_chains, rbm.n_hidden)} for this model, "
            f"got {np.shape(h)}"
        )
    for name, x in (("visible", v), ("hidden", h)):
        if x.dtype != rbm.dtype:
            raise ValueError(f"state.{name} has dtype {x.dtype} but the model is {rbm.dtype}; chains and model "
                             "must share a dtype (convert the model with RBM.astype)")
    if not (isinstance(keys, np.ndarray) and keys.dtype == np.uint64 and keys.shape == (n_chains,)):
        raise ValueError(f"state.keys must be a uint64 array of shape ({n_chains},), got "
                         f"{getattr(keys, 'dtype', type(keys).__name__)} of shape {np.shape(keys)}")
    check_int("state.sweeps", state.sweeps, 0)
    _check_beta(state.beta)


def _check_continuation(rbm: RBM, state: GibbsState, *, n_chains, seed, beta, init) -> None:
    """Raise unless the arguments :func:`sample` got beside ``state`` are omitted or agree with it."""
    _check_state(rbm, state)
    have = state.visible.shape[0]
    if n_chains is not None and check_int("n_chains", n_chains, 1) != have:
        raise ValueError(f"n_chains={n_chains} conflicts with the state's {have} chains; omit n_chains (None)")
    if seed is not None and seed != state.seed:
        raise ValueError(f"seed={seed!r} conflicts with the state's seed {state.seed}; omit seed to continue")
    if beta is not None and _check_beta(beta) != state.beta:
        raise ValueError(f"beta={beta!r} conflicts with the state's beta {state.beta}; omit beta to continue")
    if init is not None and not np.array_equal(check_binary("init", init, rbm.n_visible, rbm.dtype), state.visible):
        raise ValueError("init conflicts with state.visible: a continued run starts from the state's chains; "
                         "omit init")
