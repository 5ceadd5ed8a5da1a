"""Fixtures of the command-line tests: a CliRunner and a clean working folder without a config."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTKEEPER_CONFIG", raising=False)
    return tmp_path
