"""The job-run history's queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import job_runs
from storage.models import JobRun

T0 = datetime(2026, 11, 30, 6, tzinfo=UTC)


def test_a_run_is_started_then_finished(database):
    with database.session_factory.begin() as s:
        run_id = job_runs.start_job_run(s, "check", "digits", T0).id
    with database.session_factory.begin() as s:
        assert job_runs.finish_job_run(
            s, run_id, status="failed", counts={"runs": 1}, error="boom", finished_at=T0 + timedelta(minutes=1)
        )
        assert not job_runs.finish_job_run(s, run_id + 1, status="failed", counts={}, error=None, finished_at=T0)
    with database.session_factory() as s:
        row = s.get(JobRun, run_id)
        assert row is not None
        assert (row.job, row.model, row.status, row.counts, row.error) == (
            "check",
            "digits",
            "failed",
            {"runs": 1},
            "boom",
        )
        assert (row.started_at, row.finished_at) == (T0, T0 + timedelta(minutes=1))


def test_the_last_start_is_per_job_and_model_and_none_means_all_models(database):
    with database.session_factory.begin() as s:
        for job, model, hours in [
            ("report", "digits", 0),
            ("report", "digits", 2),
            ("report", "pets", 5),
            ("ingest", None, 1),
            ("ingest", "digits", 9),  # an ingest of one model is not a run for all models
        ]:
            job_runs.start_job_run(s, job, model, T0 + timedelta(hours=hours))
    with database.session_factory() as s:
        assert job_runs.last_started(s, "report", "digits") == T0 + timedelta(hours=2)
        assert job_runs.last_started(s, "report", "pets") == T0 + timedelta(hours=5)
        assert job_runs.last_started(s, "ingest", None) == T0 + timedelta(hours=1)
        assert job_runs.last_started(s, "report", None) is None
        assert job_runs.last_started(s, "check", "digits") is None
