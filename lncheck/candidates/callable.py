"""A Python function as a candidate: ``--candidate module.path:function`` (or
``path/to/file.py:function``; in the API the function itself).

This module only finds the function; the backend calls it with its own tensors
(``lncheck.backends.torch.callables``): the input as the first argument, then ``weight``,
``bias`` and the layer's options as keyword arguments, those its signature names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from lncheck.candidates.guard import guarded
from lncheck.candidates.specs import Target, misnamed
from lncheck.errors import InputError, option

_FROM_FILES: dict[Path, ModuleType] = {}


def resolve(target: Target) -> Callable[..., Any]:
    """The function ``target`` names, imported (once per module).

    Raises:
        InputError: the module cannot be imported (its error is quoted), or has no such
            callable.
    """
    if callable(target.target):
        return target.target
    where = f"{option('candidate')} {target.target!r}"
    module_name, _, function = target.target.rpartition(":")
    try:
        with guarded():  # its import runs its code
            if _names_a_file(module_name):
                module = _from_file(Path(module_name), where)
            else:
                module = _import(module_name, Path(target.folder or "."))
                _check_imported_from(module, source_file(target), where, function)
    except InputError:
        raise
    except KeyboardInterrupt:  # the user's Ctrl-C ends the run
        raise
    except BaseException as e:  # the user's module failed while importing: say how
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{where}: cannot import it: {type(e).__name__}: {first}") from None
    found = getattr(module, function, None)
    if not callable(found):
        raise InputError(f"{where}: {module_name} has no callable {function!r}")
    return found  # type: ignore[no-any-return]


def source_file(target: Target) -> str | None:
    """The ``.py`` file a ``--candidate`` names (``path/to/file.py:function``), or that a
    module path names in the folder ``_import`` searches first (``pkg.mod``: ``pkg/mod.py`` or
    ``pkg/mod/__init__.py``); else ``None`` (an installed module, or the function itself).
    Nothing is imported to find it."""
    if callable(target.target):
        return None
    module_name = target.target.rpartition(":")[0]
    if _names_a_file(module_name):
        return module_name
    here = Path(target.folder or ".", *module_name.split("."))
    for found in (here.with_name(here.name + ".py"), here / "__init__.py"):
        if found.is_file():
            return str(found)
    return None


def _names_a_file(module_name: str) -> bool:
    return module_name.endswith(".py") or "/" in module_name or "\\" in module_name


def _import(name: str, folder: Path) -> ModuleType:
    """``importlib.import_module``, with ``folder`` searched first, as ``python -m`` searches
    the current one (the ``lncheck`` script's own folder is on ``sys.path`` instead)."""
    here = str(folder.resolve())
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        if added and here in sys.path:
            sys.path.remove(here)


def _check_imported_from(module: ModuleType, found: str | None, where: str, function: str) -> None:
    """Refuse a module that Python had already imported under the same name from elsewhere
    (another suite's folder, the standard library): its function is not the one beside the
    caller, and checking it would pass or fail the wrong code."""
    loaded = getattr(module, "__file__", None)
    if found is None or loaded is None or Path(loaded).resolve() == Path(found).resolve():
        return
    raise InputError(
        f"{where}: a module named {module.__name__!r} is already imported from {loaded}, not "
        f"{found}: name the file instead ({found}:{function})"
    )


def _from_file(given: Path, where: str) -> ModuleType:
    path = given.resolve()
    if path in _FROM_FILES:
        return _FROM_FILES[path]
    if not path.is_file():
        raise InputError(f"{where}: no such file {str(path)!r}{misnamed(str(given))}")
    name = "lncheck_candidate_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{where}: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _FROM_FILES[path] = module
    return module
