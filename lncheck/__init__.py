"""lncheck: verify normalization layers against an exact float64 reference.

The command line is ``lncheck``; the Python API is ``compare`` (a report), ``check`` (an
assertion for tests) and ``run_suite``. They are imported lazily, so that ``import lncheck``
and ``lncheck --help`` stay fast (torch is imported only when a backend runs).

>>> import numpy as np, lncheck
>>> lncheck.compare(np.arange(8.0).reshape(2, 4), normalized_shape=4).passed
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "check", "compare", "run_suite"]

if TYPE_CHECKING:
    from lncheck.api import check, compare, run_suite


def __getattr__(name: str) -> Any:
    if name in ("check", "compare", "run_suite"):
        from lncheck import api

        return getattr(api, name)
    raise AttributeError(f"module 'lncheck' has no attribute {name!r}")
