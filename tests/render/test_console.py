"""The console rendering through a fixed-width console, against golden files."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from lncheck.render import console as render_console
from lncheck.report import Report, SuiteReport

from .reports import TORCH_NAMES, assert_golden, make_report, make_suite_report


def _text(report: Report, **console_options: object) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, legacy_windows=False, **console_options)  # type: ignore[arg-type]
    render_console.render(report, console)
    return buffer.getvalue()


def _suite_text(report: SuiteReport, width: int = 100) -> str:
    buffer = io.StringIO()
    render_console.render_suite(report, Console(file=buffer, width=width, legacy_windows=False))
    return buffer.getvalue()


def test_console_golden() -> None:
    assert_golden("report.txt", _text(make_report()))


def test_tables_use_the_display_names() -> None:
    text = _text(make_report())
    for candidate, short in TORCH_NAMES.items():
        assert short in text and candidate not in text
    assert "Per-group statistics: reference vs native_layer_norm" in text
    assert "(ref / torch)" in text


def test_colours_mark_pass_and_fail() -> None:
    text = _text(make_report(), force_terminal=True, color_system="standard")
    assert "\x1b[1;31mFAIL" in text and "\x1b[1;32mpass" in text


def test_no_color_is_plain_and_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    text = _text(make_report(), force_terminal=True)
    params = {int(p) for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";") if p}
    assert not params & (
        set(range(30, 50)) | set(range(90, 108))
    )  # bold/italic may stay; colour not
    assert "FAIL: 1 of 4 checks failed" in text


def test_failing_row_is_spelled_out() -> None:
    text = _text(make_report())
    assert "expected output does not match the reference: 3 / 8 elements mismatched (37.5%)" in text
    assert "worst element at index (0, 2): 0.75 vs 0.5" in text
    assert "candidate has 1 NaN and 0 Inf" in text


def test_fits_80_columns_when_piped() -> None:
    buffer = io.StringIO()
    render_console.render(make_report(), Console(file=buffer, width=80))
    table_lines = [line for line in buffer.getvalue().splitlines() if "does not match" not in line]
    assert max(len(line.rstrip()) for line in table_lines) <= 80
    assert "…" not in buffer.getvalue()  # nothing truncated


# --- suites ---------------------------------------------------------------------------------


def test_suite_golden() -> None:
    assert_golden("suite.txt", _suite_text(make_suite_report()))


def test_suite_summary_spells_out_what_went_wrong() -> None:
    text = _suite_text(make_suite_report())
    assert "FAIL: 2 pass, 1 fail, 1 skip, 1 xfail, 1 error" in text
    assert "layer_norm-bad: expected output does not match the reference" in text
    assert "rms_norm-float16: cannot run this case in float16" in text
    assert "layer_norm-drift: drift: torch.nn.LayerNorm output does not match the baseline" in text
    assert "note: an example note" in text
    assert "layer_norm-known: a known bug" not in text  # an expected failure is not spelled out


def test_suite_summary_fits_80_columns() -> None:
    text = _suite_text(make_suite_report(), width=80)
    table = text[: text.index("note: ")].splitlines()
    assert len(table) > 10 and max(len(line.rstrip()) for line in table) <= 80
    assert "…" not in text
    assert "layer_norm-drift  float32" in text  # names stay whole; long messages fold


def test_the_console_format_writes_both_kinds_of_report() -> None:
    case, suite = io.StringIO(), io.StringIO()
    render_console.write(make_report(), case)
    render_console.write(make_suite_report(), suite)
    assert "FAIL: 1 of 4 checks failed" in case.getvalue()
    assert "FAIL: 2 pass, 1 fail" in suite.getvalue()
    assert "\x1b[" not in case.getvalue() + suite.getvalue()  # a file is not a terminal
