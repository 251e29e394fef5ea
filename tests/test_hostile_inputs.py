"""Hostile inputs, round two: malformed ``.npy`` headers (fuzzed), damaged ``.npz`` members,
oversized ``.pt`` tensors and records, devices and closed streams, files truncated while in
use. Each is exit 2 with one line naming the file (or a verdict, for a valid file), never an
internal error, a hang or a signal."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lncheck.errors import InputError
from lncheck.readers import _from_npy, read_npz

from .cli.helpers import assert_user_error, invoke
from .conftest import REPO


def npy(header: str, data: bytes = b"\0" * 64) -> bytes:
    """A version 1.0 ``.npy`` with ``header`` as its (possibly malformed) header text."""
    text = header.encode("latin1")
    pad = 16 - (10 + len(text) + 1) % 16
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body + data


def good_npy(shape: tuple[int, ...] = (2, 4)) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    return buffer.getvalue()


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patched_zip(change: Callable[[bytearray, int, int], None]) -> bytes:
    """A stored one-member ``.npz``, changed in place by ``change(data, local, central)``,
    given the offsets of the member's local and central headers."""
    data = bytearray(zipped({"input.npy": good_npy()}))
    change(data, 0, data.index(b"PK\x01\x02"))
    return bytes(data)


def _method(data: bytearray, local: int, central: int) -> None:
    data[local + 8 : local + 10] = data[central + 10 : central + 12] = struct.pack("<H", 99)


def _encrypted(data: bytearray, local: int, central: int) -> None:
    data[local + 6 : local + 8] = data[central + 8 : central + 10] = struct.pack("<H", 1)


def _empty_name(data: bytearray, local: int, central: int) -> None:
    """The member's name, 9 bytes, overwritten by nothing: its length fields say 0."""
    size = len(b"input.npy")
    del data[central + 46 : central + 46 + size]
    data[central + 28 : central + 30] = b"\0\0"
    del data[local + 30 : local + 30 + size]
    data[local + 26 : local + 28] = b"\0\0"
    end = data.index(b"PK\x05\x06")
    directory_size, directory_at = struct.unpack("<II", data[end + 12 : end + 20])
    data[end + 12 : end + 20] = struct.pack("<II", directory_size - size, directory_at - size)


def _flipped_deflate() -> bytes:
    data = bytearray(zipped({"input.npy": good_npy((16, 16))}, zipfile.ZIP_DEFLATED))
    data[60] ^= 0xFF  # inside the deflated stream
    return bytes(data)


def _changed_after_the_array() -> bytes:
    """An array followed by bytes NumPy ignores, one of them changed after the CRC was made."""
    data = bytearray(zipped({"input.npy": good_npy() + b"TRAILING"}))
    data[data.index(b"TRAILING")] = ord("X")
    return bytes(data)


F4 = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
MALFORMED: dict[str, tuple[bytes, str]] = {
    "token_error.npy": (npy("{'descr': '<f4', 'shape': ((( }"), "not a valid .npy file"),
    "unclosed_dict.npy": (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4)"), "valid"),
    "unclosed_string.npy": (npy(F4.replace("'<f4'", "'<f4") % "(2, 4)"), "valid"),
    "bool_dim.npy": (
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (True, 4), }"),
        "dimension True that is not a count",
    ),
    "negative_dim.npy": (
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-64, 8), }"),
        "dimension -64 that is not a count",
    ),
    "product_overflows.npy": (
        npy(F4 % "(0, 4611686018427387904, 4611686018427387904)", b""),
        "over the --max-bytes limit",
    ),
    "flipped_deflate.npz": (_flipped_deflate(), "Error -3 while decompressing"),
    "changed_after_array.npz": (_changed_after_the_array(), "Bad CRC-32"),
    "negative_dim_member.npz": (
        zipped({"input.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-64, 8), }")}),
        "member 'input.npy': not a valid .npy file",
    ),
    "unknown_method.npz": (patched_zip(_method), "member 'input.npy' is compressed with 99"),
    # zipfile inflates these whole on the first read, whatever size the member declares: a
    # 6 KB bzip2 member declaring 128 bytes took 11 GB of memory under --max-bytes 1000000
    "bzip2_member.npz": (
        zipped({"input.npy": good_npy()}, zipfile.ZIP_BZIP2),
        "member 'input.npy' is compressed with bzip2: only stored or deflated members are read",
    ),
    "lzma_member.npz": (
        zipped({"input.npy": good_npy()}, zipfile.ZIP_LZMA),
        "member 'input.npy' is compressed with lzma",
    ),
    "encrypted.npz": (patched_zip(_encrypted), "encrypted"),
    "empty_member_name.npz": (patched_zip(_empty_name), "member '' is not a .npy array"),
}  # fmt: skip


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_files_are_one_line_input_errors(name: str, tmp_path: Path) -> None:
    data, phrase = MALFORMED[name]
    path = tmp_path / name
    path.write_bytes(data)
    line = assert_user_error(invoke("compare", str(path), "--shape", "4"), str(path), phrase)
    assert "internal error" not in line


