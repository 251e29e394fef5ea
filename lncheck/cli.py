"""The command line: options in, library calls, a rendered report and an exit status out.

Commands only translate options into library calls. ``main`` (via ``_Group.main``) turns every
``LncheckError`` and every usage error into one line on stderr and exit status 2; ``--traceback``
prints the traceback first. Nothing here imports torch or NumPy at module level: ``lncheck --help``
must stay fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lncheck import __version__
from lncheck.errors import ExitStatus, LncheckError

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
            _print_traceback(show_traceback)
            _fail(str(e), e.exit_status)
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
            "--traceback", help="Print the traceback of an error too (for debugging lncheck)."
        ),
    ] = False,
) -> None:
    """Verify normalization layers against an exact NumPy float64 reference.

    Exit status: 0 every check passed, 1 a check failed, 2 the input or the options are invalid.
    """


class ToleranceChoice(str, Enum):
    auto = "auto"
    fixed = "fixed"


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


class Op(str, Enum):
    layer_norm = "layer_norm"
    group_norm = "group_norm"
    instance_norm = "instance_norm"
    batch_norm = "batch_norm"
    rms_norm = "rms_norm"
    local_response_norm = "local_response_norm"


def parse_momentum(value: str) -> float | None:
    """``--momentum 0.1`` or ``--momentum none`` (the cumulative moving average)."""
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected a number or 'none', got {value!r}", param_hint="--momentum"
        ) from None


COMPARE_EPILOG = """\
[bold]Examples[/bold]

[dim]# LayerNorm over the last two dims: normalized_shape=(3, 4)[/dim]
lncheck compare input.npy --shape 3 4

[dim]# weight and bias from the .npz, a JSON report[/dim]
lncheck compare data.npz --shape 8 --json

[dim]# check an output produced elsewhere as one more candidate[/dim]
lncheck compare x.npy --shape 8 --expected y.npy

[dim]# GroupNorm with 4 groups; BatchNorm in eval with running statistics[/dim]
lncheck compare image.npy --op group_norm --groups 4
lncheck compare image.npy --op batch_norm --eval --running-mean m.npy --running-var v.npy

[dim]# TF/Keras-style axes, channels-last data, an activation after the norm[/dim]
lncheck compare x.npy --axes 1 3
lncheck compare nhwc.npy --op group_norm --groups 8 --channel-axis -1 --activation silu

