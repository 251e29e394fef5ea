"""The Python API: ``compare`` (a report), ``check`` (an assertion for tests), ``run_suite``.

``compare`` takes every option of the option table (``lncheck.options``) as a keyword argument
under its name (``normalized_shape=``, ``groups=``, ``training=``; the aliases ``shape=`` and
``train=`` work too); array options take arrays. Errors name options as keywords (``groups=``).

>>> import numpy as np, lncheck
>>> x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
>>> lncheck.compare(x, normalized_shape=8).passed
True
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy.typing as npt

from lncheck.comparison import percent, worst_tolerance
from lncheck.errors import CheckWarning, InputError, LncheckError, spelled
from lncheck.options import ALIASES, JOINS, OPTIONS_LIST, Settings, parse, spelling
from lncheck.report import Report, SuiteReport

_UNSET = object()
_CHECKED = {"expected": "actual"}  # check()'s name for the output it checks, the caller's own
_KEYWORDS = {o.name for o in OPTIONS_LIST if "api" in o.surfaces} | set(ALIASES)
_EXPECTED_PARTS = tuple(name for name, target in JOINS.items() if target == "expected")


def compare(
    x: npt.ArrayLike,
    op: str = "layer_norm",
    *,
    backend: str | None = "torch",
    name: str = "array",
    **options: Any,
) -> Report:
    """Check a normalization layer on ``x``: the backend's paths (and ``expected``) against the
    float64 reference, exactly as ``lncheck compare`` does.

    Args:
        x: the input (NumPy array, nested lists, or a torch tensor).
        op: ``layer_norm``, ``group_norm``, ``instance_norm``, ``batch_norm``, ``rms_norm`` or
            ``local_response_norm`` (``lncheck.ops.OP_NAMES``).
        backend: the implementation under test; ``None`` checks only the user's candidates
            (``expected``, ``candidates``, ``candidate_cmd``).
        name: how reports name the input.
        options: the command line's options as keywords: ``normalized_shape``, ``axes``,
            ``eps``, ``groups``, ``channel_axis``, ``affine``, ``training``, ``momentum``, ...;
            ``weight``, ``bias``, ``running_mean``, ``running_var``, ``grad_output`` as arrays;
            ``expected`` as an array (the final output), a dict of quantities (a bundle) or a
            dict of candidate names to either; ``candidates={"mine": fn}`` (functions called
            with torch tensors), ``candidate_cmd``, ``repeat``; ``dtype``, ``device``,
            ``grad``, ``tolerance``, ``rtol``, ``atol``, ... (the signature lists them all).

    Returns:
        The report: ``.passed``, ``.checks``, ``.to_dict()`` (the JSON of ``--json``).

    Raises:
        TypeError: an unknown keyword argument.
        lncheck.errors.InputError: the input or options are invalid (named as keywords).

    >>> import numpy as np
    >>> report = compare(np.ones((2, 3, 4)), "group_norm", groups=1, dtype="float64")
    >>> [c.candidate for c in report.checks][:1]
    ['torch.nn.GroupNorm']
    """
    __tracebackhide__ = True  # in pytest, an error points at the caller's line
    return _compare(x, op, backend, name, options, "compare")


def _compare(
    x: npt.ArrayLike,
    op: str,
    backend: str | None,
    name: str,
    options: dict[str, Any],
    entry: str,
    words: dict[str, str] | None = None,
) -> Report:
    """``compare``'s work for the public function ``entry``, whose errors name options as
    ``words`` says (``check`` takes the output to check as ``actual``)."""
    from lncheck.loading import load
    from lncheck.pipeline import check_case

    __tracebackhide__ = True
    unknown = sorted(set(options) - _KEYWORDS)
    if unknown:
        raise TypeError(f"{entry}() got an unexpected keyword argument {unknown[0]!r}")
    theirs = ("expected", "candidate", "candidates", "candidate_cmd")
    if backend is None and all(options.get(k) is None for k in theirs + _EXPECTED_PARTS):
        raise InputError(
            "nothing to check: backend=None and no expected=, candidates= or candidate_cmd= given"
        )
    try:
        settings = api_settings(op, backend, options)
        if words:  # deeper errors are spelled by the settings' own words
            settings = replace(settings, words={**settings.words, **words})
        given = {"input": x}
        return check_case(load(settings, name, given=given), backend=None if backend is None else
                          settings["backend"])  # fmt: skip
    except LncheckError as e:
        raise spelled(e, spelling("api", words)) from None


def api_settings(op: str, backend: str | None, options: dict[str, Any]) -> Settings:
    """The ``Settings`` of ``compare``'s keyword arguments.

    Raises:
        InputError: an invalid value (option markers unspelled).
    """
    # None means "the default", as in torch's signatures; momentum=None is torch's own value
    # (the cumulative average)
    raw = {
        "op": op,
        **{k: v for k, v in options.items() if v is not None or ALIASES.get(k, k) == "momentum"},
    }
    if backend is not None:
        raw["backend"] = backend
    if "device" in raw and not isinstance(raw["device"], str):
        raw["device"] = str(raw["device"])  # a torch.device works too
    return parse(raw, "api", unset=_UNSET)


compare.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        *list(inspect.signature(compare).parameters.values())[:4],
        *(
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
            for o in OPTIONS_LIST
            if "api" in o.surfaces and o.name not in ("op", "backend")
        ),
    ]
)


def check(
    actual: npt.ArrayLike, x: npt.ArrayLike, op: str = "layer_norm", **options: Any
) -> Report:
    """Assert that ``actual`` is ``op`` applied to ``x``, within the tolerance: for tests.

    Takes the options of ``compare``; only ``actual`` is checked (the backend's paths do not
    run unless ``backend="torch"`` is given). In pytest, the traceback stops at the caller's
    line (``__tracebackhide__``).

    Raises:
        AssertionError: a short message in the manner of ``torch.testing.assert_close``: what
            failed, how many elements (in which groups), the greatest difference and what was
            allowed, and a hint when ``actual`` has a lower precision than the compute dtype.
        lncheck.errors.InputError: the input or options are invalid.

    Warns:
        lncheck.errors.CheckWarning: a passing check's warning (``Comparison.warning``: a
            systematic distortion below every element's bound, or a convention its groups
            meet only loosely).

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> y = (x - 2.5) / np.sqrt(1.25 + 1e-5)
    >>> check(y, x, normalized_shape=4, dtype="float64").passed
    True
    >>> check(y * 1.01, x, normalized_shape=4, dtype="float64")
    Traceback (most recent call last):
    ...
    AssertionError: actual output does not match the reference (LayerNorm(...) in float64)!
    ...
    """
    __tracebackhide__ = True
    if "expected" in options:
        raise TypeError("check() takes the output to check as actual, not expected=")
    if actual is None:  # else reported as "no expected= given", a keyword check() has not
        raise InputError("actual= is None: check() needs the output to check")
    backend, name = options.pop("backend", None), options.pop("name", "array")
    options["expected"] = actual
    report = _compare(x, op, backend, name, options, "check", _CHECKED)
    if not report.passed:
        raise AssertionError(assertion_message(report, _dtype_of(actual), _CHECKED))
    for c in report.checks:  # what a check passed despite: shown by pytest's warnings summary
        if c.warning:
            shown = _CHECKED.get(c.candidate, c.candidate)
            warnings.warn(f"{shown} {c.quantity}: {c.warning}", CheckWarning, stacklevel=2)
    return report


def assertion_message(
    report: Report, actual_dtype: str | None = None, names: Mapping[str, str] | None = None
) -> str:
    """What ``check`` says about a failed report: per failing check a few lines, as
    ``torch.testing.assert_close`` does; ``names`` gives a candidate the caller's own name for
    it (``check()``'s ``actual``)."""
    h = report.header
    parts = []
    for c in report.failures:
        shown = (names or {}).get(c.candidate, c.candidate)
        head = f"{shown} {c.quantity} does not match the reference ({h.layer} in {h.dtype})"
        if c.note:
            parts.append(f"{head}:\n{c.note}")
            continue
        where = _groups(report, c.candidate, c.quantity)
        lines = [f"{head}!", ""]
        lines.append(
            f"Mismatched elements: {c.mismatched} / {c.total} {percent(c.mismatch_fraction)}"
            + where
        )
        lines.append(
            f"Worst element at index {c.worst_index}: {c.worst_actual:.9g} vs "
            f"{c.worst_expected:.9g} expected; greatest absolute difference {c.max_abs_err:.3g} "
            f"({worst_tolerance(c, ' ')})"
        )
        if c.accuracy_class:
            why = f": {c.explanation}" if c.explanation else ""
            lines.append(f"Accuracy class {c.accuracy_class}{why}")
        if c.nan_actual or c.inf_actual:
            lines.append(f"The {shown} {c.quantity} has {c.nan_actual} NaN and {c.inf_actual} Inf")
        parts.append("\n".join(lines))
    if actual_dtype in _LOWER and _LOWER[actual_dtype] < _LOWER.get(h.dtype, 99):
        parts.append(
            f"The output is {actual_dtype} but the check computed in {h.dtype}: if the layer "
            f'ran in {actual_dtype}, pass dtype="{actual_dtype}".'
        )
    return "\n\n".join(parts)


# Precision rank of the dtypes a layer may run in (bits of mantissa, roughly).
_LOWER = {"bfloat16": 0, "float16": 1, "float32": 2, "float64": 3}


def _groups(report: Report, candidate: str, quantity: str) -> str:
    found = report.failing_groups.get((candidate, quantity))
    if found is None or found.groups <= 1:
        return ""
    worst = ", ".join(f"{g} {n}" for g, n in found.worst[:3])
    more = ", ..." if found.failing > 3 else ""
    return f" in {found.failing} of {found.groups} groups: {worst}{more}"


def _dtype_of(a: object) -> str | None:
    dtype = getattr(a, "dtype", None)
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")


def run_suite(
    path: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    pattern: str | None = None,
    fail_fast: bool = False,
    jobs: int = 1,
    baseline: str | Path | None = None,
    baseline_rtol: float | None = None,
    baseline_atol: float | None = None,
    strict_baseline: bool = False,
) -> SuiteReport:
    """Run a suite file as ``lncheck run`` does and return its report (``.passed``,
    ``.exit_status``, ``.results``, ``.to_dict()``).

    ``shard=(i, n)`` runs the i-th of n shards, counting from 1 (``(1, 4)`` ... ``(4, 4)``);
    a shard that ``pattern`` leaves empty runs nothing (a note says so). ``jobs > 1`` runs
    cases in spawned worker processes, at most one per CPU: in a script, call it under ``if
    __name__ == "__main__":`` (if the workers cannot start, the cases run in this process).

    ``baseline_rtol``/``baseline_atol`` (both or neither; default: bitwise) and
    ``strict_baseline`` say what counts as drift from ``baseline``, and need it.

    Raises:
        lncheck.errors.InputError: the suite file, the baseline or an option is invalid, a
            shard is not ``1 <= i <= n``, ``pattern`` is not a string or matches no case of the
            suite (nothing ran), or a baseline's tolerance or strictness is given without it.
    """
    from lncheck.suite.parse import load_suite
    from lncheck.suite.run import SuiteOptions, run_cases, select, selection_note
    from lncheck.tolerance_spec import ToleranceSpec
    from lncheck.values import any_number, flag, text

    try:
        if not isinstance(path, (str, Path)):
            raise InputError(f"path= must be the suite file's path, got {path!r}")
        # the option table's parsers ("no" would read as true, "1e-3" is no number)
        if pattern is not None:
            text(pattern, "pattern")
        flag(strict_baseline, "strict_baseline")
        flag(fail_fast, "fail_fast")
        if baseline is None:  # they say what counts as drift from a baseline: there is none
            for name, value in (("baseline_rtol", baseline_rtol),
                                ("baseline_atol", baseline_atol),
                                ("strict_baseline", strict_baseline or None)):  # fmt: skip
                if value is not None:
                    raise InputError(f"{name}= is for drift from a baseline: give baseline= too")
        rtol, atol = (
            None if v is None else any_number(v, n)
            for v, n in ((baseline_rtol, "baseline_rtol"), (baseline_atol, "baseline_atol"))
        )
        drift = ToleranceSpec.from_options(rtol, atol, names=("baseline_rtol=", "baseline_atol="))
        options = SuiteOptions(
            baseline=None if baseline is None else str(baseline),
            baseline_rtol=drift.rtol or 0.0,
            baseline_atol=drift.atol or 0.0,
            strict_baseline=strict_baseline,
            fail_fast=fail_fast,
            jobs=jobs,
        )
        cases = select(load_suite(path).cases, shard=shard, pattern=pattern)
        if baseline is not None:  # a damaged or foreign baseline is refused before any case
            from lncheck.suite.baseline import open_baseline

            open_baseline(baseline, verify=True)
        return run_cases(str(path), cases, options, notes=selection_note(cases, shard))
    except LncheckError as e:
        raise spelled(e, spelling("api")) from None


__all__ = ["check", "compare", "run_suite"]
