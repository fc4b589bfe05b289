from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from scipy import stats

from dilution.pruning import (
    CRITERION_NAMES,
    Criterion,
    DegreePreservingRandom,
    GlobalMagnitude,
    RandomPruning,
    Saliency,
    UnitMagnitude,
    criterion_from_dict,
    criterion_from_name,
    criterion_to_dict,
    degree_preserving_sample,
    iterative_counts,
    prune,
    prune_to_count,
    removal_count,
)
from dilution.statistics import GradientEstimate

# (seed, shape, density, ties): ties draw weights from {-2, ..., 2}, so many |W| are equal.
CASES = [
    (0, (7, 5), 1.0, False),
    (1, (7, 5), 0.6, False),
    (2, (6, 8), 0.8, True),
    (3, (9, 4), 0.3, True),
    (4, (5, 5), 0.5, False),
]
FRACTIONS = [0.0, 0.1, 0.35, 0.5, 0.8, 0.95]


def _case(seed, shape, density, ties):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    w = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    g = rng.integers(-1, 2, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    return mask, np.where(mask, w, 0.0), g


def _slow_global(mask, scores, n_remove):
    """Remove the n_remove connected pairs that sort first by (score, row-major position)."""
    n_hidden = mask.shape[1]
    pairs = sorted(
        (float(scores[i, j]), i * n_hidden + j, i, j) for i in range(mask.shape[0]) for j in range(n_hidden) if mask[i, j]
    )
    out = mask.copy()
    for _, _, i, j in pairs[:n_remove]:
        out[i, j] = False
    return out


def _slow_unit(mask, weights, n_remove, axis):
    """Greedy: each time, among the units of largest degree, remove the weakest of their weakest pairs."""
    n_visible, n_hidden = mask.shape
    out = mask.copy()

    def strength(pair):
        i, j = pair
        return (abs(float(weights[i, j])), i * n_hidden + j)

    for _ in range(n_remove):
        degrees = out.sum(axis=0) if axis == "hidden" else out.sum(axis=1)
        weakest = []
        for u in range(degrees.size):
            if degrees[u] != degrees.max():
                continue
            if axis == "hidden":
                pairs = [(i, u) for i in range(n_visible) if out[i, u]]
            else:
                pairs = [(u, j) for j in range(n_hidden) if out[u, j]]
            weakest.append(min(pairs, key=strength))
        out[min(weakest, key=strength)] = False
    return out


# ---------------------------------------------------------------------------------------- magnitude


@pytest.mark.parametrize("case", CASES)
def test_global_magnitude_matches_slow_reference(case):
    mask, w, _ = _case(*case)
    n = int(mask.sum())
    for f in FRACTIONS:
        n_remove = int(round(f * n))
        new = prune(mask, w, GlobalMagnitude(), fraction=f)
        assert np.array_equal(new, _slow_global(mask, np.abs(w), n_remove))
        assert np.array_equal(new, prune(mask, w, "global_magnitude", n_remove=n_remove))
    assert np.array_equal(prune(mask, w, GlobalMagnitude(), fraction=0.0), mask)


def test_global_magnitude_ties_removed_in_row_major_order():
    mask = np.ones((2, 3), dtype=bool)
    w = np.array([[1.0, -1.0, 2.0], [1.0, 3.0, -1.0]])
    # |W| = 1 at (0,0), (0,1), (1,0), (1,2): row-major order (0,0) first, then (0,1), (1,0).
    new = prune(mask, w, GlobalMagnitude(), n_remove=3)
    assert np.array_equal(new, np.array([[False, False, True], [False, True, True]]))


@pytest.mark.parametrize("axis", ["hidden", "visible"])
@pytest.mark.parametrize("case", CASES)
def test_unit_magnitude_matches_greedy_reference(case, axis):
    mask, w, _ = _case(*case)
    n = int(mask.sum())
    for f in FRACTIONS:
        n_remove = int(round(f * n))
        new = prune(mask, w, UnitMagnitude(axis), fraction=f)
        assert np.array_equal(new, _slow_unit(mask, w, n_remove, axis)), f


@pytest.mark.parametrize("axis", ["hidden", "visible"])
@pytest.mark.parametrize("case", CASES)
def test_unit_magnitude_equal_degrees(case, axis):
    mask, w, _ = _case(*case)
    sum_axis = 0 if axis == "hidden" else 1
    before = mask.sum(axis=sum_axis)
    for n_keep in range(int(mask.sum()) + 1):
        new = prune_to_count(mask, w, UnitMagnitude(axis), n_keep)
        after = new.sum(axis=sum_axis)
        assert new.sum() == n_keep and not np.any(new & ~mask)
        # Quota q: largest with sum(min(before, q)) <= n_keep. Units below it keep everything,
        # units at or above it end with q or q + 1.
        q = max(q for q in range(before.max() + 1) if np.minimum(before, q).sum() <= n_keep)
        assert np.array_equal(after[before <= q], before[before <= q])
        assert np.all((after[before >= q] == q) | (after[before >= q] == q + 1))
        if mask.all():
            assert after.max() - after.min() <= 1


def test_unit_magnitude_remainder_goes_to_strongest_extra_connection():
    mask = np.ones((3, 2), dtype=bool)
    # Keep 3 of 6 with equal fan-in: each hidden unit keeps 1, the extra place goes to the
    # unit whose second-strongest weight is larger: column 1 (2.5 > 2.0).
    w = np.array([[5.0, 2.5], [2.0, 0.1], [0.5, 4.0]])
    new = prune_to_count(mask, w, UnitMagnitude("hidden"), 3)
    assert np.array_equal(new, np.array([[True, True], [False, False], [False, True]]))


# ---------------------------------------------------------------------------------------- saliency


@pytest.mark.parametrize("case", CASES)
def test_saliency_matches_slow_reference(case):
    mask, w, g = _case(*case)
    n = int(mask.sum())
    for f in FRACTIONS:
        ref = _slow_global(mask, np.abs(w * g), int(round(f * n)))
        assert np.array_equal(prune(mask, w, Saliency(), fraction=f, gradient=g), ref)
        estimate = GradientEstimate(g, np.zeros(mask.shape[0]), np.zeros(mask.shape[1]))
        assert np.array_equal(prune(mask, w, Saliency(), fraction=f, gradient=estimate), ref)


def test_saliency_differs_from_magnitude():
    mask = np.ones((2, 2), dtype=bool)
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[10.0, 0.1], [1.0, 1.0]])  # |W G| = 10, 0.2, 3, 4
    assert np.array_equal(prune(mask, w, Saliency(), n_remove=1, gradient=g), np.array([[True, False], [True, True]]))
    assert np.array_equal(prune(mask, w, GlobalMagnitude(), n_remove=1), np.array([[False, True], [True, True]]))


