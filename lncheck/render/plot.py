"""``--plot FILE.png``: the error histogram and a (group, element) heatmap, with matplotlib.

matplotlib is an optional extra (``pip install 'lncheck[plot]'``), imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lncheck.blocks import unravel
from lncheck.comparison import Comparison, histogram_bins
from lncheck.errors import BackendUnavailable, InputError
from lncheck.render.tables import dims
from lncheck.report import Report

PLOTTED = ("output", "activation")


def check_target(path: Path) -> None:
    """Refuse, before anything runs, a plot that could not be written: matplotlib missing, or
    a file extension it has no format for (named as ``--plot`` was given).

    Raises:
        BackendUnavailable: matplotlib is not installed.
        InputError: the name has no suffix (matplotlib would write "r" as r.png, a file the
            user never named), or matplotlib writes no such format."""
    if not path.suffix:
        raise InputError(
            f"--plot {path}: give the format as the file's suffix ({path.name}.png, .svg, .pdf)"
        )
    plt = _pyplot()
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    kind = path.suffix.lstrip(".").lower()
    if kind not in formats:
        raise InputError(
            f"--plot {path}: matplotlib writes no '{kind}' files (it writes "
            f"{', '.join(sorted(formats))})"
        )


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailable("--plot needs matplotlib: pip install 'lncheck[plot]'") from None
    return plt


def write(report: Report, path: Path) -> None:
    """Write the plot of ``report`` to ``path`` (PNG).

    Raises:
        BackendUnavailable: matplotlib is not installed.
        InputError: the file cannot be written.
    """
    plt = _pyplot()
    checks = [c for c in report.checks if c.quantity in PLOTTED and not c.note and c.histogram]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    labels = histogram_bins()
    for c in checks:
        left.step(
            range(len(labels)),
            c.histogram,
            where="mid",
            label=f"{report.name(c.candidate)} {c.quantity}",
        )
    left.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    left.set_yscale("symlog")
    left.set_ylim(bottom=0)
    left.set_xlabel("|actual - expected| (lower edge of a three-octave bin)")
    left.set_ylabel("elements")
    left.set_title("Error distribution")
    if checks:
        left.legend(fontsize=7)
    worst = max(checks, key=lambda c: c.tolerance_used) if checks else None
    _heatmap(right, worst, fig, report.name, report.header.group_shape)
    fig.suptitle(
        f"lncheck: {report.header.layer} on {report.header.case} ({report.header.dtype})",
        fontsize=9,
    )
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise InputError(f"--plot {path}: cannot write: {e.strerror or e}") from None
    except ValueError as e:  # matplotlib's word for an unknown file extension
        raise InputError(f"--plot {path}: {e}") from None
    finally:
        plt.close(fig)


def _heatmap(
    ax: object,
    c: Comparison | None,
    fig: object,
    name: Callable[[str], str],
    group_shape: tuple[int, ...],
) -> None:
    if c is None or c.heatmap is None:
        ax.set_axis_off()  # type: ignore[attr-defined]
        return
    with np.errstate(divide="ignore"):
        image = np.log10(np.where(c.heatmap > 0, c.heatmap, np.nan))
    shown = ax.imshow(image, aspect="auto", interpolation="nearest", cmap="magma")  # type: ignore[attr-defined]
    rows, labels = group_ticks(image.shape[0], group_shape)
    ax.set_yticks(rows, labels, fontsize=7)  # type: ignore[attr-defined]
    ax.set_xlabel("element within group")  # type: ignore[attr-defined]
    ax.set_ylabel("group (as indexed in the tables)")  # type: ignore[attr-defined]
    ax.set_title(f"log10 |error|: {name(c.candidate)} {c.quantity} (max-pooled)")  # type: ignore[attr-defined]
    fig.colorbar(shown, ax=ax)  # type: ignore[attr-defined]


def group_ticks(
    rows: int, group_shape: tuple[int, ...], most: int = 8
) -> tuple[list[int], list[str]]:
    """Up to ``most`` heatmap rows and the index of the first group each row holds, spelled as
    the tables spell group indices, e.g. ``(0, 2)`` (rows are max-pooled over groups)."""
    groups = math.prod(group_shape)
    if rows == 0 or groups == 0:
        return [], []
    step = max(1, math.ceil(rows / most))
    picked = list(range(0, rows, step))
    firsts = [-(-r * groups // rows) for r in picked]  # ceil: the first group pooled into r
    return picked, [dims(unravel(g, group_shape)) for g in firsts]
