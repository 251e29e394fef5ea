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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt

from lncheck import activations
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.ops.spec import NormSpec
from lncheck.result import Bound, LazyTensor, NormResult, Quantity, Scale

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
    """Run the reference on a case: statistics now, element-wise quantities lazily, by block.

    Besides each quantity, the result holds its forward error bound (``bounds``, see
    ``tolerances``) and each group's conditioning.
    """
    p = case.spec
    layout = layout_of(p)
    if p.statistics:
        moments = _moments(case, layout)
        quantities, bounds, output = moments.quantities, moments.bounds, moments.output
        terms, conditioning = moments.output_terms, moments.conditioning
    else:
        output = LazyTensor(layout, (case.x,), partial(_lrn_block, p=p))
        beta = abs(p.options["beta"])
        # The window's sum of squares has the statistics' error; the power magnifies it by beta.
        terms = {"spread": lambda first, blocks: beta * np.abs(output.compute(first, blocks))}
        quantities = {"output": output}
        bounds = {"output": Bound("relative", _lazy_terms(output, terms))}
        conditioning = None
    if p.activation is not None:
        act = activations.function(p.activation, case.dtype)
        lipschitz = p.activation.lipschitz
        quantities["activation"] = output.map(act)
        # An activation with slope at most L turns an input error e into at most L * e.
        act_terms: dict[str, BlockFn] = {
            "relative": lambda first, blocks: lipschitz * np.abs(output.compute(first, blocks))
        }
        for kind, fn in terms.items():
            act_terms[kind] = partial(_scaled_block, fn=fn, factor=lipschitz)
        magnitude = lipschitz * bounds["output"].magnitude
        bounds["activation"] = Bound("relative", _lazy_terms(output, act_terms), magnitude)
    return NormResult(NAME, quantities, bounds, conditioning)


BlockFn = Callable[[int, tuple[npt.NDArray[np.generic], ...]], F64 | float]


def _scaled_block(
    first: int, blocks: tuple[npt.NDArray[np.generic], ...], fn: BlockFn, factor: float
) -> F64:
    return np.asarray(factor * np.asarray(fn(first, blocks)), dtype=np.float64)


def _lazy_terms(output: LazyTensor, terms: dict[str, BlockFn]) -> dict[str, Scale]:
    """Per-element bound terms, computed from the same blocks as ``output``."""

    def full(fn: BlockFn) -> Callable[[int, tuple[npt.NDArray[np.generic], ...]], F64]:
        return lambda first, blocks: np.broadcast_to(
            np.asarray(fn(first, blocks), dtype=np.float64), blocks[0].shape
        )

    return {k: LazyTensor(output.layout, output.sources, full(fn)) for k, fn in terms.items()}


@dataclass(frozen=True)
class _Moments:
    output: LazyTensor
    output_terms: dict[str, BlockFn]
    quantities: dict[str, Quantity]
    bounds: dict[str, Bound]
    conditioning: F64


