"""What the console shows, as plain grids of text: built from reports here, without rich, and
laid out by ``console``, which fits each grid to the width it has.

A ``Grid`` says which columns may be dropped (and in which order) or shortened when the
terminal is narrow; ``console`` never cuts a value: a grid that does not fit even then is
shown as wrapped records, one per row. Every string that comes from outside (paths, names,
notes) goes through ``printable`` here, so that no control character reaches a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lncheck.render import printable

if TYPE_CHECKING:
    from lncheck.comparison import Comparison
    from lncheck.report import GroupFailures, Report, StatsTable, SuiteReport

# Semantic styles; ``console`` maps them to colours.
PASS, FAIL, NOTE, HEADING, DIM, BAR = "pass", "fail", "note", "heading", "dim", "bar"


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""


@dataclass(frozen=True)
class Column:
    """A column: its header (lines may stack, ``\\n``), a shorter one for narrow widths, its
    alignment, and ``drop``: 0 never, else dropped (highest first) when the grid is too wide."""

    header: str
    right: bool = False
    drop: int = 0
    short: str | None = None


Row = tuple[Cell, ...] | None  # None: a section break; a row of one cell is a heading


@dataclass(frozen=True)
class Grid:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    caption: str = ""


def num(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _percent(fraction: float) -> str:
    # comparison imports NumPy, which `lncheck ops` and --help never need
    from lncheck.comparison import percent

    return percent(fraction)


def dims(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


# --- a case ---------------------------------------------------------------------------------


def header(report: Report) -> list[tuple[str, str, str]]:
    """The lines above the tables: (label, value, style)."""
    h = report.header
    if h.window is not None:  # LRN: each element over a window of channels, not its group
        groups = (
            f"{h.groups} positions x {h.group_size} channels; each element over a window of "
            f"{h.window}"
        )
    else:
        groups = f"{h.groups} x {h.group_size} elements" + (f", over {h.over}" if h.over else "")
    tolerance = h.tolerance
    if h.window is not None:  # the bound grows with the values each element is reduced over
        tolerance = tolerance.replace(f"groups of {h.window}", f"windows of {h.window}")
    lines = [
        ("layer", h.layer, ""),
        (
            "input",
            f"{printable(h.input or h.case)}  shape {dims(h.input_shape)}  {h.input_dtype}",
            "",
        ),
        ("computed in", f"{h.dtype} on {h.device}", ""),
        ("groups", groups, ""),
        ("tolerance", tolerance, ""),
    ]
    lines += [("note", printable(note), NOTE) for note in h.notes]
    return lines


def stats(table: StatsTable, display: Callable[[str], str]) -> Grid:
    """The per-group statistics: the reference's beside the candidate's (or alone)."""
    alone = not table.candidate
    shown = "mean" if table.centred else "mean sq"
    pair = "(ref)" if alone else f"(ref / {table.label})"
    columns = [Column("group")]
    columns.append(Column(f"{shown}\n{pair}", right=True, short=f"{shown}\n(ref/{table.label})"))
    if not alone:
        columns.append(Column("diff", right=True, drop=2))
    if table.centred:
        columns.append(Column(f"var\n{pair}", right=True, short=f"var\n(ref/{table.label})"))
        if not alone:
            columns.append(Column("diff", right=True, drop=2))
        columns.append(Column("kappa", right=True, drop=1))
    else:
        columns.append(Column("rms\n(ref)", right=True, drop=1))
    rows: list[Row] = []
    for row in table.rows:
        first = row.ref_var if not table.centred else row.ref_mean
        other = row.var if not table.centred else row.mean
        cells = [Cell(dims(row.group)), _pair(first, other, alone)]
        if not alone:
            cells.append(Cell(num(other - first)))
        if table.centred:
            cells.append(_pair(row.ref_var, row.var, alone))
            if not alone:
                cells.append(Cell(num(row.var_diff)))
            cells.append(Cell(num(row.conditioning)))
        else:
            cells.append(Cell(num(math.sqrt(row.ref_var) if row.ref_var >= 0 else math.nan, 9)))
        rows.append(tuple(cells))
    who = "reference" if alone else f"reference vs {display(table.candidate)}"
    caption = (
        "kappa = |mean| / sqrt(var + eps): the group's conditioning"
        if table.centred
        else "mean sq: the mean of x squared over the group; rms: its square root"
    )
    if table.omitted:
        caption += f"; {table.omitted} more group{'s' if table.omitted > 1 else ''} not shown"
    return Grid(f"Per-group statistics: {who}", tuple(columns), tuple(rows), caption)


def _pair(ref: float, other: float, alone: bool) -> Cell:
    # Reference above the candidate in one cell, so the table fits 80 columns.
    return Cell(num(ref, 9) if alone else f"{num(ref, 9)}\n{num(other, 9)}")


def _by_candidate(checks: Sequence[Comparison]) -> list[tuple[str, list[Comparison]]]:
    groups: dict[str, list[Comparison]] = {}
    for c in checks:
        groups.setdefault(c.candidate, []).append(c)
    return list(groups.items())


# How a check's row says what it compares with, unless it is the reference.
_AGAINST = {"baseline": " vs baseline", "repeat": " vs run 1"}


def _check_rows(
    checks: Sequence[Comparison],
    row: Callable[[Comparison], list[Cell]],
    display: Callable[[str], str],
) -> tuple[Row, ...]:
    """One heading row per candidate, then its quantities indented below it: the candidate name
    does not take a column of its own, so the tables fit 80 columns."""
    rows: list[Row] = []
    for candidate, group in _by_candidate(checks):
        rows.append((Cell(printable(display(candidate), newlines=False), HEADING),))
        for c in group:
            rows.append((Cell(f"  {c.quantity}" + _AGAINST.get(c.kind, "")), *row(c)))
        rows.append(None)
    return tuple(rows)


def mark(c: Comparison) -> Cell:
    if c.kind == "baseline":
        return Cell("same", PASS) if c.passed else Cell("drift", NOTE)
    return Cell("pass", PASS) if c.passed else Cell("FAIL", FAIL)


def checks(report: Report) -> Grid:
    """One row per check: the error figures, the mismatched count and the verdict."""
    columns = (
        Column("candidate / quantity"),
        Column("max abs", right=True),
        Column("max rel", right=True, drop=1),
        Column("max ulp", right=True, drop=2),
        Column("mean abs", right=True, drop=3),
        Column("mismatched", right=True),
        Column("", right=True),
    )

    def row(c: Comparison) -> list[Cell]:
        if c.note:  # said in full below the table
            return [Cell("-"), Cell("-"), Cell("-"), Cell("-"), Cell("see below", FAIL), mark(c)]
        return [
            Cell(num(c.max_abs_err, 2)),
            Cell(num(c.max_rel_err, 2)),
            Cell(num(c.max_ulp_err, 2)),
            Cell(num(c.mean_abs_err, 2)),
            Cell(f"{c.mismatched}/{c.total} {_percent(c.mismatch_fraction)}"),
            mark(c),
        ]

    caption = "max ulp: in units in the last place of the compute dtype at max(|ref|, |w| + |b|)"
    rows = _check_rows(report.checks, row, report.name)
    return Grid("Checks against the reference", columns, rows, caption)


def worst(report: Report) -> Grid:
    """The worst element of each check, the tolerance applied, and the one that would pass."""
    columns = (
        Column("candidate / quantity"),
        Column("worst at"),
        # Paired values share a cell, one above the other, so the table fits 80 columns.
        Column("actual\nexpected", right=True),
        Column("rtol\natol", right=True, drop=2),
        Column("needs atol\nneeds rtol", right=True, drop=1, short="needs\natol/rtol"),
    )

    def row(c: Comparison) -> list[Cell]:
        if c.note:
            return [Cell("-"), Cell("-"), Cell("-"), Cell("-")]
        return [
            Cell(dims(c.worst_index)),
            Cell(f"{num(c.worst_actual, 8)}\n{num(c.worst_expected, 8)}"),
            Cell(f"{num(c.rtol, 2)}\n{num(c.atol, 2)}"),
            Cell(f"{num(c.required_atol, 2)}\n{num(c.required_rtol, 2)}"),
        ]

    rows = _check_rows(report.checks, row, report.name)
    return Grid("Worst element, and the tolerance that would have passed", columns, rows)


def failing_groups(report: Report) -> list[Grid]:
    """For each failing check, the groups it fails in and how many elements of each."""
    grids = []
    for (candidate, quantity), found in report.failing_groups.items():
        grids.append(_failing(report.name(candidate), quantity, found))
    return grids


def _failing(name: str, quantity: str, found: GroupFailures) -> Grid:
    size = found.group_size
    rows: list[Row] = [
        (Cell(dims(group)), Cell(f"{n}/{size} {_percent(n / size if size else 0)}"))
        for group, n in found.worst
    ]
    caption = ""
    if not found.complete:
        rest = found.failing - len(found.worst)
        caption = f"{rest} more failing group{'s' if rest > 1 else ''}: --all-groups lists them all"
    plural = "s" if found.groups > 1 else ""
    title = (
        f"Where {printable(name, newlines=False)} {quantity} fails: {found.failing} of "
        f"{found.groups} group{plural}, most mismatches first"
    )
    columns = (Column("group"), Column("mismatched", right=True))
    return Grid(title, columns, tuple(rows), caption)


def elements(report: Report, values: Sequence[Sequence[float]], index: Sequence[str]) -> Grid:
    """Every element of a small tensor: the input, the reference and each candidate's output."""
    names = list(report.small)
    columns = (
        Column("index"),
        *(Column(printable(report.name(n), newlines=False), right=True) for n in names),
    )
    rows: list[Row] = [
        (Cell(i), *(Cell(num(float(v), 7)) for v in row))
        for i, row in zip(index, values, strict=True)
    ]
    return Grid("Elements", columns, tuple(rows))


