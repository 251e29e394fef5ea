"""The values of --expected, --candidate-cmd and --candidate: one grammar for every surface."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lncheck.candidates.specs import (
    Command,
    Given,
    Target,
    callables,
    commands,
    expected_entries,
    misnamed,
    names,
    positive_seconds,
)
from lncheck.errors import InputError

from ..cli.helpers import assert_user_error, invoke
from ..conftest import EXAMPLES, REPO


def _entries(value: object) -> list[tuple[str, str | None, object]]:
    return [(e.candidate, e.quantity, e.source) for e in expected_entries(value, "expected")]


def test_a_file_a_named_candidate_a_quantity_and_both() -> None:
    assert _entries("y.npy") == [("expected", None, "y.npy")]
    assert _entries(["triton=a.npz", "cuda=b.npz"]) == [
        ("triton", None, "a.npz"),
        ("cuda", None, "b.npz"),
    ]
    assert _entries(["grad_input=dx.npy", "mine.rstd=r.npy"]) == [
        ("expected", "grad_input", "dx.npy"),
        ("mine", "rstd", "r.npy"),
    ]
    # a path with '=' in a folder name is not a name: only a leading word is
    assert _entries("out/a=b.npy") == [("expected", None, "out/a=b.npy")]
    # names near a quantity's but more than one edit away, or of three letters, are names
    kept = ["ref", "var2x", "mine", "var1", "mean2"]
    assert [c for c, _, _ in _entries([f"{n}=x.npy" for n in kept])] == kept


def test_a_table_maps_names_to_files_or_arrays() -> None:
    y = np.zeros(3)
    entries = _entries({"triton": "a.npz", "output": y, "mine.mean": "m.npy"})
    assert [(c, q) for c, q, _ in entries] == [
        ("triton", None),
        ("expected", "output"),
        ("mine", "mean"),
    ]
    assert entries[1][2] is y
    assert _entries(y)[0][:2] == ("expected", None)  # an array: the final output
    nested = [[1.0, 2.0]]  # an API list of numbers is an array, not a list of entries
    assert _entries(nested) == [("expected", None, nested)]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("mine.rsdt=r.npy", "unknown quantity 'rsdt' in 'mine.rsdt' (known: output, activation"),
        ("a b=x.npy", None),  # not a name: a file called "a b=x.npy"
        ("mine=", "'mine=': no file after '='"),
        ("", "needs a file, got an empty string"),
        (["a=x.npy", "a=y.npy"], "gives 'a' twice"),
        (["rstd=x.npy", "expected.rstd=y.npy"], "gives 'expected.rstd' twice"),
        ({}, "the table is empty"),
        ({"my kernel": "x.npy"}, "candidate name 'my kernel' must be letters, digits"),
        ({1: "x.npy"}, "names must be strings, got 1"),
        # a quantity misspelt by one edit would name a candidate whose output is the file
        (
            "outptu=y.npy",
            "expected: 'outptu' is one edit from the quantity 'output': write output=FILE if "
            "you meant it, or give the candidate another name",
        ),
        (["grad_inpt=dx.npy"], "'grad_inpt' is one edit from the quantity 'grad_input'"),
        ({"runing_var": "v.npy"}, "'runing_var' is one edit from the quantity 'running_var'"),
        ({"mine.maen": "m.npy"}, "unknown quantity 'maen'"),
        ({"maen.rstd": "r.npy"}, "'maen' is one edit from the quantity 'mean'"),
    ],
)
def test_bad_entries_are_input_errors(value: object, phrase: str | None) -> None:
    if phrase is None:
        assert _entries(value)[0][0] == "expected"
        return
    with pytest.raises(InputError, match=re.escape(phrase)):
        expected_entries(value, "expected")


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--expected", "a b=EX"], "a b=EX (given to --expected): no such file (or, if 'a b' "
         "names a candidate: a name must be letters, digits, '_' or '-', and not a quantity's)"),
        (["--expected", "=EX"], "(or, if '' names a candidate"),
        (["--candidate", "a b=KERNELS:layer_norm"], "(or, if 'a b' names a candidate"),
    ],
)  # fmt: skip
def test_a_missing_file_whose_name_starts_with_a_bad_candidate_name_says_so(
    args: list[str], phrase: str
) -> None:
    # read as the file "a b=x.npy" (such a file may exist), and said both ways when it does not
    files = {"EX": str(EXAMPLES / "tokens.npy"), "KERNELS": str(REPO / "examples/kernels.py")}
    given = [a.replace("EX", files["EX"]).replace("KERNELS", files["KERNELS"]) for a in args]
    phrase = phrase.replace("EX", str(EXAMPLES / "tokens.npy"))
    assert_user_error(
        invoke("compare", str(EXAMPLES / "tokens.npy"), "--shape", "4", *given), phrase
    )
    assert misnamed("ok=x.npy") == misnamed("x.npy") == misnamed("dir/a b=x.npy") == ""


def test_commands_are_named_and_checked() -> None:
    found = commands(["prog {input} {output}", "prog2 {input}", "mine=prog {output}"], "c")
    assert found == (
        Command("command", "prog {input} {output}"),
        Command("command2", "prog2 {input}"),
        Command("mine", "prog {output}"),
    )
    assert commands({"fast": "f {input} {output}"}, "c") == (Command("fast", "f {input} {output}"),)
    # a word with spaces is not a name: the whole line is the template
    assert commands("python -c 'x=1' {output}", "c")[0].name == "command"


@pytest.mark.parametrize(
    ("template", "phrase"),
    [
        ("prog {inptu}", "unknown placeholder {inptu} (known: {input}, {output}"),
        ("prog 'unbalanced", "cannot split it like a shell line"),
        ("   ", "is an empty program line"),
        # NAME= with the name left out: no program called '=python'
        ("=python {output}", "'=python {output}': the candidate's name before '=' is empty"),
        ("prog {", "write {{ for a brace"),
        (3, "must be a program line"),
        # a format would be applied to the path: padding of 30 GB, a field filled at run time
        ("prog {output:>30000000000}", "a placeholder is a bare {name}, with no format"),
        ("prog {input:{bogus}}", "a placeholder is a bare {name}, with no format"),
        ("prog {input!z}", "a placeholder is a bare {name}, with no format or conversion"),
    ],
)
def test_bad_templates_are_input_errors(template: object, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        commands([template] if not isinstance(template, str) else template, "candidate_cmd")
    assert phrase in str(info.value)


def test_an_equals_sign_after_a_name_is_the_programs() -> None:
    # the name check looks at the line as given: 'a==prog' names a program '=prog'
    for given in ("a==prog {output}", {"a": "=prog {output}"}, ("a==prog {output}",)):
        (command,) = commands(given, "candidate_cmd")
        assert (command.name, command.template) == ("a", "=prog {output}")


def test_callables_by_name_or_object() -> None:
    def kernel(x: object) -> object:
        return x

    found = callables(["pkg.mod:fast_ln", "ref=path/to/f.py:ln", kernel], "candidate")
    assert [t.name for t in found] == ["fast_ln", "ref", "kernel"]
    assert found[2].target is kernel
    assert [t.name for t in callables({"a": kernel, "b": "m:f"}, "candidate")] == ["a", "b"]
    lam = callables(lambda x: x, "candidate")  # no usable __name__: a default one
    assert [t.name for t in lam] == ["callable"]
    assert [t.name for t in callables(["m:f", "n:f"], "candidate")] == ["f", "f2"]
    # a function's name is never a misspelt quantity: only --expected's names are held to that
    assert [t.name for t in callables(["means=m:f", "m:outptu"], "candidate")] == [
        "means",
        "outptu",
    ]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("pkg.mod", "expected module.path:function or path/to/file.py:function"),
        ("pkg:not an identifier", "expected module.path:function"),
        (3, "must be 'module.path:function', a callable"),
        (["a=m:f", "a=m:g"], "names two candidates 'a'"),
    ],
)
def test_bad_callables_are_input_errors(value: object, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        callables(value, "candidate")
    assert phrase in str(info.value)


def test_names_are_unique_across_kinds() -> None:
    given = (Given("expected", None, "y.npy"), Given("expected", "rstd", "r.npy"))
    assert names(given, (Command("command", "p"),), (Target("fn", "m:fn"),)) == [
        "expected",
        "command",
        "fn",
    ]
    with pytest.raises(InputError, match="the name 'expected' is already taken"):
        names(given, (Command("expected", "p"),), ())


def test_timeouts_are_positive_seconds() -> None:
    assert positive_seconds(2, "candidate_timeout") == 2.0
    for bad in (0, -1, float("inf"), "60"):
        with pytest.raises(InputError, match="candidate_timeout"):
            positive_seconds(bad, "candidate_timeout")
