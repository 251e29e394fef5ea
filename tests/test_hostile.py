"""Hostile and broken inputs: exit 2, one line naming the file and the problem, nothing run.

The files come from scripts/make_bad_files.py; MANIFEST.json says what each must do.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lncheck.cli import app
from lncheck.errors import InputError
from lncheck.readers import default_max_bytes, read_arrays

from .conftest import REPO

BAD = REPO / "tests" / "data" / "bad"
MANIFEST = json.loads((BAD / "MANIFEST.json").read_text())
runner = CliRunner()


def _absolute(arg: str) -> str:
    return str(REPO / arg) if arg.startswith("tests/data/bad/") else arg


@pytest.mark.parametrize(
    "entry", MANIFEST, ids=[f"{e['file']}{' '.join(e['args'])}" for e in MANIFEST]
)
def test_every_bad_file(
    entry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if entry["without_cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)  # anything unpickled would write PWNED here
    path = str(BAD / entry["file"])
    result = runner.invoke(app, ["compare", path, *map(_absolute, entry["args"])])
    assert result.exit_code == entry["exit"], result.output
    assert "Traceback" not in result.output
    if entry["exit"] == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("lncheck: error: ")
        assert entry["phrase"] in lines[0]
        if not entry["args"] or not any(
            a.startswith("--") and a in lines[0] for a in entry["args"]
        ):
            names = [
                Path(path).name,
                *(Path(a).name for a in entry["args"] if a.startswith("tests/")),
            ]
            assert any(name in lines[0] for name in names) or entry["phrase"].startswith("--")
        assert result.stdout == ""
    assert os.listdir(tmp_path) == []  # nothing written, nothing executed


def test_pickles_would_really_run_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostile pickles are live: unpickling them unsafely does create the file."""
    monkeypatch.chdir(tmp_path)
    np.load(BAD / "pickle.npy", allow_pickle=True)
    assert (tmp_path / "PWNED").exists()


def test_evil_pt_is_live_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    torch.load(BAD / "evil.pt", weights_only=False)
    assert (tmp_path / "PWNED").exists()


def test_bomb_is_real_and_small() -> None:
    path = BAD / "bomb.npz"
    with zipfile.ZipFile(path) as archive:
        declared = sum(m.file_size for m in archive.infolist())
    assert path.stat().st_size < 100_000 and declared > 60_000_000


def test_default_limit_is_half_the_memory() -> None:
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert default_max_bytes() == pages // 2


def test_valid_odd_layouts_give_the_same_report() -> None:
    def checks(name: str) -> list[Any]:
        result = runner.invoke(app, ["compare", str(BAD / name), "--shape", "8", "--json"])
        return [
            (c["candidate"], c["quantity"], c["max_abs_err"])
            for c in json.loads(result.stdout)["checks"]
        ]

    assert checks("good.npy") == checks("fortran_order.npy") == checks("big_endian.npy")


def test_nan_and_infinity_literals_are_reported() -> None:
    result = runner.invoke(
        app, ["compare", str(BAD / "nan_infinity.json"), "--shape", "4", "--json"]
    )
    doc = json.loads(result.stdout)
    out = next(c for c in doc["checks"] if c["quantity"] == "output")
    assert out["nan_expected"] == 4 and out["nan_actual"] == 4 and not out["passed"]


# --- fuzzing the loaders: a valid tensor or an InputError, nothing else ----------------------


@settings(max_examples=300)
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".npy", ".npz", ".json", ".pt"]))
def test_random_bytes(data: bytes, suffix: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(data)
    _only_arrays_or_input_errors(path)


@settings(max_examples=200)
@given(data=st.binary(min_size=1, max_size=200), cut=st.integers(0, 400))
def test_mangled_npy(data: bytes, cut: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    valid = (BAD / "good.npy").read_bytes()
    path = tmp_path_factory.mktemp("fuzz") / "f.npy"
    path.write_bytes(valid[: cut % len(valid)] + data)
    _only_arrays_or_input_errors(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(value=json_values)
def test_random_json(value: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.json"
    path.write_text(json.dumps(value))
    _only_arrays_or_input_errors(path)


def _only_arrays_or_input_errors(path: Path) -> None:
    try:
        loaded = read_arrays(str(path), max_bytes=1 << 24)
    except InputError as e:
        assert str(e).startswith(str(path))
        return
    for array in loaded.arrays.values():
        assert isinstance(array, np.ndarray)
