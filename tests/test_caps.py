"""The structural limit's row check (``lncheck.caps``): the pre-screen by each row's largest
value never changes which rows have an element beyond ``|w| * reach + rounding``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lncheck.caps import _over


def _by_element(
    centred: np.ndarray, big_w: np.ndarray | float, reach: np.ndarray, rounding: np.ndarray
) -> np.ndarray:
    with np.errstate(all="ignore"):
        over = centred > big_w * reach[:, None] * (1 + 1e-2) + rounding
        return np.any(over & np.isfinite(centred), axis=1)


values = st.sampled_from([0.0, 0.5, 1.0, 2.9, 3.0, 3.1, 1e300, np.inf, np.nan])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 5),
    st.data(),
    st.booleans(),
)
def test_pre_screen_agrees_with_every_element(
    rows: int, size: int, data: st.DataObject, per_element: bool
) -> None:
    def block(shape: tuple[int, ...]) -> np.ndarray:
        return np.array(
            data.draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        ).reshape(shape)

    centred = np.abs(block((rows, size)))
    rounding = np.abs(block((rows, size)))
    reach = block((rows,)) * data.draw(st.sampled_from([1.0, -1.0]))
    big_w = np.abs(block((rows, size))) if per_element else 1.0
    np.testing.assert_array_equal(
        _over(centred, big_w, reach, rounding), _by_element(centred, big_w, reach, rounding)
    )


def test_a_value_beyond_the_reach_is_found() -> None:
    centred = np.array([[1.0, 3.2], [1.0, 2.0]])
    found = _over(centred, 1.0, np.array([3.0, 3.0]), np.zeros((2, 2)))
    assert found.tolist() == [True, False]  # 3.2 > 3.03; 2.0 is not


def test_a_negative_eps_stretches_the_limit_as_it_stretches_rstd() -> None:
    # var + eps with eps = -1 normalizes by more than 1 / std: torch's outputs exceed
    # sqrt(n - 1) = 3.87 and are right (the exact output reaches 6.77 here)
    import lncheck

    x = np.random.default_rng(0).standard_normal(16)
    x = (x - x.mean()) * np.sqrt(1.0923783 / x.var())
    report = lncheck.compare(x[None, :].astype(np.float32), "layer_norm", normalized_shape=16,
                             eps=-1.0, equal_nan=True)  # fmt: skip
    output = [c for c in report.checks if c.quantity == "output"]
    assert output and all(c.passed for c in output), [c.message() for c in output]
    assert max(abs(c.worst_expected) for c in output) > np.sqrt(15)


def _constant_rows(n: int, value: float, eps: float, one_pass: bool) -> object:
    """The check of a float32 LayerNorm over 3 rows of ``n`` equal values whose sequential
    float32 sum rounds (its mean is off by ``d``), with the variance about that mean (two-pass)
    or apart from it (one-pass ``E[x**2] - E[x]**2``, clipped at 0)."""
    from tests.support import output_check

    x = np.full((3, n), np.float32(value), np.float32)
    mean = np.cumsum(x, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    d = x - mean
    if one_pass:
        var = np.maximum(np.mean(x * x, axis=1, keepdims=True, dtype=np.float32) - mean * mean, 0)
    else:
        var = np.mean(d * d, axis=1, keepdims=True, dtype=np.float32)
    y = (d / np.sqrt(var + np.float32(eps))).astype(np.float32)
    return output_check(x, "layer_norm", normalized_shape=n, eps=eps, expected=y)


def test_a_constant_group_whose_sum_rounds_admits_a_mean_off_only_with_its_own_variance() -> None:
    # 100,000 values of 3.3: the sequential mean is off by d = 8.1e-4 = 81 sqrt(eps). Two-pass,
    # |y| = d / sqrt(d**2 + eps) = 0.99992 (1 / sqrt(1 - n v) + v K = 1.023 allowed); one-pass,
    # the variance is 0 and |y| = d / sqrt(eps) = 81, within sqrt(n - 1) = 316 (it passed)
    two_pass = _constant_rows(100_000, 3.3, 1e-10, one_pass=False)
    assert two_pass.passed and two_pass.accuracy_class == "sequential"
    assert 0.95 < two_pass.tolerance_used < 1.0
    one_pass = _constant_rows(100_000, 3.3, 1e-10, one_pass=True)
    assert not one_pass.passed
    assert one_pass.accuracy_class not in ("accurate", "sequential")
    assert "one-pass" in (one_pass.explanation or "")
    # the failure line's atol is the limit applied: 1.023 * 1.01, not kappa's 3.3e5 * 1e-7
    assert one_pass.atol == pytest.approx(1.0336, rel=1e-3)
