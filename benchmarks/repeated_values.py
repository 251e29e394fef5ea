"""Textbook sequential float32 LayerNorms (one thread per row: two-pass, Welford; and an
Apex-style Welford over 32 strided lanes) on data whose values repeat (ReLU's zeros, masks' two
levels, a clamp's bounds, zeros padded at the end or the start of a row or dropped out inside
it) or whose order trends (a ramp, as ``torch.arange`` or ``linspace`` make; sorted values),
and on data that does neither (SiLU): lncheck's class and tolerance_used for each
(``sequential.sequential_steps``, ``sequential.sequential_drift``).

    python benchmarks/repeated_values.py              # about five minutes
    python benchmarks/repeated_values.py --seeds 4 --rows 8 --kinds ramp pad_end

A correct kernel is ``sequential`` (or ``accurate``) with tolerance_used below 1: the last
line counts those that are not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lncheck
from benchmarks.verdict_matrix.algorithms import (
    sequential_sum,
    sequential_welford,
    strided_welford,
    two_pass,
)

KERNELS = {
    "two_pass": lambda a: two_pass(a, sequential_sum),
    "welford": sequential_welford,
    "strided": strided_welford,
}
KINDS = ("relu", "mask", "mask5", "clip", "silu", "pad_end", "pad_start", "dropout", "ramp",
         "ramp3", "arange", "sorted")  # fmt: skip
SIZES = (768, 4096, 16384, 65536, 262144)


def data(kind: str, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` x ``n`` float32 values: ReLU or SiLU of N(0, 1), N(0, 2) clamped at +-0.7, a
    mask of 0.2 (p = 0.3, or 0.5 for "mask5") and 0.9; N(0, 1) whose last or first quarter is
    zeros (padding) or a tenth of them at random (dropout); ``linspace(-1, 1)`` plus a random
    offset in [0, 0.5) ("ramp") or in [3, 3.5) ("ramp3"); ``arange(n)``; sorted N(0, 1)."""
    z = rng.standard_normal((rows, n)).astype(np.float32)
    quarter = n // 4
    if kind == "relu":
        return np.maximum(z, np.float32(0))
    if kind in ("mask", "mask5"):
        p = 0.3 if kind == "mask" else 0.5
        return np.where(rng.random((rows, n)) < p, 0.2, 0.9).astype(np.float32)
    if kind == "clip":
        return np.clip(2 * z, np.float32(-0.7), np.float32(0.7))
    if kind == "pad_end":
        z[:, n - quarter :] = 0
        return z
    if kind == "pad_start":
        z[:, :quarter] = 0
        return z
    if kind == "dropout":
        return np.where(rng.random((rows, n)) < 0.1, np.float32(0), z)
    if kind in ("ramp", "ramp3"):
        offset = rng.random((rows, 1)) * 0.5 + (3.0 if kind == "ramp3" else 0.0)
        return (np.linspace(-1.0, 1.0, n)[None] + offset).astype(np.float32)
    if kind == "arange":
        return np.broadcast_to(np.arange(n, dtype=np.float32), (rows, n)).copy()
    if kind == "sorted":
        return np.sort(z, axis=1)
    return torch.nn.functional.silu(torch.from_numpy(z)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    args = parser.parse_args()
    print(f"{'data':9s} {'n':>7s} seed kernel    class         tolerance_used  rstd off")
    failed = 0
    for kind in args.kinds:
        worst = 0.0
        for n in args.sizes:
            for seed in range(args.seeds):
                x = data(kind, args.rows, n, np.random.default_rng(seed))
                for name, statistics in KERNELS.items():
                    mean, var = statistics(x)
                    y = (x - mean) / np.sqrt(var + np.float32(1e-5))
                    report = lncheck.compare(
                        x, "layer_norm", normalized_shape=n, expected=y, backend=None
                    )
                    (c,) = [c for c in report.checks if c.quantity == "output"]
                    failed += not c.passed
                    worst = max(worst, c.tolerance_used)
                    print(
                        f"{kind:9s} {n:7d} {seed:4d} {name:9s} {c.accuracy_class:13s} "
                        f"{c.tolerance_used:14.3f} {(c.implied_scale or 1.0) - 1.0:+9.2e}",
                        flush=True,
                    )
        print(f"{kind}: tolerance_used at most {worst:.3f}", flush=True)
    print(f"{failed} correct kernels failed")


if __name__ == "__main__":
    main()
