"""``explain`` ranks the convention that made an output first (issue 12's list): each output
is built here with NumPy from a known convention, in float64 and rounded to its dtype."""

from __future__ import annotations

import numpy as np
import pytest

from lncheck.errors import ExitStatus
from lncheck.explain import Candidate, ExplainReport, explain

from .conventions import flax_one_pass, gemma_rms, group_norm, llama_rms, normalize, rounded


def tokens(shape: tuple[int, ...], seed: int = 0, spread: tuple[float, float] | None = None):
    """A float32 activation; with ``spread``, row i of the last-but-one axis is scaled by
    ``logspace(*spread)[i]``, so that some groups have a variance near eps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 1.5, size=shape)
    if spread is not None:
        x = x * np.logspace(*spread, shape[-2])[:, None]
    return x.astype(np.float32)


def best(report: ExplainReport) -> Candidate:
    assert report.explained, [c.description for c in report.candidates]
    assert report.exit_status == ExitStatus.OK
    first = report.best
    assert first is not None
    return first


def test_keras_layer_normalization_eps_1e_3() -> None:
    x = tokens((4, 16, 64))
    c = best(explain(x, rounded(normalize(x, (-1,), 1e-3), "float32")))
    assert (c.op, c.axes, c.eps, c.verdict) == ("layer_norm", (2,), 1e-3, "exact")
    assert (c.variance, c.variance_algorithm, c.eps_placement) == ("biased", "two_pass", "sqrt")
    assert (c.centered, c.affine, c.groups, c.grouping) == (True, "none", None, None)
    # eps is measured, not guessed: every group excludes 1e-5 and 1e-4
    assert c.eps_identifiable and c.eps_low > 1e-4 and c.eps_high < 1.1e-3
    assert c.torch_code == "nn.LayerNorm([64], eps=1e-3)(x)"
    assert c.rms_residual < 1e-7 and c.rounding_ratio < 1


def test_bert_eps_1e_12_where_groups_make_it_identifiable() -> None:
    # rows with std down to 1e-7: their variance (1e-14) is below eps and shows it
    x = tokens((4, 16, 64), spread=(-7, 0))
    c = best(explain(x, rounded(normalize(x, (-1,), 1e-12), "float32")))
    assert (c.op, c.eps, c.verdict) == ("layer_norm", 1e-12, "exact")
    assert c.eps_identifiable and 1e-13 < c.eps_low <= 1e-12 <= c.eps_high < 1e-11


def test_bert_eps_is_not_identifiable_when_var_dwarfs_it() -> None:
    # in float16, groups of variance ~2 cannot tell eps = 1e-12 from 1e-4 by their scales
    x = tokens((4, 16, 64))
    report = explain(x, rounded(normalize(x, (-1,), 1e-12), "float16"))
    c = best(report)
    assert c.op == "layer_norm" and c.verdict == "exact"
    assert not c.eps_identifiable and c.eps_low <= 0 and 1e-4 < c.eps_high < 1e-2
    assert f"any eps ≤ {c.eps_high:.3g} fits" in c.description
    # torch's default 1e-5 shifts a few values across a float16 rounding boundary: it is
    # within rounding but not exact, and a smaller usual eps ranks first
    assert c.eps <= 1e-6
    default = [o for o in report.candidates if o.eps == 1e-5]
    assert [o.verdict for o in default] == ["rounding"]
    assert 0.99 < default[0].exact_share < c.exact_share


def test_flax_one_pass_variance_at_mean_over_std_300() -> None:
    rng = np.random.default_rng(3)
    x = (300 + rng.normal(size=(16, 256))).astype(np.float32)
    y = flax_one_pass(x, 1e-6)
    # the one-pass variance is off by up to ~1% here: no two-pass eps explains that
    two_pass = normalize(x, (-1,), 1e-6)
    assert np.abs(y - two_pass).max() > 1e-3
    report = explain(x, y)
    c = best(report)
    assert (c.op, c.axes, c.variance_algorithm, c.verdict) == (
        "layer_norm",
        (1,),
        "one_pass",
        "rounding",
    )
    assert all(o.variance_algorithm == "one_pass" for o in report.candidates)
    # eps drowns in the variance's error: Flax's default is shown, with the words for it
    assert c.eps == 1e-6 and not c.eps_identifiable
    assert "one-pass float32 variance" in c.description
    assert "(v * v).mean(-1, keepdim=True) - mean * mean" in c.torch_code


def test_normalization_over_axes_1_and_3() -> None:
    x = np.random.default_rng(4).normal(size=(4, 6, 5, 7)).astype(np.float32)
    c = best(explain(x, rounded(normalize(x, (1, 3), 1e-5), "float32")))
    assert (c.op, c.axes, c.verdict) == ("layer_norm", (1, 3), "exact")
    assert c.torch_code == (
        "F.layer_norm(x.movedim((1, 3), (-2, -1)), [6, 7], None, None, eps=1e-5)"
        ".movedim((-2, -1), (1, 3))"
    )


@pytest.mark.parametrize("interleaved", [False, True])
def test_group_norm_8_groups(interleaved: bool) -> None:
    x = np.random.default_rng(5).normal(1.0, 2.0, size=(4, 32, 4, 4)).astype(np.float32)
    y = rounded(group_norm(x, 8, 1e-5, interleaved=interleaved), "float32")
    c = best(explain(x, y))
    grouping = "interleaved" if interleaved else "contiguous"
    assert (c.op, c.groups, c.grouping, c.channel_axis) == ("group_norm", 8, grouping, 1)
    assert c.axes == (1, 2, 3) and c.verdict == "exact"
    if not interleaved:
        assert c.torch_code == "nn.GroupNorm(8, 32, eps=1e-5)(x)"


def test_mlx_group_norm_channels_last_interleaved() -> None:
    # MLX's default GroupNorm: channels last, channel k in group k mod G
    x = np.random.default_rng(6).normal(size=(2, 4, 4, 16)).astype(np.float32)
    moved = np.moveaxis(group_norm(np.moveaxis(x, -1, 1), 4, 1e-5, interleaved=True), 1, -1)
    c = best(explain(x, rounded(moved, "float32")))
    assert (c.op, c.groups, c.grouping, c.channel_axis) == ("group_norm", 4, "interleaved", 3)


def test_unbiased_variance() -> None:
    x = tokens((8, 32), seed=7)
    c = best(explain(x, rounded(normalize(x, (-1,), 1e-5, unbiased=True), "float32")))
    assert (c.op, c.variance, c.eps_placement, c.verdict) == (
        "layer_norm",
        "unbiased",
        "sqrt",
        "exact",
    )
    assert "var = v.var(-1, keepdim=True, correction=1)" in c.torch_code


def test_eps_added_to_the_std_as_the_annotated_transformer() -> None:
    # (x - mean) / (x.std(-1) + 1e-6) with torch's unbiased std; stds down to 1e-6 show eps
    x = tokens((64, 32), seed=8, spread=(-6, 0))
    y = rounded(normalize(x, (-1,), 1e-6, unbiased=True, eps_on_std=True), "float32")
    c = best(explain(x, y))
    assert (c.variance, c.eps_placement, c.eps, c.verdict) == ("unbiased", "std", 1e-6, "exact")
    assert c.eps_identifiable
    assert "y = (v - mean) / (var.sqrt() + 1e-6)" in c.torch_code


def test_rms_norm_with_its_weight() -> None:
    x = tokens((8, 64), seed=9)
    w = np.random.default_rng(9).normal(1.0, 0.2, 64).astype(np.float32)
    y = rounded(normalize(x, (-1,), 1e-6, center=False, weight=w), "float32")
    c = best(explain(x, y, weight=w))
    assert (c.op, c.centered, c.affine, c.cast_order, c.verdict) == (
        "rms_norm",
        False,
        "given",
        None,
        "exact",
    )
    assert c.torch_code == "F.rms_norm(x, [64], weight, eps=1e-6)"


def _bfloat16_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rounded(rng.normal(size=(16, 128)), "bfloat16"), rounded(
        rng.normal(0.0, 0.3, 128), "bfloat16"
    )


def test_gemma_zero_centred_weight() -> None:
    x, w = _bfloat16_pair(10)
    report = explain(x, gemma_rms(x, w, 1e-6, "bfloat16"), weight=w)
    c = best(report)
    assert report.precision == "bfloat16"
    assert (c.op, c.affine, c.cast_order, c.verdict) == (
        "rms_norm",
        "given_offset",
        "weight_before_cast",
        "exact",
    )
    assert c.torch_code == (
        "(F.rms_norm(x.float(), [128], eps=1e-6) * (1 + weight.float())).to(torch.bfloat16)"
    )


def test_llama_and_gemma_cast_orders_in_bfloat16() -> None:
    x, w = _bfloat16_pair(11)
    llama = explain(x, llama_rms(x, w, 1e-6, "bfloat16"), weight=w)
    first = best(llama)
    assert (first.affine, first.cast_order, first.verdict) == (
        "given",
        "weight_after_cast",
        "exact",
    )
    assert first.torch_code == (
        "weight.to(torch.bfloat16) * F.rms_norm(x.float(), [128], eps=1e-6).to(torch.bfloat16)"
    )
    # the other order is within rounding too, but many values differ by a unit
    other = [c for c in llama.candidates if c.cast_order == "weight_before_cast"]
    assert len(other) == 1 and other[0].verdict == "rounding"
    assert other[0].exact_share < 0.9 < first.exact_share
    # the same weight applied before the cast: the order flips
    before = rounded(normalize(x, (-1,), 1e-6, center=False, weight=w), "bfloat16")
    flipped = best(explain(x, before, weight=w))
    assert (flipped.affine, flipped.cast_order, flipped.verdict) == (
        "given",
        "weight_before_cast",
        "exact",
    )


def test_weight_and_bias_swapped() -> None:
    x = tokens((8, 64), seed=12)
    rng = np.random.default_rng(12)
    w, b = rng.normal(1, 0.2, 64), rng.normal(0, 0.2, 64)
    y = rounded(normalize(x, (-1,), 1e-5, weight=b, bias=w), "float32")
    c = best(explain(x, y, weight=w, bias=b))
    assert (c.op, c.affine, c.verdict) == ("layer_norm", "swapped", "exact")
    assert c.torch_code == "F.layer_norm(x, [64], bias, weight, eps=1e-5)"


def test_float16_rounding_of_a_correct_layer_norm() -> None:
    x = tokens((8, 16, 64), seed=13)
    y = rounded(normalize(x, (-1,), 1e-5), "float16")
    assert y.dtype == np.float16
    report = explain(x, y)
    c = best(report)
    assert report.precision == "float16" and report.output_dtype == "float16"
    assert (c.op, c.eps, c.verdict, c.precision) == ("layer_norm", 1e-5, "exact", "float16")
    # float16's rounding is far above float32's, yet within what float16 allows
    assert 1e-4 < c.max_abs_residual < 1e-2 and c.rounding_ratio < 1


def test_bfloat16_values_stored_as_float32_are_recognised() -> None:
    x = tokens((8, 64), seed=14)
    y = rounded(normalize(x, (-1,), 1e-5), "bfloat16")
    assert y.dtype == np.float32
    report = explain(x, y)
    assert report.precision == "bfloat16" and report.output_dtype == "float32"
    assert best(report).verdict == "exact"


def test_an_unusual_eps_is_fitted_with_its_uncertainty() -> None:
    x = tokens((64, 32), seed=15, spread=(-3, 0))
    c = best(explain(x, rounded(normalize(x, (-1,), 3.3e-4), "float32")))
    assert (c.op, c.eps_fitted, c.eps, c.verdict) == ("layer_norm", True, 3.3e-4, "exact")
    assert c.eps_low < 3.3e-4 < c.eps_high and c.eps_high - c.eps_low < 1e-6
    assert "eps=3.3e-4 ± " in c.description and "(fitted)" in c.description
    assert c.torch_code == "nn.LayerNorm([32], eps=3.3e-4)(x)"


def test_a_per_feature_weight_and_bias_are_fitted_when_none_is_given() -> None:
    x = tokens((64, 32), seed=16)
    rng = np.random.default_rng(16)
    w, b = rng.normal(1, 0.2, 32), rng.normal(0, 0.2, 32)
    c = best(explain(x, rounded(normalize(x, (-1,), 1e-5, weight=w, bias=b), "float32")))
    assert (c.op, c.affine, c.eps) == ("layer_norm", "fitted", 1e-5)
    assert c.verdict in ("exact", "rounding")
    assert c.torch_code == "F.layer_norm(x, [32], weight_fit, bias_fit, eps=1e-5)"
    assert any(n.startswith("fitted weight: mean ") for n in c.notes)


def test_a_weight_in_another_order_is_recognised_as_a_permutation() -> None:
    x = tokens((64, 32), seed=17)
    w = np.random.default_rng(17).normal(1, 0.3, 32)
    y = rounded(normalize(x, (-1,), 1e-5, weight=w[::-1]), "float32")
    c = best(explain(x, y, weight=w))
    assert c.affine == "fitted"
    assert "the fitted weight is the given weight in another order (a permutation)" in c.notes
    assert "the fitted bias is all zeros (within 1%)" in c.notes


def test_instance_and_batch_norm_are_named_by_their_grouping() -> None:
    x = np.random.default_rng(18).normal(size=(4, 8, 5, 5)).astype(np.float32)
    inst = best(explain(x, rounded(normalize(x, (2, 3), 1e-3), "float32")))
    assert (inst.op, inst.axes, inst.eps) == ("instance_norm", (2, 3), 1e-3)
    assert inst.torch_code == "nn.InstanceNorm2d(8, eps=1e-3)(x)"
    batch = best(explain(x, rounded(normalize(x, (0, 2, 3), 1e-3), "float32")))
    assert (batch.op, batch.axes, batch.eps) == ("batch_norm", (0, 2, 3), 1e-3)
    assert batch.torch_code.startswith("nn.BatchNorm2d(8, eps=1e-3)(x)")


@pytest.mark.parametrize("kind", ["noise", "softmax"])
def test_no_explanation_for_noise_or_softmax(kind: str) -> None:
    rng = np.random.default_rng(19)
    x = rng.normal(size=(8, 64)).astype(np.float32)
    if kind == "noise":
        y = rng.normal(size=x.shape).astype(np.float32)
    else:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        y = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    report = explain(x, y)
    assert not report.explained and report.exit_status == ExitStatus.CHECK_FAILED
    assert report.best is None or report.best.verdict == "none"
    assert all(c.verdict == "none" and c.rounding_ratio > 1e3 for c in report.candidates)


def test_affine_pinned_on_scores_only_maps_with_weight_and_bias() -> None:
    # a plain LayerNorm: "no affine" explains it, and with --affine (a layer that has weight
    # and bias) the fitted map does (it still read "no affine")
    x = tokens((4, 16, 64))
    y = rounded(normalize(x, (-1,), 1e-5), "float32")
    assert best(explain(x, y)).affine == "none"
    pinned = best(explain(x, y, pinned={"affine": True}))
    assert (pinned.affine, pinned.axes, pinned.eps) == ("fitted", (2,), 1e-5)
    assert "weight and bias fitted" in pinned.description
    assert best(explain(x, y, pinned={"affine": False})).affine == "none"
