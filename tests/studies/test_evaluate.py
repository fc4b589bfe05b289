"""Study evaluation: AIS agrees with exact enumeration within its own standard error, the optional
metrics match closed forms, and a malformed [evaluation] table fails before compute, naming the key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dilution.estimators import PCD
from dilution.model import RBM
from dilution.training import TrainConfig, train
from studies.builtin import builtin_spec
from studies.data import load_data
from studies.evaluate import evaluate, metric_variables
from studies.spec import METRICS, EvaluationSpec, MnistData, SpecError, spec_from_dict


def _agree(ais, exact) -> None:
    """AIS log Z and exact log Z agree within 4 reported standard errors.

    The delta-method standard error ``se`` of the forward estimate is the spread of log Z over
    AIS runs; by Jensen the estimate is low on average by about ``se**2 / 2`` (second-order
    delta method), so ``|AIS - exact| <= 4 se + se**2 / 2`` fails a correct estimator with
    probability about 6e-5 (normal tail beyond 4 sigma).
    """
    se = ais.metrics["log_partition_se"].value
    assert 0 < se < 0.5
    diff = ais.metrics["log_partition"].value - exact.metrics["log_partition"].value
    assert abs(diff) <= 4 * se + se**2 / 2, (diff, se)
    # log p(v) = -F(v) - log Z: the test log-likelihoods differ by exactly the log Z difference
    ll = ais.metrics["test_log_likelihood"].value - exact.metrics["test_log_likelihood"].value
    assert ll == pytest.approx(-diff, abs=1e-9)


def test_ais_agrees_with_exact_on_a_small_model():
    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    exact = evaluate(EvaluationSpec(), rbm, data, seed=0)
    assert exact.metrics["log_partition_se"].value == 0.0
    ais = evaluate(EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=2000), rbm, data, seed=0)
    assert ais.method.startswith("AIS, 100 forward chains, 2000 linear betas")
    _agree(ais, exact)


def test_ais_on_the_classic_schedule_agrees_with_exact_on_a_small_model():
    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    exact = evaluate(EvaluationSpec(), rbm, data, seed=0)
    spec = EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=2000, ais_schedule="classic")
    ais = evaluate(spec, rbm, data, seed=0)
    assert "2000 betas in the classic schedule's proportions" in ais.method
    _agree(ais, exact)
    # it is another schedule, not the linear one under a new name
    linear = evaluate(EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=2000), rbm, data, seed=0)
    assert linear.metrics["log_partition"].value != ais.metrics["log_partition"].value


def test_reverse_ais_brackets_the_exact_log_z_and_leaves_the_forward_numbers_unchanged():
    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    exact = evaluate(EvaluationSpec(), rbm, data, seed=0).metrics["log_partition"].value
    spec = EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=2000, ais_reverse=True)
    ais = evaluate(spec, rbm, data, seed=0)
    values = {name: metric.value for name, metric in ais.metrics.items()}
    assert list(values) == list(metric_variables(spec))
    assert "then as many reverse chains" in ais.method
    # Each side is the log of a mean of 100 independent importance weights: close to normal around
    # log Z with its delta-method standard error se, and by Jensen off by about se**2 / 2 towards
    # its own side (forward low, reverse high; the reverse chains start from 1000 Gibbs sweeps, on a
    # 16 x 6 model as good as exact samples). So forward <= exact + 4 se and reverse >= exact - 4 se
    # (the sandwich), and each within 4 se + se**2 / 2 of exact, fail with probability about 6e-5.
    lower, lower_se = values["log_partition"], values["log_partition_se"]
    upper, upper_se = values["log_partition_upper"], values["log_partition_upper_se"]
    assert 0 < lower_se < 0.5 and 0 < upper_se < 0.5
    assert lower <= exact + 4 * lower_se and upper >= exact - 4 * upper_se
    assert abs(lower - exact) <= 4 * lower_se + lower_se**2 / 2, (lower - exact, lower_se)
    assert abs(upper - exact) <= 4 * upper_se + upper_se**2 / 2, (upper - exact, upper_se)
    ess = values["log_partition_upper_ess"]
    assert 0.9 * 100 < ess <= 100  # near-exact starts: weights near 1
    # the SE and the ESS are of the same reverse weights w: ESS = n mean(w)^2 / (mean(w)^2 + var0(w))
    # and se^2 = var1(w) / (n mean(w)^2) with var1 = var0 n / (n - 1), so se^2 = (n / ESS - 1) / (n - 1)
    assert upper_se**2 == pytest.approx((100 / ess - 1) / (100 - 1), rel=1e-9)
    # the lower side of the log-likelihood is the same free energies with the larger log Z
    assert values["test_log_likelihood_lower"] == pytest.approx(
        values["test_log_likelihood"] - (upper - lower), abs=1e-9)
    # the forward run draws from its own streams: bit for bit the numbers without the reverse run
    forward = evaluate(EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=2000), rbm, data, seed=0)
    assert list(forward.metrics) == list(_LIKELIHOOD_NAMES)
    for name in _LIKELIHOOD_NAMES:
        assert values[name] == forward.metrics[name].value, name
    # exact enumeration ignores the option, like the other ais_* fields
    assert list(metric_variables(EvaluationSpec(ais_reverse=True))) == list(_LIKELIHOOD_NAMES)


_LIKELIHOOD_NAMES = ("test_log_likelihood", "test_log_likelihood_se", "log_partition", "log_partition_se")


def test_raise_is_the_direct_call_on_its_own_stream_and_the_gap_is_paired_over_the_test_images():
    from dilution.ais import raise_log_likelihood
    from dilution.rng import derive_seed
    from dilution.schedules import classic

    data = load_data(builtin_spec("smoke").data)
    data = data._replace(test=data.test[:200])
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    options = dict(log_likelihood="ais", ais_chains=20, ais_betas=200, ais_schedule="classic")
    spec = EvaluationSpec(**options, ais_raise=2)
    ais = evaluate(spec, rbm, data, seed=5)
    values = {name: metric.value for name, metric in ais.metrics.items()}
    assert list(values) == list(metric_variables(spec)) == [*_LIKELIHOOD_NAMES, *_RAISE_NAMES]
    assert "RAISE, 2 reverse chains from each test image" in ais.method
    # the documented recipe: a stream of the run seed of its own, the forward run's betas
    stream = int(derive_seed(5, "studies.raise").generate_state(1)[0])
    direct = raise_log_likelihood(rbm, data.test, base_data=data.train, seed=stream, betas=classic(200),
                                  chains_per_row=2, progress=False)
    assert values["test_log_likelihood_raise"] == float(direct["log_likelihood"])
    assert values["test_log_likelihood_raise_se"] == float(direct["log_likelihood_std"])
    # the forward per-image log-likelihood -F(v) - log Z, with F(v) = -a.v - sum_j softplus(b_j + (v W)_j)
    v = data.test
    neg_f = v @ rbm.visible_bias + np.logaddexp(0.0, rbm.hidden_bias + v @ (rbm.weights * rbm.mask)).sum(axis=1)
    difference = neg_f - values["log_partition"] - direct["log_likelihood_row"].values
    assert values["raise_gap"] == pytest.approx(difference.mean(), abs=1e-12)
    assert values["raise_gap"] == pytest.approx(values["test_log_likelihood"] - values["test_log_likelihood_raise"],
                                                abs=1e-12)
    assert values["raise_gap_se"] == pytest.approx(difference.std(ddof=1) / math.sqrt(v.shape[0]), abs=1e-12)
    # paired: -F(v) enters both sides, so the gap's spread is far below either score's
    assert 0 < values["raise_gap_se"] < values["test_log_likelihood_se"] / 2
    # RAISE draws from a stream of its own: bit for bit the forward numbers without it
    forward = evaluate(EvaluationSpec(**options), rbm, data, seed=5)
    assert list(forward.metrics) == list(_LIKELIHOOD_NAMES)
    for name in _LIKELIHOOD_NAMES:
        assert values[name] == forward.metrics[name].value, name
    # exact enumeration ignores the option, like the other ais_* fields
    assert list(metric_variables(EvaluationSpec(ais_raise=2))) == list(_LIKELIHOOD_NAMES)


_RAISE_NAMES = ("test_log_likelihood_raise", "test_log_likelihood_raise_se", "raise_gap", "raise_gap_se")


def _mnist_model(path):
    data = load_data(MnistData(path=str(path), n_train=2000, n_validation=10, n_test=500))
    cfg = TrainConfig(estimator=PCD(k=1), epochs=5, batch_size=100, learning_rate=0.05)
    return train((784, 16), data.train, cfg, seed=0, progress=False).model, data


def test_ais_agrees_with_exact_on_mnist_784x16(mnist_npz):
    rbm, data = _mnist_model(mnist_npz)
    exact = evaluate(EvaluationSpec(), rbm, data, seed=0)
    # A small budget keeps the default suite fast; the slow test below uses mnist-500's budget.
    _agree(evaluate(EvaluationSpec(log_likelihood="ais", ais_chains=100, ais_betas=500), rbm, data, seed=0), exact)


@pytest.mark.slow
def test_ais_with_the_mnist_500_budget_agrees_with_exact_on_784x16(mnist_npz):
    rbm, data = _mnist_model(mnist_npz)
    budget = builtin_spec("mnist-500", data=str(mnist_npz)).evaluation
    exact = evaluate(EvaluationSpec(), rbm, data, seed=0)
    _agree(evaluate(EvaluationSpec(log_likelihood="ais", ais_chains=budget.ais_chains, ais_betas=budget.ais_betas),
                    rbm, data, seed=0), exact)


def _two_visible_model(w1: float, w2: float, b: float) -> RBM:
    """Two visible units joined by one hidden unit, a third visible unit connected to nothing."""
    weights = np.array([[w1], [w2], [0.0]])
    return RBM(weights, np.array([0.3, -0.2, 0.1]), np.array([b]), weights != 0)


def test_optional_metrics_against_closed_forms():
    data = load_data(builtin_spec("smoke").data)
    ev = EvaluationSpec(metrics=("moments", "aats", "couplings", "mixing", "mask"), n_samples=500, n_sweeps=10,
                        mixing_chains=16, mixing_sweeps=400, mixing_burn_in=10, coupling_threshold=0.1)
    # With zero weights the visible units are redrawn independently at every sweep: the free
    # energy trace is i.i.d., tau = 1 exactly; allow 4 Madras-Sokal relative errors.
    zero = RBM.random(16, 6, weight_scale=0.0, bias_scale=1.0, seed=0)
    res = evaluate(ev, zero, data, seed=1)
    assert list(res.metrics) == list(metric_variables(ev))
    tau = res.metrics["mixing_tau"].value
    assert abs(tau - 1.0) <= 4 * res.metrics["mixing_tau_relative_error"].value
    assert res.metrics["coupling_max_abs"].value == 0.0
    for name, metric in res.metrics.items():
        assert metric.long_name and metric.units, name
        assert math.isfinite(metric.value), name

    # One hidden unit on visible units 0 and 1: the v0 v1 coefficient of log p(v) is
    # c = sp(b + w1 + w2) - sp(b + w1) - sp(b + w2) + sp(b), and v0 v1 = (s0 + 1)(s1 + 1) / 4 in
    # spins, so J_01 = c / 4 exactly (no higher-order terms with one hidden unit of degree 2).
    w1, w2, b = 2.0, -1.5, 0.4
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    j01 = (sp(b + w1 + w2) - sp(b + w1) - sp(b + w2) + sp(b)) / 4
    small = _two_visible_model(w1, w2, b)
    ev2 = EvaluationSpec(metrics=("couplings", "mask"), coupling_threshold=abs(j01) / 2)
    from studies.data import StudyData

    tiny = StudyData(*(np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),) * 3, math.nan, math.nan)
    res = evaluate(ev2, small, tiny, seed=0).metrics
    assert res["coupling_max_abs"].value == pytest.approx(abs(j01), rel=1e-9)
    assert res["coupling_mean_abs"].value == pytest.approx(abs(j01) / 3, rel=1e-9)  # 3 pairs, one nonzero
    assert res["coupling_fraction_above"].value == pytest.approx(1 / 3)
    assert res["mask_isolated_visible"].value == 1.0
    assert res["mask_isolated_hidden"].value == 0.0
    assert res["mask_mean_visible_degree"].value == pytest.approx(2 / 3)
    assert res["mask_mean_hidden_degree"].value == 2.0


def test_moments_of_exact_samples_against_enumeration():
    """Moment errors of the model's Gibbs samples against exact draws of the model: the mean of n
    i.i.d. Bernoulli draws has variance at most 0.25 / n; 50 sweeps of this weakly coupled model
    are far longer than its mixing time, so the chains' end states are independent draws."""
    from dilution import exact
    from studies.data import StudyData

    rbm = RBM.random(8, 3, weight_scale=0.5, bias_scale=0.5, seed=2)
    # The test set: 20000 exact draws of the model (enumeration of its 256 visible states).
    n = 4000
    ev = EvaluationSpec(metrics=("moments",), n_samples=n, n_sweeps=50)
    states = np.array([[(i >> k) & 1 for k in range(8)] for i in range(256)], dtype=np.float64)
    logp = exact.log_likelihood(rbm, states)
    counts = np.random.default_rng(0).multinomial(20000, np.exp(logp) / np.exp(logp).sum())
    data = np.repeat(states, counts, axis=0)
    res = evaluate(ev, rbm, StudyData(data, data, data, math.nan, math.nan), seed=0).metrics
    # two independent sets of n and 20000 draws: rms difference of means <= 4 sqrt(0.25/n + 0.25/20000)
    assert res["moment_mean_rmse"].value <= 4 * math.sqrt(0.25 / n + 0.25 / 20000)


