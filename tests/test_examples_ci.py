"""The GitHub Actions example runs as written: it installs from the checkout with the CPU torch
pin, and its lncheck commands pass on every shard, each writing its reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from .conftest import REPO

WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"


def _steps(text: str) -> dict[str, str]:
    """``{step name: its run command}``, block scalars (``|`` lines, ``>`` folded) read as
    GitHub reads them."""
    steps: dict[str, str] = {}
    lines = text.splitlines()
    name = ""
    for i, line in enumerate(lines):
        found = re.match(r"\s*- name: (.*)", line)
        if found:
            name = found.group(1)
        run = re.match(r"(\s*)run: ([|>])\s*$", line)
        if not run:
            continue
        indent = len(run.group(1))
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following.strip())
        joiner = "\n" if run.group(2) == "|" else " "
        steps[name] = joiner.join(part for part in body if part)
    return steps


def test_the_workflow_installs_lncheck_from_the_checkout_with_cpu_torch() -> None:
    steps = _steps(WORKFLOW.read_text())
    install = next(command for name, command in steps.items() if name.startswith("Install"))
    torch_line, lncheck_line = install.splitlines()
    assert torch_line == (
        "python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    assert lncheck_line == "python -m pip install -e ."
    assert "pip install lncheck" not in WORKFLOW.read_text()  # not on the package index
    assert (REPO / "pyproject.toml").exists()  # what "-e ." installs


def test_the_workflow_runs_every_shard_as_written(tmp_path: Path) -> None:
    text = WORKFLOW.read_text()
    shards = re.search(r"shard: \[([\d, ]+)\]", text)
    assert shards is not None and shards.group(1) == "1, 2, 3, 4"
    command = next(c for name, c in _steps(text).items() if name.startswith("Run the suite"))
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    seen: list[str] = []
    lncheck = [sys.executable, "-m", "lncheck"]
    for shard in ("1", "2", "3", "4"):
        line = command.replace("${{ matrix.shard }}", shard)
        args = line.split()
        assert args[0] == "lncheck"
        done = subprocess.run(
            lncheck + args[1:], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        suite = ET.parse(tmp_path / f"lncheck-{shard}.xml").getroot()
        names = [case.get("name") or "" for case in suite.iter("testcase")]
        doc = json.loads((tmp_path / f"lncheck-{shard}.json").read_text())
        assert [c["name"] for c in doc["cases"]] == names
        seen += names
    # Together the shards ran every case of the suite exactly once.
    every = re.findall(r'^name = "(.*)"', (REPO / "examples" / "suite.toml").read_text(), re.M)
    assert sorted(seen) == sorted(every)
