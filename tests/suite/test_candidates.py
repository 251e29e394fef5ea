"""The user's candidates in suite files: ``expected`` (a file or a table of names), programs
(``candidate_cmd``), callables (``candidate``) and ``repeat``, with paths relative to the
suite file."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError
from lncheck.suite.parse import load_suite

from .helpers import write_suite

PROGRAM = """\
import sys, numpy as np
x = np.load(sys.argv[1]).astype(np.float64)
y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
np.save(sys.argv[2], (y * float(sys.argv[3])).astype(np.float32))
"""
KERNELS = """\
import torch.nn.functional as F
def ln(x, normalized_shape, weight, bias, eps):
    return F.layer_norm(x, normalized_shape, weight, bias, eps)
"""


def _files(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    xd = x.astype(np.float64)
    y = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    (tmp_path / "out").mkdir()
    np.save(tmp_path / "out" / "good.npy", y.astype(np.float32))
    np.savez(tmp_path / "out" / "bad.npz", output=(y * 1.01).astype(np.float32))
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "kernels.py").write_text(KERNELS)


def test_candidates_from_a_suite(tmp_path: Path) -> None:
    _files(tmp_path)
    python = shlex.quote(sys.executable)
    path = write_suite(
        tmp_path,
        f"""
[defaults]
shape = [8]
repeat = 2

[[case]]
name = "files"
input = "x.npy"
expected = {{ triton = "out/good.npy", cuda = "out/bad.npz" }}

[[case]]
name = "programs"
input = "x.npy"
candidate_cmd = [
    "{python} prog.py {{input}} {{output}} 1",
    "scaled={python} prog.py {{input}} {{output}} 2",
]
candidate_timeout = 30

[[case]]
name = "callables"
input = "x.npy"
candidates = {{ mine = "kernels.py:ln" }}
""",
    )
    report = lncheck.run_suite(path)
    verdicts = {
        r.name: {(c.candidate, c.quantity, c.kind): c.passed for c in r.report.checks}
        for r in report.results
        if r.report is not None
    }
    assert [r.status for r in report.results] == ["fail", "fail", "pass"]
    files = verdicts["files"]
    assert files[("triton", "output", "reference")] and not files[("cuda", "output", "reference")]
    assert ("triton", "output", "repeat") not in files  # a file is never run again
    assert files[("torch.nn.LayerNorm", "output", "repeat")]
    # run in the suite file's folder, twice each
    programs = {k: v for k, v in verdicts["programs"].items() if not k[0].startswith("torch.")}
    assert programs == {
        ("command", "output", "reference"): True,
        ("command", "output", "repeat"): True,
        ("scaled", "output", "reference"): False,
        ("scaled", "output", "repeat"): True,
    }
    assert verdicts["callables"][("mine", "output", "reference")]
    doc = report.to_dict()["cases"][0]["report"]
    assert {c["candidate"] for c in doc["checks"]} >= {"triton", "cuda"}


def test_a_module_path_candidate_is_found_beside_the_suite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``suite_kernels:ln`` names ``suite_kernels.py`` in the suite's folder, as a file path
    would be read from there, whatever the current folder."""
    _files(tmp_path)
    (tmp_path / "suite_kernels.py").write_text(KERNELS)
    monkeypatch.chdir(tmp_path / "out")
    monkeypatch.delitem(sys.modules, "suite_kernels", raising=False)
    path = write_suite(
        tmp_path,
        '[[case]]\ninput = "x.npy"\nshape = [8]\ncandidate = ["suite_kernels:ln"]\n',
    )
    report = lncheck.run_suite(path)
    [result] = report.results
    assert result.status == "pass", result
    assert result.report is not None
    assert [c.passed for c in result.report.checks if c.candidate == "ln"] == [True]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ('expected = "out/none.npy"', "case 'a': key 'expected': no such file"),
        ('expected = { "my kernel" = "out/good.npy" }', "candidate name 'my kernel' must be"),
        ('candidate_cmd = "prog {groups} {output}"', "{groups} cannot be filled: LayerNorm has"),
        ('candidate = "kernels.py:nope"', "kernels.py has no callable 'nope'"),
        ('candidate = "missing.py:f"', "key 'candidate': no such file"),
        ("repeat = 0", "key 'repeat' must be positive, got 0"),
        ("candidate_timeout = -1", "key 'candidate_timeout' must be more than 0 seconds"),
    ],
)
def test_a_bad_candidate_key_stops_the_suite_before_it_runs(
    tmp_path: Path, body: str, phrase: str
) -> None:
    _files(tmp_path)
    path = write_suite(tmp_path, f'[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\n{body}\n')
    with pytest.raises(InputError) as info:
        load_suite(path)
    assert phrase in str(info.value)
