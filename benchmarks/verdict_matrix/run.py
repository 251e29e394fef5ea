"""Run the matrix: every implementation and bug on every case, the bugs' distinguishability,
lncheck's verdicts; one row (a dict, one JSONL line) per output."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np

from .bugs import BUGS
from .cases import Case, Config, Inputs, draw, make
from .correct import CORRECT, Impl
from .exact import max_error
from .judge import Verdict, judge, outcome

IMPLS: tuple[Impl, ...] = CORRECT + BUGS
IMPL_ORDER = {impl.name: k for k, impl in enumerate(IMPLS)}
FACTOR = 10.0  # a bug counts when its error is more than FACTOR x every correct kernel's


def case_fields(case: Case) -> dict[str, object]:
    d = asdict(case)
    d["shape"] = list(case.shape)
    d["normalized_shape"] = list(case.normalized_shape)
    d.update(case=case.id, n=case.n, rows=case.rows)
    return d


def evaluate(
    config: Config,
    index: int,
    *,
    judge_all: bool = False,
    keep: Callable[[str], bool] | None = None,
) -> tuple[list[dict], dict[str, float], Inputs, dict[str, np.ndarray]]:
    """Run case ``index``: returns its rows, CPU seconds per stage, its inputs, and the outputs
    that ``keep(impl_name)`` asks for. ``judge_all`` also asks lncheck about the bugs that are
    not distinguishable (their outcome stays "left_out")."""
    return evaluate_case(draw(config, index), judge_all=judge_all, keep=keep)


def evaluate_case(
    case: Case,
    *,
    judge_all: bool = False,
    keep: Callable[[str], bool] | None = None,
) -> tuple[list[dict], dict[str, float], Inputs, dict[str, np.ndarray]]:
    """``evaluate`` for a case made by hand."""
    inp = make(case)
    seconds: dict[str, float] = {}
    # CPU seconds, not wall: the figures stay meaningful on a busy machine
    start = time.process_time()
    exact = inp.exact
    seconds["exact reference"] = time.process_time() - start
    found: list[tuple[Impl, np.ndarray | None, float, str | None]] = []
    for impl in IMPLS:
        if not impl.applies(inp):
            continue
        start = time.process_time()
        try:
            with np.errstate(all="ignore"):
                y, problem = impl.run(inp), None
            err = max_error(y, exact)
        except Exception as e:  # recorded as a row, never fatal to the run
            y, problem, err = None, repr(e), math.inf
        seconds[impl.name] = time.process_time() - start
        found.append((impl, y, err, problem))
    worst = max((err for impl, _, err, p in found if impl.kind == "correct" and p is None),
                default=math.inf)  # fmt: skip
    fields = case_fields(case)
    rows, kept = [], {}
    for impl, y, err, problem in found:
        distinguishable = impl.kind != "correct" and err > FACTOR * worst
        verdict: Verdict | None = None
        if y is not None and (impl.kind != "bug" or distinguishable or judge_all):
            verdict = judge(inp, y)
            seconds["lncheck"] = seconds.get("lncheck", 0.0) + verdict.seconds
        label = impl.label_of(inp)
        result = "impl_error" if problem else outcome(impl.kind, label, distinguishable, verdict)
        rows.append(
            {
                "id": f"{case.id}/{impl.name}",
                **fields,
                "impl": impl.name,
                "order": IMPL_ORDER[impl.name],
                "kind": impl.kind,
                "label": label,
                "err": err,
                "worst_correct_err": worst,
                "distinguishable": bool(distinguishable),
                "passed": None if verdict is None else verdict.passed,
                "accuracy_class": None if verdict is None else verdict.accuracy_class,
                "tolerance_used": None if verdict is None else verdict.tolerance_used,
                "explanation": None if verdict is None else verdict.explanation,
                "warning": None if verdict is None else verdict.warning,
                "implied_scale": None if verdict is None else verdict.implied_scale,
                "implied_shift": None if verdict is None else verdict.implied_shift,
                "lncheck_error": problem or (None if verdict is None else verdict.error),
                "outcome": result,
                "seconds": seconds[impl.name],
                "describe": case.describe(),
            }
        )
        if keep is not None and y is not None and keep(impl.name):
            kept[impl.name] = y
    return rows, seconds, inp, kept


def _cost(case: Case) -> float:
    """A rough estimate of a case's seconds, to start the slowest first."""
    size = case.n * case.rows
    return size * 2e-6 + case.n * 1e-5 + 0.05


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _one(args: tuple[Config, int, bool]) -> tuple[list[dict], dict[str, float]]:
    config, index, judge_all = args
    rows, seconds, _, _ = evaluate(config, index, judge_all=judge_all)
    return rows, seconds


def run_matrix(
    config: Config, jobs: int = 0, *, judge_all: bool = False, progress: bool = False
) -> tuple[list[dict], dict[str, float]]:
    """All ``config.count`` cases on ``jobs`` processes (0: one per CPU): rows in case order,
    and the seconds each stage took in all."""
    jobs = jobs or os.cpu_count() or 1
    order = sorted(range(config.count), key=lambda i: -_cost(draw(config, i)))
    work = [(config, i, judge_all) for i in order]
    totals: dict[str, float] = {}
    rows: list[dict] = []
    start = time.perf_counter()

    def results() -> Iterator[tuple[list[dict], dict[str, float]]]:
        if jobs == 1:
            _init_worker()
            yield from map(_one, work)
            return
        with multiprocessing.get_context("fork").Pool(jobs, _init_worker) as pool:
            yield from pool.imap_unordered(_one, work, chunksize=1)

    for done, (case_rows, seconds) in enumerate(results(), 1):
        rows.extend(case_rows)
        for k, v in seconds.items():
            totals[k] = totals.get(k, 0.0) + v
        if progress and (done % 20 == 0 or done == len(work)):
            elapsed = time.perf_counter() - start
            print(f"  {done}/{len(work)} cases, {elapsed:.0f} s", flush=True)
    rows.sort(key=lambda r: (r["index"], r["order"]))
    return rows, totals
