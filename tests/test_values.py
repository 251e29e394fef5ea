"""Option value parsers (``lncheck.values``): each canonical value, and each refusal naming the
option through its marker (spelled by the caller's surface; ``str`` gives the bare name)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.values import (
    any_number,
    integer,
    integers,
    momentum,
    number,
    one_of,
    positive,
    repeat_count,
)


@pytest.mark.parametrize(
    ("value", "wanted"), [("3,4", (3, 4)), ("3 4", (3, 4)), (4, (4,)), ([3, 4], (3, 4))]
)
def test_integers_from_every_surface(value: Any, wanted: tuple[int, ...]) -> None:
    assert integers(value, "normalized_shape") == wanted


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (integer, True, "groups must be an integer, got True"),
        (integer, np.bool_(True), "groups must be an integer, got"),
        (integer, 2.5, "groups must be an integer, got 2.5"),
        (positive, 0, "groups must be positive, got 0"),
        (integers, "3,x", "groups: expected integers such as '3 4' or '3,4', got '3,x'"),
        (
            integers,
            "4,,3",
            "groups: expected integers such as '3 4' or '3,4', got '4,,3' (an empty item)",
        ),
        (integers, [3, True], "groups must be an integer or a list of integers"),
        (number, "1e-5", "groups must be a number, got '1e-5'"),
        (number, math.inf, "groups must be finite, got inf"),
        (number, 10**400, "groups must be a number within the float range, got an integer of 1329"),
        (any_number, -(10**400), "groups must be a number within the float range"),
        (repeat_count, 0, "groups must be positive, got 0"),
        (repeat_count, 10**8, "groups must be at most 1000, got 100000000"),
        (momentum, "fast", "groups must be a number or 'none', got 'fast'"),
        (momentum, math.nan, "groups must be from 0 to 1 or 'none', got nan"),
        (momentum, -0.5, "groups must be from 0 to 1 or 'none', got -0.5"),
        (momentum, "7", "groups must be from 0 to 1 or 'none', got 7"),
        (momentum, math.inf, "groups must be from 0 to 1 or 'none', got inf"),
    ],
)
def test_each_refusal_names_the_option(parse: Any, value: Any, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse(value, "groups")
    assert str(raised.value).startswith(message)


def test_numbers_and_momentum() -> None:
    assert number(np.float32(0.5), "eps") == 0.5
    assert math.isnan(any_number(math.nan, "atol"))  # checked later, with its partner
    assert momentum("None", "momentum") is None and momentum(None, "momentum") is None
    assert momentum("0.1", "momentum") == 0.1
    assert momentum(0, "momentum") == 0.0 and momentum(1, "momentum") == 1.0


def test_one_of_suggests_the_closest_choice() -> None:
    parse = one_of(lambda: ("layer_norm", "group_norm"))
    assert parse("group_norm", "op") == "group_norm"
    with pytest.raises(InputError, match=r"got 'GroupNorm' \(did you mean 'group_norm'\?\)$"):
        parse("GroupNorm", "op")
    with pytest.raises(InputError, match=r"must be one of layer_norm, group_norm, got 'xyz'$"):
        parse("xyz", "op")
