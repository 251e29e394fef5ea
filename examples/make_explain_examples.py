"""Regenerate the inputs of the ``lncheck explain`` examples (deterministic: same files every time).

    python examples/make_explain_examples.py

keras_ln.npz: ``input`` (4, 16, 64) float32 and ``output``, made as Keras' LayerNormalization
makes it (eps=1e-3, over the last axis), in float64 and rounded to float32.
gemma_rms.npz: ``input`` (8, 256) and ``weight`` (256,) in bfloat16 (stored as float32), and the
``output`` of Gemma's RMSNorm (eps=1e-6, ``1 + weight`` applied in float32, one rounding to
bfloat16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lncheck.dtypes import round_to

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(12)

    x = rng.normal(0.5, 2.0, size=(4, 16, 64)).astype(np.float32)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = x64.var(axis=-1, keepdims=True)
    y = ((x64 - mean) / np.sqrt(var + 1e-3)).astype(np.float32)
    np.savez(HERE / "keras_ln.npz", input=x, output=y)

    h = round_to(rng.normal(0.0, 1.0, size=(8, 256)), "bfloat16")
    w = round_to(rng.normal(0.0, 0.3, size=256), "bfloat16")
    h64 = h.astype(np.float64)
    normed = h64 / np.sqrt((h64 * h64).mean(axis=-1, keepdims=True) + 1e-6)
    out = round_to(normed * (1.0 + w.astype(np.float64)), "bfloat16")
    np.savez(HERE / "gemma_rms.npz", input=h, weight=w, output=out)


if __name__ == "__main__":
    main()
