"""Drift: a backend's results today against those recorded in a baseline."""

from __future__ import annotations

import numpy as np

from lncheck.blocks import GroupLayout
from lncheck.drift import BaselineCheck, drift_checks
from lncheck.pipeline import check_case
from lncheck.result import NormResult

from .support import make_case

LAYOUTS = {"output": GroupLayout((2, 4), (2, 4), (1,))}


def test_identical_nans_are_no_drift() -> None:
    case = make_case(np.ones((2, 4), np.float32), normalized_shape=4, eps=0.0)
    recorded = {("torch.nn.LayerNorm", "output"): np.full((2, 4), np.nan, np.float32)}
    report = check_case(case, baseline=BaselineCheck(recorded, strict=True))
    drift = [c for c in report.checks if c.kind == "baseline" and c.note is None]
    assert len(drift) == 1 and drift[0].passed
    # the rest were never recorded: reported, and failing the strict run
    missing = [c for c in report.checks if c.note == "not in the baseline"]
    assert missing and not any(c.passed for c in missing) and not report.passed


def test_drift_is_bitwise_unless_a_tolerance_is_given() -> None:
    today = NormResult("torch.x", {"output": np.full((2, 4), 1.0 + 2**-20)})
    recorded = {("torch.x", "output"): np.ones((2, 4))}
    (exact,) = drift_checks(today, BaselineCheck(recorded), LAYOUTS)
    assert exact.kind == "baseline" and not exact.passed and exact.mismatched == 8
    (loose,) = drift_checks(today, BaselineCheck(recorded, rtol=1e-5), LAYOUTS)
    assert loose.passed and loose.max_abs_err == 2**-20


def test_a_result_never_recorded_is_reported() -> None:
    today = NormResult("torch.x", {"output": np.ones((2, 4))})
    (missing,) = drift_checks(today, BaselineCheck({}), LAYOUTS)
    assert (missing.kind, missing.note, missing.passed, missing.total) == (
        "baseline",
        "not in the baseline",
        False,
        8,
    )


def test_drift_is_not_a_failure_unless_strict() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    case = make_case(x, normalized_shape=4)
    recorded = {("torch.nn.LayerNorm", "output"): np.zeros((2, 4), np.float32)}
    lenient = check_case(case, baseline=BaselineCheck(recorded))
    assert lenient.passed and lenient.drift and not lenient.strict_baseline
    strict = check_case(case, baseline=BaselineCheck(recorded, strict=True))
    assert not strict.passed and set(strict.failures) >= set(strict.drift)
