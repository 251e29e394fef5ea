"""The search space of ``lncheck explain``: which statistics, centring, variance, eps and affine
map could have produced an output, and what the caller has pinned.

A ``Structure`` says how the input splits into groups of elements (the axes the statistics span,
or GroupNorm's channel groups) and where per-feature parameters live (over the normalized dims
as in LayerNorm, or per channel as in GroupNorm, InstanceNorm and BatchNorm). Its geometry is a
``NormSpec`` built by the op modules (``lncheck.ops.build``), so explain reads the same shapes
and axes as every other command. Two structures that group the elements identically share a
``partition``: without affine parameters they predict the same output, and only one is scored.

``Denominator`` is the rest of a hypothesis that acts per group: the variance estimator, the
algorithm that computed it, and where eps goes. Each has a ``penalty``: when several hypotheses
explain an output equally well, the one with the smallest penalty (the most common convention)
ranks first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lncheck import ops
from lncheck.blocks import GroupLayout
from lncheck.errors import InputError, LncheckError, option
from lncheck.ops.spec import NormSpec, channel_axis
from lncheck.options import Settings, parse

# "weight_only": the given weight with the given bias left out (reported as "given" without
# a bias: a bias not added is the commonest bug of all)
Affine = Literal["none", "given", "weight_only", "given_offset", "swapped", "fitted"]
Grouping = Literal["contiguous", "interleaved"]
Features = Literal["normalized", "channel"]
Variance = Literal["biased", "unbiased"]
Algorithm = Literal["two_pass", "one_pass"]
Placement = Literal["sqrt", "std"]
CastOrder = Literal["weight_before_cast", "weight_after_cast"]

# The options explain can pin (the option table's names; ``lncheck.options`` checks them).
PINNABLE: tuple[str, ...] = (
    "op",
    "normalized_shape",
    "axes",
    "groups",
    "channel_axis",
    "eps",
    "affine",
    "dtype",
)
SEARCHED_OPS: tuple[str, ...] = (
    "layer_norm",
    "rms_norm",
    "group_norm",
    "instance_norm",
    "batch_norm",
)
# The values libraries use, tried before any eps is fitted (issue 12). RMSNorm's list adds
# torch's eps=None default, float32's machine epsilon.
USUAL_EPS: tuple[float, ...] = (0.0, 1e-12, 1e-8, 1e-7, 1e-6, 1e-5, 1e-3)
TORCH_RMS_DEFAULT_EPS = 2.0**-23
# Which usual value a candidate shows when the data cannot tell them apart (every group's
# variance dwarfs eps): the most common default of that convention first (torch's 1e-5 for
# LayerNorm, Llama's 1e-6 for RMSNorm, Flax's 1e-6 for its one-pass variance).
EPS_PRIOR: dict[str, tuple[float, ...]] = {
    "centered": (1e-5, 1e-6, 1e-12, 1e-3, 1e-8, 1e-7, 0.0),
    "uncentered": (1e-6, 1e-5, TORCH_RMS_DEFAULT_EPS, 1e-8, 1e-12, 1e-7, 1e-3, 0.0),
    "one_pass": (1e-6, 1e-5, 1e-3, 1e-12, 1e-8, 1e-7, 0.0),
}
# eps is fitted up to 10: larger is a scale of the output more than an eps (a group of
# variance 1 with eps 10 is its normalized values times 0.3)
FITTED_EPS_RANGE = (1e-20, 10.0)
AFFINE_PENALTY: dict[str, int] = {
    "none": 0,
    "given": 0,
    "weight_only": 1,
    "given_offset": 1,
    "swapped": 1,
    "fitted": 3,
}


@dataclass(frozen=True)
class Pins:
    """What the caller fixed: each ``None`` is searched."""

    op: str | None = None
    axes: tuple[int, ...] | None = None
    groups: int | None = None
    channel_axis: int | None = None
    eps: float | None = None
    affine: bool | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class Structure:
    """How the input splits into groups, and where per-feature parameters live.

    ``axes`` are the input axes the statistics span (for GroupNorm the channel and spatial
    axes); ``spec`` holds the geometry (``view_shape``, ``reduce_axes``, ``param_shape``,
    ``param_axes``). ``centers`` lists the centrings searched on it: a LayerNorm layout is
    scored centred (LayerNorm) and not (RMSNorm).
    """

    op: str
    spec: NormSpec
    axes: tuple[int, ...]
    partition: tuple[Any, ...]
    features: Features
    centers: tuple[bool, ...]
    groups: int | None = None
    grouping: Grouping | None = None
    channel_axis: int | None = None

    @property
    def layout(self) -> GroupLayout:
        p = self.spec
        return GroupLayout(p.input_shape, p.view_shape, p.reduce_axes)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.spec.param_shape

    @property
    def param_axes(self) -> tuple[int, ...]:
        """The input axes the parameters span: two structures with the same partition and
        parameter axes make the same predictions (GroupNorm(1, C) on (N, C) is LayerNorm)."""
        return self.axes if self.features == "normalized" else (self.channel_axis or 1,)

    @property
    def param_view(self) -> tuple[int, ...]:
        """The shape that broadcasts a parameter of ``param_shape`` against the view."""
        shape = [1] * len(self.spec.view_shape)
        for axis in self.spec.param_axes:
            shape[axis] = self.spec.view_shape[axis]
        return tuple(shape)


@dataclass(frozen=True)
class Denominator:
    """How a group's scale is computed from its statistics (eps aside)."""

    variance: Variance = "biased"
    algorithm: Algorithm = "two_pass"
    placement: Placement = "sqrt"

    @property
    def penalty(self) -> int:
        return (
            (self.variance == "unbiased")
            + (self.placement == "std")
            + 2 * (self.algorithm == "one_pass")
        )


