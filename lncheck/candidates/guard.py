"""While a candidate's own Python code runs (its import, its call, its backward): what it
does through Python neither ends lncheck nor writes into its report.

``sys.exit()`` raises ``SystemExit``, which the callers turn into a failed check; ``os._exit()``
(and ``posix._exit()``, the same function) would end the process at once, with status 0 and no
report, so it raises ``OsExit`` instead. Compiled code can still end the process (C's
``exit()``, a crash): such a candidate belongs in ``--candidate-cmd``, its own process.
What the code prints goes to standard error: standard output may be carrying a JSON or JUnit
report (``--json``, ``--format``), of which it must hold exactly one document. Both the
Python-level stream and file descriptor 1 are redirected, so output from compiled extensions
moves too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


class OsExit(SystemExit):
    """A candidate called ``os._exit(status)``."""


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Run the block as a candidate's code: ``os._exit`` raises ``OsExit``, and standard output
    goes to standard error."""
    real_exit = os._exit

    def refuse(status: int) -> None:
        raise OsExit(f"os._exit({status}) would end lncheck")

    native = sys.modules.get(os.name)  # posix (or nt): where os takes _exit from
    modules = [m for m in (os, native) if m is not None and hasattr(m, "_exit")]
    for module in modules:
        module._exit = refuse
    try:
        with _stdout_to_stderr():
            yield
    finally:
        for module in modules:
            module._exit = real_exit


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1: only the Python-level stream moves
        saved = -1
    moved = False
    try:
        if saved >= 0:
            try:
                os.dup2(2, 1)
                moved = True
            except OSError:  # no descriptor 2 either
                pass
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if moved:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 1)
        if saved >= 0:
            os.close(saved)
