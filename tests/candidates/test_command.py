"""A program as a candidate: placeholders filled, run without a shell, failures as checks."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lncheck.candidates import CandidateFailed, command
from lncheck.candidates.command import check, run
from lncheck.candidates.specs import Command
from lncheck.errors import InputError
from lncheck.pipeline import check_case

from ..conftest import EXAMPLES
from ..support import make_case

PYTHON = shlex.quote(sys.executable)
SHIFTED = EXAMPLES / "shifted.npy"
ONEPASS = f"{PYTHON} {shlex.quote(str(EXAMPLES / 'onepass_layernorm.py'))}"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "prog.py"
    path.write_text(body)
    return f"{PYTHON} {shlex.quote(str(path))}"


def _report(x: np.ndarray, *templates: str, **options: Any) -> Any:
    options.setdefault("normalized_shape", x.shape[-1])
    return check_case(make_case(x, candidate_cmd=list(templates), **options), backend=None)


def _by_name(report: Any) -> dict[tuple[str, str], Any]:
    return {(c.candidate, c.quantity): c for c in report.checks}


def test_the_one_pass_variance_example_is_caught_and_the_two_pass_one_passes() -> None:
    x = np.load(SHIFTED)
    line = f"{ONEPASS} {{input}} {{output}} --eps {{eps}} --shape {{shape}}"
    report = _report(x, line, f"twopass={line} --two-pass")
    checks = _by_name(report)
    assert set(checks) == {("command", "output"), ("twopass", "output")}
    assert not checks[("command", "output")].passed
    assert checks[("command", "output")].mismatched > 0
    assert checks[("twopass", "output")].passed


def test_the_files_a_program_receives(tmp_path: Path) -> None:
    # it answers with input + weight: both files hold what the backend receives
    prog = _script(
        tmp_path,
        "import sys, numpy as np\n"
        "x, w = np.load(sys.argv[1]), np.load(sys.argv[2])\n"
        "assert x.dtype == np.float16 and w.dtype == np.float16\n"
        "np.save(sys.argv[3], x + w)\n",
    )
    x = np.full((2, 4), 1.0 + 2.0**-12)  # rounds to 1.0 in float16
    case = make_case(x, normalized_shape=4, dtype="float16", weight=np.full(4, 2.0))
    arrays = run(Command("mine", f"{prog} {{input}} {{weight}} {{output}}"), case, timeout=60)
    np.testing.assert_array_equal(arrays["input"], np.full((2, 4), 3.0, np.float16))


def test_the_options_a_program_receives(tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    prog = _script(
        tmp_path,
        "import sys, numpy as np\n"
        f"open({str(seen)!r}, 'w').write(' '.join(sys.argv[2:]))\n"
        "np.save(sys.argv[1], np.zeros((2, 4, 3), np.float32))\n",
    )
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    line = f"{prog} {{output}} {{op}} {{eps}} {{groups}} {{dtype}} 'a b' {{name}}"
    run(Command("gn", line), make_case(x, "group_norm", groups=2, eps=1e-3), timeout=60)
    assert seen.read_text() == "group_norm 0.001 2 float32 a b gn"
    line = f"{prog} {{output}} {{training}} {{momentum}} {{running_mean}}"
    run(Command("bn", line), make_case(x, "batch_norm", momentum=None), timeout=60)
    words = seen.read_text().split()
    assert words[:2] == ["true", "none"] and words[2].endswith("running_mean.npy")


@pytest.mark.parametrize(
    ("options", "placeholder", "phrase"),
    [
        (
            {"normalized_shape": 4},
            "groups",
            "{groups} cannot be filled: LayerNorm has no such option",
        ),
        ({"normalized_shape": 4}, "grad_output", "there is no upstream gradient without grad="),
        ({"normalized_shape": 4, "affine": False}, "weight", "the layer has no weight"),
        ({"normalized_shape": 4}, "running_mean", "LayerNorm keeps no running statistics"),
    ],
)
def test_a_placeholder_the_layer_cannot_fill_is_an_input_error(
    options: dict[str, Any], placeholder: str, phrase: str
) -> None:
    with pytest.raises(InputError) as info:
        make_case(np.ones((2, 4)), candidate_cmd=f"prog {{{placeholder}}} {{output}}", **options)
    line = f"prog {{{placeholder}}} {{output}}"
    assert str(info.value).startswith(f"candidate_cmd= 'command' ({line!r}): {{{placeholder}}}")
    assert phrase in str(info.value)
    with pytest.raises(InputError, match="unknown placeholder"):
        check(
            Command("c", "prog {nope}"), make_case(np.ones((2, 4)), normalized_shape=4).spec, False
        )
    # without {output}, the program would run and write its result nowhere lncheck looks
    with pytest.raises(InputError) as info:
        make_case(np.ones((2, 4)), candidate_cmd="prog {input}", normalized_shape=4)
    assert str(info.value) == (
        "candidate_cmd= 'command' ('prog {input}'): no {output} in it: the program writes its "
        "result to the file {output} names"
    )
    # each item of a list is a program line: the one at fault is shown, not only its name
    with pytest.raises(InputError, match=r"^candidate_cmd= 'command' \('prog'\): no \{output"):
        make_case(
            np.ones((2, 4)), candidate_cmd=["prog", "{input}", "{output}"], normalized_shape=4
        )


def test_a_hanging_program_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    # it starts a child that would hold on to the stderr file for a minute: the whole process
    # group is stopped
    prog = _script(
        tmp_path,
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('working...', file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n",
    )
    start = time.monotonic()
    report = _report(np.ones((2, 4), np.float32), f"{prog} {{output}}", candidate_timeout=1)
    assert time.monotonic() - start < 15
    (c,) = report.checks
    assert (c.candidate, c.quantity, c.passed) == ("command", "output", False)
    assert c.note == "stopped after 1 s (candidate_timeout=); stderr: working..."


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")
def test_children_a_program_leaves_running_end_with_it(tmp_path: Path) -> None:
    started = tmp_path / "child.pid"
    prog = _script(
        tmp_path,
        "import subprocess, sys, numpy as np\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(started)!r}, 'w').write(str(child.pid))\n"
        "x = np.load(sys.argv[1])\n"
        "y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)\n"
        "np.save(sys.argv[2], y.astype(np.float32))\n",
    )
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    (c,) = _report(x, f"{prog} {{input}} {{output}}").checks
    assert c.passed
    pid = int(started.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # killed; reaped by init once it is gone
    status = Path(f"/proc/{pid}/stat")
    assert not status.exists() or status.read_text().split()[2] == "Z"


@pytest.mark.parametrize(
    ("body", "note"),
    [
        (
            "import sys\nprint('loading', file=sys.stderr)\nraise SystemExit('bad shape')\n",
            "exited with status 1; stderr: loading | bad shape",
        ),
        (
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
            "was killed by signal SIGKILL",
        ),
        ("pass\n", "exited with status 0 but wrote nothing to {output}"),
        (
            "import sys\nopen(sys.argv[1], 'w').write('not an array')\n",
            "its output is neither a .npy nor an .npz file",
        ),
        (
            "import sys, numpy as np\nnp.save(sys.argv[1], np.zeros((3, 3)))\n",
            "its result: output has shape (3, 3); layer_norm on an input of shape (2, 4) needs",
        ),
        (
            "import sys, numpy as np\nnp.savez(sys.argv[1], outptu=np.zeros((2, 4)))\n",
            "unknown member 'outptu': a bundle's members are named after quantities",
        ),
    ],
)
def test_a_failing_program_is_a_failed_check_with_its_status_and_stderr(
    tmp_path: Path, body: str, note: str
) -> None:
    report = _report(np.ones((2, 4), np.float32), f"{_script(tmp_path, body)} {{output}}")
    (c,) = report.checks
    assert (c.candidate, c.quantity, c.passed) == ("command", "output", False)
    assert c.note is not None and c.note.startswith(note), c.note


def test_a_program_that_cannot_start_is_a_failed_check() -> None:
    report = _report(np.ones((2, 4), np.float32), "/no/such/program {output}")
    (c,) = report.checks
    assert c.note == "cannot start '/no/such/program': No such file or directory"


def test_a_bundle_written_by_np_savez_is_found_and_checked(tmp_path: Path) -> None:
    # np.savez adds .npz to {output}; the bundle gives the output and the statistics
    prog = _script(
        tmp_path,
        "import sys, numpy as np\n"
        "x = np.load(sys.argv[1]).astype(np.float64)\n"
        "m = x.mean(-1, keepdims=True); r = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)\n"
        "np.savez(sys.argv[2], output=((x - m) * r).astype(np.float32), mean=m, rstd=r * 1.01)\n",
    )
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    checks = _by_name(_report(x, f"{prog} {{input}} {{output}}"))
    assert {k: c.passed for k, c in checks.items()} == {
        ("command", "output"): True,
        ("command", "mean"): True,
        ("command", "rstd"): False,
    }


def test_programs_run_in_their_folder_and_without_a_shell(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("ok")
    prog = _script(
        tmp_path,
        "import sys, numpy as np\n"
        "assert open('data.txt').read() == 'ok'\n"  # relative to the folder it runs in
        "assert sys.argv[2] == '$HOME;*'\n"  # no shell expanded anything
        "np.save(sys.argv[1], np.zeros((2, 4), np.float32))\n",
    )
    case = make_case(np.ones((2, 4), np.float32), normalized_shape=4)
    arrays = run(Command("c", f"{prog} {{output}} '$HOME;*'", cwd=str(tmp_path)), case, 60)
    assert arrays["input"].shape == (2, 4)
    with pytest.raises(CandidateFailed, match=r"exited with status 1; stderr: .*FileNotFoundError"):
        run(Command("c", f"{prog} {{output}} '$HOME;*'", cwd="/"), case, 60)


def test_commands_are_not_checked_in_chunks(write: Callable[..., Path], tmp_path: Path) -> None:
    prog = _script(
        tmp_path,
        "import sys, numpy as np\n"
        "x = np.load(sys.argv[1]).astype(np.float64)\n"
        "y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)\n"
        "np.save(sys.argv[2], y.astype(np.float32))\n",
    )
    x = np.random.default_rng(2).standard_normal((64, 16)).astype(np.float32)
    case = make_case(x, normalized_shape=16, candidate_cmd=f"{prog} {{input}} {{output}}")
    report = check_case(case, backend=None, chunk_elements=100)
    assert [c.passed for c in report.checks] == [True]
    assert "not checked in chunks: programs, callables and --repeat run on the whole input" in (
        report.header.notes
    )


def test_a_program_that_floods_stderr_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # unwatched, its stderr file grew until the timeout (at disk speed: the disk filled first)
    monkeypatch.setattr(command, "STDERR_BYTES", 1 << 20)
    prog = _script(tmp_path, "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n")
    start = time.monotonic()
    report = _report(np.ones((2, 4), np.float32), f"{prog} {{output}}", candidate_timeout=60)
    assert time.monotonic() - start < 15
    (c,) = report.checks
    assert not c.passed and c.note is not None
    assert c.note.startswith("wrote more than 1 MiB to stderr; stderr: xxxx")  # its last lines
    # ...and so is one that floods it in the moment before it exits with a good output
    prog = _script(
        tmp_path,
        "import sys\nimport numpy as np\nsys.stderr.write('y' * (3 << 20))\n"
        "np.save(sys.argv[1], np.zeros((2, 4), np.float32))\n",
    )
    (c,) = _report(np.ones((2, 4), np.float32), f"{prog} {{output}}").checks
    assert not c.passed and (c.note or "").startswith("wrote more than 1 MiB to stderr; ")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")
def test_a_programs_stdout_is_not_kept(tmp_path: Path) -> None:
    # read by no one: it goes nowhere, not to a file that may grow without bound
    prog = _script(
        tmp_path,
        "import os, sys\nimport numpy as np\n"
        "assert os.readlink('/proc/self/fd/1') == '/dev/null', os.readlink('/proc/self/fd/1')\n"
        "np.save(sys.argv[1], np.zeros((2, 4), np.float32))\n",
    )
    (c,) = _report(np.ones((2, 4), np.float32), f"{prog} {{output}}").checks
    assert c.note is None, c.note
