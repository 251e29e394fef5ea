"""Driving the command line through Typer's CliRunner, for the tests of every surface."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from lncheck.cli import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> Result:
    """``lncheck ARGS`` in this process."""
    return runner.invoke(app, list(args), input=input)


def invoke_json(*args: str, input: str | None = None) -> tuple[int, dict[str, Any]]:
    """``lncheck ARGS --json``: the exit status and the one JSON document on stdout."""
    result = invoke(*args, "--json", input=input)
    return result.exit_code, json.loads(result.stdout)


def assert_user_error(result: Result, *phrases: str) -> str:
    """Exit status 2, one ``lncheck: error:`` line holding every phrase, nothing on stdout;
    returns the line."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lncheck: error: ")
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]
