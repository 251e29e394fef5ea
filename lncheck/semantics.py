"""Conventions a distortion consistent across groups matches: a different function, not lost
precision.

Precision losses (sequential sums, statistics kept in float16, a one-pass variance) move each
group's implied scale ``s`` and shift ``t`` by different, data-dependent amounts; a different
convention moves them by what the convention predicts, group after group: another eps, an
unbiased variance (a mean square ÷(n - 1) for RMSNorm), eps on the std, a missing bias, the bias
added before the weight. When one
of these predicts every group's ``s`` and ``t`` to within what even the ``accurate`` class
allows, and the prediction differs from the specified layer by more than that in at least two
groups, the difference is a ``mismatch``, whatever class its size alone would fit. A difference
that no default class admits anyway needs one such group, for a convention with nothing fitted
to the groups themselves: the chance that a precision loss lands on a named convention's
prediction, to within the ``accurate`` limits, in its one informative group is small, while a
fitted value (another eps) can always match one group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES

F64 = npt.NDArray[np.float64]
KEEP = 100_000  # groups remembered per check: plenty to see a pattern
SIGNIFICANT = 3.0  # a prediction counts where it is this many accurate limits away from 1, 0
MIN_GROUPS = 2
TIGHT = 0.25  # a fitted convention's fit, in limits, that no precision loss was seen to reach
# ...in TIGHT_GROUPS groups or more: two rows of the same variance whose sequential sums both
# left rstd 3.9e-6 high met another eps that tightly (the textbook sequential float32 LayerNorm
# of 2 rows of 65,536 N(0, 1) values, in 55 of 600 seeds). Its price: 2 groups on which every
# kernel is exact (+-1 values) no longer tell eps = 5e-5 from 1e-5 (README)
TIGHT_GROUPS = 3
# An implied scale this close to 0 is none: ``y - b`` is 0 but for the roundings fitted (an
# output never written), whatever the limits (which reach 1 where nothing is known); in float16
# and bfloat16 the exact output's own rounding, fitted too, leaves more (``no_scale``)
NO_SCALE = 1e-6


FLAT_ZERO = 1  # a group's y - b is 0 to within the bias's rounding (``judge``'s Scores.flat)
FLAT_CONSTANT = 2  # ...one value, not 0, to within the output's rounding


def independent(scale: F64 | float, flat: F64 | int) -> npt.NDArray[np.bool_]:
    """Where an output does not depend on its input: its implied ``scale`` is below
    ``NO_SCALE``, or it is ``flat`` (``FLAT_ZERO`` or ``FLAT_CONSTANT``)."""
    return np.asarray((np.abs(scale) <= NO_SCALE) | (np.asarray(flat) > 0))


def no_scale(dtype: str) -> float:
    """The largest implied scale that may be none for outputs computed in ``dtype``:
    ``NO_SCALE``, or the dtype's unit roundoff where that is larger (an all-zero float16
    output fits a scale of 5.1e-5). Below it, a group is flat only where its ``y - b`` is 0
    to within the bias's rounding, or one value to within the output's (``judge``'s
    ``Scores.flat``): a bfloat16 output of eps = 1e5 has a scale of 3e-3 and depends on the
    input."""
    return max(NO_SCALE, float(DTYPES[dtype].unit_roundoff))  # type: ignore[index]


@dataclass
class Distortions:
    """Per fitted group (up to ``KEEP`` of them): the implied ``ds = s - 1`` and ``shift``, the
    accurate class's limits on each, the group's weight and bias where they are uniform
    (``NaN`` otherwise), and how many values its input takes (``OutputModel.levels``)."""

    index: list[F64] = field(default_factory=list)
    ds: list[F64] = field(default_factory=list)
    shift: list[F64] = field(default_factory=list)
    ds_limit: list[F64] = field(default_factory=list)
    shift_limit: list[F64] = field(default_factory=list)
    weight: list[F64] = field(default_factory=list)
    bias: list[F64] = field(default_factory=list)
    levels: list[F64] = field(default_factory=list)
    flat_rows: list[F64] = field(default_factory=list)  # Scores.flat's codes (``add``)
    kept: int = 0

    def add(
        self,
        first: int,
        fitted: npt.NDArray[np.bool_],
        ds: F64,
        shift: F64,
        ds_limit: F64,
        shift_limit: F64,
        weight: F64,
        bias: F64,
        levels: F64 | None = None,
        flat: npt.NDArray[np.int8] | None = None,
    ) -> None:
        """``levels`` ``None``: as many as the group has elements (independent roundings);
        ``flat``: per group, ``FLAT_ZERO``, ``FLAT_CONSTANT`` or 0 (none: 0)."""
        take = np.flatnonzero(fitted)[: max(0, KEEP - self.kept)]
        if not take.size:
            return
        self.kept += take.size
        self.index.append((first + take).astype(np.float64))
        for store, values in (
            (self.ds, ds),
            (self.shift, shift),
            (self.ds_limit, ds_limit),
            (self.shift_limit, shift_limit),
            (self.weight, weight),
            (self.bias, bias),
            (self.levels, np.full(ds.shape, np.nan) if levels is None else levels),
            (self.flat_rows, np.zeros(ds.shape) if flat is None else flat),
        ):
            store.append(np.asarray(values, dtype=np.float64)[take])

    def all_flat(self) -> bool:
        """Whether every remembered group is flat (``Scores.flat``) or its implied scale
        below ``NO_SCALE``: no group's output depends on its input."""
        return self.kept > 0 and bool(np.all(self._flat_codes() > 0))

    def mixed_flat(self) -> bool:
        """Whether the remembered groups that do not depend on their input are of both kinds:
        some output their bias (``FLAT_ZERO``), some one other value (``FLAT_CONSTANT``, or an
        implied scale below ``NO_SCALE``)."""
        codes = self._flat_codes()
        return bool(np.any(codes == FLAT_ZERO) and np.any(codes == FLAT_CONSTANT))

    def _flat_codes(self) -> F64:
        """Per remembered group, ``Scores.flat``'s code, ``FLAT_CONSTANT`` where it is 0 but
        the implied scale is below ``NO_SCALE`` (``independent``)."""
        if not self.kept:
            return np.zeros(0)
        codes = np.concatenate(self.flat_rows)
        scale = 1.0 + np.concatenate(self.ds)
        return np.where((codes == 0) & independent(scale, codes), FLAT_CONSTANT, codes)

    def explain(
        self,
        var: F64,
        eps: float,
        n: int,
        centered: bool,
        weight_offset: float = 0.0,
        *,
        beyond_default: bool = False,
        typical: float = 0.0,
    ) -> str | None:
        """The convention every remembered group's distortion matches, or ``None``.

        ``var`` is the reference's variance per group (as the layer estimates it; the mean
        square for RMSNorm), ``eps``, ``n`` and ``weight_offset`` the layer's (the weights
        remembered include the offset); shifts are judged only for centred ops.
        ``beyond_default``: the difference is already beyond the default classes (see the
        module docstring). ``typical``: the relative error of a variance that rounding in a
        default class typically leaves, ``sqrt(n)`` times the accumulation dtype's unit
        roundoff where each addition rounds independently; ``sqrt(n / D)`` times that in a
        group whose input takes ``D`` values (``_correlated``). A fitted convention within a
        default class must fit every group, ``TIGHT_GROUPS`` or more, to ``TIGHT`` of its
        limits (``_tight``; where the groups take fewer values than they have, while moving
        the variance by more than ``typical``), or predict more than ``SIGNIFICANT`` times
        ``typical`` in ``MIN_GROUPS`` groups (``_beyond_rounding``). Outputs that do not
        depend on the input (``flat``) match no convention."""
        if not self.kept:
            return None
        groups = np.concatenate(self.index).astype(np.int64)
        ds, shift = np.concatenate(self.ds), np.concatenate(self.shift)
        ds_limit, shift_limit = np.concatenate(self.ds_limit), np.concatenate(self.shift_limit)
        w, b = np.concatenate(self.weight), np.concatenate(self.bias)
        levels = np.concatenate(self.levels)
        typical_of = _correlated(typical, n, levels)
        # groups of few values round alike, row after row: there even a tight fit must move
        # the variance beyond those roundings
        alike = np.where(levels < n, typical_of, 0.0)
        if self.all_flat():
            return None  # no group's output depends on its input: no convention does that
        v = np.asarray(var, dtype=np.float64)[groups]
        # identical rows (one row broadcast) are one group of evidence, counted once
        distinct = np.unique(np.stack([v, ds, shift]), axis=1).shape[1]
        hypotheses = _hypotheses(v, eps, n, (ds, ds_limit), w, b, centered, weight_offset)
        found: list[tuple[float, int, str]] = []
        also: list[tuple[float, int, str]] = []  # those that fit but decide nothing alone
        for order, (words, predict_ds, predict_shift, fitted, alternative) in enumerate(hypotheses):
            with np.errstate(all="ignore"):
                want_ds = predict_ds if predict_ds is not None else np.zeros_like(ds)
                want_t = predict_shift if predict_shift is not None else np.zeros_like(shift)
                fits = np.abs(ds - want_ds) <= ds_limit
                if centered:
                    fits &= np.abs(shift - want_t) <= shift_limit
                apart = (np.abs(want_ds) > SIGNIFICANT * ds_limit) | (
                    np.abs(want_t) > SIGNIFICANT * shift_limit
                )
            if not bool(np.all(fits)):
                continue
            if fitted and not beyond_default:
                # a systematic precision loss can meet a fitted value at the limits' scale: a
                # verdict needs the groups far beyond rounding, or on the value far within them
                tight = distinct >= TIGHT_GROUPS and _tight(
                    ds - want_ds, shift - want_t, ds_limit, shift_limit, centered
                )
                tight = tight and _beyond_rounding(want_ds, alike, times=1.0)
                if not (tight or _beyond_rounding(want_ds, typical_of)):
                    if alternative:
                        off = _off(ds - want_ds, shift - want_t, ds_limit, shift_limit, centered)
                        also.append((off, order, words))
                    continue
            off = _off(ds - want_ds, shift - want_t, ds_limit, shift_limit, centered)
            away = _off(want_ds, want_t, ds_limit, shift_limit, centered)
            if np.unique(np.stack([v, ds, shift])[:, apart], axis=1).shape[1] >= MIN_GROUPS or (
                beyond_default and not fitted and _evident(away, off)
            ):
                found.append((off, order, words))
            elif alternative:
                also.append((off, order, words))
        if not found:
            return None
        # where the limits are wide enough for several, the one the distortions lie closest
        # to (on a tie, named conventions before fitted ones); and beside it one that fits them
        # as closely, though it alone would decide nothing, where the groups cannot tell the
        # two apart (an unbiased variance and eps = 1e-3, on groups of one variance)
        found.sort()
        words = found[0][2]
        runner_up = sorted(
            a for a in found[1:] + also if a[0] <= found[0][0] and hypotheses[a[1]].alternative
        )
        if runner_up:
            words += ", or " + runner_up[0][2].removeprefix("matches ")
        return f"{words} (in all {ds.size} groups checked)"


