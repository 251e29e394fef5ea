"""A failing group whose output is its neighbour's, bit for bit: a row copied from the next or
the previous one (a race between thread blocks, or an off-by-one index), named as such.

The evidence asked for is all of: the two groups' candidate outputs hold the same bytes; the
neighbour's passes against its own reference; the group's would pass, with its own tolerance,
against the neighbour's reference; against its own it is beyond even the ``low_precision``
class's element-wise tolerance, so the check is a ``mismatch`` whatever the copy and the copy
only names the likelier cause; and the group's exact output is not its bias (input values
all equal; all zero for RMSNorm). A copy that ``low_precision`` could explain is left to that
class, and a constant group to the other words, because precision losses make neighbours the
same bytes too. Rows that bfloat16 rounds to about one value each normalize to about the
weight, and statistics kept in bfloat16 round them alike. A kernel that folds scale and shift
in bfloat16 loses a bias below half the shift's spacing on a constant channel (whose exact
output is its bias) and outputs a dead neighbour's zeros there, by up to several times
``low_precision``'s tolerance (the class does not model a shift folded in the compute dtype).

Only failing groups are looked at, at most ``LOOKED_AT`` per block (a bound on the work when
every group fails; a race copies a few) and none once a copy is found; a neighbour that fails
in the same block is passed over before any reference is built. Neighbours are looked for
within the unit being compared (a chunk of a large input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lncheck.identical import same_bytes

F64 = npt.NDArray[np.float64]
LOOKED_AT = 64  # failing groups examined per block


@dataclass(frozen=True)
class ReferenceRow:
    """One group's reference output, shaped ``(1, group_size)``, and its tolerance as ``atol``
    (one number, or one per element like ``values``) plus ``rtol * |values|``: the accepted
    class's and the ``low_precision`` class's; whether its exact output is its bias."""

    values: F64
    atol: F64 | float
    rtol: float
    low_atol: F64 | float
    low_rtol: float
    constant: bool  # its exact output is its bias (``OutputModel.constant``)


@dataclass(frozen=True)
class Copy:
    """Group ``group``'s output is group ``source``'s; their references differ by ``apart``
    at most (absolute, over the group's elements)."""

    group: int
    source: int
    apart: float

    def moved(self, offset: int) -> Copy:
        """The same copy with both groups ``offset`` further on (a unit's to the tensor's)."""
        return Copy(self.group + offset, self.source + offset, self.apart)


def copied_from_neighbour(
    first: int,
    shares: F64,
    groups: int,
    candidate: Callable[[int], npt.NDArray[np.generic]],
    reference: Callable[[int], ReferenceRow],
) -> Copy | None:
    """The first failing group of the block at group ``first`` whose output is a neighbour's,
    as the module docstring defines it, or ``None``.

    ``shares`` (the block's ``(groups, group_size)``) are its elements' errors over their
    accepted tolerance (NaN counts as no failure); ``groups`` is the unit's number of groups;
    ``candidate(g)`` is group ``g``'s candidate output and ``reference(g)`` its reference,
    each ``(1, group_size)``."""
    with np.errstate(invalid="ignore"):
        fails = np.any(shares > 1, axis=1)
    for g in (first + np.flatnonzero(fails)[:LOOKED_AT]).tolist():
        own = candidate(g)
        for source in (g + 1, g - 1):
            if not 0 <= source < groups:
                continue
            if first <= source < first + fails.size and fails[source - first]:
                continue  # the neighbour fails too: not the passing output it would copy
            if same_bytes(own, candidate(source)):
                found = _copy(g, source, np.asarray(own, dtype=np.float64), reference)
                if found is not None:
                    return found
    return None


def _copy(
    group: int, source: int, values: F64, reference: Callable[[int], ReferenceRow]
) -> Copy | None:
    """A ``Copy`` where ``values`` (both groups' outputs) fit ``source``'s reference with either
    group's accepted tolerance and ``group``'s own reference not even with its
    ``low_precision`` one."""
    mine, theirs = reference(group), reference(source)
    if mine.constant:
        return None  # its exact output is its bias, which a folded shift's rounding can lose
    with np.errstate(all="ignore"):
        if _within(values, mine.values, mine.low_atol, mine.low_rtol):
            return None  # a precision loss may explain it: left to its class
        near = theirs.values
        if not (
            _within(values, near, theirs.atol, theirs.rtol)
            and _within(values, near, mine.atol, mine.rtol)
        ):
            return None
        apart = float(np.max(np.abs(mine.values - near)))
    return Copy(group, source, apart)


def _within(values: F64, expected: F64, atol: F64 | float, rtol: float) -> bool:
    return bool(np.all(np.abs(values - expected) <= atol + rtol * np.abs(expected)))


def copy_words(copy: Copy, index: Callable[[int], tuple[int, ...]], failing: int) -> str:
    """The explanation for a ``Copy`` in a check with ``failing`` failing groups; ``index``
    names a group by its multi-index."""
    others = failing - 1
    more = ""
    if others > 0:
        more = "; 1 other group fails too" if others == 1 else f"; {others} other groups fail too"
    return (
        f"group {group_name(index(copy.group))} repeats group "
        f"{group_name(index(copy.source))}'s output bit for bit, where their references differ "
        f"by up to {copy.apart:.3g} (a row copied from its neighbour, a race or an off-by-one "
        f"index; or both groups set from something other than their own values){more}"
    )


def group_name(index: tuple[int, ...]) -> str:
    """A group as the failing-groups table names it: ``(3)``, ``(0, 2)``."""
    return "(" + ", ".join(str(i) for i in index) + ")"
