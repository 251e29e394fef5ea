"""Renderers: a report in, text out. Nothing before this package prints anything.

``FORMATS`` maps a format's name to its module; each module has ``write(report, out)`` for a
case's ``Report`` and a suite's ``SuiteReport`` alike. Adding a format is one new module and
one line here. ``--format NAME`` picks what goes to standard output and ``--report NAME=PATH``
writes a file (atomically: a temporary file renamed into place).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, cast

from lncheck.errors import InputError, option

if TYPE_CHECKING:
    from lncheck.report import Report, SuiteReport

FORMATS: dict[str, str] = {
    "console": "lncheck.render.console",
    "json": "lncheck.render.json",
    "junit": "lncheck.render.junit",
}


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
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"{where} {path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            renderer.write(report, out)
        os.replace(temporary, path)
    except OSError as e:
        raise InputError(f"{where} {path}: cannot write: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
