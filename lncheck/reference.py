"""The NumPy float64 reference: the normalization core, exact to float64 precision.

One core serves every mean/variance op: statistics over the plan's reduced axes, then
``(x - mean) / sqrt(var + eps)``, then the affine map. The mean is the corrected two-pass
mean (Chan, Golub & LeVeque): a first pass gives ``m0``, the second sums ``d = x - m0`` and
adds the mean of ``d`` back, which removes the rounding error of ``m0`` and leaves the
variance ``mean(d**2) - mean(d)**2`` free of cancellation even when ``|mean| >> std``.
For float32/float16 inputs the differences ``x - m0`` are exact in float64, so the result
agrees with an exact-arithmetic oracle to within a few float64 units in the last place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.layers import Layer, Plan, plan
from lncheck.result import LazyTensor, NormResult, Quantity

F64 = npt.NDArray[np.float64]
NAME = "reference"


def group_statistics(block: npt.NDArray[np.generic], center: bool = True) -> tuple[F64, F64]:
    """Mean and biased variance of each row of a (groups, elements) block, in float64.

    With ``center=False`` (RMSNorm) the mean is zero and the "variance" is the mean square.
    """
    x = np.asarray(block, dtype=np.float64)
    with np.errstate(all="ignore"):
        if not center:
            return np.zeros(x.shape[0]), np.mean(x * x, axis=1)
        m0 = np.mean(x, axis=1)
        d = x - m0[:, None]
        correction = np.mean(d, axis=1)
        var = np.mean(d * d, axis=1) - correction * correction
        return m0 + correction, np.maximum(var, 0.0, where=~np.isnan(var), out=var)


def run(case: Case) -> NormResult:
    """Run the reference on a case: per-group statistics now, the output lazily, block by block."""
    p = case.plan
    layout = layout_of(p)
    mean, var = _statistics(layout, case.x, p.center)
    with np.errstate(all="ignore"):
        rstd = 1.0 / np.sqrt(var + p.eps)
    norm_mean, norm_var = mean, var
    sources: list[npt.NDArray[np.generic]] = [case.x]
    weight, bias = param_views(p, case.weight, case.bias)
    if weight is not None:
        sources.append(weight)
    if bias is not None:
        sources.append(bias)

    def compute(first: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> F64:
        n = blocks[0].shape[0]
        m = norm_mean[first : first + n, None]
        v = norm_var[first : first + n, None]
        with np.errstate(all="ignore"):
            y = (np.asarray(blocks[0], dtype=np.float64) - m) / np.sqrt(v + p.eps)
            rest = list(blocks[1:])
            if weight is not None:
                np.multiply(y, rest.pop(0), out=y)
            if bias is not None:
                np.add(y, rest.pop(0), out=y)
        return y

    quantities: dict[str, Quantity] = {
        "output": LazyTensor(layout, tuple(sources), compute),
        "mean": mean,
        "var": var,
        "rstd": rstd,
    }
    return NormResult(NAME, quantities)


def layout_of(p: Plan) -> GroupLayout:
    return GroupLayout(p.input_shape, p.view_shape, p.reduce_axes)


def param_views(
    p: Plan, weight: npt.NDArray[np.generic] | None, bias: npt.NDArray[np.generic] | None
) -> tuple[npt.NDArray[np.generic] | None, npt.NDArray[np.generic] | None]:
    """Weight and bias reshaped to broadcast against the plan's view (``None`` when absent).

    A missing weight or bias of an affine layer is ones or zeros, as in a fresh torch module,
    and is left out here because multiplying by one and adding zero change nothing.
    """
    shape = [1] * len(p.view_shape)
    for axis in p.param_axes:
        shape[axis] = p.view_shape[axis]

    def view(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
        return None if a is None or not p.affine else np.asarray(a).reshape(shape)

    return view(weight), view(bias) if p.has_bias else None


def _statistics(layout: GroupLayout, x: npt.NDArray[np.generic], center: bool) -> tuple[F64, F64]:
    mean = np.empty(layout.groups)
    var = np.empty(layout.groups)
    for first, block in layout.blocks(x):
        n = block.shape[0]
        mean[first : first + n], var[first : first + n] = group_statistics(block, center)
    return mean, var


# --- the ops as NumPy functions: thin wrappers that choose axes --------------------------------


def normalize(
    x: npt.ArrayLike,
    layer: Layer,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
) -> F64:
    """Apply ``layer`` to ``x`` in float64 and return the whole output."""
    from lncheck.dtypes import round_to

    arr = np.asarray(x, dtype=np.float64)
    p = plan(layer, tuple(arr.shape), "float64")
    case = Case(
        name="array",
        x=round_to(arr, "float64"),
        input_dtype="float64",
        dtype="float64",
        layer=p.layer,
        plan=p,
        weight=None if weight is None else np.asarray(weight, dtype=np.float64),
        bias=None if bias is None else np.asarray(bias, dtype=np.float64),
    )
    out = run(case).quantities["output"]
    assert isinstance(out, LazyTensor)
    return out.materialize()


def layer_norm(
    x: npt.ArrayLike,
    normalized_shape: int | Sequence[int],
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    eps: float = 1e-5,
) -> F64:
    """``torch.nn.functional.layer_norm`` in float64.

    >>> layer_norm([[1.0, 2.0, 3.0]], 3, eps=0.0).round(6)
    array([[-1.224745,  0.      ,  1.224745]])
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return normalize(x, Layer("layer_norm", normalized_shape=shape, eps=eps), weight, bias)
