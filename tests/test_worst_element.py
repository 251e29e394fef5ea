"""The worst element across blocks: an unexcused failure first, then the share, then the error."""

from __future__ import annotations

import math

from lncheck.worst_element import Rank, WorstElement


def test_the_worst_is_kept_by_rank_field_by_field() -> None:
    worst = WorstElement()
    assert math.isnan(worst.actual) and not worst.by_group
    # an excused failure (NaN: infinitely out) is kept while nothing else fails...
    worst.offer(Rank(0.0, math.inf, math.inf), 4, 5, 4, (math.nan, 0.0), 0.1, math.inf)
    assert (worst.group, worst.element) == (5, 1)
    worst.offer(Rank(0.0, 0.5, 0.05), 0, 0, 4, (1.05, 1.0), 0.1, 0.5)  # a passing element
    assert (worst.group, worst.element) == (5, 1)
    # ...and an unexcused failure replaces it, however smaller its share
    worst.offer(Rank(1.0, 3.0, 0.3), 8, 6, 4, (2.3, 2.0), 0.1, 3.0)
    assert (worst.group, worst.element, worst.actual, worst.expected) == (9, 2, 2.3, 2.0)
    worst.offer(Rank(0.0, math.inf, math.inf), 0, 1, 4, (math.nan, 0.0), 0.1, math.inf)
    assert worst.group == 9
    # among unexcused failures, the larger share, then the larger error; ties keep the first
    worst.offer(Rank(1.0, 3.0, 0.2), 0, 3, 4, (0.2, 0.0), 0.1, 3.0)
    worst.offer(Rank(1.0, 3.0, 0.3), 0, 2, 4, (0.3, 0.0), 0.1, 3.0)
    assert worst.group == 9
    worst.offer(Rank(1.0, 3.0, 0.4), 0, 2, 4, (0.4, 0.0), 0.2, 1.5)
    assert (worst.group, worst.element, worst.atol) == (0, 2, 0.2)
    # its score beyond its own share: its group's structural share
    assert worst.by_group
