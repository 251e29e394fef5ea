"""``--repeat N``: a candidate run N times on the same input, each run compared bitwise with the
first. A reduction whose order changes from run to run (atomics in a CUDA kernel, a race in a
backward pass) gives results that differ in the last bits; a deterministic one never does.

Each quantity becomes one check of kind ``repeat`` (against the first run, tolerance zero):
passed when every run is bit-for-bit the first, else failed with a note that says how many
elements varied and in which run they first did.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lncheck.comparison import Comparison
from lncheck.result import NormResult, as_array

KIND = "repeat"


class Runs:
    """The runs of one candidate after its first: what varied, quantity by quantity."""

    def __init__(self, first: NormResult, runs: int) -> None:
        self.first = {q: np.asarray(as_array(v)) for q, v in first.quantities.items()}
        self.candidate, self.runs = first.candidate, runs
        self.varied = {q: np.zeros(a.shape, dtype=bool) for q, a in self.first.items()}
        self.since: dict[str, int] = {}  # quantity -> the first run (1-based) that differed
        # quantity -> (largest difference, its index, the value then, the first run's value)
        self.worst: dict[str, tuple[float, tuple[int, ...], float, float]] = {}
        self.failed: list[str] = []

    def add(self, run: int, result: NormResult) -> None:
        """Compare run number ``run`` (1-based; the first is 1) with the first, bitwise."""
        for quantity, first in self.first.items():
            value = result.quantities.get(quantity)
            other = None if value is None else np.asarray(as_array(value))
            if other is None or other.shape != first.shape or other.dtype != first.dtype:
                self.varied[quantity][...] = True
            else:
                self.varied[quantity] |= _bits(other) != _bits(first)
            if self.varied[quantity].any():
                self.since.setdefault(quantity, run)
                if other is not None and other.shape == first.shape:
                    self._worst(quantity, first, other)

    def fail(self, run: int, why: str) -> None:
        """Run ``run`` produced nothing (a program that crashed the third time)."""
        self.failed.append(f"run {run} of {self.runs} failed: {why}")

    def _worst(
        self, quantity: str, first: npt.NDArray[np.generic], other: npt.NDArray[np.generic]
    ) -> None:
        with np.errstate(all="ignore"):
            diff = np.abs(other.astype(np.float64) - first.astype(np.float64))
        # a NaN in one run only, or -0.0 against 0.0, varied too: rank them first, then by size
        diff = np.where(np.isnan(diff), np.inf, diff)
        k = int(np.argmax(np.where(self.varied[quantity], diff, -1.0)))
        if quantity not in self.worst or diff.flat[k] > self.worst[quantity][0]:
            index = tuple(int(i) for i in np.unravel_index(k, first.shape))
            value, was = float(other.flat[k]), float(first.flat[k])
            self.worst[quantity] = (float(diff.flat[k]), index, value, was)

    def checks(self) -> list[Comparison]:
        """One check per quantity, of kind ``repeat``; a run that failed fails the first."""
        out = []
        for i, (quantity, varied) in enumerate(self.varied.items()):
            total, count = int(varied.size), int(varied.sum())
            worst = self.worst.get(quantity, self._first_element(quantity))
            notes = list(self.failed) if i == 0 else []
            if count:
                notes.append(
                    f"differs bitwise between runs: {count} of {total} elements "
                    f"varied over {self.runs} runs (first in run {self.since[quantity]})"
                )
            if notes and not count:
                count, worst = total, (math.inf, (), math.nan, math.nan)
            out.append(
                _check(self.candidate, quantity, total, count, worst, "; ".join(notes) or None)
            )
        return out

    def _first_element(self, quantity: str) -> tuple[float, tuple[int, ...], float, float]:
        """Where no element varied, the first stands for the worst: a difference of 0 there
        (NaN, ``null`` in JSON, would say a value was NaN)."""
        first = self.first[quantity]
        if not first.size:
            return 0.0, (), math.nan, math.nan
        value = float(first.reshape(-1)[0])
        return 0.0, (0,) * first.ndim, value, value


def _check(
    candidate: str,
    quantity: str,
    total: int,
    varied: int,
    worst: tuple[float, tuple[int, ...], float, float],
    note: str | None,
) -> Comparison:
    error, index, actual, expected = worst
    return Comparison(
        candidate=candidate,
        quantity=quantity,
        passed=varied == 0,
        total=total,
        mismatched=varied,
        max_abs_err=error,
        max_rel_err=math.nan if varied else 0.0,
        mean_abs_err=math.nan if varied else 0.0,
        worst_index=index,
        worst_actual=actual,
        worst_expected=expected,
        rtol=0.0,
        atol=0.0,
        required_atol=error,
        required_rtol=math.nan if varied else 0.0,
        tolerance_used=math.inf if varied else 0.0,
        max_ulp_err=math.nan if varied else 0.0,
        note=note,
        kind=KIND,
    )


def _bits(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """The raw bits of each element, so that -0.0 differs from 0.0 and NaNs compare equal."""
    a = np.ascontiguousarray(a)
    if a.dtype.itemsize in (1, 2, 4, 8):
        return a.view(f"u{a.dtype.itemsize}")
    return a
