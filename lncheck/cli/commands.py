"""The commands: ``compare``, ``ops``, ``run``, ``baseline``, ``init-suite``.

Each translates its options into library calls and hands the report to the renderers: what
goes to standard output is ``--format`` (``--json`` is ``--format json``), files are
``--report FORMAT=PATH`` (``--junit FILE`` is ``--report junit=FILE``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lncheck.cli import Command, app, written
from lncheck.cli.params import with_table_options
from lncheck.options import parse, spelling
from lncheck.render import ReportTarget

OUTPUT = "Output"
SELECTION = "Selection"
BASELINE = "Baseline"


def _opt(help: str, panel: str, *names: str, **kw: Any) -> Any:
    return typer.Option(
        *names, help=help, rich_help_panel=panel, show_default=kw.pop("show_default", False), **kw
    )


def _formats() -> str:
    from lncheck.render import FORMATS

    return "|".join(FORMATS)


COMPARE_EPILOG = """\
[bold]Examples[/bold]

[dim]# LayerNorm over the last two dims: normalized_shape=(3, 4)[/dim]
lncheck compare input.npy --shape 3 4

[dim]# weight and bias from the .npz, a JSON report[/dim]
lncheck compare data.npz --shape 8 --json

[dim]# check an output produced elsewhere as one more candidate[/dim]
lncheck compare x.npy --shape 8 --expected y.npy

[dim]# a kernel's quantities (a bundle .npz), a program, a Python function, run 5 times[/dim]
lncheck compare x.npy --shape 8 --expected triton=out.npz
lncheck compare x.npy --shape 8 --candidate-cmd "./ln {input} {output} --eps {eps}"
lncheck compare x.npy --shape 8 --candidate kernels.py:layer_norm --repeat 5

[dim]# GroupNorm with 4 groups; BatchNorm in eval with running statistics[/dim]
lncheck compare image.npy --op group_norm --groups 4
lncheck compare image.npy --op batch_norm --eval --running-mean m.npy --running-var v.npy

[dim]# TF/Keras-style axes, channels-last data, an activation after the norm[/dim]
lncheck compare x.npy --axes 1 3
lncheck compare nhwc.npy --op group_norm --groups 8 --channel-axis -1 --activation silu

[dim]# JSON on standard input[/dim]
echo '[[1, 2, 3, 4]]' | lncheck compare - --shape 4
"""

FormatOption = Annotated[
    str | None,
    _opt("What goes to standard output: console (tables), json or junit.", OUTPUT, "--format",
         metavar=f"[{_formats()}]"),
]  # fmt: skip
ReportOption = Annotated[
    list[str] | None,
    _opt("Also write the report as FORMAT to PATH (repeatable): --report junit=r.xml.", OUTPUT,
         "--report", metavar="FORMAT=PATH"),
]  # fmt: skip


@app.command(cls=Command, epilog=COMPARE_EPILOG)
@with_table_options("cli")
def compare(
    input: Annotated[
        str,
        typer.Argument(
            help="Input tensor: .npy, .npz, .json, .pt, or - for JSON on stdin.",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    json_output: Annotated[
        bool, _opt("Print one JSON object instead of tables (--format json).", OUTPUT, "--json")
    ] = False,
    output_format: FormatOption = None,
    reports: ReportOption = None,
    plot: Annotated[
        Path | None,
        _opt(
            "Write the error histogram and heatmap as an image, in the format its suffix "
            "names (.png, .svg, .pdf; needs matplotlib).",
            OUTPUT,
        ),
    ] = None,
    quiet: Annotated[
        bool, _opt("One line per check, then the verdict.", OUTPUT, "--quiet", "-q")
    ] = False,
    all_groups: Annotated[
        bool,
        _opt(
            "List every failing group of a failing check (default: the 10 worst).",
            OUTPUT,
            "--all-groups",
        ),
    ] = False,
    **options: Any,
) -> None:
    """Check a normalization layer on INPUT against the float64 reference.

    The backend's module, functional and native paths are checked, and any candidates given.
    """
    from lncheck.errors import InputError
    from lncheck.loading import load
    from lncheck.pipeline import check_case

    stdout_format = _stdout_format(json_output, output_format)
    typed_format = "--json" if json_output else f"--format {stdout_format}"
    quiet_flag = spelling("cli")("quiet")  # -q or --quiet, as typed
    if quiet and stdout_format != "console":
        raise InputError(
            f"{quiet_flag} shortens the console output; it does not apply to {typed_format}"
        )
    if all_groups and (quiet or stdout_format != "console"):  # only the tables list groups
        where = quiet_flag if quiet else typed_format
        raise InputError(f"--all-groups lengthens the console tables; it does not apply to {where}")
    targets = _report_targets(reports)
    settings = parse(options, "cli")
    if plot is not None and (plot.is_dir() or plot.name in ("", ".", "..")):
        raise InputError(f"--plot {plot}: is a folder; give a file name")
    # the plot is one more file written: it may clash with a report as two reports do
    writes = targets + ([ReportTarget("", plot, "--plot")] if plot is not None else [])
    written.protect(writes, written.files_read(settings, input), stdout=stdout_format)
    if plot is not None:  # a format matplotlib lacks is found before the run, not after
        from lncheck.render.plot import check_target

        check_target(plot)
    case = load(settings, input)
    report = check_case(case, heatmaps=plot is not None, failing_groups=None if all_groups else 10)
    if plot is not None:
        from lncheck.render import plot as render_plot

        render_plot.write(report, plot)
    _emit(report, stdout_format, targets, quiet=quiet)
    raise typer.Exit(int(report.exit_status))


@app.command(cls=Command)
def ops() -> None:
    """List the ops, their options with defaults, and the backend paths they check."""
    from lncheck import ops as registry
    from lncheck.backends import BACKENDS, get_backend
    from lncheck.options import OPTIONS
    from lncheck.render.console import make_console, render_ops

    rows = []
    for name in registry.OPS:
        op = registry.module(name)
        flags = [
            f"{OPTIONS[o].flag} ({text})" if "/" in OPTIONS[o].flag else f"{OPTIONS[o].flag} {text}"
            for o, text in op.READS.items()
        ]
        flags = [f.removesuffix(" ()").strip() for f in flags]
        for backend_name in BACKENDS:
            backend = get_backend(backend_name)
            rows.append((name, op.SUMMARY, ", ".join(flags), backend.LABEL, backend.describe(name)))
    render_ops(make_console(), rows)


RUN_EPILOG = """\
[bold]Examples[/bold]

