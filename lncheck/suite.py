"""Suites: many cases in one TOML file, validated whole before anything runs.

A suite has an optional ``[defaults]`` table and one ``[[case]]`` table per case. A case takes
every option ``lncheck compare`` takes, under the option's name with underscores
(``channel_axis``, ``running_mean``, ...), plus ``name``, ``input`` (a path relative to the
suite file) or ``random`` (a generated input), and ``skip``/``xfail`` (a reason). Defaults
apply to every case; a case overrides them.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.dtypes import DTYPE_NAMES
from lncheck.errors import InputError, LncheckError
from lncheck.io import CaseSpec, load
from lncheck.layers import OP_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PATH_KEYS = ("weight", "bias", "expected", "running_mean", "running_var", "grad_output")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{key} must be a number, got {value!r}")
    return float(value)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{key} must be an integer, got {value!r}")
    return value


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string, got {value!r}")
    return value


def _integers(value: Any, key: str) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or not items:
        raise InputError(f"{key} must be an integer or a list of integers, got {value!r}")
    return tuple(_integer(v, key) for v in items)


def _one_of(choices: Iterable[str]) -> Callable[[Any, str], str]:
    allowed = tuple(choices)

    def check(value: Any, key: str) -> str:
        if value not in allowed:
            raise InputError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return check


def _momentum(value: Any, key: str) -> float | None:
    if value == "none":
        return None
    return _number(value, key)


# Every option a case may set, with the check that turns its TOML value into a CaseSpec value.
OPTIONS: dict[str, Callable[[Any, str], Any]] = {
    "op": _one_of(OP_NAMES),
    "shape": _integers,
    "axes": _integers,
    "eps": _number,
    "groups": _integer,
    "channel_axis": _integer,
    "affine": _flag,
    "train": _flag,
    "track_running_stats": _flag,
    "momentum": _momentum,
    "size": _integer,
    "alpha": _number,
    "beta": _number,
    "k": _number,
    "activation": _text,
    **dict.fromkeys(PATH_KEYS, _text),
    "dtype": _one_of(DTYPE_NAMES),
    "device": _text,
    "vs_device": _text,
    "grad": _flag,
    "seed": _integer,
    "tolerance": _one_of(("auto", "fixed")),
    "rtol": _number,
    "atol": _number,
    "equal_nan": _flag,
    "max_bytes": _integer,
}
CASE_KEYS = ("name", "input", "random", "skip", "xfail")
assert set(OPTIONS) <= {f.name for f in fields(CaseSpec)}


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


RANDOM_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "shape": _integers,
    "seed": _integer,
    "dist": _one_of(("normal", "uniform")),
    "mean": _number,
    "std": _number,
    "low": _number,
    "high": _number,
}


@dataclass(frozen=True)
class SuiteCase:
    """One validated case of a suite."""

    name: str
    index: int
    spec: CaseSpec
    random: RandomInput | None = None
    skip: str | None = None
    xfail: str | None = None

    def load(self) -> Case:
        """The case, with its generated or file input.

        Raises:
            InputError: as ``io.load``.
        """
        if self.random is None:
            return load(self.spec)
        return load(self.spec, given={"input": self.random.generate(self.spec.dtype)})


@dataclass(frozen=True)
class Suite:
    path: Path
    cases: tuple[SuiteCase, ...]


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file: every case is loaded once (and dropped), so that an
    unknown key, a missing file or a bad value is found before anything runs.

    Raises:
        InputError: naming the suite file, the case and the key.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such suite file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a suite file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML: {e}") from None
    unknown = sorted(set(doc) - {"defaults", "case"})
    if unknown:
        raise InputError(
            f"{path}: unknown top-level key {unknown[0]!r} (expected [defaults] and [[case]])"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: [defaults] must be a table")
    raw_cases = doc.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise InputError(f"{path}: no cases: add at least one [[case]] table")
    cases = []
    names: set[str] = set()
    for index, raw in enumerate(raw_cases):
        where = f"{path}: case #{index + 1}"
        if not isinstance(raw, dict):
            raise InputError(f"{where}: must be a table")
        name = raw.get("name", f"case{index + 1}")
        if not isinstance(name, str) or not name or "/" in name or not name.isprintable():
            raise InputError(
                f"{where}: key 'name' must be a non-empty printable string without '/', "
                f"got {name!r}"
            )
        where = f"{path}: case {name!r}"
        if name in names:
            raise InputError(f"{where}: key 'name' repeats another case's name")
        names.add(name)
        try:
            merged = {**defaults, **raw}
            for own, other in (("input", "random"), ("random", "input")):
                if own in raw and other not in raw:  # a case's input replaces the default one
                    merged.pop(other, None)
            case = _case(path.parent, index, name, merged, set(defaults))
            if case.skip is None:
                _validate(case)
        except LncheckError as e:
            raise InputError(f"{where}: {e}") from None
        cases.append(case)
    return Suite(path, tuple(cases))


def _case(
    root: Path, index: int, name: str, merged: dict[str, Any], from_defaults: set[str]
) -> SuiteCase:
    unknown = sorted(set(merged) - set(OPTIONS) - set(CASE_KEYS))
    if unknown:
        place = "[defaults]" if unknown[0] in from_defaults else "case"
        raise InputError(f"key {unknown[0]!r}: unknown {place} key")
    options: dict[str, Any] = {}
    for key, value in merged.items():
        if key in OPTIONS:
            options[key] = OPTIONS[key](value, f"key {key!r}")
    for key in PATH_KEYS:
        if key in options:
            options[key] = str(_existing(root, options[key], key))
    random = None
    if "random" in merged and "input" in merged:
        raise InputError("keys 'input' and 'random' both given: give one")
    if "random" in merged:
        random = _random(merged["random"])
        source = random.describe()
    elif "input" in merged:
        source = str(_existing(root, _text(merged["input"], "key 'input'"), "input"))
    else:
        raise InputError("key 'input' or 'random' is required")
    skip = _reason(merged.get("skip"), "skip")
    xfail = _reason(merged.get("xfail"), "xfail")
    spec = CaseSpec(input=source, name=name, **options)
    return SuiteCase(name, index, spec, random, skip, xfail)


def _existing(root: Path, value: str, key: str) -> Path:
    path = (root / value) if not Path(value).is_absolute() else Path(value)
    if not path.exists():
        raise InputError(f"key {key!r}: no such file {str(path)!r}")
    return path


def _reason(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if value is True:
        return key
    return _text(value, f"key {key!r}")


def _random(value: Any) -> RandomInput:
    if not isinstance(value, dict):
        raise InputError("key 'random' must be a table such as {shape = [8, 16], seed = 0}")
    unknown = sorted(set(value) - set(RANDOM_KEYS))
    if unknown:
        raise InputError(f"key 'random.{unknown[0]}': unknown (known: {', '.join(RANDOM_KEYS)})")
    if "shape" not in value:
        raise InputError("key 'random.shape' is required")
    parsed = {k: RANDOM_KEYS[k](v, f"key 'random.{k}'") for k, v in value.items()}
    shape = parsed["shape"]
    if any(n <= 0 for n in shape) or math.prod(shape) > 1 << 28:
        raise InputError(f"key 'random.shape': {shape} must be positive and at most 2**28 elements")
    if parsed.get("seed", 0) < 0:
        raise InputError(f"key 'random.seed' must be 0 or more, got {parsed['seed']}")
    for key in ("mean", "std", "low", "high"):
        if key in parsed and not math.isfinite(parsed[key]):
            raise InputError(f"key 'random.{key}' must be finite, got {parsed[key]}")
    if parsed.get("std", 1.0) < 0:
        raise InputError(f"key 'random.std' must be 0 or more, got {parsed['std']}")
    low, high = parsed.get("low", 0.0), parsed.get("high", 1.0)
    if not low < high or math.isinf(high - low):
        raise InputError(f"keys 'random.low' and 'random.high': need low < high, got {low}, {high}")
    return RandomInput(**parsed)


def _validate(case: SuiteCase) -> None:
    """Everything but running: files readable, shapes fitting the layer, options consistent."""
    if case.random is None:
        load(case.spec)
    else:  # the shape is what matters: zeros stand in for the generated values
        load(case.spec, given={"input": np.zeros(case.random.shape, dtype=np.float32)})


def select(
    cases: Iterable[SuiteCase], *, shard: tuple[int, int] | None = None, pattern: str | None = None
) -> list[SuiteCase]:
    """The cases a run takes: shard ``(i, n)`` keeps every n-th case from the i-th (0-based) of
    the whole suite, so shards never overlap; ``pattern`` then keeps names containing it (or
    matching it, if it has glob characters)."""
    if shard is not None:
        _check_shard(shard)
    chosen = [c for c in cases if shard is None or c.index % shard[1] == shard[0]]
    if pattern is None:
        return chosen
    if any(ch in pattern for ch in "*?["):
        return [c for c in chosen if fnmatch.fnmatchcase(c.name, pattern)]
    return [c for c in chosen if pattern in c.name]


def _check_shard(shard: object) -> None:
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    )
    if not ok or not 0 <= shard[0] < shard[1]:  # type: ignore[index]
        raise InputError(f"shard must be (i, n) with integers 0 <= i < n, got {shard!r}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``.

    Raises:
        InputError: not of the form I/N with 0 <= I < N.
    """
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must be I/N such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise InputError(f"--shard {text}: I must be in 0..N-1 (shards are numbered from 0)")
    return i, n
