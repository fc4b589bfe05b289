"""Stationary laws of rewiring runs: estimates with confidence intervals and distances to a reference.

Every function takes the arrays the batched rewiring kernels and the reference sampler
(:func:`analysis.posterior.sample_posterior`) record, with dims ``(replica, record, ...)``:
``masks (replica, record, visible, hidden)`` bool, ``theta`` / ``weights`` of the same shape and
``log_likelihood (replica, record)``; and returns a labelled Dataset (digest ``ncg_deepr.md`` C.5,
rows 1-8 and 11).

Uncertainty. Records along a replica are autocorrelated, so every standard error divides by the
*effective* sample size ``ESS = n_replicas n_records / tau`` (:func:`effective_sample_size`, the
integrated autocorrelation time of :func:`analysis.autocorr.integrated_time` from the
replica-averaged autocorrelation function); intervals are normal, ``estimate ± z se`` with
``z = Phi^{-1}((1 + level) / 2)``. Divergences between distributions over masks are biased
upwards by sampling noise; their *noise floor* is the same divergence computed for ``n_boot``
parametric resamples of ``ESS`` independent masks drawn from the reference itself (for two
samples, both drawn from the pooled law), so "the estimate is at the floor" is a statement
about the sample size, not a tolerance picked by hand.

Masks are coded as integers (:func:`mask_codes`): bit ``k`` is pair ``k`` of the row-major
flattening ``k = i n_hidden + j``.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy.stats import ks_2samp, norm, wasserstein_distance

from dilution.provenance import provenance
from dilution.rng import derive_seed
from dilution.validation import check_finite, check_int, check_seed

from .autocorr import integrated_time

__all__ = [
    "mask_codes",
    "masks_from_codes",
    "split_rhat",
    "effective_sample_size",
    "inclusion_probabilities",
    "active_count_law",
    "mask_divergence",
    "weight_laws",
    "density_continuity",
    "expected_log_likelihood",
    "flip_statistics",
    "first_order_optimality",
    "mixing",
    "stationarity",
    "deviation_ratios",
]

_ONE = "1"


def _var(dims, values, long_name: str, units: str = _ONE):
    return (dims, values, {"long_name": long_name, "units": units})


def _pair_coords(v: int, h: int) -> dict:
    return {"visible": ("visible", np.arange(v), {"long_name": "visible unit", "units": _ONE}),
            "hidden": ("hidden", np.arange(h), {"long_name": "hidden unit", "units": _ONE})}


def _z(level: float) -> float:
    level = check_finite("level", level)
    if not 0 < level < 1:
        raise ValueError(f"level (confidence level of the intervals) must be in (0, 1), got {level!r}")
    return float(norm.ppf(0.5 + level / 2))


def _check_masks(masks, name: str = "masks") -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim != 4:
        raise ValueError(f"{name} must have shape (replica, record, visible, hidden), got {m.shape}")
    if m.dtype != bool:
        if not np.all((m == 0) | (m == 1)):
            raise ValueError(f"{name} must be boolean (or 0/1), found other values")
        m = m.astype(bool)
    if m.shape[1] < 4:
        raise ValueError(f"{name} needs at least 4 records per replica, got {m.shape[1]}")
    return m


def _check_trace(trace, name: str) -> np.ndarray:
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 4:
        raise ValueError(f"{name} must have shape (replica, record) with at least 4 records, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, found NaN or infinite values")
    return x


def mask_codes(masks) -> np.ndarray:
    """Integer code of each mask: bit ``k`` set when pair ``k = i n_hidden + j`` is active.

    Parameters
    ----------
    masks : array_like of bool, shape (..., n_visible, n_hidden)
        At most 62 pairs.

    Returns
    -------
    ndarray of int64, shape (...)
    """
    m = np.asarray(masks, dtype=bool)
    d = m.shape[-2] * m.shape[-1]
    if d > 62:
        raise ValueError(f"mask codes hold at most 62 pairs, got {m.shape[-2]} x {m.shape[-1]} = {d}")
    flat = m.reshape(*m.shape[:-2], d).astype(np.int64)
    return flat @ (np.int64(1) << np.arange(d, dtype=np.int64))


def masks_from_codes(codes, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`mask_codes`: bool array of shape ``codes.shape + shape``."""
    c = np.asarray(codes, dtype=np.int64)
    v, h = shape
    return ((c[..., None] >> np.arange(v * h, dtype=np.int64)) & 1).astype(bool).reshape(*c.shape, v, h)


def split_rhat(trace) -> float:
    """Split R-hat (Gelman et al., Bayesian Data Analysis 3rd ed., eq. 11.4) across replicas.

    Each replica is cut in halves; with ``n`` records per half, ``W`` the mean within-half
    variance and ``B / n`` the variance of the half means, ``R = sqrt(((n-1)/n W + B/n) / W)``.
    Traces constant within every half give 1 when all halves agree and ``inf`` otherwise.

    Parameters
    ----------
    trace : array_like, shape (replica, record)
    """
    x = _check_trace(trace, "trace")
    n = x.shape[1] // 2
    halves = np.concatenate([x[:, :n], x[:, x.shape[1] - n:]], axis=0)
    w = halves.var(axis=1, ddof=1).mean()
    b_over_n = halves.mean(axis=1).var(ddof=1)
    if w == 0:
        return 1.0 if b_over_n == 0 else float("inf")
    return float(np.sqrt(((n - 1) / n * w + b_over_n) / w))


def effective_sample_size(trace) -> float:
    """``n_replicas n_records / tau`` with ``tau`` of :func:`analysis.autocorr.integrated_time`.

    A trace constant along every replica has ``tau = 1`` (nothing to correlate).

    Parameters
    ----------
    trace : array_like, shape (replica, record)
    """
    x = _check_trace(trace, "trace")
    tau = float(integrated_time(x)["tau_mean"])
    return float(x.size / max(tau, 1e-12))


