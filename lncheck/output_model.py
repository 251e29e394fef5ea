"""The output of a mean/variance op, block by block: the reference value, its error bound per
accuracy class, and the structure a candidate's error must have.

For a group with (float64-exact) normalized values ``n_i = (x_i - mean) * rstd``, effective
weight ``w_i`` and bias ``b_i``, ``y_i = n_i * w_i + b_i``. Any error in the statistics moves
``n_i`` affinely (``n_i * s + t``: ``s`` is the candidate's rstd relative to the exact one,
``t`` its mean error times rstd; RMSNorm has no ``t``), whatever the algorithm; everything else
an implementation does rounds element by element. ``affine_fit`` fits ``s`` and ``t`` per
group by least squares, and ``lncheck.judge`` checks the element-wise residual against rounding
level: a residual
above it (a row copied from elsewhere, a wrong weight broadcast, a missing bias) is a
``mismatch`` whatever the dtype, and ``s``, ``t`` are judged against each accuracy class's
bound on the statistics (``tolerances``).

Two structural limits hold for any correct layer computing its statistics from the group (not
eval-mode running statistics): ``|y - b| <= |w| * sqrt(n - 1)`` for centred ops (``sqrt(n)``
for RMSNorm), since ``sum(n_i**2) = n`` with ``sum(n_i) = 0``; and on a group whose values are
all equal every element's output is the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout, float64_block, uniform_rows
from lncheck.caps import exact_reach
from lncheck.dtypes import DTYPES
from lncheck.moments import Scaled
from lncheck.sequential import on_grid, sequential_drift, sequential_steps, trend_of
from lncheck.tolerances import (
    FEW_LEVELS,
    FOLD_REACH,
    G_STUCK,
    TREND_LEVELS,
    TREND_REACH,
    Allowance,
    accumulation_dtype,
    allowance,
    atol_floor,
    low_precision_ceiling,
)

F64 = npt.NDArray[np.float64]
# groups whose largest value is beyond 2**960 or below 2**-960: x - mean may overflow, rstd
# overflow or underflow, or the mean be subnormal (``Scaled.normalized``)
EXTREME_EXPONENT = 960
LOW_REACH = 1.0  # the largest |s - 1| and |t| the low_precision class admits
EXACT_MEAN_CLASSES = ("accurate", "sequential")  # statistics summed in the accumulation dtype


@dataclass(frozen=True)
class OutputModel:
    """What the reference knows about an output: per group the first-pass mean ``m0``, its
    ``correction`` (``x - mean = (x - m0) - correction``, which keeps ``mean``'s own rounding
    out of every element), ``rstd``, ``kappa`` and the ``variance`` ``rstd`` is formed from;
    the weight and bias in view shape."""

    layout: GroupLayout
    x: npt.NDArray[np.generic]
    m0: F64
    correction: F64
    rstd: F64
    # rstd in parts, and the exponent each group's values are scaled by (``moments``): the
    # output of a group near either end of float64's range is formed in the scaled domain
    scaled: Scaled
    kappa: F64
    weight: npt.NDArray[np.generic] | None
    bias: npt.NDArray[np.generic] | None
    # groups whose exact output is their bias: values all equal (all zero for RMSNorm, whose
    # variance is the mean square)
    constant: npt.NDArray[np.bool_]
    # constant groups whose sums are exact in the accumulation dtype (``exact_sums``): every
    # algorithm there computes the mean exactly, and x - mean = 0
    exact_mean: npt.NDArray[np.bool_]
    peak: F64  # the largest share one element has of a group's sum of squares
    repeated: F64  # the share of a group's values equal to its smallest or its largest
    # how many values the group's input can take (the compute dtype's values between its
    # smallest and largest, at most its size): equal inputs round alike (``lncheck.judge``)
    levels: F64
    unfinite: npt.NDArray[np.bool_]  # groups whose input holds NaN or inf
    # how far above 1 the implied scale reaches where a kernel loses the variance whole,
    # sqrt((var + eps) / eps) - 1, where it computes one about the mean (0 elsewhere): a
    # one-pass variance may (``tolerances.low_precision_ceiling``), and...
    whole: F64
    # ...a sequential sum may (``tolerances.LAST_PLACE_LEVELS``), here; 0 elsewhere
    lost: F64
    # the share of the sum of squares a sequential sum in the accumulation dtype may lose
    # whole, in squares below its last place (``moments.Moments.stagnant``)
    stagnant: F64
    variance: F64  # what each group is normalized with: the batch's (estimated) or running
    centered: bool
    running: bool  # normalized with running statistics (eval): none computed here

    @property
    def group_size(self) -> int:
        return self.layout.group_size

    @property
    def cap(self) -> float:
        """``|n_i| <= sqrt(n - 1)`` with the biased variance about the group's mean (the
        largest share one value can have of ``sum(n_i**2) = n`` once ``sum(n_i) = 0``),
        ``sqrt(n)`` for RMSNorm; a kernel's statistics' own errors are the limits' rounding."""
        n = self.layout.group_size
        return math.sqrt(max(n - 1, 0) if self.centered else n)

    def blocks(self) -> Iterator[OutputBlock]:
        """The output block by block, in ``layout`` order."""
        sources = [self.x] + [a for a in (self.weight, self.bias) if a is not None]
        iterators = [self.layout.blocks(s) for s in sources]
        for parts in zip(*iterators, strict=True):
            first = parts[0][0]
            yield self.block(first, tuple(block for _, block in parts))

    def at(self, first: int, stop: int) -> OutputBlock:
        """The block of groups ``[first, stop)``."""
        sources = [self.x] + [a for a in (self.weight, self.bias) if a is not None]
        return self.block(first, tuple(self.layout.block_at(s, first, stop) for s in sources))

    def block(self, first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> OutputBlock:
        """One block: ``blocks`` are the blocks of ``x`` (then weight, then bias, as given)."""
        rows = slice(first, first + blocks[0].shape[0])
        with np.errstate(all="ignore"):
            nhat: F64 = np.subtract(blocks[0], self.m0[rows, None], dtype=np.float64)
            nhat -= self.correction[rows, None]
            nhat *= self.rstd[rows, None]
            k = self.scaled.exponent[rows]
            extreme = np.flatnonzero(np.abs(k) > EXTREME_EXPONENT)
            if extreme.size:  # x - mean or rstd out of range, or the mean subnormal
                nhat[extreme] = self.scaled.normalized(blocks[0][extreme], first + extreme)
            rest = list(blocks[1:])
            w = float64_block(rest.pop(0)) if self.weight is not None else None
            b = float64_block(rest.pop(0)) if self.bias is not None else None
            y = nhat if w is None else nhat * w
            if b is not None:
                y = y + b
        return OutputBlock(self, first, nhat, w, b, np.asarray(y, dtype=np.float64))


@dataclass(frozen=True)
class OutputBlock:
    """One block of groups: normalized values, weight and bias (``None``: ones, zeros), the
    reference output."""

    model: OutputModel
    first: int
    nhat: F64
    weight: F64 | None
    bias: F64 | None
    y: F64
    # element-wise terms that the fit, the judgement and the cap each ask for, for every
    # candidate: computed once per block (callers never write into them)
    memo: dict[tuple[object, ...], object] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def k(self) -> F64:
        """``1 + kappa`` per group, as a column."""
        return 1.0 + self.model.kappa[self.first : self.first + self.y.shape[0], None]

    @property
    def weighted(self) -> F64:
        """``w n``: the normalized values times the weight (never written into)."""
        if ("weighted",) not in self.memo:
            with np.errstate(all="ignore"):
                product = self.nhat if self.weight is None else self.nhat * self.weight
            self.memo[("weighted",)] = product
        return self.memo[("weighted",)]  # type: ignore[return-value]

    def scaled(self) -> tuple[F64, F64 | float, F64 | float]:
        """``|w n|``, ``|w|`` and ``|b|``: what the element-wise terms scale with."""
        if ("scaled",) not in self.memo:
            with np.errstate(all="ignore"):
                a = np.abs(self.weighted)
                big_w = 1.0 if self.weight is None else np.abs(self.weight)
                big_b = 0.0 if self.bias is None else np.abs(self.bias)
            self.memo[("scaled",)] = a, big_w, big_b
        return self.memo[("scaled",)]  # type: ignore[return-value]

    def bias_share(self) -> F64:
        """Per group (a column), the largest ``|b| / |w|``: a folded shift's rounding, in std."""
        if self.bias is None:
            return np.zeros((self.y.shape[0], 1))
        w = 1.0 if self.weight is None else np.abs(self.weight)
        with np.errstate(all="ignore"):
            share = np.where(w > 0, np.abs(self.bias) / w, 0.0)
        return np.asarray(np.max(share, axis=1, keepdims=True), dtype=np.float64)

    def allowance(self, dtype: str, klass: str) -> Allowance:
        return allowance(dtype, self.model.group_size, klass, running=self.model.running)

    def limits(self, dtype: str, klass: str, shift: F64 | None = None) -> tuple[F64, F64]:
        """Per group (as columns), the largest implied scale ``|s - 1|`` and shift ``|t|``
        class ``klass`` allows. A mean off by ``t`` std inflates a variance measured about it
        by ``t**2``: the scale may move by ``1 - 1 / sqrt(1 + t**2)`` more, with ``t`` the
        observed mean error ``shift`` (capped at its limit), else by ``t**2 / 2`` of the limit."""
        base, raw, limit = self._limit_terms(dtype, klass)
        with np.errstate(all="ignore"):
            if shift is None:  # no more than the limit's own t**2 / 2
                moved = 0.5 * raw**2
            else:  # about a mean off by t, s = 1 / sqrt(1 + t**2): 1 - s without cancelling
                t2 = np.minimum(np.abs(shift).reshape(-1, 1), raw) ** 2
                moved = t2 / (np.sqrt(1.0 + t2) * (1.0 + np.sqrt(1.0 + t2)))
            scale = base + moved
            if klass == "low_precision":  # off by their own size, or by a one-pass variance's
                rows = slice(self.first, self.first + self.y.shape[0])
                reach = low_precision_ceiling(
                    dtype, self.model.group_size, self.k, self.model.whole[rows, None]
                )
                scale = np.fmax(np.minimum(scale, LOW_REACH), reach)
        return np.asarray(scale, dtype=np.float64), limit

    def _limit_terms(self, dtype: str, klass: str) -> tuple[F64, F64, F64]:
        """``limits``' terms that no candidate changes, per group: the scale's limit before a
        mean error's share, the shift's before and after the class's exact-mean and reach
        rules (memoized: every candidate and class asks for them)."""
        key = ("limits", dtype, klass)
        if key in self.memo:
            return self.memo[key]  # type: ignore[return-value]
        c = self.allowance(dtype, klass)
        k = self.k
        rows = slice(self.first, self.first + self.y.shape[0])
        model = self.model
        steps = sequential_steps(
            model.group_size, model.peak[rows, None], model.centered, model.repeated[rows, None]
        )
        with np.errstate(all="ignore"):  # an infinite kappa (eps=0, constant) is no warning
            raw = (c.shift + c.fused) * k + c.fused * self.bias_share()
            if c.folded > 0:  # the folded shift's rounding, u (K |w| + |b|)
                folded = self.folded_k(dtype)
                raw = raw + c.folded * np.where(folded > 0, folded + self.bias_share(), 0.0)
            scale = c.scale * k + c.scale_const + c.sequential * steps + c.quadratic * k * k
            # the drift's coefficient holds min(n v, 1); with K it saturates where updates of
            # the running mean fall below its last place (n v K near 1)
            few = model.levels[rows, None] <= FEW_LEVELS
            # the trend tells on data that take many values while the running mean still
            # moves (``tolerances.TREND_LEVELS``, ``TREND_REACH``)
            centred_drift = model.centered and c.drift > 0
            v = DTYPES[accumulation_dtype(dtype)].unit_roundoff  # type: ignore[index]
            moving = model.group_size * v * k[:, 0] <= TREND_REACH
            telling = (model.levels[rows] >= TREND_LEVELS) & moving
            grid = self.grid(telling & centred_drift)
            # the trend narrows the drift where the walk is below it; on a grid it widens it
            looked = telling & ((c.drift * k[:, 0] > c.walk) | grid)
            trend = self.trend(looked, dtype) if centred_drift else None
            drifted = sequential_drift(c, dtype, k, few, trend, grid[:, None])
            # ...or an outlier leaves it off (``tolerances.G_STUCK``)
            n, peak = model.group_size, model.peak[rows, None]
            d = np.sqrt(n * peak)  # the outlier's distance, in std
            # it sticks once its updates d / k**2 fall below its last place, if that is
            # before the end of the group
            sticks = (peak >= 0.5) & (d / (c.stuck / G_STUCK * k) < n * n)
            stuck = np.where(sticks, c.stuck * k * d, 0.0)
            scale = scale + np.fmax(drifted, stuck)
            if c.sequential > 0:  # squares below the running sum's last place, lost whole
                share = np.fmin(model.stagnant[rows, None], 0.5)
                scale = scale + share / (np.sqrt(1.0 - share) * (1.0 + np.sqrt(1.0 - share)))
            if klass == "sequential":
                # values a last place or two apart, one of them apart from the rest: a running
                # mean's update rounds onto the value it met, and the sum of squares may keep
                # none of its terms, rstd then 1 / sqrt(eps) (only larger: ``judge``)
                scale = scale + model.lost[rows, None]
            limit = raw
            exact = model.exact_mean[rows, None]  # a representable mean, however it is kept
            if klass in EXACT_MEAN_CLASSES:
                # every sum exact: no sequential drift, only a parallel Welford's merges (a few
                # ulps per level, torch's CUDA BatchNorm) and the fused form's rounding
                merged = 2.0 * c.scale_const + c.fused
                limit = np.where(exact, merged * k, limit)
            if klass == "low_precision":  # off by their own size (or a mean's A u K rounding)
                reach = np.where(exact, LOW_REACH, np.fmax(LOW_REACH, c.relative * k))
                limit = np.minimum(limit, reach)
        found = tuple(np.asarray(v, dtype=np.float64) for v in (scale, raw, limit))
        self.memo[key] = found
        return found  # type: ignore[return-value]

    def folded_k(self, dtype: str) -> F64:
        """Per group (a column), ``K`` where a scale and shift folded in ``dtype`` err by at
        most a quarter of a std (``K u <= FOLD_REACH``), 0 elsewhere."""
        u = DTYPES[dtype].unit_roundoff  # type: ignore[index]
        return np.where(self.k * u <= FOLD_REACH, self.k, 0.0)

    def trend(self, rows: npt.NDArray[np.bool_], dtype: str) -> F64:
        """Per group (a column), how far its running sum strays beyond random order
        (``sequential.trend_of``) on ``rows``, NaN on the others; memoized per ``dtype`` and
        ``rows`` (every class with a drift asks for the same rows today)."""
        key = ("trend", dtype, rows.tobytes())
        if key not in self.memo:
            found = np.full((self.y.shape[0], 1), np.nan)
            if rows.any():
                found[rows, 0] = trend_of(self.nhat[rows])
            self.memo[key] = found
        return self.memo[key]  # type: ignore[return-value]

    def grid(self, rows: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Per group, whether its values are on a regular grid (``sequential.on_grid``), on
        ``rows`` (False elsewhere); memoized per ``rows``."""
        key = ("grid", rows.tobytes())
        if key not in self.memo:
            found = np.zeros(self.y.shape[0], dtype=bool)
            if rows.any():
                found[rows] = on_grid(self.nhat[rows])
            self.memo[key] = found
        return self.memo[key]  # type: ignore[return-value]

    def atol(self, dtype: str, klass: str) -> F64:
        """The element-wise atol of class ``klass`` (its rtol, ``allowance().rounded``,
        applies to ``|y|``): the statistics' distortion at its largest, plus roundings."""
        c = self.allowance(dtype, klass)
        scale, shift = self.limits(dtype, klass)
        a, big_w, big_b = self.scaled()
        with np.errstate(all="ignore"):
            total = a * (c.plain + scale)
            # the per-group terms added as one where weight and bias are uniform (one pass)
            # a mean off by t std is seen through the kernel's rstd, s times the exact one
            rest = _plus(big_w * (shift * (1.0 + scale)), c.plain * big_b)
            total += _plus(rest, atol_floor(dtype))
            exact = self.model.exact_mean[self.first : self.first + self.y.shape[0]]
            if exact.any():  # y = b there, and the structural limit holds (``caps``)
                reach = _plus(big_w * exact_reach(self, dtype), c.plain * big_b)
                limited = np.fmin(total, _plus(reach, atol_floor(dtype)))
                total = np.where(exact[:, None], limited, total)
            if klass == "low_precision":  # accepting more is never stricter (constant groups)
                total = np.fmax(total, self.atol(dtype, "sequential"))
        return np.asarray(np.broadcast_to(total, self.y.shape), dtype=np.float64)

    def residual_bound(self, dtype: str, klass: str) -> F64:
        """What element-wise roundings alone may leave after the statistics' affine part,
        measured from the exact output's own rounding (``affine_fit.fit``), whose ``u |y|``
        adds to the kernel's own (``allowance().rounded``): the two may round a value near a
        midpoint to neighbours an ULP apart.

        A folded scale and shift rounds ``x * scale + shift`` differently for different ``x``
        (and per channel), but equal inputs with equal weight and bias give equal outputs: on
        a constant group whose weight and bias are uniform that term is absent."""
        c = self.allowance(dtype, klass)
        # the element-wise roundings' terms are the same for every class: one bound per block
        key = ("residual_bound", dtype, c.rounded, c.plain, c.fused, c.folded)
        if key in self.memo:
            return self.memo[key]  # type: ignore[return-value]
        a, big_w, big_b = self.scaled()
        rows = slice(self.first, self.first + self.y.shape[0])
        identical = self.model.constant[rows] & uniform_rows(self.weight) & uniform_rows(self.bias)
        k = np.where(identical[:, None], 0.0, self.k)
        with np.errstate(all="ignore"):
            total = np.abs(self.y)
            total *= c.rounded + DTYPES[dtype].unit_roundoff  # type: ignore[index]
            total += c.plain * _plus(a, big_b)
            total += _plus(c.fused * k * big_w, atol_floor(dtype))
            if c.folded > 0:  # x * scale rounded to the compute dtype
                total += c.folded * np.where(identical[:, None], 0.0, self.folded_k(dtype)) * big_w
        bound = np.asarray(np.broadcast_to(total, self.y.shape), dtype=np.float64)
        self.memo[key] = bound
        return bound


def _plus(x: F64 | float, y: F64 | float) -> F64 | float:
    """``x + y``, without a pass over a block to add a zero."""
    if np.ndim(y) == 0 and y == 0:
        return x
    return x + y
