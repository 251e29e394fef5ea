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
    """Per group, in the domain where the group's largest magnitude is scaled into [0.5, 1) by
    ``2**-exponent``: the first-pass mean ``m0_scaled`` and its ``correction_scaled``, the
    variance ``var_scaled = var * 2**(-2 exponent)``; and unscaled: the biased variance,
    ``peak``, the largest share one element has of the sum of squares (``1 / n`` to ``1``),
    the smallest and largest value, ``stagnant``: the net share of the sum of squares a
    sequential sum of unit roundoff ``unit`` loses one way, in squares below half a last
    place of it (``_stagnant``), and ``repeated``: the share of the values that repeat one of
    a few the row is likely to repeat, at most 1 (``_repeated``, ``sequential.sequential_steps``;
    zeros without centring, where every step of the sum of squares counts already)."""

    m0_scaled: F64
    correction_scaled: F64
    var: F64
    var_scaled: F64
    exponent: F64
    peak: F64
    low: F64
    high: F64
    stagnant: F64
    repeated: F64

    @property
    def m0(self) -> F64:
        return times_power_of_two(self.m0_scaled, self.exponent)

    @property
    def correction(self) -> F64:
        return times_power_of_two(self.correction_scaled, self.exponent)

    @property
    def mean(self) -> F64:
        return np.asarray(self.m0 + self.correction, dtype=np.float64)


def times_power_of_two(a: F64, exponent: F64) -> F64:
    """``a * 2**exponent`` (``exponent`` whole numbers, one per row of ``a`` or per element of
    a 1-d ``a``), exact wherever the result is a normal float64: subnormal rows scale up by
    more than the largest float64 power of two, 2**1023."""
    k = np.asarray(exponent)
    column = k[:, None] if np.ndim(a) == 2 else k
    if k.size and (k.max() > 1023 or k.min() < -1022):
        return np.asarray(np.ldexp(a, column.astype(np.int64)), dtype=np.float64)
    return np.asarray(a * np.ldexp(1.0, column.astype(np.int64)), dtype=np.float64)


@dataclass(frozen=True)
class Scaled:
    """Per group, what the output is normalized with, in parts that neither overflow nor
    underflow for groups of values near either end of float64's range: the group scaled by
    ``2**-exponent`` has first-pass mean ``m0`` and ``correction`` (``Moments``), and ``rstd *
    2**exponent = mantissa * 2**shift``, so ``(x - mean) * rstd`` is ``((x * 2**-exponent - m0)
    - correction) * mantissa * 2**shift`` with every factor in range."""

    exponent: F64
    m0: F64
    correction: F64
    mantissa: F64
    shift: F64

    @property
    def rstd(self) -> F64:
        """``rstd`` itself, correctly rounded (0 or inf only where it is beyond float64)."""
        with np.errstate(all="ignore"):
            return times_power_of_two(self.mantissa, self.shift - self.exponent)

    @property
    def conditioning(self) -> F64:
        """``|mean| * rstd`` per group, formed in the scaled domain: finite where rstd itself
        overflows (a group of subnormal values with eps 0)."""
        with np.errstate(all="ignore"):
            size = np.abs(self.m0 + self.correction) * self.mantissa
            return times_power_of_two(size, self.shift)

    def normalized(self, x: npt.NDArray[np.generic], groups: npt.NDArray[np.intp]) -> F64:
        """Rows ``x`` of groups ``groups``: ``(x - mean) * rstd``, formed in the scaled domain."""
        k = self.exponent[groups]
        with np.errstate(all="ignore"):
            d = times_power_of_two(np.asarray(x, dtype=np.float64), -k)
            d -= self.m0[groups, None]
            d -= self.correction[groups, None]
            d *= self.mantissa[groups, None]
            return times_power_of_two(d, self.shift[groups])


