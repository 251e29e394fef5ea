"""Reading .pt files (``lncheck.backends.torch.files``): what a refused pickle is called."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lncheck.backends.torch.files import _reason

from ..cli.helpers import assert_user_error, invoke


class _System:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch PWNED",))


def test_a_refused_pickle_names_the_global_not_torchs_advice(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"input": _System()}, evil)
    line = assert_user_error(
        invoke("compare", str(evil), "--shape", "4"),
        f"{evil}: cannot load safely with weights_only=True: ",
        "GLOBAL posix.system",
    )
    assert "Re-running" not in line and "weights_only` set to `False`" not in line
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_the_reason_of_each_shape_of_torchs_message() -> None:
    advice = (
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument. Re-running `torch.load` with `weights_only` set to `False` "
        "will likely succeed.\n"
    )
    link = "\n\nCheck the documentation of torch.load to learn more https://pytorch.org"
    after = "\tWeightsUnpickler error: Unsupported global: GLOBAL io.open was not an allowed "
    after += "global by default. Please use `torch.serialization.add_safe_globals([io.open])`"
    assert _reason(RuntimeError(advice + after + link)) == (
        "Unsupported global: GLOBAL io.open was not an allowed global by default."
    )
    below = "Please file an issue: WeightsUnpickler error: \n\nUnsupported operand 0"
    assert _reason(RuntimeError(advice + below + link)) == "Unsupported operand 0"
    zip_error = "PytorchStreamReader failed reading zip archive: failed finding central directory"
    assert _reason(RuntimeError(zip_error)) == zip_error
    assert _reason(EOFError()) == "EOFError"
