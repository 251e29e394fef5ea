"""The terminal rendering. This is the only module that imports rich (ruff enforces it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # kept out of the import path of `lncheck ops`, which needs no NumPy
    from lncheck.comparison import Comparison
    from lncheck.report import Report, StatsTable, SuiteReport

STYLE_PASS = "bold green"
STYLE_FAIL = "bold red"
STYLE_NOTE = "yellow"
STYLE_DIM = "dim"
STYLE_HEADER = "bold"
STYLE_BAR = "cyan"


def make_console(
    stderr: bool = False, *, file: IO[str] | None = None, width: int | None = None
) -> Console:
    """The one place consoles are made: colour follows the terminal and ``NO_COLOR``."""
    return Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False)


def print_error(message: str) -> None:
    """One line on stderr: how every user error is shown."""
    make_console(stderr=True).print(
        Text(f"lncheck: error: {message}", style=STYLE_FAIL), soft_wrap=True
    )


def write(report: Report | SuiteReport, out: IO[str]) -> None:
    """The ``console`` format (``render.FORMATS``): colour only where ``out`` is a terminal."""
    from lncheck.report import SuiteReport

    console = make_console(file=out)
    if isinstance(report, SuiteReport):
        render_suite(report, console)
    else:
        render(report, console)


def render(report: Report, console: Console) -> None:
    """Print a report: header, statistics, output checks, small tensors, verdict."""
    console.print(_header(report))
    name = report.name
    tables = [_stats(report.stats, name)] if report.stats is not None else []
    tables += [_checks(report.checks, name), _worst(report.checks, name)]
    elementwise = [
        c
        for c in report.checks
        if c.histogram
        and not c.note
        and c.kind == "reference"
        and c.quantity in ("output", "activation")
    ]
    if elementwise:
        tables.append(_histogram(max(elementwise, key=lambda c: c.tolerance_used), name))
    if report.small:
        tables.append(_small(report))
    for table in tables:
        console.print()
        console.print(table)
    for c in report.failures:
        console.print(Text(c.message(), style=STYLE_FAIL), soft_wrap=True)
    for c in report.drift:
        if c not in report.failures:
            console.print(Text(f"drift: {c.message()}", style=STYLE_NOTE), soft_wrap=True)
    console.print(_verdict(report))


def render_ops(console: Console, rows: list[tuple[str, str, str, str, str]]) -> None:
    """The table of ``lncheck ops``: (op, statistics over, options, backend, its paths)."""
    table = _table("Normalization layers lncheck checks")
    table.add_column("op", no_wrap=True)
    table.add_column("what it does")
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


def _header(report: Report) -> Table:
    h = report.header
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=STYLE_HEADER)
    grid.add_column()
    grid.add_row("layer", h.layer)
    grid.add_row("input", f"{h.case}  shape {_dims(h.input_shape)}  {h.input_dtype}")
    grid.add_row("computed in", f"{h.dtype} on {h.device}")
    grid.add_row("groups", f"{h.groups} x {h.group_size} elements")
    grid.add_row("tolerance", h.tolerance)
    for note in h.notes:
        grid.add_row(Text("note", style=STYLE_NOTE), Text(note, style=STYLE_NOTE))
    return grid


def _stats(stats: StatsTable, display: Callable[[str], str]) -> Table:
    table = _table(f"Per-group statistics: reference vs {display(stats.candidate)}")
    table.add_column("group", no_wrap=True)
    # Reference above the candidate in one cell, so the table fits 80 columns.
    pair = f"(ref / {stats.label})"
    for heading in (f"mean\n{pair}", "diff", f"var\n{pair}", "diff", "kappa"):
        table.add_column(heading, justify="right", no_wrap=True)
    for row in stats.rows:
        table.add_row(
            _dims(row.group),
            f"{_num(row.ref_mean, 9)}\n{_num(row.mean, 9)}",
            _num(row.mean_diff),
            f"{_num(row.ref_var, 9)}\n{_num(row.var, 9)}",
            _num(row.var_diff),
            _num(row.conditioning),
        )
    table.caption = "kappa = |mean| / sqrt(var + eps): the group's conditioning"
    if stats.omitted:
        table.caption += f"; {stats.omitted} more group{'s' if stats.omitted > 1 else ''} not shown"
    return table


def _by_candidate(checks: tuple[Comparison, ...]) -> list[tuple[str, list[Comparison]]]:
    groups: dict[str, list[Comparison]] = {}
    for c in checks:
        groups.setdefault(c.candidate, []).append(c)
    return list(groups.items())


def _check_rows(
    table: Table,
    checks: tuple[Comparison, ...],
    row: Callable[[Comparison], list[Any]],
    display: Callable[[str], str],
) -> None:
    """One heading row per candidate, then its quantities indented below it: the candidate name
    does not take a column of its own, so the tables fit 80 columns."""
    for candidate, group in _by_candidate(checks):
        table.add_row(Text(display(candidate), style=STYLE_HEADER))
        for c in group:
            label = f"  {c.quantity}" + (" vs baseline" if c.kind == "baseline" else "")
            table.add_row(label, *row(c))
        table.add_section()


def _checks(checks: tuple[Comparison, ...], display: Callable[[str], str]) -> Table:
    table = _table("Checks against the reference")
    table.add_column("candidate / quantity", no_wrap=True)
    for name in ("max abs", "max rel", "max ulp", "mean abs", "mismatched", ""):
        table.add_column(name, justify="right", no_wrap=True)

    def row(c: Comparison) -> list[Any]:
        if c.note:
            return [Text(c.note, style=STYLE_FAIL), "", "", "", "", _mark(c)]
        return [
            _num(c.max_abs_err, 2),
            _num(c.max_rel_err, 2),
            _num(c.max_ulp_err, 2),
            _num(c.mean_abs_err, 2),
            f"{c.mismatched}/{c.total} {_percent(c.mismatch_fraction)}",
            _mark(c),
        ]

    _check_rows(table, checks, row, display)
    table.caption = (
        "max ulp: in units in the last place of the compute dtype at max(|ref|, |w| + |b|)"
    )
    return table


def _histogram(c: Comparison, display: Callable[[str], str]) -> Table:
    """The distribution of ``|actual - expected|`` in three-octave bins, bars on a log scale."""
    from lncheck.comparison import histogram_bins

    table = _table(f"Error distribution: {display(c.candidate)} {c.quantity}, |actual - expected|")
    table.add_column("error", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    counts = list(c.histogram)
    used = [i for i, n in enumerate(counts) if n]
    if not used:
        return table
    top = max(math.log10(n + 1) for n in counts)
    labels = histogram_bins()
    for i in range(used[0], used[-1] + 1):
        n = counts[i]
        width = round(40 * math.log10(n + 1) / top) if top else 0
        inner = 2 <= i < len(labels) - 1
        label = f"{labels[i]}..{labels[i + 1].lstrip('>=')}" if inner else labels[i]
        table.add_row(label, str(n), Text("█" * width, style=STYLE_BAR))
    return table


def _worst(checks: tuple[Comparison, ...], display: Callable[[str], str]) -> Table:
    table = _table("Worst element, and the tolerance that would have passed")
    table.add_column("candidate / quantity", no_wrap=True)
    table.add_column("worst at", no_wrap=True)
    # Paired values share a cell, one above the other, so the table fits 80 columns.
    table.add_column("actual\nexpected", justify="right", no_wrap=True)
    table.add_column("rtol\natol", justify="right", no_wrap=True)
    table.add_column("needs atol\nneeds rtol", justify="right", no_wrap=True)

    def row(c: Comparison) -> list[Any]:
        if c.note:
            return [Text(c.note, style=STYLE_FAIL)]
        return [
            _dims(c.worst_index),
            f"{_num(c.worst_actual, 8)}\n{_num(c.worst_expected, 8)}",
            f"{_num(c.rtol, 2)}\n{_num(c.atol, 2)}",
            f"{_num(c.required_atol, 2)}\n{_num(c.required_rtol, 2)}",
        ]

    _check_rows(table, checks, row, display)
    return table


def _small(report: Report) -> Table:
    """Every element of a small tensor: the input, the reference and each candidate's output."""
    import numpy as np

    table = _table("Elements")
    names = list(report.small)
    table.add_column("index", justify="left")
    for name in names:
        table.add_column(report.name(name), justify="right")
    arrays = [np.asarray(report.small[n], dtype=np.float64) for n in names]
    for index in np.ndindex(arrays[0].shape):
        table.add_row(_dims(index), *[_num(float(a[index]), 7) for a in arrays])
    return table


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def _percent(fraction: float) -> str:
    if 0 < fraction < 0.001:
        return "(<0.1%)"
    return f"({100 * fraction:.1f}%)"


