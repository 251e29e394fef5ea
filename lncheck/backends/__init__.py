"""Backends: implementations under test, behind one narrow contract, in one registry.

``BACKENDS`` maps a name to a module. The module itself must import quickly (no torch at
import time: ``lncheck --help``, suite validation and ``lncheck ops`` use it) and provide:

* ``NAME`` and ``LABEL`` (how tables name the backend's side, e.g. ``torch``);
* ``available() -> str | None``: ``None`` when usable, else why not;
* ``check_device(device, option_name)``: raise ``InputError`` for a device it cannot name;
* ``describe(op) -> str``: its code paths for an op, for ``lncheck ops``;
* ``short_name(candidate) -> str``: a display name for one of its candidates;
* ``environment(device) -> dict``: what a report records about where it ran;
* ``default(op, option, dtype)``: the value of an option left unset that the backend decides
  (``NormSpec.backend_defaults``), e.g. RMSNorm's ``eps=None``;
* ``run(case, device, option_name) -> Iterator[NormResult]``: one result per code path, one
  at a time, with statistics in the reference's group order (``backends.common``);
* ``call(case, fn, device) -> dict``: call a user's function (``--candidate``) with the
  backend's tensors and return what it produced by quantity, as NumPy arrays
  (``lncheck.candidates.NotProduced`` for one it cannot give, with the reason); raise
  ``lncheck.candidates.CandidateFailed`` when it cannot (it raised, changed its input, ...).

A conformance test (``tests/backends/test_conformance.py``) checks every registered backend
against the reference on every op and dtype.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

from lncheck.errors import BackendUnavailable, LncheckError, option

if TYPE_CHECKING:
    from lncheck.case import Case
    from lncheck.options import Settings
    from lncheck.result import NormResult

BACKENDS: dict[str, str] = {"torch": "lncheck.backends.torch"}


class Backend(Protocol):
    NAME: str
    LABEL: str

    def available(self) -> str | None: ...

    def check_device(self, device: str, option_name: str) -> None: ...

    def describe(self, op: str) -> str: ...

    def short_name(self, candidate: str) -> str: ...

    def environment(self, device: str = "cpu") -> dict[str, Any]: ...

    def default(self, op: str, option_name: str, dtype: str) -> Any: ...

    def run(self, case: Case, device: str, option_name: str) -> Iterator[NormResult]: ...

    def call(self, case: Case, fn: Callable[..., Any], device: str) -> dict[str, Any]: ...


def get_backend(name: str = "torch") -> Backend:
    """The backend called ``name`` (its light module; heavy libraries load when it runs).

    Raises:
        BackendUnavailable: no such backend.
    """
    if name not in BACKENDS:
        raise BackendUnavailable(
            f"{option('backend')}: unknown backend {name!r} (known: {', '.join(BACKENDS)})"
        )
    return cast(Backend, importlib.import_module(BACKENDS[name]))


def usable(name: str) -> Backend:
    """The backend called ``name``, checked to be usable here.

    Raises:
        BackendUnavailable: no such backend, or its library is not installed.
    """
    backend = get_backend(name)
    reason = backend.available()
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} cannot run here: {reason}")
    return backend


def check_devices(backend: Backend, settings: Settings) -> None:
    """Raise ``InputError`` (named in the caller's spelling) for a device of ``settings`` that
    the backend cannot name, before anything runs (nothing heavy is imported)."""
    try:
        backend.check_device(settings["device"], "device")
        if settings["vs_device"] is not None:
            backend.check_device(settings["vs_device"], "vs_device")
    except LncheckError as e:
        raise settings.spell(e) from None
