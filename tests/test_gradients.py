"""The analytic backward pass: against finite differences, torch's autograd, and known bugs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lncheck
from lncheck import activations, gradients, pipeline
from lncheck.case import Case
from lncheck.cli import app
from lncheck.errors import InputError
from lncheck.reference import normalize
from lncheck.tolerance_spec import ToleranceSpec, applied

from .backends.test_conformance import random_parameters, spec_of
from .support import make_case

runner = CliRunner()
TIGHT = ToleranceSpec.from_options(1e-9, 1e-9)

GRAD_LAYERS: list[tuple[str, tuple[int, ...], dict[str, Any]]] = [
    ("layer_norm", (3, 5), {"normalized_shape": (5,)}),
    ("layer_norm", (3, 2, 4), {"axes": (0, 2)}),
    ("group_norm", (2, 4, 3), {"groups": 2}),
    ("instance_norm", (2, 3, 4), {"affine": True}),
    ("batch_norm", (6, 3), {}),
    ("batch_norm", (4, 3, 2), {"training": False}),
    ("rms_norm", (3, 4), {"normalized_shape": (4,)}),
    ("layer_norm", (2, 6), {"normalized_shape": (6,), "activation": "gelu"}),
    ("layer_norm", (2, 6), {"normalized_shape": (6,), "activation": "silu"}),
]
IDS = [f"{op}-{shape}-{options}" for op, shape, options in GRAD_LAYERS]


def _grad_case(
    op: str, shape: tuple[int, ...], options: dict[str, Any], dtype: str = "float64", seed: int = 0
) -> tuple[Case, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.3, size=shape)
    arrays = random_parameters(spec_of(op, shape, **options), rng)
    return make_case(x, op, dtype=dtype, **options, **arrays), arrays


@pytest.mark.parametrize(("op", "shape", "options"), GRAD_LAYERS, ids=IDS)
def test_analytic_backward_matches_finite_differences(
    op: str, shape: tuple[int, ...], options: dict[str, Any]
) -> None:
    case, arrays = _grad_case(op, shape, options)
    g = gradients.upstream(case)
    grads, _ = gradients.backward(case)
    layer = {k: v for k, v in options.items() if k != "activation"}

    def loss(x: np.ndarray, **params: Any) -> float:
        merged = {**arrays, **params}
        y = normalize(
            x,
            op,
            merged.get("weight"),
            merged.get("bias"),
            running_mean=merged.get("running_mean"),
            running_var=merged.get("running_var"),
            **layer,
        )
        if case.spec.activation is not None:
            y = activations.function(case.spec.activation)(y)
        return float((g * y).sum())

    def numeric(f: Any, a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        h = 1e-6
        for i in np.ndindex(a.shape):
            up, down = a.copy(), a.copy()
            up[i] += h
            down[i] -= h
            out[i] = (f(up) - f(down)) / (2 * h)
        return out

    x = np.asarray(case.x, dtype=np.float64)
    np.testing.assert_allclose(grads["grad_input"], numeric(loss, x), rtol=1e-6, atol=1e-7)
    for name in ("weight", "bias"):
        if f"grad_{name}" in grads:
            want = numeric(
                lambda p, n=name: loss(x, **{n: p}), np.asarray(arrays[name], dtype=np.float64)
            )
            np.testing.assert_allclose(grads[f"grad_{name}"], want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("op", "shape", "options"), GRAD_LAYERS, ids=IDS)
def test_torch_gradients_match_in_float64(
    op: str, shape: tuple[int, ...], options: dict[str, Any]
) -> None:
    case, _ = _grad_case(op, shape, options)
    report = pipeline.check_case(case.with_(grad=True, tolerance=TIGHT))
    grads = [c for c in report.checks if c.quantity.startswith("grad_")]
    assert grads and all(c.passed for c in grads), [c.message() for c in grads if not c.passed]
    assert {c.quantity for c in grads} >= {"grad_input"}


LOW_PRECISION = ToleranceSpec(accepted=("accurate", "sequential", "low_precision"))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_gradients_pass_the_automatic_tolerance(dtype: str) -> None:
    """Every torch path passes by default, but for one finding about torch's CPU kernels: in
    float16/bfloat16 InstanceNorm and training BatchNorm keep their statistics in the compute
    dtype, so their output is ``low_precision`` (and passes once that class is accepted): their
    outputs stray further from the exact ones than a kernel that rounds once."""
    low = set()
    for seed, (op, shape, options) in enumerate(GRAD_LAYERS):
        case, _ = _grad_case(op, shape, options, dtype, seed)
        report = pipeline.check_case(case.with_(grad=True))
        for check in report.failures:
            assert check.accuracy_class == "low_precision", check.message()
            assert (op, check.quantity) in {("instance_norm", "output"), ("batch_norm", "output")}
            low.add(op)
        if report.failures:
            relaxed = pipeline.check_case(case.with_(grad=True, tolerance=LOW_PRECISION))
            assert relaxed.passed, [c.message() for c in relaxed.failures]
    assert low == (set() if dtype == "float32" else {"instance_norm", "batch_norm"})


def test_wrong_gradient_is_caught() -> None:
    """A backward that treats the statistics as constants (a classic bug) fails the check."""
    case, arrays = _grad_case("layer_norm", (4, 8), {"normalized_shape": (8,)})
    case = case.with_(grad=True)
    grads, _ = gradients.backward(case)
    x = torch.tensor(np.asarray(case.x), requires_grad=True)
    mean = x.mean(-1, keepdim=True).detach()
    var = x.var(-1, unbiased=False, keepdim=True).detach()
    y = (x - mean) / torch.sqrt(var + 1e-5) * torch.tensor(arrays["weight"]) + torch.tensor(
        arrays["bias"]
    )
    y.backward(torch.tensor(gradients.upstream(case)))
    assert x.grad is not None
    wrong = x.grad.numpy()
    assert np.abs(wrong - grads["grad_input"]).max() > 1e-3


def test_upstream_gradient_is_seeded_and_rounded() -> None:
    case = make_case(np.zeros((3, 4)), normalized_shape=4, dtype="bfloat16", seed=3, grad=True)
    g = gradients.upstream(case)
    raw = np.random.default_rng(3).standard_normal((3, 4))
    assert np.array_equal(g, torch.tensor(raw).to(torch.bfloat16).double().numpy())
    assert not np.array_equal(
        g, gradients.upstream(case.with_(settings=case.settings.with_values(seed=4)))
    )
    given = np.full((3, 4), 0.5)
    assert np.array_equal(gradients.upstream(case.with_(grad_output=given)), given)


def test_grad_output_file_and_unsupported_op(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", np.ones((3, 4), np.float32))
    result = runner.invoke(
        app,
        [
            "compare",
            str(tmp_path / "x.npy"),
            "--shape",
            "4",
            "--grad-output",
            str(tmp_path / "g.npy"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    bias = [c for c in doc["checks"] if c["quantity"] == "grad_bias"]
    assert bias and all(c["worst_expected"] == 3.0 for c in bias)  # sum of ones over 3 rows
    x3 = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "x3.npy", x3)
    result = runner.invoke(
        app,
        [
            "compare",
            str(tmp_path / "x3.npy"),
            "--op",
            "local_response_norm",
            "--size",
            "2",
            "--grad",
        ],
    )
    assert (
        result.exit_code == 2 and "--grad is not supported for local_response_norm" in result.stderr
    )


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (
            {"variance": "unbiased"},
            "grad is not supported for layer_norm with the unbiased variance and eps on the "
            "variance",
        ),
        (
            {"eps_placement": "std"},
            "grad is not supported for layer_norm with the biased variance and eps on the std",
        ),
    ],
)
def test_no_backward_for_other_conventions(knobs: dict[str, str], message: str) -> None:
    """The backward pass is derived for torch's knobs only: refuse, never answer wrongly."""
    case = make_case(np.ones((2, 4)), normalized_shape=4, dtype="float64")
    case = case.with_(spec=case.spec.with_(**knobs))
    with pytest.raises(InputError, match=f"^{message}$"):
        gradients.backward(case)


