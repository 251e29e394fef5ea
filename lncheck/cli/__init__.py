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
import warnings
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from lncheck import __version__
from lncheck.cli.params import join_multi_int_options
from lncheck.errors import ExitStatus, InputError, LncheckError, spelled
from lncheck.options import TYPED_FLAGS, spelling
from lncheck.render import ClosedPipe


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
        stdout = sys.stdout
        was_devnull = _stdout_is_devnull()
        # Libraries' warnings (torch's UserWarning, NumPy's RuntimeWarning) would print lines
        # of their own before lncheck's: they are kept, and folded into the one error line.
        flags = TYPED_FLAGS.set(None)  # this command's, once it parses its arguments
        with warnings.catch_warnings(record=True) as caught:
            try:
                sys.stdout = _Stdout(stdout)
                status = super().main(
                    join_multi_int_options(argv),
                    prog_name,
                    complete_var,
                    standalone_mode=False,
                    **extra,
                )
                sys.stdout.flush()
            except (ClosedPipe, BrokenPipeError):  # the reader went away (`| head -1`)
                _closed_pipe()
            except LncheckError as e:
                _print_traceback(show_traceback)
                message = str(spelled(e, spelling("cli")))
                _fail(message + _warned(caught), e.exit_status)
            except typer.TyperException as e:  # click's usage errors (bad option, missing value)
                _print_traceback(show_traceback)
                _fail(_with_value(e, argv) or e.format_message(), ExitStatus.INVALID_INPUT)
            except SystemExit as e:
                # rich (which prints typer's help) answers a closed pipe by pointing stdout at
                # /dev/null and exiting with 1, lncheck's status for a failed check
                if e.code == 1 and not was_devnull and _stdout_is_devnull():
                    _closed_pipe()
                raise
            except typer.Abort:  # end of input at a prompt; typer makes Ctrl-C status 130
                _fail("aborted", 130)
            except Exception as e:  # a bug in lncheck, not in the input: say so in one line
                _print_traceback(show_traceback)
                message = f"internal error: {type(e).__name__}: {e}{_warned(caught)}"
                _fail(message + " (run with --traceback for details)", ExitStatus.INTERNAL_ERROR)
            finally:
                sys.stdout = stdout
                TYPED_FLAGS.reset(flags)
        _show_warnings(caught)
        code = status if isinstance(status, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


class Command(TyperCommand):
    """Typer's command that refuses what Click would settle silently by keeping the last
    value: an option of one value given twice (``--eps 1e-5 --eps 1e-3``, or ``--shape`` and
    ``--normalized-shape``), or an on/off flag given both ways (``--train --eval``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        given = [a for a in args[:end] if a.startswith("-")]
        # shell completion parses what is typed so far, and --help wins over any mistake
        if not ctx.resilient_parsing and not set(given) & set(ctx.help_option_names):
            _refuse_repeated(self.make_parser(ctx), args, given)
        # messages name an option as it was typed (``-k``, ``--normalized-shape``)
        typed = [a.partition("=")[0] for a in given]
        TYPED_FLAGS.set(
            {
                str(param.name): flag
                for param in self.params
                for flag in getattr(param, "opts", ())
                if any(_is_typed(flag, token) for token in typed)
            }
        )
        return super().parse_args(ctx, args)


def _is_typed(flag: str, token: str) -> bool:
    """Whether ``token`` (an argument before any ``=``) gives option ``flag``: as itself, or a
    short one with its value attached (``-kfoo``)."""
    short = len(flag) == 2 and not token.startswith("--")
    return token == flag or (short and token.startswith(flag))


def _refuse_repeated(parser: Any, args: list[str], given: list[str]) -> None:
    """Raise ``InputError`` for an option of one value given more than once, or a flag given
    both ways, in ``args`` (``given``: its tokens that name options). Click's parser (public
    as ``Command.make_parser``; its ``parse_args`` returns ``(values, rest, order)`` with one
    entry in ``order`` per occurrence) counts them: a token is read as Click reads it."""
    try:
        _, _, order = parser.parse_args(args=list(args))
    except typer.TyperException:  # the real parse reports it, in its own words
        return
    counts: dict[str, int] = {}
    params: dict[str, Any] = {}
    for param in order:
        if param.param_type_name == "option" and not param.multiple and not param.count:
            counts[param.name] = counts.get(param.name, 0) + 1
            params[param.name] = param
    for name, times in counts.items():
        param = params[name]
        if times < 2:
            continue
        spellings = [t.partition("=")[0] for t in given if t.partition("=")[0] in param.opts]
        if not param.is_flag:
            raise InputError(_duplicate_words(spellings or [param.opts[-1]], times))
        against = [t for t in given if t in param.secondary_opts]
        if against and spellings:
            raise InputError(f"{spellings[0]} and {against[0]} are both given: give one of them")


def _duplicate_words(spellings: list[str], times: int) -> str:
    """``--eps is given 2 times: give it once ...``, naming each spelling the user typed."""
    distinct = list(dict.fromkeys(spellings))
    as_typed = "" if len(distinct) < 2 else ", as " + " and ".join(distinct)
    return (
        f"{distinct[0]} is given {times} times{as_typed}: give it once (only one of them "
        "would be used)"
    )


class OutputError(LncheckError):
    """Standard output cannot be written (a full disk, ``> /dev/full``): the environment's
    fault, not lncheck's."""


