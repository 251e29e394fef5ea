"""The ops lncheck checks: a registry of modules, each turning options into a ``NormSpec``.

``OPS`` is the only list of op names (``--op`` choices, ``lncheck ops``, the example suite all
come from it). An op module has ``NAME``, ``SUMMARY`` (what it normalizes over), ``READS`` (the
per-op options it reads, with their defaults as text) and ``build(settings, shape, dtype,
defaults) -> NormSpec``; it may have ``suffix(settings)`` for its description (``.eval()``).
Modules are imported when used; this module imports neither NumPy nor torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from lncheck import activations
from lncheck.errors import InputError, LncheckError, option
from lncheck.ops.spec import NormSpec, finish
from lncheck.options import Settings, check_applies

OPS: dict[str, str] = {
    "layer_norm": "lncheck.ops.layer_norm",
    "group_norm": "lncheck.ops.group_norm",
    "instance_norm": "lncheck.ops.instance_norm",
    "batch_norm": "lncheck.ops.batch_norm",
    "rms_norm": "lncheck.ops.rms_norm",
    "local_response_norm": "lncheck.ops.local_response_norm",
}
OP_NAMES: tuple[str, ...] = tuple(OPS)


def module(name: str) -> ModuleType:
    """The module of op ``name``.

    Raises:
        InputError: no such op.
    """
    if name not in OPS:
        raise InputError(f"{option('op')}: unknown op {name!r} (known: {', '.join(OPS)})")
    return importlib.import_module(OPS[name])


def momentum_idle(settings: Settings) -> str | None:
    """Why a ``momentum`` weighs nothing in the layer ``settings`` describe (no running
    statistics kept, or none updated: eval), else ``None``; ``None`` too for an op that keeps
    none at all (it does not read the option, which ``check_applies`` refuses)."""
    op = module(settings["op"])
    tracks = getattr(op, "tracks", None)
    if tracks is None:
        return None
    if not tracks(settings):
        return f"{op.NAME} keeps no running statistics with {option('track_running_stats')} off"
    if not settings["training"]:
        return f"{op.NAME} updates no running statistics in eval"
    return None


def training_idle(settings: Settings) -> str | None:
    """Why train or eval mode changes nothing in the layer ``settings`` describe (no running
    statistics kept: both normalize with the batch's), else ``None``; ``None`` too for an op
    that has no such mode (``check_applies`` refuses the option there)."""
    op = module(settings["op"])
    tracks = getattr(op, "tracks", None)
    if tracks is None or tracks(settings):
        return None
    return (
        f"{op.NAME} keeps no running statistics with {option('track_running_stats')} off, and "
        "normalizes with the batch's statistics in train and eval alike"
    )


# options that do nothing in some layers of the ops that read them, and why (``None``: they act)
IDLE = (("momentum", momentum_idle), ("training", training_idle))


def readers_of(name: str) -> list[str]:
    """The ops that read option ``name``."""
    return [op for op in OPS if name in module(op).READS]


def build(
    settings: Settings,
    shape: tuple[int, ...],
    dtype: str = "float32",
    defaults: Mapping[str, Any] | None = None,
) -> NormSpec:
    """The spec of the layer ``settings`` describe on an input of ``shape`` computed in ``dtype``.

    ``defaults`` are values a backend resolved for options left unset (``NormSpec
    .backend_defaults``, e.g. RMSNorm's ``eps=None``).

    Raises:
        InputError: the layer does not fit the input (wrong trailing dims, groups that do not
            divide the channels, axes out of range, ...), an option does not apply to the op;
            options are named in the caller's spelling.
    """
    try:
        op = module(settings["op"])
        check_applies(settings, op.NAME, op.READS)
        if not shape:
            raise InputError("input is a scalar (0-d); normalization needs at least one axis")
        spec: NormSpec = op.build(settings, tuple(shape), dtype, defaults or {})
        suffix = op.suffix(settings) if hasattr(op, "suffix") else ""
        return finish(spec, activations.parse(settings["activation"]), suffix)
    except LncheckError as e:
        raise settings.spell(e) from None