def _tight(ds_off: F64, shift_off: F64, ds_limit: F64, shift_limit: F64, centered: bool) -> bool:
    """Whether every group lies within ``TIGHT`` of its limits from the prediction: a fitted
    eps that a layer really used holds in every group to the candidate's own rounding (torch's
    float32 LayerNorm with eps = 1e-6, groups of 16,384: within 0.16 of the accurate limits),
    where a sequential float32 Welford that another eps mimics scatters by half a limit
    (c0128: 0.52)."""
    with np.errstate(all="ignore"):
        off = np.abs(ds_off) / ds_limit
        if centered:
            off = np.fmax(off, np.abs(shift_off) / shift_limit)
        return bool(np.nanmax(off) <= TIGHT)


def _correlated(typical: float, n: int, levels: F64) -> F64:
    """Per group, ``typical`` (a random walk's ``sqrt(n) v``) times ``sqrt(n / D)`` for a
    group whose input takes ``D`` values: adding the same value to a running sum rounds the
    same way for as long as the sum keeps its exponent, so ``D`` values give ``D`` biases of
    ``n / D`` additions each, ``n v / sqrt(D)`` in all, the worst case ``n v`` for a constant
    group. A sequential float32 sum of squares of 4,096 values a few last places apart (7
    values) is off by 1.16e-5, three times ``sqrt(n) v``, the same in every row, which
    another eps, fitted, matched."""
    d = np.clip(np.nan_to_num(levels, nan=float(n)), 1.0, max(n, 1))
    return np.asarray(typical * np.sqrt(max(n, 1) / d), dtype=np.float64)


