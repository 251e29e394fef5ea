"""Golden baselines: a backend's results for every case of a suite, recorded once, compared later.

A baseline is an ``.npz`` file: one array per ``<case>/<candidate>/<quantity>`` and a
``__meta__`` entry holding JSON (versions, device, date, and per case its op, dtype and the
options it ran with). It is written one array at a time, so recording a large suite never
holds more than one case's results; into a temporary file renamed into place only when
complete, under a lock, so that a failed, interrupted or concurrent re-record never loses the
old file. Re-recording some cases keeps the others (``prune`` drops the cases no longer in the
suite).
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.atomic import exclusive, replacing
from lncheck.candidates import QUANTITIES
from lncheck.case import Case
from lncheck.errors import InputError, LncheckError, option, spelled
from lncheck.identical import sha256_of
from lncheck.options import spelling
from lncheck.pipeline import backend_for, candidates, resolved
from lncheck.readers import Loaded, read_npz
from lncheck.result import as_array
from lncheck.sources import CHUNK, renamed
from lncheck.suite.parse import SuiteCase

META = "__meta__"
# What a case's results depend on besides the backend: recorded, and compared on replay so
# that an edited suite is not mistaken for a changed torch.
ARRAY_ROLES = ("weight", "bias", "running_mean", "running_var", "grad_output")


@dataclass(frozen=True)
class Baseline:
    """A recorded baseline: where it is, and what it says about itself."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    def arrays(self, case: str) -> dict[tuple[str, str], npt.NDArray[Any]]:
        """``{(candidate, quantity): array}`` recorded for ``case`` (empty if none)."""
        prefix = f"{case}/"
        loaded = read_npz(self.path, lambda name: name.startswith(prefix) and name.count("/") == 2)
        out = {}
        for name, array in loaded.arrays.items():
            _, candidate, quantity = name.split("/")
            if array.dtype.kind not in "fiub":
                raise InputError(
                    f"{self.path}: entry {name!r} holds {array.dtype}, not real numbers"
                )
            out[(candidate, quantity)] = array
        return out

    def has(self, case: str) -> bool:
        """Whether ``case`` was recorded."""
        cases = self.meta.get("cases")
        return isinstance(cases, dict) and case in cases

    def changes(self, case: str, options: dict[str, Any]) -> list[str]:
        """How ``options`` (``case_options``) differ from those ``case`` was recorded with:
        ``["eps 1e-05 -> 0.001"]``; empty if the same, or if the baseline did not record them."""
        entry = self.meta.get("cases", {}).get(case)
        then = entry.get("options") if isinstance(entry, dict) else None
        if not isinstance(then, dict):
            return []
        now = json.loads(json.dumps(options))  # as the baseline holds it: lists, not tuples
        keys = [*then, *(k for k in now if k not in then)]
        return [
            f"{key} {_shown(then.get(key))} -> {_shown(now.get(key))}"
            for key in keys
            if then.get(key) != now.get(key)
        ]

    def changed_values(self, case: str, digests: dict[str, str]) -> list[str]:
        """The arrays (``input``, ``weight``, ...) whose values differ from those ``case`` was
        recorded with (``case_digests``); a baseline that did not record them says none."""
        entry = self.meta.get("cases", {}).get(case)
        then = entry.get("digests") if isinstance(entry, dict) else None
        if not isinstance(then, dict):
            return []
        return [role for role, digest in digests.items() if then.get(role, digest) != digest]

    def notes(self, environment: dict[str, Any]) -> list[str]:
        """Say so when the baseline comes from another torch or device than this run."""
        notes = [f"baseline {self.path} recorded {self.meta.get('created', '?')}"]
        for key in ("torch", "device"):
            then, now = self.meta.get(key), environment.get(key)
            if then != now:
                notes.append(f"baseline was recorded with {key} {then}; this run uses {now}")
        return notes


def _shown(value: Any) -> str:
    return "(unset)" if value is None else value if isinstance(value, str) else json.dumps(value)


