"""A case: everything one check needs, as plain data, after loading and before running."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTypeName
from lncheck.layers import Layer, Plan
from lncheck.tolerances import ToleranceSpec

Array = npt.NDArray[np.floating]


@dataclass(frozen=True)
class Case:
    """One input with the layer to check it with.

    Arrays hold exactly the values torch receives: already rounded to ``dtype`` (bfloat16
    values are stored in float32), so the reference never counts input rounding as torch's
    error. ``input_dtype`` is the dtype the input had on disk.
    """

    name: str
    x: Array
    input_dtype: str
    dtype: DTypeName
    layer: Layer
    plan: Plan
    weight: Array | None = None
    bias: Array | None = None
    expected: Array | None = None
    running_mean: Array | None = None
    running_var: Array | None = None
    grad_output: Array | None = None
    tolerance: ToleranceSpec = field(default_factory=ToleranceSpec)
    device: str = "cpu"
    vs_device: str | None = None
    grad: bool = False
    seed: int = 0
    notes: tuple[str, ...] = ()
