"""Suite files written for a test, beside a small input ``x.npy``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conftest import EXAMPLES

SUITE = EXAMPLES / "suite.toml"


def write_suite(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    """``text`` as a suite file in ``tmp_path``, with a (4, 8) float32 ``x.npy`` beside it."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
    path = tmp_path / name
    path.write_text(text)
    return path
