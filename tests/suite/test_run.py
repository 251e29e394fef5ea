"""Running suites: the example suite, selection (shards, -k), fail-fast, jobs, verdicts and
what ``lncheck run`` writes where."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError
from lncheck.ops import OP_NAMES
from lncheck.suite.parse import load_suite
from lncheck.suite.run import SuiteOptions, parse_shard, select

from ..cli.helpers import assert_user_error, invoke
from .helpers import SUITE, write_suite

# "backend" is new with the backend registry: which one the run checked
ENVIRONMENT = {"lncheck", "backend", "torch", "numpy", "python", "device", "threads"}


def test_example_suite_passes(tmp_path: Path) -> None:
    junit, report = tmp_path / "r.xml", tmp_path / "r.json"
    result = invoke("run", str(SUITE), "--junit", str(junit), "--json", str(report))
    assert result.exit_code == 0, result.output
    assert "PASS: 14 pass, 1 skip, 1 xfail" in result.stdout
    doc = json.loads(report.read_text())
    assert doc["counts"] == {
        "pass": 14, "fail": 0, "drift": 0, "skip": 1, "xfail": 1, "xpass": 0, "error": 0
    }  # fmt: skip
    assert set(doc["environment"]) == ENVIRONMENT and doc["environment"]["backend"] == "torch"
    ops = {c["report"]["op"] for c in doc["cases"] if c["report"]}
    assert ops == set(OP_NAMES)
    buggy = next(c for c in doc["cases"] if c["name"] == "layer_norm-buggy-kernel")
    assert buggy["status"] == "xfail" and any(not k["passed"] for k in buggy["report"]["checks"])
    # each case's report names its input (the file read, or the random draw), not the case
    inputs = {c["name"]: c["report"]["input"] for c in doc["cases"] if c["report"]}
    assert inputs["layer_norm-last-dim"] == str((SUITE.parent / "tokens.npy").resolve())
    assert all(name != source for name, source in inputs.items())


def test_junit_xml_parses_back(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        """
[[case]]
name = "good"
input = "x.npy"
shape = [8]
[[case]]
name = "bad"
input = "x.npy"
shape = [8]
expected = "y.npy"
[[case]]
name = "later"
input = "x.npy"
shape = [8]
skip = "not today"
""",
    )
    np.save(tmp_path / "y.npy", np.zeros((4, 8), np.float32))
    junit = tmp_path / "r.xml"
    result = invoke("run", str(path), "--junit", str(junit))
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuite" and root.get("tests") == "3" and root.get("failures") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"good", "bad", "later"}
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message", "").startswith(
        "expected output does not match the reference"
    )
    assert cases["later"].find("skipped") is not None and cases["good"].find("failure") is None
    properties = {p.get("name") for p in root.iter("property")}
    assert {"torch", "device", "threads"} <= properties


# --- what goes where: --format, --report FORMAT=PATH ------------------------------------------


def test_format_json_prints_the_suite_document() -> None:
    result = invoke("run", str(SUITE), "-k", "rms_norm", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # one document, no progress bar or table around it
    assert doc["passed"] is True and doc["suite"] == str(SUITE)
    assert [c["name"] for c in doc["cases"]] == ["rms_norm"]
    assert doc["counts"]["pass"] == 1 and set(doc["environment"]) == ENVIRONMENT


def test_format_junit_prints_the_xml(tmp_path: Path) -> None:
    result = invoke("run", str(SUITE), "-k", "group_norm", "--format", "junit")
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.stdout)
    assert [c.get("name") for c in root.iter("testcase")] == [
        "group_norm",
        "group_norm-channels-last",
    ]


def test_report_options_write_every_format(tmp_path: Path) -> None:
    xml, doc, text = tmp_path / "r.xml", tmp_path / "r.json", tmp_path / "r.txt"
    result = invoke(
        "run",
        str(SUITE),
        "-k",
        "batch_norm",
        "--report",
        f"junit={xml}",
        "--report",
        f"json={doc}",
        "--report",
        f"console={text}",
    )
    assert result.exit_code == 0, result.output
    assert "PASS: 3 pass" in result.stdout and "PASS: 3 pass" in text.read_text()
    assert json.loads(doc.read_text())["counts"]["pass"] == 3
    assert ET.parse(xml).getroot().get("tests") == "3"


def test_junit_and_json_are_report_shorthands(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    result = invoke("run", str(SUITE), "-k", "rms_norm", "--json", str(a), "--report", f"json={b}")
    assert result.exit_code == 0, result.output
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    for doc in (first, second):
        for case in doc["cases"]:
            case["seconds"] = 0  # the only part that differs between two writes of one run
    assert first == second


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--format", "yaml"], ["--format", "unknown format 'yaml'"]),
        (["--report", "r.xml"], ["--report must be FORMAT=PATH"]),
        (["--report", "xml=r.xml"], ["--report xml=r.xml: unknown format 'xml'"]),
    ],
)
def test_run_output_option_errors(args: list[str], phrases: list[str]) -> None:
    assert_user_error(invoke("run", str(SUITE), "-k", "rms_norm", *args), *phrases)


# --- selection: shards, -k, fail-fast, jobs ---------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 40])
def test_shards_count_from_1_and_cover_every_case_exactly_once(n: int) -> None:
    cases = load_suite(SUITE).cases
    seen = [c.name for i in range(1, n + 1) for c in select(cases, shard=(i, n))]
    assert sorted(seen) == sorted(c.name for c in cases)
    first = [c.name for c in select(cases, shard=(1, n))]
    assert first[0] == cases[0].name  # shard 1 starts at the suite's first case


def test_shard_parsing() -> None:
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard("4/4") == (4, 4)
    for bad in ("0/4", "5/4", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(bad)
    result = invoke("run", str(SUITE), "--shard", "0/4")
    assert_user_error(result, "--shard 0/4: I must be in 1..N (shards count from 1: 1/4 to 4/4)")
    with pytest.raises(InputError, match=r"shard= must be \(i, n\) with integers 1 <= i <= n"):
        lncheck.run_suite(SUITE, shard=(0, 4))
    report = lncheck.run_suite(SUITE, shard=(4, 4), pattern="layer_norm-j")
    assert [r.name for r in report.results] == ["layer_norm-json-float16"]  # the suite's 4th


def test_a_shard_emptied_by_k_is_a_note_and_an_empty_junit_file(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    junit = tmp_path / "r.xml"
    # shard 2/4 holds cases 2, 6, 10, 14 of the suite: no group_norm among them
    names = [c.name for c in select(load_suite(SUITE).cases, shard=(2, 4))]
    assert names and not [n for n in names if "group_norm" in n]
    result = invoke("run", str(SUITE), "--shard", "2/4", "-k", "group_norm", "--junit", str(junit))
    assert result.exit_code == 0, result.output
    assert "note: no case to run in shard 2/4: the selection left this shard empty" in result.stdout
    assert "PASS: no case ran" in result.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "0" and list(suite.iter("testcase")) == []


def test_k_matching_no_case_of_the_whole_suite_stays_an_error() -> None:
    # named as the caller typed it: -k, or --pattern
    result = invoke("run", str(SUITE), "--shard", "1/4", "-k", "no-such-case")
    assert_user_error(result, "-k 'no-such-case' matches no case (cases: layer_norm-last")
    result = invoke("run", str(SUITE), "-kno-such-case")
    assert_user_error(result, "-k 'no-such-case' matches no case (cases: layer_norm-last")
    result = invoke("run", str(SUITE), "--pattern", "no-such-case")
    assert_user_error(result, "--pattern 'no-such-case' matches no case (cases: layer_norm-last")
    with pytest.raises(InputError, match="pattern= 'nope' matches no case"):
        lncheck.run_suite(SUITE, pattern="nope")


def test_pattern_and_glob() -> None:
    cases = load_suite(SUITE).cases
    assert {c.name for c in select(cases, pattern="batch_norm")} == {
        "batch_norm-train",
        "batch_norm-eval",
        "batch_norm-1d-float16-cumulative",
    }
    assert [c.name for c in select(cases, pattern="group_norm-*")] == ["group_norm-channels-last"]
    assert [c.name for c in select(cases, pattern="*-eval")] == ["batch_norm-eval"]


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    body = "".join(
        f'[[case]]\nname = "c{i}"\ninput = "x.npy"\nshape = [8]\n'
        + ('expected = "y.npy"\n' if i == 1 else "")
        for i in range(4)
    )
    path = write_suite(tmp_path, body)
    np.save(tmp_path / "y.npy", np.zeros((4, 8), np.float32))
    report = lncheck.run_suite(path, fail_fast=True)
    assert [r.status for r in report.results] == ["pass", "fail"]
    assert report.exit_status == 1
    # the cases left out are said, not dropped without a word
    assert report.notes == ("stopped at the first failure: 2 cases were not run",)
    result = invoke("run", str(path), "--fail-fast")
    assert result.exit_code == 1 and "1 pass, 1 fail" in result.stdout
    assert "stopped at the first failure: 2 cases were not run" in result.stdout
    junit = invoke("run", str(path), "--fail-fast", "--format", "junit").stdout
    assert "stopped at the first failure: 2 cases were not run" in junit


def test_parallel_jobs_give_the_same_results() -> None:
    one = lncheck.run_suite(SUITE, pattern="layer_norm")
    two = lncheck.run_suite(SUITE, pattern="layer_norm", jobs=2)
    assert [(r.name, r.status) for r in one.results] == [(r.name, r.status) for r in two.results]


def test_a_broken_worker_pool_finishes_the_suite_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise BrokenProcessPool("a worker died")

    serial = lncheck.run_suite(SUITE, pattern="layer")
    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Broken)
    report = lncheck.run_suite(SUITE, jobs=2, pattern="layer")
    statuses = [(r.name, r.status) for r in report.results]
    assert len(statuses) > 1 and statuses == [(r.name, r.status) for r in serial.results]


@pytest.mark.parametrize("jobs", [0, -1, True, 1.5])
def test_jobs_must_be_a_positive_integer(jobs: object) -> None:
    with pytest.raises(InputError, match="jobs"):
        SuiteOptions(jobs=jobs)  # type: ignore[arg-type]


def test_xpass_fails_and_runtime_errors_are_exit_2(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        """
[[case]]
name = "surprise"
input = "x.npy"
shape = [8]
xfail = "we thought it was broken"
[[case]]
name = "no-kernel"
random = {shape = [2, 4, 3, 3]}
op = "local_response_norm"
size = 3
dtype = "float16"
""",
    )
    report = lncheck.run_suite(path)
    statuses = {r.name: r.status for r in report.results}
    assert statuses == {"surprise": "xpass", "no-kernel": "error"}
    assert report.exit_status == 2
    assert "cannot run this case in float16" in (report.results[1].message or "")


def test_a_failing_case_reports_its_worst_check(tmp_path: Path) -> None:
    """Torch's paths fail first (a tolerance of 1e-9 on float32), the expected output far worse."""
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    ref[3, 7] += 1.0
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", ref.astype(np.float32))
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nexpected = "y.npy"\n'
        "rtol = 1e-9\natol = 1e-9\n"
    )
    (result,) = lncheck.run_suite(path).results
    assert result.status == "fail" and result.report is not None
    assert result.report.failures[0].candidate == "torch.nn.LayerNorm"
    assert result.message is not None and result.message.startswith("expected output")


