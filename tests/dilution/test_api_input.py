"""Bad input at the public boundary of the engine is refused by name, before any work: the cases a
bad-input audit found reaching numpy, pathlib or xarray, or changing a result without a word."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dilution import ais, exact, replicas, tempering
from dilution.deep_r import DeepR
from dilution.model import RBM


@pytest.fixture(scope="module")
def rbm():
    return RBM.random(8, 4, connectivity=0.5, weight_scale=1.0, bias_scale=0.5, seed=0)


@pytest.fixture(scope="module")
def data():
    return (np.random.default_rng(1).random((20, 8)) < 0.4).astype(np.float64)


@pytest.mark.parametrize("max_units", ["25", None, 3.5, 0])
def test_exact_enumeration_checks_max_units(rbm, data, max_units):
    # a string or None reached "'>' not supported between 'int' and 'str'"; 3.5 was accepted
    for call in (lambda: exact.log_partition(rbm, max_units=max_units),
                 lambda: exact.model_moments(rbm, max_units=max_units),
                 lambda: exact.gradient(rbm, data, max_units=max_units)):
        with pytest.raises(ValueError, match=f"^max_units must be an integer >= 1, got {max_units!r}$"):
            call()


@pytest.mark.parametrize("log_z", [float("nan"), float("inf"), np.arange(20.0)])
def test_exact_log_likelihood_checks_a_given_log_z(rbm, data, log_z):
    # NaN gave all NaN, inf all -inf, an array was applied row by row
    with pytest.raises((ValueError, TypeError), match="^log_z must be"):
        exact.log_likelihood(rbm, data, log_z=log_z)
    log_z_value = exact.log_partition(rbm)
    assert np.array_equal(exact.log_likelihood(rbm, data, log_z=log_z_value), exact.log_likelihood(rbm, data))


@pytest.mark.parametrize("n_units", [-1, 2.5, True])
def test_all_states_checks_its_count(n_units):
    # -1 returned an empty (1, 0) array; 2.5 reached numpy's right_shift; True was accepted
    with pytest.raises(ValueError, match=f"^n_units must be an integer >= 0, got {n_units!r}$"):
        exact.all_states(n_units)


def test_ais_log_likelihood_checks_log_z_and_base_data(rbm, data):
    with pytest.raises(ValueError, match="^log_z must be finite, got nan$"):
        ais.log_likelihood(rbm, data, log_z=float("nan"))
    with pytest.raises(ValueError, match=r"^log_z Dataset lacks \['log_z', 'log_z_std'\]: expected a result of "
                                         r"log_partition \(or a number\)$"):
        ais.log_likelihood(rbm, data, log_z=xr.Dataset())
    # the message named `data`, which was fine
    with pytest.raises(ValueError, match=r"^base_data must have shape \(n_samples, 8\), got \(5, 9\)$"):
        ais.log_likelihood(rbm, data, n_chains=10, seed=0, base_data=np.ones((5, 9)))
    with pytest.raises(ValueError, match=r"^base_data must have shape \(n_samples, 8\), got \(5, 9\)$"):
        ais.raise_log_likelihood(rbm, data, seed=0, base_data=np.ones((5, 9)))
    exact_log_z = exact.log_partition(rbm)
    given = ais.log_likelihood(rbm, data, log_z=exact_log_z)
    assert float(given["log_likelihood"]) == pytest.approx(exact.log_likelihood(rbm, data).mean(), rel=1e-12)


def test_tempering_refuses_a_ladder_with_n_temps_and_a_non_bool_adapt(rbm):
    # betas with n_temps ran the 3 given temperatures, n_temps ignored; adapt="no" adapted the ladder
    with pytest.raises(ValueError, match=r"^give a ladder \(betas\) or the geometric ladder's n_temps / beta_min, "
                                         r"not both: got betas and n_temps=5$"):
        tempering.sample(rbm, 4, 5, seed=0, betas=[0.2, 0.6, 1.0], n_temps=5)
    with pytest.raises(ValueError, match="not both: got betas and beta_min=0.01$"):
        tempering.sample(rbm, 4, 5, seed=0, betas=[0.2, 0.6, 1.0], beta_min=0.01)
    with pytest.raises(TypeError, match="^adapt must be True or False, got 'no'$"):
        tempering.sample(rbm, 4, 5, seed=0, burn_in=20, adapt="no")


@pytest.mark.parametrize("option, value, message", [
    ("weight_scale", float("nan"), "weight_scale must be finite, got nan"),  # blamed `weights`
    ("weight_scale", -1.0, "weight_scale must be a finite number >= 0, got -1.0"),
    ("bias_scale", -2.0, "bias_scale must be a finite number >= 0, got -2.0"),
    ("weight_scale", "x", "weight_scale must be a number, got 'x'"),  # numpy's ufunc 'multiply'
    ("dtype", "foo", "dtype must be float32 or float64, got 'foo'"),  # numpy's "data type 'foo' not understood"
])
def test_a_random_rbm_names_a_bad_scale_or_dtype(option, value, message):
    with pytest.raises((ValueError, TypeError), match=f"^{message}$"):
        RBM.random(8, 4, seed=0, **{option: value})


def test_run_replicas_checks_what_it_resumes(data, tmp_path):
    rule = DeepR(k=8, alpha=0.1, temperature=0.01)
    run = replicas.run_replicas(rule, 2, data, 4, 2, learning_rate=0.01, seed=0, init=(8, 4))
    # an object that is not a Dataset reached `.sizes` (AttributeError); an empty one KeyError 'visible'
    with pytest.raises(TypeError, match="^resume must be a Dataset returned by run_replicas"):
        replicas.run_replicas(rule, 2, data, 4, 2, learning_rate=0.01, seed=0, resume=5)
    with pytest.raises(ValueError, match="^resume must be a Dataset returned by run_replicas; this one lacks dim "
                                         "replica, dim record"):
        replicas.run_replicas(rule, 2, data, 4, 2, learning_rate=0.01, seed=0, resume=xr.Dataset())
    with pytest.raises(ValueError, match="this one lacks theta$"):
        replicas.run_replicas(rule, 2, data, 4, 2, learning_rate=0.01, seed=0, resume=run.drop_vars("theta"))
    # a path is read, as train's resume is
    from dilution import io

    io.save(run, tmp_path / "replicas.nc")
    assert io.load(tmp_path / "replicas.nc").attrs["last_step"] == run.attrs["last_step"]
    continued = replicas.run_replicas(rule, 2, data, 4, 2, learning_rate=0.01, seed=0,
                                      resume=str(tmp_path / "replicas.nc"))
    assert int(continued["step"].values[-1]) == 8


@pytest.mark.parametrize("value", ["0.05", b"1", None, [0.5], 1j, True, np.bool_(False), np.array([0.5, 1.0]),
                                   np.array("0.5"), np.array(True)])
def test_check_finite_takes_real_numbers_only(value):
    from dilution.validation import check_finite

    # float("0.05") passed: a numeric string trained, was recorded as a string, and extend() refused it
    with pytest.raises(TypeError, match="^rate must be a number, got "):
        check_finite("rate", value)


def test_check_finite_keeps_the_value_of_a_real_number():
    from dilution.validation import check_finite

    for value in (3, 0.05, np.float32(0.05), np.int64(-2), np.array(0.05), np.array(7, dtype=np.int8),
                  xr.DataArray(0.05), xr.DataArray(np.int64(3))):
        assert check_finite("rate", value) == float(value)


def test_a_number_read_from_a_dataset_is_a_number(rbm, data):
    # float(ds["log_z"]) worked before check_finite took real numbers only; a 0-d DataArray still does
    from dilution.validation import check_finite

    log_z = exact.log_partition(rbm)
    stored = xr.Dataset({"log_z": log_z})["log_z"]
    np.testing.assert_array_equal(exact.log_likelihood(rbm, data, log_z=stored),
                                  exact.log_likelihood(rbm, data, log_z=log_z))
    with pytest.raises(TypeError, match=r"^rate must be a number, got an array of shape \(2,\) and dtype float64$"):
        check_finite("rate", xr.DataArray([0.05, 0.1]))
    with pytest.raises(TypeError, match=r"^rate must be a number, got an array of shape \(\) and dtype bool$"):
        check_finite("rate", xr.DataArray(True))


def test_numeric_strings_reach_no_engine_function(rbm, data):
    from dilution import sample
    from dilution.ncg import NCG

    # each took float("...") and went on with the number
    with pytest.raises(TypeError, match=r"^connectivity must be a number in \[0, 1\], got '0.5'$"):
        RBM.random(8, 4, connectivity="0.5", seed=0)
    with pytest.raises(TypeError, match=r"^connectivity must be a number in \[0, 1\], got True$"):
        RBM.random(8, 4, connectivity=True, seed=0)
    with pytest.raises(TypeError, match="^log_z must be a number, got '5'$"):
        exact.log_likelihood(rbm, data, log_z="5")
    with pytest.raises(TypeError, match="^NCG initial density p must be a number, got '0.5'$"):
        NCG(p="0.5")
    # "hot" gave "could not convert string to float", a list float()'s message; True ran at beta = 1
    for beta in ("hot", [0.5, 1.0], True):
        with pytest.raises(TypeError, match=f"^beta must be a number, got {beta!r}".replace("[", r"\[")):
            sample(rbm, 10, 5, seed=0, beta=beta)


@pytest.mark.parametrize("value", ["x", None])
def test_pruning_protocol_names_a_bad_reinit_scale(value):
    from dilution.pruning_rules import PruningProtocol

    # numpy's "ufunc 'isfinite' not supported for the input types"
    with pytest.raises(TypeError, match=f"^reinit_scale must be a number, got {value!r}$"):
        PruningProtocol(0.5, reinit_scale=value)


def test_train_names_bad_callbacks_resume_and_shape(data):
    from dilution.training import TrainConfig, train

    cfg = TrainConfig(epochs=1, batch_size=10, checkpoints=1)
    # "'builtin_function_or_method' object is not iterable"
    with pytest.raises(TypeError, match=r"^callbacks must be a sequence of callables .*one as callbacks=\[f\]"):
        train((8, 4), data, cfg, seed=0, callbacks=print)
    # pathlib's "expected str, bytes or os.PathLike object, not int"
    with pytest.raises(TypeError, match="^resume must be a TrainState or the path of a state file written by "
                                        "dilution.save, got int$"):
        train(None, data, resume=5)
    state = train((8, 4), data, cfg, seed=0).state
    # "'int' object is not iterable"
    with pytest.raises(TypeError, match=r"^rbm_or_shape must be None, an RBM or a tuple \(n_visible, n_hidden\) "
                                        "when resuming, got 5$"):
        train(5, data, resume=state)


def test_ais_helpers_name_their_arguments(data):
    # numpy's "negative dimensions are not allowed" / "expected a sequence of integers"
    for n_bootstrap in (-1, 2.5):
        with pytest.raises(ValueError, match=f"^n_bootstrap must be an integer >= 0, got {n_bootstrap}$"):
            ais.weight_summary(np.zeros(5), n_bootstrap=n_bootstrap)
    with pytest.raises(ValueError, match="^n_visible must be an integer >= 1, got -1$"):
        ais.base_rate_bias(None, -1)
    # "'>' not supported between 'str' and 'int'"; inf gave NaN biases
    with pytest.raises(TypeError, match="^pseudo_count must be a number, got 'x'$"):
        ais.base_rate_bias(data, 8, pseudo_count="x")
    with pytest.raises(ValueError, match="^pseudo_count must be finite, got inf$"):
        ais.base_rate_bias(data, 8, pseudo_count=np.inf)


def test_ladders_schedules_and_base_biases_name_their_arguments(rbm):
    # each gave numpy's "could not convert string to float"
    with pytest.raises(TypeError, match=r"^betas must be an array of real numbers, got \['a', 1\]$"):
        tempering.sample(rbm, 4, 5, seed=0, betas=["a", 1])
    with pytest.raises(TypeError, match="^beta_min must be a number, got 'x'$"):
        tempering.sample(rbm, 4, 5, seed=0, beta_min="x")
    with pytest.raises(TypeError, match="^base_bias must be an array of real numbers, got 'x'$"):
        tempering.sample(rbm, 4, 5, seed=0, base_bias="x")
    with pytest.raises(TypeError, match="^betas must be an array of real numbers, got 'abc'$"):
        ais.log_partition(rbm, n_chains=10, seed=0, betas="abc")


def test_ais_log_likelihood_names_base_data_and_checks_a_log_z_dataset(rbm, data):
    from dilution.schedules import linear

    # the empty base_data passed the first check and was refused as `data` by the second
    with pytest.raises(ValueError, match=r"^base_data must hold at least one row to fit base rates \(or pass "
                                         r"base_data=None for a uniform base\)$"):
        ais.log_likelihood(rbm, data, n_chains=10, seed=0, betas=linear(20), base_data=np.ones((0, 8)))
    # a NaN log_z in a Dataset gave a NaN log-likelihood
    with pytest.raises(ValueError, match="^log_z must be finite, got nan$"):
        ais.log_likelihood(rbm, data, log_z=xr.Dataset({"log_z": np.nan, "log_z_std": 0.1}))
    # a 0-d DataArray is a number; the result is that of the number
    exact_log_z = exact.log_partition(rbm)
    expected = ais.log_likelihood(rbm, data, log_z=exact_log_z)
    xr.testing.assert_identical(ais.log_likelihood(rbm, data, log_z=xr.DataArray(exact_log_z)), expected)
