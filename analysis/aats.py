"""Nearest-neighbour adversarial accuracy (Yale et al. 2020, Neurocomputing 416, 244).

For a truth set T and a synthetic set S of equal size n, with Hamming distances on binary data:

    AA_truth = 1/n sum_i 1[d_TS(i) > d_TT(i)],   AA_syn = 1/n sum_i 1[d_ST(i) > d_SS(i)]

where ``d_TS(i)`` is the distance from truth point i to its nearest synthetic point and ``d_TT(i)``
to its nearest *other* truth point (and symmetrically). ``AA_ts = (AA_truth + AA_syn) / 2`` is the
accuracy of a leave-one-out 1-NN classifier telling the sets apart: about 0.5 when S is drawn
from the same distribution as T, 1 when the sets are far apart, and below 0.5 when S copies T
(0 for S = T). Privacy / memorisation loss: ``AA_ts(test) - AA_ts(train)``, positive when the
samples sit closer to the training set than to unseen data.

Hamming distances on binary data tie often. With ``ties="half"`` (default) a tie counts 1/2,
which keeps the value for two samples of one distribution at 0.5 whatever the tie rate;
``ties="strict"`` is Yale et al.'s ``>`` (a tie counts 0), as in the ``rbms`` package, which
biases the value for two samples of one distribution below 0.5 by half the tie rate.

Distances are computed exactly in chunks by float32 matrix products, ``d(x, y) = |x| + |y| - 2 x.y``
(integers below 2^24 are exact in float32): three 10k x 10k x 784 products take a few seconds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from dilution.validation import check_binary
from dilution.rng import derive_seed

__all__ = ["nearest_hamming", "adversarial_accuracy", "privacy_loss"]

_CHUNK = 1024
_AA_ATTRS = {
    "aa_truth": {"long_name": "fraction of data points whose nearest neighbour is another data point", "units": "1"},
    "aa_syn": {"long_name": "fraction of samples whose nearest neighbour is another sample", "units": "1"},
    "aa_ts": {"long_name": "nearest-neighbour adversarial accuracy (0.5 = indistinguishable)", "units": "1"},
}


def _binary(name: str, x, n_units: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_units), got {arr.shape}")
    return check_binary(name, arr, arr.shape[1] if n_units is None else n_units, np.float32)


def nearest_hamming(x, y=None) -> np.ndarray:
    """Hamming distance from each row of ``x`` to its nearest row of ``y``.

    Parameters
    ----------
    x : array_like, shape (n, n_units), binary
    y : array_like, shape (m, n_units), binary, optional
        Default ``x`` itself, in which case each row's own entry is excluded (nearest *other* row).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    xs = _binary("x", x)
    same = y is None
    ys = xs if same else _binary("y", y, xs.shape[1])
    if same and xs.shape[0] < 2:
        raise ValueError("nearest other row needs at least 2 rows")
    nx = xs.sum(axis=1)
    ny = ys.sum(axis=1)
    out = np.empty(xs.shape[0], dtype=np.int64)
    for start in range(0, xs.shape[0], _CHUNK):
        stop = min(start + _CHUNK, xs.shape[0])
        d = nx[start:stop, None] + ny[None, :] - 2.0 * (xs[start:stop] @ ys.T)
        if same:
            d[np.arange(stop - start), np.arange(start, stop)] = np.inf
        out[start:stop] = np.rint(d.min(axis=1)).astype(np.int64)
    return out


def _score(d_other: np.ndarray, d_own: np.ndarray, ties: str) -> float:
    wins = (d_other > d_own).astype(np.float64)
    if ties == "half":
        wins += 0.5 * (d_other == d_own)
    return float(wins.mean())