def test_saliency_needs_gradient():
    mask, w, _ = _case(*CASES[0])
    with pytest.raises(ValueError, match="needs the log-likelihood gradient"):
        prune(mask, w, Saliency(), fraction=0.5)
    with pytest.raises(ValueError, match="needs the log-likelihood gradient"):
        prune(mask, w, DegreePreservingRandom(Saliency()), fraction=0.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="gradient must have the mask's shape"):
        prune(mask, w, Saliency(), fraction=0.5, gradient=np.ones((2, 2)))
    with pytest.raises(TypeError, match="gradient must be a float ndarray"):
        prune(mask, w, Saliency(), fraction=0.5, gradient=np.ones(mask.shape, dtype=np.int64))


# ---------------------------------------------------------------------------------------- random


@pytest.mark.parametrize("case", CASES)
def test_random_pruning_count_subset_and_draw(case):
    mask, w, _ = _case(*case)
    n = int(mask.sum())
    for f in FRACTIONS:
        new = prune(mask, w, RandomPruning(), fraction=f, rng=np.random.default_rng(11))
        assert new.sum() == n - round(f * n) and not np.any(new & ~mask)
        # The draw is numpy's choice of n_remove connected positions, in row-major order.
        active = np.flatnonzero(mask)
        removed = np.random.default_rng(11).choice(active, size=round(f * n), replace=False)
        ref = mask.copy()
        ref.ravel()[removed] = False
        assert np.array_equal(new, ref)


