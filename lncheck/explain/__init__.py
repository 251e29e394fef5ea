"""``lncheck explain``: find which normalization produced an output.

Given an input and an output made by some unknown normalization, ``explain`` searches the
conventions libraries differ in (the axes or groups, centring, the variance estimator and
algorithm, where eps goes and its value, the affine map, the cast order in low precision)
and ranks the configurations that reproduce the output, best first (issue 12). Every
hypothesis is scored with NumPy on (groups, elements) views of the arrays, on a sample of
groups first, then on every group, then on every element (``lncheck.explain.search``).

>>> import numpy as np
>>> from lncheck.explain import explain
>>> x = np.random.default_rng(0).normal(size=(64, 32))
>>> y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
>>> best = explain(x, y.astype(np.float32)).best
>>> best.op, best.eps, best.verdict
('layer_norm', 0.001, 'exact')
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTypeName, real_numbers, round_to
from lncheck.errors import InputError, LncheckError, option
from lncheck.explain import hypotheses
from lncheck.explain.attempts import Problem
from lncheck.explain.confirm import value_precision
from lncheck.explain.fit import Deadline
from lncheck.explain.report import Candidate, ExplainReport
from lncheck.explain.search import run
from lncheck.options import Settings

__all__ = ["Candidate", "ExplainReport", "explain", "quick"]

Array = npt.NDArray[Any]


def explain(
    x: npt.ArrayLike,
    observed: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    pinned: Settings | Mapping[str, Any] | None = None,
    dtype: str | None = None,
    budget_s: float | None = None,
) -> ExplainReport:
    """Rank the normalizations that turn ``x`` into ``observed``, best first.

    Args:
        x: the input, any shape with at least one axis, real and finite.
        observed: the output, the same shape; its values tell the precision it was rounded
            to (float16 or bfloat16 values stored as float32 are recognised). A float16 or
            bfloat16 output of a wider input is also searched on the input (and weight and
            bias) rounded to that dtype, a layer run in it: each stage of the search on the
            values given first, then on the rounded ones.
        weight, bias: parameters the layer may have used (as given, as ``1 + weight``, or
            swapped); their shape selects the structures they fit (the normalized dims for
            LayerNorm/RMSNorm, the channels for GroupNorm/InstanceNorm/BatchNorm).
        pinned: options that fix part of the search, by the option table's names:
            ``op``, ``normalized_shape``/``axes``, ``groups``, ``channel_axis``, ``eps``,
            ``affine``, ``dtype`` (``Settings`` from the command line, or a mapping).
        dtype: the precision the output was rounded to (``float64``, ``float32``,
            ``float16``, ``bfloat16``), instead of the one its values show.
        budget_s: stop searching after about this many seconds (``None``: search it all);
            the report then says it is incomplete.

    Returns:
        An ``ExplainReport``: ``candidates`` best first (``explained`` when one reproduces
        the output within rounding), and ``exit_status`` 0 or 1.

    Raises:
        InputError: arrays that are not real numbers, shapes that differ, a non-finite
            input, a weight or bias that fits no structure, a pinned option that does
            not fit the input, or a budget that is not a positive number of seconds; options
            are named in the caller's spelling.
    """
    settings = hypotheses.pins_from(pinned)
    if budget_s is not None and not (
        isinstance(budget_s, numbers.Real) and not isinstance(budget_s, bool) and budget_s > 0
    ):  # no search is no verdict (NaN included); NumPy's numbers are real numbers too
        raise InputError(f"budget_s= must be a positive number of seconds, got {budget_s!r}")
    try:
        return _explain(x, observed, weight, bias, settings, dtype, budget_s)
    except LncheckError as e:
        raise settings.spell(e) from None


def non_finite(x: Array) -> str | None:
    """How many of ``x``'s values are NaN or infinite, in words (``1 non-finite value``), or
    ``None`` where all are finite: what ``explain`` refuses."""
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if not bad:
        return None
    return f"{bad} non-finite {'value' if bad == 1 else 'values'}"


def _explain(
    x: npt.ArrayLike,
    observed: npt.ArrayLike,
    weight: npt.ArrayLike | None,
    bias: npt.ArrayLike | None,
    settings: Settings,
    dtype: str | None,
    budget_s: float | None,
) -> ExplainReport:
    deadline = Deadline(budget_s)
    xa = _numbers(x, "input")
    ya = _numbers(observed, "observed output")
    if xa.ndim == 0 or xa.size == 0:
        raise InputError(f"the input has shape {xa.shape}: explain needs at least one element")
    if xa.shape != ya.shape:
        raise InputError(
            f"the observed output has shape {ya.shape}, the input {xa.shape}: they must match"
        )
    bad = non_finite(xa)
    if bad is not None:
        raise InputError(f"the input has {bad}: explain needs finite inputs")
    shape = tuple(int(n) for n in xa.shape)
    if dtype is not None:
        settings = settings.with_values(dtype=_dtype(dtype))
    pins = hypotheses.resolve_pins(settings, shape)
    w = None if weight is None else _numbers(weight, option("weight")).astype(np.float64)
    b = None if bias is None else _numbers(bias, option("bias")).astype(np.float64)
    if pins.affine is False and (w is not None or b is not None):
        raise InputError(
            f"{option('weight' if w is not None else 'bias')} is given, "
            f"but {option('affine')} is off"
        )
    found = hypotheses.structures(shape, pins)
    hypotheses.check_parameters(found, w, b, shape)
    precision: DTypeName = pins.dtype or value_precision(ya)  # type: ignore[assignment]
    problem = Problem(xa, ya, w, b, tuple(found), pins, precision)
    # a layer run in float16 or bfloat16 on a wider input (a model cast with .half()) has
    # normalized the input rounded to that dtype, not the values given
    outcome = run(problem, deadline, _cast_first(problem))
    notes = [] if outcome.complete else [f"the search stopped after its {budget_s:g} s budget"]
    return ExplainReport(
        input_shape=shape,
        input_dtype=str(xa.dtype),
        output_dtype=str(ya.dtype),
        precision=precision,
        candidates=tuple(outcome.candidates),
        hypotheses=outcome.hypotheses,
        seconds=deadline.elapsed,
        complete=outcome.complete,
        notes=tuple(notes),
    )


def _cast_first(problem: Problem) -> Problem | None:
    """``problem`` with its input, weight and bias rounded to the float16 or bfloat16 the
    output holds, where that changes the input (``None`` elsewhere)."""
    low = problem.precision
    if low not in ("float16", "bfloat16"):
        return None
    x = np.asarray(round_to(problem.x, low), dtype=np.float64)
    if np.array_equal(x, problem.x):  # already in that dtype: the search saw these values
        return None
    w, b = (
        None if p is None else np.asarray(round_to(p, low), dtype=np.float64)
        for p in (problem.weight, problem.bias)
    )
    return replace(problem, x=x, weight=w, bias=b, input_cast=low)


def quick(
    case: Any, observed: npt.ArrayLike, budget_s: float = 1.0, steps: int | None = None
) -> Candidate | None:
    """The best explanation of ``observed`` found within ``budget_s`` seconds and ``steps``
    steps of the search (``None``: any number), or ``None``.

    For ``compare`` to suggest in one line why a check failed with ``mismatch``: ``case`` is
    the ``lncheck.case.Case`` whose input and parameters produced ``observed``. Structures
    grouped like the case's own layer are scored first. Never raises ``InputError`` for a
    case that loaded: an output it cannot explain is ``None``.
    """
    spec = case.spec
    axes = tuple(spec.reduce_axes) if spec.view_shape == spec.input_shape else None
    try:
        xa = _numbers(case.x, "input")
        ya = _numbers(observed, "observed output")
        if xa.shape != ya.shape or not np.isfinite(xa).all():
            return None
        shape = tuple(int(n) for n in xa.shape)
        pins = hypotheses.Pins()
        found = hypotheses.structures(shape, pins)
        found.sort(key=lambda s: s.axes != axes)  # the case's own grouping first (stable)
        w = None if case.weight is None else np.asarray(case.weight, dtype=np.float64)
        b = None if case.bias is None else np.asarray(case.bias, dtype=np.float64)
        precision = value_precision(ya)
        problem = Problem(xa, ya, w, b, tuple(found), pins, precision)
        outcome = run(problem, Deadline(budget_s, steps))
    except LncheckError:
        return None
    best = outcome.candidates[0] if outcome.candidates else None
    return best if best is not None and best.explains else None


def _numbers(a: npt.ArrayLike, role: str) -> Array:
    """``a`` as a NumPy array of real numbers (a torch tensor is converted, bfloat16 via
    float32)."""
    if hasattr(a, "detach") and hasattr(a, "numpy"):
        t = a.detach().cpu()  # a torch tensor, without importing torch
        a = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise InputError(f"{role}: not an array of numbers: {e}") from None
    arr = real_numbers(arr, "", role)  # refused as compare refuses them
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def _dtype(name: str) -> str:
    from lncheck.options import OPTIONS

    return str(OPTIONS["dtype"].parse(name, "dtype"))
