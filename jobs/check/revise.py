"""Late labels revise the past: weeks checked before their labels arrived are checked again.

Labels arrive up to weeks after their predictions, so a week checked on its last day is judged
on few of them. Each check also looks at the last ``drift.revise_weeks`` complete ISO weeks: a
week whose main version has more labelled predictions now than when it was last checked is
checked again (cheap: the day profiles are stored, and only the labelled rows are read). When
its verdict changes, the new run records the revision: what the verdict was, when it changed
and why; the weekly report of that week is then written again, and a retrain-worthy revision
counts as a retrain-worthy check.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from drift.concern import VerdictLevel
from drift.errors import ModelNotFound
from jobs.check import job as check_job
from jobs.check.job import CheckReport
from jobs.config import Settings
from jobs.report.weeks import iso_week, week_window
from storage import drift_runs, repository
from storage.models import DriftRun

log = logging.getLogger(__name__)


def stored_level(run: DriftRun) -> VerdictLevel:
    """The level of a stored run: its verdict's, or (before verdicts) drift and the policy's."""
    level = (run.verdict or {}).get("level")
    return VerdictLevel.stored(level, drifted=run.drifted, retrain_worthy=run.retrain_worthy)


def revise_recent_weeks(
    session_factory: sessionmaker[Session], settings: Settings, model_name: str, *, end: datetime, now: datetime
) -> list[CheckReport]:
    """Check again each of the last ``drift.revise_weeks`` weeks ending by ``end`` whose labels
    grew since its last check; the new reports (with ``revision`` set where the verdict changed)."""
    model = settings.model(model_name)
    weeks = model.drift.revise_weeks
    if weeks == 0:
        return []
    this_week, _ = week_window(iso_week(end))
    with session_factory() as session:
        try:
            model_id = repository.get_model(session, model.name).id
        except ModelNotFound:  # nothing ingested yet: nothing to revise
            return []
    revised: list[CheckReport] = []
    for back in range(weeks, 0, -1):  # oldest first; the last one ends where ``end``'s week begins
        week = iso_week(this_week - timedelta(days=7 * back))
        start, week_end = week_window(week)
        with session_factory() as session:
            runs = drift_runs.runs_ending(session, model_id, week_end)
            if not runs:
                continue  # never checked as a week: the report checks it when it is written
            main = max(runs, key=lambda r: (r.n_rows, r.id))
            before = int(((main.figures or {}).get("realized_performance") or {}).get("n_labelled") or 0)
            now_labelled = drift_runs.labelled_between(session, model_id, main.version, start, week_end)
            previous = stored_level(main)
        if now_labelled <= before:
            continue
        reports = check_job.check(session_factory, settings, model.name, window_days=7, end=week_end, now=now)
        for report in reports:
            if report.version != main.version or report.run_id is None or report.verdict is None:
                continue
            if report.verdict.level != previous:
                revision = {
                    "at": now.isoformat(),
                    "previous": str(previous),
                    "level": str(report.verdict.level),
                    "why": f"{now_labelled - before:,} more labels: {report.verdict.headline}",
                }
                with session_factory.begin() as session:
                    drift_runs.set_revision(session, report.run_id, revision)
                log.warning(
                    "%s %s revised from %s to %s: %s", model.name, week, previous, revision["level"], revision["why"]
                )
                report = replace(report, revision=revision)
            revised.append(report)
    return revised
