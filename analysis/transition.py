"""Where quality collapses along the pruning fraction: a step fit with bootstrap CIs over seeds,
model-free estimates, a verdict, finite-size scaling across sizes and the gap between protocols.

Notation. ``q_s(f)`` is the quality (higher is better, e.g. the test log-likelihood in nats per
sample) of replica (seed) ``s`` at pruning fraction ``f``; ``m(f)`` is its mean over seeds.

Step fit (:func:`fit_step`, :func:`fit_transition`). ``m(f) = low + (high - low) S((f - f*) / w)``
with the decreasing unit step ``S(x) = erfc(x / sqrt 2) / 2`` (``form="erf"``: a sharp step
smeared by a Gaussian of standard deviation ``w``) or ``S(x) = 1 / (1 + e^x)`` (``"logistic"``).
``f*`` is the midpoint, restricted to the grid's range, and ``w`` the width, restricted to
[a quarter of the smallest grid spacing, the grid's span]. Least squares: a grid search over
(``f*``, ``log w``), where ``high`` and ``low`` are linear and solved in closed form (variable
projection, Golub & Pereyra 1973), then Levenberg-Marquardt steps from the best grid point; all
curves (the data and every bootstrap resample, of every block of the other dims) are fitted in
one vectorised batch.

The step can also be fitted along ``-log10(1 - f)`` (``axis="log-remaining"``, decades of
connections removed) for collapses near ``f = 1``; positions are reported as fractions either way.

Uncertainty. Seeds are the independent replicas: resample them with replacement, recompute the
seed-mean curve and every estimate. Intervals are *expanded* percentile intervals (Hesterberg
2015, "What teachers should know about the bootstrap", sec. 5.3): the percentile interval at the
level whose normal quantile is ``sqrt(n / (n - 1)) t_{n-1}`` of the nominal one, which corrects the
plain percentile interval's under-coverage with few seeds (about 0.90 for a nominal 0.95 at 10).

Model-free estimates. *Steepest descent*: the midpoint of the grid interval where the seed-mean
curve falls fastest (largest ``(m(f_i) - m(f_{i+1})) / (f_{i+1} - f_i)``). *Susceptibility*: the
fraction where the seed-to-seed variance of ``q`` peaks (replicas disagree most where each
collapses at a slightly different fraction). Both with bootstrap intervals as above; both take
grid values only, so their intervals have the grid's resolution (on a uniform grid of spacing
0.05 the steepest-descent interval covered a true midpoint 0.005 off a grid midpoint in 84 of
200 replications, the step fit's in 190).

Verdict "no transition inside the grid". Checked in this order; the first that applies is the
verdict (``has_transition`` is True only for ``"transition"``):

* ``"insufficient data"``: fewer than 3 seeds or 4 fractions with data after the exclusions;
* ``"no step"``: the fitted drop ``high - low`` is not larger than the noise. Its null
  distribution is the bootstrap one of seed-mean curves built from the centred replicas
  ``(q_s(f) - m(f)) sqrt(n / (n - 1))`` (a flat truth with the data's noise; Efron & Tibshirani
  1993, sec. 16.4), fitted the same way, which accounts for the fit's freedom to put a step
  wherever the noise is largest. No step when the one-sided p-value exceeds ``1 - confidence``
  or the drop does not exceed ``min_drop``;
* ``"edge"``: the location's interval reaches the first or last fraction of the grid (at least
  a tail's share of the resamples put the step at the edge): the collapse may lie outside;
* ``"broad"``: the 10-90 % fall of the fitted step (``2.563 w`` for erf, ``4.394 w`` for the
  logistic) spans more than half the grid: a gradual decline, not a localised transition;
* ``"transition"`` otherwise.

The fitted numbers are reported whatever the verdict; a reader plots ``location`` only where
``has_transition``.

Exclusions. Points that did not finish, or (by default) did not converge, are set to NaN before
anything is computed (``exclude=``); the result counts the seeds used, the points excluded and
the unconverged points that were kept (``exclude="unfinished"`` or ``"none"``).

Finite-size scaling (:func:`finite_size_scaling`, :func:`collapse_quality`): ``f*(N) = f_inf +
a / N`` (linear in ``1 / N``) and ``w(N) = c N^(-theta)`` (linear in log-log), fitted to the point
estimates and to every joint bootstrap resample (the sizes are independent runs, so draw ``b`` of
every size together is a draw of the whole); the collapse measure is the mean over pairs of sizes
of the mean squared distance between the normalised seed-mean curves against
``(f - f*(N)) / w(N)``, interpolated on the common range.

Protocol gap (:func:`quality_gap`): mean quality of selection A minus selection B per fraction,
paired by seed when the same seeds have data in both (the mean of per-seed differences), else
the difference of independent means; bootstrap intervals as above.

The first-crossing estimator :func:`locate_transition` (midpoint crossing or logistic fit with
plain percentile intervals) is kept for its callers.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Literal, NamedTuple

import numpy as np
import xarray as xr

from dilution.rng import derive_seed
from dilution.validation import check_finite

__all__ = [
    "StepFit",
    "axis_fraction",
    "axis_position",
    "collapse_quality",
    "crossing",
    "finite_size_scaling",
    "fit_step",
    "fit_transition",
    "gap_table",
    "locate_transition",
    "quality_gap",
    "scaling_table",
    "step_curve",
    "transition_table",
]


def _check_confidence(confidence) -> float:
    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def _check_levels(levels) -> tuple[float, float]:
    # float("0") and a bool would pass one at a time, then fail in numpy's arithmetic
    numbers_given = isinstance(levels, (tuple, list, np.ndarray)) and len(levels) == 2
    try:
        if numbers_given:
            return check_finite("levels", levels[0]), check_finite("levels", levels[1])
    except (TypeError, ValueError):
        pass
    raise ValueError(f"levels must be two finite numbers (high, low), got {levels!r}")


def _check_bool(name: str, value) -> bool:
    # bool("no") is True: a truthy string must not switch an option on
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_fractions(quality: xr.DataArray, fraction_dim: str) -> None:
    """Refuse a ``fraction_dim`` of ``quality`` that is not a coordinate of finite pruning fractions:
    without a coordinate the fit would run along the indices 0, 1, ..., and a NaN passes the
    ordering checks."""
    if fraction_dim not in quality.coords:
        raise ValueError(f"{fraction_dim} needs a coordinate of pruning fractions in [0, 1], got a dimension "
                         "without coordinate")
    values = np.asarray(quality[fraction_dim].values)
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"{fraction_dim} must be a numeric coordinate of pruning fractions in [0, 1], "
                         f"got dtype {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{fraction_dim} must be finite, got {values.tolist()}")
    if np.any(values < 0) or np.any(values > 1):
        raise ValueError(f"{fraction_dim} must hold pruning fractions in [0, 1], got {values.tolist()}")


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
    """Locate the collapse of ``quality`` along the pruning fraction by the midpoint crossing.

    The plateaus are the seed-mean quality at the smallest and largest fraction (or ``levels``);
    ``f*`` is the first fraction where the seed mean falls through their midpoint, linearly
    interpolated (``"crossing"``), or the midpoint of a least-squares logistic step
    (``"logistic"``, which also gives a width). Plain percentile bootstrap intervals over seeds;
    ``has_transition`` when the one-sided lower bound of the drop exceeds ``min_drop``, else the
    location is NaN. :func:`fit_transition` is the fuller estimator (free plateaus, a noise-aware
    verdict, model-free estimates, exclusions).

    Parameters
    ----------
    quality : xarray.DataArray
        Dims ``fraction_dim`` and ``seed_dim`` and any others (e.g. ``protocol``,
        ``n_hidden``), over which the analysis is repeated. Higher is better. NaN entries
        (unfinished points) are left out of the seed means; a seed without data is dropped.
        ``fraction_dim`` needs a numeric coordinate of finite fractions in [0, 1].
    fraction_dim, seed_dim : str
    method : "crossing" or "logistic"
    levels : (high, low), optional
        Fixed plateau levels instead of the curve's ends.
    n_bootstrap : int
        Bootstrap resamples of the seeds.
    confidence : float in (0, 1)
        Two-sided level of the intervals; the drop's bound is one-sided at this level.
    min_drop : float >= 0
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
    confidence = _check_confidence(confidence)
    min_drop = check_finite("min_drop", min_drop, low=0.0)
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 10:
        raise ValueError(f"n_bootstrap must be an integer >= 10, got {n_bootstrap!r}")
    if levels is not None:
        levels = _check_levels(levels)
    _check_fractions(quality, fraction_dim)
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


