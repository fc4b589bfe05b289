from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution import exact
from dilution.cli import build_parser, main

SMALL = ["--n-train", "400", "--n-test", "200", "--epochs", "2", "--sample-sweeps", "5", "--grid-samples", "9",
         "--teacher-visible", "16", "--teacher-hidden", "4", "--n-hidden", "6", "--quiet"]


def test_train_on_teacher_writes_consistent_outputs(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--output", str(out), "--seed", "3"]) == 0
    for name in ("model.nc", "history.nc", "state.nc", "test.nc", "samples.png", "data.png"):
        assert (out / name).is_file(), name
    assert not (out / "summary.json").exists()  # the summary lives in the Datasets' attrs
    model = dilution.load(out / "model.nc")
    assert isinstance(model, dilution.RBM) and model.n_hidden == 6
    assert model.connectivity == pytest.approx(0.5, abs=1 / 96)
    attrs = dilution.io.load_dataset(out / "model.nc").attrs
    test = dilution.load(out / "test.nc")["states"].values
    # The reported numbers are the exact ones of the saved model on the saved test set, and the
    # teacher's own exact test log-likelihood, recomputed here from its seed.
    log_z = exact.log_partition(model)
    assert attrs["summary_log_partition"] == pytest.approx(log_z, rel=1e-12)
    assert attrs["summary_test_log_likelihood"] == pytest.approx(
        exact.log_likelihood(model, test, log_z=log_z).mean(), rel=1e-12)
    from dilution.data.teacher import planted_teacher

    teacher = planted_teacher(16, 4, connectivity=0.25, weight_scale=3.0, visible_bias_mean=-1.0,
                              visible_bias_scale=0.5, seed=3)
    assert attrs["summary_teacher_test_log_likelihood"] == pytest.approx(
        teacher.log_likelihood(test).mean(), rel=1e-12)
    assert attrs["summary_test_log_likelihood_gap"] == pytest.approx(
        attrs["summary_teacher_test_log_likelihood"] - attrs["summary_test_log_likelihood"])
    history = dilution.load(out / "history.nc")
    assert history.sizes["epoch"] == 2
    assert history.attrs["summary_test_log_likelihood"] == attrs["summary_test_log_likelihood"]


def test_same_seed_same_model(tmp_path):
    for name in ("a", "b"):
        assert main(["train", *SMALL, "--output", str(tmp_path / name), "--seed", "1"]) == 0
    assert dilution.load(tmp_path / "a" / "model.nc") == dilution.load(tmp_path / "b" / "model.nc")


def test_toml_config_is_read_and_flags_win(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('n_hidden = 5\nmethod = "cd"\nk = 1\nepochs = 1\nconnectivity = 1.0\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), *SMALL[:-5], "--quiet", "--output", str(out)]) == 0
    model = dilution.load(out / "model.nc")
    assert model.n_hidden == 5 and model.connectivity == 1.0
    assert main(["train", "--config", str(cfg), *SMALL, "--output", str(out), "--overwrite"]) == 0
    assert dilution.load(out / "model.nc").n_hidden == 6


@pytest.mark.parametrize("key", ["rule_options", "rule-option"])
def test_a_config_file_sets_rule_options_and_a_flag_adds_to_them(key, tmp_path):
    # the help promises every option by its long name: `rule-option` was refused as unknown, and a
    # --rule-option flag replaced the file's whole table instead of one key of it
    from dilution.cli import _resolve_train_options

    cfg = tmp_path / "run.toml"
    cfg.write_text(f'rule = "prune"\n{key} = {{fraction = 0.8, at_epochs = [2], then = "continue"}}\n')
    args = build_parser().parse_args(["train", "--config", str(cfg), "--rule-option", "then=rewind"])
    options = _resolve_train_options(args)
    assert options["rule"] == "prune"
    assert options["rule_options"] == {"fraction": 0.8, "at_epochs": [2], "then": "rewind"}

def test_sample_command(tmp_path):
    model = dilution.RBM.random(16, 4, connectivity=0.5, weight_scale=1.0, seed=0)
    dilution.save(model, tmp_path / "m.nc")
    assert main(["sample", str(tmp_path / "m.nc"), "--n-samples", "8", "--n-sweeps", "3", "--seed", "2", "--quiet"]) == 0
    ds = dilution.load(tmp_path / "m-samples.nc")
    assert ds["samples"].shape == (8, 16)
    assert np.array_equal(ds["samples"].values, dilution.sample(model, 8, 3, seed=2))
    assert (tmp_path / "m-samples.png").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "mnist", "--quiet"], "needs --data"),
        (["train", "--config", "/nonexistent/run.toml"], "cannot read config file"),
        (["train", "--connectivity", "1.5", *SMALL], "connectivity must be in [0, 1]"),
        # both were ignored without a word: k by the exact gradient, exact by a model too large to enumerate
        (["train", *SMALL, "--method", "exact", "-k", "5"], "-k 5: --method exact has no Gibbs sweeps"),
        (["train", *SMALL, "--n-hidden", "26", "--teacher-visible", "30", "--checkpoint-log-likelihood", "exact"],
         "at most 25 units; this 30 x 26 RBM has 26: give ais"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_config_key(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("n_hiden = 5\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown option 'n_hiden'" in capsys.readouterr().err


@pytest.mark.parametrize("line, message", [
    ("output = 5", "output must be a string, got 5"),
    ("data = 5", "data must be a string, got 5"),
    ('dataset = ["teacher"]', "dataset must be a string, got ['teacher']"),
    ("rule_options = 5", "rule_options must be a table such as {k = 7840, alpha = 1e-4}, got 5"),
    ('rule_options = "x"', "rule_options must be a table"),
    ('learning_rate = "0.05"', "learning_rate must be a number, got '0.05'"),
    ("lr = true", "lr must be a number, got True"),
    ("n_hidden = 5.0", "n_hidden must be an integer, got 5.0"),
    ('seed = "3"', "seed must be an integer, got '3'"),
])
def test_a_config_value_of_the_wrong_type_is_named_with_its_key(tmp_path, capsys, line, message):
    # these ended in Python's "expected str, bytes or os.PathLike object, not int", "'int' object is not
    # iterable", "unhashable type: 'list'"
    cfg = tmp_path / "run.toml"
    cfg.write_text(line + "\n")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "x")]) == 2
    assert f"config file {cfg}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_binary_config_file_is_not_toml(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_bytes(b"\x89HDF\r\n\x1a\n\x00\xff")
    assert main(["train", "--config", str(cfg)]) == 2
    assert f"config file {cfg} is not valid TOML: not UTF-8 text" in capsys.readouterr().err


def test_train_into_a_folder_it_may_not_write_is_refused_before_training(tmp_path, capsys, monkeypatch):
    # it failed after "training ..." was printed, naming a hidden temporary file
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    # root writes into a chmod 555 folder, so the refusal is simulated
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if str(p) == str(locked) else real(p, mode))
    assert main(["train", *SMALL, "--output", str(locked / "run")]) == 2
    captured = capsys.readouterr()
    assert f"--output {locked / 'run'}: {locked} is not writable" in captured.err and captured.out == ""


