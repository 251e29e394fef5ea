"""The renderings of an ``ExplainReport``: the console table and the JSON document."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import numpy as np

from lncheck.explain import ExplainReport, explain
from lncheck.render.console import make_console, render_explain
from lncheck.render.json import explain_document

from .conventions import normalize, rounded


def _render(report: ExplainReport) -> str:
    out = io.StringIO()
    render_explain(report, make_console(file=out, width=100))
    return out.getvalue()


def _keras() -> ExplainReport:
    x = np.random.default_rng(0).normal(size=(8, 32)).astype(np.float32)
    return explain(x, rounded(normalize(x, (-1,), 1e-3), "float32"))


def test_console_table_code_and_verdict() -> None:
    text = _render(_keras())
    lines = text.splitlines()
    assert lines[0].startswith("explain: input (8, 32) float32 -> output float32; ")
    assert lines[0].endswith(" s") and " hypotheses in " in lines[0]
    assert "Candidates, best first" in text
    row = next(line for line in lines if line.lstrip().startswith("1 "))
    assert "LayerNorm over the last dim (32,), eps=1e-3" in row and row.rstrip().endswith("exact")
    assert "1. torch:" in lines and "   nn.LayerNorm([32], eps=1e-3)(x)" in lines
    assert lines[-1] == (
        "EXPLAINED (exactly): LayerNorm over the last dim (32,), eps=1e-3, biased variance, eps "
        "inside the sqrt, no affine"
    )


def test_console_for_an_output_nothing_explains() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    text = _render(explain(x, rng.normal(size=x.shape).astype(np.float32)))
    assert "Closest attempts (none explains)" in text
    assert text.splitlines()[-1].startswith(
        "NOT EXPLAINED: no candidate reproduces the output within rounding (closest: "
    )
    empty = replace(_keras(), candidates=(), notes=("the search stopped after its 0 s budget",))
    lines = _render(empty).splitlines()
    assert lines[1:] == [
        "note: the search stopped after its 0 s budget",
        "no explanation found: no structure fits the output",
    ]


def test_json_document_is_strict_and_best_first() -> None:
    report = _keras()
    doc = explain_document(report)
    assert doc["explained"] is True
    first = doc["candidates"][0]
    assert first == {
        "op": "layer_norm",
        "axes": [1],
        "groups": None,
        "grouping": None,
        "eps": 1e-3,
        "variance": "biased",
        "variance_algorithm": "two_pass",
        "eps_placement": "sqrt",
        "centered": True,
        "affine": "none",
        "torch_code": "nn.LayerNorm([32], eps=1e-3)(x)",
        "max_abs_residual": report.candidates[0].max_abs_residual,
        "rms_residual": report.candidates[0].rms_residual,
        "verdict": "exact",
    }
    # residuals that are not finite become null: JSON has no literal for them
    broken = replace(report.candidates[0], max_abs_residual=math.inf, rms_residual=math.nan)
    text = json.dumps(explain_document(replace(report, candidates=(broken,))), allow_nan=False)
    assert json.loads(text)["candidates"][0]["max_abs_residual"] is None