def open_baseline(path: str | Path, *, verify: bool = False) -> Baseline:
    """Read a baseline's metadata (the arrays are read per case, when needed); ``verify`` also
    reads every entry as a run reads it, so that a damaged, foreign or pickled one is found
    before anything runs.

    Raises:
        InputError: not a baseline written by ``lncheck baseline``, or a damaged one, naming
            the option it was given to.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"{option('baseline')} {path}: no such file (write one with lncheck baseline)"
        )
    names: list[str] = []  # every entry's name: the reader asks ``select`` about each one

    def meta_only(name: str) -> bool:
        names.append(name)
        return name == META

    try:
        baseline = Baseline(path, _meta(read_npz(path, meta_only)))
        if verify:
            _verify(baseline, names)
    except LncheckError as e:  # named with the option it was given to
        raise type(e)(f"{option('baseline')} {path}: {e.raw.removeprefix(f'{path}: ')}") from None
    return baseline


def _meta(loaded: Loaded) -> dict[str, Any]:
    """The ``__meta__`` entry's JSON object."""
    if META not in loaded.arrays:
        raise InputError(f"not an lncheck baseline (no {META} entry)")
    try:
        meta = json.loads(str(loaded.arrays[META][()]))
    except Exception:  # whatever the JSON parser raises on it (too deep, too large): not ours
        meta = None
    if not isinstance(meta, dict):
        raise InputError(f"its {META} entry is not a JSON object")
    return meta


def _verify(baseline: Baseline, names: list[str]) -> None:
    """Every entry of ``names`` is named as ``record`` names them (``<case>/<candidate>/
    <quantity>``, the quantity one a layer computes), and each case's arrays read as
    ``Baseline.arrays`` reads them in a run (real numbers, never a pickle, every CRC checked):
    a fault found here would otherwise be one case's error after the others ran. (Cases and
    candidates a run does not have are not faults: re-recording some cases keeps the others.)"""
    recorded = baseline.meta.get("cases", {})
    if not isinstance(recorded, dict) or not all(
        isinstance(entry, dict)
        and all(isinstance(entry.get(k, {}), dict) for k in ("options", "digests"))
        for entry in recorded.values()
    ):  # hand-edited: a run would skip its checks of changed options quietly
        raise InputError("its __meta__ 'cases' is not each case's options and digests")
    cases: dict[str, None] = {}  # in the file's order
    for name in names:
        if name == META:
            continue
        parts = name.split("/")
        if len(parts) != 3 or not all(parts):
            raise InputError(f"entry {name!r} is not named <case>/<candidate>/<quantity>")
        if parts[2] not in QUANTITIES:
            raise InputError(f"entry {name!r} names no quantity (known: {', '.join(QUANTITIES)})")
        if parts[0] not in recorded:
            raise InputError(f"entry {name!r} is of a case its __meta__ does not record")
        cases[parts[0]] = None
    for case in cases:  # one case's arrays at a time, as a run holds them
        baseline.arrays(case)


def case_options(suite_case: SuiteCase, case: Case, root: Path) -> dict[str, Any]:
    """What a case's results depend on, as JSON: the op, its resolved parameters (eps as the
    backend decided it), dtype, device, gradients, the input and the array files (relative to
    the suite file's folder ``root``, so that a run from another folder compares equal)."""
    spec = case.spec
    options: dict[str, Any] = {"op": spec.op, **{k: _jsonable(v) for k, v in spec.params.items()}}
    source = suite_case.source
    options.update(
        dtype=case.dtype,
        device=case.device,
        grad=case.grad,
        input=source if suite_case.random is not None else _relative(source, root),
        input_shape=list(spec.input_shape),
    )
    if case.grad:
        options["seed"] = case.settings["seed"]
    for role in ARRAY_ROLES:
        value = case.settings[role]
        if isinstance(value, str):
            options[role] = _relative(value, root)
    return options


def case_digests(case: Case) -> dict[str, str]:
    """A SHA-256 of the input and of each array option, as the case computes with them: a file
    rewritten under the same name changes the results, not the backend."""
    arrays = {"input": case.x, **{role: getattr(case, role) for role in ARRAY_ROLES}}
    found = {}
    for role, a in arrays.items():
        if a is not None:
            data = np.asarray(a)
            layout = f"{data.dtype.str}{data.shape}".encode()
            found[role] = hashlib.sha256(layout + sha256_of(data)).hexdigest()
    return found


