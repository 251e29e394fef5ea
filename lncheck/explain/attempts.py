"""What the search works on: the ``Problem``, each ``Attempt`` of a structure and affine map on
the sampled groups, and, when nothing explains the output, which structures came closest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.dtypes import DTypeName
from lncheck.explain.fit import GroupFit
from lncheck.explain.fitted_affine import FittedAffine
from lncheck.explain.hypotheses import Affine, Pins, Structure

F64 = npt.NDArray[np.float64]
Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Problem:
    """One search: the arrays (weight and bias float64 in their own shape), the structures to
    score, what is pinned, and the precision the observed values are rounded to."""

    x: Array
    y: Array
    weight: F64 | None
    bias: F64 | None
    structures: tuple[Structure, ...]
    pins: Pins
    precision: DTypeName
    input_cast: DTypeName | None = None  # x, weight and bias were rounded to this first


@dataclass
class Attempt:
    """A structure, affine map and centring fitted on the sample."""

    structure: Structure
    affine: Affine
    centered: bool
    rho: float
    repeats: float
    weight: Array | None
    bias: Array | None
    fitted: FittedAffine | None = None
    full: GroupFit | None = None


def residual_level(a: Attempt) -> float:
    """The sample fit's residual corrected for the 2 parameters fitted per group: a group of
    2 elements always fits a line, and says nothing about the structure."""
    m = a.structure.layout.group_size
    return a.rho * math.sqrt(m / (m - 2)) if m > 2 else math.inf


def structure_key(a: Attempt) -> tuple[str, tuple[int, ...], int | None, str | None]:
    """The op, axes, groups and grouping of ``a`` as a candidate reports them."""
    s = a.structure
    return (s.op if a.centered else "rms_norm", s.axes, s.groups, s.grouping)


def shown_affine(affine: Affine) -> str:
    """The affine map as a candidate reports it: the given weight without the given bias is
    "given" with no bias (the schema of ``--json`` has no other name for it)."""
    return "given" if affine == "weight_only" else affine


def closest_structures(attempts: list[Attempt]) -> list[list[Attempt]]:
    """The attempts grouped by structure, the closest first by their sample fit.

    Within a factor 2 of the best level the sample cannot tell structures apart: a line fits a
    group of 3 or 4 elements whatever it is, as well as the layer's own groups where each
    element errs alone (statistics kept in float16); larger groups are the stronger evidence
    there. A weight fitted to few values per feature fits anything: structures are ranked by
    their other attempts where they have any."""
    finite = [a for a in attempts if math.isfinite(residual_level(a))]
    plain = [a for a in finite if a.affine != "fitted"] or finite
    grouped: dict[tuple[Any, ...], list[Attempt]] = {}
    for a in plain:
        grouped.setdefault(structure_key(a), []).append(a)
    best = min((residual_level(a) for a in plain), default=0.0)

    def rank(found: list[Attempt]) -> tuple[int, int, float]:
        level = min(residual_level(a) for a in found)
        octave = 0 if level <= best else int(math.log2(level / best)) if best > 0 else 1
        return octave, -found[0].structure.layout.group_size, level

    return sorted(grouped.values(), key=rank)