def test_random_pruning_is_uniform_over_subsets():
    mask = np.zeros((3, 3), dtype=bool)
    mask[[0, 0, 1, 2, 2], [0, 2, 1, 0, 1]] = True
    w = np.ones((3, 3))
    subsets = {c: k for k, c in enumerate(itertools.combinations(np.flatnonzero(mask).tolist(), 3))}
    rng = np.random.default_rng(2)
    n_draws = 5000
    counts = np.zeros(len(subsets))
    for _ in range(n_draws):
        counts[subsets[tuple(np.flatnonzero(prune(mask, w, RandomPruning(), n_remove=2, rng=rng)).tolist())]] += 1
    # Pearson X^2 of n_draws independent draws over K = 10 equally likely subsets is chi2(K - 1)
    # distributed (expected counts 500 >> 5); fail below p = 1e-4.
    expected = n_draws / len(subsets)
    assert ((counts - expected) ** 2 / expected).sum() < stats.chi2.isf(1e-4, len(subsets) - 1)


# ---------------------------------------------------------------------------------------- degree-preserving


def _all_masks(reference, allowed):
    """Every mask inside `allowed` with the row and column degrees of `reference`, by enumeration."""
    cells = list(zip(*np.nonzero(allowed)))
    masks = []
    for chosen in itertools.combinations(cells, int(reference.sum())):
        m = np.zeros(allowed.shape, dtype=bool)
        for cell in chosen:
            m[cell] = True
        if np.array_equal(m.sum(axis=1), reference.sum(axis=1)) and np.array_equal(m.sum(axis=0), reference.sum(axis=0)):
            masks.append(m)
    return masks


# (allowed, reference) with heterogeneous degrees; all but the third have structural zeros.
# With the Metropolis-Hastings ratio of the local swap forced to 1, three of the four fail the
# test below (checked once by hand), so it detects a biased chain, not only a broken one.
ENUMERABLE = [
    ([[1, 1, 0, 1], [1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1]], [[0, 0, 0, 1], [0, 0, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]]),
    ([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]], [[1, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 1, 1, 0]]),
    ([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]], [[0, 1, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 0]]),
    ([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]], [[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0]]),
]


@pytest.mark.parametrize("allowed, reference", ENUMERABLE)
def test_degree_preserving_sample_is_uniform_on_enumerated_masks(allowed, reference):
    allowed, reference = np.array(allowed, dtype=bool), np.array(reference, dtype=bool)
    masks = _all_masks(reference, allowed)
    n_masks = len(masks)
    assert n_masks >= 5
    index = {m.tobytes(): k for k, m in enumerate(masks)}
    rng = np.random.default_rng(7)
    n_draws = 400 * n_masks
    counts = np.zeros(n_masks)
    for _ in range(n_draws):
        counts[index[degree_preserving_sample(reference, allowed, rng).mask.tobytes()]] += 1  # KeyError: wrong degrees
    # Every call draws a fresh key, so the draws are independent. Under uniformity Pearson's
    # X^2 over the K masks is chi2(K - 1) (expected counts 400 >> 5); fail below p = 1e-4.
    expected = n_draws / n_masks
    assert ((counts - expected) ** 2 / expected).sum() < stats.chi2.isf(1e-4, n_masks - 1)
    # Edge-inclusion frequencies: each pair's count is Binomial(n_draws, p) with p its exact
    # frequency among the enumerated masks; allow 5 standard deviations (two-sided ~6e-7 per
    # pair by the normal approximation, valid as p in [1/K, 1 - 1/K] gives
    # n_draws p (1 - p) >= 400 (1 - 1/K) >= 320; pairs with p = 0 or 1 must match exactly).
    p = np.mean(masks, axis=0)
    freq = np.tensordot(counts, np.array(masks, dtype=float), axes=1) / n_draws
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n_draws))


