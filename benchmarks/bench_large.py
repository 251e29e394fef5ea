"""lncheck against the plain script a user would write, on a 64M-element float32 LayerNorm.

    python benchmarks/bench_large.py            # 5 interleaved runs of each
    python benchmarks/bench_large.py --runs 3 --rows 16384
    python benchmarks/bench_large.py --against ../old   # also an older checkout, interleaved

Both run as fresh processes on the same .npy file (65536 x 1024 float32, 256 MB, written to
benchmarks/out/ once); wall time and peak RSS (from wait4) are measured per run, and the
medians and their ratios printed. The plain script loads with NumPy, runs torch's LayerNorm,
computes the float64 reference (x - mean) / sqrt(var + eps) and prints the max abs difference;
lncheck runs `compare --shape 1024 --json`, which also checks two more torch paths and the
statistics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"

PLAIN = """
import sys
import numpy as np
import torch
import torch.nn.functional as F

x = np.load(sys.argv[1])
y = F.layer_norm(torch.from_numpy(x), (x.shape[-1],), eps=1e-5).numpy()
x64 = x.astype(np.float64)
mean = x64.mean(axis=-1, keepdims=True)
var = x64.var(axis=-1, keepdims=True)
ref = (x64 - mean) / np.sqrt(var + 1e-5)
print(np.abs(y - ref).max())
"""


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


GENERATE = """
import sys
import numpy as np
path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
for start in range(0, rows, 4096):
    n = min(4096, rows - start)
    data[start : start + n] = rng.standard_normal((n, cols), dtype=np.float32)
data.flush()
"""


def make_input(rows: int, cols: int) -> Path:
    """The input file, written once by a separate process: a child forked from a process that
    has just written gigabytes would count that memory in its own peak RSS."""
    path = OUT / f"ln_{rows}x{cols}.npy"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-c", GENERATE, str(path), str(rows), str(cols)], check=True
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--cols", type=int, default=1024)
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also time the lncheck in DIR (a checkout of another version: git worktree add)",
    )
    args = parser.parse_args()
    path = make_input(args.rows, args.cols)
    lncheck = shutil.which("lncheck") or sys.exit("lncheck is not installed")
    commands = {
        "plain script": [sys.executable, "-c", PLAIN, str(path)],
        "lncheck": [lncheck, "compare", str(path), "--shape", str(args.cols), "--json"],
    }
    envs: dict[str, dict[str, str] | None] = dict.fromkeys(commands)
    if args.against:
        other = f"lncheck@{Path(args.against).name}"
        # -P: not the current directory's lncheck, the one PYTHONPATH names
        commands[other] = [sys.executable, "-P", "-m", "lncheck", *commands["lncheck"][1:]]
        envs[other] = {**os.environ, "PYTHONPATH": str(Path(args.against).resolve())}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for run in range(args.runs):
        for name, cmd in commands.items():  # interleaved, so drift in the machine hits both
            results[name].append(measure(cmd, envs[name]))
            wall, rss = results[name][-1]
            print(f"run {run + 1}: {name:13s} {wall:6.2f} s {rss:8.0f} MiB", flush=True)
    medians = {
        n: (statistics.median(w for w, _ in r), statistics.median(m for _, m in r))
        for n, r in results.items()
    }
    size = f"{args.rows * args.cols / 1e6:.0f}M elements"
    print(f"\n{args.rows} x {args.cols} float32 ({size}), medians of {args.runs}:")
    for name, (wall, rss) in medians.items():
        print(f"  {name:13s} {wall:6.2f} s {rss:8.0f} MiB")
    (pw, pr) = medians["plain script"]
    for name, (lw, lr) in medians.items():
        if name != "plain script":
            print(f"  {name} / plain script: wall {lw / pw:.2f}x, peak RSS {lr / pr:.2f}x")


if __name__ == "__main__":
    main()
