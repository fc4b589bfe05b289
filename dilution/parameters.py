"""The trainable arrays of a masked RBM as one value.

The trainer, the optimiser (:mod:`dilution.optim`), the gradient estimators and the connectivity
rules (:mod:`dilution.connectivity`) all exchange a :class:`Parameters`; it lives apart from
each of them so that none depends on another only for this type.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Parameters"]


class Parameters(NamedTuple):
    """The trainable arrays of a masked RBM, as the trainer, optimiser and connectivity rules see them.

    Attributes
    ----------
    weights : ndarray, shape (n_visible, n_hidden)
        Zero wherever ``mask`` is False.
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    mask : ndarray of bool, shape (n_visible, n_hidden)
    """

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray
    mask: np.ndarray