def test_degree_preserving_sample_reaches_masks_that_swaps_cannot():
    # Off-diagonal 3 x 3 pattern, all degrees 1: the two derangements differ in 6 cells, so no
    # checkerboard swap connects them; only the alternating-cycle walk does.
    allowed = ~np.eye(3, dtype=bool)
    reference = np.roll(np.eye(3, dtype=bool), 1, axis=1)
    masks = _all_masks(reference, allowed)
    assert len(masks) == 2 and np.sum(masks[0] != masks[1]) == 6
    rng = np.random.default_rng(3)
    n_draws = 2000
    n_other = sum(not np.array_equal(degree_preserving_sample(reference, allowed, rng).mask, reference) for _ in range(n_draws))
    # Binomial(2000, 1/2): standard deviation sqrt(2000) / 2 ~ 22; allow 5 of them.
    assert abs(n_other - n_draws / 2) <= 5 * np.sqrt(n_draws) / 2


def test_degree_preserving_two_by_two_is_not_periodic():
    # Every non-lazy step flips between the two masks: without laziness an even chain length
    # would always return the reference.
    allowed = np.ones((2, 2), dtype=bool)
    reference = np.eye(2, dtype=bool)
    rng = np.random.default_rng(4)
    n_draws = 2000
    n_other = sum(not np.array_equal(degree_preserving_sample(reference, allowed, rng).mask, reference) for _ in range(n_draws))
    assert abs(n_other - n_draws / 2) <= 5 * np.sqrt(n_draws) / 2


@pytest.mark.parametrize("reference_criterion", [GlobalMagnitude(), UnitMagnitude("hidden"), UnitMagnitude("visible")])
@pytest.mark.parametrize("case", CASES)
def test_degree_preserving_random_keeps_degrees_of_reference(case, reference_criterion):
    mask, w, _ = _case(*case)
    for f in (0.0, 0.3, 0.6):
        reference = prune(mask, w, reference_criterion, fraction=f)
        new = prune(mask, w, DegreePreservingRandom(reference_criterion), fraction=f, rng=np.random.default_rng(5))
        assert not np.any(new & ~mask)
        assert np.array_equal(new.sum(axis=0), reference.sum(axis=0))
        assert np.array_equal(new.sum(axis=1), reference.sum(axis=1))


def test_degree_preserving_random_differs_from_reference():
    rng = np.random.default_rng(8)
    mask = rng.random((30, 20)) < 0.7
    w = np.where(mask, rng.standard_normal(mask.shape), 0.0)
    reference = prune(mask, w, GlobalMagnitude(), fraction=0.5)
    new = prune(mask, w, DegreePreservingRandom(), fraction=0.5, rng=np.random.default_rng(9))
    assert np.array_equal(new.sum(axis=0), reference.sum(axis=0))
    assert np.array_equal(new.sum(axis=1), reference.sum(axis=1))
    # Uniform masks with these degrees share ~half of the reference's edges; the chain has moved far.
    assert np.sum(new & reference) < 0.8 * reference.sum()
    again = prune(mask, w, DegreePreservingRandom(), fraction=0.5, rng=np.random.default_rng(9))
    assert np.array_equal(new, again)


