"""Drift: a backend's results today against the ones recorded in a baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy.typing as npt

from lncheck.blocks import GroupLayout
from lncheck.comparison import Comparison, not_made
from lncheck.errors import InputError
from lncheck.metrics import compare
from lncheck.result import NormResult, Quantity, as_array

STATISTICS = ("mean", "var", "rstd")


@dataclass(frozen=True)
class BaselineCheck:
    """Recorded results of one case, and the tolerance a difference from them needs to be
    called drift (bitwise by default)."""

    arrays: Mapping[tuple[str, str], npt.NDArray[Any]]
    rtol: float = 0.0
    atol: float = 0.0
    strict: bool = False


def drift_checks(
    result: NormResult, baseline: BaselineCheck, layouts: Mapping[str, GroupLayout]
) -> list[Comparison]:
    """One check per quantity of ``result`` against its recorded value (``kind="baseline"``)."""
    checks = []
    for quantity, value in result.quantities.items():
        recorded = baseline.arrays.get((result.candidate, quantity))
        layout = layouts[quantity]
        if recorded is None:  # drift cannot be ruled out: counts as drift under --strict-baseline
            size = math.prod(value.shape)
            missing = not_made(result.candidate, quantity, size, "not in the baseline")
            checks.append(replace(missing, kind="baseline"))
            continue
        actual = as_array(value)
        if quantity in STATISTICS:
            recorded, actual = _in_shape(recorded, layout), _in_shape(actual, layout)
        if tuple(recorded.shape) != tuple(actual.shape):  # no drift: another array altogether
            raise InputError(
                f"the baseline's {result.candidate} {quantity} has shape "
                f"{tuple(recorded.shape)}, this run's {tuple(actual.shape)}: the baseline is "
                "damaged, or recorded for another input"
            )
        c = compare(
            result.candidate,
            quantity,
            recorded,
            actual,
            layout,
            rtol=baseline.rtol,
            atol=baseline.atol,
            equal_nan=True,  # a NaN recorded and a NaN today: no drift
        )
        checks.append(replace(c, kind="baseline"))
    return checks


def _in_shape(q: Quantity, layout: GroupLayout) -> npt.NDArray[Any]:
    a = as_array(q)
    return a.reshape(layout.input_shape) if a.size == math.prod(layout.input_shape) else a
