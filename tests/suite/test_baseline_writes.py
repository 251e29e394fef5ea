"""Writing baselines loses no data: re-recording a selection keeps the other cases, a failed,
killed or concurrent re-record leaves the old file as it was, and a file that is not a baseline
is never replaced. Replaying says why a case was not compared (options changed, never
recorded) apart from drift, and counts drifted cases."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lncheck
import lncheck.errors
from lncheck.atomic import exclusive
from lncheck.errors import InputError
from lncheck.suite.baseline import META, Baseline, open_baseline

from ..cli.helpers import assert_user_error, invoke
from ..conftest import REPO
from .helpers import write_suite

THREE = "".join(f'[[case]]\nname = "c{i}"\ninput = "x.npy"\nshape = [8]\n' for i in (1, 2, 3))
OUTPUT = "torch.nn.LayerNorm/output.npy"


def _entries(baseline: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(baseline) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _scale(baseline: Path, name: str, factor: float) -> None:
    entries = _entries(baseline)
    array = np.load(io.BytesIO(entries[name]))
    buffer = io.BytesIO()
    np.save(buffer, (array * factor).astype(array.dtype))
    entries[name] = buffer.getvalue()
    with zipfile.ZipFile(baseline, "w") as archive:
        for key, data in entries.items():
            archive.writestr(key, data)


def _array(baseline: Path, name: str) -> np.ndarray:
    return np.load(io.BytesIO(_entries(baseline)[name]))


def _record(suite: Path, golden: Path, *args: str) -> str:
    result = invoke("baseline", str(suite), "-o", str(golden), *args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("name", ["golden.json", "golden", "golden.npy", "golden."])
def test_a_baseline_not_named_npz_is_refused(tmp_path: Path, name: str) -> None:
    suite = write_suite(tmp_path, THREE)
    result = invoke("baseline", str(suite), "-o", str(tmp_path / name))
    assert_user_error(result, f"-o {tmp_path / name}: a baseline is an .npz archive", "golden.npz")
    assert not (tmp_path / name).exists()
    _record(suite, tmp_path / "golden.NPZ")  # the suffix's case is the file system's affair


def test_rerecording_a_selection_keeps_the_other_cases(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    recorded = _array(golden, f"c1/{OUTPUT}")
    for case in ("c1", "c2"):  # marks that a re-record of c2 restores and c1 keeps
        _scale(golden, f"{case}/{OUTPUT}", 2.0)
    out = _record(suite, golden, "-k", "c2")
    assert "recorded 1 case to" in out and "; kept 2 recorded before" in out
    assert np.array_equal(_array(golden, f"c2/{OUTPUT}"), recorded)  # re-recorded
    assert np.array_equal(_array(golden, f"c1/{OUTPUT}"), recorded * 2)  # kept as it was
    assert set(open_baseline(golden).meta["cases"]) == {"c1", "c2", "c3"}
    names = {n.split("/")[0] for n in _entries(golden)} - {f"{META}.npy"}
    assert names == {"c1", "c2", "c3"}


def test_prune_drops_the_cases_no_longer_in_the_suite(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    suite.write_text(THREE.split('[[case]]\nname = "c3"')[0])  # c3 leaves the suite
    assert "kept 2 recorded before" in _record(suite, golden, "-k", "c1")
    assert set(open_baseline(golden).meta["cases"]) == {"c1", "c2", "c3"}
    out = _record(suite, golden, "-k", "c1", "--prune")
    assert "kept 1 recorded before; dropped 1 no longer in the suite" in out
    assert set(open_baseline(golden).meta["cases"]) == {"c1", "c2"}
    assert not [n for n in _entries(golden) if n.startswith("c3/")]


@pytest.mark.parametrize("fault", [lncheck.errors.BackendUnavailable, KeyboardInterrupt])
def test_a_failed_or_interrupted_rerecord_leaves_the_old_baseline_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: type[BaseException]
) -> None:
    from lncheck.suite import baseline

    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    before = golden.read_bytes()
    real = baseline.candidates
    seen: list[str] = []

    def third_fails(case, backend, *, files):  # type: ignore[no-untyped-def]
        seen.append(case.name)
        if len(seen) == 3:  # after two cases were written to the new file
            raise fault("torch cannot run this case")
        return real(case, backend, files=files)

    monkeypatch.setattr(baseline, "candidates", third_fails)
    result = invoke("baseline", str(suite), "-o", str(golden))
    assert result.exit_code == (2 if fault is not KeyboardInterrupt else 130), result.output
    assert golden.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden.npz", "s.toml", "x.npy"]


def test_a_second_writer_fails_clearly(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    with exclusive(golden, "--output"):
        result = invoke("baseline", str(suite), "-o", str(golden))
    assert_user_error(result, f"-o {golden}: another lncheck process is writing it")
    assert not golden.exists()
    _record(suite, golden)  # the lock went with its holder


def _slow_suite(tmp_path: Path) -> Path:
    """A suite whose recording takes a few seconds: many cases."""
    body = "".join(
        f'[[case]]\nname = "c{i}"\nrandom = {{shape = [64, 4096], seed = {i}}}\nshape = [4096]\n'
        "grad = true\n"
        for i in range(40)
    )
    return write_suite(tmp_path, body)


def _start(suite: Path, golden: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lncheck", "baseline", str(suite), "-o", str(golden), "-q"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_while_recording_leaves_the_old_baseline(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    before = golden.read_bytes()
    slow = _slow_suite(tmp_path)
    process = _start(slow, golden)
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    time.sleep(0.5)  # well into writing the temporary file
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert golden.read_bytes() == before
    assert set(open_baseline(golden, verify=True).meta["cases"]) == {"c1", "c2", "c3"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the killed one's
    _record(suite, golden)  # the lock died with its holder
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock"))]


@pytest.mark.slow
def test_two_concurrent_writers_one_wins_one_fails(tmp_path: Path) -> None:
    slow, golden = _slow_suite(tmp_path), tmp_path / "golden.npz"
    first = _start(slow, golden)
    _wait_for(lambda: (tmp_path / "golden.npz.lock").exists())
    second = _start(slow, golden)
    _, second_err = second.communicate(timeout=120)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and second_err.count("\n") == 1
    assert "another lncheck process is writing it" in second_err
    assert len(open_baseline(golden, verify=True).meta["cases"]) == 40


def test_a_file_that_is_not_a_baseline_is_never_replaced(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, THREE)
    data = tmp_path / "data.npz"
    np.savez(data, input=np.ones((2, 8)))
    before = data.read_bytes()
    result = invoke("baseline", str(suite), "-o", str(data))
    assert_user_error(
        result, "exists and is not a readable lncheck baseline, so it is not replaced"
    )
    assert data.read_bytes() == before
    as_suite = invoke("baseline", str(suite), "-o", str(suite))
    assert_user_error(as_suite, f"-o {suite}: that is the suite file")
    as_input = invoke("baseline", str(suite), "-o", str(tmp_path / "x.npy"))
    assert_user_error(as_input, "that is the input of case 'c")


# --- replaying -------------------------------------------------------------------------------


def test_changed_case_options_are_said_apart_from_drift(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    suite.write_text(
        THREE.replace(
            'name = "c2"\ninput = "x.npy"\n', 'name = "c2"\ninput = "x.npy"\neps = 0.001\n'
        )
    )
    result = invoke("run", str(suite), "--baseline", str(golden))
    assert result.exit_code == 0, result.output
    line = "c2: case options changed since the baseline: eps 1e-05 -> 0.001 (not compared with it"
    assert line in result.stdout
    assert "drift: " not in result.stdout  # not mistaken for drift of torch's results
    assert (
        "PASS: 2 pass, 1 drift (drift from the baseline passes; --strict-baseline fails on it)"
        in (result.stdout)
    )
    report = lncheck.run_suite(suite, baseline=golden)
    c2 = next(r for r in report.results if r.name == "c2")
    assert c2.status == "drift" and c2.report is not None
    assert not [c for c in c2.report.checks if c.kind == "baseline"]
    strict = invoke("run", str(suite), "--baseline", str(golden), "--strict-baseline")
    assert strict.exit_code == 1 and "FAIL: 2 pass, 1 fail" in strict.stdout


def test_an_input_rewritten_since_the_baseline_is_said_apart_from_drift(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    x = tmp_path / "x.npy"
    np.save(x, np.load(x) * 2 + 1)  # same file, same options, other values
    result = invoke("run", str(suite), "--baseline", str(golden))
    assert result.exit_code == 0, result.output
    assert (
        "c1: the input values differ from those recorded in the baseline (not compared with "
        "it; re-record the case)"
    ) in result.stdout
    assert "drift: " not in result.stdout  # torch is not blamed for it
    strict = invoke("run", str(suite), "--baseline", str(golden), "--strict-baseline")
    assert strict.exit_code == 1
    recorded = open_baseline(golden)
    assert set(recorded.meta["cases"]["c1"]["digests"]) == {"input"}
    # a baseline recorded before digests were kept compares as it always did
    old = Baseline(golden, {"cases": {"c1": {"options": {}}}})
    assert old.changed_values("c1", {"input": "another"}) == []


def test_a_case_not_in_the_baseline_says_so_without_infinities(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden, "-k", "c1")
    result = invoke("run", str(suite), "--baseline", str(golden))
    assert result.exit_code == 0, result.output
    assert "c2: not in the baseline (record it with lncheck baseline)" in result.stdout
    assert "inf" not in result.stdout
    assert "PASS: 1 pass, 2 drift" in result.stdout
    strict = invoke("run", str(suite), "--baseline", str(golden), "--strict-baseline")
    assert strict.exit_code == 1


def test_drift_is_a_case_status_counted_and_said_once(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    _scale(golden, f"c3/{OUTPUT}", 1.0 + 2**-20)
    report_file = tmp_path / "r.json"
    result = invoke("run", str(suite), "--baseline", str(golden), "--json", str(report_file))
    assert result.exit_code == 0, result.output
    assert "PASS: 2 pass, 1 drift" in result.stdout
    assert result.stdout.count("does not match the baseline") == 1
    doc = json.loads(report_file.read_text())
    assert [c["status"] for c in doc["cases"]] == ["pass", "pass", "drift"]
    assert doc["counts"]["drift"] == 1
    strict = invoke("run", str(suite), "--baseline", str(golden), "--strict-baseline")
    assert strict.exit_code == 1
    assert strict.stdout.count("does not match the baseline") == 1  # failure and drift: once


def test_a_damaged_baseline_is_refused_before_anything_runs(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    data = bytearray(golden.read_bytes())
    at = data.index(b"c2/")  # the local header of a c2 member; flip a byte of its data
    data[at + 200] ^= 0xFF
    golden.write_bytes(bytes(data))
    result = invoke("run", str(suite), "--baseline", str(golden))
    assert_user_error(result, str(golden))
    assert os.path.getsize(golden) == len(data)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)  # as a hostile file would hold it
    return buffer.getvalue()


UNNAMED = "is not named <case>/<candidate>/<quantity>"


@pytest.mark.parametrize(
    ("name", "array", "fault"),
    [
        (f"c2/{OUTPUT}", np.array([1, None], dtype=object),
         f"array 'c2/{OUTPUT[:-4]}' holds Python objects (a pickle); refusing to load it"),
        (f"c3/{OUTPUT}", np.array(["a", "b"]),
         f"entry 'c3/{OUTPUT[:-4]}' holds <U1, not real numbers"),
        ("stray.npy", np.ones(2), f"entry 'stray' {UNNAMED}"),
        ("c1//output.npy", np.ones(2), f"entry 'c1//output' {UNNAMED}"),
        (f"c1/{OUTPUT[:-4]}/x.npy", np.ones(2), f"entry 'c1/{OUTPUT[:-4]}/x' {UNNAMED}"),
        ("c1/expected/bogus.npy", np.ones(2),
         "entry 'c1/expected/bogus' names no quantity (known: output, activation"),
    ],
)  # fmt: skip
def test_a_foreign_entry_in_a_baseline_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, array: np.ndarray, fault: str
) -> None:
    import lncheck.suite.run as suite_run

    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    entries = _entries(golden) | {name: _npy(array)}
    with zipfile.ZipFile(golden, "w") as archive:
        for key, data in entries.items():
            archive.writestr(key, data)
    line = assert_user_error(invoke("run", str(suite), "--baseline", str(golden)))
    assert line.startswith(f"lncheck: error: --baseline {golden}: {fault}")
    ran: list[object] = []
    monkeypatch.setattr(suite_run, "run_one", lambda *a: ran.append(a))
    with pytest.raises(InputError) as raised:  # the API opens it before any case too
        lncheck.run_suite(suite, baseline=golden)
    assert str(raised.value).startswith(f"baseline= {golden}: {fault}") and not ran


def test_a_truncated_baseline_is_refused_before_anything_runs(tmp_path: Path) -> None:
    suite, golden = write_suite(tmp_path, THREE), tmp_path / "golden.npz"
    _record(suite, golden)
    golden.write_bytes(golden.read_bytes()[:-100])
    line = assert_user_error(invoke("run", str(suite), "--baseline", str(golden)))
    assert (
        line == f"lncheck: error: --baseline {golden}: is not a valid .npz file (not a zip archive)"
    )
