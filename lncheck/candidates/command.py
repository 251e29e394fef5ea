"""A program as a candidate: ``--candidate-cmd [NAME=]TEMPLATE``, run once per case (and run).

The template is split like a shell line (``shlex.split``) and run without a shell, so that no
character of a path or option is ever interpreted. Placeholders are filled word by word:

* files lncheck writes into a fresh temporary folder, as ``.npy``, holding exactly what the
  backend receives (rounded to ``--dtype``; bfloat16 values stored as float32): ``{input}``,
  ``{weight}``, ``{bias}`` (defaults filled in), ``{grad_output}`` (with ``--grad``),
  ``{running_mean}``, ``{running_var}`` (the starting values);
* ``{output}``: where the program writes its result, a ``.npy`` (the final output) or a bundle
  ``.npz`` (``np.savez`` may add ``.npz`` to the name; that is found too);
* the layer as text: ``{op}``, ``{eps}``, ``{shape}`` and ``{axes}`` (comma-separated),
  ``{groups}``, ``{dtype}``, ``{training}`` (``true``/``false``), ``{momentum}`` (a number or
  ``none``), ``{name}`` (the candidate's name).

A program that runs past ``--candidate-timeout`` is stopped (its whole process group); one that
exits with a non-zero status, is killed, or writes no or a malformed output is a
``CandidateFailed`` whose message carries the status and the last lines of its stderr. Its
stdout is discarded, and past ``STDERR_BYTES`` of stderr it is stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lncheck.candidates import CandidateFailed
from lncheck.candidates.specs import Command, check_template, placeholders
from lncheck.errors import InputError, LncheckError, option
from lncheck.ops.spec import NormSpec

if TYPE_CHECKING:
    from lncheck.case import Case

STDERR_LINES = 5  # how much of a failed program's stderr a note carries
STDERR_BYTES = 64 << 20  # what a program may write to stderr before it is stopped (looked at
# every POLL_SECONDS at most: a fast writer gets a little past it)
POLL_SECONDS = 0.2  # the longest wait between two looks at it
_NPY, _ZIP = b"\x93NUMPY", b"PK"


def _text_values(spec: NormSpec) -> dict[str, str | None]:
    """The layer's options as a template fills them in; ``None`` where the layer has none."""

    def joined(values: Any) -> str | None:
        return None if values is None else ",".join(str(v) for v in values)

    per_channel = "training" in spec.options  # batch_norm, instance_norm
    momentum = spec.options.get("momentum")
    return {
        "op": spec.op,
        "eps": repr(float(spec.eps)) if spec.statistics else None,
        "shape": joined(spec.params.get("normalized_shape")),
        "axes": joined(spec.params.get("axes")),
        "groups": None if spec.options.get("groups") is None else str(spec.options["groups"]),
        "training": str(bool(spec.options["training"])).lower() if per_channel else None,
        "momentum": None if not per_channel else "none" if momentum is None else repr(momentum),
    }


def check(command: Command, spec: NormSpec, grad: bool) -> None:
    """Refuse, before anything runs, a placeholder this layer cannot fill.

    Raises:
        InputError: naming the candidate and the placeholder.
    """
    # the line itself: a name left out is "command", and each item of a list is a line
    where = f"{option('candidate_cmd')} {command.name!r} ({command.template!r})"
    words = check_template(command.template, where)
    text = _text_values(spec)
    found = {p for word in words for p in placeholders(word, where)}
    if "output" not in found:  # it would run, and its result go nowhere lncheck looks
        raise InputError(
            f"{where}: no {{output}} in it: the program writes its result to the file "
            "{output} names"
        )
    for used in found:
        reason = None
        if text.get(used, "") is None:
            reason = f"{spec.module} has no such option"
        elif used in ("weight", "bias") and not (
            spec.affine and (used == "weight" or spec.has_bias)
        ):
            reason = f"the layer has no {used}"
        elif used == "grad_output" and not grad:
            reason = f"there is no upstream gradient without {option('grad')}"
        elif used in ("running_mean", "running_var") and not spec.stats_shape:
            reason = f"{spec.module} keeps no running statistics here"
        if reason is not None:
            raise InputError(f"{where}: {{{used}}} cannot be filled: {reason}")