def scaled(
    var_scaled: F64, exponent: F64, eps: float, on_std: bool, m0: F64, correction: F64
) -> Scaled:
    """``Scaled`` with ``rstd = 1 / sqrt(var + eps)`` (``on_std``: ``1 / (sqrt(var) + eps)``),
    from the scaled variance ``var * 2**(-2 exponent)`` and the scaled ``m0``, ``correction``.
    eps is scaled with the variance; where that overflows or underflows, the unscaled form is
    exact to its roundings instead (eps, or a variance in range, dwarfs the other term) and
    becomes the mantissa, the group's exponent the shift: a constant group of values near
    float64's largest has rstd ``1 / sqrt(eps)``, not the inf of ``1 / sqrt(0 + 0)``."""
    tiny = np.finfo(np.float64).tiny
    with np.errstate(all="ignore"):
        var_s = np.asarray(var_scaled, dtype=np.float64)
        k = np.broadcast_to(np.asarray(exponent, dtype=np.float64), var_s.shape)
        eps_all = np.full(var_s.shape, float(eps))
        var = times_power_of_two(var_s, 2 * k)
        if on_std:
            eps_s = times_power_of_two(eps_all, -k)
            inside, plain = 1.0 / (np.sqrt(var_s) + eps_s), 1.0 / (np.sqrt(var) + eps)
        else:
            eps_s = times_power_of_two(eps_all, -2 * k)
            inside, plain = 1.0 / np.sqrt(var_s + eps_s), 1.0 / np.sqrt(var + eps)
        in_range = (np.abs(eps_s) >= tiny) & np.isfinite(eps_s)
        lost = (eps != 0) & ~in_range  # eps scaled out of float64's normal range
        unscaled = lost & np.isfinite(var)
        mantissa = np.where(unscaled, plain, inside)
        return Scaled(np.array(k), m0, correction, mantissa, np.where(unscaled, k, 0.0))


def group_moments(
    block: npt.NDArray[np.generic], center: bool = True, unit: float = 0.0
) -> Moments:
    """The moments of each row of a (groups, elements) block, in float64 (see the module);
    ``stagnant`` for a running sum of unit roundoff ``unit`` (0: not counted, zeros)."""
    # row-major: NumPy sums a row pairwise only where it is contiguous (a channels-last view's
    # rows are strided, and summed one element after another)
    x = np.ascontiguousarray(block, dtype=np.float64)
    zeros = np.zeros(x.shape[0])
    with np.errstate(all="ignore"):
        low, high = (np.min(x, axis=1), np.max(x, axis=1)) if x.shape[1] else (zeros, zeros)
        largest = np.maximum(high, -low)
        usable = np.isfinite(largest) & (largest > 0)
        _, exponent = np.frexp(np.where(usable, largest, 1.0))
        exponent = exponent.astype(np.float64)
        xs = times_power_of_two(x, -exponent)  # exact: rows scaled into [0.5, 1)
        if not center:
            squares = xs * xs
            var_s = np.mean(squares, axis=1)
            peak = np.max(squares, axis=1) / (var_s * x.shape[1])
            var = times_power_of_two(var_s, 2 * exponent)
            stagnant = _stagnant(squares, var_s * x.shape[1], unit)
            return Moments(zeros, zeros, var, var_s, exponent, peak, low, high, stagnant, zeros)
        m0 = np.mean(xs, axis=1)
        d = xs - m0[:, None]
        correction = np.mean(d, axis=1)
        squares = d * d
        var_s = np.mean(squares, axis=1) - correction * correction
        var_s = np.maximum(var_s, 0.0, where=~np.isnan(var_s), out=var_s)
        total = np.sum(squares, axis=1)
        peak = np.max(squares, axis=1) / total
        var = times_power_of_two(var_s, 2 * exponent)
        stagnant = _stagnant(squares, total, unit)
        repeated = _repeated(x, low, high)
        return Moments(m0, correction, var, var_s, exponent, peak, low, high, stagnant, repeated)