def _beyond_rounding(want_ds: F64, typical: F64, times: float = SIGNIFICANT) -> bool:
    """Whether a fitted prediction moves the variance, relative to ``var + eps``, by more than
    ``times`` ``typical`` in ``MIN_GROUPS`` groups. A sequential float32 Welford
    leaves the variance off by about the same absolute amount in every group of a check
    (its sum of squares rounds at the same place), which another eps, fitted, matches to
    within the accurate limits: measured 7.6e-6 on a variance of 1 at n = 78,036, a third of
    ``sqrt(n) u``; an eps of 1e-6 for 1e-5 on such rows is 9e-6, five times that at n = 768."""
    with np.errstate(all="ignore"):
        moved = np.abs((1.0 + want_ds) ** -2 - 1.0)
    return int(np.count_nonzero(moved > times * typical)) >= MIN_GROUPS


def _evident(away: float, off: float) -> bool:
    """Whether the groups together tell a prediction from the specified layer: it is
    ``away`` from the layer, ``off`` from the distortions (sums of squares over the groups, in
    limits, ``_off``); it must differ from the layer by ``SIGNIFICANT`` limits in root sum of
    squares and lie ``SIGNIFICANT`` times closer to the distortions than that (one group
    suffices when it alone is that far; many groups each within their limits can add up)."""
    return away >= SIGNIFICANT**2 and off * SIGNIFICANT**2 <= away


