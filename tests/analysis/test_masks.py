"""Mask statistics against constructed masks with known answers, exact enumeration and the
hypergeometric law of random masks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from scipy.stats import hypergeom

from analysis.masks import (
    consensus,
    degree_histogram,
    degree_map,
    degrees,
    isolated_units,
    jaccard,
    mask_summary,
    pairwise_jaccard,
    random_jaccard,
    teacher_overlap,
    two_time_overlap,
)


def _random_mask(rng: np.random.Generator, shape: tuple[int, int], kept: int) -> np.ndarray:
    flat = np.zeros(shape[0] * shape[1], dtype=bool)
    flat[rng.choice(flat.size, size=kept, replace=False)] = True
    return flat.reshape(shape)


def _teacher(seed: int = 0) -> np.ndarray:
    """A 64 x 10 planted mask at connectivity 0.25 (160 connections), columns distinct."""
    return _random_mask(np.random.default_rng(seed), (64, 10), 160)


def test_degrees_histograms_isolated_units_and_maps_of_a_constructed_mask():
    mask = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=np.int8)  # int8 as in point files
    deg = degrees(mask)
    np.testing.assert_array_equal(deg.visible, [2, 0, 1, 2])
    np.testing.assert_array_equal(deg.hidden, [3, 2, 0])
    hist = degree_histogram(mask)
    np.testing.assert_array_equal(hist.visible, [1, 1, 2, 0])  # degrees 0..3
    np.testing.assert_array_equal(hist.hidden, [1, 0, 1, 1, 0])  # degrees 0..4
    iso = isolated_units(mask)
    assert (iso.visible, iso.hidden) == (1, 1)
    np.testing.assert_array_equal(degree_map(mask, (2, 2)), [[2, 0], [1, 2]])
    stacked = degrees(np.stack([mask, 1 - mask]))
    np.testing.assert_array_equal(stacked.visible, [[2, 0, 1, 2], [1, 3, 2, 1]])
    with pytest.raises(ValueError, match="image_shape"):
        degree_map(mask, (3, 2))
    with pytest.raises(ValueError, match="bool or 0/1"):
        degrees(mask * 2)


def test_jaccard_by_hand_and_pairwise_equals_the_pair_loop():
    a = np.array([[1, 1], [0, 1]], dtype=bool)
    b = np.array([[1, 0], [1, 1]], dtype=bool)
    assert jaccard(a, b) == 2 / 4
    assert jaccard(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    rng = np.random.default_rng(1)
    stack = rng.random((5, 6, 4)) < 0.3
    pj = pairwise_jaccard(stack)
    for i, j in itertools.product(range(5), repeat=2):
        assert pj[i, j] == pytest.approx(jaccard(stack[i], stack[j]))


def test_random_jaccard_equals_enumeration_of_every_pair_of_masks():
    # every pair of subsets of sizes 3 and 2 of 6 connections, equally likely
    m, ka, kb = 6, 3, 2
    values = [len(set(x) & set(y)) / len(set(x) | set(y))
              for x in itertools.combinations(range(m), ka) for y in itertools.combinations(range(m), kb)]
    mean, sd = random_jaccard(m, ka, kb)
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert sd == pytest.approx(np.std(values), rel=1e-12)


def test_random_masks_overlap_as_the_hypergeometric_law_says():
    # 400 independent pairs of 64 x 16 masks keeping 200 and 300 connections: the sample mean of J
    # has standard error sd / sqrt(400); 4 standard errors fail a correct formula with p ~ 6e-5.
    rng = np.random.default_rng(2)
    pairs = [(_random_mask(rng, (64, 16), 200), _random_mask(rng, (64, 16), 300)) for _ in range(400)]
    observed = np.array([jaccard(a, b) for a, b in pairs])
    mean, sd = random_jaccard(64 * 16, 200, 300)
    assert abs(observed.mean() - mean) < 4 * sd / np.sqrt(400)


def test_consensus_counts_the_masks_keeping_each_connection():
    stack = np.zeros((4, 2, 2), dtype=bool)
    stack[:, 0, 0] = True  # all four
    stack[:3, 0, 1] = True  # three of four
    stack[:2, 1, 0] = True  # half: not more than 0.5
    freq, kept = consensus(stack)
    np.testing.assert_array_equal(freq, [[1.0, 0.75], [0.5, 0.0]])
    np.testing.assert_array_equal(kept, [[True, True], [False, False]])


def test_a_permuted_copy_of_the_teacher_has_overlap_one_and_the_extra_units_are_unmatched():
    teacher = _teacher()
    rng = np.random.default_rng(3)
    where = rng.permutation(16)[:10]  # teacher unit j sits at student unit where[j]
    student = np.zeros((64, 16), dtype=bool)
    student[:, where] = teacher
    extra = np.setdiff1d(np.arange(16), where)
    student[:5, extra] = True
    ov = teacher_overlap(student, teacher, n_null=50, seed=0)
    np.testing.assert_array_equal(ov.matching, where)
    assert ov.shared == 160 and ov.recall == 1.0 and ov.precision == 1.0
    np.testing.assert_array_equal(ov.unmatched, extra)
    np.testing.assert_array_equal(ov.unmatched_degree, np.full(6, 5))
    assert ov.chance_recall < ov.chance_recall_upper < 1.0


def test_a_thinned_teacher_keeps_exactly_the_recall_it_was_given():
    teacher = _teacher(4)
    rng = np.random.default_rng(5)
    student = np.zeros((64, 16), dtype=bool)
    student[:, :10] = teacher
    on = np.argwhere(teacher)
    cut = on[rng.choice(len(on), size=40, replace=False)]
    student[cut[:, 0], cut[:, 1]] = False  # 120 of 160 kept, nothing added
    ov = teacher_overlap(student, teacher, n_null=0)
    assert ov.shared == 120 and ov.recall == 0.75 and ov.precision == 1.0
    np.testing.assert_array_equal(ov.matching, np.arange(10))
    assert np.isnan(ov.chance_recall)


def test_random_students_share_the_hypergeometric_number_of_teacher_connections():
    # With a fixed matching (teacher unit j -> student unit j) a uniformly random student mask
    # with K_s connections shares X ~ Hypergeom(M = 64 * 16, K_t = 160 marked, K_s drawn) of the
    # teacher's: mean K_t K_s / M. Over 400 students the mean of X is within 4 standard errors.
    teacher = _teacher(6)
    rng = np.random.default_rng(7)
    shared = np.array([teacher_overlap(_random_mask(rng, (64, 16), 256), teacher, matching=np.arange(10),
                                       n_null=0).shared for _ in range(400)])
    law = hypergeom(64 * 16, 160, 256)
    assert abs(shared.mean() - law.mean()) < 4 * law.std() / np.sqrt(400)
    # the optimal matching can only find more, and the chance level it reports says so
    ov = teacher_overlap(_random_mask(rng, (64, 16), 256), teacher, n_null=100, seed=1)
    assert ov.chance_recall > law.mean() / 160


def test_teacher_overlap_refuses_inconsistent_input():
    teacher = _teacher()
    with pytest.raises(ValueError, match="same number of visible units"):
        teacher_overlap(np.ones((63, 16), bool), teacher)
    with pytest.raises(ValueError, match="distinct student hidden units"):
        teacher_overlap(np.ones((64, 16), bool), teacher, matching=np.zeros(10, int))


def test_mask_summary_is_labelled_and_agrees_with_the_functions():
    rng = np.random.default_rng(8)
    teacher = _teacher(9)
    values = rng.random((2, 3, 64, 16)) < 0.3
    masks = xr.DataArray(values.astype(np.int8), dims=("pruning_fraction", "seed", "visible", "hidden"),
                         coords={"pruning_fraction": ("pruning_fraction", [0.5, 0.8],
                                                      {"long_name": "pruning fraction", "units": "1"}),
                                 "seed": [0, 1, 2]})
    ds = mask_summary(masks, teacher_mask=teacher, n_null=20)
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
    block = values[1]
    pj = pairwise_jaccard(block)
    assert float(ds["mean_jaccard"].sel(pruning_fraction=0.8)) == pytest.approx(pj[np.triu_indices(3, 1)].mean())
    np.testing.assert_allclose(ds["consensus_frequency"].sel(pruning_fraction=0.8), block.mean(axis=0))
    assert float(ds["teacher_recall"].sel(pruning_fraction=0.8, seed=2)) == teacher_overlap(
        block[2], teacher, n_null=0).recall
    assert int(ds["isolated_visible"].sel(pruning_fraction=0.5, seed=1)) == isolated_units(values[0, 1]).visible


def test_two_time_overlap_by_hand():
    a0 = [[1, 1, 0], [0, 0, 0]]  # 2 kept
    a1 = [[1, 0, 1], [0, 0, 0]]  # 2 kept, 1 shared with a0
    a2 = [[1, 1, 1], [1, 0, 0]]  # 4 kept, 2 shared with a0 and with a1
    ds = two_time_overlap(np.array([a0, a1, a2]), [0, 1, 3])
    np.testing.assert_allclose(ds["overlap"], [1 / 2, 2 / np.sqrt(8), 2 / np.sqrt(8)])
    np.testing.assert_allclose(ds["chance"], [2 / 6, np.sqrt(8) / 6, np.sqrt(8) / 6])
    np.testing.assert_array_equal(ds["t_w"], [0, 0, 1])
    np.testing.assert_array_equal(ds["t"], [1, 3, 3])
    np.testing.assert_array_equal(ds["lag"], [1, 3, 2])
    np.testing.assert_array_equal(ds["ratio"], [np.inf, np.inf, 3])
    np.testing.assert_array_equal(ds["kept_w"], [2, 2, 2])
    np.testing.assert_array_equal(ds["kept"], [2, 4, 4])
    empty = two_time_overlap(np.array([a0, np.zeros((2, 3))]), [1, 2])
    assert np.isnan(empty["overlap"]).all() and float(empty["chance"][0]) == 0.0


def test_two_time_overlap_chance_is_the_mean_of_random_masks():
    # 5 x 6 = 30 connections, 10 and 6 kept: |A & B| is hypergeometric with variance
    # 10 * 6 * 20 * 24 / (30^2 * 29) = 1.103, so the overlap (|A & B| / sqrt(60)) has sd 0.136 and
    # its mean over 2000 independent pairs an SE of 0.0030; 4 SE is the tolerance.
    rng = np.random.default_rng(5)
    draws = [float(two_time_overlap(np.array([_random_mask(rng, (5, 6), 10), _random_mask(rng, (5, 6), 6)]),
                                    [1, 2])["overlap"][0]) for _ in range(2000)]
    chance = np.sqrt(60) / 30
    assert abs(np.mean(draws) - chance) < 4 * 0.136 / np.sqrt(2000)
    # the sd of a sample sd of n draws is about sd / sqrt(2 n) (near-normal tails): 5 of those
    assert abs(np.std(draws) - np.sqrt(hypergeom(30, 10, 6).var() / 60)) < 5 * 0.136 / np.sqrt(2 * 2000)


def test_two_time_overlap_of_a_training_history():
    from dilution.deep_r import DeepR, deep_r_config
    from dilution.estimators import PCD
    from dilution.training import train

    data = (np.random.default_rng(0).random((40, 6)) < 0.4).astype(np.float64)
    cfg = deep_r_config(DeepR(k=7, alpha=0.05, temperature=0.05), estimator=PCD(2, n_chains=5), epochs=6,
                        batch_size=8, learning_rate=0.1, checkpoints=(5, 10, 20, 30))
    history = train((6, 4), data, cfg, seed=3).history
    ds = two_time_overlap(history["mask"], "step")
    masks = history["mask"].values.astype(bool).reshape(len(history["step"]), -1)
    steps = history["step"].values
    assert ds.sizes["pair"] == len(steps) * (len(steps) - 1) // 2
    for p, (i, j) in enumerate(itertools.combinations(range(len(steps)), 2)):
        assert (ds["t_w"][p], ds["t"][p]) == (steps[i], steps[j])
        assert float(ds["overlap"][p]) == np.count_nonzero(masks[i] & masks[j]) / 7  # K = 7 at every checkpoint
    assert float(ds["overlap"].min()) < 1  # the connectivity moved
    xr.testing.assert_identical(ds, two_time_overlap(history["mask"].values, steps))


@pytest.mark.parametrize("masks, times, message", [
    (np.ones((3, 2, 2)), [1, 2], r"times must be 3 numbers, one per mask"),
    (np.ones((3, 2, 2)), ["1", "2", "3"], r"times must be 3 numbers, one per mask"),
    (np.ones((3, 2, 2)), [1, 3, 2], r"times must be finite, >= 0 and strictly increasing, got \[1\.0, 3\.0, 2\.0\]"),
    (np.ones((3, 2, 2)), [-1, 0, 1], r"strictly increasing"),
    (np.ones((2, 2)), [1, 2], r"masks must have 3 dims"),
    (np.full((2, 2, 2), 2), [1, 2], r"masks must be bool or 0/1"),
    (np.ones((2, 2, 2)), "step", r"times='step' names a coordinate, which needs masks as a DataArray"),
    (xr.DataArray(np.ones((2, 2, 2)), dims=("checkpoint", "visible", "hidden"),
                  coords={"visible": [0, 1]}), "visible",
     r"times='visible' must name a coordinate of masks along its first dimension 'checkpoint'"),
])
def test_two_time_overlap_bad_input(masks, times, message):
    with pytest.raises(ValueError, match=message):
        two_time_overlap(masks, times)
