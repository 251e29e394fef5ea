"""One line on what a failing candidate of the user's computes instead: ``lncheck explain``'s
best configuration, searched for a fixed number of steps, added to a ``mismatch`` that no
convention of ``semantics`` already names.

An output classed ``low_precision`` gets the same search: when ``explain`` reproduces it
exactly (every element within the rounding of its precision) with statistics over *other*
groups of elements, or with centring where the layer has none or the reverse, the output is
that other function computed accurately, not the specified one computed sloppily: a
``mismatch`` (statistics over the wrong axes or groups, an RMSNorm that subtracts the mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.comparison import Comparison
from lncheck.ops.spec import NormSpec
from lncheck.options import spelling
from lncheck.result import Quantity, as_array

if TYPE_CHECKING:
    from lncheck.explain.report import Candidate

# What a failing compare may spend on the hint. It can turn a ``low_precision`` check into a
# ``mismatch``, so it is counted in steps of the search, the same on any machine under any
# load (a search stopped after one second missed, under load, what it found alone: the
# verdict matrix's c0043); a full search of the matrix's outputs took up to 153 steps. The
# seconds are a safety net that only a machine 20 times slower than the reference one meets.
BUDGET_STEPS = 2000
BUDGET_S = 30.0
SAMPLE = 1 << 16  # elements, evenly spaced, whose groups are compared
DISTINCT = 8  # values an output needs before its values can tell the dtype it was rounded to
# How far a result of a layer run in the narrower dtype may be off, in that dtype's last places:
# its own rounding (half of one) and its statistics' (kept in it: a few more)
NARROW_PLACES = 8


def with_hints(
    case: Case, checks: list[Comparison], outputs: Mapping[str, Quantity]
) -> list[Comparison]:
    """``checks`` with the explanation of each failing ``output`` check of a user's candidate
    (``outputs``: given results, programs, callables) extended by ``lncheck explain``'s best
    match, where it finds one and the check has not named its cause already (a convention, a
    copied row: ``Comparison.cause_named``); a ``low_precision`` one that another grouping or
    centring reproduces exactly, with the layer's own weight and bias, becomes a
    ``mismatch``."""
    done = []
    for c in checks:
        output = outputs.get(c.candidate)
        if output is None or c.quantity != "output":
            if not c.passed and c.explanation is None:  # a statistic from a narrower file
                c = replace(c, explanation=_narrower(case, c, None))
            done.append(c)
            continue
        if c.accuracy_class == "mismatch" and not c.cause_named:
            narrow = _narrower(case, c, output)
            if narrow is not None:  # not "a different function": the file's own rounding
                c = replace(c, explanation=narrow)
            best = _quick(case, output)
            if best is not None and _telling(case.spec, best):
                c = c.explained(f"lncheck explain finds: {_found(best)}")
        elif c.accuracy_class == "low_precision":
            narrow = _narrower(case, c, output)
            if narrow is not None:  # the file's own rounding, more precisely than "precision"
                c = replace(c, explanation=narrow)
            best = _quick(case, output)
            if best is not None and _other_function(case.spec, best):
                hint = f"lncheck explain finds: {_found(best)}"
                words = "reproduced exactly by statistics over other groups or axes"
                text = f"{words}; {hint}"
                c = replace(c, passed=False, accuracy_class="mismatch", explanation=text)
        done.append(c)
    return done


def _narrower(case: Case, c: Comparison, output: Quantity | None) -> str | None:
    """Why check ``c`` of a user's result stored in a float dtype narrower than the check's
    fails whatever it computes: its own last place is coarser than any correct result's in
    the compute dtype. ``None`` where it is not narrower, or errs by more than
    ``NARROW_PLACES`` of that dtype's last places (5% off is no rounding). A file says its
    dtype; a function's or a program's ``output`` says it by its values (a bfloat16 tensor
    comes back as float32)."""
    from lncheck.dtypes import DTYPES

    stored = case.stored_narrower.get(c.candidate)
    if stored is None and output is not None:
        stored = _rounded_to(case, output)
    if stored is None:
        return None
    bits = DTYPES[stored].mantissa_bits  # type: ignore[index]  # a float dtype's name
    coarser = 2.0 ** (DTYPES[case.dtype].mantissa_bits - bits)
    if not c.max_ulp_err <= NARROW_PLACES * coarser:  # in the compute dtype's last places
        return None
    return (
        f"its values are {stored}, the check computes in {case.dtype}: {stored}'s own rounding "
        f"is no rounding of {case.dtype}'s (if the layer ran in {stored}, check it with "
        f"{_setting(case, 'dtype', stored)})"
    )


def _rounded_to(case: Case, output: Quantity) -> str | None:
    """The float dtype narrower than the check's that holds every value of ``output``
    (``explain.confirm.value_precision``), where its values use that dtype's every bit: a few
    values (zeros, a constant row's bias), or values on a coarser grid (whole numbers, halves:
    an identity or a missing division), fit a narrow dtype without having been rounded to it.
    Values rounded to bfloat16 use its last bit half of the time: ``DISTINCT`` distinct ones
    all leave it clear with a chance of 2**-DISTINCT."""
    from lncheck.dtypes import DTYPES
    from lncheck.explain.confirm import value_precision

    values = as_array(output)
    found = value_precision(values)
    bits = DTYPES[found].mantissa_bits
    if bits >= DTYPES[case.dtype].mantissa_bits:
        return None
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    sample = np.unique(flat[:: max(1, flat.size // (DISTINCT * 64))])
    sample = sample[np.isfinite(sample) & (sample != 0)]
    if sample.size < DISTINCT:
        return None
    mantissa, _ = np.frexp(sample)  # in [0.5, 1): bits + 1 significant bits at most
    last_bit_used = np.ldexp(mantissa, bits) % 1.0 != 0.0
    return found if bool(np.any(last_bit_used)) else None


def _setting(case: Case, name: str, value: str) -> str:
    """Option ``name`` set to ``value`` as the caller would write it: ``--dtype float16``,
    ``dtype = "float16"`` in a suite, ``dtype="float16"`` in Python."""
    if case.settings.surface == "cli":
        return f"{spelling('cli')(name)} {value}"
    word = case.settings.words.get(name, name)
    return f'{word} = "{value}"' if case.settings.surface == "suite" else f'{word}="{value}"'


def _quick(case: Case, output: Quantity) -> Candidate | None:
    from lncheck.explain import quick

    return quick(case, as_array(output), BUDGET_S, BUDGET_STEPS)


def _found(best: Candidate) -> str:
    """``best`` in words, with its notes on the parameters ("the given bias is not added",
    "the fitted weight is the given weight in another order"); the ranges of fitted ones and
    the conventions the scales also fit are left to ``lncheck explain``'s own report."""
    said = [n for n in best.notes if not n.startswith(("fitted ", "the per-group scales"))]
    return "; ".join([best.description, *said])


