"""Loading: files and options in, a ``Case`` out.

Every reader turns a file into named arrays and nothing else: nothing is ever unpickled
(``allow_pickle=False``, ``weights_only=True``), sizes declared by a file are checked before
anything that large is allocated or decompressed, and every failure becomes an ``InputError``
that names the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import dtypes
from lncheck.case import Case
from lncheck.dtypes import DTypeName
from lncheck.errors import InputError, LncheckError, with_context
from lncheck.layers import Layer, Plan, check_options, plan
from lncheck.tolerances import ToleranceSpec

STDIN = "-"
INPUT_NAMES = ("input", "x")
ARRAY_NAMES = ("weight", "bias", "expected", "running_mean", "running_var", "grad_output")
MAX_JSON_DEPTH = 64
SUFFIXES = (".npy", ".npz", ".json", ".pt", ".pth")


def default_max_bytes() -> int:
    """Half of the machine's physical memory (or 8 GiB where that cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 << 30


@dataclass(frozen=True)
class Loaded:
    """Arrays read from one file, with the dtype each one claimed on disk."""

    arrays: dict[str, npt.NDArray[Any]]
    dtype_names: dict[str, str]


def read_arrays(path: str, *, max_bytes: int | None = None) -> Loaded:
    """Read every array in ``path`` (``-`` reads JSON from standard input).

    Raises:
        InputError: the file is missing, unreadable, malformed, too large, of an unknown kind,
            or holds something that is not a real-valued numeric array.
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    if not path:
        raise InputError("no input file given (an empty path)")
    try:
        if path == STDIN:
            return _from_json(sys.stdin.buffer.read(), limit)
        p = Path(path)
        if not p.exists():
            raise InputError("no such file")
        if p.is_dir():
            raise InputError("is a directory, not a file")
        suffix = p.suffix.lower()
        if suffix == ".npy":
            return _from_npy(p, limit)
        if suffix == ".npz":
            return _from_npz(p, limit)
        if suffix == ".json":
            if p.stat().st_size > limit:
                raise InputError(f"is {p.stat().st_size} bytes, over the --max-bytes limit {limit}")
            return _from_json(p.read_bytes(), limit)
        if suffix in (".pt", ".pth"):
            return _from_torch(p, limit)
        raise InputError(
            f"unknown file type {suffix or '(no suffix)'!r}; expected one of {', '.join(SUFFIXES)}"
        )
    except LncheckError as e:
        raise with_context(e, path) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RecursionError, MemoryError) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


# --- readers -----------------------------------------------------------------------------


def _from_npy(path: Path, limit: int) -> Loaded:
    with path.open("rb") as f:
        shape, _, dtype = _read_npy_header(f)
        offset = f.tell()
    _check_declared(shape, dtype, limit, path.stat().st_size - offset)
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickle); refusing to load it")
    if math.prod(shape) == 0:
        array = np.zeros(shape, dtype)
    else:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    return Loaded({"input": array}, {"input": dtype.name})


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=1 << 16)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=1 << 16)
        else:
            raise InputError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError) as e:
        raise InputError(f"not a valid .npy file ({_reason(e)})") from None
    return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype)


def _check_declared(
    shape: tuple[int, ...], dtype: np.dtype[Any], limit: int, available: int
) -> None:
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise InputError(
            f"declares shape {shape} of {dtype} ({nbytes} bytes), "
            f"over the --max-bytes limit {limit}"
        )
    if nbytes > available:
        raise InputError(
            f"is truncated: its header declares shape {shape} of {dtype} ({nbytes} bytes) "
            f"but only {max(available, 0)} bytes of data follow"
        )


def read_npz(path: Path, select: Callable[[str], bool], *, max_bytes: int | None = None) -> Loaded:
    """The arrays of an ``.npz`` file whose names ``select`` accepts (checked as ``read_arrays``).

    Raises:
        InputError: as ``read_arrays``.
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    try:
        return _from_npz(path, limit, select)
    except LncheckError as e:
        raise with_context(e, str(path)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read: {_reason(e)}") from None


def _from_npz(path: Path, limit: int, select: Callable[[str], bool] | None = None) -> Loaded:
    if not zipfile.is_zipfile(path):
        raise InputError("is not a valid .npz file (not a zip archive)")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    seen: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise InputError(
                f"would decompress to {declared} bytes, over the --max-bytes limit {limit}"
            )
        for member in members:
            if not member.filename.endswith(".npy"):
                raise InputError(f"member {member.filename!r} is not a .npy array")
            name = member.filename[: -len(".npy")]
            if name in seen:
                raise InputError(f"holds two arrays named {name!r}; which one is meant?")
            seen.add(name)
            if select is not None and not select(name):
                continue
            with archive.open(member) as f:
                shape, fortran, dtype = _read_npy_header(f)
                header = f.tell()
                if dtype.hasobject:
                    raise InputError(
                        f"array {name!r} holds Python objects (a pickle); refusing to load it"
                    )
                _check_declared(shape, dtype, limit, member.file_size - header)
                count = math.prod(shape)
                data = f.read(count * dtype.itemsize)
            flat = np.frombuffer(data, dtype=dtype, count=count)
            arrays[name] = flat.reshape(shape, order="F" if fortran else "C")
            names[name] = dtype.name
    return Loaded(arrays, names)


def _from_json(raw: bytes, limit: int) -> Loaded:
    if len(raw) > limit:
        raise InputError(f"is {len(raw)} bytes, over the --max-bytes limit {limit}")
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
    return Loaded({"input": _json_array(doc, "data")}, {"input": "float32"})


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
    known = {"data", "dtype", *INPUT_NAMES, *ARRAY_NAMES}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r} in JSON object (known: {', '.join(sorted(known))})"
        )
    given = [k for k in ("data", *INPUT_NAMES) if k in doc]
    if not given:
        raise InputError('JSON object has no "data" array')
    if len(given) > 1:
        raise InputError(f"JSON object has both {given[0]!r} and {given[1]!r}; give one input")
    dtype = doc.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in dtypes.DTYPE_NAMES:
        raise InputError(f'"dtype" must be one of {", ".join(dtypes.DTYPE_NAMES)}, got {dtype!r}')
    arrays = {"input": _json_array(doc[given[0]], given[0])}
    for name in ARRAY_NAMES:
        if name in doc:
            arrays[name] = _json_array(doc[name], name)
    return Loaded(arrays, {name: dtype for name in arrays})


