"""Group layouts: blocks must be exactly the rows of moveaxis + reshape, in order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lncheck.blocks import GroupLayout


@st.composite
def layouts(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], int, str]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    # any order: GroupNorm on channels-last data reduces a later axis first
    axes = tuple(
        draw(st.permutations(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))))
    )
    return shape, axes, draw(st.integers(1, 40)), draw(st.sampled_from("CF"))


@given(layouts())
def test_blocks_are_the_transposed_rows(
    args: tuple[tuple[int, ...], tuple[int, ...], int, str],
) -> None:
    shape, axes, block, order = args
    x = np.asarray(np.arange(np.prod(shape), dtype=np.float64).reshape(shape), order=order)
    layout = GroupLayout(shape, shape, axes, block_elements=block)
    want = np.moveaxis(x, axes, range(-len(axes), 0)).reshape(layout.groups, layout.group_size)
    firsts, rows = [], []
    for first, b in layout.blocks(x):
        firsts.append(first)
        rows.append(b)
    np.testing.assert_array_equal(np.concatenate(rows), want)
    assert firsts == sorted(firsts) and firsts[0] == 0
    for g in range(layout.groups):
        for m in range(layout.group_size):
            assert x[layout.index(g, m)] == want[g, m]


def test_broadcast_parameters_follow_the_same_blocks() -> None:
    shape = (3, 4, 5)
    w = np.arange(5.0).reshape(1, 1, 5)
    layout = GroupLayout(shape, shape, (2,), block_elements=10)
    for _, b in layout.blocks(w):
        np.testing.assert_array_equal(b, np.broadcast_to(np.arange(5.0), b.shape))


def test_view_shape_splits_channels_for_groups() -> None:
    # GroupNorm-style: (N, C, L) viewed as (N, G, C/G, L), reducing the last two axes.
    x = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3)
    layout = GroupLayout((2, 4, 3), (2, 2, 2, 3), (2, 3))
    assert (layout.groups, layout.group_size) == (4, 6)
    rows = np.concatenate([b for _, b in layout.blocks(x)])
    np.testing.assert_array_equal(rows, x.reshape(4, 6))
    assert layout.index(3, 5) == (1, 3, 2)


@pytest.mark.parametrize("block", [1, 3, 1 << 18])
def test_blocks_of_contiguous_rows_are_views(block: int) -> None:
    x = np.zeros((6, 8))
    layout = GroupLayout((6, 8), (6, 8), (1,), block_elements=block)
    assert all(np.shares_memory(b, x) for _, b in layout.blocks(x))
