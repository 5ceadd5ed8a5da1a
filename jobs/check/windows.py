"""Window profiles: full UTC days profiled once and kept (``window_profiles``), merged per window.

A weekly check merges seven daily profiles instead of reading a week of rows. A stored day is
recomputed only when rows for that day arrived after it was profiled. Nothing here writes:
:func:`window_profile` returns the days to store as :class:`DayProfile` values, and the check
writes them in its one short transaction at the end (on SQLite a long check must never hold
the write lock that ingestion needs).

The same pass feeds each day's label-free findings state (:class:`~jobs.check.state.DayFindings`),
stored beside its profile and merged the same way.

A model whose predictions stay in a lake or a source database (:mod:`jobs.lake`,
:mod:`jobs.pushdown`) has no stored rows: its days come from that engine instead
(``external``), are stored the same way, and are reused while the engine's watermark of the
day (its files, its highest id) is the one stored as ``last_row_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from drift import ReferenceProfile, WindowProfile
from drift.outliers import EmbeddingOutlierDetector
from jobs.check.frames import frame_from_rows, layout
from jobs.check.state import TOP_K, Calibration, DayFindings
from jobs.config import ModelSettings
from storage.clock import wall_clock
from storage.models import Model
from storage.windows import has_rows_after, iter_rows, rows_up_to, save_day, stored_day

if TYPE_CHECKING:
    from jobs.lake.base import ExternalDays

DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class DayProfile:
    """One full day's profile to store (or to replace the stored one with)."""

    model_id: int
    version: int
    day: datetime
    fingerprint: str
    n_rows: int
    last_row_id: int
    profile: dict[str, Any]
    findings: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class FindingsInputs:
    """What the label-free findings of a pass over rows need (see :mod:`jobs.check.state`)."""

    detector: EmbeddingOutlierDetector | None
    calibration: Calibration | None
    min_confidence: float
    top_k: int = TOP_K


@dataclass(frozen=True, kw_only=True)
class WindowOfProfiles:
    """A window's merged profile (None: no rows), its findings state, and the days computed for it."""

    profile: WindowProfile | None
    findings: DayFindings
    to_store: tuple[DayProfile, ...] = ()
    # rows an external engine rejected, per day: (field, reason, count); None for stored rows,
    # whose rejects are in the quarantine whole
    rejected: dict[datetime, tuple[tuple[str | None, str, int], ...]] | None = None


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


@dataclass(frozen=True, kw_only=True)
class _Scan:
    profile: WindowProfile | None
    findings: DayFindings
    last_id: int


def _scan(
    session: Session,
    model: ModelSettings,
    model_id: int,
    version: int,
    reference: ReferenceProfile,
    inputs: FindingsInputs,
    start: datetime,
    end: datetime,
    after_id: int = -1,
) -> _Scan:
    """One pass over the rows: the profile and the findings state, chunk by chunk."""
    profile: WindowProfile | None = None
    findings = DayFindings()
    last_id = after_id
    rows_of = iter_rows(
        session, model_id, layout(model), version=version, start=start, end=end, after_id=after_id, with_uris=False
    )
    for rows in rows_of:
        part = reference.profile(frame_from_rows(model, rows))
        profile = part if profile is None else profile.merge(part)
        findings = findings.merge(
            DayFindings.of_rows(
                prediction_id=rows.prediction_id,
                confidence=rows.confidence,
                predicted_label=rows.predicted_label,
                input_uri=rows.input_uri,
                embedding=rows.embedding,
                detector=inputs.detector,
                min_confidence=inputs.min_confidence,
                calibration=inputs.calibration,
                top_k=inputs.top_k,
            )
        )
        last_id = max(last_id, int(rows.row_id.max()))
    return _Scan(profile=profile, findings=findings, last_id=last_id)


