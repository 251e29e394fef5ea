"""Bounds of the quantities other than a mean/variance op's output (``lncheck.bounds``): the
statistics, the running statistics, LocalResponseNorm's window and activations; by hand, then
through the public entry (statistics given as ``expected={...}``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import lncheck
from lncheck import bounds
from lncheck.comparison import Comparison
from lncheck.reference import run
from lncheck.result import Bound, LazyTensor

from .support import make_case

F64 = npt.NDArray[np.float64]


def materialized(term: Any) -> F64:
    return term.materialize() if isinstance(term, LazyTensor) else np.asarray(term, np.float64)


# --- by hand -------------------------------------------------------------------------------


def test_statistics_bounds_by_hand() -> None:
    spec = make_case(np.zeros((2, 4)), normalized_shape=4, eps=1e-5).spec
    mean, var = np.array([3.0, -1.0]), np.array([4.0, 0.25])
    rstd = np.array([1 / math.sqrt(4 + 1e-5), 1e-5])  # the second below 2**-14: subnormal-prone
    steps = np.array([2.0, 5.0])
    lost = np.array([False, True])  # the second's variance a sequential sum may lose whole
    found = bounds.statistics(spec, mean, var, rstd, 2.0, steps, lost, ~lost)
    assert set(found) == {"output", "mean", "var", "rstd"}
    assert found["output"] == Bound("relative", {}, 2.0)
    kappa = np.array([3 / math.sqrt(4 + 1e-5), 1 / math.sqrt(0.25 + 1e-5)])
    k = 1 + kappa
    assert found["mean"].rtol_kind == ("relative", "spread")
    np.testing.assert_allclose(found["mean"].terms["spread"], np.sqrt(var + 1e-5), rtol=1e-15)
    np.testing.assert_allclose(found["mean"].magnitude, [2.0, 0.5], rtol=1e-15)
    v = found["var"].terms
    np.testing.assert_allclose(v["spread"], kappa * var + k * 1e-5, rtol=1e-14)
    np.testing.assert_allclose(v["quadratic"], k * k * (var + 1e-5), rtol=1e-14)
    # a variance about a mean off by spread * K std grows by its square
    np.testing.assert_allclose(v["spread_squared"], k * k * (var + 1e-5), rtol=1e-14)
    np.testing.assert_allclose(v["sequential"], [8.0, 1.25], rtol=1e-15)
    # ... and rstd's rounding relative to eps (var's own rounding is in rtol), twice: squared
    np.testing.assert_allclose(v["fixed"], [2e-5, 2e-5], rtol=1e-15)
    # 1 / rstd**2 - eps carries rstd's absolute rounding: 2 / rstd**3 where rstd < 2**-14
    np.testing.assert_allclose(v["floor"], [0.0, 2e15], rtol=1e-12)
    r = found["rstd"].terms
    np.testing.assert_allclose(r["spread"], kappa * rstd, rtol=1e-14)
    np.testing.assert_allclose(r["quadratic"], k * k * rstd, rtol=1e-14)
    assert "spread_squared" not in r  # rstd only shrinks, by at most itself: "spread" holds it
    np.testing.assert_allclose(r["sequential"], steps * rstd, rtol=1e-15)
    # a variance lost whole: var itself, and rstd up to 1 / sqrt(eps)
    np.testing.assert_allclose(v["lost"], [0.0, 0.25], rtol=1e-15)
    np.testing.assert_allclose(r["lost"], [0.0, 1 / math.sqrt(1e-5) - 1e-5], rtol=1e-15)
    # ...and one a one-pass variance may lose (here the first's): the same terms
    np.testing.assert_allclose(v["one_pass_lost"], [4.0, 0.0], rtol=1e-15)
    whole = 1 / math.sqrt(1e-5) - 1 / math.sqrt(4 + 1e-5)
    np.testing.assert_allclose(r["one_pass_lost"], [whole, 0.0], rtol=1e-15)


def test_the_subnormal_floor_is_capped() -> None:
    spec = make_case(np.zeros((1, 4)), normalized_shape=4).spec
    one = np.ones(1)
    found = bounds.statistics(spec, np.zeros(1), one, np.array([1e-110]), 1.0, one, one < 0)
    assert found["var"].terms["floor"][0] == 1e300  # 2e330 would overflow


def test_running_statistics_bounds_by_hand() -> None:
    rm, rv = np.array([0.5, -2.0]), np.array([1.0, 3.0])
    squared = np.array([16.0, 64.0])
    found = bounds.running(0.1, rm, rv, np.array([0.25, 0.5]), np.array([4.0, 8.0]), squared)
    assert set(found) == {"running_mean", "running_var"}
    # the old value rounds once (fixed); the batch statistic brings its sum's error (spread)
    mean, var = found["running_mean"].terms, found["running_var"].terms
    np.testing.assert_allclose(mean["fixed"], [0.45, 1.8], rtol=1e-15)
    np.testing.assert_allclose(mean["spread"], [0.025, 0.05], rtol=1e-15)
    np.testing.assert_allclose(var["fixed"], [0.9, 2.7], rtol=1e-15)
    np.testing.assert_allclose(var["spread"], [0.4, 0.8], rtol=1e-15)
    np.testing.assert_allclose(var["spread_squared"], [1.6, 6.4], rtol=1e-15)
    # momentum 1: only the batch; a negative momentum counts by its size
    ones = np.ones(2)
    only_batch = bounds.running(1.0, rm, rv, ones, ones, ones)["running_mean"].terms
    assert only_batch["fixed"].tolist() == [0.0, 0.0] and only_batch["spread"].tolist() == [1, 1]
    negative = bounds.running(-0.5, rm, rv, ones, ones, ones)["running_var"].terms
    np.testing.assert_allclose(negative["fixed"], [1.5, 4.5])
    np.testing.assert_allclose(negative["spread"], [0.5, 0.5])


def _output() -> LazyTensor:
    x = np.random.default_rng(0).standard_normal((3, 8))
    out = run(make_case(x, normalized_shape=8, dtype="float64")).quantities["output"]
    assert isinstance(out, LazyTensor)
    return out


def test_window_and_activation_bounds_are_the_output_times_their_slopes() -> None:
    out = _output()
    y = out.materialize()
    window = bounds.window(out, 0.75)
    assert window.rtol_kind == "relative"
    np.testing.assert_allclose(materialized(window.terms["spread"]), 0.75 * np.abs(y))
    through = bounds.through(window, 2.0, out)
    np.testing.assert_allclose(materialized(through.terms["spread"]), 1.5 * np.abs(y))
    np.testing.assert_allclose(materialized(through.terms["relative"]), 2.0 * np.abs(y))
    stats = Bound("relative", {"spread": np.array([1.0, 3.0])}, np.array([0.5, 1.0]))
    scaled = bounds.through(stats, 1.5)
    assert set(scaled.terms) == {"spread"}  # no output: no relative term of its own
    np.testing.assert_allclose(materialized(scaled.terms["spread"]), [1.5, 4.5])
    np.testing.assert_allclose(scaled.magnitude, [0.75, 1.5])


# --- through the public entry: statistics given beside the output ------------------------


def stats_checks(x: Any, op: str = "layer_norm", **options: Any) -> dict[str, Comparison]:
    report = lncheck.compare(x, op, backend=None, **options)
    return {c.quantity: c for c in report.checks if c.candidate == "expected"}


def _rows() -> tuple[npt.NDArray[np.float32], F64, F64]:
    x = (np.random.default_rng(0).standard_normal((8, 4096)) * 2 + 1).astype(np.float32)
    x64 = x.astype(np.float64)
    return x, x64.mean(-1), x64.var(-1)


def test_exact_statistics_are_accurate() -> None:
    x, mean, var = _rows()
    given = {"mean": mean, "var": var, "rstd": 1 / np.sqrt(var + 1e-5)}
    checks = stats_checks(
        x, normalized_shape=4096, expected={k: v.astype(np.float32) for k, v in given.items()}
    )
    for name in given:
        assert (checks[name].passed, checks[name].accuracy_class) == (True, "accurate"), name


def test_a_variance_off_by_a_sequential_error_passes_unless_strict() -> None:
    x, _, var = _rows()
    # 2e-6 relative: beyond an accurate sum's (3 + 0.5 log2 n) u = 5e-7, within a sequential
    # one's 0.2 n u = 4.9e-5
    off = {"var": (var * (1 + 2e-6)).astype(np.float32)}
    seq = stats_checks(x, normalized_shape=4096, expected=off)["var"]
    assert (seq.passed, seq.accuracy_class) == (True, "sequential")
    strict = stats_checks(x, normalized_shape=4096, expected=off, strict=True)["var"]
    assert (strict.passed, strict.accuracy_class) == (False, "sequential")


@pytest.mark.parametrize("op", ["layer_norm", "group_norm", "batch_norm"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_torchs_variance_of_a_constant_input_read_back_from_its_rstd_passes(
    op: str, dtype: str
) -> None:
    # var = 0, so the variance torch's rstd (stored in the dtype) stands for, 1 / rstd**2 -
    # eps, is all rounding: of rstd, relative to var + eps (bfloat16: 1.4e-8 at 3 against 0)
    x = np.full((2, 4, 7), 3.0, dtype=np.float32)
    options: dict[str, Any] = {"groups": 2} if op == "group_norm" else {}
    if op == "batch_norm":
        options["training"] = True
    if op == "layer_norm":
        options["normalized_shape"] = 7
    report = lncheck.compare(x, op, dtype=dtype, **options)
    (var,) = [c for c in report.checks if c.quantity == "var"]
    assert (var.passed, var.accuracy_class) == (True, "accurate")
    assert var.max_abs_err > 0  # rstd rounded: the variance it stands for is not 0
    assert report.passed


def test_a_variance_far_below_eps_is_checked_to_the_rounding_of_eps() -> None:
    # var 1e-8 against eps 1e-5 in bfloat16: the output cannot tell var = 0 from it (rstd
    # moves by 5e-4, under bfloat16's 4e-3), and a var read back from rstd carries rstd's
    # rounding of eps; a var of a tenth of eps is wrong all the same
    x = (np.random.default_rng(3).standard_normal((4, 64)) * 1e-4).astype(np.float32)
    zero = stats_checks(x, normalized_shape=64, dtype="bfloat16", expected={"var": np.zeros(4)})
    assert zero["var"].passed
    tenth = {"var": np.full(4, 1e-6)}
    wrong = stats_checks(x, normalized_shape=64, dtype="bfloat16", expected=tenth)
    assert not wrong["var"].passed


def test_wrong_statistics_are_mismatches() -> None:
    x, mean, var = _rows()
    wrong = {
        "var": (var * 4096 / 4095).astype(np.float32),  # unbiased: 2.4e-4 relative
        "mean": (mean + 1e-3).astype(np.float32),  # 5e-4 std
        "rstd": (1.001 / np.sqrt(var + 1e-5)).astype(np.float32),
    }
    checks = stats_checks(x, normalized_shape=4096, expected=wrong)
    for name in wrong:
        assert (checks[name].passed, checks[name].accuracy_class) == (False, "mismatch"), name


def _running_case(n: int) -> tuple[npt.NDArray[np.float32], dict[str, Any], F64, F64, F64, F64]:
    x = np.random.default_rng(1).standard_normal((n // 64, 3, 64)).astype(np.float32)
    x64 = x.astype(np.float64)
    rm, rv = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 0.5])
    options = {
        "training": True,
        "track_running_stats": True,
        "running_mean": rm.astype(np.float32),
        "running_var": rv.astype(np.float32),
    }
    return x, options, rm, rv, x64.mean((0, 2)), x64.var((0, 2))


def test_running_statistics_exact_and_with_another_momentum() -> None:
    x, options, rm, rv, mean, var = _running_case(2048)
    unbiased = var * 2048 / 2047  # torch updates the running variance with it
    exact = {"running_mean": 0.9 * rm + 0.1 * mean, "running_var": 0.9 * rv + 0.1 * unbiased}
    checks = stats_checks(
        x, "batch_norm", **options, expected={k: v.astype("f4") for k, v in exact.items()}
    )
    for name in exact:
        assert (checks[name].passed, checks[name].accuracy_class) == (True, "accurate"), name
    momentum = {"running_mean": (0.8 * rm + 0.2 * mean).astype(np.float32)}
    c = stats_checks(x, "batch_norm", **options, expected=momentum)["running_mean"]
    assert (c.passed, c.accuracy_class) == (False, "mismatch")


@pytest.mark.parametrize("n", [256, 2048])
def test_a_running_variance_updated_with_the_biased_variance_is_a_mismatch(n: int) -> None:
    # the difference is 0.1 var / (n - 1): at n = 2048 about 5e-5, 20 times what a sequential
    # float32 variance (0.2 n u relative) can move 0.1 * var
    x, options, _, rv, _, var = _running_case(n)
    biased = {"running_var": (0.9 * rv + 0.1 * var).astype(np.float32)}
    c = stats_checks(x, "batch_norm", **options, expected=biased)["running_var"]
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
