"""Where a check fails: how many elements of each group are outside their tolerance.

A flat worst index says where the worst element is, not whether the failures are one bad
group or spread over all of them. ``GroupCounting`` is the block comparer with one addition:
for the quantities laid out by group (the output, the activation, ``grad_input`` and the
per-group statistics), every block that adds mismatches also counts them per group. Blocks
hold whole groups, so a group's count is final when its block has been compared: only the
groups with the most mismatches are kept (all of them with ``limit=None``), in memory that
does not grow with the input.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.compare_blocks import BlockComparer, Clock
from lncheck.metrics import Accumulator, Shared
from lncheck.report import GroupFailures
from lncheck.result import ELEMENTWISE

COUNTED = (*ELEMENTWISE, "mean", "var", "rstd")
SHOWN = 10  # groups listed by default (--all-groups lists every failing one)


class _Counter(Accumulator):
    """An accumulator that also counts its mismatches per group (see the module docstring)."""

    def start_counting(self, limit: int | None) -> None:
        self.limit = limit
        self.failing_groups = 0
        # (count, -group): a min-heap of the groups with the most mismatches, lowest index first
        self.kept: list[tuple[int, int]] = []

    def update(
        self,
        first: int,
        shared: Shared,
        actual: npt.NDArray[np.generic],
        atol: npt.NDArray[np.float64] | float,
    ) -> None:
        before = self.mismatched
        super().update(first, shared, actual, atol)
        if self.mismatched == before:
            return
        per_row = mismatched_per_row(shared, actual, self.equal_nan)
        for row in np.flatnonzero(per_row):
            self.failing_groups += 1
            entry = (int(per_row[row]), -(first + int(row)))
            if self.limit is None or len(self.kept) < self.limit:
                heapq.heappush(self.kept, entry)
            elif entry > self.kept[0]:
                heapq.heapreplace(self.kept, entry)

    def failures(self, layout: GroupLayout) -> GroupFailures:
        worst = sorted(self.kept, reverse=True)
        return GroupFailures(
            self.failing_groups,
            layout.groups,
            layout.group_size,
            tuple((layout.group_index(-g), n) for n, g in worst),
        )


def mismatched_per_row(
    shared: Shared, actual: npt.NDArray[np.generic], equal_nan: bool
) -> npt.NDArray[np.int64]:
    """Per row of a block, the elements outside their tolerance, by the rule of ``metrics``:
    ``|actual - expected| > atol + rtol * |expected|``; a NaN or infinity passes only against
    the same value (NaN against NaN with ``equal_nan``)."""
    e = shared.expected
    a = np.asarray(actual, dtype=np.float64)
    with np.errstate(all="ignore"):
        err = np.abs(a - e)
        finite = np.isfinite(a) & np.isfinite(e)
        if finite.all():  # the same arithmetic as the accumulator's, so the same verdicts
            bad = err * shared.inv_allowed > 1
        else:
            same = (a == e) | (np.isnan(a) & np.isnan(e) & equal_nan)
            bad = np.where(finite, err > shared.allowed, ~same)
    return np.asarray(np.count_nonzero(bad.reshape(e.shape[0], -1), axis=1), dtype=np.int64)


class GroupCounting(BlockComparer):
    """The block comparer, counting the mismatches of ``COUNTED`` quantities per group and
    keeping the ``limit`` groups with the most (all with ``None``)."""

    def __init__(
        self,
        case: Case,
        layouts: Mapping[str, GroupLayout],
        heatmaps: bool,
        clock: Clock,
        limit: int | None = SHOWN,
    ) -> None:
        super().__init__(case, layouts, heatmaps, clock)
        self.limit = limit

    def _accumulator(self, candidate: str, quantity: str, rtol: float) -> Accumulator:
        key = (candidate, quantity)
        if key not in self.accumulators and quantity in COUNTED:
            plain = super()._accumulator(candidate, quantity, rtol)
            counter = _Counter.__new__(_Counter)
            counter.__dict__.update(plain.__dict__)  # the same accumulator, counting too
            counter.start_counting(self.limit)
            self.accumulators[key] = counter
        return super()._accumulator(candidate, quantity, rtol)

    def failures(self) -> dict[tuple[str, str], GroupFailures]:
        """The failing groups of every failing check that counts them."""
        return {
            key: acc.failures(self.layouts[key[1]])
            for key, acc in self.accumulators.items()
            if isinstance(acc, _Counter) and acc.failing_groups
        }
