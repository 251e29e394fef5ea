"""InstanceNorm: statistics over the spatial dims, per sample and channel (1d/2d/3d)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lncheck.errors import InputError
from lncheck.ops.per_channel import per_channel
from lncheck.ops.spec import NormSpec, channel_axis
from lncheck.options import Settings

NAME = "instance_norm"
SUMMARY = "the spatial dims, per sample and channel"
READS = {
    "eps": "1e-5",
    "affine": "off",
    "track_running_stats": "off",
    "momentum": "0.1",
    "training": "train",
    "channel_axis": "1",
}


def tracks(s: Settings) -> bool:
    """Whether the layer keeps running statistics (off unless turned on)."""
    return bool(s["track_running_stats"])


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    k = channel_axis(s["channel_axis"], shape, "InstanceNorm", min_ndim=3, max_ndim=5)
    track = tracks(s)
    use_input_stats = bool(s["training"]) or not track
    spatial = tuple(i for i in range(1, len(shape)) if i != k)
    if use_input_stats and math.prod(shape[i] for i in spatial) == 1:
        raise InputError(
            f"InstanceNorm in training needs more than one spatial element per channel; "
            f"input of shape {shape} has one"
        )
    momentum = s["momentum"]
    return per_channel(
        s,
        op=NAME,
        module=f"InstanceNorm{len(shape) - 2}d",
        shape=shape,
        k=k,
        reduce=spatial,
        affine=False if s["affine"] is None else s["affine"],
        track=track,
        input_stats=use_input_stats,
        momentum_factor=0.0 if momentum is None else momentum,  # as nn.InstanceNorm does
        channel_group_axis=1,
    )


def suffix(s: Settings) -> str:
    return ".train()" if s["training"] else ".eval()"
