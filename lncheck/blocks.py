"""Views of arrays as (groups, elements per group) blocks, a bounded number of groups at a time.

The reference, the comparison and the metrics all walk the same blocks in the same order, so
that no stage ever needs a float64 copy of a whole tensor: memory stays proportional to one
block, whatever the input's size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lncheck.sources import check_intact

# 1 MiB of float32 input per block (2 MiB per float64 temporary, below the 4 MiB from which
# NumPy asks for huge pages): the accuracy classes' per-block work is many short NumPy calls,
# and at 64M elements blocks of 2^18 are about 15% faster than blocks of 2^16, at the same
# peak RSS once the command line keeps one malloc arena (benchmarks/bench_large.py).
BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class GroupLayout:
    """How an array of ``view_shape`` splits into groups (the non-reduced axes) and elements.

    Group ``g`` is the C-order flat index over ``group_shape``; element ``m`` is the C-order flat
    index over the reduced axes, in their order in ``view_shape``.
    """

    input_shape: tuple[int, ...]
    view_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    block_elements: int = BLOCK_ELEMENTS

    @property
    def group_axes(self) -> tuple[int, ...]:
        return tuple(i for i in range(len(self.view_shape)) if i not in self.reduce_axes)

    @property
    def group_shape(self) -> tuple[int, ...]:
        return tuple(self.view_shape[i] for i in self.group_axes)

    @property
    def reduced_shape(self) -> tuple[int, ...]:
        return tuple(self.view_shape[i] for i in self.reduce_axes)

    @property
    def groups(self) -> int:
        return math.prod(self.group_shape)

    @property
    def group_size(self) -> int:
        return math.prod(self.reduced_shape)

    @property
    def groups_per_block(self) -> int:
        return max(1, self.block_elements // max(1, self.group_size))

    def transposed(self, a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        """``a`` (input-shaped, or broadcastable to the view) with the reduced axes last."""
        if a.shape == self.input_shape:
            view = a.reshape(self.view_shape)
        else:
            view = np.broadcast_to(a, self.view_shape)
        return np.moveaxis(view, self.reduce_axes, range(-len(self.reduce_axes), 0))

    def spans(self) -> Iterator[tuple[int, int]]:
        """The ``[first, stop)`` group ranges of the blocks: they depend on the shape only, so
        the blocks of differently laid out arrays (an input, a torch output) always line up."""
        step = self.groups_per_block
        for first in range(0, self.groups, step):
            yield first, min(self.groups, first + step)

    def blocks(self, a: npt.NDArray[np.generic]) -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
        """Yield ``(first_group, block)`` where ``block`` is a (groups, group_size) array.

        Blocks are views of ``a`` where the memory layout allows and block-sized copies where
        it does not; they are read-only and must not be kept beyond the next iteration.
        """
        t = self.transposed(a)
        k = len(self.group_axes)
        m = self.group_size
        if k == 0:
            check_intact(a)
            yield 0, t.reshape(1, m)
            return
        merged = _merge_leading(t, k)
        for first, stop in self.spans():
            check_intact(a)  # a memory-mapped file truncated meanwhile: an error, not SIGBUS
            if merged is not None:
                block = merged[first:stop]
            else:  # group axes that cannot be merged without a copy: gather this block's groups
                block = t[np.unravel_index(np.arange(first, stop), self.group_shape)]
            yield first, block.reshape(stop - first, m)

    def block_at(
        self, a: npt.NDArray[np.generic], first: int, stop: int
    ) -> npt.NDArray[np.generic]:
        """The ``(stop - first, group_size)`` block of groups ``[first, stop)`` of ``a``, as
        ``blocks`` would yield it (for stages that visit several arrays block by block)."""
        t = self.transposed(a)
        k = len(self.group_axes)
        if k == 0:
            return t.reshape(1, self.group_size)
        merged = _merge_leading(t, k)
        if merged is not None:
            block = merged[first:stop]
        else:
            block = t[np.unravel_index(np.arange(first, stop), self.group_shape)]
        return block.reshape(stop - first, self.group_size)

    def index(self, group: int, element: int) -> tuple[int, ...]:
        """The input index of element ``element`` of group ``group``."""
        view_index = [0] * len(self.view_shape)
        for axis, i in zip(self.group_axes, unravel(group, self.group_shape), strict=True):
            view_index[axis] = i
        for axis, i in zip(self.reduce_axes, unravel(element, self.reduced_shape), strict=True):
            view_index[axis] = i
        return unravel(_ravel(view_index, self.view_shape), self.input_shape)

    def group_index(self, group: int) -> tuple[int, ...]:
        """The multi-index of group ``group`` in ``group_shape``."""
        return unravel(group, self.group_shape)


# NumPy's ravel_multi_index/unravel_index take at most 32 dims; arrays may have 64.
def unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The C-order multi-index of ``flat`` in ``shape`` (any number of dims)."""
    out = []
    for n in reversed(shape):
        flat, i = divmod(int(flat), n) if n else (flat, 0)
        out.append(i)
    return tuple(reversed(out))


def _ravel(index: list[int], shape: tuple[int, ...]) -> int:
    flat = 0
    for i, n in zip(index, shape, strict=True):
        flat = flat * n + i
    return flat


def _merge_leading(t: npt.NDArray[np.generic], k: int) -> npt.NDArray[np.generic] | None:
    """``t`` with its first ``k`` axes merged into one, as a view, or None if that needs a copy."""
    shape, strides = t.shape[:k], t.strides[:k]
    kept = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    for (_, outer), (n_inner, inner) in itertools.pairwise(kept):
        if outer != inner * n_inner:
            return None
    stride = kept[-1][1] if kept else t.itemsize
    merged_strides = (stride, *t.strides[k:])
    return np.lib.stride_tricks.as_strided(
        t, shape=(math.prod(shape), *t.shape[k:]), strides=merged_strides, writeable=False
    )


def float64_block(a: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """``a`` (a block, or a parameter broadcast to one) in float64, row-major.

    Converting a broadcast view (a per-feature weight) keeps the order of its strides, which
    puts the broadcast axis innermost: the weight would come out transposed, and every
    element-wise pass over the block (and every result of one) would then stride across rows,
    about ten times slower."""
    return np.ascontiguousarray(a, dtype=np.float64)


def uniform_rows(param: npt.NDArray[np.float64] | None) -> npt.NDArray[np.bool_]:
    """Per row of a block, whether every element of ``param`` is the same (``True`` for none)."""
    if param is None:
        return np.array(True)
    if not param.shape[1]:
        return np.ones(param.shape[0], dtype=bool)
    # max == min, not ptp == 0: a row of equal infinities is uniform (inf - inf is NaN)
    return np.asarray(np.max(param, axis=1) == np.min(param, axis=1))
