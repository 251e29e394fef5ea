"""Running a suite: which cases (shards, ``-k``), in which processes, and what each verdict means
(skip, xfail, fail-fast, baselines)."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lncheck.backends import get_backend
from lncheck.drift import BaselineCheck
from lncheck.errors import InputError, LncheckError, option
from lncheck.pipeline import check_case
from lncheck.report import CaseResult, SuiteReport
from lncheck.suite.baseline import open_baseline
from lncheck.suite.parse import SuiteCase
from lncheck.tolerances import ToleranceSpec


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
        names = (option("baseline_rtol"), option("baseline_atol"))
        ToleranceSpec.from_options(self.baseline_rtol, self.baseline_atol, names=names)
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise InputError(f"{option('jobs')} must be at least 1, got {self.jobs!r}")


def select(
    cases: Iterable[SuiteCase], *, shard: tuple[int, int] | None = None, pattern: str | None = None
) -> list[SuiteCase]:
    """The cases a run takes: shard ``(i, n)`` keeps every n-th case from the i-th (0-based) of
    the whole suite, so shards never overlap; ``pattern`` then keeps names containing it (or
    matching it, if it has glob characters)."""
    if shard is not None:
        _check_shard(shard)
    chosen = [c for c in cases if shard is None or c.index % shard[1] == shard[0]]
    if pattern is None:
        return chosen
    if any(ch in pattern for ch in "*?["):
        return [c for c in chosen if fnmatch.fnmatchcase(c.name, pattern)]
    return [c for c in chosen if pattern in c.name]


def _check_shard(shard: object) -> None:
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    )
    if not ok or not 0 <= shard[0] < shard[1]:  # type: ignore[index]
        raise InputError(
            f"{option('shard')} must be (i, n) with integers 0 <= i < n, got {shard!r}"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``.

    Raises:
        InputError: not of the form I/N with 0 <= I < N.
    """
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"{option('shard')} must be I/N such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise InputError(
            f"{option('shard')} {text}: I must be in 0..N-1 (shards are numbered from 0)"
        )
    return i, n


def run_cases(
    suite_path: str,
    cases: Sequence[SuiteCase],
    options: SuiteOptions = SuiteOptions(),
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteReport:
    """Run ``cases`` (validated, see ``suite.parse.load_suite``) and collect a ``SuiteReport``."""
    environment = environment_of(cases)
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


def environment_of(cases: Sequence[SuiteCase]) -> dict[str, object]:
    """Where a run happens: the first case's backend and device."""
    first = cases[0].settings if cases else None
    backend = get_backend("torch" if first is None else first["backend"])
    return backend.environment("cpu" if first is None else first["device"])


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
        error = str(suite_case.settings.spell(e))
        return CaseResult(suite_case.name, "error", message=error, seconds=_since(start))
    except Exception as e:  # a bug in lncheck: one case's error, not the whole run's
        error = f"internal error: {type(e).__name__}: {e}"
        return CaseResult(suite_case.name, "error", message=error, seconds=_since(start))
    failed = not report.passed
    message: str | None
    if suite_case.xfail is not None:
        status = "xfail" if failed else "xpass"
        message = (
            suite_case.xfail if failed else f"passed, but is marked xfail ({suite_case.xfail})"
        )
    else:
        status = "fail" if failed else "pass"
        worst = report.worst_failure()
        message = None if worst is None else worst.message()
    return CaseResult(suite_case.name, status, report, message, _since(start))


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
