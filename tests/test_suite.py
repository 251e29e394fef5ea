"""Suites, baselines, reports and the Python API."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lncheck
from lncheck.cli import app
from lncheck.errors import InputError
from lncheck.layers import OP_NAMES
from lncheck.suite import load_suite, parse_shard, select

from .conftest import EXAMPLES, heavy_modules_after

runner = CliRunner()
SUITE = EXAMPLES / "suite.toml"


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def _write_suite(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the example suite and init-suite ---------------------------------------------------------


def test_example_suite_passes(tmp_path: Path) -> None:
    junit, report = tmp_path / "r.xml", tmp_path / "r.json"
    result = _run("run", str(SUITE), "--junit", str(junit), "--json", str(report))
    assert result.exit_code == 0, result.output
    assert "PASS: 14 pass, 1 skip, 1 xfail" in result.stdout
    doc = json.loads(report.read_text())
    assert doc["counts"] == {"pass": 14, "fail": 0, "skip": 1, "xfail": 1, "xpass": 0, "error": 0}
    assert set(doc["environment"]) == {"lncheck", "torch", "numpy", "python", "device", "threads"}
    ops = {c["report"]["op"] for c in doc["cases"] if c["report"]}
    assert ops == set(OP_NAMES)
    buggy = next(c for c in doc["cases"] if c["name"] == "layer_norm-buggy-kernel")
    assert buggy["status"] == "xfail" and any(not k["passed"] for k in buggy["report"]["checks"])


def test_junit_xml_parses_back(tmp_path: Path) -> None:
    path = _write_suite(
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
    result = _run("run", str(path), "--junit", str(junit))
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


def test_init_suite_passes_as_written(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    result = _run("init-suite", str(path))
    assert result.exit_code == 0 and path.exists() and (tmp_path / "s-tokens.npy").exists()
    ops = {c.spec.op for c in load_suite(path).cases}
    assert ops == set(OP_NAMES)
    result = _run("run", str(path))
    assert result.exit_code == 0, result.output
    again = _run("init-suite", str(path))
    assert again.exit_code == 2 and "exists already: use --force" in again.stderr
    assert _run("init-suite", str(path), "--force").exit_code == 0


# --- errors in suite files: exit 2, the file, the case and the key, nothing run ---------------


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nwieght = "w.npy"\n',
            ["case 'a'", "key 'wieght': unknown case key"],
        ),
        (
            '[defaults]\ntolerence = "auto"\n[[case]]\ninput = "x.npy"\nshape = [8]\n',
            ["case 'case1'", "key 'tolerence': unknown [defaults] key"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "missing.npy"\nshape = [8]\n',
            ["case 'a'", "key 'input': no such file"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nweight = "w.npy"\n',
            ["key 'weight': no such file"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = "eight"\n',
            ["case 'a'", "key 'shape' must be an integer or a list"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ndtype = "int8"\n',
            ["key 'dtype' must be one of"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nmomentum = "fast"\n',
            ["key 'momentum' must be a number"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\ngrad = "yes"\n',
            ["key 'grad' must be true or false"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [5]\n',
            ["case 'a'", "x.npy: input has shape (4, 8)"],
        ),
        ('[[case]]\nname = "a"\nshape = [8]\n', ["key 'input' or 'random' is required"]),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nrandom = {shape = [2, 8]}\nshape = [8]\n',
            ["both given"],
        ),
        (
            '[[case]]\nname = "a"\nrandom = {shape = [2, 8], sead = 1}\nshape = [8]\n',
            ["key 'random.sead': unknown"],
        ),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n' * 2,
            ["repeats another case's name"],
        ),
        ('[[case]]\nname = "a/b"\ninput = "x.npy"\nshape = [8]\n', ["without '/'"]),
        ("[[case]\n", ["invalid TOML"]),
        ('title = "x"\n', ["unknown top-level key 'title'"]),
        ("[defaults]\neps = 1e-5\n", ["no cases"]),
        (
            '[[case]]\nname = "a"\ninput = "x.npy"\nop = "group_norm"\n',
            ["case 'a'", "group_norm needs --groups"],
        ),
    ],
)
def test_suite_errors(tmp_path: Path, text: str, phrases: list[str]) -> None:
    path = _write_suite(tmp_path, text)
    junit = tmp_path / "r.xml"
    result = _run("run", str(path), "--junit", str(junit))
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"lncheck: error: {path}")
    for phrase in phrases:
        assert phrase in line
    assert result.stdout == "" and not junit.exists()  # nothing ran, nothing written


def test_missing_suite_file(tmp_path: Path) -> None:
    result = _run("run", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "no such suite file" in result.stderr


# --- selection: shards, -k, fail-fast, jobs ---------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 40])
def test_shards_cover_every_case_exactly_once(n: int) -> None:
    cases = load_suite(SUITE).cases
    seen = [c.name for i in range(n) for c in select(cases, shard=(i, n))]
    assert sorted(seen) == sorted(c.name for c in cases)


def test_shard_parsing() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def test_pattern_and_glob() -> None:
    cases = load_suite(SUITE).cases
    assert {c.name for c in select(cases, pattern="batch_norm")} == {
        "batch_norm-train",
        "batch_norm-eval",
        "batch_norm-1d-float16-cumulative",
    }
    assert [c.name for c in select(cases, pattern="group_norm-*")] == ["group_norm-channels-last"]
    result = _run("run", str(SUITE), "-k", "no-such-case")
    assert result.exit_code == 2 and "no case of" in result.stderr


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    body = "".join(
        f'[[case]]\nname = "c{i}"\ninput = "x.npy"\nshape = [8]\n'
        + ('expected = "y.npy"\n' if i == 1 else "")
        for i in range(4)
    )
    path = _write_suite(tmp_path, body)
    np.save(tmp_path / "y.npy", np.zeros((4, 8), np.float32))
    report = lncheck.run_suite(path, fail_fast=True)
    assert [r.status for r in report.results] == ["pass", "fail"]
    assert report.exit_status == 1


def test_parallel_jobs_give_the_same_results() -> None:
    one = lncheck.run_suite(SUITE, pattern="layer_norm")
    two = lncheck.run_suite(SUITE, pattern="layer_norm", jobs=2)
    assert [(r.name, r.status) for r in one.results] == [(r.name, r.status) for r in two.results]


def test_xpass_fails_and_runtime_errors_are_exit_2(tmp_path: Path) -> None:
    path = _write_suite(
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


# --- baselines --------------------------------------------------------------------------------


def _perturb(baseline: Path, key: str, factor: float) -> None:
    """Rewrite one recorded array of a baseline, multiplied by ``factor``."""
    with zipfile.ZipFile(baseline) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    import io

    array = np.load(io.BytesIO(entries[key]), allow_pickle=False)
    buffer = io.BytesIO()
    np.save(buffer, (array * factor).astype(array.dtype))
    entries[key] = buffer.getvalue()
    with zipfile.ZipFile(baseline, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_baseline_unchanged_then_drifted(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    result = _run("baseline", str(SUITE), "-o", str(golden), "-k", "layer_norm-last")
    assert result.exit_code == 0, result.output
    assert "recorded 2 cases" in result.stdout
    same = _run(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--json",
        str(tmp_path / "a.json"),
    )
    assert same.exit_code == 0, same.output
    doc = json.loads((tmp_path / "a.json").read_text())
    kinds = [k for c in doc["cases"] for k in c["report"]["checks"] if k["kind"] == "baseline"]
    assert kinds and all(k["passed"] and k["max_abs_err"] == 0.0 for k in kinds)  # bitwise the same
    _perturb(golden, "layer_norm-last-dim/torch.nn.LayerNorm/output.npy", 1.0 + 2**-20)
    drifted = _run(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--json",
        str(tmp_path / "b.json"),
    )
    assert drifted.exit_code == 0  # drift is reported, not a failure
    assert (
        "drift" in drifted.stdout
        and "torch.nn.LayerNorm output does not match the baseline" in drifted.stdout
    )
    doc = json.loads((tmp_path / "b.json").read_text())
    case = next(c for c in doc["cases"] if c["name"] == "layer_norm-last-dim")
    assert [(d["candidate"], d["quantity"]) for d in case["drift"]] == [
        ("torch.nn.LayerNorm", "output")
    ]
    strict = _run(
        "run", str(SUITE), "-k", "layer_norm-last", "--baseline", str(golden), "--strict-baseline"
    )
    assert strict.exit_code == 1
    loose = _run(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--strict-baseline",
        "--baseline-rtol",
        "1e-5",
        "--baseline-atol",
        "0",
    )
    assert loose.exit_code == 0, loose.output


def test_baseline_from_another_torch_is_noted(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    assert _run("baseline", str(SUITE), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    with zipfile.ZipFile(golden) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    import io

    meta = json.loads(str(np.load(io.BytesIO(entries["__meta__.npy"]))[()]))
    meta["torch"], meta["device"] = "2.11.0+cu130", "NVIDIA H100 80GB HBM3"
    buffer = io.BytesIO()
    np.save(buffer, np.array(json.dumps(meta)))
    entries["__meta__.npy"] = buffer.getvalue()
    with zipfile.ZipFile(golden, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    report = lncheck.run_suite(SUITE, pattern="rms_norm", baseline=golden)
    assert any("recorded with torch 2.11.0+cu130" in n for n in report.notes)
    assert any("recorded with device NVIDIA H100" in n for n in report.notes)


def test_not_a_baseline_is_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "fake.npz"
    np.savez(fake, a=np.ones(3))
    result = _run("run", str(SUITE), "-k", "rms_norm", "--baseline", str(fake))
    assert result.exit_code == 2 and "not an lncheck baseline" in result.stderr


# --- the Python API -------------------------------------------------------------------------------


def test_api_report_equals_cli_json() -> None:
    path = str(EXAMPLES / "image.npy")
    cli = json.loads(
        runner.invoke(
            app, ["compare", path, "--op", "group_norm", "--groups", "2", "--json"]
        ).stdout
    )
    api = lncheck.compare(np.load(path), "group_norm", groups=2, name=path).to_dict()
    assert api == cli


def test_check_raises_with_the_cli_message() -> None:
    x = np.load(EXAMPLES / "tokens.npy")
    bad = np.load(EXAMPLES / "unbiased_kernel_output.npy")
    with pytest.raises(AssertionError) as info:
        lncheck.check(bad, x, normalized_shape=4)
    cli = runner.invoke(
        app,
        [
            "compare",
            str(EXAMPLES / "tokens.npy"),
            "--shape",
            "4",
            "--expected",
            str(EXAMPLES / "unbiased_kernel_output.npy"),
        ],
    )
    assert str(info.value) in cli.stdout
    good = lncheck.compare(x, normalized_shape=4)
    assert lncheck.check(np.asarray(good.small["torch.nn.LayerNorm"]), x, normalized_shape=4).passed


def test_api_options_are_checked() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'gruops'"):
        lncheck.compare(np.ones((2, 4, 3)), "group_norm", gruops=2)
    with pytest.raises(InputError, match="needs --groups"):
        lncheck.compare(np.ones((2, 4, 3)), "group_norm")


def test_import_lncheck_is_cheap() -> None:
    assert heavy_modules_after("import lncheck") == []
