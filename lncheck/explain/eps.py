"""Which eps, variance estimator and eps placement fit every group's scale.

A group's fitted scale ``alpha_g`` (``lncheck.explain.fit``) is ``1 / sqrt(var_g + eps)`` under
the usual placement, so each group implies ``eps = 1 / alpha_g**2 - var_g`` (``1 / alpha_g -
std_g`` for eps added to the std), within a tolerance from the fit's standard error and the
error of a kernel's statistics (``fit.statistics_error``). Intersected over groups, these give
the interval of eps values the whole output allows (``eps_interval``): empty for a wrong
hypothesis, reaching down to 0 when every variance dwarfs eps (not identifiable), and narrow
where some groups have a variance near eps. ``choose_eps`` then reports a usual value or a
fitted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES, DTypeName
from lncheck.explain.fit import (
    OUTLIER_SLACK,
    SE_MULTIPLE,
    GroupFit,
    outliers,
    statistics_error,
)
from lncheck.explain.hypotheses import (
    FITTED_EPS_RANGE,
    TORCH_RMS_DEFAULT_EPS,
    USUAL_EPS,
    Denominator,
)

F64 = npt.NDArray[np.float64]

# A one-pass float32 variance E[x^2] - E[x]^2 is off by up to about u * (mean^2 + var) for each
# of its roundings, and its sums of n terms by sqrt(n) times that (Higham & Mary's
# probabilistic bound; Flax's use_fast_variance, ONNX's LayerNormalization function body).
ONE_PASS_ROUNDINGS = 4.0
ONE_PASS_GROWTH = 2.0


@dataclass(frozen=True)
class EpsInterval:
    """The eps values every group allows under one denominator hypothesis: ``[low, high]``
    (``low`` may be below 0: then eps = 0 fits too), and a point estimate that weighs each
    group by how tightly it pins eps."""

    low: float
    high: float
    estimate: float

    @property
    def feasible(self) -> bool:
        lo = max(self.low, 0.0)
        return lo <= self.high and lo <= FITTED_EPS_RANGE[1]

    @property
    def identifiable(self) -> bool:
        """Eps is measured (bounded away from 0), not merely bounded above."""
        return self.low > 0


def base_variance(fit: GroupFit, d: Denominator, centered: bool) -> F64:
    """The variance the hypothesis normalizes by, eps aside: ``n/(n-1)`` times the biased one
    for the unbiased estimator, the mean square for RMSNorm."""
    if not centered:
        return np.asarray(fit.var + fit.mean * fit.mean, dtype=np.float64)
    if d.variance == "unbiased":
        n = fit.size
        return np.asarray(fit.var * (n / max(n - 1, 1)), dtype=np.float64)
    return fit.var


def one_pass_error(fit: GroupFit, precision: DTypeName) -> F64:
    """How far a one-pass variance E[x^2] - E[x]^2 in float32 may be from the exact one."""
    u = DTYPES["float64" if precision == "float64" else "float32"].unit_roundoff
    growth = ONE_PASS_ROUNDINGS + ONE_PASS_GROWTH * math.sqrt(fit.size)
    return np.asarray(u * growth * (fit.mean * fit.mean + fit.var), dtype=np.float64)


def eps_interval(
    fit: GroupFit,
    d: Denominator,
    centered: bool,
    precision: DTypeName,
    *,
    systematic: bool = True,
) -> EpsInterval:
    """The eps each group implies under ``d``, with its tolerance, intersected over groups.

    Under ``sqrt`` placement a group's scale is ``1 / sqrt(var + eps)``, so it implies
    ``eps = 1 / alpha**2 - var``; under ``std``, ``eps = 1 / alpha - sqrt(var)``. The scale's
    tolerance is ``SE_MULTIPLE`` standard errors plus (``systematic``) the error of a kernel's
    statistics (``fit.statistics_error``), magnified by ``1 + |mean| / std``; a one-pass
    variance widens the variance by ``one_pass_error``. Where a group is rounded by more than
    a thousand, ``fit.OUTLIER_SHARE`` of them may miss by up to ``OUTLIER_SLACK`` times.
    """
    v = fit.valid
    if not v.any():
        return EpsInterval(math.inf, -math.inf, math.nan)
    alpha = fit.alpha[v]
    base = base_variance(fit, d, centered)[v]
    tol = SE_MULTIPLE * fit.se_alpha[v]
    if systematic:
        kappa = fit.kappa()[v] if centered else np.zeros_like(alpha)
        tol = tol + statistics_error(precision, fit.size) * (1 + kappa) * alpha
    spread = one_pass_error(fit, precision)[v] if d.algorithm == "one_pass" else 0.0
    low, high = eps_interval_bounds(alpha, tol, base, spread, d.placement)
    with np.errstate(all="ignore"):
        implied = 1 / alpha**2 - base if d.placement == "sqrt" else 1 / alpha - np.sqrt(base)
        width = np.maximum(high - low, 1e-300)
        weights = np.where(np.isfinite(width), 1 / width**2, 0.0)
        total = float(weights.sum())
        estimate = float((weights * implied).sum() / total) if total > 0 else math.nan
    if not (np.isfinite(low).all() and np.isfinite(alpha).all()):
        return EpsInterval(math.inf, -math.inf, math.nan)
    k = outliers(low.size)
    if k:  # the k most demanding groups on each side may miss, but not by much
        relaxed = eps_interval_bounds(alpha, tol * OUTLIER_SLACK, base, spread, d.placement)
        lowest, highest = float(relaxed[0].max()), float(relaxed[1].min())
        return EpsInterval(
            max(float(np.partition(low, low.size - 1 - k)[low.size - 1 - k]), lowest),
            min(float(np.partition(high, k)[k]), highest),
            estimate,
        )
    return EpsInterval(float(low.max()), float(high.min()), estimate)


def eps_interval_bounds(
    alpha: F64, tol: F64, base: F64, spread: F64 | float, placement: str
) -> tuple[F64, F64]:
    """Each group's lowest and highest eps for scales within ``alpha +- tol``."""
    hi_alpha, lo_alpha = alpha + tol, alpha - tol
    with np.errstate(all="ignore"):
        if placement == "sqrt":
            low = 1 / hi_alpha**2 - (base + spread)
            high = np.where(lo_alpha > 0, 1 / lo_alpha**2 - (base - spread), np.inf)
        else:
            low = 1 / hi_alpha - np.sqrt(base + spread)
            high = np.where(
                lo_alpha > 0, 1 / lo_alpha - np.sqrt(np.maximum(base - spread, 0.0)), np.inf
            )
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


