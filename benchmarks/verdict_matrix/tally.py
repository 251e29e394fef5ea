"""Counting the rows: false alarms and misses per dtype, per implementation or bug, per class."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from .cases import DTYPES

BAD = ("false_alarm", "miss", "error", "impl_error")


def _worst(bad: list[dict]) -> dict | None:
    """The most wrong of the wrong rows: the false alarm furthest past its bound, the miss
    furthest inside it."""
    if not bad:
        return None
    alarms = [r for r in bad if r["outcome"] == "false_alarm"]
    if alarms:
        return max(alarms, key=lambda r: r["tolerance_used"])
    misses = [r for r in bad if r["outcome"] == "miss"]
    if misses:
        return min(misses, key=lambda r: r["tolerance_used"])
    return bad[0]


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def dtype_summary(rows: list[dict], dtype: str) -> dict[str, object]:
    """The figures of one dtype (also what the tests read)."""
    mine = [r for r in rows if r["dtype"] == dtype]
    correct = [r for r in mine if r["kind"] != "bug"]
    bugs = [r for r in mine if r["kind"] == "bug" and r["outcome"] != "left_out"]
    return {
        "correct": len(correct),
        "false_alarms": sum(r["outcome"] == "false_alarm" for r in correct),
        "false_alarms_by_class": {
            label: (
                sum(r["outcome"] == "false_alarm" for r in correct if r["label"] == label),
                sum(r["label"] == label for r in correct),
            )
            for label in ("accurate", "sequential")
        },
        "bugs": len(bugs),
        "left_out": sum(r["outcome"] == "left_out" for r in mine),
        "misses": sum(r["outcome"] == "miss" for r in bugs),
        "misses_by_label": {
            label: (
                sum(r["outcome"] == "miss" for r in bugs if r["label"] == label),
                sum(r["label"] == label for r in bugs),
            )
            for label in ("semantic", "precision")
        },
        "errors": sum(r["outcome"] in ("error", "impl_error") for r in mine),
        "classes_correct": Counter(r["accuracy_class"] for r in correct),
        "classes_bugs": Counter(r["accuracy_class"] for r in bugs),
    }


def render(rows: list[dict], reproduce: str) -> str:
    """The console summary: per dtype, then per implementation or bug within it."""
    out: list[str] = []
    for dtype in DTYPES:
        mine = [r for r in rows if r["dtype"] == dtype]
        if not mine:
            continue
        s = dtype_summary(rows, dtype)
        fa, ms = s["false_alarms_by_class"], s["misses_by_label"]
        inputs = len({r["case"] for r in mine})
        alarms = _pct(s["false_alarms"], s["correct"])
        by_class = f"accurate {_pct(*fa['accurate'])}, sequential {_pct(*fa['sequential'])}"
        misses = _pct(s["misses"], s["bugs"])
        by_label = f"semantic {_pct(*ms['semantic'])}, precision {_pct(*ms['precision'])}"
        errors = f"; {s['errors']} errors" if s["errors"] else ""
        out.append(
            f"== {dtype} ({inputs} inputs): false alarms {alarms} of correct outputs [{by_class}]; "
            f"misses {misses} of distinguishable bugs [{by_label}]; {s['left_out']} bug outputs "
            f"left out (within 10x of a correct one){errors}"
        )
        warned = [r for r in mine if r.get("warning") and r["passed"]]
        correct_warned = sum(r["kind"] == "correct" for r in warned)
        out.append(
            f"   warnings (passing checks): {correct_warned} of correct outputs, "
            f"{len(warned) - correct_warned} of passing bugs"
        )
        classes = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=str))  # noqa: E731
        out.append(f"   lncheck classes: correct outputs {classes(s['classes_correct'])}; "
                   f"bugs {classes(s['classes_bugs'])}")  # fmt: skip
        out.append(
            f"   {'implementation / bug':<20} {'label':<19} {'judged':>6} {'left':>5} "
            f"{'bad':>4} {'worst tol':>9}  worst input"
        )
        by_impl: dict[str, list[dict]] = defaultdict(list)
        for r in mine:
            by_impl[r["impl"]].append(r)
        for name, rs in sorted(by_impl.items(), key=lambda kv: kv[1][0]["order"]):
            judged = [r for r in rs if r["outcome"] != "left_out"]
            bad = [r for r in judged if r["outcome"] in BAD]
            worst = _worst(bad)
            labels = "/".join(sorted({r["label"] for r in rs}))
            line = (
                f"   {name:<20} {labels:<19} {len(judged):>6} "
                f"{len(rs) - len(judged):>5} {len(bad):>4}"
            )
            if worst is not None:
                tol = worst["tolerance_used"]
                tol_text = "-" if tol is None else f"{tol:.3g}"
                what = worst["outcome"] + (
                    f" as {worst['accuracy_class']}" if worst["outcome"] == "miss" else ""
                )
                line += (
                    f" {tol_text:>9}  {worst['id']} {what}: err {worst['err']:.3g} "
                    f"(correct {worst['worst_correct_err']:.3g}); {worst['describe']}"
                )
                if worst.get("lncheck_error"):
                    line += f"; {worst['lncheck_error']}"
            out.append(line)
    out.append(totals_line(rows))
    out.append(f"re-create one row: {reproduce} --only ID [--dump DIR]")
    return "\n".join(out)


def totals_line(rows: Iterable[dict]) -> str:
    rows = list(rows)
    correct = [r for r in rows if r["kind"] != "bug"]
    bugs = [r for r in rows if r["kind"] == "bug" and r["outcome"] != "left_out"]
    fa = sum(r["outcome"] == "false_alarm" for r in correct)
    miss = sum(r["outcome"] == "miss" for r in bugs)
    cases = len({r["case"] for r in rows})
    return (
        f"== all: {cases} inputs; false alarms {_pct(fa, len(correct))}; misses "
        f"{_pct(miss, len(bugs))} (targets: 0 false alarms, misses <= 1% in every dtype)"
    )


def timing_lines(seconds: dict[str, float], wall: float) -> str:
    total = sum(seconds.values()) or 1.0
    parts = sorted(seconds.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} {v:.0f} s ({100 * v / total:.0f}%)" for k, v in parts[:8])
    return f"time: {wall:.0f} s wall, {total:.0f} CPU s in workers; slowest: {text}"
