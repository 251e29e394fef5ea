"""Accuracy verdicts: which class a check's difference fits, and why, in words.

A check's class is the worst over its blocks; a block's is the first class (accurate,
sequential, low_precision) whose bound every element meets, and, for a mean/variance op's
output, whose statistics and residual bounds every group meets (``output_model``); else
``mismatch``. ``explain`` turns the worst group's implied scale and shift into the convention
that would produce them (an unbiased variance, another eps, eps on the std, a mean offset).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.copies import Copy
from lncheck.dtypes import DTYPES
from lncheck.semantics import FLAT_ZERO, Distortions, another_eps, independent
from lncheck.tolerances import CLASSES, accumulation_dtype, beyond_default, random_walk

if TYPE_CHECKING:
    from lncheck.output_model import OutputBlock

F64 = npt.NDArray[np.float64]


def block_class(err: F64, allowed: Callable[[int], F64], accepted: int, accepted_max: float) -> int:
    """The index in ``CLASSES`` of the first class whose ``allowed(index)`` (per element) every
    element's ``err`` meets; ``accepted_max`` is the block's worst share of the accepted
    class's tolerance, already known. An error of 0 meets every class, also where a bound is
    NaN (a matching NaN in a group whose statistics are NaN)."""

    def meets(index: int) -> bool:
        return bool(np.all((err <= allowed(index)) | (err == 0)))

    with np.errstate(all="ignore"):
        if accepted_max <= 1:
            index = accepted
            while index > 0 and meets(index - 1):
                index -= 1
            return index
        for index in range(accepted + 1, len(CLASSES) - 1):
            if meets(index):
                return index
    return len(CLASSES) - 1


@dataclass
class Distortion:
    """The worst group so far: its implied scale and shift, and what it is judged against."""

    score: float = -1.0
    scale: float = math.nan
    shift: float = math.nan
    group: int = -1
    structural: str | None = None  # "residual" or "cap" when the structure failed there
    # what an accurate kernel's scale and shift may be off by there: smaller is noise
    scale_noise: float = 0.0
    shift_noise: float = 0.0
    # the low_precision class's bound on a one-pass variance's relative error there
    one_pass: float = 0.0
    flat: int = 0  # FLAT_ZERO, FLAT_CONSTANT or 0 (``judge``'s Scores.flat)


class ClassTally:
    """A check's class across blocks, its worst group's distortion, and every group's (for
    ``semantics``)."""

    def __init__(self) -> None:
        self.index = 0
        self.worst = Distortion()
        self.distortions = Distortions()
        # the weighted fit's largest share of its limits, and that group's scale and shift
        self.systematic = (0.0, 1.0, 0.0)
        self.copy: Copy | None = None  # a failing group that repeats its neighbour's output
        # output elements lost to an rstd beyond the dtype's range, and its largest exact value
        self.rstd_losses = (0, 0.0)

    def add(self, index: int) -> None:
        self.index = max(self.index, index)

    def distortion(self, found: Distortion) -> None:
        # a structural failure outranks any scale or shift
        rank = (found.structural is not None, found.score)
        if rank > (self.worst.structural is not None, self.worst.score):
            self.worst = found

    def lose_to_rstd(self, count: int, rstd: float) -> None:
        """``count`` more output elements lost to an rstd beyond the dtype's range (exact
        values up to ``rstd``): ``low_precision``'s (``lost_to_rstd``)."""
        before, largest = self.rstd_losses
        self.rstd_losses = before + count, max(largest, rstd)

    def weighed(self, found: tuple[float, float, float]) -> None:
        self.systematic = max(self.systematic, found)

    @property
    def klass(self) -> str:
        """The check's class: its elements' and groups' (``index``), and ``low_precision`` at
        least where outputs were lost to an rstd beyond the dtype's range."""
        lost = CLASSES.index("low_precision") if self.rstd_losses[0] else 0
        return CLASSES[max(self.index, lost)]


def faint_words(convention: str) -> str:
    """The words for groups that all match ``convention`` (a value fitted to them: another
    eps, another channel's weight), but only to within the limits that a precision loss of a
    default class meets too (``semantics``): a hint, not a verdict."""
    return (
        f"{convention}, but only to within the limits that a precision loss of this size "
        f"meets too: check the layer's settings"
    )


