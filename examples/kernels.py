"""Python functions to check with ``lncheck compare --candidate examples/kernels.py:NAME``.

lncheck calls each with the input as a torch tensor, then the keyword arguments its signature
names (``normalized_shape``, ``weight``, ``bias``, ``eps``, ...), and checks what it returns: a
tensor (the layer's output) or a dict of quantities (``output``, ``mean``, ``rstd``, ...).

    lncheck compare examples/tokens.npy --shape 4 --candidate examples/kernels.py:layer_norm --grad
    lncheck compare examples/tokens.npy --shape 4 --repeat 5 \\
        --candidate examples/kernels.py:racy_layer_norm
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> dict[str, torch.Tensor]:
    """A correct LayerNorm that also hands over its saved statistics (autograd gives dx)."""
    y, mean, rstd = torch.native_layer_norm(x, list(normalized_shape), weight, bias, eps)
    return {"output": y, "mean": mean, "rstd": rstd}


def racy_layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Accurate, but its float32 sums run in a random order each call, as a reduction with
    atomics does on a GPU: ``--repeat`` catches it."""
    dims = len(normalized_shape)
    rows = x.reshape(-1, math.prod(normalized_shape))

    def float32_sum(values: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(values.shape[0], 1, dtype=torch.float32)
        for i in torch.randperm(values.shape[1]).tolist():
            total = total + values[:, i : i + 1].float()
        return total

    n = rows.shape[1]
    mean = float32_sum(rows) / n
    d = rows.float() - mean
    y = (d / torch.sqrt(float32_sum(d * d) / n + eps)).reshape(x.shape).to(x.dtype)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    assert dims >= 1
    return y


def in_place_layer_norm(x: torch.Tensor, normalized_shape: Sequence[int]) -> torch.Tensor:
    """Saves memory by centring its input in place: lncheck fails a candidate that changes
    its input."""
    dims = tuple(range(-len(normalized_shape), 0))
    x.sub_(x.mean(dims, keepdim=True))
    return F.layer_norm(x, list(normalized_shape))
