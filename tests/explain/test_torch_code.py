"""The torch code of a candidate reproduces the output it explains: each line (or short
function) is run with torch on the input and compared with the observed output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lncheck.explain import explain

from .conventions import gemma_rms, group_norm, llama_rms, normalize, rounded

torch = pytest.importorskip("torch")


def run_code(code: str, x: np.ndarray, dtype: str, **params: np.ndarray) -> np.ndarray:
    """Run a candidate's ``torch_code`` with ``x`` (and ``weight``/``bias``) as torch tensors
    of ``dtype``; returns the output as float64."""
    as_torch = getattr(torch, dtype)
    scope: dict[str, Any] = {
        "torch": torch,
        "nn": torch.nn,
        "F": torch.nn.functional,
        "x": torch.from_numpy(np.asarray(x, dtype=np.float32)).to(as_torch),
    }
    for name, value in params.items():
        scope[name] = torch.from_numpy(np.asarray(value, dtype=np.float32)).to(as_torch)
    if code.startswith("def norm(x):"):
        exec(code, scope)
        out = scope["norm"](scope["x"])
    else:
        *casts, last = code.splitlines()  # casts of the input and parameters come first
        exec("\n".join(casts), scope)
        out = eval(last.split("  #")[0], scope)
    return out.detach().float().numpy().astype(np.float64)


def check(x: np.ndarray, y: np.ndarray, dtype: str = "float32", ulps: float = 8, **params) -> str:
    """Explain ``y``, run the best candidate's code, and compare; returns the code."""
    best = explain(x, y, **params).best
    assert best is not None and best.explains
    out = run_code(best.torch_code, x, dtype, **params)
    u = {"float32": 2.0**-24, "bfloat16": 2.0**-9, "float16": 2.0**-11}[dtype]
    np.testing.assert_allclose(out, np.asarray(y, dtype=np.float64), rtol=ulps * u, atol=ulps * u)
    return best.torch_code


def test_layer_norm_module() -> None:
    x = np.random.default_rng(0).normal(size=(4, 8, 32)).astype(np.float32)
    code = check(x, rounded(normalize(x, (-1,), 1e-3), "float32"))
    assert code == "nn.LayerNorm([32], eps=1e-3)(x)"


def test_layer_norm_over_axes_1_and_3_with_parameters() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 5, 7)).astype(np.float32)
    w, b = rng.normal(1, 0.2, (6, 7)), rng.normal(0, 0.2, (6, 7))
    y = rounded(normalize(x, (1, 3), 1e-5, weight=w[:, None, :], bias=b[:, None, :]), "float32")
    code = check(x, y, weight=w, bias=b)
    assert code.startswith("F.layer_norm(x.movedim((1, 3), (-2, -1)), [6, 7], weight, bias")


@pytest.mark.parametrize("interleaved", [False, True])
def test_group_norm(interleaved: bool) -> None:
    x = np.random.default_rng(2).normal(size=(2, 16, 3, 3)).astype(np.float32)
    code = check(x, rounded(group_norm(x, 4, 1e-5, interleaved=interleaved), "float32"))
    assert ("unflatten" in code) == interleaved


def test_group_norm_channels_last_interleaved_with_a_weight() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 3, 16)).astype(np.float32)
    w = rng.normal(1, 0.3, 16)
    made = np.moveaxis(group_norm(np.moveaxis(x, -1, 1), 4, 1e-5, interleaved=True), 1, -1)
    code = check(x, rounded(made * w, "float32"), weight=w)
    assert code.startswith("F.group_norm(x.movedim(-1, 1).unflatten(1, (4, 4))")


def test_unbiased_std_plus_eps_function() -> None:
    x = (np.random.default_rng(4).normal(size=(32, 16)) * np.logspace(-5, 0, 32)[:, None]).astype(
        np.float32
    )
    y = rounded(normalize(x, (-1,), 1e-6, unbiased=True, eps_on_std=True), "float32")
    code = check(x, y)
    assert code.startswith("def norm(x):")


def test_rms_norm_with_a_weight() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 64)).astype(np.float32)
    w = rng.normal(1, 0.2, 64).astype(np.float32)
    code = check(x, rounded(normalize(x, (-1,), 1e-6, center=False, weight=w), "float32"), weight=w)
    assert code == "F.rms_norm(x, [64], weight, eps=1e-6)"


def test_llama_and_gemma_code_reproduce_their_bfloat16_outputs_bit_for_bit() -> None:
    rng = np.random.default_rng(6)
    x = rounded(rng.normal(size=(8, 128)), "bfloat16")
    w = rounded(rng.normal(0, 0.3, 128), "bfloat16")
    for made in (llama_rms(x, w, 1e-6, "bfloat16"), gemma_rms(x, w, 1e-6, "bfloat16")):
        best = explain(x, made, weight=w).best
        assert best is not None and best.verdict == "exact"
        out = run_code(best.torch_code, x, "bfloat16", weight=w)
        # torch's float32 statistics against NumPy's float64: a rare tie may round apart
        assert np.mean(out == made) > 0.999


def test_swapped_parameters_and_instance_norm_module() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    w, b = rng.normal(1, 0.2, 32), rng.normal(0, 0.2, 32)
    code = check(
        x, rounded(normalize(x, (-1,), 1e-5, weight=b, bias=w), "float32"), weight=w, bias=b
    )
    assert code == "F.layer_norm(x, [32], bias, weight, eps=1e-5)"
    image = rng.normal(size=(2, 4, 5, 5)).astype(np.float32)
    assert check(image, rounded(normalize(image, (2, 3), 1e-5), "float32")).startswith(
        "nn.InstanceNorm2d(4"
    )


