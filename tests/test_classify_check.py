"""A check's class and words from its tally (``lncheck.classify_check.classified``), on
tallies built by hand: which evidence names the cause, and how the class decides ``passed``."""

from __future__ import annotations

import numpy as np

from lncheck.classify_check import classified
from lncheck.comparison import Comparison
from lncheck.copies import Copy
from lncheck.reference import layout_of
from lncheck.tolerances import CLASSES
from lncheck.verdicts import ClassTally

from .support import make_case

CASE = make_case(np.random.default_rng(0).standard_normal((6, 8)), normalized_shape=8)
LAYOUT = layout_of(CASE.spec)


def _check(passed: bool = True) -> Comparison:
    return Comparison(
        candidate="kernel", quantity="output", passed=passed, total=48, mismatched=0,
        max_abs_err=0.0, max_rel_err=0.0, mean_abs_err=0.0, worst_index=(0, 0),
        worst_actual=0.0, worst_expected=0.0, rtol=1e-6, atol=1e-6, required_atol=0.0,
        required_rtol=0.0,
    )  # fmt: skip


def _variance() -> np.ndarray:
    return np.ones(LAYOUT.groups)


def test_the_class_decides_passed_as_the_accepted_classes_say() -> None:
    tally = ClassTally()
    tally.add(CLASSES.index("sequential"))
    c = classified(_check(), tally, CASE, LAYOUT, _variance, None)
    assert (c.passed, c.accuracy_class, c.explanation) == (True, "sequential", None)
    tally.add(CLASSES.index("low_precision"))  # within every element's bound, not accepted
    c = classified(_check(), tally, CASE, LAYOUT, _variance, None)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")


def test_a_copied_row_names_the_cause_and_makes_a_mismatch() -> None:
    tally = ClassTally()
    tally.add(CLASSES.index("low_precision"))
    tally.copy = Copy(group=2, source=3, apart=0.5)
    c = classified(_check(passed=False), tally, CASE, LAYOUT, _variance, None)
    assert (c.accuracy_class, c.cause_named) == ("mismatch", True)
    assert c.explanation is not None
    assert c.explanation.startswith("group (2) repeats group (3)'s output bit for bit")


def test_outputs_lost_to_an_overflowing_rstd_are_low_precision_with_their_cause() -> None:
    tally = ClassTally()
    tally.lose_to_rstd(12, 1e6)
    c = classified(_check(passed=False), tally, CASE, LAYOUT, _variance, None)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.explanation is not None
    assert c.explanation.startswith("12 output values are NaN or infinite")
    assert "rstd (1e+06)" in c.explanation and ";" not in c.explanation
    # a mismatch elsewhere keeps its class: the loss does not hide it
    tally.add(CLASSES.index("mismatch"))
    c = classified(_check(passed=False), tally, CASE, LAYOUT, _variance, None)
    assert c.accuracy_class == "mismatch" and "rstd (1e+06)" not in (c.explanation or "")
