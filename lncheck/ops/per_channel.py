"""What InstanceNorm and BatchNorm share: parameters and running statistics per channel."""

from __future__ import annotations

from lncheck.ops.spec import NormSpec, eps_or
from lncheck.options import Settings


def per_channel(
    s: Settings,
    *,
    op: str,
    module: str,
    shape: tuple[int, ...],
    k: int,
    reduce: tuple[int, ...],
    affine: bool,
    track: bool,
    input_stats: bool,
    momentum_factor: float,
    channel_group_axis: int,
) -> NormSpec:
    """The spec of a per-channel op: statistics over ``reduce``, one weight per channel, and the
    running statistics torch keeps (updated in training when ``track``)."""
    eps = eps_or(s["eps"])
    training = bool(s["training"])
    return NormSpec(
        op=op,
        module=module,
        input_shape=shape,
        view_shape=shape,
        reduce_axes=reduce,
        eps=eps,
        options={
            "eps": eps,
            "momentum": s["momentum"],
            "track_running_stats": track,
            "training": training,
        },
        affine=affine,
        has_bias=affine,
        param_shape=(shape[k],),
        param_axes=(k,),
        channel_axis=k,
        stats_shape=(shape[k],) if track else (),
        channel_group_axis=channel_group_axis,
        use_running_stats=not input_stats,
        update_running_stats=training and track,
        momentum_factor=momentum_factor,
        params={
            "num_features": shape[k],
            "eps": eps,
            "momentum": s["momentum"],
            "affine": affine,
            "track_running_stats": track,
            "training": training,
        },
    )
