"""A statistic computed by another rule than the layer's (``lncheck.statistic_conventions``):
the running variance updated with the biased batch variance, a mismatch whatever its size."""

from __future__ import annotations

import numpy as np

import lncheck
from lncheck.statistic_conventions import met


def test_met_wants_every_value_on_the_rule_and_two_far_from_the_layer() -> None:
    expected = np.array([1.0, 2.0, 3.0])
    predicted = np.array([1.1, 2.1, 3.0])  # the rule moves two values by 0.1
    allowed = np.full(3, 0.01)
    assert met(expected, predicted + 0.005, predicted, allowed)
    assert not met(expected, predicted + 0.02, predicted, allowed)  # off the rule
    assert not met(expected, expected, predicted, allowed)  # the layer's own values
    # a rule within three bounds of the layer tells nothing
    assert not met(expected, predicted, predicted, np.full(3, 0.05))
    assert not met(expected, np.array([np.nan, 2.1, 3.0]), predicted, allowed)


def _batch_norm(x: np.ndarray, rv: np.ndarray, biased: bool) -> dict[str, np.ndarray]:
    x64 = x.astype(np.float64)
    n = x.shape[0] * x.shape[2]
    mean, var = x64.mean((0, 2)), x64.var((0, 2))
    y = (x64 - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    batch = var if biased else var * n / (n - 1)
    return {
        "output": y.astype(np.float32),
        "running_mean": (0.1 * mean).astype(np.float32),
        "running_var": (0.9 * rv + 0.1 * batch).astype(np.float32),
    }


def test_a_running_variance_updated_with_the_biased_variance_is_named() -> None:
    # 8 x 16 x 196 values: m var / (n - 1) is 6e-5 of the batch variance, 1.8e-5 of running_var
    # here, within what a sequential sum of 1,568 values may lose (it passed as sequential)
    rng = np.random.default_rng(3)
    x = (2 + rng.standard_normal((8, 16, 196)) + rng.standard_normal((1, 16, 1))).astype(np.float32)
    rv = (1 + 0.3 * rng.random(16)).astype(np.float32)
    options = {"training": True, "running_var": rv, "running_mean": np.zeros(16, np.float32)}
    for biased, verdict in ((False, (True, "accurate")), (True, (False, "mismatch"))):
        report = lncheck.compare(
            x, "batch_norm", backend=None, expected=_batch_norm(x, rv, biased), **options
        )
        (c,) = [c for c in report.checks if c.quantity == "running_var"]
        assert (c.passed, c.accuracy_class) == verdict, c.message()
    assert c.explanation == (
        "matches running_var updated with the biased batch variance (torch's rule takes the "
        "unbiased one, ÷(n - 1), n = 1568)"
    )
