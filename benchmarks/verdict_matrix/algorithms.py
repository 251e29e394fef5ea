"""Reductions the way kernels do them, vectorized across rows, each in the dtype of its input.

Every function takes rows ``a`` of shape ``(R, n)`` (float32 or float64: the accumulation
dtype) and returns ``(R, 1)`` results in the same dtype. Only the order of the additions
differs between them, and that order is what each kernel family's error growth comes from:
NumPy's own sum (pairwise over blocks of 8x16), an explicit binary tree, lane-parallel Kahan,
Welford merged as a tree, Welford one element at a time, Apex's strided lanes.
"""

from __future__ import annotations

import numpy as np


def numpy_sum(a: np.ndarray) -> np.ndarray:
    """NumPy's reduction over the contiguous axis: blocked pairwise summation."""
    return np.add.reduce(a, axis=1, keepdims=True)


def _pad_to_power_of_two(a: np.ndarray, fill: float = 0.0) -> np.ndarray:
    n = a.shape[1]
    width = 1 << max(0, (n - 1).bit_length())
    if width == n:
        return a
    return np.concatenate([a, np.full((a.shape[0], width - n), fill, a.dtype)], axis=1)


def pairwise_sum(a: np.ndarray) -> np.ndarray:
    """A binary tree of additions: the two halves' sums added (padding with exact zeros)."""
    m = _pad_to_power_of_two(a)
    while m.shape[1] > 1:
        h = m.shape[1] // 2
        m = m[:, :h] + m[:, h:]
    return m


def sequential_sum(a: np.ndarray) -> np.ndarray:
    """One running sum, element after element (``np.add.accumulate`` adds in order)."""
    return np.add.accumulate(a, axis=1)[:, -1:]


