"""Golden baselines: recorded with ``lncheck baseline``, replayed with ``lncheck run
--baseline``: unchanged, drifted, from another machine, or not a baseline at all."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck.errors import InputError
from lncheck.suite.baseline import META, open_baseline

from ..cli.helpers import invoke
from .helpers import SUITE, write_suite


def _entries(baseline: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(baseline) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(baseline: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(baseline, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _perturb(baseline: Path, key: str, factor: float) -> None:
    """Rewrite one recorded array of a baseline, multiplied by ``factor``."""
    entries = _entries(baseline)
    array = np.load(io.BytesIO(entries[key]), allow_pickle=False)
    entries[key] = _npy((array * factor).astype(array.dtype))
    _rewrite(baseline, entries)


def test_baseline_unchanged_then_drifted(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    result = invoke("baseline", str(SUITE), "-o", str(golden), "-k", "layer_norm-last")
    assert result.exit_code == 0, result.output
    assert "recorded 2 cases" in result.stdout
    same = invoke(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--json",
        str(tmp_path / "a.json"),
    )
    assert same.exit_code == 0, same.output
    doc = json.loads((tmp_path / "a.json").read_text())
    kinds = [k for c in doc["cases"] for k in c["report"]["checks"] if k["kind"] == "baseline"]
    assert kinds and all(k["passed"] and k["max_abs_err"] == 0.0 for k in kinds)  # bitwise the same
    _perturb(golden, "layer_norm-last-dim/torch.nn.LayerNorm/output.npy", 1.0 + 2**-20)
    drifted = invoke(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--json",
        str(tmp_path / "b.json"),
    )
    assert drifted.exit_code == 0  # drift is reported, not a failure
    assert (
        "drift" in drifted.stdout
        and "torch.nn.LayerNorm output does not match the baseline" in drifted.stdout
    )
    doc = json.loads((tmp_path / "b.json").read_text())
    case = next(c for c in doc["cases"] if c["name"] == "layer_norm-last-dim")
    assert [(d["candidate"], d["quantity"]) for d in case["drift"]] == [
        ("torch.nn.LayerNorm", "output")
    ]
    strict = invoke(
        "run", str(SUITE), "-k", "layer_norm-last", "--baseline", str(golden), "--strict-baseline"
    )
    assert strict.exit_code == 1
    loose = invoke(
        "run",
        str(SUITE),
        "-k",
        "layer_norm-last",
        "--baseline",
        str(golden),
        "--strict-baseline",
        "--baseline-rtol",
        "1e-5",
        "--baseline-atol",
        "0",
    )
    assert loose.exit_code == 0, loose.output


def test_a_vs_device_case_replays_against_its_own_baseline(tmp_path: Path) -> None:
    """Recording once enumerated candidates apart from running: the ``@cpu`` copies of a
    ``vs_device`` case were never recorded, and a strict replay failed on them."""
    path = write_suite(
        tmp_path,
        '[[case]]\nname = "twice"\ninput = "x.npy"\nshape = [8]\nvs_device = "cpu"\n'
        '[[case]]\nname = "grads"\nrandom = {shape = [3, 8]}\nshape = [8]\nvs_device = "cpu"\n'
        "grad = true\n",
    )
    golden = tmp_path / "golden.npz"
    recorded = invoke("baseline", str(path), "-o", str(golden))
    assert recorded.exit_code == 0, recorded.output
    assert "recorded 2 cases" in recorded.stdout
    names = set(_entries(golden)) - {f"{META}.npy"}
    assert {
        "twice/torch.nn.LayerNorm@cpu/output.npy",
        "grads/torch.nn.LayerNorm@cpu/grad_input.npy",
    } <= names
    # every result on the case's device has its twin on vs_device, and nothing else is recorded
    on_device = [n.split("/") for n in names if "@cpu/" not in n]
    twins = {f"{case}/{candidate}@cpu/{quantity}" for case, candidate, quantity in on_device}
    assert len(on_device) == 6 + 15 and twins == names - {"/".join(n) for n in on_device}
    report = tmp_path / "r.json"
    result = invoke(
        "run", str(path), "--baseline", str(golden), "--strict-baseline", "--json", str(report)
    )
    assert result.exit_code == 0, result.output
    assert "not in the baseline" not in result.output
    doc = json.loads(report.read_text())
    checks = [k for c in doc["cases"] for k in c["report"]["checks"] if k["kind"] == "baseline"]
    candidates = {k["candidate"] for k in checks}
    assert {"torch.nn.LayerNorm", "torch.nn.LayerNorm@cpu"} <= candidates
    assert all(k["passed"] and k["note"] is None for k in checks)


def test_baseline_from_another_torch_is_noted(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(SUITE), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    entries = _entries(golden)
    meta = json.loads(str(np.load(io.BytesIO(entries[f"{META}.npy"]))[()]))
    meta["torch"], meta["device"] = "2.11.0+cu130", "NVIDIA H100 80GB HBM3"
    entries[f"{META}.npy"] = _npy(np.array(json.dumps(meta)))
    _rewrite(golden, entries)
    report = lncheck.run_suite(SUITE, pattern="rms_norm", baseline=golden)
    assert any("recorded with torch 2.11.0+cu130" in n for n in report.notes)
    assert any("recorded with device NVIDIA H100" in n for n in report.notes)


def test_baseline_meta_records_where_it_ran(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(SUITE), "-o", str(golden), "-k", "group_norm").exit_code == 0
    meta = open_baseline(golden).meta
    assert meta["backend"] == "torch" and meta["device"] and meta["created"]
    assert set(meta["cases"]) == {"group_norm", "group_norm-channels-last"}
    entry = meta["cases"]["group_norm"]
    assert {k: entry[k] for k in ("op", "dtype", "device")} == {
        "op": "group_norm",
        "dtype": "float32",
        "device": "cpu",
    }
    assert entry["torch"] == meta["torch"] and entry["created"] == meta["created"]
    # what the results depend on, relative to the suite file's folder
    assert entry["options"] == {
        "op": "group_norm",
        "num_groups": 2,
        "num_channels": 4,
        "eps": 1e-05,
        "affine": True,
        "channel_axis": 1,
        "dtype": "float32",
        "device": "cpu",
        "grad": False,
        "input": "image.npy",
        "input_shape": [2, 4, 3, 3],
    }


def test_not_a_baseline_is_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "fake.npz"
    np.savez(fake, a=np.ones(3))
    result = invoke("run", str(SUITE), "-k", "rms_norm", "--baseline", str(fake))
    assert result.exit_code == 2 and "not an lncheck baseline" in result.stderr


def test_baseline_meta_must_be_an_object(tmp_path: Path) -> None:
    golden = tmp_path / "g.npz"
    np.savez(golden, __meta__=np.array(json.dumps([1, 2])))
    result = invoke("run", str(SUITE), "-k", "rms_norm", "--baseline", str(golden))
    assert result.exit_code == 2 and "is not a JSON object" in result.stderr


@pytest.mark.parametrize("values", [["-1", "0"], ["nan", "0"], ["0", "-2"]])
def test_baseline_tolerances_are_checked(values: list[str]) -> None:
    result = invoke("run", str(SUITE), "--baseline-rtol", values[0], "--baseline-atol", values[1])
    assert result.exit_code == 2 and "must be a finite number >= 0" in result.stderr


def test_baseline_tolerances_are_validated_in_the_api() -> None:
    with pytest.raises(InputError, match="baseline_rtol="):
        lncheck.run_suite(SUITE, baseline_rtol=-1.0, baseline_atol=0.0)
    with pytest.raises(InputError, match="baseline_atol="):
        lncheck.run_suite(SUITE, baseline_atol=float("nan"))


def test_the_api_refuses_what_the_command_line_refuses(tmp_path: Path) -> None:
    # drift options without a baseline, half a tolerance, a value of the wrong kind: checked
    # before the baseline (which does not exist here) is opened, named as keywords
    golden = tmp_path / "g.npz"
    refused = [
        ({"baseline_rtol": 1e-3, "baseline_atol": 1e-3}, "baseline_rtol= is for drift from a "
         "baseline: give baseline= too"),
        ({"strict_baseline": True}, "strict_baseline= is for drift from a baseline"),
        ({"baseline": golden, "baseline_rtol": 1e-3}, "baseline_rtol= was given without "
         "baseline_atol=: give both or neither"),
        ({"baseline": golden, "baseline_rtol": "x", "baseline_atol": 0}, "baseline_rtol= must "
         "be a number, got 'x'"),
        ({"pattern": 5}, "pattern= must be a string, got 5"),
        ({"baseline": golden, "strict_baseline": "no"}, "strict_baseline= must be true or "
         "false, got 'no'"),  # a string that would read as true
        ({"fail_fast": 1}, "fail_fast= must be true or false, got 1"),
    ]  # fmt: skip
    for options, message in refused:
        with pytest.raises(InputError) as info:
            lncheck.run_suite(SUITE, **options)  # type: ignore[arg-type]
        assert str(info.value).startswith(message)
    # NumPy's numbers are numbers: they get as far as the (missing) baseline file
    with pytest.raises(InputError, match="no such file"):
        lncheck.run_suite(SUITE, baseline=golden, baseline_rtol=np.float32(1e-3),
                          baseline_atol=np.int64(0))  # fmt: skip


def test_an_unwritable_baseline_is_exit_2(tmp_path: Path) -> None:
    result = invoke("baseline", str(SUITE), "-o", str(tmp_path / "no" / "g.npz"), "-k", "rms")
    assert result.exit_code == 2
    assert f"-o {tmp_path / 'no' / 'g.npz'}: no such folder" in result.stderr  # as typed
    result = invoke("baseline", str(SUITE), "--output", str(tmp_path), "-k", "rms")
    assert f"--output {tmp_path}: is a folder" in result.stderr


def test_a_missing_baseline_is_no_such_file(tmp_path: Path) -> None:
    result = invoke("run", str(SUITE), "--baseline", str(tmp_path / "none.npz"))
    assert result.exit_code == 2
    assert f"--baseline {tmp_path / 'none.npz'}: no such file (write one with" in result.stderr
    # a file that is no .npz at all is named with the option too
    not_npz = str(SUITE.parent / "tokens.npy")
    result = invoke("run", str(SUITE), "--baseline", not_npz)
    assert result.stderr.startswith(f"lncheck: error: --baseline {not_npz}: is not a valid .npz")


def test_a_case_on_a_device_this_machine_lacks_is_named_when_recording(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    text = '[[case]]\nname = "gpu"\ninput = "x.npy"\nshape = [8]\ndevice = "cuda"\n'
    result = invoke("baseline", str(write_suite(tmp_path, text)), "-o", str(tmp_path / "g.npz"))
    assert result.exit_code == 2
    assert "case 'gpu': key 'device' cuda: torch reports no CUDA device" in result.stderr
    assert not (tmp_path / "g.npz").exists()


def _edit_meta(golden: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    entries = _entries(golden)
    meta = json.loads(str(np.load(io.BytesIO(entries[f"{META}.npy"]))[()]))
    edit(meta)
    entries[f"{META}.npy"] = _npy(np.array(json.dumps(meta)))
    _rewrite(golden, entries)


def _as_list(meta: dict[str, Any]) -> None:
    meta["cases"] = list(meta["cases"])


def _options_text(meta: dict[str, Any]) -> None:
    meta["cases"]["rms_norm"]["options"] = "eps=1e-5"


def _case_left_out(meta: dict[str, Any]) -> None:
    del meta["cases"]["rms_norm"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_as_list, "its __meta__ 'cases' is not each case's options and digests"),
        (_options_text, "its __meta__ 'cases' is not each case's options and digests"),
        (_case_left_out, "entry 'rms_norm/"),
    ],
)
def test_a_hand_edited_baseline_meta_is_refused_before_any_case_runs(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    # a list of cases ran every case as "not in the baseline"; options given as text skipped
    # the check of changed options; arrays of an unrecorded case read as never recorded
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(SUITE), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    _edit_meta(golden, edit)
    result = invoke("run", str(SUITE), "-k", "rms_norm", "--baseline", str(golden))
    assert result.exit_code == 2 and f"--baseline {golden}: " in result.stderr
    assert message in result.stderr


def test_a_baseline_that_records_none_of_the_cases_run_says_so(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(SUITE), "-o", str(golden), "-k", "rms_norm").exit_code == 0
    report = lncheck.run_suite(SUITE, pattern="group_norm", baseline=golden)
    assert "the baseline records none of the 2 cases run: nothing was compared with it" in (
        report.notes
    )
    one = lncheck.run_suite(SUITE, pattern="group_norm-channels-last", baseline=golden)
    assert "the baseline records none of the case run: nothing was compared with it" in one.notes
    mixed = lncheck.run_suite(SUITE, pattern="norm", baseline=golden)
    assert not any("records none" in n for n in mixed.notes)


@pytest.mark.parametrize("command", ["run", "baseline"])
def test_a_baseline_that_is_a_device_is_refused_at_once(tmp_path: Path, command: str) -> None:
    # /dev/zero behind an .npz name: zipfile read it whole (killed by the kernel at 24 GB)
    zero = tmp_path / "zero.npz"
    zero.symlink_to("/dev/zero")
    suite = write_suite(tmp_path, '[[case]]\nname = "c1"\ninput = "x.npy"\nshape = [8]\n')
    option = "--baseline" if command == "run" else "-o"
    result = invoke(command, str(suite), option, str(zero))
    assert result.exit_code == 2, result.output
    assert "is not a .npz file (a zip archive) (it does not start like one)" in result.stderr


def test_a_baseline_entry_of_another_shape_is_an_error_not_drift(tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(SUITE), "-o", str(golden), "-k", "layer_norm-last").exit_code == 0
    entries = _entries(golden)
    key = "layer_norm-last-dim/torch.nn.LayerNorm/output.npy"
    array = np.load(io.BytesIO(entries[key]), allow_pickle=False)
    entries[key] = _npy(array[:1])  # truncated: no run of this input makes it
    _rewrite(golden, entries)
    report = lncheck.run_suite(SUITE, pattern="layer_norm-last-dim", baseline=golden)
    (result,) = report.results
    assert result.status == "error" and report.exit_status == 2
    assert result.message is not None
    assert result.message.startswith(
        f"the baseline's torch.nn.LayerNorm output has shape (1, {array.shape[1]}"
    )
    assert "this run's" in result.message and "recorded for another input" in result.message
