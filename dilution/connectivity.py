"""Connectivity rules: strategies that change the connection mask during training.

A rule is a frozen dataclass of hyper-parameters with two methods (the :class:`ConnectivityRule`
protocol), in the style of blackjax kernels: its mutable state is a separate value that the
trainer threads through the calls.

``init(params, context) -> (params, state, info)``
    Called once before the first update (``context.step == 0``). Creates the rule's state
    (e.g. the fixed signs of DEEP R, the connection strengths and stored weights of NCG) and
    may already change the mask (pruning at initialisation).
``update(params, state, gradient, context) -> (params, state, info)``
    Called after every optimiser step.

Contract
--------
* ``params`` is a :class:`~dilution.parameters.Parameters` of **read-only** arrays (weights, biases,
  mask) after the optimiser step. A rule never writes into them: it returns
  ``params._replace(...)`` with new arrays for what it changes (or ``params`` itself).
* ``gradient`` is the :class:`~dilution.statistics.GradientEstimate` the optimiser step just
  used, computed at the pre-step parameters, for **every** visible-hidden pair (masked pairs
  included): NCG's network gradient ``W * G`` on absent connections needs it. A rule whose class
  sets ``reads_absent_gradient = False`` promises never to read the gradient of a pair absent
  from the mask it is given (the static mask, DEEP R, soft-DEEP R); the trainer then has the
  estimator skip those pairs (``present_only``, :mod:`dilution.estimators`), which leaves them 0
  and makes the update of a diluted model much cheaper. Without the attribute a rule gets all pairs.
  A rule whose dynamics assume the optimiser's plain SGD step ``W + eta g`` sets ``plain_sgd`` to
  the reason (NCG, DEEP R, soft-DEEP R); :class:`~dilution.training.TrainConfig` then refuses
  ``momentum``, ``l1`` and ``l2`` other than 0 with that reason, before anything runs.
  A rule that draws its own mask names the option that sets its sparsity and what it means in
  ``sparsity_option`` (NCG's ``p``, DEEP R's ``k``, soft-DEEP R's ``p0``): the CLI refuses
  ``--connectivity`` for it, naming that option, and a study's pruning fraction sets it.
* ``context`` is a :class:`StepContext`: update index, epoch, whether the epoch ends here, the
  learning rate and momentum of the step (DEEP R's noise is ``sqrt(2 eta T)``), the run length,
  and a per-step ``SeedSequence`` for every random choice (``np.random.default_rng(context.seed)``
  or ``dilution.rng.chain_keys(context.seed, n)`` for numba kernels), so a rule's draws at a
  step do not depend on what it drew before.
* Weights of absent connections are 0 in ``params``; a rule that needs stored values for them
  (NCG keeps the frozen weight of a removed connection; DEEP R keeps signs and, for soft-DEEP R,
  dormant parameters) keeps them in its own state.
* After the call the trainer re-applies ``weights[~mask] = 0`` and zeroes the optimiser's
  velocity off the mask, so removed connections lose their momentum and new ones start from
  zero velocity with the weight the rule gave them.
* ``info`` is a :class:`RuleInfo` (or a NamedTuple whose first two fields are ``n_added``
  and ``n_removed``; further numeric fields are logged too, as their mean per update over
  each epoch, so that the history stays small for rules that act at every update). Its
  ``reset_optimizer``, ``reset_chains`` and ``schedule_step`` fields (when present) ask the
  trainer to zero the velocities, put the persistent chains back to their update-0 state and
  restart the learning-rate schedule: what rewinding protocols need.

How the planned rules map onto this (see the NCG / DEEP R digest in shared/papers)
----------------------------------------------------------------------------------
* One-shot and iterative pruning, with rewinding: :class:`dilution.pruning_rules.PruningProtocol`
  acts when ``context.epoch_end`` at chosen epochs (epoch 0 acts in ``init``), with the
  criteria of :mod:`dilution.pruning`.
* NCG (de Oliveira & Figueiredo): the optimiser step has already applied ``W += eta G * A``
  with the *old* mask, as in the authors' code; the rule adds ``eta_A W_stored * G`` to the
  connection strengths kept in its state (``G`` for all pairs, ``W_stored`` its frozen copy of
  removed weights), thresholds them into the new mask and returns the stored weight of a
  reconnected pair. ``momentum=0`` and ``l1 = l2 = 0`` match the paper.
* DEEP R (Bellec et al. 2018): the fixed signs ``s`` live in the rule state and
  ``theta = s * W`` on active pairs. With ``momentum=0`` and the optimiser's ``l1 = alpha``,
  the optimiser step is exactly ``theta += eta s g - eta alpha`` on active pairs; the rule adds
  ``sqrt(2 eta T) nu`` with ``eta = context.learning_rate``, deactivates ``theta < 0`` and
  reactivates random dormant pairs at ``theta = 0`` (soft-DEEP R keeps dormant ``theta`` in
  its state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .parameters import Parameters
from .rng import derive_seed
from .statistics import GradientEstimate

__all__ = ["ConnectivityRule", "StepContext", "RuleInfo", "StaticMask"]


class StepContext(NamedTuple):
    """Where training is when a rule is called.

    Attributes
    ----------
    step : int
        Number of updates done, this one included (0 in ``init``).
    epoch : int
        0-based epoch the update belongs to (0 in ``init``).
    epoch_end : bool
        True on the last update of an epoch.
    learning_rate : float
        Learning rate of this update (0 in ``init``).
    momentum : float
        Momentum of this update (0 in ``init``).
    total_steps : int
        Updates in the whole run.
    updates_per_epoch : int
    epochs : int
        Epochs in the whole run.
    run_seed : int
        The training run's seed.
    seed : numpy.random.SeedSequence (property)
        Seed of this call's random choices, ``derive_seed(run_seed, "connectivity", step)``:
        derived on first use, since most calls of most rules draw nothing.
    estimate_gradient : callable, optional
        ``estimate_gradient(params) -> GradientEstimate``: an estimate of the log-likelihood
        gradient at ``params`` on the run's first batch, from random streams of its own (the
        training chains are not touched). Given in ``init``, where no update has produced a
        gradient yet, for data-informed pruning at initialisation; None in ``update``.
    """

    step: int
    epoch: int
    epoch_end: bool
    learning_rate: float
    momentum: float
    total_steps: int
    updates_per_epoch: int
    epochs: int
    run_seed: int
    estimate_gradient: Callable[[Parameters], GradientEstimate] | None = None

    @property
    def seed(self) -> np.random.SeedSequence:
        return derive_seed(self.run_seed, "connectivity", self.step)


class RuleInfo(NamedTuple):
    """What a rule did at one call, and what the trainer must reset after it.

    Attributes
    ----------
    n_added, n_removed : int
        Connections the call added and removed.
    reset_optimizer : bool
        Zero the optimiser's velocities (rewinding, re-initialisation).
    reset_chains : bool
        Put the estimator's persistent chains back to their state at update 0 (their random
        streams go on, so no draw is reused).
    schedule_step : int
        ``>= 0``: the learning-rate and momentum schedules continue as if the next update were
        update ``schedule_step`` of a run that ends ``total_steps - step + schedule_step``
        updates later (rewinding to epoch ``k`` restarts the schedule at epoch ``k``); -1 keeps
        the schedule running.
    """

    n_added: int = 0
    n_removed: int = 0
    reset_optimizer: bool = False
    reset_chains: bool = False
    schedule_step: int = -1


@runtime_checkable
class ConnectivityRule(Protocol):
    """Protocol of connectivity rules; see the module docstring for the contract."""

    def init(self, params: Parameters, context: StepContext) -> tuple[Parameters, Any, NamedTuple]:
        ...

    def update(
        self, params: Parameters, state: Any, gradient: GradientEstimate, context: StepContext
    ) -> tuple[Parameters, Any, NamedTuple]:
        ...


@dataclass(frozen=True)
class StaticMask:
    """The mask never changes (training of a fixed diluted architecture)."""

    reads_absent_gradient: ClassVar[bool] = False

    def init(self, params: Parameters, context: StepContext) -> tuple[Parameters, None, RuleInfo]:
        return params, None, RuleInfo()

    def update(
        self, params: Parameters, state: None, gradient: GradientEstimate, context: StepContext
    ) -> tuple[Parameters, None, RuleInfo]:
        return params, state, RuleInfo()