def _json_array(data: Any, key: str) -> npt.NDArray[np.float64]:
    """The numbers of a JSON array in float64; they are rounded to the compute dtype later."""
    shape = _json_shape(data, key, 0)
    return np.asarray(np.array(data, dtype=np.float64), dtype=np.float64).reshape(shape)


def _json_shape(data: Any, key: str, depth: int) -> tuple[int, ...]:
    """The shape of a nested list of numbers; raises for ragged, non-numeric or too deep data."""
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{key!r} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(data, bool) or data is None or isinstance(data, (str, dict)):
        raise InputError(f"{key!r} holds {_json_kind(data)}; only numbers are allowed")
    if isinstance(data, (int, float)):
        return ()
    if not isinstance(data, list):
        raise InputError(f"{key!r} holds {_json_kind(data)}; only numbers are allowed")
    if not data:
        return (0,)
    first = _json_shape(data[0], key, depth + 1)
    for item in data[1:]:
        if _json_shape(item, key, depth + 1) != first:
            raise InputError(f"{key!r} is ragged: its lists at depth {depth + 1} differ in length")
    return (len(data), *first)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    return "an object"


def _from_torch(path: Path, limit: int) -> Loaded:
    if path.stat().st_size > limit:
        raise InputError(f"is {path.stat().st_size} bytes, over the --max-bytes limit {limit}")
    from lncheck.backends.torch import load_tensors

    tensors, names = load_tensors(path)
    return Loaded(tensors, names)


# --- from arrays to a case ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """The files a case is built from; every path is optional except the input."""

    input: str
    weight: str | None = None
    bias: str | None = None
    expected: str | None = None
    running_mean: str | None = None
    running_var: str | None = None
    grad_output: str | None = None


