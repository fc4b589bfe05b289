"""``dilution study``'s checks of its folders, made before any work: ``report --figures`` (and
``run --report --figures``) that cannot be a figures folder, ``status`` of a folder where the
study has not been run."""

from __future__ import annotations

import pytest

from dilution.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

@pytest.fixture
def no_analysis(monkeypatch):
    """Records a call of the report's analysis (the work the checks must come before)."""
    calls = []
    monkeypatch.setattr("studies.report.study_report", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.mark.parametrize("command", ["report", "run"])
@pytest.mark.parametrize("below", [False, True])
def test_figures_given_a_file_is_refused_naming_it_before_any_work(command, below, no_analysis, tmp_path, capsys):
    file = tmp_path / "figures.png"
    file.write_text("not a folder")
    figures = file / "sub" if below else file
    flags = ["--report", "--quiet"] if command == "run" else []
    out = tmp_path / "study"
    assert main(["study", command, "smoke", "--output", str(out), *flags, "--figures", str(figures)]) == 2
    err = capsys.readouterr().err
    named = f"--figures {figures}" + (f": {file}" if below else "")
    assert err.strip() == (f"dilution study: error: {named} exists and is not a folder; expected a folder for the "
                           "output (an existing one or a new one to create)")
    assert no_analysis == [] and not out.exists() and file.read_text() == "not a folder"


def test_figures_in_a_read_only_folder_is_refused_naming_it(no_analysis, tmp_path, capsys, mode_bits_apply):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["study", "report", "smoke", "--output", str(tmp_path / "study"),
                     "--figures", str(locked / "figures")]) == 2
    finally:
        locked.chmod(0o755)
    assert f"--figures {locked / 'figures'}: {locked} is not writable" in capsys.readouterr().err
    assert no_analysis == []


def test_status_of_a_folder_where_the_study_has_not_been_run_says_so(tmp_path, capsys):
    out = tmp_path / "never-run"
    assert main(["study", "status", "smoke", "--output", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dilution study: error: --output {out} does not exist: study 'smoke' has not been run there (start it "
        f"with: dilution study run smoke --output {out})")
    assert not out.exists()
    (tmp_path / "file").write_text("")
    assert main(["study", "status", "smoke", "--output", str(tmp_path / "file")]) == 2
    assert f"--output {tmp_path / 'file'} is not a folder" in capsys.readouterr().err


def test_run_into_a_file_is_refused_naming_output_before_any_work(tmp_path, capsys, monkeypatch):
    # it ended in "[Errno 20] Not a directory: 'model.nc/tasks'"
    calls = []
    monkeypatch.setattr("studies.runner.run_study", lambda *args, **kwargs: calls.append(args))
    file = tmp_path / "model.nc"
    file.write_text("a file")
    assert main(["study", "run", "smoke", "--output", str(file), "--quiet"]) == 2
    assert f"--output {file} exists and is not a folder" in capsys.readouterr().err
    assert calls == [] and file.read_text() == "a file"


def test_merge_refuses_to_write_over_its_spec(tmp_path, capsys):
    # `study merge tiny.toml -o tiny.toml` wrote HDF5 over the spec
    from studies.builtin import BUILTIN

    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(BUILTIN["smoke"].toml)
    before = spec_file.read_bytes()
    assert main(["study", "merge", str(spec_file), "--output", str(tmp_path / "out"), "-o", str(spec_file)]) == 2
    assert f"--file {spec_file} is the command's input" in capsys.readouterr().err
    assert spec_file.read_bytes() == before


def test_a_binary_spec_file_is_not_toml(tmp_path, capsys):
    # "'utf-8' codec can't decode byte 0x89 in position 0", naming nothing
    spec = tmp_path / "study.nc"
    spec.write_bytes(b"\x89HDF\r\n\x1a\n\x00\xff")
    assert main(["study", "status", str(spec)]) == 2
    assert f"{spec}: not valid TOML: not UTF-8 text" in capsys.readouterr().err


def test_a_missing_data_file_for_a_builtin_study_is_named_by_its_flag(tmp_path, capsys):
    # it was named by the spec key data.path, which the user never typed
    missing = tmp_path / "mnist.npz"
    assert main(["study", "run", "mnist", "--data", str(missing), "--output", str(tmp_path / "out")]) == 2
    assert f"--data {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_spec_without_output_runs_where_output_says(tmp_path, capsys):
    # "output: required key is missing" although --output was given
    from studies.builtin import BUILTIN

    spec = tmp_path / "tiny.toml"
    spec.write_text("\n".join(line for line in BUILTIN["smoke"].toml.splitlines()
                              if not line.startswith("output")))
    assert main(["study", "status", str(spec)]) == 2
    assert "output: required key is missing" in capsys.readouterr().err
    assert main(["study", "status", str(spec), "--output", str(tmp_path / "out")]) == 2
    assert f"--output {tmp_path / 'out'} does not exist: study 'smoke' has not been run there" in \
        capsys.readouterr().err



@pytest.mark.parametrize("command", ["status", "merge"])
def test_status_and_merge_of_a_builtin_mnist_study_take_data(command, data_dir, tmp_path, capsys, monkeypatch):
    # without $DILUTION_DATA the message said "pass its mnist.npz with --data", which these two refused
    # as an unrecognized argument
    monkeypatch.delenv("DILUTION_DATA")
    mnist = data_dir / "mnist" / "mnist.npz"
    out = tmp_path / "never-run"
    code = main(["study", command, "mnist", "--output", str(out), "--data", str(mnist)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        f"dilution study: error: --output {out} does not exist: study 'mnist' has not been run there (start it "
        f"with: dilution study run mnist --output {out} --data {mnist})")