def identical(report: Report) -> list[str]:
    """One note per candidate whose outputs were bit-identical to an earlier one's, and so
    compared once: the table repeats that candidate's figures."""
    twins: dict[str, dict[str, list[str]]] = {}
    for c in report.checks:
        if c.identical_to is not None:
            twins.setdefault(c.candidate, {}).setdefault(c.identical_to, []).append(c.quantity)
    lines = []
    for candidate, found in twins.items():
        for twin, quantities in found.items():
            name, other = (printable(report.name(n), newlines=False) for n in (candidate, twin))
            lines.append(f"note: {name} {', '.join(quantities)}: identical to {other}")
    return lines


def overflowed(report: Report) -> list[str]:
    """One note per passing check whose exact values were beyond the dtype's range (a failing
    one says so in its message)."""
    from lncheck.verdicts import overflow_words  # NumPy with it: never on the way to --help

    return [
        f"note: {printable(report.name(c.candidate), newlines=False)} {c.quantity}: "
        + overflow_words(c.overflow, report.header.dtype)
        for c in report.checks
        if c.overflow and c.passed
    ]


def warned(report: Report) -> list[str]:
    """One line per passing check with a warning."""
    return [
        f"warning: {printable(report.name(c.candidate), newlines=False)} {c.quantity}: "
        + printable(c.warning, newlines=False)
        for c in report.checks
        if c.warning and c.passed
    ]