def _pair_ess(x: np.ndarray) -> np.ndarray:
    """ESS of every (visible, hidden) trace of ``x`` (replica, record, visible, hidden)."""
    _, _, v, h = x.shape
    return np.array([[effective_sample_size(x[:, :, i, j]) for j in range(h)] for i in range(v)])


def inclusion_probabilities(masks, *, reference=None, level: float = 0.95) -> xr.Dataset:
    """Marginal inclusion probabilities ``P(M_ij = 1)`` (digest C.5 row 1) with intervals.

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    reference : array_like, shape (visible, hidden), optional
        Reference probabilities (exact, or from the reference sampler).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    xarray.Dataset
        Dims (visible, hidden): ``inclusion``, ``standard_error`` (``sqrt(p(1-p)/ESS)``),
        ``lower``/``upper`` (clipped to [0, 1]), ``ess``; with a reference also ``reference``,
        ``difference`` (estimate minus reference) and ``z_score`` (difference / standard error).
    """
    m = _check_masks(masks)
    z = _z(level)
    x = m.astype(np.float64)
    p = x.mean(axis=(0, 1))
    ess = _pair_ess(x)
    se = np.sqrt(p * (1 - p) / ess)
    pair = ("visible", "hidden")
    data = {
        "inclusion": _var(pair, p, "marginal inclusion probability"),
        "standard_error": _var(pair, se, "standard error of the inclusion probability (from the ESS)"),
        "lower": _var(pair, np.clip(p - z * se, 0, 1), f"lower end of the {level:.0%} interval"),
        "upper": _var(pair, np.clip(p + z * se, 0, 1), f"upper end of the {level:.0%} interval"),
        "ess": _var(pair, ess, "effective sample size of the inclusion indicator"),
    }
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != p.shape:
            raise ValueError(f"reference inclusion probabilities must have shape {p.shape}, got {ref.shape}")
        diff = p - ref
        with np.errstate(divide="ignore", invalid="ignore"):
            zs = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf * np.sign(diff)))
        data.update(reference=_var(pair, ref, "reference inclusion probability"),
                    difference=_var(pair, diff, "inclusion probability minus the reference"),
                    z_score=_var(pair, zs, "difference over its standard error"))
    ds = xr.Dataset(data, coords=_pair_coords(*p.shape))
    ds.attrs.update(provenance(metric="marginal inclusion probabilities", level=level,
                               n_replicas=m.shape[0], n_records=m.shape[1]))
    return ds


def active_count_law(masks, *, reference=None, level: float = 0.95) -> xr.Dataset:
    """The law of the active count ``|M|`` (digest C.5 row 2).

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    reference : array_like, shape (n_visible n_hidden + 1,), optional
        Reference probabilities of ``|M| = 0 .. D`` (e.g. ``binom.pmf``).
    level : float

    Returns
    -------
    xarray.Dataset
        Dim ``n_active`` (0 .. D): ``probability``, ``standard_error`` (of each indicator
        ``1[|M| = k]`` from the ESS of the count trace), ``lower``/``upper``; scalars
        ``mean_active``, ``mean_active_se``, ``ess``; with a reference also ``reference`` and
        ``total_variation`` (half the L1 distance).
    """
    m = _check_masks(masks)
    z = _z(level)
    d = m.shape[2] * m.shape[3]
    count = m.sum(axis=(2, 3))
    p = np.bincount(count.ravel(), minlength=d + 1) / count.size
    varies = count.min() != count.max()
    ess = effective_sample_size(count) if varies else float(count.size)
    se = np.sqrt(p * (1 - p) / ess)
    data = {
        "probability": _var("n_active", p, "probability of the active count"),
        "standard_error": _var("n_active", se, "standard error of the probability (from the ESS)"),
        "lower": _var("n_active", np.clip(p - z * se, 0, 1), f"lower end of the {level:.0%} interval"),
        "upper": _var("n_active", np.clip(p + z * se, 0, 1), f"upper end of the {level:.0%} interval"),
        "mean_active": _var((), float(count.mean()), "mean active count"),
        "mean_active_se": _var((), float(count.std() / np.sqrt(ess)), "standard error of the mean active count"),
        "ess": _var((), ess, "effective sample size of the active count"),
    }
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (d + 1,):
            raise ValueError(f"reference law of the active count must have shape ({d + 1},), got {ref.shape}")
        data.update(reference=_var("n_active", ref, "reference probability of the active count"),
                    total_variation=_var((), float(0.5 * np.abs(p - ref).sum()), "total variation distance to the reference"))
    ds = xr.Dataset(data, coords={"n_active": ("n_active", np.arange(d + 1), {"long_name": "active connections",
                                                                              "units": _ONE})})
    ds.attrs.update(provenance(metric="law of the active count", level=level))
    return ds


def _mask_ess(m: np.ndarray) -> float:
    """Conservative ESS of a mask sequence: the smallest ESS of its non-constant indicators."""
    x = m.astype(np.float64)
    _, _, v, h = x.shape
    values = [effective_sample_size(x[:, :, i, j]) for i in range(v) for j in range(h)
              if x[:, :, i, j].min() != x[:, :, i, j].max()]
    return min(values) if values else float(x.shape[0] * x.shape[1])


def _smoothed(counts: np.ndarray, n_eff: float, pseudo_count: float) -> np.ndarray:
    """Counts rescaled to ``n_eff`` draws plus a pseudo-count per cell, normalised."""
    n = counts.sum()
    scaled = counts * (n_eff / n) + pseudo_count
    return scaled / scaled.sum()


