"""The output of a mean/variance op, block by block: the reference value, its error bound per
accuracy class, and the structure a candidate's error must have.

For a group with (float64-exact) normalized values ``n_i = (x_i - mean) * rstd``, effective
weight ``w_i`` and bias ``b_i``, ``y_i = n_i * w_i + b_i``. Any error in the statistics moves
``n_i`` affinely (``n_i * s + t``: ``s`` is the candidate's rstd relative to the exact one,
``t`` its mean error times rstd; RMSNorm has no ``t``), whatever the algorithm; everything else
an implementation does rounds element by element. ``affine_fit`` fits ``s`` and ``t`` per
group by least squares, and ``judge`` checks the element-wise residual against rounding
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

from lncheck import tolerances
from lncheck.affine_fit import Fit, geometry, weighted
from lncheck.blocks import GroupLayout, float64_block, uniform_rows
from lncheck.caps import beyond_caps, exact_reach
from lncheck.fit_noise import NOISE_SIGMAS, ROUNDING_SIGMA, fit_noise
from lncheck.moments import Scaled
from lncheck.tolerances import (
    FEW_LEVELS,
    G_STUCK,
    Allowance,
    allowance,
    atol_floor,
    drift_cap,
    sequential_steps,
)

F64 = npt.NDArray[np.float64]
# groups whose largest value is beyond 2**960 or below 2**-960: x - mean may overflow, rstd
# overflow or underflow, or the mean be subnormal (``Scaled.normalized``)
EXTREME_EXPONENT = 960
LOW_REACH = 1.0  # the largest |s - 1| and |t| the low_precision class admits
EXACT_MEAN_CLASSES = ("accurate", "sequential")  # statistics summed in the accumulation dtype
WEIGHTED_GAIN = 3.0  # how much sharper a weighted fit must be to be looked at


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
    constant: npt.NDArray[np.bool_]  # groups whose values are all equal
    # constant groups whose sums are exact in the accumulation dtype (``exact_sums``): every
    # algorithm there computes the mean exactly, and x - mean = 0
    exact_mean: npt.NDArray[np.bool_]
    peak: F64  # the largest share one element has of a group's sum of squares
    # how many values the group's input can take (the compute dtype's values between its
    # smallest and largest, at most its size): equal inputs round alike (``judge``)
    levels: F64
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
            if klass == "low_precision":  # off by their own size
                scale = np.minimum(scale, LOW_REACH)
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
        steps = sequential_steps(model.group_size, model.peak[rows, None], model.centered)
        with np.errstate(all="ignore"):  # an infinite kappa (eps=0, constant) is no warning
            raw = (c.shift + c.fused) * k + c.fused * self.bias_share()
            scale = c.scale * k + c.scale_const + c.sequential * steps + c.quadratic * k * k
            # the drift's coefficient holds min(n v, 1); with K it saturates where updates of
            # the running mean fall below its last place (n v K near 1)
            few = model.levels[rows, None] <= FEW_LEVELS
            drifted = np.minimum(c.drift * k, drift_cap(dtype, k, few))
            # ...or an outlier leaves it off (``tolerances.G_STUCK``)
            n, peak = model.group_size, model.peak[rows, None]
            d = np.sqrt(n * peak)  # the outlier's distance, in std
            # it sticks once its updates d / k**2 fall below its last place, if that is
            # before the end of the group
            sticks = (peak >= 0.5) & (d / (c.stuck / G_STUCK * k) < n * n)
            stuck = np.where(sticks, c.stuck * k * d, 0.0)
            scale = scale + np.fmax(drifted, stuck)
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

    def atol(self, dtype: str, klass: str) -> F64:
        """The element-wise atol of class ``klass`` (its rtol, ``allowance().relative``,
        applies to ``|y|``): the statistics' distortion at its largest, plus roundings."""
        c = self.allowance(dtype, klass)
        scale, shift = self.limits(dtype, klass)
        a, big_w, big_b = self.scaled()
        with np.errstate(all="ignore"):
            total = a * (c.plain + scale)
            # the per-group terms added as one where weight and bias are uniform (one pass)
            rest = _plus(big_w * shift, c.plain * big_b)
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
        """What element-wise roundings alone may leave after the statistics' affine part.

        A folded scale and shift rounds ``x * scale + shift`` differently for different ``x``
        (and per channel), but equal inputs with equal weight and bias give equal outputs: on
        a constant group whose weight and bias are uniform that term is absent."""
        c = self.allowance(dtype, klass)
        # the element-wise roundings' terms are the same for every class: one bound per block
        key = ("residual_bound", dtype, c.relative, c.plain, c.fused)
        if key in self.memo:
            return self.memo[key]  # type: ignore[return-value]
        a, big_w, big_b = self.scaled()
        rows = slice(self.first, self.first + self.y.shape[0])
        identical = self.model.constant[rows] & uniform_rows(self.weight) & uniform_rows(self.bias)
        k = np.where(identical[:, None], 0.0, self.k)
        with np.errstate(all="ignore"):
            total = np.abs(self.y)
            total *= c.relative
            total += c.plain * _plus(a, big_b)
            total += _plus(c.fused * k * big_w, atol_floor(dtype))
        bound = np.asarray(np.broadcast_to(total, self.y.shape), dtype=np.float64)
        self.memo[key] = bound
        return bound