def test_degree_preserving_sample_bad_inputs():
    allowed = np.ones((3, 3), dtype=bool)
    with pytest.raises(ValueError, match="subset of the allowed mask"):
        degree_preserving_sample(np.eye(3, dtype=bool), ~np.eye(3, dtype=bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="same shape"):
        degree_preserving_sample(np.eye(2, dtype=bool), allowed, np.random.default_rng(0))
    with pytest.raises(ValueError, match="is random: pass rng"):
        degree_preserving_sample(np.eye(3, dtype=bool), allowed, None)
    with pytest.raises(ValueError, match="attempts_per_edge must be an integer >= 1"):
        degree_preserving_sample(np.eye(3, dtype=bool), allowed, np.random.default_rng(0), attempts_per_edge=0)


# ---------------------------------------------------------------------------------------- counts


def test_iterative_counts_follow_exact_density():
    # 10 * 0.7**r = 10, 7, 4.9, 3.43, 2.401, 1.68, 1.18; compounding the rounding would give
    # round(0.7 * 5) = 4 at r = 3 instead.
    assert iterative_counts(10, 0.3, 6) == (10, 7, 5, 3, 2, 2, 1)
    # 1000 * 0.8**r = 1000, 800, 640, 512, 409.6, 327.68, 262.144, 209.7152
    assert iterative_counts(1000, 0.2, 7) == (1000, 800, 640, 512, 410, 328, 262, 210)
    assert iterative_counts(392000, 0.2, 0) == (392000,)
    assert iterative_counts(5, 0.0, 3) == (5, 5, 5, 5)
    for n0, p, rounds in [(392000, 0.2, 20), (1234, 0.37, 12), (7, 0.5, 5)]:
        assert iterative_counts(n0, p, rounds) == tuple(round(n0 * (1 - p) ** r) for r in range(rounds + 1))


def test_iterative_pruning_to_counts_is_nested():
    mask, w, _ = _case(*CASES[0])
    counts = iterative_counts(int(mask.sum()), 0.2, 6)
    current = mask
    for count in counts[1:]:
        new = prune_to_count(current, w, GlobalMagnitude(), count)
        assert new.sum() == count and not np.any(new & ~current)
        current = new


def test_removal_count():
    assert removal_count(10, 0.25) == 2  # round(2.5) is 2: half to even
    assert removal_count(10, 0.35) == 4
    assert removal_count(0, 0.5) == 0


# ---------------------------------------------------------------------------------------- values


ALL_CRITERIA = [
    GlobalMagnitude(),
    UnitMagnitude("hidden"),
    UnitMagnitude("visible"),
    RandomPruning(),
    Saliency(),
    DegreePreservingRandom(),
    DegreePreservingRandom(UnitMagnitude("visible"), attempts_per_edge=7),
    DegreePreservingRandom(Saliency()),
]


@pytest.mark.parametrize("criterion", ALL_CRITERIA)
def test_criteria_round_trip_through_dicts(criterion):
    assert isinstance(criterion, Criterion)
    d = criterion_to_dict(criterion)
    assert d["name"] == criterion.name and d["name"] in CRITERION_NAMES
    assert criterion_from_dict(json.loads(json.dumps(d))) == criterion
    params = {k: v for k, v in d.items() if k != "name"}
    assert criterion_from_name(criterion.name, **params) == criterion
    with pytest.raises(dataclasses.FrozenInstanceError):
        criterion.name = "x"


def test_criterion_from_name():
    assert criterion_from_name("unit_magnitude", axis="visible") == UnitMagnitude("visible")
    assert criterion_from_name("degree_preserving_random", reference="unit_magnitude") == DegreePreservingRandom(
        UnitMagnitude("hidden")
    )
    assert set(CRITERION_NAMES) == {"global_magnitude", "unit_magnitude", "random", "degree_preserving_random", "saliency"}
    with pytest.raises(ValueError, match="unknown pruning criterion 'snip'; known criteria: global_magnitude, unit_magnitude"):
        criterion_from_name("snip")
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) axis; accepted: none"):
        criterion_from_name("global_magnitude", axis="hidden")
    with pytest.raises(ValueError, match="needs a 'name' key"):
        criterion_from_dict({"axis": "hidden"})


