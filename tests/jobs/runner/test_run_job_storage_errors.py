"""run_job and database failures: a failed outcome whose error is one line, the password masked."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from jobs.config import Settings
from jobs.runner.execute import run_job
from storage.engine import make_engine, make_session_factory, redact_url
from storage.models import JobRun

PASSWORD = "s3cret-Pw"
UNREACHABLE_POSTGRES = f"postgresql+psycopg://driftkeeper:{PASSWORD}@127.0.0.1:1/driftkeeper?connect_timeout=3"


def _settings(url: str) -> Settings:
    return Settings(database={"url": url}, schedule={"daemon_lease_seconds": 10}, models=[])


def test_an_unreachable_database_fails_the_run_with_one_masked_line(caplog: pytest.LogCaptureFixture):
    engine = make_engine(UNREACHABLE_POSTGRES)
    try:
        outcome = run_job("ingest", make_session_factory(engine), _settings(UNREACHABLE_POSTGRES))
    finally:
        engine.dispose()
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert outcome.error is not None
    assert outcome.error.startswith("database postgresql+psycopg://driftkeeper:***@127.0.0.1:1/driftkeeper")
    assert "\n" not in outcome.error and "Traceback" not in outcome.error and "[SQL" not in outcome.error
    assert PASSWORD not in outcome.error and PASSWORD not in caplog.text


def test_a_database_error_in_a_job_is_recorded_as_that_line(database, monkeypatch: pytest.MonkeyPatch):
    def ingest(*args: Any, **kwargs: Any) -> list[Any]:
        raise OperationalError(
            "UPDATE ingest_watermarks SET rows_seen=?", {"rows_seen": 7}, Exception("disk I/O error")
        )

    monkeypatch.setattr("jobs.ingest.run.ingest", ingest)
    with pytest.MonkeyPatch.context() as quiet:
        quiet.setattr(logging.getLogger("jobs.runner.execute"), "disabled", True)  # the traceback is expected
        outcome = run_job("ingest", database.session_factory, _settings(database.url))
    expected = f"database {redact_url(database.url)}: disk I/O error"
    assert (outcome.status, outcome.exit_code, outcome.error) == ("failed", 1, expected)
    with database.session_factory() as s:
        [row] = s.scalars(select(JobRun)).all()
    assert row.status == "failed" and row.error == f"drift.errors.StorageError: {expected}"
