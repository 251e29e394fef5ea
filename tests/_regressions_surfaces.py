"""Each test here fired on a defect found in review, and guards its fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lncheck
from lncheck.blocks import GroupLayout
from lncheck.cli import app
from lncheck.comparison import compare
from lncheck.errors import InputError
from lncheck.io import case_from_arrays
from lncheck.layers import Layer
from lncheck.runner import BaselineCheck, check_case

runner = CliRunner()


def test_json_with_an_unbounded_tolerance_is_valid_json() -> None:
    # eps=0 on a constant row: 0 / 0, and a conditioning (and so a tolerance) of infinity
    result = runner.invoke(
        app, ["compare", "-", "--shape", "4", "--eps", "0", "--json"], input="[[1,1,1,1]]"
    )
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert all(c["nan_expected"] == 4 for c in doc["checks"] if c["quantity"] == "output")


def test_big_endian_float64_is_computed_in_float64(tmp_path: Path) -> None:
    path = tmp_path / "be.npy"
    np.save(path, np.random.default_rng(0).standard_normal((3, 4)).astype(">f8"))
    doc = json.loads(runner.invoke(app, ["compare", str(path), "--shape", "4", "--json"]).stdout)
    assert (doc["dtype"], doc["input_dtype"], doc["notes"]) == ("float64", "float64", [])


def test_a_nan_group_is_shown_among_the_worst() -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    x[10, 3] = np.nan
    for chunk in (None, 64):
        report = check_case(
            case_from_arrays(x, Layer("layer_norm", normalized_shape=(8,))), chunk_elements=chunk
        )
        assert report.stats is not None
        groups = [row.group for row in report.stats.rows]
        assert (10,) in groups and groups[:3] == [(0,), (1,), (2,)] and len(groups) == 8


def test_identical_nans_are_no_drift() -> None:
    x = np.ones((2, 4), np.float32)
    case = case_from_arrays(x, Layer("layer_norm", normalized_shape=(4,), eps=0.0))
    recorded = {("torch.nn.LayerNorm", "output"): np.full((2, 4), np.nan, np.float32)}
    report = check_case(case, baseline=BaselineCheck(recorded, strict=True))
    drift = [c for c in report.checks if c.kind == "baseline" and c.note is None]
    assert len(drift) == 1 and drift[0].passed
    # the rest were never recorded: reported, and failing the strict run
    missing = [c for c in report.checks if c.note == "not in the baseline"]
    assert missing and not any(c.passed for c in missing) and not report.passed


def test_a_bfloat16_tensor_is_checked_in_bfloat16() -> None:
    import torch

    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    report = lncheck.compare(x, normalized_shape=8)
    assert (report.header.dtype, report.header.input_dtype) == ("bfloat16", "bfloat16")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ("random = {shape = [2, 4], std = -1.0}", "key 'random.std' must be 0 or more"),
        ("random = {shape = [2, 4], seed = -3}", "key 'random.seed' must be 0 or more"),
        ('random = {shape = [2, 4], dist = "uniform", low = -1e308, high = 1e308}', "low < high"),
        ("random = {shape = [2, 4]}\nseed = -1\ngrad = true", "--seed must be 0 or more"),
        ('random = {shape = [2, 4]}\ndevice = "tpu"', "--device must be cpu, cuda, cuda:N or mps"),
    ],
)
def test_suite_values_checked_before_running(tmp_path: Path, body: str, phrase: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'[[case]]\nname = "a"\nshape = [4]\n{body}\n')
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert phrase in result.stderr and "case 'a'" in result.stderr


def test_a_case_input_replaces_a_default_random(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32) + np.arange(4))
    path = tmp_path / "s.toml"
    path.write_text(
        "[defaults]\nrandom = {shape = [3, 4]}\nshape = [4]\n"
        '[[case]]\nname = "file"\ninput = "x.npy"\n'
        '[[case]]\nname = "generated"\n'
    )
    report = lncheck.run_suite(path)
    shapes = {r.name: r.report.header.input_shape for r in report.results if r.report}
    assert shapes == {"file": (2, 4), "generated": (3, 4)}


def test_baseline_meta_must_be_an_object(tmp_path: Path) -> None:
    golden = tmp_path / "g.npz"
    np.savez(golden, __meta__=np.array(json.dumps([1, 2])))
    result = runner.invoke(
        app,
        [
            "run",
            str(Path(__file__).parent.parent / "examples" / "suite.toml"),
            "-k",
            "rms_norm",
            "--baseline",
            str(golden),
        ],
    )
    assert result.exit_code == 2 and "is not a JSON object" in result.stderr


@pytest.mark.parametrize("values", [["-1", "0"], ["nan", "0"], ["0", "-2"]])
def test_baseline_tolerances_are_checked(values: list[str]) -> None:
    suite = str(Path(__file__).parent.parent / "examples" / "suite.toml")
    result = runner.invoke(
        app, ["run", suite, "--baseline-rtol", values[0], "--baseline-atol", values[1]]
    )
    assert result.exit_code == 2 and "must be a finite number >= 0" in result.stderr


def test_a_failing_case_reports_its_worst_check(tmp_path: Path) -> None:
    """Torch's paths fail first (a tolerance of 1e-9 on float32), the expected output far worse."""
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    ref[3, 7] += 1.0
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", ref.astype(np.float32))
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nname = "a"\ninput = "x.npy"\nshape = [8]\nexpected = "y.npy"\n'
        "rtol = 1e-9\natol = 1e-9\n"
    )
    (result,) = lncheck.run_suite(path).results
    assert result.status == "fail" and result.report is not None
    assert result.report.failures[0].candidate == "torch.nn.LayerNorm"
    assert result.message is not None and result.message.startswith("expected output")


