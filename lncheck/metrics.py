"""Comparing block by block: running metrics of one candidate's quantity, and whole-tensor
comparison on top of them.

Metrics are accumulated one block at a time, so comparing a tensor never needs a float64 copy
of the whole of it; the reference-side work of a block (``prepare``) is shared by every
candidate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.comparison import Comparison, unmatched
from lncheck.dtypes import DTYPES, DTypeInfo, inverse_spacing
from lncheck.group_failures import FailingGroups
from lncheck.histogram import BINS, error_counts
from lncheck.result import LazyTensor, Quantity, blocks_of
from lncheck.scratch import Scratch
from lncheck.worst_element import Rank, Shown, WorstElement, atol_at

F64 = npt.NDArray[np.float64]
HEATMAP_SIZE = 128
_TINY = np.finfo(np.float64).tiny


def compare(
    candidate: str,
    quantity: str,
    expected: Quantity,
    actual: npt.NDArray[np.generic],
    layout: GroupLayout,
    *,
    rtol: float,
    atol: float | F64 | LazyTensor,
    equal_nan: bool = False,
    magnitude: float | F64 = 0.0,
    ulp_dtype: str | None = None,
    heatmap: bool = False,
) -> Comparison:
    """Compare ``actual`` with the reference quantity ``expected``, both laid out by ``layout``.

    ``atol`` is one number, one per group of ``layout``, or one per element (a lazy quantity
    laid out like ``expected``). Shapes are checked before any arithmetic: a shape mismatch is
    a failed comparison with a note, never a broadcast. ULP errors are counted in
    ``ulp_dtype`` at ``max(|expected|, magnitude)`` (``magnitude`` one number or one per group),
    so values near zero are not measured against the tiny spacing there. ``heatmap`` keeps a
    max-pooled (group, element) map of the absolute error for plots.
    """
    shape = expected.shape
    if tuple(actual.shape) != tuple(shape):
        return unmatched(candidate, quantity, tuple(actual.shape), tuple(shape), rtol)
    acc = Accumulator(
        rtol,
        equal_nan,
        None if ulp_dtype is None else DTYPES[ulp_dtype],  # type: ignore[index]
        (layout.groups, layout.group_size) if heatmap else None,
    )
    magnitudes = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), (layout.groups,))
    for (first, exp), (_, act), tol in zip(
        blocks_of(expected, layout), layout.blocks(actual), atol_blocks(atol, layout), strict=True
    ):
        shared = prepare(exp, rtol, tol, magnitudes[first : first + exp.shape[0], None], acc.ulp_of)
        acc.update(first, shared, act, tol)
    return acc.result(candidate, quantity, layout)


def atol_blocks(atol: float | F64 | LazyTensor, layout: GroupLayout) -> Iterator[F64]:
    """``atol`` block by block, in ``layout``'s order, shaped to broadcast against each block."""
    if isinstance(atol, LazyTensor):
        for _, block in atol.blocks():
            yield block
        return
    values = np.asarray(atol, dtype=np.float64)
    if values.ndim and values.shape == layout.input_shape:  # one per element
        for _, part in layout.blocks(values):
            yield np.asarray(part, dtype=np.float64)
        return
    per_group = np.broadcast_to(values, (layout.groups,))
    for first, stop in layout.spans():
        yield per_group[first:stop, None]


@dataclass(frozen=True)
class Shared:
    """What every candidate's comparison of one block needs from the reference: computed once.

    Reciprocals are kept so that each candidate multiplies instead of dividing.
    """

    expected: F64
    allowed: F64  # atol + rtol * |expected|, never 0 (so error / allowed is never 0 / 0)
    rtol_part: F64  # rtol * |expected|
    inv_allowed: F64
    inv_magnitude: F64  # 1 / |expected|, huge (not inf) where expected is 0
    # error * inv_spacing is the error in ULPs of the compute dtype at max(|expected|, the
    # group's magnitude), where the spacing is 2**(exponent - mantissa bits).
    inv_spacing: F64 | None
    # where the exact value lies beyond the dtype's finite range, the correctly rounded value
    # is an infinity: there it replaces the exact one (``overflow`` marks those elements)
    overflow: npt.NDArray[np.bool_] | None = None