# ---------------------------------------------------------------------------------------- errors


def test_bad_inputs():
    mask, w, _ = _case(*CASES[1])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^pruning fraction must be in \[0, 1\), got 1.2$"):
        prune(mask, w, GlobalMagnitude(), fraction=1.2)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"pruning fraction must be in \[0, 1\)"):
            prune(mask, w, GlobalMagnitude(), fraction=bad)
    with pytest.raises(TypeError, match="pruning fraction must be a number"):
        prune(mask, w, GlobalMagnitude(), fraction=True)
    with pytest.raises(TypeError, match="exactly one of fraction"):
        prune(mask, w, GlobalMagnitude())
    with pytest.raises(TypeError, match="exactly one of fraction"):
        prune(mask, w, GlobalMagnitude(), fraction=0.5, n_remove=3)
    with pytest.raises(ValueError, match=r"n_remove must be in \[0, \d+\]"):
        prune(mask, w, GlobalMagnitude(), n_remove=int(mask.sum()) + 1)
    with pytest.raises(ValueError, match=r"n_keep must be in \[0, \d+\]"):
        prune_to_count(mask, w, GlobalMagnitude(), -1)
    with pytest.raises(TypeError, match="n_keep must be an integer"):
        prune_to_count(mask, w, GlobalMagnitude(), 3.0)
    with pytest.raises(ValueError, match="unknown pruning criterion 'magnitude'; known criteria: "):
        prune(mask, w, "magnitude", fraction=0.5)
    with pytest.raises(TypeError, match="criterion must be a pruning criterion"):
        prune(mask, w, GlobalMagnitude, fraction=0.5)
    with pytest.raises(TypeError, match="mask must be a boolean ndarray"):
        prune(mask.astype(np.int8), w, GlobalMagnitude(), fraction=0.5)
    with pytest.raises(ValueError, match="mask must be 2-D"):
        prune(mask.ravel(), w.ravel(), GlobalMagnitude(), fraction=0.5)
    with pytest.raises(ValueError, match="weights must have the mask's shape"):
        prune(mask, w.T, GlobalMagnitude(), fraction=0.5)
    with pytest.raises(TypeError, match="weights must be a float ndarray"):
        prune(mask, w.astype(np.int64), GlobalMagnitude(), fraction=0.5)
    w_nan = w.copy()
    w_nan[np.nonzero(mask)[0][0], np.nonzero(mask)[1][0]] = np.nan
    with pytest.raises(ValueError, match="weights must be finite on the connected pairs"):
        prune(mask, w_nan, GlobalMagnitude(), fraction=0.5)
    for random_criterion in (RandomPruning(), DegreePreservingRandom()):
        with pytest.raises(ValueError, match="is random: pass rng"):
            prune(mask, w, random_criterion, fraction=0.5)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        prune(mask, w, RandomPruning(), fraction=0.5, rng=0)
    with pytest.raises(ValueError, match="axis must be 'hidden'"):
        UnitMagnitude("rows")
    with pytest.raises(TypeError, match="reference must be a criterion instance"):
        DegreePreservingRandom("global_magnitude")
    with pytest.raises(ValueError, match="attempts_per_edge must be an integer >= 1"):
        DegreePreservingRandom(attempts_per_edge=0)
    with pytest.raises(ValueError, match="rounds must be an integer >= 0"):
        iterative_counts(10, 0.2, -1)
    with pytest.raises(ValueError, match=r"pruning fraction must be in \[0, 1\), got 1"):
        iterative_counts(10, 1, 3)
    # Deterministic criteria ignore a given rng and do not need one.
    assert np.array_equal(prune(mask, w, GlobalMagnitude(), fraction=0.5, rng=rng), prune(mask, w, GlobalMagnitude(), fraction=0.5))
