"""The pytest plugin: ``lncheck_regression`` records on the first run (or with
``--lncheck-regen``) and compares after, and loading the plugin imports no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lncheck.errors import InputError
from lncheck.pytest_plugin import LncheckRegression

from .conftest import heavy_modules_after

TEST = """
import numpy as np

SCALE = {scale}

def test_layer(lncheck_regression):
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    mean = x.mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * SCALE
    lncheck_regression.check(x, normalized_shape=8, expected=y, rtol={rtol}, atol=0.0)
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=folder, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_records_first_then_compares_then_regenerates(tmp_path: Path) -> None:
    test = tmp_path / "test_mine.py"
    test.write_text(TEST.format(scale="1.0", rtol="0.0"))
    first = _pytest(tmp_path)
    assert first.returncode == 1
    recorded = tmp_path / "test_mine" / "test_layer.npz"
    assert f"the first run (nothing recorded yet): recorded 7 results to {recorded}" in (
        first.stdout
    )
    assert recorded.exists()
    assert _pytest(tmp_path).returncode == 0  # the same results: bitwise equal
    # a change within the reference's tolerance, that the recording sees
    test.write_text(TEST.format(scale="1.0000001", rtol="0.0"))
    changed = _pytest(tmp_path)
    assert changed.returncode == 1
    assert "results differ from those recorded in" in changed.stdout
    assert "expected/output: 32 of 32 elements differ" in changed.stdout
    assert "torch.nn.LayerNorm/output" not in changed.stdout  # torch's own did not move
    test.write_text(TEST.format(scale="1.0000001", rtol="1e-6"))
    assert _pytest(tmp_path).returncode == 0  # within rtol
    test.write_text(TEST.format(scale="1.0000001", rtol="0.0"))
    regen = _pytest(tmp_path, "--lncheck-regen")
    assert regen.returncode == 1 and "--lncheck-regen: recorded 7 results" in regen.stdout
    assert _pytest(tmp_path).returncode == 0


def test_a_reference_failure_fails_before_any_recording(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(TEST.format(scale="1.5", rtol="0.0"))
    done = _pytest(tmp_path)
    assert done.returncode == 1
    assert "expected output does not match the reference" in done.stdout
    assert not (tmp_path / "test_bad").exists()


def test_the_plugin_imports_neither_torch_nor_numpy() -> None:
    assert heavy_modules_after("import lncheck.pytest_plugin") == []
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120
    )
    assert "--lncheck-regen" in done.stdout


@pytest.mark.parametrize(
    "basename", ["../../escaped", "a/b", "a\\b", "", "..", ".", "C:evil", Path("a/b"), 3]
)
def test_a_basename_is_a_file_name_never_a_path(
    lncheck_regression: LncheckRegression, basename: Any
) -> None:
    with pytest.raises(InputError, match="give a file name, without a folder"):
        lncheck_regression.path(basename)
    here = Path(__file__)
    assert lncheck_regression.path("mine") == here.parent / here.stem / "mine.npz"
    assert lncheck_regression.path(Path("mine")) == here.parent / here.stem / "mine.npz"
