"""Write tests/data/bad/: broken and hostile inputs, and MANIFEST.json saying what each must do.

    python scripts/make_bad_files.py

Every entry is run through `lncheck compare` by tests/test_hostile.py, which asserts the exit
status (2 for all but the few valid files), a one-line message naming the file and the
problem, no traceback, and that nothing was written anywhere (the pickles here would create
a file named PWNED if anything unpickled them).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad"


class Pwned:
    """Unpickling this creates a file named PWNED: proof that code ran."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, ("PWNED", "w"))


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def zip_with(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def lying_zip(name: str, declared: int) -> bytes:
    """A tiny zip whose central directory declares a member of ``declared`` bytes (zip64)."""
    payload = zlib.compress(npy_header((declared // 4,)), 9)[2:-4]  # raw deflate
    fname = name.encode()
    crc = zlib.crc32(b"")
    extra = struct.pack("<HHQQ", 1, 16, declared, len(payload))
    local = struct.pack(
        "<IHHHHHIIIHH",
        0x04034B50,
        45,
        0,
        8,
        0,
        0,
        crc,
        0xFFFFFFFF,
        0xFFFFFFFF,
        len(fname),
        len(extra),
    )
    local += fname + extra + payload
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            45,
            45,
            0,
            8,
            0,
            0,
            crc,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(fname),
            len(extra),
            0,
            0,
            0,
            0,
            0,
        )
        + fname
        + extra
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def honest_bomb(megabytes: int) -> bytes:
    """A real one: a .npy of zeros that deflates about 1000:1."""
    header = npy_header((megabytes * (1 << 18),))
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("input.npy", "w", force_zip64=True) as f,
    ):
        f.write(header)
        chunk = bytes(1 << 20)
        for _ in range(megabytes):
            f.write(chunk)
    return buffer.getvalue()


def torch_pickle() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"input": torch.ones(2, 4), "evil": Pwned()}, buffer)
    return buffer.getvalue()


