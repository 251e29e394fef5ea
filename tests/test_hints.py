"""compare's one-line hint from ``lncheck explain`` on a failing candidate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck import hints
from lncheck.comparison import Comparison

from .cli.helpers import invoke
from .conftest import EXAMPLES

X = np.random.default_rng(0).normal(size=(64, 256)).astype(np.float32)


def _output(y: np.ndarray) -> Comparison:
    report = lncheck.compare(X, normalized_shape=256, backend=None, expected=y.astype(np.float32))
    (check,) = report.checks
    return check


def test_a_candidate_normalized_over_other_axes_gets_explains_finding() -> None:
    y = (X - X.mean()) / np.sqrt(X.var() + 1e-3)  # the whole tensor, another eps
    c = _output(y)
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert c.explanation.startswith("rstd ")  # no single convention claimed for the group
    assert c.explanation.endswith(
        "lncheck explain finds: LayerNorm over the last 2 dims (64, 256), eps=1e-3, biased "
        "variance, eps inside the sqrt, no affine"
    )


def test_no_hint_where_a_convention_is_named_or_nothing_explains() -> None:
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True, ddof=1)
    named = _output((X - mean) / np.sqrt(var + 1e-5))
    assert named.explanation is not None
    assert named.explanation.startswith("matches an unbiased variance (÷(n - 1), n = 256) (in all")
    unknown = _output(np.tanh((X - mean) / np.sqrt(X.var(-1, keepdims=True) + 1e-5)))
    assert unknown.accuracy_class == "mismatch"
    assert unknown.explanation is not None and "lncheck explain" not in unknown.explanation


def test_a_check_that_names_its_cause_is_searched_no_further(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    y = ((X - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    y[5] = y[6]  # a row copied from its neighbour

    def searched(*args: Any) -> None:
        raise AssertionError("a check whose cause is named was searched")

    monkeypatch.setattr(hints, "_quick", searched)
    monkeypatch.setattr(hints, "_narrower", searched)
    copied = _output(y)
    assert copied.cause_named and copied.explanation is not None
    assert copied.explanation.startswith("group (5) repeats group (6)'s output bit for bit")
    unbiased = _output((X - mean) / np.sqrt(X.var(-1, keepdims=True, ddof=1) + 1e-5))
    assert unbiased.cause_named and unbiased.explanation is not None
    assert unbiased.explanation.startswith("matches an unbiased variance")
    monkeypatch.undo()
    other = _output((X - X.mean()) / np.sqrt(X.var() + 1e-3))
    assert other.accuracy_class == "mismatch" and not other.cause_named


def test_a_candidate_with_inf_and_nan_gets_a_hint_without_warnings() -> None:
    import warnings

    import torch

    y = torch.nn.functional.layer_norm(torch.from_numpy(X), (256,)).numpy()
    y[3, 4], y[5] = np.inf, np.nan
    y[7] = y[7][::-1].copy()  # a row no statistics error makes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # explain's sums of inf and NaN stay quiet
        c = _output(y)
    assert not c.passed and c.accuracy_class == "mismatch"


def _group_norm(x: np.ndarray, groups: int, w: np.ndarray) -> np.ndarray:
    n, c = x.shape[:2]
    v = x.reshape(n, groups, -1)
    y = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)
    return y.reshape(x.shape) * w.reshape(1, c, 1)


def test_low_precision_that_other_groups_reproduce_exactly_is_a_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # float16 values of 1e-3 against eps 1e-5: GroupNorm with 4 groups where 8 are meant is
    # a scale off by a few % per group, which float16 statistics could do; explain finds it
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 8, 512)) * 1e-3).astype(np.float16)
    w = np.full(8, 1000.0, dtype=np.float16)
    y = _group_norm(x.astype(np.float64), 4, w.astype(np.float64)).astype(np.float16)
    options = {"groups": 8, "weight": w, "backend": None, "expected": y}
    (c,) = lncheck.compare(x, "group_norm", **options).checks
    assert (c.passed, c.accuracy_class) == (False, "mismatch")
    assert c.explanation is not None and c.explanation.startswith(
        "reproduced exactly by statistics over other groups or axes; lncheck explain finds: "
        "GroupNorm, 4 groups of 2 channels"
    )
    monkeypatch.setattr("lncheck.hints._quick", lambda *args: None)
    (c,) = lncheck.compare(x, "group_norm", **options).checks
    assert (c.passed, c.accuracy_class) == (False, "low_precision")


def test_a_low_precision_kernel_of_the_layer_itself_stays_low_precision() -> None:
    import torch

    # torch's CPU float16 InstanceNorm keeps its statistics in float16
    x = (100 + np.random.default_rng(0).standard_normal((2, 3, 4096))).astype(np.float16)
    y = torch.nn.functional.instance_norm(torch.from_numpy(x)).numpy()
    (c,) = lncheck.compare(x, "instance_norm", backend=None, expected=y).checks
    assert c.accuracy_class == "low_precision"


def test_other_function_compares_groupings_not_their_names() -> None:
    from lncheck.explain.report import Candidate
    from lncheck.hints import _other_function

    from .support import make_case

    spec = make_case(np.zeros((2, 6, 5)), "instance_norm").spec
    found = Candidate(
        op="group_norm", input_shape=(2, 6, 5), axes=(1, 2), groups=6, grouping="contiguous",
        channel_axis=1, view_shape=(2, 6, 1, 5), reduce_axes=(2, 3), param_shape=(6,),
        centered=True, variance="biased", variance_algorithm="two-pass", eps_placement="var",
        eps=1e-5, affine="none", weight=False, bias=False, cast_order=None, precision="float32",
        input_cast=None, eps_low=0.0, eps_high=1.0, eps_fitted=False, max_abs_residual=0.0,
        rms_residual=0.0, rounding_ratio=0.0, exact_share=1.0, verdict="exact", penalty=0,
        torch_code="", description="",
    )  # fmt: skip
    assert not _other_function(spec, found)  # GroupNorm with one channel per group
    assert _other_function(spec, replace(found, view_shape=(2, 3, 2, 5), groups=3))
    assert _other_function(spec, replace(found, centered=False))


def test_a_fit_of_a_weight_per_feature_reproducing_a_small_tensor_is_no_evidence() -> None:
    import torch

    # 128 values: explain reproduces torch's own bfloat16 InstanceNorm "exactly" with an
    # RMSNorm whose 64 weights and biases it fits; that is the freedom, not another function
    rng = np.random.default_rng(39)
    x = (1000 + rng.standard_normal((2, 16, 4))).astype(np.float32)
    w, b = rng.uniform(0.2, 1.9, 16).astype(np.float32), rng.uniform(-0.7, 0.35, 16)
    b = b.astype(np.float32)

    def bf16(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(torch.bfloat16)

    y = torch.nn.functional.instance_norm(bf16(x), weight=bf16(w), bias=bf16(b))
    options = {"affine": True, "weight": w, "bias": b, "dtype": "bfloat16"}
    report = lncheck.compare(x, "instance_norm", expected=y, **options)
    classes = {c.candidate: c.accuracy_class for c in report.checks if c.quantity == "output"}
    assert classes["expected"] == classes["torch.nn.InstanceNorm1d"] == "low_precision"


def test_a_callable_candidate_gets_the_same_verdict_as_the_same_output_given() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 8, 512)) * 1e-3).astype(np.float16)
    w = np.full(8, 1000.0, dtype=np.float16)
    y = _group_norm(x.astype(np.float64), 4, w.astype(np.float64)).astype(np.float16)

    def kernel(t: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        return torch.from_numpy(y)

    options = {"groups": 8, "weight": w, "backend": None}
    given = lncheck.compare(x, "group_norm", expected=y, **options).checks[0]
    called = lncheck.compare(x, "group_norm", candidates={"mine": kernel}, **options).checks[0]
    assert (given.accuracy_class, called.accuracy_class) == ("mismatch", "mismatch")
    assert called.explanation == given.explanation


def test_a_float16_output_checked_in_float32_is_said_to_be_rounded_not_another_function() -> None:
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    y = ((X - mean) / np.sqrt(var + 1e-5)).astype(np.float16)
    report = lncheck.compare(X, normalized_shape=256, backend=None, expected=y)
    (c,) = report.checks
    assert c.accuracy_class == "mismatch" and c.explanation is not None
    assert c.explanation.startswith(
        "its values are float16, the check computes in float32: float16's own rounding is no "
        'rounding of float32\'s (if the layer ran in float16, check it with dtype="float16")'
    )
    assert "a different function" not in c.explanation
    exact = ((X - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    assert lncheck.compare(X, normalized_shape=256, backend=None, expected=exact).passed


def test_a_bfloat16_pt_file_is_said_to_be_bfloat16_as_typed(tmp_path: Path) -> None:
    """A .pt file's bfloat16 is read as float32 by NumPy: the reader's dtype name counts."""
    import torch

    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    y = torch.from_numpy((X - mean) / np.sqrt(var + 1e-5)).to(torch.bfloat16)
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.pt"
    np.save(x_path, X)
    torch.save(y, y_path)
    result = invoke("compare", str(x_path), "--shape", "256", "--expected", str(y_path), "-q")
    assert result.exit_code == 1
    assert (
        "its values are bfloat16, the check computes in float32: bfloat16's own rounding is no "
        "rounding of float32's (if the layer ran in bfloat16, check it with --dtype bfloat16)"
    ) in result.stdout


def test_bfloat16_values_stored_as_float16_are_said_to_be_bfloat16() -> None:
    # a float16 array says float16 by its dtype, and its values say bfloat16: in a float16
    # check that is the cause, not "a different function"
    import torch

    x16 = torch.from_numpy(X).half()
    y = torch.nn.functional.layer_norm(x16.float(), (256,)).bfloat16().half()
    c = lncheck.compare(x16.numpy(), normalized_shape=256, backend=None, expected=y.numpy())
    (check,) = [k for k in c.checks if k.quantity == "output"]
    assert check.explanation is not None and check.explanation.startswith(
        "its values are bfloat16, the check computes in float16: bfloat16's own rounding"
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_function_returning_a_narrower_dtype_is_said_to_be_rounded(dtype: str) -> None:
    # a bfloat16 tensor comes back as float32 values: they tell the dtype, as a file's says it
    import torch

    def kernel(x: torch.Tensor, normalized_shape: tuple[int, ...]) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, normalized_shape).to(getattr(torch, dtype))

    report = lncheck.compare(X, normalized_shape=256, backend=None, candidate={"k": kernel})
    (c,) = report.checks
    assert c.accuracy_class == "mismatch" and (c.explanation or "").startswith(
        f"its values are {dtype}, the check computes in float32: {dtype}'s own rounding is no "
        f'rounding of float32\'s (if the layer ran in {dtype}, check it with dtype="{dtype}")'
    )


WHOLE = np.random.default_rng(1).integers(-8, 9, (16, 64)).astype(np.float32)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        (X, np.where(X > 0, 1.0, 0.0).astype(np.float32)),  # few values
        (WHOLE, WHOLE.copy()),  # an identity on whole numbers
        (WHOLE, WHOLE - WHOLE.mean(-1, keepdims=True)),  # no division by the std
        (WHOLE, WHOLE / 2),  # halves
    ],
)
def test_values_on_a_coarse_grid_tell_no_dtype(x: np.ndarray, y: np.ndarray) -> None:
    # they fit bfloat16 without having been rounded to it: the mismatch keeps its own words
    (c,) = lncheck.compare(x, normalized_shape=x.shape[-1], backend=None, expected=y).checks
    assert c.accuracy_class == "mismatch" and "its values are" not in (c.explanation or "")


def test_an_eval_output_gets_no_hint_from_a_weight_and_bias_fitted_per_feature() -> None:
    # eval maps each channel affinely; a weight and bias fitted per feature match that with
    # any statistics (before: "RMSNorm over axes (0, 1) ... fitted by least squares")
    rng = np.random.default_rng(0)
    x = (1 + 0.001 * rng.normal(size=(2, 51, 512))).astype(np.float16)
    mean = (1 + 0.001 * rng.normal(size=51)).astype(np.float32)
    var = (1e-6 * rng.uniform(0.5, 2, size=51)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 51).astype(np.float32)
    eps_lost = (x.astype(np.float64) - mean[:, None]) / np.sqrt(var[:, None] + 1e-12)
    report = lncheck.compare(
        x,
        "batch_norm",
        training=False,
        running_mean=mean,
        running_var=var,
        weight=w,
        bias=np.zeros(51, np.float32),
        backend=None,
        expected=(eps_lost * w[:, None]).astype(np.float16),
        dtype="float16",
    )
    (check,) = report.checks
    assert check.accuracy_class == "mismatch"
    assert check.explanation == "rstd +357% off; mean off by -0.000216 (-0.0668 std)"


def test_the_hint_carries_explains_notes_on_the_parameters() -> None:
    rng = np.random.default_rng(1)
    w, b = rng.normal(1, 0.3, 256), rng.normal(0, 0.3, 256)
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    no_bias = ((X - mean) / np.sqrt(var + 1e-5) * w).astype(np.float32)
    report = lncheck.compare(
        X, normalized_shape=256, weight=w, bias=b, backend=None, expected=no_bias
    )
    (check,) = report.checks
    assert check.accuracy_class == "mismatch" and check.explanation is not None
    assert check.explanation.endswith("with the given weight; the given bias is not added")


def test_a_statistic_from_a_narrower_file_is_said_to_be_rounded() -> None:
    # README's float16 rstd read a bare "accuracy class mismatch"
    result = invoke(
        "compare", str(EXAMPLES / "tokens.npy"), "--shape", "4",
        "--expected", f"fused.rstd={EXAMPLES / 'rstd_float16.npy'}",
    )  # fmt: skip
    assert result.exit_code == 1
    assert (
        "accuracy class mismatch: its values are float16, the check computes in float32: "
        "float16's own rounding is no rounding of float32's (if the layer ran in float16, check "
        "it with --dtype float16)"
    ) in " ".join(result.stdout.split())


def test_a_narrower_file_far_off_is_not_excused_by_its_rounding(tmp_path: Path) -> None:
    # an rstd 5% off, stored in float16, read "its values are float16 ... check it with
    # --dtype float16", which fails as well
    x = np.random.default_rng(2).normal(3.0, 5.0, (64, 256)).astype(np.float32)
    rstd = 1.0 / np.sqrt(x.astype(np.float64).var(-1) + 1e-5)
    np.save(tmp_path / "x.npy", x)
    for name, scale in (("near", 1.0), ("far", 1.05)):
        np.save(tmp_path / f"{name}.npy", (rstd * scale).astype(np.float16))
    args = ("compare", str(tmp_path / "x.npy"), "--shape", "256", "--json", "--expected")
    found = {}
    for name in ("near", "far"):
        result = invoke(*args, f"rstd={tmp_path / name}.npy")
        (check,) = [c for c in json.loads(result.stdout)["checks"] if c["candidate"] == "expected"]
        found[name] = check["explanation"] or ""
    assert found["near"].startswith("its values are float16, the check computes in float32")
    assert "float16" not in found["far"]