def _raw():
    return builtin_spec("smoke").to_dict()


@pytest.mark.parametrize(
    "evaluation, names",
    [
        ({"metrics": ["moments", "speed"]}, ["evaluation.metrics[1]", "'speed'", "'mixing'"]),
        ({"metrics": "moments"}, ["evaluation.metrics", "a list of metric names"]),
        ({"metrics": ["mask", "mask"]}, ["evaluation.metrics", "distinct"]),
        ({"metrics": ["classifier"]}, ["evaluation.metrics", "'classifier'", "'mnist'"]),
        ({"n_samples": 1}, ["evaluation.n_samples", ">= 2"]),
        ({"mixing_sweeps": 1}, ["evaluation.mixing_sweeps", ">= 2"]),
        ({"coupling_threshold": -0.1}, ["evaluation.coupling_threshold", ">= 0"]),
        ({"ais_chains": 1}, ["evaluation.ais_chains", ">= 2"]),
        ({"ais_reverse": "false"}, ["evaluation.ais_reverse", "true or false", "'false'"]),
        ({"ais_raise": -1}, ["evaluation.ais_raise", "an integer >= 0", "-1"]),
        ({"ais_raise": True}, ["evaluation.ais_raise", "an integer", "True"]),
        ({"ais_raise": 1.5}, ["evaluation.ais_raise", "an integer", "1.5"]),
        ({"ais_budget": 3}, ["evaluation", "'ais_budget'", "allowed keys"]),
    ],
)
def test_malformed_evaluation_fails_naming_the_key(evaluation, names):
    raw = _raw()
    raw["evaluation"] = dict(raw["evaluation"], **evaluation)
    with pytest.raises(SpecError) as err:
        spec_from_dict(raw)
    for name in names:
        assert name in str(err.value)


