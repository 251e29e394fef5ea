"""LocalResponseNorm: torch's padding of even windows, windows wider than the channels, torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import lncheck
from lncheck import reference
from lncheck.reference import normalize
from lncheck.result import as_array

from ..backends.test_conformance import spec_of
from ..support import make_case
from . import error_of, matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((2, 5, 4), {"size": 3}),
    ((2, 6, 3, 3), {"size": 4, "alpha": 0.5, "beta": 0.9, "k": 2.0}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("local_response_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("local_response_norm", shape, **options)


def test_local_response_norm_by_hand_with_torchs_padding() -> None:
    x = np.array([[[1.0], [2.0], [3.0]]])
    options = {"size": 2, "alpha": 1.0, "beta": 1.0, "k": 1.0}
    # torch pads size//2 = 1 channel in front, (size-1)//2 = 0 behind: windows [c-1, c]
    want = [1 / (1 + 1 / 2), 2 / (1 + 5 / 2), 3 / (1 + 13 / 2)]
    got = normalize(x, "local_response_norm", **options).ravel()
    np.testing.assert_allclose(got, want, rtol=1e-15)
    # ONNX's LRN centres an even window the other way, [c, c+1]: a different answer
    onnx = [1 / (1 + 5 / 2), 2 / (1 + 13 / 2), 3 / (1 + 9 / 2)]
    assert not np.allclose(got, onnx)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_odd_and_even_sizes_match_torch(size: int) -> None:
    x = np.random.default_rng(size).standard_normal((2, 6, 5))
    want = torch.nn.functional.local_response_norm(torch.tensor(x), size, 0.3, 0.6, 1.5).numpy()
    got = normalize(x, "local_response_norm", size=size, alpha=0.3, beta=0.6, k=1.5)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_local_response_norm_with_a_window_wider_than_the_channels() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    report = lncheck.compare(x, "local_response_norm", size=10**5, dtype="float64")
    assert report.passed and len(report.checks) == 2  # module and functional
    # torch itself cannot pad a billion channels; the reference needs no padding at all
    # every window spans all 3 channels: the average of all squares over the window size
    window = (x * x).sum(axis=1, keepdims=True)
    want = x / (1.0 + 1e-4 * window / 10**9) ** 0.75
    case = make_case(x, "local_response_norm", size=10**9, dtype="float64")
    got = as_array(reference.run(case).quantities["output"])
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_spec_is_a_window_over_the_channels() -> None:
    spec = spec_of("local_response_norm", (2, 5, 4), size=3)
    assert not spec.statistics and not spec.affine and spec.window == 3
    assert spec.reduce_axes == (1,) and spec.reduced == 3 and spec.group_size == 5
    assert spec.options == {"size": 3, "alpha": 1e-4, "beta": 0.75, "k": 1.0}
    assert spec.description == "LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)"
    last = spec_of("local_response_norm", (2, 4, 5), size=3, channel_axis=-1)
    assert last.reduce_axes == (2,) and last.channel_axis == 2


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((2, 3, 4), {}, "needs --size"),
        ((2, 3), {"size": 2}, "LocalResponseNorm needs an input with at least 3 dims"),
        ((2, 3, 4), {"size": 0}, "--size must be positive, got 0"),
    ],
)
def test_errors(shape: tuple[int, ...], options: dict[str, Any], message: str) -> None:
    assert message in error_of("local_response_norm", shape, **options)