def _repeated(x: F64, low: F64, high: F64) -> F64:
    """Per row, the share of its values equal to one of those that rows repeat in practice, at
    most 1: its smallest and its largest (ReLU's zeros, a mask's two levels, a clamp's
    bounds), zero inside the range (padding, dropout, masked tokens) and its first and last
    value (a row padded at either end with any constant). Each distinct one counts once, where
    it repeats; each repeats one squared deviation, and all may round the same way. A value
    repeated only in the middle of a row, and not zero, is not seen: finding every row's most
    common value takes a sort (5 ms per block of 2^18 values, four times the moments)."""
    if not x.shape[1]:
        return np.zeros(x.shape[0])
    first, last = x[:, 0], x[:, -1]
    zero = np.zeros_like(low)
    found = np.zeros(x.shape[0], dtype=np.int64)
    chosen: list[F64] = []
    for value in (low, high, zero, first, last):
        # NaN never equals itself: a NaN value is no new value and counts no element
        fresh = ~np.isnan(value)
        for before in chosen:
            fresh &= value != before
        if fresh.any():
            count = np.count_nonzero(x == value[:, None], axis=1)
            found += np.where(fresh & (count > 1), count, 0)  # a value met once repeats nothing
        chosen.append(value)
    return np.asarray(np.fmin(found / x.shape[1], 1.0), dtype=np.float64)


def _stagnant(squares: F64, total: F64, unit: float) -> F64:
    """Per row, the share of ``total`` (the row's sum of ``squares``) that a sequential sum
    loses one way: an addend ``q`` below half a last place ``h`` of the running sum is lost
    whole, one between ``h`` and ``2 h`` rounds up by ``2 h - q``, so the net loss is the
    first less the second, with ``h = unit * total / 2`` (half a last place of the whole;
    the running sum is smaller before). Rows whose small squares crowd towards 0 lose it
    (magnitudes spread over four decades: 1.6e-5 and 4.9e-5 of a float32 sum of 10,000
    squares, measured 1.5e-5 and 3.1e-5, ten times a random walk); on N(0, 1) rows of
    78,036 values it is 1.1e-5 (measured 1.5e-5, which the random walk holds)."""
    if unit <= 0 or not squares.shape[1]:
        return np.zeros(squares.shape[0])
    with np.errstate(all="ignore"):
        h = 0.5 * unit * total
        # few squares are below 2 h (under 1 % of a row of 1,024 N(0, 1) values): one pass
        # finds them, and the sums run over them alone (a masked sum over the block is ten)
        kept = squares < (2.0 * h)[:, None]
        groups = squares.shape[0]
        rows = np.repeat(np.arange(groups), np.count_nonzero(kept, axis=1))
        small, half = squares[kept], h[rows]  # row by row, as ``rows`` counts them
        below = small < half
        lost = np.bincount(rows, np.where(below, small, 0.0), groups)
        gained = np.bincount(rows, np.where(below, 0.0, 2.0 * half - small), groups)
        net = np.fmax(lost - gained, 0.0)
        return np.asarray(np.where(total > 0, net / total, 0.0), dtype=np.float64)


def group_statistics(block: npt.NDArray[np.generic], center: bool = True) -> tuple[F64, F64]:
    """Mean and biased variance of each row of a (groups, elements) block, in float64.

    With ``center=False`` (RMSNorm) the mean is zero and the "variance" is the mean square.
    """
    m = group_moments(block, center)
    return m.mean, m.var


def moments(
    layout: GroupLayout, x: npt.NDArray[np.generic], center: bool, unit: float = 0.0
) -> Moments:
    """``group_moments`` of every group of ``x``, block by block, two blocks at a time (NumPy
    releases the GIL in its loops; each block's moments are its own, so the result is the
    same in any order)."""
    blocks = (block for _, block in layout.blocks(x))
    if layout.groups <= layout.groups_per_block:
        parts = [group_moments(block, center, unit) for block in blocks]
    else:
        parts = overlap.in_order(partial(group_moments, center=center, unit=unit), blocks)
    if not parts:
        empty = np.zeros(0)
        return Moments(*(empty for _ in Moments.__dataclass_fields__))
    return Moments(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Moments.__dataclass_fields__)
    )
