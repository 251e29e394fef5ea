"""The command line's options, spelled from the option table (``lncheck.options``).

``with_table_options(surface)`` gives a command every option of the table as a Typer option:
its flags, help, panel and default text come from the table, its value arrives unparsed
(``None`` when not given) and is checked by ``options.parse`` like a suite key or a keyword.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from lncheck.options import OPTIONS_LIST, Option

# Options that take a variable number of integers: ``--shape 3 4`` is rewritten to
# ``--shape 3,4`` before parsing, because click options take a fixed number of values.
MULTI_INT_OPTIONS = tuple(f for o in OPTIONS_LIST if o.kind == "ints" for f in o.flags or (o.flag,))
_INTS = re.compile(r"^-?\d+(,-?\d+)*,?$")

_TYPES: dict[str, Any] = {
    "int": int | None,
    "float": float | None,
    "ints": str | None,
    "flag": bool | None,
    "choice": str | None,
    "text": str | None,
    "array": str | None,
    "texts": list[str] | None,  # repeatable: --expected a.npy --expected b=b.npz
}


def join_multi_int_options(argv: list[str]) -> list[str]:
    """``[--shape, 3, 4, x.npy]`` -> ``[--shape, 3,4, x.npy]`` (negative integers included);
    ``--shape=3 4`` takes the following integers too."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        name, sep, first = token.partition("=")
        if name not in MULTI_INT_OPTIONS:
            out.append(token)
            continue
        values = [first.strip(",")] if sep else []
        if sep and not _INTS.match(first):
            out.append(token)
            continue
        while i < len(argv) and _INTS.match(argv[i]):
            values.append(argv[i].strip(","))
            i += 1
        out += [name, ",".join(values)] if values else [name]
    return out


def _complete(o: Option) -> Callable[[str], list[str]] | None:
    if o.choices is None:
        return None
    choices = o.choices
    return lambda incomplete: [c for c in choices() if c.startswith(incomplete)]


def shown_choices(o: Option, choices: Sequence[str] | None = None) -> tuple[str | None, str]:
    """The metavar of option ``o`` and the words its help ends in: ``OP`` and `` One of:
    layer_norm, ...`` for an option with ``choices`` (``None``: the table's)."""
    if choices is None and (o.choices is None or o.metavar is not None):
        return o.metavar, ""
    # named in the help, where they wrap: as a metavar they took a third of an 80-column
    # terminal and cut the flags beside them ("--shape,--normal…")
    names = choices if choices is not None else o.choices()  # type: ignore[misc]
    return o.name.upper(), " One of: " + ", ".join(names) + "."


def _parameter(o: Option) -> inspect.Parameter:
    metavar, listed = shown_choices(o)
    shown = f" [dim]\\[default: {o.default_text}][/dim]" if o.default_text else ""
    info = typer.Option(
        *(o.flags or (o.flag,)),
        help=o.help + listed + shown,
        rich_help_panel=o.panel,
        show_default=False,
        metavar=metavar,
        autocompletion=_complete(o),
    )
    return inspect.Parameter(
        o.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[_TYPES[o.kind], info],
    )


def with_table_options(
    surface: str = "cli", exclude: Sequence[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command (whose signature ends in ``**options``) every option of the table that
    the ``surface`` takes, after its own first (positional) parameter."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(fn, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        table = [
            _parameter(o) for o in OPTIONS_LIST if surface in o.surfaces and o.name not in exclude
        ]
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[1:]]
        parameters = own[:1] + table + rest

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            return fn(**kwargs)

        del command.__wrapped__  # typer must see this signature, not fn's
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command

    return wrap
