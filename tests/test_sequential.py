"""The sequential class's drift (``lncheck.sequential``): a group's trend, and the drift it
allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lncheck
from lncheck.comparison import Comparison
from lncheck.sequential import sequential_drift, sequential_steps, trend_of
from lncheck.tolerances import allowance


def test_trend_of_a_ramp_by_hand() -> None:
    # a ramp of 400 unit-variance values: its running sum strays most halfway, by
    # sum(i - 199.5 for i < 200) = -20,000 times 1 / sqrt((n**2 - 1) / 12), over n = 400; random
    # order strays like a Brownian bridge, below TREND_NOISE / sqrt(n) = 0.1 (but for 7e-4)
    n = 400
    ramp = (np.arange(n) - 199.5) / math.sqrt((n * n - 1) / 12)
    shuffled = np.random.default_rng(0).permutation(ramp)
    got = trend_of(np.stack([ramp, ramp[::-1], shuffled, np.full(n, np.nan)]))
    want = 20_000 / math.sqrt(13_333.25) / n - 0.1
    assert got[:2] == pytest.approx([want, want], rel=1e-12)
    assert got[2] == 0.0 and np.isnan(got[3])


def test_the_sequential_drift_is_never_wider_than_without_the_trend() -> None:
    c = allowance("float32", 2**18, "sequential")
    assert c.walk == pytest.approx((4.0 * 2**9 + 0.01 * 2**18) * 2.0**-24, rel=1e-12)
    assert c.trend == pytest.approx(0.5 * 2**18 * 2.0**-24, rel=1e-12)
    k, few = np.full((4, 1), 31.0), np.zeros((4, 1), dtype=bool)
    trend = np.array([[0.0], [1e-3], [0.4], [np.nan]])
    with_trend = sequential_drift(c, "float32", k, few, trend)[:, 0]
    without = sequential_drift(c, "float32", k, few, None)[:, 0]
    assert without == pytest.approx(np.full(4, 0.01 * 2**18 * 2.0**-24 * 31), rel=1e-12)
    # random order: the walks of the sum of squares and of the running mean alone; a little
    # trend adds its share; a sorted group's trend reaches G_DRIFT's limit, which it never
    # exceeds; NaN keeps that limit
    assert c.lag == pytest.approx(4.0 * 2.0**-24, rel=1e-12)
    assert with_trend[0] == pytest.approx(c.walk + c.lag * 31, rel=1e-12)
    assert with_trend[1] == pytest.approx(c.walk + (c.lag + c.trend * 1e-3) * 31, rel=1e-12)
    assert with_trend[2:] == pytest.approx(without[2:], rel=1e-12)


def test_sequential_steps_lean_alike_only_after_an_outlier() -> None:
    """A sequential sum's roundings random-walk (sqrt(n) steps) unless one element dominates
    the running sum (n * peak steps); RMSNorm's nearly equal squares lean alike (n)."""
    steps = sequential_steps(10_000, np.array([1e-4, 0.5, 1.0]))
    np.testing.assert_array_equal(steps, [100.0, 5000.0, 10_000.0])
    assert sequential_steps(10_000, np.array([1e-4]), centered=False)[0] == 10_000


def _output_check(x: np.ndarray, y: np.ndarray, op: str, **options: object) -> Comparison:
    report = lncheck.compare(x, op, backend=None, expected=y, **options)  # type: ignore[arg-type]
    (check,) = [c for c in report.checks if c.quantity == "output"]
    return check


def test_squared_deviations_within_a_few_last_places_of_their_sum_lean_alike() -> None:
    # the largest square 1e-4 above their mean: alike at n = 65,536 in float32 (16 n v =
    # 0.0625 of it), all n steps; N(0, 1) data's largest square is about 2 ln(n) times their
    # mean, sqrt(n) steps; no unit, no such test
    n, v = 65_536, 2.0**-24
    peaks = np.array([1.0001, 22.0, 1.0 + 16 * n * v]) / n
    np.testing.assert_array_equal(sequential_steps(n, peaks, unit=v), [n, 256.0, n])
    np.testing.assert_array_equal(sequential_steps(n, peaks), [256.0, 256.0, 256.0])


def test_a_sequential_two_pass_on_two_level_data_is_sequential() -> None:
    # a mask or binarized feature (0.2 or 0.9, +-1e-5) over 65,536 values, the textbook
    # one-thread-per-row two-pass in float32: its squared deviations all lie within 1e-4 of
    # one another, their running sum rounds alike step after step, and rstd came out 3.1e-4
    # off, a mismatch at 3 times the random walk's limit; rsqrt off by 1e-3 is still one
    rng = np.random.default_rng(0)
    n = 65_536
    x = np.where(rng.random((4, n)) < 0.5, 0.9, 0.2) + 1e-5 * rng.standard_normal((4, n))
    x = x.astype(np.float32)
    mean = np.cumsum(x, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    d = x - mean
    var = np.cumsum(d * d, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    y = d / np.sqrt(var + np.float32(1e-5))
    check = _output_check(x, y, "layer_norm", normalized_shape=n)
    assert (check.passed, check.accuracy_class) == (True, "sequential")
    assert abs(check.implied_scale - 1) > 2e-4
    wrong = _output_check(x, y * np.float32(1.001), "layer_norm", normalized_shape=n)
    assert (wrong.passed, wrong.accuracy_class) == (False, "mismatch")
