"""The torch backend's own behaviour: its paths, the defaults it measures, its devices, .pt files.

Agreement with the reference on every op and dtype is the conformance test's
(tests/backends/test_conformance.py); this module tests what only torch has.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import lncheck
import lncheck.backends.torch as torch_backend
from lncheck import pipeline
from lncheck.backends import BACKENDS, get_backend, usable
from lncheck.backends.torch import files, runner
from lncheck.cli import app
from lncheck.errors import BackendUnavailable, InputError
from lncheck.ops import OP_NAMES

from ..conftest import EXAMPLES
from ..support import make_case
from .test_conformance import assert_matches_reference

cli = CliRunner()


def test_the_registry_names_torch() -> None:
    assert BACKENDS["torch"] == "lncheck.backends.torch"
    assert get_backend("torch") is torch_backend and usable("torch") is torch_backend
    assert set(torch_backend.PATHS) == set(OP_NAMES)  # the op table covers every op
    with pytest.raises(BackendUnavailable, match=r"unknown backend 'jax' \(known: torch\)"):
        get_backend("jax")


def test_paths_per_op() -> None:
    candidates = {
        "group_norm": {
            "torch.nn.GroupNorm",
            "torch.nn.functional.group_norm",
            "torch.native_group_norm",
        },
        "batch_norm": {
            "torch.nn.BatchNorm2d",
            "torch.nn.functional.batch_norm",
            "torch.native_batch_norm",
        },
        "instance_norm": {"torch.nn.InstanceNorm2d", "torch.nn.functional.instance_norm"},
        "rms_norm": {"torch.nn.RMSNorm", "torch.nn.functional.rms_norm", "torch._fused_rms_norm"},
    }
    options = {
        "group_norm": {"groups": 1},
        "batch_norm": {},
        "instance_norm": {},
        "rms_norm": {"normalized_shape": (2,)},
    }
    for op, want in candidates.items():
        report = assert_matches_reference("torch", op, "float32", (2, 3, 2, 2), **options[op])
        assert {c.candidate for c in report.checks} == want


def test_describe_and_short_names() -> None:
    assert torch_backend.describe("layer_norm") == (
        "nn.LayerNorm, F.layer_norm, torch.native_layer_norm"
    )
    assert torch_backend.describe("batch_norm").startswith("nn.BatchNorm1d/2d/3d, ")
    assert torch_backend.short_name("torch.nn.functional.layer_norm") == "F.layer_norm"
    assert torch_backend.short_name("torch.native_group_norm") == "native_group_norm"


def test_statistics_come_back_as_a_variance() -> None:
    """torch returns rstd; the backend converts it to a variance, as the reference has it."""
    report = assert_matches_reference("torch", "layer_norm", "float64", (3, 8), normalized_shape=8)
    native = {c.quantity for c in report.checks if c.candidate == "torch.native_layer_norm"}
    assert native == {"output", "mean", "rstd", "var"}


@pytest.mark.parametrize(
    ("eps", "rstd", "dtype"),
    [(-1.0, "nan", np.float32), (1e300, "0.0", np.float32), (1e16, "0.0", np.float16)],
)
def test_no_variance_is_derived_from_an_rstd_that_stands_for_none(
    eps: float, rstd: str, dtype: type
) -> None:
    # var + eps < 0 makes rstd NaN; an eps of 1e300 makes float32's rstd 0 (1 / inf), one of
    # 1e16 float16's: none gives a variance back, and a derived NaN or inf would fail torch
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(dtype)
    report = lncheck.compare(x, "layer_norm", normalized_shape=4, eps=eps, equal_nan=True)
    native = {c.quantity: c for c in report.checks if c.candidate == "torch.native_layer_norm"}
    assert set(native) == {"output", "mean", "rstd"}
    assert report.passed, [c.explanation for c in report.checks if not c.passed]
    assert str(native["rstd"].worst_actual) == rstd


# --- defaults torch decides --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "eps"),
    [("float64", 2.0**-52), ("float32", 2.0**-23), ("float16", 2.0**-23), ("bfloat16", 2.0**-23)],
)
def test_rms_norm_default_eps_is_measured_from_torch(dtype: str, eps: float) -> None:
    assert runner.default("rms_norm", "eps", dtype) == eps
    case = make_case(np.ones((2, 4)), "rms_norm", normalized_shape=(4,), dtype=dtype)
    case = pipeline.resolved(case, get_backend("torch"))
    assert case.spec.eps == eps and case.settings["eps"] is None
    assert case.spec.options["eps"] is None  # torch's paths get None: its own default
    assert any(f"{eps:.6g}" in note for note in case.notes)


# --- torch's own identities ---------------------------------------------------------------------


def test_torch_functional_with_weight_equals_module() -> None:
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    module = torch.nn.LayerNorm((4, 5))
    with torch.no_grad():
        module.weight.normal_()
        module.bias.normal_()
        assert torch.equal(
            module(x), torch.nn.functional.layer_norm(x, (4, 5), module.weight, module.bias)
        )
        no_affine = torch.nn.LayerNorm((4, 5), elementwise_affine=False)
        assert torch.equal(no_affine(x), torch.nn.functional.layer_norm(x, (4, 5)))


# --- what torch cannot run ----------------------------------------------------------------------


def test_backend_errors_are_reported_not_raised() -> None:
    with pytest.raises(BackendUnavailable, match="cannot run this case in float16 on cpu"):
        x = np.ones((2, 4, 3, 3))
        pipeline.check_case(make_case(x, "local_response_norm", size=3, dtype="float16"))


# --- devices ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "CPU", ""])
def test_device_names_torch_does_not_know(device: str) -> None:
    with pytest.raises(InputError, match=r"^device must be cpu, cuda, cuda:N or mps, got "):
        torch_backend.check_device(device, "device")
    with pytest.raises(InputError, match=r"^vs_device= must be cpu, cuda, cuda:N or mps"):
        pipeline.check_case(make_case(np.ones((2, 4)), normalized_shape=4, vs_device=device))


def test_unavailable_device_is_exit_2() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "lncheck: error: --device cuda: torch reports no CUDA device on this machine"
    )
    result = cli.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--device", "tpu"]
    )
    assert result.exit_code == 2 and "--device must be cpu, cuda, cuda:N or mps" in result.stderr


def test_vs_device_adds_candidates() -> None:
    result = cli.invoke(
        app,
        ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--vs-device", "cpu", "--json"],
    )
    names = {c["candidate"] for c in json.loads(result.stdout)["checks"]}
    assert {"torch.nn.LayerNorm", "torch.nn.LayerNorm@cpu"} <= names


def test_environment_names_the_device() -> None:
    env = torch_backend.environment("cpu")
    assert env["backend"] == "torch" and env["torch"] == torch.__version__
    assert env["device"] == "cpu" and env["threads"] == torch.get_num_threads()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_against_cpu_and_reference() -> None:
    result = cli.invoke(
        app,
        [
            "compare",
            str(EXAMPLES / "image.npy"),
            "--op",
            "group_norm",
            "--groups",
            "2",
            "--device",
            "cuda",
            "--vs-device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    names = {c["candidate"] for c in json.loads(result.stdout)["checks"]}
    assert "torch.nn.GroupNorm@cuda" in names and "torch.nn.GroupNorm@cpu" in names


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_paths_pass_the_automatic_tolerance(dtype: str) -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 64, 256)).astype(np.float32)
    case = make_case(x, normalized_shape=256, dtype=dtype, device="cuda", vs_device="cpu")
    report = pipeline.check_case(case)
    assert report.passed, [c.message() for c in report.failures]
    assert {c.candidate for c in report.checks} >= {
        "torch.nn.LayerNorm@cuda",
        "torch.nn.LayerNorm@cpu",
    }


# --- .pt files ----------------------------------------------------------------------------------


def test_pt_file_of_named_tensors(tmp_path: Path) -> None:
    path = tmp_path / "case.pt"
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7
    torch.save({"input": x.to(torch.bfloat16), "weight": torch.ones(3, dtype=torch.float16)}, path)
    arrays, names = files.load_tensors(path)
    assert names == {"input": "bfloat16", "weight": "float16"}
    assert arrays["input"].dtype == np.float32  # bfloat16 held exactly in float32
    np.testing.assert_array_equal(arrays["input"], x.to(torch.bfloat16).float().numpy())
    assert arrays["weight"].dtype == np.float16
    loaded = files.read(path, limit=1 << 20)
    assert loaded.dtype_names == names and set(loaded.arrays) == {"input", "weight"}


def test_pt_file_of_one_tensor_is_the_input(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save(torch.ones(2, 4, dtype=torch.float64), path)
    arrays, names = files.load_tensors(path)
    assert names == {"input": "float64"} and arrays["input"].shape == (2, 4)


def test_pt_file_that_is_not_tensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    torch.save({"input": [1.0, 2.0]}, path)
    with pytest.raises(InputError, match=r"^entry 'input' holds 'list'; expected tensors"):
        files.load_tensors(path)
    torch.save({1: torch.ones(2)}, path)  # it read "entry 1 holds 'Tensor'"
    with pytest.raises(InputError, match=r"^has a key 1 of type 'int'; expected tensors under"):
        files.load_tensors(path)
    torch.save({"input": torch.ones(2, dtype=torch.complex64)}, path)
    with pytest.raises(InputError, match=r"tensor 'input' is complex \(torch.complex64\)"):
        files.load_tensors(path)


def test_pt_file_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.pt"
    torch.save(torch.ones(1000), path)
    size = path.stat().st_size
    with pytest.raises(InputError, match=rf"^is {size} bytes, over the max_bytes limit 100$"):
        files.read(path, limit=100)


def test_to_numpy_leaves_the_graph_and_the_device() -> None:
    t = torch.ones(3, requires_grad=True) * 2
    a = files.to_numpy(t)
    assert isinstance(a, np.ndarray) and a.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_cpu_batch_norm_keeps_its_statistics_in_the_input_dtype(dtype: str) -> None:
    """The finding behind the ``low_precision`` class of torch's reduced-precision CPU
    BatchNorm: its output is, bit for bit, ``(x - m) * r`` with the batch mean ``m`` and rstd
    ``r`` rounded to the input dtype first (float32 arithmetic, one final rounding)."""
    from lncheck.dtypes import round_to

    x = np.random.default_rng(0).normal(10, 1, size=(16, 8, 6, 6)).astype(np.float32)
    x = round_to(x, dtype)  # type: ignore[arg-type]
    t = torch.from_numpy(np.asarray(x)).to(getattr(torch, dtype))
    y = F.batch_norm(t, None, None, training=True, eps=1e-5).float().numpy()
    xd = np.asarray(x, dtype=np.float64)
    mean = xd.mean(axis=(0, 2, 3), keepdims=True)
    rstd = 1 / np.sqrt(xd.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    kept = (xd - round_to(mean, dtype)) * round_to(rstd, dtype)  # type: ignore[arg-type]
    if dtype == "float16":  # bfloat16 rounds its intermediates differently again
        assert np.array_equal(y, round_to(kept, dtype))  # type: ignore[arg-type]
    exact = round_to((xd - mean) * rstd, dtype)  # type: ignore[arg-type]
    assert not np.array_equal(y, exact)
    report = lncheck.compare(x, "batch_norm", dtype=dtype)
    assert not report.passed
    assert {c.accuracy_class for c in report.checks if c.quantity == "output"} == {"low_precision"}


def test_a_zero_centred_weight_is_composed_as_gemma_does() -> None:
    # torch has no such module: each path runs without weight in float32, then multiplies by
    # (1 + w) computed in float32, and casts to bfloat16 once, as Gemma's RMSNorm does
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.standard_normal((4, 64)).astype(np.float32)).bfloat16()
    w = torch.from_numpy(rng.normal(0, 0.5, 64).astype(np.float32)).bfloat16()
    w[3] = 15.8125  # 1 + w rounds in bfloat16, not in float32
    case = make_case(x, "rms_norm", normalized_shape=64, eps=1e-6, weight=w, weight_offset=1)
    xf = x.float()
    gemma = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + w.float())
    gemma = gemma.bfloat16().float().numpy()
    results = {r.candidate: r for r in runner.run(case, "cpu")}
    assert set(results) == {
        "torch.nn.RMSNorm",
        "torch.nn.functional.rms_norm",
        "torch._fused_rms_norm",
    }
    for result in results.values():
        np.testing.assert_allclose(result.quantities["output"], gemma, rtol=2**-8, atol=0)
    report = pipeline.check_case(case)
    assert report.passed, [c.message() for c in report.failures]


def test_gradients_flow_through_the_offset_weight() -> None:
    x = np.random.default_rng(3).standard_normal((3, 8))
    w = np.random.default_rng(4).normal(0, 0.3, 8)
    report = pipeline.check_case(
        make_case(x, normalized_shape=8, weight=w, weight_offset=1.0, dtype="float64", grad=True)
    )
    grads = {(c.candidate, c.quantity): c.passed for c in report.checks if "grad" in c.quantity}
    assert grads[("torch.nn.LayerNorm", "grad_weight")] and all(grads.values())
