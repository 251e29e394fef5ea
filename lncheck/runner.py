"""Running a case: the reference, every candidate, and the comparisons, collected in a Report.

Candidates are compared as they are produced and then dropped, so at most one candidate's
outputs are alive at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import gradients, reference
from lncheck.backends import get_backend
from lncheck.baseline import open_baseline
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.comparison import (
    Accumulator,
    Comparison,
    atol_blocks,
    compare,
    not_made,
    prepare,
    unmatched,
)
from lncheck.dtypes import DTYPES
from lncheck.errors import LncheckError
from lncheck.io import release_pages
from lncheck.layers import Plan, describe, params_of, plan
from lncheck.report import CaseResult, Header, Report, StatRow, StatsTable, SuiteReport
from lncheck.result import ELEMENTWISE, LazyTensor, NormResult, Quantity, as_array, blocks_of
from lncheck.suite import SuiteCase
from lncheck.tolerances import Atol, applied

SMALL_TENSOR = 64  # up to this many elements, the tensors themselves are shown
FIRST_GROUPS = 3
WORST_GROUPS = 5
PARAMETER_GRADIENTS = ("grad_weight", "grad_bias")
STATISTICS = ("mean", "var", "rstd")
RUNNING = ("running_mean", "running_var")
EXPECTED = "expected"  # the candidate name of an output given with --expected


@dataclass(frozen=True)
class BaselineCheck:
    """Recorded torch results of one case, and the tolerance a difference from them needs to be
    called drift (bitwise by default)."""

    arrays: Mapping[tuple[str, str], npt.NDArray[Any]]
    rtol: float = 0.0
    atol: float = 0.0
    strict: bool = False


# Above this many elements, per-sample ops are checked chunk by chunk: torch runs on about this
# many elements at a time and every candidate is compared against one reference block.
CHUNK_ELEMENTS = 1 << 21
CHUNKABLE = ("layer_norm", "rms_norm", "group_norm", "instance_norm", "local_response_norm")


def check_case(
    case: Case,
    backend: str | None = "torch",
    *,
    heatmaps: bool = False,
    baseline: BaselineCheck | None = None,
    timings: dict[str, float] | None = None,
    chunk_elements: int | None = CHUNK_ELEMENTS,
) -> Report:
    """Compare every candidate for ``case`` with the reference and return the report.

    ``backend=None`` checks only the case's expected output (no torch needed); ``heatmaps``
    keeps a (group, element) map of each element-wise error, for ``--plot``; ``baseline`` adds
    a check of each torch result against its recorded value; ``timings`` collects seconds per
    stage (reference, torch, compare).

    Large inputs of ops whose samples are independent (all but BatchNorm) are checked chunk by
    chunk (``chunk_elements`` per torch call; ``None`` never chunks): memory stays bounded
    whatever the size, and each reference block is computed once for every candidate. Other
    cases run torch on the whole tensor, one candidate at a time.
    """
    p = case.plan
    clock = _Clock(timings)
    layouts = {
        **dict.fromkeys(ELEMENTWISE, reference.layout_of(p)),
        **dict.fromkeys(STATISTICS, GroupLayout(p.group_shape, p.group_shape, ())),
        **dict.fromkeys(RUNNING, GroupLayout(p.stats_shape, p.stats_shape, ())),
        **dict.fromkeys(PARAMETER_GRADIENTS, GroupLayout(p.param_shape, p.param_shape, ())),
    }
    feeder = _Feeder(case, layouts, heatmaps, clock)
    stats = _StatsCollector(layouts["var"])
    small: dict[str, npt.NDArray[np.floating]] = {}
    extra: list[Comparison] = []
    units = _units(case, chunk_elements if baseline is None else None)
    previous: npt.NDArray[Any] | None = None
    for offset, unit in units.parts:
        if units.chunked and previous is not None:
            release_pages(previous, case.x)
        previous = unit.x if units.chunked else None
        with clock("reference"):
            ref = reference.run(unit)
            if unit.grad:
                grads, grad_bounds = gradients.backward(unit)
                ref = replace(
                    ref,
                    quantities={**ref.quantities, **grads},
                    bounds={**ref.bounds, **grad_bounds},
                )
        if case.x.size <= SMALL_TENSOR:
            small = {"input": case.x, "reference": as_array(ref.quantities["output"])}
        candidates = _timed(_candidates(unit, backend), clock)
        # Chunks are small: compare every candidate in one pass over the reference blocks.
        # The whole tensor: one candidate at a time, so that one output is alive at a time.
        batches = [list(candidates)] if units.chunked else ([r] for r in candidates)
        for batch in batches:
            feeder.feed(offset, reference.layout_of(unit.plan), ref, batch)
            for result in batch:
                stats.add(offset, ref, result)
                if baseline is not None and result.candidate != EXPECTED:
                    extra += _against_baseline(result, baseline, layouts)
                # Small tensors show the first torch path and any expected output.
                wanted = len(small) == 2 or result.candidate == EXPECTED
                if small and "output" in result.quantities and wanted:
                    small[result.candidate] = as_array(result.quantities["output"])
    if previous is not None:
        release_pages(previous, case.x)
    header = Header(
        case=case.name,
        op=p.op,
        layer=describe(p),
        input_shape=p.input_shape,
        input_dtype=case.input_dtype,
        dtype=case.dtype,
        groups=p.groups,
        group_size=p.group_size,
        params=params_of(p),
        tolerance=_describe_tolerance(case),
        device=case.device,
        notes=case.notes + units.notes,
    )
    strict = baseline is not None and baseline.strict
    checks = feeder.results() + extra
    return Report(header, tuple(checks), stats.table(), small, strict_baseline=strict)


class _Clock:
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


def _timed(results: Iterator[NormResult], clock: _Clock) -> Iterator[NormResult]:
    """The candidates, with the time spent producing them counted as torch's."""
    while True:
        with clock("torch"):
            result = next(results, None)
        if result is None:
            return
        yield result


