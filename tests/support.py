"""Helpers the tests share: settings and cases from keyword arguments, as the Python API takes
them."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from lncheck.case import Case
from lncheck.loading import load
from lncheck.options import ARRAY_OPTIONS, Settings, parse
from lncheck.tolerances import ToleranceSpec

_UNSET = object()


def settings(op: str = "layer_norm", **options: Any) -> Settings:
    """``Settings`` as ``lncheck.compare(x, op, **options)`` would make them (``None`` is the
    default, except ``momentum=None``: the cumulative average, as in torch)."""
    given = {k: v for k, v in options.items() if v is not None or k == "momentum"}
    return parse({"op": op, **given}, "api", unset=_UNSET)


def make_case(
    x: npt.ArrayLike,
    op: str = "layer_norm",
    *,
    tolerance: ToleranceSpec | None = None,
    name: str = "array",
    **options: Any,
) -> Case:
    """A case from an in-memory input; array options (``weight=``, ``expected=``, ...) are
    arrays, ``tolerance`` replaces the one the options describe."""
    arrays = {k: options.pop(k) for k in ARRAY_OPTIONS if k in options}
    given = {"input": x, **{k: v for k, v in arrays.items() if v is not None}}
    case = load(settings(op, **options), name, given=given)
    return case if tolerance is None else case.with_(tolerance=tolerance)
