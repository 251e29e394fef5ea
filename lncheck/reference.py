"""The NumPy float64 reference: the normalization core, exact to float64 precision.

One core serves every mean/variance op: statistics over the spec's reduced axes, then
``(x - mean) * rstd``, then the affine map. The mean is the corrected two-pass mean (Chan,
Golub & LeVeque, 1983): a first pass gives ``m0``, the second sums ``d = x - m0`` and its mean
``correction``, which removes the rounding error of ``m0`` and leaves the variance
``mean(d**2) - correction**2`` free of cancellation even when ``|mean| >> std``. Elements are
normalized as ``((x - m0) - correction) * rstd``, never through ``m0 + correction``: that sum
rounds to ``|mean| * 2**-53``, which at mean/std 1e5 would be 1e5 float64 ULPs of the result,
while ``x - m0`` is exact (Sterbenz's lemma: ``x`` and ``m0`` are within a factor of 2) whenever
the mean dominates. Each group is first scaled by a power of two (exact) so that no square
overflows or underflows, whatever the magnitude of its values; rstd is formed from the scaled
variance. The result agrees with exact rational arithmetic to a few float64 ULPs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt

from lncheck import activations, bounds
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.dtypes import DTYPES, exact_sums, representable_between
from lncheck.moments import Moments, Scaled, moments, scaled
from lncheck.ops.spec import NormSpec
from lncheck.output_model import OutputModel
from lncheck.result import Bound, LazyTensor, NormResult, Quantity
from lncheck.sources import check_intact
from lncheck.tolerances import (
    LAST_PLACE_LEVELS,
    accumulation_dtype,
    low_precision_ceiling,
)

F64 = npt.NDArray[np.float64]
NAME = "reference"


SAMPLE = 65536  # values sampled to tell short-mantissa data
SHORT_BY = 8  # bits fewer than the compute dtype's that make data short-mantissa


def estimated(biased: F64, p: NormSpec) -> F64:
    """The variance the spec's estimator gives from the biased one: ÷n, or ÷(n - 1)."""
    if p.variance == "biased":
        return biased
    n = p.group_size
    with np.errstate(all="ignore"):
        return np.asarray(biased * (n / (n - 1)), dtype=np.float64)


def reciprocal_std(var: F64, p: NormSpec, exponent: F64 | float = 0.0) -> F64:
    """``1 / sqrt(var + eps)``, or ``1 / (sqrt(var) + eps)`` where eps goes on the std.

    With ``exponent``, ``var`` is the scaled variance ``var * 2**(-2 exponent)`` of a group
    scaled into [0.5, 1) (``moments``): the result is formed without squaring the unscaled
    values, so it neither overflows nor underflows where rstd itself is in range
    (``moments.scaled``)."""
    var = np.asarray(var, dtype=np.float64)
    nothing = np.zeros(var.shape)
    return scaled(var, np.asarray(exponent), p.eps, p.eps_placement == "std", nothing, nothing).rstd


@dataclass(frozen=True)
class Normalizer:
    """Per group, what the output is normalized with: ``((x - m0) - correction) * rstd``
    (``parts``: the same in the group's scaled domain, for groups near either end of
    float64's range)."""

    m0: F64
    correction: F64
    parts: Scaled
    running: bool  # running statistics (eval mode), not the batch's

    @property
    def rstd(self) -> F64:
        return self.parts.rstd

    @property
    def mean(self) -> F64:
        return np.asarray(self.m0 + self.correction, dtype=np.float64)


def normalizer(case: Case, batch: Moments | None = None) -> Normalizer:
    """The statistics the output is normalized with: the batch's, or the running ones in eval."""
    p = case.spec
    on_std = p.eps_placement == "std"
    if not p.use_running_stats:
        m = batch if batch is not None else moments(layout_of(p), case.x, p.center)
        var_s = estimated(m.var_scaled, p)
        parts = scaled(var_s, m.exponent, p.eps, on_std, m.m0_scaled, m.correction_scaled)
        return Normalizer(m.m0, m.correction, parts, running=False)
    running_mean, running_var = _running(case)
    m0 = _per_group(p, running_mean)
    nothing = np.zeros_like(m0)
    parts = scaled(_per_group(p, running_var), nothing, p.eps, on_std, m0, nothing)
    return Normalizer(m0, nothing, parts, running=True)


