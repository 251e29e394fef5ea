"""How far torch's CPU kernels that fold scale and shift move a constant group's output.

On a group whose values are all equal the exact output is the bias, and every algorithm has
the exact mean and a zero variance; a kernel computing ``y = x * a + (b - mean * a)`` with
``a = rstd * w`` rounds ``mean * a`` once, by up to ``v * K * |w|`` (``v`` float32's unit
roundoff, ``K = 1 + |mean| * rstd``). ``lncheck/caps.py`` admits exactly that on such groups.
This prints, per op and dtype, the largest ``|y - b| / (v * K * |w|)`` over random constant
groups (sizes 2 to 63, values 1e-3 to 1e4, eps 1e-12 to 1e-3): README quotes the maximum.

    python benchmarks/folded_constant_rows.py [--trials 3000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

V = 2.0**-24  # float32's unit roundoff: torch folds in float32 for every dtype here


def worst_ratios(trials: int, seed: int) -> dict[tuple[str, str], float]:
    rng = np.random.default_rng(seed)
    worst: dict[tuple[str, str], float] = {}
    for _ in range(trials):
        n = int(rng.integers(2, 64))
        value = float(np.float32(rng.standard_normal() * 10 ** rng.uniform(-3, 4)))
        eps = float(10 ** rng.uniform(-12, -3))
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            c = torch.tensor(value).to(dtype).double().item()
            x = torch.full((1, 2, n), c, dtype=torch.float64).to(dtype)
            w = torch.from_numpy(rng.uniform(0.5, 2.0, 2)).to(dtype)
            k = 1 + abs(c) / np.sqrt(eps)
            outputs = {
                "group_norm": F.group_norm(x, 2, w, torch.zeros_like(w), eps),
                "instance_norm": F.instance_norm(x, eps=eps),
                "batch_norm": F.batch_norm(x, None, None, w, torch.zeros_like(w), True, 0.1, eps),
                "layer_norm": F.layer_norm(x, (n,), eps=eps),
            }
            for op, y in outputs.items():
                big_w = float(w.double().abs().max()) if op in ("group_norm", "batch_norm") else 1
                ratio = float(y.double().abs().max()) / (V * k * big_w)
                key = (op, str(dtype).removeprefix("torch."))
                worst[key] = max(worst.get(key, 0.0), ratio)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    worst = worst_ratios(args.trials, args.seed)
    for (op, dtype), ratio in sorted(worst.items()):
        print(f"{op:<14} {dtype:<9} max |y - b| / (v K |w|) = {ratio:.3f}")
    print(f"all: {max(worst.values()):.3f} (lncheck admits 1)")


if __name__ == "__main__":
    main()
