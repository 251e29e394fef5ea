"""The error histogram: how many errors fall in each bin of ``comparison.HISTOGRAM_OCTAVES``
(bins ``[2**k, 2**(k + 3))``), plus exact matches, one bin below and one above.

Binary bins are read off each float64's exponent bits, so no error is ever misbinned by a
rounded logarithm, and a block costs one comparison per bin edge between its smallest and
largest error.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

from lncheck.comparison import HISTOGRAM_OCTAVES

BINS = len(HISTOGRAM_OCTAVES) + 3  # exact matches, below, the octaves, above
_TOP_WORD = 3 if sys.byteorder == "little" else 0
# Biased exponent (0..2047) -> histogram bin; exponent 0 (zeros, subnormals) lands below.
_BIN_OF_EXPONENT = np.clip(
    (np.arange(2048) - 1023 - HISTOGRAM_OCTAVES.start) // 3 + 2, 1, len(HISTOGRAM_OCTAVES) + 2
)
# The smallest biased exponent of each bin (bins 0 and 1 both start at exponent 0).
_FIRST_EXPONENT_OF_BIN = np.searchsorted(_BIN_OF_EXPONENT, np.arange(BINS)).astype(np.uint16)


def error_counts(err: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """How many of ``err`` (finite absolute errors, any shape, at least one) fall in each of
    the ``BINS`` bins: from their biased binary exponents (the top 16 bits of a float64 are its
    sign, 11 exponent bits and 4 mantissa bits), one comparison of those 16-bit words per bin
    edge between the smallest and the largest error."""
    counts = np.zeros(BINS, dtype=np.int64)
    words = np.ascontiguousarray(err, dtype=np.float64).view(np.uint16).reshape(-1, 4)
    top = words[:, _TOP_WORD] >> np.uint16(4)
    low, high = int(_BIN_OF_EXPONENT[top.min()]), int(_BIN_OF_EXPONENT[top.max()])
    at_least = [top.size]  # how many errors fall in bin `low` or above, then low + 1, ...
    for b in range(low + 1, high + 1):
        at_least.append(int(np.count_nonzero(top >= _FIRST_EXPONENT_OF_BIN[b])))
    at_least.append(0)
    counts[low : high + 1] = -np.diff(np.array(at_least))
    if low <= 1:
        zeros = int(np.count_nonzero(err == 0))
        counts[1] -= zeros
        counts[0] += zeros
    return counts
