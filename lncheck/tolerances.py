"""How close is close enough: the default tolerance table and the rule for explicit ones.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` (``torch.isclose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lncheck.errors import InputError

ToleranceMode = Literal["fixed", "explicit"]

# (rtol, atol) per compute dtype, as torch.testing.assert_close has them: rtol is a few units
# of the dtype's epsilon and atol guards values near zero. lncheck keeps the same table so that
# "lncheck passes" and "assert_close passes" mean the same thing for these defaults.
DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}


@dataclass(frozen=True)
class ToleranceSpec:
    """What the user asked for; ``resolve`` turns it into numbers for a dtype."""

    mode: ToleranceMode = "fixed"
    rtol: float | None = None
    atol: float | None = None
    equal_nan: bool = False

    @classmethod
    def from_options(
        cls, rtol: float | None, atol: float | None, *, equal_nan: bool = False
    ) -> ToleranceSpec:
        """Explicit tolerances need both values or neither, as in ``torch.testing``.

        Raises:
            InputError: only one of them is given, or one is negative or not finite.
        """
        if (rtol is None) != (atol is None):
            given, missing = ("--rtol", "--atol") if rtol is not None else ("--atol", "--rtol")
            raise InputError(f"{given} was given without {missing}: give both or neither")
        if rtol is None or atol is None:
            return cls(equal_nan=equal_nan)
        for name, value in (("--rtol", rtol), ("--atol", atol)):
            if not value >= 0 or value == float("inf"):
                raise InputError(f"{name} must be a finite number >= 0, got {value}")
        return cls(mode="explicit", rtol=rtol, atol=atol, equal_nan=equal_nan)

    def resolve(self, dtype: str) -> tuple[float, float]:
        """``(rtol, atol)`` for values computed in ``dtype``."""
        if self.rtol is not None and self.atol is not None:
            return self.rtol, self.atol
        return DEFAULTS[dtype]
