"""Accuracy classes and explanations (``lncheck.verdicts``): a candidate output given as
``expected=`` is classified ``accurate``, ``sequential``, ``low_precision`` or ``mismatch``,
with the worst group's implied scale and shift and a short explanation; which classes pass
is ``strict=`` / ``accept=`` (``--strict`` / ``--accept low-precision``). The classes of
correct kernels and of bugs, case by case: ``test_judge.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import lncheck
from lncheck.errors import InputError
from lncheck.tolerances import CLASSES
from lncheck.verdicts import ClassTally, Distortion, GroupFacts, beyond_range, block_class, explain

from .cli.helpers import invoke
from .support import as_float64, layer_norm, output_check

F64 = npt.NDArray[np.float64]


# --- the bfloat16 RMSNorm whose every output is 0.2% too large ---------------------------------


def _rms_bf16(rows: int, n: int, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(rows, n, generator=torch.Generator().manual_seed(0)).bfloat16()
    x64 = as_float64(x)
    exact = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + 1e-6)
    return x, torch.from_numpy(exact * factor).bfloat16()


@pytest.mark.parametrize(("rows", "n"), [(16, 4096), (8, 16384)])
def test_a_consistent_scale_in_bfloat16_rms_norm_is_not_accurate(rows: int, n: int) -> None:
    # a least-squares scale over bfloat16-rounded outputs is only known to about
    # 0.1 / sqrt(n) (the rounding noise it allows for): +0.2% shows from n = 4096 on
    x, y = _rms_bf16(rows, n, 1.0)
    exact = output_check(x, "rms_norm", normalized_shape=n, eps=1e-6, expected=y)
    assert (exact.passed, exact.accuracy_class) == (True, "accurate")
    x, y = _rms_bf16(rows, n, 1.002)
    c = output_check(x, "rms_norm", normalized_shape=n, eps=1e-6, expected=y)
    assert not c.passed and c.accuracy_class in ("low_precision", "mismatch")
    assert c.implied_scale > 1.001 and c.implied_shift == 0.0  # RMSNorm fits no shift


def test_the_scale_in_bfloat16_rms_norm_is_low_precision_with_its_words() -> None:
    x, y = _rms_bf16(16, 4096, 1.002)
    c = output_check(x, "rms_norm", normalized_shape=4096, eps=1e-6, expected=y)
    assert c.accuracy_class == "low_precision"
    assert c.explanation is not None
    words = c.explanation.split("; ")
    assert words[0] == f"rstd {100 * (c.implied_scale - 1):+.3g}% off"
    assert words[1] == (
        "an error the size that statistics, sums or intermediates rounded to the compute dtype "
        "cause (such as x * rstd rounded to it before the weight, in HF's LlamaRMSNorm)"
    )
    # accepted on request, as statistics summed in bfloat16 would be
    accepted = output_check(
        x, "rms_norm", normalized_shape=4096, eps=1e-6, expected=y, accept="low-precision"
    )
    assert accepted.passed and accepted.accuracy_class == "low_precision"


# --- a correct output, and what is left out of an explanation --------------------------------


def test_torchs_own_layer_norm_is_accurate_with_no_explanation() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(8, 512, generator=g) * 3 + 2
    w, b = torch.randn(512, generator=g), torch.randn(512, generator=g)
    y = torch.nn.functional.layer_norm(x, (512,), w, b)
    c = output_check(x, normalized_shape=512, weight=w, bias=b, expected=y)
    assert (c.passed, c.accuracy_class, c.explanation) == (True, "accurate", None)
    assert abs(c.implied_scale - 1) < 1e-6 and abs(c.implied_shift) < 1e-6
    row = lncheck.compare(x, normalized_shape=512, weight=w, bias=b, expected=y).to_dict()
    (entry,) = [e for e in row["checks"] if e["candidate"] == "expected"]
    assert entry["accuracy_class"] == "accurate" and entry["explanation"] is None
    assert entry["implied_scale"] == c.implied_scale and entry["implied_shift"] == c.implied_shift


def test_a_shift_or_scale_within_rounding_noise_is_not_mentioned() -> None:
    # an eps error: a large implied scale, a float32-rounding-sized implied shift
    x = (0.03 * np.random.default_rng(1).standard_normal((8, 64))).astype(np.float32)
    eps = output_check(x, normalized_shape=64, expected=layer_norm(x, eps=1e-3).astype(np.float32))
    assert eps.implied_shift != 0.0 and abs(eps.implied_shift) < 1e-7
    assert eps.explanation is not None and "mean off" not in eps.explanation
    # a missing bias in BatchNorm: a large implied shift, a rounding-sized implied scale
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 8, 16)).astype(np.float32)
    b = rng.uniform(0.5, 1.0, 8).astype(np.float32)
    x64 = x.astype(np.float64)
    mean = x64.mean((0, 2), keepdims=True)
    n = (x64 - mean) / np.sqrt(x64.var((0, 2), keepdims=True) + 1e-5)
    c = output_check(x, "batch_norm", training=True, bias=b, expected=n.astype(np.float32))
    assert c.accuracy_class == "mismatch" and abs(c.implied_shift) >= 0.5
    assert c.implied_scale != 1.0 and abs(c.implied_scale - 1) < 1e-6
    assert c.explanation == "matches the bias left out (in all 8 groups checked)"


def test_the_json_of_a_mismatch_has_the_class_the_distortion_and_the_explanation() -> None:
    x = np.random.default_rng(8).standard_normal((6, 4)).astype(np.float32)
    y = layer_norm(x, ddof=1).astype(np.float32)
    report = lncheck.compare(x, normalized_shape=4, backend=None, expected=y).to_dict()
    (entry,) = [e for e in report["checks"] if e["quantity"] == "output"]
    assert entry["passed"] is False and entry["accuracy_class"] == "mismatch"
    assert entry["explanation"] == (
        "matches an unbiased variance (÷(n - 1), n = 4) (in all 6 groups checked)"
    )
    assert entry["implied_scale"] == pytest.approx(math.sqrt(3 / 4), rel=1e-4)
    assert abs(entry["implied_shift"]) < 1e-6


# --- which classes pass: --strict, --accept low-precision --------------------------------------


def _sequential_case() -> tuple[F64, F64]:
    """A float32 sequential Welford (one thread per row) over rows with one large outlier:
    every later addition rounds the same way, an error linear in n."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4096)).astype(np.float32)
    x[:, 0] = 3000.0
    mean = np.zeros(8, np.float32)
    m2 = np.zeros(8, np.float32)
    for i in range(x.shape[1]):
        d = x[:, i] - mean
        mean = mean + d / np.float32(i + 1)
        m2 = m2 + d * (x[:, i] - mean)
    rstd = np.float32(1) / np.sqrt(m2 / np.float32(4096) + np.float32(1e-5))
    return x, ((x - mean[:, None]) * rstd[:, None]).astype(np.float32)