def denominators(centered: bool) -> list[Denominator]:
    """The per-group hypotheses, simplest first. A one-pass variance only differs from the
    two-pass one when the mean is subtracted, and RMSNorm has no unbiased estimator."""
    out = [
        Denominator(v, a, p)
        for a in ("two_pass", "one_pass")
        for v in ("biased", "unbiased")
        for p in ("sqrt", "std")
        if centered or (v == "biased" and a == "two_pass")
    ]
    return sorted(out, key=lambda d: d.penalty)


def pins_from(pinned: Settings | Mapping[str, Any] | None) -> Settings:
    """The pinned options as ``Settings`` (a mapping is checked like the Python API's keywords).

    Raises:
        InputError: an option explain cannot pin, or an invalid value.
    """
    if pinned is None:
        return parse({}, "api")
    settings = pinned if isinstance(pinned, Settings) else parse(dict(pinned), "api")
    for name in settings.values:
        if name not in PINNABLE:
            raise settings.spell(
                InputError(
                    f"{option(name)} cannot be pinned in explain "
                    f"(it takes {', '.join(PINNABLE)}, weight and bias)"
                )
            )
    return settings


def resolve_pins(settings: Settings, shape: tuple[int, ...]) -> Pins:
    """Check the pinned options against the input's shape and turn them into ``Pins``.

    The op modules check what they read: ``--groups 3`` on 128 channels, an axis out of range,
    an option the pinned op does not read are input errors in the caller's spelling.

    Raises:
        InputError: as above, or an op explain does not search.
    """
    op = settings["op"] if settings.given("op") else None
    if op is not None and op not in SEARCHED_OPS:
        raise settings.spell(
            InputError(f"{option('op')} {op}: explain searches {', '.join(SEARCHED_OPS)}")
        )
    implied = op
    if implied is None and settings.given("groups"):
        implied = "group_norm"
    elif implied is None and (settings.given("normalized_shape") or settings.given("axes")):
        implied = "layer_norm"
    axes = None
    if implied is not None:
        probe = settings.without("dtype").with_values(op=implied)
        if implied == "group_norm" and not settings.given("groups"):
            probe = probe.with_values(groups=1)  # any divisor: the op checks the rest
        layer = implied in ("layer_norm", "rms_norm")
        if layer and not (settings.given("normalized_shape") or settings.given("axes")):
            probe = probe.with_values(axes=(len(shape) - 1,))  # searched: any axes will do
        spec = ops.build(probe, shape, "float64")
        if settings.given("normalized_shape") or settings.given("axes"):
            axes = spec.reduce_axes
    elif settings.given("channel_axis"):
        _check_channel_axis(settings, shape)
    channel = settings["channel_axis"] if settings.given("channel_axis") else None
    return Pins(
        op=op,
        axes=axes,
        groups=settings["groups"] if settings.given("groups") else None,
        channel_axis=None if channel is None else channel % len(shape),
        eps=settings["eps"] if settings.given("eps") else None,
        affine=settings["affine"] if settings.given("affine") else None,
        dtype=settings["dtype"] if settings.given("dtype") else None,
    )


