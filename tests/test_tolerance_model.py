"""The automatic tolerance: no false alarm on correct kernels, no miss on real bugs.

Correct implementations: torch's CPU kernels in every dtype, a float32 two-pass and a
sequential float32 Welford (tests/mutants.py), and 100 outputs of torch's CUDA kernels on an
H100 (tests/data/cuda-h100). Bugs: the mutants, and a single element off by 10x its tolerance.
The bar, on every input: every correct implementation passes, and every bug whose error is
more than 10x that of the correct implementations on the same input fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lncheck import tolerances
from lncheck.comparison import Comparison
from lncheck.io import case_from_arrays
from lncheck.layers import Layer
from lncheck.reference import run as run_reference
from lncheck.result import as_array
from lncheck.runner import check_case as check
from lncheck.tolerances import ToleranceSpec

from .mutants import BUGS, CORRECT, torch_cpu

DATA = Path(__file__).parent / "data" / "cuda-h100"
EPS = 1e-5


def _verdict(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    dtype: str = "float32",
    tolerance: ToleranceSpec | None = None,
) -> Comparison:
    layer = Layer("layer_norm", normalized_shape=(x.shape[-1],), eps=EPS)
    case = case_from_arrays(
        x, layer, dtype=dtype, weight=w, bias=b, expected=y, tolerance=tolerance
    )  # type: ignore[arg-type]
    (only,) = check(case, backend=None).checks
    return only


def _inputs(count: int, seed: int) -> Any:
    """Random LayerNorm inputs: groups of 8 to 4096 values, means up to 1e4 std, variances
    from near eps (std 3e-3) to 900, weights and biases of several sizes."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        d = int(np.exp(rng.uniform(np.log(8), np.log(4096))))
        t = int(rng.integers(2, 5))
        batch = max(1, min(4, 16384 // (d * t)))
        kappa = float(rng.choice([0, 0.5, 3, 30, 300, 1e3, 1e4]))
        std = float(rng.choice([3e-3, 1e-2, 0.1, 1, 30]))
        x = rng.normal(kappa * std * rng.choice([-1, 1]), std, size=(batch, t, d)).astype(
            np.float32
        )
        w = rng.normal(1, rng.choice([0.1, 0.5, 2]), d).astype(np.float32)
        b = rng.normal(0, rng.choice([0.01, 0.5, 3]), d).astype(np.float32)
        yield x, w, b


def _reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    case = case_from_arrays(
        x,
        Layer("layer_norm", normalized_shape=(x.shape[-1],), eps=EPS),
        dtype="float32",
        weight=w,
        bias=b,
    )
    return as_array(run_reference(case).quantities["output"])


def _off_by_ten_tolerances(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray, seed: int
) -> np.ndarray:
    """``y`` with one random element moved by 10x the tolerance the reference allows there."""
    case = case_from_arrays(
        x,
        Layer("layer_norm", normalized_shape=(x.shape[-1],), eps=EPS),
        dtype="float32",
        weight=w,
        bias=b,
    )
    ref = run_reference(case)
    rtol, atol = tolerances.applied(case.tolerance, "float32", x.shape[-1], ref.bounds["output"])
    expected = as_array(ref.quantities["output"])
    allowed = rtol * np.abs(expected) + (as_array(atol) if not isinstance(atol, float) else atol)
    index = np.unravel_index(np.random.default_rng(seed).integers(y.size), y.shape)
    bad = y.astype(np.float64).copy()
    bad[index] = expected[index] + 10 * allowed[index]
    return bad


def test_mutation_suite(capsys: pytest.CaptureFixture[str]) -> None:
    false_alarms, misses, caught, indistinguishable, inputs = [], [], 0, 0, 0
    correct_dtypes = {
        "torch float64": "float64",
        "torch float16": "float16",
        "torch bfloat16": "bfloat16",
    }
    extra = {name: torch_cpu(getattr(torch, dtype)) for name, dtype in correct_dtypes.items()}
    for seed, (x, w, b) in enumerate(_inputs(300, seed=20261127)):
        inputs += 1
        ref = _reference(x, w, b)
        largest = 0.0
        for name, impl in CORRECT.items():
            y = impl(x, w, b, EPS).astype(np.float32)
            largest = max(largest, float(np.abs(y - ref).max()))
            if not _verdict(x, w, b, y).passed:
                false_alarms.append((name, x.shape))
        for name, impl in extra.items():  # torch in the other dtypes, each judged in its own
            if name == "torch float16" and np.abs(x).max() > 65504:
                continue  # the input overflows float16: NaN on both sides, not a verdict
            if not _verdict(x, w, b, impl(x, w, b, EPS), dtype=correct_dtypes[name]).passed:
                false_alarms.append((name, x.shape))
        bugs = {name: impl(x, w, b, EPS).astype(np.float32) for name, impl in BUGS.items()}
        bugs["one element off by 10x its tolerance"] = _off_by_ten_tolerances(
            x, w, b, CORRECT["torch float32"](x, w, b, EPS), seed
        )
        for name, y in bugs.items():
            with np.errstate(invalid="ignore"):
                error = np.nanmax(np.abs(y - ref)) if not np.isnan(y).any() else np.inf
            if error <= 10 * largest:
                indistinguishable += 1
            elif _verdict(x, w, b, y).passed:
                misses.append((name, x.shape))
            else:
                caught += 1
    with capsys.disabled():
        print(
            f"\nmutation suite: {inputs} inputs; false alarms {len(false_alarms)}; "
            f"misses {len(misses)} (caught {caught}, indistinguishable {indistinguishable})"
        )
    assert false_alarms == [] and misses == []
    assert caught > 1500  # the suite really exercises the bugs


def _cuda_cases() -> list[tuple[str, dict[str, Any]]]:
    return list(json.loads((DATA / "cuda_outputs.json").read_text())["cases"].items())


@pytest.fixture(scope="module")
def cuda_arrays() -> Any:
    return np.load(DATA / "cuda_outputs.npz")


def _cuda_case(
    name: str, meta: dict[str, Any], arrays: Any, output: np.ndarray | None = None
) -> Comparison:
    op, shape = meta["op"], tuple(meta["shape"])
    layer = {
        "layer_norm": Layer("layer_norm", normalized_shape=shape[-1:], eps=meta["eps"]),
        "rms_norm": Layer("rms_norm", normalized_shape=shape[-1:], eps=meta["eps"]),
        "group_norm": Layer("group_norm", groups=meta["groups"], eps=meta["eps"]),
    }.get(op, Layer(op, eps=meta["eps"], affine=True))
    params = {k: arrays[f"{name}/{k}"] for k in ("weight", "bias") if f"{name}/{k}" in arrays}
    y = arrays[f"{name}/output"] if output is None else output
    case = case_from_arrays(
        arrays[f"{name}/input"], layer, dtype=meta["dtype"], expected=y, **params
    )
    (only,) = check(case, backend=None).checks
    return only


@pytest.mark.parametrize(("name", "meta"), _cuda_cases(), ids=[n for n, _ in _cuda_cases()])
def test_auto_accepts_every_h100_output(name: str, meta: dict[str, Any], cuda_arrays: Any) -> None:
    c = _cuda_case(name, meta, cuda_arrays)
    assert c.passed, c.message()
    assert c.max_abs_err == pytest.approx(meta["max_abs_err_vs_fp64"], rel=1e-6, abs=1e-12)


def h100_bug_verdicts(arrays: Any) -> Any:
    """``(case name, bug, verdict)`` for every bug on the float32 LayerNorm inputs of the H100
    set whose error is 10x that of the correct implementations (the H100 kernel and those of
    tests/mutants.py)."""
    for name, meta in _cuda_cases():
        if meta["op"] != "layer_norm" or meta["dtype"] != "float32":
            continue
        x = arrays[f"{name}/input"].reshape(1, *meta["shape"])
        w, b = arrays[f"{name}/weight"], arrays[f"{name}/bias"]
        ref = _reference(x, w, b)[0]
        largest = max(
            meta["max_abs_err_vs_fp64"],
            *(
                float(np.abs(impl(x, w, b, EPS).astype(np.float32)[0] - ref).max())
                for impl in CORRECT.values()
            ),
        )
        for bug, impl in BUGS.items():
            if bug == "wrong axes":
                continue  # these inputs have one batch dim: "the last two dims" is every dim
            y = impl(x, w, b, meta["eps"]).astype(np.float32)[0]
            with np.errstate(invalid="ignore"):
                error = np.nanmax(np.abs(y - ref)) if not np.isnan(y).any() else np.inf
            if error > 10 * largest:
                yield name, bug, _cuda_case(name, meta, arrays, output=y)


def test_bugs_on_the_h100_inputs_are_caught(cuda_arrays: Any) -> None:
    verdicts = list(h100_bug_verdicts(cuda_arrays))
    assert all(not c.passed for _, _, c in verdicts), [(n, b) for n, b, c in verdicts if c.passed]
    assert len(verdicts) >= 20


def test_fixed_tolerances_cry_wolf_where_auto_does_not() -> None:
    """torch's float32 LayerNorm on mean-1000 data is correct, yet off by ~1e-4 (cancellation)."""
    x = np.random.default_rng(0).normal(1000, 1, size=(64, 1024)).astype(np.float32)
    w, b = np.ones(1024, np.float32), np.zeros(1024, np.float32)
    y = CORRECT["torch float32"](x, w, b, EPS)
    assert not _verdict(x, w, b, y, tolerance=ToleranceSpec(mode="fixed")).passed
    assert _verdict(x, w, b, y).passed


def test_auto_catches_wrong_eps_that_fixed_misses() -> None:
    """eps 1e-6 instead of 1e-5 on well-conditioned float32 data moves outputs by ~1e-5."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.05, size=(8, 256)).astype(np.float32)
    w, b = np.ones(256, np.float32), np.zeros(256, np.float32)
    y = BUGS["eps 1e-6 instead of 1e-5"](x, w, b, EPS).astype(np.float32)
    assert not _verdict(x, w, b, y).passed
