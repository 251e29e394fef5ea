"""What a check found: the ``Comparison`` record, its messages, checks that could not be made."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import lncheck
from lncheck.blocks import GroupLayout
from lncheck.comparison import (
    HISTOGRAM_OCTAVES,
    Comparison,
    histogram_bins,
    make_mismatch_message,
    not_made,
    percent,
    unmatched,
)
from lncheck.metrics import compare


def _compare(expected: list[list[float]], actual: list[list[float]], rtol: float, atol: float):  # type: ignore[no-untyped-def]
    e = np.asarray(expected, dtype=np.float64)
    layout = GroupLayout(e.shape, e.shape, (e.ndim - 1,))
    return compare("cand", "output", e, np.asarray(actual), layout, rtol=rtol, atol=atol)


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
    assert message.endswith("(allowed there: rtol=0.001, atol=1e-05)")
    assert make_mismatch_message(c) == message


def test_a_worst_element_failing_with_its_group_says_so() -> None:
    from dataclasses import replace

    c = _compare([[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0, 3.004, 4.0]], rtol=1e-3, atol=1e-5)
    grouped = replace(c, passed=False, worst_by_group=True, tolerance_used=2.5, worst_score=2.5)
    # 0.004 is beyond the element's own 1e-5 + 1e-3 * 3 (1.33x): that is what it fails on
    assert grouped.message().endswith("(allowed there: rtol=0.001, atol=1e-05)")
    within = replace(grouped, worst_own=0.67)  # within its own tolerance
    assert "(within its own rtol=0.001, atol=1e-05; its group's fitted" in within.message()
    # every element within its own tolerance, the check failed on its class (a convention)
    by_class = replace(
        c, worst_own=0.67, passed=False, mismatched=0, tolerance_used=0.5,
        accuracy_class="mismatch",
    )  # fmt: skip
    assert "(within its own rtol=0.001, atol=1e-05; the check fails on its accuracy class)" in (
        by_class.message()
    )
    assert (
        replace(by_class, accuracy_class=None)
        .message()
        .endswith("(allowed there: rtol=0.001, atol=1e-05)")
    )  # a fixed tolerance has no class: what failed is the element
    capped = replace(within, tolerance_used=math.inf, worst_score=math.inf)
    assert capped.message().endswith(
        "(within its own rtol=0.001, atol=1e-05; its group holds values no correct layer can "
        "produce)"
    )


def test_message_of_a_pass_and_of_non_finite_values() -> None:
    c = _compare([[1.0, 2.0]], [[1.0, 2.0]], rtol=1e-3, atol=0.0)
    assert c.message().startswith("cand output matches the reference: 0 / 2 elements")
    bad = _compare([[1.0, 2.0, 3.0]], [[np.nan, np.inf, 3.0]], rtol=1e-3, atol=0.0)
    assert bad.message().endswith("; candidate has 1 NaN and 1 Inf")


def test_drift_is_against_the_baseline() -> None:
    c = replace(_compare([[1.0]], [[2.0]], rtol=0.0, atol=0.0), kind="baseline")
    assert c.message().startswith("cand output does not match the baseline: ")
    assert ": 2 vs the baseline's 1 (allowed there" in c.message()


def test_a_few_mismatches_are_never_zero_percent() -> None:
    # 1 of 2048 read "(0.0%)"
    assert [percent(f) for f in (0.0, 1 / 2048, 0.0004, 0.0006, 0.5, 2047 / 2048, 1.0)] == [
        "(0.0%)",
        "(<0.1%)",
        "(<0.1%)",
        "(0.1%)",
        "(50.0%)",
        "(>99.9%)",
        "(100.0%)",
    ]
    # in the one-line message and the torch-style assertion too
    c = _compare([[0.0] * 2047 + [1.0]], [[0.0] * 2048], rtol=0.0, atol=0.0)
    assert "1 / 2048 elements mismatched (<0.1%)" in c.message()
    x = np.linspace(-1.0, 1.0, 2048).reshape(2, 1024)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    y[0, 0] += 1.0
    with pytest.raises(AssertionError, match=r"Mismatched elements: 1 / 2048 \(<0\.1%\)"):
        lncheck.check(y, x, normalized_shape=1024, dtype="float64")


def test_mismatch_fraction() -> None:
    c = _compare([[1.0, 2.0, 3.0, 4.0]], [[0.0, 0.0, 3.0, 4.0]], rtol=0.0, atol=0.0)
    assert c.mismatch_fraction == 0.5
    assert replace(c, total=0, mismatched=0).mismatch_fraction == 0.0


def test_unmatched_and_not_made_checks_fail_unboundedly() -> None:
    c = unmatched("torch.x", "mean", (3,), (2, 2), rtol=1e-3)
    assert not c.passed and c.total == c.mismatched == 4 and c.rtol == 1e-3
    assert c.message() == "torch.x mean: has shape (3,), the reference has shape (2, 2)"
    assert c.max_abs_err == c.required_atol == c.required_rtol == math.inf
    other = not_made("torch.x", "output", 7, "could not run")
    assert isinstance(other, Comparison) and other.message() == "torch.x output: could not run"
    assert other.worst_index == () and math.isnan(other.rtol) and math.isnan(other.worst_actual)


def test_histogram_bin_labels() -> None:
    labels = histogram_bins()
    assert len(labels) == len(HISTOGRAM_OCTAVES) + 3
    assert labels[:3] == ["0", "<1.1e-19", "1.1e-19"]  # exact, below 2^-63, from 2^-63
    assert labels[-1] == ">=5.1e+02"  # 2^9 and above
