"""The example suite ``lncheck init-suite`` writes: every op, commented, passing as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lncheck.errors import InputError
from lncheck.sources import renamed

SUITE = """\
# An lncheck suite: `lncheck run {name}` checks every case against the float64 reference.
# Keys are the options of `lncheck compare`, with underscores (channel_axis, running_mean, ...).
# Paths are relative to this file. Exit status: 0 all passed, 1 a case failed, 2 invalid input.

[defaults]                 # applied to every case that reads them; a case overrides them
dtype = "float32"
tolerance = "auto"         # the error bound from dtype, group size and conditioning

[[case]]
name = "layer_norm-tokens"  # a transformer activation: (batch, seq, dim), statistics per token
input = "{input}"           # a file written beside this suite
shape = [64]

[[case]]
name = "layer_norm-large-mean"
random = {{ shape = [16, 256], seed = 1, dist = "normal", mean = 1000.0, std = 1.0 }}
shape = [256]               # float32 cancellation here is not a bug: auto knows it

[[case]]
name = "layer_norm-axes-gelu"
random = {{ shape = [4, 8, 6], seed = 2 }}
axes = [0, 2]               # TF/Keras style: any set of axes
activation = "gelu"         # checked too, as the quantity "activation"
grad = true                 # and the backward pass: grad_input, grad_weight, grad_bias

[[case]]
name = "group_norm"
random = {{ shape = [2, 8, 5, 5], seed = 3 }}
op = "group_norm"
groups = 4

[[case]]
name = "group_norm-nhwc"
random = {{ shape = [2, 5, 5, 8], seed = 4 }}
op = "group_norm"
groups = 2
channel_axis = -1           # channels-last data

[[case]]
name = "instance_norm"
random = {{ shape = [2, 3, 6, 6], seed = 5 }}
op = "instance_norm"
affine = true
track_running_stats = true  # checks the updated running statistics too

[[case]]
name = "batch_norm-train"
random = {{ shape = [16, 4, 3, 3], seed = 6, dist = "uniform", low = -2.0, high = 2.0 }}
op = "batch_norm"
momentum = "none"           # the cumulative moving average

[[case]]
name = "batch_norm-float16"
random = {{ shape = [32, 8], seed = 7 }}
op = "batch_norm"
dtype = "float16"
accept = "low-precision"    # torch's CPU kernel keeps its batch mean and rstd in float16

[[case]]
name = "rms_norm"
random = {{ shape = [4, 128], seed = 8 }}
op = "rms_norm"
shape = [128]               # eps unset: torch's own default, measured on the installed torch

[[case]]
name = "local_response_norm"
random = {{ shape = [2, 8, 4, 4], seed = 9 }}
op = "local_response_norm"
size = 4                    # an even window: torch pads size // 2 channels in front

[[case]]
name = "fixed-tolerance-cries-wolf"
random = {{ shape = [64, 1024], seed = 10, mean = 1000.0 }}
shape = [1024]
tolerance = "fixed"         # torch.testing's table: torch is correct here, yet it fails
xfail = "the fixed tolerance table flags float32 cancellation at mean 1000"

[[case]]
name = "on-a-gpu"
random = {{ shape = [8, 64], seed = 11 }}
shape = [64]
device = "cuda"
vs_device = "cpu"
skip = "needs a CUDA device: remove this line where there is one"
"""


def write_example_suite(path: str | Path, *, force: bool = False) -> list[Path]:
    """Write the example suite to ``path`` and its input file beside it; return both paths.

    Raises:
        InputError: ``path`` is empty, a folder, a name starting with ``-`` or not ending
            in ``.toml``, a file exists already (without ``force``), or one cannot be written.
    """
    text, path = str(path), Path(path)
    if not text:
        raise InputError("an empty name: give the suite file's name (suite.toml)")
    if text.endswith(("/", "/.", "/..")) or path.name in ("", ".", "..") or path.is_dir():
        raise InputError(f"{text or '.'}: is a folder; give the suite file's name (suite.toml)")
    if text.startswith("-"):  # "-" is standard input or output to every other command
        raise InputError(f"{text}: give the suite file's name (suite.toml), not one starting '-'")
    if path.suffix.lower() != ".toml":  # every reader of a .json or .npz name expects that
        raise InputError(f"{text}: a suite is a TOML file; name it {renamed(text, '.toml')}")
    data = path.with_name(f"{path.stem}-tokens.npy")
    for target in (path, data):
        if target.exists() and not force:
            raise InputError(f"{target} exists already: use --force to overwrite it")
    tokens = np.random.default_rng(0).normal(0.0, 1.0, size=(2, 16, 64)).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(data, tokens)
        path.write_text(SUITE.format(name=path.name, input=data.name), encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
    return [path, data]
