"""BatchNorm: training and eval, torch's running-statistics rule by hand, torch, its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lncheck.reference import run as run_reference
from lncheck.result import as_array

from ..backends.test_conformance import spec_of
from ..support import make_case
from . import error_of, matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((8, 3), {}),
    ((4, 3, 5), {"momentum": "none"}),
    ((4, 3, 2, 2), {"training": False}),
    ((4, 2, 2, 3), {"channel_axis": -1}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("batch_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("batch_norm", shape, **options)


def test_batch_norm_training_and_running_update_by_hand() -> None:
    x = np.array(
        [[1.0, 10.0], [3.0, 30.0]]
    )  # channel 0: mean 2, var 1; channel 1: mean 20, var 100
    case = make_case(x, "batch_norm", eps=0.0, dtype="float64")
    ref = run_reference(case).quantities
    np.testing.assert_array_equal(as_array(ref["output"]), [[-1.0, -1.0], [1.0, 1.0]])
    # fresh running stats (0, 1), momentum 0.1; the running variance takes the unbiased (N-1)
    # batch variance: 2 and 200, not the biased 1 and 100 used to normalize.
    np.testing.assert_allclose(ref["running_mean"], [0.2, 2.0], rtol=1e-15)
    np.testing.assert_allclose(ref["running_var"], [0.9 + 0.2, 0.9 + 20.0], rtol=1e-15)


def test_batch_norm_cumulative_average_by_hand() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    case = make_case(
        x,
        "batch_norm",
        momentum="none",
        dtype="float64",
        running_mean=[5.0, 5.0],
        running_var=[9.0, 9.0],
    )
    assert case.spec.momentum_factor == 1.0 and case.spec.options["momentum"] is None
    ref = run_reference(case).quantities
    # momentum=None on a fresh module: factor 1 / num_batches_tracked = 1, so the batch stats win
    np.testing.assert_array_equal(ref["running_mean"], [2.0, 20.0])
    np.testing.assert_array_equal(ref["running_var"], [2.0, 200.0])


def test_batch_norm_eval_by_hand() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    case = make_case(
        x,
        "batch_norm",
        training=False,
        eps=0.0,
        dtype="float64",
        running_mean=[1.0, 1.0],
        running_var=[4.0, 4.0],
    )
    y = as_array(run_reference(case).quantities["output"])
    np.testing.assert_array_equal(y, [[0.0, 4.5], [1.0, 14.5]])


def test_spec_per_channel() -> None:
    spec = spec_of("batch_norm", (4, 3, 2, 2))
    assert spec.module == "BatchNorm2d" and spec.reduce_axes == (0, 2, 3)
    assert spec.group_shape == (3,) and spec.stats_shape == (3,) and spec.channel_group_axis == 0
    assert spec.update_running_stats and not spec.use_running_stats
    assert spec.momentum_factor == 0.1
    assert spec_of("batch_norm", (4, 3)).module == "BatchNorm1d"
    assert spec_of("batch_norm", (4, 3, 2, 2, 2)).module == "BatchNorm3d"
    eval_spec = spec_of("batch_norm", (4, 3), training=False)
    assert eval_spec.use_running_stats and not eval_spec.update_running_stats
    assert eval_spec.description.endswith(".eval()")


def test_without_tracking_training_and_eval_both_use_the_batch() -> None:
    spec = spec_of("batch_norm", (4, 3), track_running_stats=False, training=False)
    assert not spec.use_running_stats and not spec.update_running_stats and not spec.stats_shape


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((1, 3), {}, "BatchNorm in training needs more than one value per channel"),
        ((4, 3), {"training": False}, "eval mode normalizes with running statistics"),
        (
            (4, 3),
            {"running_mean": np.zeros(2)},
            "running_mean has shape (2,); --running-mean must have shape (3,)",
        ),
        ((4, 3, 2, 2, 2, 2), {}, "BatchNorm needs an input with 2 to 5 dims"),
        # running statistics that make every output NaN are the caller's, not torch's error
        (
            (4, 3),
            {"training": False, "running_mean": np.zeros(3), "running_var": [1.0, -1.0, 1.0]},
            "running_var values must be at least 0, got -1",
        ),
        (
            (4, 3),
            {"running_mean": [0.0, np.nan, 0.0], "running_var": np.ones(3)},
            "running_mean values must be numbers, not NaN, got nan",
        ),
        (
            (4, 3),
            {"running_mean": np.zeros(3), "running_var": [np.nan, 1.0, 1.0]},
            "running_var values must be at least 0, got nan",
        ),
        # eval with var + eps = 0 divides by zero: torch's folded shift was NaN, the reference
        # inf, and the check a "mismatch" of torch's
        (
            (4, 3),
            {"training": False, "eps": 0.0, "running_mean": np.zeros(3), "running_var": [1, 0, 1]},
            "running_var is 0 where --eps is 0 (as rounded to the compute dtype): the layer "
            "divides by zero there",
        ),
        (  # 1e-30 is 0 in float16
            (4, 3),
            {
                "training": False,
                "eps": 0.0,
                "dtype": "float16",
                "running_mean": np.zeros(3),
                "running_var": [1, 1e-30, 1],
            },
            "running_var is 0 where --eps is 0 (as rounded to the compute dtype)",
        ),
        # a momentum that weighs nothing: no running statistics are updated
        (
            (4, 3),
            {"momentum": 0.2, "training": False, "running_mean": np.zeros(3)},
            "--momentum does nothing here: batch_norm updates no running statistics in eval",
        ),
        (
            (4, 3),
            {"momentum": "none", "track_running_stats": False},
            "--momentum does nothing here: batch_norm keeps no running statistics with "
            "--track-running-stats off",
        ),
    ],
)
def test_errors(shape: tuple[int, ...], options: dict[str, Any], message: str) -> None:
    assert message in error_of("batch_norm", shape, **options)


def test_a_running_variance_beyond_float16_is_checked_with_a_note_not_refused() -> None:
    """Finite as given (1e6), inf once rounded to float16 as torch's float16 buffer holds it:
    the note says so, and the check runs, as it does for an infinite variance given."""
    x = np.random.default_rng(0).normal(0, 1000, (4, 3)).astype(np.float16)
    case = make_case(
        x, "batch_norm", training=False, dtype="float16",
        running_mean=np.zeros(3), running_var=np.full(3, 1e6),
    )  # fmt: skip
    assert "3 running_var values beyond float16's range became inf" in case.notes
    assert np.isinf(case.running_var).all()
    given = make_case(
        x, "batch_norm", training=False, running_mean=np.zeros(3), running_var=np.full(3, np.inf)
    )
    assert np.isinf(given.running_var).all()
