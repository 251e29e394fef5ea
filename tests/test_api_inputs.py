"""Python API inputs: arrays with negative strides work (they are copied for torch), and every
ill-typed value is an ``InputError`` naming the keyword, never a ``TypeError``/``ValueError``
from deep inside."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError

from .conftest import EXAMPLES

X = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)


def test_negative_strides_are_accepted_for_the_input_and_the_parameters() -> None:
    reversed_x = X[::-1]
    assert reversed_x.strides[0] < 0
    weight = np.linspace(0.5, 1.5, 16, dtype=np.float32)[::-2]
    report = lncheck.compare(reversed_x, normalized_shape=8, weight=weight, bias=-weight)
    assert report.passed
    same = lncheck.compare(np.ascontiguousarray(reversed_x), normalized_shape=8,
                           weight=weight.copy(), bias=-weight.copy())  # fmt: skip
    assert [c.max_abs_err for c in report.checks] == [c.max_abs_err for c in same.checks]


def test_a_torch_view_with_negative_strides_from_flip_works_too() -> None:
    torch = pytest.importorskip("torch")
    assert lncheck.compare(torch.from_numpy(X).flip(0), normalized_shape=8).passed


def test_a_numpy_or_torch_dtype_names_the_compute_dtype() -> None:
    torch = pytest.importorskip("torch")
    given = {
        "float16": (np.float16, np.dtype("float16"), torch.float16),
        "bfloat16": (torch.bfloat16,),
    }
    for name, dtypes in given.items():
        expected = [
            c.max_abs_err for c in lncheck.compare(X, normalized_shape=8, dtype=name).checks
        ]
        for dtype in dtypes:
            report = lncheck.compare(X, normalized_shape=8, dtype=dtype)
            assert [c.max_abs_err for c in report.checks] == expected, dtype
    with pytest.raises(InputError, match=r"dtype= must be one of .*, got 'int8'"):
        lncheck.compare(X, normalized_shape=8, dtype=np.int8)
    # a value, a text, Python's float, a torch object that is no dtype
    for value in (np.float32(1.0), "torch.float32", float, torch.Size([2])):
        with pytest.raises(InputError, match="dtype= must be one of"):
            lncheck.compare(X, normalized_shape=8, dtype=value)


@pytest.mark.parametrize(
    ("call", "phrase"),
    [
        (lambda: lncheck.compare(X, normalized_shape=8, grad=True, seed=1.5), "seed= must be"),
        (lambda: lncheck.compare(X, normalized_shape=8, rtol="1e-3", atol="0"), "rtol= must be"),
        (lambda: lncheck.compare(X, normalized_shape=8, tolerance=3), "tolerance= must be one"),
        (lambda: lncheck.compare(X, normalized_shape=8, max_bytes="1e9"), "max_bytes= must be"),
        (lambda: lncheck.run_suite(EXAMPLES / "suite.toml", jobs=0), "jobs= must be at least 1"),
        (lambda: lncheck.run_suite(EXAMPLES / "suite.toml", shard=(0, 4)), "shard= must be"),
    ],
)
def test_ill_typed_values_are_input_errors(call: Callable[[], object], phrase: str) -> None:
    with pytest.raises(InputError, match=phrase):
        call()


def test_max_bytes_holds_arrays_given_in_memory_as_it_holds_files() -> None:
    x = np.ones((3, 8), np.float32)  # 96 bytes
    with pytest.raises(InputError, match=r"^the input is 96 bytes, over the max_bytes= limit 95$"):
        lncheck.compare(x, normalized_shape=8, max_bytes=95)
    with pytest.raises(InputError, match=r"^weight= is 64 bytes, over the max_bytes= limit 63$"):
        lncheck.compare(x[:, :4], normalized_shape=4, weight=np.ones(8), max_bytes=63)
    assert lncheck.compare(x, normalized_shape=8, max_bytes=96).passed
    y = np.zeros((3, 8))  # 192 bytes, given as the expected output, alone or as a candidate's
    for expected, named in ((y, "expected="), ({"k": y}, "expected= as 'k'")):
        with pytest.raises(InputError, match=f"^the array given to {named} is 192 bytes, over"):
            lncheck.compare(x, normalized_shape=8, expected=expected, max_bytes=191)