def test_exact_likelihood_of_a_model_too_large_fails_before_compute():
    raw = _raw()
    raw["data"] = dict(raw["data"], n_visible=30)
    raw["n_hidden"] = [26]
    raw["evaluation"] = {"log_likelihood": "exact", "metrics": list(METRICS[1:])}
    with pytest.raises(SpecError, match=r"evaluation\.log_likelihood: expected 'ais' for n_hidden \[26\]"):
        spec_from_dict(raw)


def _interrupted_kernel(monkeypatch, at: int):
    """AIS kernel calls of one beta each, counted in ``calls``; call ``at`` raises KeyboardInterrupt.
    Returns the real kernel and ``calls``."""
    from dilution import ais

    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)
    kernel, calls = ais.ais_kernel, []

    def counted(*args):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return kernel(*args)

    monkeypatch.setattr(ais, "ais_kernel", counted)
    return kernel, calls


def test_an_interrupted_ais_evaluation_continues_from_its_checkpoint_and_a_stale_one_is_replaced(tmp_path,
                                                                                               monkeypatch):
    from dilution import ais

    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    spec = EvaluationSpec(log_likelihood="ais", ais_chains=20, ais_betas=300, ais_reverse=True)
    reference = evaluate(spec, rbm, data, seed=0)
    checkpoint = tmp_path / "ais.npz"
    kernel, calls = _interrupted_kernel(monkeypatch, 400)  # in the reverse run (the forward one takes 299 calls)
    with pytest.raises(KeyboardInterrupt):
        evaluate(spec, rbm, data, seed=0, ais_checkpoint=checkpoint)
    calls.clear()
    resumed = evaluate(spec, rbm, data, seed=0, ais_checkpoint=checkpoint)
    assert len(calls) == 2 * 299 - 399  # the reverse run's remaining steps only
    assert {k: m.value for k, m in resumed.metrics.items()} == {k: m.value for k, m in reference.metrics.items()}
    # the file now belongs to this model: another model's evaluation replaces it instead of failing
    monkeypatch.setattr(ais, "ais_kernel", kernel)
    other = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=4)
    assert evaluate(spec, other, data, seed=0, ais_checkpoint=checkpoint).metrics == \
        evaluate(spec, other, data, seed=0).metrics


