"""``NormSpec``: everything about a layer on one input that later stages need, and nothing else.

An op module (``lncheck/ops/<op>.py``) turns ``Settings`` and an input shape into a spec; from
then on the reference, the backends, the comparison, chunking and the report read the spec and
never ask which op it is. A spec says where the statistics come from (axes of one, possibly
reshaped, view of the input), how the core normalizes (centring, the variance estimator, where
eps goes, a weight offset), the shapes of parameters and statistics, the running-statistics
rule, how the input may be split into chunks, and how the layer describes itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lncheck.activations import Activation
from lncheck.errors import InputError, option

Variance = Literal["biased", "unbiased"]
EpsPlacement = Literal["sqrt", "std"]
DEFAULT_EPS = 1e-5


@dataclass(frozen=True)
class NormSpec:
    """One layer on one input shape, self-sufficient.

    ``view_shape`` is the input's shape, except that GroupNorm splits the channel axis into
    (groups, channels per group). Statistics are reduced over ``reduce_axes`` of that view, one
    group per index of the remaining axes (``group_shape``). Weight and bias have the user-facing
    ``param_shape`` and span ``param_axes`` of the view. Running statistics have
    ``stats_shape`` (one per channel) and run along axis ``channel_group_axis`` of the groups.

    The core computes ``(x - mean) / sqrt(var + eps) * (w + weight_offset) + b`` with
    ``mean = 0`` unless ``center``, ``var`` the ``variance`` estimator, and with
    ``eps_placement == "std"`` the denominator ``sqrt(var) + eps`` instead.
    ``options`` are the layer's options as the caller gave them (``eps=None`` included), for
    backends that pass them on to their own implementation.
    """

    op: str
    module: str  # the layer's class name, e.g. "LayerNorm", "BatchNorm2d"
    input_shape: tuple[int, ...]
    view_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    eps: float
    options: Mapping[str, Any] = field(default_factory=dict)
    center: bool = True
    variance: Variance = "biased"
    eps_placement: EpsPlacement = "sqrt"
    weight_offset: float = 0.0
    statistics: bool = True  # normalizes by a mean and variance per group (LRN does not)
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
    window: int | None = None  # values a windowed op (LRN) reduces each element over
    activation: Activation | None = None
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    backend_defaults: tuple[str, ...] = ()  # options whose unset value the backend decides
    notes: tuple[str, ...] = ()

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
    def averaged_over(self) -> str:
        """The input axes each group spans, in words: ``axes (0, 2, 3)``; GroupNorm's channel
        axis, which its groups split, as ``axis 1 in runs of 2``. Empty where the view merges
        input axes rather than splitting them."""
        spans: list[list[int]] = []  # the view axes each input axis was split into
        k = 0
        for n in self.input_shape:
            run: list[int] = []
            size = 1
            while k < len(self.view_shape) and (size < n or not run):
                run.append(k)
                size *= self.view_shape[k]
                k += 1
            if size != n:
                return ""
            spans.append(run)
        rest = range(k, len(self.view_shape))
        if not spans or any(self.view_shape[a] != 1 for a in rest):
            return ""
        spans[-1] += rest  # size-1 axes at the end (GroupNorm of one channel per group)
        runs = {  # each axis a group reaches into: how many of its values a group spans
            i: math.prod(self.view_shape[a] for a in run if a in self.reduce_axes)
            for i, run in enumerate(spans)
            if any(a in self.reduce_axes for a in run)
        }
        whole = [i for i, n in runs.items() if n == self.input_shape[i]]
        parts = [f"axis {i} in runs of {n}" for i, n in runs.items() if 1 < n < self.input_shape[i]]
        named = [f"axes {tuple(whole)}" if len(whole) > 1 else f"axis {whole[0]}"] if whole else []
        return " and ".join(named + parts)

    @property
    def reduced(self) -> int:
        """How many values each output element is computed from (its error grows with it)."""
        return self.window if self.window is not None else self.group_size

    @property
    def shared_count(self) -> int:
        """How many values each weight gradient sums."""
        return math.prod(self.input_shape) // max(1, math.prod(self.param_shape))

    def with_(self, **changes: Any) -> NormSpec:
        return replace(self, **changes)


# --- helpers the op modules share: axes and channels -------------------------------------------


def channel_axis(
    value: int, shape: tuple[int, ...], name: str, *, min_ndim: int, max_ndim: int = 64
) -> int:
    """The channel axis, non-negative, checked against the input's rank."""
    ndim = len(shape)
    if not min_ndim <= ndim <= max_ndim:
        want = f"{min_ndim} to {max_ndim}" if max_ndim < 64 else f"at least {min_ndim}"
        raise InputError(f"{name} needs an input with {want} dims (N, C, ...), got shape {shape}")
    where = option("channel_axis")
    if not -ndim <= value < ndim:
        raise InputError(f"{where} {value} is out of range for an input with {ndim} dims")
    k = value % ndim
    if k == 0:
        typed = "0" if value == 0 else f"{value} (axis 0)"
        raise InputError(
            f"{where} {typed} is the batch axis; {name} needs channels on another axis"
        )
    return k


