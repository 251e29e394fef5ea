"""Activations after the norm: parsing, float64 forms against torch, derivatives, errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from lncheck import activations
from lncheck.activations import Activation
from lncheck.errors import InputError
from lncheck.reference import run as run_reference
from lncheck.result import as_array

from .ops import error_of, matches_torch_in_float32, matches_torch_in_float64
from .support import make_case

AFTER_A_NORM = [
    ("layer_norm", (2, 6), {"normalized_shape": (6,), "activation": "gelu"}),
    ("group_norm", (2, 4, 3), {"groups": 2, "activation": "leaky_relu=0.2"}),
]


@pytest.mark.parametrize(("op", "shape", "options"), AFTER_A_NORM, ids=lambda v: str(v))
class TestAfterANormMatchesTorch:
    def test_float64_to_1e_10(
        self, op: str, shape: tuple[int, ...], options: dict[str, Any]
    ) -> None:
        report = matches_torch_in_float64(op, shape, **options)
        assert {c.quantity for c in report.checks} >= {"output", "activation"}

    def test_float32(self, op: str, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32(op, shape, **options)


@pytest.mark.parametrize(
    ("activation", "module"),
    [
        ("relu", torch.nn.ReLU()),
        ("leaky_relu", torch.nn.LeakyReLU()),
        ("leaky_relu=0.3", torch.nn.LeakyReLU(0.3)),
        ("prelu", torch.nn.PReLU(dtype=torch.float64)),
        ("prelu=0.1", torch.nn.PReLU(init=0.1, dtype=torch.float64)),
        ("gelu", torch.nn.GELU()),
        ("gelu=tanh", torch.nn.GELU("tanh")),
        ("silu", torch.nn.SiLU()),
    ],
)
def test_activations_match_torch_defaults(activation: str, module: torch.nn.Module) -> None:
    x = np.random.default_rng(0).standard_normal((4, 8)) * 3
    case = make_case(x, normalized_shape=(8,), eps=1e-5, activation=activation, dtype="float64")
    ref = run_reference(case).quantities
    y = torch.nn.functional.layer_norm(torch.tensor(x), (8,), eps=1e-5)
    with torch.no_grad():
        want = module(y).numpy()
    np.testing.assert_allclose(as_array(ref["activation"]), want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    ("text", "want", "printed"),
    [
        ("relu", Activation("relu"), "relu"),
        ("leaky_relu", Activation("leaky_relu", 0.01), "leaky_relu=0.01"),
        ("Leaky-ReLU=0.2", Activation("leaky_relu", 0.2), "leaky_relu=0.2"),
        ("prelu", Activation("prelu", 0.25), "prelu=0.25"),
        ("gelu", Activation("gelu", "none"), "gelu"),
        ("gelu=tanh", Activation("gelu", "tanh"), "gelu=tanh"),
        ("silu", Activation("silu"), "silu"),
    ],
)
def test_parse_and_print(text: str, want: Activation, printed: str) -> None:
    act = activations.parse(text)
    assert act == want and str(act) == printed
    assert activations.parse(printed) == want  # what a report prints parses back
    assert activations.parse(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tanh", "activation: unknown activation 'tanh'"),
        ("relu=2", "activation relu takes no parameter, got 'relu=2'"),
        ("gelu=fast", "activation gelu=fast: the approximation must be 'none' or 'tanh'"),
        ("leaky_relu=x", "activation 'leaky_relu=x': 'x' is not a number"),
        ("prelu=inf", "activation 'prelu=inf': the parameter must be finite"),
        # it ran with the default slope, silently
        ("leaky_relu=", "activation 'leaky_relu=': no parameter after '='"),
        ("gelu= ", "activation 'gelu= ': no parameter after '='"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        activations.parse(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activation": "tanh"}, "unknown activation 'tanh'"),
        ({"activation": "relu=2"}, "relu takes no parameter"),
    ],
)
def test_errors_when_building_a_layer(options: dict[str, Any], message: str) -> None:
    assert message in error_of("layer_norm", (2, 3), normalized_shape=(3,), **options)
    assert "--activation" in error_of("layer_norm", (2, 3), normalized_shape=(3,), **options)


def test_kinks_and_slopes() -> None:
    assert Activation("relu").has_kink and Activation("prelu", 0.25).has_kink
    assert not Activation("gelu", "none").has_kink and not Activation("silu").has_kink
    assert Activation("relu").slope_below_zero == 0.0
    assert Activation("leaky_relu", 0.2).slope_below_zero == 0.2
    assert Activation("leaky_relu", -3.0).lipschitz == 3.0
    assert Activation("prelu", 0.25).lipschitz == 1.0


@pytest.mark.parametrize("text", ["relu", "leaky_relu=0.2", "prelu", "gelu", "gelu=tanh", "silu"])
def test_lipschitz_bounds_the_slope(text: str) -> None:
    act = activations.parse(text)
    assert act is not None
    y = np.linspace(-8, 8, 16001)
    slope = np.abs(activations.derivative(act)(y))
    assert slope.max() <= act.lipschitz
    assert slope.max() > act.lipschitz - 0.01  # and it is tight


@pytest.mark.parametrize("text", ["leaky_relu=0.2", "prelu", "gelu", "gelu=tanh", "silu"])
def test_derivative_matches_finite_differences(text: str) -> None:
    act = activations.parse(text)
    assert act is not None
    f = activations.function(act)
    y = np.random.default_rng(0).normal(0, 3, 200)
    y = y[np.abs(y) > 1e-3]  # away from the kink
    h = 1e-6
    numeric = (f(y + h) - f(y - h)) / (2 * h)
    np.testing.assert_allclose(activations.derivative(act)(y), numeric, rtol=1e-6, atol=1e-8)


def test_derivative_at_the_kink_is_torchs() -> None:
    zero = np.zeros(1)
    assert activations.derivative(Activation("relu"))(zero)[0] == 0.0
    assert activations.derivative(Activation("leaky_relu", 0.2))(zero)[0] == 0.2


def test_prelu_slope_is_rounded_to_the_compute_dtype() -> None:
    act = Activation("prelu", 0.1)
    y = np.array([-1.0])
    assert activations.function(act, "float64")(y)[0] == -0.1
    assert activations.function(act, "bfloat16")(y)[0] == -float(torch.tensor(0.1).bfloat16())
    # LeakyReLU's slope is a Python float in torch: never rounded
    assert activations.function(Activation("leaky_relu", 0.1), "bfloat16")(y)[0] == -0.1


def test_erf_is_the_c_librarys() -> None:
    y = np.array([-2.0, -0.5, 0.0, 1e-3, 3.0])
    np.testing.assert_array_equal(activations.erf(y), [math.erf(v) for v in y])