def test_an_evaluation_reports_its_ais_raise_and_sampling_progress_on_request(capsys):
    # a long AIS evaluation (hours at 784 x 500, 160k betas) used to run without a word
    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    spec = EvaluationSpec(log_likelihood="ais", ais_chains=20, ais_betas=200, ais_raise=2, metrics=("moments",),
                          n_samples=10, n_sweeps=5)
    quiet = evaluate(spec, rbm, data, seed=1)
    assert capsys.readouterr().err == ""
    loud = evaluate(spec, rbm, data, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "AIS forward" in err and "RAISE" in err and "Gibbs" in err, err
    assert {k: m.value for k, m in loud.metrics.items()} == {k: m.value for k, m in quiet.metrics.items()}


def test_an_evaluation_interrupted_in_raise_continues_it_and_remove_checkpoints_clears_both(tmp_path, monkeypatch):
    from studies.evaluate import raise_checkpoint, remove_checkpoints

    data = load_data(builtin_spec("smoke").data)
    rbm = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=3)
    spec = EvaluationSpec(log_likelihood="ais", ais_chains=20, ais_betas=200, ais_raise=2)
    reference = evaluate(spec, rbm, data, seed=1)
    checkpoint = tmp_path / "point.ais.npz"
    kernel, calls = _interrupted_kernel(monkeypatch, 199 + 60)  # the forward run takes 199 calls: this one is in RAISE
    with pytest.raises(KeyboardInterrupt):
        evaluate(spec, rbm, data, seed=1, ais_checkpoint=checkpoint)
    assert checkpoint.exists() and raise_checkpoint(checkpoint) == tmp_path / "point.ais-raise.npz"
    assert raise_checkpoint(checkpoint).exists()
    calls.clear()
    resumed = evaluate(spec, rbm, data, seed=1, ais_checkpoint=checkpoint)
    assert len(calls) == 199 - 59  # RAISE's remaining steps only: the forward run was finished
    assert {k: m.value for k, m in resumed.metrics.items()} == {k: m.value for k, m in reference.metrics.items()}
    # both files now belong to this model: another model's evaluation replaces them instead of failing
    from dilution import ais

    monkeypatch.setattr(ais, "ais_kernel", kernel)
    other = RBM.random(16, 6, weight_scale=1.0, bias_scale=0.5, seed=4)
    assert evaluate(spec, other, data, seed=1, ais_checkpoint=checkpoint).metrics == \
        evaluate(spec, other, data, seed=1).metrics
    remove_checkpoints(checkpoint)
    assert not list(tmp_path.iterdir())
    remove_checkpoints(checkpoint)  # nothing to remove is fine
