"""Candidates whose quantity is bit-identical to one already compared: compared once.

On the CPU, torch's module, functional and native paths usually return the very same bytes, and
comparing each in full repeats the costliest stage of a run for nothing. A candidate whose
quantity matches an earlier candidate's byte for byte, in every unit of the input, gets that
candidate's figures, and the report says which one it is identical to.

Chunks arrive with every candidate's part alive at once: their bytes are compared directly, and a
candidate that stops matching in a later chunk takes over its twin's totals of the chunks before
(they were the same bytes) and is compared on its own from there. The whole tensor is compared
one candidate at a time, so that one output is alive at a time: there each compared candidate
leaves a SHA-256 digest of its bytes (a collision is not a practical concern) for the later ones;
a large one is hashed in two halves on two threads, the digest being that of the halves'
digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from lncheck.result import NormResult, as_array

Key = tuple[str, str]  # (candidate, quantity)
# Byte comparisons go this many elements at a time, so that their temporaries stay small.
_STEP = 1 << 20
_Digest = tuple[str, int, str, tuple[int, ...], bytes]  # quantity, offset, dtype, shape, SHA-256
_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# From this many bytes on, a digest is taken in two halves, one per core (hashlib releases the
# GIL): a 256 MB output took 0.16 s in one, 0.09 s in two, on the reference machine
_HALVES_FROM = 1 << 24


class Twins:
    """Which candidates' quantities are bit-identical to an earlier candidate's, unit by unit."""

    def __init__(self, sequential: bool) -> None:
        # ``sequential``: candidates arrive one at a time (the whole tensor), not side by side
        self.sequential = sequential
        self.of: dict[Key, str] = {}  # identical to this candidate in every unit so far
        self.compared: set[Key] = set()  # compared on their own in some unit
        self.digests: dict[_Digest, str] = {}

    def split(
        self, quantity: str, offset: int, results: Sequence[NormResult]
    ) -> tuple[list[NormResult], list[tuple[Key, Key]]]:
        """The results whose ``quantity`` in the unit at ``offset`` must be compared, and the
        (key, twin's key) of those that stopped matching their twin here: each must take over its
        twin's totals before the twin is fed this unit."""
        distinct: list[NormResult] = []
        diverged: list[tuple[Key, Key]] = []
        for r in results:
            key = (r.candidate, quantity)
            actual = as_array(r.quantities[quantity])
            digest = _digest_key(quantity, offset, actual) if self.sequential else None
            twin = self._twin(digest, actual, quantity, distinct)
            previous = self.of.get(key)
            starting = key not in self.compared and previous is None
            if twin is not None and (starting or twin == previous):
                self.of[key] = twin
                continue
            if previous is not None:
                diverged.append((key, (previous, quantity)))
                del self.of[key]
            self.compared.add(key)
            distinct.append(r)
            if digest is not None:
                self.digests.setdefault(digest, r.candidate)
        return distinct, diverged

    def _twin(
        self,
        digest: _Digest | None,
        actual: npt.NDArray[np.generic],
        quantity: str,
        distinct: Sequence[NormResult],
    ) -> str | None:
        """The earlier candidate whose bytes ``actual`` repeats: by ``digest`` (one at a
        time), or byte by byte among the ``distinct`` results of this unit."""
        if digest is not None:
            return self.digests.get(digest)
        for earlier in distinct:
            if same_bytes(as_array(earlier.quantities[quantity]), actual):
                return earlier.candidate
        return None


def same_bytes(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> bool:
    """Whether two arrays hold the same bytes (so NaN equals the same NaN, and -0 differs from
    0), compared a slice at a time."""
    if a is b:
        return True
    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.hasobject:
        return False
    flat_a, flat_b = _words(a), _words(b)
    for start in range(0, flat_a.size, _STEP):
        if not np.array_equal(flat_a[start : start + _STEP], flat_b[start : start + _STEP]):
            return False
    return True


def _words(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    flat = np.ravel(a)  # a view of the contiguous outputs backends return
    word = _WORDS.get(flat.dtype.itemsize)
    return flat.view(word) if word is not None else flat.view(np.uint8)


def _digest_key(quantity: str, offset: int, actual: npt.NDArray[np.generic]) -> _Digest:
    data = np.ascontiguousarray(actual)
    return quantity, offset, data.dtype.str, data.shape, sha256_of(data)


def sha256_of(data: npt.NDArray[np.generic]) -> bytes:
    """The SHA-256 digest of a contiguous array's bytes; from ``_HALVES_FROM`` bytes on, that
    of its two halves' digests, one taken on a second thread while this one takes the other."""
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if flat.nbytes < _HALVES_FROM:
        return hashlib.sha256(flat.data).digest()
    half = flat.nbytes // 2
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lncheck-digest") as pool:
        second = pool.submit(lambda: hashlib.sha256(flat[half:].data).digest())
        first = hashlib.sha256(flat[:half].data).digest()
        return hashlib.sha256(first + second.result()).digest()
