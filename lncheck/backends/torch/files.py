"""``.pt``/``.pth`` files for the loaders: a tensor or a dict of tensors, never unpickling code."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lncheck.errors import InputError
from lncheck.readers import Loaded, over_limit


def read(path: Path, limit: int) -> Loaded:
    """The tensors of ``path`` as NumPy arrays, with the dtype each had (``readers.READERS``).

    Raises:
        InputError: the file is too large, is not a safe tensor file (``weights_only=True``
            refuses it) or holds something other than tensors.
    """
    if path.stat().st_size > limit:
        raise over_limit(path.stat().st_size, limit)
    arrays, names = load_tensors(path)
    return Loaded(arrays, names)


def to_numpy(t: torch.Tensor) -> npt.NDArray[Any]:
    """A tensor's values in NumPy, on the CPU (bfloat16 as float32, which holds it exactly)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()  # exact: NumPy has no bfloat16
    return np.asarray(t.cpu().numpy())


def load_tensors(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Read a ``.pt``/``.pth`` file holding a tensor or a dict of tensors, never unpickling code.

    Raises:
        InputError: the file is not a safe tensor file (``weights_only=True`` refuses it) or
            holds something other than tensors.
    """
    try:
        with warnings.catch_warnings():  # torch's deprecation notes are not the user's business
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # torch raises many types here; all mean "not a safe tensor file"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot load safely with weights_only=True: {first[:200]}") from None
    items = {"input": obj} if isinstance(obj, torch.Tensor) else obj
    if not isinstance(items, dict) or not items:
        raise InputError(f"holds a {type(obj).__name__}; expected a tensor or a dict of tensors")
    arrays: dict[str, npt.NDArray[Any]] = {}
    names: dict[str, str] = {}
    for key, value in items.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                f"entry {key!r} is a {type(value).__name__}; expected tensors under string keys"
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