def _float16_statistics_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and rstd accumulated in float32 but kept in float16, kappa 4."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, 1024)) + 4).half()
    mean = x.float().mean(-1, keepdim=True)
    var = x.float().var(-1, unbiased=False, keepdim=True)
    return x, (x - mean.half()) * torch.rsqrt(var + 1e-5).half()


def test_a_sequential_check_passes_by_default_and_fails_with_strict() -> None:
    x, y = _sequential_case()
    default = output_check(x, normalized_shape=4096, expected=y)
    assert (default.passed, default.accuracy_class) == (True, "sequential")
    strict = output_check(x, normalized_shape=4096, expected=y, strict=True)
    assert (strict.passed, strict.accuracy_class) == (False, "sequential")
    exact = output_check(x, normalized_shape=4096, expected=layer_norm(x).astype(np.float32))
    assert (exact.passed, exact.accuracy_class) == (True, "accurate")


def test_a_low_precision_check_fails_by_default_and_passes_when_accepted() -> None:
    x, y = _float16_statistics_case()
    default = output_check(x, normalized_shape=1024, expected=y)
    assert (default.passed, default.accuracy_class) == (False, "low_precision")
    assert default.explanation is not None and "mean off by" in default.explanation
    accepted = output_check(x, normalized_shape=1024, expected=y, accept="low-precision")
    assert (accepted.passed, accepted.accuracy_class) == (True, "low_precision")
    with pytest.raises(InputError, match="strict= and accept= contradict each other"):
        output_check(x, normalized_shape=1024, expected=y, accept="low-precision", strict=True)


