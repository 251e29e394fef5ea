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


def test_a_mean_off_by_a_thousandth_of_a_std_over_a_large_group_is_a_mismatch() -> None:
    # float32 rows of 65,536 values at mean/std 3: a sequential mean in random order errs like
    # a random walk (sqrt(n) v K = 9e-5 std), so 1e-3 std is another function; the linear bound
    # (n - 1) v K / 2 = 7.8e-3 std let it pass as sequential
    n = 65_536
    x = (3 + np.random.default_rng(3).standard_normal((2, n))).astype(np.float32)
    exact = x.astype(np.float64)
    mean, std = exact.mean(1, keepdims=True), exact.std(1, keepdims=True)
    off = ((exact - (mean + 1e-3 * std)) / np.sqrt(std**2 + 1e-5)).astype(np.float32)
    check = _output_check(x, off, "layer_norm", normalized_shape=n)
    assert (check.passed, check.accuracy_class) == (False, "mismatch")
    assert check.implied_shift == pytest.approx(-1e-3, rel=1e-3)
    assert check.explanation is not None and check.explanation.startswith("mean off by 0.001")
    # the textbook one-thread-per-row two-pass on the same rows (np.cumsum sums in order)
    run = np.cumsum(x, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    d = x - run
    var = np.cumsum(d * d, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    assert _output_check(x, d / np.sqrt(var + np.float32(1e-5)), "layer_norm", normalized_shape=n)


def test_a_sequential_welford_reading_a_group_channels_last_is_sequential() -> None:
    # one GroupNorm group of 64 channels x 64 x 64 whose rows rise in h: a Welford loop in
    # channels-last memory order (h, w, c) meets the values in rising order and its running
    # mean lags, 4.4e-3 std; in the channels' own order the group barely trends (T = 0.005),
    # in memory order it does (T = 0.38), and the larger of the two is the group's trend
    from benchmarks.verdict_matrix.algorithms import sequential_welford

    rng = np.random.default_rng(0)
    rising = np.sort(rng.standard_normal((1, 64 * 64)), axis=1).reshape(1, 64, 64)
    x = (20 + rising * rng.uniform(0.5, 1.5, (64, 1, 1))).astype(np.float32)
    mean, var = sequential_welford(np.ascontiguousarray(x.transpose(1, 2, 0)).reshape(1, -1))
    y = (x - mean[0, 0]) / np.sqrt(var[0, 0] + np.float32(1e-5))
    check = _output_check(x[None], y[None], "group_norm", groups=1)
    assert (check.passed, check.accuracy_class) == (True, "sequential")
    exact = x.astype(np.float64)
    assert abs(mean[0, 0] - exact.mean()) / exact.std() == pytest.approx(4.42e-3, rel=0.01)


def test_an_rms_norm_rstd_off_by_2e_4_over_a_large_group_is_a_mismatch() -> None:
    # float32 RMSNorm of 65,536 values about 0: a sequential sum of squares that spread over
    # more than its last place rounds like a random walk (4 sqrt(n) v = 6.1e-5 of rstd, with
    # the squares lost below it), so rstd 2e-4 off is another function; G_SEQ n v = 7.8e-4
    # let it pass as sequential
    n = 65_536
    x = np.random.default_rng(3).standard_normal((2, n)).astype(np.float32)
    exact = x.astype(np.float64)
    rms = np.sqrt((exact * exact).mean(1, keepdims=True) + 1e-5)
    off = (exact / rms * (1 + 2e-4)).astype(np.float32)
    check = _output_check(x, off, "rms_norm", normalized_shape=n)
    assert (check.passed, check.accuracy_class) == (False, "mismatch")
    assert check.implied_scale == pytest.approx(1 + 2e-4, rel=1e-5)
    # one running sum of squares, in random and in sorted order, is sequential
    for rows in (x, np.sort(x, axis=1)):
        total = np.cumsum(rows * rows, axis=1, dtype=np.float32)[:, -1:]
        y = rows / np.sqrt(total / np.float32(n) + np.float32(1e-5))
        check = _output_check(rows, y, "rms_norm", normalized_shape=n)
        assert (check.passed, check.accuracy_class) == (True, "sequential")


def test_a_sequential_welford_past_an_outlier_is_sequential() -> None:
    # rows of 2,000 float32 values 100 +- 1e-3, one of them 3 higher: the outlier holds the
    # std (mean/std 1,490, n v K = 0.18), but the rest lie 1e-3 apart, and a running mean
    # loses their updates from the 170th on: its mean is 0.019 std off, beyond a random walk
    # of its updates. The bulk's spread (the median |n_i|, 0.03 std here) tells it
    from benchmarks.verdict_matrix.algorithms import sequential_welford

    rng = np.random.default_rng(2)
    x = (100 + 1e-3 * rng.standard_normal((4, 2000))).astype(np.float32)
    x[:, 666] += np.float32(3.0)
    mean, var = sequential_welford(x)
    y = (x - mean) / np.sqrt(var + np.float32(1e-5))
    check = _output_check(x, y, "layer_norm", normalized_shape=2000)
    assert (check.passed, check.accuracy_class) == (True, "sequential")
    assert check.implied_shift == pytest.approx(-0.019, rel=0.05)
