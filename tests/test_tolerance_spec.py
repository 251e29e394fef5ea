"""What the user asks for (``lncheck.tolerance_spec``): the fixed table, explicit values and
their errors in the caller's spelling, the modes from the command line, and the ``(rtol,
atol)`` a bound comes to."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lncheck import tolerances
from lncheck.cli import app
from lncheck.errors import InputError
from lncheck.result import Bound
from lncheck.tolerance_spec import DEFAULTS, ToleranceSpec, applied
from lncheck.tolerances import coefficients

from .conftest import EXAMPLES
from .support import make_case

cli = CliRunner()


# --- the fixed table and explicit tolerances -----------------------------------------------------


def test_tolerance_table_and_both_or_neither() -> None:
    assert DEFAULTS["float32"] == (1.3e-6, 1e-5)
    assert ToleranceSpec().resolve("bfloat16") == (1.6e-2, 1e-5)
    assert ToleranceSpec.from_options(1e-3, 0.0).resolve("float32") == (1e-3, 0.0)
    with pytest.raises(InputError, match=r"^rtol was given without atol: give both or neither$"):
        ToleranceSpec.from_options(1e-3, None)
    with pytest.raises(InputError, match=r"^atol was given without rtol"):
        ToleranceSpec.from_options(None, 1e-3)
    with pytest.raises(InputError, match=r"^atol must be a finite number >= 0, got -1.0$"):
        ToleranceSpec.from_options(0.0, -1.0)


def test_tolerance_errors_name_the_options_as_the_caller_did() -> None:
    x = np.ones((2, 4))
    with pytest.raises(InputError, match=r"^rtol= was given without atol=: give both or neither"):
        make_case(x, normalized_shape=4, rtol=1e-3)
    result = cli.invoke(
        app, ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--rtol", "1e-3"]
    )
    assert result.exit_code == 2
    assert "--rtol was given without --atol: give both or neither" in result.stderr


def test_tolerance_modes_from_the_command_line() -> None:
    args = ["compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", "--json"]
    auto = json.loads(cli.invoke(app, args).stdout)
    fixed = json.loads(cli.invoke(app, [*args, "--tolerance", "fixed"]).stdout)
    assert auto["tolerance"].startswith("auto: rtol=")
    assert fixed["tolerance"] == "fixed: rtol=1.3e-06, atol=1e-05"
    assert {c["rtol"] for c in fixed["checks"]} == {1.3e-6}
    both = cli.invoke(app, [*args, "--tolerance", "fixed", "--rtol", "1", "--atol", "1"])
    assert both.exit_code == 2 and "contradict" in both.stderr


# --- the (rtol, atol) a bound comes to --------------------------------------------------------


def test_applied_weighs_each_term() -> None:
    bound = Bound("relative", {"spread": np.array([1.0, 2.0]), "fixed": 0.5})
    rtol, atol = applied(ToleranceSpec(), "float32", 16, bound)
    w = coefficients("float32", 16)
    assert rtol == w["relative"]
    floor = tolerances.atol_floor("float32")
    np.testing.assert_allclose(
        atol, floor + w["spread"] * np.array([1.0, 2.0]) + w["fixed"] * 0.5, rtol=1e-15
    )
    assert applied(ToleranceSpec(mode="fixed"), "float32", 16, bound) == DEFAULTS["float32"]
    assert applied(ToleranceSpec(), "float32", 16, None) == (w["relative"], floor)


def test_describe() -> None:
    assert ToleranceSpec(mode="fixed").describe("float32", 4) == "fixed: rtol=1.3e-06, atol=1e-05"
    explicit = ToleranceSpec.from_options(1e-3, 0.0)
    assert explicit.describe("float16", 4) == "explicit: rtol=0.001, atol=0"
    assert ToleranceSpec().describe("float32", 64).startswith("auto: rtol=")
    assert "groups of 64" in ToleranceSpec().describe("float32", 64)
