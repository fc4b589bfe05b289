from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.stats import t as student_t

import dilution
from analysis.aats import adversarial_accuracy
from analysis.likelihood import ais_log_likelihood, doubled_seed
from analysis.moments import moment_errors
from analysis.pca import pca_comparison
from analysis.pseudolikelihood import pseudo_log_likelihood
from analysis.reconstruction import reconstruction_error
from dilution import ais, exact, schedules
from dilution.cli import build_parser, main
from dilution.model import RBM


@pytest.fixture()
def saved(tmp_path):
    rbm = dilution.RBM.random(12, 5, connectivity=0.5, weight_scale=1.5, bias_scale=0.5, seed=0)
    data = dilution.sample(rbm, 300, 50, seed=1).astype(np.uint8)
    dilution.save(rbm, tmp_path / "m.nc")
    dilution.save(xr.Dataset({"states": (("sample", "visible"), data)}), tmp_path / "test.nc")
    return rbm, data, tmp_path


def test_evaluate_reports_the_exact_log_likelihood_and_every_metric(saved, capsys):
    rbm, data, tmp = saved
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "300", "--n-sweeps", "20",
            "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = dilution.load(tmp / "m-evaluation.nc")
    assert float(result["exact_mean_log_likelihood"]) == pytest.approx(exact.log_likelihood(rbm, data).mean(), rel=1e-12)
    # Every metric is the one its function computes on the same data and the same Gibbs samples
    # (evaluate draws them with its seed, 0).
    x = data.astype(np.float64)
    samples = dilution.sample(rbm, 300, 20, seed=0).astype(np.float64)
    expected = {
        "pll": pseudo_log_likelihood(rbm, x, method="stochastic", seed=0),
        "reconstruction": reconstruction_error(rbm, x),
        "moments": moment_errors(samples, x),
        "pca": pca_comparison(samples, x),
        "aats": adversarial_accuracy(x, samples),
    }
    for prefix, ds in expected.items():
        for name in ds.data_vars:
            np.testing.assert_array_equal(result[f"{prefix}_{name}"].values, ds[name].values, err_msg=f"{prefix}_{name}")
    # proxies are labelled as such in the printout
    assert "pll_mean_pseudo_log_likelihood" in printed and "(proxy)" in printed
    assert result.attrs["seed"] == 0 and "dilution_version" in result.attrs


def test_dilution_command_line_has_evaluate():
    # evaluate reaches the engine's command line only through the dilution.commands entry point.
    # (The help text names every command in its examples anyway, so parse instead of searching it.)
    args = build_parser().parse_args(["evaluate", "m.nc", "--data", "d.nc"])
    assert args.command == "evaluate" and args.func.__module__ == "analysis.cli"


def test_evaluate_rejects_data_of_the_wrong_width(saved, capsys):
    _, _, tmp = saved
    dilution.save(xr.Dataset({"states": (("sample", "visible"), np.zeros((4, 7), np.uint8))}), tmp / "bad.nc")
    assert main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "bad.nc"), "--quiet"]) == 2
    assert "7 visible units, the model has 12" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-data", "0"], "--max-data must be an integer >= 1, got 0"),
        (["--n-samples", "0"], "--n-samples must be an integer >= 1, got 0"),
        (["--ais-chains", "1"], "--ais-chains must be an integer >= 2, got 1"),  # AIS needs two for an error bar
        (["--ais-betas", "3"], "--ais-betas must be an integer >= 4 with --ais-schedule classic, got 3"),
        (["--ais-schedule", "linear", "--ais-betas", "1"],
         "--ais-betas must be an integer >= 2 with --ais-schedule linear, got 1"),
        (["--ais-resample", "1.5"], "--ais-resample must be a number in [0, 1) (0: plain AIS; 0.5 is usual), got 1.5"),
        (["--ais-resample", "nan"], "--ais-resample must be a number in [0, 1)"),
        (["--ais-resample", "0.5", "--ais-groups", "3", "--ais-chains", "100"],
         "--ais-chains (100) must be a multiple of --ais-groups (3) with at least 2 chains per population when "
         "--ais-resample > 0"),
        (["--ais-groups", "1"], "--ais-groups must be an integer >= 2, got 1"),
        (["--ais-doublings", "0"], "--ais-doublings must be an integer >= 1, got 0"),
        (["--ais-doubling", "--ais-doublings", "2"],
         "--ais-doubling is one doubling and --ais-doublings 2 asks for 2; give one of them"),
        (["--ais-checkpoint", "."], "--ais-checkpoint . must be a file in an existing folder"),
        (["--ais-checkpoint", "no-such-folder/ais.npz"],
         "--ais-checkpoint no-such-folder/ais.npz must be a file in an existing folder"),
    ],
)
def test_evaluate_checks_flags_before_computing_anything(saved, capsys, flags, message):
    import os
    import warnings

    _, _, tmp = saved
    before = sorted(os.listdir(tmp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Mean of empty slice" from metrics run on no data
        assert main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp)) == before


