"""``lncheck`` as a real process: exit statuses, stdout holding only the JSON, and the commands
that must not import torch or NumPy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO, heavy_modules_after


def _process(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lncheck", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        input=input,
        timeout=120,
    )


def test_subprocess_exit_statuses() -> None:
    ok = _process("compare", "examples/tokens.npy", "--shape", "3", "4")
    assert ok.returncode == 0 and "PASS" in ok.stdout
    bad = _process(
        "compare",
        "examples/tokens.npy",
        "--shape",
        "4",
        "--expected",
        "examples/unbiased_kernel_output.npy",
    )
    assert bad.returncode == 1
    err = _process("compare", "examples/nope.npy", "--shape", "4")
    assert err.returncode == 2 and err.stdout == ""
    assert err.stderr.strip() == "lncheck: error: examples/nope.npy: no such file"


def test_subprocess_json_is_the_only_output() -> None:
    done = _process("compare", "-", "--shape", "4", "--json", input="[[1, 2, 3, 4]]")
    assert done.returncode == 0
    assert json.loads(done.stdout)["passed"] is True


def test_subprocess_format_junit_is_the_only_output() -> None:
    import xml.etree.ElementTree as ET

    done = _process("compare", "-", "--shape", "4", "--format", "junit", input="[[1, 2, 3, 4]]")
    assert done.returncode == 0, done.stderr
    assert ET.fromstring(done.stdout).get("tests") == "1"


def test_help_does_not_import_torch() -> None:
    code = (
        "from typer.testing import CliRunner; from lncheck.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['compare', '--help']); assert 'Examples' in r.output"
    )
    assert heavy_modules_after(code) == []


@pytest.mark.parametrize("args", [["ops"], ["--version"], ["run", "--help"]])
def test_light_commands_do_not_import_torch_or_numpy(args: list[str]) -> None:
    code = (
        "from typer.testing import CliRunner; from lncheck.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output"
    )
    assert heavy_modules_after(code) == []


def test_the_command_line_asks_glibc_for_one_malloc_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    # mallopt(M_ARENA_MAX, 1), unless the user set MALLOC_ARENA_MAX; never an error
    import ctypes

    import lncheck.cli as cli

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cli._one_malloc_arena()
    assert calls == [(-8, 1)]
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    cli._one_malloc_arena()
    assert calls == [(-8, 1)]

    def missing(name: object) -> object:
        raise OSError("no libc")

    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setattr(ctypes, "CDLL", missing)
    cli._one_malloc_arena()  # a libc without it: nothing happens
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    cli._one_malloc_arena()
    assert calls == [(-8, 1)]


@pytest.mark.parametrize("stderr", ["/dev/full", "closed"])
def test_an_input_error_is_status_2_where_its_line_cannot_be_written(stderr: str) -> None:
    # 2>/dev/full or 2>&-: the message is lost, the status still says "invalid input" (it
    # said 1, a failed check)
    command = [sys.executable, "-m", "lncheck", "compare", "no_such.npy", "--shape", "4"]
    if stderr == "closed":
        done = subprocess.run(["sh", "-c", '"$@" 2>&-', "sh", *command], cwd=REPO, timeout=120)
    else:
        with open(stderr, "w") as full:
            done = subprocess.run(command, cwd=REPO, stderr=full, timeout=120)
    assert done.returncode == 2
