"""studies.rewiring.mnist_comparison as the issue-11 table: NCG methods, AIS, classifier scores, wall times."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.classifier import ClassifierConfig, train_classifier
from dilution.data import mnist as mnist_data
from studies.rewiring import METHODS, mnist_comparison, ncg_label

TINY = dict(connectivities=(0.2, 0.5), n_seeds=1, n_hidden=4, epochs=1, n_train=200, n_test=100, seed=7)


@pytest.fixture(scope="module")
def mnist(mnist_npz):
    # the shared fixture: skips without DILUTION_DATA on a user's machine, fails in CI
    return str(mnist_npz)


@pytest.fixture(scope="module")
def classifier(mnist):
    # A deliberately weak classifier (500 images, one epoch): the test checks the wiring, not its accuracy.
    train = mnist_data.load_mnist(mnist, "train")
    return train_classifier(train["images"].values[:500], train["labels"].values[:500], seed=0,
                            config=ClassifierConfig(n_hidden=16, epochs=1), progress=False)


@pytest.fixture(scope="module")
def table(mnist, classifier):
    return mnist_comparison(mnist, **TINY, ncg_densities=(1.0, 0.5), classifier=classifier, n_samples=20,
                            n_sweeps=5)


def test_table_has_every_method_with_its_labels_and_attrs(table):
    labels = [*METHODS, "ncg-p1", "ncg-p0.5"]
    assert list(table["method"].values) == labels == [*METHODS, ncg_label(1), ncg_label(0.5)]
    dims = ("method", "connectivity", "seed")
    for name in ("test_log_likelihood", "test_log_likelihood_se", "log_partition", "log_partition_se",
                 "train_log_likelihood", "validation_log_likelihood", "final_density", "train_seconds", "weight_rms",
                 "weight_max_abs", "classifier_inception_score", "classifier_coverage_entropy",
                 "classifier_mean_max_probability"):
        assert table[name].dims == dims, name
        assert np.all(np.isfinite(table[name].values)), name
    for name, var in {**table.data_vars, **table.coords}.items():
        assert var.attrs.get("long_name") and "units" in var.attrs, name
    assert "git_commit" in table.attrs or "dilution_version" in table.attrs
    np.testing.assert_array_equal(table["initial_density"].values, [np.nan] * len(METHODS) + [1.0, 0.5])
    np.testing.assert_array_equal(table["uses_connectivity"].values, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(table["log_partition_se"].values, 0.0)  # exact enumeration
    assert np.all(table["train_seconds"].values > 0)
    assert np.all((table["classifier_inception_score"].values >= 1) & (table["classifier_inception_score"].values
                                                                       <= 10))


def test_methods_without_a_connectivity_are_repeated_and_ncg_density_is_an_outcome(table):
    for method in ("dense", "ncg-p1", "ncg-p0.5"):
        row = table.sel({"method": method})
        for name in table.data_vars:
            np.testing.assert_array_equal(row[name].values[0], row[name].values[1], err_msg=f"{method} {name}")
    density = table["final_density"]
    ncg = density.sel({"method": ["ncg-p1", "ncg-p0.5"]}).values
    assert np.all((ncg > 0) & (ncg <= 1))
    np.testing.assert_array_equal(density.sel({"method": "dense"}).values, 1.0)
    # DEEP R holds exactly K = round(c * 784 * 4) connections.
    np.testing.assert_allclose(density.sel({"method": "deep-r"}).values[:, 0],
                               [round(c * 784 * 4) / (784 * 4) for c in TINY["connectivities"]])


def test_adding_methods_or_the_classifier_leaves_the_other_numbers_unchanged(mnist, table):
    alone = mnist_comparison(mnist, **TINY, methods=("deep-r",))
    assert list(alone["method"].values) == ["deep-r"]
    for name in ("test_log_likelihood", "log_partition", "final_density"):
        np.testing.assert_array_equal(alone[name].sel({"method": "deep-r"}).values,
                                      table[name].sel({"method": "deep-r"}).values, err_msg=name)


def test_ais_agrees_with_exact_enumeration(mnist, table):
    ais = mnist_comparison(mnist, **TINY, methods=("static",), likelihood="ais", ais_chains=50, ais_betas=500)
    assert ais.attrs["ais_chains"] == 50 and ais.attrs["ais_betas"] == 500
    # Same run seed, so the same trained models: only log Z differs. The AIS estimate of log Z is
    # a mean over 50 independent chains, close to normal with standard error log_partition_se
    # (its bias, about var/2 by Jensen, is far smaller than that error here); the log-likelihood
    # shares that error, so |AIS - exact| < 4 s.e. fails by chance with probability ~6e-5.
    assert np.all(ais["log_partition_se"].values > 0)
    np.testing.assert_array_equal(ais["ais_degenerate"].values, 0)  # the estimate below is trusted
    assert "ais_degenerate" not in table
    row = ais.sel({"method": "static"})
    exact_ll = table["test_log_likelihood"].sel({"method": "static"}).values
    assert np.all(np.abs(row["test_log_likelihood"].values - exact_ll) < 4 * row["log_partition_se"].values)
    np.testing.assert_array_equal(row["final_density"].values, table["final_density"].sel({"method": "static"}).values)
    # the same log Z enters the train and the test score, so their difference is exact under AIS too
    exact_gap = (table["train_log_likelihood"] - table["test_log_likelihood"]).sel({"method": "static"}).values
    np.testing.assert_allclose(row["train_log_likelihood"].values - row["test_log_likelihood"].values, exact_gap,
                               rtol=0, atol=1e-9)


REVERSE = ("test_log_likelihood_lower", "log_partition_upper", "log_partition_upper_se", "log_partition_upper_ess",
           "ais_reverse_degenerate")


def test_reverse_ais_brackets_the_exact_log_likelihood_and_keeps_the_forward_numbers(mnist, table):
    options = dict(methods=("static",), likelihood="ais", ais_chains=50, ais_betas=500)
    forward = mnist_comparison(mnist, **TINY, **options)
    both = mnist_comparison(mnist, **TINY, **options, ais_reverse=True)
    assert set(both.data_vars) - set(forward.data_vars) == set(REVERSE)
    for name in REVERSE:
        assert both[name].dims == ("method", "connectivity", "seed") and both[name].attrs["long_name"], name
    assert both.attrs["ais_reverse"] == 1 and forward.attrs["ais_reverse"] == 0
    assert json.loads(both.attrs["experiment"])["ais_reverse"] is True
    assert "ais_reverse" not in json.loads(forward.attrs["experiment"])
    assert "reverse chains" in both.attrs["log_likelihood_method"]
    # the reverse run draws from streams of its own: the forward numbers are bit for bit those
    # without it (train_seconds is a wall time)
    for name in forward.data_vars:
        if name != "train_seconds":
            np.testing.assert_array_equal(both[name].values, forward[name].values, err_msg=name)
    row = both.sel({"method": "static"})
    np.testing.assert_array_equal(row["ais_reverse_degenerate"].values, 0)  # the bounds below are trusted
    # Either side is the log of a mean of 50 independent importance weights, close to normal
    # around log Z with its delta-method standard error se and off by about se**2 / 2 towards its
    # own side (Jensen; the reverse chains start from 1000 Gibbs sweeps of a 784 x 4 model, as good
    # as exact samples). Forward <= exact + 4 se, reverse >= exact - 4 se (the sandwich) and each
    # within 4 se + se**2 / 2 of exact fail by chance with probability about 6e-5 per check.
    exact = table["log_partition"].sel({"method": "static"}).values
    lower, lower_se = row["log_partition"].values, row["log_partition_se"].values
    upper, upper_se = row["log_partition_upper"].values, row["log_partition_upper_se"].values
    assert np.all(lower_se > 0) and np.all(upper_se > 0)
    assert np.all(lower <= exact + 4 * lower_se) and np.all(upper >= exact - 4 * upper_se)
    assert np.all(np.abs(lower - exact) <= 4 * lower_se + lower_se**2 / 2)
    assert np.all(np.abs(upper - exact) <= 4 * upper_se + upper_se**2 / 2)
    # the test log-likelihood with the reverse log Z: the same free energies, a larger log Z
    np.testing.assert_allclose(row["test_log_likelihood_lower"].values,
                               row["test_log_likelihood"].values - (upper - lower), rtol=0, atol=1e-9)


RAISE = ("test_log_likelihood_raise", "test_log_likelihood_raise_se", "raise_gap", "raise_gap_se")


def test_raise_adds_its_scores_and_keeps_the_forward_numbers(mnist):
    options = dict(methods=("static",), likelihood="ais", ais_chains=20, ais_betas=100)
    forward = mnist_comparison(mnist, **TINY, **options)
    raised = mnist_comparison(mnist, **TINY, **options, ais_raise=2)
    assert set(raised.data_vars) - set(forward.data_vars) == set(RAISE)
    for name in RAISE:
        assert raised[name].dims == ("method", "connectivity", "seed") and raised[name].attrs["long_name"], name
        assert np.all(np.isfinite(raised[name].values)), name
    assert raised.attrs["ais_raise"] == 2 and forward.attrs["ais_raise"] == 0
    assert json.loads(raised.attrs["experiment"])["ais_raise"] == 2
    assert "ais_raise" not in json.loads(forward.attrs["experiment"])
    assert "RAISE, 2 reverse chains" in raised.attrs["log_likelihood_method"]
    for name in forward.data_vars:
        if name != "train_seconds":  # a wall time
            np.testing.assert_array_equal(raised[name].values, forward[name].values, err_msg=name)
    np.testing.assert_allclose(raised["raise_gap"].values,
                               (raised["test_log_likelihood"] - raised["test_log_likelihood_raise"]).values,
                               rtol=0, atol=1e-9)
    assert np.all(raised["raise_gap_se"].values > 0)


def test_forward_and_reverse_degeneracy_are_flagged_apart(monkeypatch):
    import warnings

    import studies.evaluate
    from dilution.ais import DegenerateReverseWeightsWarning, DegenerateWeightsWarning
    from studies.evaluate import Evaluation
    from studies.rewiring import _score
    from studies.spec import EvaluationSpec

    spec = EvaluationSpec(log_likelihood="ais", ais_reverse=True)
    for raised, flags in (((), (0, 0)), ((DegenerateReverseWeightsWarning,), (0, 1)),
                          ((DegenerateWeightsWarning,), (1, 0)),
                          ((DegenerateWeightsWarning, DegenerateReverseWeightsWarning), (1, 1))):
        def evaluate(*args, raised=raised, **kwargs):
            for category in raised:
                warnings.warn("degenerate", category)
            return Evaluation({}, "")

        monkeypatch.setattr(studies.evaluate, "evaluate", evaluate)
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            row = _score(spec, None, None, 0, None, True)
        assert (row["ais_degenerate"], row["ais_reverse_degenerate"]) == flags, raised
        assert [w.category for w in shown] == list(raised)  # and still shown
    monkeypatch.setattr(studies.evaluate, "evaluate", lambda *args, **kwargs: Evaluation({}, ""))
    assert "ais_reverse_degenerate" not in _score(EvaluationSpec(log_likelihood="ais"), None, None, 0, None, True)


def _training_split(mnist: str, seed: int) -> np.ndarray:
    # what mnist_comparison trains and validates on, rebuilt from its documented recipe: MNIST's
    # training split binarised at 0.5 and shuffled with the call's seed; the first n_train images
    # are trained on, the next n_validation held out
    from dilution.data import binarize
    from dilution.data.split import as_matrix, shuffle

    binary = binarize.binarize(mnist_data.load_mnist(mnist, "train"), "threshold", threshold=0.5)
    return as_matrix(shuffle(binary, seed=seed), np.float64)


def test_held_in_log_likelihoods_and_weight_sizes_are_the_kept_models_own(mnist, table, tmp_path,
                                                                        monkeypatch):
    import dilution
    import dilution.training
    from analysis.likelihood import exact_log_likelihood

    work = tmp_path / "work"
    kept = mnist_comparison(mnist, **TINY, methods=("static", "dense"), work_dir=work)
    split = _training_split(mnist, TINY["seed"])
    n = TINY["n_train"]
    images = {"train_log_likelihood": split[:n], "validation_log_likelihood": split[n:n + 2000]}  # the default 2000
    models = {}
    for method in ("static", "dense"):
        for c, connectivity in enumerate(TINY["connectivities"][:1] if method == "dense" else TINY["connectivities"]):
            models[method, c] = model = dilution.load(work / f"{method}-c{connectivity!r}-s0-e{TINY['epochs']}.nc")
            for name, x in images.items():
                exact = float(exact_log_likelihood(model, x)["mean_log_likelihood"])
                got = kept[name].sel({"method": method}).values[c, 0]
                np.testing.assert_allclose(got, exact, rtol=1e-12, err_msg=f"{name} {method} c={connectivity}")
            present = model.weights[model.mask != 0].astype(np.float64)
            for name, value in (("weight_rms", np.sqrt(np.mean(present ** 2))), ("weight_max_abs", np.abs(present).max())):
                assert value > 0
                np.testing.assert_allclose(kept[name].sel({"method": method}).values[c, 0], value, rtol=1e-12,
                                           err_msg=f"{name} {method} c={connectivity}")
    for name in (*images, "weight_rms", "weight_max_abs"):
        np.testing.assert_array_equal(kept[name].values, table[name].sel({"method": ["static", "dense"]}).values)
    # three different image sets: training, validation, test
    assert np.all(kept["train_log_likelihood"].values != kept["test_log_likelihood"].values)
    assert np.all(kept["validation_log_likelihood"].values != kept["test_log_likelihood"].values)
    assert np.all(kept["validation_log_likelihood"].values != kept["train_log_likelihood"].values)
    # scores kept before the fields existed get them from the kept model, without training
    for path in work.glob("*.json"):
        row = json.loads(path.read_text())
        for name in (*images, "validation_images", "weight_rms", "weight_max_abs"):
            del row[name]
        path.write_text(json.dumps(row))
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("a kept model was retrained"))
    again = mnist_comparison(mnist, **TINY, methods=("static", "dense"), work_dir=work)
    for name in (*images, "weight_rms", "weight_max_abs"):
        np.testing.assert_array_equal(again[name].values, kept[name].values)
    # other validation images: computed again for them, not read back
    fewer = mnist_comparison(mnist, **TINY, methods=("static", "dense"), work_dir=work, n_validation=300)
    assert json.loads(fewer.attrs["experiment"])["n_validation"] == 300
    model = models["static", 0]
    exact = float(exact_log_likelihood(model, split[n:n + 300])["mean_log_likelihood"])
    np.testing.assert_allclose(fewer["validation_log_likelihood"].sel({"method": "static"}).values[0, 0], exact,
                               rtol=1e-12)
    none = mnist_comparison(mnist, **TINY, methods=("static",), work_dir=work, n_validation=0)
    assert "validation_log_likelihood" not in none


def test_more_training_and_validation_images_than_mnist_has_are_refused(mnist):
    with pytest.raises(ValueError, match=r"n_train \+ n_validation \(59000 \+ 2000\) is more than the 60000 "):
        mnist_comparison(mnist, **{**TINY, "n_train": 59_000})


def test_ais_with_resampling_agrees_with_exact_enumeration(mnist, table):
    ais = mnist_comparison(mnist, **TINY, methods=("static",), likelihood="ais", ais_chains=60, ais_betas=200,
                           ais_resample=0.5, ais_groups=20)
    experiment = json.loads(ais.attrs["experiment"])
    assert experiment["ais_resample"] == 0.5 and experiment["ais_groups"] == 20
    assert "20 populations resampled" in ais.attrs["log_likelihood_method"]
    assert "populations' estimates of Z" in ais["ais_degenerate"].attrs["long_name"]
    # log Z is the log of the mean of 20 i.i.d. unbiased population estimates, its standard error
    # the delta method over them: |AIS - exact| < 5 s.e. fails by chance with probability about
    # 2 * 8e-5 (Student t with 19 degrees of freedom, two connectivities).
    row = ais.sel({"method": "static"})
    assert np.all(row["log_partition_se"].values > 0)
    exact_ll = table["test_log_likelihood"].sel({"method": "static"}).values
    assert np.all(np.abs(row["test_log_likelihood"].values - exact_ll) < 5 * row["log_partition_se"].values)


@pytest.mark.parametrize("options, match", [
    (dict(likelihood="bogus"), "likelihood"),
    (dict(likelihood="ais", ais_chains=0), "ais_chains"),
    (dict(likelihood="ais", ais_betas=1), "ais_betas"),
    (dict(likelihood="ais", ais_resample=1.0), "ais_resample"),
    (dict(likelihood="ais", ais_resample=0.5, ais_groups=3), "ais_groups"),
    (dict(likelihood="ais", ais_schedule="geometric"), "ais_schedule"),
    (dict(likelihood="ais", ais_schedule="classic", ais_betas=3), "ais_betas"),
    (dict(likelihood="ais", ais_reverse="yes"), "ais_reverse must be True or False, got 'yes'"),
    (dict(likelihood="ais", ais_raise=-1), "ais_raise must be an integer >= 0, got -1"),
    (dict(likelihood="ais", ais_raise=True), "ais_raise must be an integer >= 0, got True"),
    (dict(likelihood="ais", ais_raise=1.5), "ais_raise must be an integer >= 0, got 1.5"),
    (dict(n_hidden=40), "n_hidden"),
    (dict(methods=("deep-r", "ncg")), "methods"),
    (dict(methods="deep-r"), "methods"),
    (dict(ncg_densities=(0.0,)), "ncg_densities"),
    (dict(ncg_densities=(0.5, 0.5)), "ncg_densities"),
    (dict(methods=()), "nothing to compare"),
    (dict(deep_r_alpha=-1e-4), r"deep_r_alpha must be a finite number >= 0 .*got -0.0001"),
    (dict(deep_r_alpha=float("inf")), "deep_r_alpha must be a finite number >= 0"),
    (dict(deep_r_alpha="1e-4"), "deep_r_alpha must be a finite number >= 0"),
    (dict(deep_r_alpha=True), "deep_r_alpha must be a finite number >= 0"),
    (dict(n_seeds=0), "n_seeds"),
    (dict(seeds=()), r"seeds must be a non-empty sequence of seed indices \(integers >= 0\), got \(\)"),
    (dict(seeds=(0, -1)), "seeds must be a non-empty sequence of seed indices"),
    (dict(seeds=(1.0,)), "seeds must be a non-empty sequence of seed indices"),
    (dict(seeds=(2, 0, 2)), r"seeds must not repeat an index, got \[2, 0, 2\]"),
])
def test_bad_options_are_refused_before_any_work(options, match):
    with pytest.raises(ValueError, match=match):
        mnist_comparison("no-such-file.npz", **options)


def test_seed_indices_run_alone_give_the_full_calls_numbers_and_share_its_work_dir(mnist, tmp_path, monkeypatch):
    # A campaign's seeds split over two calls (one work_dir): index 1 alone is the full call's
    # index 1, the parts concatenated along seed are the full call, and the full call in the
    # same work_dir trains only what the part did not (dense and static runs of seed 0).
    import xarray as xr

    import studies.rewiring as rewiring

    options = dict(**{**TINY, "n_seeds": 2}, methods=("static", "dense"))
    full = mnist_comparison(mnist, **options)
    work = tmp_path / "work"
    part = mnist_comparison(mnist, **options, seeds=[1], work_dir=work)
    assert list(part["seed"].values) == [1] and json.loads(part.attrs["experiment"])["seeds"] == [1]
    assert "n_seeds" not in json.loads(part.attrs["experiment"])
    joined = xr.concat([mnist_comparison(mnist, **options, seeds=(0,)), part], dim="seed")
    for name in ("test_log_likelihood", "log_partition", "train_log_likelihood", "final_density"):
        np.testing.assert_array_equal(part[name].values, full[name].sel({"seed": [1]}).values, err_msg=name)
        np.testing.assert_array_equal(joined[name].values, full[name].values, err_msg=name)
    trained = []
    real = rewiring._train_stops
    monkeypatch.setattr(rewiring, "_train_stops", lambda *a, **k: (a[4] and trained.append(a[6])) or real(*a, **k))
    again = mnist_comparison(mnist, **options, work_dir=work)
    assert sorted(trained) == ["dense-c0.2-s0", "static-c0.2-s0", "static-c0.5-s0"]
    assert json.loads(again.attrs["experiment"])["n_seeds"] == 2
    np.testing.assert_array_equal(again["test_log_likelihood"].values, full["test_log_likelihood"].values)


def test_a_classifier_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="classifier"):
        mnist_comparison("no-such-file.npz", classifier="seed0.nc")


def test_the_comparison_figure_draws_ncg_as_a_level_not_at_the_connectivities(table):
    from paper_figures import deep_r_comparison

    ax = deep_r_comparison.draw(table).axes[0]
    assert [c.get_label() for c in ax.containers] == ["deep-r", "static", "magnitude"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for method, style in (("dense", "--"), ("ncg-p1", ":"), ("ncg-p0.5", ":")):
        if method != "dense":  # NCG's label says where its density is: not on the x axis
            density = float(table["final_density"].sel({"method": method}).mean())
            lines[method] = lines.pop(f"{method} (density {density:.2f})")
        assert lines[method].get_linestyle() == style
        np.testing.assert_allclose(lines[method].get_ydata(),
                                   table["test_log_likelihood"].sel({"method": method}).mean("seed").values)


def test_degenerate_ais_weights_are_flagged_and_still_warned(mnist):
    from dilution.ais import DegenerateWeightsWarning

    # Two betas (the base rate straight to the trained model) leave one chain carrying the weight.
    with pytest.warns(DegenerateWeightsWarning):
        ds = mnist_comparison(mnist, **{**TINY, "n_train": 1000, "epochs": 3}, methods=("dense",), likelihood="ais",
                              ais_chains=20, ais_betas=2, learning_rate=0.1)
    np.testing.assert_array_equal(ds["ais_degenerate"].values, 1)
