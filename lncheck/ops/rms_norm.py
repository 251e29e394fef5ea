"""RMSNorm: no centring, the mean square over the trailing dims (or any ``axes``).

``eps=None`` is torch's own default, which changed between releases: the backend measures it
(``NormSpec.backend_defaults``); without a backend, torch 2.13's rule stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lncheck.ops.spec import NormSpec, offset_of, trailing_or_axes
from lncheck.options import Settings

NAME = "rms_norm"
SUMMARY = "the trailing dims (--shape) or any --axes, per sample; no mean"
READS = {
    "normalized_shape": "",
    "axes": "",
    "eps": "None (torch's default)",
    "affine": "on",
    "weight_offset": "0",
}


def default_eps(dtype: str) -> float:
    """What ``eps=None`` means in torch 2.13: the float32 epsilon for float16, bfloat16 and
    float32 inputs, float64's for float64."""
    return 2.0**-23 if dtype in ("float16", "bfloat16", "float32") else 2.0**-52


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    axes = trailing_or_axes(s["normalized_shape"], s["axes"], shape, "RMSNorm")
    affine = True if s["affine"] is None else s["affine"]
    normalized = tuple(shape[a] for a in axes)
    given = s["eps"]
    eps = given if given is not None else defaults.get("eps", default_eps(dtype))
    notes = () if given is not None else (f"eps=None: torch uses {eps:.6g} for {dtype} input",)
    return NormSpec(
        op=NAME,
        module="RMSNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=axes,
        eps=eps,
        options={"eps": given},  # None exercises the backend's own default
        center=False,
        affine=affine,
        has_bias=False,
        weight_offset=offset_of(s, affine),
        param_shape=normalized,
        param_axes=axes,
        params={
            "normalized_shape": normalized,
            "axes": axes,
            "eps": eps,
            "elementwise_affine": affine,
            **({"weight_offset": s["weight_offset"]} if s["weight_offset"] else {}),
        },
        backend_defaults=("eps",) if given is None else (),
        notes=notes,
    )