@settings(max_examples=300)
@given(st.text(alphabet="{}()[]'\":,<>fi48 TrueFalsdcpthshaoern-\n\\x", max_size=80))
def test_every_error_of_the_npy_header_parser_is_an_input_error(header: str) -> None:
    """Whatever NumPy's header parser raises on a header (TokenError, SyntaxError, ValueError,
    TypeError, MemoryError, ...), reading the file gives an array or an ``InputError``."""
    with contextlib.suppress(InputError):
        _from_npy(io.BytesIO(npy(header)), 1 << 20)


def test_a_valid_64_dimensional_input_gets_a_verdict(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    x = np.random.default_rng(0).standard_normal([1] * 62 + [2, 4]).astype(np.float32)
    np.save(path, x)
    result = invoke("compare", str(path), "--shape", "4")
    assert result.exit_code == 0, result.output
    assert "PASS: all 6 checks passed" in result.stdout


def test_every_npz_member_crc_is_checked_also_for_unread_members(tmp_path: Path) -> None:
    path = tmp_path / "b.npz"
    path.write_bytes(
        zipped({"__meta__.npy": good_npy(), "case/c/output.npy": good_npy() + b"TRAILING"})
    )
    data = bytearray(path.read_bytes())
    data[data.index(b"TRAILING")] = ord("X")
    path.write_bytes(bytes(data))
    read_npz(path, lambda name: name == "__meta__")  # the damaged member is not read
    with pytest.raises(InputError, match="Bad CRC-32"):
        read_npz(path, lambda name: name == "__meta__", verify_all=True)


# --- sizes: .pt tensors and records, standard input, devices ------------------------------


def test_pt_tensors_and_records_are_held_to_max_bytes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    expanded = tmp_path / "expanded.pt"  # 10^12 elements of one stored float, in 1.6 KB
    torch.save({"input": torch.zeros(1).expand(10**6, 10**6)}, expanded)
    assert expanded.stat().st_size < 4096
    result = invoke("compare", str(expanded), "--shape", "4")
    assert_user_error(result, "tensor 'input' has shape (1000000, 1000000)", "--max-bytes limit")
    plain = tmp_path / "plain.pt"
    torch.save({"input": torch.zeros(1000, 1000)}, plain)
    deflated = tmp_path / "deflated.pt"  # a 4 MB storage record in 4 KB
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(deflated, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert deflated.stat().st_size < 100_000
    result = invoke("compare", str(deflated), "--shape", "4", "--max-bytes", "100000")
    assert_user_error(result, "holds records of 4000", "over the --max-bytes limit 100000")
    bzipped = tmp_path / "bzipped.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bzipped, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_BZIP2)
    assert_user_error(invoke("compare", str(bzipped), "--shape", "4"), "is compressed with bzip2")
    nested = tmp_path / "nested.pt"
    with pytest.warns(UserWarning):
        torch.save(torch.nested.nested_tensor([torch.ones(2, 4), torch.ones(3, 4)]), nested)
    assert_user_error(invoke("compare", str(nested), "--shape", "4"), "a nested tensor")


def _process(
    *args: str, stdin: int | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lncheck", *args],
        stdin=stdin, input=input, capture_output=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_standard_input_is_read_up_to_the_limit_only() -> None:
    big = b"[" + b"1.0, " * 100_000 + b"1.0]"
    done = _process("compare", "-", "--shape", "4", "--max-bytes", "1000", input=big)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "lncheck: error: -: is more than 1000 bytes, over the --max-bytes limit"
    )
    with open("/dev/zero", "rb") as zero:  # never read to its end (it has none)
        done = _process("compare", "-", "--shape", "4", stdin=zero.fileno())
    assert done.returncode == 2 and b"is not JSON text (it holds NUL bytes)" in done.stderr


@pytest.mark.parametrize(
    ("name", "device", "phrase"),
    [
        ("zeros.json", "/dev/zero", "is not JSON text"),
        ("random.pt", "/dev/urandom", "is not a torch file"),
        ("random.npz", "/dev/urandom", "is not a .npz file"),
        ("zeros.npy", "/dev/zero", "is not a .npy file"),
    ],
)
def test_a_device_behind_a_file_name_is_refused_at_once(
    name: str, device: str, phrase: str, tmp_path: Path
) -> None:
    link = tmp_path / name
    link.symlink_to(device)
    done = _process("compare", str(link), "--shape", "4")
    assert done.returncode == 2, done.stderr
    assert phrase in done.stderr.decode() and done.stderr.count(b"\n") == 1


def test_a_pipe_is_read_not_mapped(tmp_path: Path) -> None:
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{REPO}/examples/tokens.npy' > '{fifo}'"])
    done = _process("compare", str(fifo), "--shape", "4")
    writer.wait(timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"PASS" in done.stdout


def test_a_closed_standard_input_is_an_input_error() -> None:
    code = (
        "import os, sys; os.close(0); sys.stdin = None; "
        "sys.argv = ['lncheck', 'compare', '-', '--shape', '4']; "
        "from lncheck.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "lncheck: error: -: standard input is closed: nothing to read\n"


def test_a_memory_mapped_input_truncated_meanwhile_is_an_input_error(tmp_path: Path) -> None:
    """Another process truncates the file after lncheck mapped it: without the size check
    each block makes, touching the lost pages would end lncheck with SIGBUS (exit 135)."""
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4096, 1024)).astype(np.float32))
    code = f"""
import os, sys
import lncheck.pipeline as pipeline
real = pipeline.check_case
def truncated_first(case, *args, **kwargs):
    os.truncate({str(path)!r}, 4096)  # as another process would, once the input is mapped
    return real(case, *args, **kwargs)
pipeline.check_case = truncated_first
sys.argv = ["lncheck", "compare", {str(path)!r}, "--shape", "1024"]
from lncheck.cli import main
main()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1
    assert f"lncheck: error: {path}: the file was truncated while being read" in done.stderr


def test_deeply_nested_suites_and_baseline_metadata_are_input_errors(tmp_path: Path) -> None:
    suite = tmp_path / "deep.toml"
    suite.write_text('[[case]]\nname = "a"\nrandom = ' + "{a = " * 2000 + "1" + "}" * 2000 + "\n")
    assert_user_error(invoke("run", str(suite)), f"{suite}: invalid TOML: nested too deeply")
    golden = tmp_path / "golden.npz"
    np.savez(golden, __meta__=np.array("[" * 100_000 + "]" * 100_000))
    result = invoke("run", str(REPO / "examples" / "suite.toml"), "--baseline", str(golden))
    assert_user_error(result, f"--baseline {golden}: its __meta__ entry is not a JSON object")


def test_an_infinite_running_mean_leaks_no_librarys_warning(tmp_path: Path) -> None:
    # eval mode computes no variance: its coefficient 0 times an infinite K was NumPy's
    # "invalid value encountered in multiply" on standard error
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((2, 4, 3)).astype("f4"))
    np.save(tmp_path / "rm.npy", np.array([1.0, np.inf, 1.0, 1.0], np.float32))
    np.save(tmp_path / "rv.npy", np.zeros(4, np.float32))
    result = invoke(
        "compare", str(tmp_path / "x.npy"), "--op", "batch_norm", "--eval", "-q",
        "--running-mean", str(tmp_path / "rm.npy"), "--running-var", str(tmp_path / "rv.npy"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