def _check_channel_axis(settings: Settings, shape: tuple[int, ...]) -> None:
    try:
        channel_axis(settings["channel_axis"], shape, "a per-channel normalization", min_ndim=2)
    except LncheckError as e:
        raise settings.spell(e) from None


def structures(shape: tuple[int, ...], pins: Pins) -> list[Structure]:
    """Every structure the search scores on an input of ``shape``, most common first.

    LayerNorm layouts come over every suffix of the dims and every set of up to 3 axes;
    BatchNorm, InstanceNorm and GroupNorm (each divisor of the channels, contiguous and
    interleaved) on channel axis 1 and, for inputs of 3 or more dims, the last axis.
    """
    ndim = len(shape)
    found: list[Structure] = []
    seen: set[tuple[Any, ...]] = set()
    for s in _all_structures(shape, pins):
        key = (s.op, s.partition, s.features, s.centers)
        if key not in seen:
            seen.add(key)
            found.append(s)
    if not found:
        raise InputError(
            f"no normalization of an input of shape {tuple(shape)} fits the pinned options"
            + ("" if ndim > 1 else " (a 1-d input has one group)")
        )
    return found


def _all_structures(shape: tuple[int, ...], pins: Pins) -> Iterator[Structure]:
    ndim = len(shape)
    wanted = set(SEARCHED_OPS) if pins.op is None else {pins.op}
    if pins.groups is not None:
        wanted &= {"group_norm"}
    if pins.axes is not None:
        wanted &= {"layer_norm", "rms_norm"}
    if pins.channel_axis is not None:
        wanted &= {"group_norm", "instance_norm", "batch_norm"}
    if pins.axes is not None:
        axis_sets: list[tuple[int, ...]] = [pins.axes]
    else:
        axis_sets = _axis_sets(shape)
    centers = tuple(c for c in (True, False) if ("layer_norm", "rms_norm")[not c] in wanted)
    for axes in axis_sets:
        if math.prod(shape[a] for a in axes) < 2:
            continue
        if centers:
            yield _layer(shape, axes, centers)
    channel_axes = _channel_axes(ndim, pins)
    for k in channel_axes:
        rest = tuple(i for i in range(ndim) if i != k)
        spatial = tuple(i for i in rest if i != 0)
        if "batch_norm" in wanted and 2 <= ndim <= 5 and math.prod(shape[i] for i in rest) > 1:
            yield _per_channel(shape, "batch_norm", k, rest)
        if (
            "instance_norm" in wanted
            and 3 <= ndim <= 5
            and math.prod(shape[i] for i in spatial) > 1
        ):
            yield _per_channel(shape, "instance_norm", k, spatial)
        if "group_norm" in wanted and ndim >= 2:
            yield from _group_norms(shape, k, pins.groups)


