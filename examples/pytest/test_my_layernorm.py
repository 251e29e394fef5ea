"""How to test your own LayerNorm with lncheck: its output against the float64 reference.

Run with `python -m pytest examples/pytest/test_my_layernorm.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lncheck


class MyLayerNorm(torch.nn.Module):
    """The implementation under test: a hand-written LayerNorm over the last dim."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.bias = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@pytest.mark.parametrize("mean", [0.0, 1000.0])
@pytest.mark.parametrize("dim", [64, 1024])
def test_my_layernorm_matches_the_reference(dim: int, mean: float) -> None:
    layer = MyLayerNorm(dim)
    with torch.no_grad():
        layer.weight.normal_(1.0, 0.2)
        layer.bias.normal_(0.0, 0.2)
        x = torch.randn(8, 16, dim, generator=torch.Generator().manual_seed(0)) + mean
        y = layer(x)
    # Raises AssertionError with lncheck's message (worst element, by how much, what was
    # allowed) if the output is off by more than float32 allows for this input.
    lncheck.check(
        y, x, normalized_shape=dim, weight=layer.weight.detach(), bias=layer.bias.detach()
    )


def test_a_wrong_eps_is_caught() -> None:
    layer = MyLayerNorm(256, eps=1e-6)  # the bug: eps 1e-6 where the model expects 1e-5
    x = torch.randn(4, 256, generator=torch.Generator().manual_seed(1)) * 0.05
    with torch.no_grad():
        y = layer(x)
    with pytest.raises(AssertionError, match="does not match the reference"):
        lncheck.check(y, x, normalized_shape=256, eps=1e-5)


def test_the_report_tells_how_close() -> None:
    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    report = lncheck.compare(x, normalized_shape=32)  # torch's own paths, for comparison
    assert report.passed
    assert max(c.tolerance_used for c in report.checks) < 1
