"""How far torch's CPU kernels that fold scale and shift move a constant group's output.

On a group whose values are all equal the exact output is the bias, and every algorithm has
the exact mean and a zero variance; a kernel computing ``y = x * a + (b - mean * a)`` with
``a = rstd * w`` computes ``x * a`` and ``mean * a`` as the same product ``P``, so only
``b - P`` rounds, by up to ``v * K * |w|`` (``v`` float32's unit roundoff, ``K = 1 + |mean| *
rstd``), and with an fma also ``P`` itself: at most ``v * K * |w|`` without a bias (``b - P =
-P`` is exact) and twice that with one, which ``lncheck/caps.py`` admits on such groups (on
top of the structural limit ``sqrt(n - 1)``, whatever ``K``). This
prints, per op, dtype and bias, the largest ``|y - b| / (v * K * |w|)`` over random constant
groups (sizes 2 to 63, values 1e-3 to 1e4, eps 1e-12 to 1e-3, weights of 0.5 to 2 in size and
either sign, biases of -2 to 2): README quotes the maximum.

    python benchmarks/folded_constant_rows.py [--trials 3000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

V = 2.0**-24  # float32's unit roundoff: torch folds in float32 for every dtype here
LIMITS = {"no bias": 1.0, "bias": 2.0}  # what lncheck admits beyond the cap, in v K |w|


def outputs(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float
) -> dict[str, torch.Tensor]:
    """Each op's output on ``x`` of shape (1, 2, n): two constant groups, one per channel
    (LayerNorm: one per row of ``n``, whose weight and bias are the channel's repeated)."""
    n = x.shape[-1]
    per_element = w[:, None].expand(2, n), b[:, None].expand(2, n)
    rows = [F.layer_norm(x[:, c], (n,), per_element[0][c], per_element[1][c], eps) for c in (0, 1)]
    return {
        "group_norm": F.group_norm(x, 2, w, b, eps),
        "instance_norm": F.instance_norm(x, weight=w, bias=b, eps=eps),
        "batch_norm": F.batch_norm(x, None, None, w, b, True, 0.1, eps),
        "layer_norm": torch.stack(rows, dim=1),
    }


def worst_ratios(trials: int, seed: int) -> dict[tuple[str, str, str], float]:
    rng = np.random.default_rng(seed)
    worst: dict[tuple[str, str, str], float] = {}
    for _ in range(trials):
        n = int(rng.integers(2, 64))
        value = float(np.float32(rng.standard_normal() * 10 ** rng.uniform(-3, 4)))
        eps = float(10 ** rng.uniform(-12, -3))
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            c = torch.tensor(value).to(dtype).double().item()
            x = torch.full((1, 2, n), c, dtype=torch.float64).to(dtype)
            w = torch.from_numpy(rng.uniform(0.5, 2.0, 2) * rng.choice([-1.0, 1.0], 2)).to(dtype)
            k = 1 + abs(c) / np.sqrt(eps)
            for kind in LIMITS:
                b = torch.zeros_like(w)
                if kind == "bias":
                    b = torch.from_numpy(rng.uniform(-2.0, 2.0, 2)).to(dtype)
                for op, y in outputs(x, w, b, eps).items():
                    moved = (y.double() - b.double()[:, None]).abs() / w.double().abs()[:, None]
                    ratio = float(moved.max()) / (V * k)
                    key = (op, str(dtype).removeprefix("torch."), kind)
                    worst[key] = max(worst.get(key, 0.0), ratio)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    worst = worst_ratios(args.trials, args.seed)
    for (op, dtype, kind), ratio in sorted(worst.items()):
        print(f"{op:<14} {dtype:<9} {kind:<8} max |y - b| / (v K |w|) = {ratio:.4f}")
    for kind, limit in LIMITS.items():
        found = max(r for (_, _, k), r in worst.items() if k == kind)
        print(f"all, {kind}: {found:.4f} (lncheck admits {limit:g})")


if __name__ == "__main__":
    main()
