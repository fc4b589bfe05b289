"""A planted (teacher) RBM with a small hidden layer, sampled exactly.

With few hidden units the marginal of the hidden layer is known exactly by enumeration:

    log p(h) = b.h + sum_i softplus(a_i + (W h)_i) - log Z,    h in {0,1}^n_hidden,

so i.i.d. samples need no Markov chain: draw h from p(h) (inverse CDF over the 2^n_hidden
states), then v ~ p(v | h) = prod_i Bernoulli(sigmoid(a_i + (W h)_i)). The teacher's data
distribution, log-likelihood and entropy are then ground truth for studies of learning and
of dilution (planted-model setting, e.g. Decelle, Fissore & Furtlehner 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import xarray as xr
from numba import prange

from ..exact import log_likelihood
from ..conditionals import free_energy, softplus
from ..model import RBM, check_connectivity, random_mask
from ..rng import derive_seed
from ..threads import sized_kernel
from ..validation import check_int

__all__ = ["MAX_HIDDEN", "Entropy", "Teacher", "planted_teacher", "teacher_datasets"]

MAX_HIDDEN = 20
_HARD_MAX_HIDDEN = 26  # 2**26 float64 log-probabilities are 512 MiB
_CHUNK = 8192  # rows drawn at once; the draws do not depend on it (sequential stream)


class Entropy(NamedTuple):
    """Entropy (nats) of the teacher's visible distribution.

    ``method`` is ``"exact"`` (enumeration of every visible state; ``stderr`` 0,
    ``n_samples`` 0) or ``"monte-carlo"`` (``-mean log p(v)`` over ``n_samples`` exact
    samples, ``stderr`` its standard error).
    """

    value: float
    stderr: float
    method: Literal["exact", "monte-carlo"]
    n_samples: int


# one call per teacher: parallel from about 10 ms of work (2^n_h states of n_h x n_v)
@sized_kernel(lambda w_t, a, b: w_t.size << w_t.shape[0], parallel_from=1 << 24)
def _unnormalised_log_p_hidden(w_t, a, b):
    """``b.h + sum_i softplus(a_i + (W h)_i)`` for every hidden state, index k = sum_j h_j 2^j.

    Each state's field is summed from scratch in a fixed order: exact and thread-count independent.
    """
    n_h, n_v = w_t.shape
    n_states = 1 << n_h
    out = np.empty(n_states)
    n_blocks = (n_states + 4095) // 4096
    for blk in prange(n_blocks):
        fld = np.empty(n_v)
        for k in range(blk * 4096, min(n_states, (blk + 1) * 4096)):
            for i in range(n_v):
                fld[i] = a[i]
            lin = 0.0
            for j in range(n_h):
                if (k >> j) & 1:
                    lin += b[j]
                    for i in range(n_v):
                        fld[i] += w_t[j, i]
            for i in range(n_v):
                lin += softplus(fld[i])
            out[k] = lin
    return out


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


@dataclass(frozen=True, eq=False, repr=False)
class Teacher:
    """An RBM with an enumerable hidden layer, its exact hidden marginal and ``log Z``.

    Build with :func:`planted_teacher` (random) or :meth:`Teacher.from_rbm` (any RBM).

    Attributes
    ----------
    rbm : RBM
    log_z : float
        Exact ``log Z``, by enumerating the hidden states.
    log_p_hidden : ndarray of float64, shape (2**n_hidden,)
        Exact ``log p(h)``; state ``k`` has ``h_j = (k >> j) & 1`` (order of ``exact.all_states``).
    info : dict
        How the teacher was made (parameters of :func:`planted_teacher`), copied into dataset attrs.
    """

    rbm: RBM
    log_z: float
    log_p_hidden: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_rbm(cls, rbm: RBM, *, max_hidden: int = MAX_HIDDEN, info: dict[str, Any] | None = None) -> Teacher:
        """Enumerate the hidden layer of ``rbm`` (cost ``2**n_hidden * n_visible`` softplus terms;
        about 30 s for 784 x 20 on two busy cores).

        Raises
        ------
        ValueError
            If ``rbm.n_hidden > max_hidden`` (default 20; at most 26).
        """
        if not isinstance(rbm, RBM):
            raise TypeError(f"expected a dilution.RBM, got {type(rbm).__name__}")
        if not isinstance(max_hidden, (int, np.integer)) or not 1 <= max_hidden <= _HARD_MAX_HIDDEN:
            raise ValueError(f"max_hidden must be an integer in [1, {_HARD_MAX_HIDDEN}], got {max_hidden!r}")
        if rbm.n_hidden > max_hidden:
            raise ValueError(
                f"a planted teacher enumerates its 2**n_hidden hidden states; n_hidden={rbm.n_hidden} is above "
                f"max_hidden={max_hidden} (use fewer hidden units, or raise max_hidden up to {_HARD_MAX_HIDDEN} "
                f"if 2**{rbm.n_hidden} states of {rbm.n_visible} fields fit your time and memory)"
            )
        w_t = np.ascontiguousarray(rbm.weights.T, dtype=np.float64)
        log_w = _unnormalised_log_p_hidden(w_t, rbm.visible_bias.astype(np.float64), rbm.hidden_bias.astype(np.float64))
        log_z = _logsumexp(log_w)
        log_p = log_w - log_z
        log_p.flags.writeable = False
        return cls(rbm=rbm, log_z=log_z, log_p_hidden=log_p, info=dict(info or {}))

    def __repr__(self) -> str:
        return f"Teacher({self.rbm!r}, log_z={self.log_z:.6g})"

    @property
    def n_visible(self) -> int:
        return self.rbm.n_visible

    @property
    def n_hidden(self) -> int:
        return self.rbm.n_hidden

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cdf = np.cumsum(np.exp(self.log_p_hidden))
        cdf /= cdf[-1]
        w = self.rbm.weights.astype(np.float64)
        a = self.rbm.visible_bias.astype(np.float64)
        v = np.empty((n, self.n_visible), dtype=np.uint8)
        h = np.empty((n, self.n_hidden), dtype=np.uint8)
        bits = np.arange(self.n_hidden)
        for start in range(0, n, _CHUNK):
            m = min(_CHUNK, n - start)
            # side="right": a state of probability 0 (equal CDF steps) is never chosen.
            codes = np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), cdf.size - 1)
            hc = ((codes[:, None] >> bits) & 1).astype(np.uint8)
            fld = np.broadcast_to(a, (m, self.n_visible)).copy()
            for j in range(self.n_hidden):  # fixed summation order, no BLAS: thread-count independent
                fld += hc[:, j, None] * w[:, j]
            p_on = 0.5 * (1.0 + np.tanh(0.5 * fld))  # sigmoid without overflow
            v[start:start + m] = rng.random((m, self.n_visible)) < p_on
            h[start:start + m] = hc
        return v, h

    def sample(self, n_samples: int, *, seed: int, return_hidden: bool = False):
        """Exact i.i.d. samples: h from the enumerated marginal, then v ~ p(v | h).

        Parameters
        ----------
        n_samples : int
        seed : int
        return_hidden : bool
            Also return the hidden states the visible ones were drawn from.

        Returns
        -------
        v : ndarray of uint8, shape (n_samples, n_visible)
        h : ndarray of uint8, shape (n_samples, n_hidden), only with ``return_hidden``
        """
        n = check_int("n_samples", n_samples, low=1)
        v, h = self._draw(n, np.random.default_rng(derive_seed(seed, "teacher-sample")))
        return (v, h) if return_hidden else v

    def log_likelihood(self, data) -> np.ndarray:
        """Exact ``log p(v)`` of each row of ``data`` under the teacher.

        Parameters
        ----------
        data : array_like, shape (n, n_visible), binary

        Returns
        -------
        ndarray of float64, shape (n,)
        """
        return log_likelihood(self.rbm, data, log_z=self.log_z)

    def log_prob_visible(self) -> np.ndarray:
        """Exact ``log p(v)`` of every visible state, state ``k`` having ``v_i = (k >> i) & 1``.

        Returns
        -------
        ndarray of float64, shape (2**n_visible,)
        """
        if self.n_visible > 24:
            raise ValueError(f"log_prob_visible lists 2**n_visible states; n_visible={self.n_visible} is too many (max 24)")
        w = self.rbm.weights.astype(np.float64)
        a = self.rbm.visible_bias.astype(np.float64)
        b = self.rbm.hidden_bias.astype(np.float64)
        zero = np.zeros_like(a)
        bits = np.arange(self.n_visible)
        n_states = 1 << self.n_visible
        out = np.empty(n_states)
        for start in range(0, n_states, 1 << 16):
            codes = np.arange(start, min(n_states, start + (1 << 16)), dtype=np.int64)
            states = ((codes[:, None] >> bits) & 1).astype(np.float64)
            out[start:start + codes.size] = -free_energy(states, w, a, b, 1.0, zero) - self.log_z
        return out

    def entropy(self, *, n_samples: int = 100_000, seed: int | None = None, max_visible: int = 20) -> Entropy:
        """Entropy of the visible distribution, in nats.

        Exact when ``n_visible <= max_visible`` (enumerates ``2**n_visible`` states);
        otherwise ``-mean log p(v)`` over ``n_samples`` exact samples drawn with ``seed``
        (required then), with standard error ``std / sqrt(n_samples)``.

        Returns
        -------
        Entropy
        """
        if not isinstance(max_visible, (int, np.integer)) or not 1 <= max_visible <= 24:
            raise ValueError(f"max_visible must be an integer in [1, 24], got {max_visible!r}")
        if self.n_visible <= max_visible:
            lp = self.log_prob_visible()
            p = np.exp(lp)
            return Entropy(float(-(p * lp).sum()), 0.0, "exact", 0)
        if seed is None:
            raise ValueError(
                f"n_visible={self.n_visible} > max_visible={max_visible}: the entropy is a Monte-Carlo "
                "estimate and needs a seed"
            )
        n = check_int("n_samples", n_samples, low=2)
        v, _ = self._draw(n, np.random.default_rng(derive_seed(seed, "teacher-entropy")))
        lp = self.log_likelihood(v)
        return Entropy(float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(n)), "monte-carlo", n)

    def dataset(self, n_samples: int, *, seed: int, subset: str = "train") -> xr.Dataset:
        """Exact samples as a labelled Dataset (see :func:`teacher_datasets`)."""
        n = check_int("n_samples", n_samples, low=1)
        v, h = self._draw(n, np.random.default_rng(derive_seed(seed, "teacher", subset)))
        return self._as_dataset(v, h, seed, subset)

    def _as_dataset(self, v: np.ndarray, h: np.ndarray, seed: int, subset: str) -> xr.Dataset:
        attrs = {f"teacher_{k}": v_ for k, v_ in self.info.items() if v_ is not None}
        attrs.update(
            source="planted teacher RBM (exact samples)",
            subset=subset,
            sample_seed=int(seed),
            teacher_n_visible=self.n_visible,
            teacher_n_hidden=self.n_hidden,
            teacher_connectivity=self.rbm.connectivity,
            teacher_log_z=self.log_z,
        )
        return xr.Dataset(
            {
                "states": (("sample", "visible"), v, {"long_name": "visible state drawn from the teacher", "units": "1"}),
                "hidden_states": (("sample", "hidden"), h,
                                  {"long_name": "teacher hidden state v was drawn from", "units": "1"}),
            },
            coords={"sample": ("sample", np.arange(v.shape[0], dtype=np.int64),
                               {"long_name": "index of the draw", "units": "1"})},
            attrs=attrs,
        )


def planted_teacher(
    n_visible: int,
    n_hidden: int,
    *,
    connectivity: float = 1.0,
    weight_scale: float = 1.0,
    visible_bias_scale: float = 0.0,
    hidden_bias_scale: float = 0.0,
    visible_bias_mean: float = 0.0,
    hidden_bias_mean: float = 0.0,
    dtype: type | np.dtype = np.float64,
    seed: int,
    max_hidden: int = MAX_HIDDEN,
) -> Teacher:
    """A random diluted teacher RBM, with its hidden marginal enumerated.

    Parameters
    ----------
    n_visible, n_hidden : int
        ``n_hidden`` at most ``max_hidden`` (default 20).
    connectivity : float in [0, 1]
        Fraction of connected pairs, exactly ``round(connectivity * n_visible * n_hidden)``,
        placed uniformly at random.
    weight_scale : float
        Standard deviation of the Gaussian connected weights.
    visible_bias_scale, hidden_bias_scale : float
        Standard deviations of the Gaussian biases.
    visible_bias_mean, hidden_bias_mean : float
        Their means (a negative visible mean gives sparse data).
    dtype : float32 or float64
        Precision of the teacher RBM (the enumeration is always float64).
    seed : int

    Returns
    -------
    Teacher
    """
    n_visible, n_hidden = check_int("n_visible", n_visible, low=1), check_int("n_hidden", n_hidden, low=1)
    connectivity = check_connectivity(connectivity)
    scales = {"weight_scale": weight_scale, "visible_bias_scale": visible_bias_scale,
              "hidden_bias_scale": hidden_bias_scale}
    for name, value in scales.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if n_hidden > max_hidden:
        raise ValueError(
            f"a planted teacher enumerates its 2**n_hidden hidden states; n_hidden={n_hidden} is above "
            f"max_hidden={max_hidden}"
        )
    rng = np.random.default_rng(derive_seed(seed, "planted-teacher"))
    mask = random_mask((n_visible, n_hidden), connectivity, rng)
    w = weight_scale * rng.standard_normal((n_visible, n_hidden))
    a = visible_bias_mean + visible_bias_scale * rng.standard_normal(n_visible)
    b = hidden_bias_mean + hidden_bias_scale * rng.standard_normal(n_hidden)
    rbm = RBM(w.astype(dtype), a.astype(dtype), b.astype(dtype), mask)
    info = dict(seed=int(seed), connectivity=connectivity, **scales,
                visible_bias_mean=float(visible_bias_mean), hidden_bias_mean=float(hidden_bias_mean))
    return Teacher.from_rbm(rbm, max_hidden=max_hidden, info=info)


def teacher_datasets(teacher: Teacher, n_train: int, n_test: int, *, seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """Independent training and test sets of exact teacher samples.

    Each set has its own random stream derived from ``seed``, so the test set does not
    depend on ``n_train``.

    Returns
    -------
    train, test : xarray.Dataset
        ``states`` (sample, visible) and ``hidden_states`` (sample, hidden), uint8; attrs
        ``subset``, ``sample_seed``, ``teacher_log_z`` and the teacher's parameters.
    """
    if not isinstance(teacher, Teacher):
        raise TypeError(f"expected a Teacher (see planted_teacher), got {type(teacher).__name__}")
    return teacher.dataset(n_train, seed=seed, subset="train"), teacher.dataset(n_test, seed=seed, subset="test")
