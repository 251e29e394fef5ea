"""The one table of options: every layer, array and run option lncheck takes, defined once.

The command line's parameters (``cli.params``), a suite file's keys (``suite.parse``) and the
Python API's keyword arguments (``api``) are all spelled from ``OPTIONS``; a test checks that
each surface matches it. Names are torch's (``normalized_shape``, ``training``); a few keep a
shorter alias (``shape``, ``train``) and a command-line flag of their own (``--shape``,
``--train/--eval``). Which ops read an option is declared by the ops themselves
(``lncheck.ops``); an option given to an op that does not read it is an input error.

``parse`` turns the raw values of any surface into ``Settings``: validated, canonical, with a
record of what the caller actually set and how the caller spelled it, so that a message raised
deep in an op names ``--groups``, ``key 'groups'`` or ``groups=`` as the caller wrote it.

This module imports neither NumPy nor torch: ``lncheck --help`` builds its options from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from lncheck.candidates.specs import (
    callables,
    commands,
    expected_entries,
    expected_quantity,
    positive_seconds,
    unique_entries,
)
from lncheck.errors import InputError, LncheckError, option, spelled
from lncheck.values import (
    Parser,
    any_number,
    array,
    flag,
    integer,
    integers,
    momentum,
    non_negative,
    number,
    one_of,
    positive,
    repeat_count,
    text,
)

Surface = Literal["cli", "suite", "api"]
SURFACES: tuple[Surface, ...] = ("cli", "suite", "api")


@dataclass(frozen=True)
class Option:
    """One option: its name, how a value is checked, its default, its help and its spellings.

    ``kind`` says how the command line takes it (``int``, ``float``, ``ints``, ``flag``,
    ``choice``, ``text``, ``array``, ``texts``: repeatable); ``parse(value, name)`` checks a
    value from any surface and returns the canonical one, raising ``InputError`` that names the
    option. ``default`` is what an unset option means where no op says otherwise (``None``: the
    op's or backend's default).
    ``per_op`` options are read only by the ops that declare them; the others apply to every op.
    """

    name: str
    kind: str
    parse: Parser
    help: str
    panel: str
    default: Any = None
    per_op: bool = False
    flags: tuple[str, ...] = ()  # command line; the first one is how messages spell it
    aliases: tuple[str, ...] = ()  # other names a suite key or a keyword may use
    surfaces: tuple[Surface, ...] = SURFACES
    choices: Callable[[], tuple[str, ...]] | None = None
    metavar: str | None = None
    default_text: str | None = None  # the default as --help shows it
    # another option this one's entries are added to (``--expected-grad-weight F`` is
    # ``--expected grad_weight=F``): nothing downstream reads it under its own name
    joins: str | None = None

    @property
    def flag(self) -> str:
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")


def _op_names() -> tuple[str, ...]:
    from lncheck.ops import OP_NAMES

    return OP_NAMES


def _dtype_names() -> tuple[str, ...]:
    return ("float64", "float32", "float16", "bfloat16")


def _dtype(value: Any, name: str) -> str:
    """A dtype's name: given as one (every surface), or in the API as a NumPy or torch dtype
    (``np.float16``, ``np.dtype("float16")``, ``torch.bfloat16``; not a value of one)."""
    if not isinstance(value, str):
        import numpy as np

        if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
            value = str(value).removeprefix("torch.")
        elif isinstance(value, np.dtype) or (
            isinstance(value, type) and issubclass(value, np.generic)
        ):
            value = np.dtype(value).name
    return str(one_of(_dtype_names)(value, name))


def _backend_names() -> tuple[str, ...]:
    from lncheck.backends import BACKENDS

    return tuple(BACKENDS)


def _tolerance_modes() -> tuple[str, ...]:
    return ("auto", "fixed")


LAYER = "Layer"
FILES = "Parameters and statistics"
CANDIDATES = "Candidates"
RUN = "Run"
TOLERANCES = "Tolerances"

_PER_OP: dict[str, Any] = {"per_op": True, "panel": LAYER}

OPTIONS_LIST: tuple[Option, ...] = (
    Option("op", "choice", one_of(_op_names), "The normalization layer.", LAYER,
           default="layer_norm", choices=_op_names, default_text="layer_norm"),
    Option("normalized_shape", "ints", integers,
           "normalized_shape (layer_norm, rms_norm): the trailing dims, e.g. --shape 3 4.",
           flags=("--shape", "--normalized-shape"), aliases=("shape",), metavar="D [D ...]",
           **_PER_OP),
    Option("axes", "ints", integers,
           "Normalize over these axes instead (TF/Keras-style, negative allowed): --axes 1 3.",
           metavar="A [A ...]", **_PER_OP),
    Option("eps", "float", number,
           "Added to the variance before the square root. Default 1e-5 (rms_norm: torch's None).",
           **_PER_OP),
    Option("groups", "int", positive, "Number of groups (group_norm).", **_PER_OP),
    Option("channel_axis", "int", integer,
           "The channel axis of group_norm, instance_norm, batch_norm and local_response_norm (-1 "
           "for channels-last).",
           default=1, default_text="1", **_PER_OP),
    Option("affine", "flag", flag,
           "Learnable weight and bias or none. Default as torch: on, off for instance_norm.",
           flags=("--affine/--no-affine",), **_PER_OP),
    Option("training", "flag", flag,
           "Training (batch statistics) or eval mode (batch_norm, instance_norm).",
           default=True, flags=("--train/--eval",), aliases=("train",), default_text="train",
           **_PER_OP),
    Option("track_running_stats", "flag", flag,
           "Keep running statistics. Default as torch: on for batch_norm, off for instance_norm.",
           flags=("--track-running-stats/--no-track-running-stats",), **_PER_OP),
    Option("momentum", "text", momentum,
           "Running-statistics momentum, or 'none' for the cumulative average.",
           default=0.1, default_text="0.1", **_PER_OP),
    Option("size", "int", positive, "Window of neighbouring channels, in local_response_norm.",
           **_PER_OP),
    Option("alpha", "float", number, "local_response_norm alpha.", default=1e-4,
           default_text="0.0001", **_PER_OP),
    Option("beta", "float", number, "local_response_norm beta.", default=0.75,
           default_text="0.75", **_PER_OP),
    Option("k", "float", number, "local_response_norm k.", default=1.0, flags=("--k",),
           default_text="1.0", **_PER_OP),
    Option("activation", "text", text,
           "Applied after the norm and checked too: relu, leaky_relu[=SLOPE], prelu[=INIT], "
           "gelu[=tanh], silu.", LAYER),
    Option("weight_offset", "float", number,
           "Scale by (weight + OFFSET): 1 for zero-centred weights (Gemma, or zero_centered_gamma "
           "in TransformerEngine); the default weight is then zeros. torch has no such module: "
           "the backend runs the layer without weight and multiplies by (OFFSET + w) in float32, "
           "casting once.", default=0.0, default_text="0", **_PER_OP),
    Option("weight", "array", array, "Weight (gamma) file; default ones.", FILES),
    Option("bias", "array", array, "Bias (beta) file; default zeros.", FILES),
    Option("running_mean", "array", array,
           "Running mean file (batch_norm, instance_norm); default zeros in training, "
           "required in eval.", FILES),
    Option("running_var", "array", array,
           "Running variance file; default ones in training, required in eval.", FILES),
    Option("grad_output", "array", array,
           "Upstream gradient for --grad; default seeded random normal.", FILES),
    Option("expected", "texts", expected_entries,
           "Results made elsewhere, checked as a candidate: FILE (the final output, or a bundle "
           ".npz/.pt/.json of quantities), NAME=FILE, QUANTITY=FILE or NAME.QUANTITY=FILE; "
           "repeatable.", CANDIDATES, metavar="[NAME=]FILE"),
    *(
        Option(f"expected_{quantity}", "text", expected_quantity(quantity),
               f"A {quantity} made elsewhere (with --grad), checked as candidate 'expected': "
               f"the same as --expected {quantity}=FILE.", CANDIDATES, metavar="FILE",
               joins="expected")
        for quantity in ("grad_input", "grad_weight", "grad_bias")
    ),
    Option("candidate_cmd", "texts", commands,
           "A program checked as a candidate, run per case without a shell: [NAME=]TEMPLATE "
           "with {input}, {output}, {weight}, {eps}, ...; repeatable.", CANDIDATES,
           metavar="[NAME=]TEMPLATE"),
    Option("candidate", "texts", callables,
           "A Python function checked as a candidate: [NAME=]module.path:function or "
           "file.py:function, called with torch tensors; repeatable.", CANDIDATES,
           aliases=("candidates",), metavar="[NAME=]MODULE:FUNCTION"),
    Option("candidate_timeout", "float", positive_seconds,
           "Seconds a --candidate-cmd program may run before it is stopped (a failed check).",
           CANDIDATES, default=60.0, default_text="60"),
    Option("repeat", "int", repeat_count,
           "Run every candidate N times (at most 1000); a run that differs bitwise from the "
           "first fails it.",
           CANDIDATES, default=1, default_text="1"),
    Option("dtype", "choice", _dtype,
           "Dtype torch computes in; default the input's floating dtype.", RUN,
           choices=_dtype_names),
    Option("backend", "choice", one_of(_backend_names),
           "The implementation under test, beside the reference.", RUN, default="torch",
           choices=_backend_names, default_text="torch"),
    Option("device", "text", text, "Device the backend runs on: cpu, cuda, cuda:N or mps.", RUN,
           default="cpu", default_text="cpu"),
    Option("vs_device", "text", text,
           "Also run the backend on this device as more candidates (--device cuda --vs-device "
           "cpu).", RUN),
    Option("grad", "flag", flag, "Also check the backward pass: dx, dweight, dbias.", RUN,
           default=False, flags=("--grad",)),
    Option("seed", "int", non_negative, "Seed of the random upstream gradient.", RUN,
           default=0, default_text="0"),
    Option("max_bytes", "int", positive,
           "Refuse inputs larger than this many bytes; default half the RAM.", RUN),
    Option("chunks", "flag", flag,
           "Check large inputs chunk by chunk (--no-chunks: the whole tensor at once, more "
           "memory).", RUN, default=True, flags=("--chunks/--no-chunks",), surfaces=("cli", "api")),
    Option("tolerance", "choice", one_of(_tolerance_modes),
           "auto (default): an error bound from the dtype, group size and conditioning; "
           "fixed: torch.testing's table.", TOLERANCES, choices=_tolerance_modes),
    Option("rtol", "float", any_number, "Relative tolerance (give --atol too).", TOLERANCES),
    Option("atol", "float", any_number, "Absolute tolerance (give --rtol too).", TOLERANCES),
    Option("equal_nan", "flag", flag, "NaN in both places counts as a match.", TOLERANCES,
           default=False, flags=("--equal-nan",)),
    Option("strict", "flag", flag,
           "Pass only the accurate class (not sequential accumulation).", TOLERANCES,
           default=False, flags=("--strict",)),
    Option("accept", "choice", one_of(lambda: ("low-precision",)),
           "Also pass the low_precision class (statistics or sums in the compute dtype).",
           TOLERANCES, choices=lambda: ("low-precision",)),
)  # fmt: skip

OPTIONS: dict[str, Option] = {o.name: o for o in OPTIONS_LIST}
ALIASES: dict[str, str] = {a: o.name for o in OPTIONS_LIST for a in o.aliases}
# options whose entries are added to another's (``Option.joins``)
JOINS: dict[str, str] = {o.name: o.joins for o in OPTIONS_LIST if o.joins}
ARRAY_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS_LIST if o.kind == "array")


# options that take effect only together with another one: (option, needs, what it is for);
# a --grad-output turns the backward pass on by itself (and then no seed is drawn, but a
# seed beside it does no harm: it is the one that applies if the file is left out)
USED_ONLY_WITH = (
    ("seed", ("grad", "grad_output"), "the backward pass's random upstream gradient"),
    ("candidate_timeout", ("candidate_cmd",), "a program candidate"),
)
# Options that do nothing beside another, which gives what they would make: (option, other,
# what that is).
UNUSED_BESIDE = (("seed", "grad_output", "the upstream gradient"),)


# the command line's options as the caller typed them (``-k`` for ``pattern``), set by the
# command line for the command it runs: its messages name them so
TYPED_FLAGS: ContextVar[Mapping[str, str] | None] = ContextVar("lncheck_typed_flags", default=None)


def spelling(surface: Surface, words: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """How ``surface`` names an option in messages: ``--groups``, ``key 'groups'``, ``groups=``.

    ``words`` maps an option to the word the caller used for it (an alias such as ``shape``);
    on the command line, ``TYPED_FLAGS`` does.
    """
    used = words or {}

    def spell(name: str) -> str:
        known = OPTIONS.get(name)
        if surface == "cli":
            typed = (TYPED_FLAGS.get() or {}).get(name)
            if typed is not None:
                return typed
            return known.flag.split("/")[0] if known else "--" + name.replace("_", "-")
        word = used.get(name, name)
        return f"key {word!r}" if surface == "suite" else f"{word}="

    return spell


@dataclass(frozen=True)
class Settings:
    """Every option of one case, validated: what the caller set, and the defaults for the rest.

    ``settings[name]`` is the value; ``given`` says whether the caller set it; ``surface`` and
    ``words`` say how to name options back to the caller.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    surface: Surface = "api"
    words: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return OPTIONS[name].default

    def given(self, name: str) -> bool:
        return name in self.values

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some options set to new (already checked) values."""
        return Settings({**self.values, **changes}, self.surface, self.words)

    def without(self, *names: str) -> Settings:
        """A copy in which ``names`` are unset again."""
        kept = {k: v for k, v in self.values.items() if k not in names}
        return Settings(kept, self.surface, self.words)

    def spell(self, error: LncheckError) -> LncheckError:
        """``error`` with its options named as this caller named them."""
        return spelled(error, spelling(self.surface, self.words))


def parse(
    raw: Mapping[str, Any],
    surface: Surface,
    *,
    unset: object = None,
    presets: Mapping[str, Any] | None = None,
) -> Settings:
    """Check the options one surface received and return them as ``Settings``.

    ``raw`` maps the caller's words (names or aliases) to values; a value ``is unset`` means
    "not given" (the command line passes ``None`` for every option it did not receive).
    ``presets`` are defaults applied first (a convention preset: one dict of overrides).

    Raises:
        InputError: an unknown option, a value of the wrong kind, or an option given twice
            under two names; the message names it in the caller's spelling.
    """
    values: dict[str, Any] = dict(presets or {})
    words: dict[str, str] = {}
    for word, value in raw.items():
        if value is unset:
            continue
        name = ALIASES.get(word, word)
        known = OPTIONS.get(name)
        if known is None or surface not in known.surfaces:
            said = spelling(surface)(word)  # foo=, key 'foo', --foo: as the caller wrote it
            raise spelled(InputError(f"unknown option {said}"), spelling(surface))
        if name in words:
            raise spelled(
                InputError(f"{option(name)} is given twice, as {words[name]!r} and {word!r}"),
                spelling(surface, {name: word}),
            )
        words[name] = word
        try:
            values[name] = known.parse(value, name)
        except LncheckError as e:
            raise spelled(e, spelling(surface, words)) from None
    for name, target in JOINS.items():
        if name not in values:
            continue
        words.setdefault(target, words.get(name, name))
        try:
            values[target] = unique_entries((*values.get(target, ()), *values.pop(name)), name)
        except LncheckError as e:
            raise spelled(e, spelling(surface, words)) from None
    return Settings(values, surface, words)


def check_applies(settings: Settings, op: str, reads: Iterable[str]) -> None:
    """Refuse a per-op option the op does not read (it would otherwise be silently ignored).

    Raises:
        InputError: naming the option, the op, and the ops that do read it.
    """
    from lncheck.ops import readers_of

    read = set(reads)
    for name in settings.values:
        known = OPTIONS.get(name)
        if known is not None and known.per_op and name not in read:
            users = ", ".join(readers_of(name)) or "no op"
            off = known.flag.partition("/")[2]
            # an on/off flag turned off is named as typed: --eval, --no-affine
            typed = off if settings.surface == "cli" and off and not settings[name] else None
            words = f"{typed or option(name)} does not apply to {op} (it is read by {users})"
            raise settings.spell(InputError(words))
