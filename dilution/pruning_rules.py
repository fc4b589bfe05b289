"""Pruning protocols of the lottery-ticket literature, as connectivity rules.

A protocol says *when* connections are pruned, *which* (a criterion of
:mod:`dilution.pruning`) and *what follows*:

* when: at initialisation (before any update, ``at_epochs=(0,)``), after any epoch, or after
  training (the last epoch); several epochs give iterative pruning, whose round ``r`` prunes
  to ``round(n_0 (1 - p)**r)`` connections (:func:`dilution.pruning.iterative_counts`), so the
  density follows ``(1 - p)**R`` exactly;
* what follows: ``"continue"`` training the survivors (fine-tuning, when the run goes on for
  ``E`` epochs after the last round); ``"rewind"`` the survivors and the biases to their values
  at initialisation (``rewind_epoch=0``, the lottery ticket of Frankle & Carbin 2019) or after
  epoch ``k`` (late rewinding, Frankle et al. 2020); ``"reinit"``, new random survivors drawn
  like the initial weights (the control of Frankle & Carbin). Rewinding and re-initialisation
  zero the optimiser velocities, put the persistent chains back to their update-0 state and
  restart the learning-rate schedule at the rewound update (``RuleInfo`` resets).

Training "from scratch with the same mask" is a separate run: :func:`from_scratch`.

Every parameter of a protocol is a field of a frozen dataclass, so the training history's
``config`` and ``rule`` attributes record all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from .connectivity import RuleInfo, StepContext
from .parameters import Parameters
from .pruning import Criterion, GlobalMagnitude, criterion_from_name, iterative_counts, prune_to_count
from .statistics import GradientEstimate
from .validation import check_finite, check_int

__all__ = ["PruningProtocol", "PruningState", "from_scratch"]


class PruningState(NamedTuple):
    """State of a :class:`PruningProtocol`.

    Attributes
    ----------
    initial_count : int
        Connections before the first round (``n_0``).
    rounds_done : int
    rewind_weights, rewind_visible_bias, rewind_hidden_bias : ndarray or None
        The parameters rewinding returns to (initial ones for ``"reinit"``'s biases).
    rewind_step : int
        Update count at which they were recorded (the schedule restarts there).
    """

    initial_count: int
    rounds_done: int
    rewind_weights: np.ndarray | None
    rewind_visible_bias: np.ndarray | None
    rewind_hidden_bias: np.ndarray | None
    rewind_step: int


@dataclass(frozen=True)
class PruningProtocol:
    """Prune at chosen epochs with a criterion, then continue, rewind or re-initialise.

    Parameters
    ----------
    fraction : float in [0, 1)
        Fraction of the connections removed per round (of those present at the round, as a
        target count ``round(n_0 (1 - fraction)**r)`` after round ``r``).
    at_epochs : tuple of int
        Completed epochs after which a round prunes, strictly increasing; 0 prunes the initial
        model before the first update; the run's last epoch prunes after training.
    criterion : Criterion or str
        :class:`~dilution.pruning.GlobalMagnitude` (default), ``UnitMagnitude``,
        ``RandomPruning``, ``DegreePreservingRandom``, ``Saliency`` (``|W * G|`` with ``G`` the
        gradient estimate of the update at pruning time, or a gradient estimated at
        initialisation for ``at_epochs`` starting at 0), or one of their names.
    then : "continue", "rewind" or "reinit"
    rewind_epoch : int
        With ``"rewind"``: the epoch whose end the survivors return to (0: initialisation). Must
        not come after the first pruning epoch.
    reinit_scale : float
        With ``"reinit"``: standard deviation of the new weights (the trainer's
        ``weight_scale`` by convention).
    """

    fraction: float
    at_epochs: tuple[int, ...] = (0,)
    criterion: Criterion = GlobalMagnitude()
    then: Literal["continue", "rewind", "reinit"] = "continue"
    rewind_epoch: int = 0
    reinit_scale: float = 0.01

    def __post_init__(self):
        if isinstance(self.fraction, (bool, np.bool_)) or not isinstance(self.fraction, (int, float, np.floating)):
            raise TypeError(f"pruning fraction must be a number in [0, 1), got {self.fraction!r}")
        if not 0.0 <= float(self.fraction) < 1.0:
            raise ValueError(f"pruning fraction must be in [0, 1), got {self.fraction!r}")
        object.__setattr__(self, "fraction", float(self.fraction))
        epochs = self.at_epochs if isinstance(self.at_epochs, (tuple, list)) else (self.at_epochs,)
        epochs = tuple(check_int("at_epochs entry", e, 0) for e in epochs)
        if not epochs or list(epochs) != sorted(set(epochs)):
            raise ValueError(f"at_epochs must be a non-empty, strictly increasing tuple of epochs, got {self.at_epochs!r}")
        object.__setattr__(self, "at_epochs", epochs)
        if isinstance(self.criterion, str):
            object.__setattr__(self, "criterion", criterion_from_name(self.criterion))
        elif not isinstance(self.criterion, Criterion) or isinstance(self.criterion, type):
            raise TypeError(f"criterion must be a pruning criterion (dilution.pruning) or its name, got {self.criterion!r}")
        if self.then not in ("continue", "rewind", "reinit"):
            raise ValueError(f"then must be 'continue', 'rewind' or 'reinit', got {self.then!r}")
        check_int("rewind_epoch", self.rewind_epoch, 0)
        if self.then == "rewind" and self.rewind_epoch > epochs[0]:
            raise ValueError(
                f"rewind_epoch={self.rewind_epoch} comes after the first pruning epoch {epochs[0]}: the survivors can "
                "only be rewound to values recorded before they were pruned"
            )
        check_finite("reinit_scale", self.reinit_scale, low=0.0)

    @property
    def rounds(self) -> int:
        return len(self.at_epochs)

    def final_density(self) -> float:
        """Density relative to the initial mask after the last round: ``(1 - fraction)**rounds``."""
        return (1.0 - self.fraction) ** self.rounds

    def init(self, params: Parameters, context: StepContext) -> tuple[Parameters, PruningState, RuleInfo]:
        if self.at_epochs[-1] > context.epochs:
            raise ValueError(
                f"PruningProtocol(at_epochs={self.at_epochs}) would prune after epoch {self.at_epochs[-1]} of a run "
                f"of {context.epochs} epochs"
            )
        if self.then == "rewind" and self.rewind_epoch > context.epochs:
            raise ValueError(f"rewind_epoch={self.rewind_epoch} is beyond the run's {context.epochs} epochs")
        snapshot = self.then == "reinit" or (self.then == "rewind" and self.rewind_epoch == 0)
        state = PruningState(
            int(np.count_nonzero(params.mask)), 0,
            params.weights.copy() if snapshot else None,
            params.visible_bias.copy() if snapshot else None,
            params.hidden_bias.copy() if snapshot else None,
            0,
        )
        if self.at_epochs[0] == 0:
            gradient = None
            if self.criterion.needs_gradient:
                if context.estimate_gradient is None:
                    raise ValueError(f"criterion {self.criterion.name!r} at initialisation needs a gradient estimate")
                gradient = context.estimate_gradient(params)
            return self._prune(params, state, gradient, context, at_init=True)
        return params, state, RuleInfo()

    def update(
        self, params: Parameters, state: PruningState, gradient: GradientEstimate, context: StepContext
    ) -> tuple[Parameters, PruningState, RuleInfo]:
        if not context.epoch_end:
            return params, state, RuleInfo()
        done = context.epoch + 1
        if self.then == "rewind" and done == self.rewind_epoch and self.rewind_epoch > 0:
            state = state._replace(
                rewind_weights=params.weights.copy(), rewind_visible_bias=params.visible_bias.copy(),
                rewind_hidden_bias=params.hidden_bias.copy(), rewind_step=context.step,
            )
        if done in self.at_epochs:
            return self._prune(params, state, gradient, context, at_init=False)
        return params, state, RuleInfo()

    def _prune(self, params, state: PruningState, gradient, context: StepContext, at_init: bool):
        r = state.rounds_done + 1
        target = iterative_counts(state.initial_count, self.fraction, r)[r]
        rng = np.random.default_rng(context.seed)
        mask = prune_to_count(
            params.mask, params.weights, self.criterion, target, gradient=gradient,
            rng=rng if self.criterion.needs_rng else None,
        )
        n_removed = int(np.count_nonzero(params.mask)) - target
        zero = params.weights.dtype.type(0)
        state = state._replace(rounds_done=r)
        if self.then == "continue" or (at_init and self.then == "rewind"):
            # Rewinding at initialisation returns the survivors to the values they have.
            new = params._replace(weights=np.where(mask, params.weights, zero), mask=mask)
            return new, state, RuleInfo(0, n_removed)
        if self.then == "rewind":
            new = Parameters(
                np.where(mask, state.rewind_weights, zero), state.rewind_visible_bias.copy(),
                state.rewind_hidden_bias.copy(), mask,
            )
            info = RuleInfo(0, n_removed, True, True, state.rewind_step)
            return new, state, info
        fresh = (self.reinit_scale * rng.standard_normal(mask.shape)).astype(params.weights.dtype)
        new = Parameters(
            np.where(mask, fresh, zero), state.rewind_visible_bias.copy(), state.rewind_hidden_bias.copy(), mask
        )
        return new, state, RuleInfo(0, n_removed, not at_init, not at_init, -1 if at_init else 0)


def from_scratch(mask, data, config, *, seed: int, dtype=None):
    """Train a fresh model on a given mask: the "from scratch at equal sparsity" baseline.

    The initial model is :func:`dilution.training.initialize` with the config's weight scale
    (all pairs drawn, then masked), biases from the data; the mask never changes
    (``config.rule`` must be the default static mask).

    Parameters
    ----------
    mask : ndarray of bool, shape (n_visible, n_hidden)
    data : array_like, shape (n_samples, n_visible)
    config : TrainConfig
    seed : int

    Returns
    -------
    TrainResult
    """
    from .connectivity import StaticMask
    from .model import RBM
    from .training import initialize, train

    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D bool array, got {mask.dtype} with shape {mask.shape}")
    if not isinstance(config.rule, StaticMask):
        raise ValueError(f"from_scratch trains a fixed mask; config.rule must be StaticMask(), got {config.rule!r}")
    dt = np.dtype(dtype or config.dtype or "float64")
    dense = initialize(
        mask.shape[0], mask.shape[1], data, connectivity=1.0, weight_scale=config.weight_scale,
        marginal_clip=config.marginal_clip, dtype=dt, seed=seed,
    )
    start = RBM(np.where(mask, dense.weights, dt.type(0)), dense.visible_bias, dense.hidden_bias, mask)
    return train(start, data, config, seed=seed)
