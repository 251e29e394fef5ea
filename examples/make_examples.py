"""Regenerate the example inputs in this folder (deterministic: same files every time).

python examples/make_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2024)

    # A (batch=2, 3, 4) tensor: LayerNorm over the last dim or the last two.
    tokens = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.save(HERE / "tokens.npy", tokens)

    # A transformer-style activation with a learned weight and bias in one .npz.
    x = rng.normal(0.5, 2.0, size=(4, 8)).astype(np.float32)
    weight = rng.normal(1.0, 0.1, size=8).astype(np.float32)
    bias = rng.normal(0.0, 0.1, size=8).astype(np.float32)
    np.savez(HERE / "affine.npz", input=x, weight=weight, bias=bias)

    # A small input as JSON, with its dtype.
    (HERE / "small.json").write_text(
        json.dumps({"dtype": "float32", "data": [[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 9.0]]})
        + "\n"
    )

    # A small image batch (N, C, H, W) with running statistics for BatchNorm in eval mode,
    # and the same images channels-last (N, H, W, C).
    image = rng.normal(0.0, 1.5, size=(2, 4, 3, 3)).astype(np.float32)
    np.save(HERE / "image.npy", image)
    np.save(HERE / "image_nhwc.npy", np.ascontiguousarray(np.moveaxis(image, 1, -1)))
    np.savez(
        HERE / "bn_eval.npz",
        input=image,
        running_mean=rng.normal(0.0, 0.2, size=4).astype(np.float32),
        running_var=rng.uniform(1.5, 2.5, size=4).astype(np.float32),
    )

    # BatchNorm's output in training mode (batch statistics) for that image batch: in eval mode
    # (running statistics) BatchNorm gives something else, so checking this file with --eval fails.
    im = image.astype(np.float64)
    mean_c = im.mean(axis=(0, 2, 3), keepdims=True)
    var_c = im.var(axis=(0, 2, 3), keepdims=True)
    np.save(
        HERE / "bn_train_output.npy", ((im - mean_c) / np.sqrt(var_c + 1e-5)).astype(np.float32)
    )

    # What a buggy kernel would produce for tokens.npy with --shape 4: it normalizes with the
    # unbiased (N - 1) variance. `lncheck compare tokens.npy --shape 4 --expected ...` fails.
    t = tokens.astype(np.float64)
    mean = t.mean(axis=-1, keepdims=True)
    var = t.var(axis=-1, ddof=1, keepdims=True)
    np.save(
        HERE / "unbiased_kernel_output.npy", ((t - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    )

    # Rows whose mean (300) is large next to their spread (1): a one-pass float32 variance
    # (examples/onepass_layernorm.py) cancels here, a two-pass one does not.
    shifted = rng.normal(300.0, 1.0, size=(8, 64)).astype(np.float32)
    np.save(HERE / "shifted.npy", shifted)

    # A kernel's results for tokens.npy with --shape 4, as a bundle: the output and its saved
    # statistics, ONNX-style (Mean and InvStdDev with the reduced dim kept as size 1). And the
    # rstd of a fused kernel that keeps it in float16: `--expected fused.rstd=...` fails.
    rstd = 1 / np.sqrt(t.var(axis=-1, keepdims=True) + 1e-5)
    ln = (t - mean) * rstd
    np.savez(
        HERE / "ln_kernel.npz",
        output=ln.astype(np.float32),
        mean=mean.astype(np.float32),
        rstd=rstd.astype(np.float32),
    )
    np.save(HERE / "rstd_float16.npy", rstd.astype(np.float16))

    # Gemma's RMSNorm: a zero-centred weight, y = x * rstd * (1 + w) in float32, one rounding to
    # bfloat16 (check it with --weight-offset 1); input and weight are bfloat16 values.
    from lncheck.dtypes import round_to

    h = round_to(rng.normal(0.0, 1.0, size=(4, 64)), "bfloat16")
    w = round_to(rng.normal(0.0, 0.3, size=64), "bfloat16")
    h64 = h.astype(np.float64)
    normed = h64 / np.sqrt((h64 * h64).mean(axis=-1, keepdims=True) + 1e-6)
    gemma = round_to(normed.astype(np.float32) * (1.0 + w), "bfloat16")
    np.savez(HERE / "gemma.npz", input=h, weight=w, expected=gemma)


if __name__ == "__main__":
    main()
