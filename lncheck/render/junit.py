"""JUnit XML for CI systems: one testcase per suite case, the worst check as the message, every
candidate named in the testcase's properties."""

from __future__ import annotations

import re
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
        result = CaseResult(report.header.case, status, report, message, report.seconds)
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
        if result.report is not None:  # every candidate by name, the user's as well as torch's
            named = ET.SubElement(case, "properties")
            for candidate in dict.fromkeys(c.candidate for c in result.report.checks):
                ET.SubElement(named, "property", name="candidate", value=candidate)
        message = result.message or ""
        if result.status in ("fail", "xpass"):
            ET.SubElement(case, "failure", message=message, type=result.status).text = _details(
                result
            )
        elif result.status == "error":
            ET.SubElement(case, "error", message=message, type="error")
        elif result.status in ("skip", "xfail"):
            ET.SubElement(case, "skipped", message=f"{result.status}: {message}")
        drifted = [c.message() for c in result.report.drift] if result.report else []
        if result.status == "drift" and result.message:  # not compared: options changed, ...
            drifted.insert(0, result.message)
        out = ["drift from the baseline:\n" + "\n".join(drifted)] if drifted else []
        checks = result.report.checks if result.report else ()
        # a passing check's warning: what it passed despite, where CI shows a case's output
        out += [f"warning: {c.candidate} {c.quantity}: {c.warning}" for c in checks if c.warning]
        if out:
            ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(suite)
    return _well_formed(ET.tostring(suite, encoding="unicode", xml_declaration=True)) + "\n"


# What XML 1.0 forbids in a document: C0 controls but tab, newline and return; surrogates (an
# undecodable file name's bytes); U+FFFE and U+FFFF. ElementTree writes them as they are.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _well_formed(document: str) -> str:
    """``document`` with every character XML forbids spelled out (``\\x1b``): they can only
    be in values (messages, names, paths), since lncheck names the elements."""
    return _FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                          else f"\\u{ord(m.group()):04x}", document)  # fmt: skip


def _details(result: CaseResult) -> str:
    if result.report is None:
        return ""
    return "\n".join(c.message() for c in result.report.failures) or (result.message or "")
