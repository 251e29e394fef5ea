"""The comparison engine: metrics by hand, NaN/Inf rules, worst element, messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lncheck.blocks import GroupLayout
from lncheck.comparison import Comparison, compare
from lncheck.errors import InputError
from lncheck.tolerances import DEFAULTS, ToleranceSpec


def _compare(
    expected: list[float] | np.ndarray,
    actual: list[float] | np.ndarray,
    rtol: float = 0.0,
    atol: float | np.ndarray = 0.0,
    equal_nan: bool = False,
    block: int = 1 << 18,
) -> Comparison:
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual)
    layout = GroupLayout(e.shape, e.shape, (e.ndim - 1,), block_elements=block)
    return compare("cand", "output", e, a, layout, rtol=rtol, atol=atol, equal_nan=equal_nan)


def test_metrics_by_hand() -> None:
    c = _compare([[1.0, 2.0, -4.0, 0.5]], [[1.0, 2.5, -4.0, 0.4]], rtol=0.1, atol=0.01)
    # errors 0, 0.5, 0, 0.1; allowed 0.11, 0.21, 0.41, 0.06 -> elements 1 and 3 fail
    assert (c.mismatched, c.total, c.passed) == (2, 4, False)
    assert c.max_abs_err == 0.5
    assert c.max_rel_err == pytest.approx(0.25)  # 0.5 / 2 beats 0.1 / 0.5 = 0.2
    assert c.mean_abs_err == pytest.approx(0.6 / 4)
    # worst = largest error / allowed: 0.5 / 0.21 = 2.38 vs 0.1 / 0.06 = 1.67
    assert c.worst_index == (0, 1) and (c.worst_actual, c.worst_expected) == (2.5, 2.0)
    assert c.required_atol == pytest.approx(0.5 - 0.1 * 2.0)  # smallest atol with rtol 0.1
    assert c.required_rtol == pytest.approx((0.5 - 0.01) / 2.0)  # smallest rtol with atol 0.01


def test_required_tolerances_really_are_the_smallest_that_pass() -> None:
    rng = np.random.default_rng(3)
    e = rng.standard_normal((4, 50))
    a = e + rng.standard_normal((4, 50)) * 1e-3
    c = _compare(e, a, rtol=1e-4, atol=1e-4)
    assert not c.passed
    assert _compare(e, a, rtol=1e-4, atol=c.required_atol * (1 + 1e-12)).passed
    assert not _compare(e, a, rtol=1e-4, atol=c.required_atol * (1 - 1e-6)).passed
    assert _compare(e, a, rtol=c.required_rtol * (1 + 1e-12), atol=1e-4).passed
    assert not _compare(e, a, rtol=c.required_rtol * (1 - 1e-6), atol=1e-4).passed


def test_exact_match_with_zero_tolerance_passes() -> None:
    c = _compare([[0.0, 1.0]], [[0.0, 1.0]])
    assert c.passed and c.max_abs_err == 0 and c.required_atol == 0


def test_per_group_atol() -> None:
    e = np.zeros((2, 3))
    a = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    c = _compare(e, a, atol=np.array([1.0, 0.1]))
    assert c.mismatched == 1 and c.worst_index == (1, 0) and c.atol == 1.0


def test_nan_where_reference_is_finite_fails() -> None:
    c = _compare([[1.0, 2.0, 3.0]], [[1.0, np.nan, 3.0]], rtol=1, atol=1)
    assert not c.passed and c.nan_actual == 1 and c.mismatched == 1
    assert c.worst_index == (0, 1) and math.isnan(c.worst_actual)
    assert c.required_atol == math.inf and c.required_rtol == math.inf
    # a NaN where a number belongs is no small difference: no atol covers it
    assert c.max_abs_err == math.inf and c.mean_abs_err == 0.0


def test_matching_nans_need_equal_nan() -> None:
    assert not _compare([[np.nan, 1.0]], [[np.nan, 1.0]]).passed
    c = _compare([[np.nan, 1.0]], [[np.nan, 1.0]], equal_nan=True)
    assert c.passed and c.nan_expected == 1 and c.nan_actual == 1


def test_infinities() -> None:
    assert _compare([[np.inf, -np.inf]], [[np.inf, -np.inf]]).passed
    c = _compare([[np.inf, 1.0]], [[-np.inf, 1.0]], rtol=1, atol=1)
    assert not c.passed and c.inf_actual == 1 and c.worst_index == (0, 0)
    assert not _compare([[1.0, 2.0]], [[1.0, np.inf]], rtol=1, atol=1).passed


def test_worst_element_across_blocks() -> None:
    e = np.zeros((10, 4))
    a = e.copy()
    a[7, 2] = 1e-3
    a[2, 1] = 1e-4
    for block in (1, 4, 8, 1000):
        assert _compare(e, a, atol=1e-5, block=block).worst_index == (7, 2)


def test_candidate_dtype_is_promoted_exactly() -> None:
    e = np.array([[0.1, 0.2]])
    a16 = e.astype(np.float16)
    c = _compare(e, a16)
    assert c.max_abs_err == pytest.approx(abs(float(np.float16(0.2)) - 0.2))


def test_shape_mismatch_is_a_failed_check_with_a_note() -> None:
    layout = GroupLayout((2, 3), (2, 3), (1,))
    c = compare("cand", "output", np.zeros((2, 3)), np.zeros((3, 2)), layout, rtol=0, atol=0)
    assert not c.passed and c.note == "has shape (3, 2), the reference has shape (2, 3)"
    assert c.message() == "cand output: has shape (3, 2), the reference has shape (2, 3)"


def test_mismatch_message_phrases() -> None:
    c = _compare([[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0, 3.5, 4.0]], rtol=1e-3, atol=1e-5)
    message = c.message()
    assert message.startswith("cand output does not match the reference: ")
    assert "1 / 4 elements mismatched (25.0%)" in message
    assert "greatest absolute difference 0.5" in message
    assert "worst element at index (0, 2): 3.5 vs 3" in message
    assert message.endswith("(allowed rtol=0.001, atol=1e-05)")


def test_tolerance_table_and_both_or_neither() -> None:
    assert DEFAULTS["float32"] == (1.3e-6, 1e-5)
    assert ToleranceSpec().resolve("bfloat16") == (1.6e-2, 1e-5)
    assert ToleranceSpec.from_options(1e-3, 0.0).resolve("float32") == (1e-3, 0.0)
    with pytest.raises(
        InputError, match=r"^--rtol was given without --atol: give both or neither$"
    ):
        ToleranceSpec.from_options(1e-3, None)
    with pytest.raises(InputError, match=r"^--atol was given without --rtol"):
        ToleranceSpec.from_options(None, 1e-3)
    with pytest.raises(InputError, match=r"^--atol must be a finite number >= 0, got -1.0$"):
        ToleranceSpec.from_options(0.0, -1.0)


@given(
    st.lists(
        st.one_of(
            st.just(0.0), st.floats(0, 1e6), st.floats(1e-320, 1e-300), st.floats(1e-30, 1e-3)
        ),
        min_size=1,
        max_size=300,
    )
)
def test_histogram_matches_a_naive_count(errors: list[float]) -> None:
    from lncheck.comparison import HISTOGRAM_OCTAVES, Accumulator

    err = np.array(errors, dtype=np.float64).reshape(1, -1)
    acc = Accumulator(0.0, False, None, None)
    acc._histogram(err)
    want = np.zeros_like(acc.histogram)
    low, high = HISTOGRAM_OCTAVES.start, HISTOGRAM_OCTAVES.stop
    for e in errors:
        if e == 0:
            want[0] += 1
        elif e < 2.0**low:
            want[1] += 1
        elif e >= 2.0**high:
            want[-1] += 1
        else:
            want[2 + (math.floor(math.log2(e)) - low) // 3] += 1
    np.testing.assert_array_equal(acc.histogram, want)
