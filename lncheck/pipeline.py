"""The case pipeline: the only place that enumerates a case's candidates and checks one case.

``candidates`` yields everything under test: the backend's paths on the case's device (named
``path@device`` unless it is the CPU), on ``vs_device``, then the user's candidates: results
given as files (``--expected``), programs (``--candidate-cmd``) and Python callables
(``--candidate``), each run ``--repeat`` times (``lncheck.candidates``). ``check_case`` runs
the reference once, compares every candidate with it, unit by unit (see ``chunks``), and
collects a ``Report``. ``compare``, ``run``, ``baseline`` and every later command go through
here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from lncheck import gradients, ops, reference
from lncheck.backends import Backend, check_devices, usable
from lncheck.block_tolerance import PARAMETER_GRADIENTS, reduced_over
from lncheck.blocks import GroupLayout
from lncheck.candidates import CandidateFailed, NotProduced, bundles, command, repeat
from lncheck.candidates.callable import resolve
from lncheck.candidates.specs import EXPECTED as EXPECTED  # an unnamed --expected's candidate
from lncheck.case import Case
from lncheck.chunks import CHUNK_ELEMENTS, release_pages, units
from lncheck.compare_blocks import BlockComparer, Clock
from lncheck.comparison import Comparison, not_made
from lncheck.drift import BaselineCheck, drift_checks
from lncheck.errors import LncheckError, spell
from lncheck.group_failures import SHOWN
from lncheck.hints import with_hints
from lncheck.options import spelling
from lncheck.report import Header, Report
from lncheck.result import ELEMENTWISE, NormResult, as_array
from lncheck.stats_table import StatsCollector

SMALL_TENSOR = 64  # up to this many elements, the tensors themselves are shown
STATISTICS = ("mean", "var", "rstd")
RUNNING = ("running_mean", "running_var")
DEFAULT = "case"  # the backend the case's settings name
Produced = NormResult | Comparison


@overload
def candidates(
    case: Case, backend: Backend | None, *, files: Literal[False]
) -> Iterator[NormResult]: ...


@overload
def candidates(
    case: Case, backend: Backend | None, *, files: bool = True
) -> Iterator[Produced]: ...


def candidates(case: Case, backend: Backend | None, *, files: bool = True) -> Iterator[Produced]:
    """Every implementation under test, one at a time: the backend on the case's device (names
    get ``@device`` unless it is the CPU), on ``vs_device``, then (with ``files``) the user's
    candidates: results given as files, programs and callables.

    With ``files``, every candidate that runs runs ``--repeat`` times and is followed by its
    checks against its first run (``Comparison`` of kind ``repeat``); a program or callable
    that fails yields a failed ``Comparison`` instead of a result. ``files=False`` yields the
    backend's results only, one run each (what a baseline records).
    """
    times = int(case.settings["repeat"]) if files else 1
    runs = [(case.device, "" if case.device == "cpu" else f"@{case.device}", "device")]
    if case.vs_device is not None:
        runs.append((case.vs_device, f"@{case.vs_device}", "vs_device"))
    if backend is not None:
        for device, suffix, option_name in runs:
            run = partial(_backend_run, backend, case, device, option_name, suffix)
            yield from _repeated(run, times)
    if not files:
        return
    yield from case.given
    timeout = float(case.settings["candidate_timeout"])
    for program in case.settings["candidate_cmd"] or ():
        produce = partial(command.run, program, case, timeout)
        yield from _repeated(partial(_once, case, program.name, produce), times)
    functions = case.settings["candidate"] or ()
    caller = usable(case.backend) if functions else None
    for target in functions:
        fn = resolve(target)
        produce = partial(caller.call, case, fn, case.device)  # type: ignore[union-attr]
        yield from _repeated(partial(_once, case, target.name, produce), times)


def user_candidates(case: Case) -> set[str]:
    """The names of the user's candidates: given results, programs and callables."""
    programs, functions = case.settings["candidate_cmd"] or (), case.settings["candidate"] or ()
    return {r.candidate for r in case.given} | {c.name for c in (*programs, *functions)}


def _backend_run(
    backend: Backend, case: Case, device: str, option_name: str, suffix: str
) -> Iterator[NormResult]:
    for result in backend.run(case, device, option_name):
        yield replace(result, candidate=result.candidate + suffix) if suffix else result