def test_evaluate_takes_a_run_folder_and_records_absolute_paths(saved, monkeypatch):
    _, _, tmp = saved
    (tmp / "run").mkdir()
    (tmp / "m.nc").rename(tmp / "run" / "model.nc")
    monkeypatch.chdir(tmp)
    assert main(["evaluate", "run", "--data", "test.nc", "--n-samples", "20", "--n-sweeps", "2", "--quiet"]) == 0
    attrs = dilution.load(tmp / "run" / "model-evaluation.nc").attrs
    assert attrs["model"] == str(tmp / "run" / "model.nc") and str(tmp / "test.nc") in attrs["data"]


def test_evaluate_says_how_to_get_a_likelihood_it_cannot_enumerate(tmp_path, capsys):
    rbm = dilution.RBM.random(30, 30, connectivity=0.5, weight_scale=0.5, seed=0)
    dilution.save(rbm, tmp_path / "big.nc")
    data = dilution.sample(rbm, 50, 10, seed=1).astype(np.uint8)
    dilution.save(xr.Dataset({"states": (("sample", "visible"), data)}), tmp_path / "d.nc")
    argv = ["evaluate", str(tmp_path / "big.nc"), "--data", str(tmp_path / "d.nc"), "--n-samples", "20",
            "--n-sweeps", "2", "--quiet"]
    assert main(argv) == 0
    assert f"more than {exact.MAX_UNITS} for exact enumeration; add --ais" in capsys.readouterr().out


def test_evaluate_names_ais_options_that_no_ais_run_uses(saved, tmp_path, capsys):
    # they were dropped without a word: on an enumerable model log Z is exact, and a larger model
    # without --ais got no likelihood at all
    _, _, folder = saved
    argv = ["evaluate", str(folder / "m.nc"), "--data", str(folder / "test.nc"), "--n-samples", "20",
            "--n-sweeps", "2", "--quiet"]
    assert main([*argv, "--output", str(folder / "plain.nc")]) == 0
    capsys.readouterr()
    assert main([*argv, "--ais-betas", "1000", "--ais-doubling", "--output", str(folder / "noted.nc")]) == 0
    assert "log Z is exact for this model: --ais-betas 1000, --ais-doubling not used" in capsys.readouterr().out
    plain, noted = dilution.load(folder / "plain.nc"), dilution.load(folder / "noted.nc")
    assert float(noted["exact_log_z"]) == float(plain["exact_log_z"]) and not any(
        name.startswith("ais_") for name in noted.data_vars)
    big = dilution.RBM.random(30, 30, connectivity=0.5, weight_scale=0.5, seed=0)
    dilution.save(big, tmp_path / "big.nc")
    dilution.save(xr.Dataset({"states": (("sample", "visible"), np.zeros((5, 30), np.uint8))}), tmp_path / "d.nc")
    assert main(["evaluate", str(tmp_path / "big.nc"), "--data", str(tmp_path / "d.nc"), "--ais-resample", "0.5",
                 "--ais-schedule", "linear", "--output", str(tmp_path / "e.nc")]) == 2
    assert ("--ais-schedule linear, --ais-resample 0.5 set up AIS, which runs only with --ais: add --ais (this "
            "model's smaller layer has 30 units") in capsys.readouterr().err
    assert not (tmp_path / "e.nc").exists()