def test_one_pass_variance_function_and_batch_norm_module() -> None:
    from .conventions import flax_one_pass

    rng = np.random.default_rng(8)
    x = (300 + rng.normal(size=(8, 256))).astype(np.float32)
    y = flax_one_pass(x, 1e-6)
    best = explain(x, y).best
    assert best is not None and best.variance_algorithm == "one_pass"
    # torch sums E[x^2] in another order than NumPy: the same one-pass error, not the same bits
    out = run_code(best.torch_code, x, "float32")
    assert np.abs(out - y).max() < 0.05
    image = rng.normal(size=(4, 3, 5, 5)).astype(np.float32)
    code = check(image, rounded(normalize(image, (0, 2, 3), 1e-3), "float32"))
    assert code == "nn.BatchNorm2d(3, eps=1e-3)(x)  # training mode: batch statistics"


@pytest.mark.parametrize("affine", [False, True])
def test_code_that_casts_a_wider_input_first_reproduces_a_float16_layer(affine: bool) -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(1.0, 2.0, (16, 64)).astype(np.float32)
    params = {"weight": rng.normal(1, 0.3, 64), "bias": rng.normal(0, 0.2, 64)} if affine else {}
    layer = torch.nn.LayerNorm(64, eps=1e-3, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(params["weight"]))
            layer.bias.copy_(torch.from_numpy(params["bias"]))
    y = layer.half()(torch.from_numpy(x).half()).detach().numpy()
    best = explain(x, y, **params).best
    assert best is not None and best.explains and best.input_cast == "float16"
    lines = best.torch_code.splitlines()
    casts = ["x = x.to(torch.float16)"]
    if affine:
        casts += ["weight = weight.to(torch.float16)", "bias = bias.to(torch.float16)"]
    assert lines[:-1] == casts
    if not affine:  # eps is not identifiable in float16 here: the usual one is shown
        assert lines[-1].startswith("nn.LayerNorm([64], eps=")
        assert lines[-1].endswith(").to(torch.float16)(x)")
    # the code runs on the float32 input as given (run_code's dtype is the input's)
    out = run_code(best.torch_code, x, "float32", **params)
    np.testing.assert_allclose(out, y.astype(np.float64), rtol=2.0**-10, atol=2.0**-10)


def test_fitted_weights_stay_float32_in_code_that_casts_the_input_first() -> None:
    # torch normalizes a bfloat16 input with float32 parameters: the fitted ones are replayed
    # as fitted, and the code casts only the input (it cast weight_fit too, unlike the replay)
    rng = np.random.default_rng(13)
    x = rng.normal(2.0, 3.0, (512, 64)).astype(np.float32)
    w, b = (rounded(rng.normal(m, s, 64), "bfloat16") for m, s in ((1, 0.3), (0, 0.2)))
    y = rounded(normalize(rounded(x, "bfloat16"), (-1,), 1e-3, weight=w, bias=b), "bfloat16")
    best = explain(x, y).best
    assert best is not None and best.explains
    assert (best.affine, best.input_cast) == ("fitted", "bfloat16")
    first, code = best.torch_code.splitlines()
    assert first == "x = x.to(torch.bfloat16)"
    assert code.startswith("F.layer_norm(x, [64], weight_fit, bias_fit, eps=")


def test_rms_norm_over_leading_axes_with_a_fitted_bias_moves_the_sum_back() -> None:
    # the code added the bias to the moved output and moved only the bias back (shape (64, 4, 16)
    # for a (4, 16, 64) input)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 16, 64)).astype(np.float32)
    w, b = rng.normal(1, 0.2, (4, 16, 1)), rng.normal(0, 0.2, (4, 16, 1))
    y = rounded(normalize(x, (0, 1), 1e-5, center=False, weight=w, bias=b), "float32")
    best = explain(x, y).best
    assert best is not None and best.explains and best.affine == "fitted"
    code = best.torch_code
    assert code.startswith("(F.rms_norm(x.movedim((0, 1), (-2, -1)), [4, 16], weight_fit")
    # run with the true parameters, which the fitted ones estimate
    out = run_code(code, x, "float32", weight_fit=w[..., 0], bias_fit=b[..., 0])
    np.testing.assert_allclose(out, y, rtol=1e-6, atol=1e-6)


def test_a_float16_output_of_a_float32_computation_ends_in_its_cast() -> None:
    # explained exactly from float32, the code returned float32, 0.0039 off when run
    rng = np.random.default_rng(21)
    x = rng.normal(size=(16, 256)).astype(np.float32)
    y = rounded(normalize(x, (-1,), 1e-5), "float16")
    best = explain(x, y).best
    assert best is not None and best.explains and best.input_cast is None
    assert best.torch_code == "nn.LayerNorm([256], eps=1e-5)(x).to(torch.float16)"
    scope = {"torch": torch, "nn": torch.nn, "x": torch.from_numpy(x)}
    out = eval(best.torch_code, scope)
    assert out.dtype == torch.float16
    # float32 then float16 may round a value near a midpoint the other way (1 of 4096 here)
    np.testing.assert_allclose(out.detach().float().numpy(), y, rtol=2.0**-10, atol=2.0**-24)
