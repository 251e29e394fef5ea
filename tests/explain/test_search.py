"""The search's stages: with a weight and bias fitted, eps is fitted with the factor the
weight leaves in the per-group scales."""

from __future__ import annotations

import numpy as np
import pytest

from lncheck.explain import explain

from .conventions import normalize, rounded


@pytest.mark.parametrize("eps", [1e-4, 1e-3, 1e-1])
def test_eps_is_found_beside_a_fitted_weight_and_bias(eps: float) -> None:
    # the weight's common factor was fixed assuming eps negligible in the groups of largest
    # variance: at eps = 1e-3 no eps fitted every group and nothing was explained (280x the
    # rounding), even with --eps 1e-3 pinned
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 64)).astype(np.float32)
    w, b = 1 + 0.3 * rng.standard_normal(64), 0.2 * rng.standard_normal(64)
    y = rounded(normalize(x, (-1,), eps, weight=w, bias=b), "float32")
    report = explain(x, y)
    assert report.explained, report.candidates[0]
    first = report.candidates[0]
    assert (first.affine, first.axes) == ("fitted", (2,))
    assert first.eps == pytest.approx(eps, rel=0.05)
    pinned = explain(x, y, pinned={"eps": eps, "affine": True})
    assert pinned.explained and pinned.candidates[0].eps == eps
