"""What lncheck says about one output, through its public API only, and whether that is right.

``lncheck.compare(x, op, backend=None, expected=y, ...)`` checks only the given output; its
``expected`` output check carries ``passed`` and, once lncheck has accuracy classes,
``accuracy_class`` (without one, a pass reads as "accurate" and a failure as "mismatch").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cases import Case, Inputs

CLASSES = ("accurate", "sequential", "low_precision", "mismatch")


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: lncheck raised (``error`` says what)
    accuracy_class: str | None
    tolerance_used: float
    seconds: float
    explanation: str | None = None
    error: str | None = None
    implied_scale: float = float("nan")
    implied_shift: float = float("nan")
    warning: str | None = None  # a passing check's (lncheck's weighted fit)


def lncheck_op(case: Case) -> str:
    return "batch_norm" if case.op.startswith("batch_norm") else case.op


def lncheck_options(inp: Inputs) -> dict[str, Any]:
    """The keywords of ``lncheck.compare`` for ``inp`` (the arrays in the dtype's storage)."""
    case = inp.case
    options: dict[str, Any] = {"dtype": case.dtype, "eps": case.eps, "weight": inp.weight}
    if inp.bias is not None:
        options["bias"] = inp.bias
    if case.normalized_shape:
        options["normalized_shape"] = tuple(case.normalized_shape)
    if case.op == "group_norm":
        options["groups"] = case.groups
    if case.op == "instance_norm":
        options["affine"] = True
    if case.op.startswith("batch_norm"):
        options["training"] = case.op == "batch_norm_train"
        options["running_mean"] = inp.running_mean
        options["running_var"] = inp.running_var
    return options


def judge(inp: Inputs, y: np.ndarray) -> Verdict:
    """lncheck's verdict on ``y`` as the output of ``inp``."""
    import lncheck

    start = time.process_time()
    try:
        report = lncheck.compare(
            inp.x, lncheck_op(inp.case), backend=None, expected=y, **lncheck_options(inp)
        )
    except Exception as e:  # an error is a finding too: recorded, never fatal
        return Verdict(None, None, float("nan"), time.process_time() - start, error=repr(e))
    seconds = time.process_time() - start
    checks = [c for c in report.checks if c.candidate == "expected" and c.quantity == "output"]
    if not checks:
        return Verdict(None, None, float("nan"), seconds, error="no output check of 'expected'")
    check = checks[0]
    cls = getattr(check, "accuracy_class", None)
    if cls is None:
        cls = "accurate" if check.passed else "mismatch"
    explanation = getattr(check, "explanation", None)
    return Verdict(
        bool(check.passed),
        str(cls),
        float(check.tolerance_used),
        seconds,
        None if explanation is None else str(explanation),
        implied_scale=float(getattr(check, "implied_scale", float("nan"))),
        implied_shift=float(getattr(check, "implied_shift", float("nan"))),
        warning=getattr(check, "warning", None),
    )


def outcome(kind: str, label: str, distinguishable: bool, verdict: Verdict | None) -> str:
    """The row's outcome: ok, false_alarm, caught, miss, left_out (a bug within 10x of a
    correct kernel) or error (lncheck raised)."""
    if kind == "bug" and not distinguishable:
        return "left_out"
    if verdict is None or verdict.passed is None:
        return "error"
    if kind != "bug" and label == "low_precision":
        # a correct kernel that keeps its statistics in the compute dtype: right if lncheck
        # calls it any class but a mismatch (it fails by default, as low precision should)
        return "false_alarm" if verdict.accuracy_class == "mismatch" else "ok"
    if kind != "bug":
        return "ok" if verdict.passed else "false_alarm"
    if verdict.passed:
        return "miss"
    if label == "semantic" and verdict.accuracy_class == "low_precision":
        return "miss"
    return "caught"
