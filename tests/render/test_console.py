"""The console rendering through a fixed-width console, against golden files."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from lncheck.render import console as render_console
from lncheck.report import Report, SuiteReport

from .reports import (
    TORCH_NAMES,
    assert_golden,
    make_long_report,
    make_long_suite_report,
    make_report,
    make_suite_report,
)


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


# --- 80 columns and narrower: nothing is ever cut ------------------------------------------


def _at(width: int, render: object, report: object) -> str:
    buffer = io.StringIO()
    render(report, Console(file=buffer, width=width, legacy_windows=False))  # type: ignore[operator]
    return buffer.getvalue()


def _whole(text: str, values: list[str]) -> None:
    """Every value is in ``text`` whole: a phrase may wrap between words, a word never."""
    assert "…" not in text
    words = " ".join(text.split())
    for value in values:
        assert " ".join(value.split()) in words, value


LONG_VALUES = [
    "1.2e-300", "-9.9e+307", "1.5e+300", "1.1e-305", "(1023, 4095)", "-1.2345679e+300",
    "-1.2345679e+300", "inf", "3.3e+38", "-inf", "-1.2345679e-300", "4194303/4194304 (>99.9%)",
    "experiments/2024-06-kernels/layer_norm/inputs/large_activations_seq4096.npy",
    "my_fused_triton_layer_norm_forward_kernel_v2@cuda:0", "FAIL", "pass",
    "output fails: 1024 of 1024",
    "1021 more failing groups: --all-groups lists them all",
    "grad_input: has shape (1024, 4095), the reference has shape (1024, 4096)",
]  # fmt: skip


@pytest.mark.parametrize("width", [80, 40])
def test_a_failing_report_with_long_values_at_narrow_widths(width: int) -> None:
    report = make_long_report()
    text = _at(width, render_console.render, report)
    assert_golden(f"long_report_{width}.txt", text)
    _whole(text, LONG_VALUES)
    # Longer than the width: the failure lines (soft-wrapped text, whole), or a line holding
    # one value longer than the width (after a label: "input  <a long path>").
    failures = {c.message() for c in report.failures}
    for line in text.splitlines():
        if len(line.rstrip()) > width:
            assert line in failures or len(line.split()) <= 2, line


def test_a_suite_with_long_case_names_at_80_columns() -> None:
    text = _at(80, render_console.render_suite, make_long_suite_report())
    assert_golden("long_suite_80.txt", text)
    name = "transformer-block-07-pre-attention-layer-norm-bfloat16-seq4096"
    _whole(text, [name, "FAIL", "error", "12.50s", "rms_norm-float16: cannot run this case"])


def test_the_verdict_line_says_a_low_precision_failure_holds_nan_or_inf() -> None:
    # float16 rows of equal values at eps 1e-12: torch's saved rstd is inf (exact 1e6), a
    # low_precision failure that --accept low-precision does not pass; the verdict line read
    # "(1 low_precision)", as if the option were ignored
    import numpy as np

    import lncheck

    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float16)
    x[0] = 1.5
    for accept in (None, "low-precision"):
        report = lncheck.compare(x, normalized_shape=64, eps=1e-12, accept=accept)
        assert render_console._classes(report) == " (1 low_precision with NaN or Inf)"
    # infinities that match exact values beyond float16's range are none of its own: a
    # float16 LayerNorm with a weight of 3e4 rounding x - mean and rstd to float16
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 256)).astype(np.float16)
    w = np.full(256, 3e4, np.float16)
    centred = (x - x.mean(-1, keepdims=True, dtype=np.float16)).astype(np.float16)
    var = x.var(-1, keepdims=True, dtype=np.float16)
    rstd = (1 / np.sqrt(var + np.float16(1e-5))).astype(np.float16)
    with np.errstate(over="ignore"):
        y = (centred * rstd).astype(np.float16) * w
    report = lncheck.compare(x, normalized_shape=256, weight=w, backend=None, expected=y)
    (c,) = [c for c in report.checks if c.quantity == "output"]
    assert c.inf_actual == c.inf_expected == 55 and c.accuracy_class == "low_precision"
    assert render_console._classes(report) == " (1 low_precision)"
