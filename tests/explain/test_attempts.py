"""Which structures came closest when nothing explains the output (``closest_structures``)."""

from __future__ import annotations

import math

from lncheck.explain.attempts import Attempt, closest_structures, residual_level
from lncheck.explain.hypotheses import Pins, Structure, structures

FOUND = {(s.op, s.axes, s.groups, s.grouping): s for s in structures((32, 768), Pins())}
ROWS = FOUND[("layer_norm", (1,), None, None)]  # 768 values per group
FOURS = FOUND[("group_norm", (1,), 192, "contiguous")]  # 4
HALVES = FOUND[("group_norm", (1,), 2, "contiguous")]  # 384


def _attempt(structure: Structure, rho: float, affine: str = "given") -> Attempt:
    return Attempt(structure, affine, True, rho, 0.0, None, None)  # type: ignore[arg-type]


def test_the_level_is_corrected_for_the_two_parameters_of_a_line() -> None:
    assert residual_level(_attempt(FOURS, 1e-3)) == math.sqrt(2) * 1e-3
    assert residual_level(_attempt(FOUND[("group_norm", (1,), 384, "contiguous")], 0.0)) == (
        math.inf
    )


def test_within_a_factor_two_larger_groups_come_first_and_beyond_it_the_level() -> None:
    rows, fours, halves = _attempt(ROWS, 1.5e-3), _attempt(FOURS, 1e-3), _attempt(HALVES, 9e-3)
    ranked = closest_structures([fours, halves, rows])
    assert [found[0].structure for found in ranked] == [ROWS, FOURS, HALVES]


def test_a_weight_fitted_to_few_values_does_not_rank_its_structure() -> None:
    # per feature over 32 rows it fits anything; the structure's other attempts rank it
    fitted = _attempt(FOURS, 1e-9, "fitted")
    ranked = closest_structures([_attempt(ROWS, 1e-3), _attempt(FOURS, 5e-3), fitted])
    assert [found[0].structure for found in ranked] == [ROWS, FOURS]
    assert fitted not in ranked[1]
    # with nothing else, the fitted attempts are ranked
    assert closest_structures([fitted]) == [[fitted]]
