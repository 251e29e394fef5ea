"""How close is close enough: the fixed table, explicit tolerances, and the automatic bound.

The automatic tolerance must raise no false alarm on correct kernels and miss no real bug.
Correct implementations: torch's CPU kernels in every dtype, a float32 two-pass and a
sequential float32 Welford (tests/mutants.py), and 100 outputs of torch's CUDA kernels on an
H100 (tests/data/cuda-h100). Bugs: the mutants, and a single element off by 10x its tolerance.
The bar, on every input: every correct implementation passes, and every bug whose error is
more than 10x that of the correct implementations on the same input fails.
(benchmarks/tolerance_margins.py prints the margins these tests measure.)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lncheck
from lncheck import pipeline, tolerances
from lncheck.comparison import Comparison
from lncheck.reference import run as run_reference
from lncheck.result import as_array
from lncheck.tolerance_spec import ToleranceSpec
from lncheck.tolerances import allowance

from .mutants import BUGS, CORRECT, torch_cpu
from .support import make_case

DATA = Path(__file__).parent / "data" / "cuda-h100"
EPS = 1e-5


# --- the automatic bound: its terms ---------------------------------------------------------------


def test_allowance_per_class() -> None:
    """Each class's statistics allowance, term by term (tolerances' module docstring)."""
    v, n = 2.0**-24, 1024
    base = (3 + 0.5 * 10) * v  # A + G_TREE * log2(n), in float32's unit roundoff
    accurate = allowance("float32", n, "accurate")
    assert (accurate.shift, accurate.scale_const, accurate.scale) == (base, base, 0.5 * v)
    assert accurate.sequential == accurate.drift == accurate.quadratic == 0
    sequential = allowance("float32", n, "sequential")
    assert sequential.shift == pytest.approx(base + 0.5 * (n - 1) * v, rel=1e-12)
    assert sequential.sequential == 0.2 * v
    assert sequential.drift == pytest.approx(0.01 * n * v, rel=1e-12)
    assert sequential.quadratic == 0
    # float32 statistics are kept in float32 anyway: only the one-pass variance is added
    low32 = allowance("float32", n, "low_precision")
    assert low32.quadratic == pytest.approx(10 * v) and low32.scale_const == base
    # bfloat16 accumulates in float32 (the accurate class is float32's); kept in bfloat16,
    # the mean errs relative to |mean| + std and the variance relative to itself
    assert allowance("bfloat16", n, "accurate") == accurate.__class__(
        **{**accurate.__dict__, "relative": 3 * 2.0**-8, "rounded": 2.0**-8}
    )
    # the output rounds once in the accurate and sequential classes, and may round at every
    # element-wise step in the low-precision one
    assert (accurate.rounded, sequential.rounded, low32.rounded) == (v, v, 3 * v)
    low16 = allowance("bfloat16", n, "low_precision")
    assert low16.rounded == 3 * 2.0**-8
    kept = (3 + 1.5 * 32) * 2.0**-8
    assert low16.scale_const == pytest.approx(base + kept, rel=1e-12)
    assert low16.shift == pytest.approx(sequential.shift + kept, rel=1e-12)
    assert low16.scale == accurate.scale
    # eval mode computes no statistic but rsqrt(running_var + eps)
    running = allowance("float32", n, "accurate", running=True)
    assert (running.shift, running.scale, running.scale_const) == (0, 0, 3 * v)
    assert allowance("bfloat16", n, "low_precision", running=True).scale_const == 3 * 2.0**-8


# --- the automatic bound against correct kernels and seeded bugs ---------------------------------


def _verdict(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    dtype: str = "float32",
    tolerance: ToleranceSpec | None = None,
) -> Comparison:
    case = make_case(
        x,
        normalized_shape=(x.shape[-1],),
        eps=EPS,
        dtype=dtype,
        weight=w,
        bias=b,
        expected=y,
        tolerance=tolerance,
    )
    (only,) = pipeline.check_case(case, backend=None).checks
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
    case = make_case(x, normalized_shape=(x.shape[-1],), eps=EPS, dtype="float32", weight=w, bias=b)
    return as_array(run_reference(case).quantities["output"])


def _off_by_ten_tolerances(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray, seed: int
) -> np.ndarray:
    """``y`` with one random element moved by 10x the tolerance the default classes allow
    there (the ``sequential`` class's element-wise atol and rtol)."""
    case = make_case(x, normalized_shape=(x.shape[-1],), eps=EPS, dtype="float32", weight=w, bias=b)
    ref = run_reference(case)
    assert ref.model is not None
    block = ref.model.at(0, ref.model.layout.groups)
    rtol = block.allowance("float32", "sequential").relative
    expected = block.y.reshape(y.shape)
    allowed = block.atol("float32", "sequential").reshape(y.shape) + rtol * np.abs(expected)
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
    options = {
        "layer_norm": {"normalized_shape": shape[-1:]},
        "rms_norm": {"normalized_shape": shape[-1:]},
        "group_norm": {"groups": meta["groups"]},
    }.get(op, {"affine": True})
    params = {k: arrays[f"{name}/{k}"] for k in ("weight", "bias") if f"{name}/{k}" in arrays}
    y = arrays[f"{name}/output"] if output is None else output
    case = make_case(
        arrays[f"{name}/input"],
        op,
        eps=meta["eps"],
        dtype=meta["dtype"],
        expected=y,
        **options,
        **params,
    )
    (only,) = pipeline.check_case(case, backend=None).checks
    return only


@pytest.mark.parametrize(("name", "meta"), _cuda_cases(), ids=[n for n, _ in _cuda_cases()])
def test_every_h100_output_is_classified(name: str, meta: dict[str, Any], cuda_arrays: Any) -> None:
    """torch's CUDA kernels are accurate, but for GroupNorm in float16/bfloat16: it normalizes
    with the mean and rstd it returns, rounded to the input dtype (statistics kept in the
    compute dtype), which is ``low_precision`` where that rounding shows."""
    c = _cuda_case(name, meta, cuda_arrays)
    assert c.max_abs_err == pytest.approx(meta["max_abs_err_vs_fp64"], rel=1e-6, abs=1e-12)
    if meta["op"] == "group_norm" and meta["dtype"] != "float32":
        assert c.accuracy_class in ("sequential", "low_precision"), c.message()
        assert c.passed == (c.accuracy_class == "sequential")
    else:
        assert c.accuracy_class == "accurate" and c.passed, c.message()


def test_h100_class_counts(cuda_arrays: Any) -> None:
    """The figures README quotes."""
    classes = Counter(_cuda_case(n, m, cuda_arrays).accuracy_class for n, m in _cuda_cases())
    assert classes == {"accurate": 88, "sequential": 2, "low_precision": 10}


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


# --- what the sqrt(n) model misses: drift terms --------------------------------------------------


@pytest.mark.parametrize("op", ["batch_norm", "group_norm"])
def test_torch_channels_last_kernels_on_large_groups_pass(op: str) -> None:
    # torch's channels-last CPU kernels accumulate each channel's squares sequentially in
    # float32: at 1M values per group rstd is off by 7e-5, several times a sqrt(n) allowance
    x = np.random.default_rng(3).normal(2.0, 1.0, size=(8, 512, 256, 4)).astype(np.float32)
    options = {"groups": 2} if op == "group_norm" else {}
    report = lncheck.compare(x, op, channel_axis=-1, **options)
    outputs = [c for c in report.checks if c.quantity == "output"]
    assert report.passed, [c.message() for c in report.failures]
    assert max(c.tolerance_used for c in outputs) > 0.02  # the check is not vacuous


@pytest.mark.parametrize("op", ["batch_norm", "instance_norm"])
def test_float64_batch_statistics_on_float16_valued_data(op: str) -> None:
    # torch's float64 CPU BatchNorm sums sequentially; on short mantissas its roundings lean one
    # way (0.1 * n * u in rstd), far beyond a sqrt(n) model
    x = np.random.default_rng(1).normal(size=(4, 3, 32, 32)).astype(np.float16)
    report = lncheck.compare(x, op, dtype="float64")
    assert report.passed, [c.message() for c in report.failures]


def test_random_walk_is_sqrt_n_times_the_accumulation_unit_roundoff() -> None:
    from lncheck.tolerances import random_walk

    # float16 and bfloat16 sums accumulate in float32 (u = 2**-24), float64 in float64
    assert random_walk("bfloat16", 4) == random_walk("float16", 4) == 2 * 2.0**-24
    assert random_walk("float32", 10_000) == 100 * 2.0**-24
    assert random_walk("float64", 100) == 10 * 2.0**-53


def test_a_one_pass_variance_raises_rstd_up_to_losing_the_variance_whole() -> None:
    # r = (A + G_LOW * sqrt(n)) * u * K**2 of var + eps lost: s <= 1 / sqrt(1 - r), and from
    # r = 1 on the whole variance, s = sqrt((var + eps) / eps) = 1 + whole
    per_k2 = (tolerances.A + tolerances.G_LOW * 2.0) * 2.0**-24  # n = 4, float32's u
    k = np.sqrt(np.array([0.75, 0.96, 1.0, 4.0, 0.75]) / per_k2)
    whole = np.array([1e3, 1e3, 315.2, 315.2, 0.0])  # the last computes no variance
    found = tolerances.low_precision_ceiling("float32", 4, k, whole)
    np.testing.assert_allclose(found, [1.0, 4.0, 315.2, 315.2, 0.0], rtol=1e-12)
