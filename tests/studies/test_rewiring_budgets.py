"""mnist_comparison with several training budgets, float32 runs and a resumable work_dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

import studies.rewiring as rewiring
from studies.rewiring import mnist_comparison

# Two updates per epoch (200 images, batches of 100); magnitude prunes at epoch 1 of 2 and 2 of 4.
TINY = dict(connectivities=(0.2,), n_seeds=1, n_hidden=4, n_train=200, n_test=100, seed=3, ncg_densities=(0.5,))
COMPARED = ("test_log_likelihood", "log_partition", "final_density")


@pytest.fixture(scope="module")
def mnist(mnist_npz):
    # the shared fixture: skips without DILUTION_DATA on a user's machine, fails in CI
    return str(mnist_npz)


@pytest.fixture(scope="module")
def both(mnist):
    return mnist_comparison(mnist, **TINY, epochs=(4, 2))


def test_each_budget_is_scored_as_a_run_of_that_budget(mnist, both):
    # The non-magnitude methods train once for 4 epochs and are scored after 2 as well: with a
    # constant learning rate that model must be the one a 2-epoch run ends with, bit for bit (the
    # exact log-likelihood and density compare it). Magnitude runs once per budget.
    assert both["test_log_likelihood"].dims == ("method", "connectivity", "seed", "epochs")
    np.testing.assert_array_equal(both["epochs"].values, [2, 4])
    assert json.loads(both.attrs["experiment"])["epochs"] == [2, 4]
    for budget in (2, 4):
        alone = mnist_comparison(mnist, **TINY, epochs=budget)
        assert "epochs" not in alone.dims and json.loads(alone.attrs["experiment"])["epochs"] == budget
        for name in COMPARED:
            np.testing.assert_array_equal(both[name].sel({"epochs": budget}).values, alone[name].values,
                                          err_msg=f"{name} at {budget} epochs")
    # and the budgets really differ (the check above would pass on a run that ignored them)
    ll = both["test_log_likelihood"]
    assert np.all(ll.sel({"epochs": 2}).values != ll.sel({"epochs": 4}).values)
    seconds = both["train_seconds"]
    # one run scored after 2 and 4 epochs: its wall time only grows (magnitude pruning trains a run per budget,
    # whose wall times a busy machine can put in either order: that comparison failed once under load)
    continued = [m for m in seconds["method"].values if m != "magnitude"]
    assert np.all(seconds.sel({"epochs": 4, "method": continued}).values
                  > seconds.sel({"epochs": 2, "method": continued}).values)
    assert np.all(seconds.values > 0)


def _crash_after(monkeypatch, target: str, calls: int):
    """Make ``rewiring.<target>`` (a _WorkDir method or _score) raise after ``calls`` calls that
    did their work: a run killed at that point."""
    owner, name = (rewiring._WorkDir, target.split(".")[1]) if "." in target else (rewiring, target)
    real = getattr(owner, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt(f"killed after {calls} calls of {target}")
        return out

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize("target, calls, first_step", [
    # runs in order deep-r, static, magnitude (b2, b4), dense, ncg; 4 epochs of 2 updates, a state per epoch
    ("_WorkDir.save_state", 3, 6),  # mid-run: deep-r's state at epoch 3 (its epoch-2 scores saved)
    ("_WorkDir.save_state", 9, 2),  # in a later run: magnitude b2 at epoch 1
    ("_score", 4, 0),  # static scored at 4 epochs, numbers not saved: rescored from its state, no training
])
def test_a_stopped_call_continues_in_its_work_dir_to_the_uninterrupted_result(mnist, both, tmp_path, monkeypatch,
                                                                            target, calls, first_step):
    import dilution.training

    work = tmp_path / "work"
    with monkeypatch.context() as patch:
        _crash_after(patch, target, calls)
        with pytest.raises(KeyboardInterrupt):
            mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, save_every=1)
    assert list(work.glob("*-state.nc"))  # something was kept
    stored = len(list(work.glob("*-e*-*.json")))
    # What the resumed call does: the training it continues (from which update) and the models it scores.
    starts, scored = [], []
    real_train, real_score = dilution.training.train, rewiring._score
    with monkeypatch.context() as patch:
        patch.setattr(dilution.training, "train",
                      lambda *a, resume, **k: starts.append(resume.step) or real_train(*a, resume=resume, **k))
        patch.setattr(rewiring, "_score", lambda *a, **k: scored.append(1) or real_score(*a, **k))
        resumed = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, save_every=1)
    assert starts[0] == first_step  # a continued state, not a retrained run
    assert len(scored) == 10 - stored  # 5 methods x 2 budgets, the stored ones not rescored
    # the scored models are kept, and they are the scored ones
    import dilution

    model = dilution.load(work / "deep-r-c0.2-s0-e2.nc")
    np.testing.assert_array_equal(float(np.count_nonzero(model.mask)) / model.mask.size,
                                  both["final_density"].sel({"method": "deep-r", "epochs": 2}).values.ravel()[0])
    for name in (*COMPARED, "test_log_likelihood_se"):
        np.testing.assert_array_equal(resumed[name].values, both[name].values, err_msg=name)
    # A finished work_dir is read, not recomputed: scoring is not called again.
    monkeypatch.setattr(rewiring, "_score", lambda *a, **k: pytest.fail("a stored score was recomputed"))
    again = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, save_every=1)
    np.testing.assert_array_equal(again["test_log_likelihood"].values, both["test_log_likelihood"].values)


def test_a_larger_budget_continues_the_runs_of_a_smaller_one(mnist, both, tmp_path, monkeypatch):
    import dilution.training

    work = tmp_path / "work"
    mnist_comparison(mnist, **TINY, epochs=2, work_dir=work)
    starts = []
    real_train = dilution.training.train
    monkeypatch.setattr(dilution.training, "train",
                        lambda *a, resume, **k: starts.append(resume.step) or real_train(*a, resume=resume, **k))
    doubled = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work)
    # deep-r, static, dense and NCG continue from their 2-epoch states (4 updates); magnitude
    # prunes at half its budget, so its 4-epoch run starts at 0 (its 2-epoch run is kept)
    assert sorted(starts) == [0, 4, 4, 4, 4]
    for name in COMPARED:
        np.testing.assert_array_equal(doubled[name].values, both[name].values, err_msg=name)


def test_a_smaller_budget_after_a_larger_one_trains_the_run_again_aside(mnist, both, tmp_path, monkeypatch):
    # The 4-epoch states are kept; the 2-epoch models were never kept, so each run trains again
    # from its start to epoch 2 in its aside state (killed after the first aside save, then
    # resumed), and the models are the ones the runs had at epoch 2, bit for bit.
    import dilution.training
    from dilution.io import load_state

    work = tmp_path / "work"
    mnist_comparison(mnist, **TINY, epochs=4, work_dir=work)
    with monkeypatch.context() as patch:
        _crash_after(patch, "_WorkDir.save_state", 1)
        with pytest.raises(KeyboardInterrupt):
            mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, save_every=1)
    assert load_state(work / "deep-r-c0.2-s0-aside-state.nc").step == 2
    starts = []
    real_train = dilution.training.train
    monkeypatch.setattr(dilution.training, "train",
                        lambda *a, resume, **k: starts.append(resume.step) or real_train(*a, resume=resume, **k))
    smaller = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, save_every=1)
    # deep-r continues its aside run from epoch 1; static, dense and NCG re-run from 0 (two
    # one-epoch calls each); magnitude's 2-epoch budget is a run of its own (prunes at epoch 1)
    assert starts == [2, 0, 2, 0, 2, 0, 2, 0, 2]
    for name in (*COMPARED, "train_log_likelihood"):
        np.testing.assert_array_equal(smaller[name].values, both[name].values, err_msg=name)
    for run in ("deep-r-c0.2-s0", "static-c0.2-s0", "dense-c0.2-s0", "ncg-p0.5-c0.2-s0"):
        assert load_state(work / f"{run}-state.nc").step == 8  # the 4-epoch state is left as it was
        assert load_state(work / f"{run}-aside-state.nc").step == 4
    # a budget below the aside state too: the aside run starts again from 0
    starts.clear()
    smallest = mnist_comparison(mnist, **TINY, epochs=(1, 4), work_dir=work)
    assert starts == [0, 0, 0, 0, 0]
    alone = mnist_comparison(mnist, **TINY, epochs=1)
    for name in COMPARED:
        np.testing.assert_array_equal(smallest[name].sel({"epochs": 1}).values, alone[name].values, err_msg=name)


def test_a_state_or_model_of_another_training_run_is_refused(mnist, tmp_path, capsys):
    work = tmp_path / "work"
    options = dict(**{**TINY, "ncg_densities": ()}, methods=("static",), epochs=(1, 2), work_dir=work)
    mnist_comparison(mnist, **options, progress=True)
    err = capsys.readouterr().err
    assert "static-c0.2-s0: epoch 1 of 2 saved" in err and "static c=0.2 seed 0 epochs 2:" in err
    with pytest.raises(ValueError, match=r"static-c0.2-s0-e1.nc was made by another training run"):
        mnist_comparison(mnist, **{**options, "learning_rate": 0.02})
    for f in work.glob("*-e*.nc"):
        f.unlink()
    with pytest.raises(ValueError, match=r"static-c0.2-s0-state.nc was made by another training run"):
        mnist_comparison(mnist, **{**options, "n_train": 100})  # other training data, same config and seed
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        mnist_comparison(mnist, **{**options, "work_dir": tmp_path / "file"})


@pytest.mark.filterwarnings("ignore::dilution.ais.DegenerateWeightsWarning")  # 20 chains: only the wiring is checked
def test_other_evaluation_settings_score_the_kept_models_without_training(mnist, both, tmp_path, monkeypatch):
    import dilution.training

    work = tmp_path / "work"
    mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work)
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("a kept model was retrained"))
    # scored on fewer test images: log Z of the same models is the same number (exact enumeration)
    fewer = mnist_comparison(mnist, **{**TINY, "n_test": 50}, epochs=(2, 4), work_dir=work)
    np.testing.assert_array_equal(fewer["log_partition"].values, both["log_partition"].values)
    assert np.all(fewer["test_log_likelihood"].values != both["test_log_likelihood"].values)
    ais = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, likelihood="ais", ais_chains=20,
                           ais_betas=100, ais_schedule="classic")
    assert "classic schedule" in ais.attrs["log_likelihood_method"]
    assert json.loads(ais.attrs["experiment"])["ais_schedule"] == "classic"
    np.testing.assert_array_equal(ais["final_density"].values, both["final_density"].values)
    assert np.all(ais["log_partition_se"].values > 0)
    # and the exact scores are still there: the first call's settings read them back
    again = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work)
    np.testing.assert_array_equal(again["test_log_likelihood"].values, both["test_log_likelihood"].values)


AIS = dict(likelihood="ais", ais_chains=20, ais_schedule="classic")


@pytest.mark.filterwarnings("ignore::dilution.ais.DegenerateWeightsWarning")  # 20 chains: only the wiring is checked
def test_each_ais_budget_scores_the_same_models_as_a_call_with_that_budget(mnist, tmp_path, monkeypatch):
    both = mnist_comparison(mnist, **TINY, epochs=(2, 4), **AIS, ais_betas=(100, 50))
    assert both["log_partition"].dims == ("method", "connectivity", "seed", "epochs", "ais_betas")
    assert both["final_density"].dims == both["train_seconds"].dims == ("method", "connectivity", "seed", "epochs")
    np.testing.assert_array_equal(both["ais_betas"].values, [50, 100])
    assert json.loads(both.attrs["experiment"])["ais_betas"] == [50, 100] and list(both.attrs["ais_betas"]) == [50, 100]
    assert "100 betas" in both.attrs["log_likelihood_method"] and "also scored with 50 betas" in \
        both.attrs["log_likelihood_method"]
    # the AIS-budget verdict per model is budgets_agree on its two estimates
    from analysis.likelihood import budgets_agree

    converged = both["log_partition_converged"]
    assert converged.dims == both["final_density"].dims
    for at in np.ndindex(converged.shape):
        z, se = both["log_partition"].values[at], both["log_partition_se"].values[at]
        scored = np.all(np.isfinite(z)) and np.all(np.isfinite(se))
        np.testing.assert_equal(converged.values[at], float(budgets_agree(z, se)) if scored else np.nan)
    assert np.isfinite(converged.values).any()
    for n_betas in (50, 100):
        alone = mnist_comparison(mnist, **TINY, epochs=(2, 4), **AIS, ais_betas=n_betas)
        assert "ais_betas" not in alone.dims and json.loads(alone.attrs["experiment"])["ais_betas"] == n_betas
        for name in (*COMPARED, "train_log_likelihood", "log_partition_se", "ais_degenerate"):
            got = both[name].sel({"ais_betas": n_betas}) if "ais_betas" in both[name].dims else both[name]
            np.testing.assert_array_equal(got.values, alone[name].values, err_msg=f"{name} at {n_betas} betas")
    # the budgets give different estimates (the check above would pass if one was ignored)
    assert np.all(both["log_partition"].sel({"ais_betas": 50}).values != both["log_partition"].sel({"ais_betas": 100}))
    # with a work_dir a call that adds a budget trains nothing and scores only the new budget
    import dilution.training

    work = tmp_path / "work"
    mnist_comparison(mnist, **TINY, epochs=(2, 4), **AIS, ais_betas=50, work_dir=work)
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("a kept model was retrained"))
    scored = []
    score = rewiring._score
    monkeypatch.setattr(rewiring, "_score", lambda evaluation, *a, **k: scored.append(evaluation.ais_betas)
                        or score(evaluation, *a, **k))
    again = mnist_comparison(mnist, **TINY, epochs=(2, 4), **AIS, ais_betas=(50, 100), work_dir=work)
    # 10 models: deep-r, static, dense and ncg-p0.5 after 2 and 4 epochs of one run; magnitude a run per budget
    assert scored == [100] * 10
    for name in COMPARED:
        np.testing.assert_array_equal(again[name].values, both[name].values, err_msg=name)


def test_kept_only_returns_what_a_work_dir_holds_and_nan_elsewhere(mnist, both, tmp_path, monkeypatch):
    import dilution.training

    work = tmp_path / "work"
    mnist_comparison(mnist, **{**TINY, "ncg_densities": ()}, methods=("static", "dense"), epochs=(2, 4), work_dir=work)
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("kept_only trained"))
    monkeypatch.setattr(rewiring, "_score", lambda *a, **k: pytest.fail("kept_only scored"))
    table = mnist_comparison(mnist, **TINY, epochs=(2, 4), work_dir=work, kept_only=True)
    assert list(table["method"].values) == list(both["method"].values)
    kept = ["static", "dense"]
    for name in COMPARED:
        np.testing.assert_array_equal(table[name].sel({"method": kept}).values, both[name].sel({"method": kept}).values)
        assert np.all(np.isnan(table[name].sel({"method": ["deep-r", "magnitude", "ncg-p0.5"]}).values)), name
    assert table.attrs["scored_fraction"] == pytest.approx(2 / 5)
    assert "scored_fraction" not in both.attrs
    with pytest.raises(ValueError, match="kept_only reads the scores kept in a work_dir"):
        mnist_comparison(mnist, **TINY, epochs=(2, 4), kept_only=True)


def test_reverse_scores_are_kept_apart_and_read_back_by_kept_only(mnist, tmp_path, monkeypatch):
    import dilution.training

    work = tmp_path / "work"
    options = dict(**{**TINY, "ncg_densities": ()}, methods=("static",), epochs=2, likelihood="ais", ais_chains=20,
                   ais_betas=50, work_dir=work)
    forward = mnist_comparison(mnist, **options)
    both = mnist_comparison(mnist, **options, ais_reverse=True)
    assert len(list(work.glob("*.json"))) == 2  # a score of each evaluation, the first one's key as before
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("kept_only trained"))
    monkeypatch.setattr(rewiring, "_score", lambda *a, **k: pytest.fail("kept_only scored"))
    for ais_reverse, called in ((True, both), (False, forward)):
        kept = mnist_comparison(mnist, **options, ais_reverse=ais_reverse, kept_only=True)
        assert set(kept.data_vars) == set(called.data_vars)
        for name in called.data_vars:
            np.testing.assert_array_equal(kept[name].values, called[name].values, err_msg=name)
    assert np.all(np.isfinite(both["log_partition_upper"].values))


def test_raise_scores_the_kept_models_without_training_and_kept_only_reads_them_back(mnist, tmp_path, monkeypatch):
    import dilution.training

    work = tmp_path / "work"
    options = dict(**{**TINY, "ncg_densities": ()}, methods=("static",), epochs=2, likelihood="ais", ais_chains=20,
                   ais_betas=50, work_dir=work)
    forward = mnist_comparison(mnist, **options)
    monkeypatch.setattr(dilution.training, "train", lambda *a, **k: pytest.fail("a kept model was retrained"))
    raised = mnist_comparison(mnist, **options, ais_raise=2)
    assert len(list(work.glob("*.json"))) == 2  # a score of each evaluation, the first one's key as before
    assert np.all(np.isfinite(raised["test_log_likelihood_raise"].values))
    monkeypatch.setattr(rewiring, "_score", lambda *a, **k: pytest.fail("kept_only scored"))
    for ais_raise, called in ((2, raised), (0, forward)):
        kept = mnist_comparison(mnist, **options, ais_raise=ais_raise, kept_only=True)
        assert set(kept.data_vars) == set(called.data_vars)
        for name in called.data_vars:
            np.testing.assert_array_equal(kept[name].values, called[name].values, err_msg=name)


def test_float32_runs_are_recorded_and_close_to_float64(mnist, both):
    single = mnist_comparison(mnist, **TINY, epochs=(2, 4), dtype="float32")
    assert json.loads(single.attrs["experiment"])["dtype"] == "float32" and "float32" in single.attrs["setup"]
    assert "dtype" not in json.loads(both.attrs["experiment"])
    # Float32 draws 24-bit uniforms where float64 draws 53-bit ones, so the chains differ after a
    # few flips and the runs are not the same; at 4 epochs of 2 updates the trained models stay
    # near their common start: their exact log-likelihoods differ by well under a nat.
    diff = np.abs(single["test_log_likelihood"].values - both["test_log_likelihood"].values)
    assert np.all(np.isfinite(diff)) and np.all(diff < 1.0)


@pytest.mark.parametrize("options, match", [
    (dict(epochs=()), "epochs"),
    (dict(epochs=(2, 2)), "epochs"),
    (dict(epochs=(0, 2)), "epochs"),
    (dict(epochs=2.5), "epochs"),
    (dict(epochs=True), "epochs"),
    (dict(dtype="float16"), "dtype"),
    (dict(save_every=0), "save_every"),
    (dict(likelihood="ais", ais_betas=(50, 50)), "ais_betas must be an integer >= 2 or a non-empty list"),
    (dict(likelihood="ais", ais_betas=()), "ais_betas"),
    (dict(likelihood="ais", ais_betas=(3, 50), ais_schedule="classic"), "ais_betas must be an integer >= 4"),
    (dict(likelihood="ais", ais_betas=2.5), "ais_betas"),
    (dict(ais_betas=(50, 100)), "ais_betas as a list .* needs likelihood='ais'"),
])
def test_bad_budget_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        mnist_comparison("no-such-file.npz", **options)


def test_the_figure_draws_the_early_stopped_budget_and_the_largest_ais_budget(both):
    # the comparison's own file: each model at the training budget its validation score picks (for
    # the dense model the largest budget is the overfit one), and the largest AIS budget
    import xarray as xr
    from paper_figures import deep_r_comparison

    def static_y(ds):
        ax = deep_r_comparison.draw(ds).axes[0]
        return [c for c in ax.containers if c.get_label() == "static"][0].lines[0].get_ydata()

    stopped = both["early_stopped_test_log_likelihood"]
    np.testing.assert_allclose(static_y(both), stopped.sel({"method": "static"}).mean("seed"))
    # without the early-stopped variables: the largest training budget
    plain = both.drop_vars(["early_stopped_epochs", "early_stopped_test_log_likelihood"])
    np.testing.assert_allclose(static_y(plain),
                               both["test_log_likelihood"].sel({"method": "static", "epochs": 4}).mean("seed"))
    # a synthetic second AIS budget with the scores shifted by 1: the figure draws it
    shifted = both.copy()
    for name in ("test_log_likelihood", "early_stopped_test_log_likelihood"):
        shifted[name] = both[name] + 1.0
    two = xr.concat([both, shifted], dim="ais_betas").assign_coords(ais_betas=[50, 100])
    for name in ("final_density", "train_seconds"):
        two[name] = both[name]
    np.testing.assert_allclose(static_y(two), stopped.sel({"method": "static"}).mean("seed") + 1.0)


@pytest.mark.parametrize("with_classifier", [False, True])
def test_reproduce_knows_the_settings_the_comparison_records(mnist, tmp_path, with_classifier):
    # reproduce skips a comparison whose file records the settings it would ask for; if the two
    # disagreed (e.g. on the classifier's keys) every run would recompute hours of training.
    from analysis.classifier import ClassifierConfig, train_classifier
    from dilution.data import mnist as mnist_data
    from studies.reproduce import _comparison_settings, _study_classifier, smoke_specs

    assert _study_classifier(None) is None
    assert _study_classifier(smoke_specs(tmp_path, mnist)["mnist"]) is None  # the smoke study scores no samples
    classifier = None
    if with_classifier:
        train = mnist_data.load_mnist(mnist, "train")
        classifier = train_classifier(train["images"].values[:300], train["labels"].values[:300], seed=4,
                                      config=ClassifierConfig(n_hidden=8, epochs=1), progress=False)
    kwargs = dict(connectivities=(0.2,), n_seeds=1, n_hidden=4, n_train=200, n_test=100, epochs=(1, 2),
                  dtype="float32", methods=("static",), n_samples=10, n_sweeps=2)
    experiment, call = _comparison_settings(kwargs, 5, classifier)
    ds = mnist_comparison(mnist, **call)
    assert json.loads(ds.attrs["experiment"]) == experiment
    assert ("classifier_inception_score" in ds) == with_classifier


def test_early_stopping_picks_each_models_budget_by_validation_in_the_comparison(both):
    # brute force over the comparison's own numbers: the budget with the highest validation
    # log-likelihood, and the test score there
    assert both["early_stopped_test_log_likelihood"].dims == ("method", "connectivity", "seed")
    validation = both["validation_log_likelihood"].values
    test = both["test_log_likelihood"].values
    budgets = both["epochs"].values
    for index in np.ndindex(validation.shape[:-1]):
        pick = int(np.argmax(validation[index]))
        assert both["early_stopped_epochs"].values[index] == budgets[pick]
        assert both["early_stopped_test_log_likelihood"].values[index] == test[index][pick]


def test_early_stopping_follows_validation_not_test_skips_unscored_budgets_and_refuses_without_budgets():
    import xarray as xr

    from studies.rewiring import early_stopping

    # four models x three budgets: validation peaks early while the test score peaks late (a
    # selection by the test score would fail); a tie goes to the smaller budget; an unscored
    # (NaN) budget is skipped; a model with nothing scored gives NaN
    validation = np.array([[-10.0, -12.0, -13.0], [-11.0, -11.0, -20.0], [np.nan, -15.0, -14.0], [np.nan] * 3])
    test = np.array([[-20.0, -19.0, -18.0], [-21.0, -22.0, -17.0], [-30.0, -24.0, -25.0], [np.nan] * 3])
    ds = xr.Dataset({"validation_log_likelihood": (("model", "epochs"), validation),
                     "test_log_likelihood": (("model", "epochs"), test, {"units": "nats per sample"})},
                    coords={"epochs": [100, 200, 400]})
    out = early_stopping(ds)
    np.testing.assert_array_equal(out["early_stopped_epochs"].values, [100, 100, 400, np.nan])
    np.testing.assert_array_equal(out["early_stopped_test_log_likelihood"].values, [-20.0, -21.0, -25.0, np.nan])
    assert out["early_stopped_test_log_likelihood"].attrs["units"] == "nats per sample"
    with pytest.raises(ValueError, match="early stopping needs 'validation_log_likelihood'"):
        early_stopping(ds.drop_vars("validation_log_likelihood"))
    with pytest.raises(ValueError, match="no epochs dimension"):
        early_stopping(ds.isel(epochs=0))  # one budget: epochs a scalar


def _test_images(mnist: str, n_test: int) -> np.ndarray:
    """The comparison's test images, read here without its code: the first ``n_test`` of the test
    split, binarised at 0.5."""
    images = np.load(mnist)["x_test"][:n_test].reshape(n_test, -1).astype(np.float64)
    return (images / 255.0 > 0.5).astype(np.float64)


def _unnormalised(model, v: np.ndarray) -> np.ndarray:
    """log p(v) + log Z of each row by the textbook free energy, in numpy (slow reference)."""
    w = np.asarray(model.weights, dtype=np.float64) * np.asarray(model.mask, dtype=np.float64)
    field = np.asarray(model.hidden_bias, dtype=np.float64) + v @ w
    return v @ np.asarray(model.visible_bias, dtype=np.float64) + np.logaddexp(0.0, field).sum(axis=1)


def test_epoch_gain_is_the_paired_difference_of_the_budgets_with_its_standard_error(mnist, tmp_path):
    import dilution

    work = tmp_path / "work"
    options = dict(**{**TINY, "ncg_densities": ()}, methods=("deep-r", "magnitude"), epochs=(2, 4, 8),
                   likelihood="ais", ais_chains=20, ais_betas=(50, 100), work_dir=work)
    ds = mnist_comparison(mnist, **options)
    gain, se = ds["epoch_gain"], ds["epoch_gain_se"]
    assert gain.dims == se.dims == ("method", "connectivity", "seed", "epochs", "ais_betas")
    # of the model, not of its score: no ais_betas dim
    assert ds["mask_overlap"].dims == ("method", "connectivity", "seed", "epochs")
    assert np.all(np.isnan(gain.sel({"epochs": 2}).values)) and np.all(np.isnan(se.sel({"epochs": 2}).values))
    test_x = _test_images(mnist, TINY["n_test"])
    for method in ("deep-r", "magnitude"):  # one run scored at each budget; a run per budget
        run = f"{method}-c0.2-s0"
        for before, after in ((2, 4), (4, 8)):
            names = [f"{run}-b{b}-e{b}.nc" if method == "magnitude" else f"{run}-e{b}.nc" for b in (before, after)]
            u_before, u_after = (_unnormalised(dilution.load(work / n), test_x) for n in names)
            at = {"method": method, "epochs": after}
            ll = ds["test_log_likelihood"].sel({"method": method})
            log_z_se = ds["log_partition_se"].sel({"method": method})
            for betas in (50, 100):
                # the gain, and the log-likelihoods it is the difference of, from the models' own free energies
                expected = (u_after.mean() - ds["log_partition"].sel({**at, "ais_betas": betas}).item()) \
                    - (u_before.mean() - ds["log_partition"].sel({**at, "epochs": before, "ais_betas": betas}).item())
                assert gain.sel({**at, "ais_betas": betas}).item() == pytest.approx(expected, abs=1e-9)
                assert gain.sel({**at, "ais_betas": betas}).item() == pytest.approx(
                    ll.sel({"epochs": after, "ais_betas": betas}).item()
                    - ll.sel({"epochs": before, "ais_betas": betas}).item(), abs=1e-12)
                difference = u_after - u_before
                expected_se = np.sqrt(difference.var(ddof=1) / difference.size
                                      + log_z_se.sel({"epochs": after, "ais_betas": betas}).item() ** 2
                                      + log_z_se.sel({"epochs": before, "ais_betas": betas}).item() ** 2)
                assert se.sel({**at, "ais_betas": betas}).item() == pytest.approx(expected_se, rel=1e-9)
    # paired over the images, so well inside the spread a test score has on its own
    assert np.all(se.sel({"epochs": [4, 8]}).values < ds["test_log_likelihood_se"].sel({"epochs": [4, 8]}).values)
    # read back from the work_dir (scores and kept models) without training or scoring: the same
    kept = mnist_comparison(mnist, **options, kept_only=True)
    for name in ("epoch_gain", "epoch_gain_se"):
        np.testing.assert_array_equal(kept[name].values, ds[name].values, err_msg=name)
    # a kept model removed by hand: its scores still read, the gains that need it NaN, no error
    (work / "deep-r-c0.2-s0-e4.nc").unlink()
    partial = mnist_comparison(mnist, **options, kept_only=True)
    np.testing.assert_array_equal(partial["test_log_likelihood"].values, ds["test_log_likelihood"].values)
    assert np.all(np.isnan(partial["epoch_gain"].sel({"method": "deep-r", "epochs": [4, 8]}).values))
    np.testing.assert_array_equal(partial["epoch_gain"].sel({"method": "magnitude"}).values,
                                  ds["epoch_gain"].sel({"method": "magnitude"}).values)
    # one budget: nothing to compare, no such variable
    single = mnist_comparison(mnist, **{**options, "epochs": 2, "work_dir": None}).data_vars
    assert "epoch_gain" not in single and "mask_overlap" not in single


def test_mask_overlap_is_the_two_time_overlap_of_the_kept_models_masks(mnist, tmp_path):
    import dilution
    from analysis.masks import two_time_overlap

    work = tmp_path / "work"
    options = dict(**TINY, epochs=(1, 2, 4), work_dir=work)
    ds = mnist_comparison(mnist, **options)
    overlap, chance = ds["mask_overlap"], ds["mask_overlap_chance"]
    assert overlap.dims == chance.dims == ds["epoch_gain"].dims == ("method", "connectivity", "seed", "epochs")
    assert overlap.attrs["units"] == chance.attrs["units"] == "1" and "two_time_overlap" in overlap.attrs["long_name"]
    assert np.all(np.isnan(overlap.sel({"epochs": 1}).values)) and np.all(np.isnan(chance.sel({"epochs": 1}).values))
    for method in ds["method"].values:  # every method's run is named at the first connectivity
        run = f"{method}-c0.2-s0"
        for before, after in ((1, 2), (2, 4)):
            names = [f"{run}-b{b}-e{b}.nc" if method == "magnitude" else f"{run}-e{b}.nc" for b in (before, after)]
            a, b = (np.asarray(dilution.load(work / n).mask) for n in names)
            pair = two_time_overlap(np.stack([a, b]), [before, after])
            at = {"method": method, "epochs": after}
            assert overlap.sel(at).item() == pair["overlap"].item()
            assert chance.sel(at).item() == pair["chance"].item()
            # and the definition, counted here
            assert overlap.sel(at).item() == pytest.approx(np.sum(a & b) / np.sqrt(a.sum() * b.sum()), rel=1e-12)
            assert chance.sel(at).item() == pytest.approx(np.sqrt(a.sum() * b.sum()) / a.size, rel=1e-12)
    later = {"epochs": [2, 4]}
    np.testing.assert_array_equal(overlap.sel({"method": "dense", **later}).values, 1.0)
    np.testing.assert_array_equal(chance.sel({"method": "dense", **later}).values, 1.0)
    np.testing.assert_array_equal(overlap.sel({"method": "static", **later}).values, 1.0)  # a fixed mask
    assert np.all(overlap.sel({"method": "deep-r", **later}).values < 1.0)  # the rewiring moved it
    # read back from the work_dir's kept models without training: the same
    kept = mnist_comparison(mnist, **options, kept_only=True)
    for name in ("mask_overlap", "mask_overlap_chance"):
        np.testing.assert_array_equal(kept[name].values, ds[name].values, err_msg=name)
    # a kept model removed by hand: the overlaps that need it NaN, the others as before
    (work / "deep-r-c0.2-s0-e2.nc").unlink()
    partial = mnist_comparison(mnist, **options, kept_only=True)
    assert np.all(np.isnan(partial["mask_overlap"].sel({"method": "deep-r", **later}).values))
    others = [m for m in ds["method"].values if m != "deep-r"]
    np.testing.assert_array_equal(partial["mask_overlap"].sel({"method": others}).values,
                                  ds["mask_overlap"].sel({"method": others}).values)


@pytest.mark.filterwarnings("ignore::dilution.ais.DegenerateWeightsWarning")  # 20 chains: only the wiring is checked
def test_an_ais_score_interrupted_in_a_work_dir_continues_from_its_checkpoint(mnist, tmp_path, monkeypatch):
    from dilution import ais

    options = dict(**TINY, methods=("static", "dense"), epochs=2, **AIS, ais_betas=100)
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)  # a kernel call per beta
    kernel, calls = ais.ais_kernel, []

    def counted(*args):
        calls.append(1)
        if len(calls) == 150:  # in the second model's AIS run, the first one's score kept
            raise KeyboardInterrupt("killed in an AIS run")
        return kernel(*args)

    reference = mnist_comparison(mnist, **options)
    monkeypatch.setattr(ais, "ais_kernel", counted)
    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt, match="killed in an AIS run"):
        mnist_comparison(mnist, **options, work_dir=work)
    assert len(list(work.glob("*.ais.npz"))) == 1  # the first model's was removed with its score kept
    calls.clear()
    resumed = mnist_comparison(mnist, **options, work_dir=work)
    # three models (static, dense and TINY's NCG), each scored by a forward run of 99 steps (no reverse run by
    # default); the 149 calls made before the interruption are not made again
    assert len(calls) == 3 * 99 - 149
    assert not list(work.glob("*.ais.npz"))
    for name in reference.data_vars:
        if name != "train_seconds":
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)
