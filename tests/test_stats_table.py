"""The statistics table: the first groups and the worst, kept as units stream past."""

from __future__ import annotations

import numpy as np
import pytest

from lncheck.blocks import GroupLayout
from lncheck.pipeline import check_case
from lncheck.result import NormResult
from lncheck.stats_table import FIRST_GROUPS, WORST_GROUPS, StatsCollector

from .support import make_case


@pytest.mark.parametrize("chunk", [None, 64])
def test_a_nan_group_is_shown_among_the_worst(chunk: int | None) -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    x[10, 3] = np.nan
    report = check_case(make_case(x, normalized_shape=8), chunk_elements=chunk)
    assert report.stats is not None
    groups = [row.group for row in report.stats.rows]
    assert (10,) in groups and groups[:3] == [(0,), (1,), (2,)] and len(groups) == 8
    assert report.stats.omitted == 40 - 8


def _result(candidate: str, mean: np.ndarray, var: np.ndarray) -> NormResult:
    return NormResult(candidate, {"mean": mean, "var": var})


def test_first_groups_and_the_worst_ones() -> None:
    groups = 20
    layout = GroupLayout((groups,), (groups,), ())
    ref = NormResult("reference", {"mean": np.zeros(groups), "var": np.ones(groups)})
    off = np.zeros(groups)
    off[[7, 12]] = [0.5, 0.1]  # two groups whose mean is off, 7 the worse
    collector = StatsCollector(layout, "torch")
    collector.add(0, ref, _result("torch.x", off, np.ones(groups)))
    collector.add(0, ref, _result("torch.y", off + 9, np.ones(groups)))  # one candidate only
    table = collector.table()
    assert table is not None and table.candidate == "torch.x" and table.label == "torch"
    assert [r.group for r in table.rows] == [(0,), (1,), (2,), (7,), (12,)]
    assert table.omitted == groups - 5
    assert FIRST_GROUPS == 3 and WORST_GROUPS == 5


def test_no_table_without_statistics() -> None:
    collector = StatsCollector(GroupLayout((2,), (2,), ()), "torch")
    collector.add(0, NormResult("reference", {}), NormResult("torch.x", {"output": np.ones(2)}))
    assert collector.table() is None