def _moments(case: Case, layout: GroupLayout) -> _Moments:
    """The mean/variance ops: statistics per group, and the output as a lazy quantity."""
    p = case.spec
    mean, biased = _statistics(layout, case.x, p.center)
    var = estimated(biased, p)
    with np.errstate(all="ignore"):
        rstd = reciprocal_std(var, p)
        batch_kappa = np.abs(mean) / np.sqrt(var + abs(p.eps))
    quantities: dict[str, Quantity] = {"mean": mean, "var": var, "rstd": rstd}
    norm_mean, norm_var = mean, var
    bounds: dict[str, Bound] = {}
    if p.use_running_stats or p.update_running_stats:
        running_mean, running_var = _running(case)
        if p.use_running_stats:
            norm_mean = _per_group(p, running_mean)
            norm_var = _per_group(p, running_var)
        if p.update_running_stats:
            running, running_bounds = _updated_running_stats(
                p, mean, biased, batch_kappa, running_mean, running_var
            )
            quantities.update(running)
            bounds.update(running_bounds)
    with np.errstate(all="ignore"):
        kappa = np.abs(norm_mean) / np.sqrt(norm_var + p.eps)
    sources: list[npt.NDArray[np.generic]] = [case.x]
    weight, bias = param_views(p, case.weight, case.bias)
    sources += [a for a in (weight, bias) if a is not None]

    with np.errstate(all="ignore"):
        inv_std = reciprocal_std(norm_var, p)

    def compute(first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> F64:
        n = blocks[0].shape[0]
        with np.errstate(all="ignore"):
            y: F64 = np.subtract(blocks[0], norm_mean[first : first + n, None], dtype=np.float64)
            y *= inv_std[first : first + n, None]
            rest = list(blocks[1:])
            if weight is not None:
                np.multiply(y, rest.pop(0), out=y)
            if bias is not None:
                np.add(y, rest.pop(0), out=y)
        return y

    def spread(first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> F64:
        """``(1 + kappa) * |w|``: how far an error of the statistics moves an element."""
        k = 1.0 + kappa[first : first + blocks[0].shape[0], None]
        if weight is None:
            return k
        with np.errstate(all="ignore"):
            return np.asarray(k * np.abs(np.asarray(blocks[1], dtype=np.float64)))

    def fixed(first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> F64:
        return np.abs(np.asarray(blocks[-1], dtype=np.float64))

    output = LazyTensor(layout, tuple(sources), compute)
    output_terms: dict[str, BlockFn] = {"spread": spread}
    if bias is not None:
        output_terms["fixed"] = fixed
    magnitude = _group_max(p, _offset(case.weight, p), 1.0) + _group_max(
        p, case.bias if p.has_bias else None, 0.0
    )
    if weight is None and bias is None:  # per group: no per-element work
        bounds["output"] = Bound("relative", {"spread": 1.0 + kappa}, magnitude)
    else:
        bounds["output"] = Bound("relative", _lazy_terms(output, output_terms), magnitude)
    with np.errstate(all="ignore"):  # NaN statistics give NaN bounds, which never pass
        bounds["mean"] = Bound("spread", {"spread": np.sqrt(var + abs(p.eps))}, np.sqrt(var))
        # a variance read back from rstd as 1 / rstd**2 - eps (torch returns only rstd) also
        # carries rstd's absolute rounding error where rstd may be subnormal (a huge eps;
        # 2**-14 is float16's smallest normal, the largest of the dtypes')
        subnormal = np.where(rstd < 2.0**-14, np.minimum(2.0 / rstd**3, 1e300), 0.0)
        bounds["var"] = Bound(
            "spread",
            {
                "spread": batch_kappa * np.abs(var) + (1.0 + batch_kappa) * abs(p.eps),
                "floor": subnormal,
            },
        )
        bounds["rstd"] = Bound("spread", {"spread": batch_kappa * rstd})
    quantities = {"output": output, **quantities}
    return _Moments(output, output_terms, quantities, bounds, kappa)


def estimated(biased: F64, p: NormSpec) -> F64:
    """The variance the spec's estimator gives from the biased one: ÷n, or ÷(n - 1)."""
    if p.variance == "biased":
        return biased
    n = p.group_size
    with np.errstate(all="ignore"):
        return np.asarray(biased * (n / (n - 1)), dtype=np.float64)


def reciprocal_std(var: F64, p: NormSpec) -> F64:
    """``1 / sqrt(var + eps)``, or ``1 / (sqrt(var) + eps)`` where eps goes on the std."""
    with np.errstate(all="ignore"):
        if p.eps_placement == "std":
            return np.asarray(1.0 / (np.sqrt(var) + p.eps), dtype=np.float64)
        return np.asarray(1.0 / np.sqrt(var + p.eps), dtype=np.float64)


def normalizing_statistics(case: Case) -> tuple[F64, F64]:
    """The per-group mean and variance the output is normalized with: the batch's, or the
    running statistics in eval mode."""
    p = case.spec
    mean, biased = _statistics(layout_of(p), case.x, p.center)
    if not p.use_running_stats:
        return mean, estimated(biased, p)
    running_mean, running_var = _running(case)
    return _per_group(p, running_mean), _per_group(p, running_var)


def _group_max(p: NormSpec, param: npt.NDArray[np.generic] | None, default: float) -> F64 | float:
    """The largest ``|param|`` each group uses (``default`` for a missing one), per group."""
    if param is None or not p.affine:
        return default
    shape = [p.view_shape[axis] if axis in p.param_axes else 1 for axis in range(len(p.view_shape))]
    largest = (
        np.abs(np.asarray(param, dtype=np.float64))
        .reshape(shape)
        .max(axis=p.reduce_axes, keepdims=True)
    )
    per_group = np.squeeze(largest, axis=p.reduce_axes)
    return np.broadcast_to(per_group, p.group_shape).reshape(-1)


def _running(case: Case) -> tuple[F64, F64]:
    """The running statistics given, or those of a fresh module (zeros and ones)."""
    shape = case.spec.stats_shape
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


def _per_group(p: NormSpec, per_channel: F64) -> F64:
    """Per-channel values spread over the groups (InstanceNorm's groups are (N, C))."""
    shape = [1] * len(p.group_shape)
    assert p.channel_group_axis is not None
    shape[p.channel_group_axis] = per_channel.size
    return np.broadcast_to(per_channel.reshape(shape), p.group_shape).reshape(-1)


def _updated_running_stats(
    p: NormSpec, mean: F64, var: F64, kappa: F64, running_mean: F64, running_var: F64
) -> tuple[dict[str, Quantity], dict[str, Bound]]:
    """torch's update rule: the running variance takes the *unbiased* batch variance, although
    the output is normalized with the biased one; InstanceNorm averages its per-instance
    statistics over the batch first. Also returns their error bounds."""
    n = p.group_size
    with np.errstate(all="ignore"):
        unbiased = var * (n / (n - 1))
    axis = p.channel_group_axis
    assert axis is not None
    others = tuple(i for i in range(len(p.group_shape)) if i != axis)

    def per_channel(a: F64, reduce: Callable[..., F64]) -> F64:
        return reduce(a.reshape(p.group_shape), axis=others)

    f = p.momentum_factor
    with np.errstate(all="ignore"):
        mean_size = per_channel(np.abs(mean) + np.sqrt(var), np.max)
        var_size = per_channel((1 + kappa) * (np.abs(unbiased) + abs(p.eps)), np.max)
        quantities: dict[str, Quantity] = {
            "running_mean": (1 - f) * running_mean + f * per_channel(mean, np.mean),
            "running_var": (1 - f) * running_var + f * per_channel(unbiased, np.mean),
        }
        bounds = {
            "running_mean": Bound(
                "spread", {"spread": abs(1 - f) * np.abs(running_mean) + abs(f) * mean_size}
            ),
            "running_var": Bound(
                "spread", {"spread": abs(1 - f) * np.abs(running_var) + abs(f) * var_size}
            ),
        }
    return quantities, bounds


def _lrn_block(first: int, blocks: tuple[npt.NDArray[np.generic], ...], p: NormSpec) -> F64:
    """LocalResponseNorm on a (positions, channels) block, padded as torch pads it: size // 2
    zero channels in front and (size - 1) // 2 behind, averaged over the full window."""
    o = p.options
    size, alpha, beta, k = o["size"], o["alpha"], o["beta"], o["k"]
    x = np.asarray(blocks[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        if size >= 2 * x.shape[1] - 1:  # every window spans all channels: no huge padding
            window = np.broadcast_to((x * x).sum(axis=1, keepdims=True), x.shape)
        else:
            padded = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2)))
            windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=1)
            window = windows.sum(axis=-1)
        return np.asarray(x / (k + alpha * window / size) ** beta)


def layout_of(p: NormSpec) -> GroupLayout:
    return GroupLayout(p.input_shape, p.view_shape, p.reduce_axes)


def param_views(
    p: NormSpec, weight: npt.NDArray[np.generic] | None, bias: npt.NDArray[np.generic] | None
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

    return view(_offset(weight, p)), view(bias) if p.has_bias else None


def _offset(weight: npt.NDArray[np.generic] | None, p: NormSpec) -> npt.NDArray[np.generic] | None:
    """The weight the output is scaled by: ``w``, or ``1 + w`` for zero-centred weights."""
    if weight is None or not p.weight_offset:
        return weight
    return np.asarray(weight, dtype=np.float64) + p.weight_offset


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
    op: str = "layer_norm",
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    running_mean: npt.ArrayLike | None = None,
    running_var: npt.ArrayLike | None = None,
    **options: object,
) -> F64:
    """Apply layer ``op`` (with ``options`` as the Python API takes them) to ``x`` in float64
    and return the whole output (before any activation).

    >>> normalize([[0.0, 2.0]], normalized_shape=2, eps=0.0)
    array([[-1.,  1.]])
    """
    from lncheck import ops
    from lncheck import options as option_table

    arr = np.asarray(x, dtype=np.float64)
    settings = option_table.parse({"op": op, **options}, "api")
    spec = ops.build(settings, tuple(arr.shape), "float64")
    case = Case(
        name="array",
        x=arr,
        input_dtype="float64",
        dtype="float64",
        spec=spec,
        settings=settings,
        weight=_float64(weight),
        bias=_float64(bias),
        running_mean=_float64(running_mean),
        running_var=_float64(running_var),
    )
    out = run(case).quantities["output"]
    assert isinstance(out, LazyTensor)
    return out.materialize()


def _float64(a: npt.ArrayLike | None) -> F64 | None:
    return None if a is None else np.asarray(a, dtype=np.float64)


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
    return normalize(x, "layer_norm", weight, bias, normalized_shape=normalized_shape, eps=eps)
