"""The accuracy matrix of lncheck's verdicts: false alarms and misses per dtype and class.

Correct implementations (torch's CPU kernels, two-pass, pairwise, Kahan, tree Welford,
sequential Welford, Apex-style strided Welford, fused BatchNorm-eval scale/shift) must pass;
bugs whose error is more than 10x every correct implementation's must fail (a bug that changes
the semantics must not be classed ``low_precision``). Every row goes to ``--out`` as JSONL.

    python benchmarks/verdict_matrix.py [--quick] [--seed 0] [--jobs 2] [--out rows.jsonl]
    python benchmarks/verdict_matrix.py [--quick] --only c0042[/eps_1e-6] [--dump DIR]
    python benchmarks/verdict_matrix.py --quick --dump DIR   # every miss and false alarm
    python benchmarks/verdict_matrix.py --list               # the implementations and bugs

The default (800 inputs, groups up to 2^20) takes about 2,000 CPU seconds (~20 minutes on 2
cores); --quick (480 inputs, groups up to 2^16) about 450 (~4 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one thread per worker: the workers are the parallelism (set before numpy/torch load)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.verdict_matrix.cases import Config  # noqa: E402
from benchmarks.verdict_matrix.dump import command, dump  # noqa: E402
from benchmarks.verdict_matrix.run import IMPLS, evaluate, run_matrix  # noqa: E402
from benchmarks.verdict_matrix.tally import BAD, render, timing_lines  # noqa: E402

QUICK = {"count": 480, "max_log2": 16.0, "max_elements": 2**18}
FULL = {"count": 800, "max_log2": 20.0, "max_elements": 2**21}


def config_of(args: argparse.Namespace) -> Config:
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    return Config(seed=args.seed, **sizes)


def reproduce_of(args: argparse.Namespace) -> str:
    text = "python benchmarks/verdict_matrix.py" + (" --quick" if args.quick else "")
    text += f" --seed {args.seed}"
    for key in ("max_log2", "max_elements"):
        if getattr(args, key) is not None:
            text += f" --{key.replace('_', '-')} {getattr(args, key)}"
    return text


def only(args: argparse.Namespace, config: Config, ident: str, dump_to: Path | None) -> int:
    case_id, _, impl = ident.partition("/")
    index = int(case_id.lstrip("c"))
    rows, _, inp, outputs = evaluate(config, index, judge_all=bool(impl), keep=lambda _: True)
    if impl:
        rows = [r for r in rows if r["impl"] == impl]
        if not rows:
            print(f"{impl} does not apply to {case_id}", file=sys.stderr)
            return 2
    print(rows[0]["describe"])
    for r in rows:
        tol = "-" if r["tolerance_used"] is None else f"{r['tolerance_used']:.3g}"
        print(f"  {r['id']:<32} {r['outcome']:<11} err {r['err']:.3g} "
              f"(10x correct {10 * r['worst_correct_err']:.3g}) lncheck {r['accuracy_class']} "
              f"tol_used {tol}")  # fmt: skip
    if dump_to is not None:
        chosen = rows if impl else [r for r in rows if r["outcome"] in BAD]
        for r in chosen:
            print(f"  wrote {dump(inp, r, outputs[r['impl']], dump_to, reproduce_of(args))}")
        if not chosen:
            print(f"  nothing to dump (no miss or false alarm); the command: {command(inp)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="480 smaller inputs (about 4 minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, help="number of inputs")
    parser.add_argument("--max-log2", type=float, help="largest group size, as log2")
    parser.add_argument("--max-elements", type=int, help="largest input, in elements")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per CPU)")
    parser.add_argument("--out", type=Path, help="write every row here (JSONL)")
    parser.add_argument("--only", help="run one input (c0042) or one row of it (c0042/kahan)")
    parser.add_argument("--dump", type=Path, help="write misses and false alarms (or the --only"
                        " row) as .npy files and a README with the lncheck command")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the implementations and bugs")
    parser.add_argument("--judge-all", action="store_true",
                        help="also ask lncheck about the bugs left out")  # fmt: skip
    args = parser.parse_args(argv)
    config = config_of(args)
    if args.list:
        for impl in IMPLS:
            print(f"{impl.name:<20} {impl.kind:<8} {impl.label:<10} {impl.description}")
        return 0
    if args.only:
        return only(args, config, args.only, args.dump)
    start = time.perf_counter()
    print(f"{config.count} inputs, seed {config.seed}, groups up to 2^{config.max_log2:g}, "
          f"inputs up to {config.max_elements} elements", flush=True)  # fmt: skip
    rows, seconds = run_matrix(config, args.jobs, judge_all=args.judge_all, progress=True)
    wall = time.perf_counter() - start
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"wrote {len(rows)} rows to {args.out}")
    print(render(rows, reproduce_of(args)))
    print(timing_lines(seconds, wall))
    if args.dump is not None:
        bad_cases = sorted({r["index"] for r in rows if r["outcome"] in BAD})
        for index in bad_cases:
            only(args, config, f"c{index:04d}", args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
