"""``--plot FILE.png``: a PNG with the error histogram and heatmap, or a one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lncheck.errors import BackendUnavailable
from lncheck.render import plot

from ..cli.helpers import assert_user_error, invoke
from .reports import make_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_compare_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "errors.png"
    result = invoke(
        "compare", "-", "--shape", "4", "--plot", str(path), input="[[1,2,3,4],[0,1,0,1]]"
    )
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_a_hand_built_report_plots_without_heatmaps(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "r.png"
    plot.write(make_report(), path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_with_an_unknown_extension_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    # refused before the input is read: its shape does not fit --shape either
    target = tmp_path / "x.xyz"
    result = invoke("compare", "-", "--shape", "2", "--plot", str(target), input="[[1,2,3]]")
    assert_user_error(result, f"--plot {target}: matplotlib writes no 'xyz' files (it writes ")
    assert "png" in result.stderr and not target.exists()


def test_plot_into_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    # found before anything runs, matplotlib or not
    result = invoke(
        "compare", "-", "--shape", "2", "--plot", str(tmp_path / "no" / "x.png"), input="[[1,2]]"
    )
    assert_user_error(result, f"--plot {tmp_path / 'no' / 'x.png'}: no such folder")


def test_without_matplotlib_the_plot_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'lncheck\[plot\]'"):
        plot.write(make_report(), tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("name", [".", "..", "folder"])
def test_a_plot_into_a_folders_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    result = invoke("compare", "-", "--shape", "2", "--plot", name, input="[[1,2]]")
    assert_user_error(result, f"--plot {name}: is a folder; give a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
