"""A case: everything one check needs, as plain data, after loading and before running."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTypeName
from lncheck.ops.spec import NormSpec
from lncheck.options import Settings
from lncheck.result import NormResult
from lncheck.tolerance_spec import ToleranceSpec

Array = npt.NDArray[np.floating]


@dataclass(frozen=True)
class Case:
    """One input with the layer to check it with.

    Arrays hold exactly the values the backend receives: already rounded to ``dtype`` (bfloat16
    values are stored in float32), so the reference never counts input rounding as the
    backend's error. ``input_dtype`` is the dtype the input had on disk; ``settings`` are the
    options the case was made from, ``spec`` the layer they describe on this input. ``given``
    are the results the user gave as files or arrays (``--expected``), one per candidate, with
    quantities checked and laid out as the reference lays them out (``candidates.bundles``).
    """

    name: str
    x: Array
    input_dtype: str
    dtype: DTypeName
    spec: NormSpec
    settings: Settings = field(default_factory=Settings)
    weight: Array | None = None
    bias: Array | None = None
    given: tuple[NormResult, ...] = ()
    running_mean: Array | None = None
    running_var: Array | None = None
    grad_output: Array | None = None
    tolerance: ToleranceSpec = field(default_factory=ToleranceSpec)
    grad: bool = False
    notes: tuple[str, ...] = ()
    source: str = ""  # where the input came from (a path, a random draw), if not ``name``
    # the user's candidates whose results are stored in a float dtype narrower than ``dtype``
    # (a float16 .npy, a bfloat16 .pt read as float32), by name: that dtype
    stored_narrower: Mapping[str, str] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return str(self.settings["device"])

    @property
    def vs_device(self) -> str | None:
        value = self.settings["vs_device"]
        return None if value is None else str(value)

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])

    @property
    def backend(self) -> str:
        return str(self.settings["backend"])

    def with_(self, **changes: Any) -> Case:
        return replace(self, **changes)
