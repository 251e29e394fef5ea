"""What ``lncheck explain`` finds: ranked candidates, each with its words and its torch code.

``Candidate`` is one configuration that was replayed on every element, with its residual and
its verdict; ``ExplainReport`` ranks them, best first, and carries the exit status. The JSON
document (``lncheck.render.json.explain_document``) and the console table
(``lncheck.render.console.render_explain``) are renderings of these objects.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.errors import ExitStatus
from lncheck.explain.fitted_affine import same
from lncheck.explain.hypotheses import TORCH_RMS_DEFAULT_EPS, Denominator

F64 = npt.NDArray[np.float64]

MODULE_NAMES = {
    "layer_norm": "LayerNorm",
    "rms_norm": "RMSNorm",
    "group_norm": "GroupNorm",
    "instance_norm": "InstanceNorm",
    "batch_norm": "BatchNorm",
}
VERDICT_RANK = {"exact": 0, "rounding": 1, "none": 2}
EXPLAINING = ("exact", "rounding")  # the verdicts of a replay that reproduces the output
TORCH_DTYPES = {"float16": "torch.float16", "bfloat16": "torch.bfloat16"}
# the given parameters' names in torch_code: fitted ones stay float32, as fitted (torch
# normalizes a float16 or bfloat16 input with float32 parameters)
_PARAMETERS = ("weight", "bias")


@dataclass(frozen=True)
class Config:
    """One configuration: the op and its statistics, the variance, eps, the affine map, and
    the precision of the output.

    ``axes`` are the input axes the statistics span; ``view_shape``/``reduce_axes`` the
    grouping (GroupNorm views its channel axis as (groups, channels per group) or, interleaved,
    (channels per group, groups)); ``param_shape`` the shape of the weight and bias.
    ``weight``/``bias`` say which of the given (or fitted) parameters the affine map uses.
    """

    op: str
    input_shape: tuple[int, ...]
    axes: tuple[int, ...]
    groups: int | None
    grouping: str | None
    channel_axis: int | None
    view_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    param_shape: tuple[int, ...]
    centered: bool
    variance: str
    variance_algorithm: str
    eps_placement: str
    eps: float
    affine: str
    weight: bool
    bias: bool
    cast_order: str | None
    precision: str
    # the dtype the input, weight and bias were rounded to before the op (a float16 layer
    # fed a float32 input), None: used as given
    input_cast: str | None


@dataclass(frozen=True)
class Candidate(Config):
    """A configuration replayed on every element: residual, rounding, verdict, words, code.

    ``eps_low``/``eps_high`` bound the eps values every group allows (``eps_low <= 0``: eps
    is not identifiable, any value up to ``eps_high`` fits); ``eps_fitted`` says eps is not one
    of the usual values. ``rounding_ratio`` is the largest ``|residual| / bound`` where the
    bound is the rounding expected of an output in ``precision``; ``exact_share`` the share of
    elements equal to the configuration's float64 output rounded to ``precision``.
    """

    eps_low: float
    eps_high: float
    eps_fitted: bool
    max_abs_residual: float
    rms_residual: float
    rounding_ratio: float
    exact_share: float
    verdict: str
    penalty: int
    torch_code: str
    description: str
    notes: tuple[str, ...] = ()

    @property
    def eps_identifiable(self) -> bool:
        return self.eps_low > 0

    @property
    def explains(self) -> bool:
        return self.verdict in EXPLAINING

    def rank_key(self) -> tuple[int, int, float]:
        """Best first: the verdict, then the simplest convention, then the smaller residual."""
        ratio = self.rounding_ratio if math.isfinite(self.rounding_ratio) else math.inf
        return VERDICT_RANK[self.verdict], self.penalty if self.explains else 0, ratio


@dataclass(frozen=True)
class ExplainReport:
    """The ranked candidates for one input and observed output, best first."""

    input_shape: tuple[int, ...]
    input_dtype: str
    output_dtype: str
    precision: str  # the narrowest dtype holding every observed value
    candidates: tuple[Candidate, ...]
    hypotheses: int  # how many configurations were scored
    seconds: float
    complete: bool = True  # False when the budget ran out first
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def explained(self) -> bool:
        return any(c.explains for c in self.candidates)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.OK if self.explained else ExitStatus.CHECK_FAILED


# --- words -------------------------------------------------------------------------------


def eps_text(eps: float) -> str:
    """``1e-5``, ``3.3e-4``, ``2.0``, ``0.0``: the shortest spelling Python reads back
    exactly."""
    if eps == 0:
        return "0.0"
    for digits in range(1, 18):  # 17 significant digits always read back exactly
        short = f"{eps:.{digits - 1}e}"
        if float(short) == eps:
            break
    mantissa, exponent = short.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    if 0 <= int(exponent) < 4:  # 2.0, 12.5, not 2e0 (a float, as torch's eps=)
        return repr(float(short))
    return f"{mantissa}e{int(exponent)}"


def describe(
    c: Config,
    eps_low: float,
    eps_high: float,
    eps_fitted: bool,
    *,
    eps_pinned: bool = False,
    explains: bool = False,
) -> str:
    """The configuration in words, e.g. ``LayerNorm over the last dim (768,), eps=1e-3,
    biased variance, eps inside the sqrt, no affine`` (``eps_pinned``: the caller gave eps;
    ``explains``: the replay reproduces the output)."""
    eps = _eps_words(c.eps, eps_low, eps_high, eps_fitted, eps_pinned, explains)
    parts = [_family(c), eps]
    if c.centered or c.variance_algorithm == "one_pass":
        parts.append(
            "one-pass float32 variance E[x^2] - E[x]^2 (Flax use_fast_variance)"
            if c.variance_algorithm == "one_pass"
            else ("unbiased variance (/(N-1))" if c.variance == "unbiased" else "biased variance")
        )
    parts.append("eps added to the std" if c.eps_placement == "std" else "eps inside the sqrt")
    parts.append(_affine_words(c))
    if c.cast_order == "weight_after_cast":
        parts.append(f"weight applied after rounding to {c.precision} (Llama/T5 order)")
    elif c.cast_order == "weight_before_cast":
        parts.append(f"weight applied in float32 before rounding to {c.precision} (Gemma order)")
    if c.input_cast is not None:  # given parameters are rounded with it, fitted ones not
        held = " and its parameters" if c.affine != "fitted" and (c.weight or c.bias) else ""
        parts.append(f"on the input{held} rounded to {c.input_cast} first")
    return ", ".join(parts)


def _family(c: Config) -> str:
    ndim = len(c.input_shape)
    where = "" if c.channel_axis in (None, 1) else f" on channel axis {c.channel_axis - ndim}"
    if c.op == "group_norm":
        channels = c.input_shape[c.channel_axis or 1]
        g = c.groups or 1
        how = (
            f"channel k in group k mod {g} (interleaved, as MLX)"
            if c.grouping == "interleaved"
            else "contiguous channels (as torch)"
        )
        plural = "group" if g == 1 else "groups"
        return f"GroupNorm, {g} {plural} of {channels // g} channels, {how}{where}"
    if c.op in ("instance_norm", "batch_norm"):
        d = max(1, ndim - 2) if c.op == "instance_norm" else (1 if ndim <= 3 else ndim - 2)
        stats = " with batch statistics" if c.op == "batch_norm" else ""
        return f"{MODULE_NAMES[c.op]}{d}d{stats}{where}"
    name = MODULE_NAMES[c.op]
    if c.axes == tuple(range(ndim - len(c.axes), ndim)):
        last = "the last dim" if len(c.axes) == 1 else f"the last {len(c.axes)} dims"
        return f"{name} over {last} {_dims(c.param_shape)}"
    return f"{name} over axes {_dims(c.axes)}"


def _eps_words(
    eps: float, low: float, high: float, fitted: bool, pinned: bool, explains: bool
) -> str:
    if math.isnan(low):  # replayed with the eps given, or the usual one, as a nearest miss
        if pinned:
            why = "as given"
        elif explains:  # the sample's scales ruled it out; the replay did not
            why = "the usual value, not fitted"
        else:
            why = "not fitted: no eps fits every group"
        return f"eps={eps_text(eps)} ({why})"
    if fitted:
        return f"eps={eps_text(eps)} ± {_num((high - low) / 2, 2)} (fitted)"
    if low <= 0:
        if high >= 1e-1:
            return f"eps={eps_text(eps)} (not identifiable: var ≫ eps in every group)"
        return f"eps={eps_text(eps)} (any eps ≤ {_num(high)} fits)"
    return f"eps={eps_text(eps)}"


def _affine_words(c: Config) -> str:
    given = " and ".join(n for n, on in (("weight", c.weight), ("bias", c.bias)) if on)
    per = "channel" if c.op in ("group_norm", "instance_norm", "batch_norm") else "feature"
    return {
        "none": "no affine",
        "given": f"with the given {given}",
        "given_offset": "with 1 + weight (zero-centred weight, as Gemma)"
        + (" and the given bias" if c.bias else ""),
        "swapped": "with weight and bias swapped",
        "fitted": f"with a per-{per} weight and bias fitted by least squares",
    }[c.affine]


def _num(x: float, digits: int = 3) -> str:
    return "inf" if math.isinf(x) else f"{x:.{digits}g}"


def _dims(t: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in t) + ("," if len(t) == 1 else "") + ")"


# --- torch code --------------------------------------------------------------------------


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


def alternatives_note(d: Denominator, others: list[Denominator]) -> tuple[str, ...]:
    """A note naming the more complex denominators that fit the per-group scales too."""
    words = []
    for o in others:
        if o.penalty <= d.penalty:
            continue
        text = []
        if o.variance != d.variance:
            text.append(f"{o.variance} variance")
        if o.algorithm != d.algorithm:
            text.append("one-pass variance" if o.algorithm == "one_pass" else "two-pass variance")
        if o.placement != d.placement:
            text.append("eps on the std" if o.placement == "std" else "eps inside the sqrt")
        if text:
            words.append(" and ".join(text))
    if not words:
        return ()
    return ("the per-group scales also fit: " + "; ".join(dict.fromkeys(words)),)


def fitted_notes(
    weight: F64, bias: F64, given_weight: F64 | None, given_bias: F64 | None
) -> tuple[str, ...]:
    """What a fitted weight and bias look like: ones and zeros, a given parameter in its own
    order or in another one (within 1% of their largest value), or neither (their range)."""
    notes = []
    for name, values, given in (("weight", weight, given_weight), ("bias", bias, given_bias)):
        flat = None if given is None else np.asarray(given, dtype=np.float64).reshape(-1)
        if name == "weight" and same(values, np.ones_like(values)):
            notes.append("the fitted weight is all ones (within 1%)")
        elif name == "bias" and same(values, np.zeros_like(values)):
            notes.append("the fitted bias is all zeros (within 1%)")
        elif flat is not None and flat.size == values.size and same(np.sort(values), np.sort(flat)):
            order = (
                "in the given order" if same(values, flat) else "in another order (a permutation)"
            )
            notes.append(f"the fitted {name} is the given {name} {order}")
        else:
            notes.append(
                f"fitted {name}: mean {values.mean():.4g}, from {values.min():.4g} "
                f"to {values.max():.4g}"
            )
    return tuple(notes)