@dataclass(frozen=True)
class EpsChoice:
    """The eps a candidate reports (a usual value, the pinned one, or a fitted one), the
    interval every group allows, and the other usual values in it, most likely first."""

    eps: float
    fitted: bool
    low: float
    high: float
    identifiable: bool
    alternatives: tuple[float, ...] = ()


def choose_eps(
    loose: EpsInterval,
    tight: EpsInterval,
    prior: tuple[float, ...],
    pinned: float | None,
    centered: bool,
) -> EpsChoice | None:
    """The eps to report, ``None`` when no eps fits every group.

    ``loose`` allows for the error of a kernel's statistics, ``tight`` only for the fit's
    own standard errors: an output rounded from exact statistics pins eps to ``tight``, one
    from float32 statistics may not fit it at all. The pinned value, if allowed; else the usual
    values allowed by ``tight``, then by ``loose``, each in the order of ``prior`` (the most
    common default first); else a fitted value in ``FITTED_EPS_RANGE``, written with the
    fewest digits that stay inside the interval.
    """
    if not loose.feasible:
        return None
    low, high = max(loose.low, 0.0), loose.high
    identifiable = loose.identifiable
    if pinned is not None:
        ok = low <= pinned <= high
        return EpsChoice(pinned, False, loose.low, high, identifiable) if ok else None
    usual = set(USUAL_EPS) | ({TORCH_RMS_DEFAULT_EPS} if not centered else set())
    allowed = [e for e in prior if e in usual and low <= e <= high]
    close = [e for e in allowed if max(tight.low, 0.0) <= e <= tight.high]
    order = close + [e for e in allowed if e not in close]
    estimate, spread = tight.estimate, abs(tight.high - tight.low)
    if not close and estimate > 0 and spread < estimate:
        # the output's own rounding left no eps within the fit's standard errors, but pinned
        # it closely: the usual values nearest first (Keras' 1e-3 came fourth, after 1e-5,
        # 1e-6 and 1e-12, and was never replayed)
        order.sort(key=lambda e: abs(math.log(e / estimate)) if e > 0 else math.inf)
    if order:
        return EpsChoice(order[0], False, loose.low, high, identifiable, tuple(order[1:]))
    inner = tight if tight.feasible else loose
    lo = max(inner.low, low, FITTED_EPS_RANGE[0])
    hi = min(inner.high, high, FITTED_EPS_RANGE[1])
    if lo > hi:
        lo, hi = max(low, FITTED_EPS_RANGE[0]), min(high, FITTED_EPS_RANGE[1])
        if lo > hi:
            return None
    estimate = inner.estimate if math.isfinite(inner.estimate) else (lo + hi) / 2
    eps = shortest(min(max(estimate, lo), hi), lo, hi)
    return EpsChoice(eps, True, max(loose.low, FITTED_EPS_RANGE[0]), high, identifiable)