[dim]# JSON on standard input[/dim]
echo '[[1, 2, 3, 4]]' | lncheck compare - --shape 4
"""

LAYER = "Layer"
FILES = "Parameters and statistics"
TOLERANCES = "Tolerances"
OUTPUT = "Output"


def _opt(help: str, panel: str = LAYER, *names: str, **kw: Any) -> Any:
    return typer.Option(
        *names, help=help, rich_help_panel=panel, show_default=kw.pop("show_default", False), **kw
    )


@app.command(epilog=COMPARE_EPILOG)
def compare(
    input: Annotated[
        str,
        typer.Argument(
            help="Input tensor: .npy, .npz, .json, .pt, or - for JSON on stdin.", show_default=False
        ),
    ],
    op: Annotated[Op, _opt("The normalization layer.", LAYER, show_default=True)] = Op.layer_norm,
    shape: Annotated[
        str | None,
        _opt(
            "normalized_shape (layer_norm, rms_norm): the trailing dims, e.g. --shape 3 4.",
            LAYER,
            "--shape",
        ),
    ] = None,
    axes: Annotated[
        str | None,
        _opt(
            "Normalize over these axes instead (TF/Keras-style, negative allowed): --axes 1 3.",
            LAYER,
            "--axes",
        ),
    ] = None,
    eps: Annotated[
        float | None,
        _opt(
            "Added to the variance before the square root. Default 1e-5 (rms_norm: torch's None)."
        ),
    ] = None,
    groups: Annotated[int | None, _opt("Number of groups (group_norm).")] = None,
    channel_axis: Annotated[
        int,
        _opt(
            "The channel axis for group/instance/batch/local_response_norm (-1 for channels-last).",
            show_default=True,
        ),
    ] = 1,
    affine: Annotated[
        bool | None,
        _opt(
            "Learnable weight and bias or none. Default as torch: on, off for instance_norm.",
            LAYER,
            "--affine/--no-affine",
        ),
    ] = None,
    train: Annotated[
        bool,
        _opt(
            "Training (batch statistics) or eval mode (batch_norm, instance_norm).",
            LAYER,
            "--train/--eval",
            show_default=True,
        ),
    ] = True,
    track_running_stats: Annotated[
        bool | None,
        _opt(
            "Keep running statistics. Default as torch: on for batch_norm, off for instance_norm.",
            LAYER,
            "--track-running-stats/--no-track-running-stats",
        ),
    ] = None,
    momentum: Annotated[
        str,
        _opt(
            "Running-statistics momentum, or 'none' for the cumulative average.", show_default=True
        ),
    ] = "0.1",
    size: Annotated[
        int | None, _opt("Window of neighbouring channels (local_response_norm).")
    ] = None,
    alpha: Annotated[float, _opt("local_response_norm alpha.", show_default=True)] = 1e-4,
    beta: Annotated[float, _opt("local_response_norm beta.", show_default=True)] = 0.75,
    k: Annotated[float, _opt("local_response_norm k.", LAYER, "--k", show_default=True)] = 1.0,
    activation: Annotated[
        str | None,
        _opt(
            "Applied after the norm and checked too: relu, leaky_relu[=SLOPE], prelu[=INIT], "
            "gelu[=tanh], silu."
        ),
    ] = None,
    weight: Annotated[Path | None, _opt("Weight (gamma) file; default ones.", FILES)] = None,
    bias: Annotated[Path | None, _opt("Bias (beta) file; default zeros.", FILES)] = None,
    running_mean: Annotated[
        Path | None, _opt("Running mean file (batch_norm, instance_norm); default zeros.", FILES)
    ] = None,
    running_var: Annotated[Path | None, _opt("Running variance file; default ones.", FILES)] = None,
    expected: Annotated[
        Path | None, _opt("An output made elsewhere, checked as one more candidate.", FILES)
    ] = None,
    dtype: Annotated[
        DType | None, _opt("Dtype torch computes in; default the input's floating dtype.", LAYER)
    ] = None,
    device: Annotated[
        str, _opt("Device torch runs on: cpu, cuda, cuda:N or mps.", LAYER, show_default=True)
    ] = "cpu",
    vs_device: Annotated[
        str | None,
        _opt(
            "Also run torch on this device as more candidates (--device cuda --vs-device cpu).",
            LAYER,
        ),
    ] = None,
    grad: Annotated[
        bool, _opt("Also check the backward pass: dx, dweight, dbias.", LAYER, "--grad")
    ] = False,
    grad_output: Annotated[
        Path | None, _opt("Upstream gradient for --grad; default seeded random normal.", FILES)
    ] = None,
    seed: Annotated[
        int, _opt("Seed of the random upstream gradient.", LAYER, show_default=True)
    ] = 0,
    tolerance: Annotated[
        ToleranceChoice | None,
        _opt(
            "auto (default): an error bound from the dtype, group size and conditioning; "
            "fixed: torch.testing's table.",
            TOLERANCES,
        ),
    ] = None,
    rtol: Annotated[float | None, _opt("Relative tolerance (give --atol too).", TOLERANCES)] = None,
    atol: Annotated[float | None, _opt("Absolute tolerance (give --rtol too).", TOLERANCES)] = None,
    equal_nan: Annotated[
        bool, _opt("NaN in both places counts as a match.", TOLERANCES, "--equal-nan")
    ] = False,
    json_output: Annotated[
        bool, _opt("Print one JSON object instead of tables.", OUTPUT, "--json")
    ] = False,
    max_bytes: Annotated[
        int | None, _opt("Refuse inputs larger than this many bytes; default half the RAM.", OUTPUT)
    ] = None,
    no_chunks: Annotated[
        bool,
        _opt(
            "Run torch on the whole tensor even when it is large (more memory).",
            OUTPUT,
            "--no-chunks",
        ),
    ] = False,
    plot: Annotated[
        Path | None,
        _opt("Write a PNG with the error histogram and heatmap (needs matplotlib).", OUTPUT),
    ] = None,
) -> None:
    """Check a normalization layer on INPUT: torch's module, functional and native paths
    against the float64 reference."""
    from lncheck.io import CaseSpec, load
    from lncheck.runner import check_case

    spec = CaseSpec(
        input=input,
        op=op.value,
        shape=parse_ints(shape, "--shape"),
        axes=parse_ints(axes, "--axes"),
        eps=eps,
        groups=groups,
        channel_axis=channel_axis,
        affine=affine,
        train=train,
        track_running_stats=track_running_stats,
        momentum=parse_momentum(momentum),
        size=size,
        alpha=alpha,
        beta=beta,
        k=k,
        activation=activation,
        weight=_path(weight),
        bias=_path(bias),
        running_mean=_path(running_mean),
        running_var=_path(running_var),
        expected=_path(expected),
        dtype=None if dtype is None else dtype.value,
        device=device,
        vs_device=vs_device,
        grad=grad,
        grad_output=_path(grad_output),
        seed=seed,
        tolerance=None if tolerance is None else tolerance.value,
        rtol=rtol,
        atol=atol,
        equal_nan=equal_nan,
        max_bytes=max_bytes,
    )
    chunks = {"chunk_elements": None} if no_chunks else {}
    report = check_case(load(spec), heatmaps=plot is not None, **chunks)
    _emit(report, json_output, plot)
    raise typer.Exit(int(report.exit_status))


@app.command()
def ops() -> None:
    """List the ops, their parameters with defaults, and the torch classes they check."""
    from lncheck.render.console import make_console, render_ops

    render_ops(make_console())


SELECTION = "Selection"
BASELINE = "Baseline"

RUN_EPILOG = """\
[bold]Examples[/bold]

