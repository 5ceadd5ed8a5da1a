"""The weekly report job: gather what the checks, findings and retrains produced for one ISO
week of one model, as the summary ``reports`` renders (``summary.json``, schema 1).

Files: ``<reports dir>/<model>/<YYYY>-W<ww>/report.html``, ``summary.json`` and (on a bounded
sample) ``evidently.html``; ``<reports dir>/<model>/index.html`` lists every week.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jobs.check.figures import CheckFigures, stored_figures
from jobs.check.job import check
from jobs.check.reference import load_reference
from jobs.check.windows import window_profile
from jobs.config import ModelSettings, Settings
from jobs.report import sections
from jobs.report.sections import TREND_WEEKS
from jobs.report.weeks import iso_week, week_window
from jobs.retrain import registry
from storage import repository
from storage.clock import wall_clock
from storage.models import (
    DriftColumnResult,
    DriftRun,
    Model,
)
from storage.statuses import WeekStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    model: str
    week: str
    status: str
    headline: str
    report: Path
    summary: Path
    index: Path
    evidently: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "week": self.week,
            "status": self.status,
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
    """Write the report of ``week`` (default: the last complete week before ``now``)."""
    from reports import render_evidently, render_index, render_weekly

    model = settings.model(model_name)
    now = now or wall_clock()
    week = week or iso_week(now - timedelta(days=7))
    start, end = week_window(week)
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        has_run = session.scalar(
            select(func.count())
            .select_from(DriftRun)
            .where(DriftRun.model_id == model_row.id, DriftRun.window_end == end)
        )
    if not has_run:  # check the week now, so the report shows current figures
        check(session_factory, settings, model.name, window_days=7, end=end, now=max(now, end))
    out_dir = settings.paths.reports_dir / model.name / week
    with session_factory.begin() as session:
        model_row = repository.get_model(session, model.name)
        summary, samples = build_summary(session, settings, model, model_row, week, start, end, now)
    evidently_path = None
    if evidently and samples is not None:
        try:
            evidently_path = render_evidently(
                samples[0], samples[1], out_dir / "evidently.html", f"{model.name} {week}"
            )
        except Exception:  # the detail page is a bonus; the weekly report must not fail for it
            log.exception("evidently detail page for %s %s failed", model.name, week)
        summary["evidently_report"] = "evidently.html" if evidently_path else None
    files = render_weekly(summary, out_dir)
    index = render_index(
        model.name,
        _index_entries(settings.paths.reports_dir / model.name),
        settings.paths.reports_dir / model.name / "index.html",
    )
    verdict = summary["verdict"]
    log.info("report %s %s: %s (%s) -> %s", model.name, week, verdict["status"], verdict["headline"], files.report_html)
    return ReportResult(
        model=model.name,
        week=week,
        status=verdict["status"],
        headline=verdict["headline"],
        report=files.report_html,
        summary=files.summary_json,
        index=index,
        evidently=evidently_path,
    )


def _index_entries(model_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for summary_path in sorted(model_dir.glob("*-W*/summary.json")):
        data = json.loads(summary_path.read_text(encoding="utf-8"))
        entries.append(
            {
                "week": data["week"],
                "status": data["verdict"]["status"],
                "headline": data["verdict"]["headline"],
                "path": f"{data['week']}/report.html",
            }
        )
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
) -> tuple[dict[str, Any], Any]:
    """The summary dict (schema 1) and (reference sample, window sample) for the detail page."""
    runs = list(
        session.scalars(
            select(DriftRun)
            .where(DriftRun.model_id == model_row.id, DriftRun.window_end == end)
            .order_by(DriftRun.version, DriftRun.id)
        )
    )
    latest = {r.version: r for r in runs}  # the last stored run per version
    runs = list(latest.values())
    main = max(runs, key=lambda r: r.n_rows) if runs else None
    summary: dict[str, Any] = {
        "schema": 1,
        "model": model.name,
        "week": week,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": wall_clock().isoformat(),
        "verdict": _verdict(runs),
        "champion": _champion(session, model_row),
        "runs": [
            {
                "version": r.version,
                "n_rows": r.n_rows,
                "drifted": r.drifted,
                "outputs_drifted": r.outputs_drifted,
                "embedding_drifted": r.embedding_drifted,
                "retrain_worthy": r.retrain_worthy,
                "reasons": list(r.reasons),
                "policy": r.result.get("policy", ""),
            }
            for r in runs
        ],
        "features": None,
        "outputs": None,
        "embedding": None,
        "calibration": None,
        "confidently_wrong": None,
        "confident_outliers": None,
        "segmentation": None,
        "evidently_report": None,
        "performance": sections.performance(session, model_row, end, main),
        "retrains": sections.retrains(session, model_row, start, end),
        "data_quality": sections.data_quality(session, model_row, start, end),
    }
    samples = None
    if main is not None:
        columns = main.result.get("columns", [])
        trends = _trends(session, model_row, main.version, end)
        ranked = sorted(
            (c for c in columns if c["kind"] == "feature"),
            key=lambda c: (not c["drifted"], -(c.get("effect") or 0.0)),
        )
        summary["features"] = [_column(c, trends) for c in ranked]
        outputs = [_column(c, trends) for c in columns if c["kind"] == "output"]
        embedding = next((c for c in columns if c["kind"] == "embedding"), None)
        if embedding:
            summary["embedding"] = {
                "method": embedding["method"],
                "score": embedding["score"],
                "p_value": embedding.get("p_value"),
                "drifted": embedding["drifted"],
            }
        distribution, confidence, samples = _output_shapes(session, model, model_row, main.version, start, end, now)
        summary["outputs"] = {"columns": outputs, "class_distribution": distribution, "confidence": confidence}
        figures = stored_figures(main.figures) or CheckFigures(n_rows=main.n_rows)
        summary["calibration"] = sections.calibration(figures.calibration)
        # segmentation models only
        summary["segmentation"] = figures.segmentation.to_dict() if figures.segmentation is not None else None
        summary["confidently_wrong"] = sections.flagged(
            session, model, main, "confidently_wrong", figures.confidently_wrong
        )
        summary["confident_outliers"] = sections.flagged(
            session, model, main, "confident_outlier", figures.confident_outliers
        )
    return summary, samples


def _verdict(runs: list[DriftRun]) -> dict[str, Any]:
    if not runs:
        return {"status": WeekStatus.NO_DATA, "headline": "no checked predictions this week", "reasons": []}
    reasons = [r for run in runs for r in run.reasons]
    if any(r.retrain_worthy for r in runs):
        return {
            "status": "retrain",
            "headline": "retrain-worthy: " + (reasons[0] if reasons else "see below"),
            "reasons": reasons,
        }
    if any(r.drifted for r in runs):
        drifted = [c["column"] for r in runs for c in r.result.get("columns", []) if c["drifted"]]
        return {
            "status": "drift",
            "headline": f"drift in {len(drifted)} columns, below the retrain policy",
            "reasons": reasons,
        }
    total = sum(r.n_rows for r in runs)
    return {"status": WeekStatus.OK, "headline": f"no drift in {total:,} predictions", "reasons": reasons}


def _champion(session: Session, model_row: Model) -> dict[str, Any] | None:
    try:
        row = registry.champion(session, model_row)
    except Exception:
        return None
    metrics = {k: v for k, v in (row.metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {
        "version": row.version,
        "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
        "metrics": metrics,
        "export_dir": row.export_dir,
    }


def _column(c: dict[str, Any], trends: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "column": c["column"],
        "kind": c["kind"],
        "method": c["method"],
        "score": c["score"],
        "p_value": c.get("p_value"),
        "effect": c.get("effect"),
        "threshold": c["threshold"],
        "drifted": c["drifted"],
        "trend": trends.get(c["column"], []),
    }


def _trends(session: Session, model_row: Model, version: int, end: datetime) -> dict[str, list[dict[str, Any]]]:
    first = end - timedelta(days=7 * TREND_WEEKS)
    # one run a week: the version that served most of it (before a promotion, the previous one)
    rows = session.execute(
        select(
            DriftRun.window_end,
            DriftRun.n_rows,
            DriftColumnResult.column,
            DriftColumnResult.score,
            DriftColumnResult.drifted,
        )
        .join(DriftColumnResult, DriftColumnResult.run_id == DriftRun.id)
        .where(DriftRun.model_id == model_row.id, DriftRun.window_end > first, DriftRun.window_end <= end)
        .order_by(DriftRun.window_end, DriftRun.n_rows, DriftRun.version == version, DriftRun.id)
    ).all()
    trends: dict[str, dict[str, dict[str, Any]]] = {}
    for window_end, _n_rows, column, score, drifted in rows:
        label = iso_week(window_end - timedelta(days=1))
        trends.setdefault(column, {})[label] = {"week": label, "score": score, "drifted": drifted}
    return {column: list(points.values()) for column, points in trends.items()}


def _output_shapes(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Any]:
    reference, _ = load_reference(session, model_row, version)
    # the profile only: the report never stores day profiles (the check does)
    window = window_profile(session, model, model_row, version, reference, start, end, max(now, end)).profile
    if window is None:
        return None, None, None
    labels = list(model.class_labels)
    ref_counts = _category_counts(reference.stats.columns["predicted"])
    cur_counts = _category_counts(window.columns["predicted"])
    distribution = {
        "labels": labels,
        "reference": _shares([ref_counts.get(label, 0) for label in labels]),
        "current": _shares([cur_counts.get(label, 0) for label in labels]),
    }
    edges = np.linspace(0.0, 1.0, 11)
    ref_sample, cur_sample = reference.stats.sample.rows, window.sample.rows
    confidence = {
        "edges": edges.tolist(),
        "reference": _shares(np.histogram(ref_sample["confidence"], bins=edges)[0].tolist()),
        "current": _shares(np.histogram(cur_sample["confidence"], bins=edges)[0].tolist()),
    }
    detail_columns = [c for c in ref_sample.columns if not c.startswith("emb_") and c in cur_sample.columns]
    return distribution, confidence, (ref_sample[detail_columns], cur_sample[detail_columns])


def _category_counts(stats: Any) -> dict[Any, int]:
    counts = getattr(stats, "counts", None)
    return counts if isinstance(counts, dict) else {}


def _shares(counts: list[int]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]