lncheck init-suite suite.toml && lncheck run suite.toml
lncheck run suite.toml --junit report.xml --json report.json
lncheck run suite.toml --shard 1/4 -k layer_norm --jobs 2
lncheck baseline suite.toml -o golden.npz
lncheck run suite.toml --baseline golden.npz --strict-baseline
"""


@app.command(cls=Command, epilog=RUN_EPILOG)
def run(
    suite: Annotated[
        Path, typer.Argument(help="The suite file (TOML).", show_default=False, metavar="SUITE")
    ],
    junit: Annotated[
        Path | None, _opt("Write a JUnit XML report here (--report junit=FILE).", OUTPUT)
    ] = None,
    json_file: Annotated[
        Path | None, _opt("Write the full JSON report here (--report json=FILE).", OUTPUT, "--json")
    ] = None,
    output_format: FormatOption = None,
    reports: ReportOption = None,
    quiet: Annotated[
        bool, _opt("No progress bar; the summary only.", OUTPUT, "--quiet", "-q")
    ] = False,
    shard: Annotated[
        str | None,
        _opt("Run every N-th case from the I-th, counting from 1: --shard 1/4 ... 4/4.", SELECTION),
    ] = None,
    pattern: Annotated[
        str | None,
        _opt(
            "Only cases whose name contains PATTERN (or matches a glob).",
            SELECTION,
            "-k",
            "--pattern",
        ),
    ] = None,
    fail_fast: Annotated[
        bool, _opt("Stop at the first failing case.", SELECTION, "--fail-fast")
    ] = False,
    jobs: Annotated[
        int, _opt("Run cases in this many worker processes.", SELECTION, show_default=True)
    ] = 1,
    baseline: Annotated[
        Path | None, _opt("Compare the backend's results with this recorded baseline.", BASELINE)
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
    from lncheck.suite.run import SuiteOptions, run_cases
    from lncheck.tolerance_spec import ToleranceSpec

    stdout_format = output_format or "console"
    targets = _report_targets(reports)
    # --junit and --json are reports too, named as they were typed
    targets += [ReportTarget(name, path, f"--{name}")
                for name, path in (("junit", junit), ("json", json_file)) if path]  # fmt: skip
    drift = ToleranceSpec.from_options(
        baseline_rtol, baseline_atol, names=("--baseline-rtol", "--baseline-atol")
    )
    if baseline is None:  # they say what counts as drift from a baseline: there is none
        _refuse_without_baseline(baseline_rtol, baseline_atol, strict_baseline)
    options = SuiteOptions(
        baseline=None if baseline is None else str(baseline),
        baseline_rtol=drift.rtol or 0.0,
        baseline_atol=drift.atol or 0.0,
        strict_baseline=strict_baseline,
        fail_fast=fail_fast,
        jobs=jobs,
    )
    cases, notes = _selected(suite, shard, pattern)
    files = {str(suite): "the suite file", **written.files_of(cases)}
    written.protect(targets, files, baseline, stdout=stdout_format)
    # the suite is valid and no target is a file it reads: an earlier run's reports go now,
    # so that a missing or damaged baseline leaves no stale report that may say "pass"
    written.remove_stale(targets)
    if baseline is not None:
        from lncheck.suite.baseline import open_baseline

        # an unreadable or damaged baseline is an input error before anything runs
        open_baseline(baseline, verify=True)
    out = console.make_console(stderr=stdout_format != "console")
    with console.SuiteProgress(out, len(cases), quiet=quiet) as progress:
        report = run_cases(
            str(suite), cases, options, lambda r: progress.advance(r.name, r.status), notes
        )
    _emit(report, stdout_format, targets)
    raise typer.Exit(int(report.exit_status))


@app.command(cls=Command, name="baseline")
def record_baseline(
    suite: Annotated[
        Path, typer.Argument(help="The suite file (TOML).", show_default=False, metavar="SUITE")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Where to write the baseline (.npz).", show_default=False
        ),
    ],
    shard: Annotated[
        str | None, _opt("Record every N-th case from the I-th, counting from 1.", SELECTION)
    ] = None,
    pattern: Annotated[
        str | None,
        _opt(
            "Only cases whose name contains PATTERN (or matches a glob).",
            SELECTION,
            "-k",
            "--pattern",
        ),
    ] = None,
    prune: Annotated[
        bool,
        _opt(
            "Drop the cases of an existing baseline that are no longer in the suite.",
            BASELINE,
            "--prune",
        ),
    ] = False,
    quiet: Annotated[bool, _opt("No progress bar.", OUTPUT, "--quiet", "-q")] = False,
) -> None:
    """Record the backend's outputs and statistics for every case of a suite.

    Versions and device are recorded with them. Re-recording some cases (-k, --shard) keeps
    the others of an existing baseline."""
    from lncheck.render import console
    from lncheck.suite import baseline
    from lncheck.suite.parse import load_suite
    from lncheck.suite.run import environment_of

    everything = load_suite(suite).cases
    cases, notes = _selected(suite, shard, pattern, everything)
    written.protect([ReportTarget("", output, spelling("cli")("output"))],
                    {str(suite): "the suite file", **written.files_of(everything)},
                    stdout="console")  # fmt: skip
    out = console.make_console()
    environment = environment_of(cases)
    with console.SuiteProgress(out, len(cases), quiet=quiet, label="recording") as progress:
        done = baseline.record(
            cases,
            output,
            environment,
            lambda name: progress.advance(name),
            root=suite.parent,
            suite_names={c.name for c in everything},
            prune=prune,
        )
    backend = str(environment.get("backend", "torch"))
    where = f"{backend} {environment.get(backend, '?')} on {environment['device']}"
    kept = f"; kept {len(done.kept)} recorded before" if done.kept else ""
    pruned = f"; dropped {len(done.pruned)} no longer in the suite" if done.pruned else ""
    for note in notes:
        console.print_line(out, f"note: {note}", console.STYLE_NOTE)
    count = len(done.recorded)
    plural = "case" if count == 1 else "cases"
    console.print_line(out, f"recorded {count} {plural} to {output} ({where}){kept}{pruned}")


@app.command(cls=Command, name="init-suite")
def init_suite(
    path: Annotated[  # as typed: a trailing "/" says a folder, which Path would drop
        str,
        typer.Argument(
            help="Where to write the example suite (.toml).", show_default=False, metavar="PATH"
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented example suite covering every op (and the input file it uses)."""
    from lncheck.examples import write_example_suite

    written = write_example_suite(path, force=force)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def _selected(
    suite: Path, shard: str | None, pattern: str | None, cases: Any = None
) -> tuple[list[Any], list[str]]:
    """The cases ``--shard`` and ``-k`` select, and a note if that leaves none (not an error:
    a CI matrix may have more shards than a pattern has cases)."""
    from lncheck.suite.parse import load_suite
    from lncheck.suite.run import parse_shard, select, selection_note

    split = None if shard is None else parse_shard(shard)
    everything = load_suite(suite).cases if cases is None else cases
    chosen = select(everything, shard=split, pattern=pattern)
    return chosen, selection_note(chosen, split)


