"""Bugs: the correct float32-accumulating two-pass kernel (``correct.normalize``) with one thing
changed. ``label`` says whether the bug changes what is computed ("semantic": a right verdict
is a ``mismatch``) or only how precisely ("precision": statistics kept in the dtype, a one-pass
variance, an approximate rsqrt; failing in any class is right).
"""

from __future__ import annotations

import numpy as np

from .algorithms import numpy_sum
from .cases import Geometry, Inputs
from .correct import CENTRED_STATS, STATS_OPS, Impl, normalize

WITH_BIAS = ("layer_norm", "group_norm", "instance_norm", "batch_norm_train", "batch_norm_eval")


def wrong_geometry(inp: Inputs) -> Geometry | None:
    """The statistics taken over the wrong axes: LayerNorm/RMSNorm over the last dim only,
    GroupNorm with G/2 groups, InstanceNorm over all channels, BatchNorm per sample."""
    case = inp.case
    shape = case.shape
    if case.op in ("layer_norm", "rms_norm"):
        return Geometry("trailing", shape, nd=1) if shape[1] > 1 else None
    if case.op == "group_norm":
        return Geometry("groups", shape, groups=case.groups // 2) if case.groups >= 2 else None
    if case.op == "instance_norm":
        return Geometry("groups", shape, groups=1)
    if case.op == "batch_norm_train":
        return Geometry("groups", shape, groups=shape[1])
    return None


def wrong_axes(inp: Inputs) -> np.ndarray:
    return normalize(inp, geometry=wrong_geometry(inp))


def weight_reversed(inp: Inputs) -> np.ndarray:
    w = inp.weight
    return normalize(inp, weight=np.ascontiguousarray(w[(slice(None, None, -1),) * w.ndim]))


def row_copied(inp: Inputs) -> np.ndarray:
    """A race: one row (group) of the output overwritten by its neighbour's."""
    g = inp.geometry
    y = g.to_rows(normalize(inp))
    k = inp.copied_row
    y[k] = y[k + 1]
    return g.from_rows(y)


def statistics_in_dtype(inp: Inputs) -> np.ndarray:
    """float16/bfloat16 statistics: the mean and variance rounded to the dtype and every
    elementwise step done in the dtype (the sums still accumulate in float32)."""
    case = inp.case
    x, w, b, _, _ = inp.rows()

    def rnd(a: np.ndarray) -> np.ndarray:
        return inp.round(a).astype(np.float32)

    n = np.float32(x.shape[1])
    d = x
    if case.op != "rms_norm":
        mean = rnd(numpy_sum(x) / n)
        d = rnd(x - mean)
    var = rnd(numpy_sum(rnd(d * d)) / n)
    r = rnd(np.float32(1) / np.sqrt(rnd(var + np.float32(case.eps))))
    y = rnd(rnd(d * r) * w)
    if b is not None:
        y = rnd(y + b)
    return inp.geometry.from_rows(inp.round(y))


def _has_bias(inp: Inputs) -> bool:
    return inp.bias is not None and bool(np.any(inp.bias != 0))


def _params(inp: Inputs) -> bool:
    return inp.weight.size > 1


BUGS: tuple[Impl, ...] = (
    Impl("eps_1e-6", "bug", "semantic", lambda i: normalize(i, eps=1e-6),
         "eps 1e-6 where 1e-5 is meant"),
    Impl("eps_1e-12", "bug", "semantic", lambda i: normalize(i, eps=1e-12),
         "eps 1e-12 where 1e-5 is meant"),
    Impl("eps_on_std", "bug", "semantic", lambda i: normalize(i, eps_on_std=True),
         "eps added to the std: 1 / (sqrt(var) + eps)"),
    Impl("unbiased_variance", "bug", "semantic", lambda i: normalize(i, ddof=1),
         "unbiased variance (n - 1)", STATS_OPS),
    Impl("wrong_axes", "bug", "semantic", wrong_axes,
         "statistics over the wrong axes (last dim only, G/2 groups, all channels, per sample)",
         STATS_OPS, needs=lambda i: wrong_geometry(i) is not None),
    Impl("missing_bias", "bug", "semantic", lambda i: normalize(i, bias=False),
         "bias not added", WITH_BIAS, needs=_has_bias),
    Impl("bias_before_weight", "bug", "semantic", lambda i: normalize(i, bias_first=True),
         "(xhat + b) * w", WITH_BIAS, needs=_has_bias),
    Impl("weight_reversed", "bug", "semantic", weight_reversed,
         "weight applied on the wrong axis (reversed)", needs=_params),
    Impl("row_copied", "bug", "semantic", row_copied, "race: a row copied from its neighbour"),
    Impl("one_plus_w", "bug", "semantic", lambda i: normalize(i, weight_offset=True),
         "(1 + w) where w is meant"),
    Impl("eval_batch_stats", "bug", "semantic", lambda i: normalize(i, batch_stats=True),
         "eval mode using the batch statistics", ("batch_norm_eval",)),
    Impl("rms_subtract_mean", "bug", "semantic", lambda i: normalize(i, center=True),
         "RMSNorm that subtracts the mean", ("rms_norm",)),
    Impl("stats_in_dtype", "bug", "precision", statistics_in_dtype,
         "statistics kept in float16/bfloat16, arithmetic in the dtype", STATS_OPS,
         ("float16", "bfloat16")),
    Impl("rsqrt_1e-3", "bug", "precision", lambda i: normalize(i, rsqrt_error=1e-3),
         "rsqrt with relative error 1e-3 (random sign per row)"),
    Impl("one_pass_variance", "bug", "precision", lambda i: normalize(i, stats="one_pass"),
         "one-pass E[x^2] - E[x]^2 variance", CENTRED_STATS),
)  # fmt: skip
