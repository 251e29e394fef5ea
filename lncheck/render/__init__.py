"""Renderers: a report in, text out. Nothing before this package prints anything.

``FORMATS`` maps a format's name to its module; each module has ``write(report, out)`` for a
case's ``Report`` and a suite's ``SuiteReport`` alike. Adding a format is one new module and
one line here. ``--format NAME`` picks what goes to standard output and ``--report NAME=PATH``
writes a file (atomically: a temporary file renamed into place).
"""

from __future__ import annotations

import importlib
import io
import os
import re
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, cast

from lncheck.atomic import named, replacing, shareable
from lncheck.errors import InputError, option

if TYPE_CHECKING:
    from lncheck.report import Report, SuiteReport

FORMATS: dict[str, str] = {
    "console": "lncheck.render.console",
    "json": "lncheck.render.json",
    "junit": "lncheck.render.junit",
}


# C0 and C1 controls (ESC, BEL, CR, ...) and the bidirectional overrides, which can rewrite what
# a terminal shows, and lone surrogates (an undecodable file name), which no output encoding
# takes; newline and tab are kept (callers that need one line collapse them).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters spelled out (``\\x1b``): what every string that came
    from outside (a path, baseline metadata, a library's message) goes through before it
    reaches a terminal, so that it cannot set the window title or clear the screen.
    ``newlines=False`` spells out newlines and tabs too."""
    pattern = _CONTROLS if newlines else _ALL_CONTROLS
    return pattern.sub(_escape, text)


_ALL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class ClosedPipe(Exception):
    """Standard output's reader went away (``| head -1``). Not an ``OSError``, so that no
    library on the way (typer turns EPIPE into exit status 1) mistakes it for its own."""


class Format(Protocol):
    def write(self, report: Report | SuiteReport, out: IO[str]) -> None: ...


def get_format(name: str) -> Format:
    """The renderer called ``name``.

    Raises:
        InputError: no such format.
    """
    if name not in FORMATS:
        raise InputError(
            f"{option('format')}: unknown format {name!r} (known: {', '.join(FORMATS)})"
        )
    return cast(Format, importlib.import_module(FORMATS[name]))


def parse_report_target(text: str) -> tuple[str, Path]:
    """``"junit=report.xml"`` -> ``("junit", Path("report.xml"))``.

    Raises:
        InputError: not FORMAT=PATH, or an unknown format.
    """
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise InputError(f"{option('report')} must be FORMAT=PATH such as junit=report.xml")
    if name not in FORMATS:
        raise InputError(
            f"{option('report')} {text}: unknown format {name!r} (known: {', '.join(FORMATS)})"
        )
    return name, Path(path)


def write_file(name: str, report: Report | SuiteReport, path: Path, where: str) -> None:
    """Write ``report`` as format ``name`` to ``path``, whole or not at all: into a temporary
    file beside it, renamed into place when complete.

    Raises:
        InputError: the file cannot be written (``where`` names the option).
    """
    renderer = get_format(name)
    text = io.StringIO()  # rendered first: a renderer's bug never reads as a full disk's error
    renderer.write(report, text)
    with replacing(path, where) as temporary, temporary.open("w", encoding="utf-8") as out:
        out.write(text.getvalue())


def check_targets(
    targets: Sequence[tuple[str, Path]],
    protected: Mapping[str, str],
    where: str = "--report",
    typed: Sequence[str] | None = None,
    stdout: str | None = None,
) -> None:
    """Refuse to write a file over one the run reads: ``targets`` are ``(format, path)`` (an
    empty format for a plain path option), ``protected`` maps the paths a run reads (the suite
    file, inputs, a baseline) to what they are; ``typed`` says each target as the caller gave
    it (``--json r.json``; default ``<where> format=path``); ``stdout`` names the format the
    run writes to standard output, if it writes there.

    Raises:
        InputError: a target is a folder or in none, is one of them, two targets are the same
            file (a character device such as ``/dev/null`` may take several), or a target is
            standard output (``/dev/stdout``, or the file it is redirected to) where ``stdout``
            goes too, or standard error (unless a terminal or ``/dev/null``).
    """
    given = list(typed or [_spelled_target(where, name, path) for name, path in targets])
    for index, (name, path) in enumerate(targets):
        if str(path) in ("-", "-.png"):  # standard output everywhere else: never a file "-"
            raise InputError(f"{given[index]}: give a file name ('-' is standard output)")
        if path.is_dir():  # found before the run, not after it (as a failed rename)
            raise InputError(f"{given[index]}: is a folder; give a file name")
        if not path.parent.is_dir():
            folder = repr(str(path.parent))
            why = (
                f"{folder} is not a folder" if path.parent.exists() else f"no such folder {folder}"
            )
            raise InputError(f"{given[index]}: {why}")
        for other, what in protected.items():
            if _same_file(path, Path(other)):
                raise InputError(f"{given[index]}: that is {what}; refusing to overwrite it")
        if stdout is not None and _is_stream(path, sys.stdout):
            instead = ""
            if name in FORMATS and name != stdout:
                instead = f", or --format {name} for {name} there"
            raise InputError(
                f"{given[index]}: that is standard output, where the {stdout} output goes too; "
                f"give a file{instead}"
            )
        if _is_stream(path, sys.stderr):  # messages, warnings and a candidate's prints
            raise InputError(
                f"{given[index]}: that is standard error, where messages go; give a file"
            )
        for earlier, (_, before) in enumerate(targets[:index]):
            if _same_file(path, before) and not shareable(path):
                raise InputError(
                    f"{given[index]}: {given[earlier]} writes there too; give each report its "
                    "own file"
                )


def _spelled_target(where: str, name: str, path: Path) -> str:
    """A report target as an option names it: ``--report json=r.json``, ``--plot p.png``."""
    return named(f"{where} {name}=" if name else where, path)


def _is_stream(path: Path, stream: IO[str]) -> bool:
    """Whether ``path`` is the file or pipe ``stream`` (standard output or error) writes to (a
    terminal or ``/dev/null``, a character device, takes two outputs without harm)."""
    try:
        out = os.fstat(stream.fileno())
        found = os.stat(path)
    except (AttributeError, OSError, ValueError):  # no descriptor (captured), no such file
        return False
    if stat.S_ISCHR(out.st_mode):
        return False
    return (found.st_dev, found.st_ino) == (out.st_dev, out.st_ino)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): the same path is still the same file
        return os.path.realpath(a) == os.path.realpath(b)
