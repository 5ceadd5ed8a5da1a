"""Window profiles: full UTC days profiled once and kept (``window_profiles``), merged per window.

A weekly check merges seven daily profiles instead of reading a week of rows. A stored day is
recomputed only when rows for that day arrived after it was profiled. Nothing here writes:
:func:`window_profile` returns the days to store as :class:`DayProfile` values, and the check
writes them in its one short transaction at the end (on SQLite a long check must never hold
the write lock that ingestion needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import ReferenceProfile, WindowProfile
from jobs.check.frames import frame_from_rows, layout
from jobs.config import ModelSettings
from storage.clock import wall_clock
from storage.models import Model, WindowProfileRow
from storage.windows import has_rows_after, iter_rows

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


@dataclass(frozen=True, kw_only=True)
class WindowOfProfiles:
    """A window's merged profile (None: no rows) and the day profiles computed for it."""

    profile: WindowProfile | None
    to_store: tuple[DayProfile, ...] = ()


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
) -> WindowOfProfiles:
    """The merged profile of [start, end), from stored daily profiles where they are current.

    Only reads; the days it (re)computed come back in ``to_store`` for :func:`store_days`.
    """
    parts: list[WindowProfile] = []
    to_store: list[DayProfile] = []
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
            last_id = max(last_id, stored.last_row_id or -1)
        else:
            profile, last_id = _profile_rows(session, model, model_row.id, version, reference, seg_start, seg_end)
        to_store.append(
            DayProfile(
                model_id=model_row.id,
                version=version,
                day=seg_start,
                fingerprint=reference.fingerprint,
                n_rows=profile.n_rows if profile is not None else 0,
                last_row_id=last_id,
                profile=profile.to_dict() if profile is not None else {},
            )
        )
        if profile is not None:
            parts.append(profile)
    return WindowOfProfiles(profile=WindowProfile.merge_all(parts) if parts else None, to_store=tuple(to_store))


def store_days(session: Session, days: tuple[DayProfile, ...]) -> None:
    """Insert or replace the given day profiles (inside the caller's write transaction)."""
    for day in days:
        stored = session.scalar(
            select(WindowProfileRow).where(
                WindowProfileRow.model_id == day.model_id,
                WindowProfileRow.version == day.version,
                WindowProfileRow.day == day.day,
                WindowProfileRow.fingerprint == day.fingerprint,
            )
        )
        if stored is None:
            stored = WindowProfileRow(
                model_id=day.model_id, version=day.version, day=day.day, fingerprint=day.fingerprint
            )
            session.add(stored)
        elif (stored.last_row_id or -1) > day.last_row_id:
            continue  # a concurrent check stored a newer profile of this day meanwhile
        stored.n_rows = day.n_rows
        stored.last_row_id = day.last_row_id
        stored.profile = day.profile
        stored.updated_at = wall_clock()
