"""A NumPy LayerNorm with a deliberate bug, to check as a program with ``--candidate-cmd``.

It computes the variance in one pass in float32, ``E[x^2] - E[x]^2``: the two terms cancel
when the rows' mean is large next to their spread, and the output is off by far more than
float32 allows. ``--two-pass`` computes ``E[(x - mean)^2]`` instead, which passes.

    lncheck compare examples/shifted.npy --shape 64 --candidate-cmd \\
        "python examples/onepass_layernorm.py {input} {output} --eps {eps} --shape {shape}"

lncheck writes ``{input}`` (a .npy) and reads back ``{output}`` (a .npy: the layer's output).
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="the input, a .npy file")
    parser.add_argument("output", help="where to write the output, a .npy file")
    parser.add_argument("--eps", type=float, default=1e-5)
    parser.add_argument("--shape", default=None, help="normalized_shape, e.g. 64 or 3,4")
    parser.add_argument("--weight", default=None, help="a .npy of the normalized shape")
    parser.add_argument("--bias", default=None, help="a .npy of the normalized shape")
    parser.add_argument("--two-pass", action="store_true", help="without the bug")
    args = parser.parse_args()

    x = np.load(args.input).astype(np.float32)
    dims = len(args.shape.split(",")) if args.shape else 1
    axes = tuple(range(x.ndim - dims, x.ndim))
    n = np.float32(math.prod(x.shape[a] for a in axes))
    mean = x.sum(axis=axes, keepdims=True, dtype=np.float32) / n
    if args.two_pass:
        d = x - mean
        var = (d * d).sum(axis=axes, keepdims=True, dtype=np.float32) / n
    else:  # the bug: one pass, in float32
        square = (x * x).sum(axis=axes, keepdims=True, dtype=np.float32) / n
        var = square - mean * mean
    y = (x - mean) / np.sqrt(var + np.float32(args.eps))
    if args.weight:
        y = y * np.load(args.weight).astype(np.float32)
    if args.bias:
        y = y + np.load(args.bias).astype(np.float32)
    np.save(args.output, y.astype(np.float32))


if __name__ == "__main__":
    main()
