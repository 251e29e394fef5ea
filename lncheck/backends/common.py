"""Conventions every backend shares, so that none of them re-implements them.

A backend's results must look like the reference's: statistics flat, one per group in
``GroupLayout`` order; a variance even where the implementation returns only the reciprocal
standard deviation; missing parameters and running buffers as a fresh module would hold them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.ops.spec import NormSpec
from lncheck.result import ELEMENTWISE, STATISTICS, NormResult

Array = npt.NDArray[np.floating]
PARAMETER_SHAPED = ("grad_weight", "grad_bias")
QUANTITY_ORDER = (*ELEMENTWISE, *PARAMETER_SHAPED, *STATISTICS)


def affine_defaults(case: Case) -> tuple[Array | None, Array | None]:
    """Weight and bias as the layer uses them: the given ones, else ones and zeros as a fresh
    module holds them; ``None`` where the layer has none."""
    spec = case.spec
    if not spec.affine:
        return None, None
    storage = case.x.dtype
    weight = case.weight if case.weight is not None else np.ones(spec.param_shape, storage)
    bias = None
    if spec.has_bias:
        bias = case.bias if case.bias is not None else np.zeros(spec.param_shape, storage)
    return weight, bias


def running_defaults(case: Case) -> tuple[Array | None, Array | None]:
    """The running statistics a layer starts from: the given ones, else zeros and ones."""
    spec = case.spec
    if not spec.stats_shape:
        return None, None
    storage = case.x.dtype
    mean = (
        case.running_mean if case.running_mean is not None else np.zeros(spec.stats_shape, storage)
    )
    var = case.running_var if case.running_var is not None else np.ones(spec.stats_shape, storage)
    return mean, var


def var_from_rstd(rstd: Array, spec: NormSpec) -> Array:
    """The variance a reciprocal standard deviation stands for, inverting where eps goes."""
    with np.errstate(all="ignore"):
        if spec.eps_placement == "std":
            return np.asarray((1.0 / rstd - spec.eps) ** 2, dtype=np.float64)
        return np.asarray(1.0 / (rstd * rstd) - spec.eps, dtype=np.float64)


def _invertible(spec: NormSpec, rstd: Array) -> bool:
    """Whether rstd gives the variance back for this layer, decided for the whole case (not
    per chunk): a negative eps makes rstd NaN where ``var < -eps``, and an eps so large that
    ``1 / sqrt(eps)`` is below the smallest normal number of rstd's dtype (3e14 for float16,
    7e75 for float32) makes it 0 or subnormal, where the reference's variance is still a
    number. The rstd check then says all there is to say."""
    dtype = np.asarray(rstd).dtype
    tiny = float(np.finfo(dtype).tiny) if np.issubdtype(dtype, np.floating) else 0.0
    with np.errstate(over="ignore"):
        return spec.eps >= 0 and (tiny == 0 or spec.eps * tiny * tiny < 1)


def result(candidate: str, spec: NormSpec, produced: Mapping[str, Array]) -> NormResult:
    """A backend's arrays as a ``NormResult``: statistics flattened to group order in float64
    (float16 kept: the comparison says where a float16 statistic cannot hold the exact
    value), ``var`` derived from ``rstd`` when missing (where that gives it back,
    ``_invertible``), quantities in the reference's order."""
    out: dict[str, Array] = {}
    for name, a in produced.items():
        if name in ELEMENTWISE or name in PARAMETER_SHAPED:
            out[name] = a
        else:
            flat = np.asarray(a).reshape(-1)
            out[name] = flat if flat.dtype == np.float16 else flat.astype(np.float64)
    if "rstd" in out and "var" not in out and _invertible(spec, produced["rstd"]):
        out["var"] = var_from_rstd(np.asarray(out["rstd"], dtype=np.float64), spec)
    return NormResult(candidate, {name: out[name] for name in QUANTITY_ORDER if name in out})
