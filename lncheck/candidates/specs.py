"""The values of ``--expected``, ``--candidate-cmd`` and ``--candidate``, as the option table
parses them from any surface. Pure Python: ``lncheck --help`` builds its options from here.

One grammar serves the command line, suite files and the Python API:

* ``--expected FILE`` is the layer's final output (after ``--activation``) or a bundle of
  quantities, for the candidate ``expected``; ``NAME=FILE`` names the candidate;
  ``QUANTITY=FILE`` gives one quantity of ``expected`` (``grad_input=dx.npy``) and
  ``NAME.QUANTITY=FILE`` one quantity of ``NAME``. A suite's table and an API dict map the same
  names to files (or, in the API, to arrays and dicts of arrays).
  ``--expected-grad-input/-weight/-bias FILE`` (suite keys and keywords ``expected_grad_*``)
  are the same as ``--expected grad_input=FILE`` and so on.
* ``--candidate-cmd [NAME=]TEMPLATE``: a program line with ``{placeholders}`` (``command``).
* ``--candidate [NAME=]module.path:function`` (or ``file.py:function``, or in the API the
  function itself).

Candidate names are letters, digits, ``_`` and ``-``: never a quantity's name, and never a dot,
so that they cannot be mistaken for a backend's paths (``torch.nn.LayerNorm``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lncheck.candidates import QUANTITIES
from lncheck.errors import InputError, option
from lncheck.values import number

EXPECTED = "expected"  # the candidate an unnamed --expected file gives
_NAME = re.compile(r"^[\w-]+$")
_NAMED = re.compile(r"^([\w-]+(?:\.\w+)?)=(.*)$", re.DOTALL)

# What a command's template may name: files lncheck writes, and the layer's options as text.
FILE_PLACEHOLDERS = (
    "input", "output", "weight", "bias", "grad_output", "running_mean", "running_var",
)  # fmt: skip
TEXT_PLACEHOLDERS = (
    "op", "eps", "shape", "axes", "groups", "dtype", "training", "momentum", "name",
)  # fmt: skip
PLACEHOLDERS = FILE_PLACEHOLDERS + TEXT_PLACEHOLDERS


@dataclass(frozen=True)
class Given:
    """One ``--expected`` entry: ``quantity`` of ``candidate``, or (``None``) a whole file that
    is the final output or a bundle. ``source`` is a path, or in the API an array-like, a
    tensor or a dict of them."""

    candidate: str
    quantity: str | None
    source: Any = field(compare=False)
    option: str = field(default=EXPECTED, compare=False)  # the option that gave it


@dataclass(frozen=True)
class Command:
    """One ``--candidate-cmd``: a program line run per case in ``cwd`` (``None``: here)."""

    name: str
    template: str
    cwd: str | None = None


@dataclass(frozen=True)
class Target:
    """One ``--candidate``: ``module.path:function``, ``file.py:function`` or the function.
    A module path is searched for in ``folder`` first (``None``: the current folder; a suite's
    candidates: the suite file's)."""

    name: str
    target: str | Callable[..., Any] = field(compare=False)
    folder: str | None = field(default=None, compare=False)


def _is_texts(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in QUANTITIES:
        raise InputError(
            f"{where}: candidate name {name!r} must be letters, digits, '_' or '-' "
            f"and not a quantity's name"
        )
    return name


def _not_a_typo(name: str, where: str) -> str:
    """An ``--expected`` name that is a quantity's with one edit (``outptu=y.npy`` would check
    y.npy as a candidate's output, and pass) is refused; names of three letters (``ref``) or
    ending in a digit (``var1``) stay free."""
    near = [
        q for q in QUANTITIES if len(name) > 3 and not name[-1].isdigit() and _one_edit(name, q)
    ]
    if near:
        raise InputError(
            f"{where}: {name!r} is one edit from the quantity {near[0]!r}: write "
            f"{near[0]}=FILE if you meant it, or give the candidate another name"
        )
    return name


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` is ``b`` with one letter changed, added, dropped, or two neighbours
    swapped (Damerau's edits)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        differ = [i for i in range(len(a)) if a[i] != b[i]]
        swapped = len(differ) == 2 and differ[1] == differ[0] + 1
        return len(differ) == 1 or (
            swapped and a[differ[0]] == b[differ[1]] and a[differ[1]] == b[differ[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _split_name(key: Any, where: str) -> tuple[str, str | None]:
    """``grad_input`` -> (expected, grad_input); ``mine.rstd`` -> (mine, rstd); ``mine``."""
    if not isinstance(key, str):
        raise InputError(f"{where}: names must be strings, got {key!r}")
    if key in QUANTITIES:
        return EXPECTED, key
    candidate, dot, quantity = key.rpartition(".")
    if dot and quantity not in QUANTITIES:
        raise InputError(
            f"{where}: unknown quantity {quantity!r} in {key!r} (known: {', '.join(QUANTITIES)})"
        )
    if dot:
        return _not_a_typo(_check_name(candidate, where), where), quantity
    return _not_a_typo(_check_name(key, where), where), None


def expected_entries(value: Any, name: str) -> tuple[Given, ...]:
    """``--expected`` from any surface: ``FILE``, ``NAME=FILE``, a list of those, a mapping of
    names to files (or arrays), or (API) an array.

    Raises:
        InputError: a bad name, an unknown quantity, or an entry given twice.
    """
    where = option(name)
    if value is None:
        raise InputError(f"{where} must be a file, an array or a table of them, got None")
    entries: list[Given] = []
    if isinstance(value, str) or _is_texts(value):
        texts = [value] if isinstance(value, str) else list(value)
        for text in texts:
            match = _NAMED.match(text)
            if not text:
                raise InputError(f"{where} needs a file, got an empty string")
            if match is None:
                entries.append(Given(EXPECTED, None, text))
                continue
            if not match.group(2):
                raise InputError(f"{where} {text!r}: no file after '='")
            entries.append(Given(*_split_name(match.group(1), where), match.group(2)))
    elif isinstance(value, Mapping):
        if not value:
            raise InputError(f"{where}: the table is empty")
        for key, source in value.items():
            candidate, quantity = _split_name(key, where)
            if source is None:
                raise InputError(f"{where}: {key!r} has no file")
            entries.append(Given(candidate, quantity, source))
    else:
        entries.append(Given(EXPECTED, None, value))  # an array: checked when it is loaded
    return unique_entries(entries, name)


def expected_quantity(quantity: str) -> Callable[[Any, str], tuple[Given, ...]]:
    """The parser of an option that gives one quantity of candidate ``expected``
    (``--expected-grad-weight FILE``): a file, or (API) an array or tensor.

    Raises:
        InputError: no file, a blank one, or a table or list of them."""

    def parse(value: Any, name: str) -> tuple[Given, ...]:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(f"{option(name)} needs a file, got {value!r}")
        if isinstance(value, Mapping) or (not isinstance(value, str) and _is_texts(value)):
            raise InputError(f"{option(name)} takes one file or array, got {value!r}")
        return (Given(EXPECTED, quantity, value, name),)

    return parse


def unique_entries(entries: Iterable[Given], name: str) -> tuple[Given, ...]:
    """``entries``, each (candidate, quantity) once.

    Raises:
        InputError: an entry given twice, naming option ``name``."""
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        key = (entry.candidate, entry.quantity)
        if key in seen:
            what = entry.candidate + (f".{entry.quantity}" if entry.quantity else "")
            raise InputError(f"{option(name)} gives {what!r} twice")
        seen.add(key)
    return tuple(entries)


def _named(text: str) -> tuple[str | None, str]:
    match = re.match(r"^([\w-]+)=(\S.*)$", text, re.DOTALL)
    return (match.group(1), match.group(2)) if match else (None, text)


def misnamed(source: str) -> str:
    """For a ``--expected`` file (or a ``--candidate``'s) that is not there, what its name may
    have meant: ``a b=x.npy`` is a file of that name, or the candidate ``a b``, whose name is
    not one."""
    named = _name_part(source)
    if named is None or (_NAME.match(named) and named not in QUANTITIES):
        return ""
    return (
        f" (or, if {named!r} names a candidate: a name must be letters, digits, '_' or '-', "
        "and not a quantity's)"
    )


def _name_part(text: str) -> str | None:
    """The part before ``=`` of ``NAME=...`` where it is no path (a candidate's name, however
    it is spelled: its check says what is wrong with it, where a file of that name would not
    be found), else ``None``. Not for program lines, whose words hold ``=`` of their own."""
    name, equals, _ = text.partition("=")
    return name if equals and "/" not in name and os.sep not in name else None


def _items(value: Any, where: str, kinds: str) -> list[tuple[str | None, Any]]:
    """(name or None, value) pairs from a string, a list or a mapping."""
    if isinstance(value, str) or callable(value):
        value = [value]
    if isinstance(value, Mapping):
        return [(_check_name(k, where), v) for k, v in value.items()]
    if isinstance(value, (list, tuple)) and value:
        out: list[tuple[str | None, Any]] = []
        for item in value:
            if isinstance(item, str):
                named, rest = _named(item)
                out.append((None if named is None else _check_name(named, where), rest))
            else:
                out.append((None, item))
        return out
    raise InputError(f"{where} must be {kinds}, got {value!r}")


def _unique(
    pairs: list[tuple[str | None, Any]], default: Callable[[Any], str], where: str
) -> list[tuple[str, Any]]:
    """Names for every item: the given one, else ``default(item)`` numbered when it repeats."""
    named = {n for n, _ in pairs if n is not None}
    out: list[tuple[str, Any]] = []
    for name, item in pairs:
        if name is None:
            base = default(item)
            name, k = base, 2
            while name in named:
                name, k = f"{base}{k}", k + 1
        elif any(name == n for n, _ in out):
            raise InputError(f"{where} names two candidates {name!r}")
        named.add(name)
        out.append((name, item))
    return out


def commands(value: Any, name: str) -> tuple[Command, ...]:
    """``--candidate-cmd``: ``[NAME=]TEMPLATE``, a list of them, or a mapping name -> template.

    Raises:
        InputError: a template that does not split like a shell line, is empty, or names an
            unknown placeholder.
    """
    where = option(name)
    lines = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
    for line in lines:
        if isinstance(line, str) and line.startswith("="):  # '=prog': a name left out
            raise InputError(f"{where} {line!r}: the candidate's name before '=' is empty")
    pairs = _items(value, where, "a program line such as 'prog {input} {output}' or a list")
    for _, template in pairs:
        check_template(template, where)
    return tuple(Command(n, t) for n, t in _unique(pairs, lambda _: "command", where))


def check_template(template: Any, where: str) -> list[str]:
    """The words of ``template`` (split like a shell line), checked: known placeholders only.

    Raises:
        InputError: not a string, unbalanced quotes, no program, an unknown placeholder.
    """
    import shlex  # only when a program is given: --help stays light

    if not isinstance(template, str):
        raise InputError(f"{where} must be a program line (a string), got {template!r}")
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise InputError(f"{where} {template!r}: cannot split it like a shell line: {e}") from None
    if not words:
        raise InputError(f"{where} is an empty program line")
    for word in words:
        for used in placeholders(word, where):
            if used not in PLACEHOLDERS:
                raise InputError(
                    f"{where}: unknown placeholder {{{used}}} (known: "
                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}; write {{{{ for a brace)"
                )
    return words


def placeholders(word: str, where: str) -> list[str]:
    """The placeholders ``{name}`` of one word of a template."""
    import string

    try:
        parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(word)]
    except ValueError as e:
        raise InputError(f"{where}: {word!r}: {e} (write {{{{ for a brace)") from None
    for name, spec, conversion in parts:
        if name is not None and (spec or conversion):  # {output:>3000000000} would pad it
            raise InputError(
                f"{where}: {word!r}: a placeholder is a bare {{name}}, with no format or "
                "conversion (write {{ for a brace)"
            )
    return [f for f, _, _ in parts if f is not None]


def callables(value: Any, name: str) -> tuple[Target, ...]:
    """``--candidate``: ``[NAME=]module.path:function`` or ``file.py:function``; in the API also
    the function itself, or a mapping name -> either.

    Raises:
        InputError: neither a callable nor ``module:function``.
    """
    where = option(name)
    pairs = _items(value, where, "'module.path:function', a callable, or a list or table of them")
    for _, target in pairs:
        if callable(target):
            continue
        if not isinstance(target, str):
            raise InputError(
                f"{where} must be 'module.path:function' or a callable, got {target!r}"
            )
        module, colon, function = target.rpartition(":")
        if not (colon and module and function.isidentifier()):
            raise InputError(
                f"{where} {target!r}: expected module.path:function or path/to/file.py:function"
            )
    return tuple(Target(n, t) for n, t in _unique(pairs, _default_callable_name, where))


def _default_callable_name(target: Any) -> str:
    base = target.rpartition(":")[2] if isinstance(target, str) else getattr(target, "__name__", "")
    return (
        base
        if isinstance(base, str) and _NAME.match(base) and base not in QUANTITIES
        else ("callable")
    )


def positive_seconds(value: Any, name: str) -> float:
    """A timeout: a finite number of seconds above zero."""
    seconds = number(value, name)
    if seconds <= 0:
        raise InputError(f"{option(name)} must be more than 0 seconds, got {seconds}")
    return seconds


def names(
    given: tuple[Given, ...], programs: tuple[Command, ...], functions: tuple[Target, ...]
) -> list[str]:
    """Every user candidate's name, in enumeration order (files, programs, callables).

    Raises:
        InputError: two kinds of candidate share a name.
    """
    order: list[str] = []
    for entry in given:
        if entry.candidate not in order:
            order.append(entry.candidate)
    for kind, items in (("candidate_cmd", programs), ("candidate", functions)):
        for item in items:
            if item.name in order:
                raise InputError(
                    f"{option(kind)}: the name {item.name!r} is already taken by another "
                    f"candidate; name it with NAME=..."
                )
            order.append(item.name)
    return order