def _plus(x: F64 | float, y: F64 | float) -> F64 | float:
    """``x + y``, without a pass over a block to add a zero."""
    if np.ndim(y) == 0 and y == 0:
        return x
    return x + y


@dataclass(frozen=True)
class Scores:
    """Per group, the largest share of the accepted class's structural bounds (the residual's,
    the implied scale's and shift's; ``inf`` beyond the cap), which the comparison charges to
    the group's element with the largest error only: "5 of 8 elements" stays 5 when a fit
    spreads them over 8."""

    group: F64
    # per group, the accurate class's limits on the implied scale (ds) and shift, widened by
    # the fit's noise: what a convention's prediction must meet to explain the group
    scale_accurate: F64
    shift_accurate: F64
    # per group, the relative error a one-pass E[x^2] - E[x]^2 variance may have (0 where
    # no variance about a mean is computed)
    one_pass: F64
    # per group, the weighted fit's scale and shift as shares of the accepted class's limits
    # plus its own noise (0 where it is no sharper than least squares), its scale and shift
    systematic: F64
    weighted_scale: F64
    weighted_shift: F64


def judge(
    block: OutputBlock,
    f: Fit,
    actual: npt.NDArray[np.generic],
    dtype: str,
    classes: tuple[str, ...],
    accepted: int,
) -> tuple[npt.NDArray[np.int8], Scores, list[str | None]]:
    """Per group, the index in ``classes`` of the first class whose bounds on the implied scale
    and shift (``tolerances.allowance``, widened by what the elements' own roundings can move a
    least-squares fit), on the residual, and on ``|y - b|`` hold, ``len(classes)`` for none (a
    mismatch); the shares of the accepted class's bounds; and per group what failed
    structurally (``"cap"``, ``"residual"`` or ``None``).

    The fit's own uncertainty (``fit_noise``: ten standard deviations, taking each element's
    rounding bound ``R`` as one, widened where values repeat) is added
    to the classes' limits below ``low_precision``; low_precision's limits and the
    conventions' (``Scores``) keep the independent noise. The residual's allowance adds how
    far the fitted line may move. The weighted fit's scale and shift (``affine_fit.weighted``)
    are scored against the accepted class's limits for a warning (``Scores.systematic``).
    """
    groups = block.y.shape[0]
    best = np.full(groups, len(classes), dtype=np.int8)
    # the scale is measured by a's part across c = |w| (see affine_fit)
    geo = geometry(block, signed=False)
    a, saa = geo.a_perp, geo.spp
    residual = np.abs(f.residual)
    size = np.abs(f.centred)
    group_score = np.zeros(groups)
    scale_accurate = shift_accurate = np.full(groups, np.inf)
    with np.errstate(all="ignore"):
        # the element-wise roundings, and so the fit's own noise, are the same for every class
        rounding = block.residual_bound(dtype, classes[0])
        bound = size * 1e-15  # the fit's own float64 ulps
        bound += rounding
        # the output rounds at its own size: where the statistics' error moves it further from
        # zero than the exact output (a mean off by its limit at a large mean/std), so does
        # its rounding
        if block.bias is None:  # y = w n: both sizes are at hand
            further = np.subtract(size, block.scaled()[0])
        else:
            further = np.abs(actual) - np.abs(block.y)
        np.maximum(further, 0.0, out=further)
        further *= block.allowance(dtype, classes[0]).relative
        bound += further
        noise = fit_noise(block, geo, bound, dtype)
        independent, (noise_s, noise_t) = noise.independent, noise.alike
        # the fit's own uncertainty moves the fitted line, and so every residual, too
        allowed = np.abs(a)
        allowed *= noise_s[:, None]
        allowed += bound
        allowed += geo.times_c(noise_t[:, None])
        share_r = np.divide(residual, allowed, out=allowed)
        worst_r = np.max(share_r, axis=1) if a.shape[1] else np.zeros(groups)
        # weighted by each element's own rounding, a group's bulk pins a scale and shift one
        # outlier hides from least squares (``affine_fit.weighted``; values that repeat round
        # alike, ``fit_noise.repeats``), where that is WEIGHTED_GAIN times sharper. It warns
        # and does not judge: an intermediate rounding to the compute dtype where rstd is
        # within u of a power of two (HF's Llama RMSNorm in bfloat16) leaves a systematic
        # scale as large as a sum of squares kept in bfloat16 does (sglang#27540).
        # That needs a heavy tail: for bounds relative to |y| the gain squared is the
        # kurtosis n sum(a**4) / sum(a**2)**2 (3 for Gaussian data), so only groups where it
        # reaches WEIGHTED_GAIN**2 are fitted again
        a_squared = geo.a_perp_squared
        tail = np.einsum("ij,ij->i", a_squared, a_squared) * a_squared.shape[1] / (saa * saa)
        peaked = np.flatnonzero(tail >= WEIGHTED_GAIN**2)
        wf = weighted(block, f, bound, ROUNDING_SIGMA, peaked)
        spread = NOISE_SIGMAS * np.sqrt(noise.repeats[peaked])
        weighted_ds, weighted_shift = np.zeros(groups), np.zeros(groups)
        weighted_s, weighted_t = np.full(groups, np.inf), np.full(groups, np.inf)
        weighted_ds[peaked], weighted_shift[peaked] = wf.ds, wf.shift
        weighted_s[peaked], weighted_t[peaked] = spread * wf.sigma_s, spread * wf.sigma_t
        weighted_s[~(WEIGHTED_GAIN * weighted_s < noise_s)] = np.inf
        weighted_t[~(WEIGHTED_GAIN * weighted_t < noise_t)] = np.inf
        systematic = np.zeros(groups)
        # the fit sees the mean error t (of the exact rstd) times s: judge t itself
        s_fit = np.fmax(1.0 + f.ds, 0.0)
        limits = []
        for klass in classes:
            scale_column, shift_column = block.limits(dtype, klass, f.shift / s_fit)
            limits.append((scale_column[:, 0], shift_column[:, 0]))
        caps = beyond_caps(block, size, limits, rounding, dtype)
        residual_failed = f.fitted & (worst_r > 1)
        cap_failed = caps[-1]
        for index in range(len(classes) - 1, -1, -1):
            scale_limit, shift_limit = limits[index]
            if classes[index] == "low_precision":  # its reach below 1 (no rstd is negative)
                below = 1.0 - tolerances.low_precision_floor(
                    dtype, block.model.group_size, block.k[:, 0]
                )
                scale_limit = np.where(f.ds < 0, np.fmin(scale_limit, below), scale_limit)
            wide = classes[index] != "low_precision"
            class_s, class_t = (noise_s, noise_t) if wide else independent
            share_s = np.where(saa > 0, np.abs(f.ds) / (scale_limit + class_s), 0.0)
            share_t = np.abs(f.shift) / (shift_limit * s_fit + class_t)
            if not block.model.centered:
                share_t = np.zeros(groups)
            cap = caps[index]
            ok = np.where(f.fitted, (share_s <= 1) & (share_t <= 1) & (worst_r <= 1), True)
            ok &= ~cap
            best = np.where(ok, index, best).astype(np.int8)
            if index == 0:
                scale_accurate = np.where(saa > 0, scale_limit + independent[0], np.inf)
                shift_accurate = shift_limit + independent[1]
            if index <= accepted:  # a group any accepted class admits passes: the least share
                fitted_r = np.where(f.fitted, worst_r, 0.0)
                stats = np.where(f.fitted, np.fmax(share_s, share_t), 0.0)
                share = np.where(cap, np.inf, np.fmax(fitted_r, stats))
                group_score = share if index == accepted else np.fmin(group_score, share)
            if index == accepted:
                systematic = np.abs(weighted_ds) / (scale_limit + weighted_s)
                if block.model.centered:
                    moved = np.abs(weighted_shift) / (shift_limit * s_fit + weighted_t)
                    systematic = np.fmax(systematic, moved)
                systematic = np.where(f.fitted & np.isfinite(systematic), systematic, 0.0)
    kinds: list[str | None] = [
        "cap" if cap_failed[g] else ("residual" if residual_failed[g] else None)
        for g in range(groups)
    ]
    one_pass = np.zeros(groups)
    if block.model.centered:  # no variance is computed on an exact constant group (caps)
        with np.errstate(over="ignore"):  # K**2 beyond float64 (a constant group of 1e200)
            one_pass = block.allowance(dtype, "low_precision").quadratic * block.k[:, 0] ** 2
        one_pass[block.model.exact_mean[block.first : block.first + groups]] = 0.0
    scores = Scores(
        group_score,
        scale_accurate,
        shift_accurate,
        one_pass,
        systematic,
        1 + weighted_ds,
        weighted_shift,
    )
    return best, scores, kinds
