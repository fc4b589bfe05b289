"""Gradient estimators: the negative phase of RBM learning as a value.

The mean log-likelihood gradient of a batch is ``<v h>_data - <v h>_model`` (Fischer & Igel
2014, eqs. 28-30), with ``h`` replaced by ``p(h = 1 | v)`` on both sides. The data term is the
same for every estimator; they differ in how the model term is obtained:

* :class:`CD` (Hinton 2002): ``k`` block-Gibbs sweeps from the batch itself;
* :class:`PCD` (Tieleman 2008): ``k`` sweeps of persistent chains carried over from the
  previous update;
* :class:`PTPCD` (Desjardins et al. 2010): persistent parallel-tempering systems, ``k`` sweeps
  with replica exchange per update, the beta = 1 replicas giving the model term;
* :class:`Exact`: the model moments by enumerating the smaller layer (tiny models only): the
  true gradient of the batch, the reference for stationary-law studies and for rewiring with
  true gradients.

An estimator is a frozen dataclass of hyper-parameters with two methods, in the style of
blackjax kernels; its mutable part (chains, draw counters) is a separate state value that the
trainer threads through the calls and saves with the training state:

``init(params, data, batch_size, seed) -> state``
    The state at update 0. Calling it again with the same arguments gives the same state:
    rewinding protocols use this to put the persistent chains back where they started.
``estimate(params, batch, h_batch, state, present_only=False) -> (GradientEstimate, state)``
    ``h_batch`` is ``p(h = 1 | batch)``, computed once by the trainer. ``present_only=True``: the
    caller reads the weight gradient on the pairs of ``params.mask`` only (its rule never looks
    at absent pairs), so the estimator may leave the others at 0 and skip their work; the
    present pairs' values must not change.
``restart(state, initial) -> state``
    The chains of ``initial`` (an ``init`` state) with the draw counters of ``state``, so that a
    rewound run starts its chains afresh without reusing random numbers.

A new estimator drops in without touching the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from . import exact, tempering
from .gibbs import draws_per_sweep, gibbs_kernel, hidden_probabilities_by_path
from .gibbs_tuning import PRESENT_GRADIENT_BELOW
from .parameters import Parameters
from .rng import chain_keys, derive_seed
from .statistics import GradientEstimate, gradient_statistics
from .validation import check_int

__all__ = [
    "GradientEstimator",
    "CD",
    "PCD",
    "PTPCD",
    "Exact",
    "ChainState",
    "TemperingChains",
    "estimator_from_name",
]


@runtime_checkable
class GradientEstimator(Protocol):
    """Protocol of gradient estimators; see the module docstring for the contract."""

    def init(self, params: Parameters, data: np.ndarray, batch_size: int, seed: int) -> Any:
        ...

    def estimate(
        self, params: Parameters, batch: np.ndarray, h_batch: np.ndarray, state: Any, present_only: bool = False
    ) -> tuple[GradientEstimate, Any]:
        ...

    def restart(self, state: Any, initial: Any) -> Any:
        ...

    def describe(self) -> str:
        ...


class ChainState(NamedTuple):
    """Block-Gibbs chains of CD or PCD.

    Attributes
    ----------
    chains : ndarray, shape (n_chains, n_visible), or None
        Persistent chains (PCD); None for CD, whose chains start at the batch.
    keys : ndarray of uint64, shape (n_chains,)
        Stream keys of the chains (CD: one per batch row).
    counter : int
        Index of the next draw of every stream.
    """

    chains: np.ndarray | None
    keys: np.ndarray
    counter: int


def _negative_phase(start: np.ndarray, params: Parameters, keys: np.ndarray, counter: int, k: int):
    """Chains after ``k`` sweeps from ``start`` and their ``p(h = 1 | v_k)``."""
    w, a, b, _ = params
    n, n_visible = start.shape
    dt = w.dtype
    n_nonzero = int(np.count_nonzero(w))
    v_k, _ = gibbs_kernel(
        start, w, None, a, b, np.ones(n, dtype=dt), np.zeros(n_visible, dtype=dt), keys, np.uint64(counter), k,
        n_nonzero=n_nonzero,
    )
    return v_k, hidden_probabilities_by_path(v_k, w, b, 1.0, n_nonzero)


def _statistics(batch, h_batch, v_k, h_k, params: Parameters, present_only: bool) -> GradientEstimate:
    # The present-pairs kernel gathers hidden units by index: it pays on the sparsest masks only, and a
    # denser one gets the gradient of every pair (which present_only allows).
    diluted = present_only and np.count_nonzero(params.mask) < PRESENT_GRADIENT_BELOW * params.mask.size
    return gradient_statistics(batch, h_batch, v_k, h_k, mask=params.mask if diluted else None)


@dataclass(frozen=True)
class CD:
    """Contrastive divergence CD-k: ``k`` sweeps from every batch row (Hinton 2002)."""

    k: int = 1

    def __post_init__(self):
        check_int("k", self.k, 1)

    def describe(self) -> str:
        return f"CD-{self.k}"

    def init(self, params: Parameters, data: np.ndarray, batch_size: int, seed: int) -> ChainState:
        return ChainState(None, chain_keys(derive_seed(seed, "cd"), batch_size), 0)

    def estimate(self, params, batch, h_batch, state: ChainState,
                 present_only: bool = False) -> tuple[GradientEstimate, ChainState]:
        m = batch.shape[0]
        v_k, h_k = _negative_phase(batch, params, state.keys[:m], state.counter, self.k)
        stride = self.k * draws_per_sweep(batch.shape[1], h_batch.shape[1])
        return (_statistics(batch, h_batch, v_k, h_k, params, present_only),
                state._replace(counter=state.counter + stride))

    def restart(self, state: ChainState, initial: ChainState) -> ChainState:
        return state


@dataclass(frozen=True)
class PCD:
    """Persistent contrastive divergence PCD-k (Tieleman 2008).

    Parameters
    ----------
    k : int
        Gibbs sweeps of the persistent chains per update.
    n_chains : int, optional
        Number of persistent chains; default the batch size.
    chain_init : "data" or "uniform"
        Chains start at training samples drawn with replacement, or uniformly at random.
    """

    k: int = 1
    n_chains: int | None = None
    chain_init: Literal["data", "uniform"] = "data"

    def __post_init__(self):
        check_int("k", self.k, 1)
        if self.n_chains is not None:
            check_int("n_chains", self.n_chains, 1)
        if self.chain_init not in ("data", "uniform"):
            raise ValueError(f"chain_init must be 'data' or 'uniform', got {self.chain_init!r}")

    def describe(self) -> str:
        return f"PCD-{self.k}"

    def init(self, params: Parameters, data: np.ndarray, batch_size: int, seed: int) -> ChainState:
        n_chains = self.n_chains or batch_size
        rng = np.random.default_rng(derive_seed(seed, "pcd-chain-init"))
        chains = _initial_visible(data, (n_chains,), self.chain_init, params.weights.dtype, rng)
        return ChainState(chains, chain_keys(derive_seed(seed, "pcd"), n_chains), 0)

    def estimate(self, params, batch, h_batch, state: ChainState,
                 present_only: bool = False) -> tuple[GradientEstimate, ChainState]:
        v_k, h_k = _negative_phase(state.chains, params, state.keys, state.counter, self.k)
        stride = self.k * draws_per_sweep(batch.shape[1], h_batch.shape[1])
        return (_statistics(batch, h_batch, v_k, h_k, params, present_only),
                ChainState(v_k, state.keys, state.counter + stride))

    def restart(self, state: ChainState, initial: ChainState) -> ChainState:
        return state._replace(chains=initial.chains)


def _initial_visible(data, shape, how, dtype, rng: np.random.Generator) -> np.ndarray:
    n_visible = data.shape[1]
    if how == "data":
        return np.ascontiguousarray(data[rng.integers(0, data.shape[0], size=shape)], dtype=dtype)
    return (rng.random(shape + (n_visible,)) < 0.5).astype(dtype)


class TemperingChains(NamedTuple):
    """Persistent parallel-tempering systems of :class:`PTPCD` (a :class:`dilution.tempering.TemperingState`)."""

    systems: Any


@dataclass(frozen=True)
class PTPCD:
    """PCD with parallel-tempering chains (Desjardins et al. 2010; Cho et al. 2010).

    Every persistent chain is a tempering system of ``n_temps`` replicas on a fixed geometric
    ladder from ``beta_min`` to 1; each update runs ``k`` sweeps (Gibbs on every replica, then
    deterministic even-odd exchanges, :mod:`dilution.tempering`) with the current parameters,
    and the beta = 1 replicas give the model term.

    Parameters
    ----------
    k : int
    n_chains : int, optional
        Tempering systems; default the batch size.
    n_temps : int
    beta_min : float
    chain_init : "data" or "uniform"
    """

    k: int = 1
    n_chains: int | None = None
    n_temps: int = 10
    beta_min: float = 0.1
    chain_init: Literal["data", "uniform"] = "data"

    def __post_init__(self):
        check_int("k", self.k, 1)
        if self.n_chains is not None:
            check_int("n_chains", self.n_chains, 1)
        check_int("n_temps", self.n_temps, 2)
        # a numpy float (np.float32(0.5)) is a number in range too; strings and bools are not
        number = isinstance(self.beta_min, (int, float, np.integer, np.floating))
        if not number or isinstance(self.beta_min, (bool, np.bool_)):
            raise TypeError(f"beta_min must be a number in (0, 1), got {self.beta_min!r}")
        if not 0.0 < self.beta_min < 1.0:
            raise ValueError(f"beta_min must be in (0, 1), got {self.beta_min!r}")
        object.__setattr__(self, "beta_min", float(self.beta_min))
        if self.chain_init not in ("data", "uniform"):
            raise ValueError(f"chain_init must be 'data' or 'uniform', got {self.chain_init!r}")

    def describe(self) -> str:
        return f"PT-PCD-{self.k} ({self.n_temps} temperatures)"

    def _rbm(self, params: Parameters):
        from .model import RBM

        return RBM(*params)

    def init(self, params: Parameters, data: np.ndarray, batch_size: int, seed: int) -> TemperingChains:
        n_chains = self.n_chains or batch_size
        rng = np.random.default_rng(derive_seed(seed, "ptpcd-chain-init"))
        init = _initial_visible(data, (n_chains, self.n_temps), self.chain_init, params.weights.dtype, rng)
        # tempering.init_state takes an integer seed: one 63-bit word of this purpose's stream.
        system_seed = int(derive_seed(seed, "ptpcd").generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        systems = tempering.init_state(
            self._rbm(params), n_chains, seed=system_seed, n_temps=self.n_temps, beta_min=self.beta_min, init=init,
        )
        return TemperingChains(systems)

    def estimate(self, params, batch, h_batch, state: TemperingChains,
                 present_only: bool = False) -> tuple[GradientEstimate, TemperingChains]:
        rbm = self._rbm(params)
        systems, _ = tempering.advance(rbm, state.systems, self.k)
        v_k = np.ascontiguousarray(tempering.cold_visible(systems))
        h_k = hidden_probabilities_by_path(v_k, params.weights, params.hidden_bias, 1.0)
        return _statistics(batch, h_batch, v_k, h_k, params, present_only), TemperingChains(systems)

    def restart(self, state: TemperingChains, initial: TemperingChains) -> TemperingChains:
        # Replica states and exchange bookkeeping as at update 0; keys and sweep counter go on.
        fresh = initial.systems._replace(keys=state.systems.keys, sweeps=state.systems.sweeps)
        return TemperingChains(fresh)


class _NoState(NamedTuple):
    pass


@dataclass(frozen=True)
class Exact:
    """The true gradient of the batch: model moments by enumerating the smaller layer.

    Cost ``2**n_e * n_e * n_other`` per update with ``n_e = min(n_visible, n_hidden)``; meant
    for models with about 20 units or fewer in one layer (``max_units``).
    """

    max_units: int = exact.MAX_UNITS

    def __post_init__(self):
        check_int("max_units", self.max_units, 1)

    def describe(self) -> str:
        return "exact"

    def init(self, params: Parameters, data: np.ndarray, batch_size: int, seed: int) -> _NoState:
        n_e = min(params.weights.shape)
        if n_e > self.max_units:
            raise ValueError(
                f"the exact gradient enumerates the smaller layer: {n_e} units exceed max_units={self.max_units} "
                "(2**n states); use CD, PCD or PTPCD"
            )
        return _NoState()

    def estimate(self, params, batch, h_batch, state: _NoState,
                 present_only: bool = False) -> tuple[GradientEstimate, _NoState]:
        # present_only changes nothing: the model moments come dense from enumeration, and the
        # models are tiny.
        from .model import RBM

        w = params.weights
        dt = w.dtype
        # Data term through the same kernel as the sampled estimators (a zero model term), so
        # that exact and sampled estimates differ only in the model term.
        data_term = gradient_statistics(
            batch, h_batch, np.zeros((1, batch.shape[1]), dtype=dt), np.zeros((1, h_batch.shape[1]), dtype=dt)
        )
        mean_v, mean_h, mean_vh = exact.model_moments(RBM(*params), max_units=self.max_units)
        grad = GradientEstimate(
            (data_term.weights.astype(np.float64) - mean_vh).astype(dt),
            (data_term.visible_bias.astype(np.float64) - mean_v).astype(dt),
            (data_term.hidden_bias.astype(np.float64) - mean_h).astype(dt),
        )
        return grad, state

    def restart(self, state: _NoState, initial: _NoState) -> _NoState:
        return state


_BY_NAME = {"cd": CD, "pcd": PCD, "ptpcd": PTPCD, "pt-pcd": PTPCD, "exact": Exact}


def estimator_from_name(name: str, **params: Any) -> GradientEstimator:
    """``estimator_from_name("pcd", k=10, n_chains=1000)``; names: cd, pcd, ptpcd, exact."""
    key = str(name).lower()
    if key not in _BY_NAME:
        raise ValueError(f"unknown gradient estimator {name!r}; expected one of cd, pcd, ptpcd, exact")
    cls = _BY_NAME[key]
    try:
        return cls(**params)
    except TypeError as e:
        raise ValueError(f"estimator {name!r}: {e}") from None
