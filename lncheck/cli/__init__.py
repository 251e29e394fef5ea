"""The command line: options in, library calls, a rendered report and an exit status out.

Commands (``cli.commands``) only translate options into library calls; their options are
spelled from the option table (``cli.params``). ``main`` (via ``_Group.main``) turns every
``LncheckError`` and every usage error into one line on stderr and exit status 2, naming
options as the command line spells them; ``--traceback`` prints the traceback first. Nothing
here imports torch or NumPy at module level: ``lncheck --help`` must stay fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lncheck import __version__
from lncheck.cli.params import join_multi_int_options
from lncheck.errors import ExitStatus, LncheckError, spelled
from lncheck.options import spelling


class _Group(TyperGroup):
    """Typer's group with lncheck's argument rewriting and one-line error handling."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        # --traceback is global and may appear anywhere, after the command too.
        show_traceback = "--traceback" in argv
        argv = [a for a in argv if a != "--traceback"]
        try:
            status = super().main(
                join_multi_int_options(argv),
                prog_name,
                complete_var,
                standalone_mode=False,
                **extra,
            )
        except LncheckError as e:
            _print_traceback(show_traceback)
            _fail(str(spelled(e, spelling("cli"))), e.exit_status)
        except typer.TyperException as e:  # click's usage errors (bad option, missing value)
            _print_traceback(show_traceback)
            _fail(e.format_message(), ExitStatus.INVALID_INPUT)
        except typer.Abort:
            _fail("aborted", 1)
        except Exception as e:  # a bug in lncheck, not in the input: say so in one line
            _print_traceback(show_traceback)
            message = f"internal error: {type(e).__name__}: {e} (run with --traceback for details)"
            _fail(message, ExitStatus.INTERNAL_ERROR)
        code = status if isinstance(status, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _print_traceback(wanted: bool) -> None:
    # printed rather than re-raised, so that the exit status stays the documented one
    if wanted:
        import traceback

        traceback.print_exc()


def _fail(message: str, status: int) -> None:
    text = " ".join(message.split())
    if text:  # a bare `lncheck` has already shown its help
        from lncheck.render.console import print_error

        print_error(text)
    sys.exit(status)


app = typer.Typer(
    cls=_Group,
    name="lncheck",
    help="Verify normalization layers (LayerNorm and friends) against an exact float64 reference.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lncheck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    traceback: Annotated[
        bool,
        typer.Option(
            "--traceback", help="Print the traceback of an error too (for debugging lncheck)."
        ),
    ] = False,
) -> None:
    """Verify normalization layers against an exact NumPy float64 reference.

    Exit status: 0 every check passed, 1 a check failed, 2 the input or the options are invalid.
    """


def main() -> None:
    """Console-script entry point.

    Once the answer is out, the process ends without the interpreter's teardown: unloading
    torch takes about half a second that nobody is waiting for.
    """
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if "torch" not in sys.modules:
            raise
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to keep
                stream.flush()
        os._exit(code)


from lncheck.cli import commands as _commands  # noqa: E402  (registers the commands on app)
from lncheck.cli import explain as _explain  # noqa: E402, F401  (registers explain)

__all__ = ["_commands", "app", "join_multi_int_options", "main"]
