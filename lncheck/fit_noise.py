"""How far the elements' own roundings may move a group's fitted scale and shift
(``affine_fit``), which ``lncheck.judge`` adds to each class's limits.

Each element's rounding bound ``R`` (``OutputBlock.residual_bound``, plus what the fit itself
and a moved output add) is taken as its standard deviation: a fit's noise is
``NOISE_SIGMAS`` of the resulting standard deviation, but never more than every error at its
bound leaning one way would move it (the tighter of the two in small groups). Independent
uniform roundings would have a third of that (``ROUNDING_SIGMA``), but a kernel's roundings
need not be independent of the values: an intermediate rounding to the compute dtype where
rstd is within ``u`` of a power of two (HF's Llama RMSNorm in bfloat16: ``bf16(x * rstd)``
rounds nearly every ``x * rstd`` back to ``x``) or a distorted output's ``fl(s y) - fl(y)``
is a staircase in ``y`` that moves a fit as a scale of up to ``u`` would.

Equal inputs (with the same weight and bias) give equal outputs, which round alike: in a
group of ``n`` values at ``D`` levels the outputs' final roundings (at most ``u |y|`` each,
uniform: a standard deviation of ``u |y| / sqrt(3)``) move the fit as ``sqrt(n / D)`` times
that many independent ones would (``repeats``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lncheck.affine_fit import geometry, size_across
from lncheck.dtypes import DTYPES

if TYPE_CHECKING:
    from lncheck.affine_fit import Geometry
    from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]
NOISE_SIGMAS = 10.0  # how far rounding noise may move a fitted scale or shift
# A roundings of at most their size each, uniform and independent: a standard deviation of
# sqrt(A / 3) times one, bound / sqrt(3 A), a third of the bound at A = 3 (``tolerances.A``)
ROUNDING_SIGMA = 1.0 / 3.0


@dataclass(frozen=True)
class FitNoise:
    """Per group, what rounding may move a least-squares scale and shift, each a (scale,
    shift) pair: ``independent`` (every element's rounding on its own) and ``alike``
    (widened where values repeat: what the classes that pass by default allow, and how far
    the fitted line, and with it every residual, may move); ``repeats``: how many elements
    share each value (``repeats``)."""

    independent: tuple[F64, F64]
    alike: tuple[F64, F64]
    repeats: F64


def fit_noise(block: OutputBlock, bound: F64, dtype: str) -> FitNoise:
    """The ``FitNoise`` of a block's least-squares fit, measured across ``c = |w|``
    (``affine_fit.geometry(block, signed=False)``), for per-element rounding bounds ``bound``,
    computed in ``dtype``."""
    geo = geometry(block, signed=False)
    with np.errstate(all="ignore"):
        squared = bound * bound
        spread_s = np.sqrt(np.einsum("ij,ij->i", geo.a_perp_squared, squared)) / geo.spp
        one_way_s = np.einsum("ij,ij->i", size_across(block), bound) / geo.spp
        if geo.c is None:
            spread_t = np.sqrt(squared.sum(axis=1)) / geo.scc
            one_way_t = bound.sum(axis=1) / geo.scc
        else:
            spread_t = np.sqrt(np.einsum("ij,ij->i", geo.c * geo.c, squared)) / geo.scc
            one_way_t = np.einsum("ij,ij->i", geo.c, bound) / geo.scc
        # the shift is the mean error less ds times a's mean along c (``affine_fit._solve``):
        # far from centred (eval mode, a batch away from the running mean) the scale's noise
        # reaches the shift that many times over; not where no scale is fitted (a flat group:
        # ``_solve`` sets its ds to 0) or no shift (RMSNorm)
        along = np.where(geo.spp > 1e-24 * geo.saa, np.abs(geo.along), 0.0)
        along = along if block.model.centered else np.zeros_like(along)
        spread_t = np.hypot(spread_t, np.where(along > 0, along * spread_s, 0.0))
        one_way_t = one_way_t + np.where(along > 0, along * one_way_s, 0.0)
        shared = repeats(block)
        rounded = output_rounding(block, geo, dtype) if np.any(shared > 1) else None

        def noise(widened: bool) -> tuple[F64, F64]:
            sigma_s, sigma_t = spread_s, spread_t
            if widened and rounded is not None:
                alike = np.sqrt(shared)
                sigma_s = np.fmax(sigma_s, alike * rounded[0])
                sigma_t = np.fmax(sigma_t, alike * rounded[1])
            noise_s = np.where(geo.spp > 0, np.minimum(NOISE_SIGMAS * sigma_s, one_way_s), 0.0)
            noise_t = np.where(geo.scc > 0, np.minimum(NOISE_SIGMAS * sigma_t, one_way_t), 0.0)
            return noise_s, noise_t

        return FitNoise(noise(False), noise(True), shared)


def output_rounding(block: OutputBlock, geo: Geometry, dtype: str) -> tuple[F64, F64]:
    """Per group, the standard deviation of the fitted scale and shift that independent
    final roundings of the output (``u |y| / sqrt(3)`` each) would leave."""
    per_element = DTYPES[dtype].unit_roundoff / math.sqrt(3.0)  # type: ignore[index]
    y_squared = block.y * block.y
    scale = np.sqrt(np.einsum("ij,ij->i", geo.a_perp_squared, y_squared)) / geo.spp
    if geo.c is None:
        shift = np.sqrt(y_squared.sum(axis=1)) / geo.scc
    else:
        shift = np.sqrt(np.einsum("ij,ij->i", geo.c * geo.c, y_squared)) / geo.scc
    return per_element * scale, per_element * shift


def repeats(block: OutputBlock) -> F64:
    """Per group, how many elements share each (input, weight, bias) on average, at least 1:
    the input's levels (``OutputModel.levels``) times the runs of equal weight and bias along
    the group (a GroupNorm group spans channels; an element-wise weight sets every element
    apart). Runs count distinct values from above, so this errs towards independence."""
    rows = slice(block.first, block.first + block.y.shape[0])
    with np.errstate(all="ignore"):
        shared = np.fmax(block.model.group_size / block.model.levels[rows], 1.0)
    repeating = np.flatnonzero(shared > 1)
    params = [p for p in (block.weight, block.bias) if p is not None]
    if repeating.size and params and block.y.shape[1] > 1:
        changes = np.zeros((repeating.size, block.y.shape[1] - 1), dtype=bool)
        for param in params:
            changes |= np.diff(param[repeating], axis=1) != 0
        runs = 1.0 + np.count_nonzero(changes, axis=1)
        shared[repeating] = np.fmax(shared[repeating] / runs, 1.0)
    return shared
