"""What a check found: one quantity of one candidate against the reference, as plain data.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` (``torch.isclose``),
where ``atol`` may differ per group or element. NaN fails unless both sides are NaN and
``equal_nan`` is set; an infinity passes only against the same infinity. ``metrics`` computes
these figures block by block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

# The histogram counts |actual - expected| in bins three octaves wide, [2^k, 2^(k+3)) for k in
# HISTOGRAM_OCTAVES, plus exact matches, one bin below and one above. Binary bins are exact and
# cost a shift of the float's exponent bits, not a logarithm per element.
HISTOGRAM_OCTAVES = range(-63, 9, 3)


@dataclass(frozen=True)
class Comparison:
    """How one quantity of one candidate differs from the reference, and whether that passes."""

    candidate: str
    quantity: str
    passed: bool
    total: int
    mismatched: int
    max_abs_err: float
    max_rel_err: float
    mean_abs_err: float
    worst_index: tuple[int, ...]
    worst_actual: float
    worst_expected: float
    rtol: float
    atol: float
    required_atol: float
    required_rtol: float
    nan_actual: int = 0
    nan_expected: int = 0
    inf_actual: int = 0
    inf_expected: int = 0
    nan_pairs: int = 0  # NaN against the reference's NaN, failed (no equal_nan)
    nan_reference_only: int = 0  # the reference's NaN where the candidate has a number
    # the largest error / what was allowed of any element (or its group's structural share,
    # charged to the group's largest error): > 1 fails
    tolerance_used: float = 0.0
    # the worst element is within its own rtol and atol: the failure is its group's as a whole
    # (a structural check, charged to the group's largest error), at ``worst_score``
    worst_by_group: bool = False
    worst_own: float = 0.0  # the worst element's own error over its tolerance
    # the worst element's share: its own, or its group's where larger; ``tolerance_used``
    # unless it was named beside NaN an overflowing rstd explains (``metrics.Accumulator``)
    worst_score: float = 0.0
    atol_max: float = math.nan  # the largest per-element atol (``atol`` is the worst element's)
    max_ulp_err: float = math.nan  # in units in the last place of the compute dtype
    histogram: tuple[int, ...] = ()  # counts per HISTOGRAM_DECADES bin (see histogram_bins)
    note: str | None = None
    # "reference": against the float64 reference; "baseline": against a recorded torch result,
    # where a difference is drift (reported, failing only with --strict-baseline).
    kind: str = "reference"
    # accuracy verdicts (automatic tolerance): the class the difference fits, the worst
    # group's implied scale and shift of the normalized values, and why, in words
    accuracy_class: str | None = None
    implied_scale: float = math.nan
    implied_shift: float = math.nan
    explanation: str | None = None
    overflow: int = 0  # exact values beyond the dtype's range (an infinity is right there)
    # the candidate whose output this one's is bit-identical to: its figures, compared once
    identical_to: str | None = None
    # a passing check's warning: what it passed despite (a systematic scale below the bound)
    warning: str | None = None
    # the explanation names the cause: a convention the groups match, a row copied from its
    # neighbour (a different function, found: no other explanation is searched for)
    cause_named: bool = False
    heatmap: npt.NDArray[np.float64] | None = field(default=None, compare=False, repr=False)

    @property
    def mismatch_fraction(self) -> float:
        return self.mismatched / self.total if self.total else 0.0

    def message(self) -> str:
        return make_mismatch_message(self)

    def explained(self, words: str) -> Comparison:
        """This check with ``words`` added to its explanation."""
        text = f"{self.explanation}; {words}" if self.explanation else words
        return replace(self, explanation=text)


def percent(fraction: float) -> str:
    """A share in parentheses, one decimal; a nonzero one below 0.05% is ``(<0.1%)``, never
    ``(0.0%)``, and one short of all ``(>99.9%)``, never ``(100.0%)``."""
    if 0 < fraction < 0.0005:
        return "(<0.1%)"
    if 0.9995 <= fraction < 1:
        return "(>99.9%)"
    return f"({100 * fraction:.1f}%)"


def make_mismatch_message(c: Comparison) -> str:
    """One line that says what failed, where, by how much, and what was allowed."""
    head = f"{c.candidate} {c.quantity}"
    if c.note:
        return f"{head}: {c.note}"
    verdict = "matches" if c.passed else "does not match"
    against = "the reference" if c.kind == "reference" else "the baseline"
    theirs = "" if c.kind == "reference" else "the baseline's "
    text = (
        f"{head} {verdict} {against}: {c.mismatched} / {c.total} elements mismatched "
        f"{percent(c.mismatch_fraction)}; greatest absolute difference {c.max_abs_err:.3g}, "
        f"worst element at index {c.worst_index}: {c.worst_actual:.9g} vs {theirs}"
        f"{c.worst_expected:.9g} "
        f"({worst_tolerance(c, '=')})"
    )
    if c.nan_actual or c.inf_actual:
        text += f"; candidate has {c.nan_actual} NaN and {c.inf_actual} Inf"
    if c.accuracy_class is not None and not c.passed:
        text += f"; accuracy class {c.accuracy_class}"
    if c.explanation:
        text += f": {c.explanation}" if c.accuracy_class and not c.passed else f"; {c.explanation}"
    return text


def worst_tolerance(c: Comparison, equals: str) -> str:
    """The words on the tolerance at the worst element: ``allowed there: rtol=..., atol=...``
    when the element fails on its own, or that it is within them and its group fails as a
    whole (``Comparison.worst_by_group``: ``worst_score`` is then the group's share) or the
    check on its accuracy class. ``equals`` joins each name to its value (``=`` in the
    one-line message, a space in the API's text report)."""
    tolerance = f"rtol{equals}{c.rtol:.3g}, atol{equals}{c.atol:.3g}"
    if c.worst_own > 1 or (not c.worst_by_group and (c.passed or c.mismatched)):
        return f"allowed there: {tolerance}"
    if c.accuracy_class is None and not c.worst_by_group:
        return f"allowed there: {tolerance}"
    if not c.worst_by_group:  # every element within: the check fails on its accuracy class
        return f"within its own {tolerance}; the check fails on its accuracy class"
    if math.isinf(c.worst_score):
        why = "its group holds values no correct layer can produce"
    else:
        why = (
            f"its group's fitted scale, shift or residual is {c.worst_score:.3g}x what the "
            f"accepted classes allow"
        )
    return f"within its own {tolerance}; {why}"


def unmatched(
    candidate: str,
    quantity: str,
    got: tuple[int, ...],
    want: tuple[int, ...],
    rtol: float = math.nan,
) -> Comparison:
    """A check that could not be made because the shapes differ: failed, with a note (never a
    broadcast)."""
    note = f"has shape {got}, the reference has shape {want}"
    return not_made(candidate, quantity, math.prod(want), note, rtol)


def not_made(
    candidate: str, quantity: str, n: int, note: str, rtol: float = math.nan
) -> Comparison:
    """A failed check of ``n`` elements that could not be made, saying why in ``note``."""
    inf, nan = math.inf, math.nan
    return Comparison(
        candidate,
        quantity,
        False,
        n,
        n,
        inf,
        inf,
        inf,
        (),
        nan,
        nan,
        rtol,
        nan,
        inf,
        inf,
        note=note,
    )


def histogram_bins() -> list[str]:
    """Labels of the histogram bins, in order: each bin's lower edge."""
    low, high = HISTOGRAM_OCTAVES.start, HISTOGRAM_OCTAVES.stop
    return [
        "0",
        f"<{2.0**low:.2g}",
        *(f"{2.0**k:.2g}" for k in HISTOGRAM_OCTAVES),
        f">={2.0**high:.2g}",
    ]
