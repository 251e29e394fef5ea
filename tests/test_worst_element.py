"""The worst element across blocks: by share of its tolerance, then by its error; where it
lies among several infinitely far out."""

from __future__ import annotations

import math

import numpy as np

from lncheck.worst_element import Rank, Shown, WorstElement, atol_at


def test_the_worst_is_kept_by_rank_field_by_field() -> None:
    worst = WorstElement()
    assert math.isnan(worst.actual) and not worst.failing and not worst.by_group
    worst.offer(Rank(0.5, 0.05), 0, 0, 4, (1.05, 1.0), 0.1, 0.5)  # a passing element
    assert (worst.group, worst.element, worst.failing) == (0, 0, False)
    worst.offer(Rank(3.0, 0.3), 8, 6, 4, (2.3, 2.0), 0.1, 3.0)
    assert (worst.group, worst.element, worst.actual, worst.expected) == (9, 2, 2.3, 2.0)
    assert worst.failing
    # the larger share first, then the larger error; ties keep the first
    worst.offer(Rank(3.0, 0.2), 0, 3, 4, (0.2, 0.0), 0.1, 3.0)
    worst.offer(Rank(3.0, 0.3), 0, 2, 4, (0.3, 0.0), 0.1, 3.0)
    assert worst.group == 9
    worst.offer(Rank(3.0, 0.4), 0, 2, 4, (0.4, 0.0), 0.2, 1.5)
    assert (worst.group, worst.element, worst.atol) == (0, 2, 0.2)
    # its score beyond its own share: its group's structural share
    assert worst.by_group


def test_of_several_infinitely_far_out_the_non_finite_mismatch_is_shown() -> None:
    expected = np.array([[1.0, 2.0, np.nan, 4.0]])
    actual = np.array([[np.inf, 2.5, np.nan, np.nan]])
    finite = np.isfinite(expected) & np.isfinite(actual)
    err = np.where(finite, np.abs(actual - expected), 0.0)
    both_nan = np.isnan(expected) & np.isnan(actual)
    shown = Shown(3, actual, expected, err, finite, both_nan, np.full((1, 4), 10.0), 0.1)
    worst = WorstElement()
    # inf at 0 and NaN at 3 (non-finite mismatches), 2.5 at 1, NaN against NaN at 2
    shown.offer(np.array([[np.inf, 5.0, np.inf, np.inf]]), worst)
    assert (worst.group, worst.element, worst.rank) == (3, 0, Rank(np.inf, np.inf))
    assert (worst.own, worst.atol) == (np.inf, 0.1)
    other = WorstElement()
    shown.offer(np.array([[-1.0, 5.0, np.inf, -1.0]]), other)  # only NaN against NaN left
    assert other.element == 2
    assert atol_at(np.array([[0.1, 0.2, 0.3, 0.4]]), 2, (1, 4)) == 0.3
