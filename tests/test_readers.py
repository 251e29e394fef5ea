"""File readers (``lncheck.readers``): every format, every documented error, and nothing ever
unpickled."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.readers import READERS, read_arrays, read_npz

from .cli.helpers import assert_user_error, invoke
from .conftest import REPO


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _error(path: str | Path, **kw: Any) -> str:
    with pytest.raises(InputError) as info:
        read_arrays(str(path), **kw)
    return str(info.value)


def test_npy_is_memory_mapped_and_keeps_its_dtype(write: Callable[..., Path]) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    loaded = read_arrays(str(write("x.npy", x)))
    assert isinstance(loaded.arrays["input"], np.memmap)
    assert loaded.dtype_names == {"input": "float32"}
    np.testing.assert_array_equal(loaded.arrays["input"], x)


def test_npz_keeps_every_array_by_name(write: Callable[..., Path]) -> None:
    path = write("d.npz", input=np.ones((3, 4)), weight=np.full(4, 2.0, np.float32))
    loaded = read_arrays(str(path))
    assert set(loaded.arrays) == {"input", "weight"}
    assert loaded.dtype_names == {"input": "float64", "weight": "float32"}
    np.testing.assert_array_equal(loaded.arrays["weight"], np.full(4, 2.0))


def test_npz_members_larger_than_a_read_come_back_whole(tmp_path: Path) -> None:
    # read a chunk (1 MiB) at a time into the array: big-endian, Fortran order, compressed
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(700, 500)).astype(">f8"))
    path = tmp_path / "big.npz"
    np.savez_compressed(path, input=x, empty=np.zeros((0, 3)))
    loaded = read_arrays(str(path)).arrays
    np.testing.assert_array_equal(loaded["input"], x)
    assert loaded["input"].dtype == x.dtype and loaded["empty"].shape == (0, 3)


@pytest.mark.parametrize("name", ["x.npy", "x.npz"])
def test_a_dtype_of_no_size_is_refused_before_anything_is_allocated(
    tmp_path: Path, name: str
) -> None:
    # NumPy would widen |S0 to one byte per value: 3 GB for this header alone
    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(
        header, {"descr": "|S0", "fortran_order": False, "shape": (3 << 30,)}
    )
    path = tmp_path / name
    if name.endswith(".npz"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("input.npy", header.getvalue())
    else:
        path.write_bytes(header.getvalue())
    with pytest.raises(InputError, match=r"declares dtype \|S0, whose values have no size"):
        read_arrays(str(path))


def test_read_npz_reads_only_the_selected_members(write: Callable[..., Path]) -> None:
    path = write("d.npz", a=np.ones(2), b=np.zeros(3))
    assert set(read_npz(path, lambda name: name == "b").arrays) == {"b"}


def test_fortran_and_big_endian_npy_load(write: Callable[..., Path]) -> None:
    x = np.arange(12.0).reshape(3, 4)
    f = read_arrays(str(write("f.npy", np.asfortranarray(x)))).arrays["input"]
    b = read_arrays(str(write("b.npy", x.astype(">f8")))).arrays["input"]
    np.testing.assert_array_equal(f, x)
    np.testing.assert_array_equal(b, x)


def test_read_arrays_reports_declared_dtype(write: Callable[..., Path]) -> None:
    loaded = read_arrays(str(write("x.json", {"data": [1.0], "dtype": "bfloat16"})))
    assert loaded.dtype_names == {"input": "bfloat16"}
    assert json.loads(json.dumps(loaded.arrays["input"].tolist())) == [1.0]


def test_pt_files_are_read_by_the_torch_backend() -> None:
    assert READERS[".pt"] == READERS[".pth"] == "lncheck.backends.torch.files:read"


# --- errors: one InputError that names the file and the problem ---------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.npy") == f"{tmp_path / 'nope.npy'}: no such file"
    assert "is a directory" in _error(tmp_path)


def test_unknown_suffix(write: Callable[..., Path]) -> None:
    path = write("x.csv", "1,2,3")
    assert _error(path).startswith(f"{path}: unknown file type '.csv'")


def test_pickled_npy_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    message = _error(path)
    assert message.startswith(str(path)) and "pickle" in message
    assert not marker.exists()


def test_pickled_npz_member_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    np.savez(path, input=np.array([_Payload(marker)], dtype=object))
    assert "pickle" in _error(path)
    assert not marker.exists()


def test_truncated_and_corrupt_npy(write: Callable[..., Path], tmp_path: Path) -> None:
    good = write("g.npy", np.ones((100, 4)))
    truncated = tmp_path / "t.npy"
    truncated.write_bytes(good.read_bytes()[:-50])
    assert "truncated" in _error(truncated)
    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"\x93NUMPY\x01\x00" + b"garbage" * 10)
    assert "not a valid .npy" in _error(corrupt)


def test_a_header_that_ends_mid_expression_is_an_input_error(tmp_path: Path) -> None:
    """Found by the fuzzer: numpy's header parser raised tokenize.TokenError."""
    valid = (REPO / "tests" / "data" / "bad" / "good.npy").read_bytes()
    path = tmp_path / "mangled.npy"
    path.write_bytes(valid[:108] + b"\x00" * 19 + b"(")
    message = _error(path)
    assert message.startswith(f"{path}: not a valid .npy file")


def test_a_header_holding_code_is_refused_in_words(tmp_path: Path) -> None:
    # NumPy's literal parser names the node it refused by its repr: "<ast.Call object at 0x7f...>"
    header = "{'descr': __import__('os').system('touch pwned'), 'fortran_order': False, "
    header += "'shape': (2,), }"
    header += " " * (127 - 10 - len(header)) + "\n"
    path = tmp_path / "code.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    message = _error(path)
    assert message == (
        f"{path}: not a valid .npy file (malformed node or string on line 1: code, not a literal)"
    )
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    # other parsers' messages keep their own words
    from lncheck.readers import _reason

    assert _reason(ValueError("bad <Foo object at 0x7f00>")) == "bad <Foo object at 0x7f00>"


def test_max_bytes(write: Callable[..., Path]) -> None:
    path = write("x.npy", np.ones((64, 4)))
    assert "max_bytes limit 100" in _error(path, max_bytes=100)
    result = invoke("compare", str(path), "--shape", "4", "--max-bytes", "100")
    assert_user_error(result, "x.npy", "--max-bytes limit 100")


def test_duplicate_npz_members_are_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for value in (1.0, 2.0):
            buffer = io.BytesIO()
            np.save(buffer, np.full((1, 2), value))
            archive.writestr("input.npy", buffer.getvalue())
    result = invoke("compare", str(path), "--shape", "2")
    assert result.exit_code == 2 and "two arrays named 'input'" in result.stderr


def test_an_empty_input_path_is_a_user_error() -> None:
    result = invoke("compare", "", "--shape", "2")
    assert result.exit_code == 2 and "no input file given" in result.stderr