def _divergences(p_hat: np.ndarray, q_hat: np.ndarray, p_raw: np.ndarray, q_raw: np.ndarray):
    """(KL(q||p), KL(p||q), TV) with q the reference; KL on smoothed laws, TV on raw frequencies."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_ref = float(np.sum(np.where(q_hat > 0, q_hat * np.log(q_hat / p_hat), 0.0)))
        kl_est = float(np.sum(np.where(p_hat > 0, p_hat * np.log(p_hat / q_hat), 0.0)))
    return kl_ref, kl_est, float(0.5 * np.abs(p_raw - q_raw).sum())


def mask_divergence(
    masks,
    reference,
    *,
    n_active: int | None = None,
    pseudo_count: float = 0.5,
    level: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> xr.Dataset:
    """The distribution over masks against a reference: KL both ways and total variation (C.5 row 3).

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    reference : array_like
        Either probabilities of every mask, shape ``(2**D,)`` indexed by :func:`mask_codes`
        (exact or closed form), or a second mask sample ``(replica, record, visible, hidden)``
        (e.g. reference-sampler draws), then estimated like ``masks``.
    n_active : int, optional
        Compare the size-``K`` slice: both laws conditioned on ``|M| = K``.
    pseudo_count : float
        Added to every cell of a sampled law after its counts are rescaled to its ESS, so KL
        stays finite.
    level : float
        Quantile of the noise floor reported as ``*_floor_upper``.
    n_boot : int
        Parametric resamples for the noise floor.
    seed : int
        Of the noise floor's resamples (``derive_seed(seed, "mask-divergence-floor")``).

    Returns
    -------
    xarray.Dataset
        Dim ``mask`` (codes of the support): ``probability`` (raw frequency), ``reference``.
        Scalars: ``kl_reference_estimate`` = KL(reference || estimate), ``kl_estimate_reference``
        = KL(estimate || reference), ``total_variation``; for each the noise floor's mean
        (``*_floor``) and ``level`` quantile (``*_floor_upper``); ``ess`` (the smallest
        ESS of the mask's inclusion indicators) and ``reference_ess`` (inf for exact).
    """
    m = _check_masks(masks)
    v, h = m.shape[2:]
    d = v * h
    if d > 22:
        raise ValueError(f"mask_divergence tabulates 2**{d} masks of a {v} x {h} RBM; at most 22 pairs")
    if pseudo_count < 0 or not np.isfinite(pseudo_count):
        raise ValueError(f"pseudo_count must be a finite number >= 0, got {pseudo_count!r}")
    n_boot = check_int("n_boot", n_boot, low=10)
    all_codes = np.arange(2**d, dtype=np.int64)
    support = all_codes
    if n_active is not None:
        n_active = check_int("n_active", n_active, low=0, high=d)
        support = all_codes[masks_from_codes(all_codes, (v, h)).sum(axis=(1, 2)) == n_active]
    index = np.full(2**d, -1)
    index[support] = np.arange(support.size)

    def tabulate(sample):
        codes = mask_codes(sample).ravel()
        inside = index[codes] >= 0
        return np.bincount(index[codes[inside]], minlength=support.size).astype(np.float64)

    counts = tabulate(m)
    if counts.sum() == 0:
        raise ValueError(f"no mask of the sample has {n_active} active connections")
    ess = _mask_ess(m) * counts.sum() / (m.shape[0] * m.shape[1])
    ref = np.asarray(reference)
    if ref.ndim == 4:
        r_masks = _check_masks(ref, "reference")
        if r_masks.shape[2:] != (v, h):
            raise ValueError(f"reference masks have pairs {r_masks.shape[2:]}, expected {(v, h)}")
        r_counts = tabulate(r_masks)
        if r_counts.sum() == 0:
            raise ValueError(f"no mask of the reference sample has {n_active} active connections")
        ref_ess = _mask_ess(r_masks) * r_counts.sum() / (r_masks.shape[0] * r_masks.shape[1])
        q_raw = r_counts / r_counts.sum()
        q_hat = _smoothed(r_counts, ref_ess, pseudo_count)
    elif ref.shape == (2**d,):
        q = np.asarray(ref, dtype=np.float64)[support]
        if np.any(q < 0) or q.sum() <= 0:
            raise ValueError("reference mask probabilities must be >= 0 with a positive sum on the compared masks")
        q_raw = q_hat = q / q.sum()
        ref_ess = np.inf
    else:
        raise ValueError(f"reference must be mask probabilities of shape ({2**d},) or masks of shape "
                         f"(replica, record, {v}, {h}), got shape {ref.shape}")
    p_raw = counts / counts.sum()
    p_hat = _smoothed(counts, ess, pseudo_count)
    observed = _divergences(p_hat, q_hat, p_raw, q_raw)
    rng = np.random.default_rng(derive_seed(check_seed(seed), "mask-divergence-floor"))
    pooled = q_raw if np.isinf(ref_ess) else (p_raw * ess + q_raw * ref_ess) / (ess + ref_ess)
    n_a = max(int(round(ess)), 1)
    floors = np.empty((n_boot, 3))
    for k in range(n_boot):
        a = rng.multinomial(n_a, pooled).astype(np.float64)
        if np.isinf(ref_ess):
            b_raw, b_hat = q_raw, q_hat
        else:
            b = rng.multinomial(max(int(round(ref_ess)), 1), pooled).astype(np.float64)
            b_raw, b_hat = b / b.sum(), _smoothed(b, b.sum(), pseudo_count)
        floors[k] = _divergences(_smoothed(a, a.sum(), pseudo_count), b_hat, a / a.sum(), b_raw)
    names = (("kl_reference_estimate", "KL(reference || estimate) over masks"),
             ("kl_estimate_reference", "KL(estimate || reference) over masks"),
             ("total_variation", "total variation distance over masks"))
    data = {
        "probability": _var("mask", p_raw, "frequency of the mask"),
        "reference": _var("mask", q_raw, "reference probability of the mask"),
        "ess": _var((), ess, "effective sample size of the masks (smallest over inclusion indicators)"),
        "reference_ess": _var((), float(ref_ess), "effective sample size of the reference (inf: exact)"),
    }
    for k, (name, long_name) in enumerate(names):
        units = "nats" if name.startswith("kl") else _ONE
        data[name] = _var((), observed[k], long_name, units)
        data[f"{name}_floor"] = _var((), float(floors[:, k].mean()), f"noise floor of {long_name} (mean)", units)
        data[f"{name}_floor_upper"] = _var((), float(np.quantile(floors[:, k], level)),
                                           f"noise floor of {long_name} ({level:.0%} quantile)", units)
    ds = xr.Dataset(data, coords={"mask": ("mask", support, {"long_name": "mask code (bit k: row-major pair k active)",
                                                             "units": _ONE})})
    ds.attrs.update(provenance(metric="distribution over masks against a reference", pseudo_count=float(pseudo_count),
                               n_active_slice=n_active if n_active is not None else "all", n_boot=n_boot, seed=seed,
                               level=level))
    return ds


def _active_values(values: np.ndarray, masks: np.ndarray, i: int, j: int) -> np.ndarray:
    return values[:, :, i, j][masks[:, :, i, j]]


def _ks_critical(n_a: float, n_b: float, level: float) -> float:
    """Asymptotic two-sample KS critical value ``c(level) sqrt(1/n_a + 1/n_b)`` (Kolmogorov's law)."""
    from scipy.stats import kstwobign

    return float(kstwobign.ppf(level) * np.sqrt(1.0 / n_a + 1.0 / n_b))


def weight_laws(weights, masks, reference_weights, reference_masks, *, level: float = 0.95) -> xr.Dataset:
    """Conditional weight laws ``w_ij | M_ij = 1`` against a reference sample (digest C.5 row 4).

    Parameters
    ----------
    weights, masks : array_like, shape (replica, record, visible, hidden)
        The weights (or ``theta``) and masks of the runs.
    reference_weights, reference_masks : array_like, shape (replica', record', visible, hidden)
        The same from the reference (e.g. :func:`analysis.posterior.sample_posterior`).
    level : float
        Of the KS critical value.

    Returns
    -------
    xarray.Dataset
        Dims (visible, hidden): ``ks_statistic``, ``wasserstein`` (Wasserstein-1 distance, units of
        the weights), ``mean_weight``, ``reference_mean_weight``, ``n_effective`` and
        ``reference_n_effective`` (active records scaled by ESS / records), ``ks_critical`` (the
        two-sample critical value at ``level`` for those effective sizes: a KS statistic above
        it is a difference beyond sampling noise). Pooled over pairs, the law of ``|w|``:
        ``pooled_ks_statistic``, ``pooled_wasserstein``. NaN where either side has no active record.
    """
    w, m = np.asarray(weights, dtype=np.float64), _check_masks(masks)
    rw, rm = np.asarray(reference_weights, dtype=np.float64), _check_masks(reference_masks, "reference_masks")
    if w.shape != m.shape or rw.shape != rm.shape or m.shape[2:] != rm.shape[2:]:
        raise ValueError(f"weights {w.shape} and masks {m.shape} must match, and so must reference_weights "
                         f"{rw.shape} and reference_masks {rm.shape}, with the same (visible, hidden)")
    _z(level)
    v, h = m.shape[2:]
    out = {k: np.full((v, h), np.nan) for k in ("ks", "w1", "mean", "ref_mean", "n", "ref_n", "crit")}
    w0, rw0 = np.where(m, np.nan_to_num(w), 0.0), np.where(rm, np.nan_to_num(rw), 0.0)
    for i in range(v):
        for j in range(h):
            a, b = _active_values(w, m, i, j), _active_values(rw, rm, i, j)
            if a.size == 0 or b.size == 0:
                continue
            n_a = a.size * effective_sample_size(w0[:, :, i, j]) / (m.shape[0] * m.shape[1]) if a.size > 1 else 1.0
            n_b = b.size * effective_sample_size(rw0[:, :, i, j]) / (rm.shape[0] * rm.shape[1]) if b.size > 1 else 1.0
            out["ks"][i, j] = ks_2samp(a, b).statistic
            out["w1"][i, j] = wasserstein_distance(a, b)
            out["mean"][i, j], out["ref_mean"][i, j] = a.mean(), b.mean()
            out["n"][i, j], out["ref_n"][i, j] = n_a, n_b
            out["crit"][i, j] = _ks_critical(n_a, n_b, level)
    pa, pb = np.abs(w[m]), np.abs(rw[rm])
    pooled = pa.size > 0 and pb.size > 0
    pair = ("visible", "hidden")
    ds = xr.Dataset(
        {
            "ks_statistic": _var(pair, out["ks"], "two-sample Kolmogorov-Smirnov statistic of the active weight"),
            "wasserstein": _var(pair, out["w1"], "Wasserstein-1 distance of the active weight laws", "weight units"),
            "mean_weight": _var(pair, out["mean"], "mean active weight", "weight units"),
            "reference_mean_weight": _var(pair, out["ref_mean"], "reference mean active weight", "weight units"),
            "n_effective": _var(pair, out["n"], "effective number of active records"),
            "reference_n_effective": _var(pair, out["ref_n"], "effective number of active reference records"),
            "ks_critical": _var(pair, out["crit"], f"two-sample KS critical value at {level:.0%} for the effective sizes"),
            "pooled_ks_statistic": _var((), ks_2samp(pa, pb).statistic if pooled else np.nan,
                                        "KS statistic of |w| pooled over active pairs"),
            "pooled_wasserstein": _var((), wasserstein_distance(pa, pb) if pooled else np.nan,
                                       "Wasserstein-1 distance of |w| pooled over active pairs", "weight units"),
        },
        coords=_pair_coords(v, h),
    )
    ds.attrs.update(provenance(metric="conditional weight laws against a reference", level=level))
    return ds


def density_continuity(theta, *, delta: float, level: float = 0.95) -> xr.Dataset:
    """Density of ``theta`` just below and just above 0 (soft-DEEP R; digest B.7, C.5 row 5).

    The stationary density is continuous at 0, so the counts in ``[-delta, 0)`` and
    ``[0, delta)`` (pooled over pairs) agree up to noise and ``O(delta)`` curvature.

    Parameters
    ----------
    theta : array_like, shape (replica, record, visible, hidden)
    delta : float
        Band width, > 0.
    level : float

    Returns
    -------
    xarray.Dataset
        Scalars ``density_below`` and ``density_above`` (per pair, per unit theta),
        ``difference`` (above minus below) with ``standard_error`` from the ESS of the per-record
        count difference, ``lower``/``upper`` and ``z_score``.
    """
    t = np.asarray(theta, dtype=np.float64)
    if t.ndim != 4 or t.shape[1] < 4:
        raise ValueError(f"theta must have shape (replica, record, visible, hidden) with >= 4 records, got {t.shape}")
    if not check_finite("delta", delta) > 0:
        raise ValueError(f"delta (band width around theta = 0) must be > 0, got {delta!r}")
    z = _z(level)
    n_pairs = t.shape[2] * t.shape[3]
    below = ((t >= -delta) & (t < 0)).sum(axis=(2, 3)) / (n_pairs * delta)
    above = ((t >= 0) & (t < delta)).sum(axis=(2, 3)) / (n_pairs * delta)
    diff = above - below
    ess = effective_sample_size(diff) if diff.min() != diff.max() else float(diff.size)
    se = float(diff.std() / np.sqrt(ess))
    d = float(diff.mean())
    ds = xr.Dataset({
        "density_below": _var((), float(below.mean()), "density of theta in [-delta, 0)", "per unit theta"),
        "density_above": _var((), float(above.mean()), "density of theta in [0, delta)", "per unit theta"),
        "difference": _var((), d, "density above minus below 0", "per unit theta"),
        "standard_error": _var((), se, "standard error of the difference (from the ESS)", "per unit theta"),
        "lower": _var((), d - z * se, f"lower end of the {level:.0%} interval", "per unit theta"),
        "upper": _var((), d + z * se, f"upper end of the {level:.0%} interval", "per unit theta"),
        "z_score": _var((), d / se if se > 0 else 0.0, "difference over its standard error"),
    })
    ds.attrs.update(provenance(metric="density continuity of theta at 0", delta=float(delta), level=level))
    return ds


def _mean_with_error(x: np.ndarray) -> tuple[float, float, float]:
    ess = effective_sample_size(x) if x.min() != x.max() else float(x.size)
    return float(x.mean()), float(x.std() / np.sqrt(ess)), ess


def expected_log_likelihood(log_likelihood, *, reference=None, level: float = 0.95) -> xr.Dataset:
    """``E[lbar]`` over the stationary law with an interval (digest C.5 row 6).

    Parameters
    ----------
    log_likelihood : array_like, shape (replica, record)
        Mean log-likelihood of the data at each record (nats per sample).
    reference : float or array_like of shape (replica', record'), optional
        Exact expectation, or reference-sampler draws (their error is added in quadrature).
    level : float

    Returns
    -------
    xarray.Dataset
        ``mean``, ``standard_error``, ``lower``, ``upper``, ``ess``; with a reference also
        ``reference``, ``reference_standard_error``, ``difference`` and its ``difference_lower`` /
        ``difference_upper``.
    """
    x = _check_trace(log_likelihood, "log_likelihood")
    z = _z(level)
    mean, se, ess = _mean_with_error(x)
    nats = "nats per sample"
    data = {
        "mean": _var((), mean, "expected mean log-likelihood", nats),
        "standard_error": _var((), se, "standard error (from the ESS)", nats),
        "lower": _var((), mean - z * se, f"lower end of the {level:.0%} interval", nats),
        "upper": _var((), mean + z * se, f"upper end of the {level:.0%} interval", nats),
        "ess": _var((), ess, "effective sample size"),
    }
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim == 0:
            r_mean, r_se = float(ref), 0.0
        else:
            r_mean, r_se, _ = _mean_with_error(_check_trace(ref, "reference"))
        diff, d_se = mean - r_mean, float(np.hypot(se, r_se))
        data.update(
            reference=_var((), r_mean, "reference expected mean log-likelihood", nats),
            reference_standard_error=_var((), r_se, "standard error of the reference", nats),
            difference=_var((), diff, "expected log-likelihood minus the reference", nats),
            difference_lower=_var((), diff - z * d_se, f"lower end of the {level:.0%} interval of the difference", nats),
            difference_upper=_var((), diff + z * d_se, f"upper end of the {level:.0%} interval of the difference", nats),
        )
    ds = xr.Dataset(data)
    ds.attrs.update(provenance(metric="expected mean log-likelihood", level=level))
    return ds


def flip_statistics(masks, *, steps_per_record: int = 1) -> xr.Dataset:
    """Birth and death rates, survival of new connections and the one-step survival law (C.5 row 7).

    A birth is an inactive-to-active change between consecutive records, a death the reverse.
    A connection born at record ``t0`` lives ``L`` records if it is first seen inactive at
    ``t0 + L``; one still active at the last record is censored. Survival is the Kaplan-Meier
    estimate. With ``steps_per_record > 1`` several flips between records are invisible: rates
    are then lower bounds.

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    steps_per_record : int
        Updates between records (rates are per update).

    Returns
    -------
    xarray.Dataset
        Dims (visible, hidden): ``birth_rate``, ``death_rate`` (per pair per update). Scalars
        ``birth_rate_total``, ``death_rate_total`` (per pair per update), ``n_births``,
        ``n_censored``, ``one_step_survival`` (fraction of births still active one record later)
        with ``one_step_survival_se``, ``mean_lifetime`` (restricted to the run, updates). Dim
        ``lifetime`` (records 1 .. n_records - 1): ``survival`` (Kaplan-Meier ``P(L > lifetime)``).
    """
    m = _check_masks(masks)
    steps = check_int("steps_per_record", steps_per_record, low=1)
    r, n, v, h = m.shape
    born = ~m[:, :-1] & m[:, 1:]
    died = m[:, :-1] & ~m[:, 1:]
    intervals = r * (n - 1) * steps
    lifetimes, censored = [], []
    for rep in range(r):
        for i in range(v):
            for j in range(h):
                on = m[rep, :, i, j]
                starts = np.flatnonzero(~on[:-1] & on[1:]) + 1
                ends = np.flatnonzero(on[:-1] & ~on[1:]) + 1
                for s in starts:
                    later = ends[ends > s]
                    if later.size:
                        lifetimes.append(later[0] - s)
                        censored.append(False)
                    else:
                        lifetimes.append(n - s)
                        censored.append(True)
    life = np.asarray(lifetimes, dtype=np.int64)
    cens = np.asarray(censored, dtype=bool)
    grid = np.arange(1, n)
    survival = np.ones(grid.size)
    s = 1.0
    for k, ell in enumerate(grid):
        at_risk = np.sum(life >= ell)
        deaths = np.sum((life == ell) & ~cens)
        if at_risk:
            s *= 1 - deaths / at_risk
        survival[k] = s
    # Births at the last interval cannot show their one-step fate: only lifetimes observable past 1 record count.
    observable = (life >= 2) | ~cens
    one = float(np.mean(life[observable] >= 2)) if observable.any() else np.nan
    one_se = float(np.sqrt(one * (1 - one) / observable.sum())) if observable.any() else np.nan
    ds = xr.Dataset(
        {
            "birth_rate": _var(("visible", "hidden"), born.sum(axis=(0, 1)) / intervals, "births per update", "per update"),
            "death_rate": _var(("visible", "hidden"), died.sum(axis=(0, 1)) / intervals, "deaths per update", "per update"),
            "birth_rate_total": _var((), float(born.sum() / (intervals * v * h)), "births per pair per update", "per update"),
            "death_rate_total": _var((), float(died.sum() / (intervals * v * h)), "deaths per pair per update", "per update"),
            "n_births": _var((), int(life.size), "births observed"),
            "n_censored": _var((), int(cens.sum()), "births still active at the last record"),
            "one_step_survival": _var((), one, "fraction of births still active one record later"),
            "one_step_survival_se": _var((), one_se, "binomial standard error of the one-step survival"),
            "mean_lifetime": _var((), float((1 + survival[:-1].sum()) * steps) if grid.size else np.nan,
                                  "restricted mean lifetime of new connections", "updates"),
            "survival": _var("lifetime", survival, "Kaplan-Meier probability a new connection outlives the lifetime"),
        },
        coords={**_pair_coords(v, h),
                "lifetime": ("lifetime", grid * steps, {"long_name": "lifetime of a new connection", "units": "updates"})},
    )
    ds.attrs.update(provenance(metric="flip rates and survival of new connections", steps_per_record=steps))
    return ds


def mixing(masks, log_likelihood=None) -> xr.Dataset:
    """Integrated autocorrelation times, ESS and R-hat across replicas (digest C.5 row 8).

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    log_likelihood : array_like, shape (replica, record), optional

    Returns
    -------
    xarray.Dataset
        Dim ``observable`` (``n_active``, ``hamming_to_start``: Hamming distance to the replica's
        first recorded mask, and ``log_likelihood`` when given): ``tau``, ``ess``, ``rhat``.
        Dims (visible, hidden): ``tau_inclusion``, ``ess_inclusion``, ``rhat_inclusion``.
        ``tau`` in records; constant traces have ``tau = 1``.
    """
    m = _check_masks(masks)
    x = m.astype(np.float64)
    traces = {"n_active": x.sum(axis=(2, 3)), "hamming_to_start": (m != m[:, :1]).sum(axis=(2, 3)).astype(np.float64)}
    if log_likelihood is not None:
        ll = _check_trace(log_likelihood, "log_likelihood")
        if ll.shape != m.shape[:2]:
            raise ValueError(f"log_likelihood must have shape {m.shape[:2]} (replica, record), got {ll.shape}")
        traces["log_likelihood"] = ll

    def tau_of(tr):
        return float(integrated_time(tr)["tau_mean"]) if tr.min() != tr.max() else 1.0

    names = list(traces)
    tau = np.array([tau_of(traces[k]) for k in names])
    ess = np.array([traces[k].size / t for k, t in zip(names, tau)])
    rhat = np.array([split_rhat(traces[k]) for k in names])
    _, _, v, h = m.shape
    t_in = np.array([[tau_of(x[:, :, i, j]) for j in range(h)] for i in range(v)])
    r_in = np.array([[split_rhat(x[:, :, i, j]) for j in range(h)] for i in range(v)])
    pair = ("visible", "hidden")
    ds = xr.Dataset(
        {
            "tau": _var("observable", tau, "integrated autocorrelation time", "records"),
            "ess": _var("observable", ess, "effective sample size"),
            "rhat": _var("observable", rhat, "split R-hat across replicas"),
            "tau_inclusion": _var(pair, t_in, "integrated autocorrelation time of the inclusion indicator", "records"),
            "ess_inclusion": _var(pair, x[:, :, 0, 0].size / t_in, "effective sample size of the inclusion indicator"),
            "rhat_inclusion": _var(pair, r_in, "split R-hat of the inclusion indicator"),
        },
        coords={**_pair_coords(v, h),
                "observable": ("observable", np.array(names), {"long_name": "observed trace", "units": _ONE})},
    )
    ds.attrs.update(provenance(metric="mixing of rewiring replicas", n_replicas=m.shape[0], n_records=m.shape[1]))
    return ds


def stationarity(masks, log_likelihood=None, *, pseudo_count: float = 0.5, level: float = 0.95,
                 n_boot: int = 200, seed: int = 0) -> xr.Dataset:
    """First half of the records against the second (digest C.5 row 11).

    Parameters
    ----------
    masks : array_like of bool, shape (replica, record, visible, hidden)
    log_likelihood : array_like, shape (replica, record), optional
    pseudo_count, level, n_boot, seed
        As :func:`mask_divergence` (the second half is the reference sample).

    Returns
    -------
    xarray.Dataset
        Dims (visible, hidden): ``inclusion_first``, ``inclusion_second``,
        ``inclusion_difference`` (second minus first) and ``inclusion_z_score``; scalars
        ``max_abs_z_score``, the mask divergences of :func:`mask_divergence` between the halves
        with their noise floors, and with a log-likelihood ``log_likelihood_difference``
        with ``log_likelihood_difference_lower`` / ``_upper``.
    """
    m = _check_masks(masks)
    n = m.shape[1] // 2
    if n < 4:
        raise ValueError(f"stationarity compares halves of at least 4 records, got {m.shape[1]} records")
    first, second = m[:, :n], m[:, m.shape[1] - n:]
    a = inclusion_probabilities(first, level=level)
    b = inclusion_probabilities(second, level=level)
    diff = b["inclusion"].values - a["inclusion"].values
    se = np.hypot(a["standard_error"].values, b["standard_error"].values)
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf))
    pair = ("visible", "hidden")
    data = {
        "inclusion_first": _var(pair, a["inclusion"].values, "inclusion probability, first half"),
        "inclusion_second": _var(pair, b["inclusion"].values, "inclusion probability, second half"),
        "inclusion_difference": _var(pair, diff, "inclusion probability, second minus first half"),
        "inclusion_z_score": _var(pair, zs, "inclusion difference over its standard error"),
        "max_abs_z_score": _var((), float(np.abs(zs).max()), "largest |z| of the inclusion differences"),
    }
    if m.shape[2] * m.shape[3] <= 22:
        div = mask_divergence(first, second, pseudo_count=pseudo_count, level=level, n_boot=n_boot, seed=seed)
        for name in div.data_vars:
            if div[name].ndim == 0 and name not in ("ess", "reference_ess"):
                data[f"mask_{name}"] = _var((), float(div[name]), f"between halves: {div[name].attrs['long_name']}",
                                            div[name].attrs["units"])
    if log_likelihood is not None:
        ll = _check_trace(log_likelihood, "log_likelihood")
        e = expected_log_likelihood(ll[:, ll.shape[1] - n:], reference=ll[:, :n], level=level)
        nats = "nats per sample"
        data.update(
            log_likelihood_difference=_var((), float(e["difference"]), "mean log-likelihood, second minus first half", nats),
            log_likelihood_difference_lower=_var((), float(e["difference_lower"]),
                                                 f"lower end of the {level:.0%} interval", nats),
            log_likelihood_difference_upper=_var((), float(e["difference_upper"]),
                                                 f"upper end of the {level:.0%} interval", nats),
        )
    ds = xr.Dataset(data, coords=_pair_coords(*m.shape[2:]))
    ds.attrs.update(provenance(metric="stationarity: first half against second half", level=level, seed=seed))
    return ds


