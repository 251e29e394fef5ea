"""Calling a user's Python function as a candidate, with torch tensors (``--candidate``).

The function gets the input as its first argument, then, as keyword arguments, those of
``weight``, ``bias``, ``running_mean``, ``running_var`` and the layer's options that its
signature names (all of them if it takes ``**kwargs``): ``normalized_shape``, ``axes``, ``eps``,
``groups`` (or ``num_groups``), ``channel_axis``, ``training``, ``momentum``,
``use_input_stats``. Tensors are on the case's device, in its dtype, with weight and bias as
the layer uses them (defaults filled in). It returns a tensor (the layer's final output, after
``--activation``) or a dict of quantities.

* With ``--grad``, unless it returns gradients itself, lncheck backpropagates the upstream
  gradient from its final output through autograd to get ``grad_input``, ``grad_weight`` and
  ``grad_bias``. A function whose signature names no ``weight`` (or ``bias``) never receives
  it, so autograd has no gradient for it: that check fails with a note saying so.
* It must not change its input, weight or bias: it gets copies (never the caller's arrays),
  compared bitwise after the call with copies taken before it. Running statistics are
  buffers that torch's functions update in place, so they are the function's updated
  ``running_mean``/``running_var`` unless it returns them (in eval mode, which updates none,
  they are inputs it must not change).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lncheck.backends.torch import runner
from lncheck.backends.torch.files import to_numpy
from lncheck.candidates import QUANTITIES, CandidateFailed, NotProduced
from lncheck.candidates.bundles import GRADIENTS, final_quantity
from lncheck.candidates.guard import guarded
from lncheck.case import Case

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def call(
    case: Case, fn: Callable[..., Any], device: str
) -> dict[str, npt.NDArray[Any] | NotProduced]:
    """Call ``fn`` on ``case`` and return what it produced, by quantity, as NumPy arrays (in
    the shapes it gave them; ``candidates.bundles`` checks them), or ``NotProduced`` for a
    parameter's gradient autograd cannot give because ``fn`` never took the parameter.

    Raises:
        CandidateFailed: it raised, changed its input, returned something else than a tensor
            or a dict of quantities, or gave no gradients under ``--grad``.
    """
    t = runner.inputs(case, device)
    upstream = runner.upstream(case, t.x) if case.grad else None
    # copies: the tensors may share memory with the caller's own arrays (``torch.from_numpy``),
    # which a candidate that writes into its arguments must never reach
    leaf = _leaf if upstream is not None else _fresh
    x, weight, bias = leaf(t.x), leaf(t.weight), leaf(t.bias)
    running = {
        "running_mean": None if t.running_mean is None else t.running_mean.clone(),
        "running_var": None if t.running_var is None else t.running_var.clone(),
    }
    values = {**_options(case), "weight": weight, "bias": bias, **running}
    values = {k: v for k, v in values.items() if v is not None}
    args = _accepted(fn, values)
    before = {"input": x, "weight": weight, "bias": bias}
    if not case.spec.update_running_stats:  # eval mode: the running statistics are inputs too
        before.update(running)
    copies = {k: v.detach().clone() for k, v in before.items() if v is not None}
    try:
        with torch.set_grad_enabled(upstream is not None), guarded():
            returned = fn(x, **args)
    except KeyboardInterrupt:  # the user's Ctrl-C ends the run
        raise
    except BaseException as e:  # sys.exit(), GeneratorExit: they fail the candidate, not lncheck
        raise CandidateFailed(f"raised {_describe(e)}") from None
    for name, copy in copies.items():
        changed = _changed(before[name], copy)
        if changed:
            raise CandidateFailed(
                f"changed its {name} in place ({changed} of {copy.numel()} elements); "
                "a candidate must not modify its inputs"
            )
    produced = _quantities(returned, case)
    if case.spec.update_running_stats:
        for name, buffer in running.items():
            if name in args and name not in produced and buffer is not None:
                produced[name] = buffer  # updated in place, as torch's functions do
    if upstream is not None and not any(g in produced for g in GRADIENTS):
        produced.update(_backward(case, produced, upstream, x, weight, bias, args))
    return {
        name: value if isinstance(value, NotProduced) else _values(name, value)
        for name, value in produced.items()
    }


def _values(name: str, t: torch.Tensor) -> npt.NDArray[Any]:
    """A returned tensor's values in NumPy.

    Raises:
        CandidateFailed: the tensor holds no values lncheck can read (on the ``meta`` device,
            sparse, or of a kind NumPy cannot hold).
    """
    if t.device.type == "meta":
        raise CandidateFailed(f"returned {name} on the meta device, which holds no values")
    try:
        return to_numpy(t.to_dense() if t.layout != torch.strided else t)
    except (RuntimeError, TypeError, NotImplementedError) as e:
        raise CandidateFailed(f"returned {name} that NumPy cannot hold: {_describe(e)}") from None


def _leaf(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone().requires_grad_(True)


def _fresh(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone()


def _options(case: Case) -> dict[str, Any]:
    """The layer's options, as torch's functions name them, for those the layer has."""
    p = case.spec
    out: dict[str, Any] = {}
    if "normalized_shape" in p.params:
        out["normalized_shape"] = tuple(p.params["normalized_shape"])
        out["axes"] = tuple(p.params["axes"])
    if p.statistics:
        out["eps"] = p.eps
    if "groups" in p.options:
        out["groups"] = out["num_groups"] = p.options["groups"]
    if p.channel_axis is not None:
        out["channel_axis"] = p.channel_axis
    if "training" in p.options:
        out["training"] = bool(p.options["training"])
        out["use_input_stats"] = not p.use_running_stats
        out["momentum"] = p.momentum_factor
    if p.op == "local_response_norm":
        out.update({k: p.options[k] for k in ("size", "alpha", "beta", "k") if k in p.options})
    return out


def _accepted(fn: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` takes: those its signature names after the first."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise CandidateFailed(
            "its signature cannot be inspected (a builtin?); wrap it in a Python function"
        ) from None
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    ):
        raise CandidateFailed("it must take the input as its first (positional) argument")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(values)
    named = {p.name for p in parameters[1:] if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return {k: v for k, v in values.items() if k in named}


def _changed(now: torch.Tensor | None, copy: torch.Tensor) -> int:
    """How many elements of ``now`` differ bitwise from ``copy`` (all if it was resized)."""
    if now is None or now.shape != copy.shape or now.dtype != copy.dtype:
        return int(copy.numel())
    a, b = now.detach(), copy
    bits = _BITS.get(a.element_size())
    if bits is not None:
        a, b = a.contiguous().view(bits), b.contiguous().view(bits)
    return int((a != b).sum().item())


def _quantities(returned: Any, case: Case) -> dict[str, Any]:
    if isinstance(returned, torch.Tensor):
        return {final_quantity(case.spec): returned}
    if isinstance(returned, Mapping):
        unknown = [k for k in returned if k not in QUANTITIES]
        if unknown:
            raise CandidateFailed(
                f"returned an unknown quantity {unknown[0]!r} (known: {', '.join(QUANTITIES)})"
            )
        out = {}
        for name, value in returned.items():
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(value)
            if not isinstance(value, torch.Tensor):
                raise CandidateFailed(f"returned {name} as a {type(value).__name__}, not a tensor")
            out[name] = value
        return out
    raise CandidateFailed(
        f"returned a {type(returned).__name__}; return a tensor or a dict of quantities"
    )


def _backward(
    case: Case,
    produced: Mapping[str, torch.Tensor],
    upstream: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    taken: Mapping[str, Any],
) -> dict[str, torch.Tensor | NotProduced]:
    """Gradients by autograd from the final output (the activation's, when it returns one);
    ``taken`` holds the keyword arguments ``fn`` was given."""
    final = produced.get("activation", produced.get("output"))
    if final is None or not final.requires_grad:
        raise CandidateFailed(
            "its output does not require grad, so its gradients cannot be checked: keep the "
            "autograd graph, or return grad_input, grad_weight and grad_bias"
        )
    try:
        with guarded():
            final.backward(upstream.to(final.dtype).reshape(final.shape))
    except KeyboardInterrupt:  # the user's Ctrl-C ends the run
        raise
    except BaseException as e:  # a wrong shape, a broken backward, sys.exit() (GeneratorExit too)
        raise CandidateFailed(f"its backward raised {_describe(e)}") from None
    grads: dict[str, torch.Tensor | NotProduced] = {
        "grad_input": x.grad if x.grad is not None else torch.zeros_like(x)
    }
    if case.spec.affine and weight is not None:
        grads["grad_weight"] = _parameter_grad("weight", weight, taken)
    if case.spec.has_bias and bias is not None:
        grads["grad_bias"] = _parameter_grad("bias", bias, taken)
    return grads


def _parameter_grad(
    name: str, parameter: torch.Tensor, taken: Mapping[str, Any]
) -> torch.Tensor | NotProduced:
    """Autograd's gradient of the parameter ``name``. A function that took it but whose output
    does not depend on it gets zeros: that is its gradient, and wrong. One that never took it
    has none to compare: autograd's ``None`` means nothing about its arithmetic."""
    if name not in taken:
        return NotProduced(f"takes no {name}: autograd gives it no grad_{name}")
    return parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)


def _describe(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
