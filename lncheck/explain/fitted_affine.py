"""A per-feature weight and bias fitted to an output by alternating least squares, where no
given one explains it (``lncheck.explain.search``'s second stage), with the noise the
output's own roundings leave in them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES, DTypeName
from lncheck.explain.fit import Sample

F64 = npt.NDArray[np.float64]

ALS_ROUNDS = 8
# groups a fitted weight and bias need before the noise rounding leaves in them is allowed
# for (``FittedAffine``): 5 of its standard deviations are then at most about half the
# rounding of an output of typical size near the middle of the values fitted
NOISE_GROUPS = 32


@dataclass(frozen=True)
class FittedAffine:
    """Per-feature weight and bias fitted by least squares (LayerNorm layouts: the features
    are the normalized positions, so every group holds every feature once), and what the
    output's own roundings alone leave uncertain in each feature's line ``y = w z + b``:
    their standard deviation ``noise`` per feature, and where the line was pinned (the mean
    ``z_mean`` and the sum of squared deviations ``z_spread`` of the normalized values it was
    fitted on, over ``groups`` groups), so that a replay at ``z`` may be off by
    ``noise * sqrt(1 / groups + (z - z_mean)**2 / z_spread)`` (a regression's prediction
    error; Draper and Smith, Applied Regression Analysis, 1998, sec. 1.4)."""

    weight: F64
    bias: F64
    rho: float
    noise: F64
    z_mean: F64
    z_spread: F64
    groups: int

    def pinned(self, factor: float, view: tuple[int, ...]) -> tuple[F64, F64, F64, int]:
        """``noise``, ``z_mean`` and ``z_spread`` shaped ``view``, for normalized values
        ``factor`` times the fitted ones (the weight divided by it), and ``groups``: what
        ``confirm`` allows for."""
        z_mean, z_spread = self.z_mean * factor, self.z_spread * factor**2
        return self.noise.reshape(view), z_mean.reshape(view), z_spread.reshape(view), self.groups


def fit_affine(sample: Sample, centered: bool, precision: DTypeName) -> FittedAffine | None:
    """Fit ``y = alpha_g * (x - c_g) * w_f + b_f`` on the sampled groups by alternating least
    squares (per feature given the scales, per group given the features).

    ``alpha * w`` is only known up to a common factor; it is fixed by assuming that eps is
    negligible in the half of the groups with the largest variance. ``None`` when fewer than
    3 groups are sampled (a per-feature line needs more points than parameters).
    """
    if len(sample.rows) < 3 or sample.cols is not None or not np.isfinite(sample.y).all():
        return None
    xs, ys, mean, var = sample.x, sample.y, sample.mean, sample.var
    base = var if centered else var + mean * mean
    ok = base > 0
    if ok.sum() < 3:
        return None
    xs, ys, base = xs[ok], ys[ok], base[ok]
    r0 = xs - (mean[ok, None] if centered else 0.0)
    alpha = 1 / np.sqrt(base)
    w = np.ones(xs.shape[1])
    b = np.zeros(xs.shape[1])
    with np.errstate(all="ignore"):
        for _ in range(ALS_ROUNDS):
            z = alpha[:, None] * r0
            zm, ym = z.mean(axis=0), ys.mean(axis=0)
            dz = z - zm
            szz = np.einsum("ij,ij->j", dz, dz)
            w = np.where(szz > 0, np.einsum("ij,ij->j", dz, ys - ym) / szz, 0.0)
            b = ym - w * zm
            q = r0 * w
            alpha = np.einsum("ij,ij->i", ys - b, q) / np.einsum("ij,ij->i", q, q)
        top = base >= np.median(base)
        lam = float(np.median(alpha[top] * np.sqrt(base[top])))
    if not (math.isfinite(lam) and lam > 0 and np.isfinite(w).all()):
        return None
    alpha, w = alpha / lam, w * lam
    res = ys - (alpha[:, None] * r0 * w + b)
    yp = ys - b
    total = float(np.einsum("ij,ij->", yp, yp))
    if total <= 0:
        return None
    u = DTYPES[precision].unit_roundoff
    rho = max(math.sqrt(float(np.einsum("ij,ij->", res, res)) / total), u / 4)
    # roundings of at most u |y|, uniform: a standard deviation of u |y| / sqrt(3) each (the
    # normalized values z of the last round, rescaled as alpha is); over fewer than
    # NOISE_GROUPS groups a line through each feature fits a different function as well,
    # and its noise is no excuse
    noise = u * np.sqrt(np.mean(ys * ys, axis=0) / 3.0)
    if len(ys) < NOISE_GROUPS:
        noise = np.zeros_like(noise)
    return FittedAffine(w, b, rho, noise, zm / lam, szz / (lam * lam), len(ys))
