"""The data sets of a study: training, validation (drives the stopping rule) and test (the reported quality).

Loaded once per process and cached: every grid point of a study uses the same data, and a
dask worker runs many points.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .spec import MnistData, TeacherData

__all__ = ["StudyData", "load_data", "independent_log_likelihood"]


class StudyData(NamedTuple):
    """Binary data matrices of a study and its reference levels.

    Attributes
    ----------
    train, validation, test : ndarray of float64, shape (n, n_visible)
    teacher_test_log_likelihood : float
        Mean exact test log-likelihood under the planted teacher (the ceiling); NaN for MNIST.
    independent_test_log_likelihood : float
        Mean test log-likelihood of the independent-unit model fitted to the training set (no
        weights): the level a collapsed network falls to.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    teacher_test_log_likelihood: float
    independent_test_log_likelihood: float

    @property
    def independent_validation_log_likelihood(self) -> float:
        """The independent-unit model's mean validation log-likelihood (equal to its
        pseudo-log-likelihood): the plateau of the stopping rule's ``plateau_margin``."""
        return independent_log_likelihood(self.train, self.validation)


def independent_log_likelihood(train: np.ndarray, test: np.ndarray, clip: float = 1e-3) -> float:
    """Mean log-likelihood of ``test`` under independent units with the marginals of ``train``.

    The marginals are clipped to ``[clip, 1 - clip]`` like the visible biases of
    :func:`dilution.training.initialize`, so this is exactly the initial model with zero weights.
    """
    p = np.clip(train.mean(axis=0), clip, 1.0 - clip)
    return float((test @ np.log(p) + (1.0 - test) @ np.log1p(-p)).mean())


@functools.lru_cache(maxsize=4)
def load_data(spec: TeacherData | MnistData) -> StudyData:
    """The study's data (cached per process; ``spec`` is a frozen, hashable value)."""
    from dilution.data.split import as_matrix

    if isinstance(spec, TeacherData):
        from dilution.data.teacher import planted_teacher

        teacher = planted_teacher(
            spec.n_visible, spec.n_hidden, connectivity=spec.connectivity, weight_scale=spec.weight_scale,
            visible_bias_scale=spec.visible_bias_scale, hidden_bias_scale=spec.hidden_bias_scale,
            visible_bias_mean=spec.visible_bias_mean, hidden_bias_mean=spec.hidden_bias_mean, seed=spec.seed,
        )
        # Three independent streams of the same seed ("train", "validation", "test" subsets).
        train, validation, test = (
            as_matrix(teacher.dataset(n, seed=spec.seed, subset=subset), np.float64)
            for n, subset in ((spec.n_train, "train"), (spec.n_validation, "validation"), (spec.n_test, "test"))
        )
        ceiling = float(teacher.log_likelihood(test).mean())
    else:
        from dilution.data import binarize, mnist
        from dilution.data.split import shuffle

        def binary(split: str):
            ds = mnist.load_mnist(spec.path, split)
            if spec.binarize == "threshold":
                return binarize.binarize(ds, "threshold", threshold=spec.threshold)
            return binarize.binarize(ds, "stochastic", seed=spec.seed)

        pool = as_matrix(shuffle(binary("train"), seed=spec.seed), np.float64)
        train = np.ascontiguousarray(pool[: spec.n_train])
        validation = np.ascontiguousarray(pool[spec.n_train : spec.n_train + spec.n_validation])
        test = np.ascontiguousarray(as_matrix(binary("test"), np.float64)[: spec.n_test])
        ceiling = float("nan")
    return StudyData(train, validation, test, ceiling, independent_log_likelihood(train, test))
