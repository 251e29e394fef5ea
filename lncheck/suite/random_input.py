"""A suite case's generated input: ``random = {shape = [8, 16], seed = 0, dist = "normal",
...}``, drawn with NumPy's seeded generator so that a case is the same on every machine."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.errors import InputError, option
from lncheck.readers import MAX_DIMS
from lncheck.values import integer, integers, number, one_of


@dataclass(frozen=True)
class RandomInput:
    """A generated input: ``random = {shape = [8, 16], seed = 0, dist = "normal", ...}``."""

    shape: tuple[int, ...]
    seed: int = 0
    dist: str = "normal"
    mean: float = 0.0
    std: float = 1.0
    low: float = 0.0
    high: float = 1.0

    def generate(self, dtype: str | None) -> npt.NDArray[np.floating]:
        """The input, in float64 if the case computes in float64 and float32 otherwise (like
        ``torch.randn``); the values depend on the seed only."""
        rng = np.random.default_rng(self.seed)
        if self.dist == "normal":
            x = rng.normal(self.mean, self.std, size=self.shape)
        else:
            x = rng.uniform(self.low, self.high, size=self.shape)
        if dtype == "float64":
            return x
        with np.errstate(over="ignore"):  # a huge std overflows float32 to inf, as torch would
            return x.astype(np.float32)

    def describe(self) -> str:
        spread = (
            f"mean={self.mean}, std={self.std}"
            if self.dist == "normal"
            else f"{self.low}..{self.high}"
        )
        return f"random({self.dist}, shape={self.shape}, {spread}, seed={self.seed})"


def _non_negative(value: Any, key: str) -> float:
    result = number(value, key)
    if result < 0:
        raise InputError(f"{option(key)} must be 0 or more, got {value}")
    return result


def _seed(value: Any, key: str) -> int:
    result = integer(value, key)
    if result < 0:
        raise InputError(f"{option(key)} must be 0 or more, got {result}")
    return result


RANDOM_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "shape": integers,
    "seed": _seed,
    "dist": one_of(lambda: ("normal", "uniform")),
    "mean": number,
    "std": _non_negative,
    "low": number,
    "high": number,
}


def check_generated(random: RandomInput, max_bytes: int | None) -> None:
    """A generated input counts against ``max_bytes`` as a file would: by what drawing it
    takes, 8 bytes per element (NumPy draws in float64)."""
    from lncheck.readers import default_max_bytes

    limit = default_max_bytes() if max_bytes is None else max_bytes
    need = math.prod(random.shape) * 8
    if need > limit:
        raise InputError(
            f"key 'random.shape': {list(random.shape)} takes {need} bytes to draw, over the "
            f"{option('max_bytes')} limit {limit}"
        )


def random_input(value: Any) -> RandomInput:
    """The ``random`` table of a case, checked.

    Raises:
        InputError: an unknown key, a missing shape, a key of the other distribution, or
            bounds out of order; named as ``key 'random.<key>'``."""
    if not isinstance(value, dict):
        raise InputError("key 'random' must be a table such as {shape = [8, 16], seed = 0}")
    unknown = sorted(set(value) - set(RANDOM_KEYS))
    if unknown:
        raise InputError(f"key 'random.{unknown[0]}': unknown (known: {', '.join(RANDOM_KEYS)})")
    if "shape" not in value:
        raise InputError("key 'random.shape' is required")
    parsed = {k: RANDOM_KEYS[k](v, f"random.{k}") for k, v in value.items()}
    shape = parsed["shape"]
    if any(n <= 0 for n in shape) or math.prod(shape) > 1 << 28:
        raise InputError(f"key 'random.shape': {shape} must be positive and at most 2**28 elements")
    if len(shape) > MAX_DIMS:
        raise InputError(
            f"key 'random.shape' has {len(shape)} dims; NumPy holds at most {MAX_DIMS}"
        )
    dist = parsed.get("dist", "normal")
    idle = (
        [k for k in ("mean", "std") if k in value]
        if dist == "uniform"
        else [k for k in ("low", "high") if k in value]
    )
    if idle:
        takes = "low and high" if dist == "uniform" else "mean and std"
        raise InputError(
            f"key 'random.{idle[0]}' does not apply to dist = {dist!r} (it takes {takes})"
        )
    low, high = parsed.get("low", 0.0), parsed.get("high", 1.0)
    if not low < high or math.isinf(high - low):
        raise InputError(f"keys 'random.low' and 'random.high': need low < high, got {low}, {high}")
    return RandomInput(**parsed)
