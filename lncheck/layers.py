"""Normalization layers as plain descriptions, and the plan that says which axes each one reduces.

Every op is a thin wrapper over one core: it chooses the axes its statistics run over, the
shape of its affine parameters, and whether it subtracts the mean. ``plan`` turns a ``Layer``
and an input shape into a ``Plan`` that the reference, the backends and the comparison share,
so no later stage needs to know which op it is looking at beyond what the plan says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

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
class Plan:
    """Where a layer's statistics come from, in terms of axes of one (possibly reshaped) view.

    ``view_shape`` is the input's shape, except that GroupNorm splits the channel axis into
    (groups, channels per group). Statistics are reduced over ``reduce_axes`` of that view, one
    group per index of the remaining axes (``group_shape``). Weight and bias have the user-facing
    ``param_shape`` and span ``param_axes`` of the view.
    """

    layer: Layer
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
    use_running_stats: bool = False
    update_running_stats: bool = False
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
        """Whether the op computes a mean and variance per group (LRN does not)."""
        return self.op != "local_response_norm"


def plan(layer: Layer, input_shape: tuple[int, ...], dtype: str = "float32") -> Plan:
    """Check ``layer`` against an input shape and say which axes it normalizes over.

    Raises:
        InputError: the layer does not fit the input (wrong trailing dims, groups that do not
            divide the channels, axes out of range, ...), with both shapes in the message.
    """
    check_options(layer)
    if not input_shape:
        raise InputError("input is a scalar (0-d); normalization needs at least one axis")
    builder = _PLANNERS[layer.op]
    return builder(layer, tuple(input_shape), dtype)


def check_options(layer: Layer) -> None:
    """Reject option values that are wrong whatever the input (before any file is read).

    Raises:
        InputError: naming the option.
    """
    if layer.op not in _PLANNERS:
        raise InputError(f"--op: unknown op {layer.op!r} (known: {', '.join(_PLANNERS)})")
    if layer.eps is not None and not math.isfinite(layer.eps):
        raise InputError(f"--eps must be finite, got {layer.eps}")


def params_of(p: Plan) -> dict[str, object]:
    """The layer's parameters under torch's names, with every default resolved."""
    layer = p.layer
    if p.op == "layer_norm":
        return {
            "normalized_shape": layer.normalized_shape,
            "axes": p.reduce_axes,
            "eps": p.eps,
            "elementwise_affine": p.affine,
            "bias": p.has_bias,
        }
    raise AssertionError(f"no parameters for {p.op}")


def describe(p: Plan) -> str:
    """Torch-style constructor text, e.g. ``LayerNorm(normalized_shape=(3, 4), eps=1e-05)``."""
    names = {"layer_norm": "LayerNorm"}
    shown = {k: v for k, v in params_of(p).items() if k != "axes" or p.op != "layer_norm"}
    return f"{names[p.op]}({', '.join(f'{k}={v}' for k, v in shown.items())})"


# --- per-op planners: each chooses axes and parameter shapes, nothing more ---------------------


def _layer_norm(layer: Layer, shape: tuple[int, ...], dtype: str) -> Plan:
    axes = _trailing_or_axes(layer, shape, "LayerNorm")
    affine = True if layer.affine is None else layer.affine
    eps = DEFAULT_EPS if layer.eps is None else layer.eps
    return Plan(
        layer=layer.with_(axes=axes, normalized_shape=tuple(shape[a] for a in axes)),
        input_shape=shape,
        view_shape=shape,
        reduce_axes=axes,
        eps=eps,
        affine=affine,
        has_bias=affine,
        param_shape=tuple(shape[a] for a in axes),
        param_axes=axes,
    )


_PLANNERS = {"layer_norm": _layer_norm}


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