def _whole(case: Case, batch: Moments) -> F64:
    """Per group, how far above 1 the implied scale reaches where a kernel loses the variance
    whole (rstd ``1 / sqrt(eps)``), ``sqrt((var + eps) / eps) - 1`` (``inf`` at eps = 0): a
    centred group normalized with its own statistics; 0 elsewhere (no variance is computed,
    or a mean square, which no cancellation loses)."""
    p = case.spec
    if not (p.center and not p.use_running_stats) or p.eps < 0:
        return np.zeros(batch.peak.shape)
    with np.errstate(all="ignore"):  # eps = 0: rstd is infinite, and so is the reach
        if p.eps == 0:
            return np.full(batch.peak.shape, np.inf)
        return np.asarray(np.sqrt(estimated(batch.var, p) / p.eps + 1.0) - 1.0, dtype=np.float64)


def _lost(case: Case, batch: Moments, whole: F64) -> F64:
    """Per group, ``whole`` where a sequential sum may lose the variance whole, else 0: values
    at most two last places apart (``LAST_PLACE_LEVELS`` values of the dtype from the smallest
    to the largest), one of which holds half its sum of squares or more, summed in the dtype
    it holds."""
    if accumulation_dtype(case.dtype) != case.dtype:
        return np.zeros(batch.peak.shape)
    apart = representable_between(batch.low, batch.high, case.dtype)
    lost = (apart <= LAST_PLACE_LEVELS) & (batch.peak >= 0.5)
    return np.asarray(np.where(lost, whole, 0.0), dtype=np.float64)


def normalizing_statistics(case: Case) -> tuple[F64, F64]:
    """The per-group mean and variance the output is normalized with: the batch's (the
    variance as the spec estimates it), or the running statistics in eval mode."""
    p = case.spec
    if p.use_running_stats:
        running_mean, running_var = _running(case)
        return _per_group(p, running_mean), _per_group(p, running_var)
    m = moments(layout_of(p), case.x, p.center)
    return m.mean, estimated(m.var, p)