def _telling(spec: NormSpec, found: Candidate) -> bool:
    """Whether ``found`` says something of a layer ``spec`` describes: one normalized with
    running statistics (eval) maps each channel's input affinely, and ``explain``, which has
    no running statistics, matches such an output with any grouping once it fits a weight and
    bias per channel (the verdict matrix's eval BatchNorm with a reversed weight read "GroupNorm
    ..., with a per-channel weight and bias fitted")."""
    return not (spec.use_running_stats and found.affine == "fitted")


def _other_function(spec: NormSpec, found: Candidate) -> bool:
    """Whether ``found`` reproduces the output exactly (``verdict`` "exact") with the layer's
    own weight and bias or none (a weight and bias fitted per feature have enough freedom to
    match a small tensor exactly), and centres where ``spec`` does not (or the reverse) or puts
    some elements in other groups (``view_shape``/``reduce_axes`` describe the same grouping
    in different words: InstanceNorm is GroupNorm with one channel per group). Judged on an
    even sample of the elements."""
    if found.verdict != "exact" or found.affine not in ("none", "given"):
        return False
    if found.centered != spec.center:
        return True
    if tuple(found.input_shape) != tuple(spec.input_shape):
        return False
    size = math.prod(spec.input_shape)
    flat = np.unique(np.linspace(0, size - 1, min(size, SAMPLE)).astype(np.int64))
    mine = _groups(flat, spec.view_shape, spec.reduce_axes)
    theirs = _groups(flat, found.view_shape, found.reduce_axes)
    # the same partition: each group of one is a group of the other (a bijection of labels)
    pairs = len(np.unique(np.stack([mine, theirs]), axis=1)[0])
    return not (pairs == len(np.unique(mine)) == len(np.unique(theirs)))


def _groups(
    flat: npt.NDArray[np.int64], view_shape: tuple[int, ...], reduce_axes: tuple[int, ...]
) -> npt.NDArray[np.int64]:
    """The group of each element ``flat`` (an index into the C-ordered input, which a view
    reshapes): its position along the axes that are not reduced."""
    at = np.unravel_index(flat, view_shape)
    kept = [i for i in range(len(view_shape)) if i not in reduce_axes]
    if not kept:
        return np.zeros(len(flat), dtype=np.int64)
    dims = tuple(view_shape[i] for i in kept)
    return np.asarray(np.ravel_multi_index(tuple(at[i] for i in kept), dims), dtype=np.int64)
