"""The fitted weight and bias, and the noise the output's roundings leave in them."""

from __future__ import annotations

import numpy as np
import pytest

from lncheck.blocks import GroupLayout
from lncheck.explain.fit import take_sample
from lncheck.explain.fitted_affine import NOISE_GROUPS, fit_affine

from .conventions import normalize, rounded


def _fitted(rows: int, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rounded(rng.normal(2.0, 3.0, (rows, 64)), "bfloat16").astype(np.float64)
    w = rounded(rng.normal(1, 0.3, 64), "bfloat16").astype(np.float64)
    b = rounded(rng.normal(0, 0.2, 64), "bfloat16").astype(np.float64)
    y = np.asarray(rounded(normalize(x, (-1,), 1e-5, weight=w, bias=b), "bfloat16"), np.float64)
    layout = GroupLayout((rows, 64), (rows, 64), (1,))
    found = fit_affine(take_sample(layout, x, y), True, "bfloat16")
    assert found is not None
    return found, w, b, y


def test_the_noise_predicts_how_far_the_fitted_line_strays() -> None:
    found, w, b, y = _fitted(512)
    u = 2.0**-8
    # the standard deviation of a rounding of at most u |y|, per feature
    expected = u * np.sqrt(np.mean(y * y, axis=0) / 3)
    np.testing.assert_allclose(found.noise, expected, rtol=1e-12)
    # at the values fitted, the line's own error is within 5 of its predicted deviations
    z = np.linspace(-3, 3, 13)[:, None]
    reach = 1 / found.samples + (z - found.z_mean) ** 2 / found.z_spread
    predicted = found.noise * np.sqrt(reach)
    strays = np.abs((found.weight - w) * z + (found.bias - b))
    assert np.all(found.samples == 512) and np.all(strays <= 5 * predicted)
    assert np.all(predicted < 0.25 * u * (np.abs(w * z) + np.abs(b)) + u * 0.05)


@pytest.mark.parametrize("rows", [NOISE_GROUPS - 1, 8])
def test_fewer_groups_leave_no_noise_to_excuse_a_residual(rows: int) -> None:
    found, *_ = _fitted(rows)
    assert np.all(found.samples == rows) and not np.any(found.noise)
