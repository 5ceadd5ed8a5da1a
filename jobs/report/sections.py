"""Sections of the weekly summary that come straight from storage (see jobs.report.job)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from drift.performance import wilson_interval
from jobs.check.figures import (
    CalibrationFigure,
    ConfidentlyWrongFigure,
    CurveFigure,
    OutlierFigure,
    stored_figures,
)
from jobs.config import ModelSettings
from jobs.images import thumbnail_data_uri
from jobs.report.weeks import iso_week
from storage.models import DriftRun, FlaggedPrediction, Label, Model, PredictionLog, QuarantinedRow, RetrainRun
from storage.statuses import RetrainDecision

TREND_WEEKS = 8
EXAMPLES = 24


def calibration(figure: CalibrationFigure | None) -> dict[str, Any] | None:
    if figure is None:
        return None

    def curve(data: CurveFigure | None) -> dict[str, Any] | None:
        if data is None:
            return None
        bins = [
            {"confidence": c, "accuracy": a, "count": int(n)}
            for c, a, n in zip(data.bin_confidence, data.bin_accuracy, data.bin_count, strict=True)
            if c is not None and a is not None
        ]
        return {"ece": data.ece, "bins": bins}

    return {"reference": curve(figure.reference), "current": curve(figure.current)}


def flagged(
    session: Session,
    model: ModelSettings,
    run: DriftRun,
    kind: str,
    figure: ConfidentlyWrongFigure | OutlierFigure | None,
) -> dict[str, Any] | None:
    rows = session.scalars(
        select(FlaggedPrediction)
        .where(FlaggedPrediction.run_id == run.id, FlaggedPrediction.kind == kind)
        .limit(EXAMPLES)
    ).all()
    if figure is None and not rows:
        return None
    examples = []
    for f in rows:
        example = {
            "prediction_id": f.prediction_id,
            "input_uri": f.input_uri,
            "thumbnail": thumbnail_data_uri(f.input_uri, model.image_roots),
            "true_label": f.true_label,
            "predicted_label": f.predicted_label,
            "confidence": f.confidence,
        }
        if kind == "confident_outlier":
            example["score"] = f.score if f.score is not None else 0.0
        examples.append(example)
    if isinstance(figure, ConfidentlyWrongFigure) or (figure is None and kind == "confidently_wrong"):
        return {
            "count": figure.n_errors if figure is not None else 0,
            "rate": figure.rate if figure is not None else None,
            "reference_rate": figure.reference_rate if figure is not None else None,
            "rose_significantly": figure.rose_significantly if figure is not None else False,
            "examples": examples,
        }
    return {
        "count": figure.count if figure is not None else 0,
        "rate": figure.rate if figure is not None else None,
        "examples": examples,
    }


def performance(session: Session, model_row: Model, end: datetime, main: DriftRun | None) -> dict[str, Any] | None:
    weeks = []
    runs = {
        r.window_end: r
        for r in session.scalars(
            select(DriftRun)
            .where(
                DriftRun.model_id == model_row.id,
                DriftRun.window_end <= end,
                DriftRun.window_end > end - timedelta(days=7 * TREND_WEEKS),
            )
            .order_by(DriftRun.n_rows, DriftRun.id)  # per week, the run of the version that served most
        )
    }
    for i in range(TREND_WEEKS - 1, -1, -1):
        week_end = end - timedelta(days=7 * i)
        n, labelled, correct = realized(session, model_row, week_end - timedelta(days=7), week_end)
        if n == 0:
            continue
        run = runs.get(week_end)
        figures = stored_figures(run.figures) if run is not None else None
        estimate = figures.estimated_performance if figures is not None else None
        low, high = wilson_interval(correct, labelled) if labelled else (None, None)
        weeks.append(
            {
                "week": iso_week(week_end - timedelta(days=1)),
                "estimated_accuracy": estimate.accuracy if estimate is not None else None,
                "estimate_low": estimate.ci[0] if estimate is not None else None,
                "estimate_high": estimate.ci[1] if estimate is not None else None,
                "realized_accuracy": correct / labelled if labelled else None,
                "realized_low": low,
                "realized_high": high,
                "label_coverage": labelled / n,
                "n_labelled": labelled,
            }
        )
    if not weeks:
        return None
    main_figures = stored_figures(main.figures) if main is not None else None
    latest = main_figures.estimated_performance if main_figures is not None else None
    return {
        "weeks": weeks,
        "trustworthy": latest.trustworthy if latest is not None else True,
        "warning": latest.warning if latest is not None else None,
    }


def realized(session: Session, model_row: Model, start: datetime, end: datetime) -> tuple[int, int, int]:
    p = PredictionLog
    n = (
        session.scalar(select(func.count()).select_from(p).where(p.model_id == model_row.id, p.ts >= start, p.ts < end))
        or 0
    )
    labelled, correct = session.execute(
        select(func.count(), func.sum(case((Label.label == p.predicted_label, 1), else_=0)))
        .select_from(p)
        .join(Label, (Label.model_id == p.model_id) & (Label.prediction_id == p.prediction_id))
        .where(p.model_id == model_row.id, p.ts >= start, p.ts < end)
    ).one()
    return int(n), int(labelled or 0), int(correct or 0)


def retrains(session: Session, model_row: Model, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RetrainRun)
        .where(
            RetrainRun.model_id == model_row.id,
            RetrainRun.started_at >= start,
            RetrainRun.started_at < end,
            RetrainRun.decision.in_(RetrainDecision.finished()),
        )
        .order_by(RetrainRun.started_at)
    ).all()
    return [
        {
            "at": r.started_at.isoformat(),
            "version": r.version,
            "decision": r.decision,
            "reasons": list(r.reasons),
            "metrics": {
                k: v for k, v in (r.metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)
            },
            "export_sizes": {k: int(v) for k, v in ((r.export or {}).get("sizes") or {}).items()},
        }
        for r in rows
    ]


def data_quality(session: Session, model_row: Model, start: datetime, end: datetime) -> dict[str, Any]:
    p = PredictionLog
    rows = session.scalar(
        select(func.count()).select_from(p).where(p.model_id == model_row.id, p.ts >= start, p.ts < end)
    )
    labels = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(Label.model_id == model_row.id, Label.labelled_at >= start, Label.labelled_at < end)
    )
    q = QuarantinedRow
    in_week = (q.model_id == model_row.id, q.created_at >= start, q.created_at < end)  # rejected this week
    quarantined = session.scalar(select(func.count()).select_from(q).where(*in_week))
    reasons = session.execute(
        select(q.reason, func.count()).where(*in_week).group_by(q.reason).order_by(func.count().desc()).limit(20)
    ).all()
    return {
        "rows": int(rows or 0),
        "labels": int(labels or 0),
        "quarantined": int(quarantined or 0),
        "reasons": [{"reason": r, "count": int(n)} for r, n in reasons],
    }
