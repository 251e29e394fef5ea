"""torch's CPU kernels on groups whose values are all equal and whose sums round: every
output check that fails, by cause, and the largest ``tolerance_used`` of those that pass.

On such a group a kernel's mean may be off by ``d``: one that computes its variance about that
mean (two-pass) gets ``d**2`` and ``|y - b| / |w| = |d| / sqrt(d**2 + eps) < 1``, one whose
variance comes from a reduction apart (``x.var()``'s Welford: exactly 0) gets ``|d| / sqrt(eps)``,
and is as correct: the structural limit cannot be ``1`` there (``tests/test_caps.py``). Values
have full float32 mantissas (so that ``n * x`` rounds), groups are 1,000 and 70,000 values
(LayerNorm rows, GroupNorm groups of two channels, BatchNorm and InstanceNorm channels), eps
1e-3 to 1e-12, with and without a random weight and bias.

    python benchmarks/constant_groups.py        # about 40 seconds

Measured (torch 2.13 CPU): the only failures are float16 BatchNorm and InstanceNorm at eps =
1e-12, whose rstd (1e6) torch keeps in float16: NaN outputs, ``low_precision`` with that
cause (``verdicts.lost_to_rstd``).
"""

from __future__ import annotations

import itertools
import re

import numpy as np

import lncheck

OPS = ("layer_norm", "group_norm", "batch_norm", "instance_norm")
DTYPES = ("float32", "float16", "bfloat16")
VALUES = (1000.1, 3.3, -77.77, 0.1)
SIZES = (1000, 70_000)
EPS = (1e-3, 1e-5, 1e-12)


def constant_input(op: str, value: float, n: int) -> tuple[np.ndarray, dict[str, object], int]:
    """An input whose groups of ``n`` values are each constant, the layer's options, and the
    parameters' length."""
    if op == "layer_norm":
        return np.full((3, n), value, np.float32), {"normalized_shape": n}, n
    if op == "group_norm":
        x = np.full((2, 4, n // 2), value, np.float32)
        x[:, 2:] *= -0.5
        return x, {"groups": 2}, 4
    x = np.full((2, 3, n // 2), value, np.float32)
    x[:, 1] *= -3.0
    return x, ({"affine": True} if op == "instance_norm" else {}), 3


def main() -> None:
    rng = np.random.default_rng(0)
    worst: dict[tuple[str, str], float] = {}
    failures: dict[str, int] = {}
    for op, dtype, value, n, eps, affine in itertools.product(
        OPS, DTYPES, VALUES, SIZES, EPS, (False, True)
    ):
        x, options, params = constant_input(op, value, n)
        if affine:
            options["weight"] = rng.uniform(-3, 3, params).astype(np.float32)
            options["bias"] = rng.uniform(-2, 2, params).astype(np.float32)
        if op == "instance_norm" and not affine:
            options = {}
        report = lncheck.compare(x, op, eps=eps, dtype=dtype, **options)
        for c in report.checks:
            if c.quantity != "output":
                continue
            if c.passed:  # the limit sets the atol on these groups: tolerance_used is |y - b|'s
                worst[(op, dtype)] = max(worst.get((op, dtype), 0.0), c.tolerance_used)
            else:  # by kind: the first words of why
                why = re.sub(r"^\d+ ", "N ", (c.explanation or "").split(":")[0])
                kind = f"{op} {dtype} eps={eps}: {c.accuracy_class}: {why}"
                failures[kind] = failures.get(kind, 0) + 1
    for (op, dtype), used in sorted(worst.items()):
        print(f"{op:<14} {dtype:<9} largest tolerance_used of torch's passing outputs: {used:.4f}")
    print(f"{sum(failures.values())} output checks failed")
    for kind, count in sorted(failures.items()):
        print(f"  {count:4d} x {kind}")


if __name__ == "__main__":
    main()