def prepare(
    expected: npt.NDArray[np.generic],
    rtol: float,
    atol: F64 | float,
    magnitude: F64 | float,
    ulp_of: DTypeInfo | None = None,
    rounds_to: DTypeInfo | None = None,
    scratch: Scratch | None = None,
) -> Shared:
    """The parts of a block's comparison that do not depend on the candidate.

    With ``rounds_to``, exact values beyond that dtype's finite range are replaced by the
    infinity they round to (round to nearest: from ``max + ulp(max) / 2`` on). With
    ``scratch``, the result lives in its buffers, valid until the next block is prepared."""
    e = np.asarray(expected, dtype=np.float64)
    buffers = scratch or Scratch()
    mag = np.abs(e, out=buffers.get("shared.magnitude", e.shape))
    overflow = None
    if rounds_to is not None:
        limit = rounds_to.max * (1.0 + 2.0 ** -(rounds_to.mantissa_bits + 2))
        # one reduction (which skips NaN) finds a block with nothing beyond the range
        if mag.size and np.fmax.reduce(mag, axis=None) >= limit:
            with np.errstate(all="ignore"):
                beyond = mag >= limit
            overflow = beyond
            e = np.where(beyond, np.copysign(np.inf, e), e)
            np.abs(e, out=mag)
    with np.errstate(all="ignore"):
        rtol_part = np.multiply(mag, rtol, out=buffers.get("shared.rtol_part", e.shape))
        allowed = np.add(rtol_part, atol, out=buffers.get("shared.allowed", e.shape))
        inv_allowed = buffers.get("shared.inv_allowed", e.shape)
        # A bound that came out NaN (inf * 0 for a zero-variance group with eps=0) allows
        # nothing beyond the rtol part: fmax drops the NaN. Never 0, so error / allowed is
        # never 0 / 0.
        np.fmax(allowed, np.fmax(rtol_part, _TINY, out=inv_allowed), out=allowed)
        np.divide(1.0, allowed, out=inv_allowed)
        inv_spacing = None
        if ulp_of is not None:
            floor = np.maximum(magnitude, ulp_of.tiny)  # per group: one pass over the block
            scale = np.maximum(mag, floor, out=buffers.get("shared.spacing", e.shape))
            inv_spacing = inverse_spacing(scale, ulp_of.mantissa_bits)
        inv_magnitude = np.maximum(mag, _TINY, out=mag)
        np.divide(1.0, inv_magnitude, out=inv_magnitude)
    return Shared(e, allowed, rtol_part, inv_allowed, inv_magnitude, inv_spacing, overflow)


