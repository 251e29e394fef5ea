"""The command line through Typer's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lncheck import __version__
from lncheck.cli import app, join_multi_int_options
from lncheck.layers import OP_NAMES

from .conftest import EXAMPLES, REPO, heavy_modules_after

runner = CliRunner()
TOKENS = str(EXAMPLES / "tokens.npy")
CHECK_KEYS = {
    "candidate",
    "quantity",
    "passed",
    "max_abs_err",
    "max_rel_err",
    "mean_abs_err",
    "mismatched",
    "total",
    "worst_index",
    "rtol",
    "atol",
}


def _run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def _json(*args: str, input: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = _run(*args, "--json", input=input)
    return result.exit_code, json.loads(result.stdout)


def _assert_user_error(result, *phrases: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lncheck: error: ")
    for phrase in phrases:
        assert phrase in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_compare_passes_on_the_example() -> None:
    result = _run("compare", TOKENS, "--shape", "3", "4")
    assert result.exit_code == 0, result.output
    assert "LayerNorm(normalized_shape=(3, 4)" in result.stdout
    assert "PASS: all 6 checks passed" in result.stdout


@pytest.mark.parametrize(
    ("shape", "groups", "size"), [(["3", "4"], 2, 12), (["3,4"], 2, 12), (["4"], 6, 4)]
)
def test_shape_forms(shape: list[str], groups: int, size: int) -> None:
    code, doc = _json("compare", TOKENS, "--shape", *shape)
    assert code == 0
    assert (doc["groups"], doc["group_size"]) == (groups, size)
    assert doc["params"]["normalized_shape"] == [int(s) for s in ",".join(shape).split(",")]


def test_json_schema() -> None:
    result = _run("compare", TOKENS, "--shape", "4", "--json")
    doc = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    assert result.stderr == ""
    assert doc["passed"] is True and doc["op"] == "layer_norm"
    assert doc["input_shape"] == [2, 3, 4] and doc["dtype"] == "float32"
    assert doc["params"] == {
        "normalized_shape": [4],
        "axes": [2],
        "eps": 1e-5,
        "elementwise_affine": True,
        "bias": True,
    }
    pairs = [(c["candidate"], c["quantity"]) for c in doc["checks"]]
    assert pairs == [
        ("torch.nn.LayerNorm", "output"),
        ("torch.nn.functional.layer_norm", "output"),
        ("torch.native_layer_norm", "output"),
        ("torch.native_layer_norm", "mean"),
        ("torch.native_layer_norm", "var"),
        ("torch.native_layer_norm", "rstd"),
    ]
    for check in doc["checks"]:
        assert set(check) >= CHECK_KEYS
        assert check["total"] == (24 if check["quantity"] == "output" else 6)
        assert check["max_abs_err"] < 1e-5


def test_perturbed_expected_fails_and_names_the_worst_index(write: Callable[..., Path]) -> None:
    x = np.load(TOKENS).astype(np.float64)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    y[1, 2, 3] += 0.01
    path = write("y.npy", y.astype(np.float32))
    result = _run("compare", TOKENS, "--shape", "4", "--expected", str(path))
    assert result.exit_code == 1
    assert (
        "expected output does not match the reference: 1 / 24 elements mismatched" in result.stdout
    )
    assert "worst element at index (1, 2, 3)" in result.stdout
    assert "FAIL: 1 of 7 checks failed" in result.stdout
    code, doc = _json("compare", TOKENS, "--shape", "4", "--expected", str(path))
    failing = [c for c in doc["checks"] if not c["passed"]]
    assert code == 1 and doc["passed"] is False
    assert [(c["candidate"], c["worst_index"]) for c in failing] == [("expected", [1, 2, 3])]


def test_unbiased_kernel_example_fails() -> None:
    result = _run(
        "compare",
        TOKENS,
        "--shape",
        "4",
        "--expected",
        str(EXAMPLES / "unbiased_kernel_output.npy"),
    )
    assert result.exit_code == 1
    assert "expected output does not match" in result.stdout


def test_stdin_json() -> None:
    code, doc = _json("compare", "-", "--shape", "4", input="[[1, 2, 3, 4], [0, 0, 1, 1]]")
    assert code == 0 and doc["input_shape"] == [2, 4] and doc["input"] == "-"


def test_dtype_option_and_explicit_tolerance() -> None:
    code, doc = _json(
        "compare", TOKENS, "--shape", "4", "--dtype", "bfloat16", "--rtol", "0.1", "--atol", "0.1"
    )
    assert code == 0 and doc["dtype"] == "bfloat16"
    assert {(c["rtol"], c["atol"]) for c in doc["checks"]} == {(0.1, 0.1)}


def test_zero_tolerance_fails_on_float32_rounding() -> None:
    code, doc = _json("compare", TOKENS, "--shape", "4", "--rtol", "0", "--atol", "0")
    assert code == 1 and not doc["passed"]


def test_examples_in_readme_run() -> None:
    assert _run("compare", str(EXAMPLES / "affine.npz"), "--shape", "8").exit_code == 0
    assert (
        _run(
            "compare", str(EXAMPLES / "small.json"), "--shape", "4", "--dtype", "float16"
        ).exit_code
        == 0
    )
    _assert_user_error(
        _run("compare", str(EXAMPLES / "affine.npz"), "--shape", "8", "--no-affine"), "affine.npz"
    )


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["compare", "missing.npy", "--shape", "4"], ["missing.npy: no such file"]),
        (["compare", TOKENS, "--shape", "5"], ["tokens.npy", "(2, 3, 4)", "(5,)"]),
        (["compare", TOKENS, "--shape", "4", "--eps", "abc"], ["--eps"]),
        (["compare", TOKENS, "--shape", "4", "--eps", "nan"], ["--eps must be finite"]),
        (
            ["compare", TOKENS, "--shape", "4", "--rtol", "1e-3"],
            ["--rtol was given without --atol"],
        ),
        (["compare", TOKENS, "--shape", "4", "--dtype", "int8"], ["--dtype"]),
        (["compare", TOKENS, "--shape", "4", "--bogus"], ["--bogus"]),
        (["compare", TOKENS, "--shape", "x"], ["--shape"]),
        (["compare", TOKENS], ["needs --shape"]),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], phrases: list[str]) -> None:
    _assert_user_error(_run(*args), *phrases)


def test_malformed_json_on_stdin() -> None:
    _assert_user_error(
        _run("compare", "-", "--shape", "4", input="[[1, 2, 3, 4]"), "-: invalid JSON"
    )


def test_pickled_npy_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _assert_user_error(_run("compare", str(path), "--shape", "1"), "obj.npy", "pickle")


def test_traceback_flag_prints_the_traceback_and_keeps_the_exit_status() -> None:
    result = _run("compare", "missing.npy", "--shape", "4", "--traceback")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr and "missing.npy" in result.stderr
    usage = _run("compare", "x.npy", "--no-such-option", "--traceback")
    assert usage.exit_code == 2 and "Traceback" in usage.stderr


def test_version() -> None:
    result = _run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"lncheck {__version__}"


def test_join_multi_int_options() -> None:
    assert join_multi_int_options(["compare", "--shape", "3", "4", "x.npy"]) == [
        "compare",
        "--shape",
        "3,4",
        "x.npy",
    ]
    assert join_multi_int_options(["--axes", "-1", "-2", "--eps", "1"]) == [
        "--axes",
        "-1,-2",
        "--eps",
        "1",
    ]
    assert join_multi_int_options(["--shape", "3,4"]) == ["--shape", "3,4"]
    assert join_multi_int_options(["--shape=3", "4.npy"]) == ["--shape=3", "4.npy"]


# --- as a real process ----------------------------------------------------------------------


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


def test_help_does_not_import_torch() -> None:
    code = (
        "from typer.testing import CliRunner; from lncheck.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['compare', '--help']); assert 'Examples' in r.output"
    )
    assert heavy_modules_after(code) == []


# --- every op from the command line -----------------------------------------------------------

IMAGE = str(EXAMPLES / "image.npy")


@pytest.mark.parametrize(
    ("args", "candidates"),
    [
        (["--op", "group_norm", "--groups", "2"], 3),
        (["--op", "instance_norm", "--affine"], 2),
        (["--op", "batch_norm", "--momentum", "none"], 3),
        (["--op", "rms_norm", "--shape", "3", "3"], 3),
        (["--op", "local_response_norm", "--size", "2"], 2),
        (["--axes", "1", "-1"], 3),
        (["--op", "layer_norm", "--shape", "3", "--activation", "leaky_relu=0.2"], 3),
    ],
)
def test_ops_from_the_command_line(args: list[str], candidates: int) -> None:
    code, doc = _json("compare", IMAGE, *args)
    assert code == 0, doc
    assert len({c["candidate"] for c in doc["checks"]}) == candidates


def test_batch_norm_eval_with_running_statistics_from_npz() -> None:
    code, doc = _json("compare", str(EXAMPLES / "bn_eval.npz"), "--op", "batch_norm", "--eval")
    assert code == 0
    assert doc["params"]["training"] is False
    assert {c["quantity"] for c in doc["checks"]} == {"output"}  # eval saves no statistics


def test_batch_norm_training_checks_running_statistics() -> None:
    code, doc = _json("compare", IMAGE, "--op", "batch_norm")
    assert code == 0
    quantities = {(c["candidate"], c["quantity"]) for c in doc["checks"]}
    assert ("torch.nn.BatchNorm2d", "running_var") in quantities
    assert ("torch.native_batch_norm", "rstd") in quantities


def test_channels_last_example() -> None:
    code, doc = _json(
        "compare",
        str(EXAMPLES / "image_nhwc.npy"),
        "--op",
        "group_norm",
        "--groups",
        "2",
        "--channel-axis",
        "-1",
    )
    assert code == 0 and doc["params"]["channel_axis"] == 3


def test_activation_is_its_own_quantity() -> None:
    code, doc = _json("compare", TOKENS, "--shape", "4", "--activation", "gelu")
    assert code == 0
    assert [c["quantity"] for c in doc["checks"] if c["candidate"] == "torch.nn.LayerNorm"] == [
        "output",
        "activation",
    ]


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (
            ["--op", "group_norm", "--groups", "3"],
            ["image.npy", "--groups 3 does not divide the 4 channels"],
        ),
        (["--op", "group_norm"], ["needs --groups"]),
        (["--op", "batch_norm", "--eval"], ["give --running-mean and --running-var"]),
        (["--op", "batch_norm", "--momentum", "fast"], ["--momentum"]),
        (["--op", "warp_norm"], ["--op"]),
        (["--op", "local_response_norm"], ["needs --size"]),
        (["--axes", "1", "1"], ["repeat an axis"]),
        (["--axes", "7"], ["axis 7 is out of range"]),
        (["--shape", "3", "--axes", "1"], ["--shape (3,) means axes (3,)"]),
        (["--shape", "3", "--activation", "tanh"], ["unknown activation 'tanh'"]),
        (["--op", "batch_norm", "--channel-axis", "0"], ["--channel-axis 0 is the batch axis"]),
    ],
)
def test_op_errors_are_one_line_and_exit_2(args: list[str], phrases: list[str]) -> None:
    _assert_user_error(_run("compare", IMAGE, *args), *phrases)


def test_ops_command_lists_every_op() -> None:
    result = _run("ops")
    assert result.exit_code == 0
    for op in OP_NAMES:
        assert op in result.stdout
    assert "nn.BatchNorm1d/2d/3d" in result.stdout and "--momentum 0.1" in result.stdout


def test_ops_does_not_import_torch_or_numpy() -> None:
    code = (
        "from typer.testing import CliRunner; from lncheck.cli import app; "
        "r = CliRunner().invoke(app, ['ops']); assert r.exit_code == 0, r.output"
    )
    assert heavy_modules_after(code) == []


def test_version_does_not_import_torch_or_numpy() -> None:
    code = (
        "from typer.testing import CliRunner; from lncheck.cli import app; "
        "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output"
    )
    assert heavy_modules_after(code) == []
