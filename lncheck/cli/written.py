"""What a command writes (reports, a plot, a baseline) against what it reads: a target is
never one of the files the run reads (an input, a parameter, a candidate's source), and a
report of an earlier run is removed before this one starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lncheck.render import ReportTarget


def files_read(settings: Any, source: str) -> dict[str, str]:
    """The files a compare reads (the input and the array options), for ``protect``."""
    from lncheck.options import ARRAY_OPTIONS, OPTIONS

    found = {} if source == "-" else {source: "the input"}
    for role in (*ARRAY_OPTIONS, "expected"):
        values = settings[role] if isinstance(settings[role], tuple) else (settings[role],)
        for value in values:
            path = getattr(value, "source", value)  # an --expected entry names its file
            if isinstance(path, str):
                found[path] = f"the {OPTIONS[role].flag} file"
    return found | _sources(settings, "the --candidate file", "the --candidate-cmd file")


def files_of(cases: Any) -> dict[str, str]:
    """The files a suite's cases read, and what each is, for ``protect``."""
    from lncheck.options import ARRAY_OPTIONS

    found: dict[str, str] = {}
    for case in cases:
        if case.random is None:
            found[case.source] = f"the input of case {case.name!r}"
        for role in ARRAY_OPTIONS:
            if isinstance(case.settings[role], str):
                found[case.settings[role]] = f"the {role} of case {case.name!r}"
        named = f"of case {case.name!r}"
        found |= _sources(
            case.settings, f"the candidate {named}", f"the candidate_cmd file {named}"
        )
    return found


def _sources(settings: Any, function: str, program: str) -> dict[str, str]:
    """The ``.py`` files of a case's ``--candidate`` functions, and the files its
    ``--candidate-cmd`` lines name (a script, not a placeholder): a report must not replace
    one."""
    import shlex

    from lncheck.candidates.callable import source_file

    found = {source_file(target): function for target in settings["candidate"] or ()}
    for command in settings["candidate_cmd"] or ():
        try:
            words = shlex.split(command.template)
        except ValueError:  # refused with its reason when the case loads
            continue
        folder = Path(command.cwd or ".")
        for word in words:
            if "{" not in word and (folder / word).is_file():
                found[str(folder / word)] = program
    return {path: role for path, role in found.items() if path is not None}


def protect(
    targets: list[ReportTarget],
    files: dict[str, str],
    baseline: Path | None = None,
    stdout: str | None = None,
) -> None:
    """Refuse targets that are files the run reads (``files``, and ``baseline``), or that
    clash (``render.check_targets``)."""
    from lncheck.render import check_targets

    if baseline is not None:
        files[str(baseline)] = "the baseline"
    check_targets(targets, files, stdout)


def remove_stale(targets: list[ReportTarget]) -> None:
    """Reports of an earlier run go before this one starts: if it is interrupted, CI finds no
    report rather than a stale one that may say "pass"."""
    from lncheck.atomic import special
    from lncheck.errors import InputError

    for target in targets:
        if special(target.path) or target.path.is_symlink():  # /dev/null, a pipe, a link: kept
            continue
        try:
            target.path.unlink(missing_ok=True)
        except OSError as e:
            raise InputError(f"{target.typed}: cannot replace: {e.strerror or e}") from None
