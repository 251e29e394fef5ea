"""lncheck's pytest plugin: the ``lncheck_regression`` fixture and ``--lncheck-regen``.

In the spirit of pytest-regressions' ``ndarrays_regression``::

    def test_my_layer(lncheck_regression):
        x = torch.randn(8, 64)
        lncheck_regression.check(x, normalized_shape=64, expected=my_layer_norm(x))

``check`` first checks every candidate against the float64 reference, as ``lncheck.check``
does (a failure fails the test), then compares every result (torch's paths and ``expected``)
with the values recorded for this test in ``<test file's folder>/<test module>/<basename or
test name>.npz``: bitwise by default, or within ``rtol``/``atol``. The first run, and every
run with ``--lncheck-regen``, records them instead and fails the test, saying so, so that a
fresh recording is never taken for a pass.

Registered under ``[project.entry-points.pytest11]``; pytest imports this module in every
project where lncheck is installed, so it imports neither torch nor NumPy until a test calls
``check``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lncheck.report import Report

META = "__meta__"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lncheck")
    group.addoption(
        "--lncheck-regen",
        action="store_true",
        default=False,
        help="Record the values lncheck_regression compares with (the tests fail, saying so).",
    )


def _file_name(basename: object) -> str:
    """``basename`` as a bare file name (a string or a path of one part).

    Raises:
        InputError: it is not text or a path, is empty, ``.`` or ``..``, or names a folder.
    """
    from lncheck.errors import InputError

    name = os.fspath(basename) if isinstance(basename, (str, os.PathLike)) else None
    if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\x00:]", name):
        # a name, never a path: the values stay in the test's own folder
        raise InputError(f"basename={basename!r}: give a file name, without a folder")
    return name


@pytest.fixture
def lncheck_regression(request: pytest.FixtureRequest) -> LncheckRegression:
    """Check a normalization layer against the reference and against recorded results."""
    return LncheckRegression(request)


class LncheckRegression:
    """The ``lncheck_regression`` fixture."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.regen = bool(request.config.getoption("lncheck_regen"))

    def path(self, basename: str | os.PathLike[str] | None = None) -> Path:
        """Where this test's values are recorded: beside the test file, in a folder named after
        its module, one ``.npz`` per ``basename`` (the test's name by default).

        Raises:
            InputError: ``basename`` is empty, ``.`` or ``..``, or holds a folder separator.
        """
        test_file = Path(self.request.node.path)
        if basename is not None:
            basename = _file_name(basename)
        name = basename or re.sub(r"[^\w.-]+", "_", self.request.node.name).strip("_")
        return test_file.parent / test_file.stem / f"{name}.npz"

    def check(
        self,
        x: Any,
        op: str = "layer_norm",
        *,
        basename: str | None = None,
        rtol: float = 0.0,
        atol: float = 0.0,
        **options: Any,
    ) -> Report:
        """Check ``op`` on ``x`` against the reference (``lncheck.compare``'s options), then
        every result against the recorded one, within ``rtol``/``atol`` (default: bitwise).

        Returns:
            The report against the reference.

        Raises:
            pytest.fail.Exception: a check failed, results differ from the recorded ones, or
                they were just recorded.
        """
        __tracebackhide__ = True
        import lncheck
        from lncheck.api import assertion_message

        report = lncheck.compare(x, op, **options)
        if not report.passed:
            pytest.fail(assertion_message(report), pytrace=False)
        results = _results(x, op, options)
        path = self.path(basename)
        if self.regen or not path.exists():
            _record(path, results, report)
            why = "--lncheck-regen" if self.regen else "the first run (nothing recorded yet)"
            pytest.fail(f"{why}: recorded {len(results)} results to {path}; run again to "
                        "compare with them", pytrace=False)  # fmt: skip
        problems = _differences(path, results, rtol, atol)
        if problems:
            pytest.fail(f"results differ from those recorded in {path} (--lncheck-regen "
                        "records them again):\n" + "\n".join(problems), pytrace=False)  # fmt: skip
        return report


def _results(x: Any, op: str, options: dict[str, Any]) -> dict[str, Any]:
    """``{"candidate/quantity": array}``: the backend's results (every path, every quantity) and
    the ``expected`` output, as a baseline records them."""
    import numpy as np

    from lncheck.api import api_settings
    from lncheck.errors import LncheckError, spelled
    from lncheck.loading import load
    from lncheck.options import spelling
    from lncheck.pipeline import backend_for, candidates, resolved
    from lncheck.result import as_array

    backend = options.pop("backend", "torch")
    try:
        case = load(api_settings(op, backend, options), "array", given={"input": x})
        implementation = backend_for(case, None if backend is None else case.settings["backend"])
        case = resolved(case, implementation)
        found = {
            f"{r.candidate}/{quantity}": np.asarray(as_array(value))
            for r in candidates(case, implementation, files=False)
            for quantity, value in r.quantities.items()
        }
    except LncheckError as e:
        raise spelled(e, spelling("api")) from None
    expected = options.get("expected")
    if expected is not None and not isinstance(expected, dict):
        found["expected/output"] = _numpy(expected)
    return found


def _numpy(a: Any) -> Any:
    import numpy as np

    if hasattr(a, "detach"):  # a torch tensor, without importing torch
        t = a.detach().cpu()
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
    return np.asarray(a)


def _record(path: Path, results: dict[str, Any], report: Report) -> None:
    import json

    import numpy as np

    from lncheck import __version__
    from lncheck.atomic import replacing

    meta = {"lncheck": __version__, "layer": report.header.layer, "dtype": report.header.dtype}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "lncheck_regression") as temporary, temporary.open("wb") as f:
        arrays: dict[str, Any] = {**results, META: np.array(json.dumps(meta))}
        np.savez_compressed(f, **arrays)


def _differences(path: Path, results: dict[str, Any], rtol: float, atol: float) -> list[str]:
    import numpy as np

    from lncheck.readers import read_npz

    recorded = read_npz(path, lambda name: name != META).arrays
    problems = []
    for name in sorted(set(recorded) | set(results)):
        if name not in results:
            problems.append(f"  {name}: recorded, but not produced now")
            continue
        if name not in recorded:
            problems.append(f"  {name}: produced now, but not recorded")
            continue
        then, now = recorded[name], results[name]
        if then.shape != now.shape:
            problems.append(f"  {name}: shape {now.shape}, recorded {then.shape}")
            continue
        a, b = np.asarray(now, dtype=np.float64), np.asarray(then, dtype=np.float64)
        with np.errstate(all="ignore"):
            close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True) | (a == b)
            differ = int(np.count_nonzero(~close))
            if differ:
                worst = float(np.nanmax(np.where(close, 0.0, np.abs(a - b)), initial=0.0))
                problems.append(
                    f"  {name}: {differ} of {a.size} elements differ (greatest difference "
                    f"{worst:.3g}, allowed rtol={rtol:g}, atol={atol:g})"
                )
    return problems
