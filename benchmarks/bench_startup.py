"""Start-up: `lncheck --help` against `python -c "import torch"`, interleaved, medians.

    python benchmarks/bench_startup.py [--runs 7]

Target: lncheck --help in at most a quarter of the time torch takes to import.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys

from bench_large import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    lncheck = shutil.which("lncheck") or sys.exit("lncheck is not installed")
    commands = {
        "lncheck --help": [lncheck, "--help"],
        "lncheck --version": [lncheck, "--version"],
        "lncheck ops": [lncheck, "ops"],
        "import torch": [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(measure(cmd)[0])
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in medians.items():
        print(f"{name:18s} {t:6.3f} s (median of {args.runs})")
    print(
        f"lncheck --help / import torch: {medians['lncheck --help'] / medians['import torch']:.2f}x"
    )


if __name__ == "__main__":
    main()
