"""How long ``lncheck explain`` takes to search a (32, 128, 768) float32 input.

    python benchmarks/bench_explain.py            # median of 3 full searches
    python benchmarks/bench_explain.py --runs 5 --shape 8 512 1024
    python benchmarks/bench_explain.py --unexplained   # tanh of that output: nothing explains

The output is a LayerNorm over the last dim with eps=1e-6 and a given weight and bias, rounded
to float32, so the search scores every structure (all axis sets, BatchNorm, InstanceNorm and
GroupNorm on both channel axes) with every affine map before replaying the survivors on every
element. Issue 12's target is under 10 s on a 2-core machine. With ``--unexplained`` the
output is passed through tanh, which no normalization reproduces: the worst case, where every
stage runs and the nearest misses are replayed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lncheck.explain import explain


def problem(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 2.0, size=shape).astype(np.float32)
    weight = rng.normal(1.0, 0.1, size=shape[-1]).astype(np.float32)
    bias = rng.normal(0.0, 0.1, size=shape[-1]).astype(np.float32)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = x64.var(axis=-1, keepdims=True)
    y = ((x64 - mean) / np.sqrt(var + 1e-6) * weight + bias).astype(np.float32)
    return x, y, weight, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 128, 768])
    parser.add_argument("--unexplained", action="store_true", help="tanh of the output")
    args = parser.parse_args()
    x, y, weight, bias = problem(tuple(args.shape))
    if args.unexplained:
        y = np.tanh(y)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = explain(x, y, weight=weight, bias=bias)
        times.append(time.perf_counter() - start)
    best = report.best
    assert best is not None and best.explains != args.unexplained, "not the expected verdict"
    print(f"input {tuple(args.shape)} float32: {report.hypotheses} hypotheses scored")
    print(f"best: {best.description} ({best.verdict}, {best.rounding_ratio:.2g}x the rounding)")
    print(f"runs: {', '.join(f'{t:.2f}' for t in times)} s")
    print(f"median: {statistics.median(times):.2f} s (target: under 10 s)")


if __name__ == "__main__":
    main()
