"""The ops: one module per op (hand-computed values, its options, its errors) and the registry.

Helpers the op modules share: a layer's configurations checked against torch in float64 (to
1e-10) and float32, and the message an invalid layer raises, in a given caller's spelling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.loading import load
from lncheck.options import Surface, parse
from lncheck.report import Report
from lncheck.tolerance_spec import ToleranceSpec

from ..backends.test_conformance import assert_matches_reference, spec_of

TIGHT = ToleranceSpec.from_options(1e-10, 1e-10)


def running_statistics(op: str, shape: tuple[int, ...], /, **options: Any) -> dict[str, np.ndarray]:
    """Running statistics for the layer, where it keeps them (seeded: the same every run)."""
    stats_shape = spec_of(op, shape, **options).stats_shape
    if not stats_shape:
        return {}
    rng = np.random.default_rng(7)
    return {
        "running_mean": rng.normal(0, 1, stats_shape),
        "running_var": rng.uniform(0.5, 2, stats_shape),
    }


def matches_torch_in_float64(op: str, shape: tuple[int, ...], /, **options: Any) -> Report:
    """Every torch path of the layer agrees with the reference to 1e-10 in float64."""
    running = running_statistics(op, shape, **options)
    report = assert_matches_reference(
        "torch", op, "float64", shape, tolerance=TIGHT, **options, **running
    )
    assert len({c.candidate for c in report.checks}) >= 2  # module and functional at least
    return report


def matches_torch_in_float32(op: str, shape: tuple[int, ...], /, **options: Any) -> Report:
    """Every torch path of the layer passes the automatic tolerance in float32."""
    running = running_statistics(op, shape, **options)
    return assert_matches_reference("torch", op, "float32", shape, **options, **running)


def error_of(op: str, shape: tuple[int, ...], surface: Surface = "cli", /, **options: Any) -> str:
    """The message of the ``InputError`` that loading an input of ``shape`` for the layer
    raises, with options named as ``surface`` spells them (``--groups`` by default)."""
    with pytest.raises(InputError) as info:
        load(parse({"op": op, **options}, surface), "x.npy", given={"input": np.ones(shape)})
    return str(info.value)
