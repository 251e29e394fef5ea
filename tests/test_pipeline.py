"""The case pipeline (``lncheck.pipeline``): the one enumeration of candidates, and a case
checked whole or in chunks, with or without a backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck.backends import get_backend
from lncheck.comparison import Comparison
from lncheck.pipeline import (
    EXPECTED,
    _repeated,
    backend_for,
    candidates,
    check_case,
    resolved,
    user_candidates,
)
from lncheck.result import NormResult
from lncheck.tolerance_spec import ToleranceSpec

from .support import layer_norm, make_case

TORCH_LAYER_NORM = [
    "torch.nn.LayerNorm",
    "torch.nn.functional.layer_norm",
    "torch.native_layer_norm",
]


def _x(shape: tuple[int, ...] = (4, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_candidates_are_the_backend_paths_then_the_expected_output() -> None:
    x = _x()
    case = make_case(x, normalized_shape=8, expected=x)
    backend = backend_for(case)
    names = [r.candidate for r in candidates(case, backend)]
    assert names == [*TORCH_LAYER_NORM, EXPECTED]
    assert [r.candidate for r in candidates(case, backend, files=False)] == TORCH_LAYER_NORM
    assert [r.candidate for r in candidates(case, None)] == [EXPECTED]


def test_vs_device_candidates_are_named_after_their_device() -> None:
    case = make_case(_x(), normalized_shape=8, vs_device="cpu")
    names = [r.candidate for r in candidates(case, backend_for(case))]
    assert names == [*TORCH_LAYER_NORM, *(f"{n}@cpu" for n in TORCH_LAYER_NORM)]
    report = check_case(case)
    assert {c.candidate for c in report.checks} == set(names) and report.passed


def test_backend_for_and_resolved() -> None:
    case = make_case(_x(), "rms_norm", normalized_shape=8)
    assert backend_for(case, None) is None
    backend = backend_for(case)
    assert backend is get_backend("torch")
    assert case.spec.backend_defaults == ("eps",)
    filled = resolved(case, backend)
    assert filled.spec.eps == np.finfo(np.float32).eps  # torch's eps=None for float32
    assert resolved(case, None) is case


def test_without_a_backend_only_the_expected_output_is_checked() -> None:
    x = _x()
    report = check_case(make_case(x, normalized_shape=8, expected=x), backend=None)
    assert {c.candidate for c in report.checks} == {EXPECTED}
    assert report.names == {} and not report.passed  # x itself is not its layer norm


def test_the_report_names_candidates_as_the_backend_shows_them() -> None:
    report = check_case(make_case(_x(), normalized_shape=8))
    shown = {c.candidate: report.name(c.candidate) for c in report.checks}
    assert shown == {
        "torch.nn.LayerNorm": "nn.LayerNorm",
        "torch.nn.functional.layer_norm": "F.layer_norm",
        "torch.native_layer_norm": "native_layer_norm",
    }
    assert report.name("input") == "input" and report.name("reference") == "reference"
    assert report.stats is not None and report.stats.label == "torch"


def test_timings_are_counted_per_stage() -> None:
    timings: dict[str, float] = {}
    check_case(make_case(_x(), normalized_shape=8), timings=timings)
    assert set(timings) == {"reference", "backend", "compare"}
    assert all(seconds > 0 for seconds in timings.values())


def test_chunks_give_the_same_verdicts_and_say_so() -> None:
    case = make_case(_x((64, 8)), normalized_shape=8)
    whole = check_case(case)
    chunked = check_case(case, chunk_elements=64)
    assert [(c.candidate, c.quantity, c.passed, c.total) for c in chunked.checks] == [
        (c.candidate, c.quantity, c.passed, c.total) for c in whole.checks
    ]
    assert "checked in chunks of 8 along the first axis (64 elements per backend call)" in (
        chunked.header.notes
    )
    assert not any("chunks" in n for n in whole.header.notes)
    unchunked = check_case(
        make_case(_x((64, 8)), normalized_shape=8, chunks=False), chunk_elements=64
    )
    assert not any("chunks" in n for n in unchunked.header.notes)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_propagates_and_is_counted(bad: float) -> None:
    x = _x((4, 8))
    x[1, 3] = bad
    report = check_case(make_case(x, normalized_shape=8))
    out = [c for c in report.checks if c.quantity == "output"]
    # the whole group of the bad value is NaN on both sides; the other groups still compare
    assert all(c.nan_expected == 8 and c.nan_actual == 8 and c.total == 32 for c in out)
    assert all(c.mismatched == 8 and not c.passed for c in out)
    assert all(c.worst_index[0] == 1 for c in out)
    means = [c for c in report.checks if c.quantity == "mean"]
    assert means and means[0].nan_expected == 1  # the statistics keep the bad group, as NaN
    lenient = check_case(make_case(x, normalized_shape=8, tolerance=ToleranceSpec(equal_nan=True)))
    assert all(c.passed for c in lenient.checks if c.quantity == "output")
    # the input is named as the NaN's source, and torch is not called a different function:
    # the finite groups are accurate, and the failure says it is NaN against NaN
    assert (
        "the input holds NaN or inf in 1 of 4 groups: the outputs it reaches are NaN on every "
        "side, and NaN equals NaN only with equal_nan="
    ) in report.header.notes
    assert all(c.accuracy_class == "accurate" for c in out)
    # values near float64's largest have an infinite variance, and no NaN or inf of their own
    huge_x = _x((4, 8)).astype(np.float64) * 1e300
    huge = check_case(make_case(huge_x, normalized_shape=8, dtype="float64"))
    assert not any("NaN or inf" in n for n in huge.header.notes)
    assert all(c.nan_pairs == 8 for c in out)
    assert (
        out[0]
        .message()
        .endswith(
            "candidate has 8 NaN and 0 Inf; accuracy class accurate: 8 NaN against the reference's "
            "NaN fail: NaN equals NaN only with equal_nan="
        )
    )
    # a NaN of the candidate's own, where the reference is finite, is named before NaN pairs
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in the bad group: NaN, as intended
        mean, var = xd.mean(-1, keepdims=True), xd.var(-1, keepdims=True)
        mine = ((xd - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    mine[1] = np.nan  # NaN where the reference is NaN too
    mine[2, 5] = np.nan  # and where it is finite
    (own,) = lncheck.compare(x, normalized_shape=8, backend=None, expected=mine).checks
    assert own.worst_index == (2, 5) and own.nan_pairs == 8 and own.accuracy_class == "mismatch"
    lenient_own = lncheck.compare(
        x, normalized_shape=8, backend=None, expected=mine, equal_nan=True
    ).checks[0]
    assert lenient_own.nan_pairs == 0 and "NaN equals NaN" not in lenient_own.message()


def test_a_single_element_input_with_gradients_runs() -> None:
    # a per-element atol of shape (1, 1) was taken for a per-group one
    report = lncheck.compare(np.array([[0.5]]), normalized_shape=1, grad=True, dtype="float64")
    grads = [c for c in report.checks if c.quantity.startswith("grad")]
    assert grads and all(c.passed for c in grads)


def test_every_kind_of_candidate_is_enumerated_here_in_order(tmp_path: Any) -> None:
    import shlex
    import sys

    x = _x()
    prog = tmp_path / "p.py"
    prog.write_text("import sys, numpy as np\nnp.save(sys.argv[2], np.load(sys.argv[1]))\n")
    case = make_case(
        x,
        normalized_shape=8,
        expected={"a": x, "b": {"output": x}},
        candidate_cmd=f"{shlex.quote(sys.executable)} {prog} {{input}} {{output}}",
        candidate={"fn": lambda x: x},
    )
    backend = backend_for(case)
    names = [r.candidate for r in candidates(case, backend)]
    assert names == [*TORCH_LAYER_NORM, "a", "b", "command", "fn"]
    assert user_candidates(case) == {"a", "b", "command", "fn"}
    # a baseline records the backend alone, run once
    assert [r.candidate for r in candidates(case, backend, files=False)] == TORCH_LAYER_NORM
    report = check_case(case)
    # the user's candidates keep their own names: the backend renames only its own
    assert not {"a", "b", "command", "fn"} & set(report.names)
    assert {c.candidate for c in report.checks} >= {"a", "b", "command", "fn"}


def test_a_failed_candidate_is_a_check_not_a_result() -> None:
    def broken(x: Any) -> Any:
        raise MemoryError("out of shared memory")

    case = make_case(_x(), normalized_shape=8, candidate={"k": broken}, repeat=3)
    produced = list(candidates(case, None))
    assert [type(p).__name__ for p in produced] == ["Comparison"]  # not run again
    (c,) = produced
    assert (c.candidate, c.quantity, c.passed) == ("k", "output", False)
    assert c.note == "raised MemoryError: out of shared memory"


def test_a_float16_statistic_beyond_its_range_fails_and_says_why() -> None:
    # eps = 1e-12 on constant rows: the exact rstd 1e6 is beyond float16's 65504, so torch's
    # saved float16 rstd is inf there (and its backward NaN): a failure that says so
    x = np.zeros((4, 32), np.float16)
    x[1] = np.linspace(-1, 1, 32)
    x[3] = 0.75
    report = lncheck.compare(x, "layer_norm", normalized_shape=32, eps=1e-12)
    (rstd,) = [c for c in report.checks if c.quantity == "rstd"]
    assert not rstd.passed and rstd.inf_actual == 3
    assert "3 exact rstd values beyond float16's range" in (rstd.explanation or "")
    # the right function, its rstd kept in a dtype too narrow for it: low_precision, never a
    # mismatch, and failing whatever the classes accepted (a backward through it is NaN)
    assert rstd.accuracy_class == "low_precision"
    accepting = lncheck.compare(
        x, "layer_norm", normalized_shape=32, eps=1e-12, accept="low-precision"
    )
    assert [(c.quantity, c.accuracy_class) for c in accepting.checks if not c.passed] == [
        ("rstd", "low_precision")
    ]
    assert all(c.passed for c in report.checks if c.quantity == "output")
    # an output beyond float16's range must be inf: right, and the console says so in a note
    big = np.array([[0.0] * 15 + [1.0]], np.float16)
    out = lncheck.compare(big, "layer_norm", normalized_shape=16, weight=np.full(16, 60000.0))
    assert out.passed and any(c.overflow for c in out.checks)
    from lncheck.render.tables import overflowed

    assert overflowed(out)[0].endswith(
        "output: 1 exact value beyond float16's range: the matching infinity is right there"
    )


def test_a_statistic_beyond_its_range_beside_another_failure_is_a_mismatch() -> None:
    # the saved rstd's infinity is the float16 dtype's loss, a wrong rstd elsewhere is not
    x = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float16)
    x[0] = 0.75
    exact = 1.0 / np.sqrt(x.astype(np.float64).var(axis=1) + 1e-12)
    with np.errstate(over="ignore"):
        rstd = exact.astype(np.float16)  # inf in row 0
    output = layer_norm(x, eps=1e-12).astype(np.float16)

    def rstd_check(given: np.ndarray) -> Any:
        report = lncheck.compare(
            x, normalized_shape=32, eps=1e-12, backend=None,
            expected={"output": output, "rstd": given},
        )  # fmt: skip
        (check,) = [c for c in report.checks if c.quantity == "rstd"]
        return check

    assert rstd_check(rstd).accuracy_class == "low_precision"
    wrong = rstd.copy()
    wrong[2] *= np.float16(1.5)
    c = rstd_check(wrong)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert "1 exact rstd value beyond float16's range" in (c.explanation or "")


def test_a_running_statistic_beyond_its_range_names_eval_not_the_backward() -> None:
    # float16 BatchNorm with the cumulative average: a batch variance of about 1.6e5, beyond
    # float16's 65504, so the module's running_var buffer holds inf; the training backward
    # never reads it (it passes with --grad), eval mode normalizes by it
    x = (np.random.default_rng(3).standard_normal((8, 3, 32)) * 400).astype(np.float32)
    report = lncheck.compare(x, "batch_norm", dtype="float16", momentum=None, grad=True)
    (running,) = [
        c for c in report.checks if c.quantity == "running_var" and "BatchNorm" in c.candidate
    ]
    assert (running.passed, running.inf_actual, running.accuracy_class) == (
        False, 3, "low_precision"
    )  # fmt: skip
    assert (running.explanation or "").endswith(
        "3 exact running_var values beyond float16's range: a float16 running_var must be "
        "infinite there, and eval mode then outputs the bias there"
    )
    assert all(c.passed for c in report.checks if c.quantity.startswith("grad"))


def test_a_float32_statistic_beyond_its_range_fails_and_says_why() -> None:
    # subnormal values and eps = 0: the exact rstd (about 1e42) is beyond float32's range, and
    # torch's saved rstd inf; a row of normal values is left alone
    x = np.random.default_rng(0).standard_normal((3, 8))
    x[:2] *= 1e-42
    report = lncheck.compare(x.astype(np.float32), "layer_norm", normalized_shape=8, eps=0.0)
    (rstd,) = [c for c in report.checks if c.quantity == "rstd"]
    assert not rstd.passed and rstd.inf_actual == 2
    assert (rstd.explanation or "").endswith(
        "2 exact rstd values beyond float32's range: a float32 rstd must be infinite there, and "
        "a backward through it NaN (run --grad)"
    )
    assert rstd.accuracy_class == "low_precision"
    # its outputs are NaN there: no float32 kernel could keep that rstd (it read "statistics
    # kept in the compute dtype", which float32 kernels are not blamed for)
    (output,) = [c for c in report.checks if c.quantity == "output"][:1]
    assert (output.explanation or "").endswith(
        "(no float32 rstd holds it: eps = 0 or tiny beside values this close)"
    )
    # a bfloat16 check keeps them in bfloat16 (float32's range)
    x16 = x.copy()
    x16[:2] *= 1e3  # 1e-39: a subnormal bfloat16 can hold
    half = lncheck.compare(x16.astype(np.float32), normalized_shape=8, eps=0.0, dtype="bfloat16")
    (rstd,) = [c for c in half.checks if c.quantity == "rstd"]
    assert "2 exact rstd values beyond bfloat16's range: a bfloat16 rstd" in (
        rstd.explanation or ""
    )
    in_range = lncheck.compare(x[2:].astype(np.float32), normalized_shape=8, eps=0.0)
    assert in_range.passed and all(c.explanation is None for c in in_range.checks)
    # a finite wrong statistic was not kept in float32: nothing to say about its range
    wrong = lncheck.compare(
        x.astype(np.float32), normalized_shape=8, eps=0.0, backend=None, expected={"rstd": x[:, 0]}
    )
    assert [c.explanation for c in wrong.checks if c.quantity == "rstd"] == [None]
    # in float64 the exact rstd (1e200 here) has its range, whatever torch's is
    x64 = x.copy()
    x64[:2] *= 1e-158
    wide = lncheck.compare(x64, normalized_shape=8, eps=0.0)
    assert not any("range" in (c.explanation or "") for c in wide.checks)


def test_a_gradient_beyond_range_is_not_called_a_statistic() -> None:
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    report = lncheck.compare(
        x, normalized_shape=8, grad=True, grad_output=np.full((4, 8), 3e38, np.float32)
    )
    (grad_bias, *_) = [c for c in report.checks if c.quantity == "grad_bias"]
    assert grad_bias.inf_actual == 8 and "range" not in (grad_bias.explanation or "")


def test_repeated_runs_are_made_one_after_another() -> None:
    # --repeat N: the first run's results and one more run alive at a time (all N - 1 started
    # at once held 2 GB for N = 40 on a 16 MiB input), each result followed by its checks
    alive, most = 0, 0

    def run() -> Any:
        nonlocal alive, most
        alive += 1
        most = max(most, alive)
        try:
            for name in ("a", "b"):
                yield NormResult(name, {"output": np.zeros((2, 4))}, {}, None)
        finally:
            alive -= 1

    got = list(_repeated(run, 5))
    assert most == 1
    assert [(type(r).__name__, r.candidate) for r in got] == [
        ("NormResult", "a"), ("Comparison", "a"), ("NormResult", "b"), ("Comparison", "b")
    ]  # fmt: skip
    assert all(r.passed for r in got if isinstance(r, Comparison))