def test_evaluate_help_states_the_enumeration_limit_in_use(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    assert f"at most {exact.MAX_UNITS} units (dilution.exact.MAX_UNITS)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ais-schedule", "foo"], "argument --ais-schedule: invalid choice: 'foo' (choose from 'classic', 'linear')"),
        (["--ais-resample", "half"], "argument --ais-resample: invalid float value: 'half'"),
        (["--ais-groups", "2.5"], "argument --ais-groups: invalid int value: '2.5'"),
    ],
)
def test_evaluate_rejects_malformed_ais_flags_with_a_usage_line(saved, capsys, flags, message):
    _, _, tmp = saved
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--quiet", "--ais", *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ais_schedule": "foo"}, "ais_schedule must be one of classic, linear, got 'foo'"),
        ({"ais_resample": 1.5}, "ais_resample must be a number in [0, 1)"),
        ({"ais_resample": 0.5, "ais_groups": 3}, "ais_chains (100) must be a multiple of ais_groups (3)"),
        ({"ais_betas": 3}, "ais_betas must be an integer >= 4, got 3"),
        ({"ais_doubling": -1}, "ais_doubling must be an integer >= 0, got -1"),
    ],
)
def test_evaluate_function_names_its_keyword_in_errors(saved, options, message):
    from analysis.cli import evaluate

    rbm, data, _ = saved
    with pytest.raises(ValueError) as error:
        evaluate(rbm, data.astype(np.float64), n_samples=10, n_sweeps=1, seed=0, ais=True, progress=False, **options)
    assert message in str(error.value)


# --- AIS on models too large for evaluate to enumerate, with a log Z known exactly ------------


def _with_isolated_hidden(core: RBM, n_hidden: int, seed: int) -> tuple[RBM, float]:
    """``core`` with ``n_hidden - core.n_hidden`` more hidden units connected to nothing, and its exact log Z.

    An isolated hidden unit j sums out to a factor ``1 + e^{b_j}`` of Z, so log Z is that of ``core``
    (enumerated) plus ``sum_j softplus(b_j)``: exact although the model's smaller layer has more
    units than ``evaluate`` enumerates, so that it runs AIS.
    """
    extra = np.random.default_rng(seed).normal(0.0, 1.0, n_hidden - core.n_hidden)
    weights = np.zeros((core.n_visible, n_hidden))
    weights[:, : core.n_hidden] = core.weights
    mask = np.zeros((core.n_visible, n_hidden), dtype=bool)
    mask[:, : core.n_hidden] = core.mask
    rbm = RBM(weights, core.visible_bias, np.concatenate([core.hidden_bias, extra]), mask)
    return rbm, exact.log_partition(core) + float(np.logaddexp(0.0, extra).sum())


def test_isolated_hidden_units_add_their_softplus_to_log_z():
    core = RBM.random(7, 3, connectivity=0.7, weight_scale=2.0, bias_scale=0.5, seed=4)
    rbm, log_z = _with_isolated_hidden(core, 6, seed=5)
    assert log_z == pytest.approx(exact.log_partition(rbm), abs=1e-12)


# evaluate enumerates up to MAX_UNITS units in the smaller layer; one more and it needs --ais
N_UNITS = exact.MAX_UNITS + 1