class _Stdout:
    """Standard output, whose write errors say where they come from: a failed write is an
    ``OutputError`` (exit status 2), a closed pipe a ``ClosedPipe`` (141)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with self._guard():
            return int(self._stream.write(text))

    def flush(self) -> None:
        with self._guard():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if self._stream is None:  # started with stdout closed (`>&-`)
            raise OutputError("cannot write to standard output: it is closed")
        try:
            yield
        except BrokenPipeError:
            raise ClosedPipe from None
        except OSError as e:
            raise OutputError(f"cannot write to standard output: {e.strerror or e}") from None


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(1), os.stat(os.devnull))
    except OSError:
        return False


def _closed_pipe() -> None:
    """Exit as a process killed by SIGPIPE would (141), silently: what is left to print goes
    nowhere, so that the interpreter's last flush does not complain either."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    sys.exit(141)


def _warned(caught: list[warnings.WarningMessage]) -> str:
    """The warnings libraries raised, as a tail for the one error line."""
    texts = _warning_texts(caught)
    return f" (warned: {'; '.join(texts)})" if texts else ""


def _warning_texts(caught: list[warnings.WarningMessage]) -> list[str]:
    texts: list[str] = []
    for w in caught:
        first = (str(w.message).strip().splitlines() or [""])[0][:200]
        text = f"{w.category.__name__}: {first}"
        if text not in texts:
            texts.append(text)
    return texts


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """After a run that worked, each distinct warning as one line on stderr."""
    if not caught:
        return
    from lncheck.render.console import print_error

    for text in _warning_texts(caught):
        print_error(text, label="warning")


def _print_traceback(wanted: bool) -> None:
    # printed rather than re-raised, so that the exit status stays the documented one
    if wanted:
        import traceback

        traceback.print_exc()


def _with_value(error: typer.TyperException, argv: list[str]) -> str | None:
    """A value click could not convert, echoed beside the option as typed (``--eps 'abc':
    input should be a valid number``); None where the value is not found in ``argv``."""
    param = getattr(error, "param", None)
    message = getattr(error, "message", "")
    if not isinstance(error, typer.BadParameter) or param is None or not message:
        return None
    for index, token in enumerate(argv):
        flag, equals, value = token.partition("=")
        if flag not in getattr(param, "opts", ()):
            continue
        if not equals:
            if index + 1 >= len(argv):
                return None
            value = argv[index + 1]
        return f"{flag} {value!r}: {message[:1].lower()}{message[1:]}"
    return None


def _fail(message: str, status: int) -> None:
    text = " ".join(message.split())
    if text:  # a bare `lncheck` has already shown its help
        from lncheck.render.console import print_error

        # standard error closed or full (2>&-, 2>/dev/full): the status still tells
        with contextlib.suppress(OSError, ValueError):
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


# glibc's mallopt parameter for the most arenas (malloc.h)
_M_ARENA_MAX = -8


def _one_malloc_arena() -> None:
    """Have glibc's malloc keep one arena for every thread of this process.

    The comparison builds each next block on a second thread while this one uses the block
    before, and frees it here: with an arena per thread, memory freed across threads is kept
    by the arena that gave it, and a 64M-element check's peak RSS drifted from 450 MiB to
    1 GiB from one run to the next (benchmarks/bench_large.py). With one arena it stays
    below 500 MiB, at no cost in time on 2 cores (with many threads sharing one arena, torch's
    allocations on many cores may wait on its lock: ``MALLOC_ARENA_MAX``, when set, is left as
    the user chose). Only the command line does this: the process is lncheck's, and a
    suite's ``--jobs`` workers keep glibc's default. Elsewhere than glibc, nothing happens.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)


def main() -> None:
    """Console-script entry point.

    Once the answer is out, the process ends without the interpreter's teardown: unloading
    torch takes about half a second that nobody is waiting for.
    """
    _one_malloc_arena()
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except BrokenPipeError:
            _closed_pipe()
        except (OSError, ValueError):
            pass
        if "torch" not in sys.modules:
            raise
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(code)


from lncheck.cli import commands as _commands  # noqa: E402  (registers the commands on app)
from lncheck.cli import explain as _explain  # noqa: E402, F401  (registers explain)

__all__ = ["_commands", "app", "join_multi_int_options", "main"]