def _cli_check(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("compare", *args, "--json")
    (entry,) = [
        e
        for e in json.loads(result.stdout)["checks"]
        if e["candidate"] == "expected" and e["quantity"] == "output"
    ]
    return result.exit_code, entry


def test_the_command_line_accepts_low_precision_and_rejects_sequential(tmp_path: Path) -> None:
    x16, y16 = _float16_statistics_case()
    np.save(tmp_path / "x16.npy", x16.numpy())
    np.save(tmp_path / "y16.npy", y16.numpy())
    low = (str(tmp_path / "x16.npy"), "--shape", "1024", "--expected", str(tmp_path / "y16.npy"))
    code, entry = _cli_check(*low)
    assert (code, entry["passed"], entry["accuracy_class"]) == (1, False, "low_precision")
    code, entry = _cli_check(*low, "--accept", "low-precision")
    assert (code, entry["passed"], entry["accuracy_class"]) == (0, True, "low_precision")

    x, y = _sequential_case()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    seq = (str(tmp_path / "x.npy"), "--shape", "4096", "--expected", str(tmp_path / "y.npy"))
    code, entry = _cli_check(*seq)
    assert (code, entry["passed"], entry["accuracy_class"]) == (0, True, "sequential")
    code, entry = _cli_check(*seq, "--strict")
    assert (code, entry["passed"], entry["accuracy_class"]) == (1, False, "sequential")


# --- the pure functions ---------------------------------------------------------------------


def _allowed(thresholds: list[float]) -> Any:
    return lambda index: np.full((1, 2), thresholds[index])


@pytest.mark.parametrize(
    ("err", "accepted", "klass"),
    [
        ([1.0, 1.0], 1, "accurate"),  # within accurate's 1.5
        ([1.0, 2.0], 1, "sequential"),
        ([1.0, 2.0], 0, "sequential"),  # strict: beyond the accepted class, the next that fits
        ([1.0, 4.0], 1, "low_precision"),
        ([1.0, 9.0], 1, "mismatch"),
        ([1.0, math.nan], 1, "mismatch"),  # NaN meets no bound
        ([1.0, math.nan], 0, "mismatch"),
        ([1.0, 2.4], 2, "sequential"),  # accepting low_precision still names the class
    ],
)
def test_block_class(err: list[float], accepted: int, klass: str) -> None:
    thresholds = [1.5, 2.5, 5.0]  # accurate, sequential, low_precision
    e = np.array([err])
    with np.errstate(invalid="ignore"):
        worst = float(np.max(e / thresholds[accepted]))
    index = block_class(e, _allowed(thresholds), accepted, worst)
    assert CLASSES[index] == klass


def test_class_tally_keeps_the_worst_class_and_a_structural_failure_first() -> None:
    tally = ClassTally()
    assert tally.klass == "accurate" and tally.worst.group == -1
    for index in (2, 1, 0):
        tally.add(index)
    assert tally.klass == "low_precision"
    tally.distortion(Distortion(score=5.0, group=1))
    tally.distortion(Distortion(score=1.0, group=2, structural="residual"))
    tally.distortion(Distortion(score=50.0, group=3))  # larger, but only a scale or shift
    assert tally.worst.group == 2
    tally.distortion(Distortion(score=2.0, group=4, structural="cap"))
    assert tally.worst.group == 4


def _facts(var: float, eps: float, n: int = 64, rstd: float = 1.0) -> GroupFacts:
    return GroupFacts(var=var, eps=eps, n=n, centered=True, rstd=rstd, dtype="float32")


def said(*args: Any) -> str | None:
    """``explain``'s words."""
    return explain(*args).words


def test_explain_names_nothing_for_accepted_classes_and_notes_overflow() -> None:
    worst = Distortion(score=9.0, scale=0.5, shift=0.3, group=0)
    facts = _facts(1.0, 1e-5)
    assert said("accurate", worst, facts, 0, "output") is None
    assert said("sequential", worst, facts, 0, "output") is None
    assert said("mismatch", worst, None, 0, "output") is None
    assert said("accurate", worst, facts, 1, "output") == (
        "1 exact value beyond float32's range: the matching infinity is right there"
    )
    assert said("accurate", worst, None, 3, "output") == (
        "3 exact values beyond the dtype's range: the matching infinity is right there"
    )


def test_explain_translates_the_implied_scale() -> None:
    def text(scale: float, var: float, eps: float, n: int = 64) -> str | None:
        found = explain("mismatch", Distortion(scale=scale, shift=0.0), _facts(var, eps, n), 0, "y")
        # a convention found names the cause (no other is searched for); a percentage does not
        assert found.convention == (found.words or "").startswith("matches")
        return found.words

    assert text(math.sqrt(3 / 4), 1.0, 0.0, 4) == "matches an unbiased variance (÷(n - 1), n = 4)"
    on_std = math.sqrt(1e-4 + 1e-3) / (math.sqrt(1e-4) + 1e-3)
    assert text(on_std, 1e-4, 1e-3) == "matches eps added to the std instead of the variance"
    other_eps = math.sqrt((1e-4 + 1e-5) / (1e-4 + 1e-3))
    assert text(other_eps, 1e-4, 1e-5) == "matches eps = 0.001 instead of 1e-05"
    # a larger rstd than eps = 0 allows: no eps explains it
    assert text(1.01, 1.0, 1e-5) == "rstd +1% off"
    # a scale below 1 implies a larger eps: named unless the variance dwarfs it (1e3 times)
    assert text(0.5, 1.0, 1e-5) == "matches eps = 3 instead of 1e-05"  # 1 / 0.5**2 - 1
    assert text(0.9999, 1.0, 1e-5) == "rstd -0.01% off"  # implies eps 2e-4
    # an overflow's note before it does not hide a convention found
    unbiased = Distortion(scale=math.sqrt(3 / 4), shift=0.0)
    found = explain("mismatch", unbiased, _facts(1.0, 0.0, 4), 1, "output")
    assert found.convention and found.words == (
        "1 exact value beyond float32's range: the matching infinity is right there; matches an "
        "unbiased variance (÷(n - 1), n = 4)"
    )


def test_explain_translates_the_implied_shift_and_leaves_out_noise() -> None:
    facts = _facts(4.0, 0.0, rstd=0.5)
    shifted = Distortion(scale=1.0, shift=0.25, scale_noise=1e-6, shift_noise=1e-3)
    assert said("mismatch", shifted, facts, 0, "output") == "mean off by -0.5 (-0.25 std)"
    # both within what an accurate kernel may be off by: nothing to say
    noise = Distortion(scale=1 + 1e-7, shift=1e-4, scale_noise=1e-6, shift_noise=1e-3)
    assert said("mismatch", noise, facts, 0, "output") is None
    assert said("low_precision", noise, facts, 0, "output") == (
        "an error the size that statistics, sums or intermediates rounded to the compute dtype, "
        "or a one-pass E[x^2] - E[x]^2 variance, cause"
    )
    both = Distortion(scale=1.02, shift=-0.1, scale_noise=1e-6, shift_noise=1e-3)
    text = said("mismatch", both, facts, 0, "output")
    assert text == "rstd +2% off; mean off by 0.2 (+0.1 std)"


def test_explain_puts_a_structural_failure_before_any_translation() -> None:
    facts = _facts(1.0, 1e-5)
    residual = Distortion(scale=0.5, shift=0.3, structural="residual")
    cap = Distortion(scale=0.5, shift=0.3, structural="cap")
    text = said("mismatch", residual, facts, 0, "output")
    assert text is not None and text.startswith("not an affine distortion")
    assert "rstd" not in text and "mean off" not in text
    assert said("mismatch", cap, facts, 0, "output") == (
        "an output no correct layer can produce (|y - b| > |w| * sqrt(n - 1) plus rounding, "
        "sqrt(n - 1) = 7.94): a different function"
    )
    rms = GroupFacts(var=1.0, eps=1e-5, n=64, centered=False, rstd=1.0, dtype="float32")
    assert said("mismatch", cap, rms, 0, "output") == (
        "an output no correct layer can produce (|y - b| > |w| * sqrt(n) plus rounding, "
        "sqrt(n) = 8): a different function"
    )


def test_a_mismatch_no_one_pass_variance_could_keep_names_it_as_a_possibility() -> None:
    # a group judged a mismatch where a one-pass variance keeps no digit (the statistics of
    # torch's channels-last CPU GroupNorm at mean/std 1e3 in float16, numerics Rc0105)
    facts = GroupFacts(var=1e-4, eps=1e-5, n=1000, centered=True, rstd=95.3, dtype="float16")
    lost = Distortion(score=9.0, scale=3.37, shift=0.0, one_pass=11.0)
    assert said("mismatch", lost, facts, 0, "output") == (
        "rstd +237% off; or a one-pass E[x^2] - E[x]^2 variance in float32, which keeps no "
        "digit here (its error may reach 11x the variance)"
    )
    kept = Distortion(score=9.0, scale=3.37, shift=0.0, one_pass=0.5)
    assert said("mismatch", kept, facts, 0, "output") == "rstd +237% off"
    alone = Distortion(score=9.0, scale=1.0, shift=0.0, one_pass=11.0)  # nothing translated
    assert said("mismatch", alone, facts, 0, "output") == (
        "a one-pass E[x^2] - E[x]^2 variance in float32, which keeps no digit here (its error "
        "may reach 11x the variance)"
    )


@pytest.mark.parametrize(("mean", "scale"), [(0.0, 1.002), (10.0, 1.002), (100.0, 1.01)])
def test_a_scaled_bfloat16_layer_norm_is_a_distortion_not_another_function(
    mean: float, scale: float
) -> None:
    # every output of 4 rows of 4096 values times `scale`, rounded to bfloat16: the roundings
    # fl(s y) - fl(y) are a staircase in y, and must not read as a residual
    x = (mean + torch.randn(4, 4096, generator=torch.Generator().manual_seed(1))).bfloat16()
    xd = x.double()
    exact = (xd - xd.mean(-1, keepdim=True)) / torch.sqrt(xd.var(-1, False, keepdim=True) + 1e-5)
    c = output_check(
        x, normalized_shape=4096, dtype="bfloat16", expected=(exact * scale).bfloat16()
    )
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.explanation is not None and c.explanation.startswith("rstd +")


@pytest.mark.parametrize("mean", [0.0, 3.0])
def test_torchs_bfloat16_batch_norm_with_its_statistics_in_bfloat16_is_low_precision(
    mean: float,
) -> None:
    # torch's CPU BatchNorm in bfloat16 normalizes with its mean and rstd rounded to bfloat16
    # (its save_mean and save_invstd): rstd 0.06 % - 0.3 % off, within a last place of the
    # output, so fl(s y) rounds some values back onto fl(y) and the least-squares line through
    # that staircase misses the elements near the mean by 6e-4 - 1e-3: "not an affine
    # distortion" (mismatch), where it is one of bfloat16 statistics
    rng = np.random.default_rng(0)
    x = torch.from_numpy(mean + rng.standard_normal((2, 3, 50_000))).bfloat16()
    y, saved_mean, saved_rstd = torch.ops.aten.native_batch_norm(
        x, None, None, None, None, True, 0.1, 1e-5
    )
    assert saved_mean.dtype == saved_rstd.dtype == torch.bfloat16
    c = output_check(x, "batch_norm", training=True, expected=y)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.explanation is not None and c.explanation.startswith("rstd -")
    # its output is exactly the bfloat16 statistics' affine map, rounded once
    view = (1, 3, 1)
    again = (x.double() - saved_mean.double().view(view)) * saved_rstd.double().view(view)
    assert torch.equal(again.bfloat16(), y)


@pytest.mark.parametrize("strict", [False, True])
def test_a_group_of_matching_nans_does_not_move_a_checks_class(strict: bool) -> None:
    # the NaN group's bounds are NaN: its matching NaNs (error 0) meet every class, so the
    # class is torch's own, not the accepted one (it was sequential, accurate with strict)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    x[0, 2] = np.nan
    report = lncheck.compare(x, "layer_norm", normalized_shape=4, equal_nan=True, strict=strict)
    assert report.passed
    assert {c.accuracy_class for c in report.checks} == {"accurate"}


def _rstd_in_float16(x: npt.NDArray[np.float32], eps: float) -> npt.NDArray[np.float16]:
    """A float16 BatchNorm over (N, C, L) whose statistics are float32 and whose rstd is kept
    in float16 (``inf`` beyond 65504), as torch's CPU kernel keeps it."""
    xh = x.astype(np.float16).astype(np.float32)
    mean = xh.mean(axis=(0, 2), keepdims=True, dtype=np.float32)
    var = ((xh - mean) ** 2).mean(axis=(0, 2), keepdims=True, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        rstd = (1 / np.sqrt(var + np.float32(eps))).astype(np.float16).astype(np.float32)
        return ((xh - mean) * rstd).astype(np.float16)


def test_nan_where_the_exact_rstd_overflows_the_dtype_is_low_precision_with_its_cause() -> None:
    # a constant channel with eps = 1e-12: the exact rstd is 1e6, beyond float16's 65504; a
    # kernel keeping rstd in float16 outputs 0 * inf = NaN there (it read as a mismatch, no
    # words); the other channel is ordinary and its outputs right
    rng = np.random.default_rng(3)
    x = np.stack([np.full((4, 64), 3.25), rng.standard_normal((4, 64))], axis=1)
    x = x.astype(np.float32)
    y = _rstd_in_float16(x, 1e-12)
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()
    c = output_check(x, "batch_norm", eps=1e-12, dtype="float16", expected=y)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.explanation is not None and c.explanation.startswith(
        "256 output values are NaN or infinite where the exact output is finite, in groups "
        "whose exact rstd (1e+06) is beyond float16's range (65504): a kernel that keeps rstd "
        "in float16 gets an infinite rstd there, and (x - mean) * inf is NaN or infinite "
        "(statistics kept in the compute dtype); "
    )
    # ...and what the ordinary channel shows, its rstd rounded to float16 too
    assert c.explanation.endswith("rounded to the compute dtype, or a one-pass E[x^2] - E[x]^2 "
                                  "variance, cause")  # fmt: skip
    # NaN never passes, whatever the classes accepted
    accepting = output_check(x, "batch_norm", eps=1e-12, dtype="float16", expected=y,
                             accept="low-precision")  # fmt: skip
    assert (accepting.passed, accepting.accuracy_class) == (False, "low_precision")
    # torch 2.13's own CPU kernel does just that (a release that keeps rstd in float32 passes)
    report = lncheck.compare(x, "batch_norm", eps=1e-12, dtype="float16")
    (module,) = [
        c for c in report.checks if (c.candidate, c.quantity) == ("torch.nn.BatchNorm1d", "output")
    ]
    if module.nan_actual:
        assert module.accuracy_class == "low_precision" and "(1e+06)" in (module.explanation or "")
    else:
        assert module.passed


def test_nan_alone_where_the_exact_rstd_overflows_is_said_alone() -> None:
    # a float16 BatchNorm keeping rstd in float16 on constant channels: NaN there, and nothing
    # else to say
    x = np.full((2, 3, 1000), 1000.1, np.float32)
    c = output_check(
        x, "batch_norm", eps=1e-12, dtype="float16", expected=_rstd_in_float16(x, 1e-12)
    )
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert c.explanation is not None and c.explanation.startswith("6000 output values are NaN")
    assert c.explanation.endswith("(statistics kept in the compute dtype)")


def test_infinities_of_the_wrong_sign_are_no_rstd_overflow() -> None:
    # (x - mean) * inf * w has the sign of y - b: an infinity of the other sign is another
    # function's (a row of zeros but one 1e-5: exact rstd 5e5, outputs -0.156 and 4.83)
    x = np.zeros((2, 32), np.float32)
    x[:, 3] = 1e-5
    exact = np.where(x > 0, 1.0, -1.0)
    right = (np.inf * exact).astype(np.float16)
    c = output_check(x, normalized_shape=32, eps=1e-12, dtype="float16", expected=right)
    assert c.accuracy_class == "low_precision" and "rstd (" in (c.explanation or "")
    c = output_check(x, normalized_shape=32, eps=1e-12, dtype="float16", expected=-right)
    assert c.accuracy_class == "mismatch" and "rstd (" not in (c.explanation or "")


def test_nan_elsewhere_or_beside_a_bug_stays_a_mismatch() -> None:
    rng = np.random.default_rng(3)
    x = np.stack([np.full((4, 64), 3.25), rng.standard_normal((4, 64))], axis=1)
    x = x.astype(np.float32)
    y = _rstd_in_float16(x, 1e-12)
    # a NaN in the ordinary channel: no overflow explains it
    nan_elsewhere = y.copy()
    nan_elsewhere[0, 1, 5] = np.nan
    c = output_check(x, "batch_norm", eps=1e-12, dtype="float16", expected=nan_elsewhere)
    assert c.accuracy_class == "mismatch" and "rstd" not in (c.explanation or "")
    # the ordinary channel's outputs off by 10 %: the overflow does not hide it
    scaled = y.copy()
    scaled[:, 1] *= np.float16(1.1)
    c = output_check(x, "batch_norm", eps=1e-12, dtype="float16", expected=scaled)
    assert c.accuracy_class == "mismatch"


def test_the_worst_element_named_beside_overflow_nans_is_the_bug() -> None:
    # a LayerNorm row of equal values at eps = 1e-12 (exact rstd 1e6, beyond float16) left NaN
    # as a float16 rstd leaves it, and one element of another row off by 1: the report named a
    # NaN of the first row as the worst element, where the bug is (2, 5)
    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float16)
    x[0] = 1.5
    y = layer_norm(x, eps=1e-12).astype(np.float16)
    assert output_check(x, normalized_shape=64, eps=1e-12, dtype="float16", expected=y).passed
    y[0] = np.nan
    c = output_check(x, normalized_shape=64, eps=1e-12, dtype="float16", expected=y)
    assert (c.accuracy_class, c.worst_index) == ("low_precision", (0, 0))
    assert c.tolerance_used == np.inf
    y[2, 5] += np.float16(1.0)
    c = output_check(x, normalized_shape=64, eps=1e-12, dtype="float16", expected=y)
    assert (c.accuracy_class, c.worst_index) == ("mismatch", (2, 5))
    assert c.worst_expected == pytest.approx(float(y[2, 5]) - 1.0, abs=1e-3)
    # every failing element still counts, the NaN ones too, and no tolerance fits them
    assert (c.mismatched, c.tolerance_used) == (65, np.inf)


def test_a_low_precision_check_beside_overflow_nans_names_a_nan() -> None:
    # its other failures are roundings a low_precision kernel makes: the NaN says the most
    # (a float16 BatchNorm keeping rstd in float16, on a constant channel: a finite rounding
    # at (1, 0, 15) was named beside "greatest absolute difference inf")
    x = np.random.default_rng(0).standard_normal((4, 3, 16)).astype(np.float16)
    x[:, 1] = 1.5
    report = lncheck.compare(x, "batch_norm", eps=1e-12)
    (c,) = [
        c for c in report.checks if (c.candidate, c.quantity) == ("torch.nn.BatchNorm1d", "output")
    ]
    if not c.nan_actual:
        pytest.skip("this torch keeps rstd in float32")
    assert c.accuracy_class == "low_precision" and np.isnan(c.worst_actual)
    assert c.worst_index[1] == 1


def test_a_statistic_beyond_its_range_counts_only_the_matching_infinities() -> None:
    exact = np.array([1e6, -1e6, 1e6, 1e6, 2.0])
    kept = np.array([np.inf, -np.inf, 65504.0, -np.inf, 2.0], dtype=np.float16)
    # four exact values beyond float16's 65504, two of them held as their own infinity
    assert beyond_range(exact, kept, "float16") == (4, "float16", 2)
    assert beyond_range(exact[4:], kept[4:], "float16") is None
    # float32 results of a float32 check: only its infinities can have been kept in float32
    wide = np.array([1e42, 1e42, 3.0])
    assert beyond_range(wide, np.array([np.inf, 1e42, 3.0]), "float32") == (1, "float32", 1)
    assert beyond_range(wide, np.array([np.inf, 1e42, 3.0]), "float64") is None


def _folded_eval(x: npt.NDArray[np.float32], params: dict[str, Any], dtype: str) -> Any:
    """An eval BatchNorm1d that folds ``w / sqrt(running_var + eps)`` and ``b - running_mean
    * scale`` into a scale and shift rounded to ``dtype`` and computes ``x * scale + shift`` in
    ``dtype`` (as inference engines fold it); every array rounded to ``dtype`` first."""
    t = getattr(torch, dtype)
    p = {k: torch.from_numpy(v).to(t).double() for k, v in params.items()}
    scale64 = p["weight"] / torch.sqrt(p["running_var"] + 1e-5)
    scale, shift = scale64.to(t), (p["bias"] - p["running_mean"] * scale64).to(t)
    y = torch.from_numpy(x).to(t) * scale[None, :, None] + shift[None, :, None]
    return y.float().numpy()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("mean", [0.0, 3.0, 10.0])
def test_an_eval_batch_norm_folded_in_the_compute_dtype_is_low_precision(
    dtype: str, mean: float
) -> None:
    # it read "mismatch" (at mean 30 "not an affine distortion ...: a different function"):
    # x * scale rounds relative to K |w|, beyond the accumulation dtype's fused term
    rng = np.random.default_rng(0)
    x = rng.normal(mean, 2, (8, 16, 64)).astype(np.float32)
    params = {
        "running_mean": rng.normal(mean, 0.5, 16).astype(np.float32),
        "running_var": rng.uniform(2, 6, 16).astype(np.float32),
        "weight": rng.normal(1, 0.3, 16).astype(np.float32),
        "bias": rng.normal(0, 0.3, 16).astype(np.float32),
    }
    y = _folded_eval(x, params, dtype)
    c = output_check(x, "batch_norm", training=False, dtype=dtype, expected=y, **params)
    assert (c.passed, c.accuracy_class) == (False, "low_precision")
    assert (c.explanation or "").endswith(
        "an error the size that a scale and shift folded from the running statistics and "
        "applied in the compute dtype cause"
    )
    accepted = output_check(x, "batch_norm", training=False, dtype=dtype, expected=y,
                            accept="low-precision", **params)  # fmt: skip
    assert accepted.passed
    # the same fold left out the bias: another function, however it rounds
    params_no_bias = {**params, "bias": np.zeros(16, np.float32)}
    wrong = _folded_eval(x, params_no_bias, dtype)
    c = output_check(x, "batch_norm", training=False, dtype=dtype, expected=wrong, **params)
    assert c.accuracy_class == "mismatch"


def test_a_fold_that_errs_by_more_than_a_quarter_std_explains_nothing() -> None:
    # bfloat16 at mean/std 12 to 21: the fold's rounding reaches a third of a std, where an
    # eval BatchNorm using the batch's statistics (0.135 std off) would read as it
    rng = np.random.default_rng(0)
    x = rng.normal(30.0, 2, (8, 16, 64)).astype(np.float32)
    params = {
        "running_mean": rng.normal(30.0, 0.5, 16).astype(np.float32),
        "running_var": rng.uniform(2, 6, 16).astype(np.float32),
        "weight": rng.normal(1, 0.3, 16).astype(np.float32),
        "bias": rng.normal(0, 0.3, 16).astype(np.float32),
    }
    y = _folded_eval(x, params, "bfloat16")
    c = output_check(x, "batch_norm", training=False, dtype="bfloat16", expected=y, **params)
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
