"""The per-group least-squares fit (``lncheck.affine_fit``): a candidate group as an affine
distortion of the exact normalized values, its residual, and the block's geometry shared by
every candidate."""

from __future__ import annotations

import numpy as np

from lncheck import affine_fit

from .test_output_model import distorted, model_of, whole

# --- fit -----------------------------------------------------------------------------------


def test_fit_recovers_a_hand_made_scale_and_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64)) * 3 + 1
    w, b = rng.uniform(0.5, 1.5, 64), rng.uniform(-1, 1, 64)
    block = whole(model_of(x, normalized_shape=64, weight=w, bias=b, dtype="float64"))
    # the block's values are the float64 LayerNorm
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(block.nhat, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-13)
    np.testing.assert_allclose(block.y, block.nhat * w + b, rtol=1e-13, atol=1e-14)
    scale, shift = np.array([1.25, 0.8, 1.0, 1.001]), np.array([0.1, -0.3, 0.0, 0.002])
    f = affine_fit.fit(block, distorted(block, scale, shift))
    np.testing.assert_allclose(f.scale, scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.ds, scale - 1, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(f.shift, shift, rtol=0, atol=1e-12)
    assert np.max(np.abs(f.residual)) < 1e-12 and f.fitted.all()


def test_fit_of_rms_norm_has_no_shift() -> None:
    x = np.random.default_rng(1).standard_normal((3, 32)) + 0.5
    block = whole(model_of(x, "rms_norm", normalized_shape=32, dtype="float64"))
    rms = np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)  # torch's default eps: finfo.eps
    np.testing.assert_allclose(block.nhat, x / rms, rtol=1e-6)
    scale = np.array([1.002, 0.5, 1.0])
    f = affine_fit.fit(block, distorted(block, scale, np.zeros(3)))
    np.testing.assert_allclose(f.scale, scale, atol=1e-12)
    assert np.all(f.shift == 0)
    # a shift is no statistics error of RMSNorm: it stays in the residual
    moved = affine_fit.fit(block, distorted(block, np.ones(3), np.full(3, 0.1)))
    assert np.all(moved.shift == 0) and np.max(np.abs(moved.residual)) > 0.05


def test_groups_too_small_or_not_finite_are_not_fitted() -> None:
    one = whole(model_of(np.random.default_rng(2).standard_normal((2, 1)), normalized_shape=1))
    assert affine_fit.MIN_FIT_SIZE == 2 and not affine_fit.fit(one, one.y).fitted.any()
    # two values fix a scale and a shift exactly (a unbiased variance over 3 values: s is
    # sqrt(2/3), t is 0)
    x = np.random.default_rng(2).standard_normal((2, 3))
    small = whole(model_of(x, normalized_shape=3, dtype="float64"))
    centred = x - x.mean(-1, keepdims=True)
    unbiased = centred / np.sqrt(x.var(-1, ddof=1, keepdims=True) + 1e-5)
    f = affine_fit.fit(small, unbiased)
    assert f.fitted.all()
    np.testing.assert_allclose(f.scale, np.sqrt((x.var(-1) + 1e-5) / (x.var(-1, ddof=1) + 1e-5)))
    np.testing.assert_allclose(f.shift, 0.0, atol=1e-15)
    block = whole(model_of(np.random.default_rng(2).standard_normal((3, 8)), normalized_shape=8))
    y = block.y.copy()
    y[1, 4] = np.nan
    assert affine_fit.fit(block, y).fitted.tolist() == [True, False, True]


def test_trimmed_fit_leaves_one_wrong_element_out() -> None:
    x = np.random.default_rng(3).standard_normal((2, 64))
    block = whole(model_of(x, normalized_shape=64, dtype="float64"))
    scale, shift = np.array([1.01, 0.99]), np.array([0.01, -0.02])
    y = distorted(block, scale, shift)
    y[0, 10] += 0.5  # one element of group 0 wrong
    plain = affine_fit.fit(block, y)
    assert abs(plain.scale[0] - 1.01) > 1e-4  # the wrong element tilts the plain fit
    trim = np.full(y.shape, 1e-9)
    f = affine_fit.fit(block, y, trim)
    np.testing.assert_allclose(f.scale, scale, atol=1e-12)
    np.testing.assert_allclose(f.shift, shift, atol=1e-12)
    assert abs(f.residual[0, 10] - 0.5) < 1e-12
    others = np.delete(f.residual[0], 10)
    assert np.max(np.abs(others)) < 1e-12


