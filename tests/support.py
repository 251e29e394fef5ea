"""Helpers the tests share: settings and cases from keyword arguments, as the Python API takes
them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import lncheck
from lncheck.case import Case
from lncheck.comparison import Comparison
from lncheck.loading import load
from lncheck.options import ARRAY_OPTIONS, Settings, parse
from lncheck.tolerance_spec import ToleranceSpec

if TYPE_CHECKING:
    import torch

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


def output_check(x: Any, op: str = "layer_norm", **options: Any) -> Comparison:
    """The check of the candidate ``expected=`` output, with no backend."""
    report = lncheck.compare(x, op, backend=None, **options)
    (check,) = [c for c in report.checks if c.candidate == "expected" and c.quantity == "output"]
    return check


def layer_norm(x: Any, eps: float = 1e-5, ddof: int = 0) -> npt.NDArray[np.float64]:
    """LayerNorm over the last axis in float64 (``ddof=1`` gives the unbiased variance)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(x.var(-1, ddof=ddof, keepdims=True) + eps))


def as_float64(t: torch.Tensor) -> npt.NDArray[np.float64]:
    """A torch tensor's values in float64, as a NumPy array."""
    return np.asarray(t.double().numpy())
