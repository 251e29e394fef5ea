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
from pathlib import Path
from typing import Any

import numpy.typing as npt

from lncheck.errors import InputError, LncheckError, spelled
from lncheck.options import ALIASES, OPTIONS_LIST, parse, spelling
from lncheck.report import Report, SuiteReport

_UNSET = object()
_KEYWORDS = {o.name for o in OPTIONS_LIST if "api" in o.surfaces} | set(ALIASES)


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
        backend: the implementation under test; ``None`` checks only ``expected``.
        name: how reports name the input.
        options: the command line's options as keywords: ``normalized_shape``, ``axes``,
            ``eps``, ``groups``, ``channel_axis``, ``affine``, ``training``, ``momentum``, ...;
            ``weight``, ``bias``, ``expected``, ``running_mean``, ``running_var``,
            ``grad_output`` as arrays; ``dtype``, ``device``, ``grad``, ``tolerance``, ``rtol``,
            ``atol``, ... (the signature lists them all).

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
    from lncheck.loading import load
    from lncheck.pipeline import check_case

    unknown = sorted(set(options) - _KEYWORDS)
    if unknown:
        raise TypeError(f"compare() got an unexpected keyword argument {unknown[0]!r}")
    if backend is None and options.get("expected") is None:
        raise InputError("nothing to check: backend=None and no expected output given")
    try:
        # None means "the default", as in torch's signatures; momentum=None is torch's own value
        # (the cumulative average)
        raw = {
            "op": op,
            **{
                k: v for k, v in options.items() if v is not None or ALIASES.get(k, k) == "momentum"
            },
        }
        if backend is not None:
            raw["backend"] = backend
        if "device" in raw and not isinstance(raw["device"], str):
            raw["device"] = str(raw["device"])  # a torch.device works too
        settings = parse(raw, "api", unset=_UNSET)
        given = {"input": x}
        return check_case(load(settings, name, given=given), backend=None if backend is None else
                          settings["backend"])  # fmt: skip
    except LncheckError as e:
        raise spelled(e, spelling("api")) from None


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
    run unless ``backend="torch"`` is given).

    Raises:
        AssertionError: with the message of the command line's failing row.

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> y = (x - 2.5) / np.sqrt(1.25 + 1e-5)
    >>> check(y, x, normalized_shape=4, dtype="float64").passed
    True
    >>> check(y * 1.01, x, normalized_shape=4, dtype="float64")
    Traceback (most recent call last):
    ...
    AssertionError: expected output does not match the reference: 4 / 4 elements mismatched ...
    """
    options.setdefault("backend", None)
    report = compare(x, op, expected=actual, **options)
    if not report.passed:
        raise AssertionError("\n".join(c.message() for c in report.failures))
    return report


def run_suite(
    path: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    pattern: str | None = None,
    fail_fast: bool = False,
    jobs: int = 1,
    baseline: str | Path | None = None,
    baseline_rtol: float = 0.0,
    baseline_atol: float = 0.0,
    strict_baseline: bool = False,
) -> SuiteReport:
    """Run a suite file as ``lncheck run`` does and return its report (``.passed``,
    ``.exit_status``, ``.results``, ``.to_dict()``).

    ``jobs > 1`` runs cases in spawned worker processes: in a script, call it under ``if
    __name__ == "__main__":`` (if the workers cannot start, the cases run in this process).

    Raises:
        lncheck.errors.InputError: the suite file or an option is invalid (nothing ran).
    """
    from lncheck.suite.parse import load_suite
    from lncheck.suite.run import SuiteOptions, run_cases, select

    try:
        options = SuiteOptions(
            baseline=None if baseline is None else str(baseline),
            baseline_rtol=baseline_rtol,
            baseline_atol=baseline_atol,
            strict_baseline=strict_baseline,
            fail_fast=fail_fast,
            jobs=jobs,
        )
        cases = select(load_suite(path).cases, shard=shard, pattern=pattern)
        return run_cases(str(path), cases, options)
    except LncheckError as e:
        raise spelled(e, spelling("api")) from None


__all__ = ["check", "compare", "run_suite"]
