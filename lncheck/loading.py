"""From ``Settings`` and files (or arrays in memory) to a ``Case``.

Arrays are read with ``readers``, checked (real numbers, native byte order), rounded to the
compute dtype as the backend will round them, and matched against the op's spec
(``layer_arrays``: a weight of the wrong shape, running statistics an op does not keep, an
eval-mode BatchNorm without them are input errors naming the option). Nothing here runs a
backend.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import dtypes, layer_arrays, ops
from lncheck.candidates import EXPECTED_PREFIX, QUANTITIES, bundles, command, specs
from lncheck.candidates.callable import resolve
from lncheck.case import Case
from lncheck.dtypes import DTYPES, DTypeName, holds_bool, real_numbers
from lncheck.errors import InputError, LncheckError, option, spell, with_context
from lncheck.options import (
    ARRAY_OPTIONS,
    OPTIONS,
    UNUSED_BESIDE,
    USED_ONLY_WITH,
    Settings,
    spelling,
)
from lncheck.readers import INPUT_NAMES, OneRead, over_limit, read_arrays
from lncheck.result import NormResult
from lncheck.tolerance_spec import ToleranceSpec


def load(
    settings: Settings,
    source: str,
    *,
    given: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Case:
    """Read the input ``source`` (and any array options that are paths) into a ``Case``.

    ``given`` holds arrays already in memory by role (``input``, ``weight``, ...; NumPy arrays,
    nested lists or torch tensors); ``source`` then only names the input in messages. Array
    options in ``settings`` are paths (command line, suites) or arrays (the Python API).
    ``--expected`` files (and an input file's ``expected``/``expected_<quantity>`` arrays)
    become the case's ``given`` results; programs and callables are checked to fit the layer
    (placeholders it can fill, functions that import), to run later.

    Raises:
        InputError: a file cannot be read, holds the wrong kind of data, or does not fit the
            layer; the message names the file or the option in the caller's spelling.
    """
    try:
        return _load(settings, source, dict(given or {}), name or source)
    except LncheckError as e:
        raise settings.spell(e) from None


def _load(settings: Settings, source: str, given: dict[str, Any], name: str) -> Case:
    tolerance = ToleranceSpec.from_options(
        settings["rtol"],
        settings["atol"],
        mode=settings["tolerance"],
        equal_nan=settings["equal_nan"],
        strict=settings["strict"],
        accept=settings["accept"],
    )
    max_bytes = settings["max_bytes"]
    for role in ARRAY_OPTIONS:
        value = settings[role]
        if value is not None and not isinstance(value, str):
            given[role] = value  # the API's arrays
    stored: Mapping[str, str] = {}  # the input file's own dtype names, by array
    if "input" in given:
        original = given.pop("input")
        found = {"input": _within(_as_numpy(original, "input"), "the input", max_bytes)}
        input_dtype = _dtype_name_of(original, found["input"])
    else:
        main = read_arrays(source, max_bytes=max_bytes)
        found = _pick_named(main.arrays, source)
        input_dtype = main.dtype_names.get(_input_key(main.arrays), str(found["input"].dtype))
        stored = main.dtype_names
    _refuse_unused(settings, held=found, source=source)
    stdin = OneRead(source)
    entries = settings["expected"] or ()
    parts = _expected_parts(found, source, entries, max_bytes, stdin, stored)
    where = dict.fromkeys(found, source)
    for role in ARRAY_OPTIONS:
        if role in found and (role in given or isinstance(settings[role], str)):
            raise InputError(f"{source}: holds a {role}, and {option(role)} gives another")
        if role in given:
            found[role] = _within(_as_numpy(given[role], role), option(role), max_bytes)
            where[role] = option(role)
        elif isinstance(settings[role], str):
            path = settings[role]
            where[role] = f"{path} (given to {option(role)})"
            stdin.claim(path, option(role))
            try:
                found[role] = _read_single(path, role, max_bytes)
            except LncheckError as e:  # named with the option it was given to
                raise type(e)(f"{where[role]}: {e.raw.removeprefix(f'{path}: ')}") from None
    case = _build(found, where, settings, input_dtype, tolerance, name)
    results = bundles.given(parts, case.spec, case.grad)
    _check_programs(settings, case, results)
    words = spelling(settings.surface, settings.words)
    narrower = _stored_lower(parts, case.dtype)
    notes = tuple(spell(_narrower_note(part, dtype, case.dtype), words) for part, dtype in narrower)
    return case.with_(
        given=results,
        notes=case.notes + notes,
        source=source,
        stored_narrower={part.candidate: dtype for part, dtype in narrower},
    )


def _stored_lower(parts: list[bundles.Part], dtype: DTypeName) -> list[tuple[bundles.Part, str]]:
    """Each ``--expected`` entry stored in a float dtype narrower than the one the check
    computes in, with the narrowest such dtype: a float16 file of a layer that ran in float16,
    checked in float32, fails on float16's rounding, which reads as a different function."""
    bits = DTYPES[dtype].mantissa_bits
    found: list[tuple[bundles.Part, str]] = []
    for part in parts:
        stored = {
            part.dtype_names.get(k, str(getattr(a, "dtype", ""))) for k, a in part.arrays.items()
        }
        narrower = [d for d in stored if d in DTYPES and DTYPES[d].mantissa_bits < bits]
        if narrower:
            found.append((part, min(narrower, key=lambda d: DTYPES[d].mantissa_bits)))
    return found


def _narrower_note(part: bundles.Part, stored: str, dtype: str) -> str:
    return (
        f"{part.where} holds {stored} values, the check computes in {dtype}: if the layer ran "
        f"in {stored}, have the check compute in it too ({option('dtype')})"
    )


def _refuse_unused(settings: Settings, held: Collection[str] = (), source: str = "") -> None:
    """Refuse an option given without any of the ones that make it do anything, or beside one
    that gives what it would make (it would be ignored); ``held``: the arrays the input file
    ``source`` holds (an ``.npz``'s ``grad_output`` turns the backward on, as ``--grad-output``
    does).

    Raises:
        InputError: naming both options (or the option and the file)."""
    for name, needs_any, purpose in USED_ONLY_WITH:
        needs = needs_any[0]
        # "is set", not truth: an array (the API's grad_output) has no truth value
        if (
            settings.given(name)
            and not set(needs_any) & set(held)
            and all(settings[n] is None or settings[n] is False for n in needs_any)
        ):
            raise InputError(
                f"{option(name)} is for {purpose}, used only with {option(needs)}: give "
                f"{option(needs)} too, or leave {option(name)} out"
            )
    for name, other, what in UNUSED_BESIDE:
        if settings.given(name) and (settings[other] is not None or other in held):
            held_by = "standard input" if source == "-" else source
            giver = option(other) if settings[other] is not None else f"{held_by}'s {other}"
            raise InputError(f"{option(name)} makes what {giver} gives ({what}): leave one out")
    upstream = settings["grad_output"] is not None or "grad_output" in held
    if settings.given("grad") and settings["grad"] is False and upstream:  # no --no-grad
        giver = option("grad_output") if settings["grad_output"] is not None else source
        raise InputError(
            f"{option('grad')} is false, and {giver} gives an upstream gradient, which turns "
            "the backward pass on: leave one out"
        )
    # a momentum weighs the batch's statistics into running ones being updated; eval mode
    # puts running statistics in place of the batch's
    for name, idle_of in ops.IDLE:
        idle = idle_of(settings) if settings.given(name) else None
        if idle is not None:
            raise InputError(f"{_as_given(settings, name)} does nothing here: {idle}")


def _as_given(settings: Settings, name: str) -> str:
    """Option ``name`` in a message: on the command line, a flag pair's half that gives its
    value (``--eval``; messages spell the first half, ``--train``)."""
    flags = OPTIONS[name].flags
    if settings.surface == "cli" and flags and "/" in flags[0] and settings[name] is False:
        return flags[0].split("/")[1]
    return option(name)


def _expected_parts(
    found: dict[str, npt.NDArray[Any]],
    source: str,
    entries: tuple[specs.Given, ...],
    max_bytes: int | None,
    stdin: OneRead,
    stored: Mapping[str, str],
) -> list[bundles.Part]:
    """The ``--expected`` entries read, after the input file's own expected arrays (taken out
    of ``found``): ``expected`` is the final output, ``expected_<quantity>`` a quantity."""
    parts = []
    for key in [k for k in found if k == "expected" or k.startswith(EXPECTED_PREFIX)]:
        quantity = None if key == "expected" else key.removeprefix(EXPECTED_PREFIX)
        names = {key: stored[key]} if key in stored else {}
        parts.append(bundles.Part(specs.EXPECTED, quantity, {key: found.pop(key)}, source, names))
    for entry in entries:
        if isinstance(entry.source, str):
            # the file, and the option that named it as the caller spelled it
            where = f"{_as_typed(entry)} (given to {option(entry.option)})"
            stdin.claim(entry.source, option(entry.option))
            try:
                loaded = read_arrays(entry.source, max_bytes=max_bytes)
                arrays, names = loaded.arrays, loaded.dtype_names
            except LncheckError as e:
                reason = e.raw.removeprefix(f"{entry.source}: ") + specs.misnamed(entry.source)
                if reason == "no such file":
                    reason += _split_at_equals(entry)
                raise type(e)(f"{where}: {reason}") from None
        else:  # arrays in memory (the API; a suite's inline numbers)
            kind = "arrays" if isinstance(entry.source, Mapping) else "array"
            named = "" if entry.candidate == specs.EXPECTED else f" as {entry.candidate!r}"
            where = f"the {kind} given to {option(entry.option)}{named}"
            members = entry.source if isinstance(entry.source, Mapping) else {"input": entry.source}
            arrays = {
                str(k): _within(_as_array(v, where, entry, str(k)), where, max_bytes)
                for k, v in members.items()
            }
            names = {str(k): _dtype_name_of(v, arrays[str(k)]) for k, v in members.items()}
        parts.append(bundles.Part(entry.candidate, entry.quantity, arrays, where, names))
    return parts


def _split_at_equals(entry: specs.Given) -> str:
    """Where an ``--expected`` entry was read as ``NAME=FILE`` and that FILE is missing, how it
    was read, and how to name a file whose own name holds ``=``."""
    typed = _as_typed(entry)
    if typed == str(entry.source):
        return ""
    if entry.candidate == specs.EXPECTED:
        label = "QUANTITY"
    else:
        label = "NAME.QUANTITY" if entry.quantity else "NAME"
    whole = f" (the file {typed!r} exists: write ./{typed})" if Path(typed).exists() else ""
    return f"; read as {label}=FILE with FILE {str(entry.source)!r}{whole}"


def _as_typed(entry: specs.Given) -> str:
    """An ``--expected`` entry as the caller wrote it: ``mine.mean=y.npy``, ``y.npy``."""
    if entry.option != specs.EXPECTED:  # --expected-grad-input and the like: just the file
        return str(entry.source)
    named = "" if entry.candidate == specs.EXPECTED else f"{entry.candidate}"
    if entry.quantity is not None:
        named = f"{named}.{entry.quantity}" if named else entry.quantity
    return f"{named}={entry.source}" if named else str(entry.source)


def _check_programs(settings: Settings, case: Case, results: tuple[NormResult, ...]) -> None:
    """Programs and callables, checked before anything runs: names unique, every placeholder
    one the layer can fill, every function importable."""
    programs, functions = settings["candidate_cmd"] or (), settings["candidate"] or ()
    specs.names(tuple(specs.Given(r.candidate, None, None) for r in results), programs, functions)
    for program in programs:
        command.check(program, case.spec, case.grad)
    for function in functions:
        resolve(function)


def _as_array(a: Any, where: str, entry: specs.Given, key: str) -> npt.NDArray[Any]:
    """One in-memory member of an ``--expected`` entry as an array; a file name there (a
    suite's ``expected = {mine = {grad_weight = "dw.npy"}}``) is never read as text.

    Raises:
        InputError: a string or bytes, or something NumPy cannot make an array of numbers."""
    if isinstance(a, (str, bytes)):
        name = f"{entry.candidate}.{key}" if key in QUANTITIES else key
        raise InputError(
            f"{where}: {key!r} is {a!r}, not an array; a file goes in as {name!r} = FILE"
        )
    return _as_numpy(a, where)


def _as_numpy(a: Any, role: str) -> npt.NDArray[Any]:
    try:
        if _is_tensor(a):  # a torch tensor, without importing torch
            t = a.detach().cpu()
            a = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
        if isinstance(a, (list, tuple)) and holds_bool(a):  # NumPy reads True as 1.0
            raise InputError(f"{role}: holds True or False; give numbers")
        return np.asarray(a)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
        # ragged nested lists, meta or sparse tensors, objects NumPy cannot convert
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{role}: not an array of numbers: {first}") from None


def _within(a: npt.NDArray[Any], named: str, limit: int | None) -> npt.NDArray[Any]:
    """``a`` (an array given in memory), held to the ``max_bytes`` limit files are held to.

    Raises:
        InputError: it is larger.
    """
    if limit is not None and a.nbytes > limit:
        raise InputError(f"{named} {over_limit(a.nbytes, limit).raw}")
    return a


def _is_tensor(a: object) -> bool:
    return hasattr(a, "detach") and hasattr(a, "numpy") and hasattr(a, "dtype")


def _dtype_name_of(original: object, converted: npt.NDArray[Any]) -> str:
    """The dtype the caller's array had: a bfloat16 tensor arrives as float32."""
    if _is_tensor(original):
        return str(original.dtype).removeprefix("torch.")  # type: ignore[attr-defined]
    return converted.dtype.name


def _build(
    found: dict[str, npt.NDArray[Any]],
    where: dict[str, str],
    settings: Settings,
    input_dtype: str,
    tolerance: ToleranceSpec,
    name: str,
) -> Case:
    """Check and round the arrays of a case, build the spec, and assemble the ``Case``."""
    source = where["input"]
    x = real_numbers(found.pop("input"), source, "input")
    dtype: DTypeName | None = settings["dtype"]
    chosen, note = (dtype, None) if dtype is not None else _default_dtype(x, input_dtype)
    inexact = dtypes.inexact_integers(x, chosen, "input")
    x, overflowed = _rounded(x, chosen, "input")
    if x.ndim and x.size == 0:
        raise InputError(f"{source}: input has shape {tuple(x.shape)} and no elements to normalize")
    try:
        spec = ops.build(settings, tuple(x.shape), chosen)
    except LncheckError as e:
        raise with_context(e, source) from None
    arrays, given = {}, {}
    for role, value in found.items():
        given[role] = checked = real_numbers(value, where[role], role)
        if role in ("weight", "bias"):  # data under test, as the input's NaN is: a note
            overflowed += _not_finite(checked, role)
        inexact_param = dtypes.inexact_integers(checked, chosen, role)
        arrays[role], beyond = _rounded(checked, chosen, role)
        overflowed += beyond + ([inexact_param] if inexact_param else [])
    layer_arrays.check_shapes(arrays, spec, where)
    # as given: a variance beyond float16's range becomes inf there, which torch's float16
    # buffer holds too (the note above says so)
    layer_arrays.check_running_values(given, where)
    if spec.use_running_stats:  # rounded: a variance of 1e-30 is 0 in float16
        layer_arrays.check_divisor(arrays, where, spec.eps)
    if spec.weight_offset and spec.affine and "weight" not in arrays:
        # scaled by (w + offset): a fresh zero-centred layer (Gemma) starts from zeros
        arrays["weight"] = np.zeros(spec.param_shape, x.dtype)
    upstream = "grad_output" in arrays
    return Case(
        name=name,
        x=x,
        input_dtype=input_dtype,
        dtype=chosen,
        spec=spec,
        settings=settings,
        weight=arrays.get("weight"),
        bias=arrays.get("bias"),
        running_mean=arrays.get("running_mean"),
        running_var=arrays.get("running_var"),
        grad_output=arrays.get("grad_output"),
        tolerance=tolerance,
        grad=bool(settings["grad"]) or upstream,
        notes=tuple(n for n in (note, inexact) if n) + tuple(overflowed) + spec.notes,
    )


def _not_finite(a: npt.NDArray[Any], role: str) -> list[str]:
    """A note if ``a`` (a weight or bias, small) holds NaN or inf: the outputs it reaches are
    NaN or inf on every side, torch's included."""
    with np.errstate(all="ignore"):
        count = int(a.size - np.count_nonzero(np.isfinite(a)))
    if not count:
        return []
    values, reach = ("value is", "it reaches") if count == 1 else ("values are", "they reach")
    return [f"{count} {role} {values} NaN or inf: so are the outputs {reach}, on every side"]


def _rounded(
    a: npt.NDArray[Any], dtype: DTypeName, role: str
) -> tuple[npt.NDArray[Any], list[str]]:
    """``a`` rounded to ``dtype``, and a note if finite values became infinite there (a value
    beyond float16's 65,504, or 1e39 read from JSON into float32)."""
    rounded = dtypes.round_to(a, dtype)
    if rounded is a or not np.issubdtype(np.asarray(a).dtype, np.number):
        return rounded, []
    with np.errstate(all="ignore"):
        beyond = int(np.count_nonzero(np.isinf(rounded))) - int(np.count_nonzero(np.isinf(a)))
    if beyond <= 0:
        return rounded, []
    values = "value" if beyond == 1 else "values"
    return rounded, [f"{beyond} {role} {values} beyond {dtype}'s range became inf"]


def _input_key(arrays: Mapping[str, Any]) -> str:
    for key in INPUT_NAMES:
        if key in arrays:
            return key
    return next(iter(arrays))


def _pick_named(arrays: dict[str, npt.NDArray[Any]], path: str) -> dict[str, npt.NDArray[Any]]:
    """Split a file's arrays into the input and the named extras, rejecting unknown names."""
    inputs = [k for k in INPUT_NAMES if k in arrays]
    if len(inputs) > 1:
        raise InputError(
            f"{path}: has both {inputs[0]!r} and {inputs[1]!r} arrays; "
            "which one is the input is ambiguous"
        )
    expected = ["expected", *(EXPECTED_PREFIX + q for q in QUANTITIES)]
    known = [*INPUT_NAMES, *ARRAY_OPTIONS, *expected]
    unknown = sorted(set(arrays) - set(known))
    if not inputs and len(arrays) == 1 and unknown:
        inputs = unknown  # a file with one unnamed array is the input
        unknown = []
    if unknown:
        hint = ""
        if unknown[0] in QUANTITIES:  # a kernel's result: a candidate, not a parameter
            hint = (
                f"; a result to check goes in {option('expected')} FILE, or here as "
                f"'{EXPECTED_PREFIX}{unknown[0]}'"
            )
        raise InputError(
            f"{path}: unknown array {unknown[0]!r} "
            f"(known names: {', '.join([*INPUT_NAMES, *ARRAY_OPTIONS])}, expected, "
            f"{EXPECTED_PREFIX}<quantity>{hint})"
        )
    if not inputs:
        raise InputError(f"{path}: no input array (name it 'input' or 'x')")
    picked = {role: arrays[role] for role in known if role in arrays and role not in INPUT_NAMES}
    picked["input"] = arrays[inputs[0]]
    return picked


def _read_single(path: str, role: str, max_bytes: int | None) -> npt.NDArray[Any]:
    loaded = read_arrays(path, max_bytes=max_bytes).arrays
    if role in loaded:
        return loaded[role]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise InputError(f"{path}: holds {len(loaded)} arrays and none is named {role!r}")


def _default_dtype(x: npt.NDArray[Any], input_dtype: str) -> tuple[DTypeName, str | None]:
    if input_dtype in dtypes.DTYPE_NAMES:
        return input_dtype, None
    return dtypes.default_compute_dtype(x.dtype)
