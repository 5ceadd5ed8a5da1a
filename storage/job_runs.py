"""The job-run history: one row per run of a job, whoever started it. Every function takes a Session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import JobRun
from storage.statuses import JobStatus


@translated
def start_job_run(session: Session, job: str, model: str | None, started_at: datetime) -> JobRun:
    """A new 'running' row for ``job`` (of ``model``, or of all models), flushed so it has its id."""
    row = JobRun(job=job, model=model, started_at=started_at, status=JobStatus.RUNNING, counts={})
    session.add(row)
    session.flush()
    return row


@translated
def finish_job_run(
    session: Session, run_id: int, *, status: str, counts: dict[str, Any], error: str | None, finished_at: datetime
) -> bool:
    """Store how run ``run_id`` ended; False if there is no such run."""
    row = session.get(JobRun, run_id)
    if row is None:
        return False
    row.status = status
    row.finished_at = finished_at
    row.counts = dict(counts)
    row.error = error
    return True


@translated
def last_started(session: Session, job: str, model: str | None) -> datetime | None:
    """When the latest run of ``job`` started; ``model`` None means the runs of all models at once."""
    return session.scalar(
        select(func.max(JobRun.started_at)).where(
            JobRun.job == job, JobRun.model.is_(None) if model is None else JobRun.model == model
        )
    )


@translated
def mark_killed(session: Session, job: str, model: str | None, *, keep: int, finished_at: datetime) -> int:
    """Runs of ``job`` (of ``model``) still 'running' other than ``keep``: their process died (the
    caller holds the job's lease, so no other run of it is alive). Marked 'killed'; how many."""
    rows = session.scalars(
        select(JobRun).where(
            JobRun.job == job,
            JobRun.model.is_(None) if model is None else JobRun.model == model,
            JobRun.status == JobStatus.RUNNING,
            JobRun.id != keep,
        )
    ).all()
    for row in rows:
        row.status = JobStatus.KILLED
        row.finished_at = finished_at
        row.error = "the process died while the job ran (its lease was taken over)"
    return len(rows)