def systematic_words(scale: float, shift: float, dtype: str, centered: bool) -> str:
    """The warning of a passing check whose weighted fit finds the rstd ``scale`` times the
    exact one and the mean off by ``-shift`` std, beyond rounding: what does that below every
    element's bound."""
    moved = f"rstd {100 * (scale - 1):+.2g}%" + (f", mean {-shift:+.2g} std" if centered else "")
    return (
        f"every output of a group moved alike ({moved}), below each element's bound: "
        f"statistics or a sum of squares kept in {dtype}, or an intermediate {dtype} rounding "
        "where rstd is near a power of two, does this"
    )


@dataclass(frozen=True)
class GroupFacts:
    """What an explanation needs to know about the worst group."""

    var: float  # the reference's variance (as the spec estimates it)
    eps: float
    n: int
    centered: bool
    rstd: float
    dtype: str
    where: str = ""  # the group as the failing-groups table names it: "(0, 2)"
    running: bool = False  # normalized with given running statistics (eval): none computed
    # whether every group's output is as independent of the input as the worst group's
    # (``Distortions.all_flat``)
    every_flat: bool = True
    # ...and of both kinds: some groups output their bias, some one other value
    mixed_flat: bool = False


@dataclass(frozen=True)
class Explanation:
    """What a check's difference looks like, in words (``None``: nothing to say), and whether
    they name a convention the worst group matches (``matches an unbiased variance``): a
    different function, its cause found."""

    words: str | None
    convention: bool = False


def explain(
    klass: str,
    worst: Distortion,
    facts: GroupFacts | None,
    overflow: int,
    quantity: str,
    dtype: str | None = None,
    *,
    name_conventions: bool = True,
) -> Explanation:
    """The ``Explanation`` of a check of class ``klass`` whose worst group is ``worst``;
    ``overflow`` exact values were beyond ``dtype``'s range (the facts' dtype without one).
    ``name_conventions=False``: the worst group's scale is said as it is, never as a
    convention it matches (one the other groups were found not to share)."""
    notes = []
    if overflow:
        notes.append(overflow_words(overflow, dtype or (facts.dtype if facts else "the dtype")))
    if klass in ("accurate", "sequential") or facts is None:
        return Explanation("; ".join(notes) or None)
    convention = False
    if worst.structural == "cap":
        n = facts.n - 1 if facts.centered else facts.n
        root = f"sqrt({'n - 1' if facts.centered else 'n'})"
        notes.append(
            f"an output no correct layer can produce (|y - b| > |w| * {root} plus rounding, "
            f"{root} = {math.sqrt(n):.3g}): a different function"
        )
    elif worst.structural == "residual":
        notes.append(
            "not an affine distortion of the normalized values: a different function (a row "
            "from elsewhere, a wrong weight or bias broadcast, wrong axes or groups)"
        )
    elif math.isfinite(worst.scale):
        translations, convention = _translations(worst, facts, klass, name_conventions)
        notes += translations
        if klass == "mismatch" and worst.one_pass >= 1:
            notes.append(
                ("or " if notes else "")
                + f"a one-pass E[x^2] - E[x]^2 variance in {accumulation_dtype(facts.dtype)}, "
                f"which keeps no digit here (its error may reach {worst.one_pass:.2g}x the "
                "variance)"
            )
    return Explanation("; ".join(notes) or None, convention)


