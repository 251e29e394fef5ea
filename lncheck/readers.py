"""Hardened file readers: a file in, named arrays out, and nothing else.

Nothing is ever unpickled (``allow_pickle=False``, ``weights_only=True``), sizes declared by a
file are checked before anything that large is allocated or decompressed, and every failure
becomes an ``InputError`` that names the file. ``READERS`` maps a suffix to its reader; the
JSON reader (``lncheck.json_reader``, which imports this module) and the ``.pt`` reader, which
belongs to the torch backend, are looked up by name only when such a file is read: loading
never imports a backend.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

from lncheck.errors import InputError, LncheckError, option, with_context
from lncheck.sources import CHUNK, PREFIX_CHECKS, Source, read_capped, read_stdin, size_of

STDIN = "-"
INPUT_NAMES = ("input", "x")
ARRAY_NAMES = ("weight", "bias", "expected", "running_mean", "running_var", "grad_output")


class OneRead:
    """Standard input (``-``) is read once: by the input, or by one other source (an
    ``--expected`` entry, a parameter option, ``explain``'s OBSERVED)."""

    def __init__(self, source: str | None = None) -> None:
        """``source``: the input's path, which reads standard input first if it is ``-``."""
        self.first: str | None = "the input" if source == STDIN else None

    def claim(self, path: str, name: str) -> None:
        """Note that the option ``name`` (as the caller spells it) reads ``path``.

        Raises:
            InputError: ``path`` is ``-`` and standard input is read already, naming both."""
        if path != STDIN:
            return
        if self.first is not None:
            first = (
                f"read by another {name} entry" if self.first == f"read by {name}" else self.first
            )
            raise InputError(f"- (given to {name}): standard input is {first} already; give a file")
        self.first = f"read by {name}"


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
            from lncheck.json_reader import from_json

            return from_json(read_stdin(limit), limit)
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
        return _reader(READERS[suffix])(_source(p, limit, suffix), limit)
    except LncheckError as e:
        raise with_context(e, path) from None
    except (OSError, ValueError, EOFError, RecursionError, MemoryError) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _source(path: Path, limit: int, suffix: str) -> Source:
    """``path`` itself where it is a regular file; else (a pipe, a device, a process
    substitution: nothing to map or seek) its bytes, never read past ``limit`` (a device may
    never end) and refused at once where its first bytes cannot be a ``suffix`` file."""
    if stat.S_ISREG(path.stat().st_mode):
        return path
    with path.open("rb") as f:
        return io.BytesIO(read_capped(f, limit, PREFIX_CHECKS.get(suffix)))


@contextmanager
def parsing(what: str) -> Iterator[None]:
    """Any error a parsing library (NumPy's header reader, zipfile, zlib) raises on a file's
    bytes means the file is malformed: an input error, whatever its type."""
    try:
        yield
    except LncheckError:
        raise
    except Exception as e:
        raise InputError(f"{what} ({_reason(e)})") from None


def _reader(where: str | Callable[[Source, int], Loaded]) -> Callable[[Source, int], Loaded]:
    """A reader, importing it first where the registry names it as ``module:function``."""
    if callable(where):
        return where
    module, _, name = where.partition(":")
    found: Callable[[Source, int], Loaded] = getattr(importlib.import_module(module), name)
    return found


# The zip compression methods whose members zipfile inflates a bounded piece at a time (zlib's
# max_length): bzip2 and LZMA members it inflates whole on the first read, so a few kilobytes
# that declare a small size may still take gigabytes of memory. NumPy's savez and
# savez_compressed and torch.save write the first two.
BOUNDED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's members (not its folders), each stored or deflated.

    Raises:
        InputError: a member compressed any other way (bzip2, LZMA), named."""
    members = [m for m in archive.infolist() if not m.filename.endswith("/")]
    for m in members:
        if m.compress_type not in BOUNDED_COMPRESSION:
            method = getattr(zipfile, "compressor_names", {}).get(m.compress_type)
            raise InputError(
                f"member {m.filename!r} is compressed with {method or m.compress_type}: only "
                "stored or deflated members are read (as NumPy's savez and savez_compressed "
                "and torch.save write them)"
            )
    return members


def over_limit(size: int, limit: int) -> InputError:
    return InputError(f"is {size} bytes, over the {option('max_bytes')} limit {limit}")


def _reason(e: BaseException) -> str:
    # some parsers' errors carry (message, position) pairs: the message is what helps
    first = e.args[0] if len(e.args) > 1 and isinstance(e.args[0], str) else str(e)
    text = first.strip().splitlines()[0] if first.strip() else type(e).__name__
    # a syntax node's repr says nothing to a user (literal_eval's "<ast.Call object at
    # 0x7f...>" for a .npy header holding code)
    return re.sub(r"<ast\.\w+ object at 0x[0-9a-fA-F]+>", "code, not a literal", text)[:200]


# --- readers -----------------------------------------------------------------------------


def _from_npy(source: Source, limit: int) -> Loaded:
    with opened(source) as f:
        shape, fortran, dtype = _read_npy_header(f)
        offset = f.tell()
    _check_declared(shape, dtype, limit, size_of(source) - offset)
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickle); refusing to load it")
    order: Literal["F", "C"] = "F" if fortran else "C"
    if math.prod(shape) == 0:
        array: npt.NDArray[Any] = np.zeros(shape, dtype)
    elif isinstance(source, io.BytesIO):
        count = math.prod(shape)
        data = np.frombuffer(source.getbuffer(), dtype=dtype, count=count, offset=offset)
        array = data.reshape(shape, order=order)
    else:
        # mapped, not read: a large input costs no memory until a block of it is used (and
        # each block checks that the file is still whole, see ``check_intact``)
        array = np.memmap(source, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    return Loaded({"input": array}, {"input": dtype.name})


@contextmanager
def opened(source: Source) -> Iterator[IO[bytes]]:
    """``source`` as a binary file, open for the block: the file itself, or its bytes."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
        yield source
    else:
        with source.open("rb") as f:
            yield f


MAX_DIMS = 64  # NumPy's limit


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The header of a ``.npy`` stream: every error of NumPy's parser is an input error, and
    the shape is held to stricter rules than NumPy's (no booleans, no negative dimensions)."""
    from numpy.lib import format as npy

    with parsing("not a valid .npy file"):
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=1 << 16)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=1 << 16)
        else:
            raise InputError(f"unsupported .npy format version {version}")
        dtype = np.dtype(dtype)
    if not isinstance(shape, tuple) or len(shape) > MAX_DIMS:
        raise InputError(f"not a valid .npy file (its header's shape {shape!r} has too many dims)")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(
                f"not a valid .npy file (its header's shape {shape!r} has a dimension {n!r} "
                "that is not a count)"
            )
    return tuple(shape), bool(fortran), dtype


