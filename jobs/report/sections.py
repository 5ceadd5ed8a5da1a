"""Sections of the weekly summary that come straight from storage and the check's figures (see
jobs.report.job); each returns its typed part of :class:`reports.summary.WeeklySummary`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
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
from reports.summary import (
    Calibration,
    CalibrationBin,
    CalibrationCurve,
    ConfidentlyWrong,
    ConfidentOutliers,
    DataQuality,
    Example,
    LabelDelay,
    Number,
    OutlierExample,
    Performance,
    PerformanceWeek,
    QuarantineReason,
    Retrain,
)
from storage import activity, drift_runs
from storage.models import DriftRun, FlaggedPrediction, Model
from storage.statuses import RetrainDecision

TREND_WEEKS = 8
EXAMPLES = 24
QUARANTINE_REASONS = 20


def calibration(figure: CalibrationFigure | None) -> Calibration | None:
    if figure is None:
        return None

    def curve(data: CurveFigure | None) -> CalibrationCurve | None:
        if data is None:
            return None
        bins = tuple(
            CalibrationBin(confidence=c, accuracy=a, count=int(n))
            for c, a, n in zip(data.bin_confidence, data.bin_accuracy, data.bin_count, strict=True)
        )
        return CalibrationCurve(ece=data.ece, bins=bins)

    return Calibration(reference=curve(figure.reference), current=curve(figure.current))


def _example_fields(f: FlaggedPrediction, model: ModelSettings) -> dict[str, Any]:
    return {
        "prediction_id": f.prediction_id,
        "input_uri": f.input_uri,
        "thumbnail": thumbnail_data_uri(f.input_uri, model.image_roots, contract=model.contract),
        "true_label": f.true_label,
        "predicted_label": f.predicted_label,
        "confidence": f.confidence,
    }


def confidently_wrong(
    session: Session, model: ModelSettings, run: DriftRun, figure: ConfidentlyWrongFigure | None
) -> ConfidentlyWrong | None:
    """The confidently-wrong figure of the run and the first predictions it flagged."""
    rows = drift_runs.flagged_predictions(session, run.id, "confidently_wrong", EXAMPLES)
    if figure is None and not rows:
        return None
    return ConfidentlyWrong(
        count=figure.n_errors if figure is not None else 0,
        rate=figure.rate if figure is not None else None,
        reference_rate=figure.reference_rate if figure is not None else None,
        rose_significantly=figure.rose_significantly if figure is not None else False,
        examples=tuple(Example(**_example_fields(f, model)) for f in rows),
    )


def confident_outliers(
    session: Session, model: ModelSettings, run: DriftRun, figure: OutlierFigure | None
) -> ConfidentOutliers | None:
    """The confident-outlier figure of the run and the first predictions it flagged."""
    rows = drift_runs.flagged_predictions(session, run.id, "confident_outlier", EXAMPLES)
    if figure is None and not rows:
        return None
    examples = tuple(
        OutlierExample(**_example_fields(f, model), score=f.score if f.score is not None else 0.0) for f in rows
    )
    return ConfidentOutliers(
        count=figure.count if figure is not None else 0,
        rate=figure.rate if figure is not None else None,
        examples=examples,
    )


def performance(session: Session, model_row: Model, end: datetime, main: DriftRun | None) -> Performance | None:
    """Estimated against realized accuracy over the last :data:`TREND_WEEKS` weeks with predictions."""
    runs = drift_runs.main_runs(session, model_row.id, end - timedelta(days=7 * TREND_WEEKS), end)
    weeks = []
    for i in range(TREND_WEEKS - 1, -1, -1):
        week_end = end - timedelta(days=7 * i)
        week_start = week_end - timedelta(days=7)
        n = activity.prediction_count(session, model_row.id, week_start, week_end)
        if n == 0:
            continue
        labelled, correct = activity.labelled_counts(session, model_row.id, week_start, week_end)
        run = runs.get(week_end)
        figures = stored_figures(run.figures) if run is not None else None
        estimate = figures.estimated_performance if figures is not None else None
        low, high = wilson_interval(correct, labelled) if labelled else (None, None)
        weeks.append(
            PerformanceWeek(
                week=iso_week(week_end - timedelta(days=1)),
                estimated_accuracy=estimate.accuracy if estimate is not None else None,
                estimate_low=estimate.ci[0] if estimate is not None else None,
                estimate_high=estimate.ci[1] if estimate is not None else None,
                realized_accuracy=correct / labelled if labelled else None,
                realized_low=low,
                realized_high=high,
                label_coverage=labelled / n,
                n_labelled=labelled,
            )
        )
    if not weeks:
        return None
    main_figures = stored_figures(main.figures) if main is not None else None
    latest = main_figures.estimated_performance if main_figures is not None else None
    return Performance(
        weeks=tuple(weeks),
        trustworthy=latest.trustworthy if latest is not None else True,
        warning=latest.warning if latest is not None else None,
    )


def numbers(metrics: dict[str, Any] | None) -> dict[str, Number]:
    """The numeric entries of a stored metrics object (booleans and text left out)."""
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}


def retrains(session: Session, model_row: Model, start: datetime, end: datetime) -> tuple[Retrain, ...]:
    """The retrains that started in the week and ran to their end."""
    return tuple(
        Retrain(
            at=r.started_at,
            version=r.version,
            decision=RetrainDecision(r.decision),
            reasons=tuple(r.reasons),
            metrics=numbers(r.metrics),
            export_sizes={k: int(v) for k, v in ((r.export or {}).get("sizes") or {}).items()},
        )
        for r in activity.finished_retrains(session, model_row.id, start, end)
    )


def data_quality(session: Session, model_row: Model, start: datetime, end: datetime) -> DataQuality:
    """Rows logged, labels arrived and rows rejected in the week."""
    quarantined, reasons = activity.quarantined(session, model_row.id, start, end, QUARANTINE_REASONS)
    delays = activity.label_delays(session, model_row.id, start, end)
    delay = None
    if delays:
        median, p90 = np.quantile(np.asarray(delays), [0.5, 0.9])
        delay = LabelDelay(n=len(delays), median=round(float(median), 3), p90=round(float(p90), 3))
    return DataQuality(
        rows=activity.prediction_count(session, model_row.id, start, end),
        labels=activity.label_count(session, model_row.id, start, end),
        quarantined=quarantined,
        reasons=tuple(QuarantineReason(reason=r, count=n) for r, n in reasons),
        label_delay_days=delay,
    )
