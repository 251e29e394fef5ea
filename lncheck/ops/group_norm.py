"""GroupNorm: each group of C/G channels and all spatial dims, per sample."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lncheck.errors import InputError, option
from lncheck.ops.spec import NormSpec, channel_axis, eps_or
from lncheck.options import Settings

NAME = "group_norm"
SUMMARY = "each group of C/G channels and all spatial dims, per sample"
READS = {"groups": "(required)", "eps": "1e-5", "affine": "on", "channel_axis": "1"}


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    k = channel_axis(s["channel_axis"], shape, "GroupNorm", min_ndim=2)
    c, g = shape[k], s["groups"]
    if g is None:
        raise InputError(f"group_norm needs {option('groups')}")
    if c % g:
        raise InputError(
            f"{option('groups')} {g} does not divide the {c} channels of an input of shape {shape}"
        )
    view = (*shape[:k], g, c // g, *shape[k + 1 :])
    if math.prod(shape) // g == 1:
        # torch's group_norm reuses BatchNorm's batch-size check on (N * C/G, G, spatial)
        raise InputError(
            f"torch's GroupNorm rejects an input of shape {shape} with {g} groups: "
            "it needs more than one value per group across the batch"
        )
    affine = True if s["affine"] is None else s["affine"]
    eps = eps_or(s["eps"])
    return NormSpec(
        op=NAME,
        module="GroupNorm",
        input_shape=shape,
        view_shape=view,
        # Channels within the group first, then the spatial axes: the same element order for
        # channels-first and channels-last data, so both give bit-identical statistics.
        reduce_axes=(k + 1, *(i for i in range(1, len(view)) if i not in (k, k + 1))),
        eps=eps,
        options={"eps": eps, "groups": g},
        affine=affine,
        has_bias=affine,
        param_shape=(c,),
        param_axes=(k, k + 1),
        channel_axis=k,
        params={"num_groups": g, "num_channels": c, "eps": eps, "affine": affine},
    )
