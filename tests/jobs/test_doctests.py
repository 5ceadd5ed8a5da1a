"""The examples in the jobs' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["jobs.cli.options", "jobs.report.weeks"])
def test_docstring_examples(name: str):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
