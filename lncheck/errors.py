"""The exceptions lncheck raises on purpose, and how messages name options.

Deep code raises with the facts it knows ("groups must be positive, got 0"); the boundary that
knows more (the loader knows the file, the command line knows the flag) re-raises with that
context added. Every ``LncheckError`` reaches the user as one line on stderr and exit status 2.

An option is named in a message through ``option(name)``, a marker that each boundary spells
the way its caller wrote the option: ``--groups`` on the command line, ``key 'groups'`` in a
suite file, ``groups=`` in the Python API (``spelled``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum


class ExitStatus(IntEnum):
    """The documented exit statuses of every lncheck command."""

    OK = 0
    CHECK_FAILED = 1
    INVALID_INPUT = 2
    INTERNAL_ERROR = 3


_MARK = "\x1f"
_MARKED = re.compile(f"{_MARK}([a-z_][a-z0-9_.]*){_MARK}")


def option(name: str) -> str:
    """A reference to option ``name`` inside a message, spelled later by the boundary."""
    return f"{_MARK}{name}{_MARK}"


def bare(name: str) -> str:
    """The neutral spelling of an option: its name, as a Python keyword would have it."""
    return name


class LncheckError(Exception):
    """Root of the errors that lncheck reports to the user instead of a traceback."""

    exit_status = ExitStatus.INVALID_INPUT

    def __str__(self) -> str:
        return spell(super().__str__(), bare)

    @property
    def raw(self) -> str:
        """The message with its option markers, for re-spelling."""
        return super().__str__()


class InputError(LncheckError):
    """An input file or an option is invalid: missing, malformed, or inconsistent."""


class CheckWarning(UserWarning):
    """A check that passed, with a warning: what it passed despite (``lncheck.check``)."""


class BackendUnavailable(LncheckError):
    """A requested backend or device (torch, CUDA, MPS) cannot be used here."""


def spell(text: str, spelling: Callable[[str], str]) -> str:
    """``text`` with every option marker replaced by ``spelling(name)``."""
    return _MARKED.sub(lambda m: spelling(m.group(1)), text)


def spelled(error: LncheckError, spelling: Callable[[str], str]) -> LncheckError:
    """A copy of ``error`` whose options are named by ``spelling`` (a boundary's words)."""
    copy = type(error)(spell(error.raw, spelling))
    copy.__traceback__ = error.__traceback__
    return copy


def with_context(error: LncheckError, context: str) -> LncheckError:
    """Return a copy of ``error`` whose message is prefixed with ``context``."""
    return type(error)(f"{context}: {error.raw}")
