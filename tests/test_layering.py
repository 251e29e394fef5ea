"""The import-layer contract (``[tool.importlinter]`` in pyproject.toml), enforced by
import-linter, and a check that its module lists keep up with the package."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tomllib

import lncheck

from .conftest import REPO


def _contracts() -> dict[str, dict[str, object]]:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["name"]: c for c in doc["tool"]["importlinter"]["contracts"]}


def test_the_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_every_module_below_the_command_line_is_held_to_it() -> None:
    top = {m.name for m in pkgutil.iter_modules(lncheck.__path__)} - {"cli", "__main__"}
    listed = _contracts()["nothing below the command line imports it"]["source_modules"]
    assert {f"lncheck.{name}" for name in top} == set(listed)  # type: ignore[arg-type]
