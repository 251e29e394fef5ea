"""The report: every comparison of a case, plus what the tables need to show it, as plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.comparison import Comparison, histogram_bins
from lncheck.errors import ExitStatus


@dataclass(frozen=True)
class StatRow:
    """One group's statistics: the reference's and the candidate's own internal ones."""

    group: tuple[int, ...]
    ref_mean: float
    ref_var: float
    mean: float
    var: float
    conditioning: float = (
        math.nan
    )  # |mean| / sqrt(var + eps): how much the output amplifies rounding

    @property
    def mean_diff(self) -> float:
        return self.mean - self.ref_mean

    @property
    def var_diff(self) -> float:
        return self.var - self.ref_var


@dataclass(frozen=True)
class StatsTable:
    """The groups worth showing (the first few and the worst), and how many were left out."""

    candidate: str
    rows: tuple[StatRow, ...]
    omitted: int


@dataclass(frozen=True)
class Header:
    """What was checked: the facts shown above the tables."""

    case: str
    op: str
    layer: str
    input_shape: tuple[int, ...]
    input_dtype: str
    dtype: str
    groups: int
    group_size: int
    params: Mapping[str, Any]
    tolerance: str
    device: str = "cpu"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything one case produced. The verdict is on the object: ``passed``, ``exit_status``."""

    header: Header
    checks: tuple[Comparison, ...]
    stats: StatsTable | None = None
    small: Mapping[str, npt.NDArray[np.floating]] = field(default_factory=dict)
    strict_baseline: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[Comparison, ...]:
        """Failed checks that count: against the reference, and against a baseline if strict."""
        return tuple(
            c
            for c in self.checks
            if not c.passed and (c.kind == "reference" or self.strict_baseline)
        )

    @property
    def drift(self) -> tuple[Comparison, ...]:
        """Baseline checks whose result moved beyond the baseline tolerance."""
        return tuple(c for c in self.checks if c.kind == "baseline" and not c.passed)

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK if self.passed else ExitStatus.CHECK_FAILED

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``lncheck compare --json`` (schema in README)."""
        h = self.header
        return {
            "passed": self.passed,
            "op": h.op,
            "input": h.case,
            "input_shape": list(h.input_shape),
            "input_dtype": h.input_dtype,
            "dtype": h.dtype,
            "device": h.device,
            "groups": h.groups,
            "group_size": h.group_size,
            "params": {k: _jsonable(v) for k, v in h.params.items()},
            "tolerance": h.tolerance,
            "notes": list(h.notes),
            "checks": [check_to_dict(c) for c in self.checks],
        }


def check_to_dict(c: Comparison) -> dict[str, Any]:
    return {
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
        "required_atol": _finite_or_none(c.required_atol),
        "required_rtol": _finite_or_none(c.required_rtol),
        "nan_actual": c.nan_actual,
        "nan_expected": c.nan_expected,
        "inf_actual": c.inf_actual,
        "inf_expected": c.inf_expected,
        "tolerance_used": _finite_or_none(c.tolerance_used),
        "max_ulp_err": _finite_or_none(c.max_ulp_err),
        "histogram": dict(zip(histogram_bins(), c.histogram, strict=True)) if c.histogram else {},
        "note": c.note,
        "kind": c.kind,
    }


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN or infinity: they become null (the README says what null means)."""
    return x if math.isfinite(x) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(i) for i in v]
    if isinstance(v, float):
        return _finite_or_none(v)
    return v


CaseStatus = str  # "pass", "fail", "skip", "xfail", "xpass" or "error"


@dataclass(frozen=True)
class CaseResult:
    """One case of a suite run: its status, its report (unless skipped or in error), its time."""

    name: str
    status: CaseStatus
    report: Report | None = None
    message: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skip", "xfail")

    def worst(self) -> Comparison | None:
        """The check that used the most of its tolerance (a failing one first)."""
        if self.report is None or not self.report.checks:
            return None
        return max(self.report.checks, key=lambda c: (not c.passed, c.tolerance_used))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "message": self.message,
            "drift": [] if self.report is None else [check_to_dict(c) for c in self.report.drift],
            "report": None if self.report is None else self.report.to_dict(),
        }


@dataclass(frozen=True)
class SuiteReport:
    """A suite run: every case's result and where it ran."""

    suite: str
    results: tuple[CaseResult, ...]
    environment: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_status(self) -> ExitStatus:
        if any(r.status == "error" for r in self.results):
            return ExitStatus.INVALID_INPUT
        return ExitStatus.OK if self.passed else ExitStatus.CHECK_FAILED

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("pass", "fail", "skip", "xfail", "xpass", "error"), 0)
        for r in self.results:
            out[r.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "suite": self.suite,
            "counts": self.counts(),
            "environment": dict(self.environment),
            "notes": list(self.notes),
            "cases": [r.to_dict() for r in self.results],
        }