@dataclass(frozen=True)
class _Units:
    parts: Iterable[tuple[int, Case]]  # (index of the first group, the case restricted to it)
    chunked: bool
    notes: tuple[str, ...] = ()


def _units(case: Case, chunk_elements: int | None) -> _Units:
    """The whole case, or lazily its chunks along the first axis (each a case of its own)."""
    p = case.plan
    rows = _rows_view(case)
    if (
        chunk_elements is None
        or rows is None
        or p.op not in CHUNKABLE
        or p.update_running_stats
        or case.grad
        or case.x.size < 2 * chunk_elements
    ):
        return _Units([(0, case)], chunked=False)
    x, per_row = rows
    rows = x.shape[0]
    step = max(2, chunk_elements // max(1, math.prod(x.shape[1:])))
    if step >= rows:
        return _Units([(0, case)], chunked=False)
    starts = list(range(0, rows, step))
    if rows - starts[-1] < 2:  # a lone last sample: GroupNorm, say, may refuse one
        starts.pop()
    bounds = list(zip(starts, [*starts[1:], rows], strict=True))
    note = (
        f"checked in chunks of {step} along the first axis "
        f"({step * math.prod(x.shape[1:])} elements per torch call)"
    )
    return _Units(
        ((start * per_row, _chunk(case, x, start, stop)) for start, stop in bounds),
        chunked=True,
        notes=(note,),
    )


def _rows_view(case: Case) -> tuple[npt.NDArray[Any], int] | None:
    """The input as rows along which its groups are independent, and the groups per row.

    LayerNorm and RMSNorm over trailing dims flatten the leading ones (free for a contiguous
    input); ops with a batch axis use it as it is. ``None`` when neither applies.
    """
    p = case.plan
    ndim = len(p.input_shape)
    trailing = tuple(range(ndim - len(p.reduce_axes), ndim))
    if p.op in ("layer_norm", "rms_norm") and p.reduce_axes == trailing and len(trailing) < ndim:
        shape = (-1, *p.input_shape[ndim - len(trailing) :])
        if not case.x.flags.c_contiguous:
            return None
        x = case.x.reshape(shape)
        return x, 1
    if 0 in p.reduce_axes or p.input_shape[0] < 2:
        return None
    return case.x, p.groups // p.input_shape[0]


def _chunk(case: Case, x: npt.NDArray[Any], start: int, stop: int) -> Case:
    p = case.plan
    part = x[start:stop]
    layer = p.layer
    if part.ndim != len(p.input_shape):  # flattened LayerNorm/RMSNorm rows
        layer = layer.with_(axes=None, normalized_shape=tuple(part.shape[1:]))
    elif layer.axes is not None:  # the plan filled normalized_shape in from the axes
        layer = layer.with_(normalized_shape=None)
    expected = None if case.expected is None else case.expected.reshape(x.shape)[start:stop]
    sub = plan(layer, tuple(part.shape), case.dtype, default_eps=p.eps)
    return replace(case, x=part, expected=expected, plan=sub, layer=sub.layer)


class _Feeder:
    """One accumulator per (candidate, quantity), fed block by block, unit by unit."""

    def __init__(
        self, case: Case, layouts: Mapping[str, GroupLayout], heatmaps: bool, clock: _Clock
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
                _reduced_over(self.case.plan, quantity),
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


class _StatsCollector:
    """The statistics table across units: the first groups, and the worst ones overall."""

    def __init__(self, layout: GroupLayout) -> None:
        self.layout = layout
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
        return StatsTable(self.candidate, rows, self.seen - len(rows))


def _against_baseline(
    result: NormResult, baseline: BaselineCheck, layouts: Mapping[str, GroupLayout]
) -> list[Comparison]:
    checks = []
    for quantity, value in result.quantities.items():
        recorded = baseline.arrays.get((result.candidate, quantity))
        layout = layouts[quantity]
        if recorded is None:  # drift cannot be ruled out: counts as drift under --strict-baseline
            size = math.prod(value.shape)
            missing = not_made(result.candidate, quantity, size, "not in the baseline")
            checks.append(replace(missing, kind="baseline"))
            continue
        actual = as_array(value)
        if quantity in STATISTICS:
            recorded, actual = _in_shape(recorded, layout), _in_shape(actual, layout)  # type: ignore[assignment]
        c = compare(
            result.candidate,
            quantity,
            recorded,
            actual,
            layout,
            rtol=baseline.rtol,
            atol=baseline.atol,
            equal_nan=True,  # a NaN recorded and a NaN today: no drift
        )
        checks.append(replace(c, kind="baseline"))
    return checks


def _magnitude(ref: NormResult, quantity: str) -> float | npt.NDArray[np.float64]:
    bound = ref.bounds.get(quantity)
    return 0.0 if bound is None else bound.magnitude


def _in_shape(q: Quantity, layout: GroupLayout) -> Quantity:
    a = as_array(q)
    return a.reshape(layout.input_shape) if a.size == math.prod(layout.input_shape) else a


def _candidates(case: Case, backend: str | None) -> Iterator[NormResult]:
    """Every implementation under test: torch on the case's device (names get ``@device``
    unless it is the CPU), torch on ``--vs-device``, then any expected output."""
    runs = [(case.device, "" if case.device == "cpu" else f"@{case.device}", "--device")]
    if case.vs_device is not None:
        runs.append((case.vs_device, f"@{case.vs_device}", "--vs-device"))
    if backend is not None:
        implementation = get_backend(backend)
        for device, suffix, option in runs:
            for result in implementation.run(replace(case, device=device), option):
                yield replace(result, candidate=result.candidate + suffix) if suffix else result
    if case.expected is not None:
        yield NormResult(EXPECTED, {"output": case.expected})


def _describe_tolerance(case: Case) -> str:
    return case.tolerance.describe(case.dtype, _reduced_over(case.plan, "output"))


def _reduced_over(p: Plan, quantity: str) -> int:
    """How many values each element of a quantity is reduced from (its error grows with it)."""
    if p.op == "local_response_norm":
        return p.layer.size or 1
    if quantity in PARAMETER_GRADIENTS:
        return gradients.shared_count(p)
    return p.group_size


# --- suites ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteOptions:
    """How to run a suite's cases (everything but which cases)."""

    baseline: str | None = None
    baseline_rtol: float = 0.0
    baseline_atol: float = 0.0
    strict_baseline: bool = False
    fail_fast: bool = False
    jobs: int = 1

    def __post_init__(self) -> None:
        from lncheck.tolerances import ToleranceSpec

        names = ("--baseline-rtol", "--baseline-atol")
        ToleranceSpec.from_options(self.baseline_rtol, self.baseline_atol, names=names)


def run_cases(
    suite_path: str,
    cases: Sequence[SuiteCase],
    options: SuiteOptions = SuiteOptions(),
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteReport:
    """Run ``cases`` (validated, see ``suite.load_suite``) and collect a ``SuiteReport``."""
    environment = get_backend().environment(_first_device(cases))
    notes: list[str] = []
    if options.baseline is not None:
        notes += open_baseline(options.baseline).notes(environment)
    results: list[CaseResult] = []

    def done(result: CaseResult) -> bool:
        results.append(result)
        if on_result is not None:
            on_result(result)
        return options.fail_fast and not result.ok

    if options.jobs <= 1:
        for case in cases:
            if done(run_one(case, options)):
                break
    else:
        _run_parallel(cases, options, done)
    order = {c.name: c.index for c in cases}
    results.sort(key=lambda r: order[r.name])
    return SuiteReport(suite_path, tuple(results), environment, tuple(notes))


def run_one(suite_case: SuiteCase, options: SuiteOptions) -> CaseResult:
    """One case of a suite, never raising: errors become a result with status ``error``."""
    if suite_case.skip is not None:
        return CaseResult(suite_case.name, "skip", message=suite_case.skip)
    start = time.perf_counter()
    try:
        case = suite_case.load()
        baseline = None
        if options.baseline is not None:
            arrays = open_baseline(options.baseline).arrays(suite_case.name)
            baseline = BaselineCheck(
                arrays, options.baseline_rtol, options.baseline_atol, options.strict_baseline
            )
        report = check_case(case, baseline=baseline)
    except LncheckError as e:
        return CaseResult(
            suite_case.name, "error", message=str(e), seconds=time.perf_counter() - start
        )
    except Exception as e:  # a bug in lncheck: one case's error, not the whole run's
        return CaseResult(
            suite_case.name,
            "error",
            message=f"internal error: {type(e).__name__}: {e}",
            seconds=time.perf_counter() - start,
        )
    seconds = time.perf_counter() - start
    failed = not report.passed
    message: str | None
    if suite_case.xfail is not None:
        status = "xfail" if failed else "xpass"
        message = (
            suite_case.xfail if failed else f"passed, but is marked xfail ({suite_case.xfail})"
        )
    else:
        status = "fail" if failed else "pass"
        worst = max(report.failures, key=lambda c: c.tolerance_used) if failed else None
        message = None if worst is None else worst.message()
    return CaseResult(suite_case.name, status, report, message, seconds)


def _run_parallel(
    cases: Sequence[SuiteCase], options: SuiteOptions, done: Callable[[CaseResult], bool]
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: torch's thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    left = {case.name: case for case in cases}
    try:
        with ProcessPoolExecutor(max_workers=options.jobs, mp_context=context) as pool:
            pending = {pool.submit(run_one, case, options) for case in cases}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    left.pop(result.name, None)
                    if done(result):
                        for other in pending:
                            other.cancel()
                        return
    except BrokenProcessPool:
        # a worker died (killed for memory, or a script without an ``if __name__ ==
        # "__main__":`` guard that spawn cannot re-import): finish here, one case at a time
        for case in left.values():
            if done(run_one(case, options)):
                return


def _first_device(cases: Sequence[SuiteCase]) -> str:
    return cases[0].spec.device if cases else "cpu"
