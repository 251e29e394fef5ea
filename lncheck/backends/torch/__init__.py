"""The torch backend: every torch code path of a layer (module, functional, native).

This module is light (it does not import torch): it names the backend's devices, its op table
and its candidates. ``runner`` and ``paths`` import torch when a case runs; ``callables``
calls a user's function with torch tensors (``--candidate``); ``files`` reads ``.pt`` files for
the loaders.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lncheck.errors import InputError, option

if TYPE_CHECKING:
    from lncheck.case import Case
    from lncheck.result import NormResult

NAME = "torch"
LABEL = "torch"

# The backend's op table: op -> (candidate name, function in ``paths``). ``{module}`` is the
# layer's class (BatchNorm2d, ...). The only place in the backend that names ops.
PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "layer_norm": (
        ("torch.nn.LayerNorm", "layer_norm_module"),
        ("torch.nn.functional.layer_norm", "layer_norm_functional"),
        ("torch.native_layer_norm", "layer_norm_native"),
    ),
    "rms_norm": (
        ("torch.nn.RMSNorm", "rms_norm_module"),
        ("torch.nn.functional.rms_norm", "rms_norm_functional"),
        ("torch._fused_rms_norm", "rms_norm_fused"),  # private: not in every release
    ),
    "group_norm": (
        ("torch.nn.GroupNorm", "group_norm_module"),
        ("torch.nn.functional.group_norm", "group_norm_functional"),
        ("torch.native_group_norm", "group_norm_native"),
    ),
    "instance_norm": (
        ("torch.nn.{module}", "instance_norm_module"),
        ("torch.nn.functional.instance_norm", "instance_norm_functional"),
    ),
    "batch_norm": (
        ("torch.nn.{module}", "batch_norm_module"),
        ("torch.nn.functional.batch_norm", "batch_norm_functional"),
        ("torch.native_batch_norm", "batch_norm_native"),
    ),
    "local_response_norm": (
        ("torch.nn.LocalResponseNorm", "lrn_module"),
        ("torch.nn.functional.local_response_norm", "lrn_functional"),
    ),
}
_CLASSES = {"instance_norm": "InstanceNorm1d/2d/3d", "batch_norm": "BatchNorm1d/2d/3d"}
_DEVICE = re.compile(r"^(cpu|mps|cuda(:[0-9]+)?)$")


def available() -> str | None:
    return None if importlib.util.find_spec("torch") is not None else "torch is not installed"


def check_device(device: str, option_name: str) -> None:
    """Raises ``InputError`` for a device name torch would not know (no torch needed)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise InputError(f"{option(option_name)} must be cpu, cuda, cuda:N or mps, got {device!r}")


def describe(op: str) -> str:
    """The torch paths of ``op``, e.g. ``nn.LayerNorm, F.layer_norm, torch.native_layer_norm``."""
    names = [name.format(module=_CLASSES.get(op, "")) for name, _ in PATHS.get(op, ())]
    return ", ".join(
        n.replace("torch.nn.functional.", "F.").replace("torch.nn.", "nn.") for n in names
    )


def short_name(candidate: str) -> str:
    """``torch.nn.functional.layer_norm`` -> ``F.layer_norm``, ``torch.`` dropped."""
    return candidate.replace("torch.nn.functional.", "F.").removeprefix("torch.")


def environment(device: str = "cpu") -> dict[str, Any]:
    from lncheck.backends.torch import runner

    return runner.environment(device)


def default(op: str, option_name: str, dtype: str) -> Any:
    from lncheck.backends.torch import runner

    return runner.default(op, option_name, dtype)


def run(case: Case, device: str, option_name: str = "device") -> Iterator[NormResult]:
    from lncheck.backends.torch import runner

    return runner.run(case, device, option_name)


def call(case: Case, fn: Callable[..., Any], device: str) -> dict[str, Any]:
    from lncheck.backends.torch import callables

    return callables.call(case, fn, device)