# --------------------------------------------------------------------------- step fit

StepForm = Literal["erf", "logistic"]
Exclude = Literal["unconverged", "unfinished", "none"]
Axis = Literal["fraction", "log-remaining"]

#: Outputs that are positions along the axis (mapped back to pruning fractions on the log axis).
_POSITIONS = ("location", "steepest", "susceptibility_location")


def axis_position(fractions, axis: Axis):
    """Position of pruning fractions on the fitting axis: ``f`` itself, or ``-log10(1 - f)``
    (decades of connections removed: 0.9 -> 1, 0.99 -> 2) for ``"log-remaining"``."""
    f = np.asarray(fractions, dtype=np.float64)
    if axis == "fraction":
        return f
    if axis == "log-remaining":
        return -np.log10(1.0 - f)
    raise ValueError(f"axis must be 'fraction' or 'log-remaining', got {axis!r}")


def axis_fraction(x, axis: Axis):
    """Inverse of :func:`axis_position`."""
    x = np.asarray(x, dtype=np.float64)
    return x if axis == "fraction" else 1.0 - 10.0 ** (-x)

# 10-90 % fall of the unit step in units of w: 2 * 1.2816 (erf), 2 * ln 9 (logistic)
_RISE = {"erf": 2 * 1.2815515655446004, "logistic": 2 * math.log(9.0)}
_MIN_SEEDS, _MIN_FRACTIONS = 3, 4
_CHUNK = 4096


class StepFit(NamedTuple):
    """Least-squares step parameters of a batch of curves, each of shape (n_curves,)."""

    location: np.ndarray
    width: np.ndarray
    high: np.ndarray
    low: np.ndarray
    rss: np.ndarray


def _unit_step(x: np.ndarray, form: str) -> tuple[np.ndarray, np.ndarray]:
    """The decreasing unit step S(x) and its derivative S'(x)."""
    from scipy.special import erfc, expit

    if form == "erf":
        return 0.5 * erfc(x / math.sqrt(2.0)), -np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    s = expit(-x)
    return s, -s * (1.0 - s)


def step_curve(fractions: np.ndarray, location, width, high, low, form: StepForm = "erf") -> np.ndarray:
    """``low + (high - low) S((f - location) / width)``, broadcast over the parameters.

    Parameters
    ----------
    fractions : ndarray, shape (n_fractions,) or broadcastable with the parameters
    location, width, high, low : float or ndarray
    form : "erf" or "logistic"

    Returns
    -------
    ndarray
    """
    _check_form(form)
    s, _ = _unit_step((np.asarray(fractions, dtype=np.float64) - location) / width, form)
    return low + (high - low) * s


def _check_form(form: str) -> None:
    if form not in ("erf", "logistic"):
        raise ValueError(f"form must be 'erf' or 'logistic', got {form!r}")


