"""What reaches a terminal, a pipe or a log: nothing cut at 80 columns, the shell's 141 for a
closed pipe, one stderr line for an unwritable stdout or a library's warning, control
characters spelled out, a quiet mode, and where a failing check fails."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ..conftest import EXAMPLES, REPO
from .helpers import assert_user_error, invoke

UNBIASED = ["--shape", "4", "--expected", str(EXAMPLES / "unbiased_kernel_output.npy")]
TOKENS = str(EXAMPLES / "tokens.npy")


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run by bash, ``lncheck`` being this interpreter's; the pipeline's status is
    lncheck's (``PIPESTATUS``)."""
    lncheck = f"{sys.executable} -m lncheck"
    script = f"{command.replace('lncheck ', lncheck + ' ', 1)}; exit ${{PIPESTATUS[0]}}"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )


# --- pipes, closed and full outputs -----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "compare examples/tokens.npy --shape 4",
        "compare examples/tokens.npy --shape 4 --json",
        # a failing check: still 141, never 1 ("a check failed")
        "compare examples/tokens.npy --shape 4 --expected examples/unbiased_kernel_output.npy",
        "run examples/suite.toml -k layer_norm-last",
        "run examples/suite.toml -k layer_norm-last --format junit",
        "--help",
        "compare --help",
        "ops",
    ],
)
def test_a_closed_pipe_exits_141_quietly(command: str) -> None:
    """The reader (``true``) is gone before lncheck writes, as ``head -1`` is once it has its
    line: deterministic, whatever fits in the pipe's buffer."""
    done = _shell(f"lncheck {command} | true")
    assert done.returncode == 141, (done.returncode, done.stderr)
    assert done.stderr == ""


def test_head_gets_its_line_and_lncheck_exits_quietly() -> None:
    done = _shell("lncheck compare examples/tokens.npy --shape 4 | head -1")
    assert done.returncode in (0, 141)  # 0 if all fitted in the pipe before head left
    assert done.stderr == "" and done.stdout.startswith("layer ")


def test_a_full_stdout_is_one_line_and_exit_2() -> None:
    done = _shell("lncheck compare examples/tokens.npy --shape 4 --json > /dev/full")
    assert done.returncode == 2
    assert (
        done.stderr == "lncheck: error: cannot write to standard output: No space left on device\n"
    )


@pytest.mark.parametrize("args", ["compare examples/tokens.npy --shape 4", "--version"])
def test_a_closed_stdout_is_one_line_and_exit_2(args: str) -> None:
    done = _shell(f"lncheck {args} >&-")
    assert done.returncode == 2
    assert done.stderr == "lncheck: error: cannot write to standard output: it is closed\n"


def test_ctrl_c_is_130_not_the_status_of_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import lncheck.pipeline

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(lncheck.pipeline, "check_case", interrupted)
    result = invoke("compare", TOKENS, "--shape", "4")
    assert result.exit_code == 130  # 128 + SIGINT, as the shell reports it
    assert "Traceback" not in result.output


# --- warnings from libraries --------------------------------------------------------------


def test_a_librarys_warnings_are_folded_into_the_one_error_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lncheck.loading
    from lncheck.errors import InputError

    def warns_then_fails(*args: object, **kwargs: object) -> None:
        warnings.warn("nested tensors are a prototype", UserWarning, stacklevel=1)
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        raise InputError("x.pt: holds a nested tensor")

    monkeypatch.setattr(lncheck.loading, "load", warns_then_fails)
    result = invoke("compare", TOKENS, "--shape", "4")
    assert_user_error(
        result,
        "x.pt: holds a nested tensor (warned: UserWarning: nested tensors are a prototype; "
        "RuntimeWarning: overflow encountered in multiply)",
    )


