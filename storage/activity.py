"""What happened in a period of a model's logs: predictions logged and labelled, labels that
arrived, rows quarantined, retrains that finished. What the weekly report reads. Every function
takes a Session; periods are ``[start, end)``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import DriftRun, Label, PredictionLog, QuarantinedRow, RetrainRun
from storage.statuses import RetrainDecision


@translated
def prediction_count(session: Session, model_id: int, start: datetime, end: datetime) -> int:
    """Predictions logged in the period."""
    p = PredictionLog
    return int(
        session.scalar(select(func.count()).select_from(p).where(p.model_id == model_id, p.ts >= start, p.ts < end))
        or 0
    )


@translated
def labelled_counts(session: Session, model_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """``(labelled, correct)`` among the predictions logged in the period, whenever labelled."""
    p = PredictionLog
    labelled, correct = session.execute(
        select(func.count(), func.sum(case((Label.label == p.predicted_label, 1), else_=0)))
        .select_from(p)
        .join(Label, (Label.model_id == p.model_id) & (Label.prediction_id == p.prediction_id))
        .where(p.model_id == model_id, p.ts >= start, p.ts < end)
    ).one()
    return int(labelled or 0), int(correct or 0)


@translated
def label_delays(session: Session, model_id: int, start: datetime, end: datetime, limit: int = 50_000) -> list[float]:
    """Days from prediction to label, for (at most ``limit`` of) the predictions logged in the
    period that are labelled now."""
    p = PredictionLog
    rows = session.execute(
        select(p.ts, Label.labelled_at)
        .join(Label, (Label.model_id == p.model_id) & (Label.prediction_id == p.prediction_id))
        .where(p.model_id == model_id, p.ts >= start, p.ts < end)
        .limit(limit)
    )
    return [(labelled - ts).total_seconds() / 86400 for ts, labelled in rows]


@translated
def label_count(session: Session, model_id: int, start: datetime, end: datetime) -> int:
    """Labels that arrived in the period."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Label)
            .where(Label.model_id == model_id, Label.labelled_at >= start, Label.labelled_at < end)
        )
        or 0
    )


@translated
def quarantined(
    session: Session, model_id: int, start: datetime, end: datetime, top: int
) -> tuple[int, list[tuple[str, int]]]:
    """Rows rejected in the period, and the ``top`` reasons with their counts, most frequent first."""
    q = QuarantinedRow
    in_period = (q.model_id == model_id, q.created_at >= start, q.created_at < end)
    total = session.scalar(select(func.count()).select_from(q).where(*in_period))
    reasons = session.execute(
        select(q.reason, func.count()).where(*in_period).group_by(q.reason).order_by(func.count().desc()).limit(top)
    ).all()
    return int(total or 0), [(str(r), int(n)) for r, n in reasons]


@translated
def finished_retrains(session: Session, model_id: int, start: datetime, end: datetime) -> list[RetrainRun]:
    """Retrains of the period that ran to their end (promoted, rejected or failed), oldest first.

    A retrain belongs to the period whose check triggered it (its drift run's window ends in
    ``(start, end]``), wherever it started: the retrain after a week's last check starts just
    after the week. One without a triggering run belongs to the period it started in.
    """
    triggered_in = (DriftRun.window_end > start) & (DriftRun.window_end <= end)
    started_in = (RetrainRun.started_at >= start) & (RetrainRun.started_at < end)
    return list(
        session.scalars(
            select(RetrainRun)
            .outerjoin(DriftRun, DriftRun.id == RetrainRun.drift_run_id)
            .where(
                RetrainRun.model_id == model_id,
                or_(triggered_in, DriftRun.id.is_(None) & started_in),
                RetrainRun.decision.in_(RetrainDecision.finished()),
            )
            .order_by(RetrainRun.started_at)
        )
    )
