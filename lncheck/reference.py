"""The NumPy float64 reference: the normalization core, exact to float64 precision.

One core serves every mean/variance op: statistics over the plan's reduced axes, then
``(x - mean) / sqrt(var + eps)``, then the affine map. The mean is the corrected two-pass
mean (Chan, Golub & LeVeque): a first pass gives ``m0``, the second sums ``d = x - m0`` and
adds the mean of ``d`` back, which removes the rounding error of ``m0`` and leaves the
variance ``mean(d**2) - mean(d)**2`` free of cancellation even when ``|mean| >> std``.
For float32/float16 inputs the differences ``x - m0`` are exact in float64, so the result
agrees with an exact-arithmetic oracle to within a few float64 units in the last place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.layers import Layer, Plan, plan
from lncheck.result import LazyTensor, NormResult, Quantity

F64 = npt.NDArray[np.float64]
NAME = "reference"


def group_statistics(block: npt.NDArray[np.generic], center: bool = True) -> tuple[F64, F64]:
    """Mean and biased variance of each row of a (groups, elements) block, in float64.

    With ``center=False`` (RMSNorm) the mean is zero and the "variance" is the mean square.
    """
    x = np.asarray(block, dtype=np.float64)
    with np.errstate(all="ignore"):
        if not center:
            return np.zeros(x.shape[0]), np.mean(x * x, axis=1)
        m0 = np.mean(x, axis=1)
        d = x - m0[:, None]
        correction = np.mean(d, axis=1)
        var = np.mean(d * d, axis=1) - correction * correction
        return m0 + correction, np.maximum(var, 0.0, where=~np.isnan(var), out=var)


def run(case: Case) -> NormResult:
    """Run the reference on a case: statistics now, element-wise quantities lazily, by block."""
    p = case.plan
    layout = layout_of(p)
    quantities: dict[str, Quantity] = {}
    if p.has_statistics:
        output, stats = _moments(case, layout)
        quantities.update({"output": output, **stats})
    else:
        output = LazyTensor(layout, (case.x,), partial(_lrn_block, p=p))
        quantities["output"] = output
    if p.activation is not None:
        act = activation_function(p.activation.name, p.activation.param, case.dtype)
        quantities["activation"] = LazyTensor(
            layout, output.sources, lambda first, blocks: act(output.compute(first, blocks))
        )
    return NormResult(NAME, quantities)


def _moments(case: Case, layout: GroupLayout) -> tuple[LazyTensor, dict[str, Quantity]]:
    """The mean/variance ops: statistics per group, and the output as a lazy quantity."""
    p = case.plan
    mean, var = _statistics(layout, case.x, p.center)
    with np.errstate(all="ignore"):
        rstd = 1.0 / np.sqrt(var + p.eps)
    stats: dict[str, Quantity] = {"mean": mean, "var": var, "rstd": rstd}
    norm_mean, norm_var = mean, var
    if p.use_running_stats or p.update_running_stats:
        running_mean, running_var = _running(case)
        if p.use_running_stats:
            norm_mean = _per_group(p, running_mean)
            norm_var = _per_group(p, running_var)
        if p.update_running_stats:
            stats.update(_updated_running_stats(p, mean, var, running_mean, running_var))
    sources: list[npt.NDArray[np.generic]] = [case.x]
    weight, bias = param_views(p, case.weight, case.bias)
    sources += [a for a in (weight, bias) if a is not None]

    def compute(first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> F64:
        n = blocks[0].shape[0]
        m = norm_mean[first : first + n, None]
        v = norm_var[first : first + n, None]
        with np.errstate(all="ignore"):
            y = (np.asarray(blocks[0], dtype=np.float64) - m) / np.sqrt(v + p.eps)
            rest = list(blocks[1:])
            if weight is not None:
                np.multiply(y, rest.pop(0), out=y)
            if bias is not None:
                np.add(y, rest.pop(0), out=y)
        return y

    return LazyTensor(layout, tuple(sources), compute), stats


def _running(case: Case) -> tuple[F64, F64]:
    """The running statistics given, or those of a fresh module (zeros and ones)."""
    shape = case.plan.stats_shape
    mean = (
        np.zeros(shape)
        if case.running_mean is None
        else np.asarray(case.running_mean, dtype=np.float64)
    )
    var = (
        np.ones(shape)
        if case.running_var is None
        else np.asarray(case.running_var, dtype=np.float64)
    )
    return mean, var


def _per_group(p: Plan, per_channel: F64) -> F64:
    """Per-channel values spread over the groups (InstanceNorm's groups are (N, C))."""
    shape = [1] * len(p.group_shape)
    assert p.channel_group_axis is not None
    shape[p.channel_group_axis] = per_channel.size
    return np.broadcast_to(per_channel.reshape(shape), p.group_shape).reshape(-1)


def _updated_running_stats(
    p: Plan, mean: F64, var: F64, running_mean: F64, running_var: F64
) -> dict[str, Quantity]:
    """torch's update rule: the running variance takes the *unbiased* batch variance, although
    the output is normalized with the biased one; InstanceNorm averages its per-instance
    statistics over the batch first."""
    n = p.group_size
    with np.errstate(all="ignore"):
        unbiased = var * (n / (n - 1))
    axis = p.channel_group_axis
    assert axis is not None
    others = tuple(i for i in range(len(p.group_shape)) if i != axis)
    batch_mean = mean.reshape(p.group_shape).mean(axis=others)
    batch_var = unbiased.reshape(p.group_shape).mean(axis=others)
    f = p.momentum_factor
    return {
        "running_mean": (1 - f) * running_mean + f * batch_mean,
        "running_var": (1 - f) * running_var + f * batch_var,
    }


def _lrn_block(first: int, blocks: tuple[npt.NDArray[np.generic], ...], p: Plan) -> F64:
    """LocalResponseNorm on a (positions, channels) block, padded as torch pads it: size // 2
    zero channels in front and (size - 1) // 2 behind, averaged over the full window."""
    layer = p.layer
    size = layer.size
    assert size is not None
    x = np.asarray(blocks[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        padded = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2)))
        window = np.lib.stride_tricks.sliding_window_view(padded, size, axis=1).sum(axis=-1)
        return np.asarray(x / (layer.k + layer.alpha * window / size) ** layer.beta)


