"""Per-group moments (``lncheck.moments``): mean and biased variance by hand, the smallest
and largest value, and the same figures block by block as in one piece."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lncheck.blocks import GroupLayout
from lncheck.moments import _stagnant, group_moments, group_statistics, moments


def test_group_statistics_by_hand() -> None:
    mean, var = group_statistics(np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 14.0]]))
    np.testing.assert_array_equal(mean, [2.5, 11.0])
    np.testing.assert_array_equal(var, [1.25, 3.0])
    ms_mean, ms = group_statistics(np.array([[1.0, -1.0, 3.0]]), center=False)
    np.testing.assert_array_equal(ms_mean, [0.0])
    np.testing.assert_allclose(ms, [11.0 / 3.0], rtol=1e-16)


def test_low_high_and_the_scale_come_from_the_extremes() -> None:
    x = np.array([[1.0, -7.0, 3.0, 2.0], [0.5, 0.25, 0.5, 0.5], [np.nan, 1.0, 2.0, 3.0]])
    m = group_moments(x)
    assert m.low[:2].tolist() == [-7.0, 0.25] and m.high[:2].tolist() == [3.0, 0.5]
    # each row scaled by the power of two that puts its largest |x| in [0.5, 1)
    assert m.exponent[:2].tolist() == [3.0, 0.0]  # scaled by 2**-3 and 2**0
    assert np.isnan(m.low[2]) and np.isnan(m.mean[2])  # a NaN is kept, not dropped


def test_the_repeated_share_counts_the_values_rows_repeat() -> None:
    nan = np.nan
    rows = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 3.0],  # ReLU-like: zeros at the low end, the top
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # two levels: both
            [0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.1],  # a repeat inside the range is not seen
            [-1.0, 0.0, 0.5, 0.0, 0.0, 0.25, 0.0, 2.0],  # ...but zeros are (dropout, padding)
            [0.1, 0.9, -1.0, 2.0, 0.7, 0.7, 0.7, 0.7],  # padded at the end with any constant
            [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # constant: every value is all of them, once
            [nan, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # NaN extremes and first count nothing
            [0.5, 0.1, 0.3, 0.2, 0.4, 0.0, 0.7, 0.6],  # values met once repeat nothing
        ]
    )
    want = [7 / 8, 1.0, 2 / 8, 4 / 8, 4 / 8, 1.0, 2 / 8, 0.0]
    np.testing.assert_array_equal(group_moments(rows).repeated, want)
    # without centring every step of the sum of squares counts: nothing to count
    np.testing.assert_array_equal(group_moments(rows, center=False).repeated, np.zeros(8))


def test_moments_block_by_block_equal_one_piece() -> None:
    x = np.random.default_rng(0).standard_normal((300, 64)) * 3 + 10
    layout = GroupLayout((300, 64), (300, 64), (1,), block_elements=64 * 7)
    whole, parts = group_moments(x), moments(layout, x, center=True)
    for field in ("m0", "correction", "var", "peak", "low", "high"):
        np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field))


def test_a_channels_last_group_is_summed_as_its_channels_first_copy() -> None:
    # NumPy sums a row pairwise only where it is contiguous: the strided rows of a
    # channels-last view were summed one element after another, 5.9e-12 off a correctly
    # rounded float64 BatchNorm output on heavy-tailed data (values over 40 decades)
    rng = np.random.default_rng(7)
    nlc = np.exp(rng.uniform(-30, 62, (1, 100_003, 2))) * rng.choice([-1.0, 1.0], (1, 100_003, 2))
    ncl = np.ascontiguousarray(np.moveaxis(nlc, -1, 1))
    last = moments(GroupLayout(nlc.shape, nlc.shape, (0, 1)), nlc, center=True)
    first = moments(GroupLayout(ncl.shape, ncl.shape, (0, 2)), ncl, center=True)
    for field in ("m0", "correction", "var", "peak"):
        np.testing.assert_array_equal(getattr(last, field), getattr(first, field))
    for c in range(2):  # the mean within a float64 rounding of the std (it cancels to 1e-3 std)
        exact = sum(Fraction(float(v)) for v in ncl[0, c]) / ncl.shape[2]
        assert abs(Fraction(float(first.mean[c])) - exact) < 2**-52 * math.sqrt(first.var[c])


def test_the_share_a_sequential_sum_loses_one_way_is_that_of_squares_below_its_last_place() -> None:
    # half a last place of the whole, h = 2**-25 * S = 2.98 for S = 1e8 + 7.004: the four
    # squares of 1e-3 are lost whole, 7 is beyond 2 h; in the second row a square of 4, between
    # h and 2 h, rounds the sum up by 2 h - 4 = 1.96, more than the 1e-3 lost: no net loss
    small = [0.0316227766, -0.0316227766, 0.0316227766, -0.0316227766]
    rows = np.array([[1e4, *small, 7**0.5], [1e4, small[0], 2.0, 0.0, 0.0, 0.0]])
    m = group_moments(rows, center=False, unit=2.0**-24)
    assert m.stagnant[0] == pytest.approx(4e-3 / (1e8 + 4e-3 + 7), rel=1e-6)
    assert m.stagnant[1] == 0.0
    assert group_moments(rows, center=False).stagnant.tolist() == [0.0, 0.0]  # no unit given


@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 300)),
    decades=st.floats(0.0, 12.0),
    unit=st.sampled_from([2.0**-8, 2.0**-11, 2.0**-24]),
)
def test_the_stagnant_share_is_its_definition_summed_exactly(
    seed: int, shape: tuple[int, int], decades: float, unit: float
) -> None:
    # squares spread over `decades` decades, so that some fall below h, some between h and
    # 2 h; the share is summed over the small squares only, and must be the definition's
    rng = np.random.default_rng(seed)
    squares = 10.0 ** rng.uniform(-decades, 0.0, shape) * (rng.random(shape) > 0.1)
    total = squares.sum(axis=1)
    found = _stagnant(squares, total, unit)
    for row, share in zip(squares, found, strict=True):
        h = Fraction(0.5 * unit * float(row.sum()))
        lost = sum((Fraction(q) for q in row if q < h), Fraction(0))
        gained = sum((2 * h - Fraction(q) for q in row if h <= q < 2 * h), Fraction(0))
        whole = Fraction(float(row.sum()))
        exact = max(lost - gained, Fraction(0)) / whole if whole > 0 else Fraction(0)
        # float64 sums of at most 300 terms: within 300 of their roundings of lost + gained
        allowed = 300 * 2**-52 * float((lost + gained) / whole) if whole > 0 else 0.0
        assert abs(Fraction(float(share)) - exact) <= Fraction(allowed)
