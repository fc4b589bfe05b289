"""The masked binary Restricted Boltzmann Machine.

Energy of a joint configuration (v, h), v in {0,1}^n_visible, h in {0,1}^n_hidden:

    E(v, h) = - sum_i a_i v_i - sum_j b_j h_j - sum_ij v_i (M_ij W_ij) h_j

with visible bias ``a``, hidden bias ``b``, weights ``W`` and boolean connection mask ``M``.
The engine keeps the invariant ``W[~M] == 0`` exactly, so every kernel can use ``W`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .validation import check_finite, check_int, check_seed

__all__ = ["RBM", "SUPPORTED_DTYPES", "check_connectivity", "random_mask"]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_float_array(name: str, value: Any, dtype: np.dtype | None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in SUPPORTED_DTYPES else np.dtype(np.float64)
        if np.issubdtype(arr.dtype, np.floating) and arr.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got {arr.dtype}")
    arr = np.array(arr, dtype=dtype, order="C", copy=True)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite, found {bad} NaN or infinite entries")
    return arr


@dataclass(frozen=True, eq=False, init=False)
class RBM:
    """A binary {0,1} RBM with a boolean visible-hidden connection mask.

    Parameters
    ----------
    weights : array_like, shape (n_visible, n_hidden)
        Couplings ``W``. Their dtype fixes the model's precision: float32 stays float32,
        float64 and integer input become float64. Entries where ``mask`` is False are set to 0.
    visible_bias : array_like, shape (n_visible,)
    hidden_bias : array_like, shape (n_hidden,)
    mask : array_like of bool, shape (n_visible, n_hidden), optional
        True where a connection exists. ``None`` means fully connected.

    Notes
    -----
    The arrays are stored read-only: an RBM is a value. Use :meth:`replace` to derive a new
    model, which re-applies the mask, so ``weights[~mask] == 0`` holds after any operation.
    """

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray
    mask: np.ndarray

    def __init__(self, weights, visible_bias, hidden_bias, mask=None):
        w = _as_float_array("weights", weights, None)
        if w.ndim != 2:
            raise ValueError(f"weights must be 2-D with shape (n_visible, n_hidden), got shape {w.shape}")
        n_visible, n_hidden = w.shape
        if n_visible == 0 or n_hidden == 0:
            raise ValueError(f"weights must have at least one visible and one hidden unit, got shape {w.shape}")
        a = _as_float_array("visible_bias", visible_bias, w.dtype)
        b = _as_float_array("hidden_bias", hidden_bias, w.dtype)
        if a.shape != (n_visible,):
            raise ValueError(f"visible_bias must have shape ({n_visible},) to match weights, got {a.shape}")
        if b.shape != (n_hidden,):
            raise ValueError(f"hidden_bias must have shape ({n_hidden},) to match weights, got {b.shape}")
        if mask is None:
            m = np.ones((n_visible, n_hidden), dtype=bool)
        else:
            m = np.asarray(mask)
            if m.dtype != bool:
                raise TypeError(
                    f"mask must be a boolean array (True = connected), got dtype {m.dtype}; "
                    "convert with mask.astype(bool) if 0/1 values are meant"
                )
            if m.shape != (n_visible, n_hidden):
                raise ValueError(f"mask must have shape {(n_visible, n_hidden)} to match weights, got {m.shape}")
            m = np.array(m, dtype=bool, order="C", copy=True)
            w[~m] = 0.0
        for name, arr in (("weights", w), ("visible_bias", a), ("hidden_bias", b), ("mask", m)):
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @classmethod
    def random(
        cls,
        n_visible: int,
        n_hidden: int,
        *,
        connectivity: float = 1.0,
        weight_scale: float = 0.01,
        bias_scale: float = 0.0,
        dtype: type | np.dtype = np.float64,
        seed: int | np.random.SeedSequence,
    ) -> RBM:
        """A random RBM: Gaussian weights and a uniformly random mask of exact density.

        Parameters
        ----------
        n_visible, n_hidden : int
        connectivity : float in [0, 1]
            Fraction of visible-hidden pairs that are connected: exactly
            ``round(connectivity * n_visible * n_hidden)`` pairs, chosen uniformly.
        weight_scale : float
            Standard deviation of the connected weights.
        bias_scale : float
            Standard deviation of the (Gaussian) biases; 0 gives zero biases.
        dtype : float32 or float64
        seed : int or numpy.random.SeedSequence
            Seed of every random choice (required: the same seed gives the same model). Drivers
            pass a purpose-derived ``dilution.rng.derive_seed(seed, "...")``.
        """
        n_visible, n_hidden = check_int("n_visible", n_visible, low=1), check_int("n_hidden", n_hidden, low=1)
        connectivity = check_connectivity(connectivity)
        weight_scale = check_finite("weight_scale", weight_scale, low=0.0)
        bias_scale = check_finite("bias_scale", bias_scale, low=0.0)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.default_rng(seed if isinstance(seed, np.random.SeedSequence) else check_seed(seed))
        mask = random_mask((n_visible, n_hidden), connectivity, rng)
        w = (weight_scale * rng.standard_normal((n_visible, n_hidden))).astype(dtype)
        a = (bias_scale * rng.standard_normal(n_visible)).astype(dtype)
        b = (bias_scale * rng.standard_normal(n_hidden)).astype(dtype)
        return cls(w, a, b, mask)

    @property
    def n_visible(self) -> int:
        return self.weights.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weights.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self.weights.dtype

    @property
    def n_connections(self) -> int:
        """Number of connected visible-hidden pairs."""
        return int(np.count_nonzero(self.mask))

    @property
    def connectivity(self) -> float:
        """Fraction of visible-hidden pairs that are connected."""
        return self.n_connections / self.mask.size

    def replace(self, **changes: Any) -> RBM:
        """A new RBM with some of ``weights``, ``visible_bias``, ``hidden_bias``, ``mask`` replaced."""
        unknown = set(changes) - {"weights", "visible_bias", "hidden_bias", "mask"}
        if unknown:
            raise TypeError(f"replace() got unknown field(s) {sorted(unknown)}")
        fields = {k: getattr(self, k) for k in ("weights", "visible_bias", "hidden_bias", "mask")}
        fields.update(changes)
        return RBM(**fields)

    def astype(self, dtype: type | np.dtype) -> RBM:
        """The same model computed in another precision (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        return RBM(self.weights.astype(dtype), self.visible_bias, self.hidden_bias, self.mask)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RBM):
            return NotImplemented
        return (
            self.dtype == other.dtype
            and all(
                np.array_equal(getattr(self, k), getattr(other, k))
                for k in ("weights", "visible_bias", "hidden_bias", "mask")
            )
        )

    def __repr__(self) -> str:
        return (
            f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"connectivity={self.connectivity:.4g}, dtype={self.dtype.name})"
        )


def check_connectivity(connectivity: Any) -> float:
    """Validate a connectivity (fraction of connected pairs) and return it as float."""
    try:
        # float("0.5") would take a string, to be recorded as one in a run's config
        c = check_finite("connectivity", connectivity)
    except TypeError:
        raise TypeError(f"connectivity must be a number in [0, 1], got {connectivity!r}") from None
    except ValueError:  # NaN or infinite
        c = None
    if c is None or not 0.0 <= c <= 1.0:
        raise ValueError(f"connectivity must be in [0, 1], got {connectivity!r}")
    return c


def random_mask(shape: tuple[int, int], connectivity: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask with exactly ``round(connectivity * size)`` True entries, uniformly placed."""
    size = shape[0] * shape[1]
    n_on = int(round(check_connectivity(connectivity) * size))
    flat = np.zeros(size, dtype=bool)
    flat[rng.choice(size, size=n_on, replace=False)] = True
    return flat.reshape(shape)
