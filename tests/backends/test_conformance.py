"""Every registered backend against the reference: every op, every dtype, through one helper.

As einops' ``check_op_against_numpy`` takes the backend as a parameter, ``assert_matches_reference``
takes the backend's name: a new backend in ``lncheck.backends.BACKENDS`` is checked on every op
and dtype without a line of test of its own. Combinations the backend's library itself cannot
run here are skipped with its reason (torch has no float16 LocalResponseNorm kernel for 4-D
inputs on the CPU, so the LocalResponseNorm case here is 3-D and every combination runs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lncheck import gradients, ops, pipeline
from lncheck.backends import BACKENDS
from lncheck.errors import BackendUnavailable, InputError
from lncheck.ops import OP_NAMES
from lncheck.ops.spec import NormSpec
from lncheck.report import Report
from lncheck.tolerance_spec import ToleranceSpec

from ..support import make_case, settings

DTYPES = ("float64", "float32", "float16", "bfloat16")
TIGHT = ToleranceSpec.from_options(1e-10, 1e-10)

# One small layer per op, with every optional array the op takes (weight, bias, running stats).
SMALL: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "layer_norm": ((3, 4, 5), {"normalized_shape": (5,)}),
    "group_norm": ((2, 4, 3, 3), {"groups": 2}),
    "instance_norm": ((2, 3, 4, 4), {"affine": True, "track_running_stats": True}),
    "batch_norm": ((4, 3, 2, 2), {}),
    "rms_norm": ((3, 4, 6), {"normalized_shape": (6,)}),
    "local_response_norm": ((2, 5, 4), {"size": 3}),  # 4-D: no float16 kernel on the CPU
}


# Known findings: torch's CPU BatchNorm (and InstanceNorm, which runs on it) rounds the batch
# mean and rstd to float16/bfloat16 before normalizing, as a bit-exact model shows
# (tests/backends/test_torch.py): the right function with statistics kept in the compute
# dtype, the ``low_precision`` accuracy class. Those combinations must be exactly that.
LOW_PRECISION = {
    ("torch", op, dtype)
    for op in ("batch_norm", "instance_norm")
    for dtype in ("float16", "bfloat16")
}


def random_parameters(spec: NormSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Weight, bias and running statistics that fit ``spec``, drawn from ``rng``."""
    arrays: dict[str, np.ndarray] = {}
    if spec.affine:
        arrays["weight"] = rng.normal(1, 0.5, spec.param_shape)
        if spec.has_bias:
            arrays["bias"] = rng.normal(0, 0.5, spec.param_shape)
    if spec.stats_shape:
        arrays["running_mean"] = rng.normal(0, 0.5, spec.stats_shape)
        arrays["running_var"] = rng.uniform(0.5, 2, spec.stats_shape)
    return arrays


def spec_of(op: str, shape: tuple[int, ...], dtype: str = "float64", /, **options: Any) -> NormSpec:
    """The spec ``op`` with ``options`` has on an input of ``shape``."""
    return ops.build(settings(op, **options), shape, dtype)


def produced_quantities(report: Report) -> dict[str, set[str]]:
    """Candidate -> the quantities checked for it."""
    found: dict[str, set[str]] = {}
    for c in report.checks:
        found.setdefault(c.candidate, set()).add(c.quantity)
    return found


