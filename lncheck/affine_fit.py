"""A candidate's block as an affine distortion of the reference's normalized values, per group.

Least squares per group of ``e ~ ds * a + shift * c``: ``e`` the candidate's deviation from the
exact affine map, ``a = w * n`` (normalized values times the weight) and ``c`` the weight
(ones without one). Everything but ``e`` belongs to the block, not to the candidate: it is
computed once per block (``Geometry``) and shared by the fit and its judgement
(``output_model.judge``), and by every candidate fed the same block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]
MIN_FIT_SIZE = 2  # a group of one has no spread to fit a scale to
SMALL_GROUP = 16  # up to this many values, one wrong element tilts a fit of all of them


@dataclass(frozen=True)
class Geometry:
    """Per block, the candidate-independent part of the normal equations: the shift's column
    ``c`` (``None``: ones), per row ``scc = sum(c**2)``, ``sca = sum(c * a)``, ``along = sca /
    scc``, ``a``'s part across ``c`` (``a_perp = a - along * c``; ``a`` itself for an op that
    does not centre) and its square, ``spp = sum(a_perp**2)`` and ``saa = sum(a**2)``."""

    c: F64 | None
    scc: F64
    sca: F64
    along: F64
    a_perp: F64
    a_perp_squared: F64
    spp: F64
    saa: F64

    def times_c(self, values: F64) -> F64:
        """``values`` (a column per row) times ``c``; ``c = 1`` multiplies exactly."""
        return values if self.c is None else values * self.c


def geometry(block: OutputBlock, signed: bool = True) -> Geometry:
    """The block's ``Geometry`` with ``c = w`` (``signed``) or ``c = |w|``, memoized on the
    block. ``a_perp`` stays ``a`` for RMSNorm, which fits no shift."""
    negative = block.weight is not None and bool((block.weight < 0).any())
    key = ("geometry", signed or not negative)
    if key in block.memo:
        return block.memo[key]  # type: ignore[return-value]
    c: F64 | None = None
    if block.weight is not None:
        c = block.weight if signed or not negative else np.abs(block.weight)
    found = _geometry(block.weighted, c, None, block.model.centered)
    block.memo[key] = found
    return found


def size_across(block: OutputBlock) -> F64:
    """``|a_perp|`` of the block's geometry with ``c = |w|`` (never written into), memoized on
    the block: the fit's noise and the residual's allowance both scale with it."""
    key = ("size across",)
    if key not in block.memo:
        block.memo[key] = np.abs(geometry(block, signed=False).a_perp)
    return block.memo[key]  # type: ignore[return-value]


def _geometry(a: F64, c: F64 | None, mask: F64 | None, centered: bool) -> Geometry:
    """``Geometry`` of ``a`` and ``c`` with each element weighed by ``mask`` (0 or 1: the
    elements it keeps; or ``weighted``'s weights), all alike without one (then sums of ones
    and products by one, exact, are left out)."""
    with np.errstate(all="ignore"):
        am = a if mask is None else a * mask
        a_squared = am * a
        saa = a_squared.sum(axis=1)
        if c is None and mask is None:
            scc = np.full(a.shape[0], float(a.shape[1]))
            sca = a.sum(axis=1)
        else:
            column = np.broadcast_to(1.0 if c is None else c, a.shape)
            cm = column if mask is None else column * mask
            scc = (cm * column).sum(axis=1)
            sca = (cm * a).sum(axis=1)
        along = sca / scc
        if centered:
            a_perp = a - (along[:, None] if c is None else along[:, None] * c)
            a_perp_squared = a_perp * a_perp if mask is None else a_perp * mask * a_perp
            spp = a_perp_squared.sum(axis=1)
        else:
            a_perp, a_perp_squared, spp = a, a_squared, saa
    return Geometry(c, scc, sca, along, a_perp, a_perp_squared, spp, saa)


@dataclass(frozen=True)
class Fit:
    """A block's candidate as an affine distortion of the reference's normalized values, per
    group: implied ``scale`` and ``shift``, and the element-wise ``residual`` left over
    (``NaN`` where a group has non-finite values or too few to fit); ``centred`` is the
    candidate minus the bias, in float64."""

    scale: F64
    shift: F64
    residual: F64
    fitted: npt.NDArray[np.bool_]  # groups whose fit means something
    ds: F64  # scale - 1, kept apart so that tiny deviations keep their digits
    centred: F64


def fit(
    block: OutputBlock,
    actual: npt.NDArray[np.generic],
    trim: F64 | None = None,
    rounding: F64 | None = None,
) -> Fit:
    """Least squares per group of ``actual - b = w * (n * scale + shift)`` (no shift without
    centring). Groups with fewer than ``MIN_FIT_SIZE`` values, or with NaN/Inf, are not fitted.

    ``rounding`` is the exact output's own rounding to the compute dtype (rounded minus
    exact; ``None``: none, as in float64). With ``trim`` (a
    per-element residual bound), elements whose residual exceeds it and four
    times the group's median residual are left out of a second fit, so that a few wrong
    elements do not tilt the fit of the others (as long as more than half of a group remains).
    """
    g = geometry(block)
    with np.errstate(all="ignore"):
        centred = np.subtract(actual, 0.0 if block.bias is None else block.bias, dtype=np.float64)
        a = block.weighted
        if rounding is None:
            e = centred - a  # the deviation from the exact affine map
        else:
            # measured from the exact output's own rounding: a kernel rounds its result the
            # same way, and on data with few distinct values those roundings would otherwise
            # lean one way and read as a scale or a shift
            e = centred - rounding
            e -= a
        ds, shift = _solve(g, e, block.model.centered)
        residual = e - ds[:, None] * a
        residual -= g.times_c(shift[:, None])
        if trim is not None:
            # the first fit spreads a wrong element's error over the rest: judge them against
            # the typical residual, not the rounding alone
            size = np.abs(residual)
            # a row whose residuals all stay within the rounding keeps them all whatever its
            # median: the medians (a partition each) are taken only where one does not
            keep = _within_typical(size, trim, size <= trim)
            if e.shape[1] <= SMALL_GROUP:
                err = np.abs(np.subtract(actual, block.y))
                keep &= _within_typical(err, trim, err <= trim)
            partial = ~keep.all(axis=1) & (keep.sum(axis=1) * 2 > e.shape[1])
            if partial.any():
                refit_ds, refit_shift = _solve_kept(a, g.c, e, keep, block.model.centered)
                refit = e - refit_ds[:, None] * a - g.times_c(refit_shift[:, None])
                # keep the refit where it leaves fewer elements beyond the bound (a wrong
                # element no longer tilts the rest), the first fit where an element it left
                # out was one the scale depends on (a large outlier of the data)
                before = np.sum(size > trim, axis=1)
                after = np.sum(np.abs(refit) > trim, axis=1)
                # ...and where the elements left out were out of line already: an element
                # whose residual the refit multiplies was holding the fit (high leverage)
                out = ~keep
                was = np.max(np.where(out, size, 0.0), axis=1)
                now = np.max(np.where(out, np.abs(refit), 0.0), axis=1)
                better = partial & (after < before) & (now <= 2.0 * was)
                ds = np.where(better, refit_ds, ds)
                shift = np.where(better, refit_shift, shift)
                residual = np.where(better[:, None], refit, residual)
        scale = 1.0 + ds
    fitted = np.isfinite(residual).all(axis=1) & (e.shape[1] >= MIN_FIT_SIZE)
    return Fit(scale, shift, residual, fitted, ds, centred)


def _within_typical(size: F64, trim: F64, within: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``size <= max(trim, 4 * median(size))`` per row, given ``within = size <= trim``."""
    rows = ~within.all(axis=1)
    if rows.any():
        typical = 4.0 * np.median(size[rows], axis=1, keepdims=True)
        within[rows] = size[rows] <= np.maximum(trim[rows], typical)
    return within