def test_sample_refuses_a_dataset_file(tmp_path, capsys):
    dilution.save(xr.Dataset({"x": ("a", np.arange(3))}), tmp_path / "d.nc")
    assert main(["sample", str(tmp_path / "d.nc")]) == 2
    assert "not an RBM" in capsys.readouterr().err


def test_help_mentions_every_command():
    from importlib.metadata import entry_points

    text = build_parser().format_help()
    commands = {"train", "sample"} | {e.name for e in entry_points(group="dilution.commands")}
    assert "evaluate" in commands
    for name in commands:
        # argparse puts a long name (reproduce) alone on its line, its help on the next
        assert re.search(rf"^    {name}\s", text, re.MULTILINE), name


def test_rules_from_the_command_line(tmp_path):
    out = tmp_path / "prune"
    argv = ["train", *SMALL, "--output", str(out), "--rule", "prune", "--rule-option", "fraction=0.5",
            "--rule-option", "at_epochs=[1]", "--rule-option", "then=rewind", "--rule-option", "criterion=random"]
    assert main(argv) == 0
    history = dilution.load(out / "history.nc")
    import json

    rule = json.loads(history.attrs["rule"])
    assert rule["type"] == "PruningProtocol" and rule["then"] == "rewind" and rule["criterion"]["type"] == "RandomPruning"
    # 0.5 connectivity at initialisation, half of it pruned after epoch 1.
    assert dilution.load(out / "model.nc").n_connections == round(0.5 * round(0.5 * 96))
    assert history["resets"].values.tolist() == [1, 0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rule", "prune", "--rule-option", "p=0.5"], "--rule-option p: --rule prune has no such option (it is an option of --rule ncg)"),
        (["--rule", "static", "--rule-option", "fraction=0.5"], "--rule static has no such option"),
        (["--rule", "deep-r", "--rule-option", "k=10", "--rule-option", "alpha=1e-3", "--rule-option", "temperature=0",
          "--rule-option", "theta_min=-1"], "theta_min"),
        (["--rule", "prune", "--rule-option", "fraction=1.2"], "pruning fraction must be in [0, 1)"),
        (["--rule", "ncg", "--rule-option", "p=0.5", "--momentum", "0.5"], "momentum"),
        (["--rule-option", "fraction"], "expected NAME=VALUE"),
    ],
)
def test_bad_rule_options_name_the_problem(argv, message, tmp_path, capsys):
    try:
        code = main(["train", *SMALL, "--output", str(tmp_path / "x"), *argv])
    except SystemExit as e:  # argparse rejects a malformed NAME=VALUE itself
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("rule, given, missing", [
    ("deep-r", [], ["k", "alpha", "temperature"]),
    ("deep-r", ["k=10", "temperature=0"], ["alpha"]),
    ("soft-deep-r", ["temperature=1"], ["alpha", "p0"]),
    ("prune", ["at_epochs=[1]"], ["fraction"]),
])
def test_a_missing_required_rule_option_is_named_as_a_flag(rule, given, missing, tmp_path, capsys):
    options = [x for option in given for x in ("--rule-option", option)]
    assert main(["train", *SMALL, "--output", str(tmp_path / "x"), "--rule", rule, *options]) == 2
    err = capsys.readouterr().err
    assert f"--rule {rule} needs " + ", ".join(f"--rule-option {m}=VALUE" for m in missing) in err
    assert "__init__" not in err and "positional" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("rule, options, option", [
    ("deep-r", ["k=10", "alpha=0", "temperature=1e-4"], "k"),
    ("soft-deep-r", ["alpha=1", "temperature=1e-4", "p0=0.5"], "p0"),
    ("ncg", [], "p"),
])
def test_connectivity_is_refused_for_a_rule_that_draws_its_own_mask(rule, options, option, tmp_path, capsys):
    # it used to be ignored without a word: --connectivity 0.5 with k=10 of 96 pairs trained at 0.10
    options = [x for o in options for x in ("--rule-option", o)]
    assert main(["train", *SMALL, "--output", str(tmp_path / "x"), "--connectivity", "0.5", "--rule", rule,
                 *options]) == 2
    err = capsys.readouterr().err
    assert f"--connectivity does not apply to --rule {rule}" in err and f"--rule-option {option}=VALUE" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("rule, options, flags, dropped", [
    ("ncg", [], ["--l2", "0.01"], "--l2 0.01"),
    ("ncg", [], ["--l1", "0.1", "--momentum", "0.5"], "--momentum 0.5, --l1 0.1"),
    ("deep-r", ["k=10", "alpha=0", "temperature=1e-4"], ["--l1", "0.01"], "--l1 0.01"),
    ("soft-deep-r", ["alpha=1", "temperature=1e-4", "p0=0.5"], ["--momentum", "0.9"], "--momentum 0.9"),
])
def test_momentum_and_weight_decay_are_refused_for_a_plain_sgd_rule(rule, options, flags, dropped, tmp_path, capsys):
    # ncg with --l1 / --l2 used to train with weight decay, deep-r stopped at update 1 after the folder was made
    options = [x for o in options for x in ("--rule-option", o)]
    assert main(["train", *SMALL, "--output", str(tmp_path / "x"), "--rule", rule, *options, *flags]) == 2
    err = capsys.readouterr().err
    assert f"--rule {rule} trains by plain SGD" in err and f"drop {dropped}" in err, err
    assert not (tmp_path / "x").exists()


