"""Per-group moments in float64: the corrected two-pass mean and the biased variance (Chan,
Golub & LeVeque, 1983; see ``reference``), each group first scaled by a power of two so that
no square overflows or underflows, and what the tolerances and the output model take from
the data itself: the largest share one element has of the sum of squares, and the smallest
and largest value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt

from lncheck import overlap
from lncheck.blocks import GroupLayout

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Moments:
    """Per group: the first-pass mean ``m0``, its ``correction``, the biased variance,
    ``scale``, the power of two the group was scaled by (``var_scaled = var * scale**2``), and
    ``peak``, the largest share one element has of the sum of squares (``1 / n`` to ``1``),
    the smallest and largest value."""

    m0: F64
    correction: F64
    var: F64
    var_scaled: F64
    scale: F64
    peak: F64
    low: F64
    high: F64

    @property
    def mean(self) -> F64:
        return np.asarray(self.m0 + self.correction, dtype=np.float64)


def group_moments(block: npt.NDArray[np.generic], center: bool = True) -> Moments:
    """The moments of each row of a (groups, elements) block, in float64 (see the module)."""
    x = np.asarray(block, dtype=np.float64)
    zeros = np.zeros(x.shape[0])
    with np.errstate(all="ignore"):
        low, high = (np.min(x, axis=1), np.max(x, axis=1)) if x.shape[1] else (zeros, zeros)
        largest = np.maximum(high, -low)
        usable = np.isfinite(largest) & (largest > 0)
        _, exponent = np.frexp(np.where(usable, largest, 1.0))
        scale = np.ldexp(1.0, -exponent)  # exact: rows scaled into [0.5, 1)
        xs = x * scale[:, None]
        if not center:
            squares = xs * xs
            var_s = np.mean(squares, axis=1)
            peak = np.max(squares, axis=1) / (var_s * x.shape[1])
            return Moments(zeros, zeros, var_s / (scale * scale), var_s, scale, peak, low, high)
        m0 = np.mean(xs, axis=1)
        d = xs - m0[:, None]
        correction = np.mean(d, axis=1)
        squares = d * d
        var_s = np.mean(squares, axis=1) - correction * correction
        var_s = np.maximum(var_s, 0.0, where=~np.isnan(var_s), out=var_s)
        peak = np.max(squares, axis=1) / np.sum(squares, axis=1)
        var = var_s / (scale * scale)
        return Moments(m0 / scale, correction / scale, var, var_s, scale, peak, low, high)


def group_statistics(block: npt.NDArray[np.generic], center: bool = True) -> tuple[F64, F64]:
    """Mean and biased variance of each row of a (groups, elements) block, in float64.

    With ``center=False`` (RMSNorm) the mean is zero and the "variance" is the mean square.
    """
    m = group_moments(block, center)
    return m.mean, m.var


def moments(layout: GroupLayout, x: npt.NDArray[np.generic], center: bool) -> Moments:
    """``group_moments`` of every group of ``x``, block by block, two blocks at a time (NumPy
    releases the GIL in its loops; each block's moments are its own, so the result is the
    same in any order)."""
    blocks = (block for _, block in layout.blocks(x))
    if layout.groups <= layout.groups_per_block:
        parts = [group_moments(block, center) for block in blocks]
    else:
        parts = overlap.in_order(partial(group_moments, center=center), blocks)
    if not parts:
        empty = np.zeros(0)
        return Moments(*(empty for _ in Moments.__dataclass_fields__))
    return Moments(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Moments.__dataclass_fields__)
    )
