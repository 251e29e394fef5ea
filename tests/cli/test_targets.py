"""Report files: written whole or not at all, never over a file the run reads, and never left
stale by an interrupted run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lncheck.atomic import replacing
from lncheck.render import ReportTarget, write_file

from ..conftest import EXAMPLES
from ..render.reports import make_report
from ..suite.helpers import write_suite
from .helpers import assert_user_error, invoke

CASE = '[[case]]\nname = "c1"\ninput = "x.npy"\nshape = [8]\n'


def test_a_report_file_is_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lncheck.render import json as render_json

    target = tmp_path / "r.json"
    target.write_text("the previous report")
    os.chmod(target, 0o640)

    def fails_half_way(report: object, out: object) -> None:
        out.write('{"passed": tr')  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(render_json, "write", fails_half_way)
    with pytest.raises(KeyboardInterrupt):
        write_file(make_report(), ReportTarget("json", target, "--report json="))
    assert target.read_text() == "the previous report"
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind
    monkeypatch.undo()
    write_file(make_report(), ReportTarget("json", target, "--report json="))
    assert target.read_text().startswith('{"passed": false')
    assert target.stat().st_mode & 0o777 == 0o640  # the old file's permissions kept


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--junit", "{suite}"], "--junit {suite}: that is the suite file"),
        (["--json", "{x}"], "--json {x}: that is the input of case 'c1'"),
        (["--report", "json={golden}", "--baseline", "{golden}"], "that is the baseline"),
    ],
)
def test_run_never_writes_a_report_over_a_file_it_reads(
    tmp_path: Path, args: list[str], phrase: str
) -> None:
    suite = write_suite(tmp_path, CASE)
    golden = tmp_path / "golden.npz"
    assert invoke("baseline", str(suite), "-o", str(golden)).exit_code == 0
    names = {"suite": str(suite), "x": str(tmp_path / "x.npy"), "golden": str(golden)}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = invoke("run", str(suite), *(a.format(**names) for a in args))
    assert_user_error(result, phrase.format(**names), "refusing to overwrite it")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_compare_never_writes_a_report_over_its_input(tmp_path: Path) -> None:
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.ones((2, 8), np.float32))
    np.save(y, np.zeros((2, 8), np.float32))
    before = x.read_bytes(), y.read_bytes()
    same = invoke("compare", str(x), "--shape", "8", "--report", f"junit={x}")
    assert_user_error(same, f"--report junit={x}: that is the input; refusing to overwrite it")
    # the same file under another spelling of its path
    other = invoke(
        "compare", str(x), "--shape", "8", "--expected", str(y),
        "--report", f"json={tmp_path / '.' / 'y.npy'}",
    )  # fmt: skip
    assert_user_error(other, "that is the --expected file")
    plot = invoke("compare", str(x), "--shape", "8", "--plot", str(x))
    assert_user_error(plot, f"--plot {x}: that is the input")
    assert (x.read_bytes(), y.read_bytes()) == before


def test_an_interrupted_run_leaves_no_stale_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decided: an earlier run's reports go when a run starts, so that an interrupted run
    leaves none (CI then says "no report"), never a stale one that may say "pass"."""
    import lncheck.suite.run

    suite = write_suite(tmp_path, CASE)
    junit, report = tmp_path / "r.xml", tmp_path / "r.json"
    assert invoke("run", str(suite), "--junit", str(junit), "--json", str(report)).exit_code == 0
    assert junit.exists() and report.exists()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(lncheck.suite.run, "run_one", interrupted)
    result = invoke("run", str(suite), "--junit", str(junit), "--json", str(report))
    assert result.exit_code == 130
    assert not junit.exists() and not report.exists()


@pytest.mark.parametrize(
    ("args", "spelled"),
    [(["--junit", "{tmp}/r.xml"], "--junit {tmp}/r.xml"),
     (["--report", "junit={tmp}/r.xml"], "--report junit={tmp}/r.xml")],
)  # fmt: skip
def test_a_stale_report_that_cannot_go_is_named_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], spelled: str
) -> None:
    suite = write_suite(tmp_path, CASE)
    (tmp_path / "r.xml").write_text("the last run's report")
    unlink = Path.unlink

    def refused(path: Path, missing_ok: bool = False) -> None:
        if path.name == "r.xml":
            raise PermissionError(13, "Permission denied")
        unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    result = invoke("run", str(suite), *(a.format(tmp=tmp_path) for a in args))
    assert_user_error(result, f"{spelled.format(tmp=tmp_path)}: cannot replace: Permission denied")


