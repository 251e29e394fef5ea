"""Comparing every candidate with the reference, block by block, unit by unit.

One ``Accumulator`` per (candidate, quantity) collects the metrics; each block of the reference
(and of its tolerance) is prepared once and shared by every candidate, so adding a candidate
costs only its own comparison.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.comparison import Comparison, unmatched
from lncheck.dtypes import DTYPES
from lncheck.metrics import Accumulator, atol_blocks, prepare
from lncheck.ops.spec import NormSpec
from lncheck.result import ELEMENTWISE, LazyTensor, NormResult, as_array, blocks_of
from lncheck.tolerances import Atol, applied

PARAMETER_GRADIENTS = ("grad_weight", "grad_bias")


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


def reduced_over(spec: NormSpec, quantity: str) -> int:
    """How many values each element of a quantity is reduced from (its error grows with it)."""
    return spec.shared_count if quantity in PARAMETER_GRADIENTS else spec.reduced


class BlockComparer:
    """One accumulator per (candidate, quantity), fed block by block, unit by unit."""

    def __init__(
        self, case: Case, layouts: Mapping[str, GroupLayout], heatmaps: bool, clock: Clock
    ) -> None:
        self.case, self.layouts, self.heatmaps, self.clock = case, layouts, heatmaps, clock
        self.ulp_of = DTYPES[case.dtype]
        self.accumulators: dict[tuple[str, str], Accumulator] = {}
        self.broken: dict[tuple[str, str], Comparison] = {}

    def feed(
        self, offset: int, layout: GroupLayout, ref: NormResult, results: Sequence[NormResult]
    ) -> None:
        """Compare ``results`` with ``ref``, which cover the unit at group ``offset`` laid out
        by ``layout``."""
        quantities = [q for q in ref.quantities if any(q in r.quantities for r in results)]
        for quantity in quantities:
            want = (
                np.shape(as_array(ref.quantities[quantity]))
                if quantity not in ELEMENTWISE
                else layout.input_shape
            )
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
            rtol, atol = applied(
                self.case.tolerance,
                self.case.dtype,
                reduced_over(self.case.spec, quantity),
                ref.bounds.get(quantity),
            )
            accumulators = [self._accumulator(r.candidate, quantity, rtol) for r in having]
            if quantity in ELEMENTWISE:
                self._elementwise(offset, layout, ref, quantity, having, accumulators, rtol, atol)
            else:
                self._small(offset, ref, quantity, having, accumulators, rtol, atol)

    def _accumulator(self, candidate: str, quantity: str, rtol: float) -> Accumulator:
        key = (candidate, quantity)
        if key not in self.accumulators:
            layout = self.layouts[quantity]
            grid = (
                (layout.groups, layout.group_size)
                if self.heatmaps and quantity in ELEMENTWISE
                else None
            )
            self.accumulators[key] = Accumulator(
                rtol, self.case.tolerance.equal_nan, DTYPES[self.case.dtype], grid
            )
        return self.accumulators[key]

    def _elementwise(
        self,
        offset: int,
        layout: GroupLayout,
        ref: NormResult,
        quantity: str,
        results: Sequence[NormResult],
        accumulators: Sequence[Accumulator],
        rtol: float,
        atol: Atol,
    ) -> None:
        expected = ref.quantities[quantity]
        magnitude = np.broadcast_to(
            np.asarray(_magnitude(ref, quantity), dtype=np.float64), (layout.groups,)
        )
        reference_blocks = blocks_of(expected, layout)
        tolerance_blocks = atol_blocks(atol, layout)
        candidate_blocks = [layout.blocks(as_array(r.quantities[quantity])) for r in results]
        for first, stop in layout.spans():
            with self.clock("reference"):
                _, block = next(reference_blocks)
                tol = next(tolerance_blocks)
            with self.clock("compare"):
                shared = prepare(block, rtol, tol, magnitude[first:stop, None], self.ulp_of)
                for acc, blocks in zip(accumulators, candidate_blocks, strict=True):
                    _, actual = next(blocks)
                    acc.update(offset + first, shared, actual, tol)

    def _small(
        self,
        offset: int,
        ref: NormResult,
        quantity: str,
        results: Sequence[NormResult],
        accumulators: Sequence[Accumulator],
        rtol: float,
        atol: Atol,
    ) -> None:
        """Statistics, running statistics and parameter gradients: one block of rows of one."""
        with self.clock("compare"):
            expected = as_array(ref.quantities[quantity]).reshape(-1, 1)
            tol = np.asarray(
                as_array(atol) if isinstance(atol, LazyTensor) else atol, dtype=np.float64
            )
            tol = np.broadcast_to(tol.reshape(-1, 1) if tol.size > 1 else tol, expected.shape)
            size = np.asarray(_magnitude(ref, quantity), dtype=np.float64)
            magnitude = np.broadcast_to(
                size.reshape(-1, 1) if size.size > 1 else size, expected.shape
            )
            shared = prepare(expected, rtol, tol, magnitude, self.ulp_of)
            for acc, result in zip(accumulators, results, strict=True):
                acc.update(
                    offset, shared, as_array(result.quantities[quantity]).reshape(-1, 1), tol
                )

    def results(self) -> list[Comparison]:
        done = [acc.result(c, q, self.layouts[q]) for (c, q), acc in self.accumulators.items()]
        return done + list(self.broken.values())


def _magnitude(ref: NormResult, quantity: str) -> float | npt.NDArray[np.float64]:
    bound = ref.bounds.get(quantity)
    return 0.0 if bound is None else bound.magnitude
