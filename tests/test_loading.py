"""Case assembly (``lncheck.loading.load``): arrays from files or memory, rounded to the compute
dtype, matched against the op's spec; every mismatch an input error naming the file and the
option in the caller's spelling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck.case import Case
from lncheck.errors import InputError
from lncheck.loading import load
from lncheck.options import Surface, parse

from .cli.helpers import invoke, invoke_json
from .support import settings


def _load(path: str | Path, surface: Surface = "api", **options: Any) -> Case:
    """``path`` loaded as ``layer_norm`` over the last dim of 4 unless ``options`` say else."""
    options = {"op": "layer_norm", "normalized_shape": 4, **options}
    return load(parse(options, surface), str(path))


def _error(path: str | Path, surface: Surface = "cli", **options: Any) -> str:
    with pytest.raises(InputError) as info:
        _load(path, surface, **options)
    return str(info.value)


def test_npy_is_memory_mapped_and_keeps_its_dtype(write: Callable[..., Path]) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    case = _load(write("x.npy", x))
    assert isinstance(case.x, np.memmap)
    assert case.dtype == "float32" and case.input_dtype == "float32"
    np.testing.assert_array_equal(case.x, x)


def test_npz_with_weight_bias_and_expected(write: Callable[..., Path]) -> None:
    x = np.ones((3, 4))
    path = write(
        "d.npz", input=x, weight=np.full(4, 2.0), bias=np.zeros(4), expected=np.zeros((3, 4))
    )
    case = _load(path)
    assert case.dtype == "float64"
    np.testing.assert_array_equal(case.weight, np.full(4, 2.0))
    (given,) = case.given  # the input file's own expected output: candidate "expected"
    assert given.candidate == "expected" and list(given.quantities) == ["output"]
    np.testing.assert_array_equal(given.quantities["output"], np.zeros((3, 4)))


def test_npz_named_x_and_single_unnamed(write: Callable[..., Path]) -> None:
    assert _load(write("a.npz", x=np.ones((1, 4)))).x.shape == (1, 4)
    assert _load(write("b.npz", arr_0=np.ones((2, 4)))).x.shape == (2, 4)


def test_json_list_is_float32_and_object_has_dtype(write: Callable[..., Path]) -> None:
    case = _load(write("x.json", [[0.1, 2, 3, 4]]))
    assert case.dtype == "float32" and case.x.dtype == np.float32
    assert case.x[0, 0] == np.float32(0.1)
    obj = {"data": [[1, 2, 3, 4]], "dtype": "float16", "weight": [1, 1, 1, 2]}
    case = _load(write("y.json", obj))
    assert case.dtype == "float16" and case.x.dtype == np.float16
    np.testing.assert_array_equal(case.weight, [1, 1, 1, 2])


def test_json_from_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    case = _load("-")
    assert case.x.shape == (1, 4) and case.name == "-"
    # standard input is read once, as the input: an --expected "-" beside it is an error
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    assert _error("-", expected="-") == (
        "- (given to --expected): standard input is the input already; give a file"
    )
    # ...and once by one --expected entry
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 4), np.float32))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    assert _error(x, expected=["-", "mine=-"]) == (
        "- (given to --expected): standard input is read by another --expected entry already; "
        "give a file"
    )
    # ...and so by a parameter: after the input, an --expected entry or another parameter
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    assert _error("-", weight="-") == (
        "- (given to --weight): standard input is the input already; give a file"
    )
    for options, message in (
        ({"expected": "-", "weight": "-"}, "- (given to --weight): standard input is read by "
         "--expected already"),
        ({"weight": "-", "bias": "-"}, "- (given to --bias): standard input is read by --weight "
         "already"),
    ):  # fmt: skip
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[1, 1, 1, 1]")))
        assert _error(x, **options) == f"{message}; give a file"


def test_dtype_option_rounds_input_and_integers_become_float32(write: Callable[..., Path]) -> None:
    x = np.array([[1.0 + 2.0**-9, 2.0, 3.0, 4.0]])
    case = _load(write("x.npy", x), dtype="bfloat16")
    assert case.x[0, 0] == 1.0 and case.x.dtype == np.float32
    case = _load(write("i.npy", np.arange(8).reshape(2, 4)))
    assert case.dtype == "float32" and any("int64" in n for n in case.notes)


def test_fortran_and_big_endian_npy_load(write: Callable[..., Path]) -> None:
    x = np.arange(12.0).reshape(3, 4)
    f = _load(write("f.npy", np.asfortranarray(x))).x
    b = _load(write("b.npy", x.astype(">f8"))).x
    np.testing.assert_array_equal(f, x)
    np.testing.assert_array_equal(b, x)
    assert b.dtype.isnative


def test_big_endian_float64_is_computed_in_float64(tmp_path: Path) -> None:
    path = tmp_path / "be.npy"
    np.save(path, np.random.default_rng(0).standard_normal((3, 4)).astype(">f8"))
    code, doc = invoke_json("compare", str(path), "--shape", "4")
    assert code == 0
    assert (doc["dtype"], doc["input_dtype"], doc["notes"]) == ("float64", "float64", [])


def test_weight_and_bias_files(write: Callable[..., Path]) -> None:
    x = write("x.npy", np.ones((2, 4)))
    w = write("w.npy", np.arange(4.0))
    bz = write("b.npz", bias=np.ones(4))
    case = _load(x, weight=str(w), bias=str(bz))
    np.testing.assert_array_equal(case.weight, np.arange(4.0))
    np.testing.assert_array_equal(case.bias, np.ones(4))


def test_arrays_in_memory(write: Callable[..., Path]) -> None:
    """The Python API gives arrays, not paths: as ``given`` or inside the settings."""
    x = np.arange(8.0).reshape(2, 4)
    case = load(settings(normalized_shape=4, weight=np.full(4, 3.0)), "mine", given={"input": x})
    assert case.name == "mine" and case.dtype == "float64"
    np.testing.assert_array_equal(case.x, x)
    np.testing.assert_array_equal(case.weight, np.full(4, 3.0))
    listed = load(settings(normalized_shape=2), "lists", given={"input": [[1, 2], [3, 5]]})
    assert listed.x.shape == (2, 2) and listed.input_dtype == "int64"


def test_the_case_keeps_its_settings_and_spec(write: Callable[..., Path]) -> None:
    case = _load(write("x.npy", np.ones((2, 4), np.float32)), eps=1e-3, grad=True, seed=7)
    assert case.spec.op == "layer_norm" and case.spec.module == "LayerNorm"
    assert case.spec.eps == 1e-3 and case.spec.reduce_axes == (1,)
    assert case.settings["eps"] == 1e-3 and case.settings.given("eps")
    assert (case.grad, case.seed, case.device, case.vs_device, case.backend) == (
        True,
        7,
        "cpu",
        None,
        "torch",
    )


def test_a_given_upstream_gradient_turns_gradients_on(write: Callable[..., Path]) -> None:
    x = write("x.npy", np.ones((2, 4), np.float32))
    g = write("g.npy", np.ones((2, 4), np.float32))
    assert _load(x).grad is False
    assert _load(x, grad_output=str(g)).grad is True
    assert _load(x, grad_output=str(g), grad=True).grad is True
    # said off beside one: a contradiction, never one of them quietly ignored
    with pytest.raises(InputError, match=r"^grad= is false, and grad_output= gives an upstream"):
        _load(x, grad_output=str(g), grad=False)
    both = write("both.npz", input=np.ones((2, 4)), grad_output=np.ones((2, 4)))
    with pytest.raises(InputError, match=r"^grad= is false, and .*both.npz gives an upstream"):
        _load(both, grad=False)


# --- errors: one InputError that names the file, the option and the problem ----------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.npy") == f"{tmp_path / 'nope.npy'}: no such file"
    assert "is a directory" in _error(tmp_path)


def test_shape_mismatch_names_both_shapes(write: Callable[..., Path]) -> None:
    path = write("x.npy", np.ones((2, 3, 5)))
    message = _error(path, normalized_shape=(4, 8))
    assert message == (
        f"{path}: input has shape (2, 3, 5); "
        "LayerNorm(normalized_shape=(4, 8)) needs trailing dims (4, 8)"
    )


def test_weight_of_wrong_shape(write: Callable[..., Path]) -> None:
    x, w = write("x.npy", np.ones((2, 4))), write("w.npy", np.ones(3))
    message = _error(x, weight=str(w))
    assert message.startswith(
        f"{w} (given to --weight): weight has shape (3,); --weight must have shape (4,)"
    )
    missing = w.with_name("none.npy")
    assert _error(x, weight=str(missing)) == f"{missing} (given to --weight): no such file"
    assert f"{w} (given to weight=): weight has shape (3,); weight= must have shape (4,)" in (
        _error(x, "api", weight=str(w))
    )
    assert "key 'weight' must have shape (4,)" in _error(x, "suite", weight=str(w))


def test_expected_of_wrong_shape(write: Callable[..., Path]) -> None:
    x, e = write("x.npy", np.ones((2, 4))), write("e.npy", np.ones((4, 2)))
    assert (
        f"{e} (given to --expected): output has shape (4, 2); layer_norm on an input of shape "
        "(2, 4) needs (2, 4)"
    ) in _error(x, expected=str(e))


def test_an_array_in_memory_of_the_wrong_shape_is_named_as_its_keyword() -> None:
    with pytest.raises(InputError) as info:
        load(settings(normalized_shape=4, bias=np.ones(3)), "x", given={"input": np.ones((2, 4))})
    assert str(info.value).startswith("bias=: bias has shape (3,); bias= must have shape (4,)")
    with pytest.raises(InputError, match=r"^bias=: rms_norm has no bias \(it has a weight only"):
        load(settings("rms_norm", normalized_shape=4, bias=np.ones(4)), "x",
             given={"input": np.ones((2, 4))})  # fmt: skip


def test_parameters_a_layer_does_not_have(write: Callable[..., Path]) -> None:
    x = write("x.npy", np.ones((2, 4)))
    w = write("w.npy", np.ones(4))
    assert "the layer has no affine parameters (--affine is off)" in _error(
        x, weight=str(w), affine=False
    )
    image, m = write("i.npy", np.ones((2, 4, 3))), str(write("m.npy", np.ones(4)))
    assert _error(image, op="instance_norm", normalized_shape=None, running_mean=m) == (
        f"{m} (given to --running-mean): gives a running_mean, but InstanceNorm1d here keeps "
        "no running statistics (see --track-running-stats)"
    )
    # an op without the parameter at all, not just with it switched off
    b = str(write("b.npy", np.ones(4)))
    assert _error(x, running_mean=b) == (
        f"{b} (given to --running-mean): gives a running_mean, but layer_norm keeps no running "
        "statistics"
    )
    # a member of the input's own file: named by role (it read "rm.npz: layer_norm keeps ...")
    bundle = write("rm.npz", input=np.ones((2, 4)), running_mean=np.ones(4))
    assert _error(bundle) == (
        f"{bundle}: gives a running_mean, but layer_norm keeps no running statistics"
    )
    assert _error(x, op="rms_norm", normalized_shape=(4,), bias=b) == (
        f"{b} (given to --bias): rms_norm has no bias (it has a weight only)"
    )
    bundle = write("xb.npz", x=np.ones((2, 4)), bias=np.ones(4))
    assert _error(bundle, op="rms_norm", normalized_shape=(4,)) == (
        f"{bundle}: rms_norm has no bias (it has a weight only)"
    )
    assert _error(image, op="local_response_norm", normalized_shape=None, size=2, weight=b) == (
        f"{b} (given to --weight): local_response_norm has no weight"
    )
    assert _error(image, op="batch_norm", normalized_shape=None, training=False) == (
        "BatchNorm1d in eval mode normalizes with running statistics: "
        "give --running-mean and --running-var"
    )
    # one of the two given: the other is named
    rm = str(write("rm.npy", np.zeros(np.load(image).shape[1], np.float32)))
    assert _error(
        image, op="batch_norm", normalized_shape=None, training=False, running_mean=rm
    ) == ("BatchNorm1d in eval mode normalizes with running statistics: give --running-var too")


@pytest.mark.parametrize(
    ("arrays", "phrase"),
    [
        ({"input": np.ones((1, 4)), "x": np.ones((1, 4))}, "ambiguous"),
        ({"weight": np.ones(4)}, "no input array"),
        ({"input": np.ones((1, 4)), "wieght": np.ones(4)}, "unknown array 'wieght'"),
    ],
)
def test_npz_names(write: Callable[..., Path], arrays: dict[str, np.ndarray], phrase: str) -> None:
    assert phrase in _error(write("x.npz", **arrays))


@pytest.mark.parametrize(
    ("array", "phrase"),
    [
        (np.ones((2, 4), dtype=np.complex64), "complex"),
        (np.array([["a", "b", "c", "d"]]), "dtype <U1"),
        (np.zeros((2, 4), dtype=[("a", "f4"), ("b", "f4")]), "structured"),
        (np.float32(3.0), "scalar"),
        (np.zeros((0, 4), dtype=np.float32), "no elements"),
        # a mask, refused as JSON's true and false are
        (np.ones((2, 4), dtype=bool), "input is boolean; expected floating or integer numbers"),
    ],
)
def test_npy_that_is_not_real_numbers(
    write: Callable[..., Path], array: np.ndarray, phrase: str
) -> None:
    assert phrase in _error(write("x.npy", array))


@pytest.mark.parametrize(("text", "phrase"), [("5", "scalar"), ("[]", "no elements")])
def test_json_without_elements(write: Callable[..., Path], text: str, phrase: str) -> None:
    path = write("x.json", text)
    message = _error(path)
    assert message.startswith(str(path)) and phrase in message


def test_max_bytes(write: Callable[..., Path]) -> None:
    path = write("x.npy", np.ones((64, 4)))
    assert "--max-bytes" in _error(path, max_bytes=100)
    assert "max_bytes=" in _error(path, "api", max_bytes=100)


def test_errors_through_the_command_line_name_the_flag(write: Callable[..., Path]) -> None:
    x, w = write("x.npy", np.ones((2, 4))), write("w.npy", np.ones(3))
    result = invoke("compare", str(x), "--shape", "4", "--weight", str(w))
    assert result.exit_code == 2 and "--weight must have shape (4,)" in result.stderr


def test_values_beyond_the_compute_dtype_are_noted(write: Callable[..., Path]) -> None:
    import warnings

    path = write("x.json", [[1.0, 2.0, 3.0, 1e39]])  # float64 text, computed in float32
    assert "1 input value beyond float32's range became inf" in _load(path).notes
    big = write("i.npy", np.array([[1, 2, 3, 70000], [1, 2, 3, 4]]))
    assert "1 input value beyond float16's range became inf" in _load(big, dtype="float16").notes
    w = write("w.npy", np.full(4, 1e30, np.float32))
    x = write("x.npy", np.ones((2, 4), np.float32))
    case = _load(x, dtype="float16", weight=str(w))
    assert "4 weight values beyond float16's range became inf" in case.notes
    assert not [n for n in _load(x).notes if "range" in n]  # nothing rounded, nothing noted
    # NaN or inf given as a parameter is data under test, as in the input: a note, not an error
    bad = write("b.npy", np.array([0.0, np.nan, np.inf, np.nan], np.float32))
    assert "3 bias values are NaN or inf: so are the outputs they reach, on every side" in (
        _load(x, bias=str(bad), weight=str(w)).notes
    )
    # and the whole check says so in its notes, without a stray NumPy warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = lncheck.compare(
            np.ones((2, 4), np.float32) * np.arange(4), "layer_norm", normalized_shape=4,
            weight=np.full(4, 1e30, np.float32), dtype="float16",
        )  # fmt: skip
    assert any("weight values beyond float16's range" in n for n in report.header.notes)


def test_an_expected_output_stored_narrower_than_the_check_computes_is_noted(
    write: Callable[..., Path],
) -> None:
    x = write("x.npy", np.ones((2, 4), np.float32) * np.arange(4, dtype=np.float32))
    y16 = write("y16.npy", np.zeros((2, 4), np.float16))
    case = _load(x, "cli", expected=(str(y16),))
    assert case.notes[-1] == (
        f"{y16} (given to --expected) holds float16 values, the check computes in float32: if "
        "the layer ran in float16, have the check compute in it too (--dtype)"
    )
    assert not [n for n in _load(x, "cli", expected=(str(y16),), dtype="float16").notes
                if "holds" in n]  # fmt: skip
    y32 = write("y32.npy", np.zeros((2, 4), np.float32))
    assert not [n for n in _load(x, "cli", expected=(str(y32),)).notes if "holds" in n]
    # a bfloat16 tensor reads as float32 values: its reader's dtype name says what it was
    torch = pytest.importorskip("torch")
    ybf = x.with_name("ybf.pt")
    torch.save({"expected": torch.zeros((2, 4), dtype=torch.bfloat16)}, ybf)
    notes = _load(x, "cli", expected=(str(ybf),)).notes
    assert notes[-1].startswith(f"{ybf} (given to --expected) holds bfloat16 values")


def test_a_member_of_the_input_file_of_the_wrong_shape_is_not_called_an_option(
    write: Callable[..., Path],
) -> None:
    bundle = write("wshape.npz", input=np.ones((2, 4), np.float32), weight=np.ones(3, np.float32))
    assert _error(bundle) == (
        f"{bundle}: weight has shape (3,); the weight must have shape (4,) for layer_norm on an "
        "input of shape (2, 4)"
    )


@pytest.mark.parametrize(
    ("given", "phrase"),
    [
        ({"x": [[True, 2.5, 3, 4]]}, "input: holds True or False; give numbers"),
        ({"weight": [1, True, 1, 1]}, "weight: holds True or False; give numbers"),
        ({"bias": [0.0, np.bool_(False), 0.0, 0.0]}, "bias: holds True or False"),
        ({"x": [[1.0, np.array(True), 3.0, 4.0]]}, "input: holds True or False"),
    ],
)
def test_the_apis_lists_holding_booleans_are_refused(given: dict[str, Any], phrase: str) -> None:
    # NumPy reads True among numbers as 1.0 (an all-boolean array is refused by its dtype)
    options: dict[str, Any] = {"x": [[1.0, 2.5, 3.0, 4.0]], "normalized_shape": 4}
    with pytest.raises(InputError, match=phrase):
        lncheck.compare(**(options | given))