def trailing_or_axes(
    normalized_shape: tuple[int, ...] | None,
    axes: tuple[int, ...] | None,
    shape: tuple[int, ...],
    name: str,
) -> tuple[int, ...]:
    """The axes a LayerNorm-like op reduces: the trailing dims ``normalized_shape`` names, or
    ``axes``; with both, ``normalized_shape`` must be the dims of ``axes`` (ascending), the
    shape of the weight.

    Raises:
        InputError: either is malformed, the dims do not fit the input, or they disagree."""
    ndim = len(shape)
    ns_option = option("normalized_shape")
    ns = None if normalized_shape is None else tuple(normalized_shape)
    if ns is not None:
        if not ns:
            raise InputError(f"{ns_option} needs at least one dimension")
        if any(n <= 0 for n in ns):
            raise InputError(f"{ns_option} {dims(ns)} has a dimension that is not positive")
    if axes is not None:
        found = normalize_axes(axes, ndim, option("axes"))
        if ns is not None and ns != tuple(shape[a] for a in found):
            raise InputError(
                f"{ns_option} {dims(ns)} is not the shape {dims(tuple(shape[a] for a in found))} "
                f"of {option('axes')} {dims(found)} of an input of shape {dims(shape)}"
            )
        return found
    if ns is None:
        raise InputError(f"{name} needs {ns_option} or {option('axes')}")
    if len(ns) > ndim or tuple(shape[ndim - len(ns) :]) != ns:
        raise InputError(
            f"input has shape {dims(shape)}; {name}(normalized_shape={dims(ns)}) "
            f"needs trailing dims {dims(ns)}"
        )
    return tuple(range(ndim - len(ns), ndim))


def normalize_axes(axes: tuple[int, ...], ndim: int, where: str) -> tuple[int, ...]:
    """Sorted non-negative axes; raises ``InputError`` for out-of-range or repeated ones."""
    if not axes:
        raise InputError(f"{where} needs at least one axis")
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise InputError(f"{where}: axis {a} is out of range for an input with {ndim} dims")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise InputError(f"{where}: axes {dims(axes)} repeat an axis")
    return tuple(sorted(out))


def offset_of(s: Any, affine: bool) -> float:
    """``weight_offset``, checked: scaling by ``w + offset`` needs a weight."""
    offset = float(s["weight_offset"])
    if offset and not affine:
        raise InputError(
            f"{option('weight_offset')} scales by (weight + {offset:g}), but the layer has no "
            f"weight ({option('affine')} is off)"
        )
    return offset


def eps_or(value: float | None, default: float = DEFAULT_EPS) -> float:
    return default if value is None else value


def describe(module: str, params: Mapping[str, Any], suffix: str = "") -> str:
    """Torch-style constructor text, e.g. ``LayerNorm(normalized_shape=(3, 4), eps=1e-05)``."""
    hidden = {"axes", "channel_axis", "activation", "training"}
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k not in hidden)
    return f"{module}({shown}){suffix}"


def finish(spec: NormSpec, activation: Activation | None, suffix: str = "") -> NormSpec:
    """Add what every op shares to a spec: the activation, the channel axis in the parameters,
    and the description."""
    params = dict(spec.params)
    if spec.channel_axis is not None:
        params["channel_axis"] = spec.channel_axis
    if activation is not None:
        params["activation"] = str(activation)
    text = describe(spec.module, spec.params, suffix)
    axes = spec.params.get("axes")
    trailing = tuple(range(len(spec.input_shape) - len(axes or ()), len(spec.input_shape)))
    if axes is not None and tuple(axes) != trailing:  # normalized_shape alone reads as those
        text += f" over axes {tuple(axes)}"
    if spec.channel_axis not in (None, 1):
        text += f" on channel axis {spec.channel_axis}"
    if activation is not None:
        text += f" -> {activation}"
    return replace(spec, activation=activation, params=params, description=text)


def dims(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))
