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
from lncheck.explain.fit import Sample, gather
from lncheck.explain.hypotheses import Structure

F64 = npt.NDArray[np.float64]

ALS_ROUNDS = 8
# groups a fitted weight and bias need before the noise rounding leaves in them is allowed
# for (``FittedAffine``): 5 of its standard deviations are then at most about a fifth of the
# rounding of an output of typical size near the middle of the values fitted (over 32 to
# 128 groups, outputs near zero set to 0 or moved 4 last places were within it)
NOISE_GROUPS = 256
# how many standard deviations of that noise a replay may be off by: the largest of a
# million Gaussian deviations is about 5
NOISE_SIGMAS = 5.0
# fitted parameters this close to ones and zeros, or to the given ones (a share of their
# largest size), are those: a hypothesis replayed already, whose misses no noise excuses
SAME_SHARE = 1e-2


@dataclass(frozen=True)
class FittedAffine:
    """A weight and bias fitted by least squares per feature (a normalized position for
    LayerNorm layouts, where every group holds every feature once; a channel for GroupNorm,
    InstanceNorm and BatchNorm), and what the output's own roundings alone leave uncertain
    in each feature's line ``y = w z + b``: their standard deviation ``noise``, and where
    the line was pinned (the mean ``z_mean`` and the sum of squared deviations ``z_spread``
    of the ``samples`` normalized values it was fitted on), so that a replay at ``z`` may be
    off by ``noise * sqrt(1 / samples + (z - z_mean)**2 / z_spread)`` (a regression's
    prediction error; Draper and Smith, Applied Regression Analysis, 1998, sec. 1.4)."""

    weight: F64
    bias: F64
    rho: float
    noise: F64
    z_mean: F64
    z_spread: F64
    samples: F64

    def pinned(self, factor: float, view: tuple[int, ...]) -> tuple[F64, F64, F64, F64]:
        """``noise``, ``z_mean``, ``z_spread`` and ``samples`` shaped ``view``, for normalized
        values ``factor`` times the fitted ones (the weight divided by it): what ``confirm``
        allows for."""
        z_mean, z_spread = self.z_mean * factor, self.z_spread * factor**2
        return tuple(  # type: ignore[return-value]
            a.reshape(view) for a in (self.noise, z_mean, z_spread, self.samples)
        )

    def replays(self, weight: F64 | None, bias: F64 | None, none_tried: bool) -> bool:
        """Whether the fitted weight and bias are the given ``weight`` and ``bias``, or ones
        and zeros where no affine map was tried (``same``): that hypothesis was replayed
        already, and the fit's leeway (and noise) would only excuse what it missed (a
        float16 kernel's own error, a few wrong values near zero)."""
        ones, zeros = np.ones_like(self.weight), np.zeros_like(self.bias)
        tried = [(ones, zeros)] if none_tried else []
        if weight is not None or bias is not None:
            weight = ones if weight is None or weight.size != ones.size else weight
            bias = zeros if bias is None or bias.size != zeros.size else bias  # other layouts'
            tried.append((weight, bias))
        return any(same(self.weight, w) and same(self.bias, b) for w, b in tried)


def same(values: F64, reference: npt.ArrayLike) -> bool:
    """Whether fitted ``values`` are ``reference`` to within ``SAME_SHARE`` of their largest
    size (at least 1)."""
    tol = SAME_SHARE * max(1.0, float(np.abs(values).max(initial=0.0)))
    return bool(np.allclose(values, np.ravel(reference), rtol=0, atol=tol))


