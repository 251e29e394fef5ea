"""The sequential class's drift (``lncheck.sequential``): a group's trend, the drift it
allows, the steps whose roundings lean alike; and outputs of sequential kernels (a variance lost
at the last place, heavy-tailed squares, repeated values) classed ``sequential`` through the
public entry, where a bug in a large group in random order is not."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import lncheck
from benchmarks import repeated_values
from benchmarks.verdict_matrix.algorithms import sequential_sum, two_pass
from lncheck.sequential import on_grid, sequential_drift, sequential_steps, trend_of
from lncheck.tolerances import allowance

from . import mutants
from .support import layer_norm, output_check


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


def test_the_trend_narrows_the_drift_and_widens_it_on_a_grid() -> None:
    c = allowance("float32", 2**18, "sequential")
    assert c.walk == pytest.approx((4.0 * 2**9 + 0.01 * 2**18) * 2.0**-24, rel=1e-12)
    assert c.trend == pytest.approx(0.5 * 2**18 * 2.0**-24, rel=1e-12)
    assert c.grid == pytest.approx(1.0 * 8192 * 2.0**-24, rel=1e-12)  # no further past 8,192
    assert c.lag == pytest.approx(4.0 * 2.0**-24, rel=1e-12)
    k, few = np.full((4, 1), 31.0), np.zeros((4, 1), dtype=bool)
    trend = np.array([[0.0], [1e-3], [0.4], [np.nan]])
    without = sequential_drift(c, "float32", k, few, None)[:, 0]
    order_blind = 0.01 * 2**18 * 2.0**-24 * 31
    assert without == pytest.approx(np.full(4, order_blind), rel=1e-12)
    # random order: the walks of the sum of squares and of the running mean alone; a little
    # trend adds its share; a sorted group's trend reaches the order-blind limit, which it
    # never exceeds (rsqrt off by 1e-3 passed on sorted rows where it did); NaN keeps it
    random_order = c.walk + c.lag * 31
    ordered = sequential_drift(c, "float32", k, few, trend)[:, 0]
    assert ordered[0] == pytest.approx(random_order, rel=1e-12)
    assert ordered[1] == pytest.approx(random_order + c.trend * 1e-3 * 31, rel=1e-12)
    assert ordered[2:] == pytest.approx(without[2:], rel=1e-12)
    # values on a regular grid (arange, linspace) round alike step after step: there the
    # trend adds its share beyond the order-blind limit and its 1 % cap
    grid = np.ones((4, 1), dtype=bool)
    on_a_grid = sequential_drift(c, "float32", k, few, trend, grid)[:, 0]
    assert on_a_grid[2] == pytest.approx(random_order + c.grid * 0.4 * 31, rel=1e-12)
    assert on_a_grid[2] > without[2] and on_a_grid[3] == pytest.approx(without[3], rel=1e-12)


def test_on_grid_finds_arange_and_linspace_rows_only() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    ramp = np.linspace(-1, 1, n).astype(np.float32).astype(np.float64) + 3  # float32-rounded
    noisy = ramp + 0.01 * rng.standard_normal(n)
    sorted_normal = np.sort(rng.standard_normal(n))
    rows = np.stack([np.arange(n, dtype=np.float64), ramp, sorted_normal, noisy, np.full(n, 2.0),
                     ramp[::-1]])  # fmt: skip
    np.testing.assert_array_equal(on_grid(rows), [True, True, False, False, False, True])
    assert not on_grid(np.ones((1, 2))).any()


def test_sequential_steps_lean_alike_only_after_an_outlier() -> None:
    """A sequential sum's roundings random-walk (sqrt(n) steps) unless one element dominates
    the running sum (n * peak steps); RMSNorm's nearly equal squares lean alike (n)."""
    steps = sequential_steps(10_000, np.array([1e-4, 0.5, 1.0]))
    np.testing.assert_array_equal(steps, [100.0, 5000.0, 10_000.0])
    assert sequential_steps(10_000, np.array([1e-4]), centered=False)[0] == 10_000


def test_sequential_steps_lean_alike_over_values_repeated_at_an_extreme() -> None:
    """Half the values equal (ReLU's zeros): their equal squared deviations lean alike, each
    step up to its whole bound (G_SEQ_ALIKE / G_SEQ = 2.5 steps of G_SEQ each), n / 2 * 2.5; a
    value repeated a few times keeps the random walk, as does RMSNorm's all n."""
    peak = np.array([1e-4, 1e-4, 0.5, 1e-4])
    steps = sequential_steps(10_000, peak, repeated=np.array([0.5, 0.005, 0.3, 0.003]))
    np.testing.assert_allclose(steps, [12_500.0, 125.0, 7_500.0, 100.0], rtol=1e-12)
    assert sequential_steps(10_000, 1e-4, centered=False, repeated=0.5) == 10_000


