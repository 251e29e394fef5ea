"""What a run produces: the quantities one implementation computed, as plain data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout

Array = npt.NDArray[np.floating]


@dataclass(frozen=True)
class LazyTensor:
    """An input-shaped float64 quantity that is computed block by block, never all at once.

    ``compute(first_group, blocks)`` gets the blocks of each array in ``sources`` (in the
    order of ``layout.blocks``) and returns that block of the quantity.
    """

    layout: GroupLayout
    sources: tuple[npt.NDArray[np.generic], ...]
    compute: Callable[[int, tuple[npt.NDArray[np.generic], ...]], npt.NDArray[np.float64]]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.input_shape

    def blocks(self) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
        iterators = [self.layout.blocks(s) for s in self.sources]
        for parts in zip(*iterators, strict=True):
            first = parts[0][0]
            yield first, self.compute(first, tuple(block for _, block in parts))

    def materialize(self) -> npt.NDArray[np.float64]:
        """The whole quantity as an input-shaped array (for small tensors and tests)."""
        layout = self.layout
        flat = np.empty((layout.groups, layout.group_size), dtype=np.float64)
        for first, block in self.blocks():
            flat[first : first + block.shape[0]] = block
        rest = len(layout.reduce_axes)
        t = flat.reshape(layout.group_shape + layout.reduced_shape)
        view = np.moveaxis(t, range(-rest, 0), layout.reduce_axes) if rest else t
        return view.reshape(layout.input_shape)


Quantity = Array | LazyTensor


@dataclass(frozen=True)
class NormResult:
    """The quantities one implementation (the reference, or a torch path) produced.

    ``quantities`` maps names to values: ``output`` (input-shaped), per-group statistics
    ``mean``, ``var`` and ``rstd`` (flat, one per group in ``GroupLayout`` order), and any
    op-specific ones (``running_mean``, ...). ``scales`` holds, for the reference only, the
    per-group error scale of each quantity that the automatic tolerance multiplies.
    """

    candidate: str
    quantities: Mapping[str, Quantity]
    scales: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)


def as_array(q: Quantity) -> npt.NDArray[np.floating]:
    return q.materialize() if isinstance(q, LazyTensor) else q