def _solve(g: Geometry, e: F64, centered: bool) -> tuple[F64, F64]:
    """Per row, the least-squares ``ds``, ``shift`` of ``e ~ ds * a + shift * c`` over every
    element. ``e`` is the deviation from the exact affine map (``ds = scale - 1``): fitting it,
    not the values, keeps float64's own cancellation out."""
    if not centered:
        return np.where(g.saa > 0, (g.a_perp * e).sum(axis=1) / g.saa, 0.0), np.zeros(e.shape[0])
    # a_perp: a orthogonalized against c first (in eval mode, running statistics, n is far
    # from centred, a and c are nearly parallel, and the normal equations would cancel)
    flat = ~(g.spp > 1e-24 * g.saa)  # a constant group (all n_i equal) fits a shift alone
    ds = np.where(flat, 0.0, (g.a_perp * e).sum(axis=1) / g.spp)
    ce = e.sum(axis=1) if g.c is None else (g.c * e).sum(axis=1)
    shift = (ce - ds * g.sca) / g.scc
    return ds, shift


def _solve_kept(
    a: F64, c: F64 | None, e: F64, keep: npt.NDArray[np.bool_], centered: bool
) -> tuple[F64, F64]:
    """``_solve`` over the elements ``keep`` marks only (the others weigh 0)."""
    mask = keep.astype(np.float64)
    return _solve(_geometry(a, c, mask, centered), e * mask, centered)


