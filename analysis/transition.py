"""Where quality collapses: the transition fraction of a pruning sweep, with a bootstrap CI over seeds.

Definition. Let ``q_s(f)`` be the quality (e.g. the mean test log-likelihood) of replica ``s``
at pruning fraction ``f`` and ``m(f)`` its mean over seeds. The *dense plateau* ``q_hi`` is
``m`` at the smallest fraction of the grid and the *collapsed plateau* ``q_lo`` is ``m`` at the
largest (or both are given, e.g. the teacher's and the independent-unit model's likelihoods).
The transition ``f*`` is the first fraction where ``m`` falls through the midpoint
``(q_hi + q_lo) / 2``, by linear interpolation between the two grid fractions around the
crossing (``method="crossing"``, model-free). With ``method="logistic"`` the step
``m(f) = q_lo + (q_hi - q_lo) / (1 + exp((f - f*) / w))`` is fitted by least squares instead,
which gives the width ``w`` as well; for a logistic step both definitions give the same ``f*``
(its midpoint).

Uncertainty. Seeds are the independent replicas, so the confidence intervals come from a
bootstrap over seeds (Efron & Tibshirani 1993, ch. 13, percentile intervals): resample the
seeds with replacement, recompute ``m``, the plateaus and ``f*``, and take the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles.

Verdict. There is a transition inside the grid when the drop ``q_hi - q_lo`` is positive at
the stated confidence (its one-sided bootstrap lower bound exceeds ``min_drop``); otherwise
``has_transition`` is False and the location is NaN ("no transition inside the grid").
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import xarray as xr

from dilution.rng import derive_seed

__all__ = ["crossing", "locate_transition"]


def crossing(curves: np.ndarray, fractions: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """First downward crossing of the midpoint level by each curve, linearly interpolated.

    Parameters
    ----------
    curves : ndarray, shape (n_fractions, n_curves)
    fractions : ndarray, shape (n_fractions,), increasing
    high, low : ndarray, shape (n_curves,)
        Plateau levels; the level crossed is their mean.

    Returns
    -------
    ndarray, shape (n_curves,)
        NaN where a curve starts below the level or never falls below it.
    """
    mid = 0.5 * (high + low)
    above = curves >= mid
    falls = above[:-1] & ~above[1:]  # (n_fractions - 1, n_curves)
    has = falls.any(axis=0)
    i = np.argmax(falls, axis=0)
    cols = np.arange(curves.shape[1])
    q0, q1 = curves[i, cols], curves[np.minimum(i + 1, len(fractions) - 1), cols]
    f0, f1 = fractions[i], fractions[np.minimum(i + 1, len(fractions) - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        loc = f0 + (f1 - f0) * (q0 - mid) / (q0 - q1)
    return np.where(has & above[0], loc, np.nan)


def _logistic(f, f_star, width, high, low):
    return low + (high - low) / (1.0 + np.exp(np.clip((f - f_star) / width, -50, 50)))


def _fit_logistic(curve: np.ndarray, fractions: np.ndarray, start: float) -> tuple[float, float]:
    from scipy.optimize import curve_fit

    span = float(fractions[-1] - fractions[0])
    spacing = float(np.min(np.diff(fractions)))
    if not math.isfinite(start):
        start = float(fractions[0] + fractions[-1]) / 2
    p0 = (start, max(spacing, span / 20), curve[0], curve[-1])
    try:
        (f_star, width, _, _), _ = curve_fit(
            _logistic, fractions, curve, p0=p0, maxfev=2000,
            bounds=([fractions[0], spacing * 1e-3, -np.inf, -np.inf], [fractions[-1], span, np.inf, np.inf]),
        )
    except (RuntimeError, ValueError):
        return math.nan, math.nan
    return float(f_star), float(width)


def _locate(q: np.ndarray, fractions: np.ndarray, levels, method: str, n_bootstrap: int, confidence: float,
            min_drop: float, rng: np.random.Generator) -> dict:
    """All outputs for one (n_fractions, n_seeds) block."""
    keep = ~np.isnan(q).all(axis=0)
    q = q[:, keep]
    n = q.shape[1]
    out = {"n_seeds": n}
    if n == 0:
        return out
    picks = rng.integers(0, n, size=(n_bootstrap, n))
    curves = np.concatenate([q.mean(axis=1, keepdims=True), q[:, picks].mean(axis=2)], axis=1)  # (n_f, 1 + B)
    if levels is None:
        high, low = curves[0], curves[-1]
    else:
        high, low = np.full(curves.shape[1], levels[0]), np.full(curves.shape[1], levels[1])
    drop = high - low
    alpha = 1.0 - confidence
    out.update(high=high[0], low=low[0], drop=drop[0], drop_lower=np.quantile(drop[1:], alpha))
    has = bool(out["drop_lower"] > min_drop)
    loc = crossing(curves, fractions, high, low)
    if method == "logistic":
        fits = np.array([_fit_logistic(curves[:, b], fractions, loc[b]) for b in range(curves.shape[1])])
        loc, width = fits[:, 0], fits[:, 1]
        out.update(width=width[0], width_lower=np.nanquantile(width[1:], alpha / 2),
                   width_upper=np.nanquantile(width[1:], 1 - alpha / 2))
    boot = loc[1:]
    out.update(
        location=loc[0], location_lower=np.nanquantile(boot, alpha / 2) if np.isfinite(boot).any() else np.nan,
        location_upper=np.nanquantile(boot, 1 - alpha / 2) if np.isfinite(boot).any() else np.nan,
        bootstrap_undefined=float(np.mean(~np.isfinite(boot))), has_transition=has,
    )
    if not has:
        for k in ("location", "location_lower", "location_upper", "width", "width_lower", "width_upper"):
            if k in out:
                out[k] = np.nan
    return out


_OUTPUTS = {
    "location": ("transition fraction f*", "1"),
    "location_lower": ("lower confidence bound of f*", "1"),
    "location_upper": ("upper confidence bound of f*", "1"),
    "width": ("logistic width of the transition", "1"),
    "width_lower": ("lower confidence bound of the width", "1"),
    "width_upper": ("upper confidence bound of the width", "1"),
    "high": ("dense plateau (quality at the smallest fraction, or given)", None),
    "low": ("collapsed plateau (quality at the largest fraction, or given)", None),
    "drop": ("drop from the dense to the collapsed plateau", None),
    "drop_lower": ("one-sided lower confidence bound of the drop", None),
    "has_transition": ("the drop is positive at the stated confidence", "1"),
    "bootstrap_undefined": ("fraction of bootstrap samples without a crossing", "1"),
    "n_seeds": ("seeds with data", "1"),
}


def locate_transition(
    quality: xr.DataArray,
    *,
    fraction_dim: str = "pruning_fraction",
    seed_dim: str = "seed",
    method: Literal["crossing", "logistic"] = "crossing",
    levels: tuple[float, float] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    min_drop: float = 0.0,
    seed: int = 0,
) -> xr.Dataset:
    """Locate the collapse of ``quality`` along the pruning fraction (see the module docstring).

    Parameters
    ----------
    quality : xarray.DataArray
        Dims ``fraction_dim`` and ``seed_dim`` and any others (e.g. ``protocol``,
        ``n_hidden``), over which the analysis is repeated. Higher is better. NaN entries
        (unfinished points) are left out of the seed means; a seed without data is dropped.
    fraction_dim, seed_dim : str
    method : "crossing" or "logistic"
    levels : (high, low), optional
        Fixed plateau levels instead of the curve's ends.
    n_bootstrap : int
        Bootstrap resamples of the seeds.
    confidence : float in (0, 1)
        Two-sided level of the intervals; the drop's bound is one-sided at this level.
    min_drop : float
        Smallest drop (in the units of ``quality``) that counts as a transition.
    seed : int
        Seeds the bootstrap (each block of the other dims gets its own stream).

    Returns
    -------
    xarray.Dataset
        Over the other dims: ``location``, ``location_lower``, ``location_upper`` (and
        ``width``, ``width_lower``, ``width_upper`` with ``"logistic"``), ``high``, ``low``,
        ``drop``, ``drop_lower``, ``has_transition``, ``bootstrap_undefined``, ``n_seeds``.
    """
    if not isinstance(quality, xr.DataArray):
        raise TypeError(f"quality must be an xarray.DataArray, got {type(quality).__name__}")
    for dim in (fraction_dim, seed_dim):
        if dim not in quality.dims:
            raise ValueError(f"quality has no dimension {dim!r}; its dims are {quality.dims}")
    if method not in ("crossing", "logistic"):
        raise ValueError(f"method must be 'crossing' or 'logistic', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 10:
        raise ValueError(f"n_bootstrap must be an integer >= 10, got {n_bootstrap!r}")
    if levels is not None and not (len(levels) == 2 and all(math.isfinite(float(x)) for x in levels)):
        raise ValueError(f"levels must be two finite numbers (high, low), got {levels!r}")
    ordered = quality.sortby(fraction_dim)
    fractions = np.asarray(ordered[fraction_dim].values, dtype=np.float64)
    if fractions.size < 2:
        raise ValueError(f"need at least two pruning fractions, got {fractions.size}")
    others = [d for d in ordered.dims if d not in (fraction_dim, seed_dim)]
    stacked = ordered.transpose(*others, fraction_dim, seed_dim)
    values = np.asarray(stacked.values, dtype=np.float64)
    blocks = values.reshape(-1, *values.shape[-2:])
    names = [k for k in _OUTPUTS if method == "logistic" or not k.startswith("width")]
    results = {k: np.full(blocks.shape[0], np.nan) for k in names}
    for b, block in enumerate(blocks):
        rng = np.random.default_rng(derive_seed(seed, "analysis.transition.bootstrap", b))
        found = _locate(block, fractions, levels, method, int(n_bootstrap), float(confidence), float(min_drop), rng)
        for k, v in found.items():
            results[k][b] = v
    shape = values.shape[:-2]
    units = quality.attrs.get("units", "1")
    data_vars = {}
    for k in names:
        arr = results[k].reshape(shape)
        if k == "has_transition":
            arr = arr == 1
        elif k == "n_seeds":
            arr = arr.astype(np.int64)
        long_name, unit = _OUTPUTS[k]
        data_vars[k] = (others, arr, {"long_name": long_name, "units": unit or units})
    coords = {d: stacked[d] for d in others}
    definition = ("first downward crossing of the midpoint between the plateaus by the seed-mean curve, "
                  "linear interpolation" if method == "crossing" else
                  "midpoint of a least-squares logistic step fitted to the seed-mean curve")
    attrs = {
        "title": f"transition of {quality.attrs.get('long_name', quality.name or 'quality')} along {fraction_dim}",
        "method": method, "definition": definition,
        "plateaus": "given" if levels is not None else "seed-mean quality at the smallest and largest fraction",
        "confidence": float(confidence), "interval": "percentile bootstrap over seeds",
        "n_bootstrap": int(n_bootstrap), "min_drop": float(min_drop), "seed": int(seed),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
