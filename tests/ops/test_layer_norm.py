"""LayerNorm: its spec, torch's paths in float64 and float32, eps at the edges, its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck import pipeline
from lncheck.reference import layer_norm
from lncheck.tolerance_spec import ToleranceSpec

from ..backends.test_conformance import spec_of
from ..support import make_case
from . import error_of, matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((3, 4, 5), {"normalized_shape": (5,)}),
    ((3, 4, 5), {"axes": (0, 2)}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("layer_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("layer_norm", shape, **options)


def test_spec_of_trailing_dims() -> None:
    spec = spec_of("layer_norm", (3, 4, 5), normalized_shape=(4, 5))
    assert (spec.module, spec.reduce_axes, spec.param_shape, spec.param_axes) == (
        "LayerNorm",
        (1, 2),
        (4, 5),
        (1, 2),
    )
    assert (spec.groups, spec.group_size, spec.eps, spec.center) == (3, 20, 1e-5, True)
    assert spec.description == (
        "LayerNorm(normalized_shape=(4, 5), eps=1e-05, elementwise_affine=True, bias=True)"
    )


def test_spec_of_any_axes() -> None:
    spec = spec_of("layer_norm", (3, 4, 5), axes=(-3, -1), affine=False)
    assert spec.reduce_axes == (0, 2) and spec.param_shape == (3, 5) and spec.groups == 4
    assert not spec.affine and not spec.has_bias
    # --shape with --axes is the dims of those axes (the weight's shape), not trailing ones
    both = spec_of("layer_norm", (3, 4, 5), axes=(-3, -1), normalized_shape=(3, 5))
    assert both.reduce_axes == (0, 2) and both.param_shape == (3, 5)
    trailing = spec_of("layer_norm", (3, 4, 5), axes=(1, 2), normalized_shape=(4, 5))
    assert trailing.reduce_axes == (1, 2)
    # the header names axes that are not the trailing ones normalized_shape would mean
    assert both.description.endswith("bias=True) over axes (0, 2)")
    assert "over axes" not in trailing.description


def test_eps_zero_works() -> None:
    matches_torch_in_float64("layer_norm", (3, 4), normalized_shape=(4,), eps=0.0)


def test_negative_eps_gives_nan_on_both_sides_and_is_reported() -> None:
    x = np.array([[0.0, 1e-3, 2e-3, 3e-3]])  # var 1.25e-6: var + eps < 0 for eps = -1e-3
    case = make_case(x, normalized_shape=(4,), eps=-1e-3, dtype="float64")
    report = pipeline.check_case(case)
    out = [c for c in report.checks if c.quantity == "output"]
    assert out and all(c.nan_expected == 4 and c.nan_actual == 4 for c in out)
    assert not report.passed  # NaN fails unless --equal-nan
    report = pipeline.check_case(case.with_(tolerance=ToleranceSpec(equal_nan=True)))
    assert all(c.passed for c in report.checks if c.quantity == "output")


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        (
            (2, 3),
            {"normalized_shape": (3,), "axes": (0,)},
            "--shape (3,) is not the shape (2,) of --axes (0,) of an input of shape (2, 3)",
        ),
        (  # the dims in the axes' order: the weight's layout
            (2, 4, 3, 5),
            {"normalized_shape": (3, 4), "axes": (1, 2)},
            "--shape (3, 4) is not the shape (4, 3) of --axes (1, 2)",
        ),
        ((2, 3), {"axes": (1, 1)}, "repeat an axis"),
        ((2, 3), {"axes": (2,)}, "axis 2 is out of range"),
        (
            (2, 3),
            {"normalized_shape": (4,)},
            "input has shape (2, 3); LayerNorm(normalized_shape=(4,)) needs trailing dims (4,)",
        ),
        ((2, 3), {"normalized_shape": (0,)}, "--shape (0,) has a dimension that is not positive"),
        ((2, 3), {}, "LayerNorm needs --shape or --axes"),
    ],
)
def test_errors(shape: tuple[int, ...], options: dict[str, Any], message: str) -> None:
    assert message in error_of("layer_norm", shape, **options)


def test_errors_name_options_as_the_caller_did() -> None:
    assert "normalized_shape= (3,) is not the shape (2,) of axes= (0,)" in error_of(
        "layer_norm", (2, 3), "api", normalized_shape=(3,), axes=(0,)
    )
    assert "key 'shape' (3,) is not the shape (2,) of key 'axes' (0,)" in error_of(
        "layer_norm", (2, 3), "suite", shape=(3,), axes=(0,)
    )


def test_a_zero_centred_weight_scales_by_one_plus_w() -> None:
    # TransformerEngine's zero_centered_gamma: (x - mean) * rstd * (1 + w) + b
    x = np.random.default_rng(1).standard_normal((3, 4))
    w, b = np.array([0.5, -0.25, 0.0, 2.0]), np.array([0.1, 0.2, 0.3, 0.4])
    report = lncheck.compare(
        x, normalized_shape=4, weight=w, bias=b, weight_offset=1.0, dtype="float64",
        expected=layer_norm(x, 4, 1 + w, b), grad=True,
    )  # fmt: skip
    assert report.passed, [c.message() for c in report.failures]
    assert {c.candidate for c in report.checks} >= {"torch.nn.LayerNorm", "expected"}
    assert not lncheck.compare(
        x, normalized_shape=4, weight=w, bias=b, weight_offset=1.0, dtype="float64",
        expected=layer_norm(x, 4, w, b), backend=None,
    ).passed  # fmt: skip
