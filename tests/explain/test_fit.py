"""The pieces of the search: precision from values, the eps interval, the choice of eps, the
structures searched, and the pins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lncheck.errors import InputError
from lncheck.explain import eps as epsilon
from lncheck.explain import explain, quick
from lncheck.explain import fit as fits
from lncheck.explain.confirm import value_precision
from lncheck.explain.hypotheses import Denominator, Pins, structures
from lncheck.explain.report import eps_text
from lncheck.loading import load
from lncheck.options import parse

from .conventions import normalize, rounded


@pytest.mark.parametrize(
    ("dtype", "stored", "expected"),
    [
        ("bfloat16", np.float32, "bfloat16"),
        ("float16", np.float32, "float16"),
        ("float16", np.float16, "float16"),
        ("float32", np.float32, "float32"),
        ("float64", np.float64, "float64"),
    ],
)
def test_value_precision_reads_the_rounding_from_the_values(dtype, stored, expected) -> None:
    y = rounded(np.random.default_rng(0).normal(size=(32, 64)), dtype).astype(stored)
    assert value_precision(y) == expected


def test_eps_text_is_the_shortest_exact_spelling() -> None:
    assert [eps_text(e) for e in (1e-5, 3.3e-4, 1e-12, 0.0, 2.5e-6)] == [
        "1e-5",
        "3.3e-4",
        "1e-12",
        "0.0",
        "2.5e-6",
    ]
    # from 1 up, a plain float (it read 2e0), as torch's eps= takes it
    assert [eps_text(e) for e in (2.0, 12.5, -1.0, 1e4)] == ["2.0", "12.5", "-1.0", "1e4"]


def _full_fit(x: np.ndarray, y: np.ndarray) -> fits.GroupFit:
    s = structures(x.shape, Pins(op="layer_norm", axes=(x.ndim - 1,)))[0]
    sample = fits.take_sample(s.layout, x, y)
    rho = fits.sample_fit(s.layout, sample, None, None, "float32").rho
    return fits.full_fit(s.layout, x, y, None, None, rho, fits.Deadline(None))


def test_the_eps_interval_brackets_the_true_eps_when_groups_show_it() -> None:
    x = (np.random.default_rng(1).normal(size=(64, 32)) * np.logspace(-3, 0, 64)[:, None]).astype(
        np.float32
    )
    fit = _full_fit(x, rounded(normalize(x, (-1,), 3.3e-4), "float32"))
    loose = epsilon.eps_interval(fit, Denominator(), True, "float32")
    tight = epsilon.eps_interval(fit, Denominator(), True, "float32", systematic=False)
    assert loose.identifiable and loose.low < tight.low < 3.3e-4 < tight.high < loose.high
    assert abs(tight.estimate - 3.3e-4) < 1e-9
    # the wrong estimator implies no single eps
    assert not epsilon.eps_interval(fit, Denominator("unbiased"), True, "float32").feasible
    choice = epsilon.choose_eps(loose, tight, (1e-5, 1e-3), None, True)
    assert choice is not None and choice.fitted and choice.eps == 3.3e-4


def test_eps_is_not_identifiable_where_every_variance_dwarfs_it() -> None:
    x = np.random.default_rng(2).normal(size=(64, 32)).astype(np.float32)
    fit = _full_fit(x, rounded(normalize(x, (-1,), 1e-12), "float32"))
    loose = epsilon.eps_interval(fit, Denominator(), True, "float32")
    assert loose.feasible and not loose.identifiable and loose.low < 0 < 1e-7 < loose.high
    # the usual values the tight interval allows come first, in the prior's order
    tight = epsilon.eps_interval(fit, Denominator(), True, "float32", systematic=False)
    choice = epsilon.choose_eps(loose, tight, (1e-5, 1e-6, 1e-12, 0.0), None, True)
    assert choice is not None and not choice.fitted and not choice.identifiable
    assert choice.eps == 1e-12 and 0.0 in choice.alternatives
    # a pinned eps is taken when the groups allow it, refused when they do not
    pinned = epsilon.choose_eps(loose, tight, (1e-5,), 1e-8, True)
    assert pinned is not None and pinned.eps == 1e-8
    assert epsilon.choose_eps(loose, tight, (1e-5,), 0.5, True) is None


def test_shortest_keeps_a_fitted_eps_inside_its_interval() -> None:
    assert epsilon.shortest(3.30000012e-4, 3.2999e-4, 3.3001e-4) == 3.3e-4
    assert epsilon.shortest(1.23456e-3, 1.23455e-3, 1.23457e-3) == 1.23456e-3


def test_repeated_input_values_widen_the_standard_errors() -> None:
    # bfloat16 inputs: 256 values per power of two, so values repeat within a group of 1024
    x = rounded(np.random.default_rng(3).normal(size=(8, 1024)), "bfloat16")
    assert fits._repeats(np.asarray(x, dtype=np.float64)) > 1.5
    assert fits._repeats(np.random.default_rng(3).normal(size=(8, 1024))) == 1.0


def test_structures_cover_suffixes_axis_sets_and_group_counts() -> None:
    found = structures((2, 6, 4), Pins())
    layer = {s.axes for s in found if s.op == "layer_norm"}
    assert {(2,), (1, 2), (0, 1, 2), (0,), (1,), (0, 1), (0, 2)} == layer
    groups = {(s.groups, s.grouping, s.channel_axis) for s in found if s.op == "group_norm"}
    # 6 channels on axis 1: 2 and 3 groups both ways, 1 and 6 once; 4 on the last axis
    assert (2, "interleaved", 1) in groups and (3, "contiguous", 1) in groups
    assert (2, "interleaved", 2) in groups and (6, "interleaved", 1) not in groups
    assert {s.op for s in found} == {"layer_norm", "group_norm", "instance_norm", "batch_norm"}


def test_pins_shrink_the_search() -> None:
    x = np.random.default_rng(4).normal(size=(8, 64)).astype(np.float32)
    y = rounded(normalize(x, (-1,), 1e-5), "float32")
    free = explain(x, y)
    pinned = explain(x, y, pinned={"op": "layer_norm", "normalized_shape": 64, "eps": 1e-5})
    assert pinned.best is not None and pinned.best.eps == 1e-5 and pinned.explained
    assert pinned.hypotheses < free.hypotheses / 4
    # a pinned eps that the output excludes explains nothing
    wrong = explain(x, y, pinned={"eps": 1e-2})
    assert not wrong.explained and all(c.eps == 1e-2 for c in wrong.candidates)
    # a pinned op that did not make the output explains nothing either
    assert not explain(x, y, pinned={"op": "rms_norm"}).explained


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pinned": {"groups": 5}}, "groups= 5 does not divide the 64 channels"),
        ({"pinned": {"op": "local_response_norm"}}, "op= local_response_norm: explain searches"),
        ({"pinned": {"momentum": 0.5}}, "momentum= cannot be pinned in explain"),
        ({"pinned": {"axes": 3}}, "axes=: axis 3 is out of range for an input with 2 dims"),
        ({"weight": np.ones(5)}, "weight= has shape (5,), which fits no normalization"),
        ({"dtype": "float8"}, "dtype= must be one of float64, float32, float16, bfloat16"),
        ({"pinned": {"affine": False}, "bias": np.ones(64)}, "bias= is given, but affine= is off"),
    ],
)
def test_invalid_pins_and_parameters_name_the_option(kwargs, message) -> None:
    x = np.random.default_rng(5).normal(size=(8, 64))
    with pytest.raises(InputError) as info:
        explain(x, x, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("observed", "message"),
    [
        (np.zeros((8, 63)), "the observed output has shape (8, 63), the input (8, 64)"),
        (np.zeros((8, 64), dtype=complex), "observed output is complex (complex128)"),
    ],
)
def test_invalid_arrays(observed, message) -> None:
    x = np.random.default_rng(6).normal(size=(8, 64))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        explain(x, observed)


def test_a_non_finite_input_is_refused() -> None:
    x = np.random.default_rng(7).normal(size=(8, 64))
    x[2, 3] = math.nan
    with pytest.raises(InputError, match="the input has 1 non-finite value: explain"):
        explain(x, x)


def test_quick_suggests_the_explanation_of_a_case_within_its_budget() -> None:
    x = np.random.default_rng(8).normal(size=(16, 8, 64)).astype(np.float32)
    case = load(parse({"op": "layer_norm", "normalized_shape": 64}, "api"), "a", given={"input": x})
    y = rounded(normalize(x, (-1,), 1e-6), "float32")
    found = quick(case, y)
    assert found is not None and (found.op, found.eps, found.verdict) == (
        "layer_norm",
        1e-6,
        "exact",
    )
    assert quick(case, y, budget_s=0.0) is None  # out of time before anything is confirmed
    assert quick(case, y, budget_s=1e9, steps=1) is None  # out of steps, however fast
    assert quick(case, np.random.default_rng(9).normal(size=x.shape)) is None
    assert quick(case, np.zeros((3,))) is None  # not the case's shape: no suggestion


def test_a_budget_in_steps_ends_at_the_same_point_whatever_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = iter(range(0, 10**6, 7))  # a clock that jumps 7 s at every reading
    deadline = fits.Deadline(1e9, steps=3)
    monkeypatch.setattr(deadline, "_clock", lambda: float(next(ticks)))
    for _ in range(3):
        deadline.check()
    with pytest.raises(fits.OutOfTime):
        deadline.check()


def test_an_incomplete_search_says_so() -> None:
    x = np.random.default_rng(10).normal(size=(8, 64)).astype(np.float32)
    report = explain(x, rounded(normalize(x, (-1,), 1e-5), "float32"), budget_s=1e-12)
    assert not report.complete and not report.explained
    assert report.notes == ("the search stopped after its 1e-12 s budget",)


@pytest.mark.parametrize("budget", [0, -1, 0.0, math.nan, "1", True])
def test_a_budget_that_is_no_positive_number_is_refused(budget: object) -> None:
    # no search is no verdict: "nothing fits" would be false (the command line's --budget too)
    x = np.ones((2, 4))
    with pytest.raises(InputError, match=r"^budget_s= must be a positive number of seconds"):
        explain(x, x, budget_s=budget)  # type: ignore[arg-type]


def test_a_numpy_number_is_a_budget_too() -> None:
    x = np.random.default_rng(0).normal(size=(2, 8))
    y = normalize(x, (-1,), 1e-5)
    for budget in (np.float32(30.0), np.int64(30)):
        assert explain(x, y, budget_s=budget).explained  # type: ignore[arg-type]


def test_an_unknown_pinned_option_is_named_as_a_keyword() -> None:
    x = np.ones((2, 4))
    with pytest.raises(InputError, match=r"^unknown option foo=$"):
        explain(x, x, pinned={"foo": 1})


def test_the_docstring_example_runs() -> None:
    import doctest

    import lncheck.explain

    result = doctest.testmod(lncheck.explain, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