# --- second adversarial review --------------------------------------------------------------


def test_a_single_element_input_with_gradients_runs() -> None:
    # a per-element atol of shape (1, 1) was taken for a per-group one
    report = lncheck.compare(np.array([[0.5]]), normalized_shape=1, grad=True, dtype="float64")
    grads = [c for c in report.checks if c.quantity.startswith("grad")]
    assert grads and all(c.passed for c in grads)


def test_plot_with_an_unknown_extension_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = runner.invoke(
        app, ["compare", "-", "--shape", "2", "--plot", str(tmp_path / "x.xyz")], input="[[1,2]]"
    )
    assert result.exit_code == 2 and "--plot" in result.stderr and "xyz" in result.stderr


@pytest.mark.parametrize(
    ("call", "phrase"),
    [
        (lambda: lncheck.check(None, np.ones((1, 4)), normalized_shape=4), "nothing to check"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, backend=None), "nothing"),
        (lambda: lncheck.compare([[1.0, 2.0], [3.0]], normalized_shape=2), "input"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4.0), "integers"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=True), "integers"),
        (lambda: lncheck.compare(np.ones((2, 4)), "group_norm", groups=2.0), "--groups"),
        (lambda: lncheck.compare(np.ones((2, 4)), "group_norm", groups=True), "--groups"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, eps="1e-5"), "--eps"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, affine="no"), "--affine"),
        (lambda: lncheck.compare(np.ones((1, 4)), normalized_shape=4, activation=1), "activ"),
        (lambda: lncheck.run_suite("examples/suite.toml", shard=(4, 4)), "shard"),
        (lambda: lncheck.run_suite("examples/suite.toml", shard=(0.0, 2)), "shard"),
    ],
)
def test_bad_api_arguments_are_input_errors(call, phrase: str) -> None:  # type: ignore[no-untyped-def]
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


def test_a_meta_tensor_is_an_input_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="input"):
        lncheck.compare(torch.ones(2, 4, device="meta"), normalized_shape=4)


def test_duplicate_json_keys_are_an_input_error() -> None:
    text = '{"data": [[1, 2]], "data": [[3, 4]]}'
    result = runner.invoke(app, ["compare", "-", "--shape", "2"], input=text)
    assert result.exit_code == 2 and "'data' twice" in result.stderr


def test_duplicate_npz_members_are_an_input_error(tmp_path: Path) -> None:
    import io
    import zipfile

    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for value in (1.0, 2.0):
            buffer = io.BytesIO()
            np.save(buffer, np.full((1, 2), value))
            archive.writestr("input.npy", buffer.getvalue())
    result = runner.invoke(app, ["compare", str(path), "--shape", "2"])
    assert result.exit_code == 2 and "two arrays named 'input'" in result.stderr


def test_an_empty_input_path_is_a_user_error() -> None:
    result = runner.invoke(app, ["compare", "", "--shape", "2"])
    assert result.exit_code == 2 and "no input file given" in result.stderr


def test_suite_case_names_must_be_printable(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('[[case]]\nname = "a\\u0007b"\nrandom = {shape = [2, 4]}\nshape = [4]\n')
    result = runner.invoke(app, ["run", str(suite)])
    assert result.exit_code == 2 and "printable" in result.stderr


def test_huge_random_std_in_float32_warns_nothing(tmp_path: Path) -> None:
    from lncheck.suite import RandomInput

    with np.errstate(all="raise"):
        x = RandomInput(shape=(2, 2), std=1e300).generate("float32")
    assert np.isinf(x).any()


def test_baseline_tolerances_are_validated_in_the_api() -> None:
    with pytest.raises(InputError, match="--baseline-rtol"):
        lncheck.run_suite("examples/suite.toml", baseline_rtol=-1.0, baseline_atol=0.0)
    with pytest.raises(InputError, match="--baseline-atol"):
        lncheck.run_suite("examples/suite.toml", baseline_atol=float("nan"))


def test_a_broken_worker_pool_finishes_the_suite_in_process(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise BrokenProcessPool("a worker died")

    serial = lncheck.run_suite("examples/suite.toml", pattern="layer")
    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Broken)
    report = lncheck.run_suite("examples/suite.toml", jobs=2, pattern="layer")
    statuses = [(r.name, r.status) for r in report.results]
    assert len(statuses) > 1 and statuses == [(r.name, r.status) for r in serial.results]