def adversarial_accuracy(data, samples, *, ties: Literal["half", "strict"] = "half") -> xr.Dataset:
    """AA_truth, AA_syn and AA_ts of two binary sets of equal size (see the module docstring).

    Parameters
    ----------
    data : array_like, shape (n, n_units), binary
        The truth set T.
    samples : array_like, shape (n, n_units), binary
        The synthetic set S.
    ties : {"half", "strict"}

    Returns
    -------
    xarray.Dataset
        ``aa_truth``, ``aa_syn``, ``aa_ts`` and the nearest-neighbour distances ``d_ts``, ``d_tt``
        (datum) and ``d_st``, ``d_ss`` (sample).
    """
    if ties not in ("half", "strict"):
        raise ValueError(f"ties must be 'half' or 'strict', got {ties!r}")
    t = _binary("data", data)
    s = _binary("samples", samples, t.shape[1])
    if t.shape[0] != s.shape[0]:
        raise ValueError(
            f"data and samples must have the same number of rows (the score's 0.5 reference assumes it), "
            f"got {t.shape[0]} and {s.shape[0]}; subsample the larger set"
        )
    d_ts, d_tt = nearest_hamming(t, s), nearest_hamming(t)
    d_st, d_ss = nearest_hamming(s, t), nearest_hamming(s)
    aa_truth, aa_syn = _score(d_ts, d_tt, ties), _score(d_st, d_ss, ties)
    ds = xr.Dataset(
        {
            "aa_truth": ((), aa_truth, _AA_ATTRS["aa_truth"]),
            "aa_syn": ((), aa_syn, _AA_ATTRS["aa_syn"]),
            "aa_ts": ((), 0.5 * (aa_truth + aa_syn), _AA_ATTRS["aa_ts"]),
            "d_ts": ("datum", d_ts, {"long_name": "Hamming distance from each data point to the nearest sample",
                                     "units": "1"}),
            "d_tt": ("datum", d_tt, {"long_name": "Hamming distance from each data point to the nearest other "
                                     "data point", "units": "1"}),
            "d_st": ("sample", d_st, {"long_name": "Hamming distance from each sample to the nearest data point",
                                      "units": "1"}),
            "d_ss": ("sample", d_ss, {"long_name": "Hamming distance from each sample to the nearest other sample",
                                      "units": "1"}),
        }
    )
    ds.attrs.update(metric="nearest-neighbour adversarial accuracy (Yale et al. 2020), Hamming distance", is_proxy=0, ties=ties, n=int(t.shape[0]))
    return ds


def privacy_loss(train, test, samples, *, seed: int, n: int | None = None, ties: Literal["half", "strict"] = "half") -> xr.Dataset:
    """Memorisation / privacy loss ``AA_ts(test) - AA_ts(train)`` (Yale et al. 2020).

    Parameters
    ----------
    train, test, samples : array_like, shape (*, n_units), binary
    seed : int
        Chooses the subsets of size ``n`` drawn from each set (without replacement).
    n : int, optional
        Subset size; default the size of the smallest set. The same synthetic subset is compared
        with both the train and the test subset.
    ties : {"half", "strict"}

    Returns
    -------
    xarray.Dataset
        ``privacy_loss`` and, along ``reference`` = (train, test), ``aa_truth``, ``aa_syn``, ``aa_ts``.
    """
    sets = {"train": _binary("train", train), "test": _binary("test", test), "samples": _binary("samples", samples)}
    widths = {k: v.shape[1] for k, v in sets.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"train, test and samples must have the same number of units, got {widths}")
    smallest = min(v.shape[0] for v in sets.values())
    n = smallest if n is None else int(n)
    if not 2 <= n <= smallest:
        raise ValueError(f"n must be in [2, {smallest}] (the smallest set), got {n}")
    rng = np.random.default_rng(derive_seed(seed, "aats-subsets"))
    sub = {k: v[np.sort(rng.choice(v.shape[0], n, replace=False))] for k, v in sets.items()}
    res = [adversarial_accuracy(sub[ref], sub["samples"], ties=ties) for ref in ("train", "test")]
    ds = xr.Dataset(
        {name: ("reference", [float(r[name]) for r in res], _AA_ATTRS[name]) for name in ("aa_truth", "aa_syn", "aa_ts")},
        coords={"reference": ("reference", ["train", "test"],
                              {"long_name": "data set the samples are compared with", "units": "1"})},
    )
    ds["privacy_loss"] = ((), float(ds["aa_ts"].sel(reference="test") - ds["aa_ts"].sel(reference="train")),
                          {"long_name": "AA_ts(test) - AA_ts(train): > 0 when samples are closer to the training set",
                           "units": "1"})
    ds.attrs.update(metric="nearest-neighbour adversarial accuracy privacy loss (Yale et al. 2020)", is_proxy=0, ties=ties, n=n, seed=int(seed))
    return ds