def fit_affine(
    sample: Sample,
    centered: bool,
    precision: DTypeName,
    features: tuple[npt.NDArray[np.intp], int] | None = None,
) -> FittedAffine | None:
    """Fit ``y = alpha_g * (x - c_g) * w_f + b_f`` on the sampled groups by alternating least
    squares (per feature given the scales, per group given the features). The features are
    the sample's columns, or ``features``: each sampled element's feature, and how many
    there are.

    ``alpha * w`` is only known up to a common factor; it is fixed by assuming that eps is
    negligible in the half of the groups with the largest variance. ``None`` when fewer than
    3 groups are sampled (a per-feature line needs more points than parameters), or when a
    feature is in fewer than 2 of them (BatchNorm's channels, a GroupNorm of one sample):
    its weight then absorbs that group's scale, and a scale per group (an eps or an rstd
    off) fits as well as the layer.
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
    if features is None:  # a feature per column, in every group
        at, count = np.broadcast_to(np.arange(ys.shape[1]), ys.shape), ys.shape[1]
    else:
        at, count = features[0][ok], features[1]
        pairs = np.unique(np.arange(len(ys))[:, None] * count + at)  # (group, feature)
        if np.min(np.bincount(pairs % count, minlength=count)) < 2:
            return None
    with np.errstate(all="ignore"):
        alpha, (w, b, zm, szz, mean_square, samples) = _lines(ys, r0, 1 / np.sqrt(base), at, count)
        top = base >= np.median(base)
        lam = float(np.median(alpha[top] * np.sqrt(base[top])))
    if not (math.isfinite(lam) and lam > 0 and np.isfinite(w).all() and np.isfinite(b).all()):
        return None
    alpha, w = alpha / lam, w * lam
    res = ys - (alpha[:, None] * r0 * w[at] + b[at])
    yp = ys - b[at]
    total = float(np.einsum("ij,ij->", yp, yp))
    if total <= 0:
        return None
    u = DTYPES[precision].unit_roundoff
    rho = max(math.sqrt(float(np.einsum("ij,ij->", res, res)) / total), u / 4)
    # roundings of at most u |y|, uniform: a standard deviation of u |y| / sqrt(3) each (the
    # normalized values z of the last round, rescaled as alpha is); over fewer than
    # NOISE_GROUPS groups a line through each feature fits a different function as well,
    # and its noise is no excuse
    noise = u * np.sqrt(mean_square / 3.0)
    if len(ys) < NOISE_GROUPS:
        noise = np.zeros_like(noise)
    return FittedAffine(w, b, rho, noise, zm / lam, szz / (lam * lam), samples)


_Lines = tuple[F64, F64, F64, F64, F64, F64]  # w, b, z's mean and spread, mean y**2, samples


def _lines(
    ys: F64, r0: F64, alpha: F64, features: npt.NDArray[np.intp], count: int
) -> tuple[F64, _Lines]:
    """Alternating least squares: each feature's line (of ``count``, each element's given)
    given the groups' scales ``alpha``, then each group's scale given the lines."""
    flat = features.reshape(-1)

    def total(values: F64) -> F64:
        return np.asarray(np.bincount(flat, values.reshape(-1), minlength=count), np.float64)

    samples = np.bincount(flat, minlength=count).astype(np.float64)
    for _ in range(ALS_ROUNDS):
        z = alpha[:, None] * r0
        zm, ym = total(z) / samples, total(ys) / samples
        dz = z - zm[features]
        szz = total(dz * dz)
        w = np.where(szz > 0, total(dz * (ys - ym[features])) / szz, 0.0)
        b = ym - w * zm
        q = r0 * w[features]
        alpha = np.einsum("ij,ij->i", ys - b[features], q) / np.einsum("ij,ij->i", q, q)
    return alpha, (w, b, zm, szz, total(ys * ys) / samples, samples)


def channels(s: Structure, sample: Sample) -> tuple[npt.NDArray[np.intp], int]:
    """The channel of each of the sample's elements on structure ``s`` (its parameters'
    index, as a per-channel weight of ``s.param_shape`` is laid on the view), and how many
    channels there are."""
    count = math.prod(s.param_shape)
    index = np.arange(count).reshape(s.param_view)
    return gather(s.layout, index, sample.rows).astype(np.intp), count
