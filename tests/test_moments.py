"""Per-group moments (``lncheck.moments``): mean and biased variance by hand, the smallest
and largest value, and the same figures block by block as in one piece."""

from __future__ import annotations

import numpy as np

from lncheck.blocks import GroupLayout
from lncheck.moments import group_moments, group_statistics, moments


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


def test_moments_block_by_block_equal_one_piece() -> None:
    x = np.random.default_rng(0).standard_normal((300, 64)) * 3 + 10
    layout = GroupLayout((300, 64), (300, 64), (1,), block_elements=64 * 7)
    whole, parts = group_moments(x), moments(layout, x, center=True)
    for field in ("m0", "correction", "var", "peak", "low", "high"):
        np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field))