def run(case: Case) -> NormResult:
    """Run the reference on a case: statistics now, element-wise quantities lazily, by block.

    Besides each quantity, the result holds its forward error bound (``bounds``, see
    ``tolerances``), each group's conditioning and, for the mean/variance ops, the output's
    ``OutputModel`` (bounds per accuracy class, structure).
    """
    p = case.spec
    layout = layout_of(p)
    model: OutputModel | None = None
    conventions: dict[str, tuple[str, F64]] = {}
    if p.statistics:
        # a running sum's stagnation matters only where the batch's statistics are computed
        accumulated = DTYPES[accumulation_dtype(case.dtype)]  # type: ignore[index]
        unit = 0.0 if p.use_running_stats else accumulated.unit_roundoff
        batch = moments(layout, case.x, p.center, unit)
        norm = normalizer(case, batch)
        kappa = norm.parts.conditioning
        weight, bias = param_views(p, case.weight, case.bias)
        model = OutputModel(
            layout=layout,
            x=case.x,
            m0=norm.m0,
            correction=norm.correction,
            rstd=norm.rstd,
            scaled=norm.parts,
            kappa=kappa,
            weight=weight,
            bias=bias,
            # in the scaled domain: squares of subnormal differences underflow to a zero var
            constant=batch.var_scaled == 0,
            exact_mean=(batch.var_scaled == 0)
            & (p.center and not norm.running)
            & exact_sums(batch.mean, p.group_size, _accumulator_bits(case.dtype)),
            peak=_leaning(case, batch.peak),
            repeated=batch.repeated,
            levels=np.fmin(representable_between(batch.low, batch.high, case.dtype), p.group_size),
            unfinite=~(np.isfinite(batch.low) & np.isfinite(batch.high)),
            whole=(whole := _whole(case, batch)),
            lost=_lost(case, batch, whole),
            stagnant=batch.stagnant,
            variance=(
                _per_group(p, _running(case)[1]) if norm.running else estimated(batch.var, p)
            ),
            centered=p.center,
            running=norm.running,
        )
        sources = tuple([case.x] + [a for a in (weight, bias) if a is not None])
        output = LazyTensor(layout, sources, lambda first, blocks: model.block(first, blocks).y)
        var = estimated(batch.var, p)
        rstd = reciprocal_std(estimated(batch.var_scaled, p), p, batch.exponent)
        quantities: dict[str, Quantity] = {
            "output": output,
            "mean": batch.mean,
            "var": var,
            "rstd": rstd,
        }
        magnitude = _group_max(p, _offset(case.weight, p), 1.0) + _group_max(
            p, case.bias if p.has_bias else None, 0.0
        )
        steps = _runs(p, _leaning(case, batch.peak), batch.repeated)
        ceiling = low_precision_ceiling(case.dtype, p.group_size, 1.0 + kappa, model.whole)
        one_pass_lost = (model.whole > 0) & (ceiling >= model.whole)
        found = bounds.statistics(
            p, batch.mean, var, rstd, magnitude, steps, model.lost > 0, one_pass_lost
        )
        if p.update_running_stats:
            running, running_bounds = _updated_running_stats(case, batch.mean, batch.var)
            quantities.update(running)
            found.update(running_bounds)
            conventions["running_var"] = _biased_running_var(case, batch.var)
        conditioning = kappa
    else:
        output = LazyTensor(layout, (case.x,), partial(_lrn_block, p=p))
        quantities = {"output": output}
        found = {"output": bounds.window(output, abs(p.options["beta"]))}
        conditioning = None
    if p.activation is not None:
        act = activations.function(p.activation, case.dtype)
        quantities["activation"] = output.map(act)
        found["activation"] = bounds.through(found["output"], p.activation.lipschitz, output)
    return NormResult(NAME, quantities, found, conditioning, model, conventions)


def _accumulator_bits(dtype: str) -> int:
    """Significant bits of the dtype a kernel of the accurate or sequential class sums in."""
    return DTYPES[accumulation_dtype(dtype)].mantissa_bits + 1  # type: ignore[index]


def _leaning(case: Case, peak: F64) -> F64:
    """``peak`` for ``sequential.sequential_steps``, or 1 (every step leans one way) where the
    input's values have far fewer significant bits than the compute dtype (float16 data
    computed in float64): a sum of such values is exact until its last place passes theirs,
    and from there its roundings are ties and near-ties that lean alike, as after a large
    outlier. A sample of the first values decides (one pass over all would cost a pass)."""
    check_intact(case.x)  # a memory-mapped input truncated meanwhile: an error, not SIGBUS
    first = np.asarray(case.x)
    while first.ndim > 1 and first[:1].size > SAMPLE:  # a leading slab, never a full copy
        first = first[0]
    sample = np.asarray(first[:SAMPLE] if first.ndim == 1 else first[:1], np.float64).ravel()
    with np.errstate(all="ignore"):
        mantissa, _ = np.frexp(sample[np.isfinite(sample)])
        short = np.ldexp(mantissa, DTYPES[case.dtype].mantissa_bits - SHORT_BY + 1)
    if sample.size and bool(np.all(short == np.trunc(short))):
        return np.ones_like(peak)
    return np.nan_to_num(peak, nan=1.0)


def _runs(p: NormSpec, peak: F64, repeated: F64) -> F64:
    """How many steps a sequential sum's rounding may drift in (``sequential.sequential_steps``)."""
    from lncheck.sequential import sequential_steps

    return sequential_steps(p.group_size, np.nan_to_num(peak, nan=1.0), p.center, repeated)


