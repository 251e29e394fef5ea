"""Bundles: a candidate's arrays named after quantities, checked against the layer and laid out
as the reference lays them out.

A file, a program's output or a callable's return value is either one array, the layer's final
output (after ``--activation`` when one is given), or a bundle whose members are named after
quantities (``lncheck.candidates.QUANTITIES``). Each member must be a quantity this layer has,
in its shape:

* ``output``, ``activation``, ``grad_input``: the input's shape;
* ``mean``, ``var``, ``rstd``: one value per group, with the reduced dims kept as size 1 (ONNX
  ``Mean``/``InvStdDev``) or squeezed (``torch.native_layer_norm`` keeps them; the group shape),
  or flat; they are compared flat, in the reference's group order;
* ``running_mean``, ``running_var``: per channel, the values *after* this step's update;
* ``grad_weight``, ``grad_bias``: the weight's shape (need ``--grad``).

Values are compared as given (a float16 statistic stays float16); integers become float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.candidates import QUANTITIES
from lncheck.dtypes import real_numbers
from lncheck.errors import InputError, LncheckError, option, with_context
from lncheck.ops.spec import NormSpec, dims
from lncheck.result import NormResult

Array = npt.NDArray[np.floating]
STATISTICS = ("mean", "var", "rstd")
RUNNING = ("running_mean", "running_var")
GRADIENTS = ("grad_input", "grad_weight", "grad_bias")
# Names a lone array has in a file that is not a bundle: a .npy, a tensor or a JSON list (the
# readers call it "input"), np.savez's positional name, or the input file's own "expected".
PLAIN_NAMES = ("input", "arr_0", "expected")


def final_quantity(spec: NormSpec) -> str:
    """What a plain array stands for: the activation's output with ``--activation``, else the
    norm's output."""
    return "activation" if spec.activation is not None else "output"


def members(arrays: Mapping[str, Any], quantity: str | None, spec: NormSpec) -> dict[str, Any]:
    """A file's arrays as quantities: ``quantity`` when the entry names one (the file must then
    hold one array, or one named so), else the final output (one plain array) or a bundle.

    Raises:
        InputError: no array at all, an unknown member (the message lists the known ones), or
            a file that holds several arrays but none named ``quantity``.
    """
    if not arrays:
        raise InputError("holds no arrays")
    if quantity is not None:
        if len(arrays) == 1:
            return {quantity: next(iter(arrays.values()))}
        if quantity in arrays:
            return {quantity: arrays[quantity]}
        raise InputError(f"holds {len(arrays)} arrays and none is named {quantity!r}")
    if arrays and all(name in QUANTITIES for name in arrays):
        return dict(arrays)
    if len(arrays) == 1 and next(iter(arrays)) in PLAIN_NAMES:
        return {final_quantity(spec): next(iter(arrays.values()))}
    unknown = sorted(name for name in arrays if name not in QUANTITIES)
    raise InputError(
        f"unknown member {unknown[0]!r}: a bundle's members are named after quantities "
        f"({', '.join(QUANTITIES)})"
    )


def checked(
    quantities: Mapping[str, Any], spec: NormSpec, grad: bool, where: str
) -> dict[str, Array]:
    """The quantities checked against the layer, as the comparison takes them: element-wise
    ones in the input's shape, statistics flat in group order, the rest in their own shape.

    Raises:
        InputError: a quantity this layer does not have here, a boolean array, or an array of
            the wrong shape; the message starts with ``where``.
    """
    out: dict[str, Array] = {}
    for quantity in QUANTITIES:
        if quantity not in quantities:
            continue
        value = real_numbers(np.asarray(quantities[quantity]), where, quantity)
        if value.dtype.kind != "f":
            value = value.astype(np.float64)
        reason = _not_here(quantity, spec, grad)
        if reason is not None:
            raise InputError(f"{where}: gives {quantity}, but {reason}")
        shapes = accepted_shapes(quantity, spec)
        if tuple(value.shape) not in shapes:
            raise InputError(
                f"{where}: {quantity} has shape {dims(value.shape)}; {spec.op} on an input of "
                f"shape {dims(spec.input_shape)} needs {' or '.join(dims(s) for s in shapes)}"
            )
        out[quantity] = value.reshape(-1) if quantity in STATISTICS else value
    unknown = sorted(set(quantities) - set(QUANTITIES))
    if unknown:
        raise InputError(
            f"{where}: unknown quantity {unknown[0]!r} (known: {', '.join(QUANTITIES)})"
        )
    return out


def _not_here(quantity: str, spec: NormSpec, grad: bool) -> str | None:
    """Why this layer has no such quantity here, or ``None``."""
    if quantity == "activation" and spec.activation is None:
        return f"no {option('activation')} is given"
    if quantity in STATISTICS and not spec.statistics:
        return f"{spec.op} computes no per-group statistics"
    if quantity in RUNNING and not spec.update_running_stats:
        return (
            f"{spec.module} updates no running statistics here (only in training, with "
            f"{option('track_running_stats')})"
        )
    if quantity in GRADIENTS and not grad:
        return f"gradients are checked only with {option('grad')}"
    if quantity == "grad_weight" and not spec.affine:
        return "the layer has no weight"
    if quantity == "grad_bias" and not spec.has_bias:
        return "the layer has no bias"
    return None


def accepted_shapes(quantity: str, spec: NormSpec) -> list[tuple[int, ...]]:
    """The shapes a quantity may have: for statistics the group shape, with the reduced dims
    kept as size 1, or flat."""
    if quantity in ("output", "activation", "grad_input"):
        return [spec.input_shape]
    if quantity in RUNNING:
        return [spec.stats_shape]
    if quantity in ("grad_weight", "grad_bias"):
        return [spec.param_shape]
    kept = tuple(1 if i in spec.reduce_axes else n for i, n in enumerate(spec.view_shape))
    return list(dict.fromkeys([spec.group_shape, kept, (math.prod(spec.group_shape),)]))


@dataclass(frozen=True)
class Part:
    """The arrays of one ``--expected`` entry, read: ``quantity`` of ``candidate`` (``None``:
    a whole file), from ``where`` (a path, or how the API argument is named)."""

    candidate: str
    quantity: str | None
    arrays: Mapping[str, Any]
    where: str
    # what a reader knew of an array's dtype beyond NumPy's (a .pt's bfloat16, read as float32)
    dtype_names: Mapping[str, str] = field(default_factory=dict)


def given(parts: list[Part], spec: NormSpec, grad: bool) -> tuple[NormResult, ...]:
    """The results the user gave as files (or arrays), one per candidate, in the order first
    named; several entries of one candidate are merged.

    Raises:
        InputError: as ``members`` and ``checked``, or a quantity given twice for a candidate.
    """
    merged: dict[str, dict[str, Any]] = {}
    source: dict[tuple[str, str], str] = {}
    for part in parts:
        try:
            found = members(part.arrays, part.quantity, spec)
        except LncheckError as e:
            raise with_context(e, part.where) from None
        mine = merged.setdefault(part.candidate, {})
        for quantity, value in found.items():
            before = source.get((part.candidate, quantity))
            if before is not None:
                raise InputError(
                    f"{part.where}: gives {quantity} of candidate {part.candidate!r}, "
                    f"which {before} gives too"
                )
            source[(part.candidate, quantity)] = part.where
            mine[quantity] = checked({quantity: value}, spec, grad, part.where)[quantity]
    return tuple(NormResult(name, _ordered(q)) for name, q in merged.items())


def _ordered(quantities: Mapping[str, Array]) -> dict[str, Array]:
    return {q: quantities[q] for q in QUANTITIES if q in quantities}
