"""A failing group that repeats its neighbour's output bit for bit (``lncheck.copies``): a
``mismatch`` named as a row copied from its neighbour, whatever class its size alone fits;
never for groups whose references are the same, nor for a candidate that passes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import lncheck
from lncheck.comparison import Comparison
from lncheck.copies import Copy, copied_from_neighbour, copy_words

F64 = npt.NDArray[np.float64]


def output_check(x: Any, op: str = "layer_norm", **options: Any) -> Comparison:
    report = lncheck.compare(x, op, backend=None, **options)
    (check,) = [c for c in report.checks if c.candidate == "expected" and c.quantity == "output"]
    return check


def torch_output(x: F64, op: str, dtype: str, **kw: Any) -> F64:
    t = torch.from_numpy(x).to(getattr(torch, dtype))
    if op == "layer_norm":
        y = torch.nn.functional.layer_norm(t, (x.shape[-1],), eps=1e-5)
    else:
        y = torch.nn.functional.batch_norm(t, None, None, kw["weight"], kw["bias"], True, eps=1e-5)
    return np.asarray(y.double().numpy())


def test_a_row_copied_from_its_neighbour_is_named() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(6, 64))
    y = torch_output(x, "layer_norm", "float32")
    y[2] = y[3]
    check = output_check(x, shape=64, expected=y, dtype="float32")
    assert not check.passed and check.accuracy_class == "mismatch"
    apart = np.abs(torch_output(x, "layer_norm", "float64")[2] - y[3]).max()
    assert check.explanation == (
        f"group 2 repeats group 3's output bit for bit, where their references differ by up to "
        f"{apart:.3g}: no precision loss does that (a row copied from its neighbour, or both set "
        "from something other than their own values and parameters)"
    )


def test_a_channel_copied_where_low_precision_would_explain_its_size() -> None:
    # bfloat16 BatchNorm of channels that bfloat16 rounds to one value each (mean/std 1e4):
    # the exact output of a channel is its bias, and a low-precision mean, off by an ulp and
    # times 1/sqrt(eps), could move it anywhere; the neighbour's bias, bit for bit, it cannot
    rng = np.random.default_rng(1)
    x = 10.0 + 1e-3 * rng.normal(size=(4, 5, 24))
    weight = torch.from_numpy(rng.uniform(0.5, 1.5, 5)).bfloat16()
    bias = torch.from_numpy(rng.uniform(-1.0, 1.0, 5)).bfloat16()
    y = torch_output(x, "batch_norm", "bfloat16", weight=weight, bias=bias)
    y[:, 1] = y[:, 2]
    check = output_check(
        x,
        "batch_norm",
        expected=y,
        dtype="bfloat16",
        weight=weight.double().numpy(),
        bias=bias.double().numpy(),
    )
    assert check.accuracy_class == "mismatch" and not check.passed
    assert check.explanation is not None
    assert check.explanation.startswith("group 1 repeats group 2's output bit for bit")


def test_neighbours_with_the_same_reference_are_no_copy() -> None:
    # rows 2 and 3 are the same data: a candidate off in both repeats itself legitimately
    x = np.random.default_rng(2).normal(size=(5, 32))
    x[3] = x[2]
    y = torch_output(x, "layer_norm", "float32") * 1.01
    check = output_check(x, shape=32, expected=y, dtype="float32")
    assert not check.passed
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
    y[2] = np.asarray(
        torch.from_numpy(x[2] / np.sqrt(np.mean(x[2] ** 2) + 1e-5) * w).bfloat16().double()
    )
    check = output_check(x, "rms_norm", shape=66, expected=y, dtype="bfloat16", weight=w)
    assert not check.passed and check.accuracy_class == "low_precision"
    assert "repeats group" not in (check.explanation or "")


def test_a_passing_candidate_is_never_looked_at() -> None:
    x = np.random.default_rng(3).normal(size=(4, 16))
    x[1] = x[2] + 1e-9  # references a hair apart, outputs equal in float32
    y = torch_output(x, "layer_norm", "float32")
    check = output_check(x, shape=16, expected=y, dtype="float32")
    assert check.passed and check.explanation is None


def _apart(g: int, source: int, values: F64) -> bool:
    return True  # told apart: what ``told_apart`` decides is tested on its own below


def _rows(values: F64) -> Any:
    return lambda g: values[g : g + 1]


def _references(values: F64, atol: float) -> Any:
    return lambda g: (values[g : g + 1], atol)


@pytest.mark.parametrize(
    ("candidate_rows", "expected"),
    [
        # group 1 is group 2's, which passes: a copy
        ([[0.0, 1.0], [5.0, 6.0], [5.0, 6.0]], Copy(1, 2, 5.0)),
        # ...but not where the neighbour fails its own reference too
        ([[0.0, 1.0], [7.0, 8.0], [7.0, 8.0]], None),
        # ...nor where the bytes differ by an ulp
        ([[0.0, 1.0], [5.0, np.nextafter(6.0, 7.0)], [5.0, 6.0]], None),
    ],
)
def test_the_evidence_a_copy_needs(
    candidate_rows: list[list[float]], expected: Copy | None
) -> None:
    reference = np.array([[0.0, 1.0], [0.0, 1.0 + 1.0], [5.0, 6.0]])
    candidate = np.array(candidate_rows)
    shares = np.abs(candidate - reference) / 0.1
    rows, refs = _rows(candidate), _references(reference, 0.1)
    assert copied_from_neighbour(0, shares, None, 3, rows, refs, 0.0, _apart) == expected
    # ...and never where a precision loss could have made the group's own output the same
    assert copied_from_neighbour(0, shares, None, 3, rows, refs, 0.0, lambda *_: False) is None


def test_a_structural_failure_alone_is_looked_at() -> None:
    reference = np.array([[0.0, 1.0], [0.05, 1.05], [0.1, 1.1]])
    candidate = np.array([[0.0, 1.0], [0.1, 1.1], [0.1, 1.1]])
    shares = np.zeros((3, 2))  # every element within its tolerance of 0.2 ...
    structural = np.array([0.0, 2.0, 0.0])  # ...but group 1 fails its structural check
    rows, refs = _rows(candidate), _references(reference, 0.2)
    assert copied_from_neighbour(0, shares, structural, 3, rows, refs, 0.0, _apart) is None
    refs_tight = _references(reference, 0.01)
    found = copied_from_neighbour(0, shares, structural, 3, rows, refs_tight, 0.0, _apart)
    assert found == Copy(1, 2, pytest.approx(0.05))


def test_copy_words_name_multi_index_groups() -> None:
    words = copy_words(Copy(5, 6, 0.25), lambda g: (g // 4, g % 4))
    assert words.startswith("group (1, 1) repeats group (1, 2)'s output bit for bit")
    assert "differ by up to 0.25" in words
