"""Which connections survive pruning: degrees, isolated units, overlap across seeds and with a
planted teacher's connections.

A mask is an array of shape (n_visible, n_hidden), True (or 1: study point files store int8)
where the connection is kept; functions that compare several take a stack of shape
(n_masks, n_visible, n_hidden).

Overlap across seeds is the Jaccard index ``|A & B| / |A | B|``. Its reference is the value two
independent uniformly random masks with the same numbers of connections would have: their
intersection ``X`` is hypergeometric (``M = n_visible n_hidden`` connections, ``k_A`` marked,
``k_B`` drawn), so ``E[J] = sum_x P(X = x) x / (k_A + k_B - x)`` exactly (:func:`random_jaccard`).

Overlap in time (:func:`two_time_overlap`): for one run's masks saved at times t_w < t, the
normalised overlap ``C(t_w, t) = |A(t_w) & A(t)| / sqrt(|A(t_w)| |A(t)|)``, the fraction of the
connections kept at both times when the count is fixed (DEEP R). It tells a connectivity sampler at
equilibrium, whose C depends on the lag ``t - t_w`` alone, from one that ages, whose C depends on the
ratio ``t / t_w`` (the turnover per epoch falling with the run's age). Its chance level is exact:
``E|A & B| = k_A k_B / M`` for independent uniformly random masks, so ``sqrt(k_A k_B) / M``.

Overlap with a planted teacher (:func:`teacher_overlap`). A student's hidden units are only
defined up to a permutation, so each teacher hidden unit is matched to a distinct student hidden
unit so that the total number of shared connections is largest (the assignment problem, solved
by ``scipy.optimize.linear_sum_assignment``; a student with more hidden units leaves some
unmatched, and they are reported). ``recall`` is the fraction of the teacher's connections found
in the matched student columns, ``precision`` the fraction of the matched columns' connections
that are the teacher's. The optimal matching inflates the overlap of an unrelated mask above the
hypergeometric mean, so the chance level is estimated the same way: the recall of uniformly
random masks with the student's number of connections, each optimally matched.
"""

from __future__ import annotations

import math
import reprlib
from typing import NamedTuple

import numpy as np
import xarray as xr

from dilution.rng import derive_seed

__all__ = [
    "Degrees",
    "TeacherOverlap",
    "consensus",
    "degree_histogram",
    "degree_map",
    "degrees",
    "isolated_units",
    "jaccard",
    "mask_summary",
    "pairwise_jaccard",
    "random_jaccard",
    "teacher_overlap",
    "two_time_overlap",
]


def _as_mask(mask, name: str = "mask", ndim: tuple[int, ...] | None = None) -> np.ndarray:
    """``mask`` as a bool array; ``ndim`` the allowed numbers of dims (default: any >= 2)."""
    arr = np.asarray(mask.values if isinstance(mask, xr.DataArray) else mask)
    if (arr.ndim < 2) if ndim is None else (arr.ndim not in ndim):
        wanted = ">= 2" if ndim is None else " or ".join(map(str, ndim))
        raise ValueError(f"{name} must have {wanted} dims (..., n_visible, n_hidden), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be bool or 0/1, got values {np.unique(arr)[:5]}")
        arr = arr.astype(bool)
    return arr


class Degrees(NamedTuple):
    """Connections per unit: ``visible`` shape (..., n_visible), ``hidden`` shape (..., n_hidden)."""

    visible: np.ndarray
    hidden: np.ndarray


def degrees(mask) -> Degrees:
    """Degrees of the visible and hidden units.

    Parameters
    ----------
    mask : array_like of bool, shape (..., n_visible, n_hidden)

    Returns
    -------
    Degrees
        ``visible`` shape (..., n_visible), ``hidden`` shape (..., n_hidden), int64.
    """
    m = _as_mask(mask)
    return Degrees(m.sum(axis=-1, dtype=np.int64), m.sum(axis=-2, dtype=np.int64))


