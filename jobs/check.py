"""The check job: compare a window of each model version's logs with that version's reference.

Full UTC days are profiled once and kept (``window_profiles``); a weekly check merges seven
daily profiles instead of reading a week of rows. A stored day is recomputed only when rows
for that day arrived after it was profiled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drift import DriftResult, ReferenceProfile, WindowProfile, compare_profiles
from drift.errors import ReferenceSetNotFound
from jobs.config import ModelSettings, Settings
from jobs.findings import Flagged, compute_findings
from jobs.frames import frame_from_rows, layout
from jobs.policy import retrain_decision
from jobs.reference import load_reference
from storage import repository
from storage.clock import wall_clock
from storage.models import DriftColumnResult, DriftRun, FlaggedPrediction, Model, PredictionLog, WindowProfileRow
from storage.windows import has_rows_after, iter_rows

log = logging.getLogger(__name__)
DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """One version's window compared with its reference, as stored in ``drift_runs``."""

    model: str
    version: int
    run_id: int | None
    window_start: datetime
    window_end: datetime
    n_rows: int
    drifted: bool
    outputs_drifted: bool | None
    embedding_drifted: bool | None
    retrain_worthy: bool
    reasons: tuple[str, ...]
    result: DriftResult | None
    figures: dict[str, Any] = field(default_factory=dict)
    flagged: tuple[Flagged, ...] = ()
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "n_rows": self.n_rows,
            "drifted": self.drifted,
            "outputs_drifted": self.outputs_drifted,
            "embedding_drifted": self.embedding_drifted,
            "retrain_worthy": self.retrain_worthy,
            "reasons": list(self.reasons),
            "skipped": self.skipped,
            "figures": self.figures,
            "flagged": [f.to_dict() for f in self.flagged],
            "result": self.result.to_dict() if self.result is not None else None,
        }


