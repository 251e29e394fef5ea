"""The option table (``lncheck.options``) is the one vocabulary of every surface: the command
line's flags, a suite's keys and the API's keywords are spelled from it, and an option is named
back to the caller as the caller wrote it."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer

import lncheck
from lncheck.cli import app
from lncheck.errors import InputError
from lncheck.ops import OP_NAMES, module, readers_of
from lncheck.options import ALIASES, OPTIONS, OPTIONS_LIST, Option, check_applies, parse
from lncheck.suite.parse import CASE_KEYS, load_suite

from .cli.helpers import assert_user_error, invoke
from .conftest import EXAMPLES

IMAGE = EXAMPLES / "image.npy"
# The compare command's own parameters, beside the table's: its input and where output goes.
COMPARE_OWN = {"input", "json_output", "output_format", "reports", "plot", "quiet", "all_groups"}


def _on(surface: str) -> list[Option]:
    return [o for o in OPTIONS_LIST if surface in o.surfaces]


# --- (1) the command line -----------------------------------------------------------------


def test_compare_parameters_are_the_table_and_its_output_options() -> None:
    params = typer.main.get_command(app).commands["compare"].params  # type: ignore[attr-defined]
    assert {p.name for p in params} == {o.name for o in _on("cli")} | COMPARE_OWN
    assert len(params) == len(_on("cli")) + len(COMPARE_OWN)  # no option twice
    flags = {p.name: (*p.opts, *p.secondary_opts) for p in params}
    for o in _on("cli"):
        spelled = tuple(f for flag in (o.flags or (o.flag,)) for f in flag.split("/"))
        assert flags[o.name] == spelled, o.name


def test_every_table_option_has_help_and_a_panel() -> None:
    for o in OPTIONS_LIST:
        assert o.help.endswith(".") and o.panel, o.name
        assert o.name == o.name.lower() and " " not in o.name


# --- (2) suite files ------------------------------------------------------------------------


def _suite_error(tmp_path: Path, key: str) -> str | None:
    """The error of a one-case suite that sets ``key`` (to a value of no particular kind), or
    ``None`` if it loads."""
    path = tmp_path / f"{key}.toml"
    path.write_text(f'[[case]]\nname = "a"\nrandom = {{shape = [2, 4]}}\nshape = [4]\n{key} = 1\n')
    try:
        load_suite(path)
    except InputError as e:
        return str(e)
    return None


def _accepted(tmp_path: Path, key: str) -> bool:
    error = _suite_error(tmp_path, key)
    return error is None or "unknown case key" not in error


def test_suite_keys_are_table_names_aliases_and_case_keys(tmp_path: Path) -> None:
    assert CASE_KEYS == ("name", "input", "random", "skip", "xfail")
    table = {o.name for o in _on("suite")} | {a for o in _on("suite") for a in o.aliases}
    probes = {*OPTIONS, *ALIASES, *CASE_KEYS, "title", "chunk", "wieght", "output", "junit"}
    accepted = {key for key in probes - {"random", "name"} if _accepted(tmp_path, key)}
    assert accepted == (table | set(CASE_KEYS)) - {"random", "name"}
    assert "chunks" in OPTIONS and "chunks" not in accepted  # a command-line and API option only
    assert "key 'chunks': unknown case key" in (_suite_error(tmp_path, "chunks") or "")


# --- (3) the Python API ---------------------------------------------------------------------


def test_compare_signature_lists_every_api_option() -> None:
    params = inspect.signature(lncheck.compare).parameters
    assert list(params)[:4] == ["x", "op", "backend", "name"]
    assert set(params) == {"x", "name"} | {o.name for o in _on("api")}
    for o in _on("api"):
        if o.name not in ("op", "backend"):
            assert params[o.name].kind is inspect.Parameter.KEYWORD_ONLY
            assert params[o.name].default == o.default, o.name


def test_every_api_keyword_and_alias_is_taken_and_named_back() -> None:
    x = np.ones((2, 4))
    for word in [*(o.name for o in _on("api")), *ALIASES]:
        layer = {} if ALIASES.get(word, word) == "normalized_shape" else {"normalized_shape": 4}
        with pytest.raises(InputError) as info:
            lncheck.compare(x, **{word: object()}, **layer)  # no value of any kind
        if OPTIONS[ALIASES.get(word, word)].kind == "array":
            assert str(info.value).startswith(f"{word}=: {word} has dtype object")
        elif word == "expected":  # an array of the final output, read as one
            message = "the array given to expected=: output has dtype object"
            assert str(info.value).startswith(message)
        elif OPTIONS[ALIASES.get(word, word)].joins == "expected":  # one quantity of it
            quantity = word.removeprefix("expected_")
            message = f"the array given to {word}=: {quantity} has dtype object"
            assert str(info.value).startswith(message)
        else:
            assert str(info.value).startswith(f"{word}= must be"), word


# --- (4) one deep error, three spellings ----------------------------------------------------


def _cli(*args: str) -> str:
    return assert_user_error(invoke("compare", str(IMAGE), *args))


def _suite(tmp_path: Path, body: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(f'[[case]]\nname = "a"\ninput = "{IMAGE}"\n{body}\n')
    with pytest.raises(InputError) as info:
        load_suite(path)
    return str(info.value)


def _api(**options: Any) -> str:
    with pytest.raises(InputError) as info:
        lncheck.compare(np.load(IMAGE), **options)
    return str(info.value)


@pytest.mark.parametrize(
    ("cli", "suite", "api", "name", "phrase"),
    [
        (
            ["--op", "group_norm", "--groups", "3"],
            'op = "group_norm"\ngroups = 3',
            {"op": "group_norm", "groups": 3},
            "groups",
            "{} 3 does not divide the 4 channels",
        ),
        (
            ["--op", "group_norm"],
            'op = "group_norm"',
            {"op": "group_norm"},
            "groups",
            "group_norm needs {}",
        ),
        (
            ["--op", "local_response_norm"],
            'op = "local_response_norm"',
            {"op": "local_response_norm"},
            "size",
            "local_response_norm needs {}",
        ),
        (
            ["--op", "batch_norm", "--eval"],
            'op = "batch_norm"\ntrain = false',
            {"op": "batch_norm", "training": False},
            "running_mean",
            "BatchNorm2d in eval mode normalizes with running statistics: give {}",
        ),
    ],
)
def test_a_deep_error_names_the_option_as_each_caller_wrote_it(
    tmp_path: Path, cli: list[str], suite: str, api: dict[str, Any], name: str, phrase: str
) -> None:
    assert phrase.format(OPTIONS[name].flag) in _cli(*cli)
    assert phrase.format(f"key {name!r}") in _suite(tmp_path, suite)
    assert phrase.format(f"{name}=") in _api(**api)


def test_an_alias_is_named_back_as_the_caller_spelled_it(tmp_path: Path) -> None:
    assert "key 'shape' must be" in _suite(tmp_path, "shape = true")
    assert "key 'normalized_shape' must be" in _suite(tmp_path, "normalized_shape = true")
    assert "shape= must be" in _api(shape=True)
    assert "normalized_shape= must be" in _api(normalized_shape=True)


# --- (5) an option the op does not read ---------------------------------------------------------


def test_an_option_the_op_does_not_read_is_an_input_error(tmp_path: Path) -> None:
    users = ", ".join(readers_of("groups"))
    assert users == "group_norm"
    fact = f"does not apply to layer_norm (it is read by {users})"
    assert f"--groups {fact}" in _cli("--shape", "3", "--groups", "2")
    assert f"key 'groups' {fact}" in _suite(tmp_path, "shape = [3]\ngroups = 2")
    assert f"groups= {fact}" in _api(normalized_shape=3, groups=2)


@pytest.mark.parametrize(
    ("op", "name", "value"),
    [
        ("batch_norm", "normalized_shape", 3),
        ("layer_norm", "momentum", 0.5),
        ("rms_norm", "size", 3),
        ("local_response_norm", "eps", 1e-3),
    ],
)
def test_every_per_op_option_is_refused_by_the_other_ops(op: str, name: str, value: Any) -> None:
    assert OPTIONS[name].per_op and op not in readers_of(name)
    options = {"normalized_shape": 3} if op in ("layer_norm", "rms_norm") else {}
    if op == "local_response_norm":
        options["size"] = 2
    message = _api(op=op, **options, **{name: value})
    assert f"{name}= does not apply to {op}" in message


def test_a_default_the_op_does_not_read_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        "[defaults]\ngroups = 2\nsize = 3\nshape = [3]\n"
        f'[[case]]\nname = "ln"\ninput = "{IMAGE}"\n'
        f'[[case]]\nname = "gn"\ninput = "{IMAGE}"\nop = "group_norm"\n'
        f'[[case]]\nname = "lrn"\ninput = "{IMAGE}"\nop = "local_response_norm"\n'
    )
    report = lncheck.run_suite(path)
    assert [(r.name, r.status) for r in report.results] == [
        ("ln", "pass"),
        ("gn", "pass"),
        ("lrn", "pass"),
    ]
    layers = {r.name: r.report.header.layer for r in report.results if r.report}
    assert "num_groups=2" in layers["gn"] and "size=3" in layers["lrn"]


def test_options_that_are_not_per_op_apply_to_every_op() -> None:
    shared = {o.name for o in OPTIONS_LIST if not o.per_op}
    assert {"op", "dtype", "device", "grad", "rtol", "atol", "weight", "activation"} <= shared
    given = parse({"dtype": "float64", "grad": True, "seed": 3, "activation": "relu"}, "api")
    per_op = parse({"momentum": 0.5}, "api")
    for op in OP_NAMES:
        check_applies(given, op, ())  # reads none of them, refuses none
        if op not in readers_of("momentum"):
            with pytest.raises(InputError, match=f"momentum= does not apply to {op}"):
                check_applies(per_op, op, module(op).READS)


def test_repeatable_options_repeat_on_every_surface(tmp_path: Path) -> None:
    params = typer.main.get_command(app).commands["compare"].params  # type: ignore[attr-defined]
    repeatable = {p.name for p in params if getattr(p, "multiple", False)}
    assert repeatable == {o.name for o in _on("cli") if o.kind == "texts"} | {"reports"}
    assert {o.name for o in OPTIONS_LIST if o.kind == "texts"} == {
        "expected",
        "candidate_cmd",
        "candidate",
    }
    # a list on the command line, a list or a table in a suite, a list or a dict in the API
    cli = parse({"candidate_cmd": ["a {output}", "b=b {output}"]}, "cli")
    suite = parse({"candidate_cmd": {"command": "a {output}", "b": "b {output}"}}, "suite")
    api = parse({"candidates": {"fn": len}}, "api")
    assert cli["candidate_cmd"] == suite["candidate_cmd"]
    assert [t.name for t in api["candidate"]] == ["fn"] and api.words["candidate"] == "candidates"


def test_the_candidate_options_are_rows_of_the_table() -> None:
    new = {"expected", "candidate_cmd", "candidate", "candidate_timeout", "repeat", "weight_offset"}
    assert new <= set(OPTIONS)
    assert [OPTIONS[n].flag for n in sorted(new)] == [
        "--candidate",
        "--candidate-cmd",
        "--candidate-timeout",
        "--expected",
        "--repeat",
        "--weight-offset",
    ]
    assert OPTIONS["weight_offset"].per_op and readers_of("weight_offset") == [
        "layer_norm",
        "rms_norm",
    ]
    assert "torch has no such module" in OPTIONS["weight_offset"].help
    assert (OPTIONS["repeat"].default, OPTIONS["candidate_timeout"].default) == (1, 60.0)
    assert ALIASES["candidates"] == "candidate"
