"""A check's accuracy class and the words on it, from its ``ClassTally``: the worst group's
translation (``verdicts.explain``), a convention every group meets (``verdicts.conventions``),
a copied row, and a passing check's warning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from lncheck.block_tolerance import STRUCTURED
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.comparison import Comparison
from lncheck.copies import copy_words, group_name
from lncheck.group_failures import FailingGroups
from lncheck.tolerances import CLASSES
from lncheck.verdicts import (
    ClassTally,
    GroupFacts,
    conventions,
    explain,
    rstd_overflow_words,
    systematic_words,
)

F64 = npt.NDArray[np.float64]


def classified(
    c: Comparison,
    tally: ClassTally,
    case: Case,
    layout: GroupLayout,
    variance: Callable[[], F64],
    groups: FailingGroups | None,
) -> Comparison:
    """``c`` with its accuracy class, implied scale and shift, explanation and warning, passed
    only where its class is accepted. ``variance()`` is every group's normalizing variance
    (computed only for words that need it); ``groups`` counts the failing groups."""
    klass = tally.klass
    worst = tally.worst
    facts = _facts(case, c.quantity, worst.group, variance)
    if facts is not None:
        where = group_name(layout.group_index(worst.group))
        flat = tally.distortions
        facts = replace(
            facts, where=where, every_flat=flat.all_flat(), mixed_flat=flat.mixed_flat()
        )
    said = explain(klass, worst, facts, c.overflow, c.quantity, case.dtype)
    explanation, convention = said.words, said.convention
    # a convention every group matches names a different function, whatever its size; the
    # worst group's own translation stands where it already names one
    faint = None  # a convention the groups meet only loosely: a hint
    if c.quantity == "output" and klass != "accurate":
        semantic, faint = conventions(tally, case, variance(), klass)
        if semantic is not None:
            klass, explanation, convention = "mismatch", semantic, True
        elif convention and layout.groups > 1:
            # the worst group's convention is not the other groups': their own scales are no
            # coincidence of one group's variance (eps = 1e-2 where one group's var made it
            # read as an unbiased variance)
            said = explain(klass, worst, facts, c.overflow, c.quantity, case.dtype,
                           name_conventions=False)  # fmt: skip
            explanation, convention = said.words, False
    lost, rstd = tally.rstd_losses
    if lost and klass == "low_precision":  # what the NaN or infinities are, first
        words = rstd_overflow_words(lost, rstd, case.dtype)
        # ...and what the other elements showed, where they are low_precision too
        others = tally.index == CLASSES.index("low_precision") and explanation
        explanation = f"{words}; {explanation}" if others else words
    named = klass == "mismatch" and convention
    if tally.copy is not None and not convention:
        # beyond low_precision already (a mismatch): the copy names the cause, where no
        # convention of every group does
        klass = "mismatch"
        failing = groups.failing if groups is not None else 1
        index = layout.group_index
        explanation = copy_words(tally.copy, index, failing)
        named = True
    c = replace(
        c,
        passed=c.passed and CLASSES.index(klass) <= case.tolerance.accepted_index,
        accuracy_class=klass,
        implied_scale=worst.scale,
        implied_shift=worst.shift,
        explanation=explanation,
        cause_named=named,
    )
    share, scale, shift = tally.systematic
    if c.passed and share > 1:
        words = systematic_words(scale, shift, case.dtype, case.spec.center)
        c = replace(c, warning=words)
    elif faint is not None and c.passed:
        c = replace(c, warning=faint)
    elif faint is not None and c.explanation is None:  # failed on its class
        c = replace(c, explanation=faint)
    return c


def _facts(case: Case, quantity: str, group: int, variance: Callable[[], F64]) -> GroupFacts | None:
    if quantity not in STRUCTURED or group < 0 or not case.spec.statistics:
        return None
    var = variance()
    with np.errstate(all="ignore"):
        rstd = float(1.0 / np.sqrt(var[group] + case.spec.eps))
    spec = case.spec
    return GroupFacts(
        float(var[group]), spec.eps, spec.group_size, spec.center, rstd, case.dtype,
        running=spec.use_running_stats,
    )  # fmt: skip
