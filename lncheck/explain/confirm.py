"""Confirming a hypothesis element by element, and the precision of the observed values.

A hypothesis that survived the per-group fits is replayed on every element: its float64
output is compared with the observed one (``max_abs``, ``rms``), and with the rounding that
``lncheck.tolerances`` expects of an output in that precision (``ratio``, the largest
``|residual| / bound``). The verdict is ``exact`` when rounding the float64 output to the
precision gives the observed values (all but ``EXACT_SHARE`` of them, for the rare ties a
float32 computation rounds the other way), ``rounding`` when every residual is within the
bound, and ``none`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.dtypes import DTypeName, round_to
from lncheck.explain.fit import Deadline
from lncheck.explain.fitted_affine import NOISE_SIGMAS
from lncheck.explain.hypotheses import CastOrder
from lncheck.tolerances import coefficients

F64 = npt.NDArray[np.float64]
Array = npt.NDArray[Any]

EXACT_SHARE = 0.999
PRECISION_SAMPLE = 1 << 16


def value_precision(y: Array) -> DTypeName:
    """The narrowest dtype that holds every observed value exactly: an output rounded to
    bfloat16 or float16 and stored as float32 is recognised by its values.

    Looks at up to ``PRECISION_SAMPLE`` evenly spaced finite values (a float32 output whose
    values all fit 8 significant bits by chance would need 2**16 coincidences).
    """
    flat = np.asarray(y).reshape(-1)  # a float16 array may hold bfloat16 values too
    step = max(1, flat.size // PRECISION_SAMPLE)
    values = np.asarray(flat[::step], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "float64" if y.dtype == np.float64 else "float32"
    with np.errstate(all="ignore"):
        for name in ("bfloat16", "float16", "float32"):
            if np.array_equal(np.asarray(round_to(values, name), dtype=np.float64), values):
                return name
    return "float64"


@dataclass(frozen=True)
class Residual:
    """How far the observed output is from a hypothesis' output, over every element."""

    max_abs: float
    rms: float
    ratio: float  # the largest |residual| / the rounding bound
    exact_share: float  # the share of elements equal to the hypothesis rounded to the precision

    @property
    def verdict(self) -> str:
        if self.ratio <= 1 and self.exact_share >= EXACT_SHARE:
            return "exact"
        return "rounding" if self.ratio <= 1 else "none"


def confirm(
    layout: GroupLayout,
    x: Array,
    y: Array,
    center: F64,
    scale: F64,
    weight: Array | None,
    bias: Array | None,
    precision: DTypeName,
    kappa: F64,
    deadline: Deadline,
    cast_order: CastOrder | None = None,
    fitted: tuple[Array, Array, Array, Array] | None = None,
) -> Residual:
    """Replay ``(x - center_g) * scale_g * weight + bias`` on every group and measure it.

    ``weight``/``bias`` are view-shaped (broadcastable) or None. With ``cast_order ==
    "weight_after_cast"`` the normalized value is rounded to ``precision`` before the weight
    multiplies it (Llama's and T5's order); otherwise one rounding at the end (Gemma's).
    The bound per element is ``relative * |y| + spread * (1 + kappa_g) * |w| + fixed * |b|``
    with ``lncheck.tolerances.coefficients(precision, group_size)``; a fitted weight and
    bias add ``NOISE_SIGMAS`` times the error rounding leaves in their prediction at the
    normalized value ``n`` (``fitted``: ``FittedAffine.noise``, ``z_mean``, ``z_spread`` and
    ``samples``, view-shaped and in the replay's scale), which in float16 and bfloat16
    exceeds the rounding of an output near zero.
    """
    c = coefficients(precision, layout.group_size)
    params = [a for a in (weight, bias) if a is not None]
    sources = [x, y, *params, *(fitted or ())]
    worst = 0.0
    ratio = 0.0
    squares = 0.0
    equal = 0
    count = 0
    for blocks in zip(*(layout.blocks(a) for a in sources), strict=True):
        deadline.check()
        first = blocks[0][0]
        arrays = [np.asarray(block, dtype=np.float64) for _, block in blocks]
        xs, ys = arrays[0], arrays[1]
        rest = arrays[2:]
        ws = rest.pop(0) if weight is not None else None
        bs = rest.pop(0) if bias is not None else None
        n = xs.shape[0]
        with np.errstate(all="ignore"):
            out = (xs - center[first : first + n, None]) * scale[first : first + n, None]
            fit_bound: F64 | float = 0.0
            if fitted is not None:  # a line pinned at its data's mean, looser away from it
                noise, z_mean, z_spread, samples = rest
                reach = 1.0 / samples + np.square(out - z_mean) / z_spread
                fit_bound = NOISE_SIGMAS * noise * np.sqrt(reach)
            if cast_order == "weight_after_cast":
                out = np.asarray(round_to(out, precision), dtype=np.float64)
            if ws is not None:
                out *= ws
            if bs is not None:
                out += bs
            rounded = np.asarray(round_to(out, precision), dtype=np.float64)
            both_nan = np.isnan(out) & np.isnan(ys)
            same = both_nan | (ys == out)  # equal infinities too
            diff = np.where(same, 0.0, np.abs(ys - out))
            diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN on one side only
            bound = c["relative"] * np.abs(out) + c["floor"]
            spread = c["spread"] * (1 + kappa[first : first + n, None])
            bound += spread * (1.0 if ws is None else np.abs(ws))
            if bs is not None:
                bound += c["fixed"] * np.abs(bs)
            bound += fit_bound
            bound = np.where(np.isfinite(bound), bound, np.inf)
            worst = max(worst, float(diff.max(initial=0.0)))
            # an infinite residual is within no bound, an infinite one included (inf / inf)
            share = np.where(diff == 0, 0.0, diff / bound)
            ratio = max(ratio, float(np.where(np.isnan(share), np.inf, share).max(initial=0.0)))
            squares += float(np.einsum("ij,ij->", diff, diff))
            equal += int(np.count_nonzero((rounded == ys) | same))
        count += diff.size
    rms = math.sqrt(squares / count) if count and math.isfinite(squares) else math.inf
    if math.isnan(ratio):
        ratio = math.inf
    return Residual(worst, rms, ratio, equal / count if count else 0.0)
