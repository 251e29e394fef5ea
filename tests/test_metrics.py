"""Metrics block by block: figures by hand, NaN/Inf rules, the worst element, ULPs, histograms,
heatmaps and their plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import lncheck
from lncheck import pipeline
from lncheck.blocks import GroupLayout
from lncheck.cli import app
from lncheck.comparison import HISTOGRAM_OCTAVES, Comparison, histogram_bins
from lncheck.dtypes import DTYPES, ulp
from lncheck.metrics import Accumulator, compare

from .conftest import EXAMPLES
from .support import make_case

cli = CliRunner()


def _compare(
    expected: list[float] | np.ndarray,
    actual: list[float] | np.ndarray,
    rtol: float = 0.0,
    atol: float | np.ndarray = 0.0,
    equal_nan: bool = False,
    block: int = 1 << 18,
) -> Comparison:
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual)
    layout = GroupLayout(e.shape, e.shape, (e.ndim - 1,), block_elements=block)
    return compare("cand", "output", e, a, layout, rtol=rtol, atol=atol, equal_nan=equal_nan)


def test_metrics_by_hand() -> None:
    c = _compare([[1.0, 2.0, -4.0, 0.5]], [[1.0, 2.5, -4.0, 0.4]], rtol=0.1, atol=0.01)
    # errors 0, 0.5, 0, 0.1; allowed 0.11, 0.21, 0.41, 0.06 -> elements 1 and 3 fail
    assert (c.mismatched, c.total, c.passed) == (2, 4, False)
    assert c.max_abs_err == 0.5
    assert c.max_rel_err == pytest.approx(0.25)  # 0.5 / 2 beats 0.1 / 0.5 = 0.2
    assert c.mean_abs_err == pytest.approx(0.6 / 4)
    # worst = largest error / allowed: 0.5 / 0.21 = 2.38 vs 0.1 / 0.06 = 1.67
    assert c.worst_index == (0, 1) and (c.worst_actual, c.worst_expected) == (2.5, 2.0)
    assert c.required_atol == pytest.approx(0.5 - 0.1 * 2.0)  # smallest atol with rtol 0.1
    assert c.required_rtol == pytest.approx((0.5 - 0.01) / 2.0)  # smallest rtol with atol 0.01
    assert c.tolerance_used == pytest.approx(0.5 / 0.21)


def test_required_tolerances_really_are_the_smallest_that_pass() -> None:
    rng = np.random.default_rng(3)
    e = rng.standard_normal((4, 50))
    a = e + rng.standard_normal((4, 50)) * 1e-3
    c = _compare(e, a, rtol=1e-4, atol=1e-4)
    assert not c.passed
    assert _compare(e, a, rtol=1e-4, atol=c.required_atol * (1 + 1e-12)).passed
    assert not _compare(e, a, rtol=1e-4, atol=c.required_atol * (1 - 1e-6)).passed
    assert _compare(e, a, rtol=c.required_rtol * (1 + 1e-12), atol=1e-4).passed
    assert not _compare(e, a, rtol=c.required_rtol * (1 - 1e-6), atol=1e-4).passed


def test_exact_match_with_zero_tolerance_passes() -> None:
    c = _compare([[0.0, 1.0]], [[0.0, 1.0]])
    assert c.passed and c.max_abs_err == 0 and c.required_atol == 0


def test_per_group_atol() -> None:
    e = np.zeros((2, 3))
    a = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    c = _compare(e, a, atol=np.array([1.0, 0.1]))
    assert c.mismatched == 1 and c.worst_index == (1, 0)
    assert c.atol == 0.1  # the worst element's own atol, as its message says
    assert c.atol_max == 1.0  # the largest anywhere, for "atol up to"


def test_nan_where_reference_is_finite_fails() -> None:
    c = _compare([[1.0, 2.0, 3.0]], [[1.0, np.nan, 3.0]], rtol=1, atol=1)
    assert not c.passed and c.nan_actual == 1 and c.mismatched == 1
    assert c.worst_index == (0, 1) and math.isnan(c.worst_actual)
    assert c.required_atol == math.inf and c.required_rtol == math.inf
    # a NaN where a number belongs is no small difference: no atol covers it
    assert c.max_abs_err == math.inf and c.mean_abs_err == 0.0


def test_matching_nans_need_equal_nan() -> None:
    assert not _compare([[np.nan, 1.0]], [[np.nan, 1.0]]).passed
    c = _compare([[np.nan, 1.0]], [[np.nan, 1.0]], equal_nan=True)
    assert c.passed and c.nan_expected == 1 and c.nan_actual == 1


def test_a_check_of_matching_nans_and_infinities_only_has_no_finite_figures() -> None:
    # nothing finite was compared: NaN, not the 0 of "no difference" (inf where one mismatched)
    c = _compare([[np.nan, np.inf]], [[np.nan, np.inf]], equal_nan=True)
    assert c.passed
    figures = (c.max_abs_err, c.max_rel_err, c.mean_abs_err)
    assert all(math.isnan(v) for v in figures), figures


def test_infinities() -> None:
    assert _compare([[np.inf, -np.inf]], [[np.inf, -np.inf]]).passed
    c = _compare([[np.inf, 1.0]], [[-np.inf, 1.0]], rtol=1, atol=1)
    assert not c.passed and c.inf_actual == 1 and c.worst_index == (0, 0)
    assert not _compare([[1.0, 2.0]], [[1.0, np.inf]], rtol=1, atol=1).passed


def test_a_nan_tolerance_never_lets_an_error_pass() -> None:
    layout = GroupLayout((1, 3), (1, 3), (1,))
    c = compare(
        "c",
        "output",
        np.array([[1.0, 2.0, 3.0]]),
        np.array([[5.0, 2.0, 3.0]]),
        layout,
        rtol=0.0,
        atol=np.array([np.nan]),
    )
    assert not c.passed and c.worst_index == (0, 0) and c.worst_actual == 5.0


def test_zero_reference_gives_unbounded_relative_figures() -> None:
    layout = GroupLayout((1, 3), (1, 3), (1,))
    c = compare(
        "c",
        "output",
        np.array([[0.0, 2.0, 3.0]]),
        np.array([[1e-9, 2.0, 3.0]]),
        layout,
        rtol=1e-3,
        atol=0.0,
    )
    assert c.max_rel_err == float("inf") and c.required_rtol == float("inf")


def test_a_nan_candidate_reports_an_unbounded_difference_not_zero() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4))
    with pytest.raises(AssertionError, match="greatest absolute difference inf"):
        lncheck.check(np.full_like(x, np.nan), x, normalized_shape=4, equal_nan=True)


def test_worst_element_across_blocks() -> None:
    e = np.zeros((10, 4))
    a = e.copy()
    a[7, 2] = 1e-3
    a[2, 1] = 1e-4
    for block in (1, 4, 8, 1000):
        assert _compare(e, a, atol=1e-5, block=block).worst_index == (7, 2)


def test_candidate_dtype_is_promoted_exactly() -> None:
    e = np.array([[0.1, 0.2]])
    a16 = e.astype(np.float16)
    c = _compare(e, a16)
    assert c.max_abs_err == pytest.approx(abs(float(np.float16(0.2)) - 0.2))


def test_shape_mismatch_is_checked_before_any_arithmetic() -> None:
    layout = GroupLayout((2, 3), (2, 3), (1,))
    c = compare("cand", "output", np.zeros((2, 3)), np.zeros((3, 2)), layout, rtol=0, atol=0)
    assert not c.passed and c.note == "has shape (3, 2), the reference has shape (2, 3)"
    assert c.total == c.mismatched == 6 and c.max_abs_err == math.inf


# --- ULPs ---------------------------------------------------------------------------------------


def test_ulp_spacing() -> None:
    f32 = DTYPES["float32"]
    assert ulp(np.array([1.0]), f32)[0] == 2.0**-23
    assert ulp(np.array([1.5]), f32)[0] == 2.0**-23
    assert ulp(np.array([2.0]), f32)[0] == 2.0**-22
    assert ulp(np.array([0.0]), f32)[0] == 2.0**-149  # subnormal spacing
    assert ulp(np.array([1.0]), DTYPES["bfloat16"])[0] == 2.0**-7
    assert ulp(np.array([1e-6]), DTYPES["float16"])[0] == 2.0**-24


def test_ulp_error_is_measured_at_the_output_scale() -> None:
    """Near-zero outputs do not produce million-ulp figures: ulps count at max(|ref|, |w|+|b|)."""
    x = np.random.default_rng(3).standard_normal((64, 256)).astype(np.float32)
    report = pipeline.check_case(make_case(x, normalized_shape=(256,), dtype="float32"))
    out = next(c for c in report.checks if c.quantity == "output")
    assert 0.1 < out.max_ulp_err < 8
    raw = out.max_rel_err / 2.0**-23  # what dividing by the spacing at |ref| would give
    assert raw > 100 * out.max_ulp_err


# --- histograms ---------------------------------------------------------------------------------


def test_histogram_counts_every_element() -> None:
    x = np.random.default_rng(4).standard_normal((8, 32)).astype(np.float32)
    report = pipeline.check_case(make_case(x, normalized_shape=(32,), dtype="float32"))
    out = next(c for c in report.checks if c.quantity == "output")
    assert sum(out.histogram) == out.total == 256
    assert len(out.histogram) == len(histogram_bins())


def test_histogram_bins_by_hand() -> None:
    errors = np.array([[0.0, 2.0**-70, 2.0**-24, 1.5 * 2.0**-24, 2.0**-22, 2.0**-21, 1e4]])
    layout = GroupLayout(errors.shape, errors.shape, (1,))
    c = compare("c", "output", np.zeros_like(errors), errors, layout, rtol=0.0, atol=1e9)
    labels = histogram_bins()
    counts = dict(zip(labels, c.histogram, strict=True))
    assert counts["0"] == 1 and counts[labels[1]] == 1  # exact, and below 2^-63
    assert counts[f"{2.0**-24:.2g}"] == 3  # [2^-24, 2^-21)
    assert counts[f"{2.0**-21:.2g}"] == 1
    assert counts[labels[-1]] == 1  # 1e4 >= 2^9
    assert sum(c.histogram) == errors.size


@given(
    st.lists(
        st.one_of(
            st.just(0.0), st.floats(0, 1e6), st.floats(1e-320, 1e-300), st.floats(1e-30, 1e-3)
        ),
        min_size=1,
        max_size=300,
    )
)
def test_histogram_matches_a_naive_count(errors: list[float]) -> None:
    err = np.array(errors, dtype=np.float64).reshape(1, -1)
    acc = Accumulator(0.0, False, None, None)
    acc._histogram(err)
    want = np.zeros_like(acc.histogram)
    low, high = HISTOGRAM_OCTAVES.start, HISTOGRAM_OCTAVES.stop
    for e in errors:
        if e == 0:
            want[0] += 1
        elif e < 2.0**low:
            want[1] += 1
        elif e >= 2.0**high:
            want[-1] += 1
        else:
            want[2 + (math.floor(math.log2(e)) - low) // 3] += 1
    np.testing.assert_array_equal(acc.histogram, want)


# --- heatmaps and their plot ----------------------------------------------------------------------


def test_heatmap_max_pools_the_errors() -> None:
    e = np.zeros((300, 4))
    a = e.copy()
    a[299, 3] = 1e-3
    layout = GroupLayout(e.shape, e.shape, (1,), block_elements=64)
    c = compare("c", "output", e, a, layout, rtol=0.0, atol=1.0, heatmap=True)
    assert c.heatmap is not None and c.heatmap.shape == (128, 4)
    assert c.heatmap[-1, 3] == 1e-3 and c.heatmap.sum() == 1e-3
    assert compare("c", "output", e, a, layout, rtol=0.0, atol=1.0).heatmap is None


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "errors.png"
    result = cli.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--plot", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = cli.invoke(
        app,
        [
            "compare",
            str(EXAMPLES / "tokens.npy"),
            "--shape",
            "4",
            "--plot",
            str(tmp_path / "p.png"),
        ],
    )
    assert result.exit_code == 2 and "--plot needs matplotlib" in result.stderr


def test_a_structural_share_per_group_is_charged_to_its_largest_error() -> None:
    from lncheck.metrics import prepare

    expected = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    actual = expected + np.array([[0.0, 0.05, 0.01, 0.0], [0.0, 0.0, 0.02, 0.0]])
    shared = prepare(expected, 0.0, 0.1, 0.0)

    def charged(candidate: np.ndarray, against: Any = shared) -> Any:
        """One block's comparison, group 0 failing its structural check (share 3), group 1
        not (share 0.5)."""
        acc = Accumulator(0.0, False, None, None)
        acc.update(0, against, candidate, 0.1, np.array([3.0, 0.5]))
        return acc.result("cand", "output", GroupLayout((2, 4), (2, 4), (1,)))

    c = charged(actual)
    # one element fails: group 0's largest error (0.05, element 1), never the rest of it
    assert (c.mismatched, c.worst_index, c.tolerance_used) == (1, (0, 1), 3.0)
    # that element is within its own tolerance (0.05 <= 0.1): the failure is its group's
    assert c.worst_by_group and c.atol == 0.1
    assert (
        "(within its own rtol=0, atol=0.1; its group's fitted scale, shift or residual is 3x"
        in (c.message())
    )
    # an element beyond its own tolerance fails on its own, whatever its group's share
    c = charged(expected + np.array([[0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert (c.worst_index, c.tolerance_used, c.worst_by_group) == ((0, 1), 5.0, False)
    assert c.message().endswith("(allowed there: rtol=0, atol=0.1)")
    # ...and where its group's share is the larger, tolerance_used is that share
    # (worst_by_group), the message still what the element fails on
    c = charged(expected + np.array([[0.0, 0.15, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert (c.worst_index, c.tolerance_used, c.worst_by_group) == ((0, 1), 3.0, True)
    assert c.message().endswith("(allowed there: rtol=0, atol=0.1)")
    # a block with a NaN charges the share at the same element too
    nan = actual.copy()
    nan[1, 0] = np.nan
    c = charged(nan)
    # the NaN (the worst: no tolerance covers it) and group 0's largest error
    assert (c.mismatched, c.worst_index, c.nan_actual) == (2, (1, 0), 1)
    assert not c.worst_by_group  # the NaN fails on its own
    # a block with a matching infinity: group 0's share is the worst, and its group's
    inf_expected, inf_actual = expected.copy(), actual.copy()
    inf_expected[1, 0] = inf_actual[1, 0] = np.inf
    c = charged(inf_actual, prepare(inf_expected, 0.0, 0.1, 0.0))
    assert (c.worst_index, c.tolerance_used, c.worst_by_group) == ((0, 1), 3.0, True)


def test_the_worst_failure_no_loss_explains_is_kept_apart() -> None:
    from lncheck.metrics import prepare

    layout = GroupLayout((2, 4), (2, 4), (1,))
    expected = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    nan_row = expected.copy()
    nan_row[1] = np.nan
    excused = np.isnan(nan_row)

    def worst(blocks: list[tuple[np.ndarray, np.ndarray | None]], unexcused: bool) -> Any:
        acc = Accumulator(0.0, False, None, None)
        for actual, marks in blocks:  # the same block again, as a later chunk would be
            acc.update(0, prepare(expected, 0.0, 0.1, 0.0), actual, 0.1, None, None, marks)
        return acc.result("cand", "output", layout, unexcused_first=unexcused)

    bug = nan_row.copy()
    bug[0, 2] += 0.5
    off = expected.copy()
    off[0, 2] += 0.5
    for blocks in ([(bug, excused)], [(nan_row, excused), (off, None)]):
        # named after the NaN (the worst of all) unless the unexcused failure is asked for
        c = worst(blocks, False)
        assert (c.worst_index, c.mismatched, c.tolerance_used) == ((1, 0), 5, np.inf)
        c = worst(blocks, True)
        assert (c.worst_index, c.mismatched, c.tolerance_used) == ((0, 2), 5, np.inf)
        assert (c.worst_actual, c.worst_expected) == (3.5, 3.0)
    # with none, the worst of all
    c = worst([(expected + 0.01, None), (nan_row, excused)], True)
    assert (c.worst_index, c.mismatched) == ((1, 0), 4)
    # unexcused, the NaN is one
    c = worst([(bug, None)], True)
    assert c.worst_index == (1, 0)
