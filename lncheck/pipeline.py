"""The case pipeline: the only place that enumerates a case's candidates and checks one case.

``candidates`` yields everything under test: the backend's paths on the case's device (named
``path@device`` unless it is the CPU), on ``vs_device``, then the outputs given by the user.
``check_case`` runs the reference once, compares every candidate with it, unit by unit (see
``chunks``), and collects a ``Report``. ``compare``, ``run``, ``baseline`` and every later
command go through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from lncheck import gradients, ops, reference
from lncheck.backends import Backend, check_devices, usable
from lncheck.blocks import GroupLayout
from lncheck.case import Case
from lncheck.chunks import CHUNK_ELEMENTS, release_pages, units
from lncheck.compare_blocks import PARAMETER_GRADIENTS, BlockComparer, Clock, reduced_over
from lncheck.comparison import Comparison
from lncheck.drift import BaselineCheck, drift_checks
from lncheck.report import Header, Report
from lncheck.result import ELEMENTWISE, NormResult, as_array
from lncheck.stats_table import StatsCollector

SMALL_TENSOR = 64  # up to this many elements, the tensors themselves are shown
STATISTICS = ("mean", "var", "rstd")
RUNNING = ("running_mean", "running_var")
EXPECTED = "expected"  # the candidate name of an output given with --expected
DEFAULT = "case"  # the backend the case's settings name


def candidates(case: Case, backend: Backend | None, *, files: bool = True) -> Iterator[NormResult]:
    """Every implementation under test, one at a time: the backend on the case's device (names
    get ``@device`` unless it is the CPU), on ``vs_device``, then (with ``files``) any expected
    output."""
    runs = [(case.device, "" if case.device == "cpu" else f"@{case.device}", "device")]
    if case.vs_device is not None:
        runs.append((case.vs_device, f"@{case.vs_device}", "vs_device"))
    if backend is not None:
        for device, suffix, option_name in runs:
            for result in backend.run(case, device, option_name):
                yield replace(result, candidate=result.candidate + suffix) if suffix else result
    if files and case.expected is not None:
        yield NormResult(EXPECTED, {"output": case.expected})


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
) -> Report:
    """Compare every candidate for ``case`` with the reference and return the report.

    ``backend=None`` checks only the case's expected output; ``heatmaps`` keeps a (group,
    element) map of each element-wise error, for plots; ``baseline`` adds a check of each
    backend result against its recorded value; ``timings`` collects seconds per stage
    (reference, backend, compare); ``chunk_elements=None`` (or the case's ``chunks=False``)
    never splits the input.

    A baseline compares whole tensors, so a case checked against one is not split (the header
    says so).
    """
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
    comparer = BlockComparer(case, layouts, heatmaps, clock)
    stats = StatsCollector(layouts["var"], implementation.LABEL if implementation else "")
    small: dict[str, npt.NDArray[np.floating]] = {}
    extra: list[Comparison] = []
    split = chunk_elements if case.settings["chunks"] and baseline is None else None
    parts = units(case, split)
    notes = parts.notes
    if baseline is not None and units(case, chunk_elements).chunked:
        notes += ("not checked in chunks: a baseline compares whole tensors",)
    previous: npt.NDArray[np.generic] | None = None
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
        if case.x.size <= SMALL_TENSOR:
            small = {"input": case.x, "reference": as_array(ref.quantities["output"])}
        produced = _timed(candidates(unit, implementation), clock)
        # Chunks are small: compare every candidate in one pass over the reference blocks.
        # The whole tensor: one candidate at a time, so that one output is alive at a time.
        batches = [list(produced)] if parts.chunked else ([r] for r in produced)
        for batch in batches:
            comparer.feed(offset, reference.layout_of(unit.spec), ref, batch)
            for result in batch:
                stats.add(offset, ref, result)
                if baseline is not None and result.candidate != EXPECTED:
                    extra += drift_checks(result, baseline, layouts)
                # Small tensors show the first backend path and any expected output.
                wanted = len(small) == 2 or result.candidate == EXPECTED
                if small and "output" in result.quantities and wanted:
                    small[result.candidate] = as_array(result.quantities["output"])
    if previous is not None:
        release_pages(previous, case.x)
    checks = comparer.results() + extra
    return Report(
        _header(case, notes),
        tuple(checks),
        stats.table(),
        small,
        strict_baseline=baseline is not None and baseline.strict,
        names=_display_names(implementation, [c.candidate for c in checks] + list(small)),
    )


def _header(case: Case, notes: tuple[str, ...]) -> Header:
    p = case.spec
    return Header(
        case=case.name,
        op=p.op,
        layer=p.description,
        input_shape=p.input_shape,
        input_dtype=case.input_dtype,
        dtype=case.dtype,
        groups=p.groups,
        group_size=p.group_size,
        params=p.params,
        tolerance=case.tolerance.describe(case.dtype, reduced_over(p, "output")),
        device=case.device,
        notes=case.notes + notes,
    )


def _display_names(backend: Backend | None, names: list[str]) -> dict[str, str]:
    if backend is None:
        return {}
    return {name: backend.short_name(name) for name in names if name != EXPECTED}


def _timed(results: Iterator[NormResult], clock: Clock) -> Iterator[NormResult]:
    """The candidates, with the time spent producing them counted as the backend's."""
    while True:
        with clock("backend"):
            result = next(results, None)
        if result is None:
            return
        yield result
