"""The torch backend: every torch code path for a layer (module, functional, native).

This is the only module that imports torch. It also makes torch's conventions uniform with
the reference's: native ops return the reciprocal standard deviation, which is converted to
the variance here, and statistics are flattened into the reference's group order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from lncheck.case import Case
from lncheck.errors import BackendUnavailable, InputError
from lncheck.result import NormResult

TORCH_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class Inputs:
    """The case's arrays as torch tensors on the case's device, in its compute dtype."""

    x: torch.Tensor
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None


PathFn = Callable[[Case, Inputs], dict[str, torch.Tensor]]


def run(case: Case) -> Iterator[NormResult]:
    """Yield one ``NormResult`` per torch code path, one at a time, so that only one path's
    outputs are alive while it is being compared."""
    inputs = _inputs(case)
    for name, fn in PATHS[case.plan.op]:
        with torch.no_grad():
            produced = fn(case, inputs)
        yield NormResult(name, _to_numpy(case, produced))
        del produced


# --- layer norm -----------------------------------------------------------------------------


def _ln_axes(case: Case) -> tuple[list[int], list[int]]:
    """Source and destination of the moves that put the normalized axes last (torch's layout)."""
    axes = list(case.plan.reduce_axes)
    ndim = len(case.plan.input_shape)
    return axes, list(range(ndim - len(axes), ndim))


def _to_ln_layout(case: Case, x: torch.Tensor) -> torch.Tensor:
    src, dst = _ln_axes(case)
    return x if src == dst else torch.movedim(x, src, dst)


def _from_ln_layout(case: Case, y: torch.Tensor) -> torch.Tensor:
    src, dst = _ln_axes(case)
    return y if src == dst else torch.movedim(y, dst, src)


def _layer_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    module = torch.nn.LayerNorm(
        p.param_shape,
        eps=p.eps,
        elementwise_affine=p.affine,
        bias=p.has_bias,
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    return {"output": _from_ln_layout(case, module(_to_ln_layout(case, t.x)))}


def _layer_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    y = F.layer_norm(_to_ln_layout(case, t.x), p.param_shape, weight, bias, p.eps)
    return {"output": _from_ln_layout(case, y)}


def _layer_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    y, mean, rstd = torch.native_layer_norm(
        _to_ln_layout(case, t.x), p.param_shape, weight, bias, p.eps
    )
    return {"output": _from_ln_layout(case, y), "mean": mean, "rstd": rstd}


PATHS: dict[str, list[tuple[str, PathFn]]] = {
    "layer_norm": [
        ("torch.nn.LayerNorm", _layer_norm_module),
        ("torch.nn.functional.layer_norm", _layer_norm_functional),
        ("torch.native_layer_norm", _layer_norm_native),
    ],
}


# --- shared plumbing ----------------------------------------------------------------------------


def _affine_or_default(case: Case, t: Inputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Weight and bias as a fresh module would hold them (ones and zeros) when not given."""
    p = case.plan
    if not p.affine:
        return None, None
    shape = p.param_shape
    weight = (
        t.weight if t.weight is not None else torch.ones(shape, dtype=t.x.dtype, device=t.x.device)
    )
    bias: torch.Tensor | None = None
    if p.has_bias:
        bias = (
            t.bias if t.bias is not None else torch.zeros(shape, dtype=t.x.dtype, device=t.x.device)
        )
    return weight, bias


def _load_params(module: torch.nn.Module, t: Inputs) -> None:
    with torch.no_grad():
        if t.weight is not None and getattr(module, "weight", None) is not None:
            module.weight.copy_(t.weight)
        if t.bias is not None and getattr(module, "bias", None) is not None:
            module.bias.copy_(t.bias)


def _inputs(case: Case) -> Inputs:
    device = _device(case.device)
    dtype = TORCH_DTYPES[case.dtype]

    def tensor(a: npt.NDArray[Any] | None) -> torch.Tensor | None:
        if a is None:
            return None
        with warnings.catch_warnings():
            # Memory-mapped inputs are read-only; torch only reads them here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(np.asarray(a))
        return t.to(device=device, dtype=dtype)

    return Inputs(
        x=tensor(case.x),
        weight=tensor(case.weight),
        bias=tensor(case.bias),
        running_mean=tensor(case.running_mean),
        running_var=tensor(case.running_var),
    )


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda: torch reports no CUDA device on this machine")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BackendUnavailable("--device mps: torch reports no MPS device on this machine")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise InputError(f"--device must be cpu, cuda or mps, got {name!r}")
    return torch.device(name)


def _to_numpy(case: Case, produced: dict[str, torch.Tensor]) -> dict[str, npt.NDArray[np.floating]]:
    """Tensors as NumPy arrays; statistics flattened to group order, rstd also as a variance."""
    out: dict[str, npt.NDArray[np.floating]] = {}
    for name, t in produced.items():
        a = _numpy(t)
        out[name] = a if name == "output" else a.reshape(-1).astype(np.float64)
    if "rstd" in out and "var" not in out:
        with np.errstate(all="ignore"):
            out["var"] = 1.0 / (out["rstd"] * out["rstd"]) - case.plan.eps
    return out


def _numpy(t: torch.Tensor) -> npt.NDArray[np.floating]:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()  # exact: NumPy has no bfloat16
    return np.asarray(t.cpu().numpy())


def load_tensors(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Read a ``.pt``/``.pth`` file holding a tensor or a dict of tensors, never unpickling code.

    Raises:
        InputError: the file is not a safe tensor file (``weights_only=True`` refuses it) or
            holds something other than tensors.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # torch raises many types here; all mean "not a safe tensor file"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot load safely with weights_only=True: {first[:200]}") from None
    items = {"input": obj} if isinstance(obj, torch.Tensor) else obj
    if not isinstance(items, dict) or not items:
        raise InputError(f"holds a {type(obj).__name__}; expected a tensor or a dict of tensors")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    for key, value in items.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                f"entry {key!r} is a {type(value).__name__}; expected tensors under string keys"
            )
        if value.is_complex():
            raise InputError(
                f"tensor {key!r} is complex ({value.dtype}); normalization layers take real numbers"
            )
        names[key] = str(value.dtype).removeprefix("torch.")
        arrays[key] = _numpy(value)
    return arrays, names
