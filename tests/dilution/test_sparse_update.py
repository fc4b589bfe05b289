"""The diluted model's cheap update: kernels that visit connections only give the dense kernels'
bits, and a rule that never reads the gradient of absent pairs trains bit for bit as if it did."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

import dilution.estimators as estimators
import dilution.statistics as statistics
from dilution.conditionals import hidden_probabilities
from dilution.connectivity import StaticMask
from dilution.deep_r import DeepR, SoftDeepR, deep_r_config
from dilution.estimators import CD, PCD, PTPCD
from dilution.gibbs import hidden_probabilities_by_path, reconstruction_errors_by_path
from dilution.gibbs_sparse import csr_arrays, csr_hidden_probabilities
from dilution.gibbs_tuning import SPARSE_BELOW
from dilution.statistics import csr_reconstruction_errors, gradient_statistics, reconstruction_errors
from dilution.training import TrainConfig, train

DTYPES = [np.float32, np.float64]


def _diluted(rng, shape, density, dtype):
    """Weights on a random mask of ``density``, with a few present pairs at exactly 0 (DEEP R
    reactivates at theta = 0), and the mask."""
    mask = rng.random(shape) < density
    w = np.where(mask, rng.normal(0, 1, shape), 0.0).astype(dtype)
    present = np.argwhere(mask)
    w[tuple(present[:3].T)] = 0.0
    return w, mask


def _visible(rng, n, n_visible, dtype):
    v = (rng.random((n, n_visible)) < 0.3).astype(dtype)
    v[1] = 0.7  # non-binary rows weigh their products like the dense kernels
    return v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.6])
def test_csr_hidden_probabilities_are_the_dense_kernels_bits(dtype, density):
    rng = np.random.default_rng(3)
    w, _ = _diluted(rng, (57, 31), density, dtype)
    b = rng.normal(0, 1, 31).astype(dtype)
    v = _visible(rng, 41, 57, dtype)
    indptr, indices, data, *_ = csr_arrays(w)
    dense = hidden_probabilities(v, w, b, 0.7)
    sparse = csr_hidden_probabilities(v, indptr, indices, data, b, 0.7)
    by_path = hidden_probabilities_by_path(v, w, b, 0.7)
    for got in (sparse, by_path):
        assert got.dtype == dense.dtype and np.array_equal(got, dense)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5])
def test_csr_reconstruction_errors_are_the_dense_kernels_bits(dtype, density):
    rng = np.random.default_rng(5)
    w, _ = _diluted(rng, (47, 29), density, dtype)
    a = rng.normal(0, 1, 47).astype(dtype)
    v = _visible(rng, 33, 47, dtype)
    ph = rng.random((33, 29)).astype(dtype)
    keys = rng.integers(0, 2**63, 33, dtype=np.uint64)
    *_, indptr_t, indices_t, data_t = csr_arrays(w)
    dense = reconstruction_errors(v, ph, np.ascontiguousarray(w.T), a, keys, np.uint64(9))
    sparse = csr_reconstruction_errors(v, ph, indptr_t, indices_t, data_t, a, keys, np.uint64(9))
    by_path = reconstruction_errors_by_path(v, ph, w, a, keys, np.uint64(9))
    assert np.array_equal(sparse, dense) and np.array_equal(by_path, dense)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_present_pairs_gradient_is_the_full_one_on_the_mask_and_zero_off_it(dtype):
    rng = np.random.default_rng(11)
    _, mask = _diluted(rng, (23, 13), 0.2, dtype)
    mask[4] = False  # a visible unit with no connection
    v_d, v_m = _visible(rng, 37, 23, dtype), _visible(rng, 53, 23, dtype)
    h_d, h_m = rng.random((37, 13)).astype(dtype), rng.random((53, 13)).astype(dtype)
    full = gradient_statistics(v_d, h_d, v_m, h_m)
    present = gradient_statistics(v_d, h_d, v_m, h_m, mask=mask)
    assert present.weights.dtype == dtype
    assert np.array_equal(present.weights[mask], full.weights[mask])
    assert not present.weights[~mask].any() and full.weights[~mask].any()
    assert np.array_equal(present.visible_bias, full.visible_bias)
    assert np.array_equal(present.hidden_bias, full.hidden_bias)
    with pytest.raises(ValueError, match="mask must be a bool array of shape"):
        gradient_statistics(v_d, h_d, v_m, h_m, mask=mask.T)


@dataclasses.dataclass(frozen=True)
class _StaticReadingAll(StaticMask):
    reads_absent_gradient: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class _DeepRReadingAll(DeepR):
    reads_absent_gradient: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class _SoftDeepRReadingAll(SoftDeepR):
    reads_absent_gradient: ClassVar[bool] = True


def _config(rule, estimator, dtype):
    common = dict(estimator=estimator, epochs=2, batch_size=20, learning_rate=0.05, dtype=dtype, checkpoints=1,
                  exact_log_likelihood=False)
    if isinstance(rule, StaticMask):
        return TrainConfig(rule=rule, connectivity=0.05, **common)
    return deep_r_config(rule, **common)


RULES = [
    (StaticMask(), _StaticReadingAll()),
    (DeepR(k=60, alpha=0.1, temperature=1e-3), _DeepRReadingAll(k=60, alpha=0.1, temperature=1e-3)),
    (SoftDeepR(alpha=1.0, temperature=0.1, p0=0.05), _SoftDeepRReadingAll(alpha=1.0, temperature=0.1, p0=0.05)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("estimator", [PCD(k=2), CD(k=1), PTPCD(k=1, n_temps=3)], ids=lambda e: e.describe())
@pytest.mark.parametrize("rules", RULES, ids=lambda r: type(r[0]).__name__)
def test_a_rule_that_reads_present_pairs_only_trains_as_one_that_reads_all(rules, estimator, dtype, monkeypatch):
    lean, reading_all = rules
    assert not lean.reads_absent_gradient
    data = (np.random.default_rng(2).random((100, 64)) < 0.3).astype(np.float64)
    calls = []
    kernel = statistics._present_gradient_kernel
    monkeypatch.setattr(statistics, "_present_gradient_kernel", lambda *a: calls.append(1) or kernel(*a))
    # whatever the density (the threshold is a speed choice), so that every update takes the path
    monkeypatch.setattr(estimators, "PRESENT_GRADIENT_BELOW", 1.01)
    lean_run = train((64, 40), data, _config(lean, estimator, dtype), seed=4)
    assert len(calls) == 10  # every update took the present-pairs path
    full_run = train((64, 40), data, _config(reading_all, estimator, dtype), seed=4)
    assert len(calls) == 10
    assert lean_run.model.mask.mean() < SPARSE_BELOW  # the CSR conditionals ran too
    for name in ("weights", "visible_bias", "hidden_bias", "mask"):
        assert np.array_equal(getattr(lean_run.model, name), getattr(full_run.model, name)), name
    assert np.array_equal(lean_run.history.reconstruction_error.values, full_run.history.reconstruction_error.values)


@dataclasses.dataclass(frozen=True)
class _EstimatorWithoutPresentOnly:
    """A user's estimator written to the protocol before ``present_only`` existed."""

    inner: PCD = PCD(k=2)

    def init(self, params, data, batch_size, seed):
        return self.inner.init(params, data, batch_size, seed)

    def estimate(self, params, batch, h_batch, state):
        return self.inner.estimate(params, batch, h_batch, state)

    def restart(self, state, initial):
        return self.inner.restart(state, initial)

    def describe(self):
        return "PCD-2 without present_only"


def test_an_estimator_without_present_only_still_trains_a_lean_rule(monkeypatch):
    data = (np.random.default_rng(2).random((100, 64)) < 0.3).astype(np.float64)
    monkeypatch.setattr(estimators, "PRESENT_GRADIENT_BELOW", 1.01)
    old_style = train((64, 40), data, _config(StaticMask(), _EstimatorWithoutPresentOnly(), "float64"), seed=4)
    lean = train((64, 40), data, _config(StaticMask(), PCD(k=2), "float64"), seed=4)
    assert np.array_equal(old_style.model.weights, lean.model.weights)
