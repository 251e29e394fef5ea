"""Where a file's bytes come from, when it is not simply a regular file read in place.

Standard input, pipes and devices are read into memory, never past the size limit, and their
first bytes are checked before the rest is read, so that ``/dev/zero`` behind a ``.json`` name
is refused at once rather than read for ever. A memory-mapped file can be truncated by another
process while lncheck reads it, and touching a lost page ends the process with SIGBUS: every
block checks that the file is still whole first (``check_intact``), and what a backend reads
in long calls is copied (``resident``).
"""

from __future__ import annotations

import codecs
import io
import mmap
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lncheck.errors import InputError, option

# A regular file (read in place, a .npy memory-mapped), or the bytes of standard input, a pipe
# or a device, read into memory up to the size limit.
Source = Path | io.BytesIO
CHUNK = 1 << 20
PREFIX = 1 << 16


def read_stdin(limit: int) -> bytes:
    """Standard input (JSON), at most ``limit`` bytes.

    Raises:
        InputError: it is closed, too long, or does not start like JSON.
    """
    stream: Any = sys.stdin
    if stream is None or stream.closed:
        raise InputError("standard input is closed: nothing to read")
    return read_capped(getattr(stream, "buffer", stream), limit, _json_prefix)


def read_capped(f: IO[bytes], limit: int, check_prefix: Callable[[bytes], None] | None) -> bytes:
    """At most ``limit`` bytes of ``f``, in chunks (never a ``limit``-sized allocation up
    front). ``check_prefix`` sees the first bytes before the rest is read, so that a device
    such as ``/dev/zero`` is refused at once rather than read to the limit.

    Raises:
        InputError: more than ``limit`` bytes, or a prefix ``check_prefix`` refuses.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = f.read(min(CHUNK, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
        if check_prefix is not None and (size >= PREFIX or len(parts) == 1):
            check_prefix(b"".join(parts)[:PREFIX])
            check_prefix = None if size >= PREFIX else check_prefix
    if size > limit:
        raise InputError(f"is more than {limit} bytes, over the {option('max_bytes')} limit")
    return b"".join(parts)


def _json_prefix(head: bytes) -> None:
    if b"\0" in head:
        raise InputError("is not JSON text (it holds NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text, so not JSON") from None


def _magic(*starts: bytes, kind: str) -> Callable[[bytes], None]:
    def check(head: bytes) -> None:
        if len(head) >= 4 and not head.startswith(starts):
            raise InputError(f"is not {kind} (it does not start like one)")

    return check


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
PREFIX_CHECKS: dict[str, Callable[[bytes], None]] = {
    ".npy": _magic(b"\x93NUMPY", kind="a .npy file"),
    ".npz": _magic(*ZIP_MAGIC, kind="a .npz file (a zip archive)"),
    ".json": _json_prefix,
    # a torch file is a zip archive, or (the legacy format) a pickle, which starts with 0x80
    ".pt": _magic(*ZIP_MAGIC, b"\x80", kind="a torch file"),
    ".pth": _magic(*ZIP_MAGIC, b"\x80", kind="a torch file"),
}


def size_of(source: Source) -> int:
    """How many bytes a source holds."""
    return len(source.getbuffer()) if isinstance(source, io.BytesIO) else source.stat().st_size


def check_intact(a: npt.NDArray[Any]) -> None:
    """Refuse to read ``a`` if it is (a view of) a memory-mapped file that another process has
    since truncated: touching a mapped page past the end of a file kills the process with
    SIGBUS, so each block checks the file's size before it is read.

    Raises:
        InputError: the file is now shorter than the part of it that is mapped.
    """
    mapped = _mapping_of(a)
    if mapped is None:
        return
    name, needed = mapped
    try:
        size = os.stat(name).st_size
    except OSError as e:
        gone = f"{name}: cannot read: {e.strerror or e} (it went away while in use)"
        raise InputError(gone) from None
    if size < needed:
        raise InputError(
            f"{name}: the file was truncated while being read ({size} bytes now, {needed} "
            "expected): was it rewritten by another process?"
        )


def resident(a: npt.NDArray[Any] | None) -> npt.NDArray[Any] | None:
    """``a`` in memory: a copy if it is memory-mapped (checked whole first), else ``a``. What a
    backend reads in one long call is copied, so that the file cannot shrink under it."""
    if a is None or _mapping_of(a) is None:
        return a
    check_intact(a)
    return np.array(a)


def _mapping_of(a: Any) -> tuple[str, int] | None:
    """(file name, bytes the mapping needs) of the memory map under ``a``, if any."""
    while a is not None:
        if isinstance(a, np.memmap) and a.filename is not None:
            whole = getattr(a, "_mmap", None)
            if whole is None:
                return None
            start = a.offset - a.offset % mmap.ALLOCATIONGRANULARITY
            return str(a.filename), start + len(whole)
        a = getattr(a, "base", None)
    return None


def renamed(typed: str, suffix: str) -> str:
    """The path ``typed`` (as the caller gave it) with its file name's suffix replaced by
    ``suffix``, or ``suffix`` added where it has none (``g.json`` -> ``g.npz``, ``out/.npz``
    -> ``out/.npz.npz`` stays a name, ``s.`` -> ``s.npz``)."""
    folder, slash, name = typed.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") or name.endswith(".") else name
    return f"{folder}{slash}{stem or name}{suffix}"
