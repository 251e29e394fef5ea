"""One measurement on a 1-billion-element float32 input (4 GiB on disk): wall time and peak RSS.

    python benchmarks/bench_billion.py            # writes benchmarks/out/ln_1048576x1024.npy
    python benchmarks/bench_billion.py --rows 4096   # a quick run of the same measurement

Not part of CI: it needs ~5 GiB of disk and a few minutes. The target is a peak RSS under
6 GiB; lncheck checks the input chunk by chunk and hands each chunk's pages back after use.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bench_large import make_input, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1 << 20, help="rows of 1024 float32 values")
    rows = parser.parse_args().rows
    path = make_input(rows, 1024)
    lncheck = shutil.which("lncheck") or sys.exit("lncheck is not installed")
    wall, rss = measure([lncheck, "compare", str(path), "--shape", "1024", "--json"])
    size = (
        f"{rows} x 1024 float32 ({rows * 1024 / 1e9:.3g}G elements, {rows * 4096 / 2**30:.3g} GiB)"
    )
    print(f"{size}: {wall:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
