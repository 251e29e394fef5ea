"""The Python API: ``lncheck.compare``, ``lncheck.check`` and ``lncheck.run_suite``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck.errors import CheckWarning, InputError

from .cli.helpers import invoke
from .conftest import EXAMPLES, heavy_modules_after

SUITE = EXAMPLES / "suite.toml"


def test_api_report_equals_cli_json() -> None:
    path = str(EXAMPLES / "image.npy")
    cli = json.loads(
        invoke("compare", path, "--op", "group_norm", "--groups", "2", "--json").stdout
    )
    api = lncheck.compare(np.load(path), "group_norm", groups=2, name=path).to_dict()
    assert api == cli


def test_check_raises_a_short_message_with_the_cli_figures() -> None:
    x = np.load(EXAMPLES / "tokens.npy")
    bad = np.load(EXAMPLES / "unbiased_kernel_output.npy")
    with pytest.raises(AssertionError) as info:
        lncheck.check(bad, x, normalized_shape=4)
    lines = str(info.value).splitlines()
    assert lines == [
        "actual output does not match the reference (LayerNorm(normalized_shape=(4,), "
        "eps=1e-05, elementwise_affine=True, bias=True) in float32)!",
        "",
        "Mismatched elements: 24 / 24 (100.0%) in 6 of 6 groups: (0, 0) 4, (0, 1) 4, (0, 2) 4, ...",
        "Worst element at index (0, 1, 0): -1.41705251 vs -1.63626852 expected; greatest absolute "
        "difference 0.226 (allowed there: rtol 5.96e-08, atol 1.36e-06)",
        "Accuracy class mismatch: matches an unbiased variance (÷(n - 1), n = 4) (in all 6 groups "
        "checked)",
    ]
    cli = invoke(
        "compare",
        str(EXAMPLES / "tokens.npy"),
        "--shape",
        "4",
        "--expected",
        str(EXAMPLES / "unbiased_kernel_output.npy"),
    )
    # the same figures as the command line's failing row
    assert "24 / 24 elements mismatched" in cli.stdout
    assert "-1.41705251 vs -1.63626852" in cli.stdout
    good = lncheck.compare(x, normalized_shape=4)
    assert lncheck.check(np.asarray(good.small["torch.nn.LayerNorm"]), x, normalized_shape=4).passed


def test_check_says_a_lower_precision_output_needs_its_dtype() -> None:
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    y = torch.nn.functional.layer_norm(x.bfloat16(), (8,))
    with pytest.raises(AssertionError) as info:
        lncheck.check(y, x, normalized_shape=8)
    assert str(info.value).endswith(
        "The output is bfloat16 but the check computed in float32: if the layer ran in "
        'bfloat16, pass dtype="bfloat16".'
    )
    assert lncheck.check(y, x, normalized_shape=8, dtype="bfloat16").passed  # the hint works
    with pytest.raises(AssertionError) as same:  # a float32 output: no such hint
        lncheck.check(y.float() * 1.1, x, normalized_shape=8)
    assert "pass dtype=" not in str(same.value)


def test_a_failing_check_in_pytest_shows_the_callers_line_only(tmp_path: Path) -> None:
    import subprocess
    import sys

    test = tmp_path / "test_kernel.py"
    test.write_text(
        "import numpy as np, lncheck\n"
        "def test_it():\n"
        "    x = np.arange(8.0).reshape(2, 4)\n"
        "    lncheck.check(x, x, normalized_shape=4)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    failure = done.stdout[done.stdout.index("test_it ___") : done.stdout.index("short test")]
    assert "lncheck.check(x, x, normalized_shape=4)" in failure
    assert "api.py" not in failure and "def check(" not in failure  # no lncheck source
    assert len(failure.splitlines()) < 20, failure


def test_check_runs_only_the_given_output_unless_asked() -> None:
    x = np.random.default_rng(0).standard_normal((3, 8))
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    alone = lncheck.check(y, x, normalized_shape=8, dtype="float64")
    assert {c.candidate for c in alone.checks} == {"expected"}
    both = lncheck.check(y, x, normalized_shape=8, dtype="float64", backend="torch")
    assert {c.candidate for c in both.checks} >= {"expected", "torch.nn.LayerNorm"}


def test_api_options_are_checked() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'gruops'"):
        lncheck.compare(np.ones((2, 4, 3)), "group_norm", gruops=2)
    with pytest.raises(InputError, match="needs groups="):
        lncheck.compare(np.ones((2, 4, 3)), "group_norm")


def test_check_names_its_own_arguments_in_errors() -> None:
    x = np.ones((2, 4))
    with pytest.raises(TypeError, match=r"^check\(\) got an unexpected keyword argument 'epss'"):
        lncheck.check(x, x, normalized_shape=4, epss=1)
    # the output is check's first argument, actual=, whatever compare calls it
    with pytest.raises(InputError, match=r"^the array given to actual=: output has shape \(3,\)"):
        lncheck.check(np.ones(3), x, normalized_shape=4)
    with pytest.raises(TypeError, match="as actual, not expected="):
        lncheck.check(x, x, normalized_shape=4, expected=x)
    # not "no expected=, candidates= or candidate_cmd= given", keywords check() has not
    with pytest.raises(InputError, match=r"^actual= is None: check\(\) needs the output"):
        lncheck.check(None, x, normalized_shape=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"path": 5}, "path= must be the suite file's path, got 5"),
     ({"jobs": 2.5}, "jobs= must be an integer, got 2.5"),
     ({"jobs": "a"}, "jobs= must be an integer, got 'a'"),
     ({"jobs": 0}, "jobs= must be at least 1, got 0")],
)  # fmt: skip
def test_run_suite_refuses_what_is_no_path_or_count(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"path": str(EXAMPLES / "suite.toml"), **kwargs}
    with pytest.raises(InputError) as info:
        lncheck.run_suite(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(("alias", "name"), [("shape", "normalized_shape"), ("train", "training")])
def test_aliases_and_names_are_both_keywords(alias: str, name: str) -> None:
    x = np.random.default_rng(0).normal(size=(4, 3, 2))
    values = {"shape": 2, "train": False}
    op = "layer_norm" if alias == "shape" else "batch_norm"
    extra: dict[str, Any] = {}
    if op == "batch_norm":
        extra = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    by_alias = lncheck.compare(x, op, dtype="float64", **{alias: values[alias]}, **extra)
    by_name = lncheck.compare(x, op, dtype="float64", **{name: values[alias]}, **extra)
    assert by_alias.to_dict() == by_name.to_dict() and by_alias.passed
    with pytest.raises(InputError, match=f"given twice, as '{name}' and '{alias}'"):
        lncheck.compare(x, op, **{name: values[alias], alias: values[alias]}, **extra)


def test_none_means_the_default() -> None:
    x = np.random.default_rng(0).normal(size=(4, 8))
    assert (
        lncheck.compare(x, normalized_shape=8, eps=None, weight=None, dtype=None).to_dict()
        == lncheck.compare(x, normalized_shape=8).to_dict()
    )


def test_import_lncheck_is_cheap() -> None:
    assert heavy_modules_after("import lncheck") == []


def test_a_bfloat16_tensor_is_checked_in_bfloat16() -> None:
    import torch

    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    report = lncheck.compare(x, normalized_shape=8)
    assert (report.header.dtype, report.header.input_dtype) == ("bfloat16", "bfloat16")


@pytest.mark.parametrize(
    ("call", "phrase"),
    [
        (lambda: lncheck.check(None, np.ones((1, 4)), normalized_shape=4), "actual= is None"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, backend=None), "nothing"),
        (lambda: lncheck.compare([[1.0, 2.0], [3.0]], normalized_shape=2), "input"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4.0), "integers"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=True), "integers"),
        (lambda: lncheck.compare(np.ones((2, 4)), "group_norm", groups=2.0), "groups="),
        (lambda: lncheck.compare(np.ones((2, 4)), "group_norm", groups=True), "groups="),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, eps="1e-5"), "eps="),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, affine="no"), "affine="),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, activation=1), "activ"),
        (
            lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, eps=float("nan")),
            "eps= must be finite",
        ),
        (
            lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, backend="jax"),
            "backend= must be one of torch",
        ),
        (
            lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, rtol=1e-3),
            "rtol= was given without atol=",
        ),
        (lambda: lncheck.run_suite(SUITE, shard=(0, 4)), "shard= must be"),
        (lambda: lncheck.run_suite(SUITE, shard=(5, 4)), "shard= must be"),
        (lambda: lncheck.run_suite(SUITE, shard=(0.0, 2)), "shard"),
        (lambda: lncheck.run_suite(SUITE, jobs=0), "jobs= must be at least 1"),
    ],
)
def test_bad_api_arguments_are_input_errors(call: Callable[[], object], phrase: str) -> None:
    with pytest.raises(InputError, match=phrase):
        call()


def test_api_takes_numpy_integers_a_torch_device_and_momentum_none() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(4, 3, 2))
    report = lncheck.compare(
        x,
        "batch_norm",
        momentum="none",
        device=torch.device("cpu"),
        running_mean=np.zeros(3),
        running_var=np.ones(3),
        track_running_stats=True,
        dtype="float64",
    )
    assert report.passed and report.header.params["momentum"] is None
    assert lncheck.compare(x, normalized_shape=np.int64(2), dtype="float64").passed
    none = lncheck.compare(
        x,
        "batch_norm",
        momentum=None,
        running_mean=np.zeros(3),
        running_var=np.ones(3),
        dtype="float64",
    )
    assert none.header.params["momentum"] is None  # torch's None: the cumulative average


def test_a_meta_tensor_is_an_input_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="input"):
        lncheck.compare(torch.ones(2, 4, device="meta"), normalized_shape=4)


def test_nan_where_the_reference_is_finite_fails_even_with_equal_nan() -> None:
    x = np.random.default_rng(1).standard_normal((3, 8))
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    y[2, 5] = np.nan
    with pytest.raises(AssertionError, match="The actual output has 1 NaN and 0 Inf"):
        lncheck.check(y, x, normalized_shape=8, dtype="float64", equal_nan=True)


def test_run_suite_returns_the_report() -> None:
    report = lncheck.run_suite(SUITE, pattern="group_norm")
    assert [r.name for r in report.results] == ["group_norm", "group_norm-channels-last"]
    assert report.passed and report.exit_status == 0
    assert report.to_dict()["counts"]["pass"] == 2


def test_candidates_in_the_api() -> None:
    import torch

    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)

    def mine(x: torch.Tensor, normalized_shape: Any, weight: Any, bias: Any) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias)

    native = torch.native_layer_norm(torch.from_numpy(x), [8], None, None, 1e-5)
    y, mean, rstd = (t.numpy() for t in native)
    report = lncheck.compare(
        x,
        normalized_shape=8,
        backend=None,
        candidates={"mine": mine},
        expected={"output": y, "rstd": rstd, "other": {"mean": mean + 0.1}},
        repeat=2,
    )
    verdicts = {(c.candidate, c.quantity, c.kind): c.passed for c in report.checks}
    assert verdicts == {
        ("mine", "output", "reference"): True,
        ("mine", "output", "repeat"): True,
        ("expected", "output", "reference"): True,
        ("expected", "rstd", "reference"): True,
        ("other", "mean", "reference"): False,
    }
    assert report.to_dict()["checks"][-1]["candidate"] in {"mine", "expected", "other"}
    with pytest.raises(InputError, match="nothing to check: backend=None and no expected="):
        lncheck.compare(x, normalized_shape=8, backend=None)
    # named back as the caller spelled it: candidates= (an alias of candidate=)
    with pytest.raises(InputError) as info:
        lncheck.compare(x, normalized_shape=8, candidates=[3])
    assert str(info.value) == "candidates= must be 'module.path:function' or a callable, got 3"


def test_a_seed_beside_an_upstream_gradient_array_is_an_input_error() -> None:
    # the array has no truth value: "is it set" must not ask it for one
    x = np.ones((2, 4), np.float32) * np.arange(4, dtype=np.float32)
    with pytest.raises(InputError, match=r"^seed= makes what grad_output= gives"):
        lncheck.compare(x, normalized_shape=4, grad_output=np.ones((2, 4), np.float32), seed=3)


def test_check_warns_with_the_callers_name_for_its_output() -> None:
    # a float16 RMSNorm scaled by +0.01 % in every row, with massive activations: it passes
    # with a warning (tests/cli/test_compare.py), which names check()'s actual, not expected
    rng = np.random.default_rng(16)
    x = rng.standard_normal((8, 2048)).astype(np.float32)
    x[:, 17], x[:, 901] = 180.0, -95.0
    xh = x.astype(np.float16).astype(np.float64)
    y = xh / np.sqrt(np.mean(xh * xh, axis=-1, keepdims=True) + 1e-6) * 1.0001
    with pytest.warns(CheckWarning) as caught:
        lncheck.check(y.astype(np.float16), x, "rms_norm", normalized_shape=2048, eps=1e-6,
                      dtype="float16")  # fmt: skip
    (warned,) = caught
    assert str(warned.message).startswith("actual output: every output of a group moved alike")
