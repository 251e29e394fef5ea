"""``lncheck explain INPUT OBSERVED``: which normalization produced OBSERVED from INPUT.

The options that pin part of the search are the option table's (``lncheck.options``), checked
by ``options.parse`` as ``compare`` checks them; the search is ``lncheck.explain.explain``.
NumPy and the search are imported inside the command, so that ``lncheck --help`` stays light.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lncheck.cli import Command, app
from lncheck.cli.params import shown_choices
from lncheck.options import OPTIONS

# The ops explain searches (lncheck.explain.hypotheses.SEARCHED_OPS, which imports NumPy).
SEARCHED_OPS = ("layer_norm", "rms_norm", "group_norm", "instance_norm", "batch_norm")

if TYPE_CHECKING:
    import numpy.typing as npt

PIN = "Pin part of the search"
PARAMETERS = "Parameters"
OUTPUT = "Output"
# Where an output is looked for in a file that holds several arrays.
OUTPUT_NAMES = ("output", "observed", "expected", "y")

EPILOG = """\
[bold]Examples[/bold]

[dim]# which LayerNorm made y from x? (exit 0: explained, 1: nothing fits)[/dim]
lncheck explain x.npy y.npy

[dim]# input and output in one .npz (arrays 'input' and 'output')[/dim]
lncheck explain examples/keras_ln.npz examples/keras_ln.npz

[dim]# with the layer's weight: tries it as given, as 1 + w, and swapped with the bias[/dim]
lncheck explain hidden.npy normed.npy --weight w.npy --json

