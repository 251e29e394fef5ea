"""How lncheck classes LayerNorms that accumulate in float16/bfloat16: where "the right
function, statistics summed in the compute dtype" (``low_precision``) ends and no correct digit
is left (``mismatch``, ``output_model.LOW_REACH`` and ``tolerances.low_precision_floor``).

    python benchmarks/low_precision_accumulation.py            # about half a minute
    python benchmarks/low_precision_accumulation.py --rows 16

Each kernel keeps its sums in the input dtype: each of T threads sums every T-th value one
after the other, then a tree sums the threads' totals (a GPU block reduction with
half-precision accumulators); mean, variance, rstd and every element-wise step round to the
dtype. Rows are N(mean, 1), rounded to the dtype. Printed per kernel: lncheck's class, its
tolerance_used, and the worst group's implied rstd and mean errors.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import lncheck

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def accumulated_layer_norm(x: torch.Tensor, threads: int, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last axis of ``x`` (rows, n) with accumulators of ``x``'s dtype:
    thread ``t`` of ``threads`` sums ``x[:, t::threads]`` in order, then a tree sums the
    totals (``n`` a multiple of ``threads``, which is a power of two)."""

    def total(v: torch.Tensor) -> torch.Tensor:
        running = torch.zeros(v.shape[0], threads, dtype=v.dtype)
        for step in v.reshape(v.shape[0], -1, threads).unbind(1):
            running = running + step
        while running.shape[1] > 1:
            running = running[:, 0::2] + running[:, 1::2]
        return running[:, 0]

    n = x.shape[-1]
    mean = total(x) / n
    d = x - mean[:, None]
    return d * torch.rsqrt(total(d * d) / n + eps)[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()
    print(f"{'dtype':9s} {'n':>6s} {'mean/std':>8s} {'threads':>7s}  class          "
          f"{'tol_used':>9s} {'rstd off':>9s} {'mean off':>9s}")  # fmt: skip
    for name, dtype in DTYPES.items():
        for n in (1024, 16384, 65536):
            for mean in (0.0, 3.0, 30.0):
                for threads in (32, 256, 1024):
                    rng = np.random.default_rng(n + int(mean) + threads)
                    x = torch.from_numpy(mean + rng.standard_normal((args.rows, n))).to(dtype)
                    y = accumulated_layer_norm(x, threads)
                    report = lncheck.compare(
                        x, "layer_norm", normalized_shape=n, dtype=name, expected=y, backend=None
                    )
                    (c,) = [c for c in report.checks if c.quantity == "output"]
                    rstd = (c.implied_scale or 1.0) - 1.0
                    shift = c.implied_shift or 0.0
                    print(
                        f"{name:9s} {n:6d} {mean:8g} {threads:7d}  {c.accuracy_class:14s} "
                        f"{c.tolerance_used:9.3g} {rstd:+9.2%} {shift:+9.3f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
