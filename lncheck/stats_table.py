"""The statistics table: per group, the reference's statistics beside a candidate's own.

Only the groups worth showing are kept as units stream past: the first few, and the worst
(largest difference relative to the group's spread) across the whole input. Where no candidate
returns statistics (torch's InstanceNorm and LocalResponseNorm), the table shows the
reference's alone, with the worst-conditioned groups as the ones worth showing. What the
statistics are follows the spec: mean and variance for the centring ops, the mean square (and
its root) for RMSNorm and, over each position's channels, for LocalResponseNorm.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.report import StatRow, StatsTable
from lncheck.result import NormResult, as_array

FIRST_GROUPS = 3
WORST_GROUPS = 5


class StatsCollector:
    """The statistics table across units: the first groups, and the worst ones overall."""

    def __init__(self, layout: GroupLayout, label: str, centred: bool = True) -> None:
        self.layout, self.label, self.centred = layout, label, centred
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
        self._keep(offset, badness, ref_mean, ref_var, mean, var, ref.conditioning)

    def add_reference(self, offset: int, ref: NormResult, unit: Case) -> None:
        """The reference's own statistics of a unit, for a table without a candidate's; call
        after the unit's candidates (``add``), so that it does nothing when one had them."""
        if self.candidate is not None:
            return
        if "var" in ref.quantities:
            ref_mean, ref_var = as_array(ref.quantities["mean"]), as_array(ref.quantities["var"])
        else:  # no statistics (LRN): the mean square of each group, which its window averages
            ref_var = _mean_square(unit)
            ref_mean = np.zeros_like(ref_var)
        kappa = ref.conditioning
        badness = ref_var if kappa is None or not self.centred else kappa
        nothing = np.full_like(ref_var, np.nan)
        self._keep(offset, badness, ref_mean, ref_var, nothing, nothing, kappa)

    def _keep(
        self,
        offset: int,
        badness: npt.NDArray[np.floating],
        ref_mean: npt.NDArray[np.floating],
        ref_var: npt.NDArray[np.floating],
        mean: npt.NDArray[np.floating],
        var: npt.NDArray[np.floating],
        kappa: npt.NDArray[np.floating] | None,
    ) -> None:
        badness = np.where(np.isnan(badness), np.inf, badness)  # a NaN group is the worst
        picked = set(range(max(0, min(FIRST_GROUPS - offset, ref_mean.size))))
        worst = WORST_GROUPS + FIRST_GROUPS
        if badness.size > worst:
            top = np.argpartition(-badness, worst - 1)[:worst]
        else:
            top = np.arange(badness.size)
        picked.update(int(g) for g in top)
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
        if not self.rows:
            return None
        first = [row for is_first, _, row in self.rows if is_first]
        rest = sorted((r for r in self.rows if not r[0]), key=lambda r: -r[1])
        if self.seen <= FIRST_GROUPS + WORST_GROUPS:
            chosen = first + [row for _, _, row in rest]
        else:
            chosen = first + [row for _, score, row in rest[:WORST_GROUPS] if score > 0]
        unique = {row.group: row for row in chosen}
        rows = tuple(sorted(unique.values(), key=lambda r: r.group))
        return StatsTable(
            self.candidate or "",
            rows,
            self.seen - len(rows),
            self.label if self.candidate else "",
            centred=self.centred,
        )


def _mean_square(unit: Case) -> npt.NDArray[np.float64]:
    """Per group of the unit's input (its statistics layout), the mean of x squared."""
    from lncheck.reference import layout_of

    layout = layout_of(unit.spec)
    out = np.empty(layout.groups, dtype=np.float64)
    for first, block in layout.blocks(unit.x):
        b = np.asarray(block, dtype=np.float64)
        with np.errstate(all="ignore"):
            out[first : first + b.shape[0]] = np.mean(b * b, axis=1)
    return out