def _mark(c: Comparison) -> Text:
    if c.kind == "baseline":
        return Text("same", style=STYLE_PASS) if c.passed else Text("drift", style=STYLE_NOTE)
    return Text("pass", style=STYLE_PASS) if c.passed else Text("FAIL", style=STYLE_FAIL)


def _verdict(report: Report) -> Text:
    counted = [c for c in report.checks if c.kind == "reference" or report.strict_baseline]
    n, bad = len(counted), len(report.failures)
    baseline = [c for c in report.checks if c.kind == "baseline"]
    drift = f"; {len(report.drift)} of {len(baseline)} baseline checks drifted" if baseline else ""
    if report.passed:
        return Text(f"PASS: all {n} checks passed{drift}", style=STYLE_PASS)
    return Text(f"FAIL: {bad} of {n} checks failed{drift}", style=STYLE_FAIL)


def _num(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _dims(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


# --- suites ---------------------------------------------------------------------------------

STATUS_STYLES = {
    "pass": STYLE_PASS,
    "fail": STYLE_FAIL,
    "error": STYLE_FAIL,
    "xpass": STYLE_FAIL,
    "xfail": STYLE_NOTE,
    "skip": STYLE_DIM,
}


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
    """The summary table of a suite run, the failures spelled out, and a verdict line."""
    table = _table(f"Suite {report.suite}")
    # Pairs share a cell, one above the other, so the table fits 80 columns.
    table.add_column("case\nop", overflow="fold")
    table.add_column("dtype", no_wrap=True)
    table.add_column("worst check", overflow="fold")
    table.add_column("max abs\nmax rel", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for r in report.results:
        worst = r.worst()
        header = r.report.header if r.report is not None else None
        table.add_row(
            f"{r.name}\n{header.op}" if header else r.name,
            header.dtype if header else "",
            f"{r.report.name(worst.candidate)}\n{worst.quantity}"
            if worst and r.report
            else (r.message or ""),
            f"{_num(worst.max_abs_err, 2)}\n{_num(worst.max_rel_err, 2)}" if worst else "",
            Text(r.status if r.status != "fail" else "FAIL", style=STATUS_STYLES[r.status]),
            f"{r.seconds:.2f}s" if r.seconds else "",
        )
    console.print(table)
    for note in report.notes:
        console.print(Text(f"note: {note}", style=STYLE_NOTE), soft_wrap=True)
    for r in report.results:
        if r.report is not None and r.report.drift:
            for c in r.report.drift:
                console.print(
                    Text(f"{r.name}: drift: {c.message()}", style=STYLE_NOTE), soft_wrap=True
                )
        if r.status in ("fail", "xpass", "error") and r.message:
            console.print(Text(f"{r.name}: {r.message}", style=STYLE_FAIL), soft_wrap=True)
    counts = {k: v for k, v in report.counts().items() if v}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    style = STYLE_PASS if report.passed else STYLE_FAIL
    console.print(Text(f"{'PASS' if report.passed else 'FAIL'}: {summary}", style=style))


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
        console.print(Text("no explanation found: no structure fits the output", style=STYLE_FAIL))
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
        verdict = Text(
            "NOT EXPLAINED: no candidate reproduces the output within rounding "
            f"(closest: {best.description}, {_num(best.rounding_ratio, 2)}x the rounding)",
            style=STYLE_FAIL,
        )
    console.print(verdict, soft_wrap=True)