def first_order_optimality(masks, gradient, *, signs=None, alpha: float | None = None, weights=None) -> xr.Dataset:
    """Absent pairs whose addition would raise the objective to first order (digest C.3, C.5 row 9).

    DEEP R (``signs`` and ``alpha``): an absent pair is *improving* when ``s_ij g_ij > alpha`` (its
    re-entry at ``theta = 0`` survives the prior step on average). NCG (``weights``, the stored
    weights of absent pairs): when ``W_ij g_ij > 0``. Zero improving pairs is NCG's fixed-point
    condition; a sampler keeps a positive count.

    Parameters
    ----------
    masks : array_like of bool, shape (replica, visible, hidden)
        Final masks.
    gradient : array_like, shape (replica, visible, hidden)
        Mean log-likelihood gradient ``g`` at the final parameters (every pair).
    signs : array_like of ±1, shape (visible, hidden) or (replica, visible, hidden), optional
    alpha : float, optional
        With ``signs``: DEEP R's criterion.
    weights : array_like, shape (replica, visible, hidden), optional
        Instead of ``signs``/``alpha``: NCG's criterion.

    Returns
    -------
    xarray.Dataset
        Dims (replica, visible, hidden): ``improving`` (bool as 0/1); dim replica: ``n_improving``,
        ``n_absent``, ``fraction_improving``.
    """
    m = np.asarray(masks)
    g = np.asarray(gradient, dtype=np.float64)
    if m.ndim != 3 or g.shape != m.shape:
        raise ValueError(f"masks and gradient must both have shape (replica, visible, hidden), got {m.shape} and {g.shape}")
    m = m.astype(bool)
    if (signs is None) == (weights is None):
        raise ValueError("give signs and alpha (DEEP R's criterion s g > alpha) or weights (NCG's W g > 0), not both")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != m.shape:
            raise ValueError(f"weights must have shape {m.shape}, got {w.shape}")
        score, criterion = w * g, "W g > 0"
    else:
        if alpha is None:
            raise ValueError("alpha (DEEP R's L1 coefficient) is required with signs")
        a = check_finite("alpha", alpha)
        s = np.broadcast_to(np.asarray(signs), m.shape)
        score, criterion = s * g - a, "s g > alpha"
    improving = ~m & (score > 0)
    n_absent = (~m).sum(axis=(1, 2))
    n_imp = improving.sum(axis=(1, 2))
    r, v, h = m.shape
    ds = xr.Dataset(
        {
            "improving": _var(("replica", "visible", "hidden"), improving.astype(np.int8),
                              f"absent pair with {criterion} (1) or not (0)"),
            "n_improving": _var("replica", n_imp, f"absent pairs with {criterion}"),
            "n_absent": _var("replica", n_absent, "absent pairs"),
            "fraction_improving": _var("replica", np.where(n_absent > 0, n_imp / np.maximum(n_absent, 1), 0.0),
                                       f"fraction of absent pairs with {criterion}"),
        },
        coords={**_pair_coords(v, h), "replica": ("replica", np.arange(r), {"long_name": "replica", "units": _ONE})},
    )
    ds.attrs.update(provenance(metric="first-order optimality of final masks", criterion=criterion))
    return ds


