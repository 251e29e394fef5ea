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
from lncheck.io import check_device
from lncheck.result import ELEMENTWISE, NormResult

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
PARAM_SHAPED = ("grad_weight", "grad_bias")
QUANTITY_ORDER = (*ELEMENTWISE, *PARAM_SHAPED, "mean", "var", "rstd", "running_mean", "running_var")


def run(case: Case, option: str = "--device") -> Iterator[NormResult]:
    """Yield one ``NormResult`` per torch code path, one at a time, so that only one path's
    outputs are alive while it is being compared. ``option`` names the device's option in
    messages."""
    inputs = _inputs(case, option)
    upstream = _gradient(case, inputs.x) if case.grad else None
    for name, fn in paths(case):
        try:
            t = _leaves(case, inputs) if upstream is not None else inputs
            with torch.set_grad_enabled(upstream is not None):
                produced = fn(case, t)
                if case.plan.activation is not None:
                    produced["activation"] = _activation_module(case, t.x)(produced["output"])
                if upstream is not None:
                    produced.update(_backward(case, t, produced, upstream))
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            # torch's own limits (an op without a kernel for this dtype or device) are not a
            # verdict on the layer: say which path could not run, and why.
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BackendUnavailable(
                f"{name} cannot run this case in {case.dtype} on {case.device}: "
                f"{type(e).__name__}: {first[:200]}"
            ) from None
        for key in PARAMETERS:
            produced.pop(key, None)
        yield NormResult(name, _to_numpy(case, produced))
        del produced


PARAMETERS = ("weight_param", "bias_param")  # a module's own parameters, for their gradients


def _gradient(case: Case, like: torch.Tensor) -> torch.Tensor:
    from lncheck.gradients import check_supported, upstream

    check_supported(case.plan)
    return torch.from_numpy(upstream(case)).to(device=like.device, dtype=like.dtype)


