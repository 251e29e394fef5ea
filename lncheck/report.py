"""The report: every comparison of a case, plus what the tables need to show it, as plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.comparison import Comparison
from lncheck.errors import ExitStatus


@dataclass(frozen=True)
class StatRow:
    """One group's statistics: the reference's and the candidate's own internal ones."""

    group: tuple[int, ...]
    ref_mean: float
    ref_var: float
    mean: float
    var: float
    conditioning: float = (
        math.nan
    )  # |mean| / sqrt(var + eps): how much the output amplifies rounding

    @property
    def mean_diff(self) -> float:
        return self.mean - self.ref_mean

    @property
    def var_diff(self) -> float:
        return self.var - self.ref_var


@dataclass(frozen=True)
class StatsTable:
    """The groups worth showing (the first few and the worst), and how many were left out."""

    candidate: str  # "" when no candidate returns statistics: the reference's alone
    rows: tuple[StatRow, ...]
    omitted: int
    label: str = "candidate"  # how the candidate's side is headed, e.g. "torch"
    # mean and variance (LayerNorm, ...), or the mean square in ``var`` (RMSNorm, LRN)
    centred: bool = True


@dataclass(frozen=True)
class GroupFailures:
    """The failing groups of one check: how many fail (of ``groups`` of ``group_size``
    elements), and the worst ones (all with ``--all-groups``) as ``(group index, mismatched
    elements)``, most mismatches first."""

    failing: int
    groups: int
    group_size: int
    worst: tuple[tuple[tuple[int, ...], int], ...]

    @property
    def complete(self) -> bool:
        """Whether ``worst`` lists every failing group."""
        return len(self.worst) == self.failing


@dataclass(frozen=True)
class Header:
    """What was checked: the facts shown above the tables."""

    case: str
    op: str
    layer: str
    input_shape: tuple[int, ...]
    input_dtype: str
    dtype: str
    groups: int
    group_size: int
    params: Mapping[str, Any]
    tolerance: str
    device: str = "cpu"
    notes: tuple[str, ...] = ()
    input: str = ""  # where the input came from, where that is not ``case`` (a suite's case)
    group_shape: tuple[int, ...] = ()  # how groups are indexed in the tables (and plots)
    window: int | None = None  # values each element is reduced over, if not its group (LRN)
    over: str = ""  # the input axes each group spans, in words (``NormSpec.averaged_over``)


@dataclass(frozen=True)
class Report:
    """Everything one case produced. The verdict is on the object: ``passed``, ``exit_status``."""

    header: Header
    checks: tuple[Comparison, ...]
    stats: StatsTable | None = None
    small: Mapping[str, npt.NDArray[np.floating]] = field(default_factory=dict)
    strict_baseline: bool = False
    names: Mapping[str, str] = field(default_factory=dict)  # candidate -> its display name
    # (candidate, quantity) -> where that check fails, group by group
    failing_groups: Mapping[tuple[str, str], GroupFailures] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the check (JUnit's testcase time)

    def name(self, candidate: str) -> str:
        """How tables show a candidate (the backend's short name, e.g. ``F.layer_norm``)."""
        return self.names.get(candidate, candidate)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[Comparison, ...]:
        """Failed checks that count: against the reference or a candidate's first run
        (``--repeat``), and against a baseline if strict."""
        return tuple(
            c
            for c in self.checks
            if not c.passed and (c.kind != "baseline" or self.strict_baseline)
        )

    def worst_failure(self) -> Comparison | None:
        """The failing check furthest outside its tolerance."""
        return max(self.failures, key=lambda c: c.tolerance_used) if self.failures else None

    @property
    def drift(self) -> tuple[Comparison, ...]:
        """Baseline checks whose result moved beyond the baseline tolerance."""
        return tuple(c for c in self.checks if c.kind == "baseline" and not c.passed)

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK if self.passed else ExitStatus.CHECK_FAILED

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``lncheck compare --json`` (the schema is ``render.json``'s)."""
        from lncheck.render.json import report_document

        return report_document(self)


# "pass", "fail", "drift" (passed, but differs from the baseline, or was not compared with it),
# "skip", "xfail", "xpass" or "error"
CaseStatus = str
STATUSES = ("pass", "fail", "drift", "skip", "xfail", "xpass", "error")


@dataclass(frozen=True)
class CaseResult:
    """One case of a suite run: its status, its report (unless skipped or in error), its time."""

    name: str
    status: CaseStatus
    report: Report | None = None
    message: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "drift", "skip", "xfail")

    def worst(self) -> Comparison | None:
        """The check that used the most of its tolerance (a failing one first)."""
        if self.report is None or not self.report.checks:
            return None
        return max(self.report.checks, key=lambda c: (not c.passed, c.tolerance_used))


@dataclass(frozen=True)
class SuiteReport:
    """A suite run: every case's result and where it ran."""

    suite: str
    results: tuple[CaseResult, ...]
    environment: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_status(self) -> ExitStatus:
        if any(r.status == "error" for r in self.results):
            return ExitStatus.INVALID_INPUT
        return ExitStatus.OK if self.passed else ExitStatus.CHECK_FAILED

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            out[r.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``lncheck run --json FILE`` (the schema is ``render.json``'s)."""
        from lncheck.render.json import suite_document

        return suite_document(self)
