"""What the user asked for, and the ``(rtol, atol)`` it comes to per quantity: the automatic
tolerance (accuracy classes, ``lncheck.tolerances``), torch.testing's fixed table, or explicit
values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lncheck.errors import InputError, option
from lncheck.result import Bound, LazyTensor, Scale
from lncheck.tolerances import (
    CLASSES,
    DEFAULT_ACCEPTED,
    AccuracyClass,
    allowance,
    atol_floor,
    coefficients,
)

ToleranceMode = Literal["auto", "fixed", "explicit"]

# (rtol, atol) per compute dtype, as torch.testing.assert_close has them: rtol is a few units
# of the dtype's epsilon and atol guards values near zero. ``--tolerance fixed`` uses this table
# so that "lncheck passes" and "assert_close passes" mean the same thing.
DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}


@dataclass(frozen=True)
class ToleranceSpec:
    """What the user asked for: ``auto`` (the error bound), ``fixed`` (torch.testing's table),
    or ``explicit`` ``rtol``/``atol``."""

    mode: ToleranceMode = "auto"
    rtol: float | None = None
    atol: float | None = None
    equal_nan: bool = False
    accepted: tuple[AccuracyClass, ...] = DEFAULT_ACCEPTED  # classes that pass (``auto``)

    @property
    def classified(self) -> bool:
        """Whether checks get an accuracy class (the automatic mode)."""
        return self.mode == "auto"

    @property
    def accepted_index(self) -> int:
        """The index in ``CLASSES`` of the most permissive accepted class (they nest)."""
        return CLASSES.index(self.accepted[-1])

    @classmethod
    def from_options(
        cls,
        rtol: float | None,
        atol: float | None,
        *,
        mode: str | None = None,
        equal_nan: bool = False,
        names: tuple[str, str] = (option("rtol"), option("atol")),
        strict: bool = False,
        accept: str | None = None,
    ) -> ToleranceSpec:
        """Explicit tolerances need both values or neither, as in ``torch.testing``.
        ``strict`` accepts only the ``accurate`` class; ``accept="low-precision"`` adds the
        ``low_precision`` class to the default two.

        Raises:
            InputError: only one of them is given, one is negative or not finite, or the
                mode is unknown or contradicts them, or the classes contradict each other.
        """
        accepted: tuple[AccuracyClass, ...] = DEFAULT_ACCEPTED
        if strict and accept is not None:
            raise InputError(
                f"{option('strict')} and {option('accept')} contradict each other: give one"
            )
        if strict:
            accepted = ("accurate",)
        elif accept is not None:
            if accept.replace("_", "-") != "low-precision":
                raise InputError(f"{option('accept')} must be low-precision, got {accept!r}")
            accepted = ("accurate", "sequential", "low_precision")
        if (strict or accept is not None) and (mode == "fixed" or rtol is not None):
            raise InputError(
                f"{option('strict' if strict else 'accept')} needs the automatic tolerance: "
                "accuracy classes exist only there"
            )
        if mode is not None and mode not in ("auto", "fixed"):
            raise InputError(f"{option('tolerance')} must be auto or fixed, got {mode!r}")
        if (rtol is None) != (atol is None):
            given, missing = names if rtol is not None else names[::-1]
            raise InputError(f"{given} was given without {missing}: give both or neither")
        if rtol is None or atol is None:
            return cls(mode=mode or "auto", equal_nan=equal_nan, accepted=accepted)  # type: ignore[arg-type]
        if mode is not None:
            raise InputError(
                f"{option('tolerance')} {mode} and {names[0]}/{names[1]} contradict each other: "
                "give one"
            )
        for name, value in zip(names, (rtol, atol), strict=True):
            if not value >= 0 or value == float("inf"):
                raise InputError(f"{name} must be a finite number >= 0, got {value}")
        return cls(mode="explicit", rtol=rtol, atol=atol, equal_nan=equal_nan)

    def resolve(self, dtype: str) -> tuple[float, float]:
        """``(rtol, atol)`` of the fixed or explicit modes for values computed in ``dtype``."""
        if self.rtol is not None and self.atol is not None:
            return self.rtol, self.atol
        return DEFAULTS[dtype]

    def describe(self, dtype: str, n: int) -> str:
        if self.mode == "auto":
            # the output's rtol is one number; each statistic's and gradient's is its own
            # bound's (the table's rtol column), the least its final rounding's
            rounded = allowance(dtype, n, "accurate").rounded
            return (
                f"auto: rtol={rounded:.3g} for outputs, from "
                f"{coefficients(dtype, n)['relative']:.3g} for statistics and gradients (error "
                f"bounds for {dtype}, groups of {n}), atol per element from each group's "
                "conditioning"
            )
        rtol, atol = self.resolve(dtype)
        return f"{self.mode}: rtol={rtol:g}, atol={atol:g}"


Atol = float | npt.NDArray[np.float64] | LazyTensor


def applied(
    spec: ToleranceSpec, dtype: str, n: int, bound: Bound | None, klass: str = "sequential"
) -> tuple[float, Atol]:
    """The ``(rtol, atol)`` a quantity is checked with for accuracy class ``klass``: ``atol``
    is one number (fixed and explicit modes), or per group or per element (``auto``: the
    weighted bound)."""
    if spec.mode != "auto":
        return spec.resolve(dtype)
    weights = coefficients(dtype, n, klass)
    floor = atol_floor(dtype)
    if bound is None:
        return weights["relative"], floor
    kinds = (bound.rtol_kind,) if isinstance(bound.rtol_kind, str) else bound.rtol_kind
    return sum(weights[k] for k in kinds), _weighted(bound.terms, weights, floor)


def _weighted(terms: Mapping[str, Scale], weights: Mapping[str, float], floor: float) -> Atol:
    lazy = [(weights[k], t) for k, t in terms.items() if isinstance(t, LazyTensor)]
    eager = [(weights[k], t) for k, t in terms.items() if not isinstance(t, LazyTensor)]
    with np.errstate(all="ignore"):  # NaN statistics give NaN terms, which allow nothing
        base = floor + sum((w * np.asarray(t, np.float64) for w, t in eager), np.float64(0.0))
    if not lazy:
        return np.asarray(base, dtype=np.float64)
    first = lazy[0][1]
    per_group = np.broadcast_to(np.asarray(base, dtype=np.float64), (first.layout.groups,))

    def compute(start: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> npt.NDArray[np.float64]:
        total = sum(w * t.compute(start, blocks) for w, t in lazy)
        return np.asarray(total + per_group[start : start + blocks[0].shape[0], None])

    return LazyTensor(first.layout, first.sources, compute)
