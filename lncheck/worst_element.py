"""A check's worst element across blocks: where it is, its values, the tolerance applied there.

Elements are ranked by ``Rank``: their share of their tolerance, then their absolute error. A
check keeps two (``metrics.Accumulator``): the worst of all, and the worst of the failures no
known loss excuses (``verdicts.lost_to_rstd``), named where the check is a mismatch beside
the NaN an overflowing rstd explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class Rank(NamedTuple):
    """How bad an element is, compared field by field."""

    score: float  # its error over its tolerance, or its group's structural share if larger
    err: float  # its absolute error


NONE_YET = Rank(-1.0, -1.0)  # below any element's


@dataclass
class WorstElement:
    """The worst element offered so far (``offer``), in a tensor of groups."""

    rank: Rank = NONE_YET
    group: int = 0
    element: int = 0  # within its group
    actual: float = math.nan
    expected: float = math.nan
    atol: float = math.nan  # the atol applied there
    own: float = 0.0  # its own error over its tolerance (``rank.score`` may be its group's)

    def offer(
        self,
        rank: Rank,
        first: int,
        k: int,
        width: int,
        values: tuple[float, float],
        atol: float,
        own: float,
    ) -> None:
        """Element ``k`` (flat) of a block of groups ``width`` wide starting at group ``first``,
        ``values`` its actual and expected values: kept where it ranks above the worst so far."""
        if rank > self.rank:
            g, m = divmod(k, width)
            self.rank, self.group, self.element = rank, first + g, m
            self.actual, self.expected = values
            self.atol, self.own = atol, own

    @property
    def failing(self) -> bool:
        return self.rank.score > 1

    @property
    def by_group(self) -> bool:
        """Whether its score is its group's structural share, not its own error's."""
        return self.rank.score > self.own


@dataclass(frozen=True)
class Shown:
    """A block with NaN or Inf somewhere, as ``metrics.Accumulator`` sees it: the candidate's
    ``actual`` and the reference's ``expected`` values, their absolute errors ``err`` (0
    where either is not ``finite``), the pairs that are NaN on both sides, each element's
    ``1 / allowed`` and the ``atol`` applied."""

    first: int
    actual: F64
    expected: F64
    err: F64
    finite: npt.NDArray[np.bool_]
    both_nan: npt.NDArray[np.bool_]
    inv_allowed: F64
    atol: F64 | float

    def offer(self, score: F64, to: WorstElement) -> None:
        """Offer ``to`` the element with the largest ``score``; of several infinitely far out,
        the one with the largest error, a non-finite mismatch first and NaN against NaN last
        (it says the least)."""
        k = int(score.argmax())
        best = float(score.flat[k])
        if best == math.inf:
            rank = np.where(self.finite, self.err, np.where(self.both_nan, -0.5, np.inf))
            k = int(np.where(score == math.inf, rank, -1.0).argmax())
        finite = bool(self.finite.flat[k])
        err = float(self.err.flat[k]) if finite else math.inf
        own = err * float(self.inv_allowed.flat[k]) if finite else math.inf
        values = (float(self.actual.flat[k]), float(self.expected.flat[k]))
        width = self.expected.shape[1]
        to.offer(
            Rank(best, err),
            self.first,
            k,
            width,
            values,
            atol_at(self.atol, k, self.err.shape),
            own,
        )


def atol_at(atol: F64 | float, k: int, shape: tuple[int, ...]) -> float:
    """The atol applied at flat index ``k`` of a block of ``shape``."""
    values = np.asarray(atol, dtype=np.float64)
    return float(values) if values.ndim == 0 else float(np.broadcast_to(values, shape).flat[k])