[dim]# pin what you know: only GroupNorm, only eps 1e-5[/dim]
lncheck explain image.npy out.npy --op group_norm --eps 1e-5
"""


def _pin(name: str, help: str, panel: str = PIN, choices: Sequence[str] | None = None) -> Any:
    """A typer option spelled from the option table: its flags, its metavar, its choices
    (``None``: the table's) listed in its help."""
    o = OPTIONS[name]
    shown, listed = shown_choices(o, choices)
    return typer.Option(
        *(o.flags or (o.flag,)),
        help=help + listed,
        rich_help_panel=panel,
        show_default=False,
        metavar=shown,
    )


@app.command(cls=Command, name="explain", epilog=EPILOG)
def explain_command(
    input: Annotated[
        str,
        typer.Argument(
            help="The input: .npy, .npz, .json, .pt, or - for JSON on stdin.",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    observed: Annotated[
        str,
        typer.Argument(
            help="The output to explain (in a file of several arrays: 'output', "
            "'observed', 'expected' or 'y').",
            show_default=False,
            metavar="OBSERVED",
        ),
    ],
    weight: Annotated[
        str | None,
        _pin(
            "weight",
            "A weight (gamma) the layer may have used (default: the INPUT file's).",
            PARAMETERS,
        ),
    ] = None,
    bias: Annotated[
        str | None,
        _pin(
            "bias", "A bias (beta) the layer may have used (default: the INPUT file's).", PARAMETERS
        ),
    ] = None,
    op: Annotated[
        str | None,
        _pin("op", "Only this op.", choices=SEARCHED_OPS),
    ] = None,
    normalized_shape: Annotated[
        str | None, _pin("normalized_shape", "Only these trailing dims: --shape 3 4.")
    ] = None,
    axes: Annotated[str | None, _pin("axes", "Only these axes: --axes 1 3.")] = None,
    groups: Annotated[
        int | None, _pin("groups", "Only this number of groups (group_norm).")
    ] = None,
    channel_axis: Annotated[
        int | None, _pin("channel_axis", "Only this channel axis (searched: 1 and the last).")
    ] = None,
    eps: Annotated[float | None, _pin("eps", "Only this eps (none is fitted).")] = None,
    affine: Annotated[
        bool | None,
        _pin(
            "affine",
            "Only outputs with weight and bias (given, or fitted); --no-affine: only "
            "outputs without them.",
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        _pin("dtype", "The precision OBSERVED was rounded to; default: what its values show."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON object instead of the table.", rich_help_panel=OUTPUT
        ),
    ] = False,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Stop searching after this many seconds (more than 0).",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Find which normalization turned INPUT into OBSERVED, best explanation first.

    Searches the axes or groups, centring, the variance estimator and algorithm, where eps goes
    and its value, the affine map and the cast order in low precision.

    Exit status: 0 a candidate reproduces OBSERVED within rounding, 1 none does, 2 invalid input.
    """
    from lncheck.explain import explain, non_finite
    from lncheck.options import parse
    from lncheck.readers import INPUT_NAMES

    if budget is not None and not budget > 0:  # no search is no verdict (NaN included)
        from lncheck.errors import InputError

        raise InputError(f"--budget must be a positive number of seconds, got {budget:g}")

    pins = parse(
        {
            "op": op,
            "normalized_shape": normalized_shape,
            "axes": axes,
            "groups": groups,
            "channel_axis": channel_axis,
            "eps": eps,
            "affine": affine,
            "dtype": dtype,
        },
        "cli",
    )
    from lncheck.readers import OneRead

    stdin = OneRead(input)
    for name, path in (("OBSERVED", None if observed == input else observed),
                       ("--weight", weight), ("--bias", bias)):  # fmt: skip
        stdin.claim(path or "", name)
    inputs = _read(input)
    x = _pick(inputs, INPUT_NAMES, input, "input", allow_single=True)
    outputs = inputs if observed == input else _read(observed)
    # one file for both: an .npz that holds the input and the output
    both = " (a file given as both INPUT and OBSERVED must hold both)" if observed == input else ""
    y = _pick(outputs, OUTPUT_NAMES, observed, "output", allow_single=not both, hint=both)
    w = _single(weight, "weight") if weight is not None else inputs.get("weight")
    b = _single(bias, "bias") if bias is not None else inputs.get("bias")
    # the INPUT file's own weight and bias are a default, not options given: --no-affine
    # leaves them out (and says so), where --weight or --bias beside it contradict it
    unused = [] if affine is not False else [
        role for role, given, found in (("weight", weight, w), ("bias", bias, b))
        if given is None and found is not None
    ]  # fmt: skip
    # every member read (or left out by --no-affine, which its own note says), as read
    taken = {id(a) for a in (x, y, w, b) if a is not None}
    w, b = (None if "weight" in unused else w), (None if "bias" in unused else b)
    from lncheck.dtypes import real_numbers
    from lncheck.errors import InputError, with_context

    x, y = real_numbers(x, input, "input"), real_numbers(y, observed, "the observed output")

    if x.shape != y.shape:  # named by file here; the API names the arguments
        input_is = "its input" if observed == input else f"the input ({input})"
        raise InputError(
            f"{observed}: the observed output has shape {y.shape}, {input_is} {x.shape}: "
            "they must match"
        )
    bad = non_finite(x)
    if bad is not None:  # by file too (the API's words: "the input has ...")
        raise InputError(f"{input}: {bad}: explain needs finite inputs")
    try:
        report = explain(x, y, weight=w, bias=b, pinned=pins, budget_s=budget)
    except InputError as e:  # the API names its arguments; here they are files
        raise (with_context(e, input) if e.raw.startswith("input ") else e) from None
    notes = [f"{input}'s {' and '.join(unused)} not used: --no-affine"] if unused else []
    # members explain has no use for (a kernel's mean and rstd, a misspelt 'outptu') are
    # said, never dropped without a word
    for path, arrays in {input: inputs, observed: outputs}.items():  # one file given twice
        left = [k for k, a in arrays.items() if id(a) not in taken]
        if left:
            names = ", ".join(repr(k) for k in left)
            notes.append(f"{path}: {names} not used (explain reads the output and input only)")
    if notes:
        from dataclasses import replace

        report = replace(report, notes=(*notes, *report.notes))
    if json_output:
        import json

        from lncheck.render.json import explain_document

        sys.stdout.write(json.dumps(explain_document(report), allow_nan=False) + "\n")
    else:
        from lncheck.render.console import make_console, render_explain

        render_explain(report, make_console())
    raise typer.Exit(int(report.exit_status))


def _read(path: str) -> dict[str, npt.NDArray[Any]]:
    from lncheck.readers import read_arrays

    return read_arrays(path).arrays


def _pick(
    arrays: dict[str, npt.NDArray[Any]],
    names: tuple[str, ...],
    path: str,
    role: str,
    *,
    allow_single: bool,
    hint: str = "",
) -> npt.NDArray[Any]:
    """The array named as ``names`` says, or the only array of the file; ``hint`` ends the
    error.

    Raises:
        InputError: several arrays and none with one of ``names``.
    """
    from lncheck.errors import InputError

    for name in names:
        if name in arrays:
            return arrays[name]
    if allow_single and len(arrays) == 1:
        return next(iter(arrays.values()))
    held = ", ".join(repr(k) for k in arrays) or "no arrays"
    raise InputError(
        f"{path}: holds {held}, and no {role} named {' or '.join(repr(n) for n in names)}{hint}"
    )


def _single(path: str, role: str) -> npt.NDArray[Any]:
    from lncheck.errors import InputError, option, with_context

    arrays = _read(path)
    if role in arrays:
        return arrays[role]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise with_context(
        InputError(f"holds {len(arrays)} arrays and none is named {role!r}"),
        f"{option(role)} {path}",
    )