def degree_histogram(mask) -> Degrees:
    """Degree distributions: how many units have each degree.

    Parameters
    ----------
    mask : array_like of bool, shape (..., n_visible, n_hidden)

    Returns
    -------
    Degrees
        ``visible`` shape (..., n_hidden + 1): entry ``d`` counts the visible units with ``d``
        connections; ``hidden`` shape (..., n_visible + 1) likewise.
    """
    m = _as_mask(mask)
    deg = degrees(m)
    n_v, n_h = m.shape[-2:]

    def hist(d: np.ndarray, top: int) -> np.ndarray:
        flat = d.reshape(-1, d.shape[-1])
        return np.stack([np.bincount(row, minlength=top + 1) for row in flat]).reshape(*d.shape[:-1], top + 1)

    return Degrees(hist(deg.visible, n_h), hist(deg.hidden, n_v))


def isolated_units(mask) -> Degrees:
    """Units without any connection (a visible unit then follows its bias alone).

    Parameters
    ----------
    mask : array_like of bool, shape (..., n_visible, n_hidden)

    Returns
    -------
    Degrees
        Counts of isolated ``visible`` and ``hidden`` units, each of shape (...,).
    """
    deg = degrees(mask)
    return Degrees((deg.visible == 0).sum(axis=-1), (deg.hidden == 0).sum(axis=-1))