def _off(ds: F64, shift: F64, ds_limit: F64, shift_limit: F64, centered: bool) -> float:
    """The sum over groups of ``(ds / ds_limit)**2`` (and the shift's, for centred ops)."""
    with np.errstate(all="ignore"):
        total = np.nansum((ds / ds_limit) ** 2)
        if centered:
            total += np.nansum((shift / shift_limit) ** 2)
    return float(total)


class Hypothesis(NamedTuple):
    """A convention's words, its predicted ``ds`` and ``shift`` per group (``None``: zero),
    whether a value in it was fitted to the groups themselves, and whether it is worth naming
    beside another that fits (a fitted eps is, where it is a round value to within what the
    fit tells: a kernel's eps of 1e-3, not a value that mimics another convention)."""

    words: str
    ds: F64 | None
    shift: F64 | None
    fitted: bool
    alternative: bool = True


def _hypotheses(
    var: F64,
    eps: float,
    n: int,
    fitted: tuple[F64, F64],
    w: F64,
    b: F64,
    centered: bool,
    offset: float,
) -> list[Hypothesis]:
    """Each convention's predicted ``ds`` and ``shift`` per group (``None``: zero), given the
    groups' ``fitted`` ``ds`` and its limit; ``w`` is the effective weight (with the layer's
    ``offset``: ``1 + w`` for Gemma-style layers)."""
    ds, ds_limit = fitted
    out: list[Hypothesis] = []
    with np.errstate(all="ignore"):
        exact = var + eps
        if n > 1:
            what = "an unbiased variance" if centered else "a mean square"
            words = f"matches {what} (÷(n - 1), n = {n})"
            out.append(Hypothesis(words, _scale(exact, var * n / (n - 1) + eps), None, False))
        if eps > 0:
            on_std: F64 = np.asarray(np.sqrt(exact) / (np.sqrt(var) + eps) - 1.0, dtype=np.float64)
            out.append(
                Hypothesis(
                    "matches eps added to the std instead of the variance", on_std, None, False
                )
            )
        if np.isfinite(w).any():
            if offset == 0:
                out.append(
                    Hypothesis(
                        "matches 1 + w used where the weight is w", np.asarray(1.0 / w), None, False
                    )
                )
            else:  # the stored weight alone, without its offset: w - offset of w
                out.append(
                    Hypothesis(
                        f"matches w used where the weight is {offset:g} + w",
                        np.asarray(-offset / w),
                        None,
                        False,
                    )
                )
            swapped = _another_weight(w, ds, ds_limit)
            if swapped is not None:
                out.append(
                    Hypothesis(
                        "matches each group scaled by another channel's weight", swapped, None, True
                    )
                )
        if centered and np.isfinite(b).any():
            left_out = np.where(np.isfinite(b), -b / w, np.nan)
            out.append(Hypothesis("matches the bias left out", None, left_out, False))
            out.append(
                Hypothesis(
                    "matches the bias added before the weight", None, b * (w - 1.0) / w, False
                )
            )
        # another eps, fitted: the one the groups imply, their median; last, since a fitted
        # value can mimic any scale that is the same in every group (ties go to the first)
        implied = exact / (1.0 + ds) ** 2 - var
        finite = implied[np.isfinite(implied)]
        if finite.size:
            other = float(np.median(finite))
            if other >= 0 and not np.isclose(other, eps, rtol=1e-3, atol=0):
                # what the groups' limits leave of it: d(var + eps) = 2 (var + eps) d(ds)
                spread = 2.0 * float(np.median((var + other) * ds_limit))
                out.append(
                    Hypothesis(
                        another_eps(other, eps),
                        _scale(exact, var + other),
                        None,
                        True,
                        _round(other, spread),
                    )
                )
    return out


