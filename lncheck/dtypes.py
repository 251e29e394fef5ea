"""The floating dtypes torch computes in, and rounding NumPy arrays to them exactly as torch does.

NumPy has no bfloat16, so values rounded to bfloat16 are stored in float32 (which holds them
exactly). Rounding goes through float32 first because that is what torch does when it converts
float64 to float16 or bfloat16; rounding float64 straight to float16 differs in rare ties.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

DTypeName = Literal["float64", "float32", "float16", "bfloat16"]
DTYPE_NAMES: tuple[DTypeName, ...] = get_args(DTypeName)


@dataclass(frozen=True)
class DTypeInfo:
    """What lncheck needs to know about a compute dtype."""

    name: DTypeName
    mantissa_bits: int
    storage: type[np.floating]  # the NumPy dtype that holds its values exactly
    max: float
    tiny: float

    @property
    def eps(self) -> float:
        """Machine epsilon: the gap between 1 and the next larger value."""
        return 2.0**-self.mantissa_bits

    @property
    def unit_roundoff(self) -> float:
        """The largest relative error of rounding to nearest: eps / 2."""
        return 2.0 ** -(self.mantissa_bits + 1)


DTYPES: dict[DTypeName, DTypeInfo] = {
    "float64": DTypeInfo("float64", 52, np.float64, float(np.finfo(np.float64).max), 2.0**-1022),
    "float32": DTypeInfo("float32", 23, np.float32, float(np.finfo(np.float32).max), 2.0**-126),
    "float16": DTypeInfo("float16", 10, np.float16, 65504.0, 2.0**-14),
    "bfloat16": DTypeInfo("bfloat16", 7, np.float32, float.fromhex("0x1.fep127"), 2.0**-126),
}


def default_compute_dtype(array_dtype: np.dtype[np.generic]) -> tuple[DTypeName, str | None]:
    """The dtype torch computes in when the user does not say, and a note when it is a guess.

    Floating inputs keep their dtype; integer inputs become float32 (as
    ``torch.tensor(x, dtype=torch.float32)`` would), with a note saying so.
    """
    if array_dtype == np.float64:
        return "float64", None
    if array_dtype == np.float32:
        return "float32", None
    if array_dtype == np.float16:
        return "float16", None
    return "float32", f"input dtype {array_dtype} is not floating: computing in float32"


def inexact_integers(a: npt.NDArray[Any], dtype: DTypeName, role: str) -> str | None:
    """A note where integer data ``a`` reach beyond ``2**(p + 1)`` (``p`` the mantissa bits of
    ``dtype``), past which not every integer is a ``dtype`` value: some are rounded there, and
    distinct inputs may become equal (int64 values 2**60 + 0..3 are one float32 value)."""
    if a.dtype.kind not in "iu" or not a.size:
        return None
    bits = DTYPES[dtype].mantissa_bits + 1
    reach = max(abs(int(a.min())), abs(int(a.max())))  # Python ints: exact, no overflow
    if reach <= 2**bits:
        return None
    return (
        f"{role} holds integers up to {reach} in size; {dtype} holds every integer only up to "
        f"2^{bits} = {2**bits}: larger ones may be rounded, and distinct ones become equal"
    )


def real_numbers(a: npt.NDArray[Any], where: str, role: str) -> npt.NDArray[Any]:
    """``a`` checked to hold real numbers (floating or integer), in native byte order (torch
    cannot take big-endian data).

    Raises:
        InputError: boolean (a mask saved in place of numbers, refused as JSON's ``true`` is),
            structured, complex, object, string or extended-precision data; the message starts
            with ``where`` (where one is given) and names ``role``.
    """
    from lncheck.errors import InputError

    kind = a.dtype.kind
    head = f"{where}: {role}" if where else role
    if a.dtype.names is not None:
        raise InputError(f"{head} has a structured dtype {a.dtype}; expected plain numbers")
    if kind == "c":
        raise InputError(f"{head} is complex ({a.dtype}); normalization layers take real numbers")
    if kind == "b":
        raise InputError(f"{head} is boolean; expected floating or integer numbers")
    if kind not in "fiu" or (kind == "f" and a.dtype.itemsize > 8):
        raise InputError(f"{head} has dtype {a.dtype}; expected floating or integer numbers")
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != _NATIVE:
        return a.astype(a.dtype.newbyteorder("="))
    return a


def holds_bool(items: list[Any] | tuple[Any, ...]) -> bool:
    """Whether nested lists hold a Python or NumPy boolean (an all-boolean array is refused
    by its dtype; mixed with numbers, NumPy makes it a number)."""
    pending: list[Any] = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, (list, tuple)):
                pending.append(item)
            elif isinstance(item, (bool, np.bool_)) or getattr(item, "dtype", None) == np.bool_:
                return True
    return False


_NATIVE = "<" if sys.byteorder == "little" else ">"


def round_to(x: npt.NDArray[Any], name: DTypeName) -> npt.NDArray[Any]:
    """Return ``x`` rounded to dtype ``name`` the way torch rounds it, stored in its storage dtype.

    Returns ``x`` itself (no copy) when it already has the storage dtype, so memory-mapped
    inputs stay memory-mapped.

    >>> round_to(np.array([1.0 + 2.0**-9]), "bfloat16")
    array([1.], dtype=float32)
    """
    target = DTYPES[name]
    if x.dtype == target.storage and name != "bfloat16":
        return x
    if name == "float64":
        return x.astype(np.float64)
    # Overflow to inf is what torch does too; the report counts the infinities.
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = x if x.dtype == np.float32 else x.astype(np.float32)
        if name == "float32":
            return as32
        if name == "float16":
            return as32.astype(np.float16)
        return _round_float32_to_bfloat16(as32)


def _round_float32_to_bfloat16(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    # Round to nearest even on the upper 16 bits of the float32 pattern, as c10::BFloat16 does.
    bits = np.ascontiguousarray(x).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    out = rounded.view(np.float32)
    nan = np.isnan(x)
    if nan.any():
        out = np.where(nan, np.float32(np.nan), out)
    return out.reshape(x.shape)


def inverse_spacing(scale: npt.NDArray[np.float64], mantissa_bits: int) -> npt.NDArray[np.float64]:
    """``2 ** (mantissa_bits + 1 - e)`` for ``scale = f * 2 ** e`` (``np.frexp``), in place.

    Built from the exponent bits rather than by ``np.ldexp``, which takes as long as dozens of
    passes over the block: the power of two's biased exponent is ``mantissa_bits + 2046``
    minus ``scale``'s. Where that would leave float64's normal range, or ``scale`` holds NaN or
    inf, ``frexp`` and ``ldexp`` give the same values the slow way."""
    low, high = float(scale.min(initial=np.inf)), float(scale.max(initial=0.0))
    top = mantissa_bits + 2046
    # the biased exponents of the powers of two at both ends must be normal (1..2046)
    fits = low >= _FLOAT64_TINY and high < np.inf  # also False for a NaN
    if not (fits and top - 2046 <= np.frexp(low)[1] + 1022 <= np.frexp(high)[1] + 1022 < top):
        _, exponent = np.frexp(scale)
        return np.asarray(np.ldexp(1.0, mantissa_bits + 1 - exponent), dtype=np.float64)
    bits = scale.view(np.uint64)  # unsigned: the difference is in range, its terms are not
    np.bitwise_and(bits, _EXPONENT_BITS, out=bits)
    np.subtract(np.uint64(top << 52), bits, out=bits)
    return scale


_EXPONENT_BITS = np.uint64(0x7FF << 52)


_FLOAT64_TINY = np.finfo(np.float64).tiny


# per dtype: the integer view of its storage, and the bits below its own (bfloat16 in float32)
_ORDINALS: dict[DTypeName, tuple[type[np.integer[Any]], int]] = {
    "float64": (np.int64, 0),
    "float32": (np.int32, 0),
    "float16": (np.int16, 0),
    "bfloat16": (np.int32, 16),
}


def representable_between(
    low: npt.NDArray[np.float64], high: npt.NDArray[np.float64], name: DTypeName
) -> npt.NDArray[np.float64]:
    """How many values of dtype ``name`` lie in ``[low, high]`` (element-wise; both ends values
    of that dtype; ``inf`` where either is not finite). IEEE formats order their bit patterns
    as their values within each sign, so the count is a difference of sign-magnitude
    integers (both zeros count once).

    >>> representable_between(np.array([1.0]), np.array([2.0]), "bfloat16")
    array([129.])
    """
    ints, below = _ORDINALS[name]
    storage = DTYPES[name].storage

    def ordinal(v: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        bits = np.asarray(v, dtype=storage).view(ints).astype(np.int64)
        magnitude = (bits & np.int64(np.iinfo(ints).max)) >> below
        return np.where(bits < 0, -magnitude, magnitude)

    with np.errstate(all="ignore"):
        finite = np.isfinite(low) & np.isfinite(high)
        safe_low, safe_high = np.where(finite, low, 0.0), np.where(finite, high, 0.0)
        top, bottom = ordinal(safe_high), ordinal(safe_low)
        # subtracted as integers (float64's own ordinals exceed its 53 bits); a float64 range
        # across zero whose count passes 2**63 wraps: that many values are as good as infinite
        steps = top - bottom
        wrapped = (top >= 0) & (bottom < 0) & (steps < 0)
        count = np.where(wrapped, np.inf, steps.astype(np.float64) + 1.0)
    return np.where(finite, np.fmax(count, 1.0), np.inf)


def ulp(magnitude: npt.NDArray[np.float64] | float, dtype: DTypeInfo) -> npt.NDArray[np.float64]:
    """The spacing of ``dtype``'s numbers at ``magnitude``; below the smallest normal number it
    is the (constant) spacing of the subnormals."""
    _, exponent = np.frexp(np.maximum(magnitude, dtype.tiny))
    return np.asarray(np.ldexp(1.0, exponent - 1 - dtype.mantissa_bits), dtype=np.float64)


def exact_sums(
    value: npt.NDArray[np.float64], n: int, accumulator_bits: int
) -> npt.NDArray[np.bool_]:
    """Per group of ``n`` equal values ``value``, whether every partial sum ``k * value``
    (``k <= n``) is exact with ``accumulator_bits`` significant bits: the value's own
    significant bits plus ``n``'s fit. Then any order of summation (sequential, pairwise,
    Welford, Kahan) gives ``n * value`` exactly, and the mean ``value`` itself."""
    finite = np.isfinite(value)
    mantissa, _ = np.frexp(np.where(finite, value, 0.0))
    whole = np.abs(np.ldexp(mantissa, 53)).astype(np.int64)  # exact: 53 bits at most
    lowest = whole & -whole  # its lowest set bit (0 for a zero value)
    trailing = np.log2(np.maximum(lowest, 1)).astype(np.int64)  # exact for a power of two
    bits = np.where(whole > 0, 53 - trailing, 0)
    return np.asarray(finite & (bits + int(n).bit_length() <= accumulator_bits))
