"""The statistics table: per group, the reference's mean and variance beside a candidate's own.

Only the groups worth showing are kept as units stream past: the first few, and the worst
(largest difference relative to the group's spread) across the whole input.
"""

from __future__ import annotations

import math

import numpy as np

from lncheck.blocks import GroupLayout
from lncheck.report import StatRow, StatsTable
from lncheck.result import NormResult, as_array

FIRST_GROUPS = 3
WORST_GROUPS = 5


class StatsCollector:
    """The statistics table across units: the first groups, and the worst ones overall."""

    def __init__(self, layout: GroupLayout, label: str) -> None:
        self.layout, self.label = layout, label
        self.candidate: str | None = None
        self.rows: list[tuple[bool, float, StatRow]] = []  # (among the first?, badness, row)
        self.seen = 0

    def add(self, offset: int, ref: NormResult, result: NormResult) -> None:
        if "var" not in result.quantities or self.candidate not in (None, result.candidate):
            return
        self.candidate = result.candidate
        ref_mean, ref_var = as_array(ref.quantities["mean"]), as_array(ref.quantities["var"])
        var = as_array(result.quantities["var"])
        # A candidate without its own mean (RMSNorm's rstd-only native op) shows none.
        mean = (
            as_array(result.quantities["mean"])
            if "mean" in result.quantities
            else np.full_like(var, np.nan)
        )
        tiny = np.finfo(np.float64).tiny
        with np.errstate(all="ignore"):
            badness = np.fmax(
                np.abs(mean - ref_mean) / (np.sqrt(np.abs(ref_var)) + tiny),
                np.abs(var - ref_var) / (np.abs(ref_var) + tiny),
            )
        badness = np.where(np.isnan(badness), np.inf, badness)  # a NaN group is the worst
        kappa = ref.conditioning
        picked = set(range(max(0, min(FIRST_GROUPS - offset, ref_mean.size))))
        worst_first = np.argsort(-badness, kind="stable")
        picked.update(int(g) for g in worst_first[: WORST_GROUPS + FIRST_GROUPS])
        for g in sorted(picked):
            row = StatRow(
                self.layout.group_index(offset + g),
                float(ref_mean[g]),
                float(ref_var[g]),
                float(mean[g]),
                float(var[g]),
                math.nan if kappa is None else float(kappa[g]),
            )
            self.rows.append((offset + g < FIRST_GROUPS, float(badness[g]), row))
        self.seen += ref_mean.size

    def table(self) -> StatsTable | None:
        if self.candidate is None:
            return None
        first = [row for is_first, _, row in self.rows if is_first]
        rest = sorted((r for r in self.rows if not r[0]), key=lambda r: -r[1])
        if self.seen <= FIRST_GROUPS + WORST_GROUPS:
            chosen = first + [row for _, _, row in rest]
        else:
            chosen = first + [row for _, score, row in rest[:WORST_GROUPS] if score > 0]
        unique = {row.group: row for row in chosen}
        rows = tuple(sorted(unique.values(), key=lambda r: r.group))
        return StatsTable(self.candidate, rows, self.seen - len(rows), self.label)