def _once(case: Case, name: str, produce: Callable[[], dict[str, Any]]) -> Iterator[Produced]:
    """One run of a program or callable: its result and a failed check for each quantity it
    could not give (``NotProduced``), or one failed check that says why it gave nothing. (An
    ``LncheckError`` while preparing the run, such as a device that does not exist, is the
    user's input error and propagates.)"""
    final = bundles.final_quantity(case.spec)
    words = spelling(case.settings.surface, case.settings.words)
    try:
        arrays = produce()
    except CandidateFailed as e:
        note = str(e)
    else:
        absent = {q: v for q, v in arrays.items() if isinstance(v, NotProduced)}
        given = {q: v for q, v in arrays.items() if q not in absent}
        try:
            found = bundles.members(given, None, case.spec)
            result = NormResult(name, bundles.checked(found, case.spec, case.grad, "its result"))
        except LncheckError as e:  # a result that does not fit the layer: the candidate's fault
            note = e.raw
        else:
            yield result
            for quantity, why in absent.items():
                size = math.prod(bundles.accepted_shapes(quantity, case.spec)[0])
                yield not_made(name, quantity, size, spell(why.reason, words))
            return
    yield not_made(name, final, int(case.x.size), spell(note, words))


def _repeated(make: Callable[[], Iterator[Produced]], times: int) -> Iterator[Produced]:
    """The results of ``make()``, each followed, when ``times > 1``, by its checks against
    ``times - 1`` more runs, made one after another: the first run's results and one more
    run are alive at a time, whatever ``times`` (a run holds its tensors between results)."""
    if times <= 1:
        yield from make()
        return
    firsts = list(make())
    runs = {
        index: repeat.Runs(first, times)
        for index, first in enumerate(firsts)
        if not isinstance(first, Comparison)
    }
    for number in range(2, times + 1):
        again = make()
        for index in range(len(firsts)):
            result = next(again, None)
            if index not in runs:
                continue
            if isinstance(result, NormResult):
                runs[index].add(number, result)
            else:
                runs[index].fail(number, "no result" if result is None else str(result.note))
            del result
        close = getattr(again, "close", None)  # a generator's: its tensors go now
        if close is not None:
            close()
        del again
    for index, first in enumerate(firsts):
        yield first
        if index in runs:
            yield from runs.pop(index).checks()


def backend_for(case: Case, backend: str | None = DEFAULT) -> Backend | None:
    """The backend a case runs on (``DEFAULT``: the one its settings name; ``None``: none),
    checked to be usable and to know the case's devices.

    Raises:
        InputError: a device the backend cannot name.
        BackendUnavailable: no such backend, or it cannot run here.
    """
    if backend is None:
        return None
    found = usable(case.backend if backend == DEFAULT else backend)
    check_devices(found, case.settings)
    return found


def resolved(case: Case, backend: Backend | None) -> Case:
    """The case with the options its backend decides (``NormSpec.backend_defaults``) filled in:
    measured on the installed library, not assumed."""
    wanted = case.spec.backend_defaults
    if backend is None or not wanted:
        return case
    values = {name: backend.default(case.spec.op, name, case.dtype) for name in wanted}
    spec = ops.build(case.settings, case.spec.input_shape, case.dtype, values)
    notes = tuple(n for n in case.notes if n not in case.spec.notes) + spec.notes
    return case.with_(spec=spec, notes=notes)


