"""One quantity's tolerance per accuracy class, block by block: what ``compare_blocks``
compares each candidate against (the output model's bounds for the output and its activation,
``tolerance_spec.applied`` for the rest)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lncheck import output_model as om
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.ops.spec import NormSpec
from lncheck.result import LazyTensor, NormResult
from lncheck.scratch import Scratch
from lncheck.tolerance_spec import Atol, applied
from lncheck.tolerances import CLASSES, allowance

F64 = npt.NDArray[np.float64]
PARAMETER_GRADIENTS = ("grad_weight", "grad_bias")
STRUCTURED = ("output", "activation")  # quantities the output model describes


def reduced_over(spec: NormSpec, quantity: str) -> int:
    """How many values each element of a quantity is reduced from (its error grows with it)."""
    if quantity in PARAMETER_GRADIENTS:
        return spec.shared_count
    if spec.use_running_stats and quantity in ("output", "activation", "grad_input"):
        return 1  # eval mode computes no statistics
    return spec.reduced


class Tolerances:
    """One quantity's tolerance for any accuracy class, block by block, computed on demand."""

    def __init__(self, case: Case, ref: NormResult, quantity: str, layout: GroupLayout) -> None:
        self.case, self.ref, self.quantity, self.layout = case, ref, quantity, layout
        self.n = reduced_over(case.spec, quantity)
        self.model = ref.model if quantity in STRUCTURED and case.tolerance.classified else None
        self.lipschitz = 1.0
        if quantity == "activation" and case.spec.activation is not None:
            self.lipschitz = case.spec.activation.lipschitz
        self.generic: dict[int, tuple[float, Atol]] = {}

    def rtol(self, index: int) -> float:
        """The rtol of class ``index`` (of ``CLASSES``), applied to ``|expected|``."""
        if self.model is not None:
            return allowance(self.case.dtype, 1, CLASSES[index]).rounded
        return self._generic(index)[0]

    def _generic(self, index: int) -> tuple[float, Atol]:
        if index not in self.generic:
            self.generic[index] = applied(
                self.case.tolerance,
                self.case.dtype,
                self.n,
                self.ref.bounds.get(self.quantity),
                CLASSES[index],
            )
        return self.generic[index]

    def atol(self, index: int, first: int, stop: int, block: om.OutputBlock | None) -> F64 | float:
        """The atol of class ``index`` on groups ``[first, stop)``: one number, one per group
        (shaped ``(stop - first, 1)``) or one per element (``(stop - first, group_size)``)."""
        if block is not None:
            own = block.atol(self.case.dtype, CLASSES[index])
            if self.quantity == "activation":
                # through the activation: L times the output's whole bound
                return self.lipschitz * (own + self.rtol(index) * np.abs(block.y))
            return own
        _, generic = self._generic(index)
        if isinstance(generic, LazyTensor):
            return generic.at(first, stop)
        values = np.asarray(generic, dtype=np.float64)
        layout = self.layout
        if values.ndim and values.size == layout.groups * layout.group_size:  # per element
            whole = values.reshape(layout.input_shape)
            return np.asarray(layout.block_at(whole, first, stop), dtype=np.float64)
        if values.ndim and values.size == layout.groups:  # per group
            return values.reshape(-1)[first:stop, None]
        if values.ndim:
            values = values.reshape(-1)[0] if values.size == 1 else values
        return float(values)


class BlockTolerance:
    """One block's tolerances, per accuracy class, computed once and shared by candidates."""

    def __init__(self, tol: Tolerances, first: int, stop: int) -> None:
        self.tol, self.first, self.stop = tol, first, stop
        self.block = tol.model.at(first, stop) if tol.model is not None else None
        self.cache: dict[int, F64 | float] = {}

    def atol(self, index: int) -> F64 | float:
        """``Tolerances.atol`` of class ``index`` on this block, memoized."""
        if index not in self.cache:
            self.cache[index] = self.tol.atol(index, self.first, self.stop, self.block)
        return self.cache[index]

    def allowed(self, index: int, expected: F64, scratch: Scratch) -> F64:
        """Class ``index``'s tolerance per element, in ``scratch`` until it is asked again."""
        out = np.abs(expected, out=scratch.get("class.allowed", expected.shape))
        np.multiply(out, self.tol.rtol(index), out=out)
        return np.add(out, self.atol(index), out=out)
