"""The model registry: versions with a status, lineage and metrics; promote and roll back.

Statuses: ``champion`` (serves production; one per model), ``challenger`` (trained, not yet
decided), ``rejected`` (failed the gate), ``retired`` (a former champion), ``rolled_back``
(a champion taken out by a rollback). Each version keeps its own reference set, so checks of
rows a version made always compare with that version's reference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from drift.errors import NotFoundError, ReferenceSetNotFound, ValidationError
from storage import repository, versions
from storage.clock import wall_clock
from storage.models import Model, ModelVersion


def champion(session: Session, model_row: Model) -> ModelVersion:
    rows = versions.champions(session, model_row.id)
    if not rows:
        raise NotFoundError(f"model {model_row.name!r} has no champion")
    return rows[0]


def promote(session: Session, model_row: Model, version: int, *, now: datetime | None = None) -> ModelVersion:
    """Make ``version`` the champion (one transaction: the caller's); it must have a reference set."""
    target = repository.get_version(session, model_row, version)
    if target.status == "champion":
        return target
    if not versions.has_reference_set(session, model_row.id, version):
        raise ReferenceSetNotFound(model_row.name, version)
    for current in versions.champions(session, model_row.id):
        current.status = "retired"
    target.status = "champion"
    target.promoted_at = now or wall_clock()
    session.flush()
    return target


def rollback(session: Session, model_row: Model, *, now: datetime | None = None) -> tuple[ModelVersion, ModelVersion]:
    """Restore the previous champion; returns (restored, rolled back)."""
    current = champion(session, model_row)
    previous = versions.previous_champion(session, model_row.id, current.version)
    if previous is None:
        raise ValidationError(f"model {model_row.name!r}: no former champion to roll back to")
    current.status = "rolled_back"
    previous.status = "champion"
    previous.promoted_at = now or wall_clock()
    session.flush()
    return previous, current


def next_version(session: Session, model_row: Model) -> int:
    return max((v.version for v in model_row.versions), default=0) + 1
