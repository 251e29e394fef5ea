"""Renderings through a fixed-width console, against golden files.

The report here is built by hand, not by running torch, so the goldens do not depend on the
CPU's vector units. Regenerate with ``UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from lncheck.comparison import Comparison
from lncheck.render import console as render_console
from lncheck.render import json as render_json
from lncheck.report import Header, Report, StatRow, StatsTable

GOLDEN = Path(__file__).parent / "golden"


def _check(candidate: str, quantity: str, passed: bool = True, **kw: object) -> Comparison:
    values: dict[str, object] = dict(
        candidate=candidate,
        quantity=quantity,
        passed=passed,
        total=8,
        mismatched=0,
        max_abs_err=1.2e-7,
        max_rel_err=3.4e-7,
        mean_abs_err=5.6e-8,
        worst_index=(1, 3),
        worst_actual=1.2345678,
        worst_expected=1.2345677,
        rtol=1.3e-6,
        atol=1e-5,
        required_atol=0.0,
        required_rtol=0.0,
    )
    values.update(kw)
    return Comparison(**values)  # type: ignore[arg-type]


def make_report() -> Report:
    header = Header(
        case="examples/x.npy",
        op="layer_norm",
        layer="LayerNorm(normalized_shape=(4,), eps=1e-05, elementwise_affine=True, bias=True)",
        input_shape=(2, 4),
        input_dtype="float32",
        dtype="float32",
        groups=2,
        group_size=4,
        params={
            "normalized_shape": (4,),
            "axes": (1,),
            "eps": 1e-5,
            "elementwise_affine": True,
            "bias": True,
        },
        tolerance="fixed: rtol=1.3e-06, atol=1e-05",
        notes=("an example note",),
    )
    checks = (
        _check("torch.nn.LayerNorm", "output"),
        _check("torch.nn.functional.layer_norm", "output"),
        _check("torch.native_layer_norm", "mean", total=2, worst_index=(1,)),
        _check(
            "expected",
            "output",
            passed=False,
            mismatched=3,
            max_abs_err=0.25,
            max_rel_err=math.inf,
            mean_abs_err=0.05,
            worst_index=(0, 2),
            worst_actual=0.75,
            worst_expected=0.5,
            required_atol=0.25,
            required_rtol=math.inf,
            nan_actual=1,
        ),
    )
    stats = StatsTable(
        "torch.native_layer_norm",
        (StatRow((0,), 2.5, 1.25, 2.5000001, 1.2499999, 2.236),),
        omitted=1,
    )
    small = {
        "input": np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]]),
        "reference": np.array([[-1.3416, -0.4472, 0.4472, 1.3416], [-1.0, -1.0, 1.0, 1.0]]),
        "torch.nn.LayerNorm": np.array(
            [[-1.3416, -0.4472, 0.4472, 1.3416], [-1.0, -1.0, 1.0, 1.0]]
        ),
    }
    return Report(header, checks, stats, small)


def _text(report: Report, **console_options: object) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, legacy_windows=False, **console_options)  # type: ignore[arg-type]
    render_console.render(report, console)
    return buffer.getvalue()


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text()


def test_console_golden() -> None:
    _golden("report.txt", _text(make_report()))


def test_json_golden() -> None:
    text = render_json.render(make_report())
    doc = json.loads(text)
    assert doc["checks"][3]["max_rel_err"] is None  # infinity is not JSON: null
    _golden("report.json", json.dumps(doc, indent=2) + "\n")


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
