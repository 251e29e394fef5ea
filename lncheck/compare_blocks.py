"""Comparing every candidate with the reference, block by block, unit by unit.

One ``Accumulator`` per (candidate, quantity) collects the metrics against the accepted
accuracy class's tolerance, and one ``ClassTally`` the class the difference fits. Each block of
the reference (and of its tolerance per class) is prepared once and shared by every candidate,
so adding a candidate costs only its own comparison.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from lncheck import output_model as om
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.comparison import Comparison, unmatched
from lncheck.dtypes import DTYPES, round_to
from lncheck.group_failures import COUNTED, SHOWN, FailingGroups
from lncheck.metrics import Accumulator, Shared, prepare
from lncheck.ops.spec import NormSpec
from lncheck.report import GroupFailures
from lncheck.result import ELEMENTWISE, LazyTensor, NormResult, as_array
from lncheck.tolerances import CLASSES, Atol, allowance, applied
from lncheck.verdicts import ClassTally, Distortion, GroupFacts, block_class, explain

F64 = npt.NDArray[np.float64]
PARAMETER_GRADIENTS = ("grad_weight", "grad_bias")
STRUCTURED = ("output", "activation")  # quantities the output model describes


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
    if quantity in PARAMETER_GRADIENTS:
        return spec.shared_count
    if spec.use_running_stats and quantity in ("output", "activation", "grad_input"):
        return 1  # eval mode computes no statistics
    return spec.reduced


class _Tolerances:
    """One quantity's tolerance for any accuracy class, block by block, computed on demand."""

    def __init__(self, case: Case, ref: NormResult, quantity: str, layout: GroupLayout) -> None:
        self.case, self.ref, self.quantity, self.layout = case, ref, quantity, layout
        self.n = reduced_over(case.spec, quantity)
        self.model = ref.model if quantity in STRUCTURED and case.tolerance.classified else None
        self.lipschitz = 1.0
        if quantity == "activation" and case.spec.activation is not None:
            self.lipschitz = case.spec.activation.lipschitz
        self.generic: dict[int, tuple[float, Atol]] = {}

    def rtol(self, index: int) -> float:
        if self.model is not None:
            return allowance(self.case.dtype, 1, CLASSES[index]).relative
        return self._generic(index)[0]

    def _generic(self, index: int) -> tuple[float, Atol]:
        if index not in self.generic:
            self.generic[index] = applied(
                self.case.tolerance,
                self.case.dtype,
                self.n,
                self.ref.bounds.get(self.quantity),
                CLASSES[index],
            )
        return self.generic[index]

    def atol(self, index: int, first: int, stop: int, block: om.OutputBlock | None) -> F64 | float:
        """The atol of class ``index`` on groups ``[first, stop)``."""
        if block is not None:
            own = block.atol(self.case.dtype, CLASSES[index])
            if self.quantity == "activation":
                # through the activation: L times the output's whole bound
                return self.lipschitz * (own + self.rtol(index) * np.abs(block.y))
            return own
        _, generic = self._generic(index)
        if isinstance(generic, LazyTensor):
            return generic.at(first, stop)
        values = np.asarray(generic, dtype=np.float64)
        layout = self.layout
        if values.ndim and values.size == layout.groups * layout.group_size:  # per element
            whole = values.reshape(layout.input_shape)
            return np.asarray(layout.block_at(whole, first, stop), dtype=np.float64)
        if values.ndim and values.size == layout.groups:  # per group
            return values.reshape(-1)[first:stop, None]
        if values.ndim:
            values = values.reshape(-1)[0] if values.size == 1 else values
        return float(values)


class _BlockTolerance:
    """One block's tolerances, per accuracy class, computed once and shared by candidates."""

    def __init__(self, tol: _Tolerances, first: int, stop: int) -> None:
        self.tol, self.first, self.stop = tol, first, stop
        self.block = tol.model.at(first, stop) if tol.model is not None else None
        self.cache: dict[int, F64 | float] = {}

    def atol(self, index: int) -> F64 | float:
        if index not in self.cache:
            self.cache[index] = self.tol.atol(index, self.first, self.stop, self.block)
        return self.cache[index]

    def allowed(self, index: int, shared: Shared) -> F64:
        return np.asarray(np.abs(shared.expected) * self.tol.rtol(index) + self.atol(index))


