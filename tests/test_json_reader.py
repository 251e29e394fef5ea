"""JSON input (``lncheck.json_reader``): lists and objects, standard input, every documented
error, and the size limit held by what parsing takes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.readers import read_arrays

from .cli.helpers import invoke


def _error(path: str | Path) -> str:
    with pytest.raises(InputError) as info:
        read_arrays(str(path))
    return str(info.value)


def test_json_list_is_float32_and_object_has_dtype(write: Callable[..., Path]) -> None:
    loaded = read_arrays(str(write("x.json", [[0.1, 2, 3, 4]])))
    assert loaded.dtype_names == {"input": "float32"}
    assert loaded.arrays["input"].dtype == np.float64  # rounded to the compute dtype when loaded
    obj = {"data": [[1, 2, 3, 4]], "dtype": "float16", "weight": [1, 1, 1, 2]}
    loaded = read_arrays(str(write("y.json", obj)))
    assert loaded.dtype_names == {"input": "float16", "weight": "float16"}
    np.testing.assert_array_equal(loaded.arrays["weight"], [1, 1, 1, 2])


def test_json_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[[1, 2, 3, 4]]")))
    assert read_arrays("-").arrays["input"].shape == (1, 4)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("[[1, 2], [3]]", "the JSON array is ragged"),
        ('[[1, "2", 3, 4]]', "the JSON array holds a string ('2')"),
        ("[[1, true, 3, 4]]", "the JSON array holds a boolean (true)"),
        ('{"data": [1, 2, 3, 4], "weight": [1, false]}', "'weight' holds a boolean (false)"),
        ("[[1, null, 3, 4]]", "null"),
        ("[[1, 2, 3, 4]", "invalid JSON at line 1"),
        ('{"dtype": "float32"}', 'no "data" array'),
        ('{"data": [1, 2, 3, 4], "dtype": "int7"}', '"dtype" must be one of'),
        ('{"data": [1, 2, 3, 4], "wieght": [1]}', "unknown key 'wieght'"),
        ("[[1e400, 2, 3, 4]]", "out of the float64 range"),
    ],
)
def test_malformed_json(write: Callable[..., Path], text: str, phrase: str) -> None:
    path = write("x.json", text)
    message = _error(path)
    assert message.startswith(str(path)) and phrase in message


def test_json_nan_and_infinity_literals_are_values(write: Callable[..., Path]) -> None:
    x = read_arrays(str(write("x.json", "[[NaN, Infinity, -Infinity, 1]]"))).arrays["input"]
    assert np.isnan(x[0, 0]) and x[0, 1] == np.inf and x[0, 2] == -np.inf


def test_deeply_nested_json_is_an_input_error(write: Callable[..., Path]) -> None:
    path = write("deep.json", "[" * 100_000 + "]" * 100_000)
    assert "nested" in _error(path)


def test_duplicate_json_keys_are_an_input_error() -> None:
    text = '{"data": [[1, 2]], "data": [[3, 4]]}'
    result = invoke("compare", "-", "--shape", "2", input=text)
    assert result.exit_code == 2 and "'data' twice" in result.stderr


def test_a_json_object_of_quantities_is_a_bundle(write: Callable[..., Path]) -> None:
    loaded = read_arrays(str(write("b.json", {"output": [[1, 2]], "rstd": [0.5]})))
    assert sorted(loaded.arrays) == ["output", "rstd"]
    loaded = read_arrays(str(write("i.json", {"data": [[1, 2]], "expected_rstd": [0.5]})))
    assert sorted(loaded.arrays) == ["expected_rstd", "input"]
    with pytest.raises(InputError, match="unknown key 'rstdd' in JSON object"):
        read_arrays(str(write("c.json", {"output": [[1, 2]], "rstdd": [0.5]})))


def test_json_is_held_to_the_limit_by_what_it_takes_to_parse(tmp_path: Path) -> None:
    # parsed, JSON takes ~25x its text: a file just under --max-bytes peaked at 25x the limit
    path = tmp_path / "x.json"
    path.write_text("[[1, 2, 3, 4]]")
    size = path.stat().st_size
    with pytest.raises(InputError, match=f"is {size} bytes of JSON, which takes about 32 times"):
        read_arrays(str(path), max_bytes=size * 31)
    assert read_arrays(str(path), max_bytes=size * 32).arrays["input"].shape == (1, 4)
