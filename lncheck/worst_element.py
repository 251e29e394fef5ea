"""A check's worst element across blocks: where it is, its values, the tolerance applied there.

Elements are ranked by ``Rank``: a failure no known loss excuses (``verdicts.lost_to_rstd``)
comes before any other, so that a real bug is named beside the NaN an overflowing rstd
explains; then by the element's share of its tolerance, then by its absolute error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


class Rank(NamedTuple):
    """How bad an element is, compared field by field."""

    unexcused: float  # 1.0: it fails and no known loss explains it; else 0.0
    score: float  # its error over its tolerance, or its group's structural share if larger
    err: float  # its absolute error


NONE_YET = Rank(-1.0, -1.0, -1.0)  # below any element's


@dataclass
class WorstElement:
    """The worst element offered so far (``offer``), in a tensor of groups."""

    rank: Rank = NONE_YET
    group: int = 0
    element: int = 0  # within its group
    actual: float = math.nan
    expected: float = math.nan
    atol: float = math.nan  # the atol applied there
    own: float = 0.0  # its own error over its tolerance (``rank.score`` may be its group's)

    def offer(
        self,
        rank: Rank,
        first: int,
        k: int,
        width: int,
        values: tuple[float, float],
        atol: float,
        own: float,
    ) -> None:
        """Element ``k`` (flat) of a block of groups ``width`` wide starting at group ``first``,
        ``values`` its actual and expected values: kept where it ranks above the worst so far."""
        if rank > self.rank:
            g, m = divmod(k, width)
            self.rank, self.group, self.element = rank, first + g, m
            self.actual, self.expected = values
            self.atol, self.own = atol, own

    @property
    def by_group(self) -> bool:
        """Whether its score is its group's structural share, not its own error's."""
        return self.rank.score > self.own
