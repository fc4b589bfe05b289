"""Every Dataset the packages return or write follows the CF attribute conventions.

Each data variable and each coordinate carries a ``long_name`` (what it is, for axis labels and
readers) and ``units`` ("1" for dimensionless numbers, counts and indices; "nats", "s",
"sweeps", ...). ``paper_figures`` builds its axis labels from these two attributes, so a
variable without them makes an unlabelled figure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution import ais, io, schedules, tempering
from dilution.data import bars_stripes, binarize, mnist, split, teacher
from dilution.model import RBM


def _rbm() -> RBM:
    return RBM.random(8, 4, connectivity=0.5, weight_scale=1.0, bias_scale=0.5, seed=0)


def _data(n: int = 40, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 8)) < 0.4).astype(np.float64)


def _missing(ds: xr.Dataset) -> list[str]:
    """Variables and coordinates of ``ds`` lacking a non-empty string long_name or units."""
    out = []
    for name, var in ds.variables.items():
        for key in ("long_name", "units"):
            value = var.attrs.get(key)
            if not isinstance(value, str) or not value:
                out.append(f"{name}: {key}")
    return out


# --- dilution --------------------------------------------------------------------------------


def _io_to_dataset(tmp_path):
    ds = io.to_dataset(_rbm())
    io.save(ds, tmp_path / "m.nc")
    return [ds, io.load_dataset(tmp_path / "m.nc")]


def _ais(tmp_path):
    rbm = _rbm()
    lz = ais.log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, reverse_burn_in=2, n_bootstrap=10)
    return [lz, ais.log_likelihood(rbm, _data(), log_z=lz), ais.log_likelihood(rbm, _data(), log_z=1.0)]


def _tempering(tmp_path):
    return [tempering.sample(_rbm(), 3, 4, n_temps=3, seed=0).diagnostics]


def _teacher(tmp_path):
    t = teacher.planted_teacher(6, 3, connectivity=0.6, weight_scale=1.0, seed=0)
    return list(teacher.teacher_datasets(t, 10, 5, seed=0))


def _bars_stripes(tmp_path):
    return [bars_stripes.distribution(2), bars_stripes.dataset(2, 5, seed=0)]


def _mnist(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 256, size=(6, 4, 4), dtype=np.uint8) for s in ("train", "test")}
    arrays.update({f"y_{s}": rng.integers(0, 10, size=6, dtype=np.uint8) for s in ("train", "test")})
    np.savez(tmp_path / "mnist.npz", **arrays)
    grey = mnist.load_mnist(tmp_path / "mnist.npz", "test")
    binary = binarize.binarize(grey)
    return [grey, binary, *split.train_validation_split(binary, 2, seed=0), split.shuffle(binary, seed=0)]


# --- analysis --------------------------------------------------------------------------------


def _analysis_likelihood(tmp_path):
    from analysis import likelihood

    rbm = _rbm()
    return [
        likelihood.exact_log_likelihood(rbm, _data()),
        likelihood.ais_log_likelihood(rbm, _data(), n_chains=4, seed=0, betas=schedules.linear(10),
                                      reverse_burn_in=2, n_bootstrap=10),
    ]


def _analysis_proxies(tmp_path):
    from analysis import pseudolikelihood, reconstruction

    rbm = _rbm()
    return [
        pseudolikelihood.pseudo_log_likelihood(rbm, _data()),
        pseudolikelihood.pseudo_log_likelihood(rbm, _data(), method="stochastic", seed=0),
        pseudolikelihood.conditional_log_probabilities(rbm, _data()).to_dataset(),
        reconstruction.reconstruction_error(rbm, _data()),
        reconstruction.reconstruction_error(rbm, _data(), mode="sampled", seed=0),
    ]


def _analysis_sample_metrics(tmp_path):
    from analysis import aats, moments, pca

    x, y = _data(30, 1), _data(30, 2)
    return [
        moments.moment_errors(x, y),
        pca.pca_comparison(x, y),
        aats.adversarial_accuracy(x, y),
        aats.privacy_loss(x, y, _data(30, 3), seed=0),
    ]


def _analysis_mixing(tmp_path):
    from analysis import autocorr, convergence

    trace = np.random.default_rng(0).standard_normal((4, 200)).cumsum(axis=1)
    return [
        autocorr.integrated_time(trace),
        convergence.rhat(trace, method="split"),
        convergence.rhat(trace, method="rank"),
        convergence.effective_sample_size(trace),
    ]


def _analysis_ising(tmp_path):
    from analysis import ising

    params = ising.ising_parameters(_rbm(), method="exact")
    other = ising.ising_parameters(RBM.random(8, 4, weight_scale=1.0, seed=1), method="exact")
    return [params, ising.coupling_summary(params, top_k=3), ising.compare_couplings(params, other, top_k=5)]


def _analysis_classifier(tmp_path):
    from analysis.classifier import ClassifierConfig, DigitClassifier, classifier_score

    rng = np.random.default_rng(0)
    clf = DigitClassifier(
        rng.standard_normal((784, 10)).astype(np.float32), np.zeros(10, np.float32),
        rng.standard_normal((10, 10)).astype(np.float32), np.zeros(10, np.float32),
        config=ClassifierConfig(n_hidden=10), seed=0, test_accuracy=0.5, training_data_sha256="",
    )
    io.save(clf.to_dataset(), tmp_path / "classifier.nc")
    cached = io.load_dataset(tmp_path / "classifier.nc")
    np.testing.assert_array_equal(DigitClassifier.from_dataset(cached).w1, clf.w1)  # attrs do not disturb the cache
    return [clf.to_dataset(), cached, classifier_score(clf, (rng.random((20, 784)) < 0.2).astype(np.float64))]


def _evaluate_cli(tmp_path):
    from dilution.cli import main

    rbm = _rbm()
    dilution.save(rbm, tmp_path / "m.nc")
    test = xr.Dataset({"states": (("sample", "visible"), _data().astype(np.uint8),
                                  {"long_name": "held-out visible state", "units": "1"})})
    dilution.save(test, tmp_path / "test.nc")
    argv = ["evaluate", str(tmp_path / "m.nc"), "--data", str(tmp_path / "test.nc"), "--n-samples", "40",
            "--n-sweeps", "5", "--quiet", "--output", str(tmp_path / "evaluation.nc")]
    assert main(argv) == 0
    return [dilution.load(tmp_path / "evaluation.nc")]


# --- owned by the lead (training.py, cli.py) -------------------------------------------------


def _training_history(tmp_path):
    from dilution.training import TrainConfig

    result = dilution.train((8, 4), _data(20), TrainConfig(epochs=2, batch_size=5, checkpoints=2), seed=0,
                            progress=False)
    io.save(result.history, tmp_path / "history.nc")
    return [result.history, io.load_dataset(tmp_path / "history.nc")]


def _sample_cli(tmp_path):
    from dilution.cli import main

    dilution.save(_rbm(), tmp_path / "m.nc")
    assert main(["sample", str(tmp_path / "m.nc"), "--n-samples", "4", "--n-sweeps", "2", "--quiet"]) == 0
    return [dilution.load(tmp_path / "m-samples.nc")]



def _train_cli(tmp_path):
    from dilution.cli import main

    out = tmp_path / "run"
    assert main(["train", "--n-train", "200", "--n-test", "100", "--epochs", "1", "--teacher-visible", "9",
                 "--teacher-hidden", "3", "--n-hidden", "4", "--sample-sweeps", "2", "--grid-samples", "4",
                 "--quiet", "--output", str(out)]) == 0
    return [dilution.io.load_dataset(out / name) for name in ("model.nc", "history.nc", "state.nc", "test.nc")]


def _replicas(tmp_path):
    from dilution.deep_r import SoftDeepR
    from dilution.estimators import PCD
    from dilution.ncg import NCG
    from dilution.replicas import run_replicas

    data = bars_stripes.patterns(2)
    soft = SoftDeepR(alpha=0.05, temperature=0.02, p0=0.5)
    return [run_replicas(soft, 2, data, 4, 2, init=(4, 2), learning_rate=0.05, seed=0, estimator=PCD(k=1)),
            run_replicas(NCG(p=0.5), 2, data, 4, 2, init=(4, 2), learning_rate=0.5, seed=0)]


def _study(tmp_path):
    from studies.builtin import builtin_spec
    from studies.runner import run_study

    spec = builtin_spec("smoke", output=str(tmp_path / "study"))
    run_study(spec)
    results = sorted(p for p in (tmp_path / "study" / "tasks").glob("*.nc") if not p.name.endswith(".state.nc"))
    return [dilution.io.load_dataset(tmp_path / "study" / "study.nc"), dilution.io.load_dataset(results[0])]


PRODUCERS: list = [
    _io_to_dataset,
    _ais,
    _tempering,
    _teacher,
    _bars_stripes,
    _mnist,
    _analysis_likelihood,
    _analysis_proxies,
    _analysis_sample_metrics,
    _analysis_mixing,
    _analysis_ising,
    _analysis_classifier,
    _evaluate_cli,
    _training_history,
    _sample_cli,
    _train_cli,
    _replicas,
    _study,
]


@pytest.mark.parametrize("produce", PRODUCERS, ids=lambda f: f.__name__.lstrip("_"))
def test_every_variable_and_coordinate_has_long_name_and_units(produce: Callable, tmp_path):
    datasets = produce(tmp_path)
    assert datasets and all(isinstance(ds, xr.Dataset) for ds in datasets)
    for k, ds in enumerate(datasets):
        assert ds.variables, f"dataset {k} of {produce.__name__} is empty"
        missing = _missing(ds)
        assert not missing, f"dataset {k} of {produce.__name__} lacks CF attrs: {missing}"


def test_the_check_can_fail():
    ds = xr.Dataset({"x": ("i", [1.0], {"long_name": "x"})}, coords={"i": ("i", [0], {"units": "1"})})
    assert _missing(ds) == ["x: units", "i: long_name"]
