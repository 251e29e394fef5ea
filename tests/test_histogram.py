"""The error histogram (``lncheck.histogram``): bins read off the float64 exponent, checked
against hand-placed values at and around the bin edges."""

from __future__ import annotations

import numpy as np

from lncheck.comparison import HISTOGRAM_OCTAVES, histogram_bins
from lncheck.histogram import BINS, error_counts


def test_each_error_lands_in_its_octave_bin() -> None:
    # octaves start at 2**-63 and step by 3: 2**0 opens bin 2 + 63 // 3 = 23, 2**3 bin 24
    assert BINS == len(histogram_bins()) == len(HISTOGRAM_OCTAVES) + 3
    err = np.array([0.0, 0.0, 1.0, 1.5, np.nextafter(8.0, 0.0), 8.0, 1e-30, 5e-324, 2.0**9, 1e10])
    counts = error_counts(err)
    wanted = np.zeros(BINS, dtype=np.int64)
    wanted[0] = 2  # exact matches
    wanted[1] = 2  # below 2**-63: 1e-30 and the smallest subnormal
    wanted[23] = 3  # [1, 8)
    wanted[24] = 1  # 8
    wanted[BINS - 1] = 2  # 2**9 and above
    assert counts.tolist() == wanted.tolist()
    assert histogram_bins()[23] == "1" and histogram_bins()[24] == "8"


def test_counts_match_a_logarithm_on_random_errors() -> None:
    rng = np.random.default_rng(0)
    err = np.exp2(rng.uniform(-70, 12, size=(64, 33)))
    k = np.floor(np.log2(err))
    bins = np.clip((k - HISTOGRAM_OCTAVES.start) // 3 + 2, 1, BINS - 1).astype(int)
    assert error_counts(err).tolist() == np.bincount(bins.ravel(), minlength=BINS).tolist()
