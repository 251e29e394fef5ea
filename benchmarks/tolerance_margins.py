"""How much of the automatic bound correct kernels use, and how far beyond it bugs land.

Runs the mutation suite of tests/test_tolerances.py and prints, over its random LayerNorm
inputs, the largest fraction of the bound any correct implementation uses (torch's CPU kernels
in every dtype, a float32 two-pass, a sequential float32 Welford) and the smallest multiple of
the bound any distinguishable bug (error more than 10x the correct ones') reaches; then the
same two figures on the 100 outputs of torch's H100 kernels in tests/data/cuda-h100.

    python benchmarks/tolerance_margins.py [--inputs 300] [--seed 20261127]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mutants import BUGS, CORRECT, torch_cpu  # noqa: E402
from tests.test_tolerances import (  # noqa: E402
    DATA,
    EPS,
    _cuda_case,
    _cuda_cases,
    _inputs,
    _reference,
    _verdict,
    h100_bug_verdicts,
)


def mutation_margins(count: int, seed: int) -> tuple[float, float, int]:
    import torch

    extra = {d: torch_cpu(getattr(torch, d)) for d in ("float64", "float16", "bfloat16")}
    correct_use, bug_excess, bugs = 0.0, np.inf, 0
    for x, w, b in _inputs(count, seed):
        ref = _reference(x, w, b)
        largest = 0.0
        for impl in CORRECT.values():
            y = impl(x, w, b, EPS).astype(np.float32)
            largest = max(largest, float(np.abs(y - ref).max()))
            correct_use = max(correct_use, _verdict(x, w, b, y).tolerance_used)
        for dtype, impl in extra.items():
            if dtype == "float16" and np.abs(x).max() > 65504:
                continue
            used = _verdict(x, w, b, impl(x, w, b, EPS), dtype=dtype).tolerance_used
            correct_use = max(correct_use, used)
        for impl in BUGS.values():
            y = impl(x, w, b, EPS).astype(np.float32)
            if np.isnan(y).any():
                continue
            if np.abs(y - ref).max() > 10 * largest:
                bugs += 1
                bug_excess = min(bug_excess, _verdict(x, w, b, y).tolerance_used)
    return correct_use, bug_excess, bugs


def h100_margins() -> tuple[float, float]:
    arrays = np.load(DATA / "cuda_outputs.npz", allow_pickle=False)
    correct_use = max(_cuda_case(name, meta, arrays).tolerance_used for name, meta in _cuda_cases())
    bug_excess = min(c.tolerance_used for _, _, c in h100_bug_verdicts(arrays))
    return correct_use, bug_excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    use, excess, bugs = mutation_margins(args.inputs, args.seed)
    print(f"mutation suite ({args.inputs} inputs, seed {args.seed}):")
    print(f"  correct implementations use at most {use:.0%} of the bound")
    print(f"  {bugs} distinguishable bugs exceed it by at least {excess:.2f}x")
    h_use, h_excess = h100_margins()
    print("H100 outputs (tests/data/cuda-h100):")
    print(f"  torch's CUDA kernels use at most {h_use:.0%} of the bound")
    print(f"  distinguishable bugs on its float32 LayerNorm inputs exceed it by {h_excess:.2f}x")


if __name__ == "__main__":
    main()
