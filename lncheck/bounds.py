"""The reference's error bounds for its quantities other than a mean/variance op's output
(whose bound, per accuracy class, is ``output_model``'s): statistics, running statistics,
LocalResponseNorm, activations. Each bound is a sum of terms of the kinds ``tolerances``
weighs by accuracy class; see its docstring for the derivation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from lncheck.ops.spec import NormSpec
from lncheck.result import Bound, LazyTensor, Scale

F64 = npt.NDArray[np.float64]
ROUNDED = ("relative", "spread")  # a statistic's own rounding, and its algorithm's error


def statistics(
    p: NormSpec,
    mean: F64,
    var: F64,
    rstd: F64,
    magnitude: F64 | float,
    steps: F64,
    lost: npt.NDArray[np.bool_],
    one_pass_lost: npt.NDArray[np.bool_] | None = None,
) -> dict[str, Bound]:
    """Bounds of a mean/variance op's statistics; the output's bound is only its magnitude (the
    scale its ULP errors are measured at) here, the rest is ``OutputModel``'s. ``lost``: the
    groups whose variance a sequential sum may lose whole (``tolerances.LAST_PLACE_LEVELS``),
    rstd then ``1 / sqrt(eps)``; ``one_pass_lost``: those a one-pass variance may
    (``tolerances.low_precision_ceiling``; ``None``: none)."""
    with np.errstate(all="ignore"):  # NaN statistics give NaN bounds, which never pass
        kappa = np.abs(mean) / np.sqrt(var + abs(p.eps))
        k = 1.0 + kappa
        # a variance read back from rstd as 1 / rstd**2 - eps (torch returns only rstd) carries
        # rstd's rounding relative to var + eps, twice (squared): the var part is var's own
        # rounding, the eps part is not (at var far below eps it is most of the error); and
        # rstd's absolute rounding error where rstd may be subnormal (a huge eps; 2**-14 is
        # float16's smallest normal, the largest of the dtypes')
        subnormal = np.where(rstd < 2.0**-14, np.minimum(2.0 / rstd**3, 1e300), 0.0)
        whole_rstd = np.abs(1.0 / np.sqrt(abs(p.eps)) - rstd)
        lost_rstd = np.where(lost, whole_rstd, 0.0)
        one_pass = np.zeros(var.shape, dtype=bool) if one_pass_lost is None else one_pass_lost
        return {
            "output": Bound("relative", {}, magnitude),
            "mean": Bound(ROUNDED, {"spread": np.sqrt(var + abs(p.eps))}, np.sqrt(var)),
            "var": Bound(
                ROUNDED,
                {
                    "spread": kappa * np.abs(var) + k * abs(p.eps),
                    "quadratic": k * k * (np.abs(var) + abs(p.eps)),
                    # about a mean off by its own allowance, spread * K std
                    "spread_squared": k * k * (np.abs(var) + abs(p.eps)),
                    "sequential": steps * np.abs(var),
                    "fixed": np.full_like(var, 2.0 * abs(p.eps)),
                    "floor": subnormal,
                    "lost": np.where(lost, np.abs(var), 0.0),
                    "one_pass_lost": np.where(one_pass, np.abs(var), 0.0),
                },
            ),
            "rstd": Bound(
                ROUNDED,
                {
                    "spread": kappa * rstd,
                    "quadratic": k * k * rstd,
                    "sequential": steps * rstd,
                    "lost": lost_rstd,
                    "one_pass_lost": np.where(one_pass, whole_rstd, 0.0),
                },
            ),
        }


def running(
    f: float,
    running_mean: F64,
    running_var: F64,
    mean_size: F64,
    var_size: F64,
    var_squared: F64,
) -> dict[str, Bound]:
    """Bounds of the updated running statistics: the momentum-weighted sums of the old values'
    roundings and the batch statistics' errors (``var_squared``: the batch variance's
    ``spread_squared`` term, as ``statistics`` gives it)."""
    with np.errstate(all="ignore"):
        return {
            # the old value is rounded once (fixed); only the batch statistic's share carries
            # a sum's error (spread)
            "running_mean": Bound(
                ROUNDED,
                {"fixed": abs(1 - f) * np.abs(running_mean), "spread": abs(f) * mean_size},
            ),
            "running_var": Bound(
                ROUNDED,
                {
                    "fixed": abs(1 - f) * np.abs(running_var),
                    "spread": abs(f) * var_size,
                    "spread_squared": abs(f) * var_squared,
                },
            ),
        }


BlockFn = Callable[[int, tuple[npt.NDArray[np.generic], ...]], F64]


def window(output: LazyTensor, beta: float) -> Bound:
    """LocalResponseNorm: the window's sum of squares has the statistics' error, and the power
    magnifies it by ``beta``."""
    return Bound(
        "relative", {"spread": _lazy(output, lambda f, b: beta * np.abs(output.compute(f, b)))}
    )


def through(bound: Bound, lipschitz: float, output: LazyTensor | None = None) -> Bound:
    """An activation with slope at most ``L`` after the quantity ``bound`` describes: every
    term times ``L``, and ``L * |y|`` for the quantity's own relative part."""
    terms: dict[str, Scale] = {}
    for kind, term in bound.terms.items():
        terms[kind] = _scaled(term, lipschitz)
    if output is not None:
        terms["relative"] = _lazy(output, lambda f, b: lipschitz * np.abs(output.compute(f, b)))
    magnitude = lipschitz * np.asarray(bound.magnitude, dtype=np.float64)
    return Bound("relative", terms, magnitude)


def _scaled(term: Scale, factor: float) -> Scale:
    if isinstance(term, LazyTensor):
        inner = term.compute
        return LazyTensor(term.layout, term.sources, lambda f, b: factor * inner(f, b))
    return np.asarray(factor * np.asarray(term, dtype=np.float64))


def _lazy(output: LazyTensor, fn: BlockFn) -> LazyTensor:
    """A per-element term computed from the same blocks as ``output``."""
    return LazyTensor(
        output.layout,
        output.sources,
        lambda first, blocks: np.broadcast_to(
            np.asarray(fn(first, blocks), np.float64), blocks[0].shape
        ),
    )
