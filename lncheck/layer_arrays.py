"""The arrays a layer is given beside its input (weight, bias, running statistics, the
upstream gradient) checked against its spec: a weight of the wrong shape, running statistics
an op does not keep, an eval-mode BatchNorm without them, a NaN running mean are input errors
naming the file or option (``loading``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck import ops
from lncheck.errors import InputError, option
from lncheck.ops.spec import NormSpec


def check_shapes(
    arrays: Mapping[str, npt.NDArray[Any]], spec: NormSpec, where: Mapping[str, str]
) -> None:
    """The weight, bias, running statistics and upstream gradient (``arrays``, by role) fit
    the layer ``spec``: each is one it takes, of the shape it takes, and eval mode has its
    running statistics; ``where`` names each role's file or option.

    Raises:
        InputError: one does not, named by ``where``.
    """
    expect = {
        "weight": spec.param_shape,
        "bias": spec.param_shape,
        "running_mean": spec.stats_shape,
        "running_var": spec.stats_shape,
        "grad_output": spec.input_shape,
    }
    for role in ("running_mean", "running_var"):
        if role in arrays and not spec.stats_shape:
            if "track_running_stats" not in ops.module(spec.op).READS:  # never, not "here"
                raise InputError(
                    f"{where[role]}: gives a {role}, but {spec.op} keeps no running statistics"
                )
            raise InputError(
                f"{where[role]}: gives a {role}, but {spec.module} here keeps no running "
                f"statistics (see {option('track_running_stats')})"
            )
    missing = [r for r in ("running_mean", "running_var") if r not in arrays]
    if spec.use_running_stats and missing:
        give = " and ".join(option(r) for r in missing) + ("" if len(missing) == 2 else " too")
        raise InputError(
            f"{spec.module} in eval mode normalizes with running statistics: give {give}"
        )
    if "affine" not in ops.module(spec.op).READS:  # no such parameter, whatever the options
        for role in ("weight", "bias"):
            if role in arrays:
                raise InputError(f"{where[role]}: {spec.op} has no {role}")
    if "bias" in arrays and spec.affine and not spec.has_bias:
        raise InputError(f"{where['bias']}: {spec.op} has no bias (it has a weight only)")
    if not spec.affine:
        for role in ("weight", "bias"):
            if role in arrays:
                raise InputError(
                    f"{where[role]}: gives a {role}, but the layer has no affine parameters "
                    f"({option('affine')} is off)"
                )
    for role, value in arrays.items():
        want = expect[role]
        if tuple(value.shape) != tuple(want):
            # named as the option unless it is a member of the input's own file
            which = f"the {role}" if where[role] == where.get("input") else option(role)
            raise InputError(
                f"{where[role]}: {role} has shape {tuple(value.shape)}; "
                f"{which} must have shape {tuple(want)} "
                f"for {spec.op} on an input of shape {spec.input_shape}"
            )


def check_running_values(arrays: Mapping[str, npt.NDArray[Any]], where: Mapping[str, str]) -> None:
    """Running statistics are a layer's state, not data under test: a NaN there, or a negative
    variance, makes every output it reaches NaN, and torch would be blamed for it. (An
    infinity is a state a float16 buffer can hold, and is checked.)

    Raises:
        InputError: a running mean holds NaN or a running variance NaN or a negative value
            (named by ``where``, with the first such value).
    """
    for role in ("running_mean", "running_var"):
        if role not in arrays:
            continue
        with np.errstate(all="ignore"):
            values = np.asarray(arrays[role], dtype=np.float64)
            bad = np.isnan(values) | ((values < 0) if role == "running_var" else False)
        if bad.any():
            first = float(values.flat[int(np.argmax(bad))])
            need = "at least 0" if role == "running_var" else "numbers, not NaN"
            raise InputError(f"{where[role]}: {role} values must be {need}, got {first:g}")


def check_divisor(
    arrays: Mapping[str, npt.NDArray[Any]], where: Mapping[str, str], eps: float
) -> None:
    """In eval, ``running_var + eps`` (the running variance as rounded to the compute dtype)
    is what every output is divided by the square root of.

    Raises:
        InputError: it is 0 somewhere (a variance of 0, or one the dtype rounds to 0, with eps
            0): the output there is inf or NaN, as a kernel happens to fold it.
    """
    if "running_var" not in arrays:
        return
    with np.errstate(all="ignore"):
        divisor = np.asarray(arrays["running_var"], dtype=np.float64) + eps
    if not np.all(divisor):
        raise InputError(
            f"{where['running_var']}: running_var is 0 where {option('eps')} is {eps:g} (as "
            "rounded to the compute dtype): the layer divides by zero there"
        )