def activation_function(
    name: str, param: float | str | None, dtype: str = "float64"
) -> Callable[[F64], F64]:
    """The activation as a float64 NumPy function (``param`` as in ``layers.Activation``).

    A PReLU or LeakyReLU slope is a parameter torch holds in the compute dtype, so it is
    rounded to that dtype first.
    """
    from lncheck.dtypes import round_to

    def slope(value: float | str | None) -> float:
        return float(round_to(np.array([float(value or 0.0)]), dtype)[0])  # type: ignore[arg-type]

    if name == "relu":
        return lambda y: np.maximum(y, 0.0)
    if name in ("leaky_relu", "prelu"):
        a = slope(param) if name == "prelu" else float(param or 0.0)
        return lambda y: np.where(y >= 0, y, a * y)
    if name == "silu":

        def silu(y: F64) -> F64:
            with np.errstate(over="ignore"):
                return y / (1.0 + np.exp(-y))

        return silu
    if name == "gelu" and param == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return lambda y: 0.5 * y * (1.0 + np.tanh(c * (y + 0.044715 * y**3)))
    if name == "gelu":
        return lambda y: 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0)))
    raise AssertionError(f"unknown activation {name}")


# NumPy has no erf; the C library's, one element at a time, is exact to the last bit.
_erf_elementwise = np.frompyfunc(math.erf, 1, 1)


def _erf(y: F64) -> F64:
    return np.asarray(_erf_elementwise(y), dtype=np.float64)


def layout_of(p: Plan) -> GroupLayout:
    return GroupLayout(p.input_shape, p.view_shape, p.reduce_axes)


def param_views(
    p: Plan, weight: npt.NDArray[np.generic] | None, bias: npt.NDArray[np.generic] | None
) -> tuple[npt.NDArray[np.generic] | None, npt.NDArray[np.generic] | None]:
    """Weight and bias reshaped to broadcast against the plan's view (``None`` when absent).

    A missing weight or bias of an affine layer is ones or zeros, as in a fresh torch module,
    and is left out here because multiplying by one and adding zero change nothing.
    """
    shape = [1] * len(p.view_shape)
    for axis in p.param_axes:
        shape[axis] = p.view_shape[axis]

    def view(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
        return None if a is None or not p.affine else np.asarray(a).reshape(shape)

    return view(weight), view(bias) if p.has_bias else None


def _statistics(layout: GroupLayout, x: npt.NDArray[np.generic], center: bool) -> tuple[F64, F64]:
    mean = np.empty(layout.groups)
    var = np.empty(layout.groups)
    for first, block in layout.blocks(x):
        n = block.shape[0]
        mean[first : first + n], var[first : first + n] = group_statistics(block, center)
    return mean, var


# --- the ops as NumPy functions: thin wrappers that choose axes --------------------------------


def normalize(
    x: npt.ArrayLike,
    layer: Layer,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
) -> F64:
    """Apply ``layer`` to ``x`` in float64 and return the whole output."""
    from lncheck.dtypes import round_to

    arr = np.asarray(x, dtype=np.float64)
    p = plan(layer, tuple(arr.shape), "float64")
    case = Case(
        name="array",
        x=round_to(arr, "float64"),
        input_dtype="float64",
        dtype="float64",
        layer=p.layer,
        plan=p,
        weight=None if weight is None else np.asarray(weight, dtype=np.float64),
        bias=None if bias is None else np.asarray(bias, dtype=np.float64),
    )
    out = run(case).quantities["output"]
    assert isinstance(out, LazyTensor)
    return out.materialize()


def layer_norm(
    x: npt.ArrayLike,
    normalized_shape: int | Sequence[int],
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    eps: float = 1e-5,
) -> F64:
    """``torch.nn.functional.layer_norm`` in float64.

    >>> layer_norm([[1.0, 2.0, 3.0]], 3, eps=0.0).round(6)
    array([[-1.224745,  0.      ,  1.224745]])
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return normalize(x, Layer("layer_norm", normalized_shape=shape, eps=eps), weight, bias)
