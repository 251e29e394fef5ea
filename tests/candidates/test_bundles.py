"""Bundles: a candidate's quantities from files, checked against the layer and compared as the
reference lays them out. The test vectors are built here (ONNX's reference LayerNormalization,
torch's BatchNorm and InstanceNorm) and written as files, as a user would hand them over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lncheck.candidates import QUANTITIES
from lncheck.candidates.bundles import accepted_shapes, checked, members
from lncheck.errors import InputError
from lncheck.loading import load
from lncheck.pipeline import check_case

from ..support import make_case, settings


def _verdicts(report: Any, candidate: str = "expected") -> dict[str, bool]:
    return {c.quantity: c.passed for c in report.checks if c.candidate == candidate}


def _check(x: np.ndarray, op: str = "layer_norm", **options: Any) -> dict[str, bool]:
    """Only the given results, against the reference (no backend)."""
    expected = options.pop("expected")
    case = load(settings(op, expected=expected, **options), "x", given={"input": x})
    return _verdicts(check_case(case, backend=None))


# --- ONNX LayerNormalization: Y, Mean and InvStdDev, with the reduced dims kept as 1 -------------


def onnx_layer_normalization(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, axis: int = -1, epsilon: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX's reference implementation (onnx/backend/test/case/node/layernormalization.py)."""
    rank = x.ndim
    axis = axis + rank if axis < 0 else axis
    reduction_shape = x.shape[:axis] + (1,) * (rank - axis)
    rows = int(np.prod(x.shape[:axis]))
    cols = int(np.prod(x.shape[axis:]))
    x_mat = np.reshape(x, (rows, cols))
    x_mean = np.sum(x_mat, axis=1, keepdims=True) / cols
    x_diff = x_mat - x_mean
    variance = np.sum(x_diff * x_diff, axis=1, keepdims=True) / cols
    inv_std_dev = np.reciprocal(np.sqrt(variance + epsilon))
    y = np.reshape(x_diff * inv_std_dev, x.shape) * w + b
    return y, x_mean.reshape(reduction_shape), inv_std_dev.reshape(reduction_shape)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_onnx_layer_normalization_vectors_pass_as_an_npz_bundle(
    axis: int, write: Callable[..., Path]
) -> None:
    # layer_normalization_4d_axis{axis}: float32 X of shape (2, 3, 4, 5), W and B random
    rng = np.random.default_rng(axis + 10)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    shape = x.shape[axis:]
    w = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    y, mean, inv_std = onnx_layer_normalization(x, w, b, axis)
    assert mean.dtype == np.float32 and mean.shape == x.shape[:axis] + (1,) * len(shape)
    bundle = write(f"onnx{axis}.npz", output=y, mean=mean, rstd=inv_std)
    verdicts = _check(x, normalized_shape=shape, weight=w, bias=b, expected=str(bundle))
    assert verdicts == {"output": True, "mean": True, "rstd": True}


def test_onnx_epsilon_vector_and_a_wrong_saved_rstd(write: Callable[..., Path]) -> None:
    # layer_normalization_3d_axis1_epsilon: epsilon 0.1; then a kernel that saves 1/std
    # without eps (its output is right): the rstd check alone fails
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    w, b = np.ones((3, 5), np.float32), np.zeros((3, 5), np.float32)
    y, mean, inv_std = onnx_layer_normalization(x, w, b, 1, epsilon=0.1)
    good = write("good.npz", output=y, mean=mean, rstd=inv_std)
    assert _check(x, normalized_shape=(3, 5), eps=0.1, expected=str(good)) == {
        "output": True,
        "mean": True,
        "rstd": True,
    }
    wrong = (1 / np.sqrt(1 / inv_std.astype(np.float64) ** 2 - 0.1)).astype(np.float32)
    bad = write("bad.npz", output=y, mean=mean, rstd=wrong)
    verdicts = _check(x, normalized_shape=(3, 5), eps=0.1, expected=str(bad))
    assert verdicts == {"output": True, "mean": True, "rstd": False}


