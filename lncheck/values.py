"""Option value parsers: a value from TOML, a Python keyword or the command line -> the
canonical value, or an ``InputError`` that names the option through ``errors.option``.

Each takes ``(value, name)``, ``name`` being the option's canonical name. This module imports
neither NumPy nor torch (``lncheck --help`` builds the options table from them).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

from lncheck.errors import InputError, option

Parser = Callable[[Any, str], Any]


def _is_bool(value: object) -> bool:
    # NumPy's bool is not a bool subclass; checked by name so that this module needs no NumPy
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def integer(value: Any, name: str) -> int:
    """An integer (a Python or NumPy integer; not a bool, not a float with no fraction).

    Raises:
        InputError: anything else."""
    if _is_bool(value):
        raise InputError(f"{option(name)} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(f"{option(name)} must be an integer, got {value!r}") from None


def positive(value: Any, name: str) -> int:
    """An integer above 0.

    Raises:
        InputError: not an integer, or 0 or less."""
    number = integer(value, name)
    if number <= 0:
        raise InputError(f"{option(name)} must be positive, got {number}")
    return number


MAX_REPEAT = 1000  # every run after the first is held until the first run's paths are done


def repeat_count(value: Any, name: str) -> int:
    """How many times each candidate runs: 1 to ``MAX_REPEAT``.

    Raises:
        InputError: not an integer, below 1 or above ``MAX_REPEAT``."""
    number = positive(value, name)
    if number > MAX_REPEAT:
        raise InputError(f"{option(name)} must be at most {MAX_REPEAT}, got {number}")
    return number


def non_negative(value: Any, name: str) -> int:
    """An integer, 0 or more.

    Raises:
        InputError: not an integer, or negative."""
    number = integer(value, name)
    if number < 0:
        raise InputError(f"{option(name)} must be 0 or more, got {number}")
    return number


def number(value: Any, name: str) -> float:
    """A finite real number.

    Raises:
        InputError: not a number (a string, a bool, ...), or not finite as a float."""
    result = any_number(value, name)
    if not math.isfinite(result):
        raise InputError(f"{option(name)} must be finite, got {result}")
    return result


def any_number(value: Any, name: str) -> float:
    """A real number, infinite or NaN allowed (checked later, with its partner option).

    Raises:
        InputError: not a number, or an integer beyond the float range."""
    if _is_bool(value) or isinstance(value, (str, bytes)):
        raise InputError(f"{option(name)} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        bits = value.bit_length() if isinstance(value, int) else "too many"
        raise InputError(
            f"{option(name)} must be a number within the float range, got an integer of {bits} bits"
        ) from None
    except (TypeError, ValueError):
        raise InputError(f"{option(name)} must be a number, got {value!r}") from None


def integers(value: Any, name: str) -> tuple[int, ...]:
    """One integer or several: ``4``, ``[3, 4]``, or the command line's ``"3,4"``.

    Raises:
        InputError: a part that is not an integer."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")] if "," in value else value.split()
        if "" in parts:  # '4,,3' or '4,': an item left out, not one to drop
            raise InputError(
                f"{option(name)}: expected integers such as '3 4' or '3,4', got {value!r} "
                "(an empty item)"
            )
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise InputError(
                f"{option(name)}: expected integers such as '3 4' or '3,4', got {value!r}"
            ) from None
    if not _is_bool(value):
        try:
            return (operator.index(value),)
        except TypeError:
            pass
    wrong = InputError(f"{option(name)} must be an integer or a list of integers, got {value!r}")
    if not isinstance(value, (list, tuple)) or any(_is_bool(v) for v in value):
        raise wrong
    try:
        return tuple(operator.index(v) for v in value)
    except TypeError:
        raise wrong from None


def flag(value: Any, name: str) -> bool:
    """``True`` or ``False`` (a Python or NumPy bool).

    Raises:
        InputError: anything else, 0 and 1 included."""
    if not _is_bool(value):
        raise InputError(f"{option(name)} must be true or false, got {value!r}")
    return bool(value)


def text(value: Any, name: str) -> str:
    """A string.

    Raises:
        InputError: anything else."""
    if not isinstance(value, str):
        raise InputError(f"{option(name)} must be a string, got {value!r}")
    return value


def momentum(value: Any, name: str) -> float | None:
    """A number from 0 to 1, the weight of the batch's statistics in the running ones (as
    ``torch.nn.BatchNorm2d(momentum=)``), or ``none``/``None``: the cumulative moving average.

    Raises:
        InputError: another string, or a number outside [0, 1] (NaN and inf included)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"{option(name)} must be a number or 'none', got {value!r}") from None
    result = any_number(value, name)
    if not 0.0 <= result <= 1.0:  # torch takes any number; outside [0, 1] it weighs nothing
        raise InputError(f"{option(name)} must be from 0 to 1 or 'none', got {result:g}")
    return result


def one_of(choices: Callable[[], Iterable[str]]) -> Parser:
    """The parser of a choice among ``choices()`` (asked when a value is parsed, so that a
    registry is read only then). Its ``InputError`` lists the choices, and the closest one."""

    def parse(value: Any, name: str) -> str:
        allowed = tuple(choices())
        if value not in allowed:
            hint = closest(value, allowed)
            raise InputError(
                f"{option(name)} must be one of {', '.join(allowed)}, got {value!r}{hint}"
            )
        return str(value)

    return parse


def closest(value: Any, allowed: tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the entry of ``allowed`` nearest ``value`` (the same but
    for case, ``_`` and ``-``, else ``difflib``'s closest), ``""`` when none is near."""
    if not isinstance(value, str):
        return ""
    import difflib

    squashed = {a.replace("_", ""): a for a in allowed}
    match = squashed.get(value.lower().replace("_", "").replace("-", ""))
    if match is None:
        near = difflib.get_close_matches(value, allowed, n=1)
        match = near[0] if near else None
    return f" (did you mean {match!r}?)" if match else ""


def array(value: Any, name: str) -> Any:
    """A file path (command line, suite), or an array-like (Python API), checked when loaded.

    Raises:
        InputError: ``None``."""
    if value is None:
        raise InputError(f"{option(name)} must be a file or an array, got None")
    return value
