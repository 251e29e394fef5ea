"""JUnit XML: a golden of a hand-built suite run, and the document read back."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lncheck.render import junit

from .reports import assert_golden, make_report, make_suite_report


def test_junit_golden() -> None:
    assert_golden("suite.xml", junit.render(make_suite_report()))


def test_junit_parses_back() -> None:
    root = ET.fromstring(junit.render(make_suite_report()))
    assert root.tag == "testsuite" and root.get("name") == "lncheck"
    counts = {k: root.get(k) for k in ("tests", "failures", "errors", "skipped", "time")}
    assert counts == {"tests": "6", "failures": "1", "errors": "1", "skipped": "2", "time": "2.125"}
    properties = [(p.get("name"), p.get("value")) for p in root.iter("property")]
    assert ("backend", "torch") in properties and ("note", "an example note") in properties
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == [
        "layer_norm-ok",
        "layer_norm-drift",
        "layer_norm-bad",
        "layer_norm-known",
        "layer_norm-cuda",
        "rms_norm-float16",
    ]
    assert all(c.get("classname") == "suite.toml" for c in cases.values())
    # a pass: only its candidates, by name
    (named,) = cases["layer_norm-ok"]
    assert [(p.get("name"), p.get("value")) for p in named] == [
        ("candidate", "torch.nn.LayerNorm"),
        ("candidate", "torch.nn.functional.layer_norm"),
        ("candidate", "torch.native_layer_norm"),
    ]
    named = cases["layer_norm-bad"].find("properties")
    assert named is not None and named[-1].get("value") == "expected"
    failure = cases["layer_norm-bad"].find("failure")
    assert failure is not None and failure.get("type") == "fail"
    assert failure.get("message", "").startswith("expected output does not match the reference")
    assert failure.text == failure.get("message")
    skipped = cases["layer_norm-known"].find("skipped")
    assert skipped is not None and skipped.get("message") == "xfail: a known bug"
    skipped = cases["layer_norm-cuda"].find("skipped")
    assert skipped is not None and skipped.get("message") == "skip: needs a CUDA device"
    error = cases["rms_norm-float16"].find("error")
    assert error is not None and error.get("message") == "cannot run this case in float16"
    drift = cases["layer_norm-drift"].find("system-out")
    assert drift is not None and (drift.text or "").startswith("drift from the baseline:\n")
    assert "torch.nn.LayerNorm output does not match the baseline" in (drift.text or "")


def test_a_case_report_is_a_suite_of_one() -> None:
    root = ET.fromstring(junit.render(make_report()))
    assert (root.get("tests"), root.get("failures")) == ("1", "1")
    (case,) = root.iter("testcase")
    assert case.get("name") == "examples/x.npy"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("expected output does not match the reference")


def test_a_passing_checks_warning_is_in_its_cases_system_out() -> None:
    from dataclasses import replace

    from lncheck.report import CaseResult, Report, SuiteReport

    from .reports import check

    passing = make_report()
    warned = check("expected", "output", warning="every output of a group moved alike")
    report = Report(passing.header, (check("torch.nn.LayerNorm", "output"), warned))
    suite = SuiteReport("suite.toml", (CaseResult("rms", "pass", report, seconds=0.5),))
    (case,) = ET.fromstring(junit.render(suite)).iter("testcase")
    out = case.find("system-out")
    assert out is not None and case.find("failure") is None
    assert out.text == "warning: expected output: every output of a group moved alike"
    # with a drifted baseline as well: both, the drift first
    drift = check("torch.nn.LayerNorm", "output", passed=False, kind="baseline", mismatched=1)
    both = replace(report, checks=(*report.checks, drift))
    suite = SuiteReport("suite.toml", (CaseResult("rms", "pass", both, seconds=0.5),))
    (case,) = ET.fromstring(junit.render(suite)).iter("testcase")
    text = case.findtext("system-out") or ""
    assert text.startswith("drift from the baseline:\n")
    assert text.endswith("\nwarning: expected output: every output of a group moved alike")
