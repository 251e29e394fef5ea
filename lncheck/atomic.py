"""Writing a file whole or not at all, and one writer at a time.

``replacing(path)`` hands out a temporary file in the same folder and renames it over ``path``
only once it is complete: an error, Ctrl-C or ``kill -9`` part-way leaves the old file as it
was. A path that is a device, a named pipe or a link (``/dev/null``, ``/dev/stdout``, a FIFO a
reader waits on) is written directly: renaming over it would replace it with a regular file.
``exclusive(path)`` holds a lock file beside ``path`` for as long as a writer needs it, so
that a second writer fails at once with a clear message instead of both "succeeding".
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lncheck.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: the lock is the lock file's existence)
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def replacing(path: Path, where: str) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block ends without an error
    (and removed when it does not). The new file gets the old one's permissions, or those of a
    file created under the umask.

    Raises:
        InputError: the folder, the file or the device cannot be written (``where`` names the
            option); a stream whose reader went away (``BrokenPipeError``) is left to the
            command line, which exits quietly as for standard output.
    """
    if special(path):  # written in place: a full device (/dev/full) is the user's to fix
        try:
            yield path
        except BrokenPipeError:
            raise
        except OSError as e:
            raise InputError(f"{named(where, path)}: cannot write: {e.strerror or e}") from None
        return
    if path.is_symlink():  # a link to a report file stays a link: its target is replaced
        path = Path(os.path.realpath(path))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"{named(where, path)}: cannot write: {e.strerror or e}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except OSError as e:
        raise InputError(f"{named(where, path)}: cannot write: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def special(path: Path) -> bool:
    """Whether ``path`` is a stream rather than a file: a device, a named pipe, a socket, or a
    link into ``/dev`` or ``/proc`` (``/dev/stdout`` links to the process's own standard
    output, which may be a regular file that renaming over the link would not reach). It is
    written into, never replaced or removed."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            text = os.readlink(path)
            return str(path).startswith(_STREAMS) or text.startswith(_STREAMS)
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


_STREAMS = ("/dev/", "/proc/")


def shareable(path: Path) -> bool:
    """Whether several reports may be written to ``path`` one after the other: a character
    device (``/dev/null``, a terminal). A named pipe's reader stops at the first one's end."""
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def named(where: str, path: Path) -> str:
    """``--report json=r.json`` or ``-o golden.npz``: the option and the path as given."""
    return f"{where}{path}" if where.endswith("=") else f"{where} {path}"


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def exclusive(path: Path, where: str) -> Iterator[None]:
    """Hold ``<path>.lock`` while the block runs; a second holder is refused, never queued.

    The lock is an ``flock`` on the lock file, released by the kernel if the process dies,
    so a killed writer never leaves ``path`` locked.

    Raises:
        InputError: another process holds the lock, or the lock file cannot be made.
    """
    lock = path.with_name(path.name + ".lock")
    fd = _acquire(lock, path, where)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def _acquire(lock: Path, path: Path, where: str) -> int:
    busy = InputError(
        f"{named(where, path)}: another lncheck process is writing it (lock file {lock}); "
        "wait for it to finish"
    )
    for _ in range(100):
        try:
            flags = os.O_CREAT | os.O_RDWR | (0 if fcntl is not None else os.O_EXCL)
            fd = os.open(lock, flags, 0o644)
        except FileExistsError:
            raise busy from None
        except OSError as e:
            raise InputError(f"{named(where, path)}: cannot write: {e.strerror or e}") from None
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise busy from None
        # The holder before us may have removed the lock file between our open and our lock:
        # then we hold a lock on a file nobody else can see, so start again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise busy
