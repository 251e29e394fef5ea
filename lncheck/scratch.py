"""Block-sized float64 buffers, reused from block to block.

On these machines a freshly allocated page costs more on first touch than the arithmetic done
on it, and NumPy hands block-sized temporaries back to the OS as soon as they are freed: the
comparison's hot path writes into buffers that stay.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class Scratch:
    """Named float64 buffers for one block at a time. A name is prefixed by the stage that
    owns it (``shared.``: ``prepare``'s result, ``update.``: an accumulator's, ``class.``: the
    class tally's), which alone writes it: a buffer of another stage may still be in use."""

    def __init__(self) -> None:
        self.flat: dict[str, F64] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> F64:
        """The buffer ``name``, shaped ``shape``; its old contents are garbage."""
        size = math.prod(shape)
        flat = self.flat.get(name)
        if flat is None or flat.size < size:
            flat = self.flat[name] = np.empty(size)
        return flat[:size].reshape(shape)
