"""Suite files: many cases in one TOML file, validated whole before anything runs.

A suite has an optional ``[defaults]`` table and one ``[[case]]`` table per case. A case takes
every option of ``lncheck compare`` under its name in the option table (``normalized_shape``
or ``shape``, ``channel_axis``, ``running_mean``, ...), plus ``name``, ``input`` (a path
relative to the suite file) or ``random`` (a generated input), and ``skip``/``xfail`` (a
reason). Defaults apply to every case whose op reads them; a case overrides them. A key a case
sets itself that its op does not read is an error, and so is a default that no case's op reads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lncheck import ops
from lncheck.backends import check_devices, get_backend
from lncheck.candidates.specs import EXPECTED, Given
from lncheck.case import Case
from lncheck.dtypes import DTYPES
from lncheck.errors import InputError, LncheckError, option, spelled
from lncheck.loading import load
from lncheck.options import (
    ALIASES,
    ARRAY_OPTIONS,
    JOINS,
    OPTIONS,
    UNUSED_BESIDE,
    USED_ONLY_WITH,
    Settings,
    parse,
    spelling,
)
from lncheck.result import as_array
from lncheck.suite.random_input import RandomInput, check_generated, random_input
from lncheck.values import closest, text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASE_KEYS = ("name", "input", "random", "skip", "xfail")
# A case loaded while the suite is validated is kept for the run when its arrays are this small
# (a memory-mapped .npy costs nothing until read); larger ones are read again when they run.
KEEP_LOADED_BYTES = 16 << 20


@dataclass(frozen=True)
class SuiteCase:
    """One validated case of a suite: its options, its input, and what to expect of it."""

    name: str
    index: int
    settings: Settings
    source: str  # the input file, or a description of the generated input
    random: RandomInput | None = None
    skip: str | None = None
    xfail: str | None = None
    loaded: Case | None = field(default=None, compare=False, repr=False)

    def load(self) -> Case:
        """The case, with its generated or file input (kept from validation when small).

        Raises:
            InputError: as ``loading.load``.
        """
        if self.loaded is not None:
            return self.loaded
        given = None if self.random is None else {"input": self.random.generate(self._dtype)}
        return load(self.settings, self.source, given=given, name=self.name)

    @property
    def _dtype(self) -> str | None:
        value = self.settings["dtype"]
        return None if value is None else str(value)


@dataclass(frozen=True)
class Suite:
    path: Path
    cases: tuple[SuiteCase, ...]


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file: every case is loaded once, so that an unknown key, a
    missing file or a bad value is found before anything runs.

    Raises:
        InputError: naming the suite file, the case and the key.
    """
    path = Path(path)
    doc = _read(path)
    unknown = sorted(set(doc) - {"defaults", "case"})
    if unknown:
        raise InputError(
            f"{path}: unknown top-level key {unknown[0]!r} (expected [defaults] and [[case]])"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: [defaults] must be a table")
    _check_defaults(path, defaults)
    raw_cases = doc.get("case", [])
    if isinstance(raw_cases, dict):  # [case], one table, where [[case]] makes a list of them
        raise InputError(f"{path}: [case] is one table: write [[case]] for each case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise InputError(f"{path}: no cases: add at least one [[case]] table")
    cases = []
    names: dict[str, str] = {}  # each name taken, and whose it is
    for index, raw in enumerate(raw_cases):
        where = f"{path}: case #{index + 1}"
        if not isinstance(raw, dict):
            raise InputError(f"{where}: must be a table")
        name = raw.get("name", f"case{index + 1}")
        if not isinstance(name, str) or not name or "/" in name or not name.isprintable():
            raise InputError(
                f"{where}: key 'name' must be a non-empty printable string without '/', "
                f"got {name!r}"
            )
        where = f"{path}: case {name!r}"
        if name in names:
            named = "key 'name'" if "name" in raw else f"its default name (case #{index + 1})"
            raise InputError(f"{where}: {named} repeats {names[name]}")
        names[name] = (
            "another case's name" if "name" in raw else f"case #{index + 1}'s default name"
        )
        try:
            case = _case(path.parent, index, name, defaults, raw)
            if case.skip is None:
                case = _validated(case)
        except LncheckError as e:
            raise InputError(f"{where}: {spelled(e, spelling('suite')).raw}") from None
        cases.append(case)
    _check_defaults_read(path, defaults, cases)
    _check_defaults_act(path, defaults, cases, raw_cases)
    return Suite(path, tuple(cases))


def _check_defaults(path: Path, defaults: dict[str, Any]) -> None:
    """``[defaults]``' own faults reported as its own, before any case: an unknown key, a bad
    value, ``name`` (each case names itself), or both ``input`` and ``random``. How its keys
    combine with each case's is checked per case, and whether any case reads them once every
    case is parsed (``_check_defaults_read``).

    Raises:
        InputError: naming the suite file, ``[defaults]`` and the key.
    """
    try:
        unknown = _unknown_keys(defaults)
        if unknown:
            raise InputError(f"unknown key {unknown[0]!r}{_suggestion(unknown[0])}")
        if "name" in defaults:
            raise InputError("key 'name' names one case: give it in each [[case]]")
        if "random" in defaults and "input" in defaults:
            raise InputError("keys 'input' and 'random' both given: give one")
        if "random" in defaults:
            random_input(defaults["random"])
        if "input" in defaults:
            text(defaults["input"], "input")
        for key in ("skip", "xfail"):
            _reason(defaults.get(key), key)
        parse({k: v for k, v in defaults.items() if k not in CASE_KEYS}, "suite")
    except LncheckError as e:
        raise InputError(f"{path}: [defaults]: {spelled(e, spelling('suite')).raw}") from None


def _check_defaults_read(path: Path, defaults: dict[str, Any], cases: list[SuiteCase]) -> None:
    """Refuse a per-op default that no case's op reads: each case leaves it out (``_case``),
    so it would be silently dropped, where a case giving it itself is refused.

    Raises:
        InputError: naming the suite file, ``[defaults]``, the key, its readers and the ops of
            the cases.
    """
    present = list(dict.fromkeys(str(c.settings["op"]) for c in cases))  # in the cases' order
    for key in defaults:
        name = ALIASES.get(key, key)
        known = OPTIONS.get(name)
        if known is None or not known.per_op or any(name in ops.module(op).READS for op in present):
            continue
        readers = ops.readers_of(name)
        verb = "reads" if len(readers) <= 1 else "read"  # "no op reads it"
        raise InputError(
            f"{path}: [defaults]: key {key!r} is read by no case "
            f"({', '.join(readers) or 'no op'} {verb} it; the cases are {', '.join(present)})"
        )


def _check_defaults_act(
    path: Path, defaults: dict[str, Any], cases: list[SuiteCase], raw_cases: list[Any]
) -> None:
    """Refuse a default (``momentum``, ``train``) that does nothing in every case that reads
    it (``ops.IDLE``: no running statistics kept or updated), where it stays out (``_case``),
    as the command line refuses it.

    Raises:
        InputError: naming the suite file, ``[defaults]``, the key and why."""
    for key in defaults:
        name = ALIASES.get(key, key)
        if any(name == used for used, *_ in USED_ONLY_WITH + UNUSED_BESIDE):
            # seed, candidate_timeout: each case that inherits it leaves it out where the option
            # it works with is missing (``_idle``); in every such case it is dropped unsaid
            inheriting = [{**defaults, **raw} for raw in raw_cases if key not in raw]
            if inheriting and all(_idle(name, merged) for merged in inheriting):
                needs = next((n, w) for u, n, w in USED_ONLY_WITH if u == name)
                raise InputError(
                    f"{path}: [defaults]: key {key!r} does nothing in any case that inherits "
                    f"it (it is for {needs[1]}, which none of them has)"
                )
            continue
        idle_of = dict(ops.IDLE).get(name)
        if idle_of is None:
            continue
        inherits = [
            case
            for case, raw in zip(cases, raw_cases, strict=True)
            if name not in {ALIASES.get(k, k) for k in raw}
            and name in ops.module(str(case.settings["op"])).READS
        ]
        if inherits and not any(case.settings.given(name) for case in inherits):
            why = spelled(InputError(str(idle_of(inherits[0].settings))), spelling("suite")).raw
            raise InputError(
                f"{path}: [defaults]: key {key!r} does nothing in any case that inherits it ({why})"
            )


def _suite_keys() -> tuple[str, ...]:
    """The keys a case or ``[defaults]`` takes: the case keys and the options a suite takes,
    under any of their names."""
    return CASE_KEYS + tuple(
        name
        for name in (*OPTIONS, *ALIASES)
        if "suite" in getattr(OPTIONS.get(ALIASES.get(name, name)), "surfaces", ())
    )


def _unknown_keys(table: dict[str, Any]) -> list[str]:
    """The keys of a case or of ``[defaults]`` that no suite takes, sorted."""
    known = _suite_keys()
    return sorted(key for key in table if key not in known)


def _suggestion(key: str) -> str:
    """`` (did you mean 'shape'?)`` for a misspelt key."""
    return closest(key, _suite_keys())


# A suite is a page of TOML: beyond this a file is none (and /dev/zero would never end)
SUITE_MAX_BYTES = 16 << 20


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(SUITE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such suite file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a suite file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    if len(raw) > SUITE_MAX_BYTES:
        raise InputError(f"{path}: is more than {SUITE_MAX_BYTES >> 20} MiB; a suite is TOML text")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is no TOML
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a TOML suite file (not UTF-8 text)") from None
    try:
        return tomllib.loads(text)
    except Exception as e:  # whatever the parser raises on this text, the file is at fault
        reason = "nested too deeply" if isinstance(e, RecursionError) else e
        raise InputError(f"{path}: invalid TOML: {reason}") from None


def _not_given_by(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` less each expected entry the case gives under another key: a case's
    ``expected = {grad_weight = ...}`` overrides a default ``expected_grad_weight``, and its
    ``expected_grad_weight`` a default ``expected`` table's ``grad_weight`` (keys that join
    ``expected``, ``options.JOINS``). The same key is overridden whole, as every key is."""
    family = {*JOINS, *JOINS.values()}
    own = {(g.candidate, g.quantity) for key in family & raw.keys() for g in _entries(key, raw)}
    if not own:
        return defaults
    kept = dict(defaults)
    for key in (family & defaults.keys()) - raw.keys():
        entries = _entries(key, defaults)
        rest = [g for g in entries if (g.candidate, g.quantity) not in own]
        if not rest:
            del kept[key]
        elif len(rest) < len(entries):  # only ``expected`` holds several
            kept[key] = {_entry_name(g): g.source for g in rest}
    return kept


def _entries(key: str, table: dict[str, Any]) -> tuple[Given, ...]:
    return tuple(OPTIONS[key].parse(table[key], key))


def _entry_name(entry: Given) -> str:
    """The name an ``expected`` table gives ``entry`` under (``grad_weight``, ``mine.rstd``)."""
    if entry.quantity is None:
        return entry.candidate
    if entry.candidate == EXPECTED:
        return entry.quantity
    return f"{entry.candidate}.{entry.quantity}"


def _case(
    root: Path, index: int, name: str, defaults: dict[str, Any], raw: dict[str, Any]
) -> SuiteCase:
    unknown = _unknown_keys(raw)
    if unknown:  # [defaults]' own are refused before any case (``_check_defaults``)
        raise InputError(f"key {unknown[0]!r}: unknown case key{_suggestion(unknown[0])}")
    # a case overrides a default under any of its names (``shape`` for ``normalized_shape``)
    named = {ALIASES.get(key, key) for key in raw}
    inherited = {k: v for k, v in defaults.items() if ALIASES.get(k, k) not in named}
    merged = {**_not_given_by(raw, inherited), **raw}
    for own, other in (("input", "random"), ("random", "input"), ("skip", "xfail"),
                       ("xfail", "skip")):  # fmt: skip
        if own in raw and other not in raw:  # a case's input (or status) replaces the default
            merged.pop(other, None)
    op = merged.get("op", OPTIONS["op"].default)
    reads = set(ops.module(op).READS) if op in ops.OPS else set()
    given = {
        key: value
        for key, value in merged.items()
        if key not in CASE_KEYS
        # a default the case's op does not read stays out of it; the case's own keys all count
        and (key in raw or not OPTIONS[ALIASES.get(key, key)].per_op
             or ALIASES.get(key, key) in reads)
        # nor one that only works with another option the case does not give (a default seed)
        and (key in raw or not _idle(ALIASES.get(key, key), merged))
    }  # fmt: skip
    settings = parse(given, "suite")
    # a default momentum (or train/eval mode) stays out of a case it does nothing in (eval,
    # no running statistics), as one its op does not read does; the case's own is refused
    for option_name, idle_of in ops.IDLE:
        from_defaults = option_name not in named and settings.given(option_name)
        if from_defaults and op in ops.OPS and idle_of(settings) is not None:
            settings = settings.without(option_name)
    for role in ARRAY_OPTIONS:
        if isinstance(settings[role], str):
            settings = settings.with_values(**{role: str(_existing(root, settings[role], role))})
    settings = _candidates_under(root, settings)
    random = None
    if "random" in merged and "input" in merged:
        raise InputError("keys 'input' and 'random' both given: give one")
    if "random" in merged:
        random = random_input(merged["random"])
        check_generated(random, settings["max_bytes"])
        source = random.describe()
    elif "input" in merged:
        source = str(_existing(root, text(merged["input"], "input"), "input"))
    else:
        raise InputError("key 'input' or 'random' is required")
    skip = _reason(merged.get("skip"), "skip")
    xfail = _reason(merged.get("xfail"), "xfail")
    if skip is not None and xfail is not None:  # a skipped case never runs to fail
        raise InputError("keys 'skip' and 'xfail' both given: give one")
    return SuiteCase(name, index, settings, source, random, skip, xfail)


def _idle(name: str, merged: dict[str, Any]) -> bool:
    """Whether option ``name`` works only with another option (``options.USED_ONLY_WITH``) that
    the case's keys leave unset, or does nothing beside one they set (``UNUSED_BESIDE``)."""
    named = {ALIASES.get(k, k): v for k, v in merged.items()}
    return any(
        name == used and not any(named.get(n) for n in needs) for used, needs, _ in USED_ONLY_WITH
    ) or any(name == used and named.get(other) is not None for used, other, _ in UNUSED_BESIDE)


def _candidates_under(root: Path, settings: Settings) -> Settings:
    """The user's candidates with paths relative to the suite file: ``expected`` files,
    ``file.py:function`` callables, and programs that run in the suite file's folder."""
    changes: dict[str, Any] = {}
    if settings.given("expected"):
        changes["expected"] = tuple(
            replace(e, source=str(_existing(root, e.source, e.option)))
            if isinstance(e.source, str) else e
            for e in settings["expected"]
        )  # fmt: skip
    if settings.given("candidate_cmd"):
        folder = str(root.resolve())
        changes["candidate_cmd"] = tuple(replace(c, cwd=folder) for c in settings["candidate_cmd"])
    if settings.given("candidate"):
        targets = []
        for target in settings["candidate"]:
            if isinstance(target.target, str) and ".py:" in target.target:
                file, _, function = target.target.rpartition(":")
                target = replace(target, target=f"{_existing(root, file, 'candidate')}:{function}")
            else:  # a module path: beside the suite file first, as a file path would be
                target = replace(target, folder=str(root.resolve()))
            targets.append(target)
        changes["candidate"] = tuple(targets)
    return settings.with_values(**changes)


def _existing(root: Path, value: str, key: str) -> Path:
    path = (root / value) if not Path(value).is_absolute() else Path(value)
    if not path.exists():
        raise InputError(f"{option(key)}: no such file {str(path)!r}")
    return path


def _reason(value: Any, key: str) -> str | None:
    """``skip``/``xfail``: a reason, ``true`` (the key is the reason), or ``false`` (none)."""
    if value is None or value is False:
        return None
    if value is True:
        return key
    return text(value, key)


def _validated(case: SuiteCase) -> SuiteCase:
    """Everything but running: files readable, shapes fitting the layer, options consistent,
    devices the backend can name. The loaded case is kept for the run when it is small."""
    check_devices(get_backend(case.settings["backend"]), case.settings)
    if case.random is not None:
        # the shape is what matters: zeros that take no memory stand in for the values
        dtype = case._dtype
        storage = DTYPES[dtype].storage if dtype in DTYPES else np.float32
        zeros = np.broadcast_to(np.zeros((), storage), case.random.shape)
        load(case.settings, case.source, given={"input": zeros}, name=case.name)
        return case
    loaded = load(case.settings, case.source, name=case.name)
    if _resident_bytes(loaded) <= KEEP_LOADED_BYTES:
        return replace(case, loaded=loaded)
    return case


def _resident_bytes(case: Case) -> int:
    arrays = (case.x, case.weight, case.bias, case.running_mean, case.running_var)
    given = [as_array(a) for r in case.given for a in r.quantities.values()]
    return sum(a.nbytes for a in (*arrays, case.grad_output, *given) if a is not None)
