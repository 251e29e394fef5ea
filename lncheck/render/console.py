"""The terminal rendering. This is the only module that imports rich (ruff enforces it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lncheck.render import ClosedPipe, printable, tables

if TYPE_CHECKING:  # kept out of the import path of `lncheck ops`, which needs no NumPy
    from lncheck.comparison import Comparison
    from lncheck.report import Report, SuiteReport

STYLE_PASS = "bold green"
STYLE_FAIL = "bold red"
STYLE_NOTE = "yellow"
STYLE_DIM = "dim"
STYLE_HEADER = "bold"
STYLE_BAR = "cyan"


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits with status 1 here, which lncheck's README reserves for "a check failed":
        # the command line turns a closed pipe into the shell's 141 instead
        self.quiet = True
        raise ClosedPipe


def make_console(
    stderr: bool = False, *, file: IO[str] | None = None, width: int | None = None
) -> Console:
    """The one place consoles are made: colour follows the terminal and ``NO_COLOR``."""
    return _Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False)


def print_error(message: str, label: str = "error") -> None:
    """One line on stderr: how every user error (and a library's warning) is shown, its
    control characters spelled out."""
    style = STYLE_FAIL if label == "error" else STYLE_NOTE
    make_console(stderr=True).print(
        Text(f"lncheck: {label}: {printable(message, newlines=False)}", style=style),
        soft_wrap=True,
    )


def print_line(console: Console, text: str, style: str = "") -> None:
    """One line of text, control characters spelled out, soft-wrapped: the terminal wraps it,
    nothing cuts it. ``style`` is a rich style or one of ``tables``' names (``"fail"``)."""
    line = Text(printable(text, newlines=False), style=STYLES.get(style, style))
    console.print(line, soft_wrap=True)


def write(report: Report | SuiteReport, out: IO[str]) -> None:
    """The ``console`` format (``render.FORMATS``): colour only where ``out`` is a terminal."""
    from lncheck.report import SuiteReport

    console = make_console(file=out)
    if isinstance(report, SuiteReport):
        render_suite(report, console)
    else:
        render(report, console)


def write_quiet(report: Report, out: IO[str]) -> None:
    """``compare --quiet``: one line per check, then the verdict."""
    console = make_console(file=out)
    for text, style in tables.quiet(report):
        print_line(console, text, style)
    console.print(_verdict(report), soft_wrap=True)


def render(report: Report, console: Console) -> None:
    """Print a report: header, statistics, checks, where they fail, the worst elements, the
    error histogram, small tensors, the failures spelled out, and the verdict."""
    _header(report, console)
    name = report.name
    grids = [tables.stats(report.stats, name)] if report.stats is not None else []
    grids += [tables.checks(report), *tables.failing_groups(report), tables.worst(report)]
    for grid in grids:
        console.print()
        show(console, grid)
    elementwise = [
        c
        for c in report.checks
        if c.histogram
        and not c.note
        and c.kind == "reference"
        and c.quantity in ("output", "activation")
    ]
    if elementwise:
        console.print()
        _histogram(console, max(elementwise, key=lambda c: c.tolerance_used), name)
    if report.small:
        console.print()
        show(console, _small(report))
    for text in tables.identical(report) + tables.overflowed(report) + tables.warned(report):
        print_line(console, text, STYLE_NOTE)
    for c in report.failures:
        print_line(console, c.message(), STYLE_FAIL)
    for c in report.drift:
        if c not in report.failures:
            print_line(console, f"drift: {c.message()}", STYLE_NOTE)
    console.print(_verdict(report), soft_wrap=True)


def render_ops(console: Console, rows: list[tuple[str, str, str, str, str]]) -> None:
    """The table of ``lncheck ops``: (op, statistics over, options, backend, its paths)."""
    table = _table("Normalization layers lncheck checks")
    table.add_column("op", no_wrap=True)
    table.add_column("what it does", overflow="fold")  # a long flag folds, never cut
    for op, over, options, backend, paths in rows:
        details = Text()
        details.append("statistics over ", style=STYLE_DIM).append(over + "\n")
        details.append("options ", style=STYLE_DIM).append(options + "\n")
        details.append(f"{backend} ", style=STYLE_DIM).append(paths)
        table.add_row(Text(op, style=STYLE_HEADER), details)
        table.add_section()
    console.print(table)
    console.print(
        "Any op: --dtype, --activation relu|leaky_relu[=SLOPE]|prelu[=INIT]|gelu[=tanh]|silu."
    )


# --- laying grids out: never cut a value ---------------------------------------------------

STYLES = {
    tables.PASS: STYLE_PASS,
    tables.FAIL: STYLE_FAIL,
    tables.NOTE: STYLE_NOTE,
    tables.HEADING: STYLE_HEADER,
    tables.DIM: STYLE_DIM,
    tables.BAR: STYLE_BAR,
}


def show(console: Console, grid: tables.Grid) -> None:
    """Print ``grid`` as a table if it fits the console's width: with every column, then with
    shorter headers, then without its optional columns (in their order); else as records,
    one per row, wrapped between values. No value, name or verdict is ever cut."""
    _wrapped(console, grid.title, "", "")
    drops = sorted({c.drop for c in grid.columns if c.drop}, reverse=True)
    shorter = (False, True) if any(c.short for c in grid.columns) else (False,)
    for dropped, short in [(d, short) for d in (0, *drops) for short in shorter]:
        keep = [i for i, c in enumerate(grid.columns) if not (dropped and c.drop >= dropped)]
        table = _rich_table(grid, keep, short)
        # measured with room to spare: a measure within the width is capped at the width
        natural = Measurement.get(console, console.options.update_width(1 << 20), table)
        if natural.maximum <= console.width:
            console.print(table)
            if grid.caption:
                _wrapped(console, grid.caption, "", "")
            return
    _records(console, grid)
    if grid.caption:
        _wrapped(console, grid.caption, "", "")


def _rich_table(grid: tables.Grid, keep: list[int], short: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i in keep:
        column = grid.columns[i]
        heading = column.short if short and column.short is not None else column.header
        table.add_column(heading, justify="right" if column.right else "left", no_wrap=True)
    for row in grid.rows:
        if row is None:
            table.add_section()
            continue
        cells = [row[i] if i < len(row) else tables.Cell("") for i in keep]
        table.add_row(*(Text(printable(c.text), style=STYLES.get(c.style, "")) for c in cells))
    return table


def _records(console: Console, grid: tables.Grid) -> None:
    """The grid one row at a time: ``label  header value  header value ...``, wrapped between
    values at the console's width (a value longer than a line keeps a line of its own)."""
    for row in grid.rows:
        if row is None:
            continue
        items: list[tuple[str, str]] = []
        for column, cell in zip(grid.columns, row, strict=False):
            for head, value in _paired(column.header, cell.text):
                if value and value != "-":  # nothing to say (a check that was not made)
                    items.append((f"{head} {value}" if head and items else value, cell.style))
        _pack(console, items)


def _paired(header: str, text: str) -> list[tuple[str, str]]:
    heads, values = header.split("\n"), text.split("\n")
    if len(heads) == len(values):
        return list(zip(heads, values, strict=True))
    return [(" / ".join(h for h in heads if h), " / ".join(values))]


def _pack(console: Console, items: list[tuple[str, str]], indent: int = 4) -> None:
    width = console.width
    line = Text()
    for text, style in items:
        item = Text(printable(text, newlines=False), style=STYLES.get(style, ""))
        if line.cell_len and line.cell_len + 2 + item.cell_len > width:
            console.print(line, soft_wrap=True)
            line = Text(" " * indent)
        elif line.cell_len:
            line.append("  ")
        line.append_text(item)
    if line.cell_len:
        console.print(line, soft_wrap=True)


def _wrapped(console: Console, text: str, label: str, style: str, at: int = 0) -> None:
    """``text`` wrapped between words at the console's width, after ``label`` in a column
    ``at`` wide; a word longer than a line is never broken."""
    import textwrap

    room = max(console.width - at, 20)
    text = printable(text, newlines=False)
    lines = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]
    for i, part in enumerate(lines):
        head = (label if i == 0 else "").ljust(at)
        line = Text(head, style=STYLE_HEADER if style != STYLE_NOTE else style)
        console.print(line.append(part, style=style), soft_wrap=True)


def _header(report: Report, console: Console) -> None:
    lines = tables.header(report)
    at = max(len(label) for label, _, _ in lines) + 2
    for label, value, style in lines:
        _wrapped(console, value, label, STYLES.get(style, ""), at)


def _histogram(console: Console, c: Comparison, display: Callable[[str], str]) -> None:
    """The distribution of ``|actual - expected|`` in three-octave bins, bars on a log scale."""
    from lncheck.comparison import histogram_bins

    title = f"Error distribution: {display(c.candidate)} {c.quantity}, |actual - expected|"
    counts = list(c.histogram)
    used = [i for i, n in enumerate(counts) if n]
    labels = histogram_bins()
    top = max(math.log10(n + 1) for n in counts) if counts else 0
    rows: list[tables.Row] = []
    for i in range(used[0], used[-1] + 1) if used else ():
        n = counts[i]
        width = round(40 * math.log10(n + 1) / top) if top else 0
        inner = 2 <= i < len(labels) - 1
        label = f"{labels[i]}..{labels[i + 1].lstrip('>=')}" if inner else labels[i]
        rows.append((tables.Cell(label), tables.Cell(str(n)), tables.Cell("█" * width, "bar")))
    columns = (tables.Column("error"), tables.Column("count", right=True), tables.Column(""))
    show(console, tables.Grid(printable(title, newlines=False), columns, tuple(rows)))


def _small(report: Report) -> tables.Grid:
    import numpy as np

    arrays = [np.asarray(a, dtype=np.float64) for a in report.small.values()]
    index = [_dims(i) for i in np.ndindex(arrays[0].shape)]
    values = [[float(a[i]) for a in arrays] for i in np.ndindex(arrays[0].shape)]
    return tables.elements(report, values, index)


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def _verdict(report: Report) -> Text:
    counted = [c for c in report.checks if c.kind != "baseline" or report.strict_baseline]
    n, bad = len(counted), len(report.failures)
    baseline = [c for c in report.checks if c.kind == "baseline"]
    drift = f"; {len(report.drift)} of {len(baseline)} baseline checks drifted" if baseline else ""
    if report.passed:
        sequential = sum(c.accuracy_class == "sequential" for c in counted)
        within = f" ({sequential} within the sequential-accumulation bound)" if sequential else ""
        warned = sum(c.warning is not None for c in counted)
        warnings = f"; {warned} with a warning" if warned else ""
        return Text(f"PASS: all {n} checks passed{within}{warnings}{drift}", style=STYLE_PASS)
    return Text(f"FAIL: {bad} of {n} checks failed{_classes(report)}{drift}", style=STYLE_FAIL)


def _classes(report: Report) -> str:
    """The failures' accuracy classes (each failure's message says why); a check whose finite
    values are accurate fails only by NaN against NaN, and says so; a low_precision one with
    NaN or Inf (an rstd beyond the dtype's range) fails even where the class is accepted."""
    classes = [_class_label(c) for c in report.failures if c.accuracy_class]
    if not classes:
        return ""
    return " (" + ", ".join(f"{classes.count(k)} {k}" for k in dict.fromkeys(classes)) + ")"


def _class_label(c: Comparison) -> str:
    if c.accuracy_class == "accurate" and c.nan_pairs:
        return "NaN against NaN"
    # NaN or Inf of its own: the matching infinity of an exact value beyond the range is none
    own = c.nan_actual > c.nan_expected or c.inf_actual > c.inf_expected
    if c.accuracy_class == "low_precision" and own:
        return "low_precision with NaN or Inf"
    return str(c.accuracy_class)


_num = tables.num
_dims = tables.dims


# --- suites ---------------------------------------------------------------------------------


class SuiteProgress:
    """A progress bar for a suite run, shown only on a terminal and unless ``quiet``."""

    def __init__(
        self, console: Console, total: int, *, quiet: bool = False, label: str = "cases"
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            console=console,
            disable=quiet or not console.is_terminal,
            transient=True,
        )
        self._task = self._progress.add_task(label, total=total, last="")

    def __enter__(self) -> SuiteProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, name: str, status: str = "") -> None:
        self._progress.update(self._task, advance=1, last=f"{name} {status}")


