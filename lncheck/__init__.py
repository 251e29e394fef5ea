"""lncheck: verify normalization layers against an exact float64 reference.

The command-line tool is ``lncheck``; the Python API is re-exported here lazily so that
``import lncheck`` stays cheap (torch is imported only when a backend runs).
"""

from __future__ import annotations

__version__ = "0.1.0"
