"""Retrain runs, and what the retrain policy reads: the latest check of a version and the labels
that arrived since the last attempt. Every function takes a Session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.errors import NotFoundError
from storage.errors import translated
from storage.models import DriftRun, Label, PredictionLog, RetrainRun
from storage.statuses import RetrainDecision


@translated
def latest_check(session: Session, model_id: int, version: int) -> DriftRun | None:
    """The drift run of ``version`` with the latest window end (the latest stored, on a tie)."""
    return session.scalar(
        select(DriftRun)
        .where(DriftRun.model_id == model_id, DriftRun.version == version)
        .order_by(DriftRun.window_end.desc(), DriftRun.id.desc())
        .limit(1)
    )


@translated
def revised_worthy_check(session: Session, model_id: int, version: int, since: datetime | None) -> DriftRun | None:
    """The latest retrain-worthy run of ``version`` that late labels revised (stored after
    ``since``, the last retrain's start): a past week found wanting once its labels arrived."""
    stmt = (
        select(DriftRun)
        .where(
            DriftRun.model_id == model_id,
            DriftRun.version == version,
            DriftRun.retrain_worthy.is_(True),
            DriftRun.revision.is_not(None),
        )
        .order_by(DriftRun.created_at.desc(), DriftRun.id.desc())
        .limit(1)
    )
    if since is not None:
        stmt = stmt.where(DriftRun.created_at > since)
    return session.scalar(stmt)


@translated
def last_retrain_start(session: Session, model_id: int) -> datetime | None:
    """When the latest retrain that trained started: skipped plans, killed and aborted runs do not count."""
    return session.scalar(
        select(RetrainRun.started_at)
        .where(
            RetrainRun.model_id == model_id,
            RetrainRun.decision.not_in((RetrainDecision.SKIPPED, RetrainDecision.KILLED, RetrainDecision.ABORTED)),
        )
        .order_by(RetrainRun.started_at.desc())
        .limit(1)
    )


@translated
def new_label_count(session: Session, model_id: int, version: int, since: datetime | None) -> int:
    """Labels of predictions ``version`` made, labelled after ``since`` (None: all of them)."""
    labelled = (
        select(func.count())
        .select_from(PredictionLog)
        .join(Label, (Label.model_id == PredictionLog.model_id) & (Label.prediction_id == PredictionLog.prediction_id))
        .where(PredictionLog.model_id == model_id, PredictionLog.model_version == version)
    )
    if since is not None:
        labelled = labelled.where(Label.labelled_at > since)
    return int(session.scalar(labelled) or 0)


@translated
def mark_killed(session: Session, model_id: int, finished_at: datetime) -> int:
    """Retrain runs of the model still 'running': the caller holds the retrain lease, so their
    process died. Marked 'killed' (they never count toward the cooldown); how many."""
    rows = session.scalars(
        select(RetrainRun).where(RetrainRun.model_id == model_id, RetrainRun.decision == RetrainDecision.RUNNING)
    ).all()
    for row in rows:
        row.decision = RetrainDecision.KILLED
        row.finished_at = finished_at
        row.error = "the process died while it retrained (its lease was taken over)"
    return len(rows)


@translated
def start_retrain_run(
    session: Session,
    model_id: int,
    *,
    started_at: datetime,
    trigger: str,
    drift_run_id: int | None,
    parent_version: int,
    version: int,
    reasons: list[str],
) -> RetrainRun:
    """A new 'running' retrain run, flushed so it has its id."""
    run = RetrainRun(
        model_id=model_id,
        started_at=started_at,
        trigger=trigger,
        drift_run_id=drift_run_id,
        parent_version=parent_version,
        version=version,
        decision=RetrainDecision.RUNNING,
        reasons=list(reasons),
    )
    session.add(run)
    session.flush()
    return run


@translated
def finish_retrain_run(
    session: Session,
    run_id: int,
    *,
    decision: str,
    reasons: list[str],
    metrics: dict[str, Any],
    export: dict[str, Any],
    error: str | None,
    finished_at: datetime,
) -> RetrainRun:
    """Store the decision of retrain run ``run_id``; ``reasons`` are added to those it started with."""
    run = session.get(RetrainRun, run_id)
    if run is None:
        raise NotFoundError(f"retrain run {run_id} does not exist")
    run.decision = decision
    run.reasons = list(run.reasons or []) + reasons
    run.metrics = metrics
    run.export = export
    run.error = error
    run.finished_at = finished_at
    return run
