"""One block's structural verdict for one candidate (``output_model``'s fit and judgement),
and what a check's tally takes from it: the block's class, its worst group's distortion and
every group's, for the conventions that may explain them all (``semantics``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lncheck import output_model as om
from lncheck.affine_fit import Fit, fit
from lncheck.blocks import uniform_rows
from lncheck.dtypes import round_to
from lncheck.judge import Scores, judge
from lncheck.tolerances import CLASSES
from lncheck.verdicts import ClassTally, Distortion

F64 = npt.NDArray[np.float64]


class Structure:
    """A block's structural verdict for one candidate."""

    def __init__(
        self,
        index: int,
        block: om.OutputBlock,
        fit: Fit,
        scores: Scores,
        kinds: list[str | None],
    ) -> None:
        self.index, self.block, self.fit, self.scores = index, block, fit, scores
        self.group_score, self.kinds = scores.group, kinds

    def record(self, tally: ClassTally, first: int) -> None:
        """Every group's distortion, for the conventions that may explain them all."""
        tally.distortions.add(
            first,
            self.fit.fitted,
            self.fit.ds,
            self.fit.shift,
            self.scores.scale_accurate,
            self.scores.shift_accurate,
            uniform_value(self.block.weight, self.block.y.shape[0], 1.0),
            uniform_value(self.block.bias, self.block.y.shape[0], 0.0),
            self.block.model.levels[self.block.first : self.block.first + self.block.y.shape[0]],
            self.scores.flat,
        )

    def worst(self, first: int) -> Distortion:
        g = int(np.argmax(self.group_score)) if self.group_score.size else 0
        return Distortion(
            float(self.group_score[g]),
            float(self.fit.scale[g]),
            float(self.fit.shift[g]),
            first + g,
            self.kinds[g],
            float(self.scores.scale_accurate[g]),
            float(self.scores.shift_accurate[g]),
            float(self.scores.one_pass[g]),
            int(self.scores.flat[g]),
        )

    def systematic(self) -> tuple[float, float, float]:
        """The weighted fit's largest share of its limits over the block's groups, and that
        group's weighted scale and shift (``Scores.systematic``)."""
        if not self.scores.systematic.size:
            return 0.0, 1.0, 0.0
        g = int(np.argmax(self.scores.systematic))
        sc = self.scores
        return float(sc.systematic[g]), float(sc.weighted_scale[g]), float(sc.weighted_shift[g])


def structure_of(
    block: om.OutputBlock, actual: npt.NDArray[np.generic], dtype: str, accepted: int
) -> Structure:
    rounding = None
    if dtype != "float64":  # rounded minus exact: a new array, written in place
        rounding = np.array(round_to(block.y, dtype), dtype=np.float64)  # type: ignore[arg-type]
        with np.errstate(invalid="ignore"):  # inf - inf where the output is beyond the dtype
            rounding -= block.y
    found = fit(block, actual, block.residual_bound(dtype, CLASSES[0]), rounding)
    classes, scores, kinds = judge(
        block, found, actual, dtype, CLASSES[: len(CLASSES) - 1], accepted
    )
    return Structure(int(classes.max()) if classes.size else 0, block, found, scores, kinds)


def uniform_value(param: F64 | None, groups: int, default: float) -> F64:
    """Per group, the parameter's value where it is the same for every element, else NaN."""
    if param is None:
        return np.full(groups, default)
    return np.where(uniform_rows(param), param[:, 0], np.nan)
