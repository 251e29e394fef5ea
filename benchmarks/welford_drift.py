"""How far a sequential float32 Welford's variance drifts, against the sequential class's limit.

A sequential Welford (one thread per row) errs in its variance beyond the square of its final
mean error ``t`` (in std; ``t**2`` is covered by the observed shift, ``OutputModel.limits``):
its M2 is a running sum of ``n`` positive terms, and it is taken about a running mean that
rounds at ``v K`` std per update (``K = |mean| / std``). On data in random order those roundings
cancel; on ordered data (a trend, a smooth signal) the mean's updates lean one way, it lags,
and M2 grows by far more. ``lncheck.tolerances`` allows the sequential class ``G_DRIFT min(n v,
1) K`` of the scale for it (at most ``G_DRIFT``), besides its terms for any sum, or less where
the data's order shows no trend: ``G_TREND min(n v, 1) K T + G_WALK sqrt(n) v``, ``T`` the
group's ``trend_of``.

This prints, per order of the data, group size ``n`` and conditioning ``K``, the row whose
relative variance error beyond ``t**2`` comes nearest twice the class's limit on the scale for
it (the variance's share): its trend, excess, limit, their ratio, and the ratio to the limit
without the trend. Below 1, a correct sequential Welford on such data is not ``sequential``
but ``low_precision``. Orders: random, a random walk (smooth), sorted, random plus a tenth of
a random walk (mixed), 16 blocks of different means, a sine of three periods (periodic).

``--levels``: float16 data far from their mean (``K`` from 1e3 to 1e5) whose spread covers only
a few float16 values, summed in float32 by a sequential and an Apex-style strided Welford (32
lanes): most values sit on one level, and the running mean's updates by them are lost. The
limit there is ``sequential.drift_cap``'s ``sqrt(v K)`` for groups of at most ``FEW_LEVELS``
values, ``G_DRIFT`` beyond.

    python benchmarks/welford_drift.py [--rows 16] [--seed 0]   # a few minutes
    python benchmarks/welford_drift.py --levels                 # about a minute
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.verdict_matrix.algorithms import sequential_welford, strided_welford
from lncheck.dtypes import representable_between
from lncheck.sequential import sequential_drift, trend_of
from lncheck.tolerances import FEW_LEVELS, allowance

SIZES = (1_000, 4_096, 16_384, 65_536, 262_144)
CONDITIONING = (1.0, 30.0, 300.0, 1e3, 1e4)
ORDERS = ("random", "smooth", "sorted", "mixed", "blocks", "periodic")


def rows_of(order: str, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` rows of ``n`` values with mean 0 and std 1: normal in random order, a random walk
    (smooth, like an image row), normal sorted ascending, random order plus a tenth of a
    random walk (mixed), plus 16 blocks of different means (channels of a GroupNorm group), or
    plus a sine of three periods (periodic)."""
    x = rng.standard_normal((rows, n))
    if order == "smooth":
        x = np.cumsum(x, axis=1)
    elif order == "sorted":
        x = np.sort(x, axis=1)
    elif order == "mixed":
        walk = np.cumsum(rng.standard_normal((rows, n)), axis=1)
        x += 0.1 * (walk - walk.mean(axis=1, keepdims=True)) / walk.std(axis=1, keepdims=True)
    elif order == "blocks":
        x += 0.3 * np.repeat(rng.standard_normal((rows, 16)), -(-n // 16), axis=1)[:, :n]
    elif order == "periodic":
        x += 0.5 * np.sin(np.linspace(0.0, 6 * np.pi, n))[None]
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def excess(x32: np.ndarray, welford=sequential_welford) -> float:  # type: ignore[no-untyped-def]
    """The largest ``|var / exact - 1| - t**2`` of a float32 Welford over the rows."""
    return float(np.max(excesses(x32, welford)))


def excesses(x32: np.ndarray, welford=sequential_welford) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per row, ``|var / exact - 1| - t**2`` of a float32 Welford (NaN on a constant row)."""
    exact = x32.astype(np.float64)
    mean = exact.mean(axis=1, keepdims=True)
    var = ((exact - mean) ** 2).mean(axis=1, keepdims=True)
    var[var == 0] = np.nan
    got_mean, got_var = welford(x32)
    t = (got_mean.astype(np.float64) - mean) / np.sqrt(var)
    return (np.abs(got_var.astype(np.float64) / var - 1.0) - t * t)[:, 0]


def limit(
    n: int, kappa: float, dtype: str = "float32", few: bool = False, trend: float | None = None
) -> float:
    """Twice the sequential class's limit on the scale of a group without outlier (the share
    of the variance), as ``OutputModel.limits`` has it before any observed shift; ``few``: the
    group has at most ``FEW_LEVELS`` values; ``trend``: its ``sequential.trend_of``, applied
    whatever ``n v K`` and the data's levels (lncheck looks at it only where ``n v K <=
    TREND_REACH`` and the data take ``TREND_LEVELS`` values or more, and keeps the wider
    order-blind limit elsewhere: this limit is never wider than lncheck's)."""
    c = allowance(dtype, n, "sequential")
    k = np.asarray([1.0 + kappa])
    known = None if trend is None else np.asarray([trend])
    drifted = float(sequential_drift(c, dtype, k, np.asarray([few]), known)[0])
    return 2.0 * (c.scale * k[0] + c.scale_const + c.sequential * max(n**0.5, 1.0) + drifted)


def trends(x32: np.ndarray) -> np.ndarray:
    """Per row, ``sequential.trend_of`` of its normalized values."""
    x = x32.astype(np.float64)
    std = x.std(axis=1, keepdims=True)
    return trend_of((x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0))


def quantized(
    rows: int, n: int, mean: float, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """``rows`` rows of float16 values: normal with std ``spread`` float16 steps at ``mean``."""
    step = float(np.spacing(np.float16(mean)))
    return (mean + spread * step * rng.standard_normal((rows, n))).astype(np.float16)


def levels_table(rows: int, seed: int) -> None:
    """Per float16 mean, spread and group size, the row whose excess comes nearest its limit."""
    print(f"{'mean':>6} {'spread':>6} {'n':>7} {'levels':>6} {'K':>8} {'sequential':>10} "
          f"{'strided':>10} {'limit':>10} {'ratio':>8}")  # fmt: skip
    worst = {True: np.inf, False: np.inf}
    for mean in (1e3, 1e4, 3e4):
        for spread in (0.15, 0.2, 0.3, 0.5, 1.0):
            for n in (4_096, 65_536):
                rng = np.random.default_rng([seed, int(mean), int(100 * spread), n])
                x32 = quantized(rows, n, mean, spread, rng).astype(np.float32)
                exact = x32.astype(np.float64)
                with np.errstate(divide="ignore"):
                    kappa = np.abs(exact.mean(axis=1)) / exact.std(axis=1)
                low, high = exact.min(axis=1), exact.max(axis=1)
                levels = representable_between(low, high, "float16")
                sequential, strided = excesses(x32), excesses(x32, strided_welford)
                few = levels <= FEW_LEVELS
                allowed = np.array(
                    [limit(n, k, "float16", f) for k, f in zip(kappa, few, strict=True)]
                )
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = allowed / np.fmax(sequential, strided)
                if np.all(np.isnan(ratio)):  # every row constant
                    continue
                r = int(np.nanargmin(ratio))
                worst[bool(few[r])] = min(worst[bool(few[r])], ratio[r])
                print(f"{mean:>6g} {spread:>6g} {n:>7d} {levels[r]:>6g} {kappa[r]:>8.3g} "
                      f"{sequential[r]:>10.3g} {strided[r]:>10.3g} {allowed[r]:>10.3g} "
                      f"{ratio[r]:>8.3g}")  # fmt: skip
    print(
        f"at most {FEW_LEVELS} levels: the limit is at least {worst[True]:.3g}x the largest "
        f"excess; more levels: {worst[False]:.3g}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", action="store_true", help="float16 data at a few levels")
    args = parser.parse_args()
    if args.levels:
        levels_table(args.rows, args.seed)
        return
    print(f"{'order':>8} {'n':>7} {'K':>6} {'n v K':>8} {'trend':>8} {'excess':>10} "
          f"{'limit':>10} {'ratio':>8} {'old':>8}")  # fmt: skip
    for order in ORDERS:
        worst = old_worst = np.inf
        for n in SIZES:
            for kappa in CONDITIONING:
                rng = np.random.default_rng([args.seed, n, int(kappa), ORDERS.index(order)])
                x32 = (rows_of(order, args.rows, n, rng) + kappa).astype(np.float32)
                found, trend = excesses(x32), trends(x32)
                allowed = np.array([limit(n, kappa, trend=t) for t in trend])
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios = np.where(found > 0, allowed / found, np.inf)
                r = int(np.nanargmin(ratios))
                # the limit without the trend: G_DRIFT's, whatever the order
                old = limit(n, kappa) / found[r] if found[r] > 0 else np.inf
                worst, old_worst = min(worst, ratios[r]), min(old_worst, old)
                print(f"{order:>8} {n:>7} {kappa:>6g} {n * 2.0**-24 * kappa:>8.3g} "
                      f"{trend[r]:>8.3g} {found[r]:>10.3g} {allowed[r]:>10.3g} "
                      f"{ratios[r]:>8.3g} {old:>8.3g}")  # fmt: skip
        print(f"{order}: the limit is at least {worst:.3g}x the largest excess "
              f"(without the trend: {old_worst:.3g}x)")  # fmt: skip


if __name__ == "__main__":
    main()
