"""The float64 reference: hand-computed values, torch float64, and its own identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from lncheck.layers import Layer
from lncheck.reference import group_statistics, layer_norm, normalize


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


def test_group_statistics_by_hand() -> None:
    mean, var = group_statistics(np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 14.0]]))
    np.testing.assert_array_equal(mean, [2.5, 11.0])
    np.testing.assert_array_equal(var, [1.25, 3.0])
    ms_mean, ms = group_statistics(np.array([[1.0, -1.0, 3.0]]), center=False)
    np.testing.assert_array_equal(ms_mean, [0.0])
    np.testing.assert_allclose(ms, [11.0 / 3.0], rtol=1e-16)


def test_large_mean_does_not_cancel() -> None:
    # float32 values near 1e4 with a spread of ~1: the naive E[x^2] - E[x]^2 loses every digit.
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal(4096)).astype(np.float32).astype(np.float64)
    mean, var = group_statistics(x[None])
    exact_mean = math.fsum(x) / x.size
    exact_var = math.fsum((v - exact_mean) ** 2 for v in x) / x.size
    assert abs(mean[0] - exact_mean) <= 4 * np.spacing(exact_mean)
    assert abs(var[0] - exact_var) <= 1e-13 * exact_var


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
    by_shape = normalize(x, Layer("layer_norm", normalized_shape=(3, 4), eps=1e-5))
    by_axes = normalize(x, Layer("layer_norm", axes=(-2, -1), eps=1e-5))
    np.testing.assert_array_equal(by_shape, by_axes)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_memory_layout_does_not_matter(layout: str) -> None:
    x = np.random.default_rng(2).standard_normal((5, 6, 7))
    y = layer_norm(np.asarray(x, order=layout), 7)
    np.testing.assert_array_equal(y, layer_norm(np.ascontiguousarray(x), 7))
