"""studies.rewiring: the experiments' Datasets against direct runs of the same trainers."""

from __future__ import annotations


import numpy as np
import pytest

from dilution import exact
from dilution.data import binarize
from dilution.data import mnist as mnist_data
from dilution.data.bars_stripes import reference_layout
from dilution.data.split import as_matrix, shuffle
from dilution.estimators import CD, PCD
from dilution.ncg import NCG, ncg_config, train_ncg_fused
from dilution.rng import derive_seed
from dilution.training import TrainConfig, train
from studies.rewiring import METHODS, mnist_comparison, ncg_epochs, ncg_trajectories


def test_ncg_epochs_start_at_zero_and_end_at_the_last_epoch():
    grid = ncg_epochs(1000, 10)
    assert grid[0] == 0 and grid[-1] == 1000 and np.all(np.diff(grid) > 0)


def test_ncg_trajectories_are_the_fused_kernel_runs():
    ds = ncg_trajectories(epochs=6, n_seeds=2, initial_densities=(1.0, 0.5), n_checkpoints=3, seed=3)
    assert ds["density"].dims == ("implementation", "initial_density", "seed", "epoch")
    assert list(ds["implementation"].values) == ["dilution", "reference-quirks"]
    data = reference_layout(4).astype(np.float64)
    grid = ds["epoch"].values
    for impl, quirks in (("dilution", False), ("reference-quirks", True)):
        config = ncg_config(NCG(p=0.5, reference_quirks=quirks), estimator=CD(1), batch_size=5, learning_rate=0.01,
                            epochs=6, checkpoints=1, exact_log_likelihood=False)
        seed = int(derive_seed(3, "studies.rewiring.ncg", 1, 1).generate_state(1)[0])
        run = train_ncg_fused((16, 16), data, config, seed=seed, checkpoint_epochs=grid)
        row = ds.sel(implementation=impl, initial_density=0.5, seed=1)
        np.testing.assert_array_equal(row["density"].values, run.history["connectivity"].values)
        np.testing.assert_array_equal(row["nll"].values, -run.history["log_likelihood"].values)
    # The reference's first evaluation sees the full model (NCG docstring, quirk 1); dilution's the Bernoulli mask.
    start = ds["density"].sel(initial_density=0.5, epoch=0)
    np.testing.assert_array_equal(start.sel(implementation="reference-quirks").values, 1.0)
    assert np.all(start.sel(implementation="dilution").values < 0.75)
    # Fully connected NCG starts fully connected in both.
    np.testing.assert_array_equal(ds["density"].sel(initial_density=1.0, epoch=0).values, 1.0)


def test_ncg_trajectories_reject_bad_counts():
    with pytest.raises(ValueError, match="n_seeds"):
        ncg_trajectories(epochs=5, n_seeds=0)


@pytest.fixture(scope="module")
def mnist(mnist_npz):
    # the shared fixture: skips without DILUTION_DATA on a user's machine, fails in CI
    return str(mnist_npz)


@pytest.mark.parametrize("k", [1, 3])
def test_mnist_comparison_is_the_trainers_runs(mnist, k):
    kw = dict(connectivities=(0.2, 0.5), n_seeds=1, n_hidden=3, epochs=1, n_train=200, n_test=100, seed=5, k=k)
    ds = mnist_comparison(mnist, **kw)
    assert ds.attrs["setup"].startswith(f"PCD-{k},")
    assert ds["test_log_likelihood"].dims == ("method", "connectivity", "seed")
    assert list(ds["method"].values) == list(METHODS)
    # sel's own `method` keyword shadows the dim: select with a dict
    dense = ds["test_log_likelihood"].sel({"method": "dense"}).values
    np.testing.assert_array_equal(dense[0], dense[1])  # the dense reference is repeated along connectivity

    def binary(split):
        return binarize.binarize(mnist_data.load_mnist(mnist, split), "threshold", threshold=0.5)

    train_x = as_matrix(shuffle(binary("train"), seed=5), np.float64)[:200]
    test_x = as_matrix(binary("test"), np.float64)[:100]
    config = TrainConfig(connectivity=0.2, epochs=1, estimator=PCD(k=k), batch_size=100, learning_rate=0.01,
                         checkpoints=1, exact_log_likelihood=False, checkpoint_log_likelihood="none")
    seed = int(derive_seed(5, "studies.rewiring.mnist", 0).generate_state(1)[0])
    model = train((784, 3), train_x, config, seed=seed, progress=False).model
    expected = exact.log_likelihood(model, test_x).mean()
    got = ds["test_log_likelihood"].sel({"method": "static", "connectivity": 0.2, "seed": 0})
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_deep_r_alpha_is_deep_r_with_that_l1_prior_kept_apart_from_the_runs_without(mnist, tmp_path):
    import json

    from dilution.deep_r import DeepR, deep_r_config

    kw = dict(connectivities=(0.2,), n_seeds=1, n_hidden=3, epochs=2, n_train=200, n_test=100, seed=5,
              methods=("deep-r", "static"), work_dir=tmp_path / "work")
    alpha = 0.05
    prior = mnist_comparison(mnist, **kw, deep_r_alpha=alpha)
    plain = mnist_comparison(mnist, **kw)  # the same work_dir: the run without a prior is another run

    def binary(split):
        return binarize.binarize(mnist_data.load_mnist(mnist, split), "threshold", threshold=0.5)

    train_x = as_matrix(shuffle(binary("train"), seed=5), np.float64)[:200]
    test_x = as_matrix(binary("test"), np.float64)[:100]
    seed = int(derive_seed(5, "studies.rewiring.mnist", 0).generate_state(1)[0])
    for ds, a in ((prior, alpha), (plain, 0.0)):
        rule = DeepR(k=round(0.2 * 784 * 3), alpha=a, temperature=1.0 / 200)
        config = deep_r_config(rule, epochs=2, estimator=PCD(k=1), batch_size=100, learning_rate=0.01, checkpoints=1,
                               exact_log_likelihood=False, checkpoint_log_likelihood="none")
        model = train((784, 3), train_x, config, seed=seed, progress=False).model
        got = float(ds["test_log_likelihood"].sel({"method": "deep-r", "connectivity": 0.2, "seed": 0}))
        assert got == pytest.approx(exact.log_likelihood(model, test_x).mean(), rel=1e-12), a
        assert ds.attrs["deep_r_alpha"] == a
    assert prior["test_log_likelihood"].sel({"method": "deep-r"}).item() != \
        plain["test_log_likelihood"].sel({"method": "deep-r"}).item()
    # the other methods do not see the prior
    np.testing.assert_array_equal(prior["test_log_likelihood"].sel({"method": "static"}).values,
                                  plain["test_log_likelihood"].sel({"method": "static"}).values)
    assert json.loads(prior.attrs["experiment"])["deep_r_alpha"] == alpha
    assert "deep_r_alpha" not in json.loads(plain.attrs["experiment"])  # as before the option existed
    assert {"deep-r-a0.05-c0.2-s0-e2.nc", "deep-r-c0.2-s0-e2.nc"} <= {f.name for f in (tmp_path / "work").iterdir()}


def test_mnist_comparison_rejects_bad_connectivities(mnist):
    with pytest.raises(ValueError, match="connectivities"):
        mnist_comparison(mnist, connectivities=(0.0, 0.5))
    with pytest.raises(ValueError, match="n_hidden"):
        mnist_comparison(mnist, n_hidden=40)
