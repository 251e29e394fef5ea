"""Conventions a distortion matches (``lncheck.semantics``): a missing bias, the bias before
the weight, ``1 + w``, another channel's weight, another eps, an unbiased variance, eps on the
std. A consistent distortion small enough for a lower accuracy class is still a ``mismatch``
when one of them predicts every group's implied scale and shift."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import lncheck
from lncheck.comparison import Comparison
from lncheck.semantics import Distortions

from .support import layer_norm

F64 = npt.NDArray[np.float64]
WEIGHT = np.array([0.9, 1.1, 1.3, 0.7])
SIGNS = np.array([1.0, -1.0, 0.5, -2.0])


def output_check(x: Any, op: str = "layer_norm", **options: Any) -> Comparison:
    report = lncheck.compare(x, op, backend=None, **options)
    (check,) = [c for c in report.checks if c.candidate == "expected" and c.quantity == "output"]
    return check


def cast(a: npt.ArrayLike, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(getattr(torch, dtype))


def f64(t: torch.Tensor) -> F64:
    return np.asarray(t.double().numpy())


def normalized(x: F64, eps: float = 1e-5) -> F64:
    """BatchNorm (training) over (N, C, L) without weight and bias, in float64."""
    mean = x.mean((0, 2), keepdims=True)
    return np.asarray((x - mean) / np.sqrt(x.var((0, 2), keepdims=True) + eps))


Candidate = Callable[[F64, F64, F64], F64]  # (normalized, weight, bias) in view shape -> y
CANDIDATES: dict[str, Candidate] = {
    "the bias left out": lambda n, w, b: n * w,
    "the bias added before the weight": lambda n, w, b: (n + b) * w,
    "1 + w used where the weight is w": lambda n, w, b: n * (1 + w) + b,
    "each group scaled by another channel's weight": lambda n, w, b: n * w[:, ::-1] + b,
}


def batch_norm_check(
    dtype: str, weight: npt.ArrayLike, bias: npt.ArrayLike, candidate: Candidate
) -> Comparison:
    """Training BatchNorm over 4 channels of 4,096 values each, ``candidate`` as the output."""
    x = cast(np.random.default_rng(0).standard_normal((16, 4, 256)), dtype)
    w, b = cast(weight, dtype), cast(bias, dtype)
    view = (1, 4, 1)
    y = candidate(normalized(f64(x)), f64(w).reshape(view), f64(b).reshape(view))
    return output_check(x, "batch_norm", training=True, weight=w, bias=b, expected=cast(y, dtype))


# Per convention and dtype: a weight and bias whose distortion a lower class would admit by
# its size (float32: a bias of 3e-5 std, within a sequential mean's error at n = 4,096).
SMALL = [
    ("the bias left out", "float32", WEIGHT, 3e-5 * SIGNS),
    ("the bias left out", "float16", WEIGHT, 0.01 * SIGNS),
    ("the bias left out", "bfloat16", WEIGHT, 0.05 * SIGNS),
    ("the bias added before the weight", "float32", WEIGHT, 3e-5 * SIGNS),
    ("the bias added before the weight", "float16", WEIGHT, 0.01 * SIGNS),
    ("the bias added before the weight", "bfloat16", WEIGHT, 0.05 * SIGNS),
    ("1 + w used where the weight is w", "float16", [30.0, 40.0, 50.0, 60.0], 0.01 * SIGNS),
    ("1 + w used where the weight is w", "bfloat16", [10.0, 12.0, 14.0, 16.0], 0.05 * SIGNS),
    ("each group scaled by another channel's weight", "float16", [1, 1.01, 1.02, 1.03], SIGNS),
    ("each group scaled by another channel's weight", "bfloat16", [1, 1.1, 1.2, 1.3], SIGNS),
]


@pytest.mark.parametrize(("words", "dtype", "weight", "bias"), SMALL)
def test_a_convention_is_a_mismatch_whatever_its_size(
    words: str, dtype: str, weight: Any, bias: Any
) -> None:
    c = batch_norm_check(dtype, weight, bias, CANDIDATES[words])
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == f"matches {words} (in all 4 groups checked)"


@pytest.mark.parametrize("words", ["the bias left out", "the bias added before the weight"])
def test_without_the_conventions_a_small_bias_error_would_fit_a_lower_class(
    words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what makes it a mismatch is the convention, not the size: the same check, not asked
    monkeypatch.setattr(Distortions, "explain", lambda self, *args, **kwargs: None)
    c = batch_norm_check("float32", WEIGHT, 3e-5 * SIGNS, CANDIDATES[words])
    assert c.accuracy_class in ("sequential", "low_precision")
    assert c.explanation is None or "matches" not in c.explanation


def _rms_norm(x: F64, w: Any, divisor: int) -> F64:
    return np.asarray(x / np.sqrt((x * x).sum(-1, keepdims=True) / divisor + 1e-5) * w)


def test_a_mean_square_over_n_minus_1_is_named_for_rms_norm() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    y = _rms_norm(x.astype(np.float64), w.astype(np.float64), 63).astype(np.float32)
    c = output_check(x, "rms_norm", normalized_shape=64, eps=1e-5, weight=w, expected=y)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == "matches a mean square (÷(n - 1), n = 64) (in all 8 groups checked)"
    right = _rms_norm(x.astype(np.float64), w.astype(np.float64), 64).astype(np.float32)
    c = output_check(x, "rms_norm", normalized_shape=64, eps=1e-5, weight=w, expected=right)
    assert (c.passed, c.accuracy_class, c.explanation) == (True, "accurate", None)


def test_one_group_beyond_the_default_classes_names_a_convention() -> None:
    # float16 at mean/std 1000: an unbiased variance over 10 values is within what statistics
    # kept in float16 may do (low_precision), and the one group matches it exactly
    x = cast(1000 + np.random.default_rng(2).standard_normal((1, 10)), "float16")
    xf = f64(x)
    centred = xf - xf.mean(-1, keepdims=True)
    unbiased = cast(centred / np.sqrt(xf.var(-1, ddof=1, keepdims=True) + 1e-5), "float16")
    c = output_check(x, normalized_shape=10, expected=unbiased)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == (
        "matches an unbiased variance (÷(n - 1), n = 10) (in all 1 groups checked)"
    )
    biased = cast(centred / np.sqrt(xf.var(-1, keepdims=True) + 1e-5), "float16")
    assert output_check(x, normalized_shape=10, expected=biased).accuracy_class == "accurate"


def test_many_groups_each_within_its_limits_add_up_to_a_convention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # float16 values of 2e-3 against eps 1e-5: dividing by n - 1 moves each group's scale by
    # less than three of its accurate limits, but 64 groups all moving as predicted do
    x = cast(np.random.default_rng(0).standard_normal((64, 64)) * 2e-3, "float16")
    y = cast(_rms_norm(f64(x), 1.0, 63), "float16")
    c = output_check(x, "rms_norm", normalized_shape=64, eps=1e-5, expected=y)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == "matches a mean square (÷(n - 1), n = 64) (in all 64 groups checked)"
    monkeypatch.setattr("lncheck.semantics._evident", lambda *args: False)
    c = output_check(x, "rms_norm", normalized_shape=64, eps=1e-5, expected=y)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")


def test_a_correct_output_matches_no_convention() -> None:
    for dtype in ("float32", "float16", "bfloat16"):
        c = batch_norm_check(dtype, WEIGHT, 0.05 * SIGNS, lambda n, w, b: n * w + b)
        assert (c.passed, c.accuracy_class, c.explanation) == (True, "accurate", None), dtype


@pytest.mark.parametrize(
    "words",
    [
        "the bias left out",
        "the bias added before the weight",
        "1 + w used where the weight is w",
        "each group scaled by another channel's weight",
    ],
)
def test_an_ordinary_sized_convention_error_is_named(words: str) -> None:
    # a user's bug at ordinary sizes: weights and biases of order 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 16)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    b = rng.uniform(-1, 1, 8).astype(np.float32)
    view = (1, 8, 1)
    y = CANDIDATES[words](normalized(x.astype(np.float64)), w.reshape(view), b.reshape(view))
    c = output_check(x, "batch_norm", training=True, weight=w, bias=b, expected=y.astype("f4"))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation is not None and f"matches {words}" in c.explanation


def _layer_norm(x: F64, w: F64) -> F64:
    mean = x.mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w)


def test_one_plus_w_with_a_weight_offset_is_the_specified_layer() -> None:
    x = cast(np.random.default_rng(1).standard_normal((16, 1024)), "bfloat16")
    w = cast(np.full(1024, 20.0), "bfloat16")
    y = cast(_layer_norm(f64(x), 1 + f64(w)), "bfloat16")
    c = output_check(x, normalized_shape=1024, weight=w, weight_offset=1.0, expected=y)
    assert (c.passed, c.accuracy_class, c.explanation) == (True, "accurate", None)
    plain = output_check(x, normalized_shape=1024, weight=w, expected=y)  # no offset given
    assert (plain.passed, plain.accuracy_class) == (False, "mismatch")
    assert plain.explanation == (
        "matches 1 + w used where the weight is w (in all 16 groups checked)"
    )


def test_w_where_the_weight_is_one_plus_w_is_named() -> None:
    x = cast(np.random.default_rng(1).standard_normal((16, 1024)), "bfloat16")
    w = cast(np.full(1024, 20.0), "bfloat16")
    y = cast(_layer_norm(f64(x), f64(w)), "bfloat16")  # forgot the offset
    c = output_check(x, normalized_shape=1024, weight=w, weight_offset=1.0, expected=y)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == "matches w used where the weight is 1 + w (in all 16 groups checked)"


# --- Distortions.explain on hand-made distortions ---------------------------------------------


def distortions(ds: F64, shift: F64, w: F64 | None = None, b: F64 | None = None) -> Distortions:
    """Every group fitted, with accurate limits of 1e-6 on the scale and the shift."""
    g = len(ds)
    d = Distortions()
    d.add(
        0,
        np.ones(g, dtype=bool),
        np.asarray(ds, np.float64),
        np.asarray(shift, np.float64),
        np.full(g, 1e-6),
        np.full(g, 1e-6),
        np.ones(g) if w is None else np.asarray(w, np.float64),
        np.zeros(g) if b is None else np.asarray(b, np.float64),
    )
    return d


VAR = np.array([0.01, 0.1, 1.0, 4.0])  # groups of different variance tell the conventions apart


def test_an_unbiased_variance() -> None:
    n = 8
    ds = np.sqrt(VAR / (VAR * n / (n - 1))) - 1  # eps = 0: sqrt((n - 1) / n) - 1 everywhere
    text = distortions(ds, np.zeros(4)).explain(VAR, 0.0, n, centered=True)
    assert text == "matches an unbiased variance (÷(n - 1), n = 8) (in all 4 groups checked)"
    assert distortions(ds, np.zeros(4)).explain(VAR, 0.0, n, centered=False) != text


def test_the_collective_rule_wants_the_prediction_far_from_the_layer_near_the_data() -> None:
    n, g = 64, 40
    var = np.full(g, 1.0)
    # eps = 0: the prediction sqrt((n - 1) / n) - 1 = -0.0078 per group, limits of 0.01
    predicted = np.full(g, math.sqrt((n - 1) / n) - 1)
    d = Distortions()
    lim = np.full(g, 0.01)
    d.add(0, np.ones(g, bool), predicted, np.zeros(g), lim, lim, np.ones(g), np.zeros(g))
    # one variance in every group: eps = 0.0159 predicts the same scale, and round (0.02) to
    # within what limits of 0.01 tell, so it is named beside it
    words = (
        "matches a mean square (÷(n - 1), n = 64), or eps = 0.0159 instead of 0 (in all 40 "
        "groups checked)"
    )
    assert d.explain(var, 0.0, n, False) is None  # the default classes want two groups apart
    assert d.explain(var, 0.0, n, False, beyond_default=True) == words
    # halfway between the layer and the prediction: within every limit of both, no evidence
    half = Distortions()
    half.add(0, np.ones(g, bool), predicted / 2, np.zeros(g), lim, lim, np.ones(g), np.zeros(g))
    assert half.explain(var, 0.0, n, False, beyond_default=True) is None


def test_another_eps_and_eps_on_the_std() -> None:
    eps = 1e-3
    other = np.sqrt((VAR + eps) / (VAR + 0.05)) - 1
    text = distortions(other, np.zeros(4)).explain(VAR, eps, 64, centered=True)
    assert text == "matches eps = 0.05 instead of 0.001 (in all 4 groups checked)"
    on_std = np.sqrt(VAR + eps) / (np.sqrt(VAR) + eps) - 1
    text = distortions(on_std, np.zeros(4)).explain(VAR, eps, 64, centered=True)
    assert text == "matches eps added to the std instead of the variance (in all 4 groups checked)"


def test_a_fitted_eps_a_precision_loss_can_meet_is_no_verdict_in_a_default_class() -> None:
    # c0128: a sequential float32 Welford left 3 variances about 8e-6 low; eps = 2.44e-6 for
    # 1e-5 fits each group, but only to 0.52 of its limit (a real eps fits to rounding), and
    # moves the variance by 0.8 sqrt(n) u at most
    var, eps, n = np.array([0.60374919, 1.3304875, 1.2391357]), 1e-5, 78036
    ds = np.array([6.26158099e-06, 3.21847256e-06, 2.89352741e-06])
    d = Distortions()
    lim = np.full(3, 7.245e-07)
    d.add(0, np.ones(3, bool), ds, np.zeros(3), lim, lim, np.ones(3), np.zeros(3))
    words = "matches eps = 2.44e-06 instead of 1e-05 (in all 3 groups checked)"
    typical = math.sqrt(n) * 2.0**-24
    assert d.explain(var, eps, n, centered=True) == words  # no rounding allowed: a match
    assert d.explain(var, eps, n, centered=True, typical=typical) is None
    # beyond the default classes anyway, the match stands
    assert d.explain(var, eps, n, True, beyond_default=True, typical=typical) == words
    # the same groups on the prediction itself (a layer that used that eps): a match
    exact = Distortions()
    want = np.sqrt((var + eps) / (var + 2.44e-6)) - 1
    exact.add(0, np.ones(3, bool), want, np.zeros(3), lim, lim, np.ones(3), np.zeros(3))
    assert exact.explain(var, eps, n, True, typical=typical) == words
    # ...and off it by half a limit, but moving var + eps by 5x sqrt(n) u (eps 1e-6 for 1e-5
    # at n = 768): a match too
    one, small = np.ones(3), math.sqrt(768) * 2.0**-24
    far = np.sqrt((one + eps) / (one + 1e-6)) - 1 + np.array([0.5, -0.5, 0.0]) * lim
    loose = Distortions()
    loose.add(0, np.ones(3, bool), far, np.zeros(3), lim, lim, one, np.zeros(3))
    assert loose.explain(one, eps, 768, True, typical=small) is not None
    assert loose.explain(one, eps, 768, True, typical=small * 10) is None
    # a named convention is never held to either: nothing fitted mimics it
    unbiased = distortions(np.sqrt(VAR / (VAR * 8 / 7)) - 1, np.zeros(4))
    assert unbiased.explain(VAR, 0.0, 8, True, typical=1.0) is not None


def test_two_sequential_rows_leaning_alike_are_no_other_eps() -> None:
    # the textbook one-thread-per-row LayerNorm in float32 on 2 rows of 65,536 N(0, 1) values:
    # both variances came out about 8e-6 low, rstd 3.96e-6 high, which eps = 1.86e-6 for 1e-5
    # met in both rows to a quarter of the accurate limits (55 seeds in 600 did): two
    # groups of one variance cannot tell another eps from a precision loss that leans alike
    n = 65_536
    x = np.random.default_rng(3 * 1000 + n + 2).standard_normal((2, n)).astype(np.float32)
    mean = np.cumsum(x, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    d = x - mean
    var = np.cumsum(d * d, axis=1, dtype=np.float32)[:, -1:] / np.float32(n)
    check = output_check(x, normalized_shape=n, expected=d / np.sqrt(var + np.float32(1e-5)))
    assert (check.passed, check.accuracy_class, check.explanation) == (True, "sequential", None)
    assert check.implied_scale - 1 == pytest.approx(3.96e-6, rel=0.01)


def test_a_sequential_sum_of_squares_of_a_few_values_is_no_other_eps() -> None:
    # the textbook one-thread-per-row RMSNorm (np.cumsum sums in order, in float32) on rows of
    # 4,096 values a few last places apart: sequential, not "matches eps = 0.0308"
    rng = np.random.default_rng(1)
    c = np.float32(51.42625)
    x = (c + rng.integers(-3, 4, (3, 4096)) * np.spacing(c)).astype(np.float32)
    mean_square = np.cumsum(x * x, axis=1, dtype=np.float32)[:, -1] / np.float32(4096)
    y = x / np.sqrt(mean_square + np.float32(1e-5))[:, None]
    check = output_check(x, "rms_norm", normalized_shape=4096, expected=y)
    assert (check.passed, check.accuracy_class, check.explanation) == (True, "sequential", None)
    assert abs(check.implied_scale - 1) > 5e-6  # the sum's bias: a variance 1.16e-5 high


def test_a_tight_fitted_eps_on_groups_of_few_values_must_move_the_variance_beyond_them() -> None:
    # float32 RMSNorm, rows of 4,096 values 51.43 +- 3 last places (7 values), squares summed
    # sequentially in float32: the mean square is 1.16e-5 off, the same in every row, which
    # eps = 0.0308 for 1e-5 fits to a fraction of its limits; adding the same few values
    # rounds alike (n v / sqrt(7) = 9.3e-5), so that is no evidence of another eps
    n, var, eps = 4096, np.full(3, 51.426**2), 1e-5
    ds = np.full(3, (1 + 1.16e-5) ** -0.5 - 1) + np.array([0.0, 1e-9, -1e-9])  # three rows
    lim = np.full(3, 1e-6)
    typical = math.sqrt(n) * 2.0**-24
    words = "matches eps = 0.0307 instead of 1e-05 (in all 3 groups checked)"
    for levels, said in ((np.full(3, 7.0), None), (np.full(3, float(n)), words)):
        d = Distortions()
        d.add(0, np.ones(3, bool), ds, np.zeros(3), lim, lim, np.ones(3), np.zeros(3), levels)
        assert d.explain(var, eps, n, False, typical=typical) == said


def test_the_bias_conventions_move_the_mean_only_for_centred_ops() -> None:
    w, b = np.array([1.0, 2.0, 0.5, 4.0]), np.array([0.5, -0.2, 0.1, 1.0])
    left_out = distortions(np.zeros(4), -b / w, w, b)
    assert left_out.explain(VAR, 1e-5, 64, True) == (
        "matches the bias left out (in all 4 groups checked)"
    )
    before = distortions(np.zeros(4), b * (w - 1) / w, w, b)
    # group 0 has w = 1: the bias before the weight changes nothing there; three differ
    assert before.explain(VAR, 1e-5, 64, True) == (
        "matches the bias added before the weight (in all 4 groups checked)"
    )
    assert left_out.explain(VAR, 1e-5, 64, centered=False) is None  # no shift is judged


def test_weights_one_plus_w_and_another_channels() -> None:
    w = np.array([2.0, 4.0, 5.0, 8.0])
    text = distortions(1 / w, np.zeros(4), w).explain(VAR, 1e-5, 64, True)
    assert text == "matches 1 + w used where the weight is w (in all 4 groups checked)"
    # a Gemma-style layer (weight 1 + w; w here is the effective weight): the offset left out
    text = distortions(-1 / w, np.zeros(4), w).explain(VAR, 1e-5, 64, True, 1.0)
    assert text == "matches w used where the weight is 1 + w (in all 4 groups checked)"
    assert distortions(-1 / w, np.zeros(4), w).explain(VAR, 1e-5, 64, True) is None
    swapped = w[::-1] / w - 1
    text = distortions(swapped, np.zeros(4), w).explain(VAR, 1e-5, 64, True)
    assert text == "matches each group scaled by another channel's weight (in all 4 groups checked)"


def test_a_reversed_weight_leaves_the_middle_channel_its_own() -> None:
    # the full matrix's c0242: weights [1136, -896, 816] reversed; the middle channel keeps its
    # weight (ds = 0), the others are scaled by 816 / 1136 and back: that is a weight on the
    # wrong channel, not a precision loss
    w = np.array([1136.0, -896.0, 816.0, 1136.0])
    var = np.array([0.01, 0.1, 1.0, 4.0])
    reversed_ = np.array([816.0, -896.0, 1136.0, 816.0]) / w - 1
    text = distortions(reversed_, np.zeros(4), w).explain(var, 1e-5, 64, True, beyond_default=True)
    assert text == "matches each group scaled by another channel's weight (in all 4 groups checked)"
    # ...but a scale that lands within its limit of two weights names neither
    dense = np.array([1.0, 1.0 + 5e-7, 2.0, 2.0 + 5e-7])
    near = np.array([2.0, 2.0, 1.0, 1.0]) / dense - 1
    assert distortions(near, np.zeros(4), dense).explain(var, 1e-5, 64, True) is None


def test_no_convention_without_a_consistent_pattern() -> None:
    assert Distortions().explain(VAR, 1e-5, 64, True) is None  # nothing fitted
    assert distortions(np.zeros(4), np.zeros(4)).explain(VAR, 1e-5, 64, True) is None
    n = 8
    unbiased = np.sqrt((VAR + 1e-5) / (VAR * n / (n - 1) + 1e-5)) - 1
    broken = unbiased.copy()
    broken[2] += 1e-3  # one group the convention does not predict
    assert distortions(broken, np.zeros(4)).explain(VAR, 1e-5, n, True) is None
    assert distortions(unbiased, np.zeros(4)).explain(VAR, 1e-5, n, True) is not None
    # a convention that predicts no difference beyond 3 accurate limits (3e-6) in 2 groups
    # (n = 10**6: ds near -5e-7): it fits, but says nothing
    big = 10**6
    tiny = np.sqrt((VAR + 1e-5) / (VAR * big / (big - 1) + 1e-5)) - 1
    assert np.all(np.abs(tiny) < 3e-6)
    assert distortions(tiny, np.zeros(4)).explain(VAR, 1e-5, big, True) is None


def test_one_group_apart_is_not_enough() -> None:
    w, b = np.ones(4), np.array([0.0, 0.0, 0.0, 0.5])  # only the last group has a bias
    text = distortions(np.zeros(4), -b / w, w, b).explain(VAR, 1e-5, 64, True)
    assert text is None
    b2 = np.array([0.0, 0.0, 0.3, 0.5])
    text = distortions(np.zeros(4), -b2 / w, w, b2).explain(VAR, 1e-5, 64, True)
    assert text == "matches the bias left out (in all 4 groups checked)"


def test_a_convention_of_the_worst_group_alone_is_not_named_for_the_check() -> None:
    # eps = 1e-2 over rows of 64 N(0, 1) values: the worst group's variance (0.63) makes its
    # scale read as an unbiased variance's; every group's scale is another eps's
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    c = output_check(x, normalized_shape=64, expected=layer_norm(x, eps=1e-2).astype(np.float32))
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation == "matches eps = 0.01 instead of 1e-05 (in all 8 groups checked)"
    # each row scaled its own way, the worst as an unbiased variance would: no cause is shared
    scales = np.array([math.sqrt(63 / 64), 0.9995, 1.0004, 0.9997, 1.0002, 0.9996, 1.0003, 0.9998])
    odd = (layer_norm(x) * scales[:, None]).astype(np.float32)
    c = output_check(x, normalized_shape=64, expected=odd)
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert "unbiased" not in c.explanation and c.explanation.startswith("rstd -0.78")


def test_two_conventions_the_groups_cannot_tell_apart_are_both_named() -> None:
    # float16 GroupNorm of N(0, 1) data with eps = 1e-3: every group's variance is near 1, where
    # eps = 1e-3 and an unbiased variance over 1,024 values scale rstd alike (0.99950 against
    # 0.99951) to within float16's limits
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 32, 16, 16))).half()
    y = torch.nn.functional.group_norm(x.float(), 8, eps=1e-3).half()
    c = output_check(x.numpy(), "group_norm", groups=8, expected=y.numpy())
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation is not None
    assert c.explanation.startswith("matches an unbiased variance (÷(n - 1), n = 1024), or eps = ")
    assert c.explanation.endswith(" instead of 1e-05 (in all 32 groups checked)")
    # in float32 the groups tell them apart: eps alone
    y32 = torch.nn.functional.group_norm(x.float(), 8, eps=1e-3)
    c = output_check(x.float().numpy(), "group_norm", groups=8, expected=y32.numpy())
    assert c.explanation == "matches eps = 0.001 instead of 1e-05 (in all 32 groups checked)"


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(("op", "options"), [("layer_norm", {"normalized_shape": 64}),
                                             ("group_norm", {"groups": 2})])  # fmt: skip
def test_an_output_that_does_not_depend_on_the_input_is_said_so(
    op: str, options: dict[str, Any], dtype: str
) -> None:
    # a kernel that never wrote its buffer: zeros read as an eps of 6e18 before; in float16
    # and bfloat16 the exact output's rounding, fitted too, left a scale of 5e-5 (eps 7.4e8)
    x = np.random.default_rng(3).standard_normal((4, 4, 64)).astype(np.float32)
    c = output_check(x, op, expected=np.zeros_like(x), dtype=dtype, **options)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation is not None and "eps" not in c.explanation
    assert c.explanation.startswith("its output does not depend on the input")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_one_group_never_written_is_said_so(dtype: str) -> None:
    # the worst group's output is its bias: in float16 its fitted scale of -2.8e-5 said nothing
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    y = layer_norm(x).astype(np.float32)
    y[1] = 0.0
    c = output_check(x, normalized_shape=64, dtype=dtype, expected=y)
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    # ...that group's, not the whole output's: the other groups are right
    assert c.explanation.startswith(
        "group (1)'s output does not depend on the input (y - b is 0 to within its rounding: "
        "an output never written, or an rstd of about 0)"
    )


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_constant_output_not_its_bias_is_not_said_to_be_its_bias(dtype: str) -> None:
    # every output 1 with no bias: the same value whatever the input, but y - b is 1 (it read
    # "y - b is 0 to within its rounding"; in float16 and bfloat16, whose roundings fit a
    # scale of 1e-5, only "mean off by -0.882 (-1 std)")
    x = np.random.default_rng(0).standard_normal((4, 8, 16)).astype(np.float32)
    c = output_check(x, normalized_shape=16, dtype=dtype, expected=np.ones_like(x))
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert c.explanation.startswith(
        "its output does not depend on the input (an implied scale of about 0: the same output "
        "whatever the input)"
    )
    # half the groups never written: the worst one is named, not the whole output
    y = layer_norm(x).astype(np.float32)
    y[2:] = 0.0
    c = output_check(x, normalized_shape=16, dtype=dtype, expected=y)
    assert (c.explanation or "").startswith("group (2, 7)'s output does not depend on the input")
    # every group so, of both kinds: neither kind's words alone (it read "y - b is 0")
    y = np.ones_like(x)
    y[2:] = 0.0
    c = output_check(x, normalized_shape=16, dtype=dtype, expected=y)
    assert (c.explanation or "").startswith(
        "its output does not depend on the input (y - b is 0 in some groups and one other "
        "value in the others)"
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_small_scale_that_depends_on_the_input_is_no_unwritten_output(dtype: str) -> None:
    # eps = 1e5: a scale of 3e-3, within bfloat16's unit roundoff, yet every output moves with
    # its input (it read "its output does not depend on the input" when a scale below the
    # unit roundoff was taken for none; only outputs equal to the bias are)
    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    xt = torch.from_numpy(x).to(getattr(torch, dtype))
    y = torch.nn.functional.layer_norm(xt, (64,), eps=1e5).float().numpy()
    c = output_check(x, normalized_shape=64, dtype=dtype, expected=y)
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert c.explanation.startswith("matches eps = ")
    assert c.explanation.endswith(" instead of 1e-05 (in all 8 groups checked)")
    fitted = float(c.explanation.split()[3])
    assert 0.9e5 < fitted < 1.1e5


def test_identical_rows_are_one_group_of_evidence_for_a_fitted_eps() -> None:
    # one linspace row broadcast to four: a correct sequential two-pass "matched eps = 8.4e-06
    # in all 4 groups" (a mismatch at 0.21 of its limits); four copies tell no more than one
    from benchmarks.verdict_matrix.algorithms import sequential_sum, two_pass

    x = np.broadcast_to(np.linspace(-1, 1, 65536, dtype=np.float32), (4, 65536)).copy()
    mean, var = two_pass(x, sequential_sum)
    y = (x - mean) / np.sqrt(var + np.float32(1e-5))
    c = output_check(x, normalized_shape=65536, expected=y)
    assert c.passed and c.accuracy_class in ("accurate", "sequential"), c.message()
