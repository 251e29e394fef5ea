"""InstanceNorm: its spec (1d/2d/3d, running statistics when tracked), values, torch, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lncheck
from lncheck.options import Surface
from lncheck.reference import normalize

from ..backends.test_conformance import spec_of
from . import error_of, matches_torch_in_float32, matches_torch_in_float64

CONFIGS = [
    ((2, 3, 7), {}),
    ((2, 3, 4, 4), {"affine": True, "track_running_stats": True}),
    ((2, 3, 2, 2, 2), {"track_running_stats": True, "training": False}),
]


@pytest.mark.parametrize(("shape", "options"), CONFIGS, ids=str)
class TestMatchesTorch:
    def test_float64_to_1e_10(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float64("instance_norm", shape, **options)

    def test_float32(self, shape: tuple[int, ...], options: dict[str, Any]) -> None:
        matches_torch_in_float32("instance_norm", shape, **options)


def test_instance_norm_by_hand() -> None:
    y = normalize(np.array([[[1.0, 3.0], [0.0, 4.0]]]), "instance_norm", eps=0.0)
    np.testing.assert_array_equal(y, [[[-1.0, 1.0], [-1.0, 1.0]]])


def test_a_constant_instance_with_eps_zero_is_undefined_and_says_so() -> None:
    # 0 / 0: the reference is NaN there, torch's CPU kernel returns 0
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    x[0] = 1.5
    report = lncheck.compare(x, "instance_norm", eps=0.0)
    for c in report.checks:
        assert not c.passed and c.nan_reference_only == 36
        assert "the reference is NaN at 36 elements where the candidate is not" in (
            c.explanation or ""  # in JSON's explanation too
        )


@pytest.mark.parametrize(("shape", "module"), [((2, 3, 4), "1d"), ((2, 3, 4, 4), "2d")])
def test_spec_per_sample_and_channel(shape: tuple[int, ...], module: str) -> None:
    spec = spec_of("instance_norm", shape)
    assert spec.module == f"InstanceNorm{module}" and spec.group_shape == (2, 3)
    assert spec.reduce_axes == tuple(range(2, len(shape)))
    assert not spec.affine and not spec.stats_shape  # torch's defaults: no affine, no tracking
    assert spec.description.endswith(".train()")


def test_spec_in_eval_with_tracked_statistics() -> None:
    spec = spec_of("instance_norm", (2, 3, 4), track_running_stats=True, training=False)
    assert spec.use_running_stats and not spec.update_running_stats
    assert spec.stats_shape == (3,) and spec.channel_group_axis == 1
    assert spec.description.endswith(".eval()")
    tracked = spec_of("instance_norm", (2, 3, 4), track_running_stats=True)
    assert tracked.update_running_stats and tracked.momentum_factor == 0.1


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((2, 6), {}, "InstanceNorm needs an input with 3 to 5 dims"),
        ((2, 6, 1), {}, "more than one spatial element"),
        ((2, 3, 4, 4, 4, 4), {}, "InstanceNorm needs an input with 3 to 5 dims"),
        (
            (4, 3, 2),
            {"running_mean": np.zeros(3)},
            "keeps no running statistics (see --track-running-stats)",
        ),
        (
            (4, 3, 2),
            {"momentum": 0.3},
            "--momentum does nothing here: instance_norm keeps no running statistics with "
            "--track-running-stats off",
        ),
    ],
)
def test_errors(shape: tuple[int, ...], options: dict[str, Any], message: str) -> None:
    assert message in error_of("instance_norm", shape, **options)


@pytest.mark.parametrize(
    ("surface", "training", "named", "track"),
    [
        ("cli", False, "--eval", "--track-running-stats"),
        ("cli", True, "--train", "--track-running-stats"),
        ("suite", False, "key 'training'", "key 'track_running_stats'"),
        ("api", False, "training=", "track_running_stats="),
    ],
)
def test_train_or_eval_without_running_statistics_is_refused(
    surface: Surface, training: bool, named: str, track: str
) -> None:
    # train and eval are the same layer without running statistics: torch normalizes with the
    # instance's statistics in both, and the header's ".eval()" said otherwise
    message = error_of("instance_norm", (4, 3, 2), surface, training=training)
    assert message == (
        f"{named} does nothing here: instance_norm keeps no running statistics with {track} "
        "off, and normalizes with the batch's statistics in train and eval alike"
    )


def test_a_momentum_that_weighs_nothing_is_named_as_each_caller_spells_it() -> None:
    suite = error_of("instance_norm", (4, 3, 2), "suite", momentum=0.3)
    assert suite == (
        "key 'momentum' does nothing here: instance_norm keeps no running statistics with "
        "key 'track_running_stats' off"
    )
    api = error_of(
        "instance_norm", (4, 3, 2), "api", momentum=0.3, track_running_stats=True, training=False
    )
    assert api == "momentum= does nothing here: instance_norm updates no running statistics in eval"