def test_the_header_states_the_connectivity_the_rule_drew(tmp_path, capsys):
    out = tmp_path / "deep-r"
    assert main(["train", *SMALL, "--output", str(out), "--rule", "deep-r", "--rule-option", "k=10",
                 "--rule-option", "alpha=0", "--rule-option", "temperature=1e-4"]) == 0
    # 16 x 6 = 96 pairs, 10 active; the teacher's default --connectivity (0.5) is not what was trained
    assert "RBM (connectivity 0.1042) on" in capsys.readouterr().out
    assert dilution.load(out / "model.nc").n_connections == 10


def test_the_help_lists_every_rule_option_and_which_are_required():
    import dataclasses

    from dilution.cli import RULES, _required_rule_options, _rule_class

    text = " ".join(_train_help().split())
    for rule in RULES:
        cls = _rule_class(rule)
        if not dataclasses.fields(cls):
            continue
        line = re.search(rf"{rule} dilution\.\S+: ([^;]*); (.*?)(?= \S+ dilution\.| --rule )", text)
        assert line, rule
        required = [] if line[1] == "none" else line[1].split(", ")
        assert required == _required_rule_options(cls), rule
        optional = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in required]
        assert all(re.search(rf"\b{name}\b", line[2]) for name in optional), (rule, optional)


