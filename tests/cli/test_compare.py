"""``lncheck compare`` through Typer's CliRunner: options, every op, outputs and user errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lncheck.cli import join_multi_int_options

from ..conftest import EXAMPLES
from .helpers import assert_user_error, invoke, invoke_json

TOKENS = str(EXAMPLES / "tokens.npy")
IMAGE = str(EXAMPLES / "image.npy")
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


def test_compare_passes_on_the_example() -> None:
    result = invoke("compare", TOKENS, "--shape", "3", "4")
    assert result.exit_code == 0, result.output
    assert "LayerNorm(normalized_shape=(3, 4)" in result.stdout
    assert "PASS: all 6 checks passed" in result.stdout


@pytest.mark.parametrize(
    ("shape", "groups", "size"),
    [(["3", "4"], 2, 12), (["3,4"], 2, 12), (["4"], 6, 4), (["--shape=3", "4"], 2, 12)],
)
def test_shape_forms(shape: list[str], groups: int, size: int) -> None:
    flag = [] if shape[0].startswith("--") else ["--shape"]
    code, doc = invoke_json("compare", TOKENS, *flag, *shape)
    assert code == 0
    assert (doc["groups"], doc["group_size"]) == (groups, size)
    assert doc["params"]["normalized_shape"] == [
        int(s) for s in ",".join(shape).removeprefix("--shape=").split(",")
    ]


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
    # `--shape=3 4` takes the following integers too; a file name is not one of them
    assert join_multi_int_options(["--shape=3", "4.npy"]) == ["--shape", "3", "4.npy"]
    assert join_multi_int_options(["--shape=3", "4", "x.npy"]) == ["--shape", "3,4", "x.npy"]
    assert join_multi_int_options(["--normalized-shape", "3", "4"]) == [
        "--normalized-shape",
        "3,4",
    ]


def test_json_schema() -> None:
    result = invoke("compare", TOKENS, "--shape", "4", "--json")
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
    result = invoke("compare", TOKENS, "--shape", "4", "--expected", str(path))
    assert result.exit_code == 1
    assert (
        "expected output does not match the reference: 1 / 24 elements mismatched" in result.stdout
    )
    assert "worst element at index (1, 2, 3)" in result.stdout
    assert "FAIL: 1 of 7 checks failed" in result.stdout
    code, doc = invoke_json("compare", TOKENS, "--shape", "4", "--expected", str(path))
    failing = [c for c in doc["checks"] if not c["passed"]]
    assert code == 1 and doc["passed"] is False
    assert [(c["candidate"], c["worst_index"]) for c in failing] == [("expected", [1, 2, 3])]


def test_unbiased_kernel_example_fails() -> None:
    result = invoke(
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
    code, doc = invoke_json("compare", "-", "--shape", "4", input="[[1, 2, 3, 4], [0, 0, 1, 1]]")
    assert code == 0 and doc["input_shape"] == [2, 4] and doc["input"] == "-"


def test_dtype_option_and_explicit_tolerance() -> None:
    code, doc = invoke_json(
        "compare", TOKENS, "--shape", "4", "--dtype", "bfloat16", "--rtol", "0.1", "--atol", "0.1"
    )
    assert code == 0 and doc["dtype"] == "bfloat16"
    assert {(c["rtol"], c["atol"]) for c in doc["checks"]} == {(0.1, 0.1)}


def test_zero_tolerance_fails_on_float32_rounding() -> None:
    code, doc = invoke_json("compare", TOKENS, "--shape", "4", "--rtol", "0", "--atol", "0")
    assert code == 1 and not doc["passed"]


def test_examples_in_readme_run() -> None:
    assert invoke("compare", str(EXAMPLES / "affine.npz"), "--shape", "8").exit_code == 0
    small = str(EXAMPLES / "small.json")
    assert invoke("compare", small, "--shape", "4", "--dtype", "float16").exit_code == 0
    assert_user_error(
        invoke("compare", str(EXAMPLES / "affine.npz"), "--shape", "8", "--no-affine"),
        "affine.npz",
    )


def test_options_are_named_as_typed_and_nothing_else_is_renamed(tmp_path: Path) -> None:
    # -q typed: a file named after --quiet keeps its name
    missing = str(tmp_path / "--quiet.npy")
    result = invoke("compare", TOKENS, "--shape", "4", "-q", "--expected", missing)
    assert_user_error(result, f"{missing} (given to --expected): no such file")


def test_a_missing_file_after_an_equals_sign_says_how_the_entry_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file named output=y.npy was "no such file", with no word of the QUANTITY=FILE reading
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output=y.npy").write_bytes(b"")
    result = invoke("compare", TOKENS, "--shape", "4", "--expected", "output=y.npy")
    assert_user_error(
        result,
        "output=y.npy (given to --expected): no such file; read as QUANTITY=FILE with FILE "
        "'y.npy' (the file 'output=y.npy' exists: write ./output=y.npy)",
    )
    result = invoke("compare", TOKENS, "--shape", "4", "--expected", "mine.rstd=z.npy")
    assert_user_error(result, "; read as NAME.QUANTITY=FILE with FILE 'z.npy'")
    # a file that is there but bad (standard input's JSON) is no question of reading
    result = invoke("compare", TOKENS, "--shape", "4", "--expected", "output=-", input="bad")
    line = assert_user_error(result, "output=- (given to --expected): invalid JSON")
    assert "read as" not in line


def test_a_weight_the_input_file_holds_is_not_replaced_without_a_word(tmp_path: Path) -> None:
    weight = tmp_path / "w.npy"
    np.save(weight, np.full(8, 3.0, np.float32))
    for role in ("--weight", "--bias"):
        assert_user_error(
            invoke("compare", str(EXAMPLES / "affine.npz"), "--shape", "8", role, str(weight)),
            f"affine.npz: holds a {role[2:]}, and {role} gives another",
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
    assert_user_error(invoke(*args), *phrases)


def test_malformed_json_on_stdin() -> None:
    assert_user_error(
        invoke("compare", "-", "--shape", "4", input="[[1, 2, 3, 4]"), "-: invalid JSON"
    )


def test_pickled_npy_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_user_error(invoke("compare", str(path), "--shape", "1"), "obj.npy", "pickle")


def test_traceback_flag_prints_the_traceback_and_keeps_the_exit_status() -> None:
    result = invoke("compare", "missing.npy", "--shape", "4", "--traceback")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr and "missing.npy" in result.stderr
    usage = invoke("compare", "x.npy", "--no-such-option", "--traceback")
    assert usage.exit_code == 2 and "Traceback" in usage.stderr


# --- every op from the command line -----------------------------------------------------------


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
    code, doc = invoke_json("compare", IMAGE, *args)
    assert code == 0, doc
    assert len({c["candidate"] for c in doc["checks"]}) == candidates


def test_batch_norm_eval_with_running_statistics_from_npz() -> None:
    code, doc = invoke_json(
        "compare", str(EXAMPLES / "bn_eval.npz"), "--op", "batch_norm", "--eval"
    )
    assert code == 0
    assert doc["params"]["training"] is False
    assert {c["quantity"] for c in doc["checks"]} == {"output"}  # eval saves no statistics


def test_batch_norm_training_checks_running_statistics() -> None:
    code, doc = invoke_json("compare", IMAGE, "--op", "batch_norm")
    assert code == 0
    quantities = {(c["candidate"], c["quantity"]) for c in doc["checks"]}
    assert ("torch.nn.BatchNorm2d", "running_var") in quantities
    assert ("torch.native_batch_norm", "rstd") in quantities


def test_channels_last_example() -> None:
    code, doc = invoke_json(
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
    code, doc = invoke_json("compare", TOKENS, "--shape", "4", "--activation", "gelu")
    assert code == 0
    assert [c["quantity"] for c in doc["checks"] if c["candidate"] == "torch.nn.LayerNorm"] == [
        "output",
        "activation",
    ]


def test_gelu_is_shown_as_gelu() -> None:
    result = invoke("compare", TOKENS, "--shape", "4", "--activation", "gelu")
    assert result.exit_code == 0, result.output
    assert "gelu" in result.stdout and "gelu=none" not in result.stdout


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
        (["--shape", "3", "--axes", "1"], ["--shape (3,) is not the shape (4,) of --axes (1,)"]),
        (["--shape", "3", "--activation", "tanh"], ["unknown activation 'tanh'"]),
        (["--op", "batch_norm", "--channel-axis", "0"], ["--channel-axis 0 is the batch axis"]),
        (["--shape", "3", "--groups", "2"], ["--groups does not apply to layer_norm"]),
    ],
)
def test_op_errors_are_one_line_and_exit_2(args: list[str], phrases: list[str]) -> None:
    assert_user_error(invoke("compare", IMAGE, *args), *phrases)


# --- what goes where: --format, --report FORMAT=PATH ------------------------------------------


def test_format_json_is_the_json_flag() -> None:
    by_flag = invoke("compare", TOKENS, "--shape", "4", "--json")
    by_format = invoke("compare", TOKENS, "--shape", "4", "--format", "json")
    assert by_format.exit_code == 0 and by_format.stderr == ""
    assert json.loads(by_format.stdout) == json.loads(by_flag.stdout)
    both = invoke("compare", TOKENS, "--shape", "4", "--json", "--format", "json")
    assert json.loads(both.stdout) == json.loads(by_flag.stdout)


def test_format_junit_on_stdout_is_a_suite_of_one() -> None:
    bad = str(EXAMPLES / "unbiased_kernel_output.npy")
    result = invoke("compare", TOKENS, "--shape", "4", "--expected", bad, "--format", "junit")
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuite" and root.get("tests") == "1" and root.get("failures") == "1"
    (case,) = root.iter("testcase")
    assert case.get("name") == TOKENS
    # the check's own wall time (torch's three paths and the reference: well over a ms)
    assert float(case.get("time", "0")) > 0 and root.get("time") == case.get("time")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("expected output does not match the reference")


def test_report_files_beside_the_console(tmp_path: Path) -> None:
    xml, doc = tmp_path / "r.xml", tmp_path / "r.json"
    result = invoke(
        "compare", TOKENS, "--shape", "4", "--report", f"junit={xml}", "--report", f"json={doc}"
    )
    assert result.exit_code == 0, result.output
    assert "PASS: all 6 checks passed" in result.stdout  # the console still goes to stdout
    assert json.loads(doc.read_text()) == invoke_json("compare", TOKENS, "--shape", "4")[1]
    root = ET.parse(xml).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    assert [c.get("name") for c in root.iter("testcase")] == [TOKENS]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.xml"]  # no temporaries


def test_report_console_to_a_file_and_json_to_stdout(tmp_path: Path) -> None:
    text = tmp_path / "r.txt"
    code, doc = invoke_json("compare", TOKENS, "--shape", "4", "--report", f"console={text}")
    assert code == 0 and doc["passed"] is True
    written = text.read_text()
    assert "PASS: all 6 checks passed" in written and "\x1b[" not in written  # no colour in files


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--format", "yaml"], ["--format", "unknown format 'yaml'", "console, json, junit"]),
        (["--json", "--format", "junit"], ["--json and --format junit contradict"]),
        (["--report", "r.xml"], ["--report must be FORMAT=PATH"]),
        (["--report", "junit="], ["--report must be FORMAT=PATH"]),
        (["--report", "xml=r.xml"], ["--report xml=r.xml: unknown format 'xml'"]),
        (
            ["--report", "junit=no/such/folder/r.xml"],
            ["--report junit=no/such/folder/r.xml: no such folder 'no/such/folder'"],
        ),
    ],
)
def test_output_option_errors(args: list[str], phrases: list[str]) -> None:
    assert_user_error(invoke("compare", TOKENS, "--shape", "4", *args), *phrases)


def test_backend_and_chunks_options() -> None:
    code, doc = invoke_json("compare", TOKENS, "--shape", "4", "--backend", "torch")
    assert code == 0 and doc["checks"][0]["candidate"] == "torch.nn.LayerNorm"
    unchunked = invoke_json("compare", TOKENS, "--shape", "4", "--no-chunks")[1]
    assert unchunked["checks"] == doc["checks"]
    assert_user_error(invoke("compare", TOKENS, "--shape", "4", "--backend", "jax"), "--backend")


def test_a_warning_shows_in_the_console_the_quiet_lines_and_json(
    write: Callable[..., Path],
) -> None:
    # n16's kind: a float16 RMSNorm scaled by +0.01 % in every row, with massive activations
    # (+0.3 % in bfloat16, n16 itself, is low_precision: test_verdicts)
    rng = np.random.default_rng(16)
    x = rng.standard_normal((8, 2048)).astype(np.float32)
    x[:, 17], x[:, 901] = 180.0, -95.0
    xh = torch.from_numpy(x).half().double()  # what --dtype float16 computes with
    y = xh * torch.rsqrt(xh.square().mean(-1, keepdim=True) + 1e-6) * 1.0001
    data, out = write("x.npy", x), write("y.npy", y.half().float().numpy())
    args = ["compare", str(data), "--op", "rms_norm", "--shape", "2048", "--eps", "1e-6",
            "--dtype", "float16", "--expected", str(out)]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0
    assert "warning: expected output: every output of a group moved alike (rstd +0.01" in (
        result.stdout.replace("\n", " ")
    )
    assert "PASS: all 6 checks passed (1 within the sequential-accumulation bound); 1 with a " in (
        result.stdout
    )
    quiet = invoke(*args, "-q").stdout
    assert "expected output: pass (" in quiet and "; warning: every output" in quiet
    code, doc = invoke_json(*args)
    (check,) = [c for c in doc["checks"] if c["candidate"] == "expected"]
    assert code == 0 and check["passed"] and check["warning"].startswith("every output")
    assert all("warning" not in c for c in doc["checks"] if c["candidate"] != "expected")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--op", "batch_norm"], "groups       4 x 18 elements, over axes (0, 2, 3)"),
        (["--shape", "4", "3", "3"], "groups       2 x 36 elements, over axes (1, 2, 3)"),
        (["--op", "instance_norm"], "groups       8 x 9 elements, over axes (2, 3)"),
        (
            ["--op", "group_norm", "--groups", "2"],
            "groups       4 x 18 elements, over axes (2, 3) and axis 1 in runs of 2",
        ),
    ],
)
def test_the_header_names_the_axes_a_group_spans(args: list[str], line: str) -> None:
    # README's FAQ says the groups line tells what each layer averages over; it gave counts
    result = invoke("compare", IMAGE, *args)
    assert result.exit_code == 0, result.output
    assert line in result.stdout.splitlines()
