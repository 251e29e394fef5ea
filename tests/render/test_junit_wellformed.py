"""JUnit XML is well-formed whatever the messages hold: control characters (an ESC in a path,
tampered baseline metadata, torch's bold-text codes), NUL, lone surrogates."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np

from lncheck.render import junit
from lncheck.report import CaseResult, SuiteReport

from ..cli.helpers import invoke
from ..conftest import EXAMPLES
from .reports import make_report

HOSTILE = "torch says \x1b[1mno\x1b[0m for a\x00b\x07 in \ud800 \ufffe path\x0b"


def test_forbidden_characters_are_spelled_out() -> None:
    report = replace(make_report(), header=replace(make_report().header, case=HOSTILE))
    results = (
        CaseResult(HOSTILE, "error", message=HOSTILE),
        CaseResult("ok", "fail", report, message=HOSTILE),
    )
    suite = SuiteReport(HOSTILE, results, {"device": HOSTILE}, (HOSTILE,))
    for document in (junit.render(suite), junit.render(report)):
        root = ET.fromstring(document.encode("utf-8"))
        assert root.tag == "testsuite"
    text = junit.render(suite)
    assert "\\x1b[1mno\\x1b[0m for a\\x00b\\x07 in \\ud800 \\ufffe path\\x0b" in text
    assert "\x1b" not in text and "\x00" not in text and "\ud800" not in text


def test_tampered_baseline_metadata_gives_a_well_formed_junit_file(tmp_path: Path) -> None:
    from lncheck.suite.baseline import open_baseline

    golden, report = tmp_path / "golden.npz", tmp_path / "r.xml"
    suite = EXAMPLES / "suite.toml"
    assert invoke("baseline", str(suite), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    meta = open_baseline(golden).meta
    meta["created"] = "\x1b]0;pwned\x07\x00"
    np.savez(golden, __meta__=np.array(json.dumps(meta)))
    result = invoke(
        "run", str(suite), "-k", "rms_norm", "--baseline", str(golden), "--junit", str(report)
    )
    assert result.exit_code == 0, result.output
    notes = [p.get("value") for p in ET.parse(report).getroot().iter("property")]
    assert any(n and "recorded \\x1b]0;pwned\\x07\\x00" in n for n in notes)
