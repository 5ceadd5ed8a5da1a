"""Fixtures of the report tests: the sample summary, and the ``browser`` marker."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.reports.report_sample import make_summary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: needs Debian's chromium and chromedriver (/usr/bin)")


@pytest.fixture
def summary() -> dict[str, Any]:
    """A fresh copy of the realistic sample summary, as ``summary.json`` data (tests may change it)."""
    return copy.deepcopy(make_summary())
