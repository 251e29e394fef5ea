"""The ``sequential`` class's drift, per group: how far a sequential Welford's variance may stray
with the running mean it is taken about (``tolerances.G_DRIFT``, ``G_TREND``), and
how many of a sequential sum's roundings may lean the same way (``G_SEQ``)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES
from lncheck.tolerances import (
    G_DRIFT,
    G_SEQ,
    G_SEQ_ALIKE,
    TREND_NOISE,
    Allowance,
    accumulation_dtype,
)

GRID_HEAD = 64  # values that tell most rows from a grid at once (``on_grid``)
GRID_SPREAD = 1.0  # a grid's steps differ by at most one step (float32 rounds linspace's)


def drift_cap(
    dtype: str, k: npt.NDArray[np.float64], few: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """The largest share of the scale a sequential Welford's drift may take, per group: ``G_DRIFT``,
    or ``sqrt(v K)`` where the group has at most ``FEW_LEVELS`` values (``k`` is ``K``, ``few``
    marks those groups; ``v`` the accumulation dtype's unit roundoff)."""
    v = DTYPES[accumulation_dtype(dtype)].unit_roundoff  # type: ignore[index]
    with np.errstate(all="ignore"):
        return np.where(few, np.fmax(np.sqrt(v * k), G_DRIFT), G_DRIFT)


def trend_of(nhat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per row of normalized values ``nhat`` (a group each, in memory order), how far its
    running sum strays beyond random order: ``max(max_k |sum_{i<=k} n_i| / n - TREND_NOISE /
    sqrt(n), 0)``, in std (see ``G_TREND``). NaN or inf where the row holds NaN or inf
    (either keeps the order-blind drift)."""
    n = nhat.shape[1]
    if not n:
        return np.zeros(nhat.shape[0])
    with np.errstate(all="ignore"):
        walk = np.cumsum(nhat, axis=1)
        np.abs(walk, out=walk)
        strayed = np.max(walk, axis=1) / n
        return np.asarray(np.maximum(strayed - TREND_NOISE / math.sqrt(n), 0.0), dtype=np.float64)


def sequential_drift(
    c: Allowance,
    dtype: str,
    k: npt.NDArray[np.float64],
    few: npt.NDArray[np.bool_],
    trend: npt.NDArray[np.float64] | None,
    grid: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """The share of the scale a sequential Welford's drift may take, per group of
    conditioning ``k`` (``K``): ``c.drift * K`` whatever the data's order, at most
    ``drift_cap``; where the group's ``trend`` (``trend_of``; ``None`` for RMSNorm, which keeps
    no running mean) is known, at most ``c.trend * K * trend`` plus ``c.walk + c.lag * K``;
    and on ``grid`` rows (``on_grid``) what random order leaves plus ``c.grid * K * trend``,
    beyond the order-blind limit. A NaN or infinite trend keeps ``c.drift * K``."""
    drift = np.minimum(c.drift * k, drift_cap(dtype, k, few))
    if trend is not None and c.trend:
        with np.errstate(all="ignore"):
            random_order = c.lag * k + c.walk
            narrowed = np.fmin(drift, c.trend * trend * k + random_order)
            if grid is not None:
                widened = np.fmin(drift, random_order) + c.grid * trend * k
                narrowed = np.where(grid, widened, narrowed)
            drift = np.where(np.isfinite(trend), narrowed, drift)
    return np.asarray(drift, dtype=np.float64)


def on_grid(nhat: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per row, whether its values step by one amount (to ``GRID_SPREAD`` of it, what rounding
    leaves of ``linspace`` in float32): ``torch.arange``, ``linspace``. Its first
    ``GRID_HEAD`` values decide for most rows; the others are looked at whole."""
    found = np.zeros(nhat.shape[0], dtype=bool)
    if nhat.shape[1] < 3:
        return found
    candidates = np.flatnonzero(_even(np.diff(nhat[:, :GRID_HEAD], axis=1)))
    if candidates.size:
        found[candidates] = _even(np.diff(nhat[candidates], axis=1))
    return found


def _even(steps: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    with np.errstate(all="ignore"):
        step = np.mean(steps, axis=1)
        spread = np.max(steps, axis=1) - np.min(steps, axis=1)
        return np.asarray((step != 0) & (spread <= GRID_SPREAD * np.abs(step)))


def sequential_steps(
    n: int,
    peak: npt.NDArray[np.float64] | float,
    centered: bool = True,
    repeated: npt.NDArray[np.float64] | float = 0.0,
) -> npt.NDArray[np.float64]:
    """How many of a sequential sum of squares' roundings may lean the same way (Higham §4.2:
    recursive summation errs by up to ``(n - 1) u``, but by about ``sqrt(n) u`` when its
    roundings cancel like a random walk). They lean alike once one element dominates the
    running sum (``peak``, its share, near 1: every later addition is small against the sum),
    and when the terms are nearly equal, as the squares summed by RMSNorm are when the mean
    dwarfs the spread (``centered=False``: all ``n``). Squared deviations from the mean are
    not nearly equal, but where many values are the same (``repeated``, the share of the
    group equal to a value rows repeat: ReLU's zeros, a mask's levels, padding), so are
    their squared deviations (and a Welford's updates): the same addend loses the same bits
    at every step while the running sum stays in one binade, up to its whole bound, so each
    such step counts ``G_SEQ_ALIKE / G_SEQ`` times. A textbook sequential two-pass in float32
    over ReLU outputs of N(0, 1) errs by about 0.05 n v in rstd (``v`` the accumulation
    dtype's unit roundoff; 1.9e-4 at 65,536 values); over a row whose last quarter is zeros
    by up to 0.08 n v. Two repeated values round alike or cancel depending on the bits of
    their squares below the sum's last place, which a kernel's own mean moves: all count. So
    for centred ops ``max(n * peak, n * repeated * G_SEQ_ALIKE / G_SEQ, sqrt(n))``."""
    with np.errstate(all="ignore"):
        if not centered:
            return np.asarray(np.broadcast_to(float(n), np.shape(peak)), dtype=np.float64)
        alike = np.maximum(np.asarray(peak, np.float64), np.multiply(repeated, G_SEQ_ALIKE / G_SEQ))
        return np.asarray(np.maximum(n * alike, math.sqrt(max(n, 1))))
