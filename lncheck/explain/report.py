"""What ``lncheck explain`` finds: ranked candidates, each with its words (its torch code is
``torch_code``'s).

``Candidate`` is one configuration that was replayed on every element, with its residual and
its verdict; ``ExplainReport`` ranks them, best first, and carries the exit status. The JSON
document (``lncheck.render.json.explain_document``) and the console table
(``lncheck.render.console.render_explain``) are renderings of these objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.errors import ExitStatus
from lncheck.explain.fitted_affine import same
from lncheck.explain.hypotheses import Denominator

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
