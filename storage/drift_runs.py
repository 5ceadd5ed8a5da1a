"""Reading stored drift runs: a week's runs, their column scores over the weeks, their flagged
predictions. What the weekly report and the runner read. Every function takes a Session."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import DriftColumnResult, DriftRun, FlaggedPrediction, Label, Model, PredictionLog


@translated
def has_run_ending(session: Session, model_name: str, window_end: datetime) -> bool:
    """Whether a drift run of ``model_name`` with this window end is stored (False for an unknown model)."""
    n = session.scalar(
        select(func.count())
        .select_from(DriftRun)
        .join(Model, Model.id == DriftRun.model_id)
        .where(Model.name == model_name, DriftRun.window_end == window_end)
    )
    return bool(n)


@translated
def runs_ending(session: Session, model_id: int, window_end: datetime) -> list[DriftRun]:
    """The runs whose window ends at ``window_end``, by version, oldest stored first."""
    return list(
        session.scalars(
            select(DriftRun)
            .where(DriftRun.model_id == model_id, DriftRun.window_end == window_end)
            .order_by(DriftRun.version, DriftRun.id)
        )
    )


@translated
def main_runs(session: Session, model_id: int, after: datetime, until: datetime) -> dict[datetime, DriftRun]:
    """Per window end in ``(after, until]``, the run of the version that served most rows
    (the latest stored on a tie)."""
    rows = session.scalars(
        select(DriftRun)
        .where(DriftRun.model_id == model_id, DriftRun.window_end <= until, DriftRun.window_end > after)
        .order_by(DriftRun.n_rows, DriftRun.id)
    )
    return {r.window_end: r for r in rows}  # the last one per window end wins


@translated
def column_scores(
    session: Session, model_id: int, after: datetime, until: datetime, prefer_version: int
) -> list[tuple[datetime, str, float | None, bool]]:
    """``(window end, column, score, drifted)`` of the runs ending in ``(after, until]``, by window
    end; within one, the run of the version that served most rows comes last (on a tie,
    ``prefer_version``'s, then the latest stored), so that a reader keeping the last one per
    window end and column keeps that run's."""
    rows = session.execute(
        select(DriftRun.window_end, DriftColumnResult.column, DriftColumnResult.score, DriftColumnResult.drifted)
        .join(DriftColumnResult, DriftColumnResult.run_id == DriftRun.id)
        .where(DriftRun.model_id == model_id, DriftRun.window_end > after, DriftRun.window_end <= until)
        .order_by(DriftRun.window_end, DriftRun.n_rows, DriftRun.version == prefer_version, DriftRun.id)
    ).all()
    return [(end, column, score, drifted) for end, column, score, drifted in rows]


@translated
def flagged_predictions(session: Session, run_id: int, kind: str, limit: int) -> list[FlaggedPrediction]:
    """At most ``limit`` predictions of ``kind`` that run ``run_id`` flagged."""
    return list(
        session.scalars(
            select(FlaggedPrediction)
            .where(FlaggedPrediction.run_id == run_id, FlaggedPrediction.kind == kind)
            .limit(limit)
        )
    )


@translated
def labelled_between(session: Session, model_id: int, version: int, start: datetime, end: datetime) -> int:
    """Predictions of ``version`` logged in ``[start, end)`` that have a label now."""
    p = PredictionLog
    return int(
        session.scalar(
            select(func.count())
            .select_from(p)
            .join(Label, (Label.model_id == p.model_id) & (Label.prediction_id == p.prediction_id))
            .where(p.model_id == model_id, p.model_version == version, p.ts >= start, p.ts < end)
        )
        or 0
    )


@translated
def set_revision(session: Session, run_id: int, revision: Mapping[str, str]) -> None:
    """Record on run ``run_id`` that late labels changed the verdict of its window."""
    run = session.get(DriftRun, run_id)
    if run is not None:
        run.revision = dict(revision)
