"""The Python API: ``compare`` (a report), ``check`` (an assertion for tests), ``run_suite``.

>>> import numpy as np, lncheck
>>> x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
>>> lncheck.compare(x, normalized_shape=8).passed
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt

from lncheck.errors import InputError
from lncheck.io import CaseSpec, load
from lncheck.report import Report, SuiteReport

LAYER_OPTIONS = (
    "eps",
    "groups",
    "channel_axis",
    "affine",
    "track_running_stats",
    "momentum",
    "size",
    "alpha",
    "beta",
    "k",
    "activation",
)


def compare(
    x: npt.ArrayLike,
    op: str = "layer_norm",
    *,
    normalized_shape: int | tuple[int, ...] | None = None,
    axes: int | tuple[int, ...] | None = None,
    train: bool = True,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    expected: npt.ArrayLike | None = None,
    running_mean: npt.ArrayLike | None = None,
    running_var: npt.ArrayLike | None = None,
    grad_output: npt.ArrayLike | None = None,
    dtype: str | None = None,
    device: str = "cpu",
    vs_device: str | None = None,
    grad: bool = False,
    seed: int = 0,
    tolerance: str = "auto",
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = False,
    backend: str | None = "torch",
    name: str = "array",
    **layer_options: Any,
) -> Report:
    """Check a normalization layer on ``x``: torch's paths (and ``expected``) against the
    float64 reference, exactly as ``lncheck compare`` does.

    Args:
        x: the input (NumPy array, nested lists, or a torch tensor).
        op: ``layer_norm``, ``group_norm``, ``instance_norm``, ``batch_norm``, ``rms_norm`` or
            ``local_response_norm``.
        normalized_shape, axes: what LayerNorm/RMSNorm normalize over.
        layer_options: ``eps``, ``groups``, ``channel_axis``, ``affine``,
            ``track_running_stats``, ``momentum``, ``size``, ``alpha``, ``beta``, ``k``,
            ``activation``, as the command line's options.
        backend: ``None`` checks only ``expected`` (no torch paths run).

    Returns:
        The report: ``.passed``, ``.checks``, ``.to_dict()`` (the JSON of ``--json``).

    Raises:
        lncheck.errors.InputError: the input or options are invalid.

    >>> import numpy as np
    >>> report = compare(np.ones((2, 3, 4)), "group_norm", groups=1, dtype="float64")
    >>> [c.candidate for c in report.checks][:1]
    ['torch.nn.GroupNorm']
    """
    unknown = sorted(set(layer_options) - set(LAYER_OPTIONS))
    if unknown:
        raise TypeError(f"compare() got an unexpected keyword argument {unknown[0]!r}")
    if isinstance(layer_options.get("momentum"), str) and layer_options["momentum"] == "none":
        layer_options["momentum"] = None  # the command line's word for the cumulative average
    spec = CaseSpec(
        input=name,
        name=name,
        op=op,
        shape=_dims(normalized_shape),
        axes=_dims(axes),
        train=train,
        dtype=dtype,  # type: ignore[arg-type]
        device=str(device),  # a torch.device works too
        vs_device=None if vs_device is None else str(vs_device),
        grad=grad,
        seed=seed,
        tolerance=None if rtol is not None else tolerance,
        rtol=rtol,
        atol=atol,
        equal_nan=equal_nan,
        **layer_options,
    )
    arrays = {
        "input": x,
        "weight": weight,
        "bias": bias,
        "expected": expected,
        "running_mean": running_mean,
        "running_var": running_var,
        "grad_output": grad_output,
    }
    if backend is None and expected is None:
        raise InputError("nothing to check: backend=None and no expected output given")
    from lncheck.runner import check_case

    return check_case(load(spec, given=arrays), backend=backend)


def check(
    actual: npt.ArrayLike, x: npt.ArrayLike, op: str = "layer_norm", **options: Any
) -> Report:
    """Assert that ``actual`` is ``op`` applied to ``x``, within the tolerance: for tests.

    Takes the options of ``compare``; only ``actual`` is checked (torch's paths do not run
    unless ``backend="torch"`` is given).

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
    from lncheck.runner import SuiteOptions, run_cases
    from lncheck.suite import load_suite, select

    cases = select(load_suite(path).cases, shard=shard, pattern=pattern)
    options = SuiteOptions(
        baseline=None if baseline is None else str(baseline),
        baseline_rtol=baseline_rtol,
        baseline_atol=baseline_atol,
        strict_baseline=strict_baseline,
        fail_fast=fail_fast,
        jobs=jobs,
    )
    return run_cases(str(path), cases, options)


def _dims(value: int | tuple[int, ...] | None) -> tuple[int, ...] | None:
    """One int or a sequence of them as a tuple; their types are checked with the other
    options (``layers.check_options``)."""
    if value is None:
        return None
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        return (value,)  # type: ignore[return-value]
