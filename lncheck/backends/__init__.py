"""Backends: implementations under test. Each yields one ``NormResult`` per code path.

A backend is a module with ``run(case) -> Iterator[NormResult]`` and ``available() -> str | None``
(``None`` when usable, else the reason). Backends are imported only when used, so that the
command line starts without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Protocol, cast

from lncheck.case import Case
from lncheck.errors import BackendUnavailable
from lncheck.result import NormResult

BACKENDS = {"torch": "lncheck.backends.torch"}


class Backend(Protocol):
    def run(self, case: Case, option: str = "--device") -> Iterator[NormResult]: ...

    def default_eps(self, op: str, dtype: str) -> float: ...

    def version(self) -> str: ...

    def device_name(self, device: str) -> str: ...

    def environment(self, device: str = "cpu") -> dict[str, Any]: ...


def get_backend(name: str = "torch") -> Backend:
    """Import and return the backend called ``name``.

    Raises:
        BackendUnavailable: no such backend, or its library is not installed.
    """
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    try:
        return cast(Backend, importlib.import_module(BACKENDS[name]))
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} needs a library that is not installed: {e}"
        ) from None