def load_case(
    sources: Sources,
    layer: Layer,
    *,
    dtype: DTypeName | None = None,
    tolerance: ToleranceSpec | None = None,
    device: str = "cpu",
    max_bytes: int | None = None,
    name: str | None = None,
    given: Mapping[str, npt.ArrayLike | None] | None = None,
) -> Case:
    """Read the input (and any weight, bias, expected or running-stat files) into a ``Case``.

    ``given`` holds arrays already in memory by role (``input``, ``weight``, ...; torch tensors
    are accepted): they are used instead of files, and ``sources.input`` then only names the
    input in messages.

    Raises:
        InputError: a file cannot be read, holds the wrong kind of data, or does not fit
            the layer; the message names the file, option or argument.
    """
    check_options(layer)
    in_memory = {role: _as_numpy(a, role) for role, a in (given or {}).items() if a is not None}
    unknown = sorted(set(in_memory) - {"input", *ARRAY_NAMES})
    if unknown:
        raise InputError(f"unknown array argument {unknown[0]!r} (known: {', '.join(ARRAY_NAMES)})")
    if "input" in in_memory:
        found = {"input": in_memory.pop("input")}
        input_dtype = _dtype_name((given or {})["input"], found["input"])
    else:
        main = read_arrays(sources.input, max_bytes=max_bytes)
        found = _pick_named(main.arrays, sources.input)
        input_dtype = main.dtype_names.get(_input_key(main.arrays), str(found["input"].dtype))
    where = dict.fromkeys(found, sources.input)
    for role in ARRAY_NAMES:
        path = getattr(sources, role)
        if role in in_memory:
            found[role], where[role] = in_memory[role], f"argument {role!r}"
        elif path is not None:
            found[role], where[role] = _read_single(path, role, max_bytes), path
    return _build(found, where, layer, input_dtype, dtype, tolerance, device, name or sources.input)


def case_from_arrays(
    x: npt.ArrayLike,
    layer: Layer,
    *,
    dtype: DTypeName | None = None,
    tolerance: ToleranceSpec | None = None,
    device: str = "cpu",
    name: str = "array",
    **arrays: npt.ArrayLike | None,
) -> Case:
    """A ``Case`` from in-memory arrays: ``weight``, ``bias``, ``expected``, ``running_mean``,
    ``running_var``, ``grad_output`` as keyword arguments.

    Raises:
        InputError: as ``load_case``, naming the argument.
    """
    return load_case(
        Sources(name),
        layer,
        dtype=dtype,
        tolerance=tolerance,
        device=device,
        name=name,
        given={"input": x, **arrays},
    )


def _as_numpy(a: npt.ArrayLike, role: str) -> npt.NDArray[Any]:
    try:
        if _is_tensor(a):  # a torch tensor, without importing torch
            t = a.detach().cpu()  # type: ignore[union-attr]
            a = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
        return np.asarray(a)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
        # ragged nested lists, meta or sparse tensors, objects NumPy cannot convert
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{role}: not an array of numbers: {first}") from None


def _is_tensor(a: object) -> bool:
    return hasattr(a, "detach") and hasattr(a, "numpy") and hasattr(a, "dtype")


def _dtype_name(original: object, converted: npt.NDArray[Any]) -> str:
    """The dtype the caller's array had: a bfloat16 tensor arrives as float32."""
    if _is_tensor(original):
        return str(original.dtype).removeprefix("torch.")  # type: ignore[attr-defined]
    return converted.dtype.name


def _build(
    found: dict[str, npt.NDArray[Any]],
    where: dict[str, str],
    layer: Layer,
    input_dtype: str,
    dtype: DTypeName | None,
    tolerance: ToleranceSpec | None,
    device: str,
    name: str,
) -> Case:
    """Check and round the arrays of a case, plan the layer, and assemble the ``Case``."""
    source = where["input"]
    x = _native(_numeric(found.pop("input"), source, "input"))
    chosen, note = (dtype, None) if dtype is not None else _default_dtype(x, input_dtype)
    x = dtypes.round_to(x, chosen)
    if x.ndim and x.size == 0:
        raise InputError(f"{source}: input has shape {tuple(x.shape)} and no elements to normalize")
    try:
        the_plan = plan(
            layer, tuple(x.shape), chosen, default_eps=_torch_default_eps(layer, chosen)
        )
    except LncheckError as e:
        raise with_context(e, source) from None
    arrays = {
        role: _as_role(_native(_numeric(value, where[role], role)), role, chosen)
        for role, value in found.items()
    }
    _check_shapes(arrays, the_plan, where)
    return Case(
        name=name,
        x=x,
        input_dtype=input_dtype,
        dtype=chosen,
        layer=the_plan.layer,
        plan=the_plan,
        weight=arrays.get("weight"),
        bias=arrays.get("bias"),
        expected=arrays.get("expected"),
        running_mean=arrays.get("running_mean"),
        running_var=arrays.get("running_var"),
        grad_output=arrays.get("grad_output"),
        tolerance=tolerance or ToleranceSpec(),
        device=device,
        notes=((note,) if note else ()) + the_plan.notes,
    )