def _save(tmp, rbm: RBM, data: np.ndarray) -> np.ndarray:
    dilution.save(rbm, tmp / "m.nc")
    dilution.save(xr.Dataset({"states": (("sample", "visible"), data.astype(np.uint8))}), tmp / "test.nc")
    return data.astype(np.float64)  # what evaluate reads back


def _evaluate_ais(tmp, *flags: str) -> xr.Dataset:
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "20", "--n-sweeps", "2",
            "--quiet", "--ais", *flags, "--overwrite"]
    assert main(argv) == 0
    return dilution.load(tmp / "m-evaluation.nc")


def _converged(result: xr.Dataset) -> int:
    """The doubling check recomputed from the recorded estimates."""
    bound = 3 * math.hypot(float(result["ais_log_z_std"]), float(result["ais_log_z_doubled_std"]))
    return int(abs(float(result["ais_log_z_shift"])) <= bound)


@pytest.fixture()
def easy(tmp_path):
    """A random 26 x 26 RBM (16 hidden units coupled), data sampled from it, and its exact log Z."""
    core = RBM.random(N_UNITS, 16, connectivity=1.0, weight_scale=2.0, bias_scale=0.5, seed=0)
    rbm, log_z = _with_isolated_hidden(core, N_UNITS, seed=1)
    data = _save(tmp_path, rbm, dilution.sample(rbm, 300, 50, seed=1))
    return rbm, data, log_z, tmp_path


def test_evaluate_ais_with_resampling_agrees_with_the_exact_log_z(easy):
    rbm, data, log_z, tmp = easy
    result = _evaluate_ais(tmp, "--ais-betas", "1000", "--ais-resample", "0.5", "--ais-groups", "10")
    attrs = result["ais_log_z"].attrs
    assert (attrs["ais_n_betas"], attrs["ais_schedule"], attrs["ais_resample"], attrs["ais_n_groups"]) == (
        1000, "classic", 0.5, 10)
    # With resampling, log_z_std is the delta-method error over the 10 populations' independent
    # estimates, so (estimate - truth) / std is approximately Student-t with 9 degrees of freedom:
    # two-sided at false-alarm probability 1e-3 (t = 4.78), plus the Jensen bias of the log of a
    # mean, -se^2 / 2.
    se = float(result["ais_log_z_std"])
    assert abs(float(result["ais_log_z"]) - log_z) < student_t.isf(1e-3 / 2, df=10 - 1) * se + se**2 / 2
    # the free energies are exact, so the log-likelihood carries log Z's error and nothing else
    np.testing.assert_allclose(result["ais_log_likelihood"].values + float(result["ais_log_z"]),
                               exact.log_likelihood(rbm, data, log_z=log_z) + log_z, rtol=0, atol=1e-9)


def test_evaluate_ais_schedule_gives_the_schedules_betas(easy):
    rbm, data, _, tmp = easy
    estimates = {}
    for shape, make in (("linear", schedules.linear), ("classic", schedules.classic)):
        result = _evaluate_ais(tmp, "--ais-schedule", shape, "--ais-betas", "200", "--ais-chains", "20",
                               "--ais-resample", "0.5", "--ais-groups", "5")
        # the same seed (evaluate's, 0) and options with that schedule give the same numbers, bit for bit
        ref = ais_log_likelihood(rbm, data, n_chains=20, seed=0, betas=make(200), base_data=data, resample=0.5,
                                 n_groups=5)
        for name in ("log_z", "log_z_std", "mean_log_likelihood_lower"):
            assert float(result[f"ais_{name}"]) == float(ref[name]), (shape, name)
        assert (result["ais_log_z"].attrs["ais_n_betas"], result["ais_log_z"].attrs["ais_schedule"]) == (200, shape)
        estimates[shape] = float(result["ais_log_z"])
    assert estimates["linear"] != estimates["classic"]  # the flag reaches the schedule


