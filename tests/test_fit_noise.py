"""What rounding may move a group's fitted scale and shift (``lncheck.fit_noise``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lncheck
from lncheck import affine_fit, fit_noise
from lncheck.judge import judge

from .test_output_model import JUDGED, model_of, whole


@pytest.mark.parametrize(("n", "worst_case"), [(4, True), (4096, False)])
def test_fit_noise_is_the_smaller_of_ten_sigma_and_every_error_leaning_alike(
    n: int, worst_case: bool
) -> None:
    # RMSNorm (no shift, a = w n): the scale's noise is min(10 sqrt(sum a^2 R^2), sum |a| R)
    # / sum a^2 for per-element bounds R taken as standard deviations; with few elements all
    # leaning alike is the smaller
    x = np.random.default_rng(12).standard_normal((1, n)).astype(np.float32)
    block = whole(model_of(x, "rms_norm", normalized_shape=n, eps=1e-5))
    y = block.y.astype(np.float32).astype(np.float64)
    f = affine_fit.fit(block, y)
    _, scores, _ = judge(block, f, y, "float32", JUDGED, 1)
    a = block.weighted[0]
    r = block.residual_bound("float32", "accurate")[0] + 1e-15 * np.abs(y[0])
    sigma10 = 10 * math.sqrt(float(np.sum(a * a * r * r))) / float(np.sum(a * a))
    leaning = float(np.sum(np.abs(a) * r)) / float(np.sum(a * a))
    assert (leaning < sigma10) == worst_case
    limit, _ = block.limits("float32", "accurate")
    assert scores.scale_accurate[0] == pytest.approx(limit[0, 0] + min(sigma10, leaning))


def test_repeats_count_equal_inputs_with_equal_parameters() -> None:
    # a GroupNorm group of 2 channels x 512 values that take 4 float16 values
    x = np.tile(np.array([1.0, 1.0009765625, 1.001953125, 1.0029296875]), (1, 2, 128, 2))
    x = x.reshape(1, 4, 512).astype(np.float16)
    plain = whole(model_of(x, "group_norm", groups=2, dtype="float16"))
    assert plain.model.levels.tolist() == [4.0, 4.0]
    assert fit_noise.repeats(plain).tolist() == [256.0, 256.0]  # 1024 values at 4 levels
    # a weight per channel: twice the levels, half the repeats
    w = np.array([1.0, 2.0, 3.0, 4.0], np.float16)
    weighted = whole(model_of(x, "group_norm", groups=2, weight=w, dtype="float16"))
    assert fit_noise.repeats(weighted).tolist() == [128.0, 128.0]
    # LayerNorm's weight per element sets every element apart
    ln = whole(model_of(x, normalized_shape=(4, 512), weight=np.arange(2048.0).reshape(4, 512)))
    assert fit_noise.repeats(ln).tolist() == [1.0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_batch_far_from_the_running_mean_carries_the_scales_noise_into_the_shift(
    dtype: str,
) -> None:
    # eval-mode BatchNorm of 256 values 10 +- 0.01 with running mean 0 and variance 1: the
    # normalized values sit at 10 +- 0.01, the shift is the mean error less ds * 10, and the
    # scale's noise (roundings of 10 u against a spread of 0.01) reaches the shift ten times
    # over. Without that share the correctly rounded output was a mismatch, "mean off by
    # -0.000284 std", 126 times the limits (float32), and torch's own kernel with it
    x = (np.random.default_rng(1).standard_normal((256, 1)) * 0.01 + 10).astype(dtype)
    stats = {"running_mean": np.zeros(1, dtype), "running_var": np.ones(1, dtype)}
    exact = (x.astype(np.longdouble) / np.sqrt(np.longdouble(1) + np.longdouble(1e-5))).astype(
        dtype
    )
    report = lncheck.compare(x, "batch_norm", training=False, expected=exact, **stats)
    assert report.passed, [c.message() for c in report.checks if not c.passed]
    assert {c.accuracy_class for c in report.checks} == {"accurate"}
    # a shift of 0.01, a bias of 0.01 left out, is still told apart there
    wrong = lncheck.compare(x, "batch_norm", training=False, expected=exact + 0.01, **stats)
    assert [c.accuracy_class for c in wrong.checks if c.candidate == "expected"] == ["mismatch"]


def test_a_flat_groups_shift_noise_is_finite() -> None:
    # a group whose normalized values are all equal fits no scale (its ds is 0): its scale's
    # noise, 0/0, must not reach the shift's. In eval mode a constant channel sits at 5 std
    # from a running mean of 0 (a = 5, not 0): a NaN there failed every bfloat16 output of a
    # constant row
    x = np.full((16, 1), 5.0, np.float32)
    stats = {"running_mean": np.zeros(1, np.float32), "running_var": np.ones(1, np.float32)}
    block = whole(model_of(x, "batch_norm", training=False, **stats))
    noise = fit_noise.fit_noise(block, block.residual_bound("float32", "accurate"), "float32")
    for pair in (noise.independent, noise.alike):
        assert np.isfinite(pair[1]).all() and (pair[1] > 0).all()
