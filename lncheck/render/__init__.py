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
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol, cast

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


class ReportTarget(NamedTuple):
    """A file a run writes: its ``format`` (empty for a plain path option such as ``--plot``),
    its ``path``, and its ``option`` as the caller spelled it (``--report json=``,
    ``--junit``, ``-o``), which names it in every message about it."""

    format: str
    path: Path
    option: str

    @property
    def typed(self) -> str:
        """The option and its path as given: ``--report json=r.json``, ``--junit r.xml``."""
        return named(self.option, self.path)


def parse_report_target(text: str) -> ReportTarget:
    """``"junit=report.xml"`` -> ``ReportTarget("junit", Path("report.xml"), "--report junit=")``.

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
    return ReportTarget(name, Path(path), f"--report {name}=")


def write_file(report: Report | SuiteReport, target: ReportTarget) -> None:
    """Write ``report`` in ``target``'s format to its path, whole or not at all: into a
    temporary file beside it, renamed into place when complete.

    Raises:
        InputError: the file cannot be written (named by ``target``'s option).
    """
    renderer = get_format(target.format)
    text = io.StringIO()  # rendered first: a renderer's bug never reads as a full disk's error
    renderer.write(report, text)
    with (
        replacing(target.path, target.option) as temporary,
        temporary.open("w", encoding="utf-8") as out,
    ):
        out.write(text.getvalue())


def check_targets(
    targets: Sequence[ReportTarget],
    protected: Mapping[str, str],
    stdout: str | None = None,
) -> None:
    """Refuse to write a file over one the run reads: ``protected`` maps the paths a run reads
    (the suite file, inputs, a baseline) to what they are; ``stdout`` names the format the
    run writes to standard output, if it writes there.

    Raises:
        InputError: a target is a folder or in none, is one of them, two targets are the same
            file (a character device such as ``/dev/null`` may take several), or a target is
            standard output (``/dev/stdout``, or the file it is redirected to) where ``stdout``
            goes too, or standard error (unless a terminal or ``/dev/null``).
    """
    for index, (name, path, _) in enumerate(targets):
        given = targets[index].typed
        if str(path) in ("-", "-.png"):  # standard output everywhere else: never a file "-"
            raise InputError(f"{given}: give a file name ('-' is standard output)")
        if path.is_dir():  # found before the run, not after it (as a failed rename)
            raise InputError(f"{given}: is a folder; give a file name")
        if not path.parent.is_dir():
            folder = repr(str(path.parent))
            why = (
                f"{folder} is not a folder" if path.parent.exists() else f"no such folder {folder}"
            )
            raise InputError(f"{given}: {why}")
        for other, what in protected.items():
            if _same_file(path, Path(other)):
                raise InputError(f"{given}: that is {what}; refusing to overwrite it")
        if stdout is not None and _is_stream(path, sys.stdout):
            instead = ""
            if name in FORMATS and name != stdout:
                instead = f", or --format {name} for {name} there"
            raise InputError(
                f"{given}: that is standard output, where the {stdout} output goes too; "
                f"give a file{instead}"
            )
        if _is_stream(path, sys.stderr):  # messages, warnings and a candidate's prints
            raise InputError(f"{given}: that is standard error, where messages go; give a file")
        for before in targets[:index]:
            if _same_file(path, before.path) and not shareable(path):
                raise InputError(
                    f"{given}: {before.typed} writes there too; give each report its own file"
                )


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
