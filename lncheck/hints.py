"""One line on what a failing candidate computes instead: ``lncheck explain``'s best
configuration, searched for a second, added to a ``mismatch`` that no convention of
``semantics`` already names."""

from __future__ import annotations

from dataclasses import replace

from lncheck.case import Case
from lncheck.comparison import Comparison
from lncheck.result import as_array

BUDGET_S = 1.0  # what a failing compare may spend on the hint


def with_hints(case: Case, checks: list[Comparison]) -> list[Comparison]:
    """``checks`` with the explanation of each failing ``output`` check of a given result
    (``--expected``) extended by ``lncheck explain``'s best match, where it finds one."""
    given = {r.candidate: r for r in case.given}
    done = []
    for c in checks:
        result = given.get(c.candidate)
        wanted = (
            result is not None
            and c.quantity == "output"
            and c.accuracy_class == "mismatch"
            and "output" in result.quantities
            and not (c.explanation or "").startswith("matches")
        )
        if wanted:
            from lncheck.explain import quick

            assert result is not None
            best = quick(case, as_array(result.quantities["output"]), BUDGET_S)
            if best is not None:
                hint = f"lncheck explain finds: {best.description}"
                c = replace(c, explanation=f"{c.explanation}; {hint}" if c.explanation else hint)
        done.append(c)
    return done
