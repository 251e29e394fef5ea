"""The JSON rendering and its schema: exactly one strict JSON document, and nothing else.

A case's report is ``report_document``; a suite run is ``suite_document`` (every case's report
plus the environment). Floats that are NaN or infinite are written as ``null``: JSON has no
literal for them (README says what each ``null`` means).
"""

from __future__ import annotations

import json
import math
import re
from typing import IO, Any

from lncheck.comparison import Comparison, histogram_bins
from lncheck.report import CaseResult, Report, SuiteReport


def render(report: Report | SuiteReport) -> str:
    """The report as one JSON object."""
    doc = suite_document(report) if isinstance(report, SuiteReport) else report_document(report)
    return dumps(doc)


# A surrogate in a Python string stands alone (an undecodable byte of a file name or of a
# candidate's message, kept by ``surrogateescape``): JSON would write it as an escape that
# names no character, which strict parsers refuse
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(doc: Any) -> str:
    """``doc`` as strict JSON: no NaN or inf literals, lone surrogates replaced by U+FFFD."""
    return json.dumps(_characters(doc), allow_nan=False)


def _characters(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_characters(k): _characters(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_characters(v) for v in value]
    return value


def write(report: Report | SuiteReport, out: IO[str]) -> None:
    out.write(render(report) + "\n")


def report_document(report: Report) -> dict[str, Any]:
    """The JSON document of ``lncheck compare --json``."""
    h = report.header
    return {
        "passed": report.passed,
        "op": h.op,
        "input": h.input or h.case,
        "input_shape": list(h.input_shape),
        "input_dtype": h.input_dtype,
        "dtype": h.dtype,
        "device": h.device,
        "groups": h.groups,
        "group_size": h.group_size,
        "params": {k: _jsonable(v) for k, v in h.params.items()},
        "tolerance": h.tolerance,
        "notes": list(h.notes),
        "checks": [check_document(c) for c in report.checks],
    }


def check_document(c: Comparison) -> dict[str, Any]:
    """One check: its figures, the tolerance applied, and the histogram by bin; with
    ``identical_to``, the candidate whose bit-identical output gave them (compared once)."""
    document = {
        "candidate": c.candidate,
        "quantity": c.quantity,
        "passed": c.passed,
        "max_abs_err": _finite_or_none(c.max_abs_err),
        "max_rel_err": _finite_or_none(c.max_rel_err),
        "mean_abs_err": _finite_or_none(c.mean_abs_err),
        "mismatched": c.mismatched,
        "total": c.total,
        "worst_index": list(c.worst_index),
        "worst_actual": _finite_or_none(c.worst_actual),
        "worst_expected": _finite_or_none(c.worst_expected),
        "rtol": _finite_or_none(c.rtol),
        "atol": _finite_or_none(c.atol),
        "atol_max": _finite_or_none(c.atol_max),
        "required_atol": _finite_or_none(c.required_atol),
        "required_rtol": _finite_or_none(c.required_rtol),
        "nan_actual": c.nan_actual,
        "nan_expected": c.nan_expected,
        "inf_actual": c.inf_actual,
        "inf_expected": c.inf_expected,
        "tolerance_used": _finite_or_none(c.tolerance_used),
        "worst_by_group": c.worst_by_group,
        "max_ulp_err": _finite_or_none(c.max_ulp_err),
        "histogram": dict(zip(histogram_bins(), c.histogram, strict=True)) if c.histogram else {},
        "note": c.note,
        "kind": c.kind,
        "accuracy_class": c.accuracy_class,
        "implied_scale": _finite_or_none(c.implied_scale),
        "implied_shift": _finite_or_none(c.implied_shift),
        "explanation": c.explanation,
        "overflow": c.overflow,
    }
    if c.identical_to is not None:  # only then, so that documents without one keep their keys
        document["identical_to"] = c.identical_to
    if c.warning is not None:
        document["warning"] = c.warning
    return document


def case_document(r: CaseResult) -> dict[str, Any]:
    """One case of a suite run."""
    return {
        "name": r.name,
        "status": r.status,
        "seconds": round(r.seconds, 4),
        "message": r.message,
        "drift": [] if r.report is None else [check_document(c) for c in r.report.drift],
        "report": None if r.report is None else report_document(r.report),
    }


def suite_document(report: SuiteReport) -> dict[str, Any]:
    """The JSON document of ``lncheck run --json FILE``."""
    return {
        "passed": report.passed,
        "suite": report.suite,
        "counts": report.counts(),
        "environment": dict(report.environment),
        "notes": list(report.notes),
        "cases": [case_document(r) for r in report.results],
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(i) for i in v]
    if isinstance(v, float):
        return _finite_or_none(v)
    return v


# --- explain ----------------------------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402  (this block keeps its imports to itself)

if TYPE_CHECKING:
    from lncheck.explain.report import ExplainReport


def explain_document(report: ExplainReport) -> dict[str, Any]:
    """The JSON document of ``lncheck explain --json``: ``explained`` and the candidates, best
    first, with exactly the keys of issue 12's schema (residuals that are not finite are
    ``null``)."""
    return {
        "explained": report.explained,
        "candidates": [
            {
                "op": c.op,
                "axes": list(c.axes),
                "groups": c.groups,
                "grouping": c.grouping,
                "eps": c.eps,
                "variance": c.variance,
                "variance_algorithm": c.variance_algorithm,
                "eps_placement": c.eps_placement,
                "centered": c.centered,
                "affine": c.affine,
                "torch_code": c.torch_code,
                "max_abs_residual": _finite_or_none(c.max_abs_residual),
                "rms_residual": _finite_or_none(c.rms_residual),
                "verdict": c.verdict,
            }
            for c in report.candidates
        ],
    }
