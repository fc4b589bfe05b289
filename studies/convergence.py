"""Training to convergence: drive :func:`dilution.training.iterate` and stop by the study's rule.

A fixed epoch budget moves the located transition with the budget (diluted models learn more
slowly), so every grid point trains until :class:`studies.spec.StoppingRule` says its
held-out quality has stopped improving, up to the run's planned length.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from dilution import exact
from dilution.model import RBM
from dilution.training import TrainState, iterate

from .spec import StoppingRule

__all__ = ["Convergence", "held_out_metric", "train_to_convergence"]


class Convergence(NamedTuple):
    """Outcome of :func:`train_to_convergence`.

    Attributes
    ----------
    state : TrainState
        The state when the run stopped.
    epochs_used : int
        Epochs trained in total (pruning phase included).
    converged : bool
        The stopping rule fired before the planned length was reached (or at its last epoch).
    epochs : tuple of int
        Epochs (completed) at which the held-out metric was evaluated.
    values : tuple of float
        The held-out metric at those epochs.
    """

    state: TrainState
    epochs_used: int
    converged: bool
    epochs: tuple
    values: tuple


def held_out_metric(rbm: RBM, data: np.ndarray, metric: str) -> float:
    """Mean held-out ``log_likelihood`` (exact) or ``pseudo_log_likelihood`` of ``data``, in nats."""
    if metric == "log_likelihood":
        return float(exact.log_likelihood(rbm, data).mean())
    if metric == "pseudo_log_likelihood":
        from analysis.pseudolikelihood import pseudo_log_likelihood

        return float(pseudo_log_likelihood(rbm, data)["mean_pseudo_log_likelihood"])
    raise ValueError(f"metric must be 'log_likelihood' or 'pseudo_log_likelihood', got {metric!r}")


def train_to_convergence(
    state: TrainState,
    train: np.ndarray,
    held_out: np.ndarray,
    rule: StoppingRule,
    *,
    count_from_epoch: int = 0,
    epochs: tuple = (),
    values: tuple = (),
    on_evaluation: Callable[[TrainState, tuple, tuple], None] | None = None,
    baseline: float = -math.inf,
) -> Convergence:
    """Train ``state`` until ``rule`` says its held-out quality converged, or to the plan's end.

    Parameters
    ----------
    state : TrainState
        A new state or one saved during an earlier call (pass that call's ``epochs`` and
        ``values`` with it to continue its trace).
    train : ndarray, shape (n_train, n_visible)
        The training set of the state.
    held_out : ndarray, shape (n_held_out, n_visible)
        Validation data of the stopping rule (never the test set).
    rule : StoppingRule
    count_from_epoch : int
        First epoch evaluated (the last pruning epoch: before it the model is not the one
        that will be kept); then every ``rule.every`` epochs.
    epochs, values : tuple
        The trace so far (when continuing a saved state).
    on_evaluation : callable, optional
        ``on_evaluation(state, epochs, values)`` after every evaluation (checkpoints).
    baseline : float
        The held-out metric of the independent-unit model, for ``rule.plateau_margin``.

    Returns
    -------
    Convergence
    """
    upe = state.plan.updates_per_epoch
    epochs, values = tuple(epochs), tuple(values)

    def due(epoch: int) -> bool:
        return epoch >= count_from_epoch and (epoch - count_from_epoch) % rule.every == 0

    def record(state: TrainState, epoch: int):
        nonlocal epochs, values
        epochs += (epoch,)
        values += (held_out_metric(state.model, held_out, rule.metric),)
        if on_evaluation is not None:
            on_evaluation(state, epochs, values)
        return epoch >= rule.min_epochs and rule.converged(values, baseline)

    if values and epochs[-1] >= rule.min_epochs and rule.converged(values, baseline):  # saved after it converged
        return Convergence(state, math.ceil(state.step / upe), True, epochs, values)
    if state.step % upe == 0 and due(state.step // upe) and (not epochs or epochs[-1] < state.step // upe):
        if record(state, state.step // upe):
            return Convergence(state, state.step // upe, True, epochs, values)
    converged = False
    for state in iterate(state, train):
        if state.step % upe == 0 and due(state.step // upe) and record(state, state.step // upe):
            converged = True
            break
    return Convergence(state, math.ceil(state.step / upe), converged, epochs, values)
