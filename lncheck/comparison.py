"""Comparison: one quantity of one candidate against the reference, block by block.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` (``torch.isclose``),
where ``atol`` may differ per group. NaN fails unless both sides are NaN and ``equal_nan`` is
set; an infinity passes only against the same infinity. Metrics are accumulated one block at
a time, so comparing a tensor never needs a float64 copy of the whole of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.dtypes import DTYPES, DTypeInfo
from lncheck.result import LazyTensor, Quantity

F64 = npt.NDArray[np.float64]


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
    tolerance_used: float = 0.0  # the worst element's error / what it was allowed: > 1 fails
    max_ulp_err: float = math.nan  # in units in the last place of the compute dtype
    histogram: tuple[int, ...] = ()  # counts per HISTOGRAM_DECADES bin (see histogram_bins)
    note: str | None = None
    # "reference": against the float64 reference; "baseline": against a recorded torch result,
    # where a difference is drift (reported, failing only with --strict-baseline).
    kind: str = "reference"
    heatmap: npt.NDArray[np.float64] | None = field(default=None, compare=False, repr=False)

    @property
    def mismatch_fraction(self) -> float:
        return self.mismatched / self.total if self.total else 0.0

    def message(self) -> str:
        return make_mismatch_message(self)


def make_mismatch_message(c: Comparison) -> str:
    """One line that says what failed, where, by how much, and what was allowed."""
    head = f"{c.candidate} {c.quantity}"
    if c.note:
        return f"{head}: {c.note}"
    verdict = "matches" if c.passed else "does not match"
    against = "the reference" if c.kind == "reference" else "the baseline"
    text = (
        f"{head} {verdict} {against}: {c.mismatched} / {c.total} elements mismatched "
        f"({100 * c.mismatch_fraction:.1f}%); greatest absolute difference {c.max_abs_err:.3g}, "
        f"worst element at index {c.worst_index}: {c.worst_actual:.9g} vs {c.worst_expected:.9g} "
        f"(allowed rtol={c.rtol:.3g}, atol={c.atol:.3g})"
    )
    if c.nan_actual or c.inf_actual:
        text += f"; candidate has {c.nan_actual} NaN and {c.inf_actual} Inf"
    return text


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
        atol_max = atol if isinstance(atol, float) else math.nan
        return Comparison(
            candidate,
            quantity,
            False,
            math.prod(shape),
            math.prod(shape),
            math.inf,
            math.inf,
            math.inf,
            (),
            math.nan,
            math.nan,
            rtol,
            atol_max,
            math.inf,
            math.inf,
            note=f"has shape {tuple(actual.shape)}, the reference has shape {tuple(shape)}",
        )
    acc = _Accumulator(
        rtol,
        equal_nan,
        None if ulp_dtype is None else DTYPES[ulp_dtype],  # type: ignore[index]
        (layout.groups, layout.group_size) if heatmap else None,
    )
    magnitudes = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), (layout.groups,))
    atol_max = 0.0
    for (first, exp), (_, act), tol in zip(
        _blocks(expected, layout), layout.blocks(actual), _atol_blocks(atol, layout), strict=True
    ):
        acc.update(first, exp, act, tol, magnitudes[first : first + exp.shape[0], None])
        if tol.size:
            atol_max = max(atol_max, float(np.nanmax(tol)) if not np.isnan(tol).all() else math.nan)
    g, m = acc.worst_position
    return Comparison(
        candidate=candidate,
        quantity=quantity,
        passed=acc.mismatched == 0,
        total=acc.total,
        mismatched=acc.mismatched,
        max_abs_err=acc.max_abs,
        max_rel_err=acc.max_rel,
        mean_abs_err=acc.sum_abs / acc.finite if acc.finite else 0.0,
        worst_index=layout.index(g, m),
        worst_actual=acc.worst_values[0],
        worst_expected=acc.worst_values[1],
        rtol=rtol,
        atol=atol_max,
        required_atol=acc.required_atol,
        required_rtol=acc.required_rtol,
        nan_actual=acc.nan_actual,
        nan_expected=acc.nan_expected,
        inf_actual=acc.inf_actual,
        inf_expected=acc.inf_expected,
        tolerance_used=max(acc.worst_key[0], 0.0),
        max_ulp_err=acc.max_ulp if ulp_dtype is not None else math.nan,
        histogram=tuple(int(n) for n in acc.histogram),
        heatmap=acc.heatmap,
    )


def _atol_blocks(atol: float | F64 | LazyTensor, layout: GroupLayout) -> Iterator[F64]:
    """``atol`` block by block, in ``layout``'s order, shaped to broadcast against each block."""
    if isinstance(atol, LazyTensor):
        for _, block in atol.blocks():
            yield block
        return
    values = np.asarray(atol, dtype=np.float64)
    if values.shape == layout.input_shape and values.size > 1:  # one per element
        for _, part in layout.blocks(values):
            yield np.asarray(part, dtype=np.float64)
        return
    per_group = np.broadcast_to(values, (layout.groups,))
    for first, stop in layout.spans():
        yield per_group[first:stop, None]


