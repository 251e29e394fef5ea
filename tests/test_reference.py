"""The float64 reference: hand-computed values, torch float64, an exact oracle, its identities,
and the knobs of its core (variance estimator, where eps goes, a weight offset)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import lncheck
from lncheck import ops, reference
from lncheck.case import Case
from lncheck.moments import group_statistics
from lncheck.reference import layer_norm, normalize
from lncheck.result import as_array

from .support import make_case, settings

# --- hand-computed values ------------------------------------------------------------------------


def test_layer_norm_by_hand() -> None:
    # x = [1, 2, 3, 4]: mean 2.5, biased var ((1.5^2 + 0.5^2) * 2) / 4 = 1.25.
    y = layer_norm([[1.0, 2.0, 3.0, 4.0]], 4, eps=0.0)
    s = math.sqrt(1.25)
    np.testing.assert_allclose(y, [[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]], rtol=0, atol=1e-15)


def test_layer_norm_by_hand_with_eps_weight_and_bias() -> None:
    # x = [0, 0, 0, 4]: mean 1, var (1 + 1 + 1 + 9) / 4 = 3; eps 1 makes the std exactly 2.
    y = layer_norm(
        [0.0, 0.0, 0.0, 4.0], 4, weight=[1.0, 2.0, 3.0, 4.0], bias=[0.5, 0.5, 0.5, 0.5], eps=1.0
    )
    np.testing.assert_array_equal(
        y, [-0.5 * 1 + 0.5, -0.5 * 2 + 0.5, -0.5 * 3 + 0.5, 1.5 * 4 + 0.5]
    )


def test_two_dim_normalized_shape_by_hand() -> None:
    # normalized_shape (2, 2): each (2, 2) block is one group of 4 values.
    x = np.array([[[1.0, 3.0], [5.0, 7.0]], [[2.0, 2.0], [2.0, 6.0]]])
    y = layer_norm(x, (2, 2), eps=0.0)
    # block 0: mean 4, var (9 + 1 + 1 + 9) / 4 = 5; block 1: mean 3, var (1 + 1 + 1 + 9) / 4 = 3
    np.testing.assert_allclose(y[0], (x[0] - 4) / math.sqrt(5), atol=1e-15)
    np.testing.assert_allclose(y[1], (x[1] - 3) / math.sqrt(3), atol=1e-15)


def test_constant_group_normalizes_to_zero_and_eps_zero_gives_nan() -> None:
    np.testing.assert_array_equal(layer_norm([5.0, 5.0, 5.0], 3, eps=1e-5), [0.0, 0.0, 0.0])
    assert np.isnan(layer_norm([5.0, 5.0], 2, eps=0.0)).all()  # 0 / 0, as in torch


def test_large_mean_does_not_cancel() -> None:
    # float32 values near 1e4 with a spread of ~1: the naive E[x^2] - E[x]^2 loses every digit.
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal(4096)).astype(np.float32).astype(np.float64)
    mean, var = group_statistics(x[None])
    exact_mean = math.fsum(x) / x.size
    exact_var = math.fsum((v - exact_mean) ** 2 for v in x) / x.size
    assert abs(mean[0] - exact_mean) <= 4 * np.spacing(exact_mean)
    assert abs(var[0] - exact_var) <= 1e-13 * exact_var


# --- against torch in float64, and its own properties -------------------------------------------

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@given(
    shape=shapes,
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
)
def test_matches_torch_float64(shape: tuple[int, ...], k: int, seed: int, eps: float) -> None:
    k = min(k, len(shape))
    ns = shape[len(shape) - k :]
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, 3), size=shape)
    w = rng.normal(1, 0.5, size=ns)
    b = rng.normal(0, 0.5, size=ns)
    want = torch.nn.functional.layer_norm(
        torch.tensor(x), ns, torch.tensor(w), torch.tensor(b), eps
    ).numpy()
    np.testing.assert_allclose(layer_norm(x, ns, w, b, eps), want, rtol=1e-12, atol=1e-12)


@given(
    shape=shapes, seed=st.integers(0, 2**16), loc=st.floats(-1e3, 1e3), scale=st.floats(1e-2, 1e2)
)
def test_output_has_zero_mean_and_unit_variance(
    shape: tuple[int, ...], seed: int, loc: float, scale: float
) -> None:
    assume(shape[-1] >= 2)
    x = np.random.default_rng(seed).normal(loc, scale, size=shape)
    var = x.var(axis=-1)
    assume(var.min() > 1e-6)  # well above eps, so the output's variance var / (var + eps) ~ 1
    eps = 1e-9
    y = layer_norm(x, shape[-1], eps=eps)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + eps), rtol=1e-9)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-3)


def test_axes_and_normalized_shape_agree() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    by_shape = normalize(x, "layer_norm", normalized_shape=(3, 4), eps=1e-5)
    by_axes = normalize(x, "layer_norm", axes=(-2, -1), eps=1e-5)
    np.testing.assert_array_equal(by_shape, by_axes)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_memory_layout_does_not_matter(layout: str) -> None:
    x = np.random.default_rng(2).standard_normal((5, 6, 7))
    y = layer_norm(np.asarray(x, order=layout), 7)
    np.testing.assert_array_equal(y, layer_norm(np.ascontiguousarray(x), 7))


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
        got = normalize(x[None], "layer_norm", normalized_shape=(16,), eps=1e-5)[0]
        exact = _exact_layer_norm(list(x), 1e-5)
        for g, e in zip(got, exact, strict=True):
            spacing = np.spacing(max(abs(float(e)), 1.0))  # ulps at the output's scale
            worst = max(worst, float(abs(mpmath.mpf(float(g)) - e)) / spacing)
    assert worst <= 4.0, worst


# --- identities between ops ----------------------------------------------------------------------


X = np.random.default_rng(11).normal(0.3, 1.7, size=(2, 4, 3, 5))


def test_layer_norm_over_non_batch_dims_is_group_norm_with_one_group() -> None:
    ln = normalize(X, "layer_norm", normalized_shape=(4, 3, 5), affine=False)
    gn = normalize(X, "group_norm", groups=1, affine=False)
    np.testing.assert_allclose(ln, gn, rtol=0, atol=1e-14)


def test_instance_norm_is_group_norm_with_one_channel_per_group() -> None:
    instance = normalize(X, "instance_norm")
    gn = normalize(X, "group_norm", groups=4, affine=False)
    np.testing.assert_allclose(instance, gn, rtol=0, atol=1e-14)


def test_batch_norm_training_on_n_c_is_layer_norm_over_axis_0() -> None:
    x2 = X.reshape(2, -1).T.copy()  # (N=60, C=2)
    bn = normalize(x2, "batch_norm", affine=False)
    ln = normalize(x2, "layer_norm", axes=(0,), affine=False)
    np.testing.assert_allclose(bn, ln, rtol=0, atol=1e-14)


def test_axes_over_trailing_dims_equal_shape() -> None:
    by_axes = normalize(X, "layer_norm", axes=(-2, -1))
    by_shape = normalize(X, "layer_norm", normalized_shape=(3, 5))
    np.testing.assert_array_equal(by_axes, by_shape)


@pytest.mark.parametrize(
    ("op", "options"),
    [("group_norm", {"groups": 2}), ("instance_norm", {}), ("batch_norm", {})],
    ids=["group_norm", "instance_norm", "batch_norm"],
)
def test_channels_last_gives_the_same_statistics(op: str, options: dict[str, Any]) -> None:
    first = reference.run(make_case(X, op, dtype="float64", **options)).quantities
    nhwc = np.moveaxis(X, 1, -1)
    last = reference.run(
        make_case(nhwc, op, dtype="float64", channel_axis=-1, **options)
    ).quantities
    np.testing.assert_array_equal(first["mean"], last["mean"])
    np.testing.assert_array_equal(first["var"], last["var"])
    np.testing.assert_allclose(
        np.moveaxis(as_array(first["output"]), 1, -1), as_array(last["output"]), rtol=0, atol=1e-15
    )


# --- error bounds the reference attaches ---------------------------------------------------------


def test_variance_read_back_from_a_subnormal_float16_rstd() -> None:
    # eps 1e10 makes torch's float16 rstd (1e-5) subnormal: a variance read back as
    # 1 / rstd**2 - eps carries rstd's absolute rounding error, which the "floor" term allows
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    report = lncheck.compare(x, normalized_shape=8, dtype="float16", eps=1e10)
    assert report.passed, [c.message() for c in report.failures]
    bound = reference.run(make_case(x, normalized_shape=8, dtype="float16", eps=1e10)).bounds
    assert (np.asarray(bound["var"].terms["floor"]) > 0).all()


# --- the knobs of the core: variance estimator, eps placement, weight offset ---------------------

ROWS = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 4.0], [-2.0, 2.0, -2.0, 2.0]])
W = np.array([0.0, 0.5, -1.0, 1.0])
B = np.array([0.5, 0.5, 0.5, -0.25])


def _with_knobs(case: Case, **knobs: Any) -> Case:
    """``case`` with its spec's core knobs changed, as a non-torch convention would set them."""
    return case.with_(spec=case.spec.with_(**knobs))