def check_case(
    case: Case,
    backend: str | None = DEFAULT,
    *,
    heatmaps: bool = False,
    baseline: BaselineCheck | None = None,
    timings: dict[str, float] | None = None,
    chunk_elements: int | None = CHUNK_ELEMENTS,
    failing_groups: int | None = SHOWN,
) -> Report:
    """Compare every candidate for ``case`` with the reference and return the report.

    ``backend=None`` checks only the case's expected output; ``heatmaps`` keeps a (group,
    element) map of each element-wise error, for plots; ``baseline`` adds a check of each
    backend result against its recorded value; ``timings`` collects seconds per stage
    (reference, backend, compare); ``chunk_elements=None`` (or the case's ``chunks=False``)
    never splits the input; ``failing_groups`` is how many of a failing check's groups the
    report lists, most mismatches first (``None``: every one).

    A baseline compares whole tensors, so a case checked against one is not split (the header
    says so).
    """
    started = time.perf_counter()
    implementation = backend_for(case, backend)
    case = resolved(case, implementation)
    p = case.spec
    clock = Clock(timings)
    layouts = {
        **dict.fromkeys(ELEMENTWISE, reference.layout_of(p)),
        **dict.fromkeys(STATISTICS, GroupLayout(p.group_shape, p.group_shape, ())),
        **dict.fromkeys(RUNNING, GroupLayout(p.stats_shape, p.stats_shape, ())),
        **dict.fromkeys(PARAMETER_GRADIENTS, GroupLayout(p.param_shape, p.param_shape, ())),
    }
    label = implementation.LABEL if implementation else ""
    stats = StatsCollector(layouts["var"], label, centred=p.center and p.statistics)
    small: dict[str, npt.NDArray[np.floating]] = {}
    extra: list[Comparison] = []
    missing: dict[tuple[str, str], Comparison] = {}
    users = user_candidates(case)
    # the user's outputs, for compare's hints (programs and callables run whole)
    user_outputs = {
        r.candidate: r.quantities["output"] for r in case.given if "output" in r.quantities
    }
    running = bool(case.settings["candidate_cmd"] or case.settings["candidate"])
    whole = baseline is not None or running or case.settings["repeat"] > 1
    split = chunk_elements if case.settings["chunks"] and not whole else None
    parts = units(case, split)
    notes = parts.notes
    comparer = BlockComparer(
        case, layouts, heatmaps, clock, failing_groups, sequential=not parts.chunked
    )
    if whole and units(case, chunk_elements).chunked:
        why = (
            "a baseline compares whole tensors"
            if baseline is not None
            else "programs, callables and --repeat run on the whole input"
        )
        notes += (f"not checked in chunks: {why}",)
    previous: npt.NDArray[np.generic] | None = None
    unfinite = 0  # groups whose input holds NaN or inf
    for offset, unit in parts.parts:
        if parts.chunked and previous is not None:
            release_pages(previous, case.x)
        previous = unit.x if parts.chunked else None
        with clock("reference"):
            ref = reference.run(unit)
            if unit.grad:
                grads, grad_bounds = gradients.backward(unit)
                ref = replace(
                    ref,
                    quantities={**ref.quantities, **grads},
                    bounds={**ref.bounds, **grad_bounds},
                )
        unfinite += _unfinite_groups(ref)
        if case.x.size <= SMALL_TENSOR:
            small = {"input": case.x, "reference": as_array(ref.quantities["output"])}
        produced = _timed(candidates(unit, implementation), clock)
        # Chunks are small: compare every candidate in one pass over the reference blocks.
        # The whole tensor: one candidate at a time, so that one output is alive at a time.
        batches = [list(produced)] if parts.chunked else ([r] for r in produced)
        for batch in batches:
            extra += [c for c in batch if isinstance(c, Comparison)]
            results = [r for r in batch if isinstance(r, NormResult)]
            comparer.feed(offset, reference.layout_of(unit.spec), ref, results)
            for result in results:
                stats.add(offset, ref, result)
                if baseline is not None and result.candidate not in users:
                    extra += drift_checks(result, baseline, layouts)
                for quantity in result.quantities:  # never silently left out
                    if quantity not in ref.quantities:
                        missing[(result.candidate, quantity)] = not_made(
                            result.candidate, quantity, 0,
                            f"the reference computes no {quantity} for {case.spec.description}",
                        )  # fmt: skip
                # Small tensors show the first backend path and the user's candidates.
                wanted = len(small) == 2 or result.candidate in users
                if small and "output" in result.quantities and wanted:
                    small[result.candidate] = as_array(result.quantities["output"])
                if result.candidate in users and "output" in result.quantities:
                    user_outputs.setdefault(result.candidate, result.quantities["output"])
        stats.add_reference(offset, ref, unit)  # when no candidate had statistics of its own
    if previous is not None:
        release_pages(previous, case.x)
    if unfinite:  # torch is not to blame for the NaN it returns there
        equal_nan = spelling(case.settings.surface, case.settings.words)("equal_nan")
        notes += (
            f"the input holds NaN or inf in {unfinite} of {layouts['output'].groups} groups: "
            f"the outputs it reaches are NaN on every side, and NaN equals NaN only with "
            f"{equal_nan}",
        )
    checks = with_hints(case, comparer.results(), user_outputs) + extra + list(missing.values())
    return Report(
        _header(case, notes),
        tuple(checks),
        stats.table(),
        small,
        strict_baseline=baseline is not None and baseline.strict,
        failing_groups=comparer.failures(),
        names=_display_names(implementation, [c.candidate for c in checks] + list(small), users),
        seconds=time.perf_counter() - started,
    )


def _unfinite_groups(ref: NormResult) -> int:
    """How many groups' input holds NaN or inf (none known for an op without an output
    model)."""
    return 0 if ref.model is None else int(np.count_nonzero(ref.model.unfinite))


def _header(case: Case, notes: tuple[str, ...]) -> Header:
    p = case.spec
    return Header(
        case=case.name,
        input=case.source if case.source != case.name else "",
        op=p.op,
        layer=p.description,
        input_shape=p.input_shape,
        input_dtype=case.input_dtype,
        dtype=case.dtype,
        groups=p.groups,
        group_size=p.group_size,
        group_shape=p.group_shape,
        window=p.window,
        over=p.averaged_over,
        params=p.params,
        tolerance=case.tolerance.describe(case.dtype, reduced_over(p, "output")),
        device=case.device,
        notes=case.notes + notes,
    )


def _display_names(backend: Backend | None, names: list[str], users: set[str]) -> dict[str, str]:
    if backend is None:
        return {}
    return {name: backend.short_name(name) for name in names if name not in users}


def _timed(results: Iterator[Produced], clock: Clock) -> Iterator[Produced]:
    """The candidates, with the time spent producing them counted as the backend's."""
    while True:
        with clock("backend"):
            result = next(results, None)
        if result is None:
            return
        yield result
