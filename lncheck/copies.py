"""A failing group whose output is its neighbour's, bit for bit: a row copied from the next or
the previous one (a race between thread blocks, or an off-by-one index).

The evidence asked for is all of: the two groups' candidate outputs hold the same bytes; the
neighbour's passes against its own reference; the group's fails against its own but would pass,
with its own tolerance, against the neighbour's reference; and no precision loss could have
turned the group's own values into the neighbour's output (``told_apart``). That last is
needed: groups whose normalized values are alike (rows that bfloat16 rounds to a constant, all
normalizing to the weight) come out of a low-precision kernel as the same bytes, each off from
its own reference by its rounded statistics.

Only failing groups are looked at, at most ``LOOKED_AT`` per block and none once a copy is
found, so a passing check pays nothing and a failing one a byte comparison of a few rows per
block. Neighbours are looked for within the unit being compared (a chunk of a large input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lncheck.blocks import uniform_rows
from lncheck.identical import same_bytes
from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]
LOOKED_AT = 64  # failing groups examined per block

# (reference row, atol row) of group ``g``, each shaped (1, group_size)
ReferenceRow = Callable[[int], tuple[F64, F64 | float]]
CandidateRow = Callable[[int], npt.NDArray[np.generic]]
# whether group ``g``'s output, given as the neighbour's ``source``, is beyond a precision loss
Apart = Callable[[int, int, F64], bool]


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
    structural: F64 | None,
    groups: int,
    candidate: CandidateRow,
    reference: ReferenceRow,
    rtol: float,
    apart: Apart,
) -> Copy | None:
    """The first failing group of the block at group ``first`` whose output is a neighbour's,
    as the module docstring defines it, or ``None``. ``shares`` are the block's elements'
    shares of their tolerance, ``structural`` its groups' structural shares (``None``:
    none); ``groups`` the unit's number of groups; ``candidate(g)`` and ``reference(g)`` give
    group ``g``'s candidate output, and its reference output and atol (the accepted class's,
    with ``rtol``)."""
    with np.errstate(invalid="ignore"):
        fails = np.any(shares > 1, axis=1)  # NaN shares are no failure of their own
        if structural is not None:
            fails |= structural > 1
    for g in (first + np.flatnonzero(fails)[:LOOKED_AT]).tolist():
        own = candidate(g)
        for source in (g + 1, g - 1):
            if not 0 <= source < groups or not same_bytes(own, candidate(source)):
                continue
            values = np.asarray(own, dtype=np.float64)
            found = _copy(g, source, values, reference, rtol)
            if found is not None and apart(g, source, values):
                return found
    return None


def _copy(
    group: int, source: int, values: F64, reference: ReferenceRow, rtol: float
) -> Copy | None:
    """Whether ``values`` (both groups' outputs) fit ``source``'s reference with either
    group's tolerance, and not ``group``'s own."""
    mine, my_atol = reference(group)
    theirs, their_atol = reference(source)
    if np.array_equal(mine, theirs):
        return None
    with np.errstate(all="ignore"):
        if _within(values, mine, my_atol, rtol):
            return None  # not failing there after all (its own tolerance is elementwise)
        if not (
            _within(values, theirs, their_atol, rtol) and _within(values, theirs, my_atol, rtol)
        ):
            return None
        apart = float(np.max(np.abs(mine - theirs)))
    return Copy(group, source, apart)


def told_apart(mine: OutputBlock, theirs: OutputBlock, values: F64, dtype: str) -> bool:
    """Whether no ``low_precision`` kernel computing the group of ``mine`` (a block of one
    group) could have output ``values`` (the neighbour's, ``theirs``): the two groups' uniform
    weights or biases differ (a channel's own parameters, which a precision loss keeps), or
    ``values`` are no affine image of the group's normalized values within that class's
    element-wise roundings. The affine part is any implied scale and shift (wider than the
    class's limits); the test is that the weighted least-squares residual, each element over
    its rounding bound, has a root mean square above 1, which bounds the smallest largest one
    from below: no scale and shift leave every element within its bound."""
    for own, other in ((mine.weight, theirs.weight), (mine.bias, theirs.bias)):
        if own is None or other is None:
            continue
        if bool(uniform_rows(own)[0] & uniform_rows(other)[0]) and own[0, 0] != other[0, 0]:
            return True
    bound = mine.residual_bound(dtype, "low_precision")[0]
    if not bool(np.all(np.isfinite(bound) & (bound > 0))):
        return False
    with np.errstate(all="ignore"):
        target = values[0] - (0.0 if mine.bias is None else mine.bias[0])
        columns = [mine.weighted[0]]
        if mine.model.centered:
            columns.append(np.ones_like(bound) if mine.weight is None else mine.weight[0])
        design = np.stack(columns, axis=1) / bound[:, None]
        scaled = target / bound
        if not (np.all(np.isfinite(design)) and np.all(np.isfinite(scaled))):
            return False
        coefficients = np.linalg.lstsq(design, scaled, rcond=None)[0]
        residual = scaled - design @ coefficients
    return bool(np.sqrt(np.mean(residual * residual)) > 1.0)


def _within(values: F64, expected: F64, atol: F64 | float, rtol: float) -> bool:
    return bool(np.all(np.abs(values - expected) <= atol + rtol * np.abs(expected)))


def copy_words(copy: Copy, index: Callable[[int], tuple[int, ...]]) -> str:
    """The explanation for a ``Copy``; ``index`` names a group by its multi-index."""
    return (
        f"group {_name(index(copy.group))} repeats group {_name(index(copy.source))}'s output bit "
        f"for bit, where their references differ by up to {copy.apart:.3g}: no precision loss "
        "does that (a row copied from its neighbour, or both set from something other than "
        "their own values and parameters)"
    )


def _name(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else "(" + ", ".join(str(i) for i in index) + ")"
