"""The weekly report job: gather what the checks, findings and retrains stored for one ISO week
of one model as a :class:`reports.summary.WeeklySummary` (``summary.json``, schema 2), and
render it.

The report only reads: it never runs a check nor stores a profile. The runner
(:mod:`jobs.runner.execute`) checks the week first when no drift run of it is stored.

Files: ``<reports dir>/<model>/<YYYY>-W<ww>/report.html``, ``summary.json``, ``to_label.csv``
(the predictions worth a label) and (on a bounded sample) ``evidently.html``;
``<reports dir>/<model>/index.html`` lists every week.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from drift import DriftResult
from drift.errors import NotFoundError
from drift.result import ColumnDrift
from jobs.check.figures import CheckFigures, stored_figures
from jobs.check.reference import load_reference
from jobs.check.windows import window_profile
from jobs.config import ModelSettings, Settings
from jobs.report import judgement, sections
from jobs.report.baselines import week_baselines
from jobs.report.sections import TREND_WEEKS
from jobs.report.slices import week_slices
from jobs.report.weeks import iso_week, last_complete_week, week_window
from reports.summary import (
    CheckRun,
    ClassDistribution,
    ColumnRow,
    ConfidenceHistogram,
    Embedding,
    IndexEntry,
    Outputs,
    Performance,
    ReviewProgress,
    TrendPoint,
    WeeklySummary,
    Window,
)
from storage import drift_runs, repository
from storage.clock import wall_clock
from storage.models import DriftRun, Model
from storage.statuses import WeekStatus

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

Samples = tuple["pd.DataFrame", "pd.DataFrame"]
"""(reference sample, window sample): the bounded samples the evidently page compares."""


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    model: str
    week: str
    status: WeekStatus
    headline: str
    report: Path
    summary: Path
    index: Path
    evidently: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "week": self.week,
            "status": self.status.value,
            "headline": self.headline,
            "report": str(self.report),
            "summary": str(self.summary),
            "index": str(self.index),
            "evidently": str(self.evidently) if self.evidently else None,
        }


def weekly_report(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    week: str | None = None,
    now: datetime | None = None,
    evidently: bool = True,
) -> ReportResult:
    """Write the report of ``week`` (default: the last complete week before ``now``) from what is stored."""
    from reports import render_evidently, render_index, render_weekly

    model = settings.model(model_name)
    now = now or wall_clock()
    week = week or last_complete_week(now)
    start, end = week_window(week)
    out_dir = settings.paths.reports_dir / model.name / week
    with session_factory() as session:  # read only
        model_row = repository.get_model(session, model.name)
        summary, samples = build_summary(session, settings, model, model_row, week, start, end, now)
        main_run = judgement.main_run(judgement.week_runs(session, model_row, end))
        to_label = judgement.write_to_label(session, main_run, out_dir / judgement.TO_LABEL)
    main_figures = stored_figures(main_run.figures) if main_run is not None else None
    summary = replace(
        summary,
        actions=judgement.actions(summary.verdict, main_figures, to_label=to_label, retrained=bool(summary.retrains)),
        review=_review_progress(session_factory, settings, model.name, start),
    )
    evidently_path = None
    if evidently and samples is not None:
        try:
            evidently_path = render_evidently(
                samples[0], samples[1], out_dir / "evidently.html", f"{model.name} {week}"
            )
        except Exception:  # the detail page is a bonus; the weekly report must not fail for it
            log.exception("evidently detail page for %s %s failed", model.name, week)
        summary = replace(summary, evidently_report="evidently.html" if evidently_path else None)
    files = render_weekly(summary, out_dir)
    index = render_index(
        model.name,
        _index_entries(settings.paths.reports_dir / model.name),
        settings.paths.reports_dir / model.name / "index.html",
    )
    verdict = summary.verdict
    log.info("report %s %s: %s (%s) -> %s", model.name, week, verdict.status, verdict.headline, files.report_html)
    return ReportResult(
        model=model.name,
        week=week,
        status=verdict.status,
        headline=verdict.headline,
        report=files.report_html,
        summary=files.summary_json,
        index=index,
        evidently=evidently_path,
    )


def _review_progress(
    session_factory: sessionmaker[Session], settings: Settings, model: str, start: datetime
) -> ReviewProgress | None:
    """The review queue's progress since the week began; None when nobody reviewed."""
    from jobs.review.queue import progress

    done = progress(session_factory, settings, model, since=start, sync=False)  # the report only reads
    if not done.done and not done.skipped:
        return None
    return ReviewProgress(
        done=done.done, skipped=done.skipped, left=done.left, per_minute=done.per_minute, agreement=done.agreement
    )


