"""Large inputs are checked chunk by chunk: the verdicts and metrics must not change."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lncheck.io import case_from_arrays
from lncheck.layers import Layer
from lncheck.runner import check_case

CASES = [
    (Layer("layer_norm", normalized_shape=(32,)), (6, 40, 32)),
    (Layer("layer_norm", normalized_shape=(8, 4)), (50, 8, 4)),
    (Layer("rms_norm", normalized_shape=(64,)), (300, 64)),
    (Layer("group_norm", groups=4), (37, 8, 5, 5)),
    (Layer("group_norm", groups=2, channel_axis=-1), (20, 5, 5, 8)),
    (Layer("instance_norm", affine=True), (30, 3, 7, 7)),
    (Layer("local_response_norm", size=3), (25, 6, 4, 4)),
    (Layer("layer_norm", axes=(1, 3), activation="silu"), (40, 6, 3, 5)),
]


def _key(report):  # type: ignore[no-untyped-def]
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


@pytest.mark.parametrize(
    ("layer", "shape"), CASES, ids=lambda v: v.op if isinstance(v, Layer) else str(v)
)
def test_chunked_equals_whole(layer: Layer, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.5, size=shape).astype(np.float32)
    case = case_from_arrays(x, layer, dtype="float32")
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
    layer = Layer("layer_norm", normalized_shape=(64,))
    good = check_case(case_from_arrays(x, layer, dtype="float64"), chunk_elements=None)
    y = np.asarray(good.small.get("torch.nn.LayerNorm", np.zeros(0)))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    bad = ref.copy()
    bad[321, 17] += 1e-3
    case = case_from_arrays(x, layer, dtype="float32", expected=bad.astype(np.float32))
    whole = check_case(case, chunk_elements=None, backend=None)
    chunked = check_case(replace(case), chunk_elements=1000, backend=None)
    (w,), (c,) = whole.checks, chunked.checks
    assert not w.passed and not c.passed and y.size == 0
    assert w.worst_index == c.worst_index == (321, 17)
    assert w.mismatched == c.mismatched == 1


def test_batch_norm_is_never_chunked() -> None:
    x = np.random.default_rng(2).standard_normal((400, 8)).astype(np.float32)
    report = check_case(
        case_from_arrays(x, Layer("batch_norm"), dtype="float32"), chunk_elements=100
    )
    assert not any("checked in chunks" in n for n in report.header.notes)
    assert report.passed


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise RuntimeError("no RssFile")


@pytest.mark.skipif(
    not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc"
)
def test_checked_pages_are_handed_back(tmp_path: Path) -> None:
    from lncheck.io import release_pages

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
    assert chunked.exit_code == whole.exit_code == 0