def test_evaluate_ais_keeps_the_classic_14500_betas_and_doubles_them_to_29000(easy):
    rbm, data, _, tmp = easy
    result = _evaluate_ais(tmp, "--ais-chains", "2", "--ais-doubling")  # two chains keep 43,500 steps cheap
    attrs = result["ais_log_z"].attrs
    assert (attrs["ais_n_betas"], attrs["ais_n_betas_doubled"], attrs["ais_schedule"]) == (14_500, 29_000, "classic")
    # without --ais-betas the estimate is the one evaluate gave before --ais-schedule existed:
    # dilution.ais's own default, the classic 14,500-beta schedule
    before = ais_log_likelihood(rbm, data, n_chains=2, seed=0, base_data=data)
    assert float(result["ais_log_z"]) == float(before["log_z"])
    doubled = ais.log_partition(rbm, n_chains=2, betas=schedules.classic(29_000), data=data, seed=doubled_seed(0),
                                reverse=False)
    assert float(result["ais_log_z_doubled"]) == float(doubled["log_z"])
    assert float(result["ais_log_z_doubled_std"]) == float(doubled["log_z_std"])
    assert doubled_seed(0) != 0 and attrs["ais_seed_doubled"] == doubled_seed(0)  # a stream of its own


def test_evaluate_ais_doubling_passes_a_converged_log_z(easy, capsys):
    _, _, log_z, tmp = easy
    result = _evaluate_ais(tmp, "--ais-betas", "1000", "--ais-resample", "0.5", "--ais-doubling")
    shift = float(result["ais_log_z_doubled"]) - float(result["ais_log_z"])
    assert float(result["ais_log_z_shift"]) == shift
    assert int(result["ais_log_z_converged"]) == _converged(result) == 1
    # and it is right to: both estimates are within the bound of the test against the exact log Z above
    for name in ("ais_log_z", "ais_log_z_doubled"):
        se = float(result[f"{name}_std"])
        assert abs(float(result[name]) - log_z) < student_t.isf(1e-3 / 2, df=10 - 1) * se + se**2 / 2, name
    assert "log Z moved" not in capsys.readouterr().err
    for name in ("ais_log_z_doubled", "ais_log_z_doubled_std", "ais_log_z_shift", "ais_log_z_converged"):
        assert {"long_name", "units"} <= set(result[name].attrs), name
    assert result["ais_log_z_converged"].attrs["units"] == "1"


def test_evaluate_ais_doubling_flags_an_under_resolved_log_z(tmp_path, capsys):
    # One hidden unit coupled to every visible unit by +6: the all-on states carry nearly all the
    # mass, while the base-rate model, fitted to sparse data (10 % of units on), sits by all-off.
    # Along the annealing path the mass jumps from one mode to the other, a sharp transition that
    # five classic betas cannot resolve.
    n = N_UNITS
    core = RBM(np.full((n, 1), 6.0), np.full(n, -3.0), np.array([-6.0 * n / 4]))
    rbm, log_z = _with_isolated_hidden(core, N_UNITS, seed=1)
    _save(tmp_path, rbm, np.random.default_rng(2).random((100, n)) < 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ais.DegenerateWeightsWarning)  # five betas: degenerate weights, as intended
        result = _evaluate_ais(tmp_path, "--ais-betas", "5", "--ais-doubling")
    single, se = float(result["ais_log_z"]), float(result["ais_log_z_std"])
    shift = float(result["ais_log_z_shift"])
    assert int(result["ais_log_z_converged"]) == _converged(result) == 0
    # The flag is right: the single estimate misses the exact log Z by far more than its error bar
    # (z > 10 where 3.3 is the 1e-3 two-sided false-alarm level), and the finer schedule moves
    # towards the truth (up: AIS underestimates), by more than the 3 combined standard errors.
    assert log_z - single > 10 * se
    assert shift > 3 * math.hypot(se, float(result["ais_log_z_doubled_std"]))
    err = capsys.readouterr().err
    assert (f"warning: log Z moved by {shift:+.3g} nats when the betas doubled: not converged at this budget; "
            "use more betas (5 -> 10 betas;") in err


