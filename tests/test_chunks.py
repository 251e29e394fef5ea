"""Large inputs are checked chunk by chunk: the verdicts and metrics must not change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lncheck import chunks
from lncheck.chunks import CHUNK_ELEMENTS, release_pages, units
from lncheck.pipeline import check_case
from lncheck.report import Report

from .backends.test_conformance import spec_of
from .support import make_case

CASES: list[tuple[str, tuple[int, ...], dict[str, Any]]] = [
    ("layer_norm", (6, 40, 32), {"normalized_shape": (32,)}),
    ("layer_norm", (50, 8, 4), {"normalized_shape": (8, 4)}),
    ("rms_norm", (300, 64), {"normalized_shape": (64,)}),
    ("group_norm", (37, 8, 5, 5), {"groups": 4}),
    ("group_norm", (20, 5, 5, 8), {"groups": 2, "channel_axis": -1}),
    ("instance_norm", (30, 3, 7, 7), {"affine": True}),
    ("local_response_norm", (25, 6, 4, 4), {"size": 3}),
    ("layer_norm", (40, 6, 3, 5), {"axes": (1, 3), "activation": "silu"}),
]


def _key(report: Report) -> list[Any]:
    return sorted(
        (
            c.candidate,
            c.quantity,
            c.passed,
            c.total,
            c.mismatched,
            c.max_abs_err,
            c.worst_index,
            c.histogram,
            c.max_ulp_err,
            c.tolerance_used,
        )
        for c in report.checks
    )


@pytest.mark.parametrize(("op", "shape", "options"), CASES, ids=lambda v: str(v))
def test_chunked_equals_whole(op: str, shape: tuple[int, ...], options: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.5, size=shape).astype(np.float32)
    case = make_case(x, op, dtype="float32", **options)
    whole = check_case(case, chunk_elements=None)
    chunked = check_case(case, chunk_elements=500)
    assert any("checked in chunks" in n for n in chunked.header.notes)
    assert not any("checked in chunks" in n for n in whole.header.notes)
    assert _key(whole) == _key(chunked)
    if whole.stats is not None:
        assert chunked.stats is not None
        assert [r.group for r in whole.stats.rows][:3] == [r.group for r in chunked.stats.rows][:3]


def test_chunked_failure_names_the_same_worst_element() -> None:
    x = np.random.default_rng(1).standard_normal((400, 64)).astype(np.float32)
    good = check_case(make_case(x, normalized_shape=(64,), dtype="float64"), chunk_elements=None)
    y = np.asarray(good.small.get("torch.nn.LayerNorm", np.zeros(0)))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    bad = ref.copy()
    bad[321, 17] += 1e-3
    case = make_case(x, normalized_shape=(64,), dtype="float32", expected=bad.astype(np.float32))
    whole = check_case(case, chunk_elements=None, backend=None)
    chunked = check_case(case.with_(), chunk_elements=1000, backend=None)
    (w,), (c,) = whole.checks, chunked.checks
    assert not w.passed and not c.passed and y.size == 0
    assert w.worst_index == c.worst_index == (321, 17)
    assert w.mismatched == c.mismatched == 1


def test_batch_norm_is_never_chunked() -> None:
    x = np.random.default_rng(2).standard_normal((400, 8)).astype(np.float32)
    report = check_case(make_case(x, "batch_norm", dtype="float32"), chunk_elements=100)
    assert not any("checked in chunks" in n for n in report.header.notes)
    assert report.passed


def test_a_lone_last_sample_joins_the_previous_chunk() -> None:
    x = np.random.default_rng(0).standard_normal((21, 2)).astype(np.float32)
    report = check_case(make_case(x, "group_norm", groups=2), chunk_elements=8)
    assert report.passed and any("chunks" in n for n in report.header.notes)
    parts = units(make_case(x, "group_norm", groups=2), 8)
    sizes = [unit.x.shape[0] for _, unit in parts.parts]
    assert sizes == [4, 4, 4, 4, 5]  # 21 = 4 + 4 + 4 + 4 + 4 + 1: the lone one joins the last


def test_how_each_spec_splits() -> None:
    assert chunks.mode(spec_of("layer_norm", (8, 4, 5), normalized_shape=(5,))) == "rows"
    assert chunks.mode(spec_of("rms_norm", (8, 4, 5), normalized_shape=(4, 5))) == "rows"
    assert chunks.mode(spec_of("layer_norm", (8, 4, 5), axes=(1,))) == "batch"
    assert chunks.mode(spec_of("group_norm", (8, 4, 5), groups=2)) == "batch"
    assert chunks.mode(spec_of("instance_norm", (8, 4, 5))) == "batch"
    assert chunks.mode(spec_of("local_response_norm", (8, 4, 5), size=3)) == "batch"
    assert chunks.mode(spec_of("layer_norm", (8, 4, 5), axes=(0,))) is None  # over the batch
    assert chunks.mode(spec_of("batch_norm", (8, 4, 5))) is None  # running statistics
    eval_spec = spec_of("instance_norm", (8, 4, 5), track_running_stats=True, training=False)
    assert chunks.mode(eval_spec) == "batch"


def test_a_chunk_has_a_spec_of_its_own() -> None:
    spec = spec_of("layer_norm", (8, 4, 5), normalized_shape=(5,))
    part = chunks.restricted(spec, "rows", (10, 5))
    assert part.input_shape == part.view_shape == (10, 5)
    assert part.reduce_axes == (1,) and part.param_axes == (1,) and part.groups == 10
    grouped = chunks.restricted(spec_of("group_norm", (8, 4, 5), groups=2), "batch", (3, 4, 5))
    assert grouped.input_shape == (3, 4, 5) and grouped.view_shape == (3, 2, 2, 5)


def test_small_inputs_and_gradients_are_never_chunked() -> None:
    x = np.zeros((4, 8), np.float32)
    assert not units(make_case(x, normalized_shape=8), CHUNK_ELEMENTS).chunked
    big = np.zeros((1000, 8), np.float32)
    assert units(make_case(big, normalized_shape=8), 100).chunked
    assert not units(make_case(big, normalized_shape=8, grad=True), 100).chunked
    assert not units(make_case(big, normalized_shape=8), None).chunked


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise RuntimeError("no RssFile")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_checked_pages_are_handed_back(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    np.save(path, np.ones((4096, 1024), np.float32))  # 16 MiB
    x = np.load(path, mmap_mode="r")
    before = _rss_file_kib()
    assert float(x.sum()) == 4096 * 1024
    touched = _rss_file_kib()
    release_pages(x[: x.shape[0] // 2], x)
    released = _rss_file_kib()
    assert touched - before > 12_000  # the pages really were mapped in
    assert touched - released > 6_000  # and half of them handed back
    assert float(x[:10].sum()) == 10 * 1024  # the data is still there, from the file
    writable = np.ones(1000)
    release_pages(writable, writable)  # not a read-only mapping: left alone
    assert writable.sum() == 1000


def test_no_chunks_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lncheck.cli import app

    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).standard_normal((8200, 1024)).astype(np.float32))
    chunked = CliRunner().invoke(app, ["compare", str(path), "--shape", "1024", "--json"])
    whole = CliRunner().invoke(
        app, ["compare", str(path), "--shape", "1024", "--json", "--no-chunks"]
    )
    notes = [json.loads(r.stdout)["notes"] for r in (chunked, whole)]
    assert any("checked in chunks" in n for n in notes[0]) and notes[1] == []
    assert any("elements per backend call" in n for n in notes[0])
    assert chunked.exit_code == whole.exit_code == 0


def test_given_statistics_are_checked_chunk_by_chunk() -> None:
    # a bundle's output and per-row statistics are cut along the same rows as the input
    x = np.random.default_rng(4).standard_normal((400, 16)).astype(np.float32)
    xd = x.astype(np.float64)
    mean = xd.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    wrong = rstd.copy()
    wrong[321] *= 1.01
    bundle = {"output": ((xd - mean) * rstd).astype(np.float32), "mean": mean, "rstd": wrong}
    case = make_case(x, normalized_shape=16, expected=bundle)
    whole = check_case(case, chunk_elements=None, backend=None)
    chunked = check_case(case, chunk_elements=1000, backend=None)
    assert any("checked in chunks" in n for n in chunked.header.notes)
    key = {(c.quantity, c.passed, c.mismatched, c.worst_index) for c in whole.checks}
    assert key == {(c.quantity, c.passed, c.mismatched, c.worst_index) for c in chunked.checks}
    assert ("rstd", False, 1, (321,)) in key
    assert all(passed for quantity, passed, _, _ in key if quantity != "rstd")