def _axis_sets(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Suffixes shortest first (LayerNorm over the last dim is the commonest), then every set
    of up to 3 axes; sets that differ only by axes of size 1 group the same elements."""
    ndim = len(shape)
    candidates = [tuple(range(k, ndim)) for k in range(ndim - 1, -1, -1)]
    for r in range(1, min(3, ndim) + 1):
        candidates += list(itertools.combinations(range(ndim), r))
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for axes in candidates:
        key = tuple(a for a in axes if shape[a] > 1)
        if key and key not in seen:
            seen.add(key)
            out.append(axes)
    return out


def _channel_axes(ndim: int, pins: Pins) -> tuple[int, ...]:
    if pins.channel_axis is not None:
        return (pins.channel_axis,)
    if ndim < 2:
        return ()
    # torch puts channels on axis 1; MLX and TF/Keras images put them last
    return (1,) if ndim < 3 else (1, ndim - 1)


def _partition(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[Any, ...]:
    return ("axes", tuple(a for a in axes if shape[a] > 1))


def _layer(shape: tuple[int, ...], axes: tuple[int, ...], centers: tuple[bool, ...]) -> Structure:
    spec = ops.build(parse({"op": "layer_norm", "axes": axes}, "api"), shape, "float64")
    return Structure(
        op="layer_norm",
        spec=spec,
        axes=spec.reduce_axes,
        partition=_partition(shape, spec.reduce_axes),
        features="normalized",
        centers=centers,
    )


def _per_channel(shape: tuple[int, ...], op: str, k: int, axes: tuple[int, ...]) -> Structure:
    raw: dict[str, Any] = {"op": op, "channel_axis": k, "affine": True}
    spec = ops.build(parse(raw, "api"), shape, "float64")
    return Structure(
        op=op,
        spec=spec,
        axes=axes,
        partition=_partition(shape, axes),
        features="channel",
        centers=(True,),
        channel_axis=k,
    )


def _group_norms(shape: tuple[int, ...], k: int, pinned: int | None) -> Iterator[Structure]:
    channels = shape[k]
    counts = [pinned] if pinned is not None else _divisors(channels)
    spanned = tuple(i for i in range(1, len(shape)))
    for g in counts:
        if channels % g:
            continue
        groupings: tuple[Grouping, ...] = ("contiguous", "interleaved")
        if g == 1 or g == channels:
            groupings = ("contiguous",)  # both groupings are the same partition
        for grouping in groupings:
            raw = {"op": "group_norm", "groups": g, "channel_axis": k, "affine": True}
            try:
                spec = ops.build(parse(raw, "api"), shape, "float64")
            except InputError:
                continue  # torch refuses this group count on this input (one value per group)
            if grouping == "interleaved":
                spec = _interleaved(spec, k, g)
            key: tuple[Any, ...] = ("groups", k, g, grouping)
            if g == 1:
                key = _partition(shape, spanned)
            elif g == channels:
                key = _partition(shape, tuple(i for i in spanned if i != k))
            yield Structure(
                op="group_norm",
                spec=spec,
                axes=spanned,
                partition=key,
                features="channel",
                centers=(True,),
                groups=g,
                grouping=grouping,
                channel_axis=k,
            )


def _interleaved(spec: NormSpec, k: int, g: int) -> NormSpec:
    """Channel c in group c mod G (MLX's default): the channel axis viewed as (C/G, G), the
    groups along the second of them."""
    shape = spec.input_shape
    c = shape[k]
    view = (*shape[:k], c // g, g, *shape[k + 1 :])
    reduce = (k, *(i for i in range(1, len(view)) if i not in (k, k + 1)))
    return spec.with_(view_shape=view, reduce_axes=reduce, param_axes=(k, k + 1))


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def none_label(shape: tuple[int, ...], axes: tuple[int, ...]) -> str:
    """The op that names a partition without parameters: BatchNorm where the statistics span
    every axis but the channels (1), InstanceNorm over an image's spatial dims, else LayerNorm
    (a transformer's (batch, tokens, features) input is not an InstanceNorm1d)."""
    ndim = len(shape)
    if 2 <= ndim <= 5 and axes == tuple(i for i in range(ndim) if i != 1):
        return "batch_norm"
    if ndim in (4, 5) and axes == tuple(range(2, ndim)):
        return "instance_norm"
    return "layer_norm"


def affine_options(
    structure: Structure,
    weight: Any | None,
    bias: Any | None,
    pins: Pins,
) -> list[Affine]:
    """The affine maps scored on ``structure`` with the given parameters, simplest first:
    only ``none`` with ``--no-affine``, and never ``none`` with ``--affine`` (a layer with
    weight and bias: without given ones, they are fitted, ``search``'s second stage)."""
    if pins.affine is False:
        return ["none"]
    out: list[Affine] = [] if pins.affine else ["none"]
    given = [a for a in (weight, bias) if a is not None]
    if given and all(tuple(a.shape) == structure.param_shape for a in given):
        out.append("given")
        if weight is not None and bias is not None and bias.any():  # zeros: "given" again
            out.append("weight_only")
        if weight is not None:
            out.append("given_offset")
        if weight is not None and bias is not None:
            out.append("swapped")
    return out


def check_parameters(
    found: list[Structure], weight: Any | None, bias: Any | None, shape: tuple[int, ...]
) -> None:
    """Refuse a weight or bias that fits no structure searched.

    Raises:
        InputError: naming the option and the shapes that would fit.
    """
    fits = sorted({s.param_shape for s in found}, key=lambda p: (len(p), p))
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and tuple(a.shape) not in fits:
            shown = ", ".join(str(p) for p in fits[:6]) + (", ..." if len(fits) > 6 else "")
            raise InputError(
                f"{option(name)} has shape {tuple(a.shape)}, which fits no normalization of "
                f"an input of shape {tuple(shape)} searched here (parameters of shape {shown})"
            )