def _translations(
    worst: Distortion,
    f: GroupFacts,
    klass: str,
    name_conventions: bool = True,
) -> tuple[list[str], bool]:
    """What the worst group's implied scale ``s`` and shift ``t`` translate to (the
    candidate's rstd is ``s`` times the exact one, its mean off by ``-t / rstd``), and whether
    the first is a convention that reproduces them (another variance, eps or its place)."""
    out, convention = [], False
    s, t = worst.scale, worst.shift
    shifted = f.centered and math.isfinite(t) and abs(t) > worst.shift_noise and f.rstd > 0
    off = math.isfinite(s) and abs(s - 1) > max(worst.scale_noise, 1e-12)
    if off and independent(s, worst.flat):
        # no eps or variance explains an output that does not depend on the input
        whose = "its output" if f.every_flat else f"group {f.where}'s output"
        if f.every_flat and f.mixed_flat:
            why = "y - b is 0 in some groups and one other value in the others"
        elif worst.flat == FLAT_ZERO:
            why = (
                "y - b is 0 to within its rounding: an output never written, or an rstd of about 0"
            )
        else:
            why = "an implied scale of about 0: the same output whatever the input"
        out.append(f"{whose} does not depend on the input ({why})")
    elif s > 0 and off and (shifted or not name_conventions):
        # a scale convention does not move the mean: with both, name neither
        out.append(f"rstd {100 * (s - 1):+.3g}% off")
    elif s > 0 and off:
        implied = (f.var + f.eps) / (s * s)  # the candidate's var + eps
        if f.n > 1 and f.var > 0:  # var: the mean square for RMSNorm
            ratio = (implied - f.eps) / f.var
            if abs(ratio - f.n / (f.n - 1)) <= 0.1 / (f.n - 1):
                what = "an unbiased variance" if f.centered else "a mean square"
                out.append(f"matches {what} (÷(n - 1), n = {f.n})")
        if not out and f.var > 0:
            on_std = math.sqrt(f.var + f.eps) / (math.sqrt(f.var) + f.eps)
            if f.eps > 0 and abs(s - on_std) <= 0.05 * abs(s - 1):
                out.append("matches eps added to the std instead of the variance")
        if not out:
            eps = implied - f.var
            if eps > 0 and f.var < 1e3 * eps:
                out.append(another_eps(eps, f.eps))
        convention = bool(out)
        if not out:
            out.append(f"rstd {100 * (s - 1):+.3g}% off")
    if shifted:
        out.append(f"mean off by {-t / f.rstd:.3g} ({-t:+.3g} std)")
    if klass == "low_precision":
        rounded = (
            "an error the size that statistics, sums or intermediates rounded to the compute dtype"
        )
        if f.running:  # no statistics computed: what is left to round is the fold
            out.append(
                "an error the size that a scale and shift folded from the running statistics "
                "and applied in the compute dtype cause"
            )
        elif f.centered:
            out.append(f"{rounded}, or a one-pass E[x^2] - E[x]^2 variance, cause")
        else:  # RMSNorm: no variance about a mean
            out.append(
                f"{rounded} cause (such as x * rstd rounded to it before the weight, in HF's "
                "LlamaRMSNorm)"
            )
    return out, convention


def overflow_words(count: int, dtype: str) -> str:
    """What ``count`` exact values beyond ``dtype``'s range mean for a check."""
    plural = "s" if count > 1 else ""
    return (
        f"{count} exact value{plural} beyond {dtype}'s range: the matching infinity is right there"
    )


def beyond_range(
    exact: F64, actual: npt.NDArray[np.generic], dtype: str
) -> tuple[int, str, int] | None:
    """How many of a statistic's exact values (``exact``, flat) are beyond the range the
    candidate ``actual`` kept them in, that dtype's name, and how many of them ``actual``
    holds as the matching infinity (``None``: none beyond, or another shape). A float16
    statistic is kept as such; the others arrive in float64, and in a check computing in
    ``dtype`` below float64 an infinity where the exact value is beyond float32's range
    (torch's rstd of subnormal values with eps = 0) was kept in float32, or in bfloat16 (which
    has its range) in a bfloat16 check."""
    if actual.size != exact.size:
        return None  # its comparison says so
    size = np.abs(exact)
    kept = np.asarray(actual, dtype=np.float64).reshape(-1)
    if actual.dtype == np.float16:
        stored, over = "float16", size > DTYPES["float16"].max
    elif dtype != "float64":  # bfloat16 has float32's range
        stored = "bfloat16" if dtype == "bfloat16" else "float32"
        over = (size > DTYPES["float32"].max) & np.isinf(kept)
    else:
        return None
    count = int(np.count_nonzero(over))
    matching = int(np.count_nonzero(over & (kept == np.copysign(np.inf, exact))))
    return (count, stored, matching) if count else None


