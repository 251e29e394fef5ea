"""Where lncheck's time goes, by stage, for LayerNorm, GroupNorm and BatchNorm from 1M to 64M
elements: a table to compare from one version to the next (a regression shows in its stage).

    python benchmarks/bench_trend.py               # about a minute
    python benchmarks/bench_trend.py --sizes 1 4   # millions of elements

Inputs are float32 (N, 64, 32, 32) files in benchmarks/out/, written once. Stages: load (read
or memory-map the file), reference (float64 statistics, and each block's figures shared by
every candidate), backend (every torch path), compare (each candidate's metrics and structural
check). The reference output blocks are built on a second thread together with the structural
check (``lncheck.overlap``): the time the main thread waits for them counts as compare.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"
OPS = {
    "layer_norm": {"op": "layer_norm", "normalized_shape": (32, 32)},
    "group_norm": {"op": "group_norm", "groups": 8},
    "batch_norm": {"op": "batch_norm"},
}


def make_input(millions: int) -> Path:
    n = millions * (1 << 20) // (64 * 32 * 32)
    path = OUT / f"trend_{n}x64x32x32.npy"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 64, 32, 32))
        rng = np.random.default_rng(0)
        for i in range(0, n, 16):
            data[i : i + 16] = rng.normal(3.0, 2.0, size=data[i : i + 16].shape).astype(np.float32)
        data.flush()
        del data
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 4, 16, 64], help="millions of elements"
    )
    args = parser.parse_args()
    import torch  # imported once, outside the timings

    from lncheck.loading import load
    from lncheck.options import parse
    from lncheck.pipeline import check_case

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'op':12s} {'size':>6s} {'load':>7s} {'reference':>10s} {'backend':>7s} "
        f"{'compare':>8s} {'total':>7s}  verdict"
    )
    for millions in args.sizes:
        path = make_input(millions)
        for op, options in OPS.items():
            start = time.perf_counter()
            case = load(parse(options, "api"), str(path))
            loaded = time.perf_counter()
            timings: dict[str, float] = {}
            report = check_case(case, timings=timings)
            total = time.perf_counter() - start
            print(
                f"{op:12s} {millions:5d}M {loaded - start:7.3f} "
                f"{timings.get('reference', 0):10.3f} "
                f"{timings.get('backend', 0):7.3f} {timings.get('compare', 0):8.3f} {total:7.3f}  "
                f"{'pass' if report.passed else 'FAIL'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
