"""The exceptions lncheck raises on purpose.

Deep code raises with the facts it knows ("input has shape (2, 3)"); the boundary that knows
more (the loader knows the file, the CLI knows the option) re-raises with that context added.
Every ``LncheckError`` reaches the user as one line on stderr and exit status 2.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The documented exit statuses of every lncheck command."""

    OK = 0
    CHECK_FAILED = 1
    INVALID_INPUT = 2
    INTERNAL_ERROR = 3


class LncheckError(Exception):
    """Root of the errors that lncheck reports to the user instead of a traceback."""

    exit_status = ExitStatus.INVALID_INPUT


class InputError(LncheckError):
    """An input file or an option is invalid: missing, malformed, or inconsistent."""


class BackendUnavailable(LncheckError):
    """A requested backend or device (torch, CUDA, MPS) cannot be used here."""


def with_context(error: LncheckError, context: str) -> LncheckError:
    """Return a copy of ``error`` whose message is prefixed with ``context``."""
    return type(error)(f"{context}: {error}")
