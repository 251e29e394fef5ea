"""The JSON rendering: its golden, strict JSON (no NaN or Infinity), the suite document."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from lncheck.render import json as render_json

from ..cli.helpers import invoke
from .reports import assert_golden, make_report, make_suite_report


def test_json_golden() -> None:
    text = render_json.render(make_report())
    doc = json.loads(text)
    assert doc["checks"][3]["max_rel_err"] is None  # infinity is not JSON: null
    assert_golden("report.json", json.dumps(doc, indent=2) + "\n")


def test_report_to_dict_is_the_document() -> None:
    report = make_report()
    assert report.to_dict() == render_json.report_document(report)
    assert json.loads(render_json.render(report)) == report.to_dict()


def test_json_keeps_the_full_candidate_names() -> None:
    """Display names are for tables; the JSON schema names candidates as they are."""
    candidates = [c["candidate"] for c in make_report().to_dict()["checks"]]
    assert candidates == [
        "torch.nn.LayerNorm",
        "torch.nn.functional.layer_norm",
        "torch.native_layer_norm",
        "expected",
    ]


def test_suite_document() -> None:
    report = make_suite_report()
    doc = json.loads(render_json.render(report))
    assert doc == report.to_dict()
    assert doc["passed"] is False and doc["suite"] == "suite.toml"
    assert doc["counts"] == {
        "pass": 2, "fail": 1, "drift": 0, "skip": 1, "xfail": 1, "xpass": 0, "error": 1
    }  # fmt: skip
    assert doc["notes"] == ["an example note"] and doc["environment"]["backend"] == "torch"
    cases = {c["name"]: c for c in doc["cases"]}
    assert cases["layer_norm-cuda"]["report"] is None
    assert cases["rms_norm-float16"]["message"] == "cannot run this case in float16"
    assert [(d["candidate"], d["kind"]) for d in cases["layer_norm-drift"]["drift"]] == [
        ("torch.nn.LayerNorm", "baseline")
    ]
    assert cases["layer_norm-bad"]["seconds"] == 1.25


def test_write_ends_with_a_newline() -> None:
    out = io.StringIO()
    render_json.write(make_report(), out)
    assert out.getvalue().endswith("}\n") and out.getvalue().count("\n") == 1


def test_json_with_an_unbounded_tolerance_is_valid_json() -> None:
    # eps=0 on a constant row: 0 / 0, and a conditioning (and so a tolerance) of infinity
    result = invoke("compare", "-", "--shape", "4", "--eps", "0", "--json", input="[[1,1,1,1]]")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert all(c["nan_expected"] == 4 for c in doc["checks"] if c["quantity"] == "output")


def test_a_lone_surrogate_is_written_as_a_replacement_character() -> None:
    # an undecodable byte (0xff) of a file name or a candidate's message, kept by
    # surrogateescape: JSON's "\udcff" names no character, and strict parsers refuse it
    report = make_report()
    report = replace(report, header=replace(report.header, notes=("bad byte: \udcff", "🙂")))
    text = render_json.render(report)
    assert "\\udc" not in text.lower() and "\\ud83d\\ude42" in text  # a real pair stays
    assert json.loads(text)["notes"] == ["bad byte: \ufffd", "🙂"]
    assert json.loads(render_json.dumps({"key \udcff": ["\udcff"]})) == {"key \ufffd": ["\ufffd"]}
