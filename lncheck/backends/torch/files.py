"""``.pt``/``.pth`` files for the loaders: a tensor or a dict of tensors, never unpickling code."""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lncheck.errors import InputError, option
from lncheck.readers import Loaded, over_limit, parsing, zip_members
from lncheck.sources import Source, size_of


def read(path: Source, limit: int) -> Loaded:
    """The tensors of ``path`` as NumPy arrays, with the dtype each had (``readers.READERS``).

    Sizes are held to ``limit`` before anything that large exists: the file, the storage
    records of its zip archive as they declare themselves (a deflated record may inflate far
    beyond its size on disk), and each tensor's elements (an expanded view of a one-element
    storage may claim 10^12 of them).

    Raises:
        InputError: the file is too large, is not a safe tensor file (``weights_only=True``
            refuses it) or holds something other than tensors.
    """
    if size_of(path) > limit:
        raise over_limit(size_of(path), limit)
    _check_records(path, limit)
    if isinstance(path, io.BytesIO):
        path.seek(0)
    arrays, names = load_tensors(path, limit)
    return Loaded(arrays, names)


def _check_records(source: Source, limit: int) -> None:
    """The storage records of a zip-format torch file, by their declared sizes."""
    if not zipfile.is_zipfile(source):
        return  # the legacy format: its storages are read from the file, no larger than it
    with parsing("is not a valid torch file"), zipfile.ZipFile(source) as archive:
        declared = sum(m.file_size for m in zip_members(archive))
    if declared > limit:
        raise InputError(
            f"holds records of {declared} bytes once decompressed, "
            f"over the {option('max_bytes')} limit {limit}"
        )


def to_numpy(t: torch.Tensor) -> npt.NDArray[Any]:
    """A tensor's values in NumPy, on the CPU (bfloat16 as float32, which holds it exactly)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()  # exact: NumPy has no bfloat16
    return np.asarray(t.cpu().numpy())


def load_tensors(
    path: Source, limit: int | None = None
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Read a ``.pt``/``.pth`` file holding a tensor or a dict of tensors, never unpickling code.
    The tensors' sizes (``numel`` times the element size, together) are held to ``limit``
    before any of them is copied.

    Raises:
        InputError: the file is not a safe tensor file (``weights_only=True`` refuses it),
            holds something other than tensors, or tensors larger than ``limit``.
    """
    try:
        with warnings.catch_warnings():  # torch's deprecation notes are not the user's business
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # torch raises many types here; all mean "not a safe tensor file"
        raise InputError(f"cannot load safely with weights_only=True: {_reason(e)}") from None
    items = {"input": obj} if isinstance(obj, torch.Tensor) else obj
    if not isinstance(items, dict) or not items:
        raise InputError(f"holds a {type(obj).__name__}; expected a tensor or a dict of tensors")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    declared = 0
    for key, value in items.items():
        if not isinstance(key, str):
            raise InputError(
                f"has a key {key!r} of type {type(key).__name__!r}; expected tensors under "
                "string keys"
            )
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"entry {key!r} holds {type(value).__name__!r}; expected tensors under string keys"
            )
        if value.is_nested:  # checked first: a nested tensor has no sizes to ask about
            raise InputError(f"tensor {key!r} is a nested tensor; expected a plain dense tensor")
        # a view may claim far more elements than its storage holds (stride 0): count the
        # elements it would take to copy, before copying
        declared += value.numel() * value.element_size()
        if limit is not None and declared > limit:
            raise InputError(
                f"tensor {key!r} has shape {tuple(value.shape)} ({declared} bytes with the "
                f"tensors before it), over the {option('max_bytes')} limit {limit}"
            )
        if value.is_complex():
            raise InputError(
                f"tensor {key!r} is complex ({value.dtype}); normalization layers take real numbers"
            )
        if value.layout != torch.strided or value.is_quantized:
            raise InputError(
                f"tensor {key!r} is not a plain dense tensor ({value.layout}, {value.dtype})"
            )
        names[key] = str(value.dtype).removeprefix("torch.")
        try:
            arrays[key] = to_numpy(value)
        except (TypeError, RuntimeError, NotImplementedError) as e:  # float8 and the like
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(
                f"tensor {key!r} of dtype {value.dtype} has no NumPy form: {first}"
            ) from None
    return arrays, names


# torch's weights_only refusal: advice (load with weights_only=False: never here) and a link
# around the reason, which follows "WeightsUnpickler error:" where torch gives that
_TORCH_ADVICE = ("Weights only load failed", "Check the documentation", "(1)", "(2)")
_REASON = re.compile(r"unsupported|GLOBAL|not an allowed", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reason(error: Exception) -> str:
    """The words of a ``torch.load`` error that say what was refused (``Unsupported global:
    GLOBAL io.open was not an allowed global by default.``), at most 200 characters."""
    text = _ANSI.sub("", str(error)).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if _REASON.search(line)] or [
        line for line in lines if not line.startswith(_TORCH_ADVICE)
    ]
    reason = (reasons or lines or [type(error).__name__])[0]
    return reason.split(" Please use ", 1)[0][:200]
