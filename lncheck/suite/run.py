"""Running a suite: which cases (shards, ``-k``), in which processes, and what each verdict means
(skip, xfail, fail-fast, baselines)."""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lncheck.backends import get_backend
from lncheck.case import Case
from lncheck.drift import BaselineCheck
from lncheck.errors import InputError, LncheckError, option
from lncheck.pipeline import backend_for, check_case, resolved
from lncheck.report import CaseResult, SuiteReport
from lncheck.suite.baseline import case_digests, case_options, open_baseline
from lncheck.suite.parse import SuiteCase
from lncheck.tolerance_spec import ToleranceSpec
from lncheck.values import integer


@dataclass(frozen=True)
class SuiteOptions:
    """How to run a suite's cases (everything but which cases)."""

    baseline: str | None = None
    baseline_rtol: float = 0.0
    baseline_atol: float = 0.0
    strict_baseline: bool = False
    fail_fast: bool = False
    jobs: int = 1
    root: str = "."  # the suite file's folder (set by ``run_cases``): baseline paths are under it

    def __post_init__(self) -> None:
        names = (option("baseline_rtol"), option("baseline_atol"))
        ToleranceSpec.from_options(self.baseline_rtol, self.baseline_atol, names=names)
        if integer(self.jobs, "jobs") < 1:  # 2.5 or "a" is no count, 0 none to run
            raise InputError(f"{option('jobs')} must be at least 1, got {self.jobs!r}")


def select(
    cases: Iterable[SuiteCase], *, shard: tuple[int, int] | None = None, pattern: str | None = None
) -> list[SuiteCase]:
    """The cases a run takes: ``pattern`` keeps names containing it (or matching it, if it has
    glob characters); shard ``(i, n)`` keeps every n-th case from the i-th, counting from 1 (as
    CI matrix indices do) over the whole suite, so shards never overlap and together run
    every case once. A shard may be left empty (by ``pattern``, or more shards than cases).

    Raises:
        InputError: a shard that is not ``(i, n)`` with ``1 <= i <= n``, or a ``pattern`` that
            matches no case of the whole suite (a likely typo).
    """
    if shard is not None:
        _check_shard(shard)
    cases = list(cases)
    if pattern is not None:
        matched = [c for c in cases if _matches(c.name, pattern)]
        if not matched:
            names = ", ".join(c.name for c in cases[:8]) + (", ..." if len(cases) > 8 else "")
            raise InputError(f"{option('pattern')} {pattern!r} matches no case (cases: {names})")
        cases = matched
    if shard is None:
        return cases
    i, n = shard
    return [c for c in cases if c.index % n == i - 1]


