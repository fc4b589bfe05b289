"""The rewiring experiments' datasets: NCG trajectories on bars-and-stripes and DEEP R against static masks on MNIST.

* :func:`ncg_trajectories` (``rewiring-ncg.nc``): NCG's connection density and exact NLL
  against the epoch, over ``implementation``, ``initial_density``, ``seed`` and ``epoch``, on
  bars-and-stripes 4 x 4 in the reference code's layout (32 vectors, fixed order), 16 hidden
  units, CD-1, learning rate 0.01, batches of 5 (issue 11, item 1), with the fused kernel
  :func:`dilution.ncg.train_ncg_fused`. ``implementation`` is ``"dilution"`` (this toolkit's
  NCG) and ``"reference-quirks"`` (the same kernel with ``NCG(reference_quirks=True)``, which
  reproduces the reference code's behaviour: it is *not* the authors' C++ binary).
* :func:`mnist_comparison` (``rewiring-mnist.nc``): exact test log-likelihood over ``method``
  (``deep-r``, ``static``, ``magnitude``, ``dense``), ``connectivity`` and ``seed`` at a hidden
  size small enough to enumerate. ``dense`` does not depend on the connectivity: its value is
  repeated along that axis as the reference level.

Both experiments take a ``seed`` and derive every run's seed from it, its seed index and the
purpose, so the two implementations (or the methods) of one seed share their initial draws.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from dilution.provenance import provenance
from dilution.rng import derive_seed

__all__ = ["IMPLEMENTATIONS", "METHODS", "ncg_epochs", "ncg_trajectories", "mnist_comparison"]

IMPLEMENTATIONS = ("dilution", "reference-quirks")
METHODS = ("deep-r", "static", "magnitude", "dense")


def _seed(seed: int, purpose: str, *path: int) -> int:
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
                   n_train: int):
    from dilution.deep_r import DeepR, deep_r_config
    from dilution.pruning_rules import PruningProtocol
    from dilution.training import TrainConfig

    if method == "deep-r":
        k = max(1, round(connectivity * n_visible * n_hidden))
        # T = 1 / n_samples: the Bayesian posterior of the batch-mean objective (DeepR docstring);
        # no L1 prior, so the comparison with the static mask is at the same connectivity only.
        rule = DeepR(k=k, alpha=0.0, temperature=1.0 / n_train)
        return deep_r_config(rule, epochs=epochs, **common)
    if method == "static":
        return TrainConfig(connectivity=connectivity, epochs=epochs, **common)
    if method == "magnitude":
        # Dense for half the run, then the smallest |W| pruned to the connectivity and fine-tuned.
        return TrainConfig(rule=PruningProtocol(fraction=1.0 - connectivity, at_epochs=(max(1, epochs // 2),)),
                           epochs=epochs, **common)
    return TrainConfig(epochs=epochs, **common)


def mnist_comparison(mnist: str, *, connectivities: Sequence[float] = (0.05, 0.1, 0.3), n_seeds: int = 3,
                     n_hidden: int = 16, epochs: int = 20, n_train: int = 10000, n_test: int = 2000,
                     learning_rate: float = 0.01, seed: int = 0) -> xr.Dataset:
    """Exact test log-likelihood of DEEP R, static random masks, magnitude pruning and the dense
    model on binarised MNIST (module docstring).

    Parameters
    ----------
    mnist : str
        The ``mnist.npz`` file (or IDX folder).
    connectivities : sequence of float in (0, 1)
    n_seeds : int
    n_hidden : int
        At most :data:`dilution.exact.MAX_UNITS` (the likelihood is exact).
    epochs : int
    n_train, n_test : int
        The first images of the shuffled training set and of the test set (threshold 0.5).
    learning_rate : float
    seed : int

    Returns
    -------
    xarray.Dataset
        ``test_log_likelihood`` of dims (``method``, ``connectivity``, ``seed``).
    """
    from dilution import exact
    from dilution.data import binarize
    from dilution.data import mnist as mnist_data
    from dilution.data.split import as_matrix, shuffle
    from dilution.estimators import PCD
    from dilution.training import train

    for name, value in (("n_seeds", n_seeds), ("n_hidden", n_hidden), ("epochs", epochs), ("n_train", n_train),
                        ("n_test", n_test)):
        _check_count(name, value)
    if n_hidden > exact.MAX_UNITS:
        raise ValueError(f"n_hidden must be at most {exact.MAX_UNITS} (exact likelihood), got {n_hidden}")
    conn = [float(c) for c in connectivities]
    if not conn or any(not 0.0 < c < 1.0 for c in conn):
        raise ValueError(f"connectivities must be a non-empty list of numbers in (0, 1), got {list(connectivities)}")

    def binary(split: str):
        return binarize.binarize(mnist_data.load_mnist(mnist, split), "threshold", threshold=0.5)

    train_x = np.ascontiguousarray(as_matrix(shuffle(binary("train"), seed=seed), np.float64)[:n_train])
    test_x = np.ascontiguousarray(as_matrix(binary("test"), np.float64)[:n_test])
    n_visible = train_x.shape[1]
    common = dict(estimator=PCD(k=1), batch_size=100, learning_rate=learning_rate, checkpoints=1,
                  exact_log_likelihood=False, checkpoint_log_likelihood="none")
    values = np.full((len(METHODS), len(conn), n_seeds), np.nan)
    for s in range(n_seeds):
        run_seed = _seed(seed, "studies.rewiring.mnist", s)
        for m, method in enumerate(METHODS):
            for c, connectivity in enumerate(conn if method != "dense" else conn[:1]):
                config = _method_config(method, connectivity, n_visible, n_hidden, common, epochs, n_train)
                model = train((n_visible, n_hidden), train_x, config, seed=run_seed, progress=False).model
                values[m, c, s] = float(exact.log_likelihood(model, test_x).mean())
            if method == "dense":
                values[m, :, s] = values[m, 0, s]
    coords = {
        "method": ("method", list(METHODS), {"long_name": "training method (dense: the same at every connectivity)",
                                             "units": "1"}),
        "connectivity": ("connectivity", np.array(conn), {"long_name": "fraction of connections kept", "units": "1"}),
        "seed": ("seed", np.arange(n_seeds), {"long_name": "seed index", "units": "1"}),
    }
    experiment = {"connectivities": conn, "n_seeds": n_seeds, "n_hidden": n_hidden, "epochs": epochs,
                  "n_train": n_train, "n_test": n_test, "learning_rate": learning_rate, "seed": seed}
    return xr.Dataset(
        {"test_log_likelihood": (tuple(coords), values, {"long_name": "mean exact test log-likelihood",
                                                         "units": "nats per sample"})},
        coords=coords, attrs=provenance(title=f"DEEP R against static masks and pruning on MNIST, 784 x {n_hidden}",
                                        seed=seed, experiment=json.dumps(experiment, sort_keys=True),
                                        setup="PCD-1, batches of 100, binarised at 0.5"))
