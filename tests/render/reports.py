"""Reports built by hand, not by running torch, so that the goldens do not depend on the CPU's
vector units. Regenerate the goldens with ``UPDATE_GOLDEN=1 python -m pytest tests/render``."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from lncheck.comparison import Comparison
from lncheck.report import (
    CaseResult,
    GroupFailures,
    Header,
    Report,
    StatRow,
    StatsTable,
    SuiteReport,
)

GOLDEN = Path(__file__).parent / "golden"
# How the torch backend names its candidates in tables (``backends.torch.short_name``).
TORCH_NAMES = {
    "torch.nn.LayerNorm": "nn.LayerNorm",
    "torch.nn.functional.layer_norm": "F.layer_norm",
    "torch.native_layer_norm": "native_layer_norm",
}


def check(candidate: str, quantity: str, passed: bool = True, **kw: object) -> Comparison:
    values: dict[str, object] = dict(
        candidate=candidate,
        quantity=quantity,
        passed=passed,
        total=8,
        mismatched=0,
        max_abs_err=1.2e-7,
        max_rel_err=3.4e-7,
        mean_abs_err=5.6e-8,
        worst_index=(1, 3),
        worst_actual=1.2345678,
        worst_expected=1.2345677,
        rtol=1.3e-6,
        atol=1e-5,
        required_atol=0.0,
        required_rtol=0.0,
    )
    values.update(kw)
    return Comparison(**values)  # type: ignore[arg-type]


def make_report() -> Report:
    header = Header(
        case="examples/x.npy",
        op="layer_norm",
        layer="LayerNorm(normalized_shape=(4,), eps=1e-05, elementwise_affine=True, bias=True)",
        input_shape=(2, 4),
        input_dtype="float32",
        dtype="float32",
        groups=2,
        group_size=4,
        params={
            "normalized_shape": (4,),
            "axes": (1,),
            "eps": 1e-5,
            "elementwise_affine": True,
            "bias": True,
        },
        tolerance="fixed: rtol=1.3e-06, atol=1e-05",
        notes=("an example note",),
    )
    checks = (
        check("torch.nn.LayerNorm", "output", accuracy_class="accurate"),
        check("torch.nn.functional.layer_norm", "output", accuracy_class="sequential"),
        check("torch.native_layer_norm", "mean", total=2, worst_index=(1,)),
        check(
            "expected",
            "output",
            passed=False,
            accuracy_class="mismatch",
            implied_scale=0.8660254,
            implied_shift=0.0,
            explanation="matches an unbiased variance (÷(n - 1), n = 4)",
            atol_max=2e-5,
            mismatched=3,
            max_abs_err=0.25,
            max_rel_err=math.inf,
            mean_abs_err=0.05,
            worst_index=(0, 2),
            worst_actual=0.75,
            worst_expected=0.5,
            required_atol=0.25,
            required_rtol=math.inf,
            nan_actual=1,
        ),
    )
    stats = StatsTable(
        "torch.native_layer_norm",
        (StatRow((0,), 2.5, 1.25, 2.5000001, 1.2499999, 2.236),),
        omitted=1,
        label="torch",
    )
    small = {
        "input": np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]]),
        "reference": np.array([[-1.3416, -0.4472, 0.4472, 1.3416], [-1.0, -1.0, 1.0, 1.0]]),
        "torch.nn.LayerNorm": np.array(
            [[-1.3416, -0.4472, 0.4472, 1.3416], [-1.0, -1.0, 1.0, 1.0]]
        ),
    }
    return Report(header, checks, stats, small, names=TORCH_NAMES)


def make_suite_report() -> SuiteReport:
    """A run of five cases, one of each status but error, with a drifted baseline and a note."""
    passing = make_report()
    drifted = Report(
        passing.header,
        (
            check("torch.nn.LayerNorm", "output"),
            check(
                "torch.nn.LayerNorm",
                "output",
                passed=False,
                kind="baseline",
                mismatched=1,
                max_abs_err=2.0**-20,
                rtol=0.0,
                atol=0.0,
            ),
        ),
        names=TORCH_NAMES,
    )
    ok = Report(passing.header, passing.checks[:3], names=TORCH_NAMES)
    worst = passing.worst_failure()
    assert worst is not None
    results = (
        CaseResult("layer_norm-ok", "pass", ok, seconds=0.125),
        CaseResult("layer_norm-drift", "pass", drifted, seconds=0.5),
        CaseResult("layer_norm-bad", "fail", passing, worst.message(), seconds=1.25),
        CaseResult("layer_norm-known", "xfail", passing, "a known bug", seconds=0.25),
        CaseResult("layer_norm-cuda", "skip", message="needs a CUDA device"),
        CaseResult("rms_norm-float16", "error", message="cannot run this case in float16"),
    )
    environment = {"lncheck": "0.1.0", "backend": "torch", "torch": "2.13.0", "device": "cpu"}
    return SuiteReport("suite.toml", results, environment, ("an example note",))


LONG_NAME = "my_fused_triton_layer_norm_forward_kernel_v2@cuda:0"


def make_long_report() -> Report:
    """A failing report whose values are as wide as they get: long numbers, a long candidate
    name, a long input path, failing groups, a check that could not be made."""
    passing = make_report()
    header = replace(
        passing.header,
        case="experiments/2024-06-kernels/layer_norm/inputs/large_activations_seq4096.npy",
        input_shape=(1024, 4096),
        groups=1024,
        group_size=4096,
    )
    checks = (
        check("torch.nn.LayerNorm", "output", total=4194304, max_abs_err=1.2345e-300,
              max_rel_err=-9.87e+307, max_ulp_err=1.5e+300, mean_abs_err=1.1e-305,
              worst_index=(1023, 4095), worst_actual=-1.23456789e+300,
              worst_expected=-1.23456788e+300),
        check(LONG_NAME, "output", passed=False, total=4194304, mismatched=4194303,
              max_abs_err=math.inf, max_rel_err=math.nan, max_ulp_err=math.inf,
              mean_abs_err=3.25e+38, worst_index=(1023, 4095), worst_actual=-math.inf,
              worst_expected=-1.2345678912e-300, required_atol=math.inf, nan_actual=17,
              inf_actual=4194286),
        check(LONG_NAME, "grad_input", passed=False, total=4194304, mismatched=4194304,
              note="has shape (1024, 4095), the reference has shape (1024, 4096)"),
    )  # fmt: skip
    failing = {
        (LONG_NAME, "output"): GroupFailures(
            1024, 1024, 4096, (((1023,), 4096), ((1022,), 4096), ((0,), 4095))
        )
    }
    return Report(header, checks, None, {}, names={**TORCH_NAMES}, failing_groups=failing)


def make_long_suite_report() -> SuiteReport:
    """A suite run with case names too long for a table row of 80 columns."""
    long = make_long_report()
    results = (
        CaseResult("transformer-block-07-pre-attention-layer-norm-bfloat16-seq4096", "fail",
                   long, long.worst_failure().message(), seconds=12.5),  # type: ignore[union-attr]
        CaseResult("rms_norm-float16", "error", message="cannot run this case in float16"),
    )  # fmt: skip
    return SuiteReport("suites/nightly/all_normalization_layers.toml", results)


def assert_golden(name: str, actual: str) -> None:
    """``actual`` equals the golden file ``name``; ``UPDATE_GOLDEN=1`` rewrites it instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text()
