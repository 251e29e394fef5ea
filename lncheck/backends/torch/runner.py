"""Running a case through torch: tensors in, every path of the op table, NumPy results out."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lncheck.backends import common
from lncheck.backends.torch import PATHS, check_device, paths
from lncheck.backends.torch.files import to_numpy
from lncheck.backends.torch.paths import PARAMETERS, Inputs
from lncheck.case import Case
from lncheck.errors import BackendUnavailable, option
from lncheck.result import NormResult
from lncheck.sources import resident

TORCH_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def run(case: Case, device: str, option_name: str = "device") -> Iterator[NormResult]:
    """Yield one ``NormResult`` per torch code path, one at a time, so that only one path's
    outputs are alive while it is being compared. ``option_name`` names the device's option in
    messages."""
    given = inputs(case, device, option_name)
    gradient = upstream(case, given.x) if case.grad else None
    for name, fn in _paths(case):
        try:
            t = _leaves(case, given) if gradient is not None else given
            with torch.set_grad_enabled(gradient is not None):
                produced = fn(case, t)
                if case.spec.activation is not None:
                    act = paths.activation_module(case.spec.activation, t.x)
                    produced["activation"] = act(produced["output"])
                if gradient is not None:
                    produced.update(_backward(case, t, produced, gradient))
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            # torch's own limits (an op without a kernel for this dtype or device) are not a
            # verdict on the layer: say which path could not run, and why.
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BackendUnavailable(
                f"{name} cannot run this case in {case.dtype} on {device}: "
                f"{type(e).__name__}: {first[:200]}"
            ) from None
        for key in PARAMETERS:
            produced.pop(key, None)
        yield common.result(name, case.spec, {k: to_numpy(v) for k, v in produced.items()})
        del produced


def _paths(case: Case) -> list[tuple[str, paths.PathFn]]:
    """The torch code paths of the case's op, as (candidate name, function)."""
    found = []
    for name, function in PATHS[case.spec.op]:
        if name.startswith("torch._") and not hasattr(torch, name.removeprefix("torch.")):
            continue  # a private path this release does not have
        fn = getattr(paths, function)
        if case.spec.weight_offset:
            fn = paths.with_weight_offset(fn)
        found.append((name.format(module=case.spec.module), fn))
    return found


def upstream(case: Case, like: torch.Tensor) -> torch.Tensor:
    """The upstream gradient of ``--grad`` as a tensor like ``like``.

    Raises:
        InputError: the reference has no backward pass for this layer.
    """
    from lncheck import gradients

    gradients.check_supported(case.spec)
    return torch.from_numpy(gradients.upstream(case)).to(device=like.device, dtype=like.dtype)


def _leaves(case: Case, t: Inputs) -> Inputs:
    """Fresh leaf tensors that record gradients (weight and bias made explicit)."""

    def leaf(a: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a.detach().clone().requires_grad_(True)

    return Inputs(leaf(t.x), leaf(t.weight), leaf(t.bias), t.running_mean, t.running_var)


def _backward(
    case: Case, t: Inputs, produced: dict[str, torch.Tensor], g: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Run autograd from the final output with upstream gradient ``g``; collect dx, dw, db."""
    final = produced.get("activation", produced["output"])
    final.backward(g)
    weight = produced.get("weight_param", t.weight)
    bias = produced.get("bias_param", t.bias)
    grads = {"grad_input": t.x.grad}
    if case.spec.affine and weight is not None:
        grads["grad_weight"] = weight.grad if weight.grad is not None else torch.zeros_like(weight)
    if case.spec.has_bias and bias is not None:
        grads["grad_bias"] = bias.grad if bias.grad is not None else torch.zeros_like(bias)
    return grads


def default(op: str, option_name: str, dtype: str) -> float:
    """The eps torch uses when it is given ``eps=None`` (RMSNorm), measured on the installed torch.

    RMSNorm maps x to x / sqrt(x**2 + eps) on a single element. With x**2 equal to the eps being
    tested, the result is 1/sqrt(2) exactly when that is torch's eps, and near 0 or 1 otherwise.
    """
    assert (op, option_name) == ("rms_norm", "eps"), (op, option_name)
    candidates = [2.0**-52, 2.0**-23, 2.0**-10, 2.0**-7]  # float64/32/16, bfloat16 epsilons
    for eps in candidates:
        x = torch.tensor([eps**0.5], dtype=torch.float64).to(TORCH_DTYPES[dtype])
        y = torch.nn.functional.rms_norm(x, [1], None, None).double().item()
        if abs(y - 0.5**0.5) < 0.01:
            return eps
    raise BackendUnavailable(
        f"cannot tell which eps torch {torch.__version__} uses for RMSNorm in {dtype}"
    )


def device_name(device: str) -> str:
    """A human name for the device, e.g. ``NVIDIA H100 80GB HBM3`` or ``cpu``."""
    d = _device(device)
    return str(torch.cuda.get_device_name(d)) if d.type == "cuda" else str(d.type)


def environment(device: str = "cpu") -> dict[str, Any]:
    """What a report records about where it ran."""
    import platform

    from lncheck import __version__

    return {
        "lncheck": __version__,
        "backend": "torch",
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
    }


def inputs(case: Case, device: str, option_name: str = "device") -> Inputs:
    """The case's arrays as tensors on ``device`` in the compute dtype, with the weight, bias
    and running statistics the layer uses (defaults filled in).

    Raises:
        BackendUnavailable: no such device here.
    """
    where = _device(device, option_name)
    dtype = TORCH_DTYPES[case.dtype]

    def tensor(a: npt.NDArray[Any] | None) -> torch.Tensor | None:
        if a is None:
            return None
        with warnings.catch_warnings():
            # Memory-mapped inputs are read-only; torch only reads them here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            # a memory-mapped input is copied first: torch reads it in long calls that a
            # file truncated meanwhile would end with SIGBUS
            a = np.asarray(resident(a))
            if any(stride < 0 for stride in a.strides):  # x[::-1]: torch takes no such view
                a = a.copy()
            t = torch.from_numpy(a)
        return t.to(device=where, dtype=dtype)

    weight, bias = common.affine_defaults(case)
    running_mean, running_var = common.running_defaults(case)
    return Inputs(
        x=tensor(case.x),
        weight=tensor(weight),
        bias=tensor(bias),
        running_mean=tensor(running_mean),
        running_var=tensor(running_var),
    )


def _device(name: str, option_name: str = "device") -> torch.device:
    check_device(name, option_name)
    where = option(option_name)
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if count == 0:
            raise BackendUnavailable(
                f"{where} {name}: torch reports no CUDA device on this machine"
            )
        if index >= count:
            raise BackendUnavailable(f"{where} {name}: this machine has {count} CUDA device(s)")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BackendUnavailable(f"{where} mps: torch reports no MPS device on this machine")
    return torch.device(name)