def test_an_invalid_suite_leaves_the_reports_of_the_last_run(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, CASE)
    junit = tmp_path / "r.xml"
    assert invoke("run", str(suite), "--junit", str(junit)).exit_code == 0
    before = junit.read_bytes()
    suite.write_text(CASE + "unknown_key = 1\n")
    assert invoke("run", str(suite), "--junit", str(junit)).exit_code == 2  # nothing ran
    assert junit.read_bytes() == before


def test_a_missing_baseline_leaves_no_report_of_the_last_run(tmp_path: Path) -> None:
    # the suite is valid, so the reports' targets are known safe to remove: CI finds none
    suite = write_suite(tmp_path, CASE)
    junit = tmp_path / "r.xml"
    assert invoke("run", str(suite), "--junit", str(junit)).exit_code == 0
    missing = str(tmp_path / "no.npz")
    result = invoke("run", str(suite), "--junit", str(junit), "--baseline", missing)
    assert result.exit_code == 2 and not junit.exists()


def test_the_example_suite_is_protected_too() -> None:
    result = invoke("run", str(EXAMPLES / "suite.toml"), "--json", str(EXAMPLES / "tokens.npy"))
    assert_user_error(result, "that is the input of case")


def test_a_named_pipe_or_a_device_is_written_into_and_stays_what_it_is(tmp_path: Path) -> None:
    # renaming a finished report over them would replace /dev/null with a regular file
    import stat
    import threading

    pipe = tmp_path / "reader"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    tokens = str(EXAMPLES / "tokens.npy")
    result = invoke("compare", tokens, "--shape", "4", "--report", f"json={pipe}")
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert received and received[0].startswith(b'{"passed": true')
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and os.listdir(tmp_path) == ["reader"]
    # a link into /dev (as /dev/stdout is) is written through, twice over for a character
    # device; the test writes through its own link, never over /dev/null itself
    null = tmp_path / "null"
    null.symlink_to("/dev/null")
    result = invoke(
        "compare", tokens, "--shape", "4", "--report", f"json={null}", "--report", f"junit={null}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert null.is_symlink() and stat.S_ISCHR(os.stat(null).st_mode)
    # two reports to one pipe would leave the second waiting for a reader that has gone
    result = invoke(
        "compare", tokens, "--shape", "4", "--report", f"json={pipe}", "--report", f"junit={pipe}",
    )  # fmt: skip
    assert_user_error(result, f"--report junit={pipe}: --report json={pipe} writes there too")


def test_a_link_to_a_report_file_stays_a_link(tmp_path: Path) -> None:
    target, link = tmp_path / "latest.json", tmp_path / "link.json"
    target.write_text("the previous report")
    link.symlink_to(target.name)
    tokens = str(EXAMPLES / "tokens.npy")
    result = invoke("compare", tokens, "--shape", "4", "--report", f"json={link}")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text().startswith('{"passed": true')


def test_two_reports_to_one_file_are_refused(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, CASE)
    target = tmp_path / "r.json"
    result = invoke("run", str(suite), "--json", str(target), "--junit", str(target))
    assert_user_error(result, f"--json {target}: --junit {target} writes there too; give each")
    assert not target.exists()


@pytest.mark.parametrize("through", ["file", "link"])
def test_a_report_to_standard_output_beside_the_console_output_is_refused(
    tmp_path: Path, through: str
) -> None:
    # two outputs to one stream: the console's lines would be interleaved with the report's,
    # or, through a rename, go to a file that no longer has a name
    out = tmp_path / "out.txt"
    target = out
    if through == "link":  # as /dev/stdout is, without writing through /dev/stdout itself
        target = tmp_path / "stdout.png"  # a suffix: matplotlib would add .png to a bare name
        target.symlink_to("/proc/self/fd/1")
    for extra, why in [
        (["--report", f"json={target}"], "console output goes too; give a file, or --format json"),
        (["--format", "json", "--report", f"junit={target}"], "json output goes too"),
        (["--plot", str(target)], "console output goes too; give a file"),
    ]:
        done = _compare_into(out, extra)
        assert done.returncode == 2, done.stderr
        spelled = " ".join(extra[-2:]) if extra[-2] == "--plot" else f"--report {extra[-1]}"
        assert done.stderr.startswith(
            f"lncheck: error: {spelled}: that is standard output, where the {why}"
        ), done.stderr
        assert len(done.stderr.splitlines()) == 1 and out.read_text() == ""  # nothing ran
    # a terminal or /dev/null (a character device) takes both
    done = _compare_into(Path(os.devnull), ["--report", f"json={os.devnull}"])
    assert done.returncode == 0, done.stderr


def _compare_into(stdout: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    """``lncheck compare`` on the example tokens, its standard output redirected to ``stdout``."""
    command = [sys.executable, "-m", "lncheck", "compare", str(EXAMPLES / "tokens.npy")]
    with stdout.open("w") as out:
        return subprocess.run(
            [*command, "--shape", "4", *extra],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )


def test_a_plot_and_a_report_to_one_file_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "q.png"
    tokens = str(EXAMPLES / "tokens.npy")
    result = invoke("compare", tokens, "--shape", "4", "--plot", str(target), "--report",
                    f"json={target}")  # fmt: skip
    assert_user_error(result, f"--plot {target}: --report json={target} writes there too")
    assert not target.exists()


def test_a_report_to_a_folder_or_into_a_missing_one_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lncheck.suite.run as suite_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dd").mkdir()
    suite = write_suite(tmp_path, CASE)
    ran: list[object] = []
    monkeypatch.setattr(suite_run, "run_cases", lambda *a, **k: ran.append(a))
    for args, words in [
        (["--json", "nodir/x.json"], "--json nodir/x.json: no such folder 'nodir'"),
        (["--report", "json=."], "--report json=.: is a folder; give a file name"),
        (["--junit", "dd"], "--junit dd: is a folder; give a file name"),
        (["--json", "s.toml/r.json"], "--json s.toml/r.json: 's.toml' is not a folder"),
    ]:
        assert_user_error(invoke("run", str(suite), *args), words)
    assert not ran  # found before any case ran, not when the report was written
    tokens = str(EXAMPLES / "tokens.npy")
    assert_user_error(
        invoke("compare", tokens, "--shape", "4", "--plot", "nodir/p.png"),
        "--plot nodir/p.png: no such folder 'nodir'",
    )


def test_a_report_never_replaces_a_candidate_functions_source(tmp_path: Path) -> None:
    source = tmp_path / "kernel.py"
    source.write_text("import torch\ndef fn(x, **kw):\n    return torch.layer_norm(x, [8])\n")
    before = source.read_text()
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 8), np.float32))
    result = invoke("compare", str(x), "--shape", "8", "--candidate", f"{source}:fn",
                    "--report", f"json={source}")  # fmt: skip
    assert_user_error(result, f"--report json={source}: that is the --candidate file")
    suite = write_suite(tmp_path, CASE + f'candidate = ["{source}:fn"]\n')
    result = invoke("run", str(suite), "--json", str(source))
    assert_user_error(result, f"--json {source}: that is the candidate of case 'c1'")
    assert source.read_text() == before


