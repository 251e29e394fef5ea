"""The op registry, and the errors every op's spec building shares."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lncheck import ops
from lncheck.errors import InputError
from lncheck.ops import OP_NAMES, OPS
from lncheck.options import OPTIONS

from ..support import settings
from . import error_of

CHANNEL_OPS = {
    "group_norm": {"groups": 1},
    "instance_norm": {},
    "batch_norm": {},
    "local_response_norm": {"size": 2},
}


def test_the_registry_lists_every_op_once() -> None:
    assert OP_NAMES == (
        "layer_norm",
        "group_norm",
        "instance_norm",
        "batch_norm",
        "rms_norm",
        "local_response_norm",
    )
    assert tuple(OPS) == OP_NAMES


@pytest.mark.parametrize("name", OP_NAMES)
def test_every_op_module_declares_itself(name: str) -> None:
    module = ops.module(name)
    assert name == module.NAME and module.__name__ == OPS[name]
    assert module.SUMMARY and callable(module.build)
    assert all(OPTIONS[option].per_op for option in module.READS)  # only per-op options


def test_unknown_op() -> None:
    with pytest.raises(InputError, match=r"^op: unknown op 'layernorm' \(known: layer_norm, "):
        ops.module("layernorm")


def test_readers_of_an_option() -> None:
    assert ops.readers_of("groups") == ["group_norm"]
    assert ops.readers_of("eps") == [
        "layer_norm",
        "group_norm",
        "instance_norm",
        "batch_norm",
        "rms_norm",
    ]
    assert ops.readers_of("channel_axis") == [*CHANNEL_OPS]


def test_build_fills_in_what_every_op_shares() -> None:
    spec = ops.build(
        settings("batch_norm", channel_axis=-1, activation="relu"), (4, 2, 3), "float32"
    )
    assert spec.activation is not None and str(spec.activation) == "relu"
    assert spec.params["channel_axis"] == 2 and spec.params["activation"] == "relu"
    assert spec.description.endswith(".train() on channel axis 2 -> relu")


def test_an_option_the_op_does_not_read() -> None:
    message = error_of("layer_norm", (2, 3), "api", normalized_shape=3, groups=2)
    assert "groups= does not apply to layer_norm (it is read by group_norm)" in message
    message = error_of("layer_norm", (2, 3), "cli", normalized_shape=3, size=2)
    assert "--size does not apply to layer_norm (it is read by local_response_norm)" in message


def test_a_scalar_input() -> None:
    with pytest.raises(InputError, match="input is a scalar"):
        ops.build(settings("layer_norm", normalized_shape=1), ())


@pytest.mark.parametrize("op", OP_NAMES[:-1])
def test_eps_must_be_finite(op: str) -> None:
    assert "--eps must be finite" in error_of(op, (2, 3), eps=math.inf)
    assert "eps= must be finite" in error_of(op, (2, 3), "api", eps=math.nan)


@pytest.mark.parametrize(("op", "options"), CHANNEL_OPS.items(), ids=list(CHANNEL_OPS))
@pytest.mark.parametrize(
    ("axis", "message"),
    [
        (0, "--channel-axis 0 is the batch axis"),
        (-4, "--channel-axis -4 (axis 0) is the batch axis"),  # as typed, and what it means
        (5, "--channel-axis 5 is out of range"),
        (-6, "--channel-axis -6 is out of range for an input with 4 dims"),
    ],
)
def test_channel_axis_errors(op: str, options: dict[str, Any], axis: int, message: str) -> None:
    assert message in error_of(op, (4, 3, 2, 2), channel_axis=axis, **options)


def test_channel_axis_errors_of_a_2d_batch_norm() -> None:
    assert "--channel-axis 0 is the batch axis" in error_of("batch_norm", (4, 3), channel_axis=0)
    assert "--channel-axis 5 is out of range" in error_of("batch_norm", (4, 3), channel_axis=5)