def _refuse_without_baseline(rtol: float | None, atol: float | None, strict: bool) -> None:
    from lncheck.errors import InputError

    for name, value in (("--baseline-rtol", rtol), ("--baseline-atol", atol)):
        if value is not None:
            raise InputError(f"{name} is for drift from a baseline: give --baseline too")
    if strict:
        raise InputError("--strict-baseline is for drift from a baseline: give --baseline too")


def _stdout_format(json_output: bool, output_format: str | None) -> str:
    from lncheck.errors import InputError
    from lncheck.render import get_format

    if json_output and output_format not in (None, "json"):
        raise InputError(f"--json and --format {output_format} contradict each other: give one")
    name = "json" if json_output else (output_format or "console")
    get_format(name)
    return name


def _report_targets(reports: list[str] | None) -> list[ReportTarget]:
    from lncheck.render import parse_report_target

    return [parse_report_target(text) for text in reports or ()]


def _emit(
    report: Any, stdout_format: str, targets: list[ReportTarget], *, quiet: bool = False
) -> None:
    """Write the report files (each whole or not at all), then the chosen format to stdout."""
    from lncheck.render import get_format, write_file

    for target in targets:
        write_file(report, target)
    if quiet and stdout_format == "console":
        from lncheck.render.console import write_quiet

        write_quiet(report, sys.stdout)
        return
    get_format(stdout_format).write(report, sys.stdout)
