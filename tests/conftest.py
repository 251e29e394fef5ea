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


@pytest.fixture(autouse=True)
def junit_is_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JUnit document a test writes is parsed: a control character in a message must
    never make it malformed XML."""
    import xml.etree.ElementTree as ET

    from lncheck.render import junit

    real = junit.render

    def checked(report: Any) -> str:
        document = real(report)
        ET.fromstring(document.encode("utf-8"))
        return document

    monkeypatch.setattr(junit, "render", checked)


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


def heavy_modules_after(code: str) -> list[str]:
    """The torch and NumPy modules imported once ``code`` has run in a fresh interpreter."""
    import subprocess
    import sys

    report = "import json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in ("torch", "numpy")]


def random_parameters(
    layer: Any, shape: tuple[int, ...], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Weight, bias and running statistics that fit ``layer`` (``Settings``) on ``shape``, drawn
    from ``rng``."""
    from lncheck import ops

    p = ops.build(layer, shape)
    arrays: dict[str, np.ndarray] = {}
    if p.affine:
        arrays["weight"] = rng.normal(1, 0.5, p.param_shape)
        if p.has_bias:
            arrays["bias"] = rng.normal(0, 0.5, p.param_shape)
    if p.use_running_stats:
        arrays["running_mean"] = rng.normal(0, 0.5, p.stats_shape)
        arrays["running_var"] = rng.uniform(0.5, 2, p.stats_shape)
    return arrays
