"""Activations applied after the norm: their names and parameters, float64 forms, derivatives.

``parse`` reads ``relu``, ``leaky_relu=0.2``, ``prelu``, ``gelu=tanh``, ``silu`` (defaults as
torch's modules: slope 0.01, PReLU init 0.25, exact GELU). The NumPy functions are imported
lazily, so that parsing needs no NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lncheck.errors import InputError, option

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

ActivationName = Literal["relu", "leaky_relu", "prelu", "gelu", "silu"]
DEFAULTS: dict[str, float | str | None] = {
    "relu": None,
    "leaky_relu": 0.01,  # nn.LeakyReLU's negative_slope
    "prelu": 0.25,  # nn.PReLU's init
    "gelu": "none",  # nn.GELU's approximate: "none" (erf) or "tanh"
    "silu": None,
}
# The largest slope of each activation: how much it can magnify an error in its input
# (GELU's derivative peaks at 1.129, SiLU's at 1.0998).
_LIPSCHITZ = {"relu": 1.0, "gelu": 1.13, "silu": 1.1}


@dataclass(frozen=True)
class Activation:
    """An activation applied after the norm, with its one parameter (slope, init, approximation)."""

    name: ActivationName
    param: float | str | None = None

    def __str__(self) -> str:
        if self.param is None or (self.name == "gelu" and self.param == "none"):
            return self.name
        return f"{self.name}={self.param}"

    @property
    def has_kink(self) -> bool:
        """Whether the derivative jumps at 0 (ReLU and its leaky kinds)."""
        return self.name in ("relu", "leaky_relu", "prelu")

    @property
    def slope_below_zero(self) -> float:
        return 0.0 if self.name == "relu" else float(self.param or 0.0)

    @property
    def lipschitz(self) -> float:
        if self.name in ("leaky_relu", "prelu"):
            return max(1.0, abs(float(self.param or 0.0)))
        return _LIPSCHITZ[self.name]


def parse(value: str | None) -> Activation | None:
    """``"leaky_relu=0.2"`` -> ``Activation("leaky_relu", 0.2)``; ``None`` stays ``None``.

    Raises:
        InputError: an unknown name or a parameter that does not fit it.
    """
    if value is None:
        return None
    name, equals, param = value.partition("=")
    name = name.strip().lower().replace("-", "_")
    where = option("activation")
    if name not in DEFAULTS:
        raise InputError(f"{where}: unknown activation {name!r} (known: {', '.join(DEFAULTS)})")
    default = DEFAULTS[name]
    if equals and not param.strip():  # "leaky_relu=": a value left out, not the default asked
        raise InputError(f"{where} {value!r}: no parameter after '='")
    if not param:
        return Activation(name, default)  # type: ignore[arg-type]
    if name == "gelu":
        if param not in ("none", "tanh"):
            raise InputError(f"{where} gelu={param}: the approximation must be 'none' or 'tanh'")
        return Activation("gelu", param)
    if default is None:
        raise InputError(f"{where} {name} takes no parameter, got {value!r}")
    try:
        number = float(param)
    except ValueError:
        raise InputError(f"{where} {value!r}: {param!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{where} {value!r}: the parameter must be finite")
    return Activation(name, number)  # type: ignore[arg-type]


def function(act: Activation, dtype: str = "float64") -> Callable[[F64], F64]:
    """The activation as a float64 NumPy function.

    A PReLU slope is a parameter torch holds in the compute dtype, so it is rounded to that
    dtype first (LeakyReLU's slope is a plain Python float in torch).
    """
    import numpy as np

    from lncheck.dtypes import round_to

    if act.name == "relu":
        return lambda y: np.maximum(y, 0.0)
    if act.name in ("leaky_relu", "prelu"):
        a = float(act.param or 0.0)
        if act.name == "prelu":
            a = float(round_to(np.array([a]), dtype)[0])  # type: ignore[arg-type]
        return lambda y: np.where(y >= 0, y, a * y)
    if act.name == "silu":

        def silu(y: F64) -> F64:
            with np.errstate(over="ignore"):
                return y / (1.0 + np.exp(-y))

        return silu
    if act.param == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return lambda y: 0.5 * y * (1.0 + np.tanh(c * (y + 0.044715 * y**3)))
    return lambda y: 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)))


def derivative(act: Activation) -> Callable[[F64], F64]:
    """The derivative torch's autograd uses (at 0: 0 for ReLU, the slope for LeakyReLU/PReLU)."""
    import numpy as np

    if act.name == "relu":
        return lambda y: (y > 0).astype(np.float64)
    if act.name in ("leaky_relu", "prelu"):
        slope = float(act.param or 0.0)
        return lambda y: np.where(y > 0, 1.0, slope)
    if act.name == "silu":

        def silu(y: F64) -> F64:
            with np.errstate(over="ignore"):
                s = 1.0 / (1.0 + np.exp(-y))
            return np.asarray(s * (1.0 + y * (1.0 - s)))

        return silu
    if act.param == "tanh":
        c = math.sqrt(2.0 / math.pi)

        def gelu_tanh(y: F64) -> F64:
            t = np.tanh(c * (y + 0.044715 * y**3))
            return np.asarray(0.5 * (1 + t) + 0.5 * y * (1 - t * t) * c * (1 + 3 * 0.044715 * y**2))

        return gelu_tanh

    def gelu(y: F64) -> F64:
        cdf = 0.5 * (1.0 + erf(y / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)
        return np.asarray(cdf + y * pdf)

    return gelu


def erf(y: F64) -> F64:
    """The error function element by element (NumPy has none; the C library's is exact to the
    last bit)."""
    import numpy as np

    return np.asarray(_erf_elementwise()(y), dtype=np.float64)


def _erf_elementwise() -> Callable[..., object]:
    global _ERF
    if _ERF is None:
        import numpy as np

        _ERF = np.frompyfunc(math.erf, 1, 1)
    return _ERF


_ERF: Callable[..., object] | None = None