def test_a_case_error_names_options_as_suite_keys(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ngrad_output = "g.npy"\n',
    )
    np.save(tmp_path / "g.npy", np.ones((4, 8), np.float32))
    (case,) = load_suite(path).cases
    np.save(tmp_path / "g.npy", np.ones((2, 8), np.float32))  # changed after validation
    object.__setattr__(case, "loaded", None)
    from lncheck.suite.run import run_one

    result = run_one(case, SuiteOptions())
    assert result.status == "error"
    assert "key 'grad_output' must have shape (4, 8)" in (result.message or "")


def test_a_first_case_on_a_device_this_machine_lacks_is_that_cases_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    text = '[[case]]\nname = "gpu"\ninput = "x.npy"\nshape = [8]\ndevice = "cuda"\n'
    text += '[[case]]\nname = "cpu"\ninput = "x.npy"\nshape = [8]\n'
    result = invoke("run", str(write_suite(tmp_path, text)), "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 2, result.output  # a case in error: the suite's input is at fault
    report = json.loads((tmp_path / "r.json").read_text())
    statuses = {c["name"]: c["status"] for c in report["cases"]}
    assert statuses == {"gpu": "error", "cpu": "pass"}
    assert "gpu: key 'device' cuda: torch reports no CUDA device" in result.stdout
