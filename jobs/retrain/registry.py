"""The model registry: versions with a status, lineage and metrics; promote and roll back.

Statuses: ``champion`` (serves production; one per model), ``challenger`` (trained, not yet
decided), ``rejected`` (failed the gate), ``retired`` (a former champion), ``rolled_back``
(a champion taken out by a rollback). Each version keeps its own reference set, so checks of
rows a version made always compare with that version's reference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.errors import NotFoundError, ReferenceSetNotFound, ValidationError
from storage import repository
from storage.clock import wall_clock
from storage.models import Model, ModelVersion, ReferenceSet


def champion(session: Session, model_row: Model) -> ModelVersion:
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_row.id, ModelVersion.status == "champion")
    )
    if row is None:
        raise NotFoundError(f"model {model_row.name!r} has no champion")
    return row


def promote(session: Session, model_row: Model, version: int, *, now: datetime | None = None) -> ModelVersion:
    """Make ``version`` the champion (one transaction: the caller's); it must have a reference set."""
    target = repository.get_version(session, model_row, version)
    if target.status == "champion":
        return target
    has_reference = session.scalar(
        select(ReferenceSet.id).where(ReferenceSet.model_id == model_row.id, ReferenceSet.version == version)
    )
    if has_reference is None:
        raise ReferenceSetNotFound(model_row.name, version)
    for current in session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model_row.id, ModelVersion.status == "champion")
    ):
        current.status = "retired"
    target.status = "champion"
    target.promoted_at = now or wall_clock()
    session.flush()
    return target


def rollback(session: Session, model_row: Model, *, now: datetime | None = None) -> tuple[ModelVersion, ModelVersion]:
    """Restore the previous champion; returns (restored, rolled back)."""
    current = champion(session, model_row)
    previous = session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_id == model_row.id,
            ModelVersion.status == "retired",
            ModelVersion.promoted_at.is_not(None),
            ModelVersion.version != current.version,
        )
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.version.desc())
        .limit(1)
    )
    if previous is None:
        raise ValidationError(f"model {model_row.name!r}: no former champion to roll back to")
    current.status = "rolled_back"
    previous.status = "champion"
    previous.promoted_at = now or wall_clock()
    session.flush()
    return previous, current


def next_version(session: Session, model_row: Model) -> int:
    versions = [v.version for v in model_row.versions]
    return max(versions, default=0) + 1