# --- activations with a kink ----------------------------------------------------------------------


def test_relu_gradients_where_the_output_is_near_zero_in_bfloat16() -> None:
    # torch's bfloat16 output lands on the other side of 0 for a few elements, and ReLU's
    # derivative there is 0 instead of 1: no rounding model covers that, the jump term does
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(2, 6, 4, 4)) * rng.choice([1, 10])).astype(np.float32)
    for act in ("relu", "leaky_relu=0.2", "prelu"):
        # bfloat16 InstanceNorm on the CPU keeps its statistics in bfloat16 (low_precision)
        report = lncheck.compare(
            x,
            "instance_norm",
            dtype="bfloat16",
            activation=act,
            grad=True,
            seed=5,
            accept="low-precision",
        )
        assert report.passed, [c.message() for c in report.failures]
        grads = [c for c in report.checks if c.quantity == "grad_input"]
        assert grads and all(c.accuracy_class != "mismatch" for c in grads)


def test_relu_jump_allowance_does_not_hide_a_wrong_gradient() -> None:
    # symmetric rows: the middle element is exactly the mean, so its output is 0
    x = np.array([[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]])
    case = make_case(x, normalized_shape=(7,), activation="relu", dtype="float16")
    quantities, bounds = gradients.backward(case)
    jumped = np.asarray(bounds["grad_input"].terms["exact"]) > 0
    assert jumped[:, 3].all()  # the kink is allowed for
    rtol, atol = applied(ToleranceSpec(), "float16", 7, bounds["grad_input"])
    right = np.asarray(quantities["grad_input"])
    assert np.any(np.abs(right * 1.1 - right) > atol + rtol * np.abs(right))  # a bug still fails
