"""The rewiring experiments' datasets: NCG trajectories on bars-and-stripes and DEEP R against static masks on MNIST.

* :func:`ncg_trajectories` (``rewiring-ncg.nc``): NCG's connection density and exact NLL
  against the epoch, over ``implementation``, ``initial_density``, ``seed`` and ``epoch``, on
  bars-and-stripes 4 x 4 in the reference code's layout (32 vectors, fixed order), 16 hidden
  units, CD-1, learning rate 0.01, batches of 5 (issue 11, item 1), with the fused kernel
  :func:`dilution.ncg.train_ncg_fused`. ``implementation`` is ``"dilution"`` (this toolkit's
  NCG) and ``"reference-quirks"`` (the same kernel with ``NCG(reference_quirks=True)``, which
  reproduces the reference code's behaviour: it is *not* the authors' C++ binary).
* :func:`mnist_comparison` (``rewiring-mnist.nc``; issue 11, item 4): test log-likelihood over
  ``method`` (``deep-r``, ``static``, ``magnitude``, ``dense`` and, on request, NCG from initial
  densities ``p`` as ``ncg-p1``, ``ncg-p0.5``, ...), ``connectivity`` and ``seed``: exact at a
  hidden size small enough to enumerate, or by AIS (e.g. 500 hidden units), with each run's
  final connection density, training wall time and, optionally, the auxiliary-classifier
  scores. ``dense`` and NCG do not take the connectivity (NCG's density is an outcome): their
  values are repeated along that axis (coordinate ``uses_connectivity`` = 0).

Both experiments take a ``seed`` and derive every run's seed from it, its seed index and the
purpose, so the two implementations (or the methods) of one seed share their initial draws.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from dilution.provenance import provenance
from dilution.rng import derive_seed

__all__ = ["IMPLEMENTATIONS", "METHODS", "BUDGET_VARIABLES", "ncg_epochs", "ncg_trajectories", "ncg_label",
           "mnist_comparison", "early_stopping"]

IMPLEMENTATIONS = ("dilution", "reference-quirks")
METHODS = ("deep-r", "static", "magnitude", "dense")


def _seed(seed: int, purpose: str, *path: int | str) -> int:
    return int(derive_seed(seed, purpose, *path).generate_state(1)[0])


def _check_count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def ncg_epochs(epochs: int, n_points: int = 25) -> np.ndarray:
    """Epoch 0 and about ``n_points`` geometrically spaced epochs up to ``epochs`` (included)."""
    _check_count("epochs", epochs)
    return np.unique(np.concatenate([[0], np.geomspace(1, epochs, n_points).round().astype(np.int64), [epochs]]))


def ncg_trajectories(*, epochs: int, n_seeds: int, initial_densities: Sequence[float] = (1.0, 0.5, 0.1),
                     n_hidden: int = 16, n_checkpoints: int = 25, seed: int = 0) -> xr.Dataset:
    """NCG density and exact NLL against the epoch on bars-and-stripes 4 x 4 (module docstring).

    Parameters
    ----------
    epochs : int
        Epochs of every run (7 updates each: 32 vectors in batches of 5).
    n_seeds : int
        Runs per (implementation, initial density).
    initial_densities : sequence of float in (0, 1]
        NCG's ``p``.
    n_hidden : int
    n_checkpoints : int
        About this many epochs besides 0 are recorded (:func:`ncg_epochs`).
    seed : int

    Returns
    -------
    xarray.Dataset
        ``density`` and ``nll`` of dims (``implementation``, ``initial_density``, ``seed``,
        ``epoch``); ``nll`` is minus the mean exact log-likelihood of the 32 vectors,
        duplicates included (as the reference code reports it).
    """
    from dilution.data.bars_stripes import reference_layout
    from dilution.estimators import CD
    from dilution.ncg import NCG, ncg_config, train_ncg_fused

    _check_count("epochs", epochs)
    _check_count("n_seeds", n_seeds)
    _check_count("n_hidden", n_hidden)
    densities = [float(p) for p in initial_densities]
    data = reference_layout(4).astype(np.float64)
    grid = ncg_epochs(epochs, _check_count("n_checkpoints", n_checkpoints))
    shape = (len(IMPLEMENTATIONS), len(densities), n_seeds, len(grid))
    density, nll = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, impl in enumerate(IMPLEMENTATIONS):
        for j, p in enumerate(densities):
            rule = NCG(p=p, reference_quirks=impl == "reference-quirks")
            config = ncg_config(rule, estimator=CD(1), batch_size=5, learning_rate=0.01, epochs=epochs,
                                checkpoints=1, exact_log_likelihood=False)
            for s in range(n_seeds):
                run = train_ncg_fused((data.shape[1], n_hidden), data, config,
                                      seed=_seed(seed, "studies.rewiring.ncg", j, s), checkpoint_epochs=grid)
                history = run.history
                density[i, j, s] = history["connectivity"].values
                nll[i, j, s] = -history["log_likelihood"].values
    coords = {
        "implementation": ("implementation", list(IMPLEMENTATIONS), {
            "long_name": "implementation (dilution: this toolkit's NCG; reference-quirks: the same with "
                         "NCG(reference_quirks=True), the reference code's behaviour, not its binary)", "units": "1"}),
        "initial_density": ("initial_density", np.array(densities), {"long_name": "initial connection density p",
                                                                     "units": "1"}),
        "seed": ("seed", np.arange(n_seeds), {"long_name": "seed index", "units": "1"}),
        "epoch": ("epoch", grid, {"long_name": "epochs trained", "units": "epochs"}),
    }
    dims = tuple(coords)
    data_vars = {
        "density": (dims, density, {"long_name": "connection density", "units": "1"}),
        "nll": (dims, nll, {"long_name": "negative log-likelihood (mean over the 32 training vectors)",
                            "units": "nats per sample"}),
    }
    experiment = {"epochs": epochs, "n_seeds": n_seeds, "initial_densities": densities, "n_hidden": n_hidden,
                  "n_checkpoints": n_checkpoints, "seed": seed}
    return xr.Dataset(data_vars, coords=coords, attrs=provenance(
        title="NCG on bars-and-stripes 4 x 4 (reference layout): density and exact NLL", seed=seed,
        experiment=json.dumps(experiment, sort_keys=True),
        setup="CD-1, learning rate 0.01, batches of 5 in fixed order, fused NCG kernel"))


def _method_config(method: str, connectivity: float, n_visible: int, n_hidden: int, common: dict, epochs: int,
                   n_train: int, deep_r_alpha: float = 0.0):
    from dilution.deep_r import DeepR, deep_r_config
    from dilution.ncg import NCG, ncg_config
    from dilution.pruning_rules import PruningProtocol
    from dilution.training import TrainConfig

    if method == "deep-r":
        k = max(1, round(connectivity * n_visible * n_hidden))
        # T = 1 / n_samples: the Bayesian posterior of the batch-mean objective (DeepR docstring);
        # by default no L1 prior, so the comparison with the static mask is at the same connectivity only.
        rule = DeepR(k=k, alpha=deep_r_alpha, temperature=1.0 / n_train)
        return deep_r_config(rule, epochs=epochs, **common)
    if method == "static":
        return TrainConfig(connectivity=connectivity, epochs=epochs, **common)
    if method == "magnitude":
        # Dense for half the run, then the smallest |W| pruned to the connectivity and fine-tuned.
        return TrainConfig(rule=PruningProtocol(fraction=1.0 - connectivity, at_epochs=(max(1, epochs // 2),)),
                           epochs=epochs, **common)
    if method.startswith("ncg-p"):
        # The rule draws its own initial mask, weights U(-1, 1) and zero biases (NCG docstring);
        # the rest (PCD-k, batches of 100, plain SGD) is what every other method gets.
        return ncg_config(NCG(p=float(method[len("ncg-p"):])), epochs=epochs, **common)
    return TrainConfig(epochs=epochs, **common)


def ncg_label(p: float) -> str:
    """The ``method`` label of NCG from initial density ``p``: ``ncg-p1``, ``ncg-p0.5``, ``ncg-p0.1``."""
    return f"ncg-p{float(p):g}"


def _check_ais(name: str, value) -> int:
    # Two chains at least: the AIS standard error of log Z is a spread over chains; two betas
    # at least: the schedule runs from 0 to 1.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2 (an AIS budget), got {value!r}")
    return int(value)


def _seed_indices(seeds) -> list[int]:
    """``seeds`` of :func:`mnist_comparison` as ascending seed indices, or a ValueError naming it."""
    values = list(np.atleast_1d(seeds)) if not isinstance(seeds, (str, bytes)) else None
    if not values or any(isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < 0
                         for x in values):
        raise ValueError(f"seeds must be a non-empty sequence of seed indices (integers >= 0), got {seeds!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds must not repeat an index, got {[int(x) for x in values]}")
    return sorted(int(x) for x in values)


def _budgets(value, name: str = "epochs", low: int = 1, what: str = "training budgets") -> tuple[int, ...]:
    """``epochs`` (or ``ais_betas``) of :func:`mnist_comparison` as sorted budgets, each >= ``low``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (_check_count(name, value, low=low),)
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if not items or any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < low for e in items) \
            or len(set(items)) != len(items):
        raise ValueError(f"{name} must be an integer >= {low} or a non-empty list of distinct integers >= {low} "
                         f"({what}), got {value!r}")
    return tuple(sorted(int(e) for e in items))