@pytest.mark.parametrize("op", ["layer_norm", "group_norm"])
def test_a_variance_lost_whole_at_the_last_place_is_sequential(op: str) -> None:
    # [c + 1, c, c, c] at c = 1.2e7: float32 holds no value between. A sequential Welford's
    # running mean c + 1/2 rounds to c (ties to even), the update of the sum of squares is then
    # 0, and rstd is 1 / sqrt(eps): torch's CPU kernels output 316.2 and 292.5 where the exact
    # output is 1.73. Two-pass, about the rounded mean, keeps the variance: accurate cannot
    c = 12_000_000.0
    x = np.array([[c + 1.0, c, c, c]], np.float32)
    options: dict[str, Any] = {"normalized_shape": 4} if op == "layer_norm" else {"groups": 1}
    if op == "group_norm":
        x = x[:, None, :]
    report = lncheck.compare(x, op, eps=1e-5, **options)
    output = next(check for check in report.checks if check.quantity == "output")
    assert output.worst_actual > 100 * math.sqrt(3)  # 316.2 (LayerNorm), 292.5 (GroupNorm)
    assert all(check.passed for check in report.checks), [c.message() for c in report.checks]
    assert {check.accuracy_class for check in report.checks if check.quantity == "output"} == {
        "sequential"
    }
    statistics = [c for c in report.checks if c.quantity == "rstd"]
    assert statistics and {c.accuracy_class for c in statistics} == {"sequential"}
    strict = lncheck.compare(x, op, eps=1e-5, strict=True, **options)
    assert not strict.passed
    # rstd 1e6 at eps = 1e-12; and a lost variance only raises rstd: -50 times the exact
    # output is no Welford's
    assert lncheck.compare(x, op, eps=1e-12, **options).passed
    exact = np.array([np.sqrt(3.0), -1 / np.sqrt(3.0), -1 / np.sqrt(3.0), -1 / np.sqrt(3.0)])
    flipped = (-50 * exact).reshape(x.shape).astype(np.float32)
    wrong = lncheck.compare(x, op, eps=1e-5, backend=None, expected=flipped, **options)
    assert (wrong.passed, wrong.checks[0].accuracy_class) == (False, "mismatch")


def test_a_sequential_sum_of_heavy_tailed_squares_is_sequential() -> None:
    # the textbook one-thread-per-row float32 two-pass (np.cumsum sums in order) on rows whose
    # magnitudes spread over four decades: squares below the running sum's last place are
    # lost whole, 1.5e-5 to 3e-5 of the variance (ten times a random walk's sqrt(n) u), which
    # was a mismatch at 1.9 times the sequential limits
    rng = np.random.default_rng(11)
    x = (np.exp(rng.uniform(-5, 5, (2, 10_000))) * rng.choice([-1, 1], (2, 10_000))).astype(
        np.float32
    )
    mean = np.cumsum(x, axis=1, dtype=np.float32)[:, -1:] / np.float32(10_000)
    d = x - mean
    var = np.cumsum(d * d, axis=1, dtype=np.float32)[:, -1:] / np.float32(10_000)
    y = d / np.sqrt(var + np.float32(1e-5))
    check = output_check(x, normalized_shape=10_000, expected=y)
    assert (check.passed, check.accuracy_class) == (True, "sequential")
    assert not output_check(x, normalized_shape=10_000, expected=y, strict=True).passed
    # an unbiased variance there is still another function
    unbiased = (d / np.sqrt(var * np.float32(10_000 / 9_999) + np.float32(1e-5))).astype(np.float32)
    assert output_check(x, normalized_shape=10_000, expected=unbiased).accuracy_class == "mismatch"


