"""The sequential class's drift (``lncheck.sequential``): a group's trend, and the drift it
allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

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


def test_sequential_steps_lean_alike_over_values_repeated_at_an_extreme() -> None:
    """Half the values equal (ReLU's zeros): their equal squared deviations lean alike, n / 2
    steps; a value repeated a few times keeps the random walk, as does RMSNorm's all n."""
    peak = np.array([1e-4, 1e-4, 0.5])
    steps = sequential_steps(10_000, peak, repeated=np.array([0.5, 0.005, 0.3]))
    np.testing.assert_array_equal(steps, [5000.0, 100.0, 5000.0])
    assert sequential_steps(10_000, 1e-4, centered=False, repeated=0.5) == 10_000