def _blocks(q: Quantity, layout: GroupLayout) -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
    return q.blocks() if isinstance(q, LazyTensor) else layout.blocks(q)


# Decades of the absolute error that the histogram counts: [10^k, 10^(k+1)) for k in this range,
# plus a bin for exact matches, one below and one above.
HISTOGRAM_DECADES = range(-16, 3)
HEATMAP_SIZE = 128


class _Accumulator:
    """Running metrics over blocks: counts, maxima, and the worst element seen so far."""

    def __init__(
        self,
        rtol: float,
        equal_nan: bool,
        ulp_of: DTypeInfo | None,
        heatmap: tuple[int, int] | None,
    ) -> None:
        self.rtol, self.equal_nan, self.ulp_of = rtol, equal_nan, ulp_of
        self.total = self.mismatched = self.finite = 0
        self.nan_actual = self.nan_expected = self.inf_actual = self.inf_expected = 0
        self.sum_abs = self.max_abs = self.max_rel = self.max_ulp = 0.0
        self.required_atol = self.required_rtol = 0.0
        self.worst_key: tuple[float, float] = (-1.0, -1.0)
        self.worst_position = (0, 0)
        self.worst_values = (math.nan, math.nan)
        self.histogram = np.zeros(len(HISTOGRAM_DECADES) + 3, dtype=np.int64)
        self.heatmap_shape = heatmap
        self.heatmap = (
            None
            if heatmap is None
            else np.zeros((min(heatmap[0], HEATMAP_SIZE), min(heatmap[1], HEATMAP_SIZE)))
        )

    def update(
        self,
        first: int,
        expected: npt.NDArray[np.generic],
        actual: npt.NDArray[np.generic],
        atol: F64,
        magnitude: F64 | float,
    ) -> None:
        e = np.asarray(expected, dtype=np.float64)
        a = np.asarray(actual, dtype=np.float64)
        self.total += e.size
        e_nan, a_nan = np.isnan(e), np.isnan(a)
        e_inf, a_inf = np.isinf(e), np.isinf(a)
        self.nan_expected += int(e_nan.sum())
        self.nan_actual += int(a_nan.sum())
        self.inf_expected += int(e_inf.sum())
        self.inf_actual += int(a_inf.sum())
        finite = ~(e_nan | a_nan | e_inf | a_inf)
        with np.errstate(all="ignore"):
            err = np.where(finite, np.abs(a - e), 0.0)
            mag = np.abs(e)
            allowed = atol + self.rtol * mag
            ok = err <= allowed
            # Non-finite pairs pass only when they are the same value (or both NaN if allowed).
            nonfinite_ok = (a == e) | (a_nan & e_nan & self.equal_nan)
            ok = np.where(finite, ok, nonfinite_ok)
            score = np.where(finite, err / allowed, np.where(nonfinite_ok, 0.0, np.inf))
            score = np.where(np.isnan(score), 0.0, score)  # 0 / 0: exact match with no tolerance
        self.mismatched += int(e.size - ok.sum())
        n_finite = int(finite.sum())
        self.finite += n_finite
        if n_finite:
            self._finite_metrics(err, mag, finite, atol, magnitude)
        if self.heatmap is not None and self.heatmap_shape is not None:
            self._pool(first, np.where(finite, err, np.where(ok, 0.0, np.inf)))
        if not ok[~finite].all():
            self.required_atol = self.required_rtol = math.inf
        flat = int(np.argmax(score))
        best = float(score.flat[flat])
        if best == math.inf:
            # Several elements are infinitely far out: name the one with the largest error,
            # a non-finite mismatch first.
            tie = np.where(score == math.inf, np.where(finite, err, np.inf), -1.0)
            flat = int(np.argmax(tie))
        key = (best, float(err.flat[flat]) if finite.flat[flat] else math.inf)
        if key > self.worst_key:
            self.worst_key = key
            g, m = divmod(flat, e.shape[1])
            self.worst_position = (first + g, m)
            self.worst_values = (float(a.flat[flat]), float(e.flat[flat]))

    def _finite_metrics(
        self, err: F64, mag: F64, finite: npt.NDArray[np.bool_], atol: F64, magnitude: F64 | float
    ) -> None:
        self.sum_abs += float(err.sum())
        self.max_abs = max(self.max_abs, float(err.max()))
        with np.errstate(all="ignore"):
            rel = np.where(finite & (err > 0), err / mag, 0.0)
            need_atol = np.where(finite, err - self.rtol * mag, 0.0)
            excess = err - atol
            need_rtol = np.where(finite & (excess > 0), excess / mag, 0.0)
        self.max_rel = max(self.max_rel, float(rel.max()))
        self.required_atol = max(self.required_atol, float(need_atol.max()))
        self.required_rtol = max(self.required_rtol, float(need_rtol.max()))
        if self.ulp_of is not None:
            spacing = ulp(np.maximum(mag, magnitude), self.ulp_of)
            self.max_ulp = max(self.max_ulp, float((err / spacing).max()))
        nonzero = err[err > 0]
        self.histogram[0] += err.size - nonzero.size - int((~finite).sum())
        if nonzero.size:
            decade = np.floor(np.log10(nonzero)).astype(np.int64)
            low, high = HISTOGRAM_DECADES.start, HISTOGRAM_DECADES.stop
            bins = np.clip(decade - low, -1, high - low) + 2
            self.histogram += np.bincount(bins, minlength=self.histogram.size)[
                : self.histogram.size
            ]

    def _pool(self, first: int, err: F64) -> None:
        """Max-pool the block's errors into the (group, element) heatmap."""
        assert self.heatmap is not None and self.heatmap_shape is not None
        groups, size = self.heatmap_shape
        rows = (np.arange(first, first + err.shape[0]) * self.heatmap.shape[0]) // max(groups, 1)
        cols = (np.arange(err.shape[1]) * self.heatmap.shape[1]) // max(size, 1)
        np.maximum.at(self.heatmap, (rows[:, None], cols[None, :]), err)


def ulp(magnitude: F64 | float, dtype: DTypeInfo) -> F64:
    """The spacing of ``dtype``'s numbers at ``magnitude``; below the smallest normal number it
    is the (constant) spacing of the subnormals."""
    _, exponent = np.frexp(np.maximum(magnitude, dtype.tiny))
    return np.asarray(np.ldexp(1.0, exponent - 1 - dtype.mantissa_bits), dtype=np.float64)


def histogram_bins() -> list[str]:
    """Labels of the histogram bins, in order."""
    low, high = HISTOGRAM_DECADES.start, HISTOGRAM_DECADES.stop
    return ["0", f"<1e{low}", *(f"1e{k}" for k in HISTOGRAM_DECADES), f">=1e{high}"]


def all_passed(checks: Iterable[Comparison]) -> bool:
    return all(c.passed for c in checks)