def test_evaluate_ais_doubling_k_times_records_the_series_and_flags_it(tmp_path, capsys):
    # the under-resolved model above, doubled twice: 5, 10 and 20 betas, every run independent
    n = N_UNITS
    core = RBM(np.full((n, 1), 6.0), np.full(n, -3.0), np.array([-6.0 * n / 4]))
    rbm, _ = _with_isolated_hidden(core, N_UNITS, seed=1)
    data = _save(tmp_path, rbm, np.random.default_rng(2).random((100, n)) < 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ais.DegenerateWeightsWarning)
        result = _evaluate_ais(tmp_path, "--ais-betas", "5", "--ais-doublings", "2")
        direct = ais_log_likelihood(rbm, data, n_chains=100, seed=0, betas=schedules.classic(5), base_data=data,
                                    doubled_betas=[schedules.classic(10), schedules.classic(20)])
    np.testing.assert_array_equal(result["ais_n_betas"].values, [5, 10, 20])
    for name in ("log_z_series", "log_z_series_std", "log_z_doubled", "log_z_shift", "log_z_converged",
                 "mean_log_likelihood_doubled"):
        np.testing.assert_array_equal(result[f"ais_{name}"].values, direct[name].values, err_msg=name)
    assert result["ais_log_z_series"].values[0] == float(result["ais_log_z"])
    assert result["ais_log_z_doubled"].attrs["ais_n_betas_doubled"] == 20
    assert int(result["ais_log_z_converged"]) == 0
    err = capsys.readouterr().err
    assert "warning: log Z moved along the doublings of the betas: not converged at these budgets" in err
    assert f"20: {float(result['ais_log_z_doubled']):.2f}" in err


def test_evaluate_ais_interrupted_with_a_checkpoint_continues_to_the_uninterrupted_numbers(easy, capsys,
                                                                                       monkeypatch):
    _, _, _, tmp = easy
    flags = ("--ais-betas", "200", "--ais-chains", "20", "--ais-resample", "0.5", "--ais-groups", "5",
             "--ais-doubling")
    reference = _evaluate_ais(tmp, *flags)
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)  # a kernel call per beta, so that Ctrl-C can land anywhere
    kernel, calls = ais.ais_kernel, []

    def interrupted(*args):
        calls.append(1)
        # after the forward and reverse runs (199 calls each), in the doubled run: 399 steps in 200 calls, since
        # resampling walks the schedule in blocks of ceil(399 / RESAMPLE_CHECKS) = 2 steps
        if len(calls) == 2 * 199 + 150:
            raise KeyboardInterrupt
        return kernel(*args)

    monkeypatch.setattr(ais, "ais_kernel", interrupted)
    checkpoint = tmp / "ais.npz"
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "20", "--n-sweeps", "2",
            "--quiet", "--ais", *flags, "--ais-checkpoint", str(checkpoint)]
    (tmp / "m-evaluation.nc").unlink()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"the AIS chains are saved in {checkpoint}; the same command continues from them" in err
    assert checkpoint.exists() and (tmp / "ais-doubled.npz").exists() and not (tmp / "m-evaluation.nc").exists()

    calls.clear()
    monkeypatch.setattr(ais, "ais_kernel", lambda *args: (calls.append(1), kernel(*args))[1])
    assert main(argv) == 0
    assert len(calls) == 200 - 149  # only the doubled run's remaining blocks ran
    resumed = dilution.load(tmp / "m-evaluation.nc")
    for name in reference.data_vars:
        if name.startswith("ais_"):
            xr.testing.assert_identical(resumed[name], reference[name])
    # another seed is another run: refused in one line, without the hint to run it again
    capsys.readouterr()
    assert main([*argv, "--seed", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"dilution evaluate: error: --ais-checkpoint {checkpoint} belongs to another AIS run (different seed:" in err
    assert "continues" not in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_during_evaluate_ais_waits_for_the_kernel_call_and_keeps_its_chunk(easy, capsys, monkeypatch,
                                                                                 ctrl_c_inside):
    """A SIGINT that arrives while an AIS kernel runs used to raise wherever Python next looked (inside
    numba's dispatcher: a segmentation fault on a 30 x 30 model, no checkpoint); now the call finishes,
    its chunk is offered to the checkpoint, and the command stops there with 130."""
    rbm, _, _, tmp = easy
    # 50 betas per kernel call of 20 chains (ais._run's chunk)
    monkeypatch.setattr(ais, "WORK_PER_SECOND", 50 * 20 * (rbm.n_visible + rbm.n_hidden) * rbm.n_hidden)
    finished = ctrl_c_inside(ais, "ais_kernel")
    checkpoint = tmp / "ais.npz"
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "20", "--n-sweeps", "2",
            "--quiet", "--ais", "--ais-betas", "1000", "--ais-chains", "20", "--ais-checkpoint", str(checkpoint),
            "-o", str(tmp / "e.nc")]
    assert main(argv) == 130
    assert len(finished) == 1  # the call in flight finished, and no other began
    with np.load(checkpoint) as saved:
        assert int(saved["forward_step"]) == 50  # the interrupted call's chunk is kept
    assert "interrupted" in capsys.readouterr().err and not (tmp / "e.nc").exists()


@pytest.mark.parametrize("output", ["m.nc", "test.nc"])
def test_evaluate_refuses_to_write_over_its_own_input(saved, capsys, output):
    # both were replaced by the evaluation without a word
    _, _, tmp = saved
    before = (tmp / output).read_bytes()
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "10", "--n-sweeps", "2",
            "--quiet", "-o", str(tmp / output)]
    assert main([*argv, "--overwrite"]) == 2
    assert f"--output {tmp / output} is the command's input" in capsys.readouterr().err
    assert (tmp / output).read_bytes() == before


