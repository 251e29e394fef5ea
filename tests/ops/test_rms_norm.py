"""RMSNorm: no centring, no bias, torch's own default eps; values by hand and torch's paths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lncheck import ops
from lncheck.ops import rms_norm
from lncheck.reference import normalize

from ..backends.test_conformance import spec_of
from ..support import make_case, settings
from . import matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((3, 4), {"normalized_shape": (4,)}),
    ((3, 4, 2), {"axes": (1,), "eps": 1e-6}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("rms_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("rms_norm", shape, **options)


def test_rms_norm_by_hand() -> None:
    y = normalize([[3.0, 4.0]], "rms_norm", normalized_shape=(2,), eps=0.0)
    np.testing.assert_allclose(y, [[3 / math.sqrt(12.5), 4 / math.sqrt(12.5)]], rtol=1e-15)


def test_spec_has_no_mean_and_no_bias() -> None:
    spec = spec_of("rms_norm", (3, 4), normalized_shape=(4,), eps=1e-6)
    assert not spec.center and spec.affine and not spec.has_bias
    assert spec.eps == 1e-6 and spec.options == {"eps": 1e-6} and not spec.backend_defaults
    assert spec.description == "RMSNorm(normalized_shape=(4,), eps=1e-06, elementwise_affine=True)"


@pytest.mark.parametrize(
    ("dtype", "eps"),
    [("float64", 2.0**-52), ("float32", 2.0**-23), ("float16", 2.0**-23), ("bfloat16", 2.0**-23)],
)
def test_unset_eps_is_left_to_the_backend(dtype: str, eps: float) -> None:
    """Without a backend, torch 2.13's rule stands in; the backend measures it when it runs
    (tests/backends/test_torch.py)."""
    assert rms_norm.default_eps(dtype) == eps
    case = make_case(np.ones((2, 4)), "rms_norm", normalized_shape=(4,), dtype=dtype)
    assert case.spec.eps == eps and case.settings["eps"] is None
    assert case.spec.options["eps"] is None and case.spec.backend_defaults == ("eps",)
    assert case.notes == (f"eps=None: torch uses {eps:.6g} for {dtype} input",)
    measured = spec_of("rms_norm", (2, 4), dtype, normalized_shape=4)
    assert measured.eps == eps


def test_a_backend_default_replaces_the_stand_in() -> None:
    spec = ops.build(settings("rms_norm", normalized_shape=4), (2, 4), "float32", {"eps": 0.5})
    assert spec.eps == 0.5 and spec.notes == ("eps=None: torch uses 0.5 for float32 input",)


def test_a_zero_centred_weight_is_offset_and_needs_a_weight() -> None:
    spec = ops.build(settings("rms_norm", normalized_shape=4, weight_offset=1.0), (2, 4))
    assert spec.weight_offset == 1.0 and spec.params["weight_offset"] == 1.0
    assert "weight_offset=1.0" in spec.description
    assert "weight_offset" in rms_norm.READS
    with pytest.raises(Exception, match=r"weight_offset= scales by \(weight \+ 1\), but the layer"):
        ops.build(settings("rms_norm", normalized_shape=4, weight_offset=1, affine=False), (2, 4))
    # without a weight given, a zero-centred layer starts from zeros: the output is x * rstd * 1
    x = np.random.default_rng(0).standard_normal((2, 4))
    case = make_case(x, "rms_norm", normalized_shape=4, weight_offset=1.0, dtype="float64")
    np.testing.assert_array_equal(case.weight, np.zeros(4))
