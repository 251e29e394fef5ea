from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Deterministic property tests: CI must not fail on a draw it never saw locally.
settings.register_profile(
    "lncheck", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("lncheck")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renderings must not depend on the developer's terminal settings."""
    for name in ("FORCE_COLOR", "NO_COLOR", "COLUMNS", "LINES", "TERM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("x.npy", array)`` / ``write("x.json", obj)`` / ``write("x.npz", input=a, ...)``."""

    def _write(name: str, value: Any = None, **arrays: Any) -> Path:
        path = tmp_path / name
        if name.endswith(".npy"):
            np.save(path, value)
        elif name.endswith(".npz"):
            np.savez(path, **arrays)
        elif isinstance(value, (bytes, bytearray)):
            path.write_bytes(value)
        elif isinstance(value, str):
            path.write_text(value)
        else:
            path.write_text(json.dumps(value))
        return path

    return _write
