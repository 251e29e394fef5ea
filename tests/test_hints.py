"""compare's one-line hint from ``lncheck explain`` on a failing candidate."""

from __future__ import annotations

import numpy as np

import lncheck
from lncheck.comparison import Comparison

X = np.random.default_rng(0).normal(size=(64, 256)).astype(np.float32)


def _output(y: np.ndarray) -> Comparison:
    report = lncheck.compare(X, normalized_shape=256, backend=None, expected=y.astype(np.float32))
    (check,) = report.checks
    return check


def test_a_candidate_normalized_over_other_axes_gets_explains_finding() -> None:
    y = (X - X.mean()) / np.sqrt(X.var() + 1e-3)  # the whole tensor, another eps
    c = _output(y)
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert c.explanation.startswith("rstd ")  # no single convention claimed for the group
    assert c.explanation.endswith(
        "lncheck explain finds: LayerNorm over the last 2 dims (64, 256), eps=1e-3, biased "
        "variance, eps inside the sqrt, no affine"
    )


def test_no_hint_where_a_convention_is_named_or_nothing_explains() -> None:
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True, ddof=1)
    named = _output((X - mean) / np.sqrt(var + 1e-5))
    assert named.explanation == "matches an unbiased variance (÷(n - 1), n = 256)"
    unknown = _output(np.tanh((X - mean) / np.sqrt(X.var(-1, keepdims=True) + 1e-5)))
    assert unknown.accuracy_class == "mismatch"
    assert unknown.explanation is not None and "lncheck explain" not in unknown.explanation


def test_a_candidate_with_inf_and_nan_gets_a_hint_without_warnings() -> None:
    import warnings

    import torch

    y = torch.nn.functional.layer_norm(torch.from_numpy(X), (256,)).numpy()
    y[3, 4], y[5] = np.inf, np.nan
    y[7] = y[7][::-1].copy()  # a row no statistics error makes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # explain's sums of inf and NaN stay quiet
        c = _output(y)
    assert not c.passed and c.accuracy_class == "mismatch"