@pytest.mark.parametrize("data", ["relu", "mask", "mask5"])
def test_a_sequential_two_pass_over_repeated_values_is_sequential(data: str) -> None:
    # ReLU's zeros (or a mask's two levels) are one squared deviation added again and again: it
    # loses the same bits at every step while the running sum stays in a binade, so a
    # textbook one-thread-per-row two-pass in float32 leans like an outlier's sum (rstd up to
    # 9e-5 off at 16,384 values): it was a mismatch at 1.6-2.6 times its limit
    x = repeated_values.data(data, 4, 16384, np.random.default_rng(0))
    mean, var = two_pass(x, sequential_sum)
    y = (x - mean) / np.sqrt(var + np.float32(1e-5))
    c = output_check(x, normalized_shape=16384, expected=y)
    assert (c.passed, c.accuracy_class) == (True, "sequential")
    # both ends count: a balanced mask's two squared deviations are nearly equal and round
    # alike (counting the larger end alone, this one used 0.90 of its limit; 0.50 now)
    assert c.tolerance_used < 0.6
    # the price: n * repeated steps lean alike (about 8,200 for ReLU's zeros here, 11,400 for
    # the mask's 0.9); an rstd off by 1e-3 is still a mismatch here (at 262,144 values it is not:
    # the sums above err by up to 1.3e-3 there)
    wrong = layer_norm(x) * (1.0 + 1e-3)
    c = output_check(x, normalized_shape=16384, expected=wrong.astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")


def test_rsqrt_off_by_1e3_in_a_large_group_in_random_order_is_not_a_sequential_drift() -> None:
    # 2**17 values at mean/std 30 in random order: a sequential float32 Welford's running mean
    # drifts by lost updates only where the data trend (tolerances.G_TREND); here its sum of
    # squares' roundings walk, 1e-5 of the scale at most. rsqrt off by 1e-3 was "sequential"
    # under the order-blind drift limit (0.24 % here); it is a precision loss beyond it
    rng = np.random.default_rng(11)
    n = 2**17
    x = (30 + rng.standard_normal((2, n))).astype(np.float32)
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    sequential = mutants.welford(x, ones, zeros, 1e-5)
    c = output_check(x, normalized_shape=n, expected=sequential)
    assert c.passed, c.message()
    wrong = (layer_norm(x) * (1 + 1e-3)).astype(np.float32)
    c = output_check(x, normalized_shape=n, expected=wrong)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.implied_scale == pytest.approx(1.001, rel=1e-5)


@pytest.mark.parametrize(("data", "n"), [("pad_end", 4096), ("pad_end", 768), ("dropout", 16384)])
def test_a_sequential_two_pass_over_zeros_inside_the_range_is_sequential(data: str, n: int) -> None:
    # zeros padded at the end of N(0, 1) rows (or dropped out inside them) are one squared
    # deviation, the mean's square, added again and again: added last, while the running sum is
    # at its largest, each is lost whole or rounded up by a whole last place (rstd 2e-5 off over
    # 4,096 values; 3.7 times the limits at 768 values, a "mismatch", when only the extremes
    # counted as repeated)
    x = repeated_values.data(data, 4, n, np.random.default_rng(0))
    mean, var = two_pass(x, sequential_sum)
    y = (x - mean) / np.sqrt(var + np.float32(1e-5))
    c = output_check(x, normalized_shape=n, expected=y)
    assert c.passed and c.accuracy_class in ("accurate", "sequential"), c.message()
    # the price: the zeros' steps; a missing bias or an rstd off by 1e-3 still fail
    wrong = (layer_norm(x) * (1.0 + 1e-3)).astype(np.float32)
    assert not output_check(x, normalized_shape=n, expected=wrong).passed


@pytest.mark.parametrize("n", [768, 8192])
def test_a_sequential_welford_over_a_ramp_is_sequential(n: int) -> None:
    # torch.arange or linspace rows: the running mean's roundings lean one way all along, and
    # its variance drifts by up to 1.2 n v K T (the trend T = 0.41 here): rstd 5.6e-5 off over
    # 8,192 values, a "mismatch" at 8.2 times the order-blind limit it was held to
    x = repeated_values.data("ramp", 3, n, np.random.default_rng(1))
    y = mutants.welford(x, np.ones(n, np.float32), np.zeros(n, np.float32), 1e-5)
    c = output_check(x, normalized_shape=n, expected=y)
    assert (c.passed, c.accuracy_class) == (True, "sequential"), c.message()
    wrong = (layer_norm(x) * (1.0 + 1e-3)).astype(np.float32)
    c = output_check(x, normalized_shape=n, expected=wrong)
    assert not c.passed and c.accuracy_class != "sequential"


@pytest.mark.parametrize("data", ["sorted", "ramp"])
def test_rsqrt_off_by_1e3_on_ordered_rows_is_not_a_sequential_drift(data: str) -> None:
    # 65,536 values in order: a correct sequential Welford errs by 5e-5 in rstd there; rsqrt
    # off by 1e-3 (87 times that) passed as sequential while the trend widened every drift
    x = repeated_values.data(data, 2, 65536, np.random.default_rng(0))
    y = mutants.welford(x, np.ones(65536, np.float32), np.zeros(65536, np.float32), 1e-5)
    assert output_check(x, normalized_shape=65536, expected=y).passed
    wrong = (layer_norm(x) * (1.0 + 1e-3)).astype(np.float32)
    c = output_check(x, normalized_shape=65536, expected=wrong)
    assert not c.passed and c.accuracy_class != "sequential"
