"""Scoring hypotheses on (groups, elements) views of the input and the observed output.

Every hypothesis explain searches predicts ``y = (x - c_g) * r_g * w + b`` in each group ``g``:
a centre ``c_g`` (the group's mean, or 0 for RMSNorm), a scale ``r_g`` (1 / sqrt(var + eps) or
1 / (std + eps)), and per-feature ``w`` and ``b``. So one least-squares fit per group,
``y - b = alpha_g * (x - mean_g) * w + beta_g * w``, measures at once

* whether the structure and the affine map fit at all: the fit's relative residual ``rho``
  is at the level of the output's rounding, or far above it;
* the centre the output was computed with, ``mean_g - beta_g / alpha_g``: the group's mean
  (centred) or 0 (RMSNorm);
* the scale ``alpha_g``, from which each group implies an eps: ``1 / alpha_g**2 - var_g``.
  Every hypothesis about the variance estimator, its algorithm and where eps goes is then
  judged on these per-group numbers alone (``lncheck.explain.eps``), without the elements.

Fits run on a sample of groups first (``sample_fit``), and on every group only for the
hypotheses that survive (``full_fit``). Tolerances come from ``lncheck.tolerances``: a centre
or a scale may be off by the error of the statistics of a kernel computing in the output's
precision (``coefficients(precision, n)["spread"]`` times ``|mean| + std``, or ``1 + |mean| /
std`` for the scale), and by ``SE_MULTIPLE`` standard errors of the fit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.dtypes import DTYPES, DTypeName
from lncheck.moments import group_statistics
from lncheck.tolerances import coefficients

F64 = npt.NDArray[np.float64]
Array = npt.NDArray[Any]

SAMPLE_ELEMENTS = 1 << 16  # elements per sampled fit: enough groups to see a wrong structure
REGRESSION_ELEMENTS = 1 << 18  # above this, a sample's regression uses a subset of its columns
MIN_ROWS = 3
SE_MULTIPLE = 8.0  # how many standard errors of a fitted scale are still "the same"
# Inputs of few mantissas give the fits heavier tails than a normal's: 1 group in 1000 may
# miss by up to twice the tolerance (the replay on every element has the last word anyway).
OUTLIER_SHARE = 1e-3
OUTLIER_SLACK = 2.0
# A fit whose relative residual stays under this many unit roundoffs of the output has the
# right structure: a correctly rounded output leaves about 0.4, two roundings (Llama's cast
# order) 0.6, Gemma's bfloat16 outputs 2; a wrong structure leaves percents.
SHAPE_ULPS = 8.0


class OutOfTime(Exception):
    """The search's budget ran out (caught by the search, never seen by callers)."""


