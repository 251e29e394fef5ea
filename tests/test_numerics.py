"""Numerics: the reference against an exact oracle, gradients against finite differences,
ULPs, histograms, devices and plots."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lncheck import gradients
from lncheck.cli import app
from lncheck.comparison import histogram_bins, ulp
from lncheck.dtypes import DTYPES
from lncheck.errors import BackendUnavailable, InputError
from lncheck.io import case_from_arrays
from lncheck.layers import Layer
from lncheck.reference import normalize
from lncheck.runner import check_case as check
from lncheck.tolerances import ToleranceSpec

from .conftest import EXAMPLES, random_parameters

runner = CliRunner()
TIGHT = ToleranceSpec.from_options(1e-9, 1e-9)


# --- the reference against exact arithmetic --------------------------------------------------


def _exact_layer_norm(values: list[float], eps: float) -> list[mpmath.mpf]:
    """LayerNorm of one group, with the mean and variance as exact fractions."""
    xs = [Fraction(v) for v in values]
    mean = sum(xs, Fraction(0)) / len(xs)
    var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / len(xs)
    with mpmath.workdps(60):
        std = mpmath.sqrt(mpmath.mpf(var.numerator) / var.denominator + mpmath.mpf(eps))
        return [(mpmath.mpf((x - mean).numerator) / (x - mean).denominator) / std for x in xs]


@pytest.mark.parametrize("mean", [0.0, 1.0, 1e3, 1e4, -3e4])
@pytest.mark.parametrize("std", [1.0, 1e-3])
def test_reference_is_within_a_few_float64_ulps_of_exact(mean: float, std: float) -> None:
    rng = np.random.default_rng(int(abs(mean)) + 7)
    worst = 0.0
    for _ in range(20):
        x = rng.normal(mean, std, size=16).astype(np.float32).astype(np.float64)
        got = normalize(x[None], Layer("layer_norm", normalized_shape=(16,), eps=1e-5))[0]
        exact = _exact_layer_norm(list(x), 1e-5)
        for g, e in zip(got, exact, strict=True):
            spacing = np.spacing(max(abs(float(e)), 1.0))  # ulps at the output's scale
            worst = max(worst, float(abs(mpmath.mpf(float(g)) - e)) / spacing)
    assert worst <= 4.0, worst


# --- gradients ------------------------------------------------------------------------------


GRAD_LAYERS = [
    (Layer("layer_norm", normalized_shape=(5,)), (3, 5)),
    (Layer("layer_norm", axes=(0, 2)), (3, 2, 4)),
    (Layer("group_norm", groups=2), (2, 4, 3)),
    (Layer("instance_norm", affine=True), (2, 3, 4)),
    (Layer("batch_norm"), (6, 3)),
    (Layer("batch_norm", training=False), (4, 3, 2)),
    (Layer("rms_norm", normalized_shape=(4,)), (3, 4)),
    (Layer("layer_norm", normalized_shape=(6,), activation="gelu"), (2, 6)),
    (Layer("layer_norm", normalized_shape=(6,), activation="silu"), (2, 6)),
]


def _grad_case(layer: Layer, shape: tuple[int, ...], dtype: str = "float64", seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.3, size=shape)
    arrays = random_parameters(layer, shape, rng)
    return case_from_arrays(x, layer, dtype=dtype, **arrays), arrays  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("layer", "shape"), GRAD_LAYERS, ids=lambda v: v.op if isinstance(v, Layer) else str(v)
)
def test_analytic_backward_matches_finite_differences(layer: Layer, shape: tuple[int, ...]) -> None:
    case, arrays = _grad_case(layer, shape)
    g = gradients.upstream(case)
    grads, _ = gradients.backward(case)

    def loss(x: np.ndarray, **params: Any) -> float:
        merged = {**arrays, **params}
        y = normalize(
            x,
            layer,
            merged.get("weight"),
            merged.get("bias"),
            running_mean=merged.get("running_mean"),
            running_var=merged.get("running_var"),
        )
        if layer.activation is not None:
            from lncheck.layers import parse_activation
            from lncheck.reference import activation_function

            act = parse_activation(layer.activation)
            assert act is not None
            y = activation_function(act.name, act.param)(y)
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


@pytest.mark.parametrize(
    ("layer", "shape"), GRAD_LAYERS, ids=lambda v: v.op if isinstance(v, Layer) else str(v)
)
def test_torch_gradients_match_in_float64(layer: Layer, shape: tuple[int, ...]) -> None:
    case, _ = _grad_case(layer, shape)
    from dataclasses import replace

    report = check(replace(case, grad=True, tolerance=TIGHT))
    grads = [c for c in report.checks if c.quantity.startswith("grad_")]
    assert grads and all(c.passed for c in grads), [c.message() for c in grads if not c.passed]
    assert {c.quantity for c in grads} >= {"grad_input"}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_gradients_pass_the_automatic_tolerance(dtype: str) -> None:
    for seed, (layer, shape) in enumerate(GRAD_LAYERS):
        case, _ = _grad_case(layer, shape, dtype, seed)
        from dataclasses import replace

        report = check(replace(case, grad=True))
        assert report.passed, [c.message() for c in report.failures]


def test_wrong_gradient_is_caught() -> None:
    """A backward that treats the statistics as constants (a classic bug) fails the check."""
    case, arrays = _grad_case(Layer("layer_norm", normalized_shape=(8,)), (4, 8))
    from dataclasses import replace

    case = replace(case, grad=True)
    grads, _ = gradients.backward(case)
    x = torch.tensor(np.asarray(case.x), requires_grad=True)
    mean = x.mean(-1, keepdim=True).detach()
    var = x.var(-1, unbiased=False, keepdim=True).detach()
    y = (x - mean) / torch.sqrt(var + 1e-5) * torch.tensor(arrays["weight"]) + torch.tensor(
        arrays["bias"]
    )
    y.backward(torch.tensor(gradients.upstream(case)))
    wrong = x.grad.numpy()
    assert np.abs(wrong - grads["grad_input"]).max() > 1e-3


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


# --- ULPs and histograms -------------------------------------------------------------------


def test_ulp_spacing() -> None:
    f32 = DTYPES["float32"]
    assert ulp(np.array([1.0]), f32)[0] == 2.0**-23
    assert ulp(np.array([1.5]), f32)[0] == 2.0**-23
    assert ulp(np.array([2.0]), f32)[0] == 2.0**-22
    assert ulp(np.array([0.0]), f32)[0] == 2.0**-149  # subnormal spacing
    assert ulp(np.array([1.0]), DTYPES["bfloat16"])[0] == 2.0**-7
    assert ulp(np.array([1e-6]), DTYPES["float16"])[0] == 2.0**-24


def test_ulp_error_is_measured_at_the_output_scale() -> None:
    """Near-zero outputs do not produce million-ulp figures: ulps count at max(|ref|, |w|+|b|)."""
    x = np.random.default_rng(3).standard_normal((64, 256)).astype(np.float32)
    report = check(
        case_from_arrays(x, Layer("layer_norm", normalized_shape=(256,)), dtype="float32")
    )
    out = next(c for c in report.checks if c.quantity == "output")
    assert 0.1 < out.max_ulp_err < 8
    raw = out.max_rel_err / 2.0**-23  # what dividing by the spacing at |ref| would give
    assert raw > 100 * out.max_ulp_err


def test_histogram_counts_every_element() -> None:
    x = np.random.default_rng(4).standard_normal((8, 32)).astype(np.float32)
    report = check(
        case_from_arrays(x, Layer("layer_norm", normalized_shape=(32,)), dtype="float32")
    )
    out = next(c for c in report.checks if c.quantity == "output")
    assert sum(out.histogram) == out.total == 256
    assert len(out.histogram) == len(histogram_bins())


def test_histogram_bins_by_hand() -> None:
    from lncheck.blocks import GroupLayout
    from lncheck.comparison import compare

    errors = np.array([[0.0, 2.0**-70, 2.0**-24, 1.5 * 2.0**-24, 2.0**-22, 2.0**-21, 1e4]])
    layout = GroupLayout(errors.shape, errors.shape, (1,))
    c = compare("c", "output", np.zeros_like(errors), errors, layout, rtol=0.0, atol=1e9)
    labels = histogram_bins()
    counts = dict(zip(labels, c.histogram, strict=True))
    assert counts["0"] == 1 and counts[labels[1]] == 1  # exact, and below 2^-63
    assert counts[f"{2.0**-24:.2g}"] == 3  # [2^-24, 2^-21)
    assert counts[f"{2.0**-21:.2g}"] == 1
    assert counts[labels[-1]] == 1  # 1e4 >= 2^9
    assert sum(c.histogram) == errors.size


# --- devices, tolerance modes, plots --------------------------------------------------------


def test_unavailable_device_is_exit_2() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "lncheck: error: --device cuda: torch reports no CUDA device on this machine"
    )
    result = runner.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--device", "tpu"]
    )
    assert result.exit_code == 2 and "--device must be cpu, cuda, cuda:N or mps" in result.stderr


def test_vs_device_adds_candidates() -> None:
    result = runner.invoke(
        app,
        ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--vs-device", "cpu", "--json"],
    )
    names = {c["candidate"] for c in json.loads(result.stdout)["checks"]}
    assert {"torch.nn.LayerNorm", "torch.nn.LayerNorm@cpu"} <= names


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_against_cpu_and_reference() -> None:
    result = runner.invoke(
        app,
        [
            "compare",
            str(EXAMPLES / "image.npy"),
            "--op",
            "group_norm",
            "--groups",
            "2",
            "--device",
            "cuda",
            "--vs-device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    names = {c["candidate"] for c in json.loads(result.stdout)["checks"]}
    assert "torch.nn.GroupNorm@cuda" in names and "torch.nn.GroupNorm@cpu" in names


def test_tolerance_modes_from_the_command_line() -> None:
    args = ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--json"]
    auto = json.loads(runner.invoke(app, args).stdout)
    fixed = json.loads(runner.invoke(app, [*args, "--tolerance", "fixed"]).stdout)
    assert auto["tolerance"].startswith("auto: rtol=")
    assert fixed["tolerance"] == "fixed: rtol=1.3e-06, atol=1e-05"
    assert {c["rtol"] for c in fixed["checks"]} == {1.3e-6}
    both = runner.invoke(app, [*args, "--tolerance", "fixed", "--rtol", "1", "--atol", "1"])
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "errors.png"
    result = runner.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--plot", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(
        app,
        [
            "compare",
            str(EXAMPLES / "tokens.npy"),
            "--shape",
            "4",
            "--plot",
            str(tmp_path / "p.png"),
        ],
    )
    assert result.exit_code == 2 and "--plot needs matplotlib" in result.stderr


def test_backend_errors_are_reported_not_raised() -> None:
    with pytest.raises(BackendUnavailable, match="cannot run this case in float16 on cpu"):
        x = np.ones((2, 4, 3, 3))
        check(case_from_arrays(x, Layer("local_response_norm", size=3), dtype="float16"))


def test_unknown_dtype_in_a_spec() -> None:
    from lncheck.io import CaseSpec, load

    with pytest.raises(InputError, match="--dtype must be one of"):
        load(CaseSpec(input=str(EXAMPLES / "tokens.npy"), shape=(4,), dtype="float8"))  # type: ignore[arg-type]


def test_math_isfinite_sanity() -> None:
    assert math.isfinite(DTYPES["bfloat16"].max)
