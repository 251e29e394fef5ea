"""What the suite decides where a choice had to be made (README, "Suites for CI"): paths
outside the suite's folder, the size of generated inputs, more jobs than CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError

from ..cli.helpers import assert_user_error, invoke
from .helpers import write_suite


def test_absolute_and_parent_paths_are_allowed(tmp_path: Path) -> None:
    """Decided: a relative path is relative to the suite file's folder; absolute paths and
    ``..`` work too (a suite is trusted like a Makefile, and data often lives beside it)."""
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", np.ones((2, 8), np.float32))
    folder = tmp_path / "suites"
    folder.mkdir()
    suite = folder / "s.toml"
    suite.write_text(
        '[[case]]\nname = "parent"\ninput = "../data/x.npy"\nshape = [8]\n'
        f'[[case]]\nname = "absolute"\ninput = "{data / "x.npy"}"\nshape = [8]\n'
    )
    report = lncheck.run_suite(suite)
    assert [(r.name, r.status) for r in report.results] == [
        ("parent", "pass"),
        ("absolute", "pass"),
    ]
    missing = folder / "m.toml"
    missing.write_text('[[case]]\nname = "m"\ninput = "../nowhere/x.npy"\nshape = [8]\n')
    result = invoke("run", str(missing))
    assert_user_error(result, "key 'input': no such file", str(folder / "../nowhere/x.npy"))


def test_a_generated_input_counts_against_max_bytes(tmp_path: Path) -> None:
    """Decided: ``random`` inputs are held to the case's ``max_bytes`` like files, by what
    drawing them takes (8 bytes per element)."""
    body = '[[case]]\nname = "big"\nrandom = {shape = [1024, 1024]}\nshape = [1024]\n'
    suite = write_suite(tmp_path, body + "max_bytes = 1000000\n")
    result = invoke("run", str(suite))
    assert_user_error(
        result,
        "case 'big': key 'random.shape': [1024, 1024] takes 8388608 bytes to draw, "
        "over the key 'max_bytes' limit 1000000",
    )
    suite.write_text(body + "max_bytes = 8388608\n")
    assert invoke("run", str(suite)).exit_code == 0


def test_jobs_are_capped_at_the_cpu_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decided: more jobs than CPUs run as one per CPU (each worker also runs torch's threads),
    with a note; ``jobs`` below 1 is an input error in the CLI and the API alike."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    suite = write_suite(tmp_path, '[[case]]\nname = "c"\ninput = "x.npy"\nshape = [8]\n')
    report = lncheck.run_suite(suite, jobs=64)
    assert report.passed and "64 jobs asked for; 1 run, one per CPU of this machine" in report.notes
    for bad, why in (
        (0, "at least 1"),
        (-1, "at least 1"),
        (1.5, "an integer"),
        (True, "an integer"),
    ):
        with pytest.raises(InputError, match=f"jobs= must be {why}"):
            lncheck.run_suite(suite, jobs=bad)  # type: ignore[arg-type]
    assert_user_error(invoke("run", str(suite), "--jobs", "0"), "--jobs must be at least 1")