def _matches(name: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def _check_shard(shard: object) -> None:
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    )
    if not ok or not 1 <= shard[0] <= shard[1]:  # type: ignore[index]
        raise InputError(
            f"{option('shard')} must be (i, n) with integers 1 <= i <= n (shards count from 1), "
            f"got {shard!r}"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``: the first of four shards.

    Raises:
        InputError: not of the form I/N with 1 <= I <= N.
    """
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"{option('shard')} must be I/N such as 1/4, got {text!r}") from None
    if n < 1:
        raise InputError(f"{option('shard')} {text}: N, the number of shards, must be 1 or more")
    if not 1 <= i <= n:
        raise InputError(
            f"{option('shard')} {text}: I must be in 1..N (shards count from 1: 1/{n} to {n}/{n})"
        )
    return i, n


def selection_note(cases: Sequence[SuiteCase], shard: tuple[int, int] | None) -> list[str]:
    """What to say about an empty selection (a shard that ``-k`` left empty): not an error."""
    if cases:
        return []
    where = "" if shard is None else f" in shard {shard[0]}/{shard[1]}"
    return [f"no case to run{where}: the selection left this shard empty"]


def run_cases(
    suite_path: str,
    cases: Sequence[SuiteCase],
    options: SuiteOptions = SuiteOptions(),
    on_result: Callable[[CaseResult], None] | None = None,
    notes: Sequence[str] = (),
) -> SuiteReport:
    """Run ``cases`` (validated, see ``suite.parse.load_suite``; the baseline too, with
    ``open_baseline(verify=True)``: here only its metadata is read) and collect a
    ``SuiteReport`` (with ``notes`` about the selection).

    Raises:
        InputError: the baseline is missing or not one (before any case runs).
    """
    environment = environment_of(cases)
    notes = list(notes)
    options = replace(options, root=str(Path(suite_path).parent))
    if options.baseline is not None:
        baseline = open_baseline(options.baseline)
        notes += baseline.notes(environment)
        if cases and not any(baseline.has(c.name) for c in cases):  # another suite's, or stale
            run = "the case run" if len(cases) == 1 else f"the {len(cases)} cases run"
            notes.append(f"the baseline records none of {run}: nothing was compared with it")
    results: list[CaseResult] = []

    def done(result: CaseResult) -> bool:
        results.append(result)
        if on_result is not None:
            on_result(result)
        return options.fail_fast and not result.ok

    # More workers than CPUs only share them out (each torch process also runs threads), and
    # more than cases only start processes that have nothing to do.
    cpus = os.cpu_count() or 1
    workers = min(options.jobs, cpus, max(len(cases), 1))
    if options.jobs > cpus:
        notes.append(f"{options.jobs} jobs asked for; {cpus} run, one per CPU of this machine")
    if workers <= 1:
        for case in cases:
            if done(run_one(case, options)):
                break
    else:
        _run_parallel(cases, replace(options, jobs=workers), done)
    order = {c.name: c.index for c in cases}
    results.sort(key=lambda r: order[r.name])
    if len(results) < len(cases):  # --fail-fast stopped the run: say what it left out
        left = len(cases) - len(results)
        what = "case was" if left == 1 else "cases were"
        notes.append(f"stopped at the first failure: {left} {what} not run")
    return SuiteReport(suite_path, tuple(results), environment, tuple(notes))


def environment_of(cases: Sequence[SuiteCase]) -> dict[str, object]:
    """Where a run happens: the first case's backend and device (the CPU where that device is
    not here: the case itself then fails with its own error, naming it)."""
    first = cases[0].settings if cases else None
    backend = get_backend("torch" if first is None else first["backend"])
    try:
        return backend.environment("cpu" if first is None else first["device"])
    except LncheckError:
        return backend.environment("cpu")


def run_one(suite_case: SuiteCase, options: SuiteOptions) -> CaseResult:
    """One case of a suite, never raising: errors become a result with status ``error``.

    Against a baseline, a case whose options changed since it was recorded (or that was never
    recorded) is not compared with it: it gets status ``drift`` (``fail`` if strict) with a
    message that says so, apart from results that drifted.
    """
    if suite_case.skip is not None:
        return CaseResult(suite_case.name, "skip", message=suite_case.skip)
    start = time.perf_counter()
    stale: str | None = None
    try:
        case = suite_case.load()
        baseline = None
        if options.baseline is not None:
            baseline, stale = _against(suite_case, case, options)
        report = check_case(case, baseline=baseline)
    except LncheckError as e:
        error = str(suite_case.settings.spell(e))
        return CaseResult(suite_case.name, "error", message=error, seconds=_since(start))
    except Exception as e:  # a bug in lncheck: one case's error, not the whole run's
        error = f"internal error: {type(e).__name__}: {e}"
        return CaseResult(suite_case.name, "error", message=error, seconds=_since(start))
    failed = not report.passed
    message: str | None
    worst = report.worst_failure()
    if suite_case.xfail is not None:
        status = "xfail" if failed else "xpass"
        message = (
            suite_case.xfail if failed else f"passed, but is marked xfail ({suite_case.xfail})"
        )
    elif failed or (stale is not None and options.strict_baseline):
        status = "fail"
        message = stale if worst is None else worst.message()
    elif stale is not None or report.drift:
        status, message = "drift", stale
    else:
        status, message = "pass", None
    return CaseResult(suite_case.name, status, report, message, _since(start))


def _against(
    suite_case: SuiteCase, case: Case, options: SuiteOptions
) -> tuple[BaselineCheck | None, str | None]:
    """The baseline check of a case, or why there is none (never recorded, options changed)."""
    assert options.baseline is not None
    recorded = open_baseline(options.baseline)
    name = suite_case.name
    if not recorded.has(name):
        return None, "not in the baseline (record it with lncheck baseline)"
    now = case_options(suite_case, resolved(case, backend_for(case)), Path(options.root))
    changes = recorded.changes(name, now)
    if changes:
        return None, (
            "case options changed since the baseline: " + ", ".join(changes)
            + " (not compared with it; re-record the case)"
        )  # fmt: skip
    values = recorded.changed_values(name, case_digests(case))
    if values:
        return None, (
            f"the {' and '.join(values)} values differ from those recorded in the baseline "
            "(not compared with it; re-record the case)"
        )
    arrays = recorded.arrays(name)
    check = BaselineCheck(
        arrays, options.baseline_rtol, options.baseline_atol, options.strict_baseline
    )
    return check, None


def _since(start: float) -> float:
    return time.perf_counter() - start


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