def _train_help() -> str:
    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions if a.dest)
    return action.choices["train"].format_help()


def _independent_pixels_log_likelihood(train, test):
    """Exact test log-likelihood of the product of the training marginals (clipped like the trainer's init)."""
    p = np.clip(train.mean(axis=0), 1e-3, 1 - 1e-3)
    return float((test * np.log(p) + (1 - test) * np.log(1 - p)).sum(axis=1).mean())


def test_bars_and_stripes_defaults_learn_beyond_independent_pixels(tmp_path):
    # The defaults, two epochs instead of twelve (4,000 of 24,000 updates). The old defaults (10
    # chains, learning rate 0.05, momentum 0.5) collapsed to -222 nats after 400 epochs.
    out = tmp_path / "bs"
    assert main(["train", "--dataset", "bars-stripes", "--epochs", "2", "--quiet", "--sample-sweeps", "5",
                 "--output", str(out)]) == 0
    attrs = dilution.io.load_dataset(out / "model.nc").attrs
    test = dilution.load(out / "test.nc")["states"].values.astype(np.float64)
    # Every pixel of bars-and-stripes is on with probability 1/2: the product model scores -16 log 2.
    assert attrs["summary_test_log_likelihood"] > _independent_pixels_log_likelihood(test, test) + 1.0
    assert attrs["summary_test_log_likelihood"] <= -np.log(30) + 1e-9  # the data's entropy bounds it


