"""Normalization layers as plain descriptions, and the plan that says which axes each one reduces.

Every op is a thin wrapper over one core: it chooses the axes its statistics run over, the
shape of its affine parameters, and whether it subtracts the mean. ``plan`` turns a ``Layer``
and an input shape into a ``Plan`` that the reference, the backends and the comparison share,
so no later stage needs to know which op it is looking at beyond what the plan says.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, NoReturn, get_args

from lncheck.errors import InputError

OpName = Literal[
    "layer_norm", "group_norm", "instance_norm", "batch_norm", "rms_norm", "local_response_norm"
]
OP_NAMES: tuple[OpName, ...] = get_args(OpName)

DEFAULT_EPS = 1e-5


@dataclass(frozen=True)
class Layer:
    """A normalization layer as the user describes it (torch's parameter names and defaults).

    Fields that an op does not use are ignored by it; ``None`` means "the op's default".
    """

    op: OpName = "layer_norm"
    normalized_shape: tuple[int, ...] | None = None
    axes: tuple[int, ...] | None = None
    eps: float | None = None
    affine: bool | None = None
    groups: int | None = None
    channel_axis: int = 1
    training: bool = True
    track_running_stats: bool | None = None
    momentum: float | None = 0.1
    size: int | None = None
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    activation: str | None = None

    def with_(self, **changes: object) -> Layer:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OpInfo:
    """One row of ``lncheck ops``: what an op normalizes over, its options, its torch paths."""

    op: OpName
    statistics_over: str
    options: str
    torch: str


OPS: tuple[OpInfo, ...] = (
    OpInfo(
        "layer_norm",
        "the trailing dims (--shape) or any --axes, per sample",
        "--shape/--axes, --eps 1e-5, --affine (on)",
        "nn.LayerNorm, F.layer_norm, torch.native_layer_norm",
    ),
    OpInfo(
        "group_norm",
        "each group of C/G channels and all spatial dims, per sample",
        "--groups (required), --eps 1e-5, --affine (on), --channel-axis 1",
        "nn.GroupNorm, F.group_norm, torch.native_group_norm",
    ),
    OpInfo(
        "instance_norm",
        "the spatial dims, per sample and channel",
        "--eps 1e-5, --affine (off), --track-running-stats (off), --momentum 0.1, "
        "--train/--eval, --channel-axis 1",
        "nn.InstanceNorm1d/2d/3d, F.instance_norm",
    ),
    OpInfo(
        "batch_norm",
        "the batch and spatial dims, per channel",
        "--eps 1e-5, --affine (on), --track-running-stats (on), --momentum 0.1 or none, "
        "--train/--eval (eval needs --running-mean/--running-var), --channel-axis 1",
        "nn.BatchNorm1d/2d/3d, F.batch_norm, torch.native_batch_norm",
    ),
    OpInfo(
        "rms_norm",
        "the trailing dims (--shape) or any --axes, per sample; no mean",
        "--shape/--axes, --eps None (torch's default), --affine (weight only, on)",
        "nn.RMSNorm, F.rms_norm, torch._fused_rms_norm",
    ),
    OpInfo(
        "local_response_norm",
        "a window of --size neighbouring channels, per position",
        "--size (required), --alpha 1e-4, --beta 0.75, --k 1.0, --channel-axis 1",
        "nn.LocalResponseNorm, F.local_response_norm",
    ),
)


@dataclass(frozen=True)
class Activation:
    """An activation applied after the norm, with its one parameter (slope, init, approximation)."""

    name: ActivationName
    param: float | str | None = None

    def __str__(self) -> str:
        return self.name if self.param is None else f"{self.name}={self.param}"


ActivationName = Literal["relu", "leaky_relu", "prelu", "gelu", "silu"]
ACTIVATION_DEFAULTS: dict[str, float | str | None] = {
    "relu": None,
    "leaky_relu": 0.01,  # nn.LeakyReLU's negative_slope
    "prelu": 0.25,  # nn.PReLU's init
    "gelu": "none",  # nn.GELU's approximate: "none" (erf) or "tanh"
    "silu": None,
}


def parse_activation(text: str | None) -> Activation | None:
    """``"leaky_relu=0.2"`` -> ``Activation("leaky_relu", 0.2)``; ``None`` stays ``None``.

    Raises:
        InputError: an unknown name or a parameter that does not fit it.
    """
    if text is None:
        return None
    name, _, value = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    if name not in ACTIVATION_DEFAULTS:
        raise InputError(
            f"--activation: unknown activation {name!r} (known: {', '.join(ACTIVATION_DEFAULTS)})"
        )
    default = ACTIVATION_DEFAULTS[name]
    if not value:
        return Activation(name, default)  # type: ignore[arg-type]
    if name == "gelu":
        if value not in ("none", "tanh"):
            raise InputError(
                f"--activation gelu={value}: the approximation must be 'none' or 'tanh'"
            )
        return Activation("gelu", value)
    if default is None:
        raise InputError(f"--activation {name} takes no parameter, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"--activation {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"--activation {text!r}: the parameter must be finite")
    return Activation(name, number)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Plan:
    """Where a layer's statistics come from, in terms of axes of one (possibly reshaped) view.

    ``view_shape`` is the input's shape, except that GroupNorm splits the channel axis into
    (groups, channels per group). Statistics are reduced over ``reduce_axes`` of that view, one
    group per index of the remaining axes (``group_shape``). Weight and bias have the user-facing
    ``param_shape`` and span ``param_axes`` of the view. Running statistics have
    ``stats_shape`` (one per channel) and run along axis ``channel_group_axis`` of the groups.
    """

    layer: Layer
    torch_name: str
    input_shape: tuple[int, ...]
    view_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    eps: float
    center: bool = True
    affine: bool = True
    has_bias: bool = True
    param_shape: tuple[int, ...] = ()
    param_axes: tuple[int, ...] = ()
    channel_axis: int | None = None
    stats_shape: tuple[int, ...] = ()
    channel_group_axis: int | None = None
    use_running_stats: bool = False
    update_running_stats: bool = False
    momentum_factor: float = 0.0
    activation: Activation | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def op(self) -> OpName:
        return self.layer.op

    @property
    def group_shape(self) -> tuple[int, ...]:
        return tuple(n for i, n in enumerate(self.view_shape) if i not in self.reduce_axes)

    @property
    def groups(self) -> int:
        return math.prod(self.group_shape)

    @property
    def group_size(self) -> int:
        return math.prod(self.view_shape[i] for i in self.reduce_axes)

    @property
    def has_statistics(self) -> bool:
        """Whether the op normalizes by a mean and variance per group (LRN does not)."""
        return self.op != "local_response_norm"


def plan(
    layer: Layer,
    input_shape: tuple[int, ...],
    dtype: str = "float32",
    *,
    default_eps: float | None = None,
) -> Plan:
    """Check ``layer`` against an input shape and say which axes it normalizes over.

    ``default_eps`` is what ``eps=None`` means for RMSNorm (the torch backend measures it);
    without it the torch 2.13 rule applies. The layer keeps ``eps=None`` so that torch's own
    paths still exercise their default; only the plan, and so the reference, gets the number.

    Raises:
        InputError: the layer does not fit the input (wrong trailing dims, groups that do not
            divide the channels, axes out of range, ...), with both shapes in the message.
    """
    check_options(layer)
    if not input_shape:
        raise InputError("input is a scalar (0-d); normalization needs at least one axis")
    if layer.op == "rms_norm" and layer.eps is None:
        eps = rms_default_eps(dtype) if default_eps is None else default_eps
        built = _PLANNERS[layer.op](layer.with_(eps=eps), tuple(input_shape), dtype)
        note = f"eps=None: torch uses {eps:.6g} for {dtype} input"
        built = replace(built, layer=built.layer.with_(eps=None), notes=(note,))
    else:
        built = _PLANNERS[layer.op](layer, tuple(input_shape), dtype)
    return replace(built, activation=parse_activation(layer.activation))


def check_options(layer: Layer) -> None:
    """Reject option values that are wrong whatever the input (before any file is read).

    Raises:
        InputError: naming the option.
    """
    _check_types(layer)
    if layer.op not in _PLANNERS:
        raise InputError(f"--op: unknown op {layer.op!r} (known: {', '.join(_PLANNERS)})")
    if layer.eps is not None and not math.isfinite(layer.eps):
        raise InputError(f"--eps must be finite, got {layer.eps}")
    if layer.momentum is not None and not (math.isfinite(layer.momentum)):
        raise InputError(f"--momentum must be finite or 'none', got {layer.momentum}")
    if layer.groups is not None and layer.groups <= 0:
        raise InputError(f"--groups must be positive, got {layer.groups}")
    if layer.size is not None and layer.size <= 0:
        raise InputError(f"--size must be positive, got {layer.size}")
    for name in ("alpha", "beta", "k"):
        if not math.isfinite(getattr(layer, name)):
            raise InputError(f"--{name} must be finite, got {getattr(layer, name)}")
    parse_activation(layer.activation)


_INTS = ("groups", "size", "channel_axis")
_REALS = ("eps", "momentum", "alpha", "beta", "k")
_BOOLS = ("affine", "training", "track_running_stats")


def _check_types(layer: Layer) -> None:
    """The API passes options straight through: a float group count or a string eps must be an
    input error here, not a crash in a later stage."""

    def fail(name: str, kind: str, value: object) -> NoReturn:
        raise InputError(f"--{name.replace('_', '-')} must be {kind}, got {value!r}")

    for name in _INTS:
        value = getattr(layer, name)
        if value is not None and (_is_bool(value) or not _is_index(value)):
            fail(name, "an integer", value)
    for name in ("normalized_shape", "axes"):
        dims = getattr(layer, name)
        if dims is not None and not (
            isinstance(dims, tuple) and all(_is_index(d) and not _is_bool(d) for d in dims)
        ):
            fail(name, "integers", dims)
    for name in _REALS:
        value = getattr(layer, name)
        if value is not None and (_is_bool(value) or not isinstance(value, numbers.Real)):
            fail(name, "a number", value)
    for name in _BOOLS:
        value = getattr(layer, name)
        if value is not None and not _is_bool(value):
            fail(name, "True or False", value)
    if not isinstance(layer.op, str):
        fail("op", "a name", layer.op)
    if layer.activation is not None and not isinstance(layer.activation, str):
        fail("activation", "a name such as 'relu' or 'leaky_relu=0.2'", layer.activation)


def _is_bool(value: object) -> bool:
    # NumPy's bool is not a bool subclass; checked by name so that this module needs no NumPy
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def _is_index(value: object) -> bool:
    try:
        operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def rms_default_eps(dtype: str) -> float:
    """What ``eps=None`` means for RMSNorm in torch 2.13: the float32 epsilon for float16 and
    bfloat16 inputs, the dtype's own epsilon otherwise (older releases differ; the torch backend
    measures the installed release's rule instead of trusting this one)."""
    return 2.0**-23 if dtype in ("float16", "bfloat16", "float32") else 2.0**-52


def params_of(p: Plan) -> dict[str, object]:
    """The layer's parameters under torch's names, with every default resolved."""
    layer = p.layer
    c = None if p.channel_axis is None else p.input_shape[p.channel_axis]
    params: dict[str, object]
    if p.op in ("layer_norm", "rms_norm"):
        params = {
            "normalized_shape": layer.normalized_shape,
            "axes": p.reduce_axes,
            "eps": p.eps,
            "elementwise_affine": p.affine,
        }
        if p.op == "layer_norm":
            params["bias"] = p.has_bias
    elif p.op == "group_norm":
        params = {"num_groups": layer.groups, "num_channels": c, "eps": p.eps, "affine": p.affine}
    elif p.op in ("instance_norm", "batch_norm"):
        params = {
            "num_features": c,
            "eps": p.eps,
            "momentum": layer.momentum,
            "affine": p.affine,
            "track_running_stats": layer.track_running_stats,
            "training": layer.training,
        }
    else:
        params = {"size": layer.size, "alpha": layer.alpha, "beta": layer.beta, "k": layer.k}
    if p.channel_axis is not None:
        params["channel_axis"] = p.channel_axis
    if p.activation is not None:
        params["activation"] = str(p.activation)
    return params


def describe(p: Plan) -> str:
    """Torch-style constructor text, e.g. ``LayerNorm(normalized_shape=(3, 4), eps=1e-05)``."""
    hidden = {"axes", "channel_axis", "activation", "training"}
    shown = ", ".join(f"{k}={v}" for k, v in params_of(p).items() if k not in hidden)
    text = f"{p.torch_name}({shown})"
    if p.layer.op in ("instance_norm", "batch_norm"):
        text += ".train()" if p.layer.training else ".eval()"
    if p.channel_axis not in (None, 1):
        text += f" on channel axis {p.channel_axis}"
    if p.activation is not None:
        text += f" -> {p.activation}"
    return text


# --- per-op planners: each chooses axes and parameter shapes, nothing more ---------------------


def _layer_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    axes = _trailing_or_axes(layer, shape, "LayerNorm")
    affine = True if layer.affine is None else layer.affine
    return Plan(
        layer=layer.with_(normalized_shape=tuple(shape[a] for a in axes)),
        torch_name="LayerNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=axes,
        eps=DEFAULT_EPS if layer.eps is None else layer.eps,
        affine=affine,
        has_bias=affine,
        param_shape=tuple(shape[a] for a in axes),
        param_axes=axes,
    )


def _rms_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    axes = _trailing_or_axes(layer, shape, "RMSNorm")
    affine = True if layer.affine is None else layer.affine
    return Plan(
        layer=layer.with_(normalized_shape=tuple(shape[a] for a in axes)),
        torch_name="RMSNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=axes,
        eps=_resolved(layer.eps),  # plan() resolves eps=None
        center=False,
        affine=affine,
        has_bias=False,
        param_shape=tuple(shape[a] for a in axes),
        param_axes=axes,
    )


def _group_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    k = _channel_axis(layer, shape, "GroupNorm", min_ndim=2)
    c, g = shape[k], layer.groups
    if g is None:
        raise InputError("group_norm needs --groups")
    if c % g:
        raise InputError(
            f"--groups {g} does not divide the {c} channels of an input of shape {shape}"
        )
    view = (*shape[:k], g, c // g, *shape[k + 1 :])
    if math.prod(shape) // g == 1:
        # torch's group_norm reuses BatchNorm's batch-size check on (N * C/G, G, spatial)
        raise InputError(
            f"torch's GroupNorm rejects an input of shape {shape} with {g} groups: "
            "it needs more than one value per group across the batch"
        )
    affine = True if layer.affine is None else layer.affine
    return Plan(
        layer=layer.with_(channel_axis=k),
        torch_name="GroupNorm",
        input_shape=shape,
        view_shape=view,
        # Channels within the group first, then the spatial axes: the same element order for
        # channels-first and channels-last data, so both give bit-identical statistics.
        reduce_axes=(k + 1, *(i for i in range(1, len(view)) if i not in (k, k + 1))),
        eps=DEFAULT_EPS if layer.eps is None else layer.eps,
        affine=affine,
        has_bias=affine,
        param_shape=(c,),
        param_axes=(k, k + 1),
        channel_axis=k,
    )


def _instance_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    k = _channel_axis(layer, shape, "InstanceNorm", min_ndim=3, max_ndim=5)
    track = bool(layer.track_running_stats)
    use_input_stats = layer.training or not track
    spatial = tuple(i for i in range(1, len(shape)) if i != k)
    if use_input_stats and math.prod(shape[i] for i in spatial) == 1:
        raise InputError(
            f"InstanceNorm in training needs more than one spatial element per channel; "
            f"input of shape {shape} has one"
        )
    affine = False if layer.affine is None else layer.affine
    momentum = 0.0 if layer.momentum is None else layer.momentum  # as nn.InstanceNorm does
    return _per_channel(
        layer,
        shape,
        k,
        f"InstanceNorm{len(shape) - 2}d",
        spatial,
        affine,
        track,
        use_input_stats,
        momentum,
        1,
    )


def _batch_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    k = _channel_axis(layer, shape, "BatchNorm", min_ndim=2, max_ndim=5)
    track = True if layer.track_running_stats is None else layer.track_running_stats
    use_batch_stats = layer.training or not track
    reduce = tuple(i for i in range(len(shape)) if i != k)
    if use_batch_stats and math.prod(shape[i] for i in reduce) == 1:
        raise InputError(
            f"BatchNorm in training needs more than one value per channel; "
            f"input of shape {shape} has one"
        )
    affine = True if layer.affine is None else layer.affine
    # momentum=None is the cumulative average: 1 / num_batches_tracked after a fresh module's step.
    momentum = 1.0 if layer.momentum is None else layer.momentum
    name = f"BatchNorm{1 if len(shape) <= 3 else len(shape) - 2}d"
    return _per_channel(layer, shape, k, name, reduce, affine, track, use_batch_stats, momentum, 0)


def _resolved(eps: float | None) -> float:
    assert eps is not None
    return eps


def _per_channel(
    layer: Layer,
    shape: tuple[int, ...],
    k: int,
    torch_name: str,
    reduce: tuple[int, ...],
    affine: bool,
    track: bool,
    input_stats: bool,
    momentum: float,
    channel_group_axis: int,
) -> Plan:
    """InstanceNorm's and BatchNorm's plan: parameters and running statistics per channel."""
    return Plan(
        layer=layer.with_(channel_axis=k, track_running_stats=track, affine=affine),
        torch_name=torch_name,
        input_shape=shape,
        view_shape=shape,
        reduce_axes=reduce,
        eps=DEFAULT_EPS if layer.eps is None else layer.eps,
        affine=affine,
        has_bias=affine,
        param_shape=(shape[k],),
        param_axes=(k,),
        channel_axis=k,
        stats_shape=(shape[k],) if track else (),
        channel_group_axis=channel_group_axis,
        use_running_stats=not input_stats,
        update_running_stats=layer.training and track,
        momentum_factor=momentum,
    )


def _local_response_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    k = _channel_axis(layer, shape, "LocalResponseNorm", min_ndim=3)
    if layer.size is None:
        raise InputError("local_response_norm needs --size (the number of neighbouring channels)")
    return Plan(
        layer=layer.with_(channel_axis=k),
        torch_name="LocalResponseNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=(k,),  # each group is one position's vector of channels
        eps=0.0,
        affine=False,
        has_bias=False,
        channel_axis=k,
    )


_PLANNERS: dict[str, Callable[[Layer, tuple[int, ...], str], Plan]] = {
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "instance_norm": _instance_norm,
    "batch_norm": _batch_norm,
    "rms_norm": _rms_norm,
    "local_response_norm": _local_response_norm,
}


def _channel_axis(
    layer: Layer, shape: tuple[int, ...], name: str, *, min_ndim: int, max_ndim: int = 64
) -> int:
    ndim = len(shape)
    if not min_ndim <= ndim <= max_ndim:
        want = f"{min_ndim} to {max_ndim}" if max_ndim < 64 else f"at least {min_ndim}"
        raise InputError(f"{name} needs an input with {want} dims (N, C, ...), got shape {shape}")
    k = layer.channel_axis
    if not -ndim <= k < ndim:
        raise InputError(f"--channel-axis {k} is out of range for an input with {ndim} dims")
    k %= ndim
    if k == 0:
        raise InputError(
            f"--channel-axis 0 is the batch axis; {name} needs channels on another axis"
        )
    return k


def _trailing_or_axes(layer: Layer, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """The axes a LayerNorm-like op reduces: from ``normalized_shape``, from ``axes``, or both."""
    ndim = len(shape)
    from_shape: tuple[int, ...] | None = None
    if layer.normalized_shape is not None:
        ns = tuple(layer.normalized_shape)
        if not ns:
            raise InputError("--shape needs at least one dimension")
        if any(n <= 0 for n in ns):
            raise InputError(f"--shape {_dims(ns)} has a dimension that is not positive")
        if len(ns) > ndim or tuple(shape[ndim - len(ns) :]) != ns:
            raise InputError(
                f"input has shape {_dims(shape)}; {name}(normalized_shape={_dims(ns)}) "
                f"needs trailing dims {_dims(ns)}"
            )
        from_shape = tuple(range(ndim - len(ns), ndim))
    from_axes = None if layer.axes is None else normalize_axes(layer.axes, ndim, "--axes")
    if from_shape is not None and from_axes is not None and from_shape != from_axes:
        raise InputError(
            f"--shape {_dims(layer.normalized_shape or ())} means axes {_dims(from_shape)} of an "
            f"input of shape {_dims(shape)}, but --axes says {_dims(from_axes)}"
        )
    axes = from_shape if from_shape is not None else from_axes
    if axes is None:
        raise InputError(f"{name} needs --shape (normalized_shape) or --axes")
    return axes


def normalize_axes(axes: tuple[int, ...], ndim: int, option: str) -> tuple[int, ...]:
    """Sorted non-negative axes; raises ``InputError`` for out-of-range or repeated ones."""
    if not axes:
        raise InputError(f"{option} needs at least one axis")
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise InputError(f"{option}: axis {a} is out of range for an input with {ndim} dims")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise InputError(f"{option}: axes {_dims(axes)} repeat an axis")
    return tuple(sorted(out))


def _dims(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))
