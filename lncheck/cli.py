"""The command line: options in, library calls, a rendered report and an exit status out.

Commands only translate options into library calls. ``main`` (via ``_Group.main``) turns every
``LncheckError`` and every usage error into one line on stderr and exit status 2; ``--traceback``
re-raises instead. Nothing here imports torch or NumPy at module level: ``lncheck --help``
must stay fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lncheck import __version__
from lncheck.errors import LncheckError

USAGE_ERROR = 2
# Options that take a variable number of integers: ``--shape 3 4`` is rewritten to
# ``--shape 3,4`` before parsing, because click options take a fixed number of values.
MULTI_INT_OPTIONS = ("--shape", "--axes")
_INTS = re.compile(r"^-?\d+(,-?\d+)*,?$")


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
            if show_traceback:
                raise
            _fail(str(e), e.exit_status)
        except typer.TyperException as e:  # click's usage errors (bad option, missing value)
            if show_traceback:
                raise
            _fail(e.format_message(), getattr(e, "exit_code", USAGE_ERROR) or USAGE_ERROR)
        except typer.Abort:
            _fail("aborted", 1)
        except Exception as e:  # a bug in lncheck, not in the input: say so in one line
            if show_traceback:
                raise
            _fail(f"internal error: {type(e).__name__}: {e} (run with --traceback for details)", 3)
        code = status if isinstance(status, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, status: int) -> None:
    text = " ".join(message.split())
    if text:  # a bare `lncheck` has already shown its help
        from lncheck.render.console import print_error

        print_error(text)
    sys.exit(status)


def join_multi_int_options(argv: list[str]) -> list[str]:
    """``[--shape, 3, 4, x.npy]`` -> ``[--shape, 3,4, x.npy]`` (negative integers included)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        out.append(token)
        i += 1
        if token in MULTI_INT_OPTIONS:
            values = []
            while i < len(argv) and _INTS.match(argv[i]):
                values.append(argv[i].strip(","))
                i += 1
            if values:
                out.append(",".join(values))
    return out


app = typer.Typer(
    cls=_Group,
    name="lncheck",
    help="Verify normalization layers (LayerNorm and friends) against an exact float64 reference.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
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
            "--traceback", help="Re-raise errors with a traceback (for debugging lncheck)."
        ),
    ] = False,
) -> None:
    """Verify normalization layers against an exact NumPy float64 reference.

    Exit status: 0 every check passed, 1 a check failed, 2 the input or the options are invalid.
    """


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


def parse_ints(value: str | None, option: str) -> tuple[int, ...] | None:
    """``"3,4"`` -> ``(3, 4)``; raises ``typer.BadParameter`` naming the option otherwise."""
    if value is None:
        return None
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(
            f"expected integers such as '3 4' or '3,4', got {value!r}", param_hint=option
        ) from None


COMPARE_EPILOG = """\
[bold]Examples[/bold]

[dim]# LayerNorm over the last two dims: normalized_shape=(3, 4)[/dim]
lncheck compare input.npy --shape 3 4

[dim]# weight and bias from the .npz, a JSON report[/dim]
lncheck compare data.npz --shape 8 --json

[dim]# check an output produced elsewhere as one more candidate[/dim]
lncheck compare x.npy --shape 8 --expected y.npy

[dim]# JSON on standard input[/dim]
echo '[[1, 2, 3, 4]]' | lncheck compare - --shape 4
"""


@app.command(epilog=COMPARE_EPILOG)
def compare(
    input: Annotated[
        str,
        typer.Argument(
            help="Input tensor: .npy, .npz, .json, .pt, or - for JSON on stdin.", show_default=False
        ),
    ],
    shape: Annotated[
        str | None,
        typer.Option(
            "--shape",
            help="normalized_shape: the trailing dims to normalize over, e.g. --shape 3 4.",
            show_default=False,
        ),
    ] = None,
    eps: Annotated[
        float, typer.Option(help="Added to the variance before the square root.")
    ] = 1e-5,
    weight: Annotated[
        Path | None, typer.Option(help="Weight (gamma) file; default ones.", show_default=False)
    ] = None,
    bias: Annotated[
        Path | None, typer.Option(help="Bias (beta) file; default zeros.", show_default=False)
    ] = None,
    no_affine: Annotated[
        bool, typer.Option("--no-affine", help="No weight or bias (elementwise_affine=False).")
    ] = False,
    dtype: Annotated[
        DType | None,
        typer.Option(
            help="Dtype torch computes in; default the input's floating dtype.", show_default=False
        ),
    ] = None,
    expected: Annotated[
        Path | None,
        typer.Option(
            help="An output made elsewhere, checked as one more candidate.", show_default=False
        ),
    ] = None,
    rtol: Annotated[
        float | None,
        typer.Option(
            help="Relative tolerance (give --atol too).",
            rich_help_panel="Tolerances",
            show_default=False,
        ),
    ] = None,
    atol: Annotated[
        float | None,
        typer.Option(
            help="Absolute tolerance (give --rtol too).",
            rich_help_panel="Tolerances",
            show_default=False,
        ),
    ] = None,
    equal_nan: Annotated[
        bool,
        typer.Option(
            "--equal-nan",
            help="NaN in both places counts as a match.",
            rich_help_panel="Tolerances",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            help="Refuse inputs larger than this many bytes; default half the RAM.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a LayerNorm on INPUT: torch's module, functional and native paths vs the reference."""
    from lncheck.check import check
    from lncheck.io import Sources, load_case
    from lncheck.layers import Layer
    from lncheck.tolerances import ToleranceSpec

    layer = Layer(
        "layer_norm",
        normalized_shape=parse_ints(shape, "--shape"),
        eps=eps,
        affine=not no_affine,
    )
    tolerance = ToleranceSpec.from_options(rtol, atol, equal_nan=equal_nan)
    sources = Sources(
        input=input,
        weight=None if weight is None else str(weight),
        bias=None if bias is None else str(bias),
        expected=None if expected is None else str(expected),
    )
    case = load_case(
        sources,
        layer,
        dtype=None if dtype is None else dtype.value,
        tolerance=tolerance,
        max_bytes=max_bytes,
    )
    report = check(case)
    _emit(report, json_output)
    raise typer.Exit(int(report.exit_status))


def _emit(report: Any, json_output: bool) -> None:
    if json_output:
        from lncheck.render import json as render_json

        typer.echo(render_json.render(report))
        return
    from lncheck.render import console

    console.render(report, console.make_console())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
