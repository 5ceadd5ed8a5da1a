"""Reference sets: built once per model version, from validation data or a production window."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from drift import ReferenceProfile
from drift.errors import InsufficientDataError, ReferenceSetNotFound
from jobs.check.frames import drift_spec, frame_from_rows, layout
from jobs.config import ModelSettings
from storage import repository, versions
from storage.clock import wall_clock
from storage.models import Model, ReferenceSet
from storage.windows import iter_rows

log = logging.getLogger(__name__)
MIN_REFERENCE_ROWS = 30


def save_reference(
    session: Session,
    model_row: Model,
    version: int,
    profile: ReferenceProfile,
    *,
    source: str,
    extras: dict[str, Any] | None = None,
) -> ReferenceSet:
    """Store (or replace) the reference of ``version``."""
    repository.get_version(session, model_row, version)  # must exist
    row = versions.reference_set(session, model_row.id, version)
    if row is None:
        row = ReferenceSet(model_id=model_row.id, version=version)
        session.add(row)
    row.source = source
    row.fingerprint = profile.fingerprint
    row.n_rows = profile.n_rows
    row.profile = profile.to_dict()
    row.extras = extras or {}
    row.created_at = wall_clock()
    session.flush()
    return row


def build_reference(
    model: ModelSettings,
    frame: pd.DataFrame,
) -> ReferenceProfile:
    if len(frame) < MIN_REFERENCE_ROWS:
        raise InsufficientDataError(f"a reference needs at least {MIN_REFERENCE_ROWS} rows, got {len(frame)}")
    return ReferenceProfile.from_frame(frame, drift_spec(model), sample_size=model.drift.reference_sample_size)


def reference_from_window(
    session_factory: sessionmaker[Session],
    model: ModelSettings,
    version: int,
    start: datetime,
    end: datetime,
) -> ReferenceSet:
    """Make a production window (e.g. the first week after a deploy) the version's reference."""
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        chunks = [
            frame_from_rows(model, rows)
            for rows in iter_rows(session, model_row.id, layout(model), version=version, start=start, end=end)
        ]
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    profile = build_reference(model, frame)
    with session_factory.begin() as session:
        model_row = repository.get_model(session, model.name)
        extras = {"window": [start.isoformat(), end.isoformat()]}
        return save_reference(session, model_row, version, profile, source="window", extras=extras)


def load_reference(session: Session, model_row: Model, version: int) -> tuple[ReferenceProfile, ReferenceSet]:
    row = versions.reference_set(session, model_row.id, version)
    if row is None:
        raise ReferenceSetNotFound(model_row.name, version)
    return ReferenceProfile.from_dict(row.profile), row