def _updated_running_stats(
    case: Case, mean: F64, var: F64
) -> tuple[dict[str, Quantity], dict[str, Bound]]:
    """torch's update rule: the running variance takes the *unbiased* batch variance, although
    the output is normalized with the biased one; InstanceNorm averages its per-instance
    statistics over the batch first. Also returns their error bounds."""
    p = case.spec
    running_mean, running_var = _running(case)
    n = p.group_size
    with np.errstate(all="ignore"):
        unbiased = var * (n / (n - 1))
        kappa = np.abs(mean) / np.sqrt(var + abs(p.eps))
    axis = p.channel_group_axis
    assert axis is not None
    others = tuple(i for i in range(len(p.group_shape)) if i != axis)

    def per_channel(a: F64, reduce: str) -> F64:
        return np.asarray(getattr(np, reduce)(a.reshape(p.group_shape), axis=others))

    f = p.momentum_factor
    with np.errstate(all="ignore"):
        quantities: dict[str, Quantity] = {
            "running_mean": (1 - f) * running_mean + f * per_channel(mean, "mean"),
            "running_var": (1 - f) * running_var + f * per_channel(unbiased, "mean"),
        }
        mean_size = per_channel(np.abs(mean) + np.sqrt(var), "max")
        var_size = per_channel((1 + kappa) * (np.abs(unbiased) + abs(p.eps)), "max")
        var_squared = per_channel((1 + kappa) ** 2 * (np.abs(unbiased) + abs(p.eps)), "max")
    found = bounds.running(f, running_mean, running_var, mean_size, var_size, var_squared)
    return quantities, found


def _biased_running_var(case: Case, var: F64) -> tuple[str, F64]:
    """The running variance a kernel that updates it with the *biased* batch variance (the one
    it normalizes with) keeps: a classic slip, torch's rule takes the unbiased one."""
    p = case.spec
    axis = p.channel_group_axis
    assert axis is not None
    others = tuple(i for i in range(len(p.group_shape)) if i != axis)
    f = p.momentum_factor
    batch = np.asarray(var).reshape(p.group_shape).mean(axis=others)
    with np.errstate(all="ignore"):
        biased = (1 - f) * _running(case)[1] + f * batch
    words = (
        "matches running_var updated with the biased batch variance (torch's rule takes the "
        f"unbiased one, ÷(n - 1), n = {p.group_size})"
    )
    return words, np.asarray(biased, dtype=np.float64)


def _running(case: Case) -> tuple[F64, F64]:
    """The running statistics given, or those of a fresh module (zeros and ones)."""
    shape = case.spec.stats_shape
    mean = (
        np.zeros(shape)
        if case.running_mean is None
        else np.asarray(case.running_mean, dtype=np.float64)
    )
    var = (
        np.ones(shape)
        if case.running_var is None
        else np.asarray(case.running_var, dtype=np.float64)
    )
    return mean, var


def _per_group(p: NormSpec, per_channel: F64) -> F64:
    """Per-channel values spread over the groups (InstanceNorm's groups are (N, C))."""
    shape = [1] * len(p.group_shape)
    assert p.channel_group_axis is not None
    shape[p.channel_group_axis] = per_channel.size
    return np.broadcast_to(per_channel.reshape(shape), p.group_shape).reshape(-1)


def _lrn_block(first: int, blocks: tuple[npt.NDArray[np.generic], ...], p: NormSpec) -> F64:
    """LocalResponseNorm on a (positions, channels) block, padded as torch pads it: size // 2
    zero channels in front and (size - 1) // 2 behind, averaged over the full window."""
    o = p.options
    size, alpha, beta, k = o["size"], o["alpha"], o["beta"], o["k"]
    x = np.asarray(blocks[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        if size >= 2 * x.shape[1] - 1:  # every window spans all channels: no huge padding
            window = np.broadcast_to((x * x).sum(axis=1, keepdims=True), x.shape)
        else:
            padded = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2)))
            windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=1)
            window = windows.sum(axis=-1)
        return np.asarray(x / (k + alpha * window / size) ** beta)