def shortest(value: float, low: float, high: float) -> float:
    """``value`` with the fewest significant digits that keep it within ``[low, high]``."""
    for digits in range(1, 17):
        rounded = float(f"{value:.{digits - 1}e}")
        if low <= rounded <= high:
            return rounded
    return value


def scale(fit: GroupFit, d: Denominator, centered: bool, eps: float, precision: DTypeName) -> F64:
    """Each group's ``1 / sqrt(var + eps)`` (or ``1 / (std + eps)``) under the hypothesis.

    A one-pass variance's rounding cannot be replayed (it depends on the order of the sums),
    so its groups use the variance their fitted scale implies, kept within ``one_pass_error``
    of the exact one: the residual left is then the output's own rounding.
    """
    base = base_variance(fit, d, centered)
    if d.algorithm == "one_pass":
        spread = one_pass_error(fit, precision)
        with np.errstate(all="ignore"):
            if d.placement == "sqrt":
                implied = 1 / fit.alpha**2 - eps
            else:
                implied = np.maximum(1 / fit.alpha - eps, 0.0) ** 2
        implied = np.where(fit.valid & np.isfinite(implied), implied, base)
        base = np.clip(implied, np.maximum(base - spread, 0.0), base + spread)
    with np.errstate(all="ignore"):
        if d.placement == "std":
            return np.asarray(1 / (np.sqrt(base) + eps), dtype=np.float64)
        return np.asarray(1 / np.sqrt(base + eps), dtype=np.float64)


def rescaled(
    fit: GroupFit, d: Denominator, centered: bool, precision: DTypeName
) -> tuple[GroupFit, float]:
    """With a fitted weight the scales are known only up to a common factor ``s``: fit it
    together with eps, by weighted least squares of ``1 / alpha**2 = s**-2 * (var + eps)``
    (``1 / alpha = s**-1 * (std + eps)`` for eps on the std). Returns the fit with its scales
    multiplied by ``s``, and ``s`` (the weight is then divided by it)."""
    v = fit.valid
    if v.sum() < 2:
        return fit, 1.0
    alpha = fit.alpha[v]
    base = base_variance(fit, d, centered)[v]
    kappa = fit.kappa()[v] if centered else np.zeros_like(alpha)
    tol = (
        SE_MULTIPLE * fit.se_alpha[v] + statistics_error(precision, fit.size) * (1 + kappa) * alpha
    )
    with np.errstate(all="ignore"):
        if d.placement == "sqrt":
            target, feature, sd = 1 / alpha**2, base, 2 * tol / alpha**3
        else:
            target, feature, sd = 1 / alpha, np.sqrt(base), tol / alpha**2
        weights = 1 / sd
        design = np.stack([feature, np.ones_like(feature)], axis=1) * weights[:, None]
        if not (np.isfinite(design).all() and np.isfinite(target).all()):
            return fit, 1.0
        (slope, _), *_ = np.linalg.lstsq(design, target * weights, rcond=None)
    if not (math.isfinite(slope) and slope > 0):
        return fit, 1.0
    factor = math.sqrt(slope) if d.placement == "sqrt" else float(slope)
    return replace(fit, alpha=fit.alpha * factor, se_alpha=fit.se_alpha * factor), factor
