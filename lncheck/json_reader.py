"""JSON input: a list of numbers, or an object of named arrays (``readers.READERS``' reader
for ``.json`` and standard input). Every number is checked while parsing (no infinity, no
integer beyond float64, no key given twice) and the whole is held to the size limit by what
parsing takes, not by its text alone."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import dtypes
from lncheck.candidates import EXPECTED_PREFIX, QUANTITIES
from lncheck.errors import InputError, option
from lncheck.readers import ARRAY_NAMES, INPUT_NAMES, Loaded, opened, over_limit
from lncheck.sources import Source, size_of

MAX_JSON_DEPTH = 64
# Parsed, JSON takes about 25 times its text (a Python float and a list slot per number, then
# the array): 36 MB of it peaked at 1.0 GB. It is held to the limit by that, not by its size
JSON_EXPANSION = 32


def from_json(raw: bytes, limit: int) -> Loaded:
    """The arrays of JSON text ``raw``: a list of numbers (the input, float32), or an object of
    named arrays and a ``dtype``.

    Raises:
        InputError: it is over ``limit`` (bytes; parsing takes ``JSON_EXPANSION`` times its
            size), not UTF-8, invalid, nested too deeply, or holds other than numbers."""
    if len(raw) > limit:
        raise over_limit(len(raw), limit)
    if len(raw) * JSON_EXPANSION > limit:
        raise InputError(
            f"is {len(raw)} bytes of JSON, which takes about {JSON_EXPANSION} times that to "
            f"parse: over the {option('max_bytes')} limit {limit} (save it as .npy)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text, so not JSON") from None
    try:
        doc = json.loads(
            text,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise InputError(f"JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(doc, dict):
        return _from_json_object(doc)
    # Like torch.tensor(data): a plain list of numbers is float32 unless the user says otherwise.
    return Loaded({"input": _json_array(doc, "the JSON array")}, {"input": "float32"})


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys without a word; a file that says two things is
    # an error here, not a coin toss
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise InputError(f"JSON object has the key {key!r} twice")
        doc[key] = value
    return doc


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InputError(f"number {text[:40]} is out of the float64 range")
    return value


def _parse_int(text: str) -> float:
    if len(text.lstrip("-")) > 400:
        raise InputError(f"integer {text[:40]}... is out of the float64 range")
    return _parse_float(text)


def _from_json_object(doc: dict[str, Any]) -> Loaded:
    # a candidate's quantities: a bundle of its own (no input), or an input's expected_<name>
    results = [*QUANTITIES, *(EXPECTED_PREFIX + q for q in QUANTITIES)]
    known = {"data", "dtype", *INPUT_NAMES, *ARRAY_NAMES, *results}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r} in JSON object (known: {', '.join(sorted(known))})"
        )
    given = [k for k in ("data", *INPUT_NAMES) if k in doc]
    if not given and not set(doc) & set(results):
        raise InputError('JSON object has no "data" array')
    if len(given) > 1:
        raise InputError(f"JSON object has both {given[0]!r} and {given[1]!r}; give one input")
    dtype = doc.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in dtypes.DTYPE_NAMES:
        raise InputError(f'"dtype" must be one of {", ".join(dtypes.DTYPE_NAMES)}, got {dtype!r}')
    arrays = {"input": _json_array(doc[given[0]], repr(given[0]))} if given else {}
    for name in (*ARRAY_NAMES, *results):
        if name in doc:
            arrays[name] = _json_array(doc[name], repr(name))
    return Loaded(arrays, {name: dtype for name in arrays})


def _json_array(data: Any, label: str) -> npt.NDArray[np.float64]:
    """The numbers of a JSON array in float64; they are rounded to the compute dtype later.
    ``label`` names it in messages: a key (``'weight'``), or ``the JSON array`` (a bare one)."""
    shape = _json_shape(data, label, 0)
    return np.asarray(np.array(data, dtype=np.float64), dtype=np.float64).reshape(shape)


def _json_shape(data: Any, label: str, depth: int) -> tuple[int, ...]:
    """The shape of a nested list of numbers; raises for ragged, non-numeric or too deep data."""
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{label} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(data, bool) or data is None or isinstance(data, (str, dict)):
        raise InputError(f"{label} holds {_json_kind(data)}; only numbers are allowed")
    if isinstance(data, (int, float)):
        return ()
    if not isinstance(data, list):
        raise InputError(f"{label} holds {_json_kind(data)}; only numbers are allowed")
    if not data:
        return (0,)
    first = _json_shape(data[0], label, depth + 1)
    for item in data[1:]:
        if _json_shape(item, label, depth + 1) != first:
            raise InputError(f"{label} is ragged: its lists at depth {depth + 1} differ in length")
    return (len(data), *first)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    return "an object"


def read(source: Source, limit: int) -> Loaded:
    """A ``.json`` file's arrays (``from_json``; ``readers.READERS``)."""
    if size_of(source) > limit:
        raise over_limit(size_of(source), limit)
    with opened(source) as f:
        return from_json(f.read(), limit)