def _digest(*parts) -> str:
    import hashlib

    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


class _WorkDir:
    """The folder that makes :func:`mnist_comparison` resumable. Per training run ``<run>``:
    ``<run>-state.nc`` (its latest training state; ``<run>-aside-state.nc`` that of its re-run when
    a smaller budget was asked after it), ``<run>-e<epochs>.nc`` (its model after that many
    epochs) and ``<run>-e<epochs>-<key>.json`` (that model's scores under one evaluation, ``key`` a
    digest of the evaluation's settings and of the run; ``<run>-e<epochs>-<key>.ais.npz`` (and
    ``...ais-raise.npz``) holds the scoring AIS run's checkpoint while it runs, so that an
    interruption loses minutes of it).
    Files are written atomically and checked on reading: a state or model of another training
    run (config, seed or data) is refused, and a score of another evaluation is not read, so a
    call with other evaluation settings scores the kept models again without training."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"work_dir {self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)

    def scores(self, run: str, epochs: int, key: str) -> dict | None:
        path = self.folder / f"{run}-e{epochs}-{key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def ais_checkpoint(self, run: str, epochs: int, key: str) -> Path:
        """The checkpoint of the AIS run that scores ``run`` after ``epochs`` under score key ``key``."""
        return self.folder / f"{run}-e{epochs}-{key}.ais.npz"

    def save_scores(self, run: str, epochs: int, key: str, row: dict) -> None:
        from dilution.io import atomic_write

        with atomic_write(self.folder / f"{run}-e{epochs}-{key}.json") as tmp:
            tmp.write_text(json.dumps(row, sort_keys=True))

    def model(self, run: str, epochs: int, run_key: str):
        """``(model, train_seconds)`` kept for ``run`` after ``epochs``, or None."""
        from dilution.io import load, load_dataset

        path = self.folder / f"{run}-e{epochs}.nc"
        if not path.exists():
            return None
        attrs = load_dataset(path).attrs
        if attrs.get("run_key") != run_key:
            raise ValueError(f"work_dir: {path.name} was made by another training run (its config, seed or data "
                             "differ from this run's); remove it, or give another work_dir")
        return load(path), float(attrs["train_seconds"])

    def save_model(self, run: str, epochs: int, model, run_key: str, train_seconds: float) -> None:
        from dilution.io import save

        save(model, self.folder / f"{run}-e{epochs}.nc", attrs={"run_key": run_key, "train_seconds": train_seconds})

    def state(self, run: str, run_key: str):
        from dilution.io import load_dataset, load_state

        path = self.folder / f"{run}-state.nc"
        if not path.exists():
            return None
        if load_dataset(path).attrs.get("run_key") != run_key:
            raise ValueError(f"work_dir: {path.name} was made by another training run (its config, seed or data "
                             "differ from this run's); remove it to retrain the run, or give another work_dir")
        return load_state(path)

    def save_state(self, run: str, state, run_key: str) -> None:
        from dilution.io import save

        save(state, self.folder / f"{run}-state.nc", attrs={"run_key": run_key})


def _run_key(config, seed: int, data: np.ndarray) -> str:
    """What makes a training run: its config, seed and training data; not its planned length when
    that changes none of its updates (:func:`dilution.training.extendable`), so a run planned
    for 800 epochs continues one planned for 400 and shares its models."""
    import dataclasses

    from dilution.training import data_fingerprint, extendable

    if extendable(config) is None:
        config = dataclasses.replace(config, epochs=1)
    return _digest(config.to_json(), seed, data_fingerprint(data))


def _train_stops(config, data: np.ndarray, seed: int, n_hidden: int, stops: Sequence[int], store: _WorkDir | None,
                 run: str, save_every: int, log=None):
    """Yield ``(model, train_seconds)`` after each of ``stops`` (ascending epochs) of one training
    run: a model kept in ``store``, or the run's saved state continued (saved every
    ``save_every`` epochs, each stop's model kept). A stop below the saved state whose model was
    never kept (a smaller budget asked after a larger one) is reached by training the run again
    from its start aside, in ``<run>-aside-state.nc``, leaving the saved state as it is: a run
    resumed from its seed is the uninterrupted run, so the model is the one the run had there.
    A generator: the caller scores each model before the run goes on. ``log`` (optional)
    receives a line per saved state."""
    from dilution.training import extend, init_state, train

    if not stops:
        return
    run_key = _run_key(config, seed, data)
    aside_run = f"{run}-aside"

    def fresh():
        return init_state((data.shape[1], n_hidden), data, config, seed=seed)

    def restored(name: str):
        """The saved state of ``name``, else the run's initial state."""
        state = store.state(name, run_key) if store is not None else None
        if state is None:
            return fresh()
        if state.plan.epochs < config.epochs:  # a shorter plan of the same run (same key)
            state = extend(state, config.epochs)
        return state

    state = aside = None  # the run's saved state and its re-run's, loaded when first needed
    for stop in stops:
        kept = store.model(run, stop, run_key) if store is not None else None
        if kept is not None:
            yield kept
            continue
        if state is None:
            state = restored(run)
        per_epoch = state.plan.updates_per_epoch
        below = state.step > stop * per_epoch  # the saved state is past this stop: train the re-run
        if below and (aside is None or aside.step > stop * per_epoch):
            aside = restored(aside_run)
            if aside.step > stop * per_epoch:  # the re-run's state is past this stop too: start again
                aside = fresh()
        name, current = (aside_run, aside) if below else (run, state)
        while current.step < stop * per_epoch:
            until = stop if store is None else min(stop, (current.step // per_epoch // save_every + 1) * save_every)
            current = train(None, data, None, resume=current, until=until * per_epoch, progress=False).state
            if store is not None:
                store.save_state(name, current, run_key)
                if log is not None:
                    log(f"{name}: epoch {current.step // per_epoch} of {config.epochs} saved "
                        f"({current.train_time:.0f} s of training)")
        if below:
            aside = current
        else:
            state = current
        if store is not None:
            store.save_model(run, stop, current.model, run_key, float(current.train_time))
        yield current.model, float(current.train_time)


def _score(evaluation, model, data, seed: int, classifier, ais: bool,
           ais_checkpoint: Path | None = None, progress: bool = False) -> dict[str, float]:
    """The evaluation's metric values of ``model`` (and ``ais_degenerate`` with AIS, and
    ``ais_reverse_degenerate`` with its reverse run); AIS warnings are recorded and still shown."""
    import warnings

    from dilution.ais import DegenerateReverseWeightsWarning, DegenerateWeightsWarning

    from .evaluate import evaluate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateWeightsWarning)
        ev = evaluate(evaluation, model, data, seed, classifier=classifier, ais_checkpoint=ais_checkpoint,
                      progress=progress)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    row = {name: float(metric.value) for name, metric in ev.metrics.items()}
    if ais:
        # per degeneracy warning (caught also holds any other warning): from the reverse run or not
        reverse = [issubclass(w.category, DegenerateReverseWeightsWarning) for w in caught
                   if issubclass(w.category, DegenerateWeightsWarning)]
        row["ais_degenerate"] = float(not all(reverse))
        if evaluation.ais_reverse:
            row["ais_reverse_degenerate"] = float(any(reverse))
    return row


def _held_in_scores(model, train: np.ndarray, validation: np.ndarray, row: dict) -> dict[str, float]:
    """The mean log-likelihood of the training images and of the validation images (if any) with
    the score's log Z, and how many validation images that was."""
    from analysis.likelihood import log_likelihood

    out = {"train_log_likelihood": float(log_likelihood(model, train, row["log_partition"]).mean()),
           "validation_images": validation.shape[0]}
    if validation.shape[0]:
        out["validation_log_likelihood"] = float(log_likelihood(model, validation, row["log_partition"]).mean())
    return out


def _weight_scores(model) -> dict[str, float]:
    """The root mean square and the largest magnitude of the present connections' weights."""
    present = np.asarray(model.weights, dtype=np.float64)[np.asarray(model.mask) != 0]
    if present.size == 0:
        return {"weight_rms": 0.0, "weight_max_abs": 0.0}
    return {"weight_rms": float(np.sqrt(np.mean(present * present))), "weight_max_abs": float(np.abs(present).max())}


def early_stopping(ds: xr.Dataset, score: str = "test_log_likelihood") -> xr.Dataset:
    """Each model's budget chosen by its validation log-likelihood, and its ``score`` at that budget.

    Early stopping over the ``epochs`` of a :func:`mnist_comparison` dataset: for every method,
    connectivity, seed (and AIS budget) the budget with the highest ``validation_log_likelihood``
    (the smaller budget on a tie), never the test score. Budgets not scored yet (NaN, a
    ``kept_only`` table) are skipped; a model with no scored budget gets NaN.

    Returns
    -------
    xarray.Dataset
        ``early_stopped_epochs`` and ``early_stopped_<score>``, the dims of ``score`` without
        ``epochs``.
    """
    for name in ("epochs", "validation_log_likelihood", score):
        if name not in ds.variables:
            raise ValueError(f"early stopping needs {name!r} in the dataset (mnist_comparison with a sequence of "
                             f"epochs and n_validation > 0), got variables {sorted(map(str, ds.variables))}")
    if "epochs" not in ds[score].dims:
        raise ValueError(f"{score!r} has no epochs dimension to stop along (dims {ds[score].dims})")
    validation = ds["validation_log_likelihood"]
    scored = validation.notnull().any("epochs")
    best = validation.fillna(-np.inf).argmax("epochs")  # first maximum: the smaller budget on a tie
    epochs = ds["epochs"].isel(epochs=best).where(scored).drop_vars("epochs")
    epochs.attrs = {"long_name": "training budget with the highest validation log-likelihood (early stopping; NaN: "
                                 "no budget scored)", "units": "epochs"}
    value = ds[score].isel(epochs=best).where(scored).drop_vars("epochs")
    value.attrs = {"long_name": f"{ds[score].attrs.get('long_name', score)}, at the budget chosen by the validation "
                                "log-likelihood", "units": ds[score].attrs.get("units", "1")}
    return xr.Dataset({"early_stopped_epochs": epochs, f"early_stopped_{score}": value})


_GAIN_VARIABLES = {
    "epoch_gain": ("test log-likelihood gained from the previous (smaller) training budget, on the same test images "
                   "(the budget-doubling check; NaN at the first budget)", "nats per sample"),
    "epoch_gain_se": ("standard error of epoch_gain: the spread over the test images of the per-image difference "
                      "of the two models' log-likelihoods (paired, so far below test_log_likelihood_se) and the two "
                      "log Z standard errors, added in quadrature", "nats per sample"),
}


_OVERLAP_VARIABLES = {
    "mask_overlap": ("mask overlap C(t_w, t): |A & B| / sqrt(|A| |B|) of the connections present after this "
                     "budget t (A) and after the previous, smaller one t_w (B), "
                     "analysis.masks.two_time_overlap (NaN at the first budget; 1 for dense, whose mask is full, and "
                     "static, whose mask is fixed; magnitude: the masks of its two runs, one per budget); a run at "
                     "equilibrium has it depend on the lag between the budgets, an aging one on their ratio", "1"),
    "mask_overlap_chance": ("chance level of mask_overlap: sqrt(|A| |B|) / M, its mean for independent uniformly "
                            "random masks with those counts among the M = n_visible n_hidden pairs (1 for dense)",
                            "1"),
}


# What mnist_comparison adds with several training budgets: a file of it without one of these was
# written by an older version (studies.reproduce remakes it).
BUDGET_VARIABLES = (*_GAIN_VARIABLES, *_OVERLAP_VARIABLES)


def _mask_overlaps(masks: list, budgets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """:data:`_OVERLAP_VARIABLES` of one model along its budgets: ``masks[i]`` its mask after
    budget ``i`` (None: not at hand), each compared with the one before by
    :func:`analysis.masks.two_time_overlap`; shape (budgets,), NaN where either mask is missing."""
    from analysis.masks import two_time_overlap

    overlap, chance = np.full(len(masks), np.nan), np.full(len(masks), np.nan)
    for i in range(1, len(masks)):
        if masks[i - 1] is None or masks[i] is None:
            continue
        pair = two_time_overlap(np.stack([masks[i - 1], masks[i]]), [budgets[i - 1], budgets[i]])
        overlap[i], chance[i] = pair["overlap"].item(), pair["chance"].item()
    return overlap, chance


def _epoch_gains(unnormalised: list, test_log_likelihood: np.ndarray,
                 log_partition_se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:data:`_GAIN_VARIABLES` of one model along its budgets: ``unnormalised[i]`` the test
    images' ``log p(v) + log Z`` after budget ``i`` (None: not scored), the other two of shape
    (budgets, AIS budgets). A test log-likelihood is the images' mean of ``log p(v) + log Z``
    less ``log Z``, so the gain from budget ``i - 1`` to ``i`` is the mean of the per-image
    differences less the difference of the log Z estimates; its variance is taken as the images'
    variance of the difference over their number plus the two log Z variances. The two AIS runs
    share the model's evaluation seed (common random numbers), which usually correlates their
    errors positively, and then that sum overstates the variance of their difference."""
    gain = np.full(test_log_likelihood.shape, np.nan)
    se = np.full(test_log_likelihood.shape, np.nan)
    for i in range(1, len(unnormalised)):
        before, after = unnormalised[i - 1], unnormalised[i]
        if before is None or after is None:
            continue
        difference = after - before
        images = difference.var(ddof=1) / difference.size if difference.size > 1 else np.nan
        gain[i] = test_log_likelihood[i] - test_log_likelihood[i - 1]
        se[i] = np.sqrt(images + log_partition_se[i] ** 2 + log_partition_se[i - 1] ** 2)
    return gain, se


def mnist_comparison(mnist: str, *, connectivities: Sequence[float] = (0.05, 0.1, 0.3), n_seeds: int = 3,
                     seeds: Sequence[int] | None = None, n_hidden: int = 16, epochs: int | Sequence[int] = 20,
                     n_train: int = 10000, n_test: int = 2000,
                     n_validation: int = 2000,
                     learning_rate: float = 0.01, k: int = 1, seed: int = 0, methods: Sequence[str] = METHODS,
                     ncg_densities: Sequence[float] = (), deep_r_alpha: float = 0.0,
                     likelihood: Literal["exact", "ais"] = "exact",
                     ais_chains: int = 100, ais_betas: int | Sequence[int] = 10_000, ais_resample: float = 0.0,
                     ais_groups: int = 10, ais_schedule: Literal["linear", "classic"] = "linear",
                     ais_reverse: bool = False, ais_raise: int = 0, classifier=None, n_samples: int = 1000,
                     n_sweeps: int = 1000, dtype: Literal["float64", "float32"] = "float64",
                     work_dir: str | os.PathLike | None = None, save_every: int = 25, kept_only: bool = False,
                     progress: bool = False) -> xr.Dataset:
    """Test log-likelihood of DEEP R, static random masks, magnitude pruning, NCG and the dense
    model on binarised MNIST (module docstring; issue 11, item 4).

    Every run is PCD-``k`` with batches of 100 and plain SGD at ``learning_rate`` for ``epochs``
    epochs. Its model is scored by :func:`studies.evaluate.evaluate` (the studies' evaluation:
    exact enumeration or forward AIS with a base rate from the training images; classifier
    scores of ``n_samples`` Gibbs chains of ``n_sweeps`` sweeps).

    Seeds: run ``s`` of every method trains with the same seed (``derive_seed(seed,
    "studies.rewiring.mnist", s)``), so the methods of one seed index share the data order and
    the chains' streams (a paired comparison) and adding or removing a method never changes
    another's numbers; the evaluation draws (AIS, samples) come from
    ``derive_seed(seed, "studies.rewiring.mnist.evaluation", method, repr(connectivity), s)``.

    Parameters
    ----------
    mnist : str
        The ``mnist.npz`` file (or IDX folder).
    connectivities : sequence of float in (0, 1)
    n_seeds : int
        Runs seed indices ``0 .. n_seeds - 1``.
    seeds : sequence of int >= 0, optional
        The seed indices to run instead (``n_seeds`` is then not read): a campaign's seeds split
        over machines or processes, e.g. ``seeds=(2,)`` beside a call with ``n_seeds=2``, in one
        ``work_dir`` or apart. An index gives the numbers a full call gives at that index (its
        runs and evaluation draw from seeds derived from the index); the result's ``seed``
        coordinate holds the indices, ascending, so ``xarray.concat`` over ``seed`` joins parts.
    n_hidden : int
        At most :data:`dilution.exact.MAX_UNITS` with ``likelihood="exact"``.
    epochs : int or sequence of int
        The training budget; a sequence gives several budgets scored in one call (the budget-
        doubling check, e.g. ``(400, 800)``) and the result an ``epochs`` dimension. Every method
        but magnitude pruning trains once, for the largest budget, and is scored after each
        budget's number of epochs: with a constant learning rate that model is the one a run of
        that budget ends with (tested). Magnitude pruning prunes at half its budget, so it runs
        once per budget.
    n_train, n_test : int
        The first images of the shuffled training set and of the test set (threshold 0.5).
    n_validation : int >= 0
        The next images of the shuffled training set, never trained on: their mean
        log-likelihood (``validation_log_likelihood``, same log Z as the test score) picks the
        budget to report for a model that overfits (early stopping over ``epochs``) without
        looking at the test set. 0: no validation images.
    learning_rate : float
    k : int
        Gibbs sweeps per update of the persistent chains (PCD-k).
    seed : int
    methods : sequence of str
        A subset of :data:`METHODS`, kept in the order of :data:`METHODS`.
    ncg_densities : sequence of float in (0, 1]
        NCG runs from these initial densities ``p``, as methods :func:`ncg_label` (after ``methods``).
        NCG's density is an outcome, not the ``connectivity`` coordinate: like ``dense``, one run
        per seed, repeated along ``connectivity``; its density after training is ``final_density``.
    deep_r_alpha : float >= 0
        DEEP R's L1 coefficient alpha (:class:`dilution.deep_r.DeepR`; its temperature is
        ``1 / n_train``, the Bayesian posterior of the batch-mean loss, under which alpha is an
        Exp(``n_train * alpha``) prior on the active parameters' magnitudes). Default 0: no prior,
        so DEEP R differs from the static mask in the rewiring only; then nothing bounds the
        weights, which keep growing under a constant learning rate (at 784 x 500 and 2 % the test
        score peaks and then falls). Runs with ``deep_r_alpha > 0`` are kept in a ``work_dir``
        under their own names (``deep-r-a<alpha>-c...``), beside those without a prior.
    likelihood : "exact" or "ais"
        ``"ais"``: ``log Z`` by ``ais_chains`` forward AIS runs over ``ais_betas`` inverse
        temperatures (``ais_schedule``) (a stochastic upper bound on the log-likelihood, with the AIS
        standard error of ``log Z`` in ``log_partition_se``).
    ais_chains : int >= 2
    ais_betas : int >= 2 (>= 4 with the classic schedule), or a list of them
        AIS betas per run. A list scores every model with each (the AIS-budget doubling check:
        a log Z that moves when the betas double is not converged) on an ``ais_betas``
        dimension of the score variables (last); with ``work_dir`` the scores of each budget are
        kept apart, so a call adding a budget scores only that one.
    ais_resample : float in [0, 1), ais_groups : int
        AIS with adaptive resampling in ``ais_groups`` populations when ``ais_resample > 0``
        (:class:`studies.spec.EvaluationSpec`): for 784 x 500 PCD models, whose plain AIS weights
        collapse.
    ais_schedule : "linear" or "classic"
        Linearly spaced betas, or ``ais_betas`` in the proportions of Salakhutdinov & Murray's
        schedule (:func:`dilution.schedules.classic`), finer near beta = 1.
    ais_reverse : bool
        With ``likelihood="ais"``: reverse AIS after the forward run (:class:`studies.spec.EvaluationSpec`),
        so that the table brackets the test log-likelihood: ``test_log_likelihood`` is a stochastic
        upper bound, ``test_log_likelihood_lower`` (with the reverse estimate ``log_partition_upper``)
        a lower one, approximate since the reverse chains start from Gibbs samples. About doubles
        the AIS time. The forward numbers are those of ``ais_reverse=False``, whose kept scores
        keep their keys (a ``work_dir`` holds both, apart).
    ais_raise : int >= 0
        With ``likelihood="ais"`` and ``ais_raise > 0``: RAISE too (:func:`dilution.ais.raise_log_likelihood`,
        reverse AIS from each test image over the forward betas, ``ais_raise`` chains per image), whose
        ``test_log_likelihood_raise`` is conservative where the annealing does not equilibrate but no bound on
        the RBM's log-likelihood; ``raise_gap`` is the forward score less it, paired over the test images. It
        costs ``ais_raise`` x ``n_test`` reverse chains, about ``ais_raise * n_test / ais_chains`` forward
        runs. Kept models are scored with it without training; 0 (off) keeps the kept scores' keys.
    classifier : analysis.classifier.DigitClassifier, optional
        Given: the auxiliary-classifier scores of every model's samples are variables too
        (:func:`analysis.classifier.load_or_train_classifier` makes and caches one).
    n_samples, n_sweeps : int
        Model samples for the classifier scores.
    dtype : "float64" or "float32"
        Precision of the training runs (float32: 1.3-1.7x faster at 784 x 500 on one core).
    work_dir : path, optional
        Makes the call resumable: every run's training state is saved there every
        ``save_every`` epochs, and every model to be scored and then its scores, so a call that
        was stopped (killed, out of time) and called again continues where it was and returns
        what the uninterrupted call returns (train seconds aside). Runs are kept per run
        (``<method>-c<connectivity>-s<seed>``; magnitude pruning ``...-b<budget>``), scores per
        evaluation: a call with other evaluation settings (``likelihood``, ``ais_*``,
        ``classifier``, ``n_test``, ...) scores the kept models without training; calls with
        other methods or seeds share the runs they have in common (two processes may work on
        disjoint method sets in one folder), and a call with a larger budget continues the runs
        of a smaller one (:func:`dilution.training.extend`; magnitude pruning, whose prune time
        moves with the budget, trains anew), while a smaller budget asked after a larger one
        trains the run again from its start, aside (its own saved state, the larger one's kept),
        to the same model it had there. A state or model of another training run (config,
        seed or training data) is refused. Default: nothing is kept.
    save_every : int
        Epochs between saved training states with ``work_dir``.
    kept_only : bool
        With ``work_dir``: train and score nothing, return the scores kept there and NaN where a
        model is not scored yet: the table of a campaign that is still running (or was stopped).
    progress : bool
        A line per scored model on standard error (method, seed, epochs, seconds, log-likelihood),
        with ``work_dir`` one per saved training state, and progress bars with ETA for each
        evaluation's AIS and RAISE runs and samples (minutes to hours at 500 hidden units).

    Returns
    -------
    xarray.Dataset
        Dims (``method``, ``connectivity``, ``seed``), then ``epochs`` when ``epochs`` is a
        sequence: ``final_density``, ``train_seconds``, ``weight_rms`` and ``weight_max_abs`` (of
        the present connections); the scores have ``ais_betas`` last when ``ais_betas`` is a
        sequence: ``test_log_likelihood``, ``test_log_likelihood_se``,
        ``log_partition``, ``log_partition_se``, ``train_log_likelihood`` (the training images'
        mean log-likelihood with the same log Z: train - test is the generalisation gap, exact
        even under AIS), with AIS ``ais_degenerate`` (and with several ``ais_betas``
        ``log_partition_converged`` per model: no two budgets' log Z apart by more than
        ``CONVERGED_SIGMAS`` combined standard errors), with ``ais_reverse`` also ``test_log_likelihood_lower``,
        ``log_partition_upper``, ``log_partition_upper_se``, ``log_partition_upper_ess`` and
        ``ais_reverse_degenerate``, with ``ais_raise`` also ``test_log_likelihood_raise``,
        ``test_log_likelihood_raise_se``, ``raise_gap`` and ``raise_gap_se``, and, with a classifier,
        ``classifier_inception_score``, ``classifier_coverage_entropy``,
        ``classifier_mean_max_probability``; with several ``epochs``, ``epoch_gain`` and
        ``epoch_gain_se`` (the budget-doubling check: the test log-likelihood gained from the
        previous budget and its standard error, paired over the test images, which is what tells
        a real gain from noise: ``test_log_likelihood_se`` is mostly the images' spread, common to
        both budgets), ``mask_overlap`` and ``mask_overlap_chance`` (no ``ais_betas`` dim: the
        overlap of the connections present after this budget and after the previous one,
        :func:`analysis.masks.two_time_overlap`, NaN at the first budget, and its chance level;
        1 and 1 for dense, 1 for static; magnitude pruning's two masks are of two runs; DEEP R's
        tells a rewiring at equilibrium, whose overlap falls with the lag, from one that ages,
        whose overlap depends on the budgets' ratio), and with ``n_validation`` too, ``validation_log_likelihood`` and
        :func:`early_stopping`'s ``early_stopped_epochs`` and
        ``early_stopped_test_log_likelihood`` (no ``epochs`` dim). Coordinates on
        ``method``: ``initial_density`` (NCG's ``p``, NaN otherwise) and ``uses_connectivity``
        (0 where the value is repeated along ``connectivity``).
    """
    import sys

    from dilution import exact
    from dilution.ais import LOW_ESS_FRACTION, check_resampling
    from dilution.data import binarize
    from dilution.data import mnist as mnist_data
    from dilution.data.split import as_matrix, shuffle
    from dilution.estimators import PCD
    from dilution.training import data_fingerprint

    from analysis.likelihood import CONVERGED_SIGMAS, budgets_agree, log_likelihood

    from .data import StudyData
    from .evaluate import log_likelihood_method, metric_variables, remove_checkpoints
    from .spec import EvaluationSpec

    budgets = _budgets(epochs)
    if seeds is None:
        _check_count("n_seeds", n_seeds)
        indices = list(range(n_seeds))
    else:
        indices = _seed_indices(seeds)
    for name, value in (("n_hidden", n_hidden), ("n_train", n_train),
                        ("n_test", n_test), ("n_samples", n_samples), ("k", k), ("save_every", save_every)):
        _check_count(name, value)
    _check_count("n_validation", n_validation, low=0)
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if kept_only and work_dir is None:
        raise ValueError("kept_only reads the scores kept in a work_dir: give work_dir")
    _check_count("n_sweeps", n_sweeps, low=0)
    k = int(k)
    if likelihood not in ("exact", "ais"):
        raise ValueError(f"likelihood must be 'exact' or 'ais', got {likelihood!r}")
    if likelihood == "exact" and n_hidden > exact.MAX_UNITS:
        raise ValueError(f"n_hidden must be at most {exact.MAX_UNITS} with likelihood='exact' (enumeration), got "
                         f"{n_hidden}; use likelihood='ais'")
    _check_ais("ais_chains", ais_chains)
    if ais_schedule not in ("linear", "classic"):
        raise ValueError(f"ais_schedule must be 'linear' or 'classic', got {ais_schedule!r}")
    beta_budgets = _budgets(ais_betas, "ais_betas", low=4 if ais_schedule == "classic" else 2,
                            what="AIS budgets")
    single_betas = isinstance(ais_betas, (int, np.integer))
    if likelihood == "exact" and not single_betas:
        raise ValueError("ais_betas as a list (AIS budgets to compare) needs likelihood='ais'")
    check_resampling(ais_resample, ais_groups, ais_chains, names=("ais_resample", "ais_groups", "ais_chains"))
    if not isinstance(ais_reverse, bool):
        raise ValueError(f"ais_reverse must be True or False, got {ais_reverse!r}")
    ais_raise = _check_count("ais_raise", ais_raise, low=0)
    conn = [float(c) for c in connectivities]
    if not conn or any(not 0.0 < c < 1.0 for c in conn):
        raise ValueError(f"connectivities must be a non-empty list of numbers in (0, 1), got {list(connectivities)}")
    if isinstance(methods, str) or any(m not in METHODS for m in methods):
        raise ValueError(f"methods must be a list of names among {', '.join(METHODS)}, got {methods!r}")
    densities = [float(p) for p in ncg_densities]
    if any(not 0.0 < p <= 1.0 for p in densities) or len(set(densities)) != len(densities):
        raise ValueError(f"ncg_densities must be distinct numbers in (0, 1], got {list(ncg_densities)}")
    if isinstance(deep_r_alpha, bool) or not isinstance(deep_r_alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(deep_r_alpha) < math.inf:
        raise ValueError(f"deep_r_alpha must be a finite number >= 0 (DEEP R's L1 coefficient; 0: no prior), got "
                         f"{deep_r_alpha!r}")
    deep_r_alpha = float(deep_r_alpha)
    labels = [m for m in METHODS if m in methods] + [ncg_label(p) for p in densities]
    if not labels:
        raise ValueError("methods and ncg_densities are both empty: nothing to compare")
    if classifier is not None:
        from analysis.classifier import DigitClassifier

        if not isinstance(classifier, DigitClassifier):
            raise TypeError(f"classifier must be an analysis.classifier.DigitClassifier or None, got "
                            f"{type(classifier).__name__}")
    evaluations = [EvaluationSpec(log_likelihood=likelihood, ais_chains=ais_chains, ais_betas=n_betas,
                                  ais_resample=ais_resample, ais_groups=ais_groups, ais_schedule=ais_schedule,
                                  ais_reverse=ais_reverse, ais_raise=ais_raise,
                                  metrics=("classifier",) if classifier is not None else (),
                                  n_samples=n_samples, n_sweeps=n_sweeps) for n_betas in beta_budgets]

    def binary(split: str):
        return binarize.binarize(mnist_data.load_mnist(mnist, split), "threshold", threshold=0.5)

    shuffled = as_matrix(shuffle(binary("train"), seed=seed), np.float64)
    if n_train + n_validation > shuffled.shape[0]:
        raise ValueError(f"n_train + n_validation ({n_train} + {n_validation}) is more than the {shuffled.shape[0]} "
                         f"training images of {mnist}; lower n_train or n_validation")
    train_x = np.ascontiguousarray(shuffled[:n_train])
    valid_x = np.ascontiguousarray(shuffled[n_train:n_train + n_validation])
    del shuffled
    test_x = np.ascontiguousarray(as_matrix(binary("test"), np.float64)[:n_test])
    # The evaluation reads train (AIS base rate) and test only.
    data = StudyData(train_x, train_x[:0], test_x, np.nan, np.nan)
    n_visible = train_x.shape[1]
    common = dict(estimator=PCD(k=k), batch_size=100, learning_rate=learning_rate, checkpoints=1,
                  exact_log_likelihood=False, checkpoint_log_likelihood="none", dtype=dtype)
    scores = metric_variables(evaluations[0])
    experiment = {"connectivities": conn, **({"n_seeds": n_seeds} if seeds is None else {"seeds": indices}),
                  "n_hidden": n_hidden,
                  "epochs": list(budgets) if not isinstance(epochs, (int, np.integer)) else int(epochs),
                  "n_train": n_train, "n_test": n_test, "learning_rate": learning_rate, "seed": seed}
    if n_validation != 2000:
        experiment["n_validation"] = n_validation
    # Recorded only when they differ from the original experiment, so its settings (and the
    # reproduce step's up-to-date check) read as before.
    if k != 1:
        experiment["k"] = k
    if list(methods) != list(METHODS):
        experiment["methods"] = [m for m in METHODS if m in methods]
    if densities:
        experiment["ncg_densities"] = densities
    if deep_r_alpha:
        experiment["deep_r_alpha"] = deep_r_alpha
    if likelihood != "exact":
        experiment.update(likelihood=likelihood, ais_chains=ais_chains,
                          ais_betas=beta_budgets[0] if single_betas else list(beta_budgets))
        if ais_resample:
            experiment.update(ais_resample=ais_resample, ais_groups=ais_groups)
        if ais_schedule != "linear":
            experiment["ais_schedule"] = ais_schedule
        if ais_reverse:
            experiment["ais_reverse"] = True
        if ais_raise:
            experiment["ais_raise"] = ais_raise
    if classifier is not None:
        experiment.update(classifier_seed=classifier.seed, n_samples=n_samples, n_sweeps=n_sweeps)
    if dtype != "float64":
        experiment["dtype"] = dtype
    store = _WorkDir(work_dir) if work_dir is not None else None
    # what a score depends on besides the model's run (whose key joins it per run) and its seed
    fingerprints = dict(test=data_fingerprint(test_x), base=data_fingerprint(train_x),
                        classifier=None if classifier is None else (classifier.seed, classifier.training_data_sha256,
                                                                    repr(classifier.config)))
    scorings = [dict(evaluation=repr(evaluation), **fingerprints) for evaluation in evaluations]
    shape = (len(labels), len(conn), len(indices), len(budgets), len(beta_budgets))
    extra = {
        "final_density": ("fraction of connections present after training (NCG: an outcome; deep-r: K / "
                          "(n_visible n_hidden); dense: 1)", "1"),
        "train_log_likelihood": ("mean log-likelihood of the training images with the test score's log Z "
                                 "(train - test is the generalisation gap, free of log Z's error)", "nats per sample"),
        **({"validation_log_likelihood": (
            f"mean log-likelihood of {n_validation} held-out training-split images with the test score's log Z "
            "(choose the budget by it, not by the test score)", "nats per sample")} if n_validation else {}),
        "train_seconds": ("training wall time of the run (updates and rule, evaluation excluded; one core "
                          "unless NUMBA_NUM_THREADS says otherwise)", "s"),
        "weight_rms": ("root mean square of the present connections' weights (with no prior on them, as DEEP R at "
                       "alpha = 0, they keep growing with the budget)", "1"),
        "weight_max_abs": ("largest magnitude of a present connection's weight", "1"),
    }
    paired = len(budgets) > 1  # the budget-doubling check, paired over the test images
    if paired:
        extra.update(_GAIN_VARIABLES)
        extra.update(_OVERLAP_VARIABLES)
    if likelihood == "ais":
        below = (f"the populations' estimates of Z with an effective sample size below half of the {ais_groups}"
                 if ais_resample else f"effective sample size below {LOW_ESS_FRACTION:.0%} of the chains")
        extra["ais_degenerate"] = (f"forward AIS degenerate ({below}: log Z and its standard error unreliable): 1, "
                                   "else 0", "1")
        if ais_reverse:
            extra["ais_reverse_degenerate"] = (
                f"reverse AIS degenerate (effective sample size below {LOW_ESS_FRACTION:.0%} of the chains: "
                "log_partition_upper and its standard error unreliable): 1, else 0", "1")
    values = {name: np.full(shape, np.nan) for name in (*scores, *extra)}
    repeated = {"dense", *(ncg_label(p) for p in densities)}
    for i, s in enumerate(indices):
        run_seed = _seed(seed, "studies.rewiring.mnist", s)
        for m, method in enumerate(labels):
            for c, connectivity in enumerate(conn[:1] if method in repeated else conn):
                eval_seed = _seed(seed, "studies.rewiring.mnist.evaluation", method, repr(connectivity), s)
                # magnitude pruning prunes at half its budget: a run per budget; the others: one run
                # for the largest budget, scored after each budget's epochs
                runs = [(b, (b,)) for b in budgets] if method == "magnitude" else [(budgets[-1], budgets)]
                unnormalised = {}  # budget -> the test images' log p(v) + log Z under that budget's model
                masks = {}  # budget -> that budget's model's mask
                for plan, stops in runs:
                    prior = f"-a{deep_r_alpha!r}" if method == "deep-r" and deep_r_alpha else ""
                    name = f"{method}{prior}-c{connectivity!r}-s{s}" + (f"-b{plan}" if method == "magnitude" else "")
                    config = _method_config(method, connectivity, n_visible, n_hidden, common, plan, n_train,
                                            deep_r_alpha)
                    run_key = _run_key(config, run_seed, train_x)
                    # one score key per AIS budget (the evaluations differ in ais_betas only)
                    keys = [_digest(scoring, eval_seed, run_key) if store is not None else "" for scoring in scorings]
                    rows = {(b, e): store.scores(name, b, key) if store is not None else None
                            for b in stops for e, key in enumerate(keys)}
                    todo = [] if kept_only else [b for b in stops if any(rows[b, e] is None for e in range(len(keys)))]
                    models = _train_stops(config, train_x, run_seed, n_hidden, todo, store, name, save_every,
                                          log=(lambda line: print(line, file=sys.stderr, flush=True)) if progress
                                          else None)
                    for b, (model, seconds) in zip(todo, models):
                        if paired:
                            unnormalised[b] = log_likelihood(model, test_x, 0.0)
                            masks[b] = np.array(model.mask, dtype=bool)  # a copy: the run goes on
                        for e, (evaluation, key) in enumerate(zip(evaluations, keys)):
                            if rows[b, e] is not None:
                                continue
                            ais = likelihood == "ais"
                            checkpoint = store.ais_checkpoint(name, b, key) if store is not None and ais else None
                            row = _score(evaluation, model, data, eval_seed, classifier, ais, checkpoint, progress)
                            row.update(_held_in_scores(model, train_x, valid_x, row))
                            row.update(final_density=float(np.count_nonzero(model.mask)) / model.mask.size,
                                       train_seconds=seconds, **_weight_scores(model))
                            rows[b, e] = row
                            if store is not None:
                                store.save_scores(name, b, key, row)
                                if checkpoint is not None:
                                    remove_checkpoints(checkpoint)
                            if progress:
                                betas = f", {evaluation.ais_betas} betas" if len(evaluations) > 1 else ""
                                print(f"{method} c={connectivity:g} seed {s} epochs {b}{betas}: {seconds:.1f} s, "
                                      f"test LL {row['test_log_likelihood']:.3f}", file=sys.stderr, flush=True)
                    for (b, e), row in rows.items():
                        if row is None:  # kept_only: not scored yet
                            continue
                        kept = None  # the kept model, loaded at most once for this row
                        held_in = "train_log_likelihood" in row and row.get("validation_images") == n_validation
                        if not held_in or "weight_rms" not in row:
                            # scored before these fields existed, or with other validation images: from the kept
                            # model (removed by hand: left NaN)
                            kept = store.model(name, b, run_key)
                            if kept is not None:
                                if not held_in:
                                    row.update(_held_in_scores(kept[0], train_x, valid_x, row))
                                row.update(_weight_scores(kept[0]))
                                store.save_scores(name, b, keys[e], row)
                        if paired and b not in unnormalised and store is not None:
                            # scored by an earlier call: from the kept model (removed by hand: no gain)
                            kept = kept or store.model(name, b, run_key)
                            if kept is not None:
                                unnormalised[b] = log_likelihood(kept[0], test_x, 0.0)
                                masks[b] = np.array(kept[0].mask, dtype=bool)
                        for var, value in row.items():
                            if var in values:
                                values[var][m, c, i, budgets.index(b), e] = value
                if paired:
                    gain, se = _epoch_gains([unnormalised.get(b) for b in budgets],
                                            values["test_log_likelihood"][m, c, i], values["log_partition_se"][m, c, i])
                    values["epoch_gain"][m, c, i], values["epoch_gain_se"][m, c, i] = gain, se
                    overlap, chance = _mask_overlaps([masks.get(b) for b in budgets], budgets)
                    # of the model, not of its score: the same along the AIS budgets
                    values["mask_overlap"][m, c, i] = overlap[:, None]
                    values["mask_overlap_chance"][m, c, i] = chance[:, None]
            if method in repeated:
                for array in values.values():
                    array[m, :, i] = array[m, 0, i]
    coords = {
        "method": ("method", labels, {"long_name": "training method (dense and ncg-p*: one run per seed, repeated "
                                                   "along connectivity)", "units": "1"}),
        "connectivity": ("connectivity", np.array(conn), {"long_name": "fraction of connections kept: not used by "
                                                                       "dense and ncg-p*", "units": "1"}),
        "seed": ("seed", np.array(indices), {"long_name": "seed index", "units": "1"}),
        "initial_density": ("method", np.array([np.nan] * (len(labels) - len(densities)) + densities),
                            {"long_name": "NCG initial connection density p (NaN for other methods)", "units": "1"}),
        "uses_connectivity": ("method", np.array([int(m not in repeated) for m in labels], dtype=np.int8),
                              {"long_name": "method trained at the connectivity coordinate (1) or its value "
                                            "repeated along it (0)", "units": "1"}),
    }
    # the model's own numbers do not depend on the AIS budget; one AIS budget: no ais_betas dimension
    of_model = ("final_density", "train_seconds", "weight_rms", "weight_max_abs", *_OVERLAP_VARIABLES)
    if likelihood == "ais" and not single_betas:
        of_model += ("log_partition_converged",)
        extra["log_partition_converged"] = (
            f"1 if no two AIS budgets (ais_betas) gave log Z more than {CONVERGED_SIGMAS:g} combined standard "
            "errors apart (analysis.likelihood.budgets_agree), else 0; NaN where a budget is missing", "1")
        z, se = values["log_partition"], values["log_partition_se"]
        agree = np.full(z.shape, np.nan)  # the last (ais_betas) axis repeats the model's verdict
        for at in np.ndindex(z.shape[:-1]):
            if np.all(np.isfinite(z[at])) and np.all(np.isfinite(se[at])):
                agree[at] = float(budgets_agree(z[at], se[at]))
        values["log_partition_converged"] = agree
    values = {name: array[..., 0] if name in of_model or single_betas else array for name, array in values.items()}
    per_model = ("method", "connectivity", "seed", "epochs")
    per_score = per_model if single_betas else (*per_model, "ais_betas")
    if not single_betas:
        coords["ais_betas"] = ("ais_betas", np.array(beta_budgets), {
            "long_name": "AIS inverse temperatures of the score (its budget: a log Z that moves when it doubles is "
                         "not converged)", "units": "1"})
    if isinstance(epochs, (int, np.integer)):  # one budget: no epochs dimension, as before
        per_model, per_score = per_model[:-1], tuple(d for d in per_score if d != "epochs")
        values = {name: array[:, :, :, 0] for name, array in values.items()}
    else:
        coords["epochs"] = ("epochs", np.array(budgets), {
            "long_name": "training budget in epochs (magnitude: its own run per budget, pruned at half of it; "
                         "the other methods: one run scored after this many epochs)", "units": "1"})
    data_vars = {name: (per_model if name in of_model else per_score, values[name],
                        {"long_name": long_name, "units": units})
                 for name, (long_name, units) in {**scores, **extra}.items()}
    attrs = dict(title=f"DEEP R, NCG, static masks and pruning on MNIST, 784 x {n_hidden}", seed=seed,
                 experiment=json.dumps(experiment, sort_keys=True),
                 setup=f"PCD-{k}, batches of 100, plain SGD, binarised at 0.5, {dtype}",
                 log_likelihood_method=log_likelihood_method(evaluations[-1]) + (
                     f"; each model also scored with {', '.join(map(str, beta_budgets[:-1]))} betas (dim ais_betas)"
                     if len(beta_budgets) > 1 else ""))
    if likelihood == "ais":
        attrs.update(ais_chains=ais_chains, ais_betas=beta_budgets[0] if single_betas else list(beta_budgets),
                     ais_resample=ais_resample,
                     ais_groups=ais_groups if ais_resample else 0, ais_reverse=int(ais_reverse),
                     ais_raise=ais_raise)
    if "deep-r" in labels:
        attrs["deep_r_alpha"] = deep_r_alpha
    if kept_only:  # a campaign's progress, not its result
        attrs["scored_fraction"] = float(np.mean(np.isfinite(values["test_log_likelihood"])))
    if classifier is not None:
        attrs.update(classifier_seed=classifier.seed, classifier_test_accuracy=classifier.test_accuracy,
                     classifier_samples=n_samples, classifier_sweeps=n_sweeps)
    ds = xr.Dataset(data_vars, coords=coords, attrs=provenance(**attrs))
    if "epochs" in ds.dims and n_validation:
        ds = ds.merge(early_stopping(ds))
    return ds