@dataclass(frozen=True)
class WeightedFit:
    """Per group, the weighted least-squares scale and shift (``ds``, ``shift``) of a fit's
    deviation, each element weighted by ``1 / bound**2``, and the standard deviations
    (``sigma_s``, ``sigma_t``) independent errors of ``bound / 3`` would give them."""

    ds: F64
    shift: F64
    sigma_s: F64
    sigma_t: F64


def weighted(
    block: OutputBlock, f: Fit, bound: F64, sigma: float, rows: npt.NDArray[np.intp]
) -> WeightedFit:
    """Gauss-Markov's estimate of ``e ~ ds * a + shift * c`` per group (``c = w``), with
    ``e = residual + ds * a + shift * c`` the deviation ``f`` fitted and per-element standard
    deviations ``sigma * bound``: each element weighs as much as its own rounding allows.

    Ordinary least squares weighs elements by ``a**2``, so one outlier (a massive
    activation) sets a group's scale with its single rounding as noise; weighted, the
    bulk's many small roundings pin a scale off by a fraction of their size (a bfloat16
    RMSNorm that sums squares in bfloat16: +0.2 %). Only the groups ``rows`` are fitted (the
    result has one entry per row). Groups without spread have an infinite sigma_s, without
    weight an infinite sigma_t."""
    a, c, centered = block.weighted[rows], block.weight, block.model.centered
    c = None if c is None else c[rows]
    with np.errstate(all="ignore"):
        w = np.square(bound[rows])
        np.reciprocal(w, out=w)
        w[~np.isfinite(w)] = 0.0
        # the deviation fitted: what the fit explained plus what it left
        e = np.multiply(a, f.ds[rows, None])
        e += f.residual[rows]
        if centered:
            shift = f.shift[rows, None]
            e += shift if c is None else shift * c
        # least squares with weights: the geometry and solution of a masked fit, the
        # mask being the weights
        g = _geometry(a, c, w, centered)
        ds, shift = _solve(g, e * w, centered)
        flat = ~(g.spp > 1e-24 * g.saa)
        sigma_s = np.where(flat, np.inf, sigma / np.sqrt(g.spp))
        if not centered:
            return WeightedFit(ds, shift, sigma_s, np.full_like(ds, np.inf))
        # the shift carries the scale's error along c
        sigma_t = sigma * np.sqrt(1.0 / g.scc + np.where(flat, 0.0, g.along * g.along / g.spp))
    return WeightedFit(ds, shift, sigma_s, sigma_t)
