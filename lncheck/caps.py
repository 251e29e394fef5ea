"""The structural limit: outputs no correct layer computing its statistics from the group can
produce, per accuracy class (``output_model``).

With the biased variance about the group's mean, ``sum(n_i**2) = n`` and ``sum(n_i) = 0``, so
no normalized value exceeds ``sqrt(n - 1)`` (``sqrt(n)`` for RMSNorm: ``OutputModel.cap``); a
kernel's own statistics move that limit by at most the implied scale and shift its class
allows. On a constant group whose sums are exact (``OutputModel.exact_mean``) every algorithm
computes the exact mean and a zero variance, so only a folded ``x * scale + shift`` moves it:
``x * scale`` and ``mean * scale`` are the same product ``P``, and ``b - P`` rounds once, by
at most ``v * K * |w|`` (``v`` the accumulation dtype's unit roundoff); with a bias and an fma
that keeps ``x * scale`` exact, ``P``'s own rounding adds as much (without a bias ``b - P`` is
exact). ``python benchmarks/folded_constant_rows.py`` measures torch's CPU kernels that fold
(GroupNorm, BatchNorm, InstanceNorm, the float16/bfloat16 LayerNorm) on 3,000 constant groups
per dtype and bias with eps down to 1e-12: at most 0.9967 of ``v * K`` without a bias (64 at
kappa 1.45e9) and 1.98 with one (float16 BatchNorm and InstanceNorm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES
from lncheck.tolerances import accumulation_dtype

if TYPE_CHECKING:
    from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]


def beyond_caps(
    block: OutputBlock,
    centred: F64,
    limits: list[tuple[F64, F64]],
    rounding: F64,
    dtype: str,
) -> list[npt.NDArray[np.bool_]]:
    """Per class (its ``limits``: the largest implied scale ``ds`` and shift ``t`` it allows,
    per group), the groups with an element no implementation of that class computing in
    ``dtype`` can produce: ``|y - b| > |w| * (cap + t) * (1 + ds)`` plus ``rounding``, with
    ``centred = |y - b|`` (``OutputModel.cap``).

    The bound grows with the reach ``(cap + t) * (1 + ds)`` (rounding is monotonic), so every
    class passes a group that passes at the smallest reach: the others are looked at only on
    the rows that do not."""
    model = block.model
    groups = block.y.shape[0]
    if model.running:
        return [np.zeros(groups, dtype=bool) for _ in limits]
    with np.errstate(all="ignore"):
        big_w = 1.0 if block.weight is None else np.abs(block.weight)
        # the exact statistics' limit, moved by what the class lets a kernel's own rstd and
        # mean be off (a mean off by t std moves |x - mean| by t however small the variance)
        rows_of = slice(block.first, block.first + groups)
        exact = model.exact_mean[rows_of]
        folded = exact_reach(block, dtype)[:, 0]
        # a negative eps normalizes by more than 1 / std: the limit stretches by as much
        stretch = np.fmax(np.sqrt(model.variance[rows_of]) * model.rstd[rows_of], 1.0)
        cap = model.cap * stretch
        # |x - mean| grows by the mean's error t, and the whole by the kernel's rstd
        reaches = [
            np.where(exact, folded, (cap + shift) * (1.0 + scale)) for scale, shift in limits
        ]
        smallest = reaches[0]
        for reach in reaches[1:]:
            smallest = np.fmin(smallest, reach)  # fmin: a NaN reach flags nothing
        rows = _over(centred, big_w, smallest, rounding)
        found = [np.zeros(groups, dtype=bool) for _ in limits]
        if rows.any():
            w_rows = big_w[rows] if isinstance(big_w, np.ndarray) else big_w
            for flagged, reach in zip(found, reaches, strict=True):
                flagged[rows] = _over(centred[rows], w_rows, reach[rows], rounding[rows])
    return found


def exact_reach(block: OutputBlock, dtype: str) -> F64:
    """Per group (a column), the limit of ``|y - b| / |w|`` on a constant group whose sums are
    exact, computed in ``dtype``: the cap plus a fold's roundings, ``v * K``, twice that where
    the group has a bias (the module docstring)."""
    v = DTYPES[accumulation_dtype(dtype)].unit_roundoff  # type: ignore[index]
    folds: F64 | float = 1.0
    if block.bias is not None:
        folds = np.where(np.any(block.bias != 0, axis=1, keepdims=True), 2.0, 1.0)
    return np.asarray(block.model.cap + folds * v * block.k, dtype=np.float64)


def _over(centred: F64, big_w: F64 | float, reach: F64, rounding: F64) -> npt.NDArray[np.bool_]:
    """Per row, whether an element of ``centred`` exceeds ``big_w * reach`` plus ``rounding``.

    Rounding is never negative and products round monotonically: a row whose largest value
    stays within its smallest ``|w|`` times a non-negative reach has no such element, and
    only the other rows (most rows pass) are looked at element by element."""
    found = np.zeros(centred.shape[0], dtype=bool)
    if not centred.shape[1]:
        return found
    with np.errstate(all="ignore"):
        smallest_w = big_w if np.ndim(big_w) == 0 else np.min(big_w, axis=1)
        within = np.fmax.reduce(centred, axis=1) <= smallest_w * reach * (1 + 1e-2)
        rows = ~(within & (reach >= 0))
        if rows.any():
            w_rows = big_w if np.ndim(big_w) == 0 else big_w[rows]  # type: ignore[index]
            over = centred[rows] > w_rows * reach[rows, None] * (1 + 1e-2) + rounding[rows]
            found[rows] = np.any(over & np.isfinite(centred[rows]), axis=1)
    return found