def _leaves(case: Case, t: Inputs) -> Inputs:
    """Fresh leaf tensors that record gradients (weight and bias made explicit)."""
    weight, bias = _affine_or_default(case, t)

    def leaf(a: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else a.detach().clone().requires_grad_(True)

    return Inputs(leaf(t.x), leaf(weight), leaf(bias), t.running_mean, t.running_var)


def _backward(
    case: Case, t: Inputs, produced: dict[str, torch.Tensor], g: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Run autograd from the final output with upstream gradient ``g``; collect dx, dw, db."""
    final = produced.get("activation", produced["output"])
    final.backward(g)
    weight = produced.get("weight_param", t.weight)
    bias = produced.get("bias_param", t.bias)
    grads = {"grad_input": t.x.grad}
    if case.plan.affine and weight is not None:
        grads["grad_weight"] = weight.grad if weight.grad is not None else torch.zeros_like(weight)
    if case.plan.has_bias and bias is not None:
        grads["grad_bias"] = bias.grad if bias.grad is not None else torch.zeros_like(bias)
    return grads


def paths(case: Case) -> list[tuple[str, PathFn]]:
    """The torch code paths that implement the case's layer, as (candidate name, function)."""
    op = case.plan.op
    found = [(name.format(module=case.plan.torch_name), fn) for name, fn in PATHS[op]]
    if op == "rms_norm" and hasattr(torch, "_fused_rms_norm"):  # private, so not in every release
        found.append(("torch._fused_rms_norm", _rms_norm_fused))
    return found


def default_eps(op: str, dtype: str) -> float:
    """The eps torch uses when it is given ``eps=None`` (RMSNorm), measured on the installed torch.

    RMSNorm maps x to x / sqrt(x**2 + eps) on a single element. With x**2 equal to the eps being
    tested, the result is 1/sqrt(2) exactly when that is torch's eps, and near 0 or 1 otherwise.
    """
    assert op == "rms_norm"
    candidates = [2.0**-52, 2.0**-23, 2.0**-10, 2.0**-7]  # float64/32/16, bfloat16 epsilons
    for eps in candidates:
        x = torch.tensor([eps**0.5], dtype=torch.float64).to(TORCH_DTYPES[dtype])
        y = F.rms_norm(x, [1], None, None).double().item()
        if abs(y - 0.5**0.5) < 0.01:
            return eps
    raise BackendUnavailable(
        f"cannot tell which eps torch {torch.__version__} uses for RMSNorm in {dtype}"
    )


def device_name(device: str) -> str:
    """A human name for the device, e.g. ``NVIDIA H100 80GB HBM3`` or ``cpu``."""
    d = _device(device)
    return str(torch.cuda.get_device_name(d)) if d.type == "cuda" else str(d.type)


def version() -> str:
    return str(torch.__version__)


def environment(device: str = "cpu") -> dict[str, Any]:
    """What a report records about where it ran."""
    import platform

    from lncheck import __version__

    return {
        "lncheck": __version__,
        "torch": version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
    }


# --- layer norm and RMS norm: torch wants the normalized axes last -----------------------------


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
    return _with_params(module, {"output": _from_ln_layout(case, module(_to_ln_layout(case, t.x)))})


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


def _rms_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    # eps as the user gave it: None exercises torch's own default.
    module = torch.nn.RMSNorm(
        p.param_shape,
        eps=p.layer.eps,
        elementwise_affine=p.affine,
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    return _with_params(module, {"output": _from_ln_layout(case, module(_to_ln_layout(case, t.x)))})


def _rms_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, _ = _affine_or_default(case, t)
    y = F.rms_norm(_to_ln_layout(case, t.x), p.param_shape, weight, p.layer.eps)
    return {"output": _from_ln_layout(case, y)}


def _rms_norm_fused(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, _ = _affine_or_default(case, t)
    y, rstd = torch._fused_rms_norm(
        _to_ln_layout(case, t.x), list(p.param_shape), weight, p.layer.eps
    )
    return {"output": _from_ln_layout(case, y), "rstd": rstd}


# --- ops with a channel axis: torch wants it at position 1 ------------------------------------


def _to_channels_first(case: Case, x: torch.Tensor) -> torch.Tensor:
    k = case.plan.channel_axis
    return x if k in (None, 1) else torch.movedim(x, k, 1)


def _from_channels_first(case: Case, y: torch.Tensor) -> torch.Tensor:
    k = case.plan.channel_axis
    return y if k in (None, 1) else torch.movedim(y, 1, k)


def _channels(case: Case) -> int:
    k = case.plan.channel_axis
    assert k is not None
    return case.plan.input_shape[k]


def _groups(case: Case) -> int:
    groups = case.plan.layer.groups
    assert groups is not None  # the plan checked it
    return groups


def _group_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    module = torch.nn.GroupNorm(
        _groups(case),
        _channels(case),
        eps=p.eps,
        affine=p.affine,
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    return _with_params(
        module, {"output": _from_channels_first(case, module(_to_channels_first(case, t.x)))}
    )


def _group_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    y = F.group_norm(_to_channels_first(case, t.x), _groups(case), weight, bias, p.eps)
    return {"output": _from_channels_first(case, y)}


def _group_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    x = _to_channels_first(case, t.x).contiguous()
    n, c = x.shape[0], x.shape[1]
    hxw = x[0, 0].numel()
    y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, hxw, _groups(case), p.eps)
    return {"output": _from_channels_first(case, y), "mean": mean, "rstd": rstd}


def _running_buffers(case: Case, t: Inputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Fresh copies of the running statistics (torch updates them in place)."""
    p = case.plan
    if not p.stats_shape:
        return None, None
    c = p.stats_shape
    mean = (
        t.running_mean.clone()
        if t.running_mean is not None
        else torch.zeros(c, dtype=t.x.dtype, device=t.x.device)
    )
    var = (
        t.running_var.clone()
        if t.running_var is not None
        else torch.ones(c, dtype=t.x.dtype, device=t.x.device)
    )
    return mean, var


def _with_running(
    case: Case, out: dict[str, torch.Tensor], mean: torch.Tensor | None, var: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    if case.plan.update_running_stats and mean is not None and var is not None:
        out["running_mean"], out["running_var"] = mean, var
    return out


def _norm_module(case: Case, t: Inputs, classes: dict[int, Any]) -> dict[str, torch.Tensor]:
    p = case.plan
    cls = classes[len(p.input_shape)]
    module = cls(
        _channels(case),
        eps=p.eps,
        momentum=p.layer.momentum,
        affine=p.affine,
        track_running_stats=bool(p.layer.track_running_stats),
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    mean, var = _running_buffers(case, t)
    if mean is not None and var is not None:
        with torch.no_grad():
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
    module.train(p.layer.training)
    y = _from_channels_first(case, module(_to_channels_first(case, t.x)))
    stats = (module.running_mean, module.running_var) if mean is not None else (None, None)
    return _with_params(module, _with_running(case, {"output": y}, *stats))


def _instance_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    nn = torch.nn
    return _norm_module(case, t, {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d})


def _instance_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    mean, var = _running_buffers(case, t)
    y = F.instance_norm(
        _to_channels_first(case, t.x),
        mean,
        var,
        weight,
        bias,
        use_input_stats=not p.use_running_stats,
        momentum=p.momentum_factor,
        eps=p.eps,
    )
    return _with_running(case, {"output": _from_channels_first(case, y)}, mean, var)


def _batch_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    nn = torch.nn
    return _norm_module(
        case, t, {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    )


def _batch_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    mean, var = _running_buffers(case, t)
    y = F.batch_norm(
        _to_channels_first(case, t.x),
        mean,
        var,
        weight,
        bias,
        training=not p.use_running_stats,
        momentum=p.momentum_factor,
        eps=p.eps,
    )
    return _with_running(case, {"output": _from_channels_first(case, y)}, mean, var)


def _batch_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.plan
    weight, bias = _affine_or_default(case, t)
    mean, var = _running_buffers(case, t)
    training = not p.use_running_stats
    y, save_mean, save_invstd = torch.native_batch_norm(
        _to_channels_first(case, t.x), weight, bias, mean, var, training, p.momentum_factor, p.eps
    )
    out = {"output": _from_channels_first(case, y)}
    if training:  # in eval torch saves no statistics
        out.update(mean=save_mean, rstd=save_invstd)
    return _with_running(case, out, mean, var)


def _lrn_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    layer = case.plan.layer
    module = torch.nn.LocalResponseNorm(layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)
    return {"output": _from_channels_first(case, module(_to_channels_first(case, t.x)))}


def _lrn_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    layer = case.plan.layer
    assert layer.size is not None
    y = F.local_response_norm(
        _to_channels_first(case, t.x), layer.size, layer.alpha, layer.beta, layer.k
    )
    return {"output": _from_channels_first(case, y)}


def _activation_module(case: Case, like: torch.Tensor) -> torch.nn.Module:
    act = case.plan.activation
    assert act is not None
    nn = torch.nn
    if act.name == "relu":
        return nn.ReLU()
    if act.name == "leaky_relu":
        return nn.LeakyReLU(float(act.param))  # type: ignore[arg-type]
    if act.name == "prelu":
        return nn.PReLU(init=float(act.param), device=like.device, dtype=like.dtype)  # type: ignore[arg-type]
    if act.name == "gelu":
        return nn.GELU(approximate=str(act.param))
    return nn.SiLU()


PATHS: dict[str, list[tuple[str, PathFn]]] = {
    "layer_norm": [
        ("torch.nn.LayerNorm", _layer_norm_module),
        ("torch.nn.functional.layer_norm", _layer_norm_functional),
        ("torch.native_layer_norm", _layer_norm_native),
    ],
    "rms_norm": [
        ("torch.nn.RMSNorm", _rms_norm_module),
        ("torch.nn.functional.rms_norm", _rms_norm_functional),
    ],
    "group_norm": [
        ("torch.nn.GroupNorm", _group_norm_module),
        ("torch.nn.functional.group_norm", _group_norm_functional),
        ("torch.native_group_norm", _group_norm_native),
    ],
    "instance_norm": [
        ("torch.nn.{module}", _instance_norm_module),
        ("torch.nn.functional.instance_norm", _instance_norm_functional),
    ],
    "batch_norm": [
        ("torch.nn.{module}", _batch_norm_module),
        ("torch.nn.functional.batch_norm", _batch_norm_functional),
        ("torch.native_batch_norm", _batch_norm_native),
    ],
    "local_response_norm": [
        ("torch.nn.LocalResponseNorm", _lrn_module),
        ("torch.nn.functional.local_response_norm", _lrn_functional),
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


def _with_params(module: torch.nn.Module, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for key, name in zip(PARAMETERS, ("weight", "bias"), strict=True):
        param = getattr(module, name, None)
        if param is not None:
            out[key] = param
    return out


def _load_params(module: torch.nn.Module, t: Inputs) -> None:
    with torch.no_grad():
        if t.weight is not None and getattr(module, "weight", None) is not None:
            module.weight.copy_(t.weight)
        if t.bias is not None and getattr(module, "bias", None) is not None:
            module.bias.copy_(t.bias)


def _inputs(case: Case, option: str = "--device") -> Inputs:
    device = _device(case.device, option)
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


def _device(name: str, option: str = "--device") -> torch.device:
    check_device(name, option)
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if count == 0:
            raise BackendUnavailable(
                f"{option} {name}: torch reports no CUDA device on this machine"
            )
        if index >= count:
            raise BackendUnavailable(f"{option} {name}: this machine has {count} CUDA device(s)")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BackendUnavailable(f"{option} mps: torch reports no MPS device on this machine")
    return torch.device(name)


def _to_numpy(case: Case, produced: dict[str, torch.Tensor]) -> dict[str, npt.NDArray[np.floating]]:
    """Tensors as NumPy arrays; statistics flattened to group order, rstd also as a variance."""
    out: dict[str, npt.NDArray[np.floating]] = {}
    for name, t in produced.items():
        a = _numpy(t)
        out[name] = a if name in ELEMENTWISE + PARAM_SHAPED else a.reshape(-1).astype(np.float64)
    if "rstd" in out and "var" not in out:
        with np.errstate(all="ignore"):
            out["var"] = 1.0 / (out["rstd"] * out["rstd"]) - case.plan.eps
    return {name: out[name] for name in QUANTITY_ORDER if name in out}


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
        with warnings.catch_warnings():  # torch's deprecation notes are not the user's business
            warnings.simplefilter("ignore")
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
        if value.layout != torch.strided or value.is_quantized:
            raise InputError(
                f"tensor {key!r} is not a plain dense tensor ({value.layout}, {value.dtype})"
            )
        names[key] = str(value.dtype).removeprefix("torch.")
        try:
            arrays[key] = _numpy(value)
        except (TypeError, RuntimeError, NotImplementedError) as e:  # float8 and the like
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(
                f"tensor {key!r} of dtype {value.dtype} has no NumPy form: {first}"
            ) from None
    return arrays, names
