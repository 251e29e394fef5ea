"""Textbook sequential float32 LayerNorms (one thread per row: two-pass, Welford) on data whose
values repeat at an extreme (ReLU's zeros, masks' two levels, a clamp's bounds) and on data
that does not (SiLU): lncheck's class and tolerance_used for each
(``sequential.sequential_steps``).

    python benchmarks/repeated_values.py              # about two minutes
    python benchmarks/repeated_values.py --seeds 4 --rows 8

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
    two_pass,
)

KERNELS = {
    "two_pass": lambda a: two_pass(a, sequential_sum),
    "welford": sequential_welford,
}


def data(kind: str, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` x ``n`` float32 values: ReLU or SiLU of N(0, 1), N(0, 2) clamped at +-0.7, or
    a mask of 0.2 (p = 0.3, or 0.5 for "mask5") and 0.9."""
    z = rng.standard_normal((rows, n)).astype(np.float32)
    if kind == "relu":
        return np.maximum(z, np.float32(0))
    if kind in ("mask", "mask5"):
        p = 0.3 if kind == "mask" else 0.5
        return np.where(rng.random((rows, n)) < p, 0.2, 0.9).astype(np.float32)
    if kind == "clip":
        return np.clip(2 * z, np.float32(-0.7), np.float32(0.7))
    return torch.nn.functional.silu(torch.from_numpy(z)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()
    print(f"{'data':5s} {'n':>7s} seed kernel    class         tolerance_used  rstd off")
    failed = 0
    for kind in ("relu", "mask", "mask5", "clip", "silu"):
        for n in (16384, 65536, 262144):
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
                    print(
                        f"{kind:5s} {n:7d} {seed:4d} {name:9s} {c.accuracy_class:13s} "
                        f"{c.tolerance_used:14.3f} {(c.implied_scale or 1.0) - 1.0:+9.2e}",
                        flush=True,
                    )
    print(f"{failed} correct kernels failed")


if __name__ == "__main__":
    main()
