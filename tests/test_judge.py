"""The structural judgement (``lncheck.judge``) through the public entry: outputs given as
``expected=`` from correct kernels of every kind (two-pass, sequential, bfloat16 accumulators,
torch's own) get their accuracy class, and bugs (another eps, the unbiased variance, a copied
row, a missing bias, values beyond the structural cap) are a ``mismatch`` named as such.
Sequential kernels' outputs: ``test_sequential.py``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import lncheck
from benchmarks.low_precision_accumulation import accumulated_layer_norm

from .support import as_float64, layer_norm, output_check

F64 = npt.NDArray[np.float64]


# --- mismatches through the public entry --------------------------------------------------


@pytest.mark.parametrize(("rows", "n"), [(6, 4), (8, 4096)])
def test_an_unbiased_variance_is_a_mismatch_named_as_such(rows: int, n: int) -> None:
    x = np.random.default_rng(n).standard_normal((rows, n)).astype(np.float32)
    c = output_check(x, normalized_shape=n, expected=layer_norm(x, ddof=1).astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == (
        f"matches an unbiased variance (÷(n - 1), n = {n}) (in all {rows} groups checked)"
    )
    # rstd relative to the exact one: sqrt((v + eps) / (v * n / (n - 1) + eps)) per row
    v = x.astype(np.float64).var(-1)
    predicted = np.sqrt((v + 1e-5) / (v * n / (n - 1) + 1e-5))
    assert np.min(np.abs(predicted - c.implied_scale)) < 2e-6
    assert abs(c.implied_shift) < 1e-6  # a variance error moves no mean


def test_an_unbiased_variance_in_batch_norm_is_a_mismatch() -> None:
    x = np.random.default_rng(5).standard_normal((16, 4, 256)).astype(np.float32)
    x64 = x.astype(np.float64)
    mean = x64.mean((0, 2), keepdims=True)
    y = (x64 - mean) / np.sqrt(x64.var((0, 2), ddof=1, keepdims=True) + 1e-5)
    c = output_check(x, "batch_norm", training=True, expected=y.astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == (
        "matches an unbiased variance (÷(n - 1), n = 4096) (in all 4 groups checked)"
    )


def test_another_eps_is_a_mismatch_with_the_implied_eps() -> None:
    # std 0.03: var 9e-4, where eps 1e-3 instead of 1e-5 changes the rstd by a third
    x = (0.03 * np.random.default_rng(1).standard_normal((8, 64))).astype(np.float32)
    c = output_check(x, normalized_shape=64, expected=layer_norm(x, eps=1e-3).astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == "matches eps = 0.001 instead of 1e-05 (in all 8 groups checked)"
    v = x.astype(np.float64).var(-1)
    predicted = np.sqrt((v + 1e-5) / (v + 1e-3))
    assert np.min(np.abs(predicted - c.implied_scale)) < 1e-6
    assert 0.5 < c.implied_scale < 0.8


def test_eps_on_the_std_is_a_mismatch_named_as_such() -> None:
    x = (0.01 * np.random.default_rng(2).standard_normal((8, 64))).astype(np.float32)
    x64 = x.astype(np.float64)
    y = (x64 - x64.mean(-1, keepdims=True)) / (x64.std(-1, keepdims=True) + 1e-5)
    c = output_check(x, normalized_shape=64, expected=y.astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == (
        "matches eps added to the std instead of the variance (in all 8 groups checked)"
    )
    v = x64.var(-1)
    predicted = np.sqrt(v + 1e-5) / (np.sqrt(v) + 1e-5)
    assert np.min(np.abs(predicted - c.implied_scale)) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_row_copied_from_elsewhere_is_a_mismatch_in_every_dtype(dtype: str) -> None:
    # mean/std ~30: where the old bound's allowance for float16 statistics swallowed it
    g = torch.Generator().manual_seed(3)
    x = (30.0 + torch.randn(8, 256, generator=g, dtype=torch.float64)).to(getattr(torch, dtype))
    exact = torch.from_numpy(layer_norm(as_float64(x))).to(x.dtype)
    good = output_check(x, normalized_shape=256, expected=exact)
    assert (good.passed, good.accuracy_class, good.explanation) == (True, "accurate", None)
    for source, words in ((1, "not an affine distortion"), (4, "group (5) repeats group (4)'s")):
        # from a row further off, the residual tells; from its neighbour, its bytes do first
        copied = exact.clone()
        copied[5] = copied[source]
        c = output_check(x, normalized_shape=256, expected=copied)
        assert (c.passed, c.accuracy_class) == (False, "mismatch")
        assert c.explanation is not None and c.explanation.startswith(words)
        assert source == 4 or "a row from elsewhere" in c.explanation


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_small_missing_bias_is_caught_by_the_residual_alone(dtype: str) -> None:
    # a per-element bias of +-0.05 at mean/std 30: within every element's low-precision bound
    # in float16 and bfloat16, and nearly orthogonal to the scale and the shift, so the fitted
    # distortion is small; only the residual says it is no statistics error
    rng = np.random.default_rng(0)
    x = torch.from_numpy(120 + 4 * rng.standard_normal((8, 256))).to(getattr(torch, dtype))
    b = torch.from_numpy(0.05 * rng.choice([-1.0, 1.0], 256)).to(x.dtype)
    n = layer_norm(as_float64(x))
    good = output_check(
        x, normalized_shape=256, bias=b, expected=torch.from_numpy(n + as_float64(b))
    )
    assert (good.passed, good.accuracy_class) == (True, "accurate")
    c = output_check(x, normalized_shape=256, bias=b, expected=torch.from_numpy(n).to(x.dtype))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert abs(c.implied_scale - 1) < 0.01 and abs(c.implied_shift) < 0.01
    assert c.explanation is not None
    assert c.explanation.startswith("not an affine distortion of the normalized values")


def test_a_group_failing_as_a_whole_says_its_worst_element_is_within_its_own_tolerance() -> None:
    # one row of 64 at mean/std 3e3 with an alternating +-3e-3: each element is within its
    # own atol (8.6e-3, mostly the statistics' allowance), but no statistics error makes the
    # pattern, so the row fails structurally, charged to its largest error
    rng = np.random.default_rng(1)
    x = rng.normal(3e3, 1.0, size=(4, 64)).astype(np.float32)
    y = layer_norm(x)
    y[2] += np.where(np.arange(64) % 2 == 0, 3e-3, -3e-3)
    c = output_check(x, normalized_shape=64, expected=y.astype(np.float32))
    assert (c.passed, c.accuracy_class, c.worst_by_group) == (False, "mismatch", True)
    assert c.worst_index[0] == 2 and c.max_abs_err < c.atol < 1e-2
    message = c.message()
    assert f"(within its own rtol={c.rtol:.3g}, atol={c.atol:.3g}; its group's fitted" in message
    assert f"residual is {c.tolerance_used:.3g}x what the accepted classes allow)" in message
    assert "allowed there" not in message


def test_a_value_beyond_the_structural_cap_is_a_mismatch() -> None:
    # a constant row: the exact output is 0 and no LayerNorm of 32 values exceeds sqrt(31)
    x = np.full((2, 32), 3.0, dtype=np.float32)
    zeros = np.zeros((2, 32), dtype=np.float32)
    assert output_check(x, normalized_shape=32, eps=1e-12, expected=zeros).passed
    wrong = zeros.copy()
    wrong[1, 7] = 100.0
    c = output_check(x, normalized_shape=32, eps=1e-12, expected=wrong)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == (
        "an output no correct layer can produce (|y - b| > |w| * sqrt(n - 1) plus rounding, "
        "sqrt(n - 1) = 5.57): a different function"
    )


def test_a_variance_about_a_mean_off_by_its_allowance_grows_by_its_square() -> None:
    # BatchNorm of a constant (N, C) channel: torch sums 1,000 values of 12345.6 in float32 and
    # its mean is 0.0596 low (one thread), within the sequential class's 0.38; its variance
    # about that mean is 0.0596**2 = 0.00355 where the exact one is 0 (the var and running_var
    # checks allowed 0.0012 and failed as low_precision and mismatch while the output passed)
    x = np.full((1000, 1), 12345.6, np.float32)
    report = lncheck.compare(x, "batch_norm", training=True, eps=1e-5)
    checks = {(c.candidate, c.quantity): c for c in report.checks}
    var = checks[("torch.native_batch_norm", "var")]
    assert 1e-3 < var.max_abs_err < 0.38**2  # 0.0596**2 on one thread; sums vary with threads
    assert all(c.passed for c in report.checks), [c.message() for c in report.checks]
    # a variance beyond the mean's allowance squared (0.38**2) is not that
    wrong = {"output": np.zeros_like(x), "mean": np.array([12345.6]), "var": np.array([0.5])}
    bad = lncheck.compare(x, "batch_norm", backend=None, training=True, eps=1e-5, expected=wrong)
    assert not next(c for c in bad.checks if c.quantity == "var").passed


def test_torchs_channels_last_group_norm_losing_the_variance_whole_is_low_precision() -> None:
    # float32 GroupNorm of channels-last groups of 2,048 values at mean/std 1e4: torch's CPU
    # kernel sums x and x**2 in one pass, E[x**2] - E[x]**2 keeps no digit of the variance
    # (u K**2 = 6), it comes out 0 and rstd 1 / sqrt(eps): 320 times the exact output, past
    # the structural cap, from the right function (``tolerances.low_precision_ceiling``)
    x = (1e4 + np.random.default_rng(1).standard_normal((2, 16, 16, 8))).astype(np.float32)
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    y = torch.nn.GroupNorm(2, 8)(nchw).detach().permute(0, 2, 3, 1).numpy()
    options: dict[str, Any] = {"groups": 2, "channel_axis": -1}
    check = output_check(x, "group_norm", expected=y, **options)
    assert (check.passed, check.accuracy_class) == (False, "low_precision")
    assert 300 < check.implied_scale < math.sqrt(1.1 / 1e-5)
    assert check.explanation is not None and check.explanation.startswith("rstd +3.2e+04% off")
    assert output_check(x, "group_norm", expected=y, accept="low-precision", **options).passed
    # a variance lost whole is as far as a one-pass variance moves rstd: twice that, or the
    # sign flipped, is another function
    for wrong in (2 * y, -y):
        assert output_check(x, "group_norm", expected=wrong, **options).accuracy_class == "mismatch"
    # its saved rstd, 1 / sqrt(eps) where the variance came out 0, is low_precision too
    _, _, rstd = torch.ops.aten.native_group_norm(nchw, None, None, 2, 8, 256, 2, 1e-5)
    assert float(rstd.max()) == pytest.approx(1 / math.sqrt(1e-5), rel=1e-6)
    given = {"output": y, "rstd": rstd.numpy().ravel()}
    report = lncheck.compare(x, "group_norm", backend=None, expected=given, **options)
    assert {c.quantity: c.accuracy_class for c in report.checks} == {
        "output": "low_precision",
        "rstd": "low_precision",
    }
    # ...and the words offer no one-pass variance for an rstd above losing the variance whole
    twice = output_check(x, "group_norm", expected=2 * y, **options).explanation or ""
    assert twice.startswith("rstd +6.4") and "one-pass" not in twice, twice


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_normalized_values_below_the_bias_s_last_place_are_no_error(dtype: str) -> None:
    # groups of the smallest normal values: w n ~ 1e-36, so y = b to every float's precision
    # and y - b = 0, an implied scale of 0 with no mean error (0 / 0 made the default classes'
    # limits NaN: a candidate equal to the reference, bit for bit, was low_precision)
    tiny = float(np.finfo(np.float32).tiny)
    x = np.array([[tiny, 2 * tiny], [tiny, 0.0]], np.float32)
    b = np.array([-1.0, 1.0], np.float32)
    c = output_check(x, normalized_shape=2, dtype=dtype, bias=b, expected=np.tile(b, (2, 1)))
    assert (c.passed, c.accuracy_class, c.max_abs_err) == (True, "accurate", 0.0)
    report = lncheck.compare(x, normalized_shape=2, dtype=dtype, bias=b)
    assert all(check.passed for check in report.checks), [c.message() for c in report.checks]
    # normal values of 1e-20 with a weight: torch's error is 1e-11 of an ulp
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 16)) * 1e-20).astype(np.float32)
    w, b = (
        rng.standard_normal(16).astype(np.float32),
        (rng.standard_normal(16) * 5).astype(np.float32),
    )
    report = lncheck.compare(x, normalized_shape=16, dtype=dtype, weight=w, bias=b)
    assert all(check.passed for check in report.checks), [c.message() for c in report.checks]


def test_a_constant_row_with_a_bias_admits_a_folds_second_rounding() -> None:
    # with a bias, b - P rounds and an fma leaves P = mean * scale's own rounding too: up to
    # 2 v K |w| (torch's float16 BatchNorm reaches 1.98 of v K, benchmarks/
    # folded_constant_rows.py). Row 1 is 1449 twice with eps=1e-10: v K = 8.64, and the cap
    # sqrt(n - 1) = 1 is less than the second rounding
    x = np.array([[-1.0, 1.0], [1449.0, 1449.0]], dtype=np.float32)
    w, b = np.array([1.5, 1.5], np.float32), np.array([0.25, 0.25], np.float32)
    vk = 2.0**-24 * (1.0 + 1449.0 / math.sqrt(1e-10))
    exact = np.array([[-1.5 + 0.25, 1.5 + 0.25], [0.25, 0.25]])
    for multiple, passed in ((1.9, True), (2.3, False)):
        y = exact.copy()
        y[1] = 0.25 + multiple * vk * 1.5
        options = {"weight": w, "bias": b, "expected": y.astype(np.float32)}
        c = output_check(x, normalized_shape=2, eps=1e-10, **options)
        assert c.passed is passed, multiple
        assert c.accuracy_class == ("accurate" if passed else "mismatch")
    # without a bias b - P = -P is exact: one rounding and the cap
    y = exact - 0.25
    y[1] = 1.9 * vk * 1.5
    c = output_check(x, normalized_shape=2, eps=1e-10, weight=w, expected=y.astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_constant_row_with_a_large_mean_admits_only_a_folded_shifts_rounding(
    dtype: str,
) -> None:
    # b06: row 1 is 1449 everywhere (K = 1.45e9 at eps=1e-12). Every algorithm computes its
    # exact mean and a zero variance there, so only a folded x * scale + shift moves the
    # output, by one float32 rounding of mean * rstd: v K = 2**-24 * 1.449e9 = 86.4 on top of
    # sqrt(31) = 5.57. torch's float16 CPU LayerNorm folds, and returns 64.0; 100.0 is no
    # LayerNorm output
    x = np.stack([np.linspace(-1.0, 1.0, 32), np.full(32, 1449.0), np.full(32, 0.75)])
    exact = np.zeros((3, 32))
    exact[0] = layer_norm(x[0], eps=1e-12)
    for garbage, passed in ((100.0, False), (95.0, False), (-1e4, False), (64.0, True)):
        wrong = exact.copy()
        wrong[1] = garbage
        c = output_check(x, normalized_shape=32, eps=1e-12, dtype=dtype, expected=wrong)
        assert c.passed is passed, garbage
        if not passed:
            assert c.accuracy_class == "mismatch" and c.worst_index == (1, 0)
            assert "sqrt(n - 1) = 5.57" in (c.explanation or "")
    folded = torch.nn.functional.layer_norm(torch.from_numpy(x).half(), (32,), eps=1e-12)
    assert folded[1].eq(64.0).all()  # torch 2.13's CPU kernel: one rounding of 1.449e9
    c = output_check(x, normalized_shape=32, eps=1e-12, dtype="float16", expected=folded)
    assert c.passed
    # the constant row alone, so that its element is the worst: the atol applied there
    c = output_check(x[1:2], normalized_shape=32, eps=1e-12, dtype="float16", expected=folded[1:2])
    assert c.passed and c.atol == pytest.approx(2**-24 * (1 + 1449e6) + math.sqrt(31), rel=1e-3)
    # accepting more is never stricter: low_precision admits what sequential does
    c = output_check(
        x, normalized_shape=32, eps=1e-12, dtype="float16", expected=folded, accept="low-precision"
    )
    assert c.passed and c.accuracy_class == "accurate"


def test_a_bfloat16_rms_norm_summing_squares_in_bfloat16_is_low_precision() -> None:
    # n16 (sglang#27540): massive activations at dims 17 and 901; a kernel that keeps
    # mean(x^2) in bfloat16 scales every output of a row by the same +0.3 %, below an ulp of
    # most outputs. A kernel that rounds once is within u |y| of every exact output; this one
    # is not, and least squares (weighing by (w n)^2) sees its scale beyond every class but
    # low_precision's
    x = torch.randn(8, 2048, generator=torch.Generator().manual_seed(16)).bfloat16()
    x[:, 17], x[:, 901] = 180.0, -95.0
    w = torch.from_numpy(np.random.default_rng(27540).uniform(0.5, 1.5, 2048)).bfloat16()
    exact = x.double() * torch.rsqrt(x.double().square().mean(-1, keepdim=True) + 1e-6)
    right = (exact * w.double()).bfloat16()
    wrong = (exact * 1.003 * w.double()).bfloat16()
    options = {"normalized_shape": 2048, "eps": 1e-6, "weight": w, "dtype": "bfloat16"}
    c = output_check(x, "rms_norm", expected=right, **options)
    assert (c.passed, c.accuracy_class, c.warning) == (True, "accurate", None)
    c = output_check(x, "rms_norm", expected=wrong, **options)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.max_ulp_err < 1.5  # no element is two ulps off: their rounding alone tells
    assert c.explanation is not None and "rounded to the compute dtype" in c.explanation
    assert output_check(x, "rms_norm", expected=wrong, accept="low-precision", **options).passed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lncheck.check(right, x, "rms_norm", **options).passed


@pytest.mark.parametrize(
    ("threads", "mean", "klass"),
    [
        (1024, 3.0, "low_precision"),  # 16 values per thread: rstd +0.5 %
        (32, 3.0, "low_precision"),  # 512 per thread: rstd -8.9 %, mean 0.51 std off
        # 512 per thread at mean/std 30: the running sums stall (an addend below half a
        # last place is lost whole), rstd -91 % and the mean 1.2 std off: no correct digit
        (32, 30.0, "mismatch"),
    ],
)
def test_bfloat16_accumulators_are_low_precision_until_no_digit_is_left(
    threads: int, mean: float, klass: str
) -> None:
    # "bfloat16 accumulation" is low_precision (the right function, statistics summed in the
    # compute dtype) while its statistics keep a correct digit: tolerances.G_LOW's sqrt(n)
    # random walk; a tree's log2(n) (a tenth as wide at 16,384 values) called the 512-value
    # thread sums a mismatch (python benchmarks/low_precision_accumulation.py)
    rng = np.random.default_rng(16384 + int(mean) + threads)
    x = torch.from_numpy(mean + rng.standard_normal((16, 16384))).bfloat16()
    y = accumulated_layer_norm(x, threads)
    c = output_check(x, normalized_shape=16384, dtype="bfloat16", expected=y)
    assert (c.passed, c.accuracy_class) == (False, klass)


def test_hf_llama_rms_norm_rounding_x_rstd_to_bfloat16_is_low_precision() -> None:
    # y = bf16(bf16(x * rstd) * w): two roundings to bfloat16, an intermediate kept in the
    # compute dtype (transformers' LlamaRMSNorm). Near a power of two (rstd = 1.002) it leaves
    # a systematic -0.2 % as well; on ordinary data its elements stray up to 2 u |y|
    x = (0.98 * torch.randn(1, 2048, generator=torch.Generator().manual_seed(3))).bfloat16()
    w = (1 + 0.3 * torch.randn(2048, generator=torch.Generator().manual_seed(4))).bfloat16()
    eps = 1 / 1.002**2 - float(x.float().square().mean())
    for data, layer_eps in ((x, eps), (x * 3, 1e-6)):
        rstd = torch.rsqrt(data.float().square().mean(-1, keepdim=True) + layer_eps)
        llama = ((data.float() * rstd).bfloat16().float() * w.float()).bfloat16()
        once = (data.float() * rstd * w.float()).bfloat16()
        options = {"normalized_shape": 2048, "eps": layer_eps, "weight": w}
        c = output_check(data, "rms_norm", expected=llama, **options)
        assert (c.passed, c.accuracy_class) == (False, "low_precision"), c.message()
        assert "HF's LlamaRMSNorm" in (c.explanation or "")
        assert output_check(
            data, "rms_norm", expected=llama, accept="low-precision", **options
        ).passed
        c = output_check(data, "rms_norm", expected=once, **options)
        assert (c.passed, c.accuracy_class) == (True, "accurate"), c.message()


def test_a_bfloat16_element_an_ulp_beyond_its_rounding_is_not_a_round_once_kernels() -> None:
    # a kernel that computes in float32 and rounds once is within u |y| of the exact value
    # (tolerances.ROUND_ONCE); an element one bfloat16 ULP from the correctly rounded value,
    # where that is within a tenth of an ULP of the exact one, is 0.9 ULP or more off: more
    # than any such kernel where |y| is in the lower half of its binade (u |y| < 0.75 ULP),
    # within a kernel that rounds at each step (low_precision's A u |y|)
    x = as_float64(torch.randn(4, 256, generator=torch.Generator().manual_seed(7)).bfloat16())
    exact = layer_norm(x)
    right = as_float64(torch.from_numpy(exact).bfloat16())
    binade = 2.0 ** np.floor(np.log2(np.abs(right)))
    ulp = binade * 2.0**-7
    lower = np.abs(right) < 1.5 * binade
    near = (np.abs(right - exact) < 0.1 * ulp) & (np.abs(right) > 1) & lower
    index = np.unravel_index(np.argmax(near), x.shape)
    assert near[index]
    wrong = right.copy()
    wrong[index] += np.sign(wrong[index]) * ulp[index]
    options = {"normalized_shape": 256, "dtype": "bfloat16"}
    c = output_check(x, expected=right, **options)
    assert (c.passed, c.accuracy_class) == (True, "accurate")
    c = output_check(x, expected=wrong, **options)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.worst_index == tuple(int(i) for i in index)
    assert output_check(x, expected=wrong, accept="low-precision", **options).passed
    # the old bound, 3 u |y|, took it for a correct kernel's: 1.5 ULP at least
    assert abs(wrong[index] - exact[index]) < 3 * 2.0**-8 * abs(exact[index])


def test_layer_norm_with_a_per_element_weight_and_bias_gone_wrong_is_not_affine() -> None:
    # the weight and bias differ along the group: a missing bias, the bias before the weight,
    # 1 + w, or the weight reversed leave a residual no statistics error can
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 64))
    w, b = rng.uniform(0.5, 1.5, 64), rng.uniform(-1, 1, 64)
    n = layer_norm(x)
    residual = "not an affine distortion of the normalized values"
    cap = "an output no correct layer can produce"  # 1 + w: |y - b| up to 3 |w| |n|
    wrong = {
        "missing bias": (n * w, residual),
        "bias before weight": ((n + b) * w, residual),
        "1 + w": (n * (1 + w) + b, cap),
        "weight reversed": (n * w[::-1] + b, residual),
    }
    assert output_check(x, normalized_shape=64, weight=w, bias=b, expected=n * w + b).passed
    for name, (y, words) in wrong.items():
        c = output_check(x, normalized_shape=64, weight=w, bias=b, dtype="float32", expected=y)
        assert (c.passed, c.accuracy_class) == (False, "mismatch"), name
        assert c.explanation is not None and c.explanation.startswith(words), name
        assert "a different function" in c.explanation