def quiet(report: Report) -> list[tuple[str, str]]:
    """``compare --quiet``: one line per check, (text, style); failures say what failed."""
    lines = []
    for c in report.checks:
        name = printable(report.name(c.candidate), newlines=False)
        against = _AGAINST.get(c.kind, "")
        if not c.passed:
            style = NOTE if c.kind == "baseline" and c not in report.failures else FAIL
            text = printable(c.message(), newlines=False)
            if c.identical_to is not None:  # the figures are the twin's: say whose
                text += f" (identical to {printable(report.name(c.identical_to))})"
            lines.append((text, style))
        elif c.note:
            lines.append((f"{name} {c.quantity}{against}: {printable(c.note)}", ""))
        else:
            figures = f"max abs {num(c.max_abs_err, 2)}, {c.mismatched}/{c.total} mismatched"
            if c.identical_to is not None:
                figures += f"; identical to {printable(report.name(c.identical_to))}"
            if c.warning:
                figures += f"; warning: {printable(c.warning, newlines=False)}"
            lines.append(
                (f"{name} {c.quantity}{against}: pass ({figures})", NOTE if c.warning else "")
            )
    return lines


# --- a suite --------------------------------------------------------------------------------

STATUS_STYLES = {
    "pass": PASS,
    "fail": FAIL,
    "drift": NOTE,
    "error": FAIL,
    "xpass": FAIL,
    "xfail": NOTE,
    "skip": DIM,
}


