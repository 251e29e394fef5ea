"""The output model (``lncheck.output_model``): a candidate group as an affine distortion of the
exact normalized values (implied scale and shift) plus a residual, judged per accuracy class,
and the structural limit ``|y - b| <= |w| sqrt(n - 1)``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt
import pytest

import lncheck
from lncheck import affine_fit, sequential
from lncheck import output_model as om
from lncheck.dtypes import DTYPES
from lncheck.judge import judge
from lncheck.reference import run
from lncheck.sequential import drift_cap
from lncheck.tolerances import (
    CLASSES,
    G_DRIFT,
    allowance,
    atol_floor,
    low_precision_floor,
)

from .support import make_case

F64 = npt.NDArray[np.float64]
JUDGED = CLASSES[:-1]  # the classes judge() tries; len(JUDGED) is a mismatch
U32 = 2.0**-24


def model_of(x: Any, op: str = "layer_norm", **options: Any) -> om.OutputModel:
    model = run(make_case(x, op, **options)).model
    assert model is not None
    return model


def whole(model: om.OutputModel) -> om.OutputBlock:
    return model.at(0, model.layout.groups)


def distorted(block: om.OutputBlock, scale: F64, shift: F64) -> F64:
    """``b + w * (n * s + t)`` per group."""
    a = block.nhat * scale[:, None] + shift[:, None]
    w = 1.0 if block.weight is None else block.weight
    b = 0.0 if block.bias is None else block.bias
    return np.asarray(a * w + b, dtype=np.float64)


def judged(block: om.OutputBlock, actual: F64, dtype: str) -> tuple[list[str], list[str | None]]:
    """Per group the class judge() gives (``mismatch`` for none) and what failed structurally."""
    f = affine_fit.fit(block, actual, block.residual_bound(dtype, "accurate"))
    best, _, kinds = judge(block, f, actual, dtype, JUDGED, 1)
    return [CLASSES[i] for i in best], kinds


# --- judge ---------------------------------------------------------------------------------


def _float32_block() -> om.OutputBlock:
    x = np.random.default_rng(4).standard_normal((4, 4096)).astype(np.float32)
    return whole(model_of(x, normalized_shape=4096))


def test_judge_classes_a_scale_by_each_class_limit() -> None:
    block = _float32_block()
    rounded = np.asarray(block.y.astype(np.float32), dtype=np.float64)
    assert judged(block, rounded, "float32") == (["accurate"] * 4, [None] * 4)
    accurate, _ = block.limits("float32", "accurate")
    sequential, _ = block.limits("float32", "sequential")
    low, _ = block.limits("float32", "low_precision")
    assert np.all(accurate < sequential) and np.all(sequential < low)
    # between the accurate and the sequential limit (each well apart from rounding noise)
    between = float(np.min(np.sqrt(accurate * sequential)))
    assert np.all(accurate[:, 0] * 1.3 < between) and np.all(between < sequential[:, 0] / 1.3)
    scale = np.array([1.0, 1.0 + between, 1.0, 1.0])
    assert judged(block, distorted(block, scale, np.zeros(4)), "float32") == (
        ["accurate", "sequential", "accurate", "accurate"],
        [None] * 4,
    )
    # beyond every class: a mismatch, but no structural one
    scale[2] = 1.0 + 10 * float(low[2, 0])
    classes, kinds = judged(block, distorted(block, scale, np.zeros(4)), "float32")
    assert classes == ["accurate", "sequential", "mismatch", "accurate"] and kinds == [None] * 4


def test_judge_classes_a_shift_by_each_class_limit() -> None:
    x = np.random.default_rng(5).standard_normal((3, 4096)).astype(np.float16)
    block = whole(model_of(x, normalized_shape=4096))
    _, seq_shift = block.limits("float16", "sequential")
    _, low_shift = block.limits("float16", "low_precision")
    # a quarter of the low-precision limit: far beyond the sequential one and its fit noise
    assert np.all(20 * seq_shift < 0.25 * low_shift)
    shift = np.array([0.0, 0.25 * float(low_shift[1, 0]), 0.5 * float(low_shift[2, 0])])
    classes, kinds = judged(block, distorted(block, np.ones(3), shift), "float16")
    assert classes == ["accurate", "low_precision", "low_precision"] and kinds == [None] * 3
    shift[2] = 2 * float(low_shift[2, 0])
    classes, kinds = judged(block, distorted(block, np.ones(3), shift), "float16")
    assert classes[2] == "mismatch" and kinds[2] is None


def test_low_precision_admits_no_variance_larger_than_precision_loss_explains() -> None:
    # kappa 1e4 in float32, n = 4096: a one-pass variance in float32 may be off by
    # (3 + 1.5 * 64) * 2**-24 * K**2 = 590 times the exact one, so s down to 1 / sqrt(594)
    x = (1e4 + np.random.default_rng(11).standard_normal((5, 4096))).astype(np.float32)
    block = whole(model_of(x, normalized_shape=4096))
    low, _ = block.limits("float32", "low_precision")
    # ...and from above lose the whole variance (r = 590 >= 1): s up to sqrt((var + eps) / eps)
    whole_var = np.sqrt(block.model.variance / 1e-5 + 1) - 1
    np.testing.assert_allclose(low[:, 0], whole_var, rtol=1e-12)
    assert np.all(low > 300)
    k = block.k[:, 0]
    floor = low_precision_floor("float32", 4096, k)
    np.testing.assert_allclose(floor, 1 / np.sqrt(4 + 99 * U32 * k * k), rtol=1e-12)
    assert np.all((floor > 0.035) & (floor < 0.05))
    scale = np.array([0.75, 0.2, 0.01, -0.5, 300.0])
    classes, kinds = judged(block, distorted(block, scale, np.zeros(5)), "float32")
    assert classes == ["low_precision", "low_precision", "mismatch", "mismatch", "low_precision"]
    assert kinds == [None] * 5


def test_the_shift_is_judged_as_the_mean_error_the_fit_sees_times_s() -> None:
    # kappa 1e4, n = 4096, float32: a sequential mean may be off by about 1.2 std, so s = 0.64
    # with a fitted shift of 0.77 (t = 1.2) is sequential; s = 0.001 with the same fitted
    # shift is a mean off by 770 std: an output that is nearly +-w everywhere (wrong axes)
    x = (1e4 + np.random.default_rng(11).standard_normal((3, 4096))).astype(np.float32)
    block = whole(model_of(x, normalized_shape=4096))
    _, seq_shift = block.limits("float32", "sequential")
    assert np.all((seq_shift > 1.1) & (seq_shift < 1.3))
    s = 1 / math.sqrt(1 + 1.2**2)
    # the third: s = 0.9 with a fitted shift of 1.15 is a mean off by 1.28 std, beyond 1.2
    scale, shift = np.array([s, 0.001, 0.9]), np.array([1.2 * s, 1.2 * s, 1.15])
    classes, _ = judged(block, distorted(block, scale, shift), "float32")
    assert classes == ["sequential", "mismatch", "mismatch"]


def test_low_precision_admits_a_mean_rounded_to_the_compute_dtype() -> None:
    # float16 at mean/std ~1e4: a mean kept in float16 is off by up to 3 u K std, far more than
    # one std (torch's float16 CPU InstanceNorm of 10**6 values: 7.8 std); a constant group
    # has a representable mean, and a mean off by more than one std there is no rounding
    rng = np.random.default_rng(14)
    x = np.concatenate([1000 + 0.1 * rng.standard_normal((3, 256)), np.full((1, 256), 1000.0)])
    block = whole(model_of(x.astype(np.float16), normalized_shape=256))
    _, shift = block.limits("float16", "low_precision")
    k = block.k[:, 0]
    assert np.all(3 * 2.0**-11 * k[:3] > 5)
    np.testing.assert_allclose(shift[:3, 0], 3 * 2.0**-11 * k[:3], rtol=1e-12)
    assert shift[3, 0] == om.LOW_REACH


def test_the_floor_admits_torchs_float16_instance_norm_at_a_million_values() -> None:
    # measured: its variance 89 times the exact one (s = 0.106) at mean/std 1.3e4
    assert low_precision_floor("float16", 2**20, np.array([1.3e4]))[0] < 0.106 / 10
    # at ordinary conditioning, a variance more than four times the exact one is too much
    assert low_precision_floor("float16", 1024, np.array([1.0]))[0] == pytest.approx(0.5, rel=4e-3)


def test_a_mean_off_by_t_moves_the_scale_by_one_minus_one_over_sqrt_one_plus_t_squared() -> None:
    # torch's bfloat16 BatchNorm of a batch of 2: the mean rounded to bfloat16 sits on one of
    # the two values, so the variance about it doubles (t = 1 std of the exact variance,
    # fitted t s = sqrt(1/2), s = sqrt(1/2)): its own kernel, low_precision, not a mismatch
    x = np.array([[100, 100, 3, 7], [100.5, 100.5, 3.015625, 7.03125]], dtype=np.float32)
    report = lncheck.compare(x, "batch_norm", dtype="bfloat16")
    outputs = [c for c in report.checks if c.quantity == "output"]
    assert {c.accuracy_class for c in outputs} == {"low_precision"}
    block = whole(model_of(x, "batch_norm", training=True, dtype="bfloat16"))
    moved, _ = block.limits("bfloat16", "low_precision", np.ones(4))
    still, _ = block.limits("bfloat16", "low_precision", np.zeros(4))
    assert np.all(moved < om.LOW_REACH)
    np.testing.assert_allclose(moved - still, 1 - math.sqrt(0.5), rtol=1e-9)


def test_judge_flags_a_residual_whatever_the_dtype() -> None:
    for dtype in ("float32", "float16", "bfloat16"):
        x = np.random.default_rng(6).standard_normal((3, 256)) * 4 + 120  # kappa 30
        block = whole(model_of(x, normalized_shape=256, dtype=dtype))
        y = block.y.copy()
        y[1] = block.y[0]  # a row copied from its neighbour
        classes, kinds = judged(block, y, dtype)
        assert classes == ["accurate", "mismatch", "accurate"], dtype
        assert kinds == [None, "residual", None], dtype


def test_judge_fails_a_residual_that_leaves_the_scale_and_shift_alone() -> None:
    # a per-element bias of +-0.05 left out: a small, nearly orthogonal residual
    rng = np.random.default_rng(0)
    x = (120 + 4 * rng.standard_normal((3, 256))).astype(np.float16)
    b = (0.05 * rng.choice([-1.0, 1.0], 256)).astype(np.float16)
    block = whole(model_of(x, normalized_shape=256, bias=b))
    y = block.y.copy()
    y[2] -= b.astype(np.float64)
    f = affine_fit.fit(block, y, block.residual_bound("float16", "accurate"))
    assert np.max(np.abs(f.ds)) < 0.01 and np.max(np.abs(f.shift)) < 0.01
    _, low_shift = block.limits("float16", "low_precision")
    assert abs(f.shift[2]) < float(low_shift[2, 0])  # the statistics alone would pass
    classes, kinds = judged(block, y, "float16")
    assert classes == ["accurate", "accurate", "mismatch"]
    assert kinds == [None, None, "residual"]


def test_a_group_is_constant_when_its_values_are_equal_not_when_its_variance_underflows() -> None:
    # subnormal values that differ: their squared differences underflow to a variance of 0
    # unscaled, and the group was taken for a constant one (its exact output its bias)
    x = np.array([[1e-310, 2e-310, 3e-310, 4e-310], [5e-310] * 4, [1.0, 1.0, 1.0, 1.0]])
    model = model_of(x, normalized_shape=4, eps=0.0, dtype="float64")
    assert model.constant.tolist() == [False, True, True]
    assert model.exact_mean.tolist() == [False, True, True]


def test_judge_flags_a_value_beyond_the_cap() -> None:
    x = np.full((2, 32), 3.0, dtype=np.float32)
    block = whole(model_of(x, normalized_shape=32, eps=1e-12))
    assert np.all(block.y == 0) and block.model.constant.all()
    y = np.zeros((2, 32))
    y[1, 7] = 100.0
    classes, kinds = judged(block, y, "float32")
    assert classes == ["accurate", "mismatch"] and kinds == [None, "cap"]


# --- the structural limit ------------------------------------------------------------------


def test_the_exact_output_reaches_sqrt_n_minus_1_and_no_further() -> None:
    # one value apart from n - 1 equal ones: the extreme of |n_i| for the biased variance
    n = 32
    x = np.zeros((1, n))
    x[0, 0] = 1.0
    block = whole(model_of(x, normalized_shape=n, eps=0.0, dtype="float64"))
    with mpmath.workdps(50):
        mean = mpmath.mpf(1) / n
        var = (1 - mean) ** 2 / n + (n - 1) * mean**2 / n
        exact = (1 - mean) / mpmath.sqrt(var)
        assert mpmath.almosteq(exact, mpmath.sqrt(n - 1), 1e-40)
    assert block.y[0, 0] == pytest.approx(math.sqrt(n - 1), rel=4e-16)
    rng = np.random.default_rng(7)
    y = whole(model_of(rng.standard_normal((50, n)) ** 3, normalized_shape=n, eps=0.0)).y
    assert np.max(np.abs(y)) <= math.sqrt(n - 1) * (1 + 1e-12)


def test_the_cap_of_rms_norm_is_sqrt_n() -> None:
    assert model_of(np.ones((2, 32)), "rms_norm", normalized_shape=32).cap == math.sqrt(32)


def test_the_cap_of_layer_norm_is_sqrt_n_minus_1() -> None:
    assert model_of(np.ones((2, 32)), normalized_shape=32).cap == pytest.approx(math.sqrt(31))


# --- bounds of the residual and the statistics ---------------------------------------------


def test_residual_bound_by_hand() -> None:
    # float32, no weight or bias: (u + u)|y| (the kernel's one rounding and the exact output's)
    # + 3v|n| + 4 v (1 + kappa) + floor (u = v = 2**-24); low_precision rounds at every step
    # (3u + u)
    x = np.array([[1.0, 2.0, 4.0, 8.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    block = whole(model_of(x, normalized_shape=4))
    mean, std = 3.75, math.sqrt(np.var([1.0, 2.0, 4.0, 8.0]) + 1e-5)
    kappa = mean / std
    assert block.model.kappa[0] == pytest.approx(kappa, rel=1e-12)
    y = (np.array([1.0, 2.0, 4.0, 8.0]) - mean) / std
    want = 5 * U32 * np.abs(y) + 4 * U32 * (1 + kappa) + atol_floor("float32")
    bound = block.residual_bound("float32", "accurate")
    np.testing.assert_allclose(bound[0], want, rtol=1e-9)
    low = block.residual_bound("float32", "low_precision")
    np.testing.assert_allclose(low[0], want + 2 * U32 * np.abs(y), rtol=1e-9)
    # a constant group of equal weight: equal inputs give equal outputs, no fused rounding
    np.testing.assert_allclose(bound[1], atol_floor("float32"), rtol=1e-9)


def test_limits_of_eval_mode_have_no_statistics_terms() -> None:
    x = np.random.default_rng(8).standard_normal((4, 3, 16)).astype(np.float32)
    mean, var = np.array([100.0, 0.0, -3.0]), np.array([1.0, 4.0, 0.25])
    model = model_of(x, "batch_norm", training=False, running_mean=mean, running_var=var)
    assert model.running
    block = whole(model)
    scale, shift = block.limits("float32", "sequential")
    # rsqrt(var + eps) only: scale A v plus the second order of the fused shift 4 v K
    k = 1 + np.abs(mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(shift[:, 0], 4 * U32 * k, rtol=1e-12)
    np.testing.assert_allclose(scale[:, 0], 3 * U32 + 0.5 * (4 * U32 * k) ** 2, rtol=1e-12)
    # the same groups normalized by batch statistics allow far more
    batch = whole(model_of(x, "batch_norm", training=True))
    assert np.all(batch.limits("float32", "sequential")[0] > 2.5 * scale)
    # a bias: the folded shift b - mean * scale rounds relative to |b| / |w| too
    w, b = np.array([2.0, 0.5, 1.0], np.float32), np.array([1e4, -3.0, 0.0], np.float32)
    options = {"running_mean": mean, "running_var": var, "weight": w, "bias": b}
    biased = whole(model_of(x, "batch_norm", training=False, **options))
    np.testing.assert_allclose(biased.bias_share()[:, 0], np.abs(b / w), rtol=1e-15)
    _, shift = biased.limits("float32", "sequential")
    np.testing.assert_allclose(shift[:, 0], 4 * U32 * (k + np.abs(b / w)), rtol=1e-12)


def test_torchs_fused_eval_batch_norm_with_a_large_bias_is_accurate() -> None:
    # y = x * scale + (b - running_mean * scale): the shift rounds by 2**-24 * 1e4 per channel
    import torch

    rng = np.random.default_rng(13)
    x = (rng.standard_normal((8, 14, 4096)) * 1.0 + 30).astype(np.float32)
    rm, rv = rng.normal(30, 0.1, 14).astype(np.float32), np.full(14, 1.0, np.float32)
    w, b = np.ones(14, np.float32), np.full(14, 1e4, np.float32)
    t = {k: torch.from_numpy(v) for k, v in {"x": x, "rm": rm, "rv": rv, "w": w, "b": b}.items()}
    y = torch.nn.functional.batch_norm(t["x"], t["rm"], t["rv"], t["w"], t["b"], training=False)
    options = {"running_mean": rm, "running_var": rv, "weight": w, "bias": b}
    report = lncheck.compare(x, "batch_norm", training=False, backend=None, expected=y, **options)
    (c,) = report.checks
    assert (c.passed, c.accuracy_class) == (True, "accurate")


def test_limits_of_a_sequential_variance_by_hand() -> None:
    x = np.random.default_rng(9).standard_normal((2, 1024)).astype(np.float32)
    block = whole(model_of(x, normalized_shape=1024))
    k = 1 + block.model.kappa
    a = allowance("float32", 1024, "sequential")
    steps = np.maximum(1024 * block.model.peak, 32.0)
    shift = (a.shift + a.fused) * k
    scale = a.scale * k + a.scale_const + a.sequential * steps
    scale += np.minimum(a.drift * k, G_DRIFT) + 0.5 * shift**2
    # squares below half the running sum's last place h lost whole, those up to 2 h rounded
    # up: s up to 1 / sqrt(1 - share) for the net share lost
    d = x.astype(np.float64) - x.astype(np.float64).mean(axis=1, keepdims=True)
    q = d * d
    h = U32 * q.sum(axis=1, keepdims=True) / 2
    net = np.where(q < h, q, 0.0).sum(axis=1) - np.where(
        (q >= h) & (q < 2 * h), 2 * h - q, 0.0
    ).sum(axis=1)
    share = np.fmax(net, 0.0) / q.sum(axis=1)
    np.testing.assert_allclose(block.model.stagnant, share, rtol=1e-9)
    scale += share / (np.sqrt(1 - share) * (1 + np.sqrt(1 - share)))  # 1 / sqrt(1 - share) - 1
    got_scale, got_shift = block.limits("float32", "sequential")
    np.testing.assert_allclose(got_shift[:, 0], shift, rtol=1e-12)
    np.testing.assert_allclose(got_scale[:, 0], scale, rtol=1e-12)
    # the hand values of the coefficients (tolerances' docstring)
    assert a.shift == pytest.approx((3 + 0.5 * 10) * U32 + 0.5 * 1023 * U32)
    assert a.sequential == pytest.approx(0.2 * U32) and a.quadratic == 0.0


def test_the_reference_output_is_within_4_ulps_of_exact_at_large_mean() -> None:
    # mean/std 3e4, group sizes that are not powers of two
    for n in (10, 1000, 3001):
        x = 3e4 + np.random.default_rng(n).standard_normal((2, n))
        y = whole(model_of(x, normalized_shape=n, dtype="float64")).y
        with mpmath.workdps(60):
            for r in range(2):
                values = [mpmath.mpf(float(v)) for v in x[r]]
                mean = mpmath.fsum(values) / n
                var = mpmath.fsum((v - mean) ** 2 for v in values) / n
                rstd = 1 / mpmath.sqrt(var + mpmath.mpf(1e-5))
                exact = np.array([float((v - mean) * rstd) for v in values])
                ulps = np.abs(y[r] - exact) / np.spacing(np.abs(exact))
                assert np.max(ulps) <= 4, (n, float(np.max(ulps)))
    assert DTYPES["float64"].unit_roundoff == 2.0**-53


def test_a_constant_group_summed_exactly_admits_no_mean_error() -> None:
    # the whole group is one float16 value at mean/std 1e5: any float32 sum is exact, x - mean
    # is 0 and the output is the bias; a candidate off by 66 is no sequential drift
    import lncheck

    x = np.full((8, 1, 125), -29488.0, dtype=np.float16)
    w, b = np.array([0.98], np.float16), np.array([-42.25], np.float16)
    options = {"weight": w, "bias": b, "dtype": "float16", "training": True}
    exact = np.full(x.shape, -42.25, np.float16)
    ok = lncheck.compare(x, "batch_norm", backend=None, expected=exact, **options)
    assert ok.passed and ok.checks[0].accuracy_class == "accurate"
    shifted = np.full(x.shape, -108.5625, np.float16)
    bad = lncheck.compare(x, "batch_norm", backend=None, expected=shifted, **options)
    check = next(c for c in bad.checks if c.quantity == "output")
    assert not check.passed and check.accuracy_class == "mismatch"
    model = run(make_case(x, "batch_norm", weight=w, bias=b, dtype="float16")).model
    assert model is not None and model.exact_mean.all()
    block = whole(model)
    k = block.k[:, 0]
    c = allowance("float16", 1000, "sequential")
    # a tree merge's few ulps and the fused form's rounding, where a sum that may round would
    # allow about 10 times more
    merged = 2.0 * c.scale_const + c.fused
    assert np.array_equal(block.limits("float16", "sequential")[1][:, 0], merged * k)
    assert c.shift > 10 * merged


# --- correlated roundings --------------------------------------------------------------------


def test_equal_inputs_round_alike_and_move_the_fitted_line_together() -> None:
    # torch's bfloat16 BatchNorm of 166,816 values that take 44 values only: every level's
    # roundings repeat some 3,800 times, and move the fitted line by far more than 10
    # independent sigmas (this was "not an affine distortion")
    data = np.load(Path(__file__).parent / "data" / "torch-cpu" / "batch_norm_bf16_44_levels.npz")
    x, y = data["levels"][data["index"]], data["outputs"][data["index"]]
    options: dict[str, Any] = {
        "weight": data["weight"],
        "bias": np.zeros(1, np.float32),
        "dtype": "bfloat16",
        "training": True,
        "backend": None,
    }
    model = model_of(x, "batch_norm", weight=data["weight"], dtype="bfloat16")
    assert 44 <= model.levels[0] <= 50  # the bfloat16 values between the smallest and largest
    (check,) = lncheck.compare(x, "batch_norm", expected=y, **options).checks
    assert check.passed and check.accuracy_class == "sequential", check.explanation
    # one level's 13,203 outputs moved to the next level's value: a different function
    level = int(np.argmin(np.abs(data["outputs"])))
    wrong = np.where(data["index"] == level, data["outputs"][level + 1], y)
    (check,) = lncheck.compare(x, "batch_norm", expected=wrong, **options).checks
    assert not check.passed and check.accuracy_class == "mismatch"
    assert (check.explanation or "").startswith("not an affine distortion")


def test_a_running_mean_an_outlier_leaves_off_is_sequential() -> None:
    # an Apex-style strided Welford's bfloat16 InstanceNorm (verdict matrix c0368): 436,693
    # equal values and one 2 ulps below, mean/std 9e4. The lane that holds the outlier stops
    # pulling its mean back once the updates fall below its last place, every later square
    # is taken about it, and the outlier's output comes out 6.8 % short: sequential, not a
    # loss of every digit (``tolerances.G_STUCK``)
    n, at = 436_694, 13_264
    x = np.full((1, 1, n), -1.7956864e7, np.float32)
    x[0, 0, at] = -1.8087936e7
    y = np.full((1, 1, n), -13952.0, np.float32)
    y[0, 0, at] = -1792.0  # exact: -900.66
    options: dict[str, Any] = {
        "affine": True,
        "weight": np.array([-19.75], np.float32),
        "bias": np.array([-13952.0], np.float32),
        "dtype": "bfloat16",
        "backend": None,
    }
    (check,) = lncheck.compare(x, "instance_norm", expected=y, **options).checks
    assert check.passed and check.accuracy_class == "sequential", check.explanation
    assert check.implied_scale == pytest.approx(1 - 0.068, abs=0.002)
    # off by 30 %: more than a stuck mean explains
    y[0, 0, at] = -13952.0 + 0.7 * (-900.66 + 13952.0)
    (check,) = lncheck.compare(x, "instance_norm", expected=y, **options).checks
    assert not check.passed and check.accuracy_class == "low_precision"


def test_scores_carry_the_one_pass_variances_bound_of_each_centred_group() -> None:
    # G_ONE_PASS * log2(n) * v * K**2, K = 1 + |mean| * rstd; RMSNorm computes no variance
    x = np.random.default_rng(9).standard_normal((2, 64)) + np.array([[0.0], [1000.0]])
    x = x.astype(np.float32).astype(np.float64)  # the values computed with
    for op, centred in (("layer_norm", True), ("rms_norm", False)):
        block = whole(model_of(x, op, normalized_shape=64, dtype="float32"))
        f = affine_fit.fit(block, block.y)
        _, scores, _ = judge(block, f, block.y, "float32", JUDGED, 1)
        if not centred:
            assert np.all(scores.one_pass == 0)
            continue
        k = 1 + np.abs(x.mean(-1)) / np.sqrt(x.var(-1) + 1e-5)
        np.testing.assert_allclose(scores.one_pass, 6 * 2.0**-24 * k**2, rtol=1e-9)
    # a constant group with exact sums computes no variance at all
    constant = whole(model_of(np.full((1, 64), 1449.0), normalized_shape=64, eps=1e-12))
    f = affine_fit.fit(constant, constant.y)
    _, scores, _ = judge(constant, f, constant.y, "float32", JUDGED, 1)
    assert scores.one_pass.tolist() == [0.0]


def test_the_drift_cap_by_hand() -> None:
    k = np.array([1e2, 1e4, 1e5])
    np.testing.assert_array_equal(drift_cap("float16", k, np.array(False)), G_DRIFT)
    # sqrt(v K) with float32 accumulation, never below G_DRIFT
    want = [G_DRIFT, math.sqrt(U32 * 1e4), math.sqrt(U32 * 1e5)]
    np.testing.assert_allclose(drift_cap("float16", k, np.array(True)), want, rtol=1e-15)


def test_a_strided_welford_on_float16_data_at_three_levels_is_sequential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # float16 values 1e4 from their mean with a spread of 0.15 of their spacing: most sit on one
    # level, and an Apex-style Welford's running means stick off (``tolerances.FEW_LEVELS``):
    # its variance is 4 % off in the worst of these rows (benchmarks/welford_drift.py --levels)
    from benchmarks.verdict_matrix.algorithms import strided_welford

    rng = np.random.default_rng([0, 10_000, 15, 65_536])
    x = (1e4 + 0.15 * 8.0 * rng.standard_normal((16, 65_536))).astype(np.float16)
    mean, var = strided_welford(x.astype(np.float32))
    y = ((x - mean) / np.sqrt(var + np.float32(1e-5))).astype(np.float16)
    levels = np.array([len(np.unique(row)) for row in x])
    assert (
        levels.max() == 3
        and np.isclose(var / x.astype(np.float64).var(1)[:, None], 1.04, atol=0.01).any()
    )

    def check() -> tuple[bool, str | None]:
        report = lncheck.compare(x, "layer_norm", normalized_shape=65_536, backend=None, expected=y)
        (c,) = report.checks
        return c.passed, c.accuracy_class

    assert check() == (True, "sequential")
    # with the cap of data at many levels it would fail: a correct kernel called low_precision
    monkeypatch.setattr(sequential, "drift_cap", lambda dtype, k, few: np.full_like(k, G_DRIFT))
    assert check() == (False, "low_precision")