def window_profile(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    reference: ReferenceProfile,
    start: datetime,
    end: datetime,
    now: datetime,
    inputs: FindingsInputs | None = None,
    external: ExternalDays | None = None,
) -> WindowOfProfiles:
    """The merged profile and findings state of [start, end), from stored days where they are current.

    Only reads; the days it (re)computed come back in ``to_store`` for :func:`store_days`.
    Without ``inputs`` only the profile is wanted (the report): stored days are used whatever
    their findings were made with, and the findings state only counts rows.
    """
    profile_only = inputs is None
    inputs = inputs or FindingsInputs(detector=None, calibration=None, min_confidence=1.0)
    if external is not None:
        return _external_window(session, external, model_row, version, reference, start, end, now, inputs, profile_only)
    profiles: list[WindowProfile] = []
    states: list[DayFindings] = []
    to_store: list[DayProfile] = []
    for seg_start, seg_end, full_day in segments(start, end):
        if not (full_day and seg_end <= now):
            scan = _scan(session, model, model_row.id, version, reference, inputs, seg_start, seg_end)
            if scan.profile is not None:
                profiles.append(scan.profile)
                states.append(scan.findings)
            continue
        stored = stored_day(session, model_row.id, version, seg_start, reference.fingerprint)
        kept_findings = (
            DayFindings.from_dict(stored.findings) if stored is not None and stored.findings is not None else None
        )
        if profile_only and stored is not None and kept_findings is None:
            kept_findings = DayFindings(n_rows=stored.n_rows)
        findings_current = kept_findings is not None and (
            profile_only or kept_findings.made_with(inputs.min_confidence, inputs.calibration, inputs.top_k)
        )
        late_rows = stored is not None and has_rows_after(
            session, model_row.id, version, seg_start, seg_end, stored.last_row_id
        )
        if stored is not None and not late_rows and findings_current:
            assert kept_findings is not None
            if stored.n_rows:
                profiles.append(WindowProfile.from_dict(stored.profile))
                states.append(kept_findings)
            continue
        # A stored day whose findings were made with other settings (a new calibration, threshold
        # or reference) is read again, unless rows of it were pruned since: those are gone, so its
        # stored profile and findings stay (an estimate made with another calibration is dropped
        # at the merge) and only the late rows are added.
        keep_stored = stored is not None and (
            findings_current
            or rows_up_to(session, model_row.id, version, seg_start, seg_end, stored.last_row_id) < stored.n_rows
        )
        if stored is not None and keep_stored:
            late = _scan(
                session, model, model_row.id, version, reference, inputs, seg_start, seg_end, stored.last_row_id
            )
            kept = WindowProfile.from_dict(stored.profile) if stored.n_rows else None
            profile = kept or late.profile
            if kept is not None and late.profile is not None:
                profile = kept.merge(late.profile)
            findings = (kept_findings or DayFindings(n_rows=stored.n_rows)).merge(late.findings)
            last_id = max(late.last_id, stored.last_row_id or -1)
        else:  # a new day, or a complete one whose findings are out of date: one pass over its rows
            scan = _scan(session, model, model_row.id, version, reference, inputs, seg_start, seg_end)
            profile, findings = scan.profile, scan.findings
            last_id = max(scan.last_id, stored.last_row_id if stored is not None else -1)
        to_store.append(
            DayProfile(
                model_id=model_row.id,
                version=version,
                day=seg_start,
                fingerprint=reference.fingerprint,
                n_rows=profile.n_rows if profile is not None else 0,
                last_row_id=last_id,
                profile=profile.to_dict() if profile is not None else {},
                findings=findings.to_dict(),
            )
        )
        if profile is not None:
            profiles.append(profile)
            states.append(findings)
    return WindowOfProfiles(
        profile=WindowProfile.merge_all(profiles) if profiles else None,
        findings=DayFindings.merge_all(states),
        to_store=tuple(to_store),
    )


def _external_window(
    session: Session,
    external: ExternalDays,
    model_row: Model,
    version: int,
    reference: ReferenceProfile,
    start: datetime,
    end: datetime,
    now: datetime,
    inputs: FindingsInputs,
    profile_only: bool,
) -> WindowOfProfiles:
    """The window from an external engine: stored days where current, the rest computed in one pass."""
    cut = segments(start, end)
    full = [a for a, b, is_full in cut if is_full and b <= now]
    marks = external.watermarks(version, full) if full else {}
    parts: dict[datetime, tuple[WindowProfile | None, DayFindings]] = {}
    rejected: dict[datetime, tuple[tuple[str | None, str, int], ...]] = {}
    for day in full:
        stored = stored_day(session, model_row.id, version, day, reference.fingerprint)
        if stored is None or stored.findings is None or stored.last_row_id != marks[day]:
            continue
        kept = DayFindings.from_dict(stored.findings)
        if profile_only or kept.made_with(inputs.min_confidence, inputs.calibration, inputs.top_k):
            parts[day] = (WindowProfile.from_dict(stored.profile) if stored.n_rows else None, kept)
            rejected[day] = tuple((f, r, int(n)) for f, r, n in stored.findings.get("rejected", []))
    todo = [(a, b) for a, b, _ in cut if a not in parts]
    to_store = []
    for day, state in external.states(version, todo, reference, inputs).items():
        parts[day] = (state.profile, state.findings)
        rejected[day] = tuple((f, r, n) for (f, r), n in state.rejects.counts.items())
        if day in marks:
            to_store.append(
                DayProfile(
                    model_id=model_row.id,
                    version=version,
                    day=day,
                    fingerprint=reference.fingerprint,
                    n_rows=state.n_rows,
                    last_row_id=marks[day],
                    profile=state.profile.to_dict() if state.profile is not None else {},
                    # the day's rejected rows are counted with it: the rows stay in the source
                    findings=state.findings.to_dict() | {"rejected": [list(c) for c in rejected[day]]},
                )
            )
    present = [parts[a] for a, _, _ in cut if parts[a][0] is not None]
    return WindowOfProfiles(
        profile=WindowProfile.merge_all([p for p, _ in present if p is not None]) if present else None,
        findings=DayFindings.merge_all([f for _, f in present]),
        to_store=tuple(to_store),
        rejected=rejected,
    )


def store_days(session: Session, days: tuple[DayProfile, ...]) -> None:
    """Insert or replace the given day profiles (inside the caller's write transaction)."""
    for day in days:
        save_day(
            session,
            model_id=day.model_id,
            version=day.version,
            day=day.day,
            fingerprint=day.fingerprint,
            n_rows=day.n_rows,
            last_row_id=day.last_row_id,
            profile=day.profile,
            findings=day.findings,
            updated_at=wall_clock(),
        )