def deviation_ratios(estimates, standard_errors, reference, reference_standard_error, *, level: float = 0.95,
                     n_draws: int = 20_000, seed: int = 0) -> xr.Dataset:
    """Deviations of a sequence of estimates from one reference and the ratios of successive deviations.

    For a statistic measured at learning rates ``eta_0 > eta_1 > ...`` (each half the one before),
    ``d_k = m_k - r`` is the discretisation bias at ``eta_k`` and ``rho_k = d_k / d_{k+1}`` its
    ratio per halving: 2 for an ``O(eta)`` bias, ``sqrt(2)`` for ``O(sqrt(eta))``. The estimates
    have independent normal errors; the reference's error is shared by every deviation, so the
    ratios' intervals come from ``n_draws`` joint normal draws of the estimates and the
    reference (percentile intervals; unbounded when a denominator's interval holds 0). The
    delta-method standard error of each ratio, with the shared error's covariance, is returned
    beside them.

    Parameters
    ----------
    estimates, standard_errors : array_like, shape (..., n)
        ``m_k`` and their standard errors along the last axis.
    reference, reference_standard_error : array_like, shape (...)
        ``r`` and its standard error.
    level : float
    n_draws : int
    seed : int
        Of the draws (``derive_seed(seed, "deviation-ratios")``).

    Returns
    -------
    xarray.Dataset
        Dim ``index`` (n): ``deviation``, ``deviation_standard_error`` (estimate and reference
        errors in quadrature), ``deviation_lower`` / ``deviation_upper``. Dim ``halving`` (n - 1,
        ratio ``k`` is ``d_k / d_{k+1}``): ``ratio``, ``ratio_lower``, ``ratio_upper``,
        ``ratio_standard_error``. Leading dims are ``dim_0, dim_1, ...``.
    """
    m = np.asarray(estimates, dtype=np.float64)
    s = np.asarray(standard_errors, dtype=np.float64)
    if m.ndim < 1 or m.shape[-1] < 2 or s.shape != m.shape:
        raise ValueError(f"estimates and standard_errors must have one shape (..., n) with n >= 2, got {m.shape} and "
                         f"{s.shape}")
    r = np.broadcast_to(np.asarray(reference, dtype=np.float64), m.shape[:-1])
    sr = np.broadcast_to(np.asarray(reference_standard_error, dtype=np.float64), m.shape[:-1])
    if np.any(s < 0) or np.any(sr < 0):
        raise ValueError("standard errors must be >= 0")
    z = _z(level)
    n_draws = check_int("n_draws", n_draws, low=100)
    d = m - r[..., None]
    d_se = np.sqrt(s**2 + sr[..., None] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d[..., :-1] / d[..., 1:]
        # Var(a/b) to first order with Var a = s_a^2 + s_r^2, Var b = s_b^2 + s_r^2, Cov(a, b) = s_r^2.
        b = d[..., 1:]
        var = (d_se[..., :-1] ** 2 - 2 * ratio * sr[..., None] ** 2 + ratio**2 * d_se[..., 1:] ** 2) / b**2
        rng = np.random.default_rng(derive_seed(check_seed(seed), "deviation-ratios"))
        m_draw = m + s * rng.standard_normal((n_draws, *m.shape))
        r_draw = r + sr * rng.standard_normal((n_draws, *r.shape))
        d_draw = m_draw - r_draw[..., None]
        ratio_draw = d_draw[..., :-1] / d_draw[..., 1:]
    with warnings.catch_warnings():
        # A deviation that is exactly 0 (a conserved statistic) has no ratio: NaN, not a warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(ratio_draw, [0.5 - level / 2, 0.5 + level / 2], axis=0)
    lead = tuple(f"dim_{i}" for i in range(m.ndim - 1))
    idx, hv = (*lead, "index"), (*lead, "halving")
    ds = xr.Dataset({
        "deviation": _var(idx, d, "estimate minus the reference"),
        "deviation_standard_error": _var(idx, d_se, "standard error of the deviation (estimate and reference errors "
                                                   "in quadrature)"),
        "deviation_lower": _var(idx, d - z * d_se, f"lower end of the {level:.0%} interval of the deviation"),
        "deviation_upper": _var(idx, d + z * d_se, f"upper end of the {level:.0%} interval of the deviation"),
        "ratio": _var(hv, ratio, "deviation over the next deviation"),
        "ratio_lower": _var(hv, lo, f"lower end of the {level:.0%} interval of the ratio (joint normal draws)"),
        "ratio_upper": _var(hv, hi, f"upper end of the {level:.0%} interval of the ratio (joint normal draws)"),
        "ratio_standard_error": _var(hv, np.sqrt(var), "delta-method standard error of the ratio"),
    }, coords={"index": ("index", np.arange(m.shape[-1]), {"long_name": "position in the sequence", "units": _ONE}),
               "halving": ("halving", np.arange(m.shape[-1] - 1),
                           {"long_name": "ratio of deviation k to deviation k + 1", "units": _ONE})})
    ds.attrs.update(provenance(metric="deviations from a reference and their successive ratios", level=level,
                               n_draws=n_draws, seed=seed))
    return ds