def render_suite(report: SuiteReport, console: Console) -> None:
    """The summary table of a suite run, the notes and failures spelled out (each once), and
    a verdict line."""
    if report.results:
        show(console, tables.suite(report))
    for text, style in tables.suite_lines(report):
        print_line(console, text, style)
    text, style = tables.suite_verdict(report)
    print_line(console, text, style)


# --- explain ----------------------------------------------------------------------------------

if TYPE_CHECKING:
    from lncheck.explain.report import ExplainReport

EXPLAIN_SHOWN = 3  # candidates whose torch code and notes are printed under the table
VERDICT_STYLES = {"exact": STYLE_PASS, "rounding": STYLE_PASS, "none": STYLE_FAIL}


def render_explain(report: ExplainReport, console: Console) -> None:
    """The ranked candidates of ``lncheck explain``: a table, the torch code and notes of the
    best ones, and a verdict line."""
    shape = _dims(report.input_shape)
    held = "" if report.precision == report.output_dtype else f", values of {report.precision}"
    console.print(
        Text(
            f"explain: input {shape} {report.input_dtype} -> output {report.output_dtype}{held}; "
            f"{report.hypotheses} hypotheses in {report.seconds:.2f} s",
            style=STYLE_HEADER,
        ),
        soft_wrap=True,
    )
    for note in report.notes:
        console.print(Text(f"note: {note}", style=STYLE_NOTE), soft_wrap=True)
    if not report.candidates:
        why = "no structure fits the output" if report.complete else "the budget ran out first"
        console.print(Text(f"no explanation found: {why}", style=STYLE_FAIL))
        return
    title = "Candidates, best first" if report.explained else "Closest attempts (none explains)"
    table = _table(title)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("configuration", overflow="fold", ratio=1)
    table.add_column("max abs\nrms", justify="right", no_wrap=True)
    table.add_column("vs\nrounding", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for i, c in enumerate(report.candidates, 1):
        table.add_row(
            str(i),
            c.description,
            f"{_num(c.max_abs_residual, 2)}\n{_num(c.rms_residual, 2)}",
            f"{_num(c.rounding_ratio, 2)}x",
            Text(c.verdict, style=VERDICT_STYLES[c.verdict]),
        )
    console.print()
    console.print(table)
    for i, c in enumerate(report.candidates[:EXPLAIN_SHOWN], 1):
        console.print(Text(f"{i}. torch:", style=STYLE_HEADER))
        for line in c.torch_code.splitlines():
            console.print(Text(f"   {line}", style=STYLE_BAR), soft_wrap=True)
        for note in c.notes:
            console.print(Text(f"   note: {note}", style=STYLE_NOTE), soft_wrap=True)
    best = report.candidates[0]
    if report.explained:
        how = "exactly" if best.verdict == "exact" else "within rounding"
        verdict = Text(f"EXPLAINED ({how}): {best.description}", style=STYLE_PASS)
    else:
        ratio = best.rounding_ratio
        far = (
            "NaN or inf on one side only"
            if math.isinf(ratio)
            else f"{_num(ratio, 2)}x the rounding"
        )
        verdict = Text(
            "NOT EXPLAINED: no candidate reproduces the output within rounding "
            f"(closest: {best.description}, {far})",
            style=STYLE_FAIL,
        )
    console.print(verdict, soft_wrap=True)