def lost_to_rstd(
    block: OutputBlock, actual: npt.NDArray[np.generic], expected: F64, dtype: str
) -> tuple[npt.NDArray[np.bool_], float] | None:
    """The elements of an output block (``(groups, group_size)``) that are NaN or infinite
    where the reference is finite, in groups whose exact rstd is beyond ``dtype``'s range, and
    the largest exact rstd of their groups (``None``: no such element). A kernel that keeps
    rstd in ``dtype`` (``low_precision``: torch's float16 CPU BatchNorm and InstanceNorm, on a
    constant channel with eps = 1e-12) gets an infinite rstd there, and ``(x - mean) * inf``
    is NaN (``0 * inf``) or infinite with the sign of ``y - b``: they are no different
    function's values (an infinity of the other sign is)."""
    groups = block.y.shape[0]
    rstd = block.model.rstd[block.first : block.first + groups]
    with np.errstate(invalid="ignore"):
        over = rstd > DTYPES[dtype].max  # type: ignore[index]
        if not over.any():
            return None
        lost = ~np.isfinite(actual) & np.isfinite(expected) & over[:, None]
        centred = expected if block.bias is None else expected - block.bias
        lost &= ~(np.isinf(actual) & (np.sign(actual) * np.sign(centred) < 0))
    rows = lost.any(axis=1)
    return (np.asarray(lost), float(np.max(rstd[rows]))) if rows.any() else None


def rstd_overflow_words(count: int, rstd: float, dtype: str) -> str:
    """Why ``count`` output elements are NaN or infinite (``lost_to_rstd``), ``rstd`` the
    largest exact rstd of their groups."""
    plural = "s are" if count > 1 else " is"
    limit = DTYPES[dtype].max  # type: ignore[index]
    # in float16 and bfloat16 a kernel may keep rstd in float32; in float32 none holds it (eps
    # 0 on subnormal spreads)
    why = (
        "statistics kept in the compute dtype"
        if accumulation_dtype(dtype) != dtype
        else f"no {dtype} rstd holds it: eps = 0 or tiny beside values this close"
    )
    return (
        f"{count} output value{plural} NaN or infinite where the exact output is finite, in "
        f"groups whose exact rstd ({rstd:.3g}) is beyond {dtype}'s range ({limit:.5g}): a "
        f"kernel that keeps rstd in {dtype} gets an infinite rstd there, and (x - mean) * inf "
        f"is NaN or infinite ({why})"
    )


def overflow_cause(count: int, quantity: str, dtype: str = "float16") -> str:
    """Why a statistic stored in ``dtype`` with ``count`` exact values beyond its range
    fails (whatever the classes accepted: what reads it is NaN or wrong there)."""
    plural = "s" if count > 1 else ""
    # a running statistic is no input of the training backward: it is eval mode's
    consequences = {
        "running_var": "eval mode then outputs the bias there",
        "running_mean": "eval mode then outputs infinities there",
    }
    consequence = consequences.get(quantity, "a backward through it NaN (run --grad)")
    return (
        f"{count} exact {quantity} value{plural} beyond {dtype}'s range: a {dtype} {quantity} "
        f"must be infinite there, and {consequence}"
    )


def conventions(
    tally: ClassTally, case: Case, var: F64, klass: str
) -> tuple[str | None, str | None]:
    """The convention every group of a check's output matches (``semantics``): as a verdict
    (a ``mismatch``), or else, for a value fitted to the groups that they meet only to within
    the limits a precision loss of the default classes meets too, as a hint in words
    (``faint_words``). ``var`` is the reference's variance per group, ``klass`` the check's
    class by size."""
    spec = case.spec
    args = (var, spec.eps, spec.group_size, spec.center, spec.weight_offset)
    beyond = beyond_default(klass)
    typical = random_walk(case.dtype, spec.group_size)
    found = tally.distortions.explain(*args, beyond_default=beyond, typical=typical)
    if found is not None or beyond:
        return found, None
    loose = tally.distortions.explain(*args)
    return None, None if loose is None else faint_words(loose)