def test_a_collapsing_run_is_reported_and_its_best_checkpoint_kept(tmp_path, capsys):
    out = tmp_path / "collapse"
    assert main(["train", "--dataset", "bars-stripes", "--bars-size", "3", "--n-train", "200", "--batch-size", "10",
                 "--learning-rate", "5", "--momentum", "0.9", "--n-chains", "2", "--epochs", "100", "--quiet",
                 "--sample-sweeps", "2", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: the train log-likelihood fell from" in err and "best-model.nc" in err
    assert "the weights are running away" in err
    history = dilution.load(out / "history.nc")
    best = dilution.load(out / "best-model.nc")
    best_attrs = dilution.io.load_dataset(out / "best-model.nc").attrs
    ll = history["log_likelihood"].values
    # best-model.nc is the checkpoint with the highest exact train log-likelihood, recomputed here.
    assert best_attrs["train_log_likelihood"] == pytest.approx(ll.max(), rel=1e-12)
    assert best_attrs["step"] == int(history["step"].values[np.argmax(ll)])
    np.testing.assert_array_equal(best.mask, history["mask"].values[np.argmax(ll)].astype(bool))
    assert ll[-1] < ll.max() - 0.5


def test_a_healthy_run_gives_no_warning(tmp_path, capsys):
    assert main(["train", *SMALL, "--output", str(tmp_path / "ok")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_final_ais_of_a_large_model_resamples_on_the_classic_shape(monkeypatch):
    # `dilution train`'s summary for a model too large to enumerate: AIS with resampling in
    # populations on the classic shape (plain linear AIS collapses on trained 784 x 500 models).
    # Checked bit for bit against dilution.ais.log_partition with those settings, and against the
    # exact log Z of a model that enumerates: 10 populations give a Student-t error with 9 degrees
    # of freedom, 4.78 standard errors two-sided at 1e-3 (plus the se^2 / 2 Jensen bias).
    from scipy.stats import t as student_t

    from dilution import ais, cli, schedules
    from dilution.model import RBM

    monkeypatch.setattr(cli, "FINAL_AIS_BETAS", 500)
    rbm = RBM.random(20, 12, connectivity=0.7, weight_scale=1.5, bias_scale=0.5, seed=3)
    rng = np.random.default_rng(3)
    train, test = (rng.random((200, 20)) < 0.3).astype(float), (rng.random((100, 20)) < 0.3).astype(float)
    summary = cli._ais_test_log_likelihood(rbm, train, test, seed=4, progress=False)
    assert "resampling" in summary["test_log_likelihood_method"] and "classic" in summary["test_log_likelihood_method"]
    direct = ais.log_partition(rbm, n_chains=cli.FINAL_AIS_CHAINS, betas=schedules.classic(500), data=train, seed=4,
                               reverse=False, n_bootstrap=0, resample=0.5, n_groups=cli.FINAL_AIS_GROUPS)
    assert summary["log_partition"] == float(direct["log_z"])
    se = summary["log_partition_se"]
    bound = student_t.isf(1e-3 / 2, cli.FINAL_AIS_GROUPS - 1) * se + se**2 / 2
    assert abs(summary["log_partition"] - exact.log_partition(rbm)) < bound


def test_a_config_file_takes_every_spelling_of_a_flag(tmp_path, capsys):
    # --lr is a second long flag of --learning-rate; a config file refused `lr` as an unknown option
    from dilution.cli import CONFIG_ALIASES, _resolve_train_options

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    long_flags = {action.dest: [f for f in action.option_strings if f.startswith("--")] for action in train._actions}
    aliases = {flag.lstrip("-").replace("-", "_"): dest for dest, flags in long_flags.items() for flag in flags[1:]}
    assert CONFIG_ALIASES == aliases
    cfg = tmp_path / "run.toml"
    cfg.write_text("lr = 0.0625\n")
    assert _resolve_train_options(build_parser().parse_args(["train", "--config", str(cfg)]))["learning_rate"] == 0.0625
    cfg.write_text("lr = 0.0625\nlearning-rate = 0.125\n")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "x")]) == 2
    assert "'lr' and 'learning-rate' set the same option" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
