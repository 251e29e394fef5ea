"""LayerNorm: statistics over the trailing dims ``normalized_shape`` (or any ``axes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lncheck.ops.spec import NormSpec, eps_or, offset_of, trailing_or_axes
from lncheck.options import Settings

NAME = "layer_norm"
SUMMARY = "the trailing dims (--shape) or any --axes, per sample"
READS = {
    "normalized_shape": "",
    "axes": "",
    "eps": "1e-5",
    "affine": "on",
    "weight_offset": "0",
}


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    axes = trailing_or_axes(s["normalized_shape"], s["axes"], shape, "LayerNorm")
    affine = True if s["affine"] is None else s["affine"]
    normalized = tuple(shape[a] for a in axes)
    eps = eps_or(s["eps"])
    offset = offset_of(s, affine)
    return NormSpec(
        op=NAME,
        module="LayerNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=axes,
        eps=eps,
        options={"eps": eps},
        affine=affine,
        has_bias=affine,
        weight_offset=offset,
        param_shape=normalized,
        param_axes=axes,
        params={
            "normalized_shape": normalized,
            "axes": axes,
            "eps": eps,
            "elementwise_affine": affine,
            "bias": affine,
            **({"weight_offset": offset} if offset else {}),
        },
    )
