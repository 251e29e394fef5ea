"""LocalResponseNorm: each element divided by a power of the mean square of a window of
``size`` neighbouring channels (no mean, no variance, no affine parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lncheck.errors import InputError, option
from lncheck.ops.spec import NormSpec, channel_axis
from lncheck.options import Settings

NAME = "local_response_norm"
SUMMARY = "a window of --size neighbouring channels, per position"
READS = {"size": "(required)", "alpha": "1e-4", "beta": "0.75", "k": "1.0", "channel_axis": "1"}


def build(s: Settings, shape: tuple[int, ...], dtype: str, defaults: Mapping[str, Any]) -> NormSpec:
    k = channel_axis(s["channel_axis"], shape, "LocalResponseNorm", min_ndim=3)
    size = s["size"]
    if size is None:
        raise InputError(
            f"local_response_norm needs {option('size')} (the number of neighbouring channels)"
        )
    options = {"size": size, "alpha": s["alpha"], "beta": s["beta"], "k": s["k"]}
    return NormSpec(
        op=NAME,
        module="LocalResponseNorm",
        input_shape=shape,
        view_shape=shape,
        reduce_axes=(k,),  # each group is one position's vector of channels
        eps=0.0,
        options=options,
        statistics=False,
        affine=False,
        has_bias=False,
        channel_axis=k,
        window=size,
        params=dict(options),
    )
