"""Every op: hand-computed values, float64 agreement with torch, identities, error paths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lncheck.errors import InputError
from lncheck.io import case_from_arrays
from lncheck.layers import OP_NAMES, Layer, plan
from lncheck.reference import normalize
from lncheck.reference import run as run_reference
from lncheck.report import Report
from lncheck.result import as_array
from lncheck.runner import check_case as check
from lncheck.tolerances import ToleranceSpec

from .conftest import random_parameters

TIGHT = ToleranceSpec.from_options(1e-10, 1e-10)


def assert_matches_reference(
    layer: Layer,
    dtype: str,
    shape: tuple[int, ...],
    seed: int = 0,
    tolerance: ToleranceSpec | None = None,
    **arrays: Any,
) -> Report:
    """Run every torch path for ``layer`` on a random input and require every check to pass."""
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.5, 2), size=shape)
    report = check(case_from_arrays(x, layer, dtype=dtype, tolerance=tolerance, **arrays))  # type: ignore[arg-type]
    assert report.passed, "\n".join(c.message() for c in report.failures)
    return report


LAYERS = [
    (Layer("layer_norm", normalized_shape=(5,)), (3, 4, 5)),
    (Layer("layer_norm", axes=(0, 2)), (3, 4, 5)),
    (Layer("group_norm", groups=2), (2, 4, 3, 3)),
    (Layer("group_norm", groups=3, channel_axis=-1), (2, 3, 3, 6)),
    (Layer("instance_norm"), (2, 3, 7)),
    (Layer("instance_norm", affine=True, track_running_stats=True), (2, 3, 4, 4)),
    (Layer("instance_norm", track_running_stats=True, training=False), (2, 3, 2, 2, 2)),
    (Layer("batch_norm"), (8, 3)),
    (Layer("batch_norm", momentum=None), (4, 3, 5)),
    (Layer("batch_norm", training=False), (4, 3, 2, 2)),
    (Layer("batch_norm", channel_axis=-1), (4, 2, 2, 3)),
    (Layer("rms_norm", normalized_shape=(4,)), (3, 4)),
    (Layer("rms_norm", axes=(1,), eps=1e-6), (3, 4, 2)),
    (Layer("local_response_norm", size=3), (2, 5, 4)),
    (Layer("local_response_norm", size=4, alpha=0.5, beta=0.9, k=2.0), (2, 6, 3, 3)),
    (Layer("layer_norm", normalized_shape=(6,), activation="gelu"), (2, 6)),
    (Layer("group_norm", groups=2, activation="leaky_relu=0.2"), (2, 4, 3)),
]


def _running(layer: Layer, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    p = plan(layer, shape)
    if not p.stats_shape:
        return {}
    rng = np.random.default_rng(7)
    return {
        "running_mean": rng.normal(0, 1, p.stats_shape),
        "running_var": rng.uniform(0.5, 2, p.stats_shape),
    }


@pytest.mark.parametrize(
    ("layer", "shape"), LAYERS, ids=lambda v: str(v) if isinstance(v, tuple) else v.op
)
class TestEveryOpMatchesTheReference:
    def test_float64_to_1e_10(self, layer: Layer, shape: tuple[int, ...]) -> None:
        report = assert_matches_reference(
            layer, "float64", shape, tolerance=TIGHT, **_running(layer, shape)
        )
        assert len({c.candidate for c in report.checks}) >= 2  # module and functional at least

    def test_float32(self, layer: Layer, shape: tuple[int, ...]) -> None:
        assert_matches_reference(layer, "float32", shape, **_running(layer, shape))


def test_paths_per_op() -> None:
    candidates = {
        "group_norm": {
            "torch.nn.GroupNorm",
            "torch.nn.functional.group_norm",
            "torch.native_group_norm",
        },
        "batch_norm": {
            "torch.nn.BatchNorm2d",
            "torch.nn.functional.batch_norm",
            "torch.native_batch_norm",
        },
        "instance_norm": {"torch.nn.InstanceNorm2d", "torch.nn.functional.instance_norm"},
        "rms_norm": {"torch.nn.RMSNorm", "torch.nn.functional.rms_norm", "torch._fused_rms_norm"},
    }
    layers = {
        "group_norm": Layer("group_norm", groups=1),
        "batch_norm": Layer("batch_norm"),
        "instance_norm": Layer("instance_norm"),
        "rms_norm": Layer("rms_norm", normalized_shape=(2,)),
    }
    for op, want in candidates.items():
        report = assert_matches_reference(layers[op], "float32", (2, 3, 2, 2))
        assert {c.candidate for c in report.checks} == want


# --- hand-computed values -----------------------------------------------------------------------


def test_group_norm_by_hand() -> None:
    # groups of 2 channels: [1, 3] (mean 2, var 1) and [10, 20] (mean 15, var 25)
    y = normalize(
        np.array([[[1.0], [3.0], [10.0], [20.0]]]), Layer("group_norm", groups=2, eps=0.0)
    )
    np.testing.assert_array_equal(y.ravel(), [-1.0, 1.0, -1.0, 1.0])


def test_instance_norm_by_hand() -> None:
    y = normalize(np.array([[[1.0, 3.0], [0.0, 4.0]]]), Layer("instance_norm", eps=0.0))
    np.testing.assert_array_equal(y, [[[-1.0, 1.0], [-1.0, 1.0]]])


def test_batch_norm_training_and_running_update_by_hand() -> None:
    x = np.array(
        [[1.0, 10.0], [3.0, 30.0]]
    )  # channel 0: mean 2, var 1; channel 1: mean 20, var 100
    case = case_from_arrays(x, Layer("batch_norm", eps=0.0), dtype="float64")
    ref = run_reference(case).quantities
    np.testing.assert_array_equal(as_array(ref["output"]), [[-1.0, -1.0], [1.0, 1.0]])
    # fresh running stats (0, 1), momentum 0.1; the running variance takes the unbiased (N-1)
    # batch variance: 2 and 200, not the biased 1 and 100 used to normalize.
    np.testing.assert_allclose(ref["running_mean"], [0.2, 2.0], rtol=1e-15)
    np.testing.assert_allclose(ref["running_var"], [0.9 + 0.2, 0.9 + 20.0], rtol=1e-15)


def test_batch_norm_cumulative_average_by_hand() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    case = case_from_arrays(
        x,
        Layer("batch_norm", momentum=None),
        dtype="float64",
        running_mean=[5.0, 5.0],
        running_var=[9.0, 9.0],
    )
    ref = run_reference(case).quantities
    # momentum=None on a fresh module: factor 1 / num_batches_tracked = 1, so the batch stats win
    np.testing.assert_array_equal(ref["running_mean"], [2.0, 20.0])
    np.testing.assert_array_equal(ref["running_var"], [2.0, 200.0])


def test_batch_norm_eval_by_hand() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    layer = Layer("batch_norm", training=False, eps=0.0)
    y = as_array(
        run_reference(
            case_from_arrays(
                x, layer, dtype="float64", running_mean=[1.0, 1.0], running_var=[4.0, 4.0]
            )
        ).quantities["output"]
    )
    np.testing.assert_array_equal(y, [[0.0, 4.5], [1.0, 14.5]])


def test_rms_norm_by_hand() -> None:
    y = normalize([[3.0, 4.0]], Layer("rms_norm", normalized_shape=(2,), eps=0.0))
    np.testing.assert_allclose(y, [[3 / math.sqrt(12.5), 4 / math.sqrt(12.5)]], rtol=1e-15)


@pytest.mark.parametrize(
    ("dtype", "eps"),
    [("float64", 2.0**-52), ("float32", 2.0**-23), ("float16", 2.0**-23), ("bfloat16", 2.0**-23)],
)
def test_rms_norm_default_eps_is_measured_from_torch(dtype: str, eps: float) -> None:
    case = case_from_arrays(np.ones((2, 4)), Layer("rms_norm", normalized_shape=(4,)), dtype=dtype)  # type: ignore[arg-type]
    assert case.plan.eps == eps and case.layer.eps is None
    assert any(f"{eps:.6g}" in note for note in case.notes)


def test_local_response_norm_by_hand_with_torchs_padding() -> None:
    x = np.array([[[1.0], [2.0], [3.0]]])
    layer = Layer("local_response_norm", size=2, alpha=1.0, beta=1.0, k=1.0)
    # torch pads size//2 = 1 channel in front, (size-1)//2 = 0 behind: windows [c-1, c]
    want = [1 / (1 + 1 / 2), 2 / (1 + 5 / 2), 3 / (1 + 13 / 2)]
    np.testing.assert_allclose(normalize(x, layer).ravel(), want, rtol=1e-15)
    # ONNX's LRN centres an even window the other way, [c, c+1]: a different answer
    onnx = [1 / (1 + 5 / 2), 2 / (1 + 13 / 2), 3 / (1 + 9 / 2)]
    assert not np.allclose(normalize(x, layer).ravel(), onnx)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_odd_and_even_sizes_match_torch(size: int) -> None:
    x = np.random.default_rng(size).standard_normal((2, 6, 5))
    layer = Layer("local_response_norm", size=size, alpha=0.3, beta=0.6, k=1.5)
    want = torch.nn.functional.local_response_norm(torch.tensor(x), size, 0.3, 0.6, 1.5).numpy()
    np.testing.assert_allclose(normalize(x, layer), want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    ("activation", "module"),
    [
        ("relu", torch.nn.ReLU()),
        ("leaky_relu", torch.nn.LeakyReLU()),
        ("leaky_relu=0.3", torch.nn.LeakyReLU(0.3)),
        ("prelu", torch.nn.PReLU(dtype=torch.float64)),
        ("prelu=0.1", torch.nn.PReLU(init=0.1, dtype=torch.float64)),
        ("gelu", torch.nn.GELU()),
        ("gelu=tanh", torch.nn.GELU("tanh")),
        ("silu", torch.nn.SiLU()),
    ],
)
def test_activations_match_torch_defaults(activation: str, module: torch.nn.Module) -> None:
    x = np.random.default_rng(0).standard_normal((4, 8)) * 3
    layer = Layer("layer_norm", normalized_shape=(8,), eps=1e-5, activation=activation)
    ref = run_reference(case_from_arrays(x, layer, dtype="float64")).quantities
    y = torch.nn.functional.layer_norm(torch.tensor(x), (8,), eps=1e-5)
    with torch.no_grad():
        want = module(y).numpy()
    np.testing.assert_allclose(as_array(ref["activation"]), want, rtol=1e-13, atol=1e-15)


# --- float64 agreement over random shapes and parameters ---------------------------------------


@st.composite
def random_layers(draw: st.DrawFn) -> tuple[Layer, tuple[int, ...]]:
    op = draw(st.sampled_from(OP_NAMES))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 6))
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    shape = (n, c, *spatial)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    if op in ("layer_norm", "rms_norm"):
        k = draw(st.integers(1, len(shape)))
        return Layer(op, normalized_shape=shape[-k:], eps=eps), shape  # type: ignore[arg-type]
    if op == "group_norm":
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        if math.prod(shape) == groups:  # torch rejects one value per group (tested elsewhere)
            shape = (2, *shape[1:])
        return Layer("group_norm", groups=groups, eps=eps), shape
    if op == "instance_norm":
        if math.prod(spatial) == 1:
            shape = (n, c, 2, *spatial[1:])
        return Layer("instance_norm", eps=eps, affine=draw(st.booleans())), shape[:5]
    if op == "batch_norm":
        if n * math.prod(spatial) == 1:
            shape = (2, *shape[1:])
        return Layer("batch_norm", eps=eps, training=True), shape[:5]
    size = draw(st.integers(1, 5))
    return Layer(
        "local_response_norm",
        size=size,
        alpha=draw(st.floats(1e-4, 1)),
        beta=draw(st.floats(0.1, 1)),
        k=draw(st.floats(0.5, 2)),
    ), shape


@given(random_layers(), st.integers(0, 1000))
def test_random_layers_match_torch_in_float64(
    args: tuple[Layer, tuple[int, ...]], seed: int
) -> None:
    layer, shape = args
    arrays = random_parameters(layer, shape, np.random.default_rng(seed))
    assert_matches_reference(layer, "float64", shape, seed=seed, tolerance=TIGHT, **arrays)


# --- identities -----------------------------------------------------------------------------------


X = np.random.default_rng(11).normal(0.3, 1.7, size=(2, 4, 3, 5))


def test_layer_norm_over_non_batch_dims_is_group_norm_with_one_group() -> None:
    ln = normalize(X, Layer("layer_norm", normalized_shape=(4, 3, 5), affine=False))
    gn = normalize(X, Layer("group_norm", groups=1, affine=False))
    np.testing.assert_allclose(ln, gn, rtol=0, atol=1e-14)


def test_instance_norm_is_group_norm_with_one_channel_per_group() -> None:
    instance = normalize(X, Layer("instance_norm"))
    gn = normalize(X, Layer("group_norm", groups=4, affine=False))
    np.testing.assert_allclose(instance, gn, rtol=0, atol=1e-14)


def test_batch_norm_training_on_n_c_is_layer_norm_over_axis_0() -> None:
    x2 = X.reshape(2, -1).T.copy()  # (N=60, C=2)
    bn = normalize(x2, Layer("batch_norm", affine=False))
    ln = normalize(x2, Layer("layer_norm", axes=(0,), affine=False))
    np.testing.assert_allclose(bn, ln, rtol=0, atol=1e-14)


def test_axes_over_trailing_dims_equal_shape() -> None:
    by_axes = normalize(X, Layer("layer_norm", axes=(-2, -1)))
    by_shape = normalize(X, Layer("layer_norm", normalized_shape=(3, 5)))
    np.testing.assert_array_equal(by_axes, by_shape)


@pytest.mark.parametrize(
    "layer",
    [Layer("group_norm", groups=2), Layer("instance_norm"), Layer("batch_norm")],
    ids=lambda layer: layer.op,
)
def test_channels_last_gives_the_same_statistics(layer: Layer) -> None:
    first = run_reference(case_from_arrays(X, layer, dtype="float64")).quantities
    nhwc = np.moveaxis(X, 1, -1)
    last = run_reference(
        case_from_arrays(nhwc, layer.with_(channel_axis=-1), dtype="float64")
    ).quantities
    np.testing.assert_array_equal(first["mean"], last["mean"])
    np.testing.assert_array_equal(first["var"], last["var"])
    np.testing.assert_allclose(
        np.moveaxis(as_array(first["output"]), 1, -1), as_array(last["output"]), rtol=0, atol=1e-15
    )


def test_torch_functional_with_weight_equals_module() -> None:
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    module = torch.nn.LayerNorm((4, 5))
    with torch.no_grad():
        module.weight.normal_()
        module.bias.normal_()
        assert torch.equal(
            module(x), torch.nn.functional.layer_norm(x, (4, 5), module.weight, module.bias)
        )
        no_affine = torch.nn.LayerNorm((4, 5), elementwise_affine=False)
        assert torch.equal(no_affine(x), torch.nn.functional.layer_norm(x, (4, 5)))


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (Layer("group_norm", groups=4), (2, 6, 3), "--groups 4 does not divide the 6 channels"),
        (Layer("group_norm"), (2, 6, 3), "group_norm needs --groups"),
        (Layer("group_norm", groups=0), (2, 6, 3), "--groups must be positive"),
        (
            Layer("group_norm", groups=2),
            (1, 2),
            "torch's GroupNorm rejects an input of shape (1, 2)",
        ),
        (Layer("instance_norm"), (2, 6), "InstanceNorm needs an input with 3 to 5 dims"),
        (Layer("instance_norm"), (2, 6, 1), "more than one spatial element"),
        (
            Layer("batch_norm"),
            (1, 3),
            "BatchNorm in training needs more than one value per channel",
        ),
        (Layer("batch_norm", channel_axis=0), (4, 3), "--channel-axis 0 is the batch axis"),
        (Layer("batch_norm", channel_axis=5), (4, 3), "--channel-axis 5 is out of range"),
        (
            Layer("layer_norm", normalized_shape=(3,), axes=(0,)),
            (2, 3),
            "--shape (3,) means axes (1,)",
        ),
        (Layer("layer_norm", axes=(1, 1)), (2, 3), "repeat an axis"),
        (Layer("layer_norm", axes=(2,)), (2, 3), "axis 2 is out of range"),
        (Layer("local_response_norm"), (2, 3, 4), "needs --size"),
        (
            Layer("local_response_norm", size=2),
            (2, 3),
            "LocalResponseNorm needs an input with at least 3 dims",
        ),
        (
            Layer("layer_norm", normalized_shape=(3,), activation="tanh"),
            (2, 3),
            "unknown activation 'tanh'",
        ),
        (
            Layer("layer_norm", normalized_shape=(3,), activation="relu=2"),
            (2, 3),
            "relu takes no parameter",
        ),
        (Layer("layer_norm", normalized_shape=(3,), eps=math.inf), (2, 3), "--eps must be finite"),
    ],
)
def test_layer_errors(layer: Layer, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        case_from_arrays(np.ones(shape), layer)
    assert message in str(info.value)


def test_eval_needs_running_statistics() -> None:
    with pytest.raises(InputError, match="eval mode normalizes with running statistics"):
        case_from_arrays(np.ones((4, 3)), Layer("batch_norm", training=False))


def test_running_statistics_of_wrong_shape_or_not_tracked() -> None:
    with pytest.raises(
        InputError, match=r"running_mean has shape \(2,\); --running-mean must have shape \(3,\)"
    ):
        case_from_arrays(np.ones((4, 3)), Layer("batch_norm"), running_mean=np.zeros(2))
    with pytest.raises(InputError, match="keeps no running statistics"):
        case_from_arrays(np.ones((4, 3, 2)), Layer("instance_norm"), running_mean=np.zeros(3))


def test_negative_eps_gives_nan_on_both_sides_and_is_reported() -> None:
    x = np.array([[0.0, 1e-3, 2e-3, 3e-3]])  # var 1.25e-6: var + eps < 0 for eps = -1e-3
    report = check(
        case_from_arrays(x, Layer("layer_norm", normalized_shape=(4,), eps=-1e-3), dtype="float64")
    )
    out = [c for c in report.checks if c.quantity == "output"]
    assert all(c.nan_expected == 4 and c.nan_actual == 4 for c in out)
    assert not report.passed  # NaN fails unless --equal-nan
    report = check(
        case_from_arrays(
            x,
            Layer("layer_norm", normalized_shape=(4,), eps=-1e-3),
            dtype="float64",
            tolerance=ToleranceSpec(equal_nan=True),
        )
    )
    assert all(c.passed for c in report.checks if c.quantity == "output")


def test_eps_zero_works() -> None:
    assert_matches_reference(Layer("layer_norm", normalized_shape=(4,), eps=0.0), "float64", (3, 4))
