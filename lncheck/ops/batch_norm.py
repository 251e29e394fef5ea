"""BatchNorm: statistics over the batch and spatial dims, per channel (1d/2d/3d).

In training it normalizes with the batch's statistics and updates the running ones (the
running variance takes the *unbiased* batch variance); in eval it normalizes with the running
statistics and computes none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lncheck.errors import InputError
from lncheck.ops.per_channel import per_channel
from lncheck.ops.spec import NormSpec, channel_axis
from lncheck.options import Settings

NAME = "batch_norm"
SUMMARY = "the batch and spatial dims, per channel"
READS = {
    "eps": "1e-5",
    "affine": "on",
    "track_running_stats": "on",
    "momentum": "0.1 or none",
    "training": "train; eval needs --running-mean/--running-var",
    "channel_axis": "1",
}


def tracks(s: Settings) -> bool:
    """Whether the layer keeps running statistics (on unless turned off)."""
    return True if s["track_running_stats"] is None else bool(s["track_running_stats"])


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    k = channel_axis(s["channel_axis"], shape, "BatchNorm", min_ndim=2, max_ndim=5)
    track = tracks(s)
    use_batch_stats = bool(s["training"]) or not track
    reduce = tuple(i for i in range(len(shape)) if i != k)
    if use_batch_stats and math.prod(shape[i] for i in reduce) == 1:
        raise InputError(
            f"BatchNorm in training needs more than one value per channel; "
            f"input of shape {shape} has one"
        )
    momentum = s["momentum"]
    return per_channel(
        s,
        op=NAME,
        module=f"BatchNorm{1 if len(shape) <= 3 else len(shape) - 2}d",
        shape=shape,
        k=k,
        reduce=reduce,
        affine=True if s["affine"] is None else s["affine"],
        track=track,
        input_stats=use_batch_stats,
        # momentum=None is the cumulative average: 1 / num_batches_tracked after a fresh
        # module's first step.
        momentum_factor=1.0 if momentum is None else momentum,
        channel_group_axis=0,
    )


def suffix(s: Settings) -> str:
    return ".train()" if s["training"] else ".eval()"