lncheck init-suite suite.toml && lncheck run suite.toml
lncheck run suite.toml --junit report.xml --json report.json
lncheck run suite.toml --shard 0/4 -k layer_norm --jobs 2
lncheck baseline suite.toml -o golden.npz
lncheck run suite.toml --baseline golden.npz --strict-baseline
"""


@app.command(epilog=RUN_EPILOG)
def run(
    suite: Annotated[Path, typer.Argument(help="The suite file (TOML).", show_default=False)],
    junit: Annotated[Path | None, _opt("Write a JUnit XML report here.", OUTPUT)] = None,
    json_file: Annotated[
        Path | None, _opt("Write the full JSON report here.", OUTPUT, "--json")
    ] = None,
    quiet: Annotated[bool, _opt("No progress bar.", OUTPUT, "--quiet", "-q")] = False,
    shard: Annotated[
        str | None, _opt("Run every N-th case from the I-th (0-based): --shard 1/4.", SELECTION)
    ] = None,
    pattern: Annotated[
        str | None,
        _opt("Only cases whose name contains PATTERN (or matches a glob).", SELECTION, "-k"),
    ] = None,
    fail_fast: Annotated[
        bool, _opt("Stop at the first failing case.", SELECTION, "--fail-fast")
    ] = False,
    jobs: Annotated[
        int, _opt("Run cases in this many worker processes.", SELECTION, show_default=True)
    ] = 1,
    baseline: Annotated[
        Path | None, _opt("Compare torch's results with this recorded baseline.", BASELINE)
    ] = None,
    baseline_rtol: Annotated[
        float | None,
        _opt(
            "Relative difference from the baseline that is not drift (give --baseline-atol too).",
            BASELINE,
        ),
    ] = None,
    baseline_atol: Annotated[
        float | None, _opt("Absolute difference from the baseline that is not drift.", BASELINE)
    ] = None,
    strict_baseline: Annotated[
        bool, _opt("Drift from the baseline fails the run.", BASELINE, "--strict-baseline")
    ] = False,
) -> None:
    """Run every case of a suite file; exit 0 if all pass, 1 if any fails, 2 on invalid input."""
    from lncheck.render import console
    from lncheck.runner import SuiteOptions, run_cases

    if jobs < 1:
        raise typer.BadParameter(f"must be at least 1, got {jobs}", param_hint="--jobs")
    cases = _selected(suite, shard, pattern)
    from lncheck.tolerances import ToleranceSpec

    drift = ToleranceSpec.from_options(
        baseline_rtol, baseline_atol, names=("--baseline-rtol", "--baseline-atol")
    )
    b_rtol, b_atol = drift.rtol or 0.0, drift.atol or 0.0
    options = SuiteOptions(
        baseline=_path(baseline),
        baseline_rtol=b_rtol,
        baseline_atol=b_atol,
        strict_baseline=strict_baseline,
        fail_fast=fail_fast,
        jobs=jobs,
    )
    if baseline is not None:
        from lncheck.baseline import open_baseline

        open_baseline(baseline)  # an unreadable baseline is an input error before anything runs
    out = console.make_console()
    with console.SuiteProgress(out, len(cases), quiet=quiet) as progress:
        report = run_cases(str(suite), cases, options, lambda r: progress.advance(r.name, r.status))
    console.render_suite(report, out)
    _write_reports(report, junit, json_file)
    raise typer.Exit(int(report.exit_status))


@app.command(name="baseline")
def record_baseline(
    suite: Annotated[Path, typer.Argument(help="The suite file (TOML).", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Where to write the baseline (.npz).", show_default=False
        ),
    ],
    shard: Annotated[
        str | None, _opt("Record every N-th case from the I-th (0-based).", SELECTION)
    ] = None,
    pattern: Annotated[
        str | None, _opt("Only cases whose name contains PATTERN.", SELECTION, "-k")
    ] = None,
    quiet: Annotated[bool, _opt("No progress bar.", OUTPUT, "--quiet", "-q")] = False,
) -> None:
    """Record torch's outputs and statistics for every case of a suite, with versions and device."""
    from lncheck import baseline
    from lncheck.backends import get_backend
    from lncheck.render import console

    cases = _selected(suite, shard, pattern)
    out = console.make_console()
    environment = get_backend().environment(cases[0].spec.device if cases else "cpu")
    with console.SuiteProgress(out, len(cases), quiet=quiet, label="recording") as progress:
        count = baseline.record(cases, output, environment, lambda name: progress.advance(name))
    where = f"torch {environment['torch']} on {environment['device']}"
    out.print(f"recorded {count} cases to {output} ({where})")


