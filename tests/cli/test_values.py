"""Values on the command line: a misspelled choice gets a did-you-mean (and no pydantic-style
"Value error,"), ``--shape=3 4`` is ``--shape 3 4``, an option that takes one value is refused
when given twice, and shell completion can be installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from lncheck.cli import Command, app

from ..conftest import EXAMPLES
from .helpers import assert_user_error, invoke

TOKENS = str(EXAMPLES / "tokens.npy")


@pytest.mark.parametrize(
    ("option", "value", "meant"),
    [
        ("--op", "layernorm", "layer_norm"),
        ("--op", "GroupNorm", "group_norm"),
        ("--op", "rmsnorm", "rms_norm"),
        ("--dtype", "bfloat", "bfloat16"),
        ("--tolerance", "fixd", "fixed"),
    ],
)
def test_a_misspelled_choice_gets_a_did_you_mean(option: str, value: str, meant: str) -> None:
    line = assert_user_error(
        invoke("compare", TOKENS, "--shape", "4", option, value),
        f"{option} must be one of",
        f"got {value!r} (did you mean {meant!r}?)",
    )
    assert "Value error" not in line


@pytest.mark.parametrize(
    ("args", "echoed"),
    [
        (["--eps", "abc"], "--eps 'abc': input should be a valid number"),
        (["--eps=1e-5x"], "--eps '1e-5x': input should be a valid number"),
        (
            ["--op", "group_norm", "--groups", "two"],
            "--groups 'two': input should be a valid integer",
        ),
    ],
)
def test_a_value_that_is_not_a_number_is_echoed(args: list[str], echoed: str) -> None:
    shape = [] if "--groups" in args else ["--shape", "4"]
    assert_user_error(invoke("compare", TOKENS, *shape, *args), echoed)


def test_shape_with_an_equals_sign_takes_the_following_dims() -> None:
    for args in (["--shape=3", "4"], ["--shape", "3", "4"], ["--shape=3,4"]):
        result = invoke("compare", TOKENS, *args)
        assert result.exit_code == 0, result.output
        assert "groups       2 x 12 elements" in result.stdout


@pytest.mark.parametrize(
    ("args", "named", "times"),
    [
        (["compare", TOKENS, "--shape", "4", "--eps", "1e-5", "--eps", "1e-3"], "--eps", 2),
        (["compare", TOKENS, "--shape", "4", "--shape", "3", "4"], "--shape", 2),
        (
            ["compare", TOKENS, "--shape", "4", "--weight=a.npy", "--weight", "b.npy",
             "--weight", "c.npy"],
            "--weight",
            3,
        ),
        (["compare", TOKENS, "--shape", "4", "--format", "json", "--format", "console"],
         "--format", 2),
        (["explain", TOKENS, "--shape", "4", "--eps", "1e-5", "--eps=1e-6"], "--eps", 2),
        (["run", "suite.toml", "-k", "a", "--pattern", "b"], "-k is given 2 times, as -k and "
         "--pattern", 2),
        (["compare", TOKENS, "--shape", "4", "--normalized-shape", "4"], "--shape is given 2 "
         "times, as --shape and --normalized-shape", 2),
    ],
)  # fmt: skip
def test_an_option_of_one_value_given_twice_is_refused(
    args: list[str], named: str, times: int
) -> None:
    # Click keeps the last value: the first would be dropped without a word
    line = assert_user_error(invoke(*args), f"{named}", "give it once")
    assert f" is given {times} times" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--shape", "4", "--affine", "--no-affine"], "--affine and --no-affine are both given"),
        (["--op", "batch_norm", "--eval", "--train"], "--train and --eval are both given"),
        (["--shape", "4", "--no-chunks", "--chunks"], "--chunks and --no-chunks are both given"),
    ],
)
def test_a_flag_given_both_ways_is_refused(args: list[str], words: str) -> None:
    assert_user_error(invoke("compare", TOKENS, *args), f"{words}: give one of them")


def test_help_wins_over_a_repeated_option_and_completion_ignores_it() -> None:
    result = invoke("compare", TOKENS, "--shape", "4", "--eps", "1", "--eps", "2", "--help")
    assert result.exit_code == 0 and "--eps" in result.stdout
    env = {
        "_LNCHECK_COMPLETE": "complete_bash",
        "COMP_WORDS": "lncheck compare x.npy --eps 1 --eps 2 --op ",
        "COMP_CWORD": "8",
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="lncheck")
    assert "layer_norm" in result.stdout and "given 2 times" not in result.output


def test_every_command_refuses_repeated_options() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert commands and all(isinstance(c, Command) for c in commands.values())


def test_repeatable_options_and_flags_may_be_given_twice(tmp_path: Path) -> None:
    result = invoke(
        "compare", TOKENS, "--shape", "4", "--strict", "--strict", "--json",
        "--report", f"json={tmp_path / 'r.json'}", "--report", f"junit={tmp_path / 'r.xml'}",
        "--expected", f"a={TOKENS}", "--expected", f"b={TOKENS}",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the input is no LayerNorm's output
    candidates = [c["candidate"] for c in json.loads(result.stdout)["checks"]]
    assert candidates[-2:] == ["a", "b"]


def test_shell_completion_can_be_installed() -> None:
    text = invoke("--help").stdout
    assert "--install-completion" in text and "--show-completion" in text


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", "3"], "--seed is for the backward pass's random upstream gradient, used "
         "only with --grad"),
        (["--candidate-timeout", "5"], "--candidate-timeout is for a program candidate, used "
         "only with --candidate-cmd"),
        # the upstream gradient given: the seed would draw nothing
        (["--grad", "--grad-output", TOKENS, "--seed", "3"], "--seed makes what --grad-output "
         "gives (the upstream gradient): leave one out"),
    ],
)  # fmt: skip
def test_an_option_that_would_do_nothing_without_another_is_refused(
    args: list[str], words: str
) -> None:
    assert_user_error(invoke("compare", TOKENS, "--shape", "4", *args), words)


def test_a_seed_beside_standard_inputs_upstream_gradient_names_it() -> None:
    text = '{"data": [[1, 2, 3, 4]], "grad_output": [[1, 1, 1, 1]]}'
    result = CliRunner().invoke(app, ["compare", "-", "--shape", "4", "--seed", "3"], input=text)
    assert_user_error(result, "--seed makes what standard input's grad_output gives")


@pytest.mark.parametrize("args", [["--grad", "--seed", "3"], ["--seed", "3"]])
def test_a_seed_beside_the_input_files_upstream_gradient_is_refused(
    args: list[str], tmp_path: Path
) -> None:
    # the file's grad_output turns the backward on and gives what the seed would draw: the
    # seed was ignored (or said to need --grad, which the file had turned on already)
    path = tmp_path / "g.npz"
    np.savez(path, input=np.ones((2, 4), np.float32), grad_output=np.ones((2, 4), np.float32))
    assert_user_error(
        invoke("compare", str(path), "--shape", "4", *args),
        f"--seed makes what {path}'s grad_output gives (the upstream gradient): leave one out",
    )


@pytest.mark.parametrize(
    "args", [["--strict-baseline"], ["--baseline-rtol", "0.1", "--baseline-atol", "0"]]
)
def test_baseline_tolerances_without_a_baseline_are_refused(args: list[str]) -> None:
    suite = str(EXAMPLES / "suite.toml")
    assert_user_error(invoke("run", suite, *args), "is for drift from a baseline: give --baseline")


@pytest.mark.parametrize(
    ("flag", "op"), [("--eval", "layer_norm"), ("--no-track-running-stats", "rms_norm")]
)
def test_a_flag_turned_off_is_named_as_typed(flag: str, op: str) -> None:
    args = ["--op", op, "--shape", "4", flag]
    assert_user_error(invoke("compare", TOKENS, *args), f"{flag} does not apply to {op}")