def run(command: Command, case: Case, timeout: float) -> dict[str, npt.NDArray[Any]]:
    """Run the program on ``case`` and return the arrays it wrote, by name (a ``.npy`` is one
    array named ``input``, as the readers name it).

    Raises:
        CandidateFailed: it could not start, timed out, failed, or wrote no readable output.
    """
    folder = Path(tempfile.mkdtemp(prefix="lncheck-candidate-"))
    try:
        args = _arguments(command, case, folder)
        status = _run(args, command.cwd, folder, timeout)
        log = _tail(folder / "stderr.txt")
        if status is None:
            raise CandidateFailed(
                f"stopped after {timeout:g} s ({option('candidate_timeout')}){log}"
            )
        if status < 0:
            raise CandidateFailed(f"was killed by signal {_signal_name(-status)}{log}")
        if status != 0:
            raise CandidateFailed(f"exited with status {status}{log}")
        return _read_output(folder / "output.npy", case, log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _arguments(command: Command, case: Case, folder: Path) -> list[str]:
    """The template's words with every placeholder filled, writing only the files it names."""
    words = check_template(command.template, option("candidate_cmd"))
    used = {p for word in words for p in placeholders(word, "")}
    values: dict[str, str] = {k: v for k, v in _text_values(case.spec).items() if v is not None}
    values.update(name=command.name, dtype=case.dtype, output=str(folder / "output.npy"))
    for name, array in _files(case, used).items():
        path = folder / f"{name}.npy"
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        values[name] = str(path)
    try:
        return [word.format_map(values) for word in words]
    except (KeyError, ValueError, IndexError, AttributeError) as e:  # a format spec misused
        raise CandidateFailed(f"cannot fill in the template: {type(e).__name__}: {e}") from None


def _files(case: Case, used: set[str]) -> dict[str, npt.NDArray[Any]]:
    spec, storage = case.spec, case.x.dtype
    files: dict[str, npt.NDArray[Any]] = {}
    if "input" in used:
        files["input"] = case.x
    if "weight" in used:
        files["weight"] = (
            case.weight if case.weight is not None else np.ones(spec.param_shape, storage)
        )
    if "bias" in used:
        files["bias"] = case.bias if case.bias is not None else np.zeros(spec.param_shape, storage)
    if "running_mean" in used:
        mean = case.running_mean
        files["running_mean"] = mean if mean is not None else np.zeros(spec.stats_shape, storage)
    if "running_var" in used:
        var = case.running_var
        files["running_var"] = var if var is not None else np.ones(spec.stats_shape, storage)
    if "grad_output" in used:
        from lncheck.gradients import upstream

        files["grad_output"] = upstream(case).astype(storage)
    return files


def _run(args: list[str], cwd: str | None, folder: Path, timeout: float) -> int | None:
    """The program's exit status (negative: killed by that signal), or ``None`` if it ran past
    ``timeout`` and was stopped. Its stdout is discarded and its stderr goes to a file (never
    to a pipe a stray child could hold open), watched while it runs: past ``STDERR_BYTES`` the
    program is stopped, so that a chatty one cannot fill the disk before its timeout."""
    with (folder / "stderr.txt").open("wb") as err:
        try:
            process = subprocess.Popen(
                args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,  # its own process group: stopped whole, with children
            )  # fmt: skip
        except OSError as e:
            raise CandidateFailed(f"cannot start {args[0]!r}: {e.strerror or e}") from None
        try:
            status = _wait(process, err.fileno(), timeout)
        except BaseException:  # Ctrl-C: the program is in its own session and did not get it
            _stop(process)
            raise
        _stop(process)  # children it left running (``cmd &``) end with it
        _check_stderr(err.fileno(), folder)  # stopped for it, or it flooded just before exiting
        return status


def _wait(process: subprocess.Popen[bytes], stderr: int, timeout: float) -> int | None:
    """``process``'s exit status, ``None`` past ``timeout``; stopped once its ``stderr`` file
    holds more than ``STDERR_BYTES`` (which ``_check_stderr`` then reports). Polled at
    intervals growing from 10 ms to ``POLL_SECONDS``: a short program costs no more than
    before."""
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        left = deadline - time.monotonic()
        try:
            return process.wait(timeout=max(0.0, min(interval, left)))
        except subprocess.TimeoutExpired:
            if left <= interval:
                return None
        if _flooded(stderr):
            _stop(process)
            return process.returncode
        interval = min(2 * interval, POLL_SECONDS)


def _check_stderr(stderr: int, folder: Path) -> None:
    """``CandidateFailed`` where the program's ``stderr`` file (in ``folder``) holds more than
    ``STDERR_BYTES`` (whether it was stopped there or had ended), with its last lines as every
    failed program's note has them."""
    if _flooded(stderr):
        tail = _tail(folder / "stderr.txt")
        raise CandidateFailed(f"wrote more than {STDERR_BYTES >> 20} MiB to stderr{tail}")


def _flooded(stderr: int) -> bool:
    """Whether the program's ``stderr`` file holds more than ``STDERR_BYTES``."""
    return os.fstat(stderr).st_size > STDERR_BYTES


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _tail(path: Path) -> str:
    """The last lines of a program's stderr, for a note: ``; stderr: a | b``, or nothing."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 8192))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip()[:300] for line in text.splitlines() if line.strip()]
    return f"; stderr: {' | '.join(lines[-STDERR_LINES:])}" if lines else ""


def _read_output(path: Path, case: Case, log: str) -> dict[str, npt.NDArray[Any]]:
    from lncheck.readers import read_arrays

    found = next((p for p in (path, path.with_name(path.name + ".npz"), path.with_suffix(".npz"))
                  if p.is_file()), None)  # fmt: skip
    if found is None:
        raise CandidateFailed(f"exited with status 0 but wrote nothing to {{output}}{log}")
    with found.open("rb") as f:
        magic = f.read(6)
    suffix = ".npy" if magic.startswith(_NPY) else ".npz" if magic.startswith(_ZIP) else None
    if suffix is None:
        raise CandidateFailed(f"its output is neither a .npy nor an .npz file{log}")
    readable = found.with_name(f"result{suffix}")
    found.rename(readable)
    try:
        arrays = read_arrays(str(readable), max_bytes=case.settings["max_bytes"]).arrays
    except LncheckError as e:
        reason = e.raw.removeprefix(f"{readable}: ")
        raise CandidateFailed(f"its output cannot be read: {reason}{log}") from None
    return {name: np.array(a) for name, a in arrays.items()}  # the folder is removed next
