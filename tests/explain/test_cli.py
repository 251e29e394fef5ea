"""``lncheck explain`` on the command line: through typer's CliRunner, and once as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lncheck.cli import app

from ..conftest import EXAMPLES, REPO, heavy_modules_after
from .conventions import normalize, rounded

runner = CliRunner()
KERAS = str(EXAMPLES / "keras_ln.npz")
GEMMA = str(EXAMPLES / "gemma_rms.npz")
SCHEMA = {
    "op": str,
    "axes": list,
    "groups": (int, type(None)),
    "grouping": (str, type(None)),
    "eps": float,
    "variance": str,
    "variance_algorithm": str,
    "eps_placement": str,
    "centered": bool,
    "affine": str,
    "torch_code": str,
    "max_abs_residual": float,
    "rms_residual": float,
    "verdict": str,
}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["explain", *args])


def test_the_keras_example_is_explained_exactly() -> None:
    result = invoke(KERAS, KERAS)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("explain: input (4, 16, 64) float32 -> output float32; ")
    assert "Candidates, best first" in out
    assert "   nn.LayerNorm([64], eps=1e-3)(x)" in out
    assert (
        "EXPLAINED (exactly): LayerNorm over the last dim (64,), eps=1e-3, biased variance, "
        "eps inside the sqrt, no affine"
    ) in out


def test_json_has_exactly_the_schema_of_issue_12() -> None:
    result = invoke(GEMMA, GEMMA, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"explained", "candidates"} and doc["explained"] is True
    assert doc["candidates"], doc
    for c in doc["candidates"]:
        assert set(c) == set(SCHEMA)
        for key, kind in SCHEMA.items():
            assert isinstance(c[key], kind), (key, c[key])
        assert c["verdict"] in ("exact", "rounding", "none")
        assert c["grouping"] in ("contiguous", "interleaved", None)
        assert c["affine"] in ("none", "given", "given_offset", "swapped", "fitted")
    first = doc["candidates"][0]
    # the weight came from the .npz: Gemma's 1 + w, applied before the cast to bfloat16
    assert (first["op"], first["axes"], first["centered"], first["affine"]) == (
        "rms_norm",
        [1],
        False,
        "given_offset",
    )
    assert (first["eps"], first["verdict"], first["groups"]) == (1e-6, "exact", None)
    assert first["torch_code"].endswith(".to(torch.bfloat16)")


def test_noise_is_not_explained_and_exits_1(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(8, 64)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.normal(size=(8, 64)).astype(np.float32))
    result = invoke(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"))
    assert result.exit_code == 1, result.output
    assert "Closest attempts (none explains)" in result.stdout
    assert "NOT EXPLAINED: no candidate reproduces the output within rounding" in result.stdout
    as_json = invoke(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json")
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["explained"] is False and all(c["verdict"] == "none" for c in doc["candidates"])


@pytest.mark.parametrize("eps", ["-1", "-0.5"])
def test_a_layer_whose_output_is_nan_where_the_observed_is_not_explains_nothing(
    tmp_path: Path, eps: str
) -> None:
    # eps = -1 makes var + eps negative in every group (-0.5 in some): the pinned layer's output
    # is NaN there, which no rounding explains (it was EXPLAINED, exit 0: max(0.0, nan) is 0.0)
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", ((x - mean) / np.sqrt(var + 1e-5)).astype(np.float32))
    assert (var[:, 0] + float(eps) < 0).any()
    result = invoke(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--eps", eps)
    assert result.exit_code == 1, result.output
    assert result.stdout.rstrip().endswith("NaN or inf on one side only)"), result.stdout
    # the eps pinned, not "no eps fits every group" (eps = 1e-5 does)
    assert "(as given), biased variance" in result.stdout
    assert "no eps fits" not in result.stdout
    as_json = invoke(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--eps", eps, "--json")
    doc = json.loads(as_json.stdout)
    assert doc["explained"] is False and all(c["verdict"] == "none" for c in doc["candidates"])


def test_pins_and_parameters_from_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 5, 7)).astype(np.float32)
    w = rng.normal(1, 0.2, (6, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    y = rounded(normalize(x, (1, 3), 1e-5, weight=w[:, None, :]), "float32")
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--weight", str(tmp_path / "w.npy")]
    result = invoke(*args, "--axes", "1", "3", "--eps", "1e-5", "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["candidates"][0]
    assert (first["axes"], first["affine"], first["eps"]) == ([1, 3], "given", 1e-5)
    # a pin the output contradicts: nothing explains it
    assert invoke(*args, "--op", "rms_norm").exit_code == 1


def test_members_explain_does_not_read_are_named_in_a_note(tmp_path: Path) -> None:
    # a misspelt member beside the output, and a kernel's statistics, were dropped silently
    x = np.random.default_rng(3).normal(size=(4, 16))
    y = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.save(tmp_path / "x.npy", (100 * x).astype(np.int64))  # converted to float64 when read
    y = (100 * x).astype(np.int64)
    y = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + 1e-5)
    bundle = tmp_path / "b.npz"
    np.savez(bundle, output=y, outptu=y, rstd=np.ones(4, np.float32))
    result = invoke(str(tmp_path / "x.npy"), str(bundle))
    assert result.exit_code == 0, result.output
    assert f"note: {bundle}: 'outptu', 'rstd' not used (explain reads the output and input" in (
        result.stdout
    )
    # a file given as both: its input, output and weight are all read
    both = invoke(GEMMA, GEMMA)
    assert both.exit_code == 0 and "not used" not in both.stdout, both.stdout
    # --no-affine leaves the weight out with its own note, said once
    plain = invoke(GEMMA, GEMMA, "--no-affine").stdout
    assert plain.count("not used") == 1 and "weight not used: --no-affine" in plain


def test_no_affine_leaves_the_input_files_own_weight_out_and_says_so(tmp_path: Path) -> None:
    # the weight in GEMMA's .npz is a default: --no-affine searches without it (it read
    # "--weight is given, but --affine is off", an option never given)
    result = invoke(GEMMA, GEMMA, "--no-affine")
    assert result.exit_code == 1, result.output
    assert f"note: {GEMMA}'s weight not used: --no-affine" in result.stdout
    assert "no affine" in result.stdout and "weight" not in result.stdout.split("note:")[0]
    # a file a layer without affine parameters made is explained from that file
    x = np.random.default_rng(2).normal(size=(4, 16)).astype(np.float32)
    w = np.linspace(0.5, 1.5, 16).astype(np.float32)
    np.savez(
        tmp_path / "b.npz", input=x, weight=w, output=rounded(normalize(x, (1,), 1e-5), "float32")
    )
    bundle = str(tmp_path / "b.npz")
    assert invoke(bundle, bundle).exit_code == 0  # the weight may go unused anyway
    result = invoke(bundle, bundle, "--no-affine", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["candidates"][0]["affine"] == "none"
    # a weight given as an option contradicts --no-affine
    np.save(tmp_path / "w.npy", w)
    message = _error(invoke(bundle, bundle, "--no-affine", "--weight", str(tmp_path / "w.npy")))
    assert message == "lncheck: error: --weight is given, but --affine is off"


def _error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lncheck: error: "), result.stderr
    assert result.stdout == ""
    return str(lines[0])


def test_invalid_input_exits_2_with_one_line_naming_the_option(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.normal(size=(4, 32, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.normal(size=(4, 32, 6)).astype(np.float32))
    np.save(tmp_path / "short.npy", np.zeros(5))
    x, y, short = (str(tmp_path / n) for n in ("x.npy", "y.npy", "short.npy"))
    assert _error(invoke(x, short)) == (
        f"lncheck: error: {short}: the observed output has shape (5,), the input ({x}) "
        "(4, 32, 6): they must match"
    )
    both = tmp_path / "xy.npz"
    np.savez(both, x=np.ones((2, 4)), y=np.ones((3, 4)))
    assert _error(invoke(str(both), str(both))) == (
        f"lncheck: error: {both}: the observed output has shape (3, 4), its input (2, 4): "
        "they must match"
    )
    nan = rng.normal(size=(4, 32, 6)).astype(np.float32)
    nan[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert _error(invoke(str(tmp_path / "nan.npy"), y)) == (
        f"lncheck: error: {tmp_path / 'nan.npy'}: 1 non-finite value: explain needs finite inputs"
    )
    assert "--groups 5 does not divide the 32 channels" in _error(invoke(x, y, "--groups", "5"))
    line = _error(invoke(x, y, "--weight", short))
    assert "--weight has shape (5,), which fits no normalization" in line
    assert "--op local_response_norm: explain searches" in _error(
        invoke(x, y, "--op", "local_response_norm")
    )
    assert "--eps must be finite, got nan" in _error(invoke(x, y, "--eps", "nan"))
    tiny = invoke(x, y, "--budget", "1e-12")  # ran out before any structure was tried
    assert tiny.exit_code == 1 and "no explanation found: the budget ran out first" in tiny.stdout
    for budget in ("0", "-1", "nan"):  # no search: no verdict ("nothing fits" would be false)
        assert f"--budget must be a positive number of seconds, got {budget}" in _error(
            invoke(x, y, "--budget", budget)
        )
    assert f"{x}: holds 'input', and no output named 'output'" in _error(invoke(x, x))
    assert "'y' (a file given as both INPUT and OBSERVED must hold both)" in _error(invoke(x, x))
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    assert f"{empty}: holds no arrays, and no output named" in _error(invoke(x, str(empty)))
    assert "no such file" in _error(invoke(x, str(tmp_path / "nope.npy")))
    # named by file: a mask in place of numbers, a layer's shape that does not fit the input
    np.save(tmp_path / "mask.npy", np.ones((4, 32, 6), dtype=bool))
    mask = str(tmp_path / "mask.npy")
    assert _error(invoke(x, mask)) == (
        f"lncheck: error: {mask}: the observed output is boolean; expected floating or integer "
        "numbers"
    )
    assert _error(invoke(x, y, "--shape", "5")) == (
        f"lncheck: error: {x}: input has shape (4, 32, 6); LayerNorm(normalized_shape=(5,)) "
        "needs trailing dims (5,)"
    )
    # standard input is read once: a second "-" says so before anything is read
    for args, first in (
        (("-", y, "--weight", "-"), "the input"),
        ((x, y, "--weight", "-", "--bias", "-"), "read by --weight"),
    ):
        result = runner.invoke(app, ["explain", *args], input="[[1, 2, 3, 4]]")
        assert f"standard input is {first} already; give a file" in _error(result)


def test_as_a_process_stdout_is_the_json_document() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lncheck", "explain", KERAS, KERAS, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["explained"] is True
    first = doc["candidates"][0]
    assert (first["op"], first["eps"], first["verdict"]) == ("layer_norm", 1e-3, "exact")


def test_help_imports_neither_torch_nor_numpy() -> None:
    code = (
        "from lncheck.cli import app\n"
        "try:\n"
        "    app(['explain', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert heavy_modules_after(code) == []
    assert heavy_modules_after("from lncheck.cli import app") == []


def test_the_command_line_lists_the_ops_explain_searches() -> None:
    from lncheck.cli.explain import SEARCHED_OPS as listed
    from lncheck.explain.hypotheses import SEARCHED_OPS

    assert listed == SEARCHED_OPS
