"""The torch code that reproduces a configuration ``lncheck explain`` found: a module or
functional call where torch has one, else a short function; casts where the layer ran in
float16 or bfloat16.
"""

from __future__ import annotations

import re

from lncheck.explain.hypotheses import TORCH_RMS_DEFAULT_EPS
from lncheck.explain.report import Config, eps_text

TORCH_DTYPES = {"float16": "torch.float16", "bfloat16": "torch.bfloat16"}
# the given parameters' names in torch_code: fitted ones stay float32, as fitted (torch
# normalizes a float16 or bfloat16 input with float32 parameters)
_PARAMETERS = ("weight", "bias")


def torch_code(c: Config) -> str:
    """The torch code that reproduces the configuration: a module or functional call where
    torch has one, else a short function. ``x`` is the input, ``weight``/``bias`` the given
    parameters (``weight_fit``/``bias_fit`` the fitted ones)."""
    standard = c.variance_algorithm == "two_pass" and c.eps_placement == "sqrt"
    standard = standard and (c.variance == "biased" or not c.centered)
    if standard and c.cast_order is not None:
        code = _rms_cast(c)
    elif standard:
        code = _module(c)
        if c.precision in TORCH_DTYPES and c.input_cast is None:
            # computed in the input's dtype, then rounded: the output's dtype as observed
            low = TORCH_DTYPES[c.precision]
            code = f"({code}).to({low})" if " + " in code else f"{code}.to({low})"
    else:
        code = _function(c)
    return code if c.input_cast is None else _with_casts(c, code)


def _with_casts(c: Config, code: str) -> str:
    """``code`` preceded by the casts of the input and of the parameters it names to
    ``c.input_cast`` (a module's own parameters are cast with it)."""
    low = TORCH_DTYPES[c.input_cast]  # type: ignore[index]
    named = " ".join(p for p in _params(c) if p)
    lines = [f"x = x.to({low})"]
    lines += [f"{n} = {n}.to({low})" for n in _PARAMETERS if re.search(rf"\b{n}\b", named)]
    if code.startswith("nn."):  # the module's weight and bias are float32 until cast
        code = code.replace(")(x)", f").to({low})(x)", 1)
    return "\n".join([*lines, code])


def _params(c: Config) -> tuple[str | None, str | None]:
    """The expressions of the weight and bias the configuration applies."""
    names = {"fitted": ("weight_fit", "bias_fit"), "swapped": ("bias", "weight")}
    if c.affine == "none":
        return None, None
    if c.affine in names:
        return names[c.affine]
    w = ("1 + weight" if c.affine == "given_offset" else "weight") if c.weight else None
    return w, "bias" if c.bias else None


def _eps_arg(c: Config) -> str:
    if not c.centered and c.eps == TORCH_RMS_DEFAULT_EPS:
        return "torch.finfo(torch.float32).eps"
    return eps_text(c.eps)


def _module(c: Config) -> str:
    ndim = len(c.input_shape)
    w, b = _params(c)
    eps = _eps_arg(c)
    if c.op in ("layer_norm", "rms_norm"):
        shape = list(c.param_shape)
        suffix = c.axes == tuple(range(ndim - len(c.axes), ndim))
        if c.op == "layer_norm":
            body = f"F.layer_norm({{x}}, {shape}, {w}, {b}, eps={eps})"
            module = f"nn.LayerNorm({shape}, eps={eps})"
        else:
            body = f"F.rms_norm({{x}}, {shape}, {w}, eps={eps})" + (f" + {b}" if b else "")
            module = f"nn.RMSNorm({shape}, eps={eps})"
        if suffix:
            return module + "(x)" if w is None and b is None else body.format(x="x")
        dest = tuple(range(-len(c.axes), 0))
        moved = body.format(x=f"x.movedim({c.axes}, {dest})")
        if " + " in moved:  # the bias is added before the axes move back
            moved = f"({moved})"
        return f"{moved}.movedim({dest}, {c.axes})"
    k = c.channel_axis if c.channel_axis is not None else 1
    channels = c.input_shape[k]
    x = "x" if k == 1 else f"x.movedim({k - ndim}, 1)"
    back = "" if k == 1 else f".movedim(1, {k - ndim})"
    if c.op == "group_norm":
        g = c.groups or 1
        if c.grouping == "interleaved":
            per = channels // g
            x = f"{x}.unflatten(1, ({per}, {g})).transpose(1, 2).flatten(1, 2)"
            back = f".unflatten(1, ({g}, {per})).transpose(1, 2).flatten(1, 2){back}"
            w = None if w is None else f"({w}).view({per}, {g}).t().flatten()"
            b = None if b is None else f"{b}.view({per}, {g}).t().flatten()"
        elif w is None and b is None and k == 1:
            return f"nn.GroupNorm({g}, {channels}, eps={eps})(x)"
        return f"F.group_norm({x}, {g}, {w}, {b}, eps={eps}){back}"
    if c.op == "instance_norm":
        if w is None and b is None and k == 1:
            return f"nn.InstanceNorm{ndim - 2}d({channels}, eps={eps})(x)"
        return f"F.instance_norm({x}, weight={w}, bias={b}, eps={eps}){back}"
    if w is None and b is None and k == 1:
        d = 1 if ndim <= 3 else ndim - 2
        return f"nn.BatchNorm{d}d({channels}, eps={eps})(x)  # training mode: batch statistics"
    return f"F.batch_norm({x}, None, None, {w}, {b}, training=True, eps={eps}){back}"