def test_a_report_to_standard_error_is_refused(tmp_path: Path) -> None:
    # a report would truncate the log stderr is appended to, and the messages going there
    log = tmp_path / "log.txt"
    log.write_text("PRIOR\n")
    command = [sys.executable, "-m", "lncheck", "compare", str(EXAMPLES / "tokens.npy")]
    with log.open("a") as err:
        done = subprocess.run(
            [*command, "--shape", "4", "--report", f"json={log}"],
            stdout=subprocess.DEVNULL, stderr=err, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    assert log.read_text() == (
        f"PRIOR\nlncheck: error: --report json={log}: that is standard error, where messages "
        "go; give a file\n"
    )


@pytest.mark.parametrize(
    ("args", "spelled"),
    [
        (["compare", "{tokens}", "--shape", "4", "--report", "json=-"], "--report json=-"),
        (["compare", "{tokens}", "--shape", "4", "--plot", "-"], "--plot -"),
        (["run", "{suite}", "--json", "-"], "--json -"),
        (["baseline", "{suite}", "-o", "-"], "-o -"),
    ],
)
def test_a_dash_is_never_written_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], spelled: str
) -> None:
    monkeypatch.chdir(tmp_path)
    names = {"tokens": str(EXAMPLES / "tokens.npy"), "suite": str(write_suite(tmp_path, CASE))}
    result = invoke(*(a.format(**names) for a in args))
    assert_user_error(result, f"{spelled}: give a file name ('-' is standard output)")
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.png").exists()