def torch_object(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    good = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    full = npy_bytes(np.ones((100, 4), np.float32))
    files: dict[str, bytes] = {
        "good.npy": npy_bytes(good),
        "truncated.npy": full[: len(full) // 2],
        "corrupt_header.npy": b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f4', 'shape': (4,",
        "bad_version.npy": b"\x93NUMPY\x09\x00" + b"\x00" * 32,
        "not_npy.npy": bytes(range(256)) * 4,
        "absurd_shape.npy": npy_header((1_000_000, 1_000_000)) + b"\x00" * 64,
        "pickle.npy": npy_bytes(np.array([Pwned()], dtype=object), allow_pickle=True),
        "structured.npy": npy_bytes(np.zeros((2, 4), dtype=[("a", "f4"), ("b", "f4")])),
        "complex.npy": npy_bytes(np.ones((2, 4), np.complex64)),
        "string.npy": npy_bytes(np.array([["a", "b", "c", "d"]])),
        "scalar.npy": npy_bytes(np.float32(1.0)),
        "empty.npy": npy_bytes(np.zeros((0, 4), np.float32)),
        "fortran_order.npy": npy_bytes(np.asfortranarray(good)),
        "big_endian.npy": npy_bytes(good.astype(">f4")),
        "not_a_zip.npz": b"PK\x03\x04 but not really a zip file",
        "bomb.npz": honest_bomb(64),
        "declares_32gib.npz": lying_zip("input.npy", 32 << 30),
        "missing_input.npz": zip_with({"weight.npy": npy_bytes(np.ones(8, np.float32))}),
        "ambiguous.npz": zip_with({"input.npy": npy_bytes(good), "x.npy": npy_bytes(good)}),
        "not_npy_member.npz": zip_with({"readme.txt": b"hello"}),
        "pickle_member.npz": zip_with(
            {"input.npy": npy_bytes(np.array([Pwned()], dtype=object), allow_pickle=True)}
        ),
        "invalid.json": b"[[1, 2, 3, 4]",
        "ragged.json": b"[[1, 2, 3, 4], [1, 2]]",
        "strings.json": b'[["1", "2", "3", "4"]]',
        "booleans.json": b"[[true, false, true, false]]",
        "nulls.json": b"[[null, 1, 2, 3]]",
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "huge_literal.json": b"[[1e400, 1, 2, 3]]",
        "no_data.json": b'{"dtype": "float32"}',
        "not_utf8.json": b"\xff\xfe[\x001\x00]\x00",
        "nan_infinity.json": b"[[NaN, Infinity, -Infinity, 1.0]]",
        "evil.pt": torch_pickle(),
        "not_a_pt.pt": bytes(range(256)) * 4,
        "list.pt": torch_object([1, 2, 3]),
        "complex.pt": torch_object(
            __import__("torch").ones(2, 4, dtype=__import__("torch").complex64)
        ),
        "good.pt": torch_object({"input": __import__("torch").ones(3, 8)}),
        "float8.pt": torch_object(
            {"input": __import__("torch").ones(2, 4).to(__import__("torch").float8_e4m3fn)}
        ),
        "sparse.pt": torch_object({"input": __import__("torch").ones(2, 4).to_sparse()}),
        "no_suffix": npy_bytes(good),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    (OUT / "a_directory.npy").mkdir()
    (OUT / "a_directory.npy" / ".gitkeep").touch()  # git keeps no empty directories
    shape8 = ["--shape", "8"]
    entries = [
        ("truncated.npy", ["--shape", "4"], 2, "truncated"),
        ("corrupt_header.npy", ["--shape", "4"], 2, "not a valid .npy"),
        ("bad_version.npy", ["--shape", "4"], 2, "unsupported .npy format version"),
        ("not_npy.npy", ["--shape", "4"], 2, "not a valid .npy"),
        ("absurd_shape.npy", ["--shape", "4"], 2, "over the --max-bytes limit"),
        ("pickle.npy", ["--shape", "1"], 2, "pickle"),
        ("structured.npy", ["--shape", "4"], 2, "structured dtype"),
        ("complex.npy", ["--shape", "4"], 2, "complex"),
        ("string.npy", ["--shape", "4"], 2, "dtype <U1"),
        ("scalar.npy", ["--shape", "1"], 2, "scalar"),
        ("empty.npy", ["--shape", "4"], 2, "no elements"),
        ("fortran_order.npy", shape8, 0, ""),
        ("big_endian.npy", shape8, 0, ""),
        ("not_a_zip.npz", shape8, 2, "not a valid .npz"),
        ("bomb.npz", [*shape8, "--max-bytes", "1000000"], 2, "would decompress to"),
        ("declares_32gib.npz", shape8, 2, "would decompress to 34359738368 bytes"),
        ("missing_input.npz", shape8, 2, "no input array"),
        ("ambiguous.npz", shape8, 2, "ambiguous"),
        ("not_npy_member.npz", shape8, 2, "is not a .npy array"),
        ("pickle_member.npz", ["--shape", "1"], 2, "pickle"),
        ("invalid.json", ["--shape", "4"], 2, "invalid JSON"),
        ("ragged.json", ["--shape", "4"], 2, "ragged"),
        ("strings.json", ["--shape", "4"], 2, "a string"),
        ("booleans.json", ["--shape", "4"], 2, "a boolean"),
        ("nulls.json", ["--shape", "4"], 2, "null"),
        ("deep.json", ["--shape", "4"], 2, "nested"),
        ("huge_literal.json", ["--shape", "4"], 2, "out of the float64 range"),
        ("no_data.json", ["--shape", "4"], 2, 'no "data" array'),
        ("not_utf8.json", ["--shape", "4"], 2, "not UTF-8"),
        ("nan_infinity.json", ["--shape", "4"], 1, ""),  # valid: NaN is reported, and fails
        ("nan_infinity.json", ["--shape", "4", "--equal-nan"], 0, ""),  # NaN on both sides: equal
        ("evil.pt", ["--shape", "4"], 2, "not an allowed global"),
        ("not_a_pt.pt", ["--shape", "4"], 2, "cannot load safely"),
        ("list.pt", ["--shape", "4"], 2, "holds a list"),
        ("complex.pt", ["--shape", "4"], 2, "complex"),
        ("good.pt", shape8, 0, ""),
        ("float8.pt", ["--shape", "4"], 2, "has no NumPy form"),
        ("sparse.pt", ["--shape", "4"], 2, "not a plain dense tensor"),
        ("no_suffix", shape8, 2, "unknown file type"),
        ("a_directory.npy", shape8, 2, "is a directory"),
        ("missing.npy", shape8, 2, "no such file"),
        ("good.npy", [*shape8, "--eps", "nan"], 2, "--eps must be finite"),
        ("good.npy", [*shape8, "--eps", "inf"], 2, "--eps must be finite"),
        ("good.npy", [*shape8, "--eps", "0"], 0, ""),
        (
            "good.npy",
            ["--op", "group_norm", "--groups", "3"],
            2,
            "--groups 3 does not divide the 8 channels",
        ),
        ("good.npy", ["--axes", "5"], 2, "axis 5 is out of range"),
        ("good.npy", ["--axes", "1", "-1"], 2, "repeat an axis"),
        ("good.npy", [*shape8, "--weight", "tests/data/bad/complex.npy"], 2, "complex"),
        (
            "good.npy",
            [*shape8, "--weight", "tests/data/bad/empty.npy"],
            2,
            "weight has shape (0, 4)",
        ),
        (
            "good.npy",
            ["--op", "batch_norm", "--running-mean", "tests/data/bad/good.npy"],
            2,
            "running_mean has shape (4, 8)",
        ),
        ("scalar.npy", ["--op", "batch_norm"], 2, "scalar"),
        ("good.npy", [*shape8, "--dtype", "float8"], 2, "--dtype"),
        ("good.npy", [*shape8, "--device", "cuda"], 2, "--device cuda"),
        ("good.npy", [*shape8, "--device", "cuda:1"], 2, "--device cuda:1"),
        (
            "good.npy",
            [*shape8, "--vs-device", "tpu"],
            2,
            "--vs-device must be cpu, cuda, cuda:N or mps",
        ),
        ("good.npy", [*shape8, "--grad", "--seed", "-1"], 2, "--seed must be 0 or more"),
        (
            "good.npy",
            [*shape8, "--rtol", "nan", "--atol", "0"],
            2,
            "--rtol must be a finite number",
        ),
        ("good.npy", [*shape8, "--weight", "tests/data/bad/a_directory.npy"], 2, "is a directory"),
        ("good.npy", [*shape8, "--max-bytes", "10"], 2, "over the --max-bytes limit 10"),
    ]
    # On a machine with CUDA the device entries mean something else: the test skips them there.
    manifest = [
        {
            "file": f,
            "args": a,
            "exit": e,
            "phrase": p,
            "without_cuda": any(x.startswith("cuda") for x in a),
        }
        for f, a, e, p in entries
    ]
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} files and {len(manifest)} checks to {OUT}")


if __name__ == "__main__":
    main()
