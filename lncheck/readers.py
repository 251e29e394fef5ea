"""Hardened file readers: a file in, named arrays out, and nothing else.

Nothing is ever unpickled (``allow_pickle=False``, ``weights_only=True``), sizes declared by a
file are checked before anything that large is allocated or decompressed, and every failure
becomes an ``InputError`` that names the file. ``READERS`` maps a suffix to its reader; the
``.pt`` reader belongs to the torch backend and is looked up by name only when such a file is
read, so that loading never imports a backend.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import tokenize
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import dtypes
from lncheck.errors import InputError, LncheckError, option, with_context

STDIN = "-"
INPUT_NAMES = ("input", "x")
ARRAY_NAMES = ("weight", "bias", "expected", "running_mean", "running_var", "grad_output")
MAX_JSON_DEPTH = 64


def default_max_bytes() -> int:
    """Half of the machine's physical memory (or 8 GiB where that cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 << 30


@dataclass(frozen=True)
class Loaded:
    """Arrays read from one file, with the dtype each one claimed on disk."""

    arrays: dict[str, npt.NDArray[Any]]
    dtype_names: dict[str, str]


def read_arrays(path: str, *, max_bytes: int | None = None) -> Loaded:
    """Read every array in ``path`` (``-`` reads JSON from standard input).

    Raises:
        InputError: the file is missing, unreadable, malformed, too large, of an unknown kind,
            or holds something that is not a real-valued numeric array.
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    if not path:
        raise InputError("no input file given (an empty path)")
    try:
        if path == STDIN:
            return _from_json(sys.stdin.buffer.read(), limit)
        p = Path(path)
        if not p.exists():
            raise InputError("no such file")
        if p.is_dir():
            raise InputError("is a directory, not a file")
        suffix = p.suffix.lower()
        if suffix not in READERS:
            raise InputError(
                f"unknown file type {suffix or '(no suffix)'!r}; "
                f"expected one of {', '.join(READERS)}"
            )
        return _reader(READERS[suffix])(p, limit)
    except LncheckError as e:
        raise with_context(e, path) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RecursionError, MemoryError) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _reader(where: str | Callable[[Path, int], Loaded]) -> Callable[[Path, int], Loaded]:
    """A reader, importing it first where the registry names it as ``module:function``."""
    if callable(where):
        return where
    module, _, name = where.partition(":")
    found: Callable[[Path, int], Loaded] = getattr(importlib.import_module(module), name)
    return found


def over_limit(size: int, limit: int) -> InputError:
    return InputError(f"is {size} bytes, over the {option('max_bytes')} limit {limit}")


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


# --- readers -----------------------------------------------------------------------------


def _from_npy(path: Path, limit: int) -> Loaded:
    with path.open("rb") as f:
        shape, _, dtype = _read_npy_header(f)
        offset = f.tell()
    _check_declared(shape, dtype, limit, path.stat().st_size - offset)
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickle); refusing to load it")
    if math.prod(shape) == 0:
        array = np.zeros(shape, dtype)
    else:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    return Loaded({"input": array}, {"input": dtype.name})


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=1 << 16)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=1 << 16)
        else:
            raise InputError(f"unsupported .npy format version {version}")
    # numpy's header parser tokenizes the header: a mangled one can raise TokenError
    except (ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError) as e:
        raise InputError(f"not a valid .npy file ({_reason(e)})") from None
    return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype)


def _check_declared(
    shape: tuple[int, ...], dtype: np.dtype[Any], limit: int, available: int
) -> None:
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise InputError(
            f"declares shape {shape} of {dtype} ({nbytes} bytes), "
            f"over the {option('max_bytes')} limit {limit}"
        )
    if nbytes > available:
        raise InputError(
            f"is truncated: its header declares shape {shape} of {dtype} ({nbytes} bytes) "
            f"but only {max(available, 0)} bytes of data follow"
        )


def read_npz(path: Path, select: Callable[[str], bool], *, max_bytes: int | None = None) -> Loaded:
    """The arrays of an ``.npz`` file whose names ``select`` accepts (checked as ``read_arrays``).

    Raises:
        InputError: as ``read_arrays``.
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    try:
        return _from_npz(path, limit, select)
    except LncheckError as e:
        raise with_context(e, str(path)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _from_npz(path: Path, limit: int, select: Callable[[str], bool] | None = None) -> Loaded:
    if not zipfile.is_zipfile(path):
        raise InputError("is not a valid .npz file (not a zip archive)")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    seen: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise InputError(
                f"would decompress to {declared} bytes, "
                f"over the {option('max_bytes')} limit {limit}"
            )
        for member in members:
            if not member.filename.endswith(".npy"):
                raise InputError(f"member {member.filename!r} is not a .npy array")
            name = member.filename[: -len(".npy")]
            if name in seen:
                raise InputError(f"holds two arrays named {name!r}; which one is meant?")
            seen.add(name)
            if select is not None and not select(name):
                continue
            with archive.open(member) as f:
                shape, fortran, dtype = _read_npy_header(f)
                header = f.tell()
                if dtype.hasobject:
                    raise InputError(
                        f"array {name!r} holds Python objects (a pickle); refusing to load it"
                    )
                _check_declared(shape, dtype, limit, member.file_size - header)
                count = math.prod(shape)
                data = f.read(count * dtype.itemsize)
            flat = np.frombuffer(data, dtype=dtype, count=count)
            arrays[name] = flat.reshape(shape, order="F" if fortran else "C")
            names[name] = dtype.name
    return Loaded(arrays, names)


def _from_json(raw: bytes, limit: int) -> Loaded:
    if len(raw) > limit:
        raise over_limit(len(raw), limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text, so not JSON") from None
    try:
        doc = json.loads(
            text,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise InputError(f"JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(doc, dict):
        return _from_json_object(doc)
    # Like torch.tensor(data): a plain list of numbers is float32 unless the user says otherwise.
    return Loaded({"input": _json_array(doc, "data")}, {"input": "float32"})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys without a word; a file that says two things is
    # an error here, not a coin toss
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise InputError(f"JSON object has the key {key!r} twice")
        doc[key] = value
    return doc


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InputError(f"number {text[:40]} is out of the float64 range")
    return value


def _parse_int(text: str) -> float:
    if len(text.lstrip("-")) > 400:
        raise InputError(f"integer {text[:40]}... is out of the float64 range")
    return _parse_float(text)


def _from_json_object(doc: dict[str, Any]) -> Loaded:
    known = {"data", "dtype", *INPUT_NAMES, *ARRAY_NAMES}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r} in JSON object (known: {', '.join(sorted(known))})"
        )
    given = [k for k in ("data", *INPUT_NAMES) if k in doc]
    if not given:
        raise InputError('JSON object has no "data" array')
    if len(given) > 1:
        raise InputError(f"JSON object has both {given[0]!r} and {given[1]!r}; give one input")
    dtype = doc.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in dtypes.DTYPE_NAMES:
        raise InputError(f'"dtype" must be one of {", ".join(dtypes.DTYPE_NAMES)}, got {dtype!r}')
    arrays = {"input": _json_array(doc[given[0]], given[0])}
    for name in ARRAY_NAMES:
        if name in doc:
            arrays[name] = _json_array(doc[name], name)
    return Loaded(arrays, {name: dtype for name in arrays})


def _json_array(data: Any, key: str) -> npt.NDArray[np.float64]:
    """The numbers of a JSON array in float64; they are rounded to the compute dtype later."""
    shape = _json_shape(data, key, 0)
    return np.asarray(np.array(data, dtype=np.float64), dtype=np.float64).reshape(shape)


def _json_shape(data: Any, key: str, depth: int) -> tuple[int, ...]:
    """The shape of a nested list of numbers; raises for ragged, non-numeric or too deep data."""
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{key!r} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(data, bool) or data is None or isinstance(data, (str, dict)):
        raise InputError(f"{key!r} holds {_json_kind(data)}; only numbers are allowed")
    if isinstance(data, (int, float)):
        return ()
    if not isinstance(data, list):
        raise InputError(f"{key!r} holds {_json_kind(data)}; only numbers are allowed")
    if not data:
        return (0,)
    first = _json_shape(data[0], key, depth + 1)
    for item in data[1:]:
        if _json_shape(item, key, depth + 1) != first:
            raise InputError(f"{key!r} is ragged: its lists at depth {depth + 1} differ in length")
    return (len(data), *first)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    return "an object"


def _from_json_file(path: Path, limit: int) -> Loaded:
    if path.stat().st_size > limit:
        raise over_limit(path.stat().st_size, limit)
    return _from_json(path.read_bytes(), limit)


# Suffix -> reader; a string names a reader in a backend, imported only when such a file is read.
READERS: dict[str, str | Callable[[Path, int], Loaded]] = {
    ".npy": _from_npy,
    ".npz": _from_npz,
    ".json": _from_json_file,
    ".pt": "lncheck.backends.torch.files:read",
    ".pth": "lncheck.backends.torch.files:read",
}
