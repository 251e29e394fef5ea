"""--repeat N: every candidate runs N times and is compared bitwise with its first run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lncheck.candidates.repeat import Runs
from lncheck.pipeline import check_case
from lncheck.result import NormResult

from ..support import layer_norm, make_case


def _x(shape: tuple[int, ...] = (16, 256)) -> np.ndarray:
    return np.random.default_rng(5).normal(3.0, 1.0, shape).astype(np.float32)


def racy_layer_norm(x: torch.Tensor, normalized_shape: Any, eps: float) -> torch.Tensor:
    """A LayerNorm whose float32 sums run in a random order each call, as a reduction with
    atomics does: right to float32's accuracy, but not bitwise the same from run to run."""
    n = x.shape[-1]

    def float32_sum(values: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((*values.shape[:-1], 1), dtype=torch.float32)
        for i in torch.randperm(n).tolist():  # one element at a time, in a random order
            total = total + values[..., i : i + 1]
        return total

    mean = float32_sum(x) / n
    d = x - mean
    return d / torch.sqrt(float32_sum(d * d) / n + eps)


def test_a_nondeterministic_reduction_is_caught_by_repeat_5() -> None:
    case = make_case(_x(), normalized_shape=256, candidate={"racy": racy_layer_norm}, repeat=5)
    report = check_case(case, backend=None)
    by_kind = {c.kind: c for c in report.checks}
    assert by_kind["reference"].passed  # every run is accurate...
    repeat = by_kind["repeat"]  # ...but not the same twice
    assert (repeat.candidate, repeat.quantity, repeat.passed) == ("racy", "output", False)
    assert 0 < repeat.mismatched <= repeat.total == 16 * 256
    assert repeat.note == (
        f"differs bitwise between runs: {repeat.mismatched} of 4096 elements varied "
        "over 5 runs (first in run 2)"
    )
    assert repeat in report.failures and not report.passed
    # without --repeat the same function passes
    once = check_case(case.with_(settings=case.settings.without("repeat")), backend=None)
    assert once.passed and [c.kind for c in once.checks] == ["reference"]


def test_deterministic_candidates_pass_every_repeat() -> None:
    def ln(x: torch.Tensor, normalized_shape: Any, weight: Any, bias: Any) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias)

    case = make_case(_x((4, 8)), normalized_shape=8, candidate={"mine": ln}, repeat=3, grad=True)
    report = check_case(case)
    repeats = [(c.candidate, c.quantity) for c in report.checks if c.kind == "repeat"]
    # torch's own paths run 3 times too
    assert ("torch.native_layer_norm", "rstd") in repeats and ("mine", "grad_weight") in repeats
    # module and functional: output and 3 gradients; native: 3 statistics more; mine
    assert len(repeats) == 2 * 4 + 7 + 4
    assert report.passed
    # a bitwise match's worst element is its first, off by 0: no NaN standing for it
    x = _x((4, 8))
    (out,) = [c for c in report.checks if (c.candidate, c.quantity, c.kind) ==
              ("mine", "output", "repeat")]  # fmt: skip
    assert out.worst_index == (0, 0) and out.worst_actual == out.worst_expected
    assert out.worst_actual == pytest.approx(float(layer_norm(x)[0, 0]), abs=1e-6)
    assert (out.max_abs_err, out.required_rtol, out.tolerance_used) == (0.0, 0.0, 0.0)


def test_a_program_that_fails_on_a_later_run(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    prog = tmp_path / "flaky.py"
    prog.write_text(
        "import sys, pathlib, numpy as np\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "if n == 2: sys.exit('out of memory')\n"
        "x = np.load(sys.argv[1]).astype(np.float64)\n"
        "y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)\n"
        "np.save(sys.argv[2], y.astype(np.float32))\n"
    )
    line = f"{shlex.quote(sys.executable)} {shlex.quote(str(prog))} {{input}} {{output}}"
    case = make_case(_x((4, 8)), normalized_shape=8, candidate_cmd=line, repeat=4)
    report = check_case(case, backend=None)
    repeat = next(c for c in report.checks if c.kind == "repeat")
    assert not repeat.passed and counter.read_text() == "4"
    assert repeat.note == "run 3 of 4 failed: exited with status 1; stderr: out of memory"


def test_runs_compare_bits() -> None:
    first = NormResult("k", {"output": np.array([0.0, 1.0, np.nan]), "mean": np.array([1.0])})
    runs = Runs(first, 3)
    runs.add(2, NormResult("k", {"output": np.array([0.0, 1.0, np.nan]), "mean": np.array([1.0])}))
    runs.add(3, NormResult("k", {"output": np.array([-0.0, 1.0, np.nan]), "mean": np.array([1.0])}))
    output, mean = runs.checks()
    assert mean.passed and mean.note is None and mean.mismatched == 0
    # -0.0 is not 0.0 bitwise; equal NaNs are the same
    assert (output.passed, output.mismatched, output.worst_index) == (False, 1, (0,))
    assert output.note == (
        "differs bitwise between runs: 1 of 3 elements varied over 3 runs (first in run 3)"
    )
    runs.add(4, NormResult("k", {"output": np.zeros(2), "mean": np.array([1.0])}))  # reshaped
    assert runs.checks()[0].mismatched == 3