def suite(report: SuiteReport) -> Grid:
    """The summary table of a suite run: case and op, dtype, worst check, its errors, the
    status and the time."""
    columns = (
        # Pairs share a cell, one above the other, so the table fits 80 columns.
        Column("case\nop"),
        Column("dtype", drop=2),
        Column("worst check"),
        Column("max abs\nmax rel", right=True, drop=1),
        Column(""),
        Column("time", right=True, drop=3),
    )
    rows: list[Row] = []
    for r in report.results:
        worst = r.worst()
        h = r.report.header if r.report is not None else None
        if worst is None or r.report is None:
            check, errors = "", ""
        elif worst.note:
            check, errors = f"{r.report.name(worst.candidate)}\n{worst.quantity}", "-"
        else:
            check = f"{r.report.name(worst.candidate)}\n{worst.quantity}"
            errors = f"{num(worst.max_abs_err, 2)}\n{num(worst.max_rel_err, 2)}"
        status = r.status if r.status != "fail" else "FAIL"
        rows.append(
            (
                Cell(printable(f"{r.name}\n{h.op}" if h else r.name)),
                Cell(h.dtype if h else ""),
                Cell(printable(check)),
                Cell(errors),
                Cell(status, STATUS_STYLES[r.status]),
                Cell(f"{r.seconds:.2f}s" if r.seconds else ""),
            )
        )
    return Grid(f"Suite {printable(report.suite, newlines=False)}", columns, tuple(rows))


def suite_lines(report: SuiteReport) -> list[tuple[str, str]]:
    """Below the table: the notes, then per case what went wrong or drifted, each said once."""
    lines = [(f"note: {printable(note, newlines=False)}", NOTE) for note in report.notes]
    for r in report.results:
        said = set()
        if r.status in ("fail", "xpass", "error", "drift", "skip") and r.message:
            style = {"drift": NOTE, "skip": DIM}.get(r.status, FAIL)
            text = f"{r.name}: {'skipped: ' if r.status == 'skip' else ''}{r.message}"
            lines.append((printable(text, newlines=False), style))
            said.add(r.message)
        for c in r.report.drift if r.report is not None else ():
            if c.message() not in said:
                text = f"{r.name}: drift: {c.message()}"
                lines.append((printable(text, newlines=False), NOTE))
    return lines


def suite_verdict(report: SuiteReport) -> tuple[str, str]:
    counts = {k: v for k, v in report.counts().items() if v}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no case ran"
    if report.passed and counts.get("drift"):  # a passing run that moved: said where CI reads
        summary += " (drift from the baseline passes; --strict-baseline fails on it)"
    return f"{'PASS' if report.passed else 'FAIL'}: {summary}", PASS if report.passed else FAIL
