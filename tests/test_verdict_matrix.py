"""The verdict matrix's bookkeeping (benchmarks/verdict_matrix), on a tiny configuration.

These tests check the matrix itself (its inputs, its correct kernels, its bugs and how it counts
lncheck's answers), never lncheck's current miss or false-alarm figures, which change as the
verdict logic does.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import lncheck
from benchmarks.verdict_matrix import algorithms as alg
from benchmarks.verdict_matrix.cases import OPS, Case, Config, draw, make
from benchmarks.verdict_matrix.correct import CORRECT, normalize
from benchmarks.verdict_matrix.judge import Verdict, lncheck_op, lncheck_options, outcome
from benchmarks.verdict_matrix.run import evaluate_case, run_matrix
from benchmarks.verdict_matrix.tally import dtype_summary, render

ROOT = Path(__file__).resolve().parent.parent
TINY = Config(seed=7, count=18, max_log2=7.0, max_elements=1024, max_rows=8)


@pytest.fixture(scope="module")
def tiny_rows() -> list[dict]:
    rows, _ = run_matrix(TINY, jobs=1)
    return rows


def easy(op: str, dtype: str = "float32") -> Case:
    """A well-conditioned input: mean 0, std 1, |w| ~ 1, |b| ~ 1, 4 rows of 32 values."""
    shapes = {
        "layer_norm": ((4, 2, 16), 0, (2, 16)),
        "rms_norm": ((4, 2, 16), 0, (2, 16)),
        "group_norm": ((2, 4, 16), 2, ()),
        "instance_norm": ((2, 2, 32), 0, ()),
        "batch_norm_train": ((4, 4, 8), 0, ()),
        "batch_norm_eval": ((4, 4, 8), 0, ()),
    }
    shape, groups, normalized = shapes[op]
    return Case(0, 3, op, dtype, shape, groups, normalized, 0.0, 1.0, False, False, 1.0, 1.0)


def by_impl(rows: list[dict]) -> dict[str, dict]:
    return {r["impl"]: r for r in rows}


@pytest.mark.parametrize("op", OPS)
def test_correct_kernels_pass_and_obvious_bugs_count_on_an_easy_input(op: str) -> None:
    rows, _, inp, _ = evaluate_case(easy(op))
    assert inp.case.rows == 4 and inp.case.n == 32
    found = by_impl(rows)
    correct = [r for r in rows if r["kind"] == "correct"]
    assert {r["impl"] for r in correct} >= {"torch"}
    assert len(correct) >= 3
    for r in [*correct, found["exact_rounded"]]:
        assert r["passed"] is True and r["outcome"] == "ok", r
        assert r["err"] < 1e-5
    for name in ("row_copied", "missing_bias"):
        if name == "missing_bias" and op == "rms_norm":
            assert name not in found  # RMSNorm has no bias
            continue
        r = found[name]
        assert r["distinguishable"] and r["err"] > 10 * r["worst_correct_err"], r
        assert r["passed"] is not None and r["outcome"] in ("caught", "miss"), r


def test_the_core_with_every_knob_off_is_the_two_pass_kernel() -> None:
    inp = make(easy("group_norm", "float16"))
    two_pass = next(i for i in CORRECT if i.name == "two_pass")
    np.testing.assert_array_equal(normalize(inp), two_pass.run(inp))
    y = normalize(inp, bias=False)
    assert y.dtype == np.float16 and y.shape == inp.x.shape
    assert not np.array_equal(y, two_pass.run(inp))


def test_reductions_agree_with_numpy_in_float64() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 31, 33, 100, 1025):
        a = rng.standard_normal((3, n)) * 5 + 7
        mean, var = a.mean(axis=1, keepdims=True), a.var(axis=1, keepdims=True)
        for stats in (alg.two_pass, alg.tree_welford, alg.sequential_welford,
                      alg.strided_welford, alg.one_pass):  # fmt: skip
            m, v = stats(a)
            np.testing.assert_allclose(m, mean, rtol=1e-12)
            np.testing.assert_allclose(v, var, rtol=1e-9, atol=1e-12)
        for total in (alg.pairwise_sum, alg.kahan_sum, alg.sequential_sum, alg.strided_sum):
            np.testing.assert_allclose(total(a), a.sum(axis=1, keepdims=True), rtol=1e-12)


def test_sequential_welford_loses_accuracy_that_a_tree_keeps() -> None:
    # float32, one large value first, then 4096 values near it: the running mean stagnates
    rng = np.random.default_rng(1)
    a = (1000 + rng.standard_normal((2, 4096))).astype(np.float32)
    exact_var = a.astype(np.float64).var(axis=1)
    _, seq = alg.sequential_welford(a)
    _, tree = alg.tree_welford(a)
    seq_err = np.abs(seq[:, 0] - exact_var).max()
    tree_err = np.abs(tree[:, 0] - exact_var).max()
    assert seq_err > 10 * tree_err


def test_the_exact_output_is_never_a_distinguishable_outlier(tiny_rows: list[dict]) -> None:
    exact = [r for r in tiny_rows if r["impl"] == "exact_rounded"]
    assert len(exact) == TINY.count
    assert {r["op"] for r in exact} == set(OPS)
    for r in exact:
        assert not r["distinguishable"], r
        assert r["err"] <= 10 * r["worst_correct_err"] or r["err"] == 0, r


def test_rows_are_counted_as_the_rules_say(tiny_rows: list[dict]) -> None:
    for r in tiny_rows:
        if r["kind"] == "bug" and not r["distinguishable"]:
            assert r["outcome"] == "left_out" and r["passed"] is None
        elif r["kind"] != "bug" and r["label"] == "low_precision":
            # a correct kernel known to keep its statistics in the compute dtype (torch's CPU
            # float16 BatchNorm): any class but a mismatch is right
            right = r["accuracy_class"] != "mismatch"
            assert r["outcome"] == ("ok" if right else "false_alarm"), r
        elif r["kind"] != "bug":
            assert r["outcome"] == ("ok" if r["passed"] else "false_alarm"), r
        elif r["passed"]:
            assert r["outcome"] == "miss"
    for dtype in {r["dtype"] for r in tiny_rows}:
        s = dtype_summary(tiny_rows, dtype)
        mine = [r for r in tiny_rows if r["dtype"] == dtype]
        assert s["correct"] == sum(r["kind"] != "bug" for r in mine)
        assert s["bugs"] + s["left_out"] == sum(r["kind"] == "bug" for r in mine)
        assert s["misses"] == sum(r["outcome"] == "miss" for r in mine)
        assert sum(s["misses_by_label"][k][1] for k in ("semantic", "precision")) == s["bugs"]
    text = render(tiny_rows, "python benchmarks/verdict_matrix.py")
    assert "false alarms" in text and f"== all: {TINY.count} inputs" in text


def test_outcome_rules() -> None:
    failed = Verdict(False, "low_precision", 3.0, 0.0)
    passed = Verdict(True, "sequential", 0.5, 0.0)
    assert outcome("bug", "semantic", True, failed) == "miss"  # wrong semantics as precision
    assert outcome("bug", "precision", True, failed) == "caught"
    assert outcome("bug", "precision", True, passed) == "miss"
    assert outcome("bug", "semantic", False, passed) == "left_out"
    assert outcome("correct", "sequential", False, failed) == "false_alarm"
    assert outcome("exact", "accurate", False, passed) == "ok"
    assert outcome("correct", "low_precision", False, failed) == "ok"
    assert outcome("correct", "low_precision", False, Verdict(False, "mismatch", 9.0, 0.0)) == (
        "false_alarm"
    )
    assert outcome("bug", "semantic", True, Verdict(None, None, 0.0, 0.0, error="x")) == "error"


def test_cases_are_deterministic_and_representable() -> None:
    config = Config(seed=11, count=12)
    for index in range(12):
        case = draw(config, index)
        assert case == draw(config, index)
        a, b = make(case), make(case)
        np.testing.assert_array_equal(a.x, b.x)
        assert 2 <= case.n <= 2**20 and case.rows >= 2
        assert case.n * case.rows <= 8 * config.max_elements
        # the stored values are the dtype's: rounding again changes nothing
        np.testing.assert_array_equal(a.round(a.x), a.x)
        assert np.isfinite(a.x).all()


def test_only_and_dump_recreate_a_row(tmp_path: Path) -> None:
    path = ROOT / "benchmarks" / "verdict_matrix.py"
    spec = importlib.util.spec_from_file_location("verdict_matrix_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--count", "6", "--max-log2", "6", "--max-elements", "512", "--seed", "2"]
    out = tmp_path / "rows.jsonl"
    assert script.main([*args, "--jobs", "1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    row = next(r for r in rows if r["impl"] == "row_copied")
    assert script.main([*args, "--only", row["id"], "--dump", str(tmp_path / "d")]) == 0
    (folder,) = (tmp_path / "d").iterdir()
    readme = (folder / "README.md").read_text()
    assert "lncheck compare x.npy" in readme and row["id"] in readme
    config = Config(seed=2, count=6, max_log2=6.0, max_elements=512)
    inp = make(draw(config, row["index"]))
    np.testing.assert_array_equal(np.load(folder / "x.npy"), inp.x)
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    report = lncheck.compare(
        x, lncheck_op(inp.case), backend=None, expected=y, **lncheck_options(inp)
    )
    (check,) = [c for c in report.checks if c.candidate == "expected"]
    if row["passed"] is not None:
        assert check.passed == row["passed"]
        assert check.tolerance_used == pytest.approx(row["tolerance_used"])


def test_a_sequential_welford_whose_groups_mimic_another_eps_passes_with_a_warning() -> None:
    # the full matrix's c0128: instance norm, float32, 3 groups of 78,036; a sequential
    # Welford leaves each variance about 8e-6 low, which eps = 2.44e-6 fits in every group
    # to within the accurate limits, yet rounding a float32 sum of 78,036 squares typically
    # moves a variance by sqrt(n) u = 1.7e-5: a hint, not a different function
    case = draw(Config(), 128)
    assert (case.op, case.dtype, case.n) == ("instance_norm", "float32", 78036)
    rows, *_ = evaluate_case(case, judge_all=True, keep=lambda name: name == "sequential_welford")
    (row,) = [r for r in rows if r["impl"] == "sequential_welford"]
    assert (row["passed"], row["accuracy_class"]) == (True, "sequential")
    assert row["warning"] == (
        "matches eps = 2.44e-06 instead of 1e-05 (in all 3 groups checked), but only to within "
        "the limits that a precision loss of this size meets too: check the layer's settings"
    )
    # with --strict the check fails on its class, and says what the groups match
    inp = make(case)
    (impl,) = [i for i in CORRECT if i.name == "sequential_welford"]
    y = impl.run(inp)
    options = lncheck_options(inp)
    report = lncheck.compare(
        inp.x, lncheck_op(case), backend=None, expected=y, strict=True, **options
    )
    (check,) = report.checks
    assert (check.passed, check.accuracy_class, check.warning) == (False, "sequential", None)
    assert check.explanation == row["warning"]


def test_statistics_over_the_wrong_axes_are_found_by_a_search_of_fixed_size() -> None:
    # the full matrix's c0373: a float16 GroupNorm whose statistics span the wrong axes is
    # classed low_precision by size; the hint's search reproduces it exactly with other
    # groups after 153 steps (1.5 s here), which a one-second budget cut short
    case = draw(Config(), 373)
    assert (case.op, case.dtype) == ("group_norm", "float16")
    rows, *_ = evaluate_case(case, judge_all=True, keep=lambda name: name == "wrong_axes")
    (row,) = [r for r in rows if r["impl"] == "wrong_axes"]
    assert (row["passed"], row["accuracy_class"]) == (False, "mismatch")
    assert row["explanation"].startswith(
        "reproduced exactly by statistics over other groups or axes; lncheck explain finds: "
    )