# --- torch's BatchNorm and InstanceNorm: updated running statistics ----------------------------


def _batch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(0.5, 2.0, size=(4, 3, 5, 5)).astype(np.float32)
    return x, rng.normal(0, 0.2, 3).astype(np.float32), rng.uniform(1, 2, 3).astype(np.float32)


def _torch_batch_norm(
    x: np.ndarray, mean: np.ndarray, var: np.ndarray, momentum: Any
) -> dict[str, Any]:
    bn = torch.nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
    y = bn(torch.from_numpy(x)).detach()
    return {
        "output": y,
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_torch_batch_norm_samples_pass_as_a_pt_bundle(momentum: Any, tmp_path: Path) -> None:
    x, mean, var = _batch()
    path = tmp_path / "bn.pt"
    torch.save(_torch_batch_norm(x, mean, var, momentum), path)
    verdicts = _check(
        x, "batch_norm", momentum=momentum, running_mean=mean, running_var=var, expected=str(path)
    )
    assert verdicts == {"output": True, "running_mean": True, "running_var": True}


def test_torch_instance_norm_with_running_statistics_passes(write: Callable[..., Path]) -> None:
    x, _, _ = _batch()
    layer = torch.nn.InstanceNorm2d(3, track_running_stats=True, momentum=0.2)
    y = layer(torch.from_numpy(x)).detach().numpy()
    bundle = write(
        "in.npz",
        output=y,
        running_mean=layer.running_mean.numpy(),
        running_var=layer.running_var.numpy(),
    )
    verdicts = _check(
        x, "instance_norm", track_running_stats=True, momentum=0.2, expected=str(bundle)
    )
    assert verdicts == {"output": True, "running_mean": True, "running_var": True}


def test_a_biased_running_var_and_a_tf_momentum_fail_naming_the_quantity(
    write: Callable[..., Path],
) -> None:
    x, mean, var = _batch()
    right = {k: v.numpy() for k, v in _torch_batch_norm(x, mean, var, 0.1).items()}
    xd = x.astype(np.float64)
    # a port that stores the biased batch variance (the one it normalizes with)
    biased = (0.9 * var + 0.1 * xd.var(axis=(0, 2, 3))).astype(np.float32)
    # a port that reads torch's momentum 0.1 as TensorFlow's decay: 0.1 * old + 0.9 * batch
    tf = (0.1 * mean + 0.9 * xd.mean(axis=(0, 2, 3))).astype(np.float32)
    options = {"running_mean": mean, "running_var": var}
    bad_var = write("v.npz", **{**right, "running_var": biased})
    bad_mean = write("m.npz", **{**right, "running_mean": tf})
    assert _check(x, "batch_norm", expected=str(bad_var), **options) == {
        "output": True,
        "running_mean": True,
        "running_var": False,
    }
    assert _check(x, "batch_norm", expected=str(bad_mean), **options) == {
        "output": True,
        "running_mean": False,
        "running_var": True,
    }


def test_the_starting_running_statistics_stay_inputs(write: Callable[..., Path]) -> None:
    # In the input file running_mean/running_var are the starting values; the kernel's updated
    # ones go under expected_running_mean/expected_running_var.
    x, mean, var = _batch()
    right = {k: v.numpy() for k, v in _torch_batch_norm(x, mean, var, 0.1).items()}
    path = write(
        "in.npz",
        input=x,
        running_mean=mean,
        running_var=var,
        expected_running_mean=right["running_mean"],
        expected_running_var=right["running_var"],
    )
    case = load(settings("batch_norm"), str(path))
    np.testing.assert_array_equal(case.running_mean, mean)
    (given,) = case.given
    assert list(given.quantities) == ["running_mean", "running_var"]
    assert _verdicts(check_case(case, backend=None)) == {"running_mean": True, "running_var": True}


# --- a kernel's gradients -----------------------------------------------------------------------


def test_a_backward_that_sums_over_shape0_rows_fails_dweight_and_dbias(
    write: Callable[..., Path],
) -> None:
    # n14 (FlagGems#5392): for a (batch, seq, hidden) input the kernel reduces dweight/dbias
    # over the first M = shape[0] rows only; its dx is right
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    w, b = rng.normal(1, 0.3, 8).astype(np.float32), rng.normal(0, 0.3, 8).astype(np.float32)
    dy = rng.standard_normal((2, 3, 8)).astype(np.float32)
    xt = torch.from_numpy(x).double().requires_grad_(True)
    wt = torch.from_numpy(w).double().requires_grad_(True)
    bt = torch.from_numpy(b).double().requires_grad_(True)
    torch.nn.functional.layer_norm(xt, (8,), wt, bt).backward(torch.from_numpy(dy).double())
    n = (xt - xt.mean(-1, keepdim=True)) / torch.sqrt(xt.var(-1, False, keepdim=True) + 1e-5)
    rows = 2  # the bug: input.shape[0] rows
    dw = (torch.from_numpy(dy).double() * n).reshape(-1, 8)[:rows].sum(0).detach()
    db = torch.from_numpy(dy).double().reshape(-1, 8)[:rows].sum(0)
    bundle = write(
        "grads.npz",
        grad_input=xt.grad.numpy().astype(np.float32),
        grad_weight=dw.numpy().astype(np.float32),
        grad_bias=db.numpy().astype(np.float32),
    )
    verdicts = _check(x, normalized_shape=8, weight=w, bias=b, grad_output=dy, expected=str(bundle))
    assert verdicts == {"grad_input": True, "grad_weight": False, "grad_bias": False}


# --- what a bundle may hold --------------------------------------------------------------------


def test_a_plain_array_is_the_final_output_a_bundle_is_named_members() -> None:
    spec = make_case(np.ones((2, 4)), normalized_shape=4).spec
    relu = make_case(np.ones((2, 4)), normalized_shape=4, activation="relu").spec
    a = np.zeros((2, 4))
    assert list(members({"input": a}, None, spec)) == ["output"]
    assert list(members({"arr_0": a}, None, relu)) == ["activation"]
    assert list(members({"output": a, "rstd": a[:, 0]}, None, spec)) == ["output", "rstd"]
    assert list(members({"x": a}, "grad_input", spec)) == ["grad_input"]
    with pytest.raises(InputError) as info:
        members({"output": a, "outptu": a}, None, spec)
    assert str(info.value) == (
        "unknown member 'outptu': a bundle's members are named after quantities "
        f"({', '.join(QUANTITIES)})"
    )
    with pytest.raises(InputError, match="holds 2 arrays and none is named 'rstd'"):
        members({"a": a, "b": a}, "rstd", spec)


def test_statistics_are_taken_kept_squeezed_or_flat() -> None:
    p = make_case(np.ones((2, 3, 4)), normalized_shape=4).spec
    assert accepted_shapes("mean", p) == [(2, 3), (2, 3, 1), (6,)]
    gn = make_case(np.ones((2, 4, 3)), "group_norm", groups=2).spec
    assert accepted_shapes("rstd", gn) == [(2, 2), (2, 2, 1, 1), (4,)]
    bn = make_case(np.ones((2, 4, 3)), "batch_norm").spec
    assert accepted_shapes("mean", bn) == [(4,), (1, 4, 1)]
    assert accepted_shapes("running_var", bn) == [(4,)]
    assert accepted_shapes("grad_weight", p) == [(4,)]
    out = checked({"mean": np.arange(6.0).reshape(2, 3, 1)}, p, False, "f.npz")
    np.testing.assert_array_equal(out["mean"], np.arange(6.0))  # flat, in group order
    with pytest.raises(InputError) as info:
        checked({"mean": np.zeros((3, 2))}, p, False, "f.npz")
    assert str(info.value) == (
        "f.npz: mean has shape (3, 2); layer_norm on an input of shape (2, 3, 4) needs "
        "(2, 3) or (2, 3, 1) or (6,)"
    )


@pytest.mark.parametrize(
    ("op", "options", "quantity", "phrase"),
    [
        ("layer_norm", {"normalized_shape": 4}, "activation", "no activation= is given"),
        ("layer_norm", {"normalized_shape": 4}, "grad_input", "only with grad="),
        ("layer_norm", {"normalized_shape": 4, "grad": True, "affine": False}, "grad_weight",
         "the layer has no weight"),
        ("rms_norm", {"normalized_shape": 4, "grad": True}, "grad_bias", "the layer has no bias"),
        ("batch_norm", {"training": False, "running_mean": np.zeros(4),
                        "running_var": np.ones(4)}, "running_mean", "updates no running"),
        ("instance_norm", {}, "running_var", "InstanceNorm1d updates no running statistics"),
        ("local_response_norm", {"size": 2}, "mean", "computes no per-group statistics"),
    ],
)  # fmt: skip
def test_a_quantity_the_layer_does_not_have_is_refused(
    op: str, options: dict[str, Any], quantity: str, phrase: str
) -> None:
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    if op in ("layer_norm", "rms_norm"):
        x = x.reshape(6, 4)
    case = make_case(x, op, **options)
    shape = accepted_shapes(quantity, case.spec)[0]
    with pytest.raises(InputError) as info:
        make_case(x, op, expected={quantity: np.zeros(shape)}, **options)
    message = str(info.value)
    assert message.startswith(f"the array given to expected=: gives {quantity}, but ")
    assert phrase in message


def test_a_json_bundle_and_a_quantity_given_twice(write: Callable[..., Path]) -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    y = (x - 2.5) / np.sqrt(1.25 + 1e-5)
    bundle = write("b.json", {"output": y.tolist(), "mean": [[2.5]], "var": [1.25]})
    verdicts = _check(x, normalized_shape=4, dtype="float64", expected=str(bundle))
    assert verdicts == {"output": True, "mean": True, "var": True}
    with pytest.raises(InputError) as info:
        _check(x, normalized_shape=4, expected=[str(bundle), f"output={write('y.npy', y)}"])
    assert "gives output of candidate 'expected', which" in str(info.value)
    assert f"{bundle} (given to expected=) gives too" in str(info.value)


def test_a_bundle_with_no_arrays_is_an_input_error(tmp_path: Path) -> None:
    # an empty .npz, and the API's empty table for a candidate: one line, never an IndexError
    from ..cli.helpers import assert_user_error, invoke

    spec = make_case(np.ones((4, 8), np.float32), normalized_shape=8).spec
    for quantity in (None, "grad_weight"):
        with pytest.raises(InputError, match=r"^holds no arrays$"):
            members({}, quantity, spec)
    x, empty = tmp_path / "x.npy", tmp_path / "empty.npz"
    np.save(x, np.ones((4, 8), np.float32))
    np.savez(empty)
    for flag in ("--expected", "--expected-grad-weight"):
        result = invoke("compare", str(x), "--shape", "8", "--grad", flag, str(empty))
        assert_user_error(result, f"{empty} (given to {flag}): holds no arrays")


def test_a_boolean_result_is_an_input_error() -> None:
    # a mask saved in place of a gradient compared as 0.0 and 1.0 would be a meaningless check
    spec = make_case(np.ones((4, 8), np.float32), normalized_shape=8).spec
    with pytest.raises(InputError, match=r"^w\.npy: grad_weight is boolean; expected floating"):
        checked({"grad_weight": np.ones(8, bool)}, spec, True, "w.npy")
    assert (
        checked({"grad_weight": np.ones(8, np.int32)}, spec, True, "w.npy")["grad_weight"].dtype
        == np.float64
    )
