"""torch's code paths for each op: module, functional and native, as functions of a case.

Each function takes the case and its tensors (``Inputs``) and returns the tensors it produced
(``output``, and where torch returns them ``mean``, ``rstd`` and updated running statistics).
``lncheck.backends.torch.PATHS`` lists which functions implement which op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lncheck.activations import Activation
from lncheck.case import Case


@dataclass(frozen=True)
class Inputs:
    """The case's arrays as torch tensors on the device, in the compute dtype; weight, bias and
    running statistics as the layer uses them (defaults filled in, see ``backends.common``)."""

    x: torch.Tensor
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None


PathFn = Callable[[Case, Inputs], dict[str, torch.Tensor]]
PARAMETERS = ("weight_param", "bias_param")  # a module's own parameters, for their gradients


# --- layer norm and RMS norm: torch wants the normalized axes last -----------------------------


def _ln_axes(case: Case) -> tuple[list[int], list[int]]:
    """Source and destination of the moves that put the normalized axes last (torch's layout)."""
    axes = list(case.spec.reduce_axes)
    ndim = len(case.spec.input_shape)
    return axes, list(range(ndim - len(axes), ndim))


def _to_ln_layout(case: Case, x: torch.Tensor) -> torch.Tensor:
    src, dst = _ln_axes(case)
    return x if src == dst else torch.movedim(x, src, dst)


def _from_ln_layout(case: Case, y: torch.Tensor) -> torch.Tensor:
    src, dst = _ln_axes(case)
    return y if src == dst else torch.movedim(y, dst, src)


def layer_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
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


def layer_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
    y = F.layer_norm(_to_ln_layout(case, t.x), p.param_shape, weight, bias, p.eps)
    return {"output": _from_ln_layout(case, y)}


def layer_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
    y, mean, rstd = torch.native_layer_norm(
        _to_ln_layout(case, t.x), p.param_shape, weight, bias, p.eps
    )
    return {"output": _from_ln_layout(case, y), "mean": mean, "rstd": rstd}


def rms_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    # eps as the user gave it: None exercises torch's own default.
    module = torch.nn.RMSNorm(
        p.param_shape,
        eps=p.options["eps"],
        elementwise_affine=p.affine,
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    return _with_params(module, {"output": _from_ln_layout(case, module(_to_ln_layout(case, t.x)))})


def rms_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight = t.weight
    y = F.rms_norm(_to_ln_layout(case, t.x), p.param_shape, weight, p.options["eps"])
    return {"output": _from_ln_layout(case, y)}


def rms_norm_fused(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight = t.weight
    y, rstd = torch._fused_rms_norm(
        _to_ln_layout(case, t.x), list(p.param_shape), weight, p.options["eps"]
    )
    return {"output": _from_ln_layout(case, y), "rstd": rstd}


# --- ops with a channel axis: torch wants it at position 1 ------------------------------------


def _to_channels_first(case: Case, x: torch.Tensor) -> torch.Tensor:
    k = case.spec.channel_axis
    return x if k in (None, 1) else torch.movedim(x, k, 1)


def _from_channels_first(case: Case, y: torch.Tensor) -> torch.Tensor:
    k = case.spec.channel_axis
    return y if k in (None, 1) else torch.movedim(y, 1, k)


def _channels(case: Case) -> int:
    k = case.spec.channel_axis
    assert k is not None
    return case.spec.input_shape[k]


def _groups(case: Case) -> int:
    groups: int = case.spec.options["groups"]
    return groups


def group_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
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


def group_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
    y = F.group_norm(_to_channels_first(case, t.x), _groups(case), weight, bias, p.eps)
    return {"output": _from_channels_first(case, y)}


def group_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
    x = _to_channels_first(case, t.x).contiguous()
    n, c = x.shape[0], x.shape[1]
    hxw = x[0, 0].numel()
    y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, hxw, _groups(case), p.eps)
    return {"output": _from_channels_first(case, y), "mean": mean, "rstd": rstd}


def _running_buffers(case: Case, t: Inputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Fresh copies of the running statistics (torch updates them in place)."""
    if t.running_mean is None or t.running_var is None:
        return None, None
    return t.running_mean.clone(), t.running_var.clone()


def _with_running(
    case: Case, out: dict[str, torch.Tensor], mean: torch.Tensor | None, var: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    if case.spec.update_running_stats and mean is not None and var is not None:
        out["running_mean"], out["running_var"] = mean, var
    return out


def _norm_module(case: Case, t: Inputs, classes: dict[int, Any]) -> dict[str, torch.Tensor]:
    p = case.spec
    cls = classes[len(p.input_shape)]
    module = cls(
        _channels(case),
        eps=p.eps,
        momentum=p.options["momentum"],
        affine=p.affine,
        track_running_stats=bool(p.options["track_running_stats"]),
        device=t.x.device,
        dtype=t.x.dtype,
    )
    _load_params(module, t)
    mean, var = _running_buffers(case, t)
    if mean is not None and var is not None:
        with torch.no_grad():
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
    module.train(p.options["training"])
    y = _from_channels_first(case, module(_to_channels_first(case, t.x)))
    stats = (module.running_mean, module.running_var) if mean is not None else (None, None)
    return _with_params(module, _with_running(case, {"output": y}, *stats))


def instance_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    nn = torch.nn
    return _norm_module(case, t, {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d})


def instance_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
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


def batch_norm_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    nn = torch.nn
    return _norm_module(
        case, t, {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    )


def batch_norm_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
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


def batch_norm_native(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    p = case.spec
    weight, bias = t.weight, t.bias
    mean, var = _running_buffers(case, t)
    training = not p.use_running_stats
    y, save_mean, save_invstd = torch.native_batch_norm(
        _to_channels_first(case, t.x), weight, bias, mean, var, training, p.momentum_factor, p.eps
    )
    out = {"output": _from_channels_first(case, y)}
    if training:  # in eval torch saves no statistics
        out.update(mean=save_mean, rstd=save_invstd)
    return _with_running(case, out, mean, var)


def lrn_module(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    o = case.spec.options
    module = torch.nn.LocalResponseNorm(o["size"], alpha=o["alpha"], beta=o["beta"], k=o["k"])
    return {"output": _from_channels_first(case, module(_to_channels_first(case, t.x)))}


def lrn_functional(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
    o = case.spec.options
    y = F.local_response_norm(
        _to_channels_first(case, t.x), o["size"], o["alpha"], o["beta"], o["k"]
    )
    return {"output": _from_channels_first(case, y)}


def with_weight_offset(fn: PathFn) -> PathFn:
    """A path of a layer with a zero-centred weight: ``norm(x) * (offset + w) + b``.

    torch has no such module. As Gemma's RMSNorm does (``x * rstd * (1.0 + w.float())``), the
    path runs without weight and bias in float32 (float64 stays float64), multiplies by
    ``offset + w`` computed there, adds the bias, and casts to the dtype once.
    """

    def composed(case: Case, t: Inputs) -> dict[str, torch.Tensor]:
        p = case.spec
        compute = torch.promote_types(t.x.dtype, torch.float32)
        plain = case.with_(spec=p.with_(affine=False, has_bias=False, weight_offset=0.0))
        inner = Inputs(t.x.to(compute), None, None, t.running_mean, t.running_var)
        produced = fn(plain, inner)
        shape = [n if i in p.param_axes else 1 for i, n in enumerate(p.view_shape)]
        y = produced["output"]
        if t.weight is not None:
            y = y * (p.weight_offset + t.weight.to(compute)).reshape(shape)
        if t.bias is not None:
            y = y + t.bias.to(compute).reshape(shape)
        produced["output"] = y.to(t.x.dtype)
        return produced

    return composed


def activation_module(act: Activation, like: torch.Tensor) -> torch.nn.Module:
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
