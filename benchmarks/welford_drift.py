"""How far a sequential float32 Welford's variance drifts, against the sequential class's limit.

A sequential Welford (one thread per row) errs in its variance beyond the square of its final
mean error ``t`` (in std; ``t**2`` is covered by the observed shift, ``OutputModel.limits``):
its M2 is a running sum of ``n`` positive terms, and it is taken about a running mean that
rounds at ``v K`` std per update (``K = |mean| / std``). On data in random order those roundings
cancel; on ordered data (a trend, a smooth signal) the mean's updates lean one way, it lags,
and M2 grows by far more. ``lncheck.tolerances`` allows the sequential class ``G_DRIFT min(n v,
1) K`` of the scale for it (at most ``G_DRIFT``), besides its terms for any sum.

This prints, per order of the data, group size ``n`` and conditioning ``K``, the largest
relative variance error beyond ``t**2`` over a few rows, twice the class's limit on the scale
for such a group (the variance's share), and their ratio: below 1, a correct sequential Welford
on such data is not ``sequential`` but ``low_precision``.

    python benchmarks/welford_drift.py [--rows 16] [--seed 0]   # about a minute
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.verdict_matrix.algorithms import sequential_welford  # noqa: E402
from lncheck.tolerances import G_DRIFT, allowance  # noqa: E402

SIZES = (1_000, 4_096, 16_384, 65_536)
CONDITIONING = (1.0, 30.0, 300.0, 1e3, 1e4)
ORDERS = ("random", "smooth", "sorted")


def rows_of(order: str, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` rows of ``n`` values with mean 0 and std 1: normal in random order, a random walk
    (smooth, like an image row), or normal sorted ascending."""
    x = rng.standard_normal((rows, n))
    if order == "smooth":
        x = np.cumsum(x, axis=1)
    elif order == "sorted":
        x = np.sort(x, axis=1)
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def excess(x32: np.ndarray) -> float:
    """The largest ``|var / exact - 1| - t**2`` of a float32 sequential Welford over the rows."""
    exact = x32.astype(np.float64)
    mean = exact.mean(axis=1, keepdims=True)
    var = ((exact - mean) ** 2).mean(axis=1, keepdims=True)
    got_mean, got_var = sequential_welford(x32)
    t = (got_mean.astype(np.float64) - mean) / np.sqrt(var)
    return float(np.max(np.abs(got_var.astype(np.float64) / var - 1.0) - t * t))


def limit(n: int, kappa: float) -> float:
    """Twice the sequential class's limit on the scale of a group without outlier (the share
    of the variance), as ``OutputModel.limits`` has it before any observed shift."""
    c = allowance("float32", n, "sequential")
    k = 1.0 + kappa
    drifted = min(c.drift * k, G_DRIFT)
    return 2.0 * (c.scale * k + c.scale_const + c.sequential * max(n**0.5, 1.0) + drifted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'order':>7} {'n':>7} {'K':>6} {'n v K':>8} {'excess':>10} {'limit':>10} {'ratio':>8}")
    for order in ORDERS:
        worst = np.inf
        for n in SIZES:
            for kappa in CONDITIONING:
                rng = np.random.default_rng([args.seed, n, int(kappa)])
                x32 = (rows_of(order, args.rows, n, rng) + kappa).astype(np.float32)
                found, allowed = excess(x32), limit(n, kappa)
                ratio = allowed / found if found > 0 else np.inf
                worst = min(worst, ratio)
                print(f"{order:>7} {n:>7} {kappa:>6g} {n * 2.0**-24 * kappa:>8.3g} "
                      f"{found:>10.3g} {allowed:>10.3g} {ratio:>8.3g}")  # fmt: skip
        print(f"{order}: the limit is at least {worst:.3g}x the largest excess")


if __name__ == "__main__":
    main()
