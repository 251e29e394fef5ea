"""Correct and deliberately wrong LayerNorm implementations, for the tolerance-model tests.

Each takes float32 inputs (x of shape (B, T, D), weight and bias of shape (D,)) and returns
its output in float64. The correct ones are what real kernels do; each mutant carries one bug
that real kernels have had.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

F32 = np.float32
Impl = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def _affine(n: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (n * w + b).astype(np.float64)


def torch_cpu(dtype: torch.dtype) -> Impl:
    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
        t = torch.nn.functional.layer_norm(
            torch.tensor(x).to(dtype),
            (x.shape[-1],),
            torch.tensor(w).to(dtype),
            torch.tensor(b).to(dtype),
            eps,
        )
        return t.double().numpy()

    return run


def two_pass(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True, dtype=F32)
    d = x - mean
    var = (d * d).mean(-1, keepdims=True, dtype=F32)
    return _affine(d / np.sqrt(var + F32(eps)), w, b)


def welford(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """One element at a time, as a simple one-thread-per-row kernel does."""
    mean = np.zeros(x.shape[:-1], F32)
    m2 = np.zeros(x.shape[:-1], F32)
    for i in range(x.shape[-1]):
        xi = x[..., i]
        delta = xi - mean
        mean = mean + delta / F32(i + 1)
        m2 = m2 + delta * (xi - mean)
    var = (m2 / F32(x.shape[-1]))[..., None]
    return _affine((x - mean[..., None]) / np.sqrt(var + F32(eps)), w, b)


CORRECT: dict[str, Impl] = {
    "torch float32": torch_cpu(torch.float32),
    "two-pass float32": two_pass,
    "welford float32": welford,
}


def eps_too_small(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    return two_pass(x, w, b, eps / 10)


def eps_outside_sqrt(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True, dtype=F32)
    d = x - mean
    var = (d * d).mean(-1, keepdims=True, dtype=F32)
    return _affine(d / (np.sqrt(var) + F32(eps)), w, b)


def unbiased_variance(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True, dtype=F32)
    d = x - mean
    var = (d * d).sum(-1, keepdims=True, dtype=F32) / F32(x.shape[-1] - 1)
    return _affine(d / np.sqrt(var + F32(eps)), w, b)


def wrong_axes(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """Statistics over the last two dims instead of the last one."""
    mean = x.mean((-2, -1), keepdims=True, dtype=F32)
    d = x - mean
    var = (d * d).mean((-2, -1), keepdims=True, dtype=F32)
    return _affine(d / np.sqrt(var + F32(eps)), w, b)


def swapped_affine(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    return two_pass(x, b, w, eps)


def affine_dropped(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    return two_pass(x, np.ones_like(w), np.zeros_like(b), eps)


def one_pass_variance(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True, dtype=F32)
    var = (x * x).mean(-1, keepdims=True, dtype=F32) - mean * mean
    with np.errstate(invalid="ignore"):
        return _affine((x - mean) / np.sqrt(var + F32(eps)), w, b)


BUGS: dict[str, Impl] = {
    "eps 1e-6 instead of 1e-5": eps_too_small,
    "eps added to the std": eps_outside_sqrt,
    "unbiased (N-1) variance": unbiased_variance,
    "wrong axes": wrong_axes,
    "weight and bias swapped": swapped_affine,
    "affine dropped": affine_dropped,
    "one-pass E[x^2]-E[x]^2 in float32": one_pass_variance,
}