def kahan_sum(a: np.ndarray, lanes: int = 64) -> np.ndarray:
    """Compensated (Kahan) summation in ``lanes`` parallel accumulators, as a SIMD kernel does,
    the lanes then combined by Kahan summation too."""
    r, n = a.shape
    lanes = min(lanes, n)
    m = -(-n // lanes)
    padded = np.zeros((r, m * lanes), a.dtype)
    padded[:, :n] = a
    blocks = np.ascontiguousarray(padded.reshape(r, m, lanes).transpose(1, 0, 2))
    s = np.zeros((r, lanes), a.dtype)
    c = np.zeros((r, lanes), a.dtype)
    y, t = np.empty_like(s), np.empty_like(s)
    for j in range(m):
        np.subtract(blocks[j], c, out=y)
        np.add(s, y, out=t)
        np.subtract(t, s, out=c)
        np.subtract(c, y, out=c)
        s, t = t, s
    total = np.zeros(r, a.dtype)
    comp = np.zeros(r, a.dtype)
    for value in (*s.T, *(-c).T):
        y1 = value - comp
        t1 = total + y1
        comp = (t1 - total) - y1
        total = t1
    return total[:, None]


def two_pass(a: np.ndarray, total=numpy_sum) -> tuple[np.ndarray, np.ndarray]:
    """Mean, then the mean of squared deviations, both with the summation ``total``."""
    n = a.dtype.type(a.shape[1])
    mean = total(a) / n
    d = a - mean
    return mean, total(d * d) / n


def one_pass(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[x^2] - E[x]^2 (clamped at 0): cancels catastrophically when |mean| >> std."""
    n = a.dtype.type(a.shape[1])
    mean = numpy_sum(a) / n
    return mean, np.maximum(numpy_sum(a * a) / n - mean * mean, a.dtype.type(0))


def chan_tree(
    mean: np.ndarray, m2: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge partial (mean, M2, count) along axis 1 pairwise, halves at a time, with Chan's
    formula; padding has count 0 and merges exactly."""
    count = np.broadcast_to(count, mean.shape).astype(mean.dtype)
    mean, m2, count = (_pad_to_power_of_two(v) for v in (mean, m2, count))
    while mean.shape[1] > 1:
        h = mean.shape[1] // 2
        ma, mb, ca, cb = mean[:, :h], mean[:, h:], count[:, :h], count[:, h:]
        c = ca + cb
        frac = np.divide(cb, c, out=np.zeros_like(c), where=c > 0)
        delta = mb - ma
        mean = ma + delta * frac
        m2 = m2[:, :h] + m2[:, h:] + delta * delta * ca * frac
        count = c
    return mean, m2, count


def tree_welford(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welford with a parallel merge: every element a partial of count 1, merged as a tree."""
    mean, m2, _ = chan_tree(a, np.zeros_like(a), np.ones((1, 1), a.dtype))
    return mean, m2 / a.dtype.type(a.shape[1])


def _welford_steps(
    xs: np.ndarray,
    counts: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
) -> None:
    """Welford's update with ``xs[k]`` as element ``counts[k]``, in place (the hot loop: ufuncs
    bound to locals, outputs given positionally)."""
    sub, div, add, mul = np.subtract, np.divide, np.add, np.multiply
    for xk, k in zip(xs, counts, strict=True):
        sub(xk, mean, d)
        div(d, k, e)
        add(mean, e, mean)
        sub(xk, mean, e)
        mul(d, e, e)
        add(m2, e, m2)


def sequential_welford(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welford one element at a time per row (one thread per row): mean += d / k,
    M2 += d * (x - mean). Its error grows like n*u when one value dominates the sums."""
    r, n = a.shape
    dt = a.dtype.type
    cols = np.ascontiguousarray(a.T)
    mean, m2 = np.zeros(r, a.dtype), np.zeros(r, a.dtype)
    d, e = np.empty(r, a.dtype), np.empty(r, a.dtype)
    _welford_steps(cols, np.arange(1, n + 1, dtype=a.dtype), mean, m2, d, e)
    return mean[:, None], (m2 / dt(n))[:, None]


def strided_welford(a: np.ndarray, lanes: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Apex-style: lane ``l`` runs a sequential Welford over elements l, l + lanes, ...; the
    lanes are merged as a tree (a warp shuffle) with Chan's formula."""
    r, n = a.shape
    dt = a.dtype.type
    lanes = min(lanes, n)
    full, rest = divmod(n, lanes)
    blocks = np.ascontiguousarray(a[:, : full * lanes].reshape(r, full, lanes).transpose(1, 0, 2))
    mean, m2 = np.zeros((r, lanes), a.dtype), np.zeros((r, lanes), a.dtype)
    d, e = np.empty_like(mean), np.empty_like(mean)
    _welford_steps(blocks, np.arange(1, full + 1, dtype=a.dtype), mean, m2, d, e)
    count = np.full((1, lanes), full, a.dtype)
    if rest:
        xk = a[:, full * lanes :]
        d1 = xk - mean[:, :rest]
        mean[:, :rest] += d1 / dt(full + 1)
        m2[:, :rest] += d1 * (xk - mean[:, :rest])
        count[0, :rest] += 1
    mean, m2, _ = chan_tree(mean, m2, count)
    return mean, m2 / dt(n)


def strided_sum(a: np.ndarray, lanes: int = 32) -> np.ndarray:
    """Apex-style sum: ``lanes`` sequential partial sums over strided elements, then a tree."""
    r, n = a.shape
    lanes = min(lanes, n)
    m = -(-n // lanes)
    padded = np.zeros((r, m * lanes), a.dtype)
    padded[:, :n] = a
    partial = np.add.accumulate(padded.reshape(r, m, lanes), axis=1)[:, -1, :]
    return pairwise_sum(partial)


def rstd(var: np.ndarray, eps: float) -> np.ndarray:
    """1 / sqrt(var + eps), each step rounded in var's dtype."""
    dt = var.dtype.type
    return dt(1) / np.sqrt(var + dt(eps))
