"""The runnable examples in the docstrings of the public API."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["lncheck", "lncheck.api", "lncheck.reference", "lncheck.dtypes"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
