"""Running a case: the reference, every candidate, and the comparisons, collected in a Report.

Candidates are compared as they are produced and then dropped, so at most one candidate's
outputs are alive at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import gradients, reference
from lncheck.backends import get_backend
from lncheck.baseline import open_baseline
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.comparison import Comparison, compare
from lncheck.errors import LncheckError
from lncheck.layers import Plan, describe, params_of
from lncheck.report import CaseResult, Header, Report, StatRow, StatsTable, SuiteReport
from lncheck.result import NormResult, Quantity, as_array
from lncheck.suite import SuiteCase
from lncheck.tolerances import applied

SMALL_TENSOR = 64  # up to this many elements, the tensors themselves are shown
FIRST_GROUPS = 3
WORST_GROUPS = 5
ELEMENTWISE = ("output", "activation", "grad_input")
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


def check_case(
    case: Case,
    backend: str | None = "torch",
    *,
    heatmaps: bool = False,
    baseline: BaselineCheck | None = None,
) -> Report:
    """Compare every candidate for ``case`` with the reference and return the report.

    ``backend=None`` checks only the case's expected output (no torch needed); ``heatmaps``
    keeps a (group, element) map of each element-wise error, for ``--plot``; ``baseline`` adds
    a check of each torch result against its recorded value.
    """
    ref = reference.run(case)
    p = case.plan
    if case.grad:
        grads, grad_bounds = gradients.backward(case)
        ref = replace(
            ref, quantities={**ref.quantities, **grads}, bounds={**ref.bounds, **grad_bounds}
        )
    layouts = {
        **dict.fromkeys(ELEMENTWISE, reference.layout_of(p)),
        **dict.fromkeys(STATISTICS, GroupLayout(p.group_shape, p.group_shape, ())),
        **dict.fromkeys(RUNNING, GroupLayout(p.stats_shape, p.stats_shape, ())),
        **dict.fromkeys(PARAMETER_GRADIENTS, GroupLayout(p.param_shape, p.param_shape, ())),
    }
    tolerance = {
        q: applied(case.tolerance, case.dtype, _reduced_over(p, q), ref.bounds.get(q))
        for q in ref.quantities
    }
    checks: list[Comparison] = []
    stats: StatsTable | None = None
    small: dict[str, npt.NDArray[np.floating]] = {}
    if case.x.size <= SMALL_TENSOR:
        small = {"input": case.x, "reference": as_array(ref.quantities["output"])}
    for result in _candidates(case, backend):
        for quantity, value in result.quantities.items():
            layout = layouts[quantity]
            expected = ref.quantities[quantity]
            if quantity in STATISTICS:  # flat per-group arrays, compared in the group's shape
                expected, value = _in_shape(expected, layout), _in_shape(value, layout)
            actual = as_array(value)
            rtol, atol = tolerance[quantity]
            if quantity in STATISTICS and not isinstance(atol, float):
                atol = np.asarray(atol).reshape(-1)
            checks.append(
                compare(
                    result.candidate,
                    quantity,
                    expected,
                    actual,
                    layout,
                    rtol=rtol,
                    atol=atol,
                    equal_nan=case.tolerance.equal_nan,
                    magnitude=_magnitude(ref, quantity),
                    ulp_dtype=case.dtype,
                    heatmap=heatmaps and quantity in ELEMENTWISE,
                )
            )
        if baseline is not None and result.candidate != EXPECTED:
            checks += _against_baseline(result, baseline, layouts)
        if stats is None and "var" in result.quantities:
            stats = _stats_table(ref, result, layouts["var"], ref.conditioning)
        # Small tensors show the first torch path and any expected output beside the reference.
        first_path = len(small) == 2
        if small and "output" in result.quantities and (first_path or result.candidate == EXPECTED):
            small[result.candidate] = as_array(result.quantities["output"])
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
        notes=case.notes,
    )
    strict = baseline is not None and baseline.strict
    return Report(header, tuple(checks), stats, small, strict_baseline=strict)


def _against_baseline(
    result: NormResult, baseline: BaselineCheck, layouts: Mapping[str, GroupLayout]
) -> list[Comparison]:
    checks = []
    for quantity, value in result.quantities.items():
        recorded = baseline.arrays.get((result.candidate, quantity))
        if recorded is None:
            continue
        layout = layouts[quantity]
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
    runs = [(case.device, "" if case.device == "cpu" else f"@{case.device}")]
    if case.vs_device is not None:
        runs.append((case.vs_device, f"@{case.vs_device}"))
    if backend is not None:
        implementation = get_backend(backend)
        for device, suffix in runs:
            for result in implementation.run(replace(case, device=device)):
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


def _stats_table(
    ref: NormResult,
    cand: NormResult,
    layout: GroupLayout,
    conditioning: npt.NDArray[np.float64] | None,
) -> StatsTable:
    """The first groups and the worst ones (by the larger relative difference of mean or var)."""
    ref_mean, ref_var = as_array(ref.quantities["mean"]), as_array(ref.quantities["var"])
    var = as_array(cand.quantities["var"])
    # A candidate without its own mean (RMSNorm's rstd-only native op) shows none.
    mean = (
        as_array(cand.quantities["mean"])
        if "mean" in cand.quantities
        else np.full_like(var, np.nan)
    )
    with np.errstate(all="ignore"):
        spread = np.sqrt(np.abs(ref_var)) + np.finfo(np.float64).tiny
        badness = np.fmax(
            np.abs(mean - ref_mean) / spread,
            np.abs(var - ref_var) / (np.abs(ref_var) + np.finfo(np.float64).tiny),
        )
    badness = np.where(np.isnan(badness), np.inf, badness)
    n = ref_mean.size
    chosen = list(range(min(FIRST_GROUPS, n)) if n > FIRST_GROUPS + WORST_GROUPS else range(n))
    for g in np.argsort(-badness, kind="stable")[:WORST_GROUPS]:
        if int(g) not in chosen and badness[g] > 0:
            chosen.append(int(g))
    rows = tuple(
        StatRow(
            layout.group_index(g),
            float(ref_mean[g]),
            float(ref_var[g]),
            float(mean[g]),
            float(var[g]),
            math.nan if conditioning is None else float(conditioning[g]),
        )
        for g in sorted(chosen)
    )
    return StatsTable(cand.candidate, rows, n - len(rows))


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
        message = report.failures[0].message() if failed else None
    return CaseResult(suite_case.name, status, report, message, seconds)


def _run_parallel(
    cases: Sequence[SuiteCase], options: SuiteOptions, done: Callable[[CaseResult], bool]
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: torch's thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=context) as pool:
        pending = {pool.submit(run_one, case, options) for case in cases}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if done(future.result()):
                    for other in pending:
                        other.cancel()
                    return


def _first_device(cases: Sequence[SuiteCase]) -> str:
    return cases[0].spec.device if cases else "cpu"
