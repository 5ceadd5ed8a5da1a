"""Read-only queries behind the Prometheus metrics (:mod:`jobs.metrics.collector`).

Each scrape (or textfile write) reads the current state through :func:`read_only_session`; the
daemon and one-shot runs publish the same thing. Every query is bounded: a model's latest checked
window only, at most ``limit`` columns per run, grouped quarantine counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import translate, translated
from storage.models import DriftColumnResult, DriftRun, JobRun, Model, ModelVersion, PredictionLog, QuarantinedRow
from storage.statuses import JobStatus


@contextmanager
def read_only_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that writes nothing: a read-only transaction on PostgreSQL, always rolled back."""
    with translate(session_factory), session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"postgresql_readonly": True})
        try:
            yield session
        finally:
            session.rollback()


@dataclass(frozen=True, kw_only=True)
class ColumnScore:
    column: str
    score: float | None
    drifted: bool


@dataclass(frozen=True, kw_only=True)
class LatestRun:
    """The latest drift run of one model version in the model's latest checked window."""

    run_id: int
    version: int
    window_end: datetime
    n_rows: int
    drifted: bool
    retrain_worthy: bool
    verdict_level: str | None  # the stored verdict's level; None for runs stored before verdicts
    figures: dict[str, Any]
    columns: tuple[ColumnScore, ...]  # drifted ones first, then in stored order; at most the limit
    columns_total: int


@dataclass(frozen=True, kw_only=True)
class JobSummary:
    """The last finished run of one job (of one model, or of all: ``model`` None)."""

    job: str
    model: str | None
    duration_seconds: float
    succeeded: bool
    last_success_at: datetime | None


@translated
def model_ids(session: Session, names: Collection[str]) -> dict[str, int]:
    """The ids of the models among ``names`` that the database knows."""
    if not names:
        return {}
    return {name: int(i) for name, i in session.execute(select(Model.name, Model.id).where(Model.name.in_(names)))}


@translated
def latest_runs(session: Session, model_id: int, *, max_versions: int, max_columns: int) -> list[LatestRun]:
    """Per version checked in the model's latest window (most rows first, at most ``max_versions``),
    its latest run with at most ``max_columns`` column results."""
    last_end = session.scalar(select(func.max(DriftRun.window_end)).where(DriftRun.model_id == model_id))
    if last_end is None:
        return []
    latest_ids = (
        select(func.max(DriftRun.id))
        .where(DriftRun.model_id == model_id, DriftRun.window_end == last_end)
        .group_by(DriftRun.version)
    )
    runs = session.scalars(
        select(DriftRun).where(DriftRun.id.in_(latest_ids)).order_by(DriftRun.n_rows.desc(), DriftRun.version)
    ).all()[:max_versions]
    out = []
    for run in runs:
        c = DriftColumnResult
        total = session.scalar(select(func.count()).select_from(c).where(c.run_id == run.id)) or 0
        columns = session.execute(
            select(c.column, c.score, c.drifted)
            .where(c.run_id == run.id)
            .order_by(c.drifted.desc(), c.id)
            .limit(max_columns)
        ).all()
        out.append(
            LatestRun(
                run_id=run.id,
                version=run.version,
                window_end=run.window_end,
                n_rows=int(run.n_rows),
                drifted=bool(run.drifted),
                retrain_worthy=bool(run.retrain_worthy),
                verdict_level=(run.verdict or {}).get("level"),
                figures=dict(run.figures or {}),
                columns=tuple(ColumnScore(column=n, score=s, drifted=bool(d)) for n, s, d in columns),
                columns_total=int(total),
            )
        )
    return out


@translated
def champion_versions(session: Session, ids: Collection[int]) -> dict[int, int]:
    """model id -> its champion version (the highest, were a rule ever broken); models without one are left out."""
    if not ids:
        return {}
    v = ModelVersion
    rows = session.execute(
        select(v.model_id, func.max(v.version)).where(v.model_id.in_(ids), v.status == "champion").group_by(v.model_id)
    )
    return {int(m): int(n) for m, n in rows}


@translated
def prediction_counts(session: Session, ids: Collection[int]) -> dict[int, int]:
    """model id -> prediction rows stored now (retention removes old ones)."""
    if not ids:
        return {}
    p = PredictionLog
    rows = session.execute(select(p.model_id, func.count()).where(p.model_id.in_(ids)).group_by(p.model_id))
    return {int(m): int(n) for m, n in rows}


@translated
def quarantine_counts(session: Session, ids: Collection[int], limit: int = 500) -> list[tuple[int, str, str, int]]:
    """``(model id, stream, reason, rows)`` of the rows in the quarantine now, most rows first, at most
    ``limit`` groups; :func:`quarantine_totals` gives what the groups left out add up to."""
    if not ids:
        return []
    q = QuarantinedRow
    rows = session.execute(
        select(q.model_id, q.stream, q.reason, func.count())
        .where(q.model_id.in_(ids))
        .group_by(q.model_id, q.stream, q.reason)
        .order_by(func.count().desc(), q.model_id, q.stream, q.reason)
        .limit(limit)
    )
    return [(int(m), str(s), str(r), int(n)) for m, s, r, n in rows if m is not None]


@translated
def quarantine_totals(session: Session, ids: Collection[int]) -> dict[tuple[int, str], int]:
    """(model id, stream) -> rows in the quarantine now."""
    if not ids:
        return {}
    q = QuarantinedRow
    rows = session.execute(
        select(q.model_id, q.stream, func.count()).where(q.model_id.in_(ids)).group_by(q.model_id, q.stream)
    )
    return {(int(m), str(s)): int(n) for m, s, n in rows if m is not None}


@translated
def job_summaries(session: Session, jobs: Collection[str], models: Collection[str]) -> list[JobSummary]:
    """The last finished run of each of ``jobs`` per model in ``models`` (and of all models), with
    when that job last succeeded."""
    if not jobs:
        return []
    r = JobRun
    scope = (r.job.in_(jobs), r.model.in_(models) | r.model.is_(None), r.finished_at.is_not(None))
    last_ids = select(func.max(r.id)).where(*scope).group_by(r.job, r.model)
    successes = {
        (job, model): at
        for job, model, at in session.execute(
            select(r.job, r.model, func.max(r.finished_at))
            .where(*scope, r.status == JobStatus.SUCCEEDED)
            .group_by(r.job, r.model)
        )
    }
    out = []
    for job, model, started, finished, status in session.execute(
        select(r.job, r.model, r.started_at, r.finished_at, r.status).where(r.id.in_(last_ids)).order_by(r.job, r.model)
    ):
        if finished is None:  # not selected: only finished runs are
            continue
        out.append(
            JobSummary(
                job=job,
                model=model,
                duration_seconds=max((finished - started).total_seconds(), 0.0),
                succeeded=status == JobStatus.SUCCEEDED,
                last_success_at=successes.get((job, model)),
            )
        )
    return out


@translated
def last_success_counts(session: Session, job: str, models: Collection[str]) -> dict[str, dict[str, Any]]:
    """model -> the ``counts`` of the last successful run of ``job`` for that model."""
    if not models:
        return {}
    r = JobRun
    last_ids = (
        select(func.max(r.id))
        .where(r.job == job, r.model.in_(models), r.status == JobStatus.SUCCEEDED)
        .group_by(r.model)
    )
    return {str(m): dict(c or {}) for m, c in session.execute(select(r.model, r.counts).where(r.id.in_(last_ids)))}
