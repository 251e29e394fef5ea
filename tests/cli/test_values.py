"""Values on the command line: a misspelled choice gets a did-you-mean (and no pydantic-style
"Value error,"), ``--shape=3 4`` is ``--shape 3 4``, and shell completion can be installed."""

from __future__ import annotations

import pytest

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


def test_shape_with_an_equals_sign_takes_the_following_dims() -> None:
    for args in (["--shape=3", "4"], ["--shape", "3", "4"], ["--shape=3,4"]):
        result = invoke("compare", TOKENS, *args)
        assert result.exit_code == 0, result.output
        assert "groups       2 x 12 elements" in result.stdout


def test_shell_completion_can_be_installed() -> None:
    text = invoke("--help").stdout
    assert "--install-completion" in text and "--show-completion" in text