def test_geometry_is_computed_once_per_block_and_orthogonal_to_the_weight() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 32)) + 5.0
    w = rng.uniform(-1.5, 1.5, 32)  # some negative: the fit's c = w, the judgement's |w|
    block = whole(model_of(x, normalized_shape=32, weight=w, dtype="float64"))
    signed, unsigned = affine_fit.geometry(block), affine_fit.geometry(block, signed=False)
    assert affine_fit.geometry(block) is signed and signed is not unsigned
    np.testing.assert_array_equal(signed.c, block.weight)
    np.testing.assert_array_equal(unsigned.c, np.abs(block.weight))
    for g in (signed, unsigned):
        # a's part across c is orthogonal to c, and its sums are the block's own
        assert np.max(np.abs(np.einsum("ij,ij->i", g.a_perp, g.c))) < 1e-12
        np.testing.assert_allclose(g.spp, (g.a_perp**2).sum(axis=1), rtol=1e-15)
        np.testing.assert_allclose(g.saa, (block.weighted**2).sum(axis=1), rtol=1e-15)
    # without a weight c is ones, kept implicit (None): the same fit as with explicit ones
    plain = whole(model_of(x, normalized_shape=32, dtype="float64"))
    ones = whole(model_of(x, normalized_shape=32, weight=np.ones(32), dtype="float64"))
    assert affine_fit.geometry(plain).c is None
    y = distorted(plain, np.array([1.1, 0.9, 1.0]), np.array([0.2, -0.1, 0.0]))
    a, b = affine_fit.fit(plain, y), affine_fit.fit(ones, y)
    np.testing.assert_array_equal(a.ds, b.ds)
    np.testing.assert_array_equal(a.shift, b.shift)


# --- weighted ------------------------------------------------------------------------------


def test_weighted_fit_recovers_a_hand_made_scale_and_shift_with_its_gauss_markov_sigma() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 48)) * 2 + 0.5
    w = rng.uniform(0.5, 1.5, 48)
    block = whole(model_of(x, normalized_shape=48, weight=w, dtype="float64"))
    scale, shift = np.array([1.01, 0.999, 1.0]), np.array([0.02, 0.0, -0.001])
    f = affine_fit.fit(block, distorted(block, scale, shift))
    bound = rng.uniform(0.1, 10.0, (3, 48))  # any positive weights: a noiseless line is exact
    wf = affine_fit.weighted(block, f, bound, 1 / 3, np.arange(block.y.shape[0]))
    np.testing.assert_allclose(wf.ds, scale - 1, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(wf.shift, shift, rtol=1e-9, atol=1e-14)
    one = affine_fit.weighted(block, f, bound, 1 / 3, np.array([1]))  # a subset of the groups
    assert (one.ds[0], one.sigma_s[0]) == (wf.ds[1], wf.sigma_s[1])
    # sigma^2 (X' W X)^-1 with W = 1 / bound^2 and X = [a, w]: its diagonal, computed directly
    a, weights = block.weighted, 1 / bound**2
    for g in range(3):
        columns = np.stack([a[g], w])
        covariance = np.linalg.inv((columns * weights[g]) @ columns.T) / 9
        np.testing.assert_allclose(wf.sigma_s[g], np.sqrt(covariance[0, 0]), rtol=1e-9)
        np.testing.assert_allclose(wf.sigma_t[g], np.sqrt(covariance[1, 1]), rtol=1e-9)


def test_weighted_fit_lets_the_bulk_pin_a_scale_an_outlier_hides_from_least_squares() -> None:
    # n16: a bfloat16 RMSNorm with massive activations (180 and -95 among N(0, 1) values)
    # whose sum of squares is kept in bfloat16 scales every output by +0.3 %. Least squares
    # weighs by a**2, so the two outliers set the scale with their own roundings as noise
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 2048))
    x[:, 17], x[:, 901] = 180.0, -95.0
    block = whole(model_of(x, "rms_norm", normalized_shape=2048, dtype="bfloat16"))
    wrong = distorted(block, np.full(4, 1.003), np.zeros(4))
    bound = block.residual_bound("bfloat16", "accurate")
    f = affine_fit.fit(block, wrong)
    wf = affine_fit.weighted(block, f, bound, 1 / 3, np.arange(block.y.shape[0]))
    np.testing.assert_allclose(wf.ds, 0.003, rtol=1e-9)
    # least squares' sigma is the outliers' (a^2 holds 95 % of sum a^2); weighted, the bulk's
    sigma_ols = np.sqrt(np.sum(block.weighted**2 * (bound / 3) ** 2, axis=1)) / np.sum(
        block.weighted**2, axis=1
    )
    assert np.all(wf.sigma_s * 5 < sigma_ols) and np.all(10 * wf.sigma_s < 0.003)