def _torch_default_eps(layer: Layer, dtype: DTypeName) -> float | None:
    """RMSNorm's ``eps=None`` as the installed torch resolves it (measured, not assumed)."""
    if layer.op != "rms_norm" or layer.eps is not None:
        return None
    from lncheck.backends import get_backend

    return get_backend().default_eps("rms_norm", dtype)


def _as_role(value: npt.NDArray[Any], role: str, dtype: DTypeName) -> npt.NDArray[np.floating]:
    """Parameters become what torch's module holds after the cast to the compute dtype; an
    expected output is a candidate, so it is compared exactly as it was given."""
    if role != "expected":
        return dtypes.round_to(value, dtype)
    return value if value.dtype.kind == "f" else value.astype(np.float64)


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
    unknown = sorted(set(arrays) - set(INPUT_NAMES) - set(ARRAY_NAMES))
    if not inputs and len(arrays) == 1 and unknown:
        inputs = unknown  # a file with one unnamed array is the input
        unknown = []
    if unknown:
        raise InputError(
            f"{path}: unknown array {unknown[0]!r} "
            f"(known names: {', '.join(INPUT_NAMES + ARRAY_NAMES)})"
        )
    if not inputs:
        raise InputError(f"{path}: no input array (name it 'input' or 'x')")
    picked = {role: arrays[role] for role in ARRAY_NAMES if role in arrays}
    picked["input"] = arrays[inputs[0]]
    return picked


def _read_single(path: str, role: str, max_bytes: int | None) -> npt.NDArray[Any]:
    loaded = read_arrays(path, max_bytes=max_bytes).arrays
    if role in loaded:
        return loaded[role]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise InputError(f"{path}: holds {len(loaded)} arrays and none is named {role!r}")


def _numeric(a: npt.NDArray[Any], path: str, role: str) -> npt.NDArray[Any]:
    kind = a.dtype.kind
    if a.dtype.names is not None:
        raise InputError(f"{path}: {role} has a structured dtype {a.dtype}; expected plain numbers")
    if kind == "c":
        raise InputError(
            f"{path}: {role} is complex ({a.dtype}); normalization layers take real numbers"
        )
    if kind not in "fiub" or (kind == "f" and a.dtype.itemsize > 8):
        raise InputError(
            f"{path}: {role} has dtype {a.dtype}; expected floating or integer numbers"
        )
    return a


