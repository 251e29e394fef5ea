"""A failing group that repeats its neighbour's output bit for bit (``lncheck.copies``): named as
a row copied from its neighbour where no precision loss explains the group's values; left to
its class where ``low_precision`` could (alike rows a kernel rounds alike, a bias a bfloat16
fused kernel loses); never for groups whose references are the same, nor for a passing check."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import lncheck
from lncheck import compare_blocks
from lncheck.comparison import Comparison
from lncheck.copies import Copy, ReferenceRow, copied_from_neighbour, copy_words

F64 = npt.NDArray[np.float64]


def output_check(x: Any, op: str = "layer_norm", **options: Any) -> Comparison:
    report = lncheck.compare(x, op, backend=None, **options)
    (check,) = [c for c in report.checks if c.candidate == "expected" and c.quantity == "output"]
    return check


def torch_layer_norm(x: F64, dtype: str) -> F64:
    t = torch.from_numpy(x).to(getattr(torch, dtype))
    return np.asarray(torch.nn.functional.layer_norm(t, (x.shape[-1],), eps=1e-5).double())


def bf16(a: Any) -> F64:
    return np.asarray(torch.from_numpy(np.asarray(a, dtype=np.float64)).bfloat16().double())


def test_a_row_copied_from_its_neighbour_is_named() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(6, 64))
    y = torch_layer_norm(x, "float32")
    y[2] = y[3]
    check = output_check(x, shape=64, expected=y, dtype="float32")
    assert not check.passed and check.accuracy_class == "mismatch"
    apart = np.abs(torch_layer_norm(x, "float64")[2] - y[3]).max()
    assert check.explanation == (
        f"group (2) repeats group (3)'s output bit for bit, where their references differ by up "
        f"to {apart:.3g} (a row copied from its neighbour, a race or an off-by-one index; or both "
        "groups set from something other than their own values)"
    )


def test_a_copied_channel_of_one_bfloat16_value_is_left_to_its_class() -> None:
    # bfloat16 BatchNorm of channels that bfloat16 rounds to one value each (mean/std 1e4):
    # each exact output is its channel's bias (a constant group, never named a copy), and a
    # mean kept in bfloat16, off by an ulp and times 1/sqrt(eps), moves it by hundreds; the
    # neighbour's bias lies within that (the verdict matrix's c0015/row_copied): the check
    # fails, as low_precision, and names no copy
    rng = np.random.default_rng(1)
    x = 10.0 + 1e-3 * rng.normal(size=(4, 5, 24))
    weight = bf16(rng.uniform(20.0, 40.0, 5) * rng.choice([-1.0, 1.0], 5))
    bias = bf16(rng.uniform(-1.0, 1.0, 5))
    t = torch.from_numpy(x).bfloat16()
    w, b = torch.from_numpy(weight).bfloat16(), torch.from_numpy(bias).bfloat16()
    y = np.asarray(torch.nn.functional.batch_norm(t, None, None, w, b, True, eps=1e-5).double())
    y[:, 1] = y[:, 2]
    assert all(np.unique(bf16(x[:, c])).size == 1 for c in range(5))
    check = output_check(x, "batch_norm", expected=y, dtype="bfloat16", weight=weight, bias=bias)
    assert (check.passed, check.accuracy_class) == (False, "low_precision")
    assert "repeats group" not in (check.explanation or "")


def test_a_bias_a_fused_bfloat16_kernel_loses_is_no_copy() -> None:
    # scale and shift folded in bfloat16: shift = b - mean * scale loses a bias of 0.25 on a
    # channel at 10.3 (mean * scale is 2,293), whose output is then zero, like the dead
    # channel beside it (bias 0): the same bytes from a precision loss, not a race
    def fused(x: F64, w: F64, b: F64) -> F64:
        scale = bf16(w / np.sqrt(x.var(axis=(0, 2)) + 1e-5))
        shift = bf16(b - bf16(x.mean(axis=(0, 2)) * scale))
        return bf16(bf16(x * scale[:, None]) + shift[:, None])

    x = np.zeros((4, 3, 8))
    x[:, 0] = bf16(np.random.default_rng(0).normal(size=(4, 8)))
    x[:, 1] = 10.3125
    w = np.array([1.0, 0.703125, 1.0])
    # a bias of 0.75 is lost too (the shift's spacing is 16 there), and then the output is
    # beyond low_precision's tolerance, which models no shift folded in bfloat16: a mismatch,
    # but not a copy
    for bias, klass in ((0.25, "low_precision"), (0.75, "mismatch")):
        b = np.array([0.125, bias, 0.0])
        y = fused(x, w, b)
        assert np.array_equal(y[:, 1], y[:, 2]), "the test needs the two channels' same bytes"
        check = output_check(x, "batch_norm", expected=y, dtype="bfloat16", weight=w, bias=b)
        assert (check.passed, check.accuracy_class) == (False, klass)
        assert "repeats group" not in (check.explanation or "")


def test_alike_rows_a_low_precision_kernel_outputs_alike_are_no_copy() -> None:
    # RMSNorm of rows that bfloat16 rounds to one value, or to one but for two elements a
    # spacing above (mean/std 1000): each normalizes to about -w, and statistics kept in
    # bfloat16 round both to exactly -w, the same bytes, the first off from its own reference
    # by 0.4 % at those two elements (the verdict matrix's c0131/stats_in_dtype, quick run)
    w = np.asarray(torch.linspace(20.0, 40.0, 66).bfloat16().double().numpy())
    x = np.full((3, 66), -212992.0)
    x[0, [5, 40]] = -211968.0  # the next bfloat16 value
    x[1] = -69120.0
    x[2] = np.random.default_rng(4).normal(size=66)
    y = np.tile(-w, (3, 1))
    y[2] = bf16(x[2] / np.sqrt(np.mean(x[2] ** 2) + 1e-5) * w)
    check = output_check(x, "rms_norm", shape=66, expected=y, dtype="bfloat16", weight=w)
    assert not check.passed and check.accuracy_class == "low_precision"
    assert "repeats group" not in (check.explanation or "")


def test_neighbours_with_the_same_reference_are_no_copy() -> None:
    # rows 2 and 3 are the same data: a candidate off in both repeats itself legitimately
    x = np.random.default_rng(2).normal(size=(5, 32))
    x[3] = x[2]
    y = torch_layer_norm(x, "float32") * 1.01
    check = output_check(x, shape=32, expected=y, dtype="float32")
    assert not check.passed
    assert "repeats group" not in (check.explanation or "")


def test_a_passing_check_is_never_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    def looked(*args: Any) -> None:
        raise AssertionError("a passing check was searched for copies")

    monkeypatch.setattr(compare_blocks, "copied_from_neighbour", looked)
    x = np.random.default_rng(3).normal(size=(4, 16))
    x[1] = x[2] + 1e-9  # references a hair apart, outputs equal in float32
    y = torch_layer_norm(x, "float32")
    y[1] = y[2]  # the same bytes, within row 1's tolerance
    check = output_check(x, shape=16, expected=y, dtype="float32")
    assert check.passed and check.explanation is None


def _rows(values: F64) -> Any:
    return lambda g: values[g : g + 1]


def _references(values: F64, atol: float, low_atol: float) -> Any:
    return lambda g: ReferenceRow(values[g : g + 1], atol, 0.0, low_atol, 0.0, False)


REFERENCE = np.array([[0.0, 1.0], [0.0, 2.0], [5.0, 6.0]])


@pytest.mark.parametrize(
    ("candidate_rows", "low_atol", "expected"),
    [
        # group 1 is group 2's, which passes, and beyond low_precision of its own: a copy
        ([[0.0, 1.0], [5.0, 6.0], [5.0, 6.0]], 1.0, Copy(1, 2, 5.0)),
        # ...not where low_precision admits it against its own reference
        ([[0.0, 1.0], [5.0, 6.0], [5.0, 6.0]], 5.0, None),
        # ...nor where the neighbour fails its own reference too
        ([[0.0, 1.0], [7.0, 8.0], [7.0, 8.0]], 1.0, None),
        # ...nor where the bytes differ by an ulp
        ([[0.0, 1.0], [5.0, np.nextafter(6.0, 7.0)], [5.0, 6.0]], 1.0, None),
    ],
)
def test_the_evidence_a_copy_needs(
    candidate_rows: list[list[float]], low_atol: float, expected: Copy | None
) -> None:
    candidate = np.array(candidate_rows)
    shares = np.abs(candidate - REFERENCE) / 0.1
    refs = _references(REFERENCE, 0.1, low_atol)
    assert copied_from_neighbour(0, shares, 3, _rows(candidate), refs) == expected


def test_a_later_block_indexes_its_own_groups() -> None:
    # the block holds groups 2 and 3 of 4: group 2 fails and repeats group 1, outside the
    # block and passing; group 3 passes
    reference = np.array([[0.0, 1.0], [0.0, 2.0], [5.0, 6.0], [9.0, 9.5]])
    candidate = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 2.0], [9.0, 9.5]])
    shares = np.abs(candidate - reference)[2:] / 0.1
    refs = _references(reference, 0.1, 1.0)
    assert copied_from_neighbour(2, shares, 4, _rows(candidate), refs) == Copy(2, 1, 5.0)


@pytest.mark.parametrize(
    ("atols", "why"),
    [
        # group 1 holds group 2's bytes, 0.5 off group 2's reference: within group 1's
        # tolerance, not group 2's own, so the output it would copy does not pass
        ([0.1, 1.0, 0.1], "the neighbour fails with its own tolerance"),
        # ...and within group 2's tolerance, not group 1's: it would not pass as the copy
        ([0.1, 0.1, 1.0], "the group fails the neighbour's reference with its own tolerance"),
    ],
)
def test_each_group_is_held_to_its_own_tolerance(atols: list[float], why: str) -> None:
    candidate = np.array([[0.0, 1.0], [5.5, 6.0], [5.5, 6.0]])
    shares = np.abs(candidate - REFERENCE)[:2] / 0.1  # the block of groups 0 and 1

    def reference(g: int) -> ReferenceRow:
        return ReferenceRow(REFERENCE[g : g + 1], atols[g], 0.0, 1.0, 0.0, False)

    assert copied_from_neighbour(0, shares, 3, _rows(candidate), reference) is None, why
    atols = [0.1, 1.0, 1.0]  # both within: a copy
    assert copied_from_neighbour(0, shares, 3, _rows(candidate), reference) == Copy(1, 2, 5.0)


def test_a_constant_group_is_no_copy() -> None:
    candidate = np.array([[0.0, 1.0], [5.0, 6.0], [5.0, 6.0]])
    shares = np.abs(candidate - REFERENCE) / 0.1
    plain = _references(REFERENCE, 0.1, 1.0)
    assert copied_from_neighbour(0, shares, 3, _rows(candidate), plain) == Copy(1, 2, 5.0)

    def constant(g: int) -> ReferenceRow:
        return ReferenceRow(REFERENCE[g : g + 1], 0.1, 0.0, 1.0, 0.0, g == 1)

    assert copied_from_neighbour(0, shares, 3, _rows(candidate), constant) is None


def test_a_failing_neighbour_in_the_block_is_passed_over_before_any_reference() -> None:
    # every group the same bytes and failing (an all-zero output): no reference is built
    candidate = np.zeros((3, 2))
    shares = np.full((3, 2), 5.0)

    def no_reference(g: int) -> ReferenceRow:
        raise AssertionError(f"built group {g}'s reference")

    assert copied_from_neighbour(0, shares, 3, _rows(candidate), no_reference) is None


def test_copy_words_name_groups_as_the_failing_groups_table_does() -> None:
    words = copy_words(Copy(5, 6, 0.25), lambda g: (g // 4, g % 4), 1)
    assert words.startswith("group (1, 1) repeats group (1, 2)'s output bit for bit")
    assert "differ by up to 0.25" in words and words.endswith("their own values)")
    assert copy_words(Copy(3, 2, 1.0), lambda g: (g,), 2).endswith("; 1 other group fails too")
    assert copy_words(Copy(3, 2, 1.0), lambda g: (g,), 5).endswith("; 4 other groups fail too")


def test_every_row_shifted_by_one_says_how_many_groups_fail() -> None:
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(6, 64))
    y = torch_layer_norm(x, "float32")
    y[:-1] = y[1:].copy()
    check = output_check(x, shape=64, expected=y, dtype="float32")
    assert check.accuracy_class == "mismatch" and check.explanation is not None
    assert check.explanation.startswith("group (4) repeats group (5)'s output bit for bit")
    assert check.explanation.endswith("; 4 other groups fail too")
