"""A block's judgement per group for one candidate: which accuracy classes admit its fit
(``affine_fit``) and residual, and its shares of the accepted class's limits (``Scores``).

The implied scale and shift are judged against each class's limits on the statistics
(``OutputBlock.limits``) widened by the fit's own noise (``fit_noise``) and checked by what
the group's two extreme elements pin (``pair_fit``); the residual against rounding level; the
output against the structural limits (``caps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lncheck import tolerances
from lncheck.affine_fit import Fit, geometry, size_across, weighted
from lncheck.caps import beyond_caps
from lncheck.dtypes import DTYPES
from lncheck.fit_noise import NOISE_SIGMAS, ROUNDING_SIGMA, fit_noise
from lncheck.output_model import LOW_REACH, OutputBlock
from lncheck.pair_fit import pair_fit
from lncheck.semantics import FLAT_CONSTANT, FLAT_ZERO, no_scale

F64 = npt.NDArray[np.float64]
WEIGHTED_GAIN = 3.0  # how much sharper a weighted fit must be to be looked at


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
    # per group, whether its output is its bias, y - b 0 to within the bias's rounding
    # (FLAT_ZERO), or one value whatever the input (FLAT_CONSTANT), looked at only where the
    # implied scale is within the dtype's unit roundoff (``semantics``); 0 elsewhere
    flat: npt.NDArray[np.int8]


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
    to the classes' limits below ``low_precision`` and to the conventions' (``Scores``: a
    bfloat16 InstanceNorm with 1 + w, its output's rounding at a bias of 100 larger than
    w n, shows a shift of 0.012 std its values' repeats explain); low_precision's limits
    keep the independent noise, times its wider rounding. What the group's two extreme
    elements pin (``pair_fit``: a bound, not a statistic) must meet the same limits, beyond
    their own roundings: a fit widened by a bulk that repeats cannot hide a scale the
    outlier shows. The residual's allowance adds how far the fitted line may move. The
    weighted fit's scale and shift (``affine_fit.weighted``) are scored against the accepted
    class's limits for a warning (``Scores.systematic``).
    """
    groups = block.y.shape[0]
    best = np.full(groups, len(classes), dtype=np.int8)
    # the scale is measured by a's part across c = |w| (see affine_fit)
    geo = geometry(block, signed=False)
    spp, a_size = geo.spp, size_across(block)
    residual = np.abs(f.residual)
    size = np.abs(f.centred)
    group_score = np.zeros(groups)
    scale_accurate = shift_accurate = np.full(groups, np.inf)
    with np.errstate(all="ignore"):
        # the element-wise roundings, and so the fit's own noise, are those of a kernel that
        # rounds once (``tolerances.ROUND_ONCE``) for every class but low_precision
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
        bound += further * block.allowance(dtype, classes[0]).rounded
        noise = fit_noise(block, bound, dtype)
        independent, (noise_s, noise_t) = noise.independent, noise.alike
        worst_r = _worst_residual(residual, a_size, geo.c, bound, (noise_s, noise_t))
        # low_precision's intermediates may round to the compute dtype: its bounds are at most
        # ``wider`` times the round-once ones (``residual_bound``: the kernel's rounding and
        # the exact output's), and so is the fit's noise (linear in them)
        wider = (tolerances.A + 1.0) / (tolerances.ROUND_ONCE + 1.0)
        # elsewhere the round-once share stands for it: at most ``wider`` times too high, so
        # a low_precision group's ``tolerance_used`` may be overstated, never understated
        worst_r_low = worst_r.copy()
        again = np.flatnonzero(f.fitted & (worst_r > 1))
        if again.size and "low_precision" in classes:
            low = block.allowance(dtype, "low_precision").rounded
            bound_low = size[again] * 1e-15
            bound_low += block.residual_bound(dtype, "low_precision")[again]
            bound_low += further[again] * low
            c = None if geo.c is None else np.broadcast_to(geo.c, a_size.shape)[again]
            # ...and its statistics may be off by up to the output's last place, which rounds
            # some values back onto the exact output's rounding and not others: ``fl(s y) -
            # fl(y)`` is a staircase in ``y``, up to ``u |a|`` each, that moves the fitted line
            # as every such error leaning one way would, whatever the repeats and whatever
            # scale the fit shows (torch's bfloat16 CPU BatchNorm, normalizing with its
            # statistics rounded to bfloat16: ds = -2.4e-3 and t = -1e-3 fitted where -9.4e-4
            # and 3e-7 are true)
            u: float = DTYPES[dtype].unit_roundoff  # type: ignore[index]
            # every element off by u |a| one way moves the shift as ``fit_noise``'s one-way
            # bound does: sum(c u |a|) / scc, on the groups judged again only
            across = a_size[again] if c is None else a_size[again] * c
            lean_t = np.sum(across, axis=1) / geo.scc[again]
            noise_low = (
                np.fmax(wider * noise_s[again], u),
                np.fmax(wider * noise_t[again], u * lean_t),
            )
            worst_r_low[again] = _worst_residual(
                residual[again], a_size[again], c, bound_low, noise_low
            )
        # weighted by each element's own rounding, a group's bulk pins a scale and shift one
        # outlier hides from least squares (``affine_fit.weighted``; values that repeat round
        # alike, ``fit_noise.repeats``), where that is WEIGHTED_GAIN times sharper. It warns
        # and does not judge: its limits are a statistic of the roundings (ROUNDING_SIGMA),
        # not a bound, and a kernel's roundings need not be independent (``fit_noise``).
        # That needs a heavy tail: for bounds relative to |y| the gain squared is the
        # kurtosis n sum(a**4) / sum(a**2)**2 (3 for Gaussian data), so only groups where it
        # reaches WEIGHTED_GAIN**2 are fitted again
        a_squared = geo.a_perp_squared
        tail = np.einsum("ij,ij->i", a_squared, a_squared) * a_squared.shape[1] / (spp * spp)
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
        pair = pair_fit(block, f, bound)
        pair_s, pair_t = pair.excess()
        # the largest mean error the pair allows, and the largest scale it is seen through
        s_low = np.fmax(1.0 - np.abs(pair.ds) - pair.ds_bound, 0.0)
        s_high = 1.0 + np.abs(pair.ds) + pair.ds_bound
        pair_mean_error = (np.abs(pair.shift) + pair.shift_bound) / s_low
        # a scale of 0 (values far below the bias's last place: y - b is 0) shows no mean
        # error, not an undefined one (0 / 0 made every default class's limit NaN)
        mean_error = np.divide(f.shift, s_fit, out=np.zeros(groups), where=f.shift != 0)
        limits, pair_limits = [], []
        for klass in classes:
            scale_column, shift_column = block.limits(dtype, klass, mean_error)
            limits.append((scale_column[:, 0], shift_column[:, 0]))
            pair_limits.append(block.limits(dtype, klass, pair_mean_error)[0][:, 0])
        caps = beyond_caps(block, size, limits, rounding, dtype)
        residual_failed = f.fitted & (worst_r_low > 1)
        cap_failed = caps[-1]
        for index in range(len(classes) - 1, -1, -1):
            scale_limit, shift_limit = limits[index]
            pair_limit = pair_limits[index]
            if classes[index] == "sequential":  # a variance lost whole only raises rstd
                lost = block.model.lost[block.first : block.first + groups]
                scale_limit = np.where(f.ds < 0, scale_limit - lost, scale_limit)
                pair_limit = np.where(pair.ds < 0, pair_limit - lost, pair_limit)
            if classes[index] == "low_precision":  # its reach below 1 (no rstd is negative)
                below = 1.0 - tolerances.low_precision_floor(
                    dtype, block.model.group_size, block.k[:, 0]
                )
                scale_limit = np.where(f.ds < 0, np.fmin(scale_limit, below), scale_limit)
                pair_limit = np.where(pair.ds < 0, np.fmin(pair_limit, below), pair_limit)
            # what the two extreme elements pin, beyond their own roundings (``pair_fit``)
            # (fmax: a limit that came out NaN flags nothing here; the fit's own shares keep
            # their NaN, which fails a group)
            pair_share = np.fmax(pair_s / pair_limit, 0.0)
            if block.model.centered:
                pair_share = np.fmax(pair_share, pair_t / (shift_limit * s_high))
            wide = classes[index] != "low_precision"
            class_s, class_t = (noise_s, noise_t) if wide else [wider * x for x in independent]
            class_r = worst_r if wide else worst_r_low
            share_s = np.where(spp > 0, np.abs(f.ds) / (scale_limit + class_s), 0.0)
            share_t = np.abs(f.shift) / (shift_limit * s_fit + class_t)
            if not block.model.centered:
                share_t = np.zeros(groups)
            cap = caps[index]
            share_s = np.maximum(share_s, pair_share)
            ok = np.where(f.fitted, (share_s <= 1) & (share_t <= 1) & (class_r <= 1), True)
            ok &= ~cap
            best = np.where(ok, index, best).astype(np.int8)
            if index == 0:
                scale_accurate = np.where(spp > 0, scale_limit + noise_s, np.inf)
                shift_accurate = shift_limit + noise_t
            if index <= accepted:  # a group any accepted class admits passes: the least share
                fitted_r = np.where(f.fitted, class_r, 0.0)
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
    quadratic = block.allowance(dtype, "low_precision").quadratic
    # no variance is computed on an exact constant group (caps), nor in eval mode (a
    # coefficient of 0, where K may be infinite: an infinite running mean)
    if block.model.centered and quadratic > 0:
        with np.errstate(over="ignore"):  # K**2 beyond float64 (a constant group of 1e200)
            one_pass = quadratic * block.k[:, 0] ** 2
        # an rstd above what losing the whole variance gives is no one-pass variance's
        rows = slice(block.first, block.first + groups)
        reach = tolerances.low_precision_ceiling(
            dtype, block.model.group_size, block.k[:, 0], block.model.whole[rows]
        )
        one_pass[f.ds > np.fmax(reach, LOW_REACH) + noise_s] = 0.0
        one_pass[block.model.exact_mean[rows]] = 0.0
    scores = Scores(
        group_score,
        scale_accurate,
        shift_accurate,
        one_pass,
        systematic,
        1 + weighted_ds,
        weighted_shift,
        _flat(block, f, size, dtype),
    )
    return best, scores, kinds


