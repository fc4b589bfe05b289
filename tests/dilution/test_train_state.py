"""Training state: stop, save, load in a new process, continue; exact-gradient training; estimators."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution import exact
from dilution.estimators import CD, PCD, PTPCD, Exact, estimator_from_name
from dilution.conditionals import hidden_probabilities
from dilution.model import RBM
from dilution.optim import LinearDecay
from dilution.pruning import DegreePreservingRandom, Saliency, UnitMagnitude
from dilution.pruning_rules import PruningProtocol
from dilution.statefile import StateFileError
from dilution.training import TrainConfig, extend, init_state, train, train_step

# Columns that measure time: the only part of a history a resumed run cannot reproduce.
_CLOCKS = ["wall_time", "epoch_wall_time"]


def _data(n=60, n_visible=9, seed=0):
    return (np.random.default_rng(seed).random((n, n_visible)) < 0.4).astype(np.float64)


def _same_history(a: xr.Dataset, b: xr.Dataset) -> None:
    a, b = a.drop_vars(_CLOCKS), b.drop_vars(_CLOCKS)
    # Provenance (creation time) and timings differ between runs by nature.
    keep = lambda attrs: {k: v for k, v in attrs.items() if k not in ("created", "git_commit", "git_dirty")  # noqa: E731
                          and "seconds" not in k}
    assert keep(a.attrs) == keep(b.attrs)
    xr.testing.assert_equal(a, b)


def _same_state(a, b) -> None:
    for x, y in zip(a.params, b.params):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.optimizer, b.optimizer):
        np.testing.assert_array_equal(x, y)
    chains_a, chains_b = getattr(a.estimator, "chains", None), getattr(b.estimator, "chains", None)
    if chains_a is not None:
        np.testing.assert_array_equal(chains_a, chains_b)
    assert a.step == b.step and a.schedule_offset == b.schedule_offset


CONFIGS = {
    "cd-momentum-schedule-l1": TrainConfig(
        estimator=CD(2), epochs=4, batch_size=8, learning_rate=LinearDecay(0.1, 0.01), momentum=0.5, l1=1e-3,
        checkpoints=(3, 13, 20, 32),
    ),
    "pcd-oneshot": TrainConfig(
        estimator=PCD(3, n_chains=7), epochs=4, batch_size=8, learning_rate=0.1, momentum=0.5, l1=1e-3,
        checkpoints=(3, 13, 20, 32), rule=PruningProtocol(0.5, at_epochs=(2,)),
    ),
    "ptpcd": TrainConfig(
        estimator=PTPCD(2, n_chains=5, n_temps=4), epochs=3, batch_size=8, learning_rate=0.05, momentum=0.5,
        checkpoints=(5, 13, 24),
    ),
    "exact": TrainConfig(estimator=Exact(), epochs=3, batch_size=8, learning_rate=0.1, momentum=0.9,
                         checkpoints=(13, 24)),
    "pcd-iterative-rewind": TrainConfig(
        estimator=PCD(2, n_chains=6), epochs=4, batch_size=8, learning_rate=LinearDecay(0.1, 0.02), momentum=0.5,
        l1=1e-3, checkpoints=(13, 32),
        rule=PruningProtocol(0.3, at_epochs=(1, 2, 3), then="rewind", rewind_epoch=1),
    ),
    "cd-saliency-reinit": TrainConfig(
        estimator=CD(1), epochs=4, batch_size=8, learning_rate=0.1, momentum=0.5, checkpoints=(13, 32),
        rule=PruningProtocol(0.4, at_epochs=(0, 2), criterion=Saliency(), then="reinit"),
    ),
    "degree-preserving-fine-tune": TrainConfig(
        estimator=PCD(1), epochs=4, batch_size=8, learning_rate=0.1, checkpoints=(13, 32),
        rule=PruningProtocol(0.5, at_epochs=(1,), criterion=DegreePreservingRandom(UnitMagnitude("hidden"))),
    ),
}

_NEW_PROCESS = textwrap.dedent(
    """
    import sys, numpy as np, dilution
    from dilution.training import train
    state = dilution.load(sys.argv[1])
    data = np.load(sys.argv[2])
    result = train(None, data, resume=state)
    dilution.save(result.history, sys.argv[3])
    dilution.save(result.state, sys.argv[4])
    """
)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_resume_in_a_new_process_equals_an_uninterrupted_run(name, tmp_path):
    cfg, data = CONFIGS[name], _data()
    full = train((9, 4), data, cfg, seed=1)
    # Update 13 is mid-epoch (8 updates per epoch) and a checkpoint.
    half = train((9, 4), data, cfg, seed=1, until=13)
    assert half.state.step == 13 and half.state.step % half.state.plan.updates_per_epoch != 0
    dilution.save(half.state, tmp_path / "state.nc")
    np.save(tmp_path / "data.npy", data)
    script = tmp_path / "resume.py"
    script.write_text(_NEW_PROCESS)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "state.nc"), str(tmp_path / "data.npy"),
         str(tmp_path / "history.nc"), str(tmp_path / "final.nc")],
        check=True, timeout=600,
    )
    resumed = dilution.load(tmp_path / "final.nc")
    assert resumed.model == full.model
    _same_state(resumed, full.state)
    _same_history(dilution.load(tmp_path / "history.nc"), full.history)


def test_state_round_trips_exactly(tmp_path):
    result = train((9, 4), _data(), CONFIGS["pcd-oneshot"], seed=2, until=11)
    dilution.save(result.state, tmp_path / "s.nc")
    back = dilution.load(tmp_path / "s.nc")
    assert type(back) is type(result.state) and back.config == result.state.config
    assert back.plan == result.state.plan and back.tally == result.state.tally and back.log.epochs == result.state.log.epochs
    _same_state(back, result.state)
    for a, b in zip(back.log.masks, result.state.log.masks):
        np.testing.assert_array_equal(a, b)


def test_continuing_is_not_extending():
    data, cfg = _data(), CONFIGS["exact"]
    done = train((9, 4), data, cfg, seed=0)
    again = train(None, data, resume=done.state)
    assert again.state.step == done.state.plan.total_steps and again.model == done.model
    # asking for more updates than planned is refused (it used to stop at the plan's end without a word)
    total = done.state.plan.total_steps
    with pytest.raises(ValueError, match=rf"until={2 * total} is past the end of the planned run \({total} updates"):
        train(None, data, resume=done.state, until=2 * total)
    longer = train(None, data, resume=extend(done.state, 2 * done.state.plan.epochs), until=2 * total)
    assert longer.state.step == 2 * total


_EXTENDABLE = [name for name, cfg in CONFIGS.items() if not isinstance(cfg.learning_rate, LinearDecay)]


@pytest.mark.parametrize("name", [*_EXTENDABLE, "deep-r", "ncg"])
def test_an_extended_run_equals_a_run_planned_that_long(name):
    # Four epochs, extended to seven and continued: the run planned for seven epochs from the
    # start, bit for bit (parameters, velocities, chains, rule state), in a new run (not resumed
    # from a file: the state file's round trip is tested above).
    from dilution.deep_r import DeepR, deep_r_config
    from dilution.ncg import NCG, ncg_config
    from dilution.training import extend

    cfg = {"deep-r": deep_r_config(DeepR(k=12, alpha=1e-3, temperature=1e-3), epochs=4, batch_size=8,
                                   learning_rate=0.1, estimator=PCD(2, n_chains=5), checkpoints=3),
           "ncg": ncg_config(NCG(p=0.5), epochs=4, batch_size=8, learning_rate=0.1, checkpoints=3)}.get(name)
    cfg = cfg or CONFIGS[name]
    data = _data()
    short = train((9, 4), data, cfg, seed=3)
    assert short.state.done
    longer = train(None, data, resume=extend(short.state, 7))
    planned = train((9, 4), data, dataclasses.replace(cfg, epochs=7), seed=3)
    assert longer.state.step == planned.state.step == 7 * planned.state.plan.updates_per_epoch
    assert longer.model == planned.model
    _same_state(longer.state, planned.state)
    for a, b in zip(getattr(longer.state.rule, "_fields", ()), getattr(planned.state.rule, "_fields", ())):
        np.testing.assert_array_equal(getattr(longer.state.rule, a), getattr(planned.state.rule, b), err_msg=a)
    assert longer.state.config == planned.state.config
    assert longer.state.plan._replace(checkpoints=()) == planned.state.plan._replace(checkpoints=())


def test_runs_that_depend_on_their_length_are_not_extended():
    from dilution.ncg import NCG, ncg_config
    from dilution.training import extend

    data = _data()
    scheduled = train((9, 4), data, CONFIGS["cd-momentum-schedule-l1"], seed=0, until=3)
    with pytest.raises(ValueError, match="learning_rate is a schedule"):
        extend(scheduled.state, 8)
    quirks = ncg_config(NCG(p=0.5, reference_quirks=True, redraw_epochs=2), epochs=4, batch_size=8)
    with pytest.raises(ValueError, match="redraw"):
        extend(init_state((9, 4), data, quirks, seed=0), 8)
    plain = init_state((9, 4), data, CONFIGS["exact"], seed=0)
    with pytest.raises(ValueError, match="epochs"):
        extend(plain, 3)  # planned for 3: not more


def test_exact_training_is_full_batch_gradient_ascent():
    """Exact estimator, one batch holding all the data, plain SGD: W_{t+1} = W_t + lr * dL/dW (exact.gradient)."""
    data = _data(20, 6, seed=3)
    lr, steps = 0.2, 15
    cfg = TrainConfig(estimator=Exact(), epochs=steps, batch_size=20, learning_rate=lr, checkpoints=1)
    state = init_state((6, 3), data, cfg, seed=4)
    rbm = state.model
    w, a, b = (x.astype(np.float64) for x in (rbm.weights, rbm.visible_bias, rbm.hidden_bias))
    for _ in range(steps):
        batch = data[np.random.default_rng(dilution.rng.derive_seed(4, "shuffle", state.step)).permutation(20)]
        state, _ = train_step(state, batch, data=data, epoch_end=True)
        g = exact.gradient(RBM(w, a, b, rbm.mask), data)
        w, a, b = w + lr * g.weights * rbm.mask, a + lr * g.visible_bias, b + lr * g.hidden_bias
        # 1e-12: both sides sum the same 20 rows in float64; only summation order differs (~1e-16 relative).
        np.testing.assert_allclose(state.params.weights, w, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state.params.visible_bias, a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state.params.hidden_bias, b, rtol=0, atol=1e-12)


def test_ptpcd_estimate_converges_to_the_exact_gradient():
    rbm = RBM.random(6, 3, connectivity=1.0, weight_scale=1.5, seed=5)
    data = _data(30, 6, seed=6)
    g_exact = exact.gradient(rbm, data)
    n_chains = 4000
    est = PTPCD(k=1, n_chains=n_chains, n_temps=5, beta_min=0.2, chain_init="uniform")
    state = est.init(_params(rbm), data, 30, 7)
    h = hidden_probabilities(data, rbm.weights, rbm.hidden_bias, 1.0)
    for _ in range(30):  # burn-in: 30 sweeps of a 6x3 model with exchanges
        _, state = est.estimate(_params(rbm), data, h, state)
    g, _ = est.estimate(_params(rbm), data, h, state)
    # Each model-term entry is a mean of n_chains values in [0, 1] (correlation between chains is
    # nil: independent systems), so its standard error is at most 0.5 / sqrt(n_chains) = 0.0079.
    # 5 standard errors bound all 6*3 + 6 + 3 = 27 entries with probability > 1 - 27 * 5.7e-7.
    tol = 5 * 0.5 / np.sqrt(n_chains)
    np.testing.assert_allclose(g.weights, g_exact.weights, atol=tol)
    np.testing.assert_allclose(g.visible_bias, g_exact.visible_bias, atol=tol)
    np.testing.assert_allclose(g.hidden_bias, g_exact.hidden_bias, atol=tol)


def _params(rbm: RBM):
    from dilution.optim import Parameters

    return Parameters(rbm.weights, rbm.visible_bias, rbm.hidden_bias, rbm.mask)


def test_estimators_by_name_and_bad_names():
    assert estimator_from_name("pcd", k=3) == PCD(3)
    assert estimator_from_name("PT-PCD", k=2, n_temps=4) == PTPCD(2, n_temps=4)
    with pytest.raises(ValueError, match="unknown gradient estimator 'pdc'"):
        estimator_from_name("pdc")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        PCD(0)
    with pytest.raises(ValueError, match="exceed max_units"):
        train((30, 30), _data(10, 30), TrainConfig(estimator=Exact(max_units=20), epochs=1, batch_size=5), seed=0)


def test_ptpcd_takes_a_numpy_beta_min():
    # np.float32(0.5) was refused with "beta_min must be in (0, 1)" though it is in range
    assert PTPCD(beta_min=np.float32(0.5)) == PTPCD(beta_min=0.5)
    assert type(PTPCD(beta_min=np.float64(0.25)).beta_min) is float
    with pytest.raises(TypeError, match=r"^beta_min must be a number in \(0, 1\), got '0.5'$"):
        PTPCD(beta_min="0.5")
    with pytest.raises(ValueError, match=r"^beta_min must be in \(0, 1\), got np.float32\(1.5\)$"):
        PTPCD(beta_min=np.float32(1.5))


# --------------------------------------------------------------------------- bad resume input


def test_resume_refuses_another_shape_config_seed_or_data(tmp_path):
    data, cfg = _data(), CONFIGS["exact"]
    half = train((9, 4), data, cfg, seed=1, until=5)
    with pytest.raises(ValueError, match="state is a 9 x 4 model"):
        train((9, 5), data, resume=half.state)
    with pytest.raises(ValueError, match="config differs"):
        train(None, data, TrainConfig(estimator=Exact(), epochs=5, batch_size=8), resume=half.state)
    with pytest.raises(ValueError, match="seed=2 differs"):
        train(None, data, seed=2, resume=half.state)
    with pytest.raises(ValueError, match="training data differ"):
        train(None, _data(seed=9), resume=half.state)


def test_corrupt_or_foreign_state_file_names_the_problem(tmp_path):
    half = train((9, 4), _data(), CONFIGS["exact"], seed=1, until=5)
    good = tmp_path / "state.nc"
    dilution.save(half.state, good)
    before = good.read_bytes()
    (tmp_path / "text.nc").write_text("not a netCDF file")
    with pytest.raises(ValueError, match="text.nc"):
        train(None, _data(), resume=tmp_path / "text.nc")
    dilution.save(dilution.RBM.random(3, 2, seed=0), tmp_path / "model.nc")
    with pytest.raises(StateFileError, match="not a dilution training state"):
        train(None, _data(), resume=tmp_path / "model.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(before[: len(before) // 2])
    with pytest.raises(ValueError, match="truncated.nc"):
        train(None, _data(), resume=truncated)
    assert good.read_bytes() == before  # the good state was not touched


# --------------------------------------------------------------------------- the command line

_CLI = ["train", "--n-train", "1000", "--n-test", "200", "--epochs", "20", "--sample-sweeps", "2",
        "--grid-samples", "4", "--teacher-visible", "12", "--teacher-hidden", "4", "--n-hidden", "5",
        "--checkpoints", "40", "--quiet", "--seed", "5"]


def test_cli_run_killed_and_resumed_equals_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "dilution.cli", *_CLI, "--output", str(whole)], check=True, timeout=600)
    proc = subprocess.Popen([sys.executable, "-m", "dilution.cli", *_CLI, "--output", str(killed)])
    state = killed / "state.nc"
    deadline = time.monotonic() + 300
    # Kill once a state past update 0 is on disk (states are replaced atomically, so reading is safe).
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and dilution.load(state).step > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: the test proves nothing"
    assert not (killed / "model.nc").exists()
    step = dilution.load(state).step
    assert 0 < step < dilution.load(whole / "state.nc").plan.total_steps
    subprocess.run([sys.executable, "-m", "dilution.cli", "train", "--resume", str(killed), "--quiet"], check=True,
                   timeout=600)
    assert dilution.load(killed / "model.nc") == dilution.load(whole / "model.nc")
    _same_history(dilution.load(killed / "history.nc"), dilution.load(whole / "history.nc"))


def test_cli_resume_refuses_other_options(tmp_path, capsys):
    from dilution.cli import main

    assert main(["train", "--resume", str(tmp_path), "--seed", "3"]) == 2
    assert "--resume continues a run with its own options (and --epochs to extend it); drop --seed" in \
        capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no state.nc" in capsys.readouterr().err


def test_cli_resume_with_more_epochs_extends_a_finished_run(tmp_path, capsys):
    from dilution.cli import main

    short = [*_CLI[:_CLI.index("--epochs")], "--epochs", "4", *_CLI[_CLI.index("--epochs") + 2:]]
    longer = [*_CLI[:_CLI.index("--epochs")], "--epochs", "8", *_CLI[_CLI.index("--epochs") + 2:]]
    assert main([*short, "--output", str(tmp_path / "run")]) == 0
    assert main([*longer, "--output", str(tmp_path / "planned")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet"]) == 2
    assert "can only extend it" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "8", "--quiet"]) == 0
    assert "extending" in capsys.readouterr().out
    assert dilution.load(tmp_path / "run" / "model.nc") == dilution.load(tmp_path / "planned" / "model.nc")
    assert dilution.load(tmp_path / "run" / "state.nc").plan.epochs == 8
