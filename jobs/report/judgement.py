"""What the weekly page leads with: the verdict of the week, the version that served it, and
what to do. Parts of :class:`reports.summary.WeeklySummary` (see :mod:`jobs.report.job`).

The verdict is the one the check stored with the week's main run (the version that served most
of its predictions), as revised by late labels (:mod:`jobs.check.revise`); a run stored before
verdicts existed is judged now from its stored figures.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from drift import DriftResult
from drift.concern import Verdict as Judged
from drift.concern import VerdictLevel
from drift.errors import NotFoundError
from jobs.check.figures import CheckFigures, stored_figures
from jobs.check.verdict import window_verdict
from jobs.config import ModelSettings
from jobs.report import sections
from jobs.report.weeks import iso_week
from reports.summary import Action, ClassPerformance, Revision, ServingVersion, Verdict
from storage import drift_runs, repository, versions
from storage.models import DriftRun, Model
from storage.statuses import WeekStatus

TO_LABEL = "to_label.csv"
TO_LABEL_ROWS = 200


def week_runs(session: Session, model_row: Model, end: datetime) -> list[DriftRun]:
    """The week's checks: the last run stored per version of the window ending at ``end``."""
    return list({r.version: r for r in drift_runs.runs_ending(session, model_row.id, end)}.values())


def main_run(runs: list[DriftRun]) -> DriftRun | None:
    """The run of the version that served most of the week (the latest stored on a tie)."""
    return max(runs, key=lambda r: (r.n_rows, r.id)) if runs else None


def week_verdict(model: ModelSettings, runs: list[DriftRun], results: dict[int, DriftResult]) -> Verdict:
    """The week's verdict: its main run's (the highest level of its runs, should another version's
    be worse), with the revision that late labels made, if any."""
    if not runs:
        return Verdict(status=WeekStatus.NO_DATA, headline="no checked predictions this week")
    judged = {r.id: _judged(model, r, results[r.id]) for r in runs}
    main = main_run(runs)
    assert main is not None
    worst = max(runs, key=lambda r: (judged[r.id].level.rank, r.id == main.id, r.n_rows))
    verdict = judged[worst.id]
    headline = verdict.headline if worst.id == main.id else f"version {worst.version}: {verdict.headline}"
    revision = next((r.revision for r in sorted(runs, key=lambda r: -r.id) if r.revision), None)
    revised = None
    if revision:
        previous = WeekStatus(str(revision.get("previous", "ok")))
        revised = Revision(at=datetime.fromisoformat(str(revision["at"])), previous=previous, why=str(revision["why"]))
    return Verdict(status=WeekStatus(str(verdict.level)), headline=headline, reasons=verdict.concerns, revised=revised)


def _judged(model: ModelSettings, run: DriftRun, result: DriftResult) -> Judged:
    if run.verdict:
        return Judged.from_dict(run.verdict)
    figures = stored_figures(run.figures)
    reasons = tuple(run.reasons) if run.retrain_worthy else ()
    return window_verdict(model, result, figures, retrain_reasons=reasons)


def serving_version(session: Session, model_row: Model, version: int | None) -> ServingVersion | None:
    """The version that served the week (its main run's), with the gate's figures of its promotion."""
    if version is None:
        return None
    try:
        row = repository.get_version(session, model_row, version)
    except NotFoundError:
        return None
    reference = versions.reference_set(session, model_row.id, version)
    window = (reference.extras or {}).get("window") if reference is not None else None
    reference_week = iso_week(datetime.fromisoformat(window[0])) if window else None
    return ServingVersion(
        version=row.version,
        promoted_at=row.promoted_at,
        metrics=sections.numbers(row.metrics),
        export_dir=row.export_dir,
        champion_now=row.status == "champion",
        reference_week=reference_week,
    )


def class_performance(figures: CheckFigures | None) -> ClassPerformance | None:
    """Per-class precision, recall and F1 of the week's labels, with the confusion matrix."""
    realized = figures.realized_performance if figures is not None else None
    if realized is None or not realized.n_labelled:
        return None
    labels = realized.labels
    return ClassPerformance(
        labels=labels,
        precision=tuple(realized.per_class_precision.get(label) for label in labels),
        recall=tuple(realized.per_class_recall.get(label) for label in labels),
        f1=tuple(realized.per_class_f1.get(label) for label in labels),
        support=tuple(int(realized.per_class_support.get(label, 0)) for label in labels),
        confusion_matrix=realized.confusion_matrix,
        n_labelled=realized.n_labelled,
        label_coverage=realized.label_coverage,
    )


def actions(verdict: Verdict, figures: CheckFigures | None, *, to_label: int, retrained: bool) -> tuple[Action, ...]:
    """A short list of what to do, most useful first."""
    out: list[Action] = []
    kinds = {c.kind for c in verdict.reasons}
    if "data_quality" in kinds:
        out.append(
            Action(
                kind="data",
                text="fix the source or the config, then `driftkeeper quarantine replay` (see data quality)",
            )
        )
    if to_label:
        out.append(
            Action(
                kind="label",
                text=f"label these {to_label} predictions: confident ones on unfamiliar inputs and the "
                "confidently wrong awaiting confirmation",
                href=TO_LABEL,
            )
        )
    if verdict.status == WeekStatus.ACT and not retrained:
        text = "retrain: `driftkeeper retrain -m MODEL --dry-run` says what it would do"
        out.append(Action(kind="retrain", text=text))
    realized = figures.realized_performance if figures is not None else None
    if realized is not None and realized.n_labelled < 100 and verdict.status != WeekStatus.OK:
        text = f"only {realized.n_labelled} labels this week: the realized figures are uncertain"
        out.append(Action(kind="label", text=text))
    return tuple(out)


def write_to_label(session: Session, run: DriftRun | None, path: Path) -> int:
    """The predictions worth a label (confident outliers first, then the confidently wrong), as
    CSV next to the report; how many were written (no file when none)."""
    if run is None:
        return 0
    rows = drift_runs.flagged_predictions(session, run.id, "confident_outlier", TO_LABEL_ROWS)
    rows += drift_runs.flagged_predictions(session, run.id, "confidently_wrong", TO_LABEL_ROWS - len(rows))
    if not rows:
        path.unlink(missing_ok=True)
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prediction_id", "kind", "input_uri", "predicted_label", "confidence", "true_label", "score"])
        for f in rows:
            writer.writerow(
                [
                    _cell(f.prediction_id),
                    f.kind,
                    _cell(f.input_uri),
                    _cell(f.predicted_label),
                    f.confidence,
                    _cell(f.true_label),
                    f.score,
                ]
            )
    return len(rows)


def _cell(value: str | None) -> str:
    """A CSV cell a spreadsheet never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def level_of(status: WeekStatus) -> VerdictLevel | None:
    return None if status == WeekStatus.NO_DATA else VerdictLevel(str(status))
