"""Checking a large input chunk by chunk, in bounded memory.

Groups are independent along some axis of most inputs: the rows of a LayerNorm over trailing
dims, the samples of a GroupNorm. Above ``CHUNK_ELEMENTS`` such inputs are split there: the
backend runs on one chunk at a time, each reference block is computed once for every candidate,
and the chunk's pages of a memory-mapped input are handed back to the OS afterwards. Whether
and how a case splits follows from its spec alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lncheck.case import Case
from lncheck.ops.spec import NormSpec

# Above this many elements, an input whose groups allow it is checked chunk by chunk: the
# backend runs on about this many elements at a time.
CHUNK_ELEMENTS = 1 << 21

Mode = Literal["rows", "batch"]


@dataclass(frozen=True)
class Units:
    """The parts a case is checked in: ``(index of the first group, the case restricted to
    it)``, whether they are chunks, and a note saying so."""

    parts: Iterable[tuple[int, Case]]
    chunked: bool
    notes: tuple[str, ...] = ()


def mode(spec: NormSpec) -> Mode | None:
    """How a spec's input may be split: ``rows`` (leading dims flattened, groups over the
    trailing ones, parameters only along them), ``batch`` (along the first axis, which no
    statistic reduces over), or ``None``."""
    ndim = len(spec.input_shape)
    k = len(spec.reduce_axes)
    trailing = tuple(range(ndim - k, ndim))
    if spec.update_running_stats:
        return None  # running statistics average over the whole batch
    if (
        spec.view_shape == spec.input_shape
        and spec.reduce_axes == trailing
        and k < ndim
        and set(spec.param_axes) <= set(trailing)
        and not spec.stats_shape
    ):
        return "rows"
    if 0 not in spec.reduce_axes and spec.input_shape[0] >= 2:
        return "batch"
    return None


def units(case: Case, chunk_elements: int | None) -> Units:
    """The whole case, or lazily its chunks (each a case of its own)."""
    how = None if case.grad or chunk_elements is None else mode(case.spec)
    if how is None or chunk_elements is None or case.x.size < 2 * chunk_elements:
        return Units([(0, case)], chunked=False)
    if how == "rows":
        if not case.x.flags.c_contiguous:
            return Units([(0, case)], chunked=False)
        k = len(case.spec.reduce_axes)
        x = case.x.reshape(-1, *case.spec.input_shape[len(case.spec.input_shape) - k :])
        per_row = 1
    else:
        x = case.x
        per_row = case.spec.groups // case.spec.input_shape[0]
    rows = x.shape[0]
    step = max(2, chunk_elements // max(1, math.prod(x.shape[1:])))
    if step >= rows:
        return Units([(0, case)], chunked=False)
    starts = list(range(0, rows, step))
    if rows - starts[-1] < 2:  # a lone last sample: GroupNorm, say, may refuse one
        starts.pop()
    bounds = list(zip(starts, [*starts[1:], rows], strict=True))
    note = (
        f"checked in chunks of {step} along the first axis "
        f"({step * math.prod(x.shape[1:])} elements per backend call)"
    )
    return Units(
        ((start * per_row, _chunk(case, x, how, start, stop, per_row)) for start, stop in bounds),
        chunked=True,
        notes=(note,),
    )


def _chunk(case: Case, x: npt.NDArray[Any], how: Mode, start: int, stop: int, per_row: int) -> Case:
    part = x[start:stop]
    given = tuple(
        replace(r, quantities={q: _rows(a, x.shape, start, stop, per_row)
                               for q, a in r.quantities.items()})
        for r in case.given
    )  # fmt: skip
    return case.with_(x=part, given=given, spec=restricted(case.spec, how, part.shape))


def _rows(a: Any, shape: tuple[int, ...], start: int, stop: int, per_row: int) -> npt.NDArray[Any]:
    """The part of a given quantity that belongs to rows ``start:stop``: input-shaped ones by
    row, statistics (flat, one per group) by their groups. Nothing else reaches a chunk:
    gradients and running statistics are never checked in chunks."""
    if a.ndim == 1 and a.size != math.prod(shape):
        return np.asarray(a[start * per_row : stop * per_row])
    return np.asarray(a.reshape(shape)[start:stop])


def restricted(spec: NormSpec, how: Mode, shape: tuple[int, ...]) -> NormSpec:
    """The spec of a chunk of shape ``shape`` cut from the input as ``how`` says."""
    if how == "batch":
        return spec.with_(
            input_shape=(shape[0], *spec.input_shape[1:]),
            view_shape=(shape[0], *spec.view_shape[1:]),
        )
    shift = len(spec.input_shape) - len(shape)
    return spec.with_(
        input_shape=tuple(shape),
        view_shape=tuple(shape),
        reduce_axes=tuple(a - shift for a in spec.reduce_axes),
        param_axes=tuple(a - shift for a in spec.param_axes),
    )


def release_pages(view: npt.NDArray[Any], root: npt.NDArray[Any]) -> None:
    """Drop the pages of ``view`` (a part of the read-only memory-mapped ``root``) from this
    process's memory once it has been checked: the file stays in the page cache, but the
    process's resident memory no longer grows with the size of the input.

    Does nothing for arrays that are not views of a read-only file mapping.
    """
    import mmap as mmap_module

    handle = getattr(root, "_mmap", None)
    if handle is None or root.flags.writeable or not hasattr(handle, "madvise"):
        return
    base = root.ctypes.data - getattr(root, "offset", 0) % mmap_module.ALLOCATIONGRANULARITY
    page = mmap_module.PAGESIZE
    begin = view.ctypes.data - base
    start = -(-begin // page) * page  # only whole pages inside the view
    stop = (begin + view.nbytes) // page * page
    if stop > start:
        with contextlib.suppress(OSError, ValueError):  # an advice, not a requirement
            handle.madvise(mmap_module.MADV_DONTNEED, start, stop - start)