def test_a_warning_in_a_run_that_works_is_one_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lncheck.pipeline

    real = lncheck.pipeline.check_case

    def warns(*args: object, **kwargs: object) -> object:
        warnings.warn("a library\nsays something\x1b[2J", UserWarning, stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lncheck.pipeline, "check_case", warns)
    result = invoke("compare", TOKENS, "--shape", "4", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["passed"] is True
    assert result.stderr == "lncheck: warning: UserWarning: a library\n"


# --- control characters ---------------------------------------------------------------------


def test_escapes_in_a_path_never_reach_the_terminal(tmp_path: Path) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2Jmissing.npy"
    result = invoke("compare", evil, "--shape", "8")
    assert_user_error(result, "\\x1b]0;pwned\\x07\\x1b[2Jmissing.npy: no such file")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    valid = tmp_path / "a\x1b[31mred\u202e.npy"
    np.save(valid, np.ones((2, 8), np.float32))
    shown = invoke("compare", str(valid), "--shape", "8")
    assert shown.exit_code == 0
    assert "a\\x1b[31mred\\u202e.npy" in shown.stdout
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout


def test_escapes_in_baseline_metadata_never_reach_the_terminal(tmp_path: Path) -> None:
    from lncheck.suite.baseline import open_baseline

    golden = tmp_path / "golden.npz"
    suite = EXAMPLES / "suite.toml"
    assert invoke("baseline", str(suite), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    meta = open_baseline(golden).meta
    meta["created"] = "\x1b]0;pwned\x07today"
    meta["torch"] = "2.0\x1b[2J"
    np.savez(golden, __meta__=np.array(json.dumps(meta)))
    result = invoke("run", str(suite), "-k", "rms_norm", "--baseline", str(golden))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "recorded \\x1b]0;pwned\\x07today" in result.stdout
    assert "recorded with torch 2.0\\x1b[2J" in result.stdout


# --- widths: nothing is ever cut ----------------------------------------------------------


def test_piped_output_cuts_no_value_name_or_verdict() -> None:
    """Piped (no terminal, so 80 columns): every verdict and number whole."""
    done = _shell("lncheck compare examples/tokens.npy --shape 4 --expected "
                  "examples/unbiased_kernel_output.npy | cat")  # fmt: skip
    assert done.returncode == 1
    assert "…" not in done.stdout
    checks = done.stdout[done.stdout.index("Checks against") : done.stdout.index("max ulp: ")]
    marks = [
        line.split()[-1] for line in checks.splitlines() if line.startswith("   ") and line.strip()
    ]
    assert marks == ["pass"] * 6 + ["FAIL"]
    assert "24/24 (100.0%)" in checks and "1.9e+06" in checks
    lines = [line for line in done.stdout.splitlines() if "does not match" not in line]
    assert max(len(line.rstrip()) for line in lines) <= 80


def test_a_suite_with_long_case_names_is_never_cut(tmp_path: Path) -> None:
    name = "layer_norm-a-case-name-long-enough-to-need-a-line-of-its-own-in-a-table-x"
    suite = tmp_path / "s.toml"
    suite.write_text(f'[[case]]\nname = "{name}"\nrandom = {{shape = [2, 8]}}\nshape = [8]\n')
    done = subprocess.run(
        [sys.executable, "-m", "lncheck", "run", str(suite)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert name in done.stdout and "…" not in done.stdout
    assert "PASS: 1 pass" in done.stdout


# --- quiet and where a check fails -----------------------------------------------------------


def test_compare_quiet_is_one_line_per_check_and_the_verdict() -> None:
    result = invoke("compare", TOKENS, *UNBIASED, "-q")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 7 + 1
    assert lines[0] == "nn.LayerNorm output: pass (max abs 1.8e-07, 0/24 mismatched)"
    assert lines[6].startswith("expected output does not match the reference: 24 / 24 elements")
    assert "accuracy class mismatch: matches an unbiased variance" in lines[6]
    assert lines[7] == "FAIL: 1 of 7 checks failed (1 mismatch)"
    full = invoke("compare", TOKENS, *UNBIASED)
    assert len(full.stdout.splitlines()) > 60  # the full report stays the default
    json_too = invoke("compare", TOKENS, "--shape", "4", "--json", "--quiet")
    assert_user_error(json_too, "--quiet shortens the console output; it does not apply to --json")
    short = invoke("compare", TOKENS, "--shape", "4", "--json", "-q")  # named as typed
    assert_user_error(short, "-q shortens the console output; it does not apply to --json")
    # the failing groups are listed by the console tables alone
    for extra, where in (
        (["-q"], "-q"),
        (["--quiet"], "--quiet"),
        (["--json"], "--json"),
        (["--format", "junit"], "--format junit"),
    ):
        assert_user_error(
            invoke("compare", TOKENS, *UNBIASED, "--all-groups", *extra),
            f"--all-groups lengthens the console tables; it does not apply to {where}",
        )


def test_run_quiet_hides_the_bar_and_prints_the_summary() -> None:
    result = invoke("run", str(EXAMPLES / "suite.toml"), "-k", "rms_norm", "-q")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"Suite {EXAMPLES / 'suite.toml'}"
    assert result.stdout.splitlines()[-1] == "PASS: 1 pass"


def _expected_args(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> list[str]:
    """``compare`` of LayerNorm over the last 8 values of ``x``, with ``y`` as ``--expected``."""
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return [
        "compare",
        str(tmp_path / "x.npy"),
        "--shape",
        "8",
        "--expected",
        str(tmp_path / "y.npy"),
    ]


def test_a_failing_check_says_which_groups_fail_and_how_many_elements(tmp_path: Path) -> None:
    import torch

    x = np.random.default_rng(0).standard_normal((6, 5, 8)).astype(np.float32)
    y = torch.nn.functional.layer_norm(torch.from_numpy(x), (8,)).numpy()
    y[2, 1, :5] += 0.5  # 5 elements of group (2, 1)
    y[4, 0, 3] += 1.0  # 1 of group (4, 0)
    for g in range(12):  # and one element of 12 groups more
        y[5, g % 5, g % 8] += 0.25 if g < 5 else 0.0
    result = invoke(*_expected_args(tmp_path, x, y))
    assert result.exit_code == 1
    text = result.stdout
    assert "Where expected output fails: 7 of 30 groups, most mismatches first" in text
    table = text[text.index("Where expected") : text.index("Worst element")]
    rows = [line.split() for line in table.splitlines() if line.strip().startswith("(")]
    assert rows[0] == ["(2,", "1)", "5/8", "(62.5%)"]
    assert rows[1] == ["(4,", "0)", "1/8", "(12.5%)"]
    assert len(rows) == 7 and "--all-groups" not in table


def test_all_groups_lists_every_failing_group(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((40, 8)).astype(np.float32)
    args = _expected_args(tmp_path, x, np.zeros_like(x))  # every group fails
    few = invoke(*args).stdout
    assert "30 more failing groups: --all-groups lists them all" in few
    every = invoke(*args, "--all-groups").stdout
    table = every[every.index("Where expected") : every.index("Worst element")]
    assert len([line for line in table.splitlines() if line.strip().startswith("(")]) == 40
    assert "more failing groups" not in table


def test_statistics_tables_for_rms_instance_and_local_response_norm() -> None:
    rms = invoke("compare", TOKENS, "--op", "rms_norm", "--shape", "4").stdout
    assert "mean sq" in rms and "rms" in rms and "kappa" not in rms and "nan" not in rms
    assert "   1.50412305 " in rms  # the mean square of group (0, 0), not "mean 0 / nan"
    image = str(EXAMPLES / "image.npy")
    instance = invoke("compare", image, "--op", "instance_norm").stdout
    assert "Per-group statistics: reference\n" in instance and "kappa" in instance
    lrn = invoke("compare", image, "--op", "local_response_norm", "--size", "2").stdout
    assert "Per-group statistics: reference\n" in lrn and "mean sq" in lrn
    assert "groups       18 positions x 4 channels; each element over a window of 2" in lrn
    assert "windows of 2" in lrn and "groups of 2" not in lrn


def test_what_a_candidate_prints_goes_to_stderr_and_stdout_is_one_json_document(
    tmp_path: Path,
) -> None:
    # printed at import and at each call, from Python and through file descriptor 1
    (tmp_path / "chatty.py").write_text(
        "import os\nimport torch\nprint('imported')\n"
        "def ln(x, normalized_shape):\n"
        "    print('called')\n"
        "    os.write(1, b'from C\\n')\n"
        "    return torch.nn.functional.layer_norm(x, normalized_shape)\n"
    )
    done = _shell(
        f"lncheck compare {TOKENS} --shape 4 --candidate {tmp_path / 'chatty.py'}:ln --json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # nothing else on stdout
    assert doc["passed"] and any(c["candidate"] == "ln" for c in doc["checks"])
    assert done.stderr.split() == ["imported", "called", "from", "C"]


def test_nan_in_the_input_is_named_and_fails_as_nan_against_nan(tmp_path: Path) -> None:
    x = tmp_path / "nan.npy"
    np.save(x, np.array([[1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], np.float32))
    result = invoke("compare", str(x), "--shape", "4")
    assert result.exit_code == 1
    assert "the input holds NaN or inf in 1 of 2 groups" in result.stdout
    assert "NaN equals NaN only with --equal-nan" in " ".join(result.stdout.split())
    last = result.stdout.strip().splitlines()[-1]
    assert last == "FAIL: 6 of 6 checks failed (6 NaN against NaN)"
    assert invoke("compare", str(x), "--shape", "4", "--equal-nan").exit_code == 0
