"""GroupNorm: its spec (channels split into groups), hand-computed values, torch, its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lncheck.reference import normalize

from ..backends.test_conformance import spec_of
from . import error_of, matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((2, 4, 3, 3), {"groups": 2}),
    ((2, 3, 3, 6), {"groups": 3, "channel_axis": -1}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("group_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("group_norm", shape, **options)


def test_group_norm_by_hand() -> None:
    # groups of 2 channels: [1, 3] (mean 2, var 1) and [10, 20] (mean 15, var 25)
    y = normalize(np.array([[[1.0], [3.0], [10.0], [20.0]]]), "group_norm", groups=2, eps=0.0)
    np.testing.assert_array_equal(y.ravel(), [-1.0, 1.0, -1.0, 1.0])


def test_spec_splits_the_channel_axis() -> None:
    spec = spec_of("group_norm", (2, 6, 5), groups=3)
    assert spec.view_shape == (2, 3, 2, 5) and spec.reduce_axes == (2, 3)
    assert (spec.groups, spec.group_size, spec.param_shape, spec.param_axes) == (
        6,
        10,
        (6,),
        (1, 2),
    )
    assert spec.description == "GroupNorm(num_groups=3, num_channels=6, eps=1e-05, affine=True)"


def test_spec_of_channels_last_reduces_the_channels_of_a_group_first() -> None:
    # the same element order as channels-first: bit-identical statistics for both layouts
    spec = spec_of("group_norm", (2, 4, 3, 6), groups=2, channel_axis=-1)
    assert spec.view_shape == (2, 4, 3, 2, 3) and spec.reduce_axes == (4, 1, 2)
    assert spec.group_shape == (2, 2) and spec.channel_axis == 3
    assert spec.description.endswith(" on channel axis 3")


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((2, 6, 3), {"groups": 4}, "--groups 4 does not divide the 6 channels"),
        ((2, 6, 3), {}, "group_norm needs --groups"),
        ((2, 6, 3), {"groups": 0}, "--groups must be positive"),
        ((1, 2), {"groups": 2}, "torch's GroupNorm rejects an input of shape (1, 2)"),
    ],
)
def test_errors(shape: tuple[int, ...], options: dict[str, Any], message: str) -> None:
    assert message in error_of("group_norm", shape, **options)


def test_errors_name_options_as_the_caller_did() -> None:
    assert "groups= 4 does not divide the 6 channels" in error_of(
        "group_norm", (2, 6, 3), "api", groups=4
    )
    assert "group_norm needs key 'groups'" in error_of("group_norm", (2, 6, 3), "suite")