def _worst_residual(
    residual: F64, a_size: F64, c: F64 | None, bound: F64, noise: tuple[F64, F64]
) -> F64:
    """Per group, the largest ``residual`` over its allowance: the elements' rounding ``bound``
    plus how far the fit's own ``noise`` (on the scale, times ``a_size = |a|``, and the shift,
    times ``c``; ``None``: 1) may move the fitted line, and so every residual, too."""
    noise_s, noise_t = noise
    if not a_size.shape[1]:
        return np.zeros(a_size.shape[0])
    allowed = np.multiply(a_size, noise_s[:, None])
    allowed += bound
    allowed += noise_t[:, None] if c is None else noise_t[:, None] * c
    return np.asarray(np.max(np.divide(residual, allowed, out=allowed), axis=1))


def _flat(block: OutputBlock, f: Fit, size: F64, dtype: str) -> npt.NDArray[np.int8]:
    """Per group, ``FLAT_ZERO`` where every ``size = |y - b|`` is within the bias's rounding to
    ``dtype`` (0 without a bias), ``FLAT_CONSTANT`` where ``y - b`` is one value to within the
    output's rounding, 0 elsewhere; looked at where the implied scale is within
    ``semantics.no_scale``: an output never written, or one value whatever the input, which
    the fit of the exact output's roundings leaves a scale of up to 1e-4 in float16 and
    bfloat16."""
    flat = np.zeros(size.shape[0], dtype=np.int8)
    if not size.shape[1]:
        return flat
    rows = np.flatnonzero(np.abs(1.0 + f.ds) <= no_scale(dtype))
    if rows.size:
        u = DTYPES[dtype].unit_roundoff  # type: ignore[index]
        slack = 0.0 if block.bias is None else u * np.abs(block.bias[rows])
        zero = np.all(size[rows] <= slack, axis=1)
        centred = f.centred[rows]
        output = np.abs(centred if block.bias is None else centred + block.bias[rows])
        # y - b one value: its spread within the output's and the bias's roundings
        spread = np.ptp(centred, axis=1)
        bias_rounding = 0.0 if block.bias is None else 2.0 * np.max(slack, axis=1)
        constant = spread <= 2.0 * u * np.max(output, axis=1) + bias_rounding
        flat[rows] = np.where(zero, FLAT_ZERO, np.where(constant, FLAT_CONSTANT, 0))
    return flat
