"""The docstring examples of the drift engine run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["drift.comparison", "drift.embedding", "drift.intervals", "drift.ks", "drift.spec", "drift.verdict"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