@app.command(name="init-suite")
def init_suite(
    path: Annotated[
        Path, typer.Argument(help="Where to write the example suite (.toml).", show_default=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented example suite covering every op (and the input file it uses)."""
    from lncheck.examples import write_example_suite

    written = write_example_suite(path, force=force)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def _selected(suite: Path, shard: str | None, pattern: str | None) -> list[Any]:
    from lncheck.suite import load_suite, parse_shard, select

    loaded = load_suite(suite)
    chosen = select(
        loaded.cases, shard=None if shard is None else parse_shard(shard), pattern=pattern
    )
    if not chosen:
        raise typer.BadParameter(f"no case of {suite} is selected", param_hint="-k/--shard")
    return chosen


def _write_reports(report: Any, junit: Path | None, json_file: Path | None) -> None:
    from lncheck.errors import InputError

    outputs = []
    if junit is not None:
        from lncheck.render import junit as render_junit

        outputs.append((junit, "--junit", render_junit.render(report)))
    if json_file is not None:
        import json

        outputs.append((json_file, "--json", json.dumps(report.to_dict(), allow_nan=False) + "\n"))
    for path, option, text in outputs:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(f"{option} {path}: cannot write: {e.strerror or e}") from None


def _path(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _emit(report: Any, json_output: bool, plot: Path | None = None) -> None:
    if plot is not None:
        from lncheck.render import plot as render_plot

        render_plot.write(report, plot)
    if json_output:
        from lncheck.render import json as render_json

        typer.echo(render_json.render(report))
        return
    from lncheck.render import console

    console.render(report, console.make_console())


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


if __name__ == "__main__":
    main()
