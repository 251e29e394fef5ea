"""The implied scale and shift that a group's two extreme elements pin, with the most their
roundings can move them: a check of a least-squares fit that the group's bulk cannot hide.

A least-squares fit (``affine_fit``) weighs every element alike, so in a large group its
uncertainty is set by the bulk: where the data take few distinct values, equal inputs round
alike and the bulk's roundings do not average out (``fit_noise.repeats``), and a scale off
by a quarter hides in that uncertainty although the group's outlier alone pins it to a few
percent. Any two elements pin it too: with ``e_k = ds * a_k + t * c_k + r_k`` and ``|r_k| <=
R_k`` (each element's rounding bound), the 2x2 solution for the pair is ``ds`` and ``t`` up
to ``(R_1 |c_2| + R_2 |c_1|) / |det|`` and ``(R_1 |a_2| + R_2 |a_1|) / |det|``, ``det = a_1
c_2 - a_2 c_1`` (Cramer's rule, each error term at its bound). These are bounds, not
statistics: a correct kernel's pair always lies within them, however its roundings
correlate. The pair used is the group's largest and smallest normalized value (the widest
lever); without a shift (RMSNorm), the element with the largest ``|n|`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from lncheck.affine_fit import Fit
    from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PairFit:
    """Per group, the scale ``ds`` (``s - 1``) and shift ``t`` a pair of elements implies, and
    the most the pair's roundings can move each (``inf``: the pair pins nothing)."""

    ds: F64
    ds_bound: F64
    shift: F64
    shift_bound: F64

    def excess(self) -> tuple[F64, F64]:
        """How far ``|ds|`` and ``|t|`` are beyond their rounding bounds (0 within them)."""
        with np.errstate(invalid="ignore"):
            ds = np.fmax(np.abs(self.ds) - self.ds_bound, 0.0)
            shift = np.fmax(np.abs(self.shift) - self.shift_bound, 0.0)
        return ds, shift


def pair_fit(block: OutputBlock, f: Fit, bound: F64) -> PairFit:
    """The ``PairFit`` of fit ``f`` of ``block`` (whose deviation ``e`` it rebuilds from its
    residual), for per-element rounding bounds ``bound`` (same shape as the block)."""
    groups = block.y.shape[0]
    rows = np.arange(groups)
    first, second = _extremes(block)
    weight = block.weight
    with np.errstate(all="ignore"):
        a1, a2 = block.weighted[rows, first], block.weighted[rows, second]
        c1 = np.ones(groups) if weight is None else weight[rows, first]
        c2 = np.ones(groups) if weight is None else weight[rows, second]
        e1 = f.residual[rows, first] + f.ds * a1 + f.shift * c1
        e2 = f.residual[rows, second] + f.ds * a2 + f.shift * c2
        r1, r2 = bound[rows, first], bound[rows, second]
        if not block.model.centered:  # no shift: the largest |a| alone
            ds = np.where(a1 != 0, e1 / a1, 0.0)
            ds_bound = np.where(a1 != 0, r1 / np.abs(a1), np.inf)
            return PairFit(ds, ds_bound, np.zeros(groups), np.full(groups, np.inf))
        det = a1 * c2 - a2 * c1
        pinned = (det != 0) & np.isfinite(det)
        ds = np.where(pinned, (e1 * c2 - e2 * c1) / det, 0.0)
        shift = np.where(pinned, (a1 * e2 - a2 * e1) / det, 0.0)
        ds_bound = np.where(pinned, (r1 * np.abs(c2) + r2 * np.abs(c1)) / np.abs(det), np.inf)
        shift_bound = np.where(pinned, (r1 * np.abs(a2) + r2 * np.abs(a1)) / np.abs(det), np.inf)
    return PairFit(ds, ds_bound, shift, shift_bound)


def _extremes(block: OutputBlock) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Per group, the elements with the largest and smallest normalized value among those
    with a non-zero weight (without a shift: the largest ``|n|``, twice). The same for every
    candidate, so memoized on the block; a group with NaN is never judged by its pair."""
    key = ("pair extremes",)
    if key in block.memo:
        return block.memo[key]  # type: ignore[return-value]
    n, w = block.nhat, block.weight
    idle = None if w is None or np.all(w != 0) else w == 0  # a zero weight pins nothing
    if block.model.centered:
        high = n if idle is None else np.where(idle, -np.inf, n)
        low = n if idle is None else np.where(idle, np.inf, n)
        found = (np.argmax(high, axis=1), np.argmin(low, axis=1))
    else:
        size = np.abs(n) if idle is None else np.where(idle, 0.0, np.abs(n))
        found = (np.argmax(size, axis=1),) * 2
    block.memo[key] = found
    return found