class Deadline:
    """A point in time, and optionally a number of steps (calls to ``check``, each a bounded
    piece of the search), after either of which ``check`` raises ``OutOfTime``. A budget in
    steps ends the search at the same point on any machine under any load."""

    def __init__(self, budget_s: float | None, steps: int | None = None) -> None:
        self._clock = time.perf_counter
        self.start = self._clock()
        self.end = math.inf if budget_s is None else self.start + budget_s
        self.steps_left = math.inf if steps is None else steps

    def check(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0 or self._clock() > self.end:
            raise OutOfTime

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start


@dataclass(frozen=True)
class GroupFit:
    """Per-group statistics and the least-squares fit of the output on them.

    ``mean``/``var`` are the exact (float64, corrected two-pass) mean and biased variance;
    ``alpha`` the fitted scale, ``center`` the centre the output used, ``se_alpha`` and
    ``se_center`` their standard errors; ``valid`` marks the groups with a defined fit (not
    constant, not all-zero weight). ``rho`` is the pooled relative residual ``|res| / |y - b|``.
    """

    mean: F64
    var: F64
    alpha: F64
    center: F64
    se_alpha: F64
    se_center: F64
    valid: npt.NDArray[np.bool_]
    size: int
    rho: float

    def kappa(self) -> F64:
        """``|mean| / std``: how a mean's rounding error is magnified."""
        with np.errstate(all="ignore"):
            k = np.abs(self.mean) / np.sqrt(self.var)
        return np.where(np.isfinite(k), k, 0.0)


# --- reading groups ----------------------------------------------------------------------


def gather(layout: GroupLayout, a: Array, rows: npt.NDArray[np.intp]) -> F64:
    """Groups ``rows`` of ``a`` (input-shaped, or broadcastable to the view) as a float64
    (len(rows), group_size) array."""
    t = layout.transposed(a)
    m = layout.group_size
    if not layout.group_axes:
        return np.asarray(t, dtype=np.float64).reshape(1, m)
    picked = t[np.unravel_index(rows, layout.group_shape)]
    return np.asarray(picked, dtype=np.float64).reshape(len(rows), m)


def sample_rows(layout: GroupLayout, seed: int = 0) -> npt.NDArray[np.intp]:
    """A random sample of groups holding about ``SAMPLE_ELEMENTS`` elements (at least
    ``MIN_ROWS`` groups), the same for every hypothesis on this layout."""
    groups = layout.groups
    k = min(groups, max(MIN_ROWS, SAMPLE_ELEMENTS // max(1, layout.group_size)))
    if k == groups:
        return np.arange(groups, dtype=np.intp)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(groups, size=k, replace=False)).astype(np.intp)


# --- the per-group regression --------------------------------------------------------------


@dataclass(frozen=True)
class _Sums:
    rr: F64
    rw: F64
    ww: F64
    ry: F64
    wy: F64
    yy: F64
    rryy: F64
    wwyy: F64


def _sums(x: F64, y: F64, w: F64 | None, b: F64 | None, mean: F64) -> _Sums:
    with np.errstate(all="ignore"):  # a candidate's inf or NaN leaves NaN sums, judged later
        return _sums_of(x, y, w, b, mean)


def _sums_of(x: F64, y: F64, w: F64 | None, b: F64 | None, mean: F64) -> _Sums:
    r = x - mean[:, None]
    if w is not None:
        r *= w
    yp = y if b is None else y - b
    ry = r * yp
    yy = np.einsum("ij,ij->i", yp, yp)
    if w is None:  # the intercept's regressor is 1: its sums need no pass of their own
        return _Sums(
            rr=np.einsum("ij,ij->i", r, r),
            rw=r.sum(axis=1),
            ww=np.full(len(r), float(r.shape[1])),
            ry=ry.sum(axis=1),
            wy=yp.sum(axis=1),
            yy=yy,
            rryy=np.einsum("ij,ij->i", ry, ry),
            wwyy=yy,
        )
    wf = np.broadcast_to(w, r.shape)
    wy = wf * yp
    return _Sums(
        rr=np.einsum("ij,ij->i", r, r),
        rw=np.einsum("ij,ij->i", r, wf),
        ww=np.einsum("ij,ij->i", wf, wf),
        ry=ry.sum(axis=1),
        wy=wy.sum(axis=1),
        yy=yy,
        rryy=np.einsum("ij,ij->i", ry, ry),
        wwyy=np.einsum("ij,ij->i", wy, wy),
    )


def _add(a: _Sums, b: _Sums) -> _Sums:
    return _Sums(*(np.concatenate([u, v]) for u, v in zip(_fields(a), _fields(b), strict=True)))


def _fields(s: _Sums) -> tuple[F64, ...]:
    return (s.rr, s.rw, s.ww, s.ry, s.wy, s.yy, s.rryy, s.wwyy)


def _solve(s: _Sums, mean: F64, var: F64, rho: float, size: int, repeats: float = 1.0) -> GroupFit:
    with np.errstate(all="ignore"):
        det = s.rr * s.ww - s.rw * s.rw
        valid = (var > 0) & (s.rr > 0) & (det > 1e-12 * s.rr * s.ww)
        alpha = (s.ww * s.ry - s.rw * s.wy) / det
        beta = (s.rr * s.wy - s.rw * s.ry) / det
        center = mean - beta / alpha
        # heteroscedastic (sandwich) standard errors with the residual proportional to |y|,
        # inflated by the regressors' collinearity
        inflate = np.sqrt(s.rr * s.ww / det)
        # a value repeated n times in a group repeats its rounding error n times too
        noise = rho * math.sqrt(repeats)
        se_alpha = noise * np.sqrt(s.rryy) / s.rr * inflate
        se_beta = noise * np.sqrt(s.wwyy) / s.ww * inflate
        se_center = np.abs(se_beta / alpha)
    valid &= np.isfinite(alpha) & np.isfinite(center)
    return GroupFit(mean, var, alpha, center, se_alpha, se_center, valid, size, rho)


@dataclass(frozen=True)
class Sample:
    """The sampled groups of one layout, read once and scored under every affine map.

    ``x``/``y`` hold the columns the regression uses (``cols``, or all of them), ``mean`` and
    ``var`` the exact statistics over every column."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp] | None
    x: F64
    y: F64
    mean: F64
    var: F64
    size: int
    repeats: float  # sum(n**2) / sum(n) over the runs of equal input values in a group


def take_sample(layout: GroupLayout, x: Array, y: Array) -> Sample:
    """Read the sampled groups of ``x`` and ``y`` (``sample_rows``)."""
    rows = sample_rows(layout)
    xs, ys = gather(layout, x, rows), gather(layout, y, rows)
    mean, var = group_statistics(xs)
    repeats = _repeats(xs)
    k, m = xs.shape
    cols = None
    if k * m > REGRESSION_ELEMENTS:  # the statistics need every element, the fit does not
        cols = np.linspace(0, m - 1, max(16, REGRESSION_ELEMENTS // k)).astype(np.intp)
        xs, ys = xs[:, cols], ys[:, cols]
    return Sample(rows, cols, xs, ys, mean, var, m, repeats)


def _repeats(xs: F64) -> float:
    """How many times an input value occurs in its group, on average over the values: inputs
    of few significant bits (bfloat16 has 256 values per power of two) repeat, and each value
    rounds to the same error every time, so a group's n errors are fewer independent ones."""
    ordered = np.sort(xs, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    edges = np.flatnonzero(np.append(starts.reshape(-1), True))
    runs = np.diff(edges).astype(np.float64)
    return float((runs * runs).sum() / runs.sum()) if runs.size else 1.0


def sample_fit(
    layout: GroupLayout,
    sample: Sample,
    weight: Array | None,
    bias: Array | None,
    precision: DTypeName,
) -> GroupFit:
    """The fit on the sampled groups, with its residual measured element by element.

    ``weight``/``bias`` are view-shaped (broadcastable) parameters or None.
    """

    def params(a: Array | None) -> F64 | None:
        if a is None:
            return None
        picked = gather(layout, a, sample.rows)
        return picked if sample.cols is None else picked[:, sample.cols]

    ws, bs = params(weight), params(bias)
    s = _sums(sample.x, sample.y, ws, bs, sample.mean)
    fit = _solve(s, sample.mean, sample.var, 1.0, sample.size)
    rho = _residual(sample.x, sample.y, ws, bs, fit, precision)
    return _solve(s, sample.mean, sample.var, rho, sample.size, sample.repeats)


def _residual(
    x: F64, y: F64, w: F64 | None, b: F64 | None, fit: GroupFit, precision: DTypeName
) -> float:
    """The pooled relative residual of the per-group fit (at least the output's rounding)."""
    ok = fit.valid & np.isfinite(y).all(axis=1)
    if not ok.any():
        return math.inf
    wv = 1.0 if w is None else w[ok]
    yp = y[ok] if b is None else y[ok] - b[ok]
    alpha, center = fit.alpha[ok, None], fit.center[ok, None]
    res = yp - alpha * (x[ok] - center) * wv
    total = float(np.einsum("ij,ij->", yp, yp))
    if total == 0 or not math.isfinite(total):
        return math.inf
    floor = DTYPES[precision].unit_roundoff / 4
    return max(math.sqrt(float(np.einsum("ij,ij->", res, res)) / total), floor)


def full_fit(
    layout: GroupLayout,
    x: Array,
    y: Array,
    weight: Array | None,
    bias: Array | None,
    rho: float,
    deadline: Deadline,
    repeats: float = 1.0,
) -> GroupFit:
    """The fit on every group, block by block (memory stays one block's); its standard
    errors use the residual level ``rho`` and the ``repeats`` measured on the sample."""
    sources = [x, y] + [a for a in (weight, bias) if a is not None]
    means: list[F64] = []
    variances: list[F64] = []
    parts: _Sums | None = None
    iterators = [layout.blocks(a) for a in sources]
    for blocks in zip(*iterators, strict=True):
        deadline.check()
        arrays = [np.asarray(block, dtype=np.float64) for _, block in blocks]
        xs, ys = arrays[0], arrays[1]
        rest = arrays[2:]
        ws = rest.pop(0) if weight is not None else None
        bs = rest.pop(0) if bias is not None else None
        mean, var = group_statistics(xs)
        means.append(mean)
        variances.append(var)
        s = _sums(xs, ys, ws, bs, mean)
        parts = s if parts is None else _add(parts, s)
    assert parts is not None
    mean, var = np.concatenate(means), np.concatenate(variances)
    return _solve(parts, mean, var, rho, layout.group_size, repeats)


def group_moments(layout: GroupLayout, x: Array, deadline: Deadline) -> tuple[F64, F64]:
    """Every group's exact mean and biased variance."""
    means: list[F64] = []
    variances: list[F64] = []
    for _, block in layout.blocks(x):
        deadline.check()
        mean, var = group_statistics(block)
        means.append(mean)
        variances.append(var)
    return np.concatenate(means), np.concatenate(variances)


# --- centring -----------------------------------------------------------------------------


def statistics_error(precision: DTypeName, size: int) -> float:
    """The relative error of a kernel's statistics, in units of ``|mean| + std``: float32
    accumulation (as torch does for float16/bfloat16), and statistics kept in the output's
    dtype (torch's CPU float16 LayerNorm centres with a float16 mean): the ``spread``
    coefficient of ``lncheck.tolerances``."""
    return coefficients(precision, size)["spread"]


def centering_ok(fit: GroupFit, centered: bool, precision: DTypeName) -> bool:
    """Whether every group's output is centred at its mean (``centered``) or at 0 (RMSNorm),
    within the error of the statistics and of the fit."""
    if not fit.valid.any():
        return False
    v = fit.valid
    std = np.sqrt(fit.var[v])
    tol = SE_MULTIPLE * fit.se_center[v] + statistics_error(precision, fit.size) * (
        np.abs(fit.mean[v]) + std
    )
    target = fit.mean[v] if centered else 0.0
    ratio = np.abs(fit.center[v] - target) / tol
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    k = outliers(ratio.size)
    within = np.sort(ratio)[ratio.size - 1 - k] <= 1 if ratio.size > k else True
    return bool(within and ratio.max() <= OUTLIER_SLACK and np.all(fit.alpha[v] > 0))


def outliers(n: int) -> int:
    """How many of ``n`` groups may miss their tolerance (by at most ``OUTLIER_SLACK``)."""
    return int(n * OUTLIER_SHARE)


def shape_tolerance(precision: DTypeName) -> float:
    """The largest relative residual of a per-group fit that still means "right structure"."""
    return SHAPE_ULPS * DTYPES[precision].unit_roundoff