def _group_max(p: NormSpec, param: npt.NDArray[np.generic] | None, default: float) -> F64 | float:
    """The largest ``|param|`` each group uses (``default`` for a missing one), per group."""
    if param is None or not p.affine:
        return default
    shape = [p.view_shape[axis] if axis in p.param_axes else 1 for axis in range(len(p.view_shape))]
    largest = (
        np.abs(np.asarray(param, dtype=np.float64))
        .reshape(shape)
        .max(axis=p.reduce_axes, keepdims=True)
    )
    per_group = np.squeeze(largest, axis=p.reduce_axes)
    return np.broadcast_to(per_group, p.group_shape).reshape(-1)


def layout_of(p: NormSpec) -> GroupLayout:
    return GroupLayout(p.input_shape, p.view_shape, p.reduce_axes)


def param_views(
    p: NormSpec, weight: npt.NDArray[np.generic] | None, bias: npt.NDArray[np.generic] | None
) -> tuple[npt.NDArray[np.generic] | None, npt.NDArray[np.generic] | None]:
    """Weight and bias reshaped to broadcast against the plan's view (``None`` when absent).

    A missing weight or bias of an affine layer is ones or zeros, as in a fresh torch module,
    and is left out here because multiplying by one and adding zero change nothing.
    """
    shape = [1] * len(p.view_shape)
    for axis in p.param_axes:
        shape[axis] = p.view_shape[axis]

    def view(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
        return None if a is None or not p.affine else np.asarray(a).reshape(shape)

    return view(_offset(weight, p)), view(bias) if p.has_bias else None


def _offset(weight: npt.NDArray[np.generic] | None, p: NormSpec) -> npt.NDArray[np.generic] | None:
    """The weight the output is scaled by: ``w``, or ``1 + w`` for zero-centred weights."""
    if weight is None or not p.weight_offset:
        return weight
    return np.asarray(weight, dtype=np.float64) + p.weight_offset


# --- the ops as NumPy functions: thin wrappers that choose axes --------------------------------


def normalize(
    x: npt.ArrayLike,
    op: str = "layer_norm",
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    running_mean: npt.ArrayLike | None = None,
    running_var: npt.ArrayLike | None = None,
    **options: object,
) -> F64:
    """Apply layer ``op`` (with ``options`` as the Python API takes them) to ``x`` in float64
    and return the whole output (before any activation).

    >>> normalize([[0.0, 2.0]], normalized_shape=2, eps=0.0)
    array([[-1.,  1.]])
    """
    from lncheck import ops
    from lncheck import options as option_table

    arr = np.asarray(x, dtype=np.float64)
    settings = option_table.parse({"op": op, **options}, "api")
    spec = ops.build(settings, tuple(arr.shape), "float64")
    case = Case(
        name="array",
        x=arr,
        input_dtype="float64",
        dtype="float64",
        spec=spec,
        settings=settings,
        weight=_float64(weight),
        bias=_float64(bias),
        running_mean=_float64(running_mean),
        running_var=_float64(running_var),
    )
    out = run(case).quantities["output"]
    assert isinstance(out, LazyTensor)
    return out.materialize()


def _float64(a: npt.ArrayLike | None) -> F64 | None:
    return None if a is None else np.asarray(a, dtype=np.float64)


def layer_norm(
    x: npt.ArrayLike,
    normalized_shape: int | Sequence[int],
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    eps: float = 1e-5,
) -> F64:
    """``torch.nn.functional.layer_norm`` in float64.

    >>> layer_norm([[1.0, 2.0, 3.0]], 3, eps=0.0).round(6)
    array([[-1.224745,  0.      ,  1.224745]])
    """
    return normalize(x, "layer_norm", weight, bias, normalized_shape=normalized_shape, eps=eps)
