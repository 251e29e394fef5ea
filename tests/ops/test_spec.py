"""``NormSpec`` and the helpers op modules share: counts, axes, descriptions."""

from __future__ import annotations

import pytest

from lncheck.activations import Activation
from lncheck.errors import InputError
from lncheck.ops.spec import (
    NormSpec,
    describe,
    dims,
    finish,
    normalize_axes,
    trailing_or_axes,
)


def _spec(**changes: object) -> NormSpec:
    base = NormSpec(
        op="group_norm",
        module="GroupNorm",
        input_shape=(2, 6, 5),
        view_shape=(2, 3, 2, 5),
        reduce_axes=(2, 3),
        eps=1e-5,
        param_shape=(6,),
        param_axes=(1, 2),
        channel_axis=1,
    )
    return base.with_(**changes)


def test_counts_of_a_grouped_view() -> None:
    spec = _spec()
    assert spec.group_shape == (2, 3) and spec.groups == 6 and spec.group_size == 10
    assert spec.reduced == 10  # each output element comes from its group
    assert spec.shared_count == 10  # 60 inputs / 6 weights: each weight gradient sums 10


def test_a_window_counts_instead_of_the_group() -> None:
    assert _spec(window=3).reduced == 3 and _spec(window=3).group_size == 10


def test_the_default_knobs_are_torchs() -> None:
    spec = _spec()
    assert (spec.variance, spec.eps_placement, spec.weight_offset) == ("biased", "sqrt", 0.0)
    assert spec.center and spec.statistics and spec.affine and spec.has_bias


def test_with_returns_a_changed_copy() -> None:
    spec = _spec()
    changed = spec.with_(variance="unbiased", weight_offset=1.0)
    assert changed.variance == "unbiased" and changed.weight_offset == 1.0
    assert spec.variance == "biased" and changed.view_shape == spec.view_shape


def test_normalize_axes() -> None:
    assert normalize_axes((-1, 0), 3, "--axes") == (0, 2)
    with pytest.raises(InputError, match=r"^--axes: axis 3 is out of range"):
        normalize_axes((3,), 3, "--axes")
    with pytest.raises(InputError, match=r"^--axes: axes \(0, -3\) repeat an axis$"):
        normalize_axes((0, -3), 3, "--axes")
    with pytest.raises(InputError, match=r"^--axes needs at least one axis$"):
        normalize_axes((), 3, "--axes")


def test_trailing_or_axes() -> None:
    assert trailing_or_axes((4, 5), None, (3, 4, 5), "LayerNorm") == (1, 2)
    assert trailing_or_axes(None, (0, -1), (3, 4, 5), "LayerNorm") == (0, 2)
    assert trailing_or_axes((5,), (2,), (3, 4, 5), "LayerNorm") == (2,)  # both, agreeing
    with pytest.raises(InputError, match="needs at least one dimension"):
        trailing_or_axes((), None, (3, 4, 5), "LayerNorm")


def test_describe_hides_what_torch_does_not_take() -> None:
    params = {"normalized_shape": (4,), "axes": (1,), "eps": 1e-5, "training": True}
    assert describe("LayerNorm", params, ".train()") == (
        "LayerNorm(normalized_shape=(4,), eps=1e-05).train()"
    )
    assert dims((3,)) == "(3,)"


def test_finish_adds_the_activation_and_channel_axis() -> None:
    spec = finish(_spec(channel_axis=2, params={"num_groups": 3}), Activation("silu"))
    assert spec.description == "GroupNorm(num_groups=3) on channel axis 2 -> silu"
    assert spec.params == {"num_groups": 3, "channel_axis": 2, "activation": "silu"}
    assert spec.activation == Activation("silu")
    plain = finish(_spec(params={"num_groups": 3}), None)
    assert plain.description == "GroupNorm(num_groups=3)" and plain.activation is None


@pytest.mark.parametrize(
    ("input_shape", "view_shape", "reduce_axes", "words"),
    [
        ((2, 4, 3, 3), (2, 4, 3, 3), (0, 2, 3), "axes (0, 2, 3)"),  # BatchNorm
        ((2, 4, 3, 3), (2, 4, 3, 3), (3,), "axis 3"),
        ((2, 6, 5), (2, 3, 2, 5), (2, 3), "axis 2 and axis 1 in runs of 2"),  # GroupNorm
        ((2, 5, 6), (2, 5, 3, 2), (1, 3), "axis 1 and axis 2 in runs of 2"),  # channels-last
        ((2, 4, 3, 1), (2, 4, 3, 1), (2, 3), "axes (2, 3)"),
        ((2, 12), (2, 12, 1), (1,), "axis 1"),  # a size-1 axis at the end: of the last
        ((2, 3, 3, 4), (2, 3, 3, 4, 1), (1, 2, 4), "axes (1, 2)"),  # 4 groups of 1 channel
        ((2, 4, 3, 3), (2, 1, 4, 3, 3), (2, 3, 4), "axes (1, 2, 3)"),  # one group of all
        ((2, 12), (2, 1, 12), (2,), "axis 1"),  # a size-1 axis inside
        ((2, 3, 4), (6, 4), (1,), ""),  # merged, not split: not said
    ],
)
def test_the_axes_a_group_spans_in_words(
    input_shape: tuple[int, ...],
    view_shape: tuple[int, ...],
    reduce_axes: tuple[int, ...],
    words: str,
) -> None:
    spec = _spec(input_shape=input_shape, view_shape=view_shape, reduce_axes=reduce_axes)
    assert spec.averaged_over == words