def _relative(path: str, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:  # another drive (Windows)
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: the cases it recorded, kept from the old file, and dropped."""

    recorded: tuple[str, ...]
    kept: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()


def record(
    cases: Iterable[SuiteCase],
    path: str | Path,
    environment: dict[str, Any],
    on_case: Callable[[str], None] | None = None,
    *,
    root: Path = Path("."),
    suite_names: Collection[str] | None = None,
    prune: bool = False,
) -> Recorded:
    """Run every case's backend and write its results to ``path``.

    The candidates are those a run enumerates (``pipeline.candidates``, without the user's
    files), so a replay finds every result under the same name. Cases of an existing baseline
    at ``path`` that are not re-recorded are kept; with ``prune``, those not named in
    ``suite_names`` (the whole suite) are dropped. ``root`` is the suite file's folder.

    Raises:
        InputError: ``path`` does not end in ``.npz``, exists and is not a baseline, another
            process is writing it, it cannot be written, or a case cannot be loaded or run (the
            old file is then kept).
    """
    typed, path = str(path), Path(path)
    where = option("output")
    if path.suffix.lower() != ".npz":  # a zip archive named g.json misleads every later reader
        raise InputError(
            f"{where} {typed}: a baseline is an .npz archive; name it {renamed(typed, '.npz')}"
        )
    with exclusive(path, where):
        _remove_leftovers(path)
        old = _existing(path)
        with replacing(path, where) as temporary:
            done = _write(temporary, cases, environment, on_case, root, old, suite_names, prune)
    return done


def _remove_leftovers(path: Path) -> None:
    """Temporary files of writers killed before they could clean up (``kill -9``): holding the
    lock, no other writer's can be among them."""
    folder = path.parent if str(path.parent) else Path(".")
    for leftover in folder.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _existing(path: Path) -> Baseline | None:
    if not path.exists():
        return None
    try:
        return open_baseline(path, verify=True)
    except InputError as e:
        raise InputError(
            f"{option('output')} {path}: exists and is not a readable lncheck baseline, so it "
            f"is not replaced ({e.raw.removeprefix(option('baseline') + ' ')})"
        ) from None


def _write(
    temporary: Path,
    cases: Iterable[SuiteCase],
    environment: dict[str, Any],
    on_case: Callable[[str], None] | None,
    root: Path,
    old: Baseline | None,
    suite_names: Collection[str] | None,
    prune: bool,
) -> Recorded:
    recorded: dict[str, Any] = {}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with zipfile.ZipFile(
        temporary, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
    ) as archive:
        for suite_case in cases:
            if suite_case.skip is not None:
                continue
            try:
                case = suite_case.load()
                backend = backend_for(case)
                case = resolved(case, backend)
                for result in candidates(case, backend, files=False):  # one output at a time
                    for quantity, value in result.quantities.items():
                        name = f"{suite_case.name}/{result.candidate}/{quantity}"
                        _write_array(archive, name, as_array(value))
            except LncheckError as e:  # a device this machine lacks: the case's, by its key
                raw = spelled(e, spelling("suite")).raw
                raise type(e)(f"case {suite_case.name!r}: {raw}") from None
            recorded[suite_case.name] = {
                "op": case.spec.op,
                "dtype": case.dtype,
                "device": case.device,
                "torch": environment.get(str(environment.get("backend", "torch"))),
                "created": now,
                "options": case_options(suite_case, case, root),
                "digests": case_digests(case),
            }
            if on_case is not None:
                on_case(suite_case.name)
        kept, pruned = _copy_others(archive, old, set(recorded), suite_names, prune)
        old_cases = old.meta.get("cases", {}) if old is not None else {}
        cases_meta = {name: old_cases.get(name, {}) for name in kept} | recorded
        meta = {**environment, "created": now, "cases": cases_meta}
        _write_array(archive, META, np.array(json.dumps(meta)))
    return Recorded(tuple(recorded), kept, pruned)


def _copy_others(
    archive: zipfile.ZipFile,
    old: Baseline | None,
    recorded: set[str],
    suite_names: Collection[str] | None,
    prune: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Copy the old baseline's cases that were not re-recorded (and, with ``prune``, are still
    in the suite); returns the names kept and those dropped."""
    if old is None:
        return (), ()

    def dropped(case: str) -> bool:
        return prune and suite_names is not None and case not in suite_names

    old_cases = [c for c in old.meta.get("cases", {}) if c not in recorded]
    with zipfile.ZipFile(old.path) as source:
        for info in source.infolist():
            case = info.filename.split("/", 1)[0]
            if info.filename == f"{META}.npy" or case in recorded or dropped(case):
                continue
            with (
                source.open(info) as src,
                archive.open(info.filename, "w", force_zip64=True) as dst,
            ):
                shutil.copyfileobj(src, dst, CHUNK)
    kept = tuple(c for c in old_cases if not dropped(c))
    return kept, tuple(c for c in old_cases if dropped(c))


def _write_array(archive: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
