"""Outputs with known conventions, built with NumPy in float64 and rounded to a dtype: what
each library computes, written out so that a test can say which one it expects first."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import round_to

F64 = npt.NDArray[np.float64]


def rounded(y: npt.NDArray[Any], dtype: str) -> npt.NDArray[Any]:
    """``y`` rounded to ``dtype`` as torch rounds (bfloat16 values stored in float32)."""
    return round_to(np.asarray(y, dtype=np.float64), dtype)  # type: ignore[arg-type]


def normalize(
    x: npt.ArrayLike,
    axes: tuple[int, ...] = (-1,),
    eps: float = 1e-5,
    *,
    unbiased: bool = False,
    eps_on_std: bool = False,
    center: bool = True,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
) -> F64:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over ``axes`` in float64, or one of
    its variants: the unbiased variance, eps added to the std, no centring (RMSNorm)."""
    a = np.asarray(x, dtype=np.float64)
    mean = a.mean(axis=axes, keepdims=True) if center else 0.0
    d = a - mean
    n = np.prod([a.shape[i] for i in axes])
    var = (d * d).sum(axis=axes, keepdims=True) / (n - 1 if unbiased else n)
    y = d / (np.sqrt(var) + eps) if eps_on_std else d / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, dtype=np.float64)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return np.asarray(y)


def group_norm(
    x: npt.ArrayLike, groups: int, eps: float = 1e-5, *, interleaved: bool = False
) -> F64:
    """GroupNorm on (N, C, ...) in float64: torch's contiguous groups, or channel k in group
    k mod G (MLX)."""
    a = np.asarray(x, dtype=np.float64)
    n, c = a.shape[:2]
    if interleaved:  # (N, C/G, G, ...): group j holds channels j, j + G, j + 2G, ...
        v = a.reshape(n, c // groups, groups, *a.shape[2:])
        axes = (1, *range(3, v.ndim))
    else:
        v = a.reshape(n, groups, c // groups, *a.shape[2:])
        axes = tuple(range(2, v.ndim))
    return normalize(v, axes, eps).reshape(a.shape)


def flax_one_pass(x: npt.ArrayLike, eps: float = 1e-6) -> npt.NDArray[np.float32]:
    """Flax's ``nn.LayerNorm`` (``use_fast_variance=True``): mean and mean square in float32,
    var = E[x^2] - E[x]^2, all in float32."""
    a = np.asarray(x, dtype=np.float32)
    mean = a.mean(axis=-1, keepdims=True, dtype=np.float32)
    mean2 = (a * a).mean(axis=-1, keepdims=True, dtype=np.float32)
    var = np.maximum(np.float32(0), mean2 - mean * mean)
    return ((a - mean) / np.sqrt(var + np.float32(eps))).astype(np.float32)


def llama_rms(x: npt.ArrayLike, weight: npt.ArrayLike, eps: float, dtype: str) -> npt.NDArray[Any]:
    """Llama's RMSNorm: normalize in float32 (here float64), round to ``dtype``, then multiply
    by the ``dtype`` weight and round again."""
    z = rounded(normalize(x, (-1,), eps, center=False), dtype)
    return rounded(np.asarray(z, np.float64) * np.asarray(weight, np.float64), dtype)


def gemma_rms(x: npt.ArrayLike, weight: npt.ArrayLike, eps: float, dtype: str) -> npt.NDArray[Any]:
    """Gemma's RMSNorm: ``1 + weight`` applied in float32 (here float64), one rounding."""
    return rounded(normalize(x, (-1,), eps, center=False, weight=1 + np.asarray(weight)), dtype)