def fit_step(curves: np.ndarray, fractions: np.ndarray, *, form: StepForm = "erf",
             weights: np.ndarray | None = None, n_iterations: int = 200) -> StepFit:
    """Least-squares decreasing step fitted to every column of ``curves`` at once.

    Parameters
    ----------
    curves : ndarray, shape (n_fractions, n_curves)
        NaN entries get zero weight.
    fractions : ndarray, shape (n_fractions,), strictly increasing
    form : "erf" or "logistic"
    weights : ndarray, shape (n_fractions, n_curves), optional
        Non-negative least-squares weights (default 1 where finite).
    n_iterations : int
        Levenberg-Marquardt steps after the grid search.

    Returns
    -------
    StepFit
        ``location`` in [fractions[0], fractions[-1]], ``width`` in [min spacing / 4, span],
        ``high``, ``low`` (``high - low`` is the drop; negative for a rising curve), ``rss``.
    """
    _check_form(form)
    f = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(curves, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != f.size:
        raise ValueError(f"curves must have shape (n_fractions={f.size}, n_curves), got {y.shape}")
    if f.size < 2 or np.any(np.diff(f) <= 0):
        raise ValueError(f"fractions must be strictly increasing with at least two values, got {f}")
    if y.shape[1] > _CHUNK:  # the grid search holds (n_candidates, n_curves) arrays: bound their size
        parts = [fit_step(y[:, i : i + _CHUNK], f, form=form, n_iterations=n_iterations,
                          weights=None if weights is None else np.asarray(weights)[:, i : i + _CHUNK])
                 for i in range(0, y.shape[1], _CHUNK)]
        return StepFit(*(np.concatenate(arrays) for arrays in zip(*parts)))
    wts = np.isfinite(y).astype(np.float64) if weights is None else np.where(np.isfinite(y), weights, 0.0)
    y = np.where(wts > 0, y, 0.0)
    span = float(f[-1] - f[0])
    log_w_lo, log_w_hi = math.log(float(np.min(np.diff(f))) / 4), math.log(span)

    # grid search with the plateaus solved in closed form: y ~ low + drop * S
    # candidate locations: the fractions and two points inside every interval between them, so a
    # refined (non-uniform) grid gets candidates where its fractions are
    sub = np.linspace(0.0, 1.0, 3, endpoint=False)
    candidates = np.append((f[:-1, None] + np.diff(f)[:, None] * sub).ravel(), f[-1])
    locs, log_ws = np.meshgrid(candidates, np.linspace(log_w_lo, log_w_hi, 10), indexing="ij")
    locs, log_ws = locs.ravel(), log_ws.ravel()
    basis, _ = _unit_step((f[:, None] - locs) / np.exp(log_ws), form)  # (n_f, G)
    yw = wts * y
    a, sy, syy = wts.sum(0), yw.sum(0), (yw * y).sum(0)
    ss, sss, ssy = basis.T @ wts, (basis * basis).T @ wts, basis.T @ yw  # (G, C)
    det = a * sss - ss * ss
    ok = det > 1e-10 * np.maximum(a * a, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(ok, (a * ssy - ss * sy) / det, 0.0)
        low = np.where(ok, (sy - drop * ss) / a, 0.0)
        rss = np.where(ok, syy - low * sy - drop * ssy, np.inf)
    best = np.argmin(rss, axis=0)
    cols = np.arange(y.shape[1])
    p = np.stack([locs[best], log_ws[best], low[best, cols], drop[best, cols]], axis=1)  # (C, 4)

    sw = np.sqrt(wts)

    def residuals(p, cols):
        x = (f[:, None] - p[:, 0]) / np.exp(p[:, 1])
        s, ds = _unit_step(x, form)
        return sw[:, cols] * (y[:, cols] - p[:, 2] - p[:, 3] * s), x, s, ds

    r, _, _, _ = residuals(p, cols)
    cost = (r * r).sum(0)
    damping = np.full(y.shape[1], 1e-3)
    # Levenberg-Marquardt on the curves still moving (a curve stops when a step gains less than
    # 1e-6 of its cost, far below the noise, or its damping has grown past 1e8)
    active = cols
    for _ in range(n_iterations):
        if active.size == 0:
            break
        pa = p[active]
        r, x, s, ds = residuals(pa, active)
        w = np.exp(pa[:, 1])
        jac = np.stack([-pa[:, 3] * ds / w, -pa[:, 3] * ds * x, np.ones_like(s), s], axis=2) * sw[:, active, None]
        jtj = np.einsum("fci,fcj->cij", jac, jac)
        g = np.einsum("fci,fc->ci", jac, r)
        diag = np.einsum("cii->ci", jtj)
        lhs = jtj + (damping[active, None] * diag + 1e-12)[:, :, None] * np.eye(4)
        trial = pa + np.linalg.solve(lhs, g[:, :, None])[:, :, 0]
        trial[:, 0] = np.clip(trial[:, 0], f[0], f[-1])
        trial[:, 1] = np.clip(trial[:, 1], log_w_lo, log_w_hi)
        r_t, _, _, _ = residuals(trial, active)
        cost_t = (r_t * r_t).sum(0)
        better = cost_t < cost[active]
        gain = np.where(better, cost[active] - cost_t, 0.0)
        p[active] = np.where(better[:, None], trial, pa)
        cost[active] = np.where(better, cost_t, cost[active])
        damping[active] = np.where(better, damping[active] / 3, damping[active] * 4)
        moving = (better & (gain > 1e-6 * cost[active])) | (~better & (damping[active] < 1e8))
        active = active[moving]
    return StepFit(p[:, 0], np.exp(p[:, 1]), p[:, 2] + p[:, 3], p[:, 2], cost)


def _expanded_alpha(alpha: float, n: int) -> float:
    """Tail probability of Hesterberg's expanded percentile interval for ``n`` replicas."""
    from scipy.stats import norm, t

    if n < 2:
        return alpha
    z = math.sqrt(n / (n - 1)) * t.ppf(1 - alpha / 2, n - 1)
    return float(2 * norm.sf(z))


def _interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _resampled_means(q: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Seed means of ``q`` (n_f, n) over each row of ``picks`` (B, n), NaN-aware: (n_f, B)."""
    sub = q[:, picks]  # (n_f, B, n)
    count = np.isfinite(sub).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(sub, axis=2) / count, np.nan)


def _steepest(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Midpoint of the grid interval of steepest descent of each curve (n_f, C) -> (C,)."""
    slope = (curves[:-1] - curves[1:]) / np.diff(fractions)[:, None]
    slope = np.where(np.isfinite(slope), slope, -np.inf)
    i = np.argmax(slope, axis=0)
    mids = 0.5 * (fractions[:-1] + fractions[1:])
    return np.where(np.isfinite(slope.max(axis=0)), mids[i], np.nan)


def _peak(values: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Fraction of the maximum of each column of ``values`` (n_f, C) -> (C,)."""
    v = np.where(np.isfinite(values), values, -np.inf)
    return np.where(np.isfinite(v.max(axis=0)), fractions[np.argmax(v, axis=0)], np.nan)


def _seed_variance(q: np.ndarray, picks: np.ndarray | None) -> np.ndarray:
    sub = q[:, :, None] if picks is None else q[:, picks].transpose(0, 2, 1)  # (n_f, n, B)
    count = np.isfinite(sub).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(sub, axis=1) / count
        var = np.nansum((sub - mean[:, None, :]) ** 2, axis=1) / (count - 1)
    return np.where(count > 1, var, np.nan)


def _prepare(q: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> tuple[dict, np.ndarray | None]:
    """The curves to fit for one (n_fractions, n_seeds) block with NaNs: the seed mean, the
    bootstrap resamples and the flat-null resamples, shape (n_fractions, 1 + 2 n_bootstrap);
    None when the block has too little data."""
    q = q[:, np.isfinite(q).any(axis=0)]
    n = q.shape[1]
    if n < _MIN_SEEDS or np.isfinite(q).any(axis=1).sum() < _MIN_FRACTIONS:
        return {"n_seeds": n, "verdict": "insufficient data"}, None
    mean = _resampled_means(q, np.arange(n)[None, :])
    picks = rng.integers(0, n, size=(n_bootstrap, n))
    boot = _resampled_means(q, picks)
    centred = (q - mean) * math.sqrt(n / (n - 1))
    null = _resampled_means(centred, rng.integers(0, n, size=(n_bootstrap, n)))
    return {"n_seeds": n, "q": q, "picks": picks}, np.concatenate([mean, boot, null], axis=1)


def _finish(block: dict, curves: np.ndarray, fit: StepFit, fractions: np.ndarray, form: str, confidence: float,
            min_drop: float) -> dict:
    """Every output of :func:`fit_transition` for one block, from its :func:`_prepare` state,
    curves and their fit."""
    q, picks, n = block["q"], block["picks"], block["n_seeds"]
    n_bootstrap = picks.shape[0]
    alpha = 1.0 - confidence
    tail = _expanded_alpha(alpha, n)
    drops = fit.high - fit.low
    drop, null_drops = drops[0], drops[1 + n_bootstrap:]
    p_value = (1 + np.count_nonzero(null_drops >= drop)) / (n_bootstrap + 1)
    b = slice(1, 1 + n_bootstrap)
    has_data = np.isfinite(q).any(axis=1)
    f = fractions[has_data]  # the model-free estimates step over fractions without data
    steep = _steepest(curves[has_data, : 1 + n_bootstrap], f)
    var = _seed_variance(q[has_data], None)[:, 0]
    peak = _peak(np.concatenate([var[:, None], _seed_variance(q[has_data], picks)], axis=1), f)
    out = dict(
        n_seeds=n, location=fit.location[0], width=fit.width[0], high=fit.high[0], low=fit.low[0], drop=drop,
        p_value=p_value, steepest=steep[0], susceptibility_location=peak[0],
        susceptibility_peak=float(np.nanmax(var)) if np.isfinite(var).any() else math.nan,
        location_bootstrap=fit.location[b], width_bootstrap=fit.width[b],
    )
    for name, draws in (("location", fit.location[b]), ("width", fit.width[b]), ("drop", drops[b]),
                        ("steepest", steep[1:]), ("susceptibility_location", peak[1:])):
        out[name + "_lower"], out[name + "_upper"] = _interval(draws, tail)
    span = float(fractions[-1] - fractions[0])
    edge = 1e-9 * span
    if not (p_value <= alpha and drop > min_drop):
        out["verdict"] = "no step"
    elif out["location_lower"] <= fractions[0] + edge or out["location_upper"] >= fractions[-1] - edge:
        out["verdict"] = "edge"
    elif _RISE[form] * out["width"] > 0.5 * span:
        out["verdict"] = "broad"
    else:
        out["verdict"] = "transition"
    return out


_FIT_OUTPUTS = {
    "location": ("transition fraction f* (midpoint of the fitted step)", "1"),
    "location_lower": ("lower confidence bound of f*", "1"),
    "location_upper": ("upper confidence bound of f*", "1"),
    "width": ("width w of the fitted step", "1"),
    "width_lower": ("lower confidence bound of w", "1"),
    "width_upper": ("upper confidence bound of w", "1"),
    "high": ("fitted dense plateau", None),
    "low": ("fitted collapsed plateau", None),
    "drop": ("fitted drop high - low", None),
    "drop_lower": ("lower confidence bound of the drop", None),
    "drop_upper": ("upper confidence bound of the drop", None),
    "p_value": ("one-sided bootstrap p-value of the drop against a flat curve with the same noise", "1"),
    "steepest": ("midpoint of the steepest descent of the seed-mean curve", "1"),
    "steepest_lower": ("lower confidence bound of the steepest-descent fraction", "1"),
    "steepest_upper": ("upper confidence bound of the steepest-descent fraction", "1"),
    "susceptibility_location": ("fraction of the peak of the seed-to-seed variance", "1"),
    "susceptibility_location_lower": ("lower confidence bound of the variance peak's fraction", "1"),
    "susceptibility_location_upper": ("upper confidence bound of the variance peak's fraction", "1"),
    "susceptibility_peak": ("peak seed-to-seed variance of the quality", "squared"),
    "verdict": ("transition, no step, edge, broad or insufficient data (see analysis.transition)", "1"),
    "has_transition": ("a transition inside the grid (verdict == 'transition')", "1"),
    "n_seeds": ("seeds with data after the exclusions", "1"),
    "n_points": ("grid points used (fractions x seeds with data after the exclusions)", "1"),
    "n_excluded": ("grid points with a value left out (not finished, or not converged when excluded)", "1"),
    "n_unconverged_used": ("grid points used although not converged", "1"),
}


def _flags(flag, quality: xr.DataArray, name: str) -> np.ndarray:
    """``flag`` broadcast to ``quality``'s dims as bool (True when absent)."""
    if flag is None:
        return np.ones(quality.shape, dtype=bool)
    if not isinstance(flag, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray of bool aligned with quality, got {type(flag).__name__}")
    missing = set(flag.dims) - set(quality.dims)
    if missing:
        raise ValueError(f"{name} has dims {sorted(missing)} that quality {quality.dims} lacks")
    try:
        aligned = flag.broadcast_like(quality).transpose(*quality.dims)
        xr.align(aligned, quality, join="exact")
    except ValueError as err:
        raise ValueError(f"{name} must have the same coordinates as quality: {err}") from None
    values = np.asarray(aligned.values)
    if values.dtype == bool:
        return values
    # astype(bool) would read NaN (an unknown flag, or a flag assigned to a Dataset with other
    # coordinates) and the string "False" as True
    expected = f"{name} must be bool (or 0/1 without missing values)"
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"{expected}, got {values.dtype}")
    missing = int(np.count_nonzero(np.isnan(values))) if np.issubdtype(values.dtype, np.floating) else 0
    if missing:
        hint = ", all of them (was it assigned to a Dataset with other coordinates?)" if missing == values.size else ""
        raise ValueError(f"{expected}, got {values.dtype} with {missing} NaN{hint}")
    other = (values != 0) & (values != 1)
    if other.any():
        raise ValueError(f"{expected}, got {values.dtype} with {int(other.sum())} other values, "
                         f"e.g. {values[other].ravel()[0].item()!r}")
    return values == 1


def _usable(quality: xr.DataArray, converged, finished, exclude: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values with excluded points set to NaN, excluded mask, unconverged-but-used mask)."""
    if exclude not in ("unconverged", "unfinished", "none"):
        raise ValueError(f"exclude must be 'unconverged', 'unfinished' or 'none', got {exclude!r}")
    values = np.asarray(quality.values, dtype=np.float64)
    conv = _flags(converged, quality, "converged")
    fin = _flags(finished, quality, "finished")
    if exclude == "unconverged":
        drop = ~(conv & fin)
    elif exclude == "unfinished":
        drop = ~fin
    else:
        drop = np.zeros(values.shape, dtype=bool)
    excluded = drop & np.isfinite(values)
    values = np.where(drop, np.nan, values)
    return values, excluded, np.isfinite(values) & ~conv


def _block_labels(da: xr.DataArray, others: list[str], index: tuple[int, ...]) -> list[str]:
    """Sorted ``name=value`` labels of one block: its coordinates along ``others`` and ``da``'s
    scalar coordinates, so a block seeds the same stream whether it is analysed alone (as a
    ``.sel`` of the whole) or lifted."""
    def plain(v):
        return v.item() if isinstance(v, (np.generic, np.ndarray)) else v

    labels = {d: plain(da[d].values[i]) if d in da.coords else f"[{i}]" for d, i in zip(others, index)}
    labels.update({k: plain(v.values) for k, v in da.coords.items() if v.ndim == 0})
    return [f"{k}={v!r}" for k, v in sorted(labels.items())]


def _coord_attrs(da: xr.DataArray, dim: str) -> dict:
    attrs = dict(da[dim].attrs) if dim in da.coords else {}
    attrs.setdefault("long_name", dim.replace("_", " "))
    attrs.setdefault("units", "1")
    return attrs


def fit_transition(
    quality: xr.DataArray,
    *,
    converged: xr.DataArray | None = None,
    finished: xr.DataArray | None = None,
    exclude: Exclude = "unconverged",
    form: StepForm = "erf",
    fraction_dim: str = "pruning_fraction",
    seed_dim: str = "seed",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    min_drop: float = 0.0,
    keep_bootstrap: bool = False,
    seed: int = 0,
    axis: Axis = "fraction",
) -> xr.Dataset:
    """Step fit, model-free estimates and verdict of the collapse of ``quality`` (module docstring).

    Parameters
    ----------
    quality : xarray.DataArray
        Dims ``fraction_dim``, ``seed_dim`` and any others (``protocol``, ``pruning_time``,
        ``n_hidden``, ...), over which the analysis is repeated. Higher is better; NaN is no data.
        ``fraction_dim`` needs a numeric coordinate of distinct, finite fractions in [0, 1].
    converged, finished : xarray.DataArray of bool, optional
        Flags with (a subset of) ``quality``'s dims and the same coordinates; integer or float
        0/1 is read as bool, NaN (an unknown flag) is refused.
    exclude : "unconverged", "unfinished" or "none"
        Which points are left out: not converged or not finished (default), only the
        unfinished, or none (an unfinished point with a finite quality is then used).
    form : "erf" or "logistic"
    fraction_dim, seed_dim : str
    n_bootstrap : int >= 50
        Resamples of the seeds (the same number again for the flat-curve null).
    confidence : float in (0, 1)
        Two-sided level of the intervals; the step test is one-sided at ``1 - confidence``.
    min_drop : float >= 0
        Smallest drop (in the units of ``quality``) that counts as a step.
    keep_bootstrap : bool
        Also return ``location_bootstrap`` and ``width_bootstrap`` over a ``bootstrap`` dim
        (needed by :func:`finite_size_scaling`).
    seed : int
        Each block of the other dims draws from its own stream, derived from ``seed`` and the
        block's coordinate labels (adding blocks does not change the others).
    axis : "fraction" or "log-remaining"
        The axis the step is fitted along: the pruning fraction ``f``, or ``-log10(1 - f)``, the
        decades of connections removed, for a collapse close to ``f = 1`` (a trained model pruned
        from 99 % to 99.99 % loses its quality gradually in ``log(1 - f)``, not in ``f``, and a
        step in ``f`` cannot place its lower plateau). Positions (``location``, ``steepest``,
        ``susceptibility_location``, their bounds and bootstrap draws) are reported as pruning
        fractions either way; ``width`` is in units of the axis (decades on the log axis).

    Returns
    -------
    xarray.Dataset
        Over the other dims, the variables of ``_FIT_OUTPUTS``: ``location`` (f*), ``width`` and
        their ``_lower``/``_upper`` bounds, ``high``, ``low``, ``drop`` (+ bounds), ``p_value``,
        ``steepest`` (+ bounds), ``susceptibility_location`` (+ bounds), ``susceptibility_peak``,
        ``verdict`` (str), ``has_transition``, ``n_seeds``, ``n_points``, ``n_excluded``,
        ``n_unconverged_used``.
        Attrs ``method``, ``form``, ``confidence``, ``n_bootstrap``, ``exclude``, ``seed``.
    """
    if not isinstance(quality, xr.DataArray):
        raise TypeError(f"quality must be an xarray.DataArray, got {type(quality).__name__}")
    for dim in (fraction_dim, seed_dim):
        if dim not in quality.dims:
            raise ValueError(f"quality has no dimension {dim!r}; its dims are {quality.dims}")
    _check_form(form)
    axis_position(0.0, axis)  # a clear error for an unknown axis
    confidence = _check_confidence(confidence)
    min_drop = check_finite("min_drop", min_drop, low=0.0)
    keep_bootstrap = _check_bool("keep_bootstrap", keep_bootstrap)
    if not isinstance(n_bootstrap, (int, np.integer)) or isinstance(n_bootstrap, bool) or n_bootstrap < 50:
        raise ValueError(f"n_bootstrap must be an integer >= 50, got {n_bootstrap!r}")
    _check_fractions(quality, fraction_dim)  # the positions along the axis are read as fractions
    ordered = quality.sortby(fraction_dim)
    fractions = np.asarray(ordered[fraction_dim].values, dtype=np.float64)
    if np.any(np.diff(fractions) <= 0):
        raise ValueError(f"{fraction_dim} must hold distinct values, got {fractions}")
    if axis == "log-remaining" and not (fractions.min() >= 0 and fractions.max() < 1):
        raise ValueError(f"axis 'log-remaining' needs pruning fractions in [0, 1), got {fractions}")
    x = axis_position(fractions, axis)
    others = [d for d in ordered.dims if d not in (fraction_dim, seed_dim)]
    stacked = ordered.transpose(*others, fraction_dim, seed_dim)
    flags = {k: (v.sortby(fraction_dim) if isinstance(v, xr.DataArray) and fraction_dim in v.dims else v)
             for k, v in (("converged", converged), ("finished", finished))}
    values, excluded, unconverged = _usable(stacked, flags["converged"], flags["finished"], exclude)
    shape = values.shape[:-2]
    names = list(_FIT_OUTPUTS)
    results: dict[str, np.ndarray] = {k: np.full(shape, np.nan) for k in names}
    results["verdict"] = np.full(shape, "insufficient data", dtype=object)
    boot = {k: np.full((*shape, n_bootstrap), np.nan) for k in ("location_bootstrap", "width_bootstrap")}
    # every block's curves are fitted in one batch (fit_step is vectorised over curves)
    prepared = []
    for index in np.ndindex(*shape):
        rng = np.random.default_rng(derive_seed(seed, "analysis.transition.step-fit",
                                                *_block_labels(stacked, others, index)))
        prepared.append((index, *_prepare(values[index], int(n_bootstrap), rng)))
    batch = [curves for _, _, curves in prepared if curves is not None]
    fits = fit_step(np.concatenate(batch, axis=1), x, form=form) if batch else None
    start = 0
    for index, block, curves in prepared:
        if curves is None:
            found = block
        else:
            cut = slice(start, start + curves.shape[1])
            start = cut.stop
            found = _finish(block, curves, StepFit(*(a[cut] for a in fits)), x, form, float(confidence),
                            float(min_drop))
        for k, v in found.items():
            (boot if k in boot else results)[k][index] = v
        results["n_points"][index] = np.isfinite(values[index]).sum()
        results["n_excluded"][index] = excluded[index].sum()
        results["n_unconverged_used"][index] = unconverged[index].sum()
    results["has_transition"] = results["verdict"] == "transition"
    for name in _POSITIONS:
        for k in (name, name + "_lower", name + "_upper"):
            results[k] = axis_fraction(results[k], axis)
    boot["location_bootstrap"] = axis_fraction(boot["location_bootstrap"], axis)
    units = quality.attrs.get("units", "1")
    data_vars = {}
    for k in names:
        arr = results[k]
        if k in ("n_seeds", "n_points", "n_excluded", "n_unconverged_used"):
            arr = arr.astype(np.int64)
        elif k == "verdict":
            arr = arr.astype(str)
        elif k == "has_transition":
            arr = arr.astype(bool)
        long_name, unit = _FIT_OUTPUTS[k]
        unit = f"({units})^2" if unit == "squared" else (unit or units)
        if axis == "log-remaining" and k.startswith("width"):
            long_name += " (decades of 1 - f)"
        data_vars[k] = (others, arr, {"long_name": long_name, "units": unit})
    coords = {d: (d, stacked[d].values, _coord_attrs(stacked, d)) for d in others}
    if keep_bootstrap:
        data_vars["location_bootstrap"] = ((*others, "bootstrap"), boot["location_bootstrap"],
                                           {"long_name": "f* of each bootstrap resample of the seeds", "units": "1"})
        data_vars["width_bootstrap"] = ((*others, "bootstrap"), boot["width_bootstrap"],
                                        {"long_name": "w of each bootstrap resample of the seeds", "units": "1"})
        coords["bootstrap"] = ("bootstrap", np.arange(n_bootstrap),
                               {"long_name": "bootstrap resample index", "units": "1"})
    attrs = {
        "title": f"transition of {quality.attrs.get('long_name', quality.name or 'quality')} along {fraction_dim}",
        "method": f"least-squares {form} step; steepest descent; peak of the seed-to-seed variance",
        "form": form, "confidence": float(confidence), "n_bootstrap": int(n_bootstrap),
        "interval": "expanded percentile bootstrap over seeds (Hesterberg 2015)",
        "exclude": exclude, "min_drop": float(min_drop), "seed": int(seed),
        "fractions": fractions.tolist(), "axis": axis,
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def transition_table(
    merged: xr.Dataset,
    *,
    quality: str = "test_log_likelihood",
    exclude: Exclude = "unconverged",
    form: StepForm = "erf",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    min_drop: float = 0.0,
    keep_bootstrap: bool = True,
    seed: int = 0,
    axis: Axis = "fraction",
) -> xr.Dataset:
    """:func:`fit_transition` of ``merged[quality]`` over every (protocol, pruning_time, n_hidden).

    Parameters
    ----------
    merged : xarray.Dataset
        A merged study with dims ``pruning_fraction`` and ``seed`` (and any of ``protocol``,
        ``pruning_time``, ``n_hidden``); its ``converged`` and ``finished`` variables, when
        present, drive the exclusions.
    quality : str
        The variable to analyse (higher is better).
    exclude, form, n_bootstrap, confidence, min_drop, keep_bootstrap, seed, axis
        As in :func:`fit_transition`.

    Returns
    -------
    xarray.Dataset
        The :func:`fit_transition` table with provenance attrs and ``quality`` naming the variable.
    """
    from dilution.provenance import provenance

    table = fit_transition(
        _merged_quality(merged, quality), converged=merged.get("converged"), finished=merged.get("finished"), exclude=exclude,
        form=form, n_bootstrap=n_bootstrap, confidence=confidence, min_drop=min_drop,
        keep_bootstrap=keep_bootstrap, seed=seed, axis=axis,
    )
    table.attrs.update(provenance(quality=quality))
    return table


# --------------------------------------------------------------------------- protocol gap

def quality_gap(
    quality: xr.DataArray,
    a: dict,
    b: dict,
    *,
    converged: xr.DataArray | None = None,
    finished: xr.DataArray | None = None,
    exclude: Exclude = "unconverged",
    seed_dim: str = "seed",
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Mean quality of selection ``a`` minus selection ``b`` at equal coordinates (e.g. equal
    pruning fraction), with a bootstrap interval over seeds.

    Parameters
    ----------
    quality : xarray.DataArray
        Dims ``seed_dim`` and the dims named in ``a`` and ``b`` and any others.
    a, b : dict
        ``.sel`` selectors, e.g. ``{"protocol": "after"}`` and ``{"protocol": "scratch"}``;
        the dims they select away must be the same.
    converged, finished, exclude
        As in :func:`fit_transition`.
    seed_dim : str
    n_bootstrap : int >= 50
    confidence : float in (0, 1)
    seed : int

    Returns
    -------
    xarray.Dataset
        Over the remaining dims (without ``seed_dim``): ``gap`` (mean of a minus mean of b),
        ``gap_lower``, ``gap_upper``, ``paired`` (the per-seed differences were used: at least
        two seeds have data in both), ``n_a``, ``n_b`` (seeds with data), ``n_pairs``.
    """
    if not isinstance(quality, xr.DataArray):
        raise TypeError(f"quality must be an xarray.DataArray, got {type(quality).__name__}")
    if seed_dim not in quality.dims:
        raise ValueError(f"quality has no dimension {seed_dim!r}; its dims are {quality.dims}")
    for name, sel in (("a", a), ("b", b)):
        if not isinstance(sel, dict) or not sel or any(k not in quality.dims for k in sel):
            raise ValueError(f"{name} must be a non-empty dict of {{dim: value}} over the dims {quality.dims}, got {sel!r}")
    if set(a) != set(b):
        raise ValueError(f"a and b must select the same dims, got {sorted(a)} and {sorted(b)}")
    confidence = _check_confidence(confidence)
    if not isinstance(n_bootstrap, (int, np.integer)) or isinstance(n_bootstrap, bool) or n_bootstrap < 50:
        raise ValueError(f"n_bootstrap must be an integer >= 50, got {n_bootstrap!r}")
    values, _, _ = _usable(quality, converged, finished, exclude)
    usable = quality.copy(data=values)

    def pick(sel: dict, name: str) -> xr.DataArray:
        try:
            out = usable.sel(sel)
        except KeyError as err:
            raise ValueError(f"{name} = {sel!r} selects nothing: {err}") from None
        if any(d in out.dims for d in sel):
            raise ValueError(f"{name} = {sel!r} must pick one value of each dim it names")
        return out.drop_vars([d for d in sel if d in out.coords])

    qa, qb = xr.align(pick(a, "a"), pick(b, "b"), join="inner")
    others = [d for d in qa.dims if d != seed_dim]
    va = np.asarray(qa.transpose(*others, seed_dim).values, dtype=np.float64)
    vb = np.asarray(qb.transpose(*others, seed_dim).values, dtype=np.float64)
    shape = va.shape[:-1]
    out = {k: np.full(shape, np.nan) for k in ("gap", "gap_lower", "gap_upper", "n_a", "n_b", "n_pairs")}
    paired = np.zeros(shape, dtype=bool)
    alpha = 1 - confidence
    for index in np.ndindex(*shape):
        x, y = va[index], vb[index]
        fx, fy = np.isfinite(x), np.isfinite(y)
        both = fx & fy
        out["n_a"][index], out["n_b"][index], out["n_pairs"][index] = fx.sum(), fy.sum(), both.sum()
        rng = np.random.default_rng(derive_seed(seed, "analysis.transition.gap-bootstrap",
                                                *_block_labels(qa, others, index)))
        if both.sum() >= 2:
            d = x[both] - y[both]
            n = d.size
            paired[index] = True
            out["gap"][index] = d.mean()
            draws = d[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
        elif fx.sum() >= 2 and fy.sum() >= 2:
            xs, ys = x[fx], y[fy]
            n = min(xs.size, ys.size)
            out["gap"][index] = xs.mean() - ys.mean()
            draws = (xs[rng.integers(0, xs.size, size=(n_bootstrap, xs.size))].mean(axis=1)
                     - ys[rng.integers(0, ys.size, size=(n_bootstrap, ys.size))].mean(axis=1))
        else:
            continue
        out["gap_lower"][index], out["gap_upper"][index] = _interval(draws, _expanded_alpha(alpha, n))
    units = quality.attrs.get("units", "1")
    what = quality.attrs.get("long_name", quality.name or "quality")
    meta = {
        "gap": (f"mean {what} of {a} minus that of {b}", units),
        "gap_lower": ("lower confidence bound of the gap", units),
        "gap_upper": ("upper confidence bound of the gap", units),
        "n_a": (f"seeds with data in {a}", "1"), "n_b": (f"seeds with data in {b}", "1"),
        "n_pairs": ("seeds with data in both", "1"),
    }
    data_vars = {k: (others, out[k].astype(np.int64) if k.startswith("n_") else out[k],
                     {"long_name": meta[k][0], "units": meta[k][1]}) for k in meta}
    data_vars["paired"] = (others, paired, {"long_name": "the gap is the mean of per-seed differences", "units": "1"})
    coords = {d: (d, qa[d].values, _coord_attrs(qa, d)) for d in others}
    attrs = {"title": f"gap in {what}: {a} minus {b}", "confidence": float(confidence), "n_bootstrap": int(n_bootstrap),
             "interval": "expanded percentile bootstrap over seeds (paired when the seeds match)",
             "exclude": exclude, "seed": int(seed)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- finite-size scaling

def _line_fits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares intercept and slope of each column of ``y`` (k, C) against ``x`` (k,)."""
    xc = x - x.mean()
    slope = xc @ (y - y.mean(axis=0)) / (xc @ xc)
    return y.mean(axis=0) - slope * x.mean(), slope


def finite_size_scaling(
    transitions: xr.Dataset,
    *,
    size_dim: str = "n_hidden",
    confidence: float = 0.95,
    require_transition: bool = True,
) -> xr.Dataset:
    """Location and width of the transition against size: ``f*(N) = f_inf + a / N`` and
    ``w(N) = c N^(-theta)``, with bootstrap intervals (module docstring).

    Parameters
    ----------
    transitions : xarray.Dataset
        :func:`fit_transition` (or :func:`transition_table`) output with ``keep_bootstrap=True``:
        ``location``, ``width``, ``location_bootstrap``, ``width_bootstrap``, ``has_transition``
        and ``n_seeds`` over ``size_dim`` (and any other dims, over which the fit is repeated).
    size_dim : str
        The size coordinate (numeric, e.g. ``n_hidden``).
    confidence : float in (0, 1)
    require_transition : bool
        Use only the sizes whose verdict is a transition (default); otherwise every size with
        a finite location.

    Returns
    -------
    xarray.Dataset
        Over the other dims: ``f_inf``, ``inverse_size_slope`` (a), ``width_exponent`` (theta),
        ``width_amplitude`` (c), each with ``_lower``/``_upper`` bounds, and ``n_sizes`` used
        (NaN estimates with fewer than two sizes).
    """
    if not isinstance(transitions, xr.Dataset):
        raise TypeError(f"transitions must be an xarray.Dataset, got {type(transitions).__name__}")
    needed = ("location", "width", "location_bootstrap", "width_bootstrap", "has_transition", "n_seeds")
    missing = [k for k in needed if k not in transitions]
    if missing:
        raise ValueError(f"transitions lacks {missing}; pass the output of fit_transition(..., keep_bootstrap=True)")
    if size_dim not in transitions.dims:
        raise ValueError(f"transitions has no dimension {size_dim!r}; its dims are {tuple(transitions.dims)}")
    confidence = _check_confidence(confidence)
    require_transition = _check_bool("require_transition", require_transition)
    sizes = np.asarray(transitions[size_dim].values, dtype=np.float64)
    if np.any(~np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"{size_dim} must hold positive sizes, got {sizes}")
    others = [d for d in transitions["location"].dims if d != size_dim]
    t = transitions.transpose(*others, size_dim, "bootstrap", ...)
    names = ("f_inf", "inverse_size_slope", "width_exponent", "width_amplitude")
    shape = tuple(t.sizes[d] for d in others)
    out = {f"{k}{s}": np.full(shape, np.nan) for k in names for s in ("", "_lower", "_upper")}
    n_sizes = np.zeros(shape, dtype=np.int64)
    for index in np.ndindex(*shape):
        loc = t["location"].values[index]
        width = t["width"].values[index]
        ok = np.isfinite(loc) & np.isfinite(width)
        if require_transition:
            ok &= t["has_transition"].values[index].astype(bool)
        n_sizes[index] = ok.sum()
        if ok.sum() < 2:
            continue
        x = 1.0 / sizes[ok]
        locs = np.concatenate([loc[ok, None], t["location_bootstrap"].values[index][ok]], axis=1)  # (k, 1 + B)
        widths = np.concatenate([width[ok, None], t["width_bootstrap"].values[index][ok]], axis=1)
        f_inf, slope = _line_fits(x, locs)
        log_c, neg_theta = _line_fits(np.log(sizes[ok]), np.log(widths))
        tail = _expanded_alpha(1 - confidence, int(t["n_seeds"].values[index][ok].min()))
        for name, est in (("f_inf", f_inf), ("inverse_size_slope", slope), ("width_exponent", -neg_theta),
                          ("width_amplitude", np.exp(log_c))):
            out[name][index] = est[0]
            out[name + "_lower"][index], out[name + "_upper"][index] = _interval(est[1:], tail)
    meta = {
        "f_inf": ("transition fraction extrapolated to infinite size (f* = f_inf + a / N)", "1"),
        "inverse_size_slope": ("coefficient a of 1 / N in f*(N)", "1"),
        "width_exponent": ("exponent theta of the width, w = c N^-theta", "1"),
        "width_amplitude": ("amplitude c of the width, w = c N^-theta", "1"),
    }
    data_vars = {}
    for k, (long_name, unit) in meta.items():
        data_vars[k] = (others, out[k], {"long_name": long_name, "units": unit})
        data_vars[k + "_lower"] = (others, out[k + "_lower"], {"long_name": f"lower confidence bound of {k}", "units": unit})
        data_vars[k + "_upper"] = (others, out[k + "_upper"], {"long_name": f"upper confidence bound of {k}", "units": unit})
    data_vars["n_sizes"] = (others, n_sizes, {"long_name": f"sizes ({size_dim}) used in the fits", "units": "1"})
    coords = {d: (d, t[d].values, _coord_attrs(t["location"], d)) for d in others}
    attrs = {"title": f"finite-size scaling of the transition across {size_dim}", "confidence": float(confidence),
             "interval": "expanded percentile over joint bootstrap resamples of the sizes",
             "require_transition": int(require_transition)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _collapse(x: list[np.ndarray], y: list[np.ndarray], n_points: int) -> float:
    """Mean over pairs of the mean squared distance of curves (x_i, y_i) on their common x range."""
    if len(x) < 2:
        return math.nan
    lo, hi = max(v.min() for v in x), min(v.max() for v in x)
    if not hi > lo:
        return math.nan
    grid = np.linspace(lo, hi, n_points)
    curves = np.stack([np.interp(grid, xi, yi) for xi, yi in zip(x, y)])  # (k, n_points)
    diff = curves[:, None, :] - curves[None, :, :]
    k = len(x)
    return float((diff**2).mean(axis=2)[np.triu_indices(k, 1)].mean())


def collapse_quality(
    quality: xr.DataArray,
    transitions: xr.Dataset,
    *,
    size_dim: str = "n_hidden",
    fraction_dim: str = "pruning_fraction",
    seed_dim: str = "seed",
    converged: xr.DataArray | None = None,
    finished: xr.DataArray | None = None,
    exclude: Exclude = "unconverged",
    n_points: int = 50,
    require_transition: bool = True,
) -> xr.Dataset:
    """How well the curves of different sizes fall on one another when rescaled.

    Each size's seed-mean curve ``m_N(f)`` is normalised to ``(m_N - low_N) / (high_N - low_N)``
    and plotted against ``(f - f*_N) / w_N`` (the fitted plateaus, location and width of
    ``transitions``); the measure is the mean over pairs of sizes of the mean squared distance
    between these curves, linearly interpolated at ``n_points`` points of their common range.
    0 is a perfect collapse; ``collapse_unscaled`` is the same measure against ``f`` itself, the
    reference the rescaling should beat.

    Parameters
    ----------
    quality : xarray.DataArray
        Dims ``size_dim``, ``fraction_dim``, ``seed_dim`` and any others (shared with
        ``transitions``).
    transitions : xarray.Dataset
        ``location``, ``width``, ``high``, ``low`` and ``has_transition`` over ``size_dim`` and the
        other dims (:func:`fit_transition`).
    converged, finished, exclude
        As in :func:`fit_transition`.
    n_points : int >= 2
    require_transition : bool
        Use only the sizes whose verdict is a transition.

    Returns
    -------
    xarray.Dataset
        Over the other dims: ``collapse``, ``collapse_unscaled`` (in squared normalised quality,
        units "1") and ``n_sizes``.
    """
    for name, obj, kind in (("quality", quality, xr.DataArray), ("transitions", transitions, xr.Dataset)):
        if not isinstance(obj, kind):
            raise TypeError(f"{name} must be an xarray.{kind.__name__}, got {type(obj).__name__}")
    for dim in (size_dim, fraction_dim, seed_dim):
        if dim not in quality.dims:
            raise ValueError(f"quality has no dimension {dim!r}; its dims are {quality.dims}")
    missing = [k for k in ("location", "width", "high", "low", "has_transition") if k not in transitions]
    if missing:
        raise ValueError(f"transitions lacks {missing}; pass the output of fit_transition")
    if not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    require_transition = _check_bool("require_transition", require_transition)
    values, _, _ = _usable(quality, converged, finished, exclude)
    ordered = quality.copy(data=values).sortby(fraction_dim)
    others = [d for d in ordered.dims if d not in (size_dim, fraction_dim, seed_dim)]
    q = ordered.transpose(*others, size_dim, fraction_dim, seed_dim)
    params = transitions[["location", "width", "high", "low", "has_transition"]].sel(
        {d: q[d] for d in (*others, size_dim)}).transpose(*others, size_dim)
    f = np.asarray(q[fraction_dim].values, dtype=np.float64)
    shape = tuple(q.sizes[d] for d in others)
    collapse, unscaled = np.full(shape, np.nan), np.full(shape, np.nan)
    n_sizes = np.zeros(shape, dtype=np.int64)
    for index in np.ndindex(*shape):
        xs, us, ys = [], [], []
        for k in range(q.sizes[size_dim]):
            p = {v: float(params[v].values[index + (k,)]) for v in ("location", "width", "high", "low")}
            if require_transition and not bool(params["has_transition"].values[index + (k,)]):
                continue
            block = q.values[index + (k,)]
            count = np.isfinite(block).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, np.nansum(block, axis=1) / count, np.nan)
            ok = np.isfinite(mean)
            if ok.sum() < 2 or not all(math.isfinite(v) for v in p.values()) or p["high"] == p["low"]:
                continue
            ys.append((mean[ok] - p["low"]) / (p["high"] - p["low"]))
            xs.append((f[ok] - p["location"]) / p["width"])
            us.append(f[ok])
        n_sizes[index] = len(xs)
        collapse[index], unscaled[index] = _collapse(xs, ys, int(n_points)), _collapse(us, ys, int(n_points))
    coords = {d: (d, q[d].values, _coord_attrs(q, d)) for d in others}
    data_vars = {
        "collapse": (others, collapse, {"long_name": "mean squared distance between rescaled normalised curves "
                                        "of two sizes", "units": "1"}),
        "collapse_unscaled": (others, unscaled, {"long_name": "mean squared distance between normalised curves "
                                                 "of two sizes against the fraction itself", "units": "1"}),
        "n_sizes": (others, n_sizes, {"long_name": f"sizes ({size_dim}) compared", "units": "1"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs={"title": f"data collapse across {size_dim}",
                                                        "n_points": int(n_points), "exclude": exclude})


# --------------------------------------------------------------------------- over a merged study

def gap_table(
    merged: xr.Dataset,
    a: dict,
    b: dict,
    *,
    quality: str = "test_log_likelihood",
    exclude: Exclude = "unconverged",
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """:func:`quality_gap` of ``merged[quality]`` with the study's ``converged``/``finished`` flags,
    e.g. ``gap_table(merged, {"protocol": "after"}, {"protocol": "scratch"})`` (retrained minus
    trained from scratch at equal sparsity), with provenance attrs."""
    from dilution.provenance import provenance

    q = _merged_quality(merged, quality)
    gap = quality_gap(q, a, b, converged=merged.get("converged"), finished=merged.get("finished"),
                      exclude=exclude, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    # which cells were compared, so a reader (a figure legend) can name them
    gap.attrs.update(provenance(quality=quality, minuend=json.dumps(a, sort_keys=True, default=str),
                                subtrahend=json.dumps(b, sort_keys=True, default=str)))
    return gap


def scaling_table(
    merged: xr.Dataset,
    transitions: xr.Dataset,
    *,
    quality: str = "test_log_likelihood",
    size_dim: str = "n_hidden",
    confidence: float = 0.95,
    require_transition: bool = True,
) -> xr.Dataset:
    """:func:`finite_size_scaling` of ``transitions`` (a :func:`transition_table` with its
    bootstrap draws) and :func:`collapse_quality` of ``merged[quality]`` (with the exclusions
    ``transitions`` was made with), in one Dataset with provenance attrs."""
    from dilution.provenance import provenance

    q = _merged_quality(merged, quality)
    fss = finite_size_scaling(transitions, size_dim=size_dim, confidence=confidence,
                              require_transition=require_transition)
    col = collapse_quality(q, transitions, size_dim=size_dim, converged=merged.get("converged"),
                           finished=merged.get("finished"), exclude=transitions.attrs.get("exclude", "unconverged"),
                           require_transition=require_transition)
    col = col.rename(n_sizes="n_sizes_collapsed")
    out = fss.assign({k: col[k] for k in col.data_vars})
    out.attrs = {}
    out.attrs.update(provenance(quality=quality, title=f"finite-size scaling across {size_dim}",
                                confidence=float(confidence), require_transition=int(require_transition)))
    return out


def _merged_quality(merged: xr.Dataset, quality: str) -> xr.DataArray:
    if not isinstance(merged, xr.Dataset):
        raise TypeError(f"merged must be an xarray.Dataset, got {type(merged).__name__}")
    if quality not in merged.data_vars:
        raise ValueError(f"quality {quality!r} is not a variable of the merged Dataset; it has {sorted(merged.data_vars)}")
    return merged[quality]