def _day_floor(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def segments(start: datetime, end: datetime) -> list[tuple[datetime, datetime, bool]]:
    """[start, end) cut at UTC midnights: (from, to, is_full_day)."""
    out = []
    cursor = start
    while cursor < end:
        day = _day_floor(cursor)
        stop = min(day + DAY, end)
        out.append((cursor, stop, cursor == day and stop == day + DAY))
        cursor = stop
    return out


def _profile_rows(
    session: Session,
    model: ModelSettings,
    model_id: int,
    version: int,
    reference: ReferenceProfile,
    start: datetime,
    end: datetime,
    after_id: int = -1,
) -> tuple[WindowProfile | None, int]:
    profile: WindowProfile | None = None
    last_id = after_id
    for rows in iter_rows(session, model_id, layout(model), version=version, start=start, end=end, after_id=after_id):
        part = reference.profile(frame_from_rows(model, rows))
        profile = part if profile is None else profile.merge(part)
        last_id = max(last_id, int(rows.row_id.max()))
    return profile, last_id


def window_profile(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    reference: ReferenceProfile,
    start: datetime,
    end: datetime,
    now: datetime,
) -> WindowProfile | None:
    """The merged profile of [start, end), from stored daily profiles where they are current."""
    parts: list[WindowProfile] = []
    for seg_start, seg_end, full_day in segments(start, end):
        if not (full_day and seg_end <= now):
            profile, _ = _profile_rows(session, model, model_row.id, version, reference, seg_start, seg_end)
            if profile is not None:
                parts.append(profile)
            continue
        stored = session.scalar(
            select(WindowProfileRow).where(
                WindowProfileRow.model_id == model_row.id,
                WindowProfileRow.version == version,
                WindowProfileRow.day == seg_start,
                WindowProfileRow.fingerprint == reference.fingerprint,
            )
        )
        if stored is not None and not has_rows_after(
            session, model_row.id, version, seg_start, seg_end, stored.last_row_id
        ):
            if stored.n_rows:
                parts.append(WindowProfile.from_dict(stored.profile))
            continue
        if stored is not None:
            # late rows for a day already profiled: profile just them and merge (the day's older
            # rows may have been pruned since, so recomputing from the rows would lose them)
            late, last_id = _profile_rows(
                session, model, model_row.id, version, reference, seg_start, seg_end, after_id=stored.last_row_id
            )
            kept = WindowProfile.from_dict(stored.profile) if stored.n_rows else None
            profile = kept.merge(late) if kept is not None and late is not None else (kept or late)
        else:
            profile, last_id = _profile_rows(session, model, model_row.id, version, reference, seg_start, seg_end)
        if stored is None:
            stored = WindowProfileRow(
                model_id=model_row.id, version=version, day=seg_start, fingerprint=reference.fingerprint
            )
            session.add(stored)
        stored.n_rows = profile.n_rows if profile is not None else 0
        stored.last_row_id = max(last_id, stored.last_row_id or -1)
        stored.profile = profile.to_dict() if profile is not None else {}
        stored.updated_at = wall_clock()
        if profile is not None:
            parts.append(profile)
    return WindowProfile.merge_all(parts) if parts else None


def versions_in_window(session: Session, model_id: int, start: datetime, end: datetime) -> list[int]:
    p = PredictionLog
    stmt = select(p.model_version).distinct().where(p.model_id == model_id, p.ts >= start, p.ts < end)
    return sorted(session.scalars(stmt))


def check(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    window_days: float | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    min_rows: int = 30,
) -> list[CheckReport]:
    """Check the window ending at ``end`` (default: now) for every version that logged in it."""
    model = settings.model(model_name)
    now = now or wall_clock()
    end = end or now
    start = end - timedelta(days=window_days if window_days is not None else model.drift.window_days)
    reports: list[CheckReport] = []
    with session_factory.begin() as session:
        model_row = repository.get_model(session, model.name)
        versions = versions_in_window(session, model_row.id, start, end)
        missing: list[int] = []
        for version in versions:
            try:
                reference, reference_row = load_reference(session, model_row, version)
            except ReferenceSetNotFound:
                missing.append(version)
                log.warning("%s version %d has no reference set; its rows are not checked", model.name, version)
                continue
            window = window_profile(session, model, model_row, version, reference, start, end, now)
            n_rows = window.n_rows if window is not None else 0
            if window is None or n_rows < min_rows:
                reports.append(_skipped(model.name, version, start, end, n_rows, f"only {n_rows} rows (< {min_rows})"))
                continue
            result = compare_profiles(reference, window)
            findings = compute_findings(session, model, model_row, version, reference, reference_row, start, end)
            figures = findings.figures
            decision = retrain_decision(model.retrain_when, result, figures)
            run = _store_run(
                session, model_row, version, start, end, result, figures, decision.retrain_worthy, decision.reasons
            )
            session.add_all(
                FlaggedPrediction(run_id=run.id, model_id=model_row.id, **f.to_dict()) for f in findings.flagged
            )
            reports.append(
                CheckReport(
                    model=model.name,
                    version=version,
                    run_id=run.id,
                    window_start=start,
                    window_end=end,
                    n_rows=n_rows,
                    drifted=result.drifted,
                    outputs_drifted=result.outputs_drifted,
                    embedding_drifted=result.embedding_drifted,
                    retrain_worthy=decision.retrain_worthy,
                    reasons=decision.reasons,
                    result=result,
                    figures=figures,
                    flagged=findings.flagged,
                )
            )
            log.info(
                "check %s v%d %s..%s: %d rows, drifted=%s, retrain-worthy=%s%s",
                model.name,
                version,
                f"{start:%Y-%m-%d}",
                f"{end:%Y-%m-%d}",
                n_rows,
                result.drifted,
                decision.retrain_worthy,
                f" ({'; '.join(decision.reasons)})" if decision.reasons else "",
            )
        if not versions:
            reports.append(_skipped(model.name, 0, start, end, 0, "no predictions in the window"))
        elif missing and not reports:
            raise ReferenceSetNotFound(model.name, missing[0])
    return reports


def _skipped(model: str, version: int, start: datetime, end: datetime, n_rows: int, why: str) -> CheckReport:
    log.info("check %s%s skipped: %s", model, f" v{version}" if version else "", why)
    return CheckReport(
        model=model,
        version=version,
        run_id=None,
        window_start=start,
        window_end=end,
        n_rows=n_rows,
        drifted=False,
        outputs_drifted=None,
        embedding_drifted=None,
        retrain_worthy=False,
        reasons=(),
        result=None,
        skipped=why,
    )


def _store_run(
    session: Session,
    model_row: Model,
    version: int,
    start: datetime,
    end: datetime,
    result: DriftResult,
    figures: dict[str, Any],
    retrain_worthy: bool,
    reasons: tuple[str, ...],
) -> DriftRun:
    run = DriftRun(
        model_id=model_row.id,
        version=version,
        window_start=start,
        window_end=end,
        n_rows=result.n_current,
        drifted=result.drifted,
        outputs_drifted=result.outputs_drifted,
        embedding_drifted=result.embedding_drifted,
        retrain_worthy=retrain_worthy,
        reasons=list(reasons),
        result=result.to_dict(),
        figures=figures,
        engine=result.engine,
        created_at=wall_clock(),
    )
    session.add(run)
    session.flush()
    session.add_all(
        DriftColumnResult(
            run_id=run.id,
            column=c.column,
            kind=c.kind,
            method=c.method,
            score=_finite(c.score),
            p_value=_finite(c.p_value),
            threshold=_finite(c.threshold),
            drifted=c.drifted,
        )
        for c in result.columns
    )
    return run


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)