def _round(value: float, spread: float) -> bool:
    """Whether ``value`` is 1, 2 or 5 times a power of ten to within ``spread``."""
    if not value > 0 or not math.isfinite(value):
        return False
    power = 10.0 ** math.floor(math.log10(value))
    return any(abs(value - m * power) <= spread for m in (1.0, 2.0, 5.0, 10.0))


def another_eps(other: float, eps: float) -> str:
    """``matches eps = <other> instead of <eps>``, with the digits that tell them apart."""
    digits = next((d for d in (3, 6, 9) if f"{other:.{d}g}" != f"{eps:.{d}g}"), 17)
    return f"matches eps = {other:.{digits}g} instead of {eps:g}"


def _another_weight(w: F64, ds: F64, ds_limit: F64) -> F64 | None:
    """The ``ds`` each group would have with the one uniform weight, its own or another, that
    its implied scale points at to within its limit ``ds_limit`` (``None`` when there are fewer
    than two distinct weights; NaN where no weight or several lie that close): a weight
    broadcast to the wrong channel. A reversed weight leaves an odd middle channel its own,
    and a low-precision scale among densely spaced weights always finds one nearby, but not
    only one."""
    values = np.unique(w[np.isfinite(w)])
    if values.size < 2:
        return None
    with np.errstate(all="ignore"):
        implied = w * (1.0 + ds)
        window = np.abs(w) * ds_limit
        low = np.searchsorted(values, implied - window, side="left")
        high = np.searchsorted(values, implied + window, side="right")
        only = values[np.clip(low, 0, values.size - 1)]
        return np.asarray(np.where(high - low == 1, only / w - 1.0, np.nan), dtype=np.float64)


def _scale(exact: F64, candidate: F64) -> F64:
    """``ds`` of a candidate normalizing by ``sqrt(candidate)`` instead of ``sqrt(exact)``."""
    return np.asarray(np.sqrt(exact / candidate) - 1.0, dtype=np.float64)
