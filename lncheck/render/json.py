"""The JSON rendering: exactly one JSON document, and nothing else."""

from __future__ import annotations

import json

from lncheck.report import Report


def render(report: Report) -> str:
    """The report as one JSON object (strict JSON: no NaN or infinity literals)."""
    return json.dumps(report.to_dict(), allow_nan=False)