def stale_weeks(session_factory: sessionmaker[Session], settings: Settings, model_name: str, week: str) -> list[str]:
    """The ``drift.revise_weeks`` weeks before ``week`` whose report predates their latest check
    (late labels revised them): their pages are written again."""
    model = settings.model(model_name)
    start, _ = week_window(week)
    stale: list[str] = []
    with session_factory() as session:
        try:
            model_row = repository.get_model(session, model.name)
        except NotFoundError:  # nothing ingested: nothing written before
            return stale
        for back in range(model.drift.revise_weeks, 0, -1):
            past = iso_week(start - timedelta(days=7 * back))
            path = settings.paths.reports_dir / model.name / past / "summary.json"
            runs = drift_runs.runs_ending(session, model_row.id, week_window(past)[1])
            if not runs or not path.is_file():
                continue
            try:
                written = WeeklySummary.from_dict(json.loads(path.read_text(encoding="utf-8"))).generated_at
            except (OSError, ValueError):
                stale.append(past)  # unreadable: written again
                continue
            if max(r.created_at for r in runs) > written:
                stale.append(past)
    return stale


def _index_entries(model_dir: Path) -> list[IndexEntry]:
    entries = []
    for summary_path in sorted(model_dir.glob("*-W*/summary.json")):
        try:
            summary = WeeklySummary.from_dict(json.loads(summary_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError, as is a JSON syntax error
            log.warning("%s left out of the index: %s", summary_path, exc)
            continue
        entries.append(IndexEntry.of(summary))
    return entries


def build_summary(
    session: Session,
    settings: Settings,
    model: ModelSettings,
    model_row: Model,
    week: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> tuple[WeeklySummary, Samples | None]:
    """The week's summary and the samples for the evidently page (None without a stored check)."""
    runs = judgement.week_runs(session, model_row, end)
    results = {r.id: DriftResult.from_dict(r.result) for r in runs}
    main = judgement.main_run(runs)
    summary = WeeklySummary(
        model=model.name,
        week=week,
        window=Window(start=start, end=end),
        generated_at=wall_clock(),
        verdict=judgement.week_verdict(model, runs, results),
        serving=judgement.serving_version(session, model_row, main.version if main is not None else None),
        runs=tuple(_run(r, results[r.id]) for r in runs),
        performance=_with_classes(sections.performance(session, model_row, end, main), main),
        retrains=sections.retrains(session, model_row, start, end),
        data_quality=sections.data_quality(session, model_row, start, end),
    )
    if main is None:
        return summary, None
    columns = results[main.id].columns
    trends = _trends(session, model_row, main.version, end)
    ranked = sorted(
        (c for c in columns if c.kind == "feature"), key=lambda c: (not c.drifted, -(_finite(c.effect) or 0.0))
    )
    embedding = next((c for c in columns if c.kind == "embedding"), None)
    distribution, confidence, samples = _output_shapes(session, model, model_row, main.version, start, end, now)
    figures = stored_figures(main.figures) or CheckFigures(n_rows=main.n_rows)
    summary = replace(
        summary,
        features=tuple(_column(c, trends) for c in ranked),
        outputs=Outputs(
            columns=tuple(_column(c, trends) for c in columns if c.kind == "output"),
            class_distribution=distribution,
            confidence=confidence,
        ),
        embedding=None
        if embedding is None
        else Embedding(
            method=embedding.method,
            score=_finite(embedding.score),
            p_value=_finite(embedding.p_value),
            drifted=embedding.drifted,
        ),
        calibration=sections.calibration(figures.calibration),
        confidently_wrong=sections.confidently_wrong(session, model, main, figures.confidently_wrong),
        confident_outliers=sections.confident_outliers(session, model, main, figures.confident_outliers),
        segmentation=figures.segmentation,
        slices=week_slices(session, model, model_row, main.version, start, end),
        baselines=week_baselines(session, model, model_row, main.version, start, end, max(now, end)),
    )
    return summary, samples


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: a stored non-finite number was written as null, and reads back as NaN."""
    return value if value is not None and math.isfinite(value) else None


def _run(run: DriftRun, result: DriftResult) -> CheckRun:
    return CheckRun(
        version=run.version,
        n_rows=run.n_rows,
        drifted=run.drifted,
        outputs_drifted=run.outputs_drifted,
        embedding_drifted=run.embedding_drifted,
        retrain_worthy=run.retrain_worthy,
        reasons=tuple(run.reasons),
        policy=result.policy,
    )


def _with_classes(performance: Performance | None, main: DriftRun | None) -> Performance | None:
    """The performance section with the week's own per-class figures."""
    if performance is None or main is None:
        return performance
    return replace(performance, classes=judgement.class_performance(stored_figures(main.figures)))


def _column(c: ColumnDrift, trends: dict[str, tuple[TrendPoint, ...]]) -> ColumnRow:
    return ColumnRow(
        column=c.column,
        kind=c.kind,
        method=c.method,
        score=_finite(c.score),
        p_value=_finite(c.p_value),
        effect=_finite(c.effect),
        threshold=c.threshold,
        drifted=c.drifted,
        trend=trends.get(c.column, ()),
    )


def _trends(session: Session, model_row: Model, version: int, end: datetime) -> dict[str, tuple[TrendPoint, ...]]:
    """Per column, its score in each of the last weeks: one run a week, the version that served
    most of it (before a promotion, the previous one)."""
    first = end - timedelta(days=7 * TREND_WEEKS)
    trends: dict[str, dict[str, TrendPoint]] = {}
    for window_end, column, score, drifted in drift_runs.column_scores(session, model_row.id, first, end, version):
        label = iso_week(window_end - timedelta(days=1))
        trends.setdefault(column, {})[label] = TrendPoint(week=label, score=_finite(score), drifted=drifted)
    return {column: tuple(points.values()) for column, points in trends.items()}


def _output_shapes(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> tuple[ClassDistribution | None, ConfidenceHistogram | None, Samples | None]:
    reference, _ = load_reference(session, model_row, version)
    # the profile only: the report never stores day profiles (the check does)
    window = window_profile(session, model, model_row, version, reference, start, end, max(now, end)).profile
    if window is None:
        return None, None, None
    labels = tuple(model.class_labels)
    ref_counts = _category_counts(reference.stats.columns["predicted"])
    cur_counts = _category_counts(window.columns["predicted"])
    distribution = ClassDistribution(
        labels=labels,
        reference=_shares([ref_counts.get(label, 0) for label in labels]),
        current=_shares([cur_counts.get(label, 0) for label in labels]),
    )
    edges = np.linspace(0.0, 1.0, 11)
    ref_sample, cur_sample = reference.stats.sample.rows, window.sample.rows
    confidence = ConfidenceHistogram(
        edges=tuple(edges.tolist()),
        reference=_shares(np.histogram(ref_sample["confidence"], bins=edges)[0].tolist()),
        current=_shares(np.histogram(cur_sample["confidence"], bins=edges)[0].tolist()),
    )
    detail_columns = [c for c in ref_sample.columns if not c.startswith("emb_") and c in cur_sample.columns]
    return distribution, confidence, (ref_sample[detail_columns], cur_sample[detail_columns])


def _category_counts(stats: Any) -> dict[Any, int]:
    counts = getattr(stats, "counts", None)
    return counts if isinstance(counts, dict) else {}


def _shares(counts: list[int]) -> tuple[float, ...]:
    total = float(sum(counts))
    return tuple(c / total if total else 0.0 for c in counts)
