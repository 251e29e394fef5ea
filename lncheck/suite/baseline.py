"""Golden baselines: a backend's results for every case of a suite, recorded once, compared later.

A baseline is an ``.npz`` file: one array per ``<case>/<candidate>/<quantity>`` and a
``__meta__`` entry holding JSON (versions, device, dtypes, date). It is written one array at a
time, so recording a large suite never holds more than one case's results.
"""

from __future__ import annotations

import datetime
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lncheck.errors import InputError, option
from lncheck.pipeline import backend_for, candidates, resolved
from lncheck.readers import read_npz
from lncheck.result import as_array
from lncheck.suite.parse import SuiteCase

META = "__meta__"


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
                    f"{option('baseline')} {self.path}: entry {name!r} holds {array.dtype}, "
                    "not real numbers"
                )
            out[(candidate, quantity)] = array
        return out

    def notes(self, environment: dict[str, Any]) -> list[str]:
        """Say so when the baseline comes from another torch or device than this run."""
        notes = [f"baseline {self.path} recorded {self.meta.get('created', '?')}"]
        for key in ("torch", "device"):
            then, now = self.meta.get(key), environment.get(key)
            if then != now:
                notes.append(f"baseline was recorded with {key} {then}; this run uses {now}")
        return notes


def open_baseline(path: str | Path) -> Baseline:
    """Read a baseline's metadata (the arrays are read per case, when needed).

    Raises:
        InputError: not a baseline written by ``lncheck baseline``.
    """
    path = Path(path)
    loaded = read_npz(path, lambda name: name == META)
    if META not in loaded.arrays:
        raise InputError(f"{option('baseline')} {path}: not an lncheck baseline (no {META} entry)")
    try:
        meta = json.loads(str(loaded.arrays[META][()]))
    except (ValueError, TypeError, IndexError):
        meta = None
    if not isinstance(meta, dict):
        raise InputError(f"{option('baseline')} {path}: its {META} entry is not a JSON object")
    return Baseline(path, meta)


def record(
    cases: Iterable[SuiteCase],
    path: str | Path,
    environment: dict[str, Any],
    on_case: Callable[[str], None] | None = None,
) -> int:
    """Run every case's backend and write its results to ``path``; returns the number of cases.

    The candidates are those a run enumerates (``check.candidates``, without the user's files),
    so a replay finds every result under the same name.

    Raises:
        InputError: the file cannot be written, or a case cannot be loaded.
    """
    path = Path(path)
    recorded: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
        ) as archive:
            for suite_case in cases:
                if suite_case.skip is not None:
                    continue
                case = suite_case.load()
                backend = backend_for(case)
                case = resolved(case, backend)
                for result in candidates(case, backend, files=False):
                    for quantity, value in result.quantities.items():
                        _write(
                            archive,
                            f"{suite_case.name}/{result.candidate}/{quantity}",
                            as_array(value),
                        )
                recorded[suite_case.name] = {
                    "op": case.spec.op,
                    "dtype": case.dtype,
                    "device": case.device,
                }
                if on_case is not None:
                    on_case(suite_case.name)
            meta = {
                **environment,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
                "cases": recorded,
            }
            _write(archive, META, np.array(json.dumps(meta)))
    except OSError as e:
        raise InputError(f"{option('output')} {path}: cannot write: {e.strerror or e}") from None
    return len(recorded)


def _write(archive: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
