"""How close is close enough: the automatic error bound, the fixed table, and explicit values.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` (``torch.isclose``);
in the automatic mode ``atol`` differs per element.

The automatic tolerance (``auto``, the default) is a forward error bound for the computation
being checked. For ``y = (x - mean) / sqrt(var + eps) * w + b`` over a group of ``n`` values
computed in a floating type with unit roundoff ``u`` (2**-24 for float32), accumulated in a type
with unit roundoff ``u_acc`` (torch accumulates float16 and bfloat16 in float32):

* the computed mean is off by ``delta <= c(n) * (|mean| + std)``, where for sums of ``n`` terms
  ``c(n)`` is a few ``u`` for pairwise or blocked sums and grows like ``sqrt(n) * u_acc`` for a
  sequential one (the probabilistic bound of Higham & Mary, 2019). Divided by the std, that
  moves every normalized value by ``c(n) * (1 + kappa)``, where ``kappa = |mean| / std`` is the
  group's conditioning; a kernel that keeps its statistics in the input dtype makes it
  ``u * (1 + kappa)``. Scaled by ``|w|``, this is the *spread* term;
* the variance has a relative error of the same order, and with the subtraction, division,
  scaling and final rounding it changes ``y`` relatively: the *relative* term ``|y|``;
* adding the bias rounds once more: the *fixed* term ``|b|``.

So an element may be off by ``r * |y| + s * (1 + kappa) * |w| + f * |b|`` with

    r = A * u + G_RELATIVE * sqrt(n) * u_acc + drift(n)
    s = A * u + G_SPREAD * sqrt(n) * u_acc + drift(n)
    f = A * u

``A = 3`` counts the roundings of the steps above; ``G_SPREAD = 1.5`` and ``G_RELATIVE = 0.2``
bound the growth of a sequential float32 accumulation (a one-element-at-a-time Welford loop
reaches 0.55 * sqrt(n) on the mean's term and far less on the variance's).

``drift(n)`` covers what the sqrt(n) model misses. Once a running sum is so large that its last
place nears the size of what is added (``x = n * u_acc`` near 1), its roundings stop
cancelling: torch's channels-last CPU BatchNorm and GroupNorm, which sum each channel's squares
sequentially in float32, lose a relative ``5e-3 * x ** 1.5`` in rstd from 0.5M to 33M values
per channel (measured). ``G_DRIFT * x ** 1.5 * x / (x + DRIFT_ONSET)``, with ``G_DRIFT =
0.015`` and ``DRIFT_ONSET = 0.01``, covers that by 1.9x or more and fades out below about 10^5
float32 values, where the sqrt(n) terms already cover those kernels. A float64 kernel has no
wider type to accumulate in, and on values with short mantissas (float16 data stored as
float64) the roundings of a sequential sum lean one way: torch's float64 CPU BatchNorm (and
InstanceNorm, which runs on it) reaches ``0.12 * n * u`` in rstd, so float64 adds ``G_LINEAR
* n * u`` (``G_LINEAR = 0.3``), under 1e-10 relative for 10^6 values.

Statistics get the bound of the same steps with ``s``: ``mean`` ``|mean| + std``, ``var``
``(1 + kappa) * (var + eps)``, ``rstd`` ``(1 + kappa) * rstd``, the running statistics the
momentum-weighted sums.

The constants were measured, not guessed (tests/test_tolerances.py): on 300 random
LayerNorm inputs (groups of 8 to 4096, means up to 1e4 std, variances near eps) torch's CPU
kernels, a float32 two-pass and a sequential float32 Welford use at most 53% of the bound, and
100 outputs of torch's H100 kernels at most 34%, while every seeded bug whose error is 10x that
of the correct implementations exceeds it by 2.1x or more (benchmarks/tolerance_margins.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTYPES
from lncheck.errors import InputError, option
from lncheck.result import Bound, LazyTensor, Scale

ToleranceMode = Literal["auto", "fixed", "explicit"]

A = 3.0
G_RELATIVE = 0.2
G_SPREAD = 1.5
G_DRIFT = 0.015
DRIFT_ONSET = 0.01
G_LINEAR = 0.3

# (rtol, atol) per compute dtype, as torch.testing.assert_close has them: rtol is a few units
# of the dtype's epsilon and atol guards values near zero. ``--tolerance fixed`` uses this table
# so that "lncheck passes" and "assert_close passes" mean the same thing.
DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}


def accumulation_dtype(dtype: str) -> str:
    """The type torch accumulates sums in: float32 for float16 and bfloat16 inputs."""
    return "float64" if dtype == "float64" else "float32"


def coefficients(dtype: str, n: int) -> dict[str, float]:
    """The weights of the ``relative``, ``spread`` and ``fixed`` parts of the bound."""
    u = DTYPES[dtype].unit_roundoff  # type: ignore[index]
    u_acc = DTYPES[accumulation_dtype(dtype)].unit_roundoff  # type: ignore[index]
    root = math.sqrt(max(n, 1))
    fill = max(n, 1) * u_acc  # how far the running sum's last place is from the addends'
    drift = G_DRIFT * fill**1.5 * fill / (fill + DRIFT_ONSET)
    if dtype == "float64":  # no wider type to accumulate in (see the module's docstring)
        drift += G_LINEAR * max(n, 1) * u_acc
    return {
        "relative": A * u + G_RELATIVE * root * u_acc + drift,
        "spread": A * u + G_SPREAD * root * u_acc + drift,
        "fixed": A * u,
        "exact": 1.0,  # differences that are not roundings (a derivative's jump at a kink)
        "floor": atol_floor(dtype),  # weighs how a subnormal's absolute error is magnified
    }


def atol_floor(dtype: str) -> float:
    """Values below the smallest normal number round with an absolute error, not a relative one."""
    info = DTYPES[dtype]  # type: ignore[index]
    return A * info.tiny * info.eps


@dataclass(frozen=True)
class ToleranceSpec:
    """What the user asked for: ``auto`` (the error bound), ``fixed`` (torch.testing's table),
    or ``explicit`` ``rtol``/``atol``."""

    mode: ToleranceMode = "auto"
    rtol: float | None = None
    atol: float | None = None
    equal_nan: bool = False

    @classmethod
    def from_options(
        cls,
        rtol: float | None,
        atol: float | None,
        *,
        mode: str | None = None,
        equal_nan: bool = False,
        names: tuple[str, str] = (option("rtol"), option("atol")),
    ) -> ToleranceSpec:
        """Explicit tolerances need both values or neither, as in ``torch.testing``.

        Raises:
            InputError: only one of them is given, one is negative or not finite, or the
                mode is unknown or contradicts them.
        """
        if mode is not None and mode not in ("auto", "fixed"):
            raise InputError(f"{option('tolerance')} must be auto or fixed, got {mode!r}")
        if (rtol is None) != (atol is None):
            given, missing = names if rtol is not None else names[::-1]
            raise InputError(f"{given} was given without {missing}: give both or neither")
        if rtol is None or atol is None:
            return cls(mode=mode or "auto", equal_nan=equal_nan)  # type: ignore[arg-type]
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
            return (
                f"auto: rtol={coefficients(dtype, n)['relative']:.3g} (error bound for {dtype}, "
                f"groups of {n}), atol per element from each group's conditioning"
            )
        rtol, atol = self.resolve(dtype)
        return f"{self.mode}: rtol={rtol:g}, atol={atol:g}"


Atol = float | npt.NDArray[np.float64] | LazyTensor


def applied(spec: ToleranceSpec, dtype: str, n: int, bound: Bound | None) -> tuple[float, Atol]:
    """The ``(rtol, atol)`` a quantity is checked with: ``atol`` is one number (fixed and
    explicit modes), or per group or per element (``auto``: the weighted bound)."""
    if spec.mode != "auto":
        return spec.resolve(dtype)
    weights = coefficients(dtype, n)
    floor = atol_floor(dtype)
    if bound is None:
        return weights["relative"], floor
    return weights[bound.rtol_kind], _weighted(bound.terms, weights, floor)


def _weighted(terms: Mapping[str, Scale], weights: Mapping[str, float], floor: float) -> Atol:
    lazy = [(weights[k], t) for k, t in terms.items() if isinstance(t, LazyTensor)]
    eager = [(weights[k], t) for k, t in terms.items() if not isinstance(t, LazyTensor)]
    base = floor + sum((w * np.asarray(t, dtype=np.float64) for w, t in eager), np.float64(0.0))
    if not lazy:
        return np.asarray(base, dtype=np.float64)
    first = lazy[0][1]
    per_group = np.broadcast_to(np.asarray(base, dtype=np.float64), (first.layout.groups,))

    def compute(start: int, blocks: tuple[npt.NDArray[np.generic], ...]) -> npt.NDArray[np.float64]:
        total = sum(w * t.compute(start, blocks) for w, t in lazy)
        return np.asarray(total + per_group[start : start + blocks[0].shape[0], None])

    return LazyTensor(first.layout, first.sources, compute)
