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

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.errors import InputError
from lncheck.layers import Plan
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
    g = np.random.default_rng(case.seed).standard_normal(case.plan.input_shape)
    return np.asarray(round_to(g, case.dtype), dtype=np.float64)


def check_supported(p: Plan) -> None:
    if not p.has_statistics:
        raise InputError(f"--grad is not supported for {p.op}: only the mean/variance ops")


def backward(case: Case) -> tuple[dict[str, Quantity], dict[str, Bound]]:
    """The reference gradients of ``case`` for its upstream gradient, and their error bounds."""
    p = case.plan
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
        g = g * activation_derivative(p.activation.name, p.activation.param)(y)
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
        input_terms = {"spread": ((1 + kappa) * spread).reshape(shape)}
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
        weight_terms = {"spread": summed(g_size * (np.abs(n) + 1 + kappa))}
        bias_terms = {"spread": summed(g_size)}
        if jump.any():
            weight_terms["exact"] = summed(jump * np.abs(n))
            bias_terms["exact"] = summed(jump)
        bounds["grad_weight"] = Bound("spread", weight_terms)
        if p.has_bias:
            quantities["grad_bias"] = summed(g)
            bounds["grad_bias"] = Bound("spread", bias_terms)
    return quantities, bounds


def _derivative_jumps(case: Case, g: F64, y: F64, kappa: F64, w: F64, b: F64 | float) -> F64:
    """ReLU-like activations change slope at 0: where the forward output is within its own
    error bound of 0, torch's rounded output may sit on the other side, and its gradient then
    differs by ``|g| * |1 - slope|`` however exact the arithmetic."""
    from lncheck.tolerances import ToleranceSpec, applied

    activation = case.plan.activation
    assert activation is not None
    if activation.name not in ("relu", "leaky_relu", "prelu"):
        return np.zeros(1)
    slope = 0.0 if activation.name == "relu" else float(activation.param or 0.0)
    with np.errstate(all="ignore"):
        # the output's own automatic bound, weighed exactly as the output check weighs it
        output = Bound("relative", {"spread": (1 + kappa) * np.abs(w), "fixed": np.abs(b)})
        rtol, atol = applied(ToleranceSpec(), case.dtype, case.plan.group_size, output)
        error = rtol * np.abs(y) + np.asarray(atol, dtype=np.float64)
        return np.where(np.abs(y) <= error, np.abs(g) * abs(1.0 - slope), 0.0)


def shared_count(p: Plan) -> int:
    """How many values each weight gradient sums."""
    return math.prod(p.input_shape) // max(1, math.prod(p.param_shape))


def _in_view(p: Plan, per_group: F64) -> F64:
    """A per-group array shaped to broadcast against the plan's view."""
    grouped = np.asarray(per_group, dtype=np.float64).reshape(p.group_shape)
    return np.expand_dims(grouped, tuple(sorted(p.reduce_axes)))


def activation_derivative(name: str, param: float | str | None) -> Callable[[F64], F64]:
    """The derivative torch's autograd uses (at 0: 0 for ReLU, the slope for LeakyReLU/PReLU)."""
    if name == "relu":
        return lambda y: (y > 0).astype(np.float64)
    if name in ("leaky_relu", "prelu"):
        slope = float(param or 0.0)
        return lambda y: np.where(y > 0, 1.0, slope)
    if name == "silu":

        def silu(y: F64) -> F64:
            with np.errstate(over="ignore"):
                s = 1.0 / (1.0 + np.exp(-y))
            return np.asarray(s * (1.0 + y * (1.0 - s)))

        return silu
    if name == "gelu" and param == "tanh":
        c = math.sqrt(2.0 / math.pi)

        def gelu_tanh(y: F64) -> F64:
            t = np.tanh(c * (y + 0.044715 * y**3))
            return np.asarray(0.5 * (1 + t) + 0.5 * y * (1 - t * t) * c * (1 + 3 * 0.044715 * y**2))

        return gelu_tanh
    from lncheck.reference import erf

    def gelu(y: F64) -> F64:
        cdf = 0.5 * (1.0 + erf(y / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)
        return np.asarray(cdf + y * pdf)

    return gelu
