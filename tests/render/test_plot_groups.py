"""Plots label their heatmap's rows with group indices spelled as the tables spell them."""

from __future__ import annotations

from lncheck.render.plot import group_ticks


def test_every_row_is_labelled_when_there_are_few_groups() -> None:
    assert group_ticks(4, (2, 2)) == ([0, 1, 2, 3], ["(0, 0)", "(0, 1)", "(1, 0)", "(1, 1)"])


def test_pooled_rows_are_labelled_with_their_first_group() -> None:
    rows, labels = group_ticks(128, (16, 64))  # 1024 groups max-pooled into 128 rows
    assert rows == list(range(0, 128, 16))
    assert labels[:3] == ["(0, 0)", "(2, 0)", "(4, 0)"]  # row 16 starts at group 128


def test_a_single_group() -> None:
    assert group_ticks(1, ()) == ([0], ["()"])