def assert_matches_reference(
    backend: str,
    op: str,
    dtype: str,
    shape: tuple[int, ...],
    /,
    *,
    seed: int = 0,
    tolerance: ToleranceSpec | None = None,
    **options: Any,
) -> Report:
    """Run every path of ``backend`` for ``op`` on a random input of ``shape`` in ``dtype`` and
    require every check against the reference to pass, and every quantity the backend produced
    to have been checked (a quantity the reference does not know would go unchecked).

    ``options`` are the op's options and any arrays (``weight=``, ``running_mean=``, ...).
    Raises ``BackendUnavailable`` where the backend's library cannot run the case here.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.5, 2), size=shape)
    case = make_case(x, op, dtype=dtype, backend=backend, tolerance=tolerance, **options)
    report = pipeline.check_case(case, backend)
    assert report.passed, "\n".join(c.message() for c in report.failures)
    implementation = pipeline.backend_for(case, backend)
    resolved = pipeline.resolved(case, implementation)
    made = {
        r.candidate: set(r.quantities)
        for r in pipeline.candidates(resolved, implementation, files=False)
    }
    assert made, f"{backend} produced no candidate for {op}"
    assert produced_quantities(report) == made  # nothing a backend produced went unchecked
    return report


def _combinations() -> Iterator[Any]:
    for backend in BACKENDS:
        for op in OP_NAMES:
            for dtype in DTYPES:
                yield pytest.param(backend, op, dtype, id=f"{backend}-{op}-{dtype}")


def test_every_op_has_a_conformance_case() -> None:
    assert set(SMALL) == set(OP_NAMES)


@pytest.mark.parametrize(("backend", "op", "dtype"), list(_combinations()))
def test_backend_matches_the_reference(backend: str, op: str, dtype: str) -> None:
    shape, options = SMALL[op]
    spec = spec_of(op, shape, dtype, **options)
    arrays = random_parameters(spec, np.random.default_rng(1))
    try:
        gradients.check_supported(spec)
        grad = True
    except InputError:
        grad = False  # the analytic backward covers the mean/variance ops only
    known = (backend, op, dtype) in LOW_PRECISION
    if known:
        options = {**options, "accept": "low-precision"}
    try:
        report = assert_matches_reference(backend, op, dtype, shape, grad=grad, **options, **arrays)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    classes = {c.accuracy_class for c in report.checks if c.quantity == "output"}
    assert ("low_precision" in classes) == known, classes
    made = produced_quantities(report)
    want = {"output"}
    if grad:
        want |= {"grad_input", "grad_weight"} | ({"grad_bias"} if spec.has_bias else set())
    for candidate, quantities in made.items():
        assert want <= quantities, (candidate, want - quantities)
        if "rstd" in quantities:  # the shared convention: a variance wherever rstd is returned
            assert "var" in quantities, candidate
    if spec.update_running_stats:
        assert any({"running_mean", "running_var"} <= q for q in made.values())
    assert all(c.total > 0 for c in report.checks)
    assert report.header.op == op and report.header.dtype == dtype


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_most_combinations_run(backend: str) -> None:
    """Skipping is for the backend library's own gaps, not a way to pass: most combinations
    must really run."""
    unavailable = []
    for op in OP_NAMES:
        shape, options = SMALL[op]
        for dtype in DTYPES:
            x = np.random.default_rng(0).normal(size=shape)
            case = make_case(x, op, dtype=dtype, backend=backend, **options)
            try:
                pipeline.check_case(case, backend)
            except BackendUnavailable:
                unavailable.append((op, dtype))
    assert len(unavailable) <= 2, unavailable


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_activations_are_checked_on_every_path(backend: str) -> None:
    report = assert_matches_reference(
        backend, "layer_norm", "float32", (2, 6), normalized_shape=(6,), activation="gelu"
    )
    for candidate, quantities in produced_quantities(report).items():
        assert {"output", "activation"} <= quantities, candidate


# --- float64 agreement over random shapes and parameters ---------------------------------------


@st.composite
def random_layers(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    op = draw(st.sampled_from(OP_NAMES))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 6))
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    shape = (n, c, *spatial)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    if op in ("layer_norm", "rms_norm"):
        k = draw(st.integers(1, len(shape)))
        return op, shape, {"normalized_shape": shape[-k:], "eps": eps}
    if op == "group_norm":
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        if math.prod(shape) == groups:  # torch rejects one value per group (tests/ops)
            shape = (2, *shape[1:])
        return op, shape, {"groups": groups, "eps": eps}
    if op == "instance_norm":
        if math.prod(spatial) == 1:
            shape = (n, c, 2, *spatial[1:])
        return op, shape[:5], {"eps": eps, "affine": draw(st.booleans())}
    if op == "batch_norm":
        if n * math.prod(spatial) == 1:
            shape = (2, *shape[1:])
        return op, shape[:5], {"eps": eps, "training": True}
    size = draw(st.integers(1, 5))
    return (
        op,
        shape,
        {
            "size": size,
            "alpha": draw(st.floats(1e-4, 1)),
            "beta": draw(st.floats(0.1, 1)),
            "k": draw(st.floats(0.5, 2)),
        },
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
@given(layer=random_layers(), seed=st.integers(0, 1000))
def test_random_layers_match_in_float64(
    backend: str, layer: tuple[str, tuple[int, ...], dict[str, Any]], seed: int
) -> None:
    op, shape, options = layer
    arrays = random_parameters(spec_of(op, shape, **options), np.random.default_rng(seed))
    assert_matches_reference(
        backend, op, "float64", shape, seed=seed, tolerance=TIGHT, **options, **arrays
    )
