"""Comparing every candidate with the reference, block by block, unit by unit.

One ``Accumulator`` per (candidate, quantity) collects the metrics against the accepted
accuracy class's tolerance, and one ``ClassTally`` the class the difference fits. Each block of
the reference (and of its tolerance per class) is prepared once and shared by every candidate,
so adding a candidate costs only its own comparison; a candidate bit-identical to an earlier
one costs a byte comparison (``identical``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

import numpy as np
import numpy.typing as npt

from lncheck import overlap
from lncheck.block_structure import Structure, structure_of
from lncheck.block_tolerance import BlockTolerance, Tolerances
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.classify_check import classified
from lncheck.comparison import Comparison, unmatched
from lncheck.copies import Copy, ReferenceRow, copied_from_neighbour
from lncheck.dtypes import DTYPES
from lncheck.group_failures import COUNTED, SHOWN, FailingGroups
from lncheck.identical import Key, Twins
from lncheck.metrics import Accumulator, Shared, prepare
from lncheck.options import spelling
from lncheck.report import GroupFailures
from lncheck.result import ELEMENTWISE, STATISTICS, LazyTensor, NormResult, as_array
from lncheck.scratch import Scratch
from lncheck.statistic_conventions import met
from lncheck.tolerances import CLASSES
from lncheck.verdicts import (
    ClassTally,
    beyond_range,
    block_class,
    lost_to_rstd,
    overflow_cause,
)

F64 = npt.NDArray[np.float64]


class Clock:
    """Seconds per stage, accumulated into ``timings`` (a no-op without it)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start