class Accumulator:
    """Running metrics of one candidate's quantity over blocks: counts, maxima, the worst element.

    Blocks arrive with the index of their first group in the whole tensor, in any order, so a
    tensor can be compared chunk by chunk; ``result`` turns the totals into a ``Comparison``.
    """

    def __init__(
        self,
        rtol: float,
        equal_nan: bool,
        ulp_of: DTypeInfo | None,
        heatmap: tuple[int, int] | None,
        groups: FailingGroups | None = None,
    ) -> None:
        self.rtol, self.equal_nan, self.ulp_of = rtol, equal_nan, ulp_of
        self.groups = groups
        self.total = self.mismatched = self.finite = 0
        self.nan_actual = self.nan_expected = self.inf_actual = self.inf_expected = 0
        self.nan_pairs = 0  # NaN against NaN, failed for want of equal_nan
        self.nan_reference_only = 0  # the reference NaN where the candidate is not
        self.sum_abs = self.max_abs = self.max_rel = self.max_ulp = 0.0
        self.required_atol = self.required_rtol = 0.0
        self.atol_max = 0.0
        self.overflow = 0
        self.worst = WorstElement()
        self.unexcused = WorstElement()  # among failures no known loss explains (``update``)
        self.max_score = 0.0  # the largest share of its tolerance of any element
        self.histogram = np.zeros(BINS, dtype=np.int64)
        self.heatmap_shape = heatmap
        self.heatmap = (
            None
            if heatmap is None
            else np.zeros((min(heatmap[0], HEATMAP_SIZE), min(heatmap[1], HEATMAP_SIZE)))
        )

    def update(
        self,
        first: int,
        shared: Shared,
        actual: npt.NDArray[np.generic],
        atol: F64 | float,
        extra: F64 | None = None,
        scratch: Scratch | None = None,
        excused: npt.NDArray[np.bool_] | None = None,
    ) -> F64:
        """Add one block: ``actual`` against the reference block that ``shared`` describes.

        ``extra`` is a further share of the tolerance per group (a structural check's), charged
        to the group's element with the largest error, where it counts like that element's
        own. ``excused`` marks non-finite elements a known loss explains
        (``verdicts.lost_to_rstd``): they fail and count, and are left out of the worst
        unexcused failure (``result``'s ``unexcused_first``). Returns the absolute error of
        each element (``inf`` for a non-finite mismatch, ``0`` for a non-finite match or NaN
        against NaN): with ``scratch``, in its buffer, valid until its next use."""
        e = shared.expected
        self.total += e.size
        self.atol_max = max(self.atol_max, float(np.fmax.reduce(np.ravel(atol))))
        if shared.overflow is not None:
            self.overflow += int(np.count_nonzero(shared.overflow))
        with np.errstate(all="ignore"):
            buffers = scratch or Scratch()
            err = np.subtract(actual, e, dtype=np.float64, out=buffers.get("update.error", e.shape))
            np.abs(err, out=err)
            total = float(err.sum())
            if math.isfinite(total):  # so every pair is finite (a NaN or Inf would show here)
                share = buffers.get("update.share", e.shape)
                self._finite_block(first, shared, err, total, actual, atol, extra, share)
                return np.asarray(err, dtype=np.float64)
            return self._mixed_block(
                first, shared, np.asarray(actual, dtype=np.float64), atol, extra, excused
            )

    def _finite_block(
        self,
        first: int,
        s: Shared,
        err: F64,
        total: float,
        actual: npt.NDArray[np.generic],
        atol: F64 | float,
        extra: F64 | None,
        scratch: F64,
    ) -> None:
        """The common case, every pair finite: about ten passes over the block, no masks, one
        scratch array (``scratch``, overwritten)."""
        self.finite += err.size
        self.sum_abs += total
        np.multiply(err, s.inv_allowed, out=scratch)  # each element's share of its tolerance
        if extra is not None and err.shape[1]:
            rows, at = np.arange(err.shape[0]), np.argmax(err, axis=1)
            scratch[rows, at] = np.maximum(scratch[rows, at], extra)
        k = int(scratch.argmax())
        best = float(scratch.flat[k])
        self.max_score = max(self.max_score, best)
        own = float(err.flat[k] * s.inv_allowed.flat[k])
        if best > 1:
            bad = scratch > 1
            self.mismatched += int(np.count_nonzero(bad))
            if self.groups is not None:
                self.groups.add(first, bad)
        offered = (
            Rank(best, float(err.flat[k])),
            first,
            k,
            err.shape[1],
            (float(np.asarray(actual).flat[k]), float(s.expected.flat[k])),
            atol_at(atol, k, err.shape),
            own,
        )
        self.worst.offer(*offered)
        if best > 1:  # nothing here is excused: only non-finite values are
            self.unexcused.offer(*offered)
        self.max_abs = max(self.max_abs, float(err.max()))
        np.multiply(err, s.inv_magnitude, out=scratch)
        self.max_rel = max(self.max_rel, float(scratch.max()))
        np.subtract(err, s.rtol_part, out=scratch)  # the atol each element needs with this rtol
        self.required_atol = max(self.required_atol, float(scratch.max()))
        np.subtract(err, s.allowed, out=scratch)  # the rtol it needs beyond this one, times |e|
        scratch *= s.inv_magnitude
        self.required_rtol = max(self.required_rtol, float(scratch.max()) + self.rtol)
        if s.inv_spacing is not None:
            np.multiply(err, s.inv_spacing, out=scratch)
            self.max_ulp = max(self.max_ulp, float(scratch.max()))
        self._histogram(err)
        if self.heatmap is not None:
            self._pool(first, err)

    def _mixed_block(
        self,
        first: int,
        s: Shared,
        a: F64,
        atol: F64 | float,
        extra: F64 | None,
        excused: npt.NDArray[np.bool_] | None,
    ) -> F64:
        """A block with NaN or Inf somewhere: masks decide what each pair means."""
        e = s.expected
        e_nan, a_nan = np.isnan(e), np.isnan(a)
        e_inf, a_inf = np.isinf(e), np.isinf(a)
        self.nan_expected += int(e_nan.sum())
        self.nan_actual += int(a_nan.sum())
        self.inf_expected += int(e_inf.sum())
        self.inf_actual += int(a_inf.sum())
        finite = ~(e_nan | a_nan | e_inf | a_inf)
        # Non-finite pairs pass only when they are the same value (or both NaN, if allowed).
        both_nan = a_nan & e_nan
        nonfinite_ok = (a == e) | (both_nan & self.equal_nan)
        if not self.equal_nan:
            self.nan_pairs += int(np.count_nonzero(both_nan))
        self.nan_reference_only += int(np.count_nonzero(e_nan & ~a_nan))
        err = np.where(finite, np.abs(a - e), 0.0)
        ok = np.where(finite, err <= s.allowed, nonfinite_ok)
        self.mismatched += int(e.size - np.count_nonzero(ok))
        score = np.where(finite, err * s.inv_allowed, np.where(nonfinite_ok, 0.0, np.inf))
        if extra is not None:
            extra = _at_largest(np.abs(a - e), extra)
            score = np.fmax(score, np.where(finite, extra, 0.0))
            self.mismatched += int(np.count_nonzero(ok & (score > 1)))
        if self.groups is not None:
            self.groups.add(first, ~ok if extra is None else ~ok | (score > 1))
        self.max_score = max(self.max_score, float(score.max()))
        shown = Shown(first, a, s.expected, err, finite, both_nan, s.inv_allowed, atol)
        shown.offer(score, self.worst)
        unexcused = score if excused is None else np.where(excused, -1.0, score)
        if bool(np.any(unexcused > 1)):
            shown.offer(unexcused, self.unexcused)
        if not ok[~finite].all():  # a NaN or Inf where the other side differs: no tolerance fits
            self.required_atol = self.required_rtol = self.max_abs = math.inf
        n_finite = int(np.count_nonzero(finite))
        self.finite += n_finite
        if n_finite:
            f_err, inv_mag = err[finite], s.inv_magnitude[finite]
            self.sum_abs += float(f_err.sum())
            self.max_abs = max(self.max_abs, float(f_err.max()))
            self.required_atol = max(self.required_atol, float((f_err - s.rtol_part[finite]).max()))
            self.max_rel = max(self.max_rel, float((f_err * inv_mag).max()))
            excess = (f_err - s.allowed[finite]) * inv_mag
            self.required_rtol = max(self.required_rtol, float(excess.max()) + self.rtol)
            if s.inv_spacing is not None:
                self.max_ulp = max(self.max_ulp, float((f_err * s.inv_spacing[finite]).max()))
            self._histogram(f_err)
        full = np.where(finite, err, np.where(ok, 0.0, np.inf))
        if self.heatmap is not None:
            self._pool(first, full)
        # NaN against NaN fails by the equal_nan rule alone: no error of any size, so no class
        return np.where(both_nan, 0.0, full)

    def unexcused_named(self, c: Comparison, layout: GroupLayout) -> Comparison:
        """``c`` (this accumulator's result) named after the worst failure no known loss
        explains, where there is one."""
        named = self.result(c.candidate, c.quantity, layout, unexcused_first=True)
        return replace(
            c,
            worst_index=named.worst_index,
            worst_actual=named.worst_actual,
            worst_expected=named.worst_expected,
            atol=named.atol,
            worst_by_group=named.worst_by_group,
            worst_own=named.worst_own,
            worst_score=named.worst_score,
        )

    def _histogram(self, err: F64) -> None:
        self.histogram += error_counts(err)

    def _pool(self, first: int, err: F64) -> None:
        """Max-pool the block's errors into the (group, element) heatmap."""
        assert self.heatmap is not None and self.heatmap_shape is not None
        groups, size = self.heatmap_shape
        rows = (np.arange(first, first + err.shape[0]) * self.heatmap.shape[0]) // max(groups, 1)
        cols = (np.arange(err.shape[1]) * self.heatmap.shape[1]) // max(size, 1)
        np.maximum.at(self.heatmap, (rows[:, None], cols[None, :]), err)

    def result(
        self, candidate: str, quantity: str, layout: GroupLayout, unexcused_first: bool = False
    ) -> Comparison:
        """The totals as a ``Comparison``; ``unexcused_first``: named after the worst failure
        no known loss explains, where there is one (a mismatch beside NaN an overflowing rstd
        explains), else after the worst element of all."""
        worst = self.unexcused if unexcused_first and self.unexcused.failing else self.worst
        # with no finite pair, there are no finite figures: NaN, or inf where a pair mismatched
        unmeasured = math.inf if self.mismatched else math.nan
        no_finite = self.finite == 0 and self.total > 0
        return Comparison(
            candidate=candidate,
            quantity=quantity,
            passed=self.mismatched == 0,
            total=self.total,
            mismatched=self.mismatched,
            max_abs_err=unmeasured if no_finite else self.max_abs,
            max_rel_err=unmeasured if no_finite else _unbounded(self.max_rel),
            mean_abs_err=self.sum_abs / self.finite if self.finite else math.nan,
            worst_index=layout.index(worst.group, worst.element),
            worst_actual=worst.actual,
            worst_expected=worst.expected,
            rtol=self.rtol,
            atol=worst.atol if math.isfinite(worst.atol) else self.atol_max,
            atol_max=self.atol_max,
            required_atol=max(self.required_atol, 0.0),
            required_rtol=_unbounded(max(self.required_rtol, 0.0)),
            nan_actual=self.nan_actual,
            nan_expected=self.nan_expected,
            inf_actual=self.inf_actual,
            inf_expected=self.inf_expected,
            nan_pairs=self.nan_pairs,
            nan_reference_only=self.nan_reference_only,
            tolerance_used=self.max_score,
            worst_by_group=worst.by_group,
            worst_own=worst.own,
            worst_score=max(worst.rank.score, 0.0),
            max_ulp_err=(unmeasured if no_finite else self.max_ulp)
            if self.ulp_of is not None
            else math.nan,
            overflow=self.overflow,
            histogram=tuple(int(n) for n in self.histogram),
            heatmap=self.heatmap,
        )


def _at_largest(err: F64, per_group: F64) -> F64:
    """A block of zeros with each group's ``per_group`` value at its largest ``err`` (the first
    NaN, if any)."""
    spread = np.zeros(err.shape)
    if err.shape[1]:
        spread[np.arange(err.shape[0]), np.argmax(err, axis=1)] = per_group
    return spread


def _unbounded(ratio: float) -> float:
    """Relative figures divide by |expected|, taken as at least the smallest normal float64:
    anything that large means an error where the reference is 0, which no rtol covers."""
    return math.inf if ratio > _NO_RTOL else ratio


_NO_RTOL = 1e250