def _check_declared(
    shape: tuple[int, ...], dtype: np.dtype[Any], limit: int, available: int
) -> None:
    if dtype.itemsize == 0:  # NumPy widens it on allocation: no size could be bounded
        raise InputError(f"declares dtype {dtype}, whose values have no size")
    # Zero-length dims make an array of no bytes, whatever the others say: bound those too.
    nbytes = math.prod(max(n, 1) for n in shape) * dtype.itemsize
    if nbytes > limit:
        raise InputError(
            f"declares shape {shape} of {dtype} ({nbytes} bytes), "
            f"over the {option('max_bytes')} limit {limit}"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > available:
        raise InputError(
            f"is truncated: its header declares shape {shape} of {dtype} ({nbytes} bytes) "
            f"but only {max(available, 0)} bytes of data follow"
        )


def read_npz(
    path: Path,
    select: Callable[[str], bool],
    *,
    max_bytes: int | None = None,
    verify_all: bool = False,
) -> Loaded:
    """The arrays of an ``.npz`` file whose names ``select`` accepts (checked as ``read_arrays``).
    ``verify_all`` reads the other members too, to their end, so that every member's CRC is
    checked.

    Raises:
        InputError: as ``read_arrays``.
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    try:
        return _from_npz(_source(Path(path), limit, ".npz"), limit, select, verify_all)
    except LncheckError as e:
        raise with_context(e, str(path)) from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _from_npz(
    source: Source,
    limit: int,
    select: Callable[[str], bool] | None = None,
    verify_all: bool = True,
) -> Loaded:
    if not zipfile.is_zipfile(source):
        raise InputError("is not a valid .npz file (not a zip archive)")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    seen: set[str] = set()
    # zipfile and zlib raise many types on a damaged archive (a bad CRC, a flipped byte in a
    # deflated member, an encrypted or unknown method, an empty member name): all mean the same
    with parsing("is not a valid .npz file"), zipfile.ZipFile(source) as archive:
        members = zip_members(archive)
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
            with archive.open(member) as f:
                if select is not None and not select(name):
                    if verify_all:
                        _read_to_end(f)
                    continue
                try:
                    shape, fortran, dtype = _read_npy_header(f)
                except InputError as e:
                    raise InputError(f"member {member.filename!r}: {e.raw}") from None
                header = f.tell()
                if dtype.hasobject:
                    raise InputError(
                        f"array {name!r} holds Python objects (a pickle); refusing to load it"
                    )
                _check_declared(shape, dtype, limit, member.file_size - header)
                flat = _read_into(f, np.empty(math.prod(shape), dtype=dtype))
                # zipfile checks a member's CRC only once it is read to its end: bytes after
                # the array (which NumPy ignores) must not hide a change
                _read_to_end(f)
            arrays[name] = flat.reshape(shape, order="F" if fortran else "C")
            names[name] = dtype.name
    return Loaded(arrays, names)


def _read_into(f: IO[bytes], out: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``out`` filled from ``f`` a chunk at a time (one read of the whole member would hold
    its bytes and the array at once).

    Raises:
        ValueError: ``f`` ends before ``out`` is full."""
    raw = out.view(np.uint8)
    filled = 0
    while filled < raw.size:
        piece = f.read(min(CHUNK, raw.size - filled))
        if not piece:
            raise ValueError(f"the array ends after {filled} of {raw.size} bytes")
        raw[filled : filled + len(piece)] = np.frombuffer(piece, np.uint8)
        filled += len(piece)
    return out


def _read_to_end(f: IO[bytes]) -> None:
    while f.read(CHUNK):
        pass


# Suffix -> reader; a string names a reader ("module:function") imported only when such a file
# is read: torch's, and JSON's (whose module imports this one).
READERS: dict[str, str | Callable[[Source, int], Loaded]] = {
    ".npy": _from_npy,
    ".npz": _from_npz,
    ".json": "lncheck.json_reader:read",
    ".pt": "lncheck.backends.torch.files:read",
    ".pth": "lncheck.backends.torch.files:read",
}
