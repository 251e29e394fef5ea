"""Each test here fired on a defect found in review, and guards its fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lncheck
from lncheck.blocks import GroupLayout
from lncheck.cli import app
from lncheck.comparison import compare
from lncheck.errors import InputError
from lncheck.io import case_from_arrays
from lncheck.layers import Layer
from lncheck.runner import BaselineCheck, check_case

runner = CliRunner()


def test_a_nan_tolerance_never_lets_an_error_pass() -> None:
    layout = GroupLayout((1, 3), (1, 3), (1,))
    c = compare(
        "c",
        "output",
        np.array([[1.0, 2.0, 3.0]]),
        np.array([[5.0, 2.0, 3.0]]),
        layout,
        rtol=0.0,
        atol=np.array([np.nan]),
    )
    assert not c.passed and c.worst_index == (0, 0) and c.worst_actual == 5.0


def test_zero_reference_gives_unbounded_relative_figures() -> None:
    layout = GroupLayout((1, 3), (1, 3), (1,))
    c = compare(
        "c",
        "output",
        np.array([[0.0, 2.0, 3.0]]),
        np.array([[1e-9, 2.0, 3.0]]),
        layout,
        rtol=1e-3,
        atol=0.0,
    )
    assert c.max_rel_err == float("inf") and c.required_rtol == float("inf")


def test_a_lone_last_sample_joins_the_previous_chunk() -> None:
    x = np.random.default_rng(0).standard_normal((21, 2)).astype(np.float32)
    report = check_case(case_from_arrays(x, Layer("group_norm", groups=2)), chunk_elements=8)
    assert report.passed and any("chunks" in n for n in report.header.notes)


def test_local_response_norm_with_a_window_wider_than_the_channels() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    report = lncheck.compare(x, "local_response_norm", size=10**5, dtype="float64")
    assert report.passed and len(report.checks) == 2  # module and functional
    # torch itself cannot pad a billion channels; the reference needs no padding at all
    # every window spans all 3 channels: the average of all squares over the window size
    window = (x * x).sum(axis=1, keepdims=True)
    want = x / (1.0 + 1e-4 * window / 10**9) ** 0.75
    from lncheck import reference
    from lncheck.result import as_array

    case = case_from_arrays(x, Layer("local_response_norm", size=10**9), dtype="float64")
    got = as_array(reference.run(case).quantities["output"])
    np.testing.assert_allclose(got, want, rtol=1e-15)


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


def test_relu_gradients_where_the_output_is_near_zero_in_bfloat16() -> None:
    # torch's bfloat16 output lands on the other side of 0 for a few elements, and ReLU's
    # derivative there is 0 instead of 1: no rounding model covers that, the jump term does
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(2, 6, 4, 4)) * rng.choice([1, 10])).astype(np.float32)
    for act in ("relu", "leaky_relu=0.2", "prelu"):
        report = lncheck.compare(
            x, "instance_norm", dtype="bfloat16", activation=act, grad=True, seed=5
        )
        assert report.passed, [c.message() for c in report.failures]


def test_relu_jump_allowance_does_not_hide_a_wrong_gradient() -> None:
    from lncheck import gradients
    from lncheck.tolerances import ToleranceSpec, applied

    # symmetric rows: the middle element is exactly the mean, so its output is 0
    x = np.array([[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]])
    case = case_from_arrays(x, Layer(normalized_shape=(7,), activation="relu"), dtype="float16")
    quantities, bounds = gradients.backward(case)
    jumped = np.asarray(bounds["grad_input"].terms["exact"]) > 0
    assert jumped[:, 3].all()  # the kink is allowed for
    rtol, atol = applied(ToleranceSpec(), "float16", 7, bounds["grad_input"])
    right = np.asarray(quantities["grad_input"])
    assert np.any(np.abs(right * 1.1 - right) > atol + rtol * np.abs(right))  # a bug still fails


def test_variance_read_back_from_a_subnormal_float16_rstd() -> None:
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    report = lncheck.compare(x, normalized_shape=8, dtype="float16", eps=1e10)
    assert report.passed, [c.message() for c in report.failures]


@pytest.mark.parametrize("op", ["batch_norm", "instance_norm"])
def test_float64_batch_statistics_on_float16_valued_data(op: str) -> None:
    # torch's float64 CPU BatchNorm sums sequentially; on short mantissas its roundings lean one
    # way (0.1 * n * u in rstd), far beyond a sqrt(n) model
    x = np.random.default_rng(1).normal(size=(4, 3, 32, 32)).astype(np.float16)
    report = lncheck.compare(x, op, dtype="float64")
    assert report.passed, [c.message() for c in report.failures]


def test_a_nan_candidate_reports_an_unbounded_difference_not_zero() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4))
    with pytest.raises(AssertionError, match="greatest absolute difference inf"):
        lncheck.check(np.full_like(x, np.nan), x, normalized_shape=4, equal_nan=True)