def _rms_cast(c: Config) -> str:
    """RMSNorm in float32 with the weight applied before or after the cast (Gemma, Llama)."""
    w, b = _params(c)
    low = TORCH_DTYPES[c.precision]
    eps = _eps_arg(c)
    norm = f"F.rms_norm(x.float(), {list(c.param_shape)}, eps={eps})"
    tail = f" + {b}" if b else ""
    if c.cast_order == "weight_after_cast":  # the module's weight is in low (a no-op there),
        # a weight file in float32 would make the product float32
        factor = f"({w})" if w and " " in w else w
        product = f"{factor}.to({low}) * {norm}.to({low})"
        return f"({product}{tail}).to({low})" if tail else product
    scale = "(1 + weight.float())" if c.affine == "given_offset" else f"({w}).float()"
    return f"({norm} * {scale}{tail}).to({low})"


def _function(c: Config) -> str:
    """A short function for what torch has no module for: an unbiased variance, eps on the
    std, a one-pass variance, or any of these on GroupNorm's view."""
    ndim = len(c.input_shape)
    view = "x.float()"
    back = "y"
    dims: tuple[int, ...] = c.axes
    if c.op == "group_norm":
        k = c.channel_axis if c.channel_axis is not None else 1
        g = c.groups or 1
        per = c.input_shape[k] // g
        pair = (per, g) if c.grouping == "interleaved" else (g, per)
        view = f"x.float().unflatten({k}, {pair})"
        back = f"y.flatten({k}, {k + 1})"
        dims = c.reduce_axes
    d = _axes_text(dims, len(c.view_shape) if c.op == "group_norm" else ndim)
    lines = ["def norm(x):", f"    v = {view}"]
    if c.centered:
        lines.append(f"    mean = v.mean({d}, keepdim=True)")
        if c.variance_algorithm == "one_pass":
            lines.append(f"    var = ((v * v).mean({d}, keepdim=True) - mean * mean).clamp_min(0)")
        else:
            correction = 1 if c.variance == "unbiased" else 0
            lines.append(f"    var = v.var({d}, keepdim=True, correction={correction})")
        centred = "(v - mean)"
    else:
        lines.append(f"    var = v.pow(2).mean({d}, keepdim=True)")
        centred = "v"
    eps = _eps_arg(c)
    if c.eps_placement == "std":
        lines.append(f"    y = {centred} / (var.sqrt() + {eps})")
    else:
        lines.append(f"    y = {centred} * torch.rsqrt(var + {eps})")
    w, b = _params(c)
    out = back
    view_shape = _param_broadcast(c)
    if w is not None:
        out += f" * ({w})" + ("" if view_shape is None else f".view{view_shape}")
    if b is not None:
        out += f" + {b}" + ("" if view_shape is None else f".view{view_shape}")
    if c.precision in TORCH_DTYPES:
        out = f"({out}).to({TORCH_DTYPES[c.precision]})"
    lines.append(f"    return {out}")
    return "\n".join(lines)


def _axes_text(axes: tuple[int, ...], ndim: int) -> str:
    if len(axes) == 1:
        return "-1" if axes[0] == ndim - 1 else str(axes[0])
    return str(tuple(axes))


def _param_broadcast(c: Config) -> tuple[int, ...] | None:
    """The shape that lines the parameters up with the input, or None where they broadcast
    as they are (parameters over the trailing dims)."""
    ndim = len(c.input_shape)
    if c.op in ("layer_norm", "rms_norm"):
        if c.axes == tuple(range(ndim - len(c.axes), ndim)):
            return None
        return tuple(c.input_shape[i] if i in c.axes else 1 for i in range(ndim))
    k = c.channel_axis if c.channel_axis is not None else 1
    if k == ndim - 1:
        return None
    return tuple(c.input_shape[i] if i == k else 1 for i in range(ndim))


# --- notes -------------------------------------------------------------------------------
