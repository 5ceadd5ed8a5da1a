"""The job-run history: every job run, from the CLI, the daemon or a test, is recorded."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from storage import job_runs
from storage.clock import wall_clock
from storage.statuses import JobStatus

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """Filled in by the job while it runs; stored when it ends."""

    id: int
    job: str
    model: str | None
    counts: dict[str, Any] = field(default_factory=dict)


@contextmanager
def recorded_run(session_factory: sessionmaker[Session], job: str, model: str | None = None) -> Iterator[RunRecord]:
    """Record a run of ``job``: 'running' at the start, then 'succeeded' or 'failed' with the error."""
    with session_factory.begin() as session:
        row = job_runs.start_job_run(session, job, model, wall_clock())
        record = RunRecord(id=row.id, job=job, model=model)
    try:
        yield record
    except BaseException as exc:
        status = JobStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt | SystemExit) else JobStatus.FAILED
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _finish(session_factory, record, status, error)
        raise
    _finish(session_factory, record, JobStatus.SUCCEEDED, None)


def _finish(session_factory: sessionmaker[Session], record: RunRecord, status: str, error: str | None) -> None:
    try:
        with session_factory.begin() as session:
            job_runs.finish_job_run(
                session, record.id, status=status, counts=record.counts, error=error, finished_at=wall_clock()
            )
    except Exception:  # the job's own error matters more than the bookkeeping's
        log.exception("could not record the end of job run %s", record.id)
