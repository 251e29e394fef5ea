"""The exact output, independent of lncheck: extended precision (x87 long double, 64-bit
significand) on the rounded inputs, with a corrected two-pass mean.

The inputs are at most float64 values and the statistics are taken in 11 more bits than
float64 has, so the result (rounded to float64) is within a few float64 ULPs of the exact one
for every input the generator makes (|x| < 1e8, n <= 2^21); it is the yardstick of every error
in the matrix, including those of the float64 implementations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .cases import Inputs

LONG = np.longdouble


def exact(inp: Inputs) -> np.ndarray:
    """The exact output of ``inp`` in the input's shape, as float64."""
    case, g = inp.case, inp.geometry
    axes = case.param_axes
    x = g.to_rows(inp.x.astype(LONG))
    w = g.broadcast(inp.weight.astype(LONG), axes)
    eps = LONG(case.eps)
    if case.op == "batch_norm_eval":
        rm = g.broadcast(inp.running_mean.astype(LONG), axes)[:, :1]
        rv = g.broadcast(inp.running_var.astype(LONG), axes)[:, :1]
        centred, rstd = x - rm, 1 / np.sqrt(rv + eps)
    elif case.op == "rms_norm":
        centred = x
        rstd = 1 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps)
    else:
        mean = np.mean(x, axis=1, keepdims=True)
        mean = mean + np.mean(x - mean, axis=1, keepdims=True)
        centred = x - mean
        rstd = 1 / np.sqrt(np.mean(centred * centred, axis=1, keepdims=True) + eps)
    y = centred * rstd * w
    if inp.bias is not None:
        y = y + g.broadcast(inp.bias.astype(LONG), axes)
    return g.from_rows(y.astype(np.float64))


def max_error(y: np.ndarray, exact_y: np.ndarray) -> float:
    """max |y - exact| in float64; inf when ``y`` is not finite where the exact output is."""
    y64 = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y64)
    if not finite.all():
        same = (y64 == exact_y) | (np.isnan(y64) & np.isnan(exact_y))
        if not same[~finite].all():
            return float("inf")
        y64 = np.where(finite, y64, 0.0)
        exact_y = np.where(finite, exact_y, 0.0)
    return float(np.max(np.abs(y64 - exact_y))) if y64.size else 0.0
