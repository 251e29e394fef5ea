"""Loading: every format, every documented error, and nothing ever unpickled."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.io import Sources, load_case, read_arrays
from lncheck.layers import Layer

LN4 = Layer("layer_norm", normalized_shape=(4,))


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_npy_is_memory_mapped_and_keeps_its_dtype(write: Callable[..., Path]) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    case = load_case(Sources(str(write("x.npy", x))), LN4)
    assert isinstance(case.x, np.memmap)
    assert case.dtype == "float32" and case.input_dtype == "float32"
    np.testing.assert_array_equal(case.x, x)


def test_npz_with_weight_bias_and_expected(write: Callable[..., Path]) -> None:
    x = np.ones((3, 4))
    path = write(
        "d.npz", input=x, weight=np.full(4, 2.0), bias=np.zeros(4), expected=np.zeros((3, 4))
    )
    case = load_case(Sources(str(path)), LN4)
    assert case.dtype == "float64"
    np.testing.assert_array_equal(case.weight, np.full(4, 2.0))
    assert case.expected is not None and case.expected.shape == (3, 4)


def test_npz_named_x_and_single_unnamed(write: Callable[..., Path]) -> None:
    assert load_case(Sources(str(write("a.npz", x=np.ones((1, 4))))), LN4).x.shape == (1, 4)
    assert load_case(Sources(str(write("b.npz", arr_0=np.ones((2, 4))))), LN4).x.shape == (2, 4)


def test_json_list_is_float32_and_object_has_dtype(write: Callable[..., Path]) -> None:
    case = load_case(Sources(str(write("x.json", [[0.1, 2, 3, 4]]))), LN4)
    assert case.dtype == "float32" and case.x.dtype == np.float32
    assert case.x[0, 0] == np.float32(0.1)
    obj = {"data": [[1, 2, 3, 4]], "dtype": "float16", "weight": [1, 1, 1, 2]}
    case = load_case(Sources(str(write("y.json", obj))), LN4)
    assert case.dtype == "float16" and case.x.dtype == np.float16
    np.testing.assert_array_equal(case.weight, [1, 1, 1, 2])


def test_json_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    assert load_case(Sources("-"), LN4).x.shape == (1, 4)


def test_dtype_option_rounds_input_and_integers_become_float32(write: Callable[..., Path]) -> None:
    x = np.array([[1.0 + 2.0**-9, 2.0, 3.0, 4.0]])
    case = load_case(Sources(str(write("x.npy", x))), LN4, dtype="bfloat16")
    assert case.x[0, 0] == 1.0 and case.x.dtype == np.float32
    case = load_case(Sources(str(write("i.npy", np.arange(8).reshape(2, 4)))), LN4)
    assert case.dtype == "float32" and any("int64" in n for n in case.notes)


def test_fortran_and_big_endian_npy_load(write: Callable[..., Path]) -> None:
    x = np.arange(12.0).reshape(3, 4)
    f = load_case(Sources(str(write("f.npy", np.asfortranarray(x)))), LN4).x
    b = load_case(Sources(str(write("b.npy", x.astype(">f8")))), LN4).x
    np.testing.assert_array_equal(f, x)
    np.testing.assert_array_equal(b, x)
    assert b.dtype.isnative


def test_weight_and_bias_files(write: Callable[..., Path]) -> None:
    x = write("x.npy", np.ones((2, 4)))
    w = write("w.npy", np.arange(4.0))
    bz = write("b.npz", bias=np.ones(4))
    case = load_case(Sources(str(x), weight=str(w), bias=str(bz)), LN4)
    np.testing.assert_array_equal(case.weight, np.arange(4.0))
    np.testing.assert_array_equal(case.bias, np.ones(4))


# --- errors: one InputError that names the file and the problem ---------------------------------


def _error(sources: Sources, layer: Layer = LN4, **kw: Any) -> str:
    with pytest.raises(InputError) as info:
        load_case(sources, layer, **kw)
    return str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _error(Sources(str(tmp_path / "nope.npy"))) == f"{tmp_path / 'nope.npy'}: no such file"
    assert "is a directory" in _error(Sources(str(tmp_path)))


def test_unknown_suffix(write: Callable[..., Path]) -> None:
    path = write("x.csv", "1,2,3")
    assert _error(Sources(str(path))).startswith(f"{path}: unknown file type '.csv'")


def test_pickled_npy_is_refused_and_never_unpickled(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    message = _error(Sources(str(path)))
    assert message.startswith(str(path)) and "pickle" in message
    assert not marker.exists()


def test_pickled_npz_member_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    np.savez(path, input=np.array([_Payload(marker)], dtype=object))
    assert "pickle" in _error(Sources(str(path)))
    assert not marker.exists()


def test_shape_mismatch_names_both_shapes(write: Callable[..., Path]) -> None:
    path = write("x.npy", np.ones((2, 3, 5)))
    message = _error(Sources(str(path)), Layer("layer_norm", normalized_shape=(4, 8)))
    assert message == (
        f"{path}: input has shape (2, 3, 5); "
        "LayerNorm(normalized_shape=(4, 8)) needs trailing dims (4, 8)"
    )


def test_weight_of_wrong_shape(write: Callable[..., Path]) -> None:
    x, w = write("x.npy", np.ones((2, 4))), write("w.npy", np.ones(3))
    message = _error(Sources(str(x), weight=str(w)))
    assert message.startswith(f"{w}: weight has shape (3,); --weight must have shape (4,)")


def test_expected_of_wrong_shape(write: Callable[..., Path]) -> None:
    x, e = write("x.npy", np.ones((2, 4))), write("e.npy", np.ones((4, 2)))
    assert "--expected must have shape (2, 4)" in _error(Sources(str(x), expected=str(e)))


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("[[1, 2], [3]]", "ragged"),
        ('[[1, "2", 3, 4]]', "a string"),
        ("[[1, true, 3, 4]]", "a boolean"),
        ("[[1, null, 3, 4]]", "null"),
        ("[[1, 2, 3, 4]", "invalid JSON at line 1"),
        ('{"dtype": "float32"}', 'no "data" array'),
        ('{"data": [1, 2, 3, 4], "dtype": "int7"}', '"dtype" must be one of'),
        ('{"data": [1, 2, 3, 4], "wieght": [1]}', "unknown key 'wieght'"),
        ("[[1e400, 2, 3, 4]]", "out of the float64 range"),
        ("5", "scalar"),
        ("[]", "no elements"),
    ],
)
def test_malformed_json(write: Callable[..., Path], text: str, phrase: str) -> None:
    path = write("x.json", text)
    message = _error(Sources(str(path)))
    assert message.startswith(str(path)) and phrase in message


def test_json_nan_and_infinity_literals_are_values(write: Callable[..., Path]) -> None:
    case = load_case(Sources(str(write("x.json", "[[NaN, Infinity, -Infinity, 1]]"))), LN4)
    assert np.isnan(case.x[0, 0]) and case.x[0, 1] == np.inf


def test_deeply_nested_json_is_an_input_error(write: Callable[..., Path]) -> None:
    path = write("deep.json", "[" * 100_000 + "]" * 100_000)
    assert "nested" in _error(Sources(str(path)))


@pytest.mark.parametrize(
    ("arrays", "phrase"),
    [
        ({"input": np.ones((1, 4)), "x": np.ones((1, 4))}, "ambiguous"),
        ({"weight": np.ones(4)}, "no input array"),
        ({"input": np.ones((1, 4)), "wieght": np.ones(4)}, "unknown array 'wieght'"),
    ],
)
def test_npz_names(write: Callable[..., Path], arrays: dict[str, np.ndarray], phrase: str) -> None:
    assert phrase in _error(Sources(str(write("x.npz", **arrays))))


@pytest.mark.parametrize(
    ("array", "phrase"),
    [
        (np.ones((2, 4), dtype=np.complex64), "complex"),
        (np.array([["a", "b", "c", "d"]]), "dtype <U1"),
        (np.zeros((2, 4), dtype=[("a", "f4"), ("b", "f4")]), "structured"),
        (np.float32(3.0), "scalar"),
        (np.zeros((0, 4), dtype=np.float32), "no elements"),
    ],
)
def test_npy_that_is_not_real_numbers(
    write: Callable[..., Path], array: np.ndarray, phrase: str
) -> None:
    assert phrase in _error(Sources(str(write("x.npy", array))))


def test_truncated_and_corrupt_npy(write: Callable[..., Path], tmp_path: Path) -> None:
    good = write("g.npy", np.ones((100, 4)))
    truncated = tmp_path / "t.npy"
    truncated.write_bytes(good.read_bytes()[:-50])
    assert "truncated" in _error(Sources(str(truncated)))
    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"\x93NUMPY\x01\x00" + b"garbage" * 10)
    assert "not a valid .npy" in _error(Sources(str(corrupt)))


def test_max_bytes(write: Callable[..., Path]) -> None:
    path = write("x.npy", np.ones((64, 4)))
    assert "--max-bytes" in _error(Sources(str(path)), max_bytes=100)


def test_read_arrays_reports_declared_dtype(write: Callable[..., Path]) -> None:
    loaded = read_arrays(str(write("x.json", {"data": [1.0], "dtype": "bfloat16"})))
    assert loaded.dtype_names == {"input": "bfloat16"}
    assert json.loads(json.dumps(loaded.arrays["input"].tolist())) == [1.0]