def test_evaluate_refuses_an_existing_output_without_overwrite(saved, capsys):
    _, _, tmp = saved
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "10", "--n-sweeps", "2",
            "--quiet"]
    (tmp / "m-evaluation.nc").write_bytes(b"an earlier evaluation")
    assert main(argv) == 2
    assert "m-evaluation.nc exists; give --overwrite to replace it" in capsys.readouterr().err
    assert (tmp / "m-evaluation.nc").read_bytes() == b"an earlier evaluation"
    assert main([*argv, "--overwrite"]) == 0
    assert "mean_pseudo_log_likelihood" in str(list(dilution.load(tmp / "m-evaluation.nc").data_vars))


@pytest.mark.parametrize("flag", ["-o", "--classifier"])
def test_evaluate_checks_the_folders_it_writes_to_before_computing(saved, capsys, flag):
    # an output in a missing folder failed after the evaluation (or after training a classifier)
    _, _, tmp = saved
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--quiet", flag, str(tmp / "no" / "x.nc")]
    assert main(argv) == 2
    assert f"{flag if flag != '-o' else '--output'} {tmp / 'no' / 'x.nc'}: folder {tmp / 'no'} does not exist" in \
        capsys.readouterr().err


def test_the_toolkits_warnings_are_one_line_naming_the_command(easy, capsys):
    # a degenerate AIS run's warning came with Python's source file, line number and code line
    _, _, _, tmp = easy
    argv = ["evaluate", str(tmp / "m.nc"), "--data", str(tmp / "test.nc"), "--n-samples", "20", "--n-sweeps", "2",
            "--quiet", "--ais", "--ais-betas", "5", "--ais-schedule", "linear", "--overwrite"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "degenerate" in line]
    assert lines and all(line.startswith("dilution evaluate: warning: ") for line in lines) and ".py:" not in err

