"""JUnit XML for CI systems: one testcase per suite case, the worst check as the message."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import IO

from lncheck.report import CaseResult, Report, SuiteReport


def write(report: Report | SuiteReport, out: IO[str]) -> None:
    out.write(render(report))


def render(report: Report | SuiteReport) -> str:
    """The run as a JUnit XML document (one ``testsuite``, one ``testcase`` per case; a single
    case's report is a suite of one)."""
    if isinstance(report, Report):
        status = "pass" if report.passed else "fail"
        worst = report.worst_failure()
        message = None if worst is None else worst.message()
        result = CaseResult(report.header.case, status, report, message)
        report = SuiteReport(report.header.case, (result,))
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name="lncheck",
        tests=str(len(report.results)),
        failures=str(counts["fail"] + counts["xpass"]),
        errors=str(counts["error"]),
        skipped=str(counts["skip"] + counts["xfail"]),
        time=f"{sum(r.seconds for r in report.results):.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in report.environment.items():
        ET.SubElement(properties, "property", name=str(key), value=str(value))
    for note in report.notes:
        ET.SubElement(properties, "property", name="note", value=note)
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=report.suite,
            name=result.name,
            time=f"{result.seconds:.3f}",
        )
        message = result.message or ""
        if result.status in ("fail", "xpass"):
            ET.SubElement(case, "failure", message=message, type=result.status).text = _details(
                result
            )
        elif result.status == "error":
            ET.SubElement(case, "error", message=message, type="error")
        elif result.status in ("skip", "xfail"):
            ET.SubElement(case, "skipped", message=f"{result.status}: {message}")
        if result.report is not None and result.report.drift:
            drift = "\n".join(c.message() for c in result.report.drift)
            ET.SubElement(case, "system-out").text = f"drift from the baseline:\n{drift}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _details(result: CaseResult) -> str:
    if result.report is None:
        return ""
    return "\n".join(c.message() for c in result.report.failures) or (result.message or "")