def _quantities(case: Case) -> dict[str, np.ndarray]:
    return {k: as_array(v) for k, v in reference.run(case).quantities.items()}


def test_unbiased_variance_by_hand() -> None:
    case = make_case(ROWS, normalized_shape=4, eps=0.5, dtype="float64", weight=W, bias=B)
    q = _quantities(_with_knobs(case, variance="unbiased"))
    mean = ROWS.mean(axis=1, keepdims=True)  # 2.5, 1, 0
    var = ((ROWS - mean) ** 2).sum(axis=1, keepdims=True) / 3  # 5/3, 4, 16/3: divided by n - 1
    np.testing.assert_allclose(q["var"], [5 / 3, 4.0, 16 / 3], rtol=1e-15)
    np.testing.assert_allclose(q["rstd"], 1 / np.sqrt(var.ravel() + 0.5), rtol=1e-15)
    np.testing.assert_allclose(q["output"], (ROWS - mean) / np.sqrt(var + 0.5) * W + B, rtol=1e-15)
    # the biased estimator divides by n: 1.25, 3, 4
    np.testing.assert_allclose(_quantities(case)["var"], [1.25, 3.0, 4.0], rtol=1e-15)


def test_unbiased_variance_counts_the_whole_group() -> None:
    # GroupNorm: n is the group's size (2 channels x 2 positions), not a dimension of the input
    x = np.array([[[1.0, 3.0], [5.0, 7.0], [0.0, 0.0], [1.0, 1.0]]])  # groups [1,3,5,7], [0,0,1,1]
    case = make_case(x, "group_norm", groups=2, eps=0.0, dtype="float64")
    q = _quantities(_with_knobs(case, variance="unbiased"))
    np.testing.assert_allclose(q["var"], [20 / 3, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(
        q["output"].ravel(),
        [-3, -1, 1, 3, -0.5, -0.5, 0.5, 0.5] / np.repeat(np.sqrt([20 / 3, 1 / 3]), 4),
        rtol=1e-15,
    )


def test_unbiased_variance_leaves_torchs_running_update_alone() -> None:
    # the running variance always takes the unbiased batch variance: no second correction
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    case = make_case(x, "batch_norm", eps=0.0, dtype="float64")
    q = _quantities(_with_knobs(case, variance="unbiased"))
    np.testing.assert_allclose(q["var"], [2.0, 200.0], rtol=1e-15)
    np.testing.assert_allclose(q["output"], [[-1 / 2**0.5] * 2, [1 / 2**0.5] * 2], rtol=1e-15)
    np.testing.assert_allclose(q["running_var"], [0.9 + 0.2, 0.9 + 20.0], rtol=1e-15)
    np.testing.assert_allclose(q["running_mean"], [0.2, 2.0], rtol=1e-15)


def test_eps_on_the_std_by_hand() -> None:
    # [-2, 2, -2, 2]: mean 0, var 4, std 2; eps 1 on the std divides by 3, under the root by sqrt(5)
    case = make_case(ROWS[2:], normalized_shape=4, eps=1.0, dtype="float64")
    q = _quantities(_with_knobs(case, eps_placement="std"))
    np.testing.assert_allclose(q["output"], [[-2 / 3, 2 / 3, -2 / 3, 2 / 3]], rtol=1e-15)
    np.testing.assert_allclose(q["rstd"], [1 / 3], rtol=1e-15)
    np.testing.assert_array_equal(q["var"], [4.0])
    default = _quantities(case)
    np.testing.assert_allclose(default["output"], ROWS[2:] / math.sqrt(5), rtol=1e-15)


def test_eps_on_the_std_of_rms_norm_by_hand() -> None:
    x = np.array([[3.0, 4.0]])  # mean square 12.5
    case = make_case(x, "rms_norm", normalized_shape=2, eps=0.5, dtype="float64")
    q = _quantities(_with_knobs(case, eps_placement="std"))
    np.testing.assert_allclose(q["output"], x / (math.sqrt(12.5) + 0.5), rtol=1e-15)


def test_weight_offset_by_hand() -> None:
    # [0, 0, 0, 4]: mean 1, var 3; eps 1 makes the std 2, so n = [-0.5, -0.5, -0.5, 1.5]
    case = make_case(ROWS[1:2], normalized_shape=4, eps=1.0, dtype="float64", weight=W, bias=B)
    result = reference.run(_with_knobs(case, weight_offset=1.0))
    y = as_array(result.quantities["output"])
    # scaled by 1 + w = [1, 1.5, 0, 2]
    np.testing.assert_array_equal(y, [[-0.5 + 0.5, -0.75 + 0.5, 0.0 + 0.5, 3.0 - 0.25]])
    # the output's size for the tolerance is that of the weight really applied: 2 + 0.5
    np.testing.assert_array_equal(result.bounds["output"].magnitude, [2.5])
    np.testing.assert_array_equal(
        as_array(reference.run(case).quantities["output"]),
        [[-0.5 * 0.0 + 0.5, -0.5 * 0.5 + 0.5, -0.5 * -1.0 + 0.5, 1.5 * 1.0 - 0.25]],
    )


def test_weight_offset_of_rms_norm_by_hand() -> None:
    # zero-centred weights (Gemma's RMSNorm): x / rms * (1 + w)
    x = np.array([[3.0, 4.0]])
    w = np.array([0.0, -0.5])
    case = make_case(x, "rms_norm", normalized_shape=2, eps=0.0, dtype="float64", weight=w)
    y = as_array(reference.run(_with_knobs(case, weight_offset=1.0)).quantities["output"])
    np.testing.assert_allclose(y, [[3 / math.sqrt(12.5), 0.5 * 4 / math.sqrt(12.5)]], rtol=1e-15)


def test_every_knob_at_once_by_hand() -> None:
    case = make_case(ROWS, normalized_shape=4, eps=0.25, dtype="float64", weight=W, bias=B)
    knobs = {"variance": "unbiased", "eps_placement": "std", "weight_offset": 1.0}
    q = _quantities(_with_knobs(case, **knobs))
    mean = ROWS.mean(axis=1, keepdims=True)
    std = np.sqrt(((ROWS - mean) ** 2).sum(axis=1, keepdims=True) / 3)
    np.testing.assert_allclose(q["output"], (ROWS - mean) / (std + 0.25) * (1 + W) + B, rtol=1e-15)
    np.testing.assert_allclose(q["rstd"], 1 / (std.ravel() + 0.25), rtol=1e-15)


def test_knobs_reach_the_reference_through_the_spec_only() -> None:
    """A spec built by ``ops.build`` has torch's knobs; changing one changes the reference."""
    spec = ops.build(settings("layer_norm", normalized_shape=4), (3, 4), "float64")
    assert (spec.variance, spec.eps_placement, spec.weight_offset) == ("biased", "sqrt", 0.0)
    case = make_case(ROWS, normalized_shape=4, dtype="float64", weight=W, bias=B)
    assert case.spec == spec
    base = _quantities(case)["output"]
    for knobs in ({"variance": "unbiased"}, {"eps_placement": "std"}, {"weight_offset": 1.0}):
        assert not np.allclose(_quantities(_with_knobs(case, **knobs))["output"], base), knobs


# What the reference gave before its core had knobs (lncheck 7809f03, Plan-based): the default
# knobs must reproduce it to the last bit.
X6 = np.array([[0.1, 0.7, -1.3, 2.9, 5.0, -0.25], [3.0, 3.5, 2.75, 3.25, 3.0, 10.0]])
W6 = np.array([0.5, 1.5, -2.0, 1.0, 0.25, 3.0])
B6 = np.array([0.1, -0.2, 0.3, 0.0, 1.0, -1.0])
BEFORE: dict[str, tuple[np.ndarray, str, dict[str, Any], dict[str, list[float]]]] = {
    "layer_norm": (
        X6,
        "layer_norm",
        {"normalized_shape": 6, "eps": 1e-5, "weight": W6, "bias": B6},
        {
            "output": [
                -0.15663365504460433, -0.5467492896404196, 2.643006499491197,
                0.8032045692235709, 1.447639619677039, -3.0334788850099184,
                -0.14206127759207343, -0.6357102996657322, 1.4618941324419525,
                -0.3872980441473175, 0.8789693612039633, 5.680891261541227,
            ],
            "mean": [1.1916666666666667, 4.25],
            "var": [4.523680555555556, 6.666666666666667],
            "rstd": [0.4701685283259927, 0.3872980441473175],
        },
    ),
    "rms_norm": (
        X6,
        "rms_norm",
        {"normalized_shape": 6, "eps": 1e-6, "weight": W6},
        {
            "output": [
                0.02050877406300103, 0.43068425532302157, 1.0664562512760536,
                1.1895088956540596, 0.5127193515750257, -0.30763161094501545,
                0.3016383173620363, 1.0557341107671268, -1.1060071636607995,
                0.6535496876177452, 0.15081915868101814, 6.032766347240726,
            ],
            "mean": [0.0, 0.0],
            "var": [5.9437500000000005, 24.729166666666668],
            "rstd": [0.41017548126002057, 0.20109221157469084],
        },
    ),
    "group_norm": (
        X6.reshape(2, 6, 1),
        "group_norm",
        {"groups": 3, "eps": 1e-3, "weight": W6, "bias": B6},
        {
            "output": [  # [0]: the split mean's, nearer mpmath's -0.3972451580988468979
                -0.39724515809884686, 1.2917354742965406, 2.2997732811872784,
                0.9998866405936392, 1.249981861384678, -3.999782336616136,
                -0.39604736883284064, 1.288142106498522, 2.2841894753313623,
                0.9920947376656812, 0.7500102034569354, 1.9998775585167747,
            ],
            "mean": [0.4, 0.7999999999999999, 2.375, 3.25, 3.0, 6.5],
            "var": [0.08999999999999997, 4.41, 6.890625, 0.0625, 0.0625, 12.25],
            "rstd": [
                3.31496772065898, 0.4761364955207805, 0.3809247411576046,
                3.968378950662725, 3.968378950662725, 0.2857026246206452,
            ],
        },
    ),
    "batch_norm": (
        X6.T.copy(),
        "batch_norm",
        {"eps": 1e-5, "weight": W6[:2], "bias": B6[:2]},
        {
            "output": [
                -0.15663365504460433, -0.9261838327762204, -0.015583096546806535,
                -0.6357102996657322, -0.4857516248727993, -1.0714205993314643,
                0.5016022846117855, -0.7809470662209763, 0.9952792393540778,
                -0.9261838327762204, -0.23891314750165307, 3.1404456307706132,
            ],
            "mean": [1.1916666666666667, 4.25],
            "var": [4.523680555555556, 6.666666666666667],
            "rstd": [0.4701685283259927, 0.3872980441473175],
            "running_mean": [0.11916666666666667, 0.42500000000000004],
            "running_var": [1.4428416666666668, 1.7000000000000002],
        },
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BEFORE))
def test_default_knobs_reproduce_the_results_from_before_the_knobs(name: str) -> None:
    x, op, options, want = BEFORE[name]
    case = make_case(x, op, dtype="float64", **options)
    explicit = _with_knobs(case, variance="biased", eps_placement="sqrt", weight_offset=0.0)
    for c in (case, explicit):
        got = _quantities(c)
        assert set(got) == set(want)
        for quantity, values in want.items():
            np.testing.assert_array_equal(got[quantity].ravel(), values, err_msg=quantity)


@pytest.mark.parametrize(
    "row",
    [
        [1e-310, 2e-310, 3e-310, 4e-310],  # subnormal: 2**1029 overflowed as a scale
        [5e-324, 1e-323, 0.0, 1.5e-323],
        [5e-309, 1e-308, 1.5e-308, 2e-308],
        [1e200] * 4,  # constant, eps scaled by 2**-1330 to 0: rstd was inf, the output NaN
        [2e159] * 4,
        list(3.6e162 * (1 + 1e-10 * np.arange(6))),  # var 3.8e305: var / scale**2 was inf
        [1.7e308, 1.7e308, 1.6e308, -1.7e308, 1.0],  # x - mean beyond float64's largest
    ],
)
@pytest.mark.parametrize("eps", [1e-5, 0.0])
@pytest.mark.parametrize("center", [True, False])
def test_the_reference_is_exact_at_either_end_of_float64s_range(
    row: list[float], eps: float, center: bool
) -> None:
    x = np.array([row])
    op = "layer_norm" if center else "rms_norm"
    case = make_case(x, op=op, normalized_shape=x.shape[1], eps=eps, dtype="float64")
    result = reference.run(case)
    y = np.asarray(as_array(result.quantities["output"]))[0]
    with mpmath.workdps(60):
        values = [mpmath.mpf(v) for v in row]
        mean = mpmath.fsum(values) / len(values) if center else mpmath.mpf(0)
        var = mpmath.fsum((v - mean) ** 2 for v in values) / len(values)
        if var + eps == 0:
            return  # 0 / 0: NaN on every side
        rstd = 1 / mpmath.sqrt(var + mpmath.mpf(eps))
        exact = np.array([float((v - mean) * rstd) for v in values])
        want_rstd, want_var = float(rstd), float(var)
    ulps = np.abs(y - exact) / np.spacing(np.abs(exact))
    assert np.max(ulps) <= 2, (y, exact)
    # and the exact answer, given as a candidate, passes as accurate with no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = lncheck.compare(
            x, op, normalized_shape=x.shape[1], eps=eps, dtype="float64", backend=None,
            expected=exact[None, :],
        )  # fmt: skip
    (check,) = report.checks
    assert (check.passed, check.accuracy_class) == (True, "accurate"), check.message()
    assert float(np.asarray(as_array(result.quantities["rstd"]))[0]) == pytest.approx(
        want_rstd, rel=1e-15
    )
    assert float(np.asarray(as_array(result.quantities["var"]))[0]) == pytest.approx(
        want_var, rel=1e-15, abs=0.0
    )