def _native(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``a`` in native byte order (torch cannot take big-endian data)."""
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != _NATIVE:
        return a.astype(a.dtype.newbyteorder("="))
    return a


_NATIVE = "<" if sys.byteorder == "little" else ">"


def _default_dtype(x: npt.NDArray[Any], input_dtype: str) -> tuple[DTypeName, str | None]:
    if input_dtype in dtypes.DTYPE_NAMES:
        return input_dtype, None
    return dtypes.default_compute_dtype(x.dtype)


def _check_shapes(
    arrays: Mapping[str, npt.NDArray[Any]], the_plan: Plan, where: Mapping[str, str]
) -> None:
    expect = {
        "weight": the_plan.param_shape,
        "bias": the_plan.param_shape,
        "expected": the_plan.input_shape,
        "running_mean": the_plan.stats_shape,
        "running_var": the_plan.stats_shape,
        "grad_output": the_plan.input_shape,
    }
    for role in ("running_mean", "running_var"):
        if role in arrays and not the_plan.stats_shape:
            raise InputError(
                f"{where[role]}: gives a {role}, but "
                f"{the_plan.torch_name} here keeps no running statistics "
                "(see --track-running-stats)"
            )
    if the_plan.use_running_stats and not {"running_mean", "running_var"} <= set(arrays):
        raise InputError(
            f"{the_plan.torch_name} in eval mode normalizes with running statistics: "
            "give --running-mean and --running-var"
        )
    if not the_plan.affine:
        for role in ("weight", "bias"):
            if role in arrays:
                raise InputError(
                    f"{where[role]}: gives a {role}, but the layer has no affine parameters "
                    "(--no-affine)"
                )
    for role, value in arrays.items():
        want = expect[role]
        if tuple(value.shape) != tuple(want):
            what = {"weight": "--weight", "bias": "--bias", "expected": "--expected"}.get(
                role, f"--{role.replace('_', '-')}"
            )
            raise InputError(
                f"{where[role]}: {role} has shape {tuple(value.shape)}; "
                f"{what} must have shape {tuple(want)} "
                f"for {the_plan.layer.op} on an input of shape {the_plan.input_shape}"
            )


@dataclass(frozen=True)
class CaseSpec:
    """Everything ``lncheck compare`` accepts, by option name: what a suite case may say too.

    Paths are strings; ``None`` means "the default" (the op's, or torch's).
    """

    input: str
    op: str = "layer_norm"
    shape: tuple[int, ...] | None = None
    axes: tuple[int, ...] | None = None
    eps: float | None = None
    groups: int | None = None
    channel_axis: int = 1
    affine: bool | None = None
    train: bool = True
    track_running_stats: bool | None = None
    momentum: float | None = 0.1
    size: int | None = None
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    activation: str | None = None
    weight: str | None = None
    bias: str | None = None
    expected: str | None = None
    running_mean: str | None = None
    running_var: str | None = None
    dtype: DTypeName | None = None
    device: str = "cpu"
    vs_device: str | None = None
    grad: bool = False
    grad_output: str | None = None
    seed: int = 0
    tolerance: str | None = None
    rtol: float | None = None
    atol: float | None = None
    equal_nan: bool = False
    max_bytes: int | None = None
    name: str | None = None

    def layer(self) -> Layer:
        return Layer(
            op=self.op,  # type: ignore[arg-type]
            normalized_shape=self.shape,
            axes=self.axes,
            eps=self.eps,
            affine=self.affine,
            groups=self.groups,
            channel_axis=self.channel_axis,
            training=self.train,
            track_running_stats=self.track_running_stats,
            momentum=self.momentum,
            size=self.size,
            alpha=self.alpha,
            beta=self.beta,
            k=self.k,
            activation=self.activation,
        )

    def sources(self) -> Sources:
        return Sources(
            input=self.input,
            weight=self.weight,
            bias=self.bias,
            expected=self.expected,
            running_mean=self.running_mean,
            running_var=self.running_var,
            grad_output=self.grad_output,
        )


_DEVICE = re.compile(r"^(cpu|mps|cuda(:[0-9]+)?)$")


def check_device(name: str, option: str = "--device") -> None:
    """Raises ``InputError`` for a device name torch would not know (no torch needed)."""
    if not _DEVICE.match(name):
        raise InputError(f"{option} must be cpu, cuda, cuda:N or mps, got {name!r}")


def load(spec: CaseSpec, given: Mapping[str, npt.ArrayLike | None] | None = None) -> Case:
    """Load the case a ``CaseSpec`` describes; ``given`` as in ``load_case``."""
    check_device(spec.device, "--device")
    if spec.vs_device is not None:
        check_device(spec.vs_device, "--vs-device")
    if spec.seed < 0:
        raise InputError(f"--seed must be 0 or more, got {spec.seed}")
    if spec.dtype is not None and spec.dtype not in dtypes.DTYPE_NAMES:
        raise InputError(
            f"--dtype must be one of {', '.join(dtypes.DTYPE_NAMES)}, got {spec.dtype!r}"
        )
    tolerance = ToleranceSpec.from_options(
        spec.rtol, spec.atol, mode=spec.tolerance, equal_nan=spec.equal_nan
    )
    case = load_case(
        spec.sources(),
        spec.layer(),
        dtype=spec.dtype,
        tolerance=tolerance,
        device=spec.device,
        max_bytes=spec.max_bytes,
        name=spec.name,
        given=given,
    )
    upstream = spec.grad_output is not None or case.grad_output is not None
    return replace(case, vs_device=spec.vs_device, grad=spec.grad or upstream, seed=spec.seed)


def release_pages(view: npt.NDArray[Any], root: npt.NDArray[Any]) -> None:
    """Drop the pages of ``view`` (a part of the read-only memory-mapped ``root``) from this
    process's memory once it has been checked: the file stays in the page cache, but the
    process's resident memory no longer grows with the size of the input.

    Does nothing for arrays that are not views of a read-only file mapping.
    """
    import mmap as mmap_module

    handle = getattr(root, "_mmap", None)
    if handle is None or root.flags.writeable or not hasattr(handle, "madvise"):
        return
    base = root.ctypes.data - getattr(root, "offset", 0) % mmap_module.ALLOCATIONGRANULARITY
    page = mmap_module.PAGESIZE
    begin = view.ctypes.data - base
    start = -(-begin // page) * page  # only whole pages inside the view
    stop = (begin + view.nbytes) // page * page
    if stop > start:
        with contextlib.suppress(OSError, ValueError):  # an advice, not a requirement
            handle.madvise(mmap_module.MADV_DONTNEED, start, stop - start)
