"""Rounding to a compute dtype must give exactly the values torch would hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lncheck.dtypes import (
    DTYPES,
    default_compute_dtype,
    exact_sums,
    inexact_integers,
    inverse_spacing,
    representable_between,
    round_to,
)
from lncheck.errors import InputError
from lncheck.options import parse

from .support import make_case

TORCH = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _values() -> np.ndarray:
    rng = np.random.default_rng(0)
    wide = rng.standard_normal(20000) * 10.0 ** rng.integers(-45, 45, 20000)
    special = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        65504.0,
        65519.99,
        65520.0,
        3.4e38,
        1e-8,
        6e-8,
        1 + 2**-11 + 2**-40,  # float64 -> float16 directly rounds up; via float32 it ties to even
        1 + 2**-8 + 2**-30,
    ]
    return np.concatenate([wide, special])


@pytest.mark.parametrize("name", list(TORCH))
@pytest.mark.parametrize("source", [np.float64, np.float32])
def test_round_to_matches_torch(name: str, source: type) -> None:
    with np.errstate(over="ignore"):
        x = _values().astype(source)
    got = round_to(x, name).astype(np.float64)
    want = torch.tensor(x).to(TORCH[name]).double().numpy()
    np.testing.assert_array_equal(got, want)


def test_double_rounding_follows_torch_not_numpy() -> None:
    x = np.array([1 + 2**-11 + 2**-40])
    assert np.float16(x[0]) != 1.0  # NumPy's direct rounding goes up
    assert round_to(x, "float16")[0] == 1.0  # torch goes through float32 and ties to even


def test_no_copy_when_already_in_dtype() -> None:
    x = np.ones(5, dtype=np.float32)
    assert round_to(x, "float32") is x


def test_storage_and_eps() -> None:
    assert DTYPES["bfloat16"].storage is np.float32
    assert DTYPES["float16"].eps == 2.0**-10
    assert DTYPES["float32"].unit_roundoff == 2.0**-24
    assert DTYPES["bfloat16"].eps == float(torch.finfo(torch.bfloat16).eps)


def test_default_compute_dtype() -> None:
    assert default_compute_dtype(np.dtype(np.float16)) == ("float16", None)
    name, note = default_compute_dtype(np.dtype(np.int64))
    assert name == "float32" and note is not None and "int64" in note


def test_bfloat16_range_is_finite() -> None:
    assert math.isfinite(DTYPES["bfloat16"].max)


def test_unknown_dtype_is_an_input_error() -> None:
    with pytest.raises(InputError, match="--dtype must be one of float64, float32, float16"):
        parse({"dtype": "float8"}, "cli")
    with pytest.raises(
        InputError,
        match=r"^dtype= must be one of float64, float32, float16, bfloat16, got 'float8'",
    ):
        make_case(np.ones((2, 4)), normalized_shape=4, dtype="float8")


@pytest.mark.parametrize("mantissa_bits", [7, 10, 23, 52])
def test_inverse_spacing_is_frexp_and_ldexp_bit_for_bit(mantissa_bits: int) -> None:
    """The exponent-bit shortcut gives exactly ``ldexp(1, mantissa_bits + 1 - frexp(x)[1])``,
    also where it must fall back (NaN, inf, results beyond float64's normal range)."""

    def slow(x: np.ndarray) -> np.ndarray:
        return np.ldexp(1.0, mantissa_bits + 1 - np.frexp(x)[1])

    rng = np.random.default_rng(0)
    powers = np.ldexp(1.0, np.arange(-1022, 1024))
    samples = [
        np.exp(rng.uniform(-30, 30, size=(7, 13))),
        np.exp(rng.uniform(-700, 700, size=(7, 13))),
        powers.reshape(1, -1),
        np.nextafter(powers, 0.0).reshape(1, -1),
        np.array([[1.0, np.inf]]),
        np.array([[1.0, np.nan]]),
        np.zeros((0, 3)),
    ]
    with np.errstate(all="ignore"):
        for x in samples:
            x = np.maximum(x, np.finfo(np.float64).tiny)
            got = inverse_spacing(x.copy(), mantissa_bits)
            assert np.array_equal(got.view(np.int64), slow(x).view(np.int64))


@pytest.mark.parametrize("name", ["float64", "float32", "float16", "bfloat16"])
def test_representable_between_counts_every_value_by_torch(name: str) -> None:
    # every value of the dtype between the ends, enumerated by torch's nextafter
    dtype = getattr(torch, name)
    for low, high in [(1.0, 1.0), (1.0, 1.25), (-0.5, 0.25), (-3.0, -2.0), (0.0, 1e-3)]:
        lo, hi = (torch.tensor(v, dtype=dtype) for v in (low, high))
        count, v = 1, lo
        while v < hi and count < 5000:
            v = torch.nextafter(v, torch.tensor(math.inf, dtype=dtype))
            count += 0 if v == 0 and torch.signbit(v) else 1  # both zeros count once
        if count >= 5000:  # too many to enumerate: the spacing's count instead
            continue
        ends = np.array([float(lo)]), np.array([float(hi)])
        assert representable_between(*ends, name)[0] == count, (name, low, high)
    # 1 to 2 holds 2 ** mantissa_bits + 1 values, in every dtype
    one, two = np.array([1.0]), np.array([2.0])
    assert representable_between(one, two, name)[0] == 2 ** DTYPES[name].mantissa_bits + 1
    assert representable_between(np.array([np.nan]), two, name)[0] == math.inf


def test_representable_between_narrow_float64_ranges_are_exact() -> None:
    # float64's ordinals pass 2**53: counted as integers, not floats (where 1 to 1 + 100 ulps
    # read as a single value)
    for k in (1, 100, 255, 600):
        step = k * 2.0**-52
        low, high = np.array([1.0, -1.0 - step]), np.array([1.0 + step, -1.0])
        assert representable_between(low, high, "float64").tolist() == [k + 1, k + 1]
    # across zero, past 2**63 values: as good as infinite
    assert representable_between(np.array([-1e308]), np.array([1e308]), "float64")[0] == math.inf


def test_integers_beyond_the_dtypes_exact_range_are_noted() -> None:
    at = np.array([-(2**24), 2**24], dtype=np.int64)  # every integer up to 2**24 is a float32
    assert inexact_integers(at, "float32", "input") is None
    for beyond in (np.array([2**24 + 1]), np.array([-(2**24) - 1]), 2**60 + np.arange(4)):
        note = inexact_integers(beyond.astype(np.int64), "float32", "input")
        assert note is not None and "float32 holds every integer only up to 2^24 = 16777216" in note
    top = np.array([np.iinfo(np.uint64).max], dtype=np.uint64)  # no overflow on the way
    assert "up to 18446744073709551615 in size" in (inexact_integers(top, "float64", "input") or "")
    assert inexact_integers(np.array([2049], np.int16), "float16", "weight") is not None
    assert inexact_integers(np.array([2048], np.int16), "float16", "weight") is None
    assert inexact_integers(np.array([2.0**60]), "float32", "input") is None  # floats: rounded


def test_a_case_of_large_integers_says_they_are_rounded() -> None:
    # four distinct int64 values, one float32 value: a constant row, and the notes say why
    case = make_case((2**60 + np.arange(4, dtype=np.int64)).reshape(1, 4), normalized_shape=4)
    assert case.notes[0] == "input dtype int64 is not floating: computing in float32"
    assert case.notes[1] == (
        "input holds integers up to 1152921504606846979 in size; float32 holds every integer "
        "only up to 2^24 = 16777216: larger ones may be rounded, and distinct ones become equal"
    )
    weighted = make_case(
        np.ones((2, 4), np.float32), normalized_shape=4, weight=np.full(4, 2**25 + 1, np.int64)
    )
    assert any(n.startswith("weight holds integers up to 33554433 in size") for n in weighted.notes)
    small = make_case(np.arange(8, dtype=np.int32).reshape(2, 4), normalized_shape=4)
    assert not any("holds integers" in n for n in small.notes)


@pytest.mark.parametrize(
    ("value", "n", "exact"),
    [
        (3.0, 1000, True),  # 2 bits + 10 bits
        (-29488.0, 1000, True),  # a float16 value: 11 bits + 10
        (1.0 + 2.0**-23, 2, False),  # 24 bits + 2
        (1.0 + 2.0**-12, 2047, True),  # 13 bits + 11
        (1.0 + 2.0**-12, 2048, False),  # 13 + 12: (a safe bound; 2048 itself is a power of 2)
        (0.0, 10**6, True),
        (2.0**-30, 1 << 20, True),
        (math.nan, 4, False),
        (math.inf, 4, False),
    ],
)
def test_exact_sums_of_equal_values(value: float, n: int, exact: bool) -> None:
    assert bool(exact_sums(np.array([value]), n, 24)[0]) is exact
    if exact and math.isfinite(value):
        # sequential float32 partial sums are k * value exactly (float64 holds them exactly)
        partial = np.cumsum(np.full(n, value, dtype=np.float32), dtype=np.float32)
        assert np.array_equal(partial.astype(np.float64), np.arange(1, n + 1) * value)
