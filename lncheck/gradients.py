"""The analytic backward pass in NumPy float64: dx, dweight and dbias of every mean/variance op.

For ``y = n * w + b`` with ``n = (x - mean) * r`` and ``r = 1 / sqrt(var + eps)`` over a group
of ``m`` values, and an upstream gradient ``g``:

* ``dbias = sum(g)`` and ``dweight = sum(g * n)`` over everything the parameter is shared by;
* with ``dn = g * w``, ``dx = r * (dn - mean(dn) - n * mean(dn * n))`` when the statistics come
  from the batch (the mean and variance depend on every x of the group), ``dx = r * (dn - n *
  mean(dn * n))`` for RMSNorm (no mean), and ``dx = r * dn`` in eval with running statistics;
* an activation after the norm multiplies ``g`` by its derivative first.

Arrays are materialized whole: ``--grad`` is for tensors that fit in memory several times.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lncheck import activations
from lncheck.case import Case
from lncheck.errors import InputError, option
from lncheck.ops.spec import NormSpec
from lncheck.reference import normalizing_statistics, param_views
from lncheck.result import Bound, Quantity

F64 = npt.NDArray[np.float64]
GRADIENTS = ("grad_input", "grad_weight", "grad_bias")


def upstream(case: Case) -> F64:
    """The upstream gradient: ``--grad-output`` or seeded standard normal values, rounded to the
    compute dtype (what torch's backward receives)."""
    from lncheck.dtypes import round_to

    if case.grad_output is not None:
        return np.asarray(case.grad_output, dtype=np.float64)
    g = np.random.default_rng(case.seed).standard_normal(case.spec.input_shape)
    return np.asarray(round_to(g, case.dtype), dtype=np.float64)


def check_supported(p: NormSpec) -> None:
    """Raises ``InputError`` for a layer whose backward pass this module does not derive."""
    if not p.statistics:
        raise InputError(
            f"{option('grad')} is not supported for {p.op}: only the mean/variance ops"
        )
    if (p.variance, p.eps_placement) != ("biased", "sqrt"):
        raise InputError(
            f"{option('grad')} is not supported for {p.op} with the {p.variance} variance and "
            f"eps on the {'std' if p.eps_placement == 'std' else 'variance'}"
        )


def backward(case: Case) -> tuple[dict[str, Quantity], dict[str, Bound]]:
    """The reference gradients of ``case`` for its upstream gradient, and their error bounds."""
    p = case.spec
    check_supported(p)
    view = p.view_shape
    x = np.asarray(case.x, dtype=np.float64).reshape(view)
    g = upstream(case).reshape(view)
    mean, var = normalizing_statistics(case)
    with np.errstate(all="ignore"):
        r = _in_view(p, 1.0 / np.sqrt(var + p.eps))
        n = (x - _in_view(p, mean)) * r
        kappa = _in_view(p, np.abs(mean) * np.asarray(1.0 / np.sqrt(var + p.eps)))
    weight, bias = param_views(p, case.weight, case.bias)
    w = np.ones(1) if weight is None else np.asarray(weight, dtype=np.float64)
    b = 0.0 if bias is None else np.asarray(bias, dtype=np.float64)
    # Through an activation, the error of the forward output y moves its derivative too (by at
    # most |y's error| since |act''| <= 1 for these activations): ``g_error`` carries it.
    g_error = np.zeros(1)
    jump = np.zeros(1)  # where the derivative may jump: |g| * |1 - slope| (not a rounding)
    if p.activation is not None:
        y = n * w + b
        g_error = np.abs(g) * (np.abs(y) + (1 + kappa) * np.abs(w) + np.abs(b))
        jump = _derivative_jumps(case, g, y, kappa, w, b)
        g = g * activations.derivative(p.activation)(y)
    dn = g * w
    axes = tuple(p.reduce_axes)

    def propagated(dn_size: F64) -> F64:
        """How much a change of ``dn_size`` in ``dn`` moves ``dx`` at most."""
        if p.use_running_stats:
            return np.asarray(dn_size * r)
        size = dn_size + dn_size.mean(axis=axes, keepdims=True)
        mixed = (dn_size * np.abs(n)).mean(axis=axes, keepdims=True)
        return np.asarray(r * (size + (np.abs(n) + 1) * mixed))

    with np.errstate(all="ignore"):
        if p.use_running_stats:
            dx = dn * r
        else:
            dn_n = (dn * n).mean(axis=axes, keepdims=True)
            centered = dn - dn.mean(axis=axes, keepdims=True) if p.center else dn
            dx = r * (centered - n * dn_n)
        spread = propagated(np.abs(dn) + g_error * np.abs(w))
        shape = p.input_shape
        size = ((1 + kappa) * spread).reshape(shape)
        # element-wise products round in the compute dtype ("fixed"); the group's reductions
        # err by the accuracy class's amount ("spread")
        input_terms = {"spread": size, "fixed": size}
        if jump.any():
            jumped = np.broadcast_to(jump * np.abs(w), dn.shape)
            input_terms["exact"] = propagated(jumped).reshape(shape)
    quantities: dict[str, Quantity] = {"grad_input": dx.reshape(shape)}
    bounds = {"grad_input": Bound("relative", input_terms)}
    if p.affine:
        shared = tuple(i for i in range(len(view)) if i not in p.param_axes)

        def summed(a: F64) -> F64:
            return np.asarray(np.broadcast_to(a, dn.shape).sum(axis=shared).reshape(p.param_shape))

        quantities["grad_weight"] = summed(g * n)
        g_size = np.abs(g) + g_error
        weighted = g_size * (np.abs(n) + 1 + kappa)
        # the sum's own error grows with the class's reduction ("spread", times the sum of
        # |terms|); its terms round once each in the compute dtype, independently, so those
        # errors add like a random walk: sqrt(sum(terms**2)) ("fixed")
        weight_terms = {"spread": summed(weighted), "fixed": np.sqrt(summed(weighted**2))}
        bias_terms = {"spread": summed(g_size), "fixed": np.sqrt(summed(g_size**2))}
        if jump.any():
            weight_terms["exact"] = summed(jump * np.abs(n))
            bias_terms["exact"] = summed(jump)
        bounds["grad_weight"] = Bound(("relative", "spread"), weight_terms)
        if p.has_bias:
            quantities["grad_bias"] = summed(g)
            bounds["grad_bias"] = Bound(("relative", "spread"), bias_terms)
    return quantities, bounds


def _derivative_jumps(case: Case, g: F64, y: F64, kappa: F64, w: F64, b: F64 | float) -> F64:
    """ReLU-like activations change slope at 0: where the forward output is within its own
    error bound of 0, torch's rounded output may sit on the other side, and its gradient then
    differs by ``|g| * |1 - slope|`` however exact the arithmetic."""
    from lncheck.tolerance_spec import ToleranceSpec, applied

    activation = case.spec.activation
    assert activation is not None
    if not activation.has_kink:
        return np.zeros(1)
    slope = activation.slope_below_zero
    with np.errstate(all="ignore"):
        # the output's own automatic bound, weighed exactly as the output check weighs it
        output = Bound("relative", {"spread": (1 + kappa) * np.abs(w), "fixed": np.abs(b)})
        rtol, atol = applied(ToleranceSpec(), case.dtype, case.spec.group_size, output)
        error = rtol * np.abs(y) + np.asarray(atol, dtype=np.float64)
        return np.where(np.abs(y) <= error, np.abs(g) * abs(1.0 - slope), 0.0)


def _in_view(p: NormSpec, per_group: F64) -> F64:
    """A per-group array shaped to broadcast against the plan's view."""
    grouped = np.asarray(per_group, dtype=np.float64).reshape(p.group_shape)
    return np.expand_dims(grouped, tuple(sorted(p.reduce_axes)))
