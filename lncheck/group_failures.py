"""Where a check fails: how many elements of each group are outside their tolerance.

A flat worst index says where the worst element is, not whether the failures are one bad
group or spread over all of them. For the quantities laid out by group (the output, the
activation, ``grad_input`` and the per-group statistics) the accumulator hands every block
that has mismatches to a ``FailingGroups``, one count per row. Blocks hold whole groups, so a
group's count is final when its block has been compared: only the groups with the most
mismatches are kept (all of them with ``limit=None``), in memory that does not grow with the
input.
"""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.report import GroupFailures
from lncheck.result import ELEMENTWISE

COUNTED = (*ELEMENTWISE, "mean", "var", "rstd")
SHOWN = 10  # groups listed by default (--all-groups lists every failing one)


class FailingGroups:
    """The failing groups of one check, fed one block's per-row mismatch counts at a time."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.failing = 0
        # (count, -group): a min-heap of the groups with the most mismatches, lowest index first
        self.kept: list[tuple[int, int]] = []

    def add(self, first: int, bad: npt.NDArray[np.bool_]) -> None:
        """Count the mismatches ``bad`` (groups x elements) of the block at group ``first``."""
        per_row = np.count_nonzero(bad.reshape(bad.shape[0], -1), axis=1)
        for row in np.flatnonzero(per_row):
            self.failing += 1
            entry = (int(per_row[row]), -(first + int(row)))
            if self.limit is None or len(self.kept) < self.limit:
                heapq.heappush(self.kept, entry)
            elif entry > self.kept[0]:
                heapq.heapreplace(self.kept, entry)

    def failures(self, layout: GroupLayout) -> GroupFailures:
        """The count and the kept groups, most mismatches first, as multi-indices of ``layout``."""
        worst = sorted(self.kept, reverse=True)
        return GroupFailures(
            self.failing,
            layout.groups,
            layout.group_size,
            tuple((layout.group_index(-g), n) for n, g in worst),
        )
