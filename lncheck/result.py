"""What a run produces: the quantities one implementation computed, as plain data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lncheck.blocks import GroupLayout

if TYPE_CHECKING:
    from lncheck.output_model import OutputModel

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

    def at(self, first: int, stop: int) -> npt.NDArray[np.float64]:
        """The block of groups ``[first, stop)`` (one of ``blocks``, computed on its own)."""
        parts = tuple(self.layout.block_at(s, first, stop) for s in self.sources)
        return self.compute(first, parts)

    def map(self, fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]) -> LazyTensor:
        """A lazy quantity whose blocks are ``fn`` of this one's blocks."""
        inner = self.compute
        return LazyTensor(self.layout, self.sources, lambda first, blocks: fn(inner(first, blocks)))

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
# A per-group array (one value per group of the quantity's layout), or a per-element lazy one.
Scale = npt.NDArray[np.float64] | LazyTensor


@dataclass(frozen=True)
class Bound:
    """A quantity's forward error bound, in parts that ``tolerances`` weighs by the dtype:
    ``|error| <= coefficient[rtol_kind] * |value| + sum(coefficient[k] * terms[k])``.

    Kinds: ``relative`` (roundings proportional to the result), ``spread`` (the error of the
    statistics, which grows with the group size and is magnified by the conditioning),
    ``fixed`` (single roundings, such as adding the bias), ``floor`` (magnified absolute
    errors of subnormal values), ``exact`` (differences that are not roundings at all, such as
    a ReLU derivative's jump where the output is within its error of 0).
    """

    rtol_kind: str | tuple[str, ...]  # the kinds whose weights sum to rtol
    terms: Mapping[str, Scale] = field(default_factory=dict)
    # The quantity's natural size per group (|w| + |b| for an output): ULP errors are counted
    # at max(|value|, magnitude), so that values near zero are not held to the spacing there.
    magnitude: npt.NDArray[np.float64] | float = 0.0


@dataclass(frozen=True)
class NormResult:
    """The quantities one implementation (the reference, or a torch path) produced.

    ``quantities`` maps names to values: ``output`` (input-shaped), per-group statistics
    ``mean``, ``var`` and ``rstd`` (flat, one per group in ``GroupLayout`` order), and any
    op-specific ones (``running_mean``, ...). For the reference only, ``bounds`` holds each
    quantity's error bound (see ``tolerances``) and ``conditioning`` each group's
    ``|mean| / sqrt(var + eps)``.
    """

    candidate: str
    quantities: Mapping[str, Quantity]
    bounds: Mapping[str, Bound] = field(default_factory=dict)
    conditioning: npt.NDArray[np.float64] | None = None
    # for a mean/variance op's reference: the output's bounds per class and its structure
    model: OutputModel | None = None
    # for the reference: per quantity, a convention's words and the values it gives (the
    # running variance updated with the biased batch variance), which a candidate may match
    conventions: Mapping[str, tuple[str, npt.NDArray[np.float64]]] = field(default_factory=dict)


# Input-shaped quantities; the others are one per group, per channel or per parameter.
ELEMENTWISE = ("output", "activation", "grad_input")
# per group or channel: what the layer computes, saves or updates to normalize with
STATISTICS = ("mean", "var", "rstd", "running_mean", "running_var")


def blocks_of(q: Quantity, layout: GroupLayout) -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
    """The blocks of a quantity, whether it is computed lazily or held whole."""
    return q.blocks() if isinstance(q, LazyTensor) else layout.blocks(q)


def as_array(q: Quantity) -> npt.NDArray[np.floating]:
    return q.materialize() if isinstance(q, LazyTensor) else q