class BlockComparer:
    """One accumulator and one class tally per (candidate, quantity), fed block by block."""

    def __init__(
        self,
        case: Case,
        layouts: Mapping[str, GroupLayout],
        heatmaps: bool,
        clock: Clock,
        failing_groups: int | None = SHOWN,
    ) -> None:
        self.case, self.layouts, self.heatmaps, self.clock = case, layouts, heatmaps, clock
        self.failing_groups = failing_groups
        self.ulp_of = DTYPES[case.dtype]
        self.accumulators: dict[tuple[str, str], Accumulator] = {}
        self.tallies: dict[tuple[str, str], ClassTally] = {}
        self.facts: dict[tuple[str, str], Callable[[int], GroupFacts]] = {}
        self.broken: dict[tuple[str, str], Comparison] = {}
        self.accepted = case.tolerance.accepted_index

    def feed(
        self, offset: int, layout: GroupLayout, ref: NormResult, results: Sequence[NormResult]
    ) -> None:
        """Compare ``results`` with ``ref``, which cover the unit at group ``offset`` laid out
        by ``layout``."""
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
            tolerances = _Tolerances(self.case, ref, quantity, quantity_layout)
            for r in having:
                self._start(r.candidate, quantity, tolerances)
            self._compare(offset, quantity_layout, ref, quantity, having, tolerances)

    def _start(self, candidate: str, quantity: str, tol: _Tolerances) -> None:
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
        tol: _Tolerances,
    ) -> None:
        expected = ref.quantities[quantity]
        magnitude = np.broadcast_to(
            np.asarray(_magnitude(ref, quantity), dtype=np.float64), (layout.groups,)
        )
        rounds_to = self.ulp_of if quantity in ELEMENTWISE else None
        actuals = [_shaped(as_array(r.quantities[quantity]), layout) for r in results]
        for first, stop in layout.spans():
            with self.clock("reference"):
                here = _BlockTolerance(tol, first, stop)
                if here.block is not None and quantity == "output":
                    reference_block: npt.NDArray[np.generic] = here.block.y
                elif isinstance(expected, LazyTensor):
                    reference_block = expected.at(first, stop)
                else:
                    whole = _shaped(np.asarray(expected), layout)
                    reference_block = layout.block_at(whole, first, stop)
                shared = prepare(
                    reference_block,
                    tol.rtol(self.accepted),
                    here.atol(self.accepted),
                    magnitude[first:stop, None],
                    self.ulp_of,
                    rounds_to,
                )
            with self.clock("compare"):
                for r, actual_of in zip(results, actuals, strict=True):
                    actual = layout.block_at(actual_of, first, stop)
                    self._candidate(offset, (r.candidate, quantity), here, shared, actual)

    def _candidate(
        self,
        offset: int,
        key: tuple[str, str],
        here: _BlockTolerance,
        shared: Shared,
        actual: npt.NDArray[np.generic],
    ) -> None:
        structure = None
        if here.block is not None and key[1] == "output":
            structure = _structure(here.block, actual, self.case.dtype, self.accepted)
        err = self.accumulators[key].update(
            offset + here.first,
            shared,
            actual,
            here.atol(self.accepted),
            None if structure is None else structure.extra,
        )
        if not self.case.tolerance.classified:
            return
        worst_share = float(np.max(err * shared.inv_allowed)) if err.size else 0.0
        tally = self.tallies[key]
        tally.add(block_class(err, lambda i: here.allowed(i, shared), self.accepted, worst_share))
        if structure is not None:
            tally.add(structure.index)
            tally.distortion(structure.worst(offset + here.first))
            structure.record(tally, offset + here.first)

    def failures(self) -> dict[tuple[str, str], GroupFailures]:
        """The failing groups of every failing check that counts them."""
        return {
            key: acc.groups.failures(self.layouts[key[1]])
            for key, acc in self.accumulators.items()
            if acc.groups is not None and acc.groups.failing
        }

    def results(self) -> list[Comparison]:
        done = []
        for (candidate, quantity), acc in self.accumulators.items():
            c = acc.result(candidate, quantity, self.layouts[quantity])
            if self.case.tolerance.classified:
                tally = self.tallies[(candidate, quantity)]
                klass = tally.klass
                worst = tally.worst
                facts = _facts(self.case, quantity, worst.group)
                explanation = explain(klass, worst, facts, c.overflow, quantity)
                # a convention every group matches names a different function, whatever its
                # size; the worst group's own translation stands where it already names one
                named = klass == "mismatch" and (explanation or "").startswith("matches")
                if quantity == "output" and klass != "accurate" and not named:
                    semantic = _semantic(self.case, tally)
                    if semantic is not None:
                        klass, explanation = "mismatch", semantic
                c = replace(
                    c,
                    passed=c.passed and CLASSES.index(klass) <= self.accepted,
                    accuracy_class=klass,
                    implied_scale=worst.scale,
                    implied_shift=worst.shift,
                    explanation=explanation,
                )
            done.append(c)
        return done + list(self.broken.values())


