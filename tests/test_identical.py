"""Bit-identical candidates compared once (``lncheck.identical``): a candidate whose output
matches an earlier one's byte for byte gets its figures and says so; one ulp anywhere, and it
is compared on its own."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from lncheck import identical
from lncheck.identical import Twins, same_bytes
from lncheck.pipeline import check_case
from lncheck.render import console as render_console
from lncheck.render import json as render_json
from lncheck.render import tables
from lncheck.result import NormResult

from .support import make_case

CHUNKED, WHOLE = 1024, None  # chunk_elements: 16 chunks of 32 rows, or the whole tensor


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((64, 8, 32)).astype(np.float32)


def _torch_output(x: np.ndarray) -> np.ndarray:
    return torch.nn.functional.layer_norm(torch.from_numpy(x), (32,)).numpy()


def _one_ulp_off(y: np.ndarray, index: tuple[int, ...] = (60, 3, 5)) -> np.ndarray:
    """``y`` with one element moved up by one ulp (in the last chunk, by default)."""
    off = y.copy()
    off[index] = np.nextafter(off[index], np.float32(np.inf))
    return off


def _outputs(report: object) -> dict[str, object]:
    return {c.candidate: c for c in report.checks if c.quantity == "output"}  # type: ignore[attr-defined]


def _figures(c: object) -> object:
    return dataclasses.replace(c, candidate="", identical_to=None)  # type: ignore[type-var]


@pytest.mark.parametrize("chunk_elements", [CHUNKED, WHOLE])
def test_an_identical_candidate_gets_the_figures_of_the_first_and_says_so(
    chunk_elements: int | None,
) -> None:
    x = _x()
    report = check_case(
        make_case(x, normalized_shape=32, expected={"mine": _torch_output(x)}),
        chunk_elements=chunk_elements,
    )
    outputs = _outputs(report)
    first = outputs["torch.nn.LayerNorm"]
    assert first.identical_to is None  # type: ignore[attr-defined]
    for name in ("torch.nn.functional.layer_norm", "torch.native_layer_norm", "mine"):
        assert outputs[name].identical_to == "torch.nn.LayerNorm"  # type: ignore[attr-defined]
        assert _figures(outputs[name]) == _figures(first)
    # the order of the checks is the order of the candidates, as without deduplication
    assert list(outputs) == [
        "torch.nn.LayerNorm",
        "torch.nn.functional.layer_norm",
        "torch.native_layer_norm",
        "mine",
    ]


@pytest.mark.parametrize("chunk_elements", [CHUNKED, WHOLE])
def test_one_ulp_in_one_block_is_compared_on_its_own(chunk_elements: int | None) -> None:
    x = _x()
    y = _torch_output(x)
    off = _one_ulp_off(y)
    together = check_case(
        make_case(x, normalized_shape=32, expected={"same": y, "ulp": off}),
        chunk_elements=chunk_elements,
    )
    alone = check_case(
        make_case(x, normalized_shape=32, expected={"ulp": off}),
        backend=None,
        chunk_elements=chunk_elements,
    )
    ulp = _outputs(together)["ulp"]
    assert ulp.identical_to is None  # type: ignore[attr-defined]
    assert ulp == _outputs(alone)["ulp"]  # the same figures as when compared alone
    assert _outputs(together)["same"].identical_to == "torch.nn.LayerNorm"  # type: ignore[attr-defined]


def test_a_failing_twin_repeats_the_failure_and_its_failing_groups() -> None:
    x = _x()
    wrong = _torch_output(x)
    wrong[10:12] += 0.01
    report = check_case(
        make_case(x, normalized_shape=32, expected={"a": wrong, "b": wrong.copy()}),
        backend=None,
        chunk_elements=CHUNKED,
    )
    a, b = _outputs(report)["a"], _outputs(report)["b"]
    assert not a.passed and not b.passed  # type: ignore[attr-defined]
    assert b.identical_to == "a"  # type: ignore[attr-defined]
    assert report.failing_groups[("b", "output")] == report.failing_groups[("a", "output")]
    assert [c.candidate for c in report.failures].count("b") == 1
    quiet = [text for text, _ in tables.quiet(report)]
    (line,) = [text for text in quiet if text.startswith("b output")]
    assert line.endswith("(identical to a)")


def test_the_console_and_json_reports_say_which_candidate_it_is_identical_to() -> None:
    x = _x()
    report = check_case(make_case(x, normalized_shape=32, expected={"mine": _torch_output(x)}))
    buffer = io.StringIO()
    render_console.render(report, Console(file=buffer, width=100, legacy_windows=False))
    text = buffer.getvalue()
    assert "note: F.layer_norm output: identical to nn.LayerNorm" in text
    assert "note: mine output: identical to nn.LayerNorm" in text
    doc = json.loads(render_json.render(report))
    twins = {c["candidate"]: c.get("identical_to") for c in doc["checks"]}
    assert twins["mine"] == "torch.nn.LayerNorm"
    assert "identical_to" not in next(
        c for c in doc["checks"] if c["candidate"] == "torch.nn.LayerNorm"
    )
    quiet = [text for text, _ in tables.quiet(report)]
    assert any(
        line.startswith("mine output: pass") and "identical to nn.LayerNorm" in line
        for line in quiet
    )


def test_same_bytes_means_the_same_bits() -> None:
    a = np.array([1.0, np.nan, 0.0], dtype=np.float32)
    assert same_bytes(a, a.copy())  # the same NaN is the same bytes
    assert not same_bytes(a, np.array([1.0, np.nan, -0.0], dtype=np.float32))  # -0 is not 0
    assert not same_bytes(a, a.astype(np.float64))
    assert not same_bytes(a, a.reshape(1, 3))
    big = np.zeros(3 << 20, dtype=np.float16)  # several slices
    other = big.copy()
    other[-1] = 1
    assert same_bytes(big, big.copy()) and not same_bytes(big, other)


def test_a_candidate_that_stops_matching_takes_over_its_twins_earlier_units() -> None:
    def result(name: str, value: float) -> NormResult:
        return NormResult(name, {"output": np.full((2, 4), value, dtype=np.float32)})

    twins = Twins(sequential=False)
    distinct, diverged = twins.split("output", 0, [result("a", 1.0), result("b", 1.0)])
    assert [r.candidate for r in distinct] == ["a"] and not diverged
    assert twins.of == {("b", "output"): "a"}
    distinct, diverged = twins.split("output", 2, [result("a", 1.0), result("b", 2.0)])
    assert [r.candidate for r in distinct] == ["a", "b"]
    assert diverged == [(("b", "output"), ("a", "output"))]
    # compared on its own since: matching again later does not make it a twin
    distinct, diverged = twins.split("output", 4, [result("a", 1.0), result("b", 1.0)])
    assert [r.candidate for r in distinct] == ["a", "b"] and not twins.of


def test_one_at_a_time_candidates_are_matched_by_digest() -> None:
    twins = Twins(sequential=True)
    first = NormResult("a", {"output": np.arange(8, dtype=np.float32)})
    assert twins.split("output", 0, [first]) == ([first], [])
    again = NormResult("b", {"output": np.arange(8, dtype=np.float32)})
    other = NormResult("c", {"output": np.arange(8, dtype=np.float64)})
    assert twins.split("output", 0, [again]) == ([], [])
    assert twins.split("output", 0, [other]) == ([other], [])
    assert twins.of == {("b", "output"): "a"}


@pytest.mark.parametrize("at", [0, (1 << 22) - 1, 1 << 22, (1 << 23) - 1])
def test_large_one_at_a_time_outputs_still_differ_in_any_bit(
    at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 32 MiB of float32, hashed in two halves on two threads: a changed last bit on either
    # side of the halves' border sets the candidate apart, and each output is hashed once
    hashed = []
    real = identical.sha256_of
    monkeypatch.setattr(identical, "sha256_of", lambda a: hashed.append(a.nbytes) or real(a))
    base = np.zeros(1 << 23, dtype=np.float32)
    changed = base.copy()
    changed.view(np.uint32)[at] = 1
    twins = Twins(sequential=True)
    first, same, other = (
        NormResult(name, {"output": values})
        for name, values in (("a", base), ("b", base.copy()), ("c", changed))
    )
    assert twins.split("output", 0, [first]) == ([first], [])
    assert twins.split("output", 0, [same]) == ([], [])
    assert twins.split("output", 0, [other]) == ([other], [])
    assert twins.of == {("b", "output"): "a"} and hashed == [32 << 20] * 3
