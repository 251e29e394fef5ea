"""Reports: the verdict on the object (passed, failures, exit status), display names, suites."""

from __future__ import annotations

import math
from dataclasses import replace

from lncheck.errors import ExitStatus
from lncheck.report import CaseResult, Report, SuiteReport

from .render.reports import TORCH_NAMES, check, make_report


def test_verdict_and_worst_failure() -> None:
    report = make_report()
    assert not report.passed and report.exit_status == ExitStatus.CHECK_FAILED
    assert [c.candidate for c in report.failures] == ["expected"]
    worst = report.worst_failure()
    assert worst is not None and worst.candidate == "expected"
    fine = Report(report.header, report.checks[:3])
    assert fine.passed and fine.exit_status == ExitStatus.OK and fine.worst_failure() is None


def test_the_worst_failure_is_the_furthest_outside_its_tolerance() -> None:
    a = check("a", "output", passed=False, mismatched=1, tolerance_used=3.0)
    b = check("b", "output", passed=False, mismatched=1, tolerance_used=40.0)
    c = check("c", "output", passed=False, mismatched=8, tolerance_used=2.0)
    assert Report(make_report().header, (a, b, c)).worst_failure() == b


def test_display_names() -> None:
    report = make_report()
    assert report.names == TORCH_NAMES
    assert report.name("torch.nn.functional.layer_norm") == "F.layer_norm"
    assert report.name("expected") == "expected"  # not a backend's: shown as it is


def test_baseline_checks_count_only_when_strict() -> None:
    header = make_report().header
    drifted = check("torch.x", "output", passed=False, kind="baseline", mismatched=1)
    lenient = Report(header, (check("torch.x", "output"), drifted))
    assert lenient.passed and lenient.drift == (drifted,) and lenient.failures == ()
    strict = replace(lenient, strict_baseline=True)
    assert not strict.passed and strict.failures == (drifted,)


def test_case_results() -> None:
    report = make_report()
    assert [CaseResult("c", s).ok for s in ("pass", "skip", "xfail")] == [True] * 3
    assert not any(CaseResult("c", s).ok for s in ("fail", "xpass", "error"))
    worst = CaseResult("c", "fail", report).worst()
    assert worst is not None and worst.candidate == "expected" and math.isinf(worst.max_rel_err)
    assert CaseResult("c", "skip").worst() is None


def test_suite_verdicts() -> None:
    def suite(*statuses: str) -> SuiteReport:
        return SuiteReport("s.toml", tuple(CaseResult(f"c{i}", s) for i, s in enumerate(statuses)))

    assert suite("pass", "skip", "xfail").exit_status == ExitStatus.OK
    assert suite("pass", "xpass").exit_status == ExitStatus.CHECK_FAILED
    assert suite("fail", "error").exit_status == ExitStatus.INVALID_INPUT  # an error wins
    assert suite("pass", "drift").exit_status == ExitStatus.OK  # drift alone does not fail
    assert suite("pass", "pass", "fail").counts() == {
        "pass": 2,
        "fail": 1,
        "drift": 0,
        "skip": 0,
        "xfail": 0,
        "xpass": 0,
        "error": 0,
    }
