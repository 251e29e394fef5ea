"""The other commands and the root: ``ops``, ``init-suite``, ``--version``, ``--help``, shell
completion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lncheck import __version__
from lncheck.cli import app
from lncheck.ops import OP_NAMES
from lncheck.suite.parse import load_suite

from .helpers import assert_user_error, invoke, runner


def test_ops_command_lists_every_op() -> None:
    result = invoke("ops")
    assert result.exit_code == 0
    for op in OP_NAMES:
        assert op in result.stdout
    assert "nn.BatchNorm1d/2d/3d" in result.stdout and "--momentum 0.1" in result.stdout
    assert "--groups (required)" in result.stdout and "--size (required)" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"lncheck {__version__}"


def test_init_suite_passes_as_written(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    result = invoke("init-suite", str(path))
    assert result.exit_code == 0 and path.exists() and (tmp_path / "s-tokens.npy").exists()
    ops = {c.settings["op"] for c in load_suite(path).cases}
    assert ops == set(OP_NAMES)
    result = invoke("run", str(path))
    assert result.exit_code == 0, result.output
    again = invoke("init-suite", str(path))
    assert again.exit_code == 2 and "exists already: use --force" in again.stderr
    assert invoke("init-suite", str(path), "--force").exit_code == 0


@pytest.mark.parametrize("name", [".", "folder", "new/", "new/."])
def test_init_suite_refuses_a_folder_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    result = invoke("init-suite", name, "--force")
    assert_user_error(result, f"{name}: is a folder; give the suite file's name")
    assert os.listdir(tmp_path) == ["folder"] and not os.listdir(tmp_path / "folder")


@pytest.mark.parametrize("name", ["-", "-x.toml"])
def test_init_suite_refuses_a_name_that_reads_as_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("init-suite", "--", name)
    assert_user_error(result, f"{name}: give the suite file's name (suite.toml), not one starting")
    assert os.listdir(tmp_path) == []
    # ...while a path that only ends in such a name says nothing else
    assert invoke("init-suite", f"./{name}.toml").exit_code == 0


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("s.json", "s.json: a suite is a TOML file; name it s.toml"),
        ("suite", "suite: a suite is a TOML file; name it suite.toml"),
        ("", "an empty name: give the suite file's name (suite.toml)"),
    ],
)
def test_init_suite_refuses_a_name_other_than_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, words: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke("init-suite", name), words)
    assert os.listdir(tmp_path) == []


# --- help --------------------------------------------------------------------------------------


def test_bare_lncheck_shows_the_commands() -> None:
    result = invoke()
    assert result.exit_code == 2 and result.stderr == ""  # click's no_args_is_help: a usage error
    for command in ("compare", "ops", "run", "baseline", "init-suite"):
        assert command in result.stdout


def test_compare_help_has_every_panel_and_the_examples() -> None:
    result = invoke("compare", "--help")
    assert result.exit_code == 0
    for panel in ("Layer", "Parameters and statistics", "Run", "Tolerances", "Output"):
        assert f"─ {panel} " in result.stdout
    for flag in ("--shape", "--groups", "--train", "--eval", "--expected", "--format", "--report"):
        assert flag in result.stdout
    assert "Examples" in result.stdout and "lncheck compare input.npy --shape 3 4" in result.stdout


@pytest.mark.parametrize("command", ["compare", "explain"])
def test_choices_are_listed_in_the_help_not_a_metavar_that_cuts_the_flags(command: str) -> None:
    # "[layer_norm|group_norm|...]" took a third of an 80-column terminal
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "[layer_norm|" not in text and "--op OP" in text
    assert "One of: layer_norm, " in text


@pytest.mark.parametrize("command", ["run", "baseline", "init-suite", "ops"])
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and f"Usage: lncheck {command}" in result.stdout


# --- shell completion --------------------------------------------------------------------------


def test_show_completion_writes_a_script(monkeypatch: pytest.MonkeyPatch) -> None:
    # the shell named, not detected from the process tree (a background job has no bash above
    # it to find: "Shell  not supported"); typer's own tests set this
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "_LNCHECK_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _lncheck_completion lncheck" in result.stdout


def _complete(words: str) -> list[str]:
    env = {
        "_LNCHECK_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    result = runner.invoke(app, [], env=env, prog_name="lncheck")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_offers_the_table_choices() -> None:
    assert _complete("lncheck compare x.npy --op ") == list(OP_NAMES)
    assert _complete("lncheck compare x.npy --op gr") == ["group_norm"]
    assert _complete("lncheck compare x.npy --dtype bf") == ["bfloat16"]
    assert _complete("lncheck compare x.npy --backend ") == ["torch"]


def test_completion_offers_the_commands() -> None:
    assert set(_complete("lncheck ")) >= {"compare", "ops", "run", "baseline", "init-suite"}