class BlockComparer:
    """One accumulator and one class tally per (candidate, quantity), fed block by block."""

    def __init__(
        self,
        case: Case,
        layouts: Mapping[str, GroupLayout],
        heatmaps: bool,
        clock: Clock,
        failing_groups: int | None = SHOWN,
        *,
        sequential: bool = False,
    ) -> None:
        """``sequential``: candidates are fed one at a time rather than side by side."""
        self.case, self.layouts, self.heatmaps, self.clock = case, layouts, heatmaps, clock
        self.failing_groups = failing_groups
        self.ulp_of = DTYPES[case.dtype]
        self.accumulators: dict[tuple[str, str], Accumulator] = {}
        self.tallies: dict[tuple[str, str], ClassTally] = {}
        self.broken: dict[tuple[str, str], Comparison] = {}
        self.accepted = case.tolerance.accepted_index
        self.twins = Twins(sequential)
        self.scratch = Scratch()
        self.variance: F64 | None = None
        # each unit's normalizing variance, by its first group, as the reference computed it
        self.unit_variances: dict[int, F64] = {}
        self.checked: dict[Key, None] = {}  # every compared key, in the order first fed
        self.named: dict[Key, str] = {}  # statistics that match another convention's values
        # per statistic, how many exact values the dtype it was kept in cannot hold, and that
        # per check, exact statistics beyond its storage dtype: how many, that dtype, and how
        # many the candidate holds as the matching infinity
        self.unrepresentable: dict[Key, tuple[int, str, int]] = {}

    def feed(
        self, offset: int, layout: GroupLayout, ref: NormResult, results: Sequence[NormResult]
    ) -> None:
        """Compare ``results`` with ``ref``, which cover the unit at group ``offset`` laid out
        by ``layout``."""
        if ref.model is not None:
            self.unit_variances[offset] = ref.model.variance
        quantities = [q for q in ref.quantities if any(q in r.quantities for r in results)]
        for quantity in quantities:
            elementwise = quantity in ELEMENTWISE
            quantity_layout = layout if elementwise else _flat(ref, quantity)
            want = quantity_layout.input_shape
            having = []
            for r in results:
                if quantity not in r.quantities:
                    continue
                got = np.shape(r.quantities[quantity])
                if math.prod(got) != math.prod(want):  # never silently broadcast: a failed check
                    self.broken[(r.candidate, quantity)] = unmatched(
                        r.candidate, quantity, got, tuple(want)
                    )
                else:
                    having.append(r)
            with self.clock("compare"):
                distinct, diverged = self.twins.split(quantity, offset, having)
            for key, twin in diverged:  # identical so far: the twin's totals are its own
                self.accumulators[key] = copy.deepcopy(self.accumulators[twin])
                self.tallies[key] = copy.deepcopy(self.tallies[twin])
            tolerances = Tolerances(self.case, ref, quantity, quantity_layout)
            for r in having:
                self.checked[(r.candidate, quantity)] = None
            if quantity in ref.conventions:  # a statistic by another rule (biased running_var)
                self._conventions(ref, quantity, distinct, tolerances)
            for r in distinct:
                self._start(r.candidate, quantity, tolerances)
            self._compare(offset, quantity_layout, ref, quantity, distinct, tolerances)

    def _conventions(
        self, ref: NormResult, quantity: str, results: Sequence[NormResult], tol: Tolerances
    ) -> None:
        words, predicted = ref.conventions[quantity]
        expected = np.asarray(as_array(ref.quantities[quantity]), np.float64).reshape(-1)
        allowed = BlockTolerance(tol, 0, expected.size).atol(0) + tol.rtol(0) * np.abs(expected)
        for r in results:
            actual = np.asarray(as_array(r.quantities[quantity]), np.float64).reshape(-1)
            if met(expected, actual, predicted.reshape(-1), np.asarray(allowed, np.float64)):
                self.named[(r.candidate, quantity)] = words

    def _start(self, candidate: str, quantity: str, tol: Tolerances) -> None:
        key = (candidate, quantity)
        if key in self.accumulators:
            return
        layout = self.layouts[quantity]
        grid = (
            (layout.groups, layout.group_size)
            if self.heatmaps and quantity in ELEMENTWISE
            else None
        )
        counter = FailingGroups(self.failing_groups) if quantity in COUNTED else None
        self.accumulators[key] = Accumulator(
            tol.rtol(self.accepted), self.case.tolerance.equal_nan, self.ulp_of, grid, counter
        )
        self.tallies[key] = ClassTally()

    def _compare(
        self,
        offset: int,
        layout: GroupLayout,
        ref: NormResult,
        quantity: str,
        results: Sequence[NormResult],
        tol: Tolerances,
    ) -> None:
        if not results:  # every one identical to a candidate compared before
            return
        expected = ref.quantities[quantity]
        magnitude = np.broadcast_to(
            np.asarray(_magnitude(ref, quantity), dtype=np.float64), (layout.groups,)
        )
        actuals = [_shaped(as_array(r.quantities[quantity]), layout) for r in results]
        rounds_to = self.ulp_of if quantity in ELEMENTWISE else None
        if quantity in STATISTICS:  # an infinity may be right; a statistic's still fails
            exact = np.asarray(as_array(expected), dtype=np.float64).reshape(-1)
            for r, a in zip(results, actuals, strict=True):
                found = beyond_range(exact, a, self.case.dtype)
                if found is not None:
                    count, _, matching = self.unrepresentable.get(
                        (r.candidate, quantity), (0, "", 0)
                    )
                    self.unrepresentable[(r.candidate, quantity)] = (
                        count + found[0], found[1], matching + found[2]
                    )  # fmt: skip

        def reference_of(here: BlockTolerance) -> npt.NDArray[np.generic]:
            if here.block is not None and quantity == "output":
                return here.block.y
            if isinstance(expected, LazyTensor):
                return expected.at(here.first, here.stop)
            return layout.block_at(_shaped(np.asarray(expected), layout), here.first, here.stop)

        def ready(first: int, stop: int) -> _Ready:
            """What a block's comparison needs that no other block's does: the reference
            block and each candidate's structure (its tolerances are left to the caller's
            thread, which has less to do)."""
            here = BlockTolerance(tol, first, stop)
            structures: list[Structure | None] = [None] * len(actuals)
            if here.block is not None and quantity == "output":
                structures = [
                    structure_of(
                        here.block, layout.block_at(a, first, stop), self.case.dtype, self.accepted
                    )
                    for a in actuals
                ]
            return here, reference_of(here), structures

        low = CLASSES.index("low_precision")

        def reference_row(g: int) -> ReferenceRow:
            here = BlockTolerance(tol, g, g + 1)
            values = np.asarray(reference_of(here), dtype=np.float64)
            accepted = here.atol(self.accepted), tol.rtol(self.accepted)
            constant = bool(tol.model is not None and tol.model.constant[g])
            return ReferenceRow(values, *accepted, here.atol(low), tol.rtol(low), constant)

        def find_copy(whole: npt.NDArray[np.generic], first: int, shares: F64) -> Copy | None:
            """A copy among the failing groups of candidate ``whole``'s block at ``first``."""
            return copied_from_neighbour(
                first, shares, layout.groups, partial(_row, layout, whole), reference_row
            )

        prepared = overlap.ahead(lambda span: ready(*span), layout.spans())
        while True:
            with self.clock("compare"):  # the reference blocks are built with the structures
                item = next(prepared, None)
            if item is None:
                break
            (first, stop), (here, reference_block, structures) = item
            with self.clock("reference"):
                shared = prepare(
                    reference_block,
                    tol.rtol(self.accepted),
                    here.atol(self.accepted),
                    magnitude[first:stop, None],
                    self.ulp_of,
                    rounds_to,
                    self.scratch,
                )
            with self.clock("compare"):
                for r, actual_of, structure in zip(results, actuals, structures, strict=True):
                    actual = layout.block_at(actual_of, first, stop)
                    key = (r.candidate, quantity)
                    before = self.accumulators[key].mismatched
                    err = self._candidate(offset, key, here, shared, actual, structure)
                    if self.accumulators[key].mismatched > before and structure is not None:
                        find = partial(find_copy, actual_of)
                        self._look_for_copy(key, offset, first, err, shared, find)

    def _look_for_copy(
        self,
        key: Key,
        offset: int,
        first: int,
        err: F64,
        shared: Shared,
        find: Callable[[int, F64], Copy | None],
    ) -> None:
        """Whether a failing group of the block at group ``first`` repeats its neighbour's
        output (``copies``), once per check: ``find(first, shares)``."""
        tally = self.tallies[key]
        if tally.copy is None:
            with np.errstate(all="ignore"):
                shares = err * shared.inv_allowed
            found = find(first, shares)
            if found is not None:
                tally.copy = found.moved(offset)

    def _candidate(
        self,
        offset: int,
        key: tuple[str, str],
        here: BlockTolerance,
        shared: Shared,
        actual: npt.NDArray[np.generic],
        structure: Structure | None,
    ) -> F64:
        """Compare one candidate's block; returns its absolute errors (``Accumulator.update``:
        in scratch, valid until the next block)."""
        lost = None
        if structure is not None:  # an output block: NaN where the exact rstd overflows?
            lost = lost_to_rstd(structure.block, actual, shared.expected, self.case.dtype)
        err = self.accumulators[key].update(
            offset + here.first,
            shared,
            actual,
            here.atol(self.accepted),
            None if structure is None else structure.group_score,
            self.scratch,
            None if lost is None else lost[0],
        )
        if not self.case.tolerance.classified:
            return err
        tally = self.tallies[key]
        graded = err
        if lost is not None:  # no different function's values: low_precision's
            where, rstd = lost
            graded = np.where(where, 0.0, err)
            tally.lose_to_rstd(int(np.count_nonzero(where)), rstd)
        with np.errstate(invalid="ignore"):  # inf * 0 where an exact value is beyond range
            share = np.multiply(
                graded, shared.inv_allowed, out=self.scratch.get("class.worst_share", err.shape)
            )
        worst_share = float(np.max(share)) if err.size else 0.0
        allowed = partial(here.allowed, expected=shared.expected, scratch=self.scratch)
        tally.add(block_class(graded, allowed, self.accepted, worst_share))
        if structure is not None:
            tally.add(structure.index)
            tally.distortion(structure.worst(offset + here.first))
            tally.weighed(structure.systematic())
            structure.record(tally, offset + here.first)
        return err

    def failures(self) -> dict[tuple[str, str], GroupFailures]:
        """The failing groups of every failing check that counts them."""
        found = {}
        for key in self.checked:
            acc = self.accumulators[self._own(key)]
            if acc.groups is not None and acc.groups.failing:
                found[key] = acc.groups.failures(self.layouts[key[1]])
        return found

    def _variance(self) -> F64:
        """The variance each group is normalized with, over the whole input: computed once,
        and only for a report that explains a verdict with it."""
        if self.variance is None:
            parts = [self.unit_variances[first] for first in sorted(self.unit_variances)]
            if sum(len(part) for part in parts) == self.layouts["output"].groups:
                # the units' own: another pass over the input would cost as much as the
                # reference, and keep a memory-mapped input's pages resident
                self.variance = np.concatenate(parts) if parts else np.zeros(0)
            else:
                from lncheck.reference import normalizing_statistics

                _, self.variance = normalizing_statistics(self.case)
        return self.variance

    def _own(self, key: Key) -> Key:
        """The key whose totals are ``key``'s: its twin's if it is identical to one."""
        twin = self.twins.of.get(key)
        return key if twin is None else (twin, key[1])

    def results(self) -> list[Comparison]:
        """One ``Comparison`` per candidate and quantity fed, with its accuracy class and
        explanation (the cause named where a convention or a copied row is found); a candidate
        identical to another gets that one's figures."""
        made: dict[Key, Comparison] = {}
        for (candidate, quantity), acc in self.accumulators.items():
            c = acc.result(candidate, quantity, self.layouts[quantity])
            if self.case.tolerance.classified:
                c = classified(
                    c, self.tallies[(candidate, quantity)], self.case,
                    self.layouts[quantity], self._variance, acc.groups,
                )  # fmt: skip
            rule = self.named.get((candidate, quantity))
            if rule is not None:  # whatever its size: another function's values
                c = replace(c, passed=False, accuracy_class="mismatch", explanation=rule,
                            cause_named=True)  # fmt: skip
            if (
                c.accuracy_class == "mismatch"
                and self.tallies[(candidate, quantity)].rstd_losses[0]
            ):
                # a different function beside NaN an overflowing rstd explains: named after
                # the worst failure that no such loss explains
                c = acc.unexcused_named(c, self.layouts[quantity])
            beyond, stored, matching = self.unrepresentable.get((candidate, quantity), (0, "", 0))
            if beyond and not c.passed:
                c = c.explained(overflow_cause(beyond, quantity, stored))
                if c.accuracy_class == "mismatch" and c.mismatched == matching:
                    # nothing failed but the infinities the dtype it is kept in must hold: the
                    # right function with its statistics kept in a dtype too narrow for them
                    c = replace(c, accuracy_class="low_precision")
            if c.nan_reference_only and not c.passed:
                c = c.explained(
                    f"the reference is NaN at {c.nan_reference_only} elements where the "
                    "candidate is not (the exact value is undefined there)"
                )
            if c.nan_pairs and not c.passed:  # a rule, not an error of any size
                equal_nan = spelling(self.case.settings.surface, self.case.settings.words)
                c = c.explained(
                    f"{c.nan_pairs} NaN against the reference's NaN fail: NaN equals NaN only "
                    f"with {equal_nan('equal_nan')}"
                )
            made[(candidate, quantity)] = c
        done = []
        for key in self.checked:
            twin = self.twins.of.get(key)
            if twin is None:
                done.append(made[key])
            else:
                done.append(replace(made[(twin, key[1])], candidate=key[0], identical_to=twin))
        return done + list(self.broken.values())


_Ready = tuple["BlockTolerance", npt.NDArray[np.generic], list["Structure | None"]]


def _row(layout: GroupLayout, whole: npt.NDArray[np.generic], g: int) -> npt.NDArray[np.generic]:
    return layout.block_at(whole, g, g + 1)


def _flat(ref: NormResult, quantity: str) -> GroupLayout:
    shape = np.shape(as_array(ref.quantities[quantity]))
    size = math.prod(shape)
    return GroupLayout((size, 1), (size, 1), (1,))


def _shaped(a: npt.NDArray[np.generic], layout: GroupLayout) -> npt.NDArray[np.generic]:
    return a if a.shape == layout.input_shape else np.reshape(a, layout.input_shape)


def _magnitude(ref: NormResult, quantity: str) -> float | npt.NDArray[np.float64]:
    bound = ref.bounds.get(quantity)
    return 0.0 if bound is None else bound.magnitude
