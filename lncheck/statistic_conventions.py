"""A statistic a candidate computed by another convention than the layer's: the running
variance updated with the biased batch variance (the one the layer normalizes with), where
torch's rule takes the unbiased one. Its error can be within what a sequential sum may lose
(``m var / (n - 1)`` of a large batch), yet it is a different function: the candidate's values
match the convention's to within the ``accurate`` class's bound while the layer's values lie
``SIGNIFICANT`` such bounds away from them, as ``semantics`` asks of an output's groups."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lncheck.semantics import MIN_GROUPS, SIGNIFICANT

F64 = npt.NDArray[np.float64]


def met(expected: F64, actual: F64, predicted: F64, allowed: F64) -> bool:
    """Whether ``actual`` is ``predicted`` (a convention's values) rather than ``expected``
    (the layer's): every element within ``allowed`` (the ``accurate`` class's bound) of the
    prediction, and ``MIN_GROUPS`` of them (all, where fewer) more than ``SIGNIFICANT`` bounds
    from the layer's values. NaN anywhere meets nothing."""
    with np.errstate(all="ignore"):
        fits = np.abs(actual - predicted) <= allowed
        apart = np.abs(predicted - expected) > SIGNIFICANT * allowed
    return bool(fits.all()) and int(np.count_nonzero(apart)) >= min(MIN_GROUPS, apart.size)