class _Structure:
    """A block's structural verdict for one candidate."""

    def __init__(
        self,
        index: int,
        block: om.OutputBlock,
        fit: om.Fit,
        scores: om.Scores,
        kinds: list[str | None],
    ) -> None:
        self.index, self.block, self.fit, self.scores = index, block, fit, scores
        self.extra, self.group_score, self.kinds = scores.extra, scores.group, kinds

    def record(self, tally: ClassTally, first: int) -> None:
        """Every group's distortion, for the conventions that may explain them all."""
        tally.distortions.add(
            first,
            self.fit.fitted,
            self.fit.ds,
            self.fit.shift,
            self.scores.scale_accurate,
            self.scores.shift_accurate,
            _uniform_value(self.block.weight, self.block.y.shape[0], 1.0),
            _uniform_value(self.block.bias, self.block.y.shape[0], 0.0),
        )

    def worst(self, first: int) -> Distortion:
        g = int(np.argmax(self.group_score)) if self.group_score.size else 0
        return Distortion(
            float(self.group_score[g]),
            float(self.fit.scale[g]),
            float(self.fit.shift[g]),
            first + g,
            self.kinds[g],
            float(self.scores.scale_accurate[g]),
            float(self.scores.shift_accurate[g]),
        )


def _structure(
    block: om.OutputBlock, actual: npt.NDArray[np.generic], dtype: str, accepted: int
) -> _Structure:
    rounded = np.asarray(round_to(block.y, dtype), dtype=np.float64)  # type: ignore[arg-type]
    fit = om.fit(block, actual, block.residual_bound(dtype, CLASSES[0]), rounded)
    classes, scores, kinds = om.judge(
        block, fit, actual, dtype, CLASSES[: len(CLASSES) - 1], accepted
    )
    return _Structure(int(classes.max()) if classes.size else 0, block, fit, scores, kinds)


def _uniform_value(param: F64 | None, groups: int, default: float) -> F64:
    """Per group, the parameter's value where it is the same for every element, else NaN."""
    if param is None:
        return np.full(groups, default)
    return np.where(np.ptp(param, axis=1) == 0, param[:, 0], np.nan)


def _flat(ref: NormResult, quantity: str) -> GroupLayout:
    shape = np.shape(as_array(ref.quantities[quantity]))
    size = math.prod(shape)
    return GroupLayout((size, 1), (size, 1), (1,))


def _shaped(a: npt.NDArray[np.generic], layout: GroupLayout) -> npt.NDArray[np.generic]:
    return a if a.shape == layout.input_shape else np.reshape(a, layout.input_shape)


def _semantic(case: Case, tally: ClassTally) -> str | None:
    from lncheck.reference import normalizing_statistics

    _, var = normalizing_statistics(case)
    spec = case.spec
    return tally.distortions.explain(
        var, spec.eps, spec.group_size, spec.center, spec.weight_offset
    )


def _facts(case: Case, quantity: str, group: int) -> GroupFacts | None:
    if quantity not in STRUCTURED or group < 0 or not case.spec.statistics:
        return None
    from lncheck.reference import normalizing_statistics

    _, var = normalizing_statistics(case)
    with np.errstate(all="ignore"):
        rstd = float(1.0 / np.sqrt(var[group] + case.spec.eps))
    return GroupFacts(
        float(var[group]), case.spec.eps, case.spec.group_size, case.spec.center, rstd, case.dtype
    )


def _magnitude(ref: NormResult, quantity: str) -> float | npt.NDArray[np.float64]:
    bound = ref.bounds.get(quantity)
    return 0.0 if bound is None else bound.magnitude