@pytest.mark.parametrize("name", ["r", ".png"])
def test_a_plot_without_a_suffix_is_refused_not_renamed(tmp_path: Path, name: str) -> None:
    # matplotlib would write "r" as r.png, a file the user never named
    tokens = str(EXAMPLES / "tokens.npy")
    result = invoke("compare", tokens, "--shape", "4", "--plot", str(tmp_path / name))
    assert_user_error(
        result, f"--plot {tmp_path / name}: give the format as the file's suffix ({name}.png"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_report_never_replaces_a_candidate_module_or_program_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a module path is found in the current folder first
    (tmp_path / "cand.py").write_text("import torch\ndef fn(x, **kw):\n    return x\n")
    (tmp_path / "cmd.py").write_text("import sys\n")
    np.save(tmp_path / "x.npy", np.ones((2, 8), np.float32))
    base = ("compare", "x.npy", "--shape", "8")
    result = invoke(*base, "--candidate", "cand:fn", "--report", "json=cand.py")
    assert_user_error(result, "--report json=cand.py: that is the --candidate file")
    result = invoke(*base, "--candidate-cmd", "python cmd.py {input} {output}", "--report",
                    "json=cmd.py")  # fmt: skip
    assert_user_error(result, "--report json=cmd.py: that is the --candidate-cmd file")
    assert (tmp_path / "cmd.py").read_text() == "import sys\n"


FULL = Path("/dev/full")  # a device whose every write fails with ENOSPC


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")
@pytest.mark.parametrize(
    ("args", "spelled"),
    [
        (["compare", "{tokens}", "--shape", "4", "-q", "--report", "json=/dev/full"],
         "--report json=/dev/full"),
        (["compare", "{tokens}", "--shape", "4", "-q", "--report", "junit=/dev/full"],
         "--report junit=/dev/full"),
        (["run", "{suite}", "--junit", "/dev/full"], "--junit /dev/full"),
        (["run", "{suite}", "--json", "/dev/full", "--report", "junit={tmp}/r.xml"],
         "--json /dev/full"),
        (["run", "{suite}", "--report", "json=/dev/full", "--junit", "{tmp}/r.xml"],
         "--report json=/dev/full"),
    ],
)  # fmt: skip
def test_a_full_device_is_the_users_error_named_by_its_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], spelled: str
) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.ones((2, 8), np.float32))
    names = {"tokens": str(EXAMPLES / "tokens.npy"), "suite": str(write_suite(tmp_path, CASE)),
             "tmp": str(tmp_path)}  # fmt: skip
    result = invoke(*(a.format(**names) for a in args))
    assert_user_error(result, f"{spelled}: cannot write: No space left on device")


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")
def test_a_renderers_bug_is_not_read_as_the_full_devices_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lncheck.render import json as render_json

    def broken(report: object, out: io.TextIOBase) -> None:
        out.write("{")  # written, then the bug: the device must not take the blame
        raise ValueError("renderer bug")

    monkeypatch.setattr(render_json, "write", broken)
    with pytest.raises(ValueError, match="renderer bug"):
        write_file(make_report(), ReportTarget("json", FULL, "--report json="))


def test_a_stream_whose_reader_went_away_is_left_to_the_command_line() -> None:
    # exit 141, quietly, as for standard output (README, exit status); not "cannot write"
    with pytest.raises(BrokenPipeError), replacing(Path("/dev/null"), "--report json="):
        raise BrokenPipeError(32, "Broken pipe")