def degree_map(mask, image_shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel visible degree, as an image.

    Parameters
    ----------
    mask : array_like of bool, shape (..., n_visible, n_hidden)
    image_shape : (rows, cols) with rows * cols == n_visible (row-major pixels, as MNIST's 28 x 28)

    Returns
    -------
    ndarray, shape (..., rows, cols), int64
    """
    m = _as_mask(mask)
    shape = tuple(int(x) for x in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != m.shape[-2]:
        raise ValueError(f"image_shape must be (rows, cols) with rows * cols = n_visible = {m.shape[-2]}, "
                         f"got {image_shape!r}")
    return degrees(m).visible.reshape(*m.shape[:-2], *shape)


def jaccard(a, b) -> float:
    """``|a & b| / |a | b|`` of two masks of the same shape (1.0 when both are empty)."""
    x, y = _as_mask(a, "a", (2,)), _as_mask(b, "b", (2,))
    if x.shape != y.shape:
        raise ValueError(f"masks a and b must have the same shape, got {x.shape} and {y.shape}")
    union = np.count_nonzero(x | y)
    return 1.0 if union == 0 else np.count_nonzero(x & y) / union


def pairwise_jaccard(masks) -> np.ndarray:
    """Jaccard index of every pair of masks.

    Parameters
    ----------
    masks : array_like of bool, shape (n_masks, n_visible, n_hidden)

    Returns
    -------
    ndarray, shape (n_masks, n_masks)
        Symmetric, ones on the diagonal.
    """
    m = _as_mask(masks, "masks", (3,)).reshape(len(masks), -1).astype(np.int64)
    inter = m @ m.T
    kept = np.diag(inter)
    union = kept[:, None] + kept[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def random_jaccard(n_connections: int, kept_a: int, kept_b: int) -> tuple[float, float]:
    """Mean and standard deviation of the Jaccard index of two independent uniformly random masks.

    Parameters
    ----------
    n_connections : int
        Size ``M`` of the full mask (n_visible * n_hidden).
    kept_a, kept_b : int
        Connections kept by each mask.

    Returns
    -------
    (mean, sd) : float, float
        Exact, from the hypergeometric law of the intersection (module docstring).
    """
    from scipy.stats import hypergeom

    for name, k in (("kept_a", kept_a), ("kept_b", kept_b)):
        if not 0 <= int(k) <= int(n_connections):
            raise ValueError(f"{name} must be in [0, n_connections={n_connections}], got {k}")
    m, ka, kb = int(n_connections), int(kept_a), int(kept_b)
    if ka + kb == 0:
        return 1.0, 0.0
    x = np.arange(max(0, ka + kb - m), min(ka, kb) + 1)
    p = hypergeom.pmf(x, m, ka, kb)
    j = x / (ka + kb - x)
    mean = float(np.sum(p * j))
    return mean, math.sqrt(max(float(np.sum(p * j * j)) - mean * mean, 0.0))


def two_time_overlap(masks, times) -> xr.Dataset:
    """The overlap of one run's masks at every pair of saved times t_w < t (module docstring).

    Parameters
    ----------
    masks : array_like or DataArray of bool, shape (n_times, n_visible, n_hidden)
        The masks of one run at increasing times, e.g. a training history's ``mask``.
    times : array_like of shape (n_times,), or str
        Their times (epochs or updates), strictly increasing and >= 0; with a DataArray, the name
        of its coordinate along the first dimension may be given instead (a history's ``"step"``
        or ``"epochs_trained"``).

    Returns
    -------
    Dataset over ``pair`` (``n_times (n_times - 1) / 2``, ordered by t_w, then t)
        ``overlap``: ``|A(t_w) & A(t)| / sqrt(|A(t_w)| |A(t)|)`` (NaN when a mask is empty);
        ``chance``: ``sqrt(|A(t_w)| |A(t)|) / M``, its mean for independent uniformly random masks
        with those counts; ``kept_w``, ``kept``: the counts. Coordinates ``t_w``, ``t``, ``lag``
        (``t - t_w``) and ``ratio`` (``t / t_w``, inf at t_w = 0), to group by:
        ``ds.overlap.groupby("ratio").mean()``.

    Raises
    ------
    ValueError
        If the masks are not a binary stack with one time each, or the times do not increase.
    """
    if isinstance(times, str):
        if not isinstance(masks, xr.DataArray):
            raise ValueError(f"times={times!r} names a coordinate, which needs masks as a DataArray; got "
                             f"{type(masks).__name__}: pass the times as an array")
        first = masks.dims[0] if masks.ndim else None
        if times not in masks.coords or masks[times].dims != (first,):
            raise ValueError(f"times={times!r} must name a coordinate of masks along its first dimension {first!r}; "
                             f"its coordinates are {sorted(map(str, masks.coords))}")
        times = masks[times].values
    m = _as_mask(masks, "masks", (3,))
    t = np.asarray(times)
    if t.ndim != 1 or t.size != m.shape[0] or t.dtype.kind not in "iuf":
        raise ValueError(f"times must be {m.shape[0]} numbers, one per mask, got {reprlib.repr(times)}")
    t = t.astype(np.float64)
    if not (np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) > 0)):
        raise ValueError(f"times must be finite, >= 0 and strictly increasing, got {t.tolist()}")
    flat = m.reshape(m.shape[0], -1).astype(np.int64)
    shared = flat @ flat.T
    kept = np.diag(shared).astype(np.float64)
    w, later = np.triu_indices(m.shape[0], k=1)
    norm = np.sqrt(kept[w] * kept[later])
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(norm > 0, shared[w, later] / np.where(norm > 0, norm, 1.0), np.nan)
        ratio = np.where(t[w] > 0, t[later] / np.where(t[w] > 0, t[w], 1.0), np.inf)
    return xr.Dataset(
        {
            "overlap": ("pair", overlap, {"long_name": "two-time overlap |A(t_w) & A(t)| / sqrt(|A(t_w)| |A(t)|)",
                                          "units": "1"}),
            "chance": ("pair", norm / flat.shape[1], {"long_name": "mean overlap of independent uniformly random "
                                                      "masks with the same counts", "units": "1"}),
            "kept_w": ("pair", kept[w].astype(np.int64), {"long_name": "connections kept at t_w", "units": "1"}),
            "kept": ("pair", kept[later].astype(np.int64), {"long_name": "connections kept at t", "units": "1"}),
        },
        coords={
            "t_w": ("pair", t[w], {"long_name": "earlier time (waiting time)"}),
            "t": ("pair", t[later], {"long_name": "later time"}),
            "lag": ("pair", t[later] - t[w], {"long_name": "t - t_w"}),
            "ratio": ("pair", ratio, {"long_name": "t / t_w", "units": "1"}),
        },
        attrs={"comment": "at equilibrium the overlap depends on the lag alone; in an aging run on the ratio"},
    )


def consensus(masks, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """How often each connection is kept across masks, and the ones most masks keep.

    Parameters
    ----------
    masks : array_like of bool, shape (n_masks, n_visible, n_hidden)
    threshold : float in [0, 1)
        A connection is in the consensus when kept by more than this fraction of the masks.

    Returns
    -------
    frequency : ndarray, shape (n_visible, n_hidden)
        Fraction of the masks keeping each connection.
    kept : ndarray of bool, shape (n_visible, n_hidden)
        ``frequency > threshold``.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    freq = _as_mask(masks, "masks", (3,)).mean(axis=0)
    return freq, freq > threshold


class TeacherOverlap(NamedTuple):
    """How much of a planted teacher's connectivity a student mask keeps (module docstring).

    Attributes
    ----------
    matching : ndarray, shape (n_teacher_hidden,)
        Student hidden unit matched to each teacher hidden unit (-1 where the student has too few).
    shared : int
        Teacher connections present in the matched student columns.
    recall : float
        ``shared`` / the teacher's connections.
    precision : float
        ``shared`` / the connections of the matched student columns.
    unmatched : ndarray, shape (n_unmatched,)
        Student hidden units left unmatched.
    unmatched_degree : ndarray, shape (n_unmatched,)
        Their degrees.
    chance_recall : float
        Mean recall of uniformly random masks with the student's number of connections, each
        optimally matched (NaN with ``n_null = 0``).
    chance_recall_upper : float
        The 0.95 quantile of those recalls.
    """

    matching: np.ndarray
    shared: int
    recall: float
    precision: float
    unmatched: np.ndarray
    unmatched_degree: np.ndarray
    chance_recall: float
    chance_recall_upper: float


def _match(teacher: np.ndarray, student: np.ndarray) -> tuple[np.ndarray, int]:
    """Optimal teacher -> student hidden-unit matching and the connections it shares."""
    from scipy.optimize import linear_sum_assignment

    common = teacher.T.astype(np.int64) @ student.astype(np.int64)  # (n_t, n_s)
    rows, cols = linear_sum_assignment(common, maximize=True)
    matching = np.full(teacher.shape[1], -1, dtype=np.int64)
    matching[rows] = cols
    return matching, int(common[rows, cols].sum())


def teacher_overlap(mask, teacher_mask, *, matching: np.ndarray | None = None, n_null: int = 200,
                    seed: int = 0) -> TeacherOverlap:
    """Overlap of a student mask with a planted teacher's, up to the permutation of hidden units.

    Parameters
    ----------
    mask : array_like of bool, shape (n_visible, n_hidden)
        The student's surviving connections.
    teacher_mask : array_like of bool, shape (n_visible, n_teacher_hidden)
    matching : ndarray of int, shape (n_teacher_hidden,), optional
        A fixed teacher -> student matching (distinct student units, -1 for none) instead of the
        optimal one; the chance level then uses the same fixed matching.
    n_null : int >= 0
        Random masks for the chance level.
    seed : int
        Seeds the random masks.

    Returns
    -------
    TeacherOverlap
    """
    student = _as_mask(mask, "mask", (2,))
    teacher = _as_mask(teacher_mask, "teacher_mask", (2,))
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"mask and teacher_mask must have the same number of visible units, "
                         f"got {student.shape[0]} and {teacher.shape[0]}")
    if not isinstance(n_null, (int, np.integer)) or n_null < 0:
        raise ValueError(f"n_null must be an integer >= 0, got {n_null!r}")
    if matching is not None:
        fixed = np.asarray(matching, dtype=np.int64)
        used = fixed[fixed >= 0]
        if (fixed.shape != (teacher.shape[1],) or np.any(fixed >= student.shape[1]) or np.any(fixed < -1)
                or len(set(used.tolist())) != used.size):
            raise ValueError(f"matching must hold {teacher.shape[1]} distinct student hidden units in "
                             f"[0, {student.shape[1]}) or -1, got {matching!r}")

    def overlap(s: np.ndarray) -> tuple[np.ndarray, int]:
        if matching is None:
            return _match(teacher, s)
        rows = np.flatnonzero(fixed >= 0)
        return fixed, int(np.count_nonzero(teacher[:, rows] & s[:, fixed[rows]]))

    match, shared = overlap(student)
    n_teacher = np.count_nonzero(teacher)
    matched = match[match >= 0]
    in_matched = np.count_nonzero(student[:, matched])
    unmatched = np.setdiff1d(np.arange(student.shape[1]), matched)
    chance = upper = math.nan
    if n_null > 0 and n_teacher > 0:
        rng = np.random.default_rng(derive_seed(seed, "analysis.masks.random-student-masks"))
        kept = np.count_nonzero(student)
        recalls = np.empty(n_null)
        for i in range(n_null):
            flat = np.zeros(student.size, dtype=bool)
            flat[rng.choice(student.size, size=kept, replace=False)] = True
            recalls[i] = overlap(flat.reshape(student.shape))[1] / n_teacher
        chance, upper = float(recalls.mean()), float(np.quantile(recalls, 0.95))
    return TeacherOverlap(
        matching=match, shared=shared,
        recall=shared / n_teacher if n_teacher else math.nan,
        precision=shared / in_matched if in_matched else math.nan,
        unmatched=unmatched, unmatched_degree=student[:, unmatched].sum(axis=0).astype(np.int64),
        chance_recall=chance, chance_recall_upper=upper,
    )


def mask_summary(masks: xr.DataArray, *, teacher_mask=None, threshold: float = 0.5, seed_dim: str = "seed",
                 n_null: int = 200, seed: int = 0) -> xr.Dataset:
    """Mask statistics of a study, over every combination of its other dims.

    Parameters
    ----------
    masks : xarray.DataArray of bool or 0/1
        Dims ``seed_dim``, ``visible``, ``hidden`` and any others (``protocol``,
        ``pruning_fraction``, ...). The caller leaves out points without a mask (unfinished).
    teacher_mask : array_like of bool, shape (n_visible, n_teacher_hidden), optional
        The planted teacher's connections; adds the teacher overlap variables.
    threshold : float
        Consensus threshold (:func:`consensus`).
    seed_dim : str
    n_null : int
        Random masks for the chance level of the teacher overlap.
    seed : int

    Returns
    -------
    xarray.Dataset
        Per mask (other dims and ``seed_dim``): ``connectivity``, ``isolated_visible``,
        ``isolated_hidden`` (and ``teacher_recall``, ``teacher_precision``,
        ``teacher_chance_recall`` with a teacher). Per other dims: ``mean_visible_degree``
        (visible; reshape to the image for a degree map), ``visible_degree_count`` (visible_degree), ``hidden_degree_count``
        (hidden_degree), means over the seeds; ``mean_jaccard`` over pairs of seeds and
        ``random_jaccard`` (its expectation for random masks of the same sizes);
        ``consensus_frequency`` (visible, hidden).
    """
    if not isinstance(masks, xr.DataArray):
        raise TypeError(f"masks must be an xarray.DataArray, got {type(masks).__name__}")
    for dim in (seed_dim, "visible", "hidden"):
        if dim not in masks.dims:
            raise ValueError(f"masks has no dimension {dim!r}; its dims are {masks.dims}")
    others = [d for d in masks.dims if d not in (seed_dim, "visible", "hidden")]
    ordered = masks.transpose(*others, seed_dim, "visible", "hidden")
    values = _as_mask(ordered, "masks")
    outer = tuple(ordered.shape[:-3])
    n_seeds, n_v, n_h = ordered.shape[-3:]
    teacher = None if teacher_mask is None else _as_mask(teacher_mask, "teacher_mask", (2,))
    deg = degrees(values)
    hist = degree_histogram(values)
    iso = isolated_units(values)
    per_mask = outer + (n_seeds,)
    recall, precision, chance = (np.full(per_mask, np.nan) for _ in range(3))
    mean_j, rand_j = np.full(outer, np.nan), np.full(outer, np.nan)
    freq = np.zeros((*outer, n_v, n_h))
    for index in np.ndindex(*outer):
        stack = values[index]
        pj = pairwise_jaccard(stack)
        upper = np.triu_indices(n_seeds, 1)
        kept = stack.reshape(n_seeds, -1).sum(axis=1)
        if n_seeds > 1:
            mean_j[index] = pj[upper].mean()
            rand_j[index] = np.mean([random_jaccard(n_v * n_h, kept[a], kept[b])[0] for a, b in zip(*upper)])
        freq[index] = consensus(stack, threshold)[0]
        if teacher is not None:
            for s in range(n_seeds):
                ov = teacher_overlap(stack[s], teacher, n_null=n_null, seed=seed)
                recall[index + (s,)], precision[index + (s,)] = ov.recall, ov.precision
                chance[index + (s,)] = ov.chance_recall
    mask_dims = (*others, seed_dim)
    data_vars = {
        "connectivity": (mask_dims, values.mean(axis=(-2, -1)), {"long_name": "fraction of connections kept", "units": "1"}),
        "isolated_visible": (mask_dims, iso.visible, {"long_name": "visible units without connections", "units": "1"}),
        "isolated_hidden": (mask_dims, iso.hidden, {"long_name": "hidden units without connections", "units": "1"}),
        "mean_visible_degree": ((*others, "visible"), deg.visible.mean(axis=-2),
                           {"long_name": "connections of each visible unit, mean over seeds", "units": "1"}),
        "visible_degree_count": ((*others, "visible_degree"), hist.visible.mean(axis=-2),
                                 {"long_name": "visible units with each degree, mean over seeds", "units": "1"}),
        "hidden_degree_count": ((*others, "hidden_degree"), hist.hidden.mean(axis=-2),
                                {"long_name": "hidden units with each degree, mean over seeds", "units": "1"}),
        "mean_jaccard": (others, mean_j, {"long_name": "mean Jaccard overlap of the masks of two seeds", "units": "1"}),
        "random_jaccard": (others, rand_j, {"long_name": "expected Jaccard overlap of random masks of the same sizes",
                                            "units": "1"}),
        "consensus_frequency": ((*others, "visible", "hidden"), freq,
                                {"long_name": "fraction of seeds keeping each connection", "units": "1"}),
    }
    if teacher is not None:
        data_vars.update({
            "teacher_recall": (mask_dims, recall, {"long_name": "fraction of the teacher's connections kept "
                                                   "(hidden units matched)", "units": "1"}),
            "teacher_precision": (mask_dims, precision, {"long_name": "fraction of the matched student connections "
                                                         "that are the teacher's", "units": "1"}),
            "teacher_chance_recall": (mask_dims, chance, {"long_name": "teacher recall of random masks of the same "
                                                          "size, matched the same way", "units": "1"}),
        })
    coords = {}
    for d in ordered.dims:
        if d in ordered.coords:
            attrs = dict(ordered[d].attrs)
            attrs.setdefault("long_name", d.replace("_", " "))
            attrs.setdefault("units", "1")
            coords[d] = (d, ordered[d].values, attrs)
    for d, n, what in (("visible", n_v, "visible unit index"), ("hidden", n_h, "hidden unit index"),
                       ("visible_degree", n_h + 1, "degree of a visible unit"),
                       ("hidden_degree", n_v + 1, "degree of a hidden unit")):
        coords.setdefault(d, (d, np.arange(n), {"long_name": what, "units": "1"}))
    attrs = {"title": "mask statistics", "consensus_threshold": float(threshold), "n_null": int(n_null),
             "seed": int(seed)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
