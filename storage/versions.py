"""The model registry's queries: a model's versions by status, and each version's reference set.

The rules (one champion, a champion needs a reference set) live in :mod:`jobs.retrain.registry`.
Every function takes a Session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import ModelVersion, ReferenceSet


@translated
def champions(session: Session, model_id: int) -> list[ModelVersion]:
    """The versions with status 'champion' (one, unless a rule was broken; none before the first)."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.status == "champion")
        )
    )


@translated
def previous_champion(session: Session, model_id: int, current: int) -> ModelVersion | None:
    """The retired version other than ``current`` promoted last (the higher version on a tie)."""
    return session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_id == model_id,
            ModelVersion.status == "retired",
            ModelVersion.promoted_at.is_not(None),
            ModelVersion.version != current,
        )
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.version.desc())
        .limit(1)
    )


@translated
def champion_at(session: Session, model_id: int, at: datetime) -> ModelVersion | None:
    """The version that was champion at ``at``: the last one promoted by then (the champion now
    or a retired one); None if none was promoted by then."""
    return session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_id == model_id,
            ModelVersion.status.in_(("champion", "retired", "rolled_back")),
            ModelVersion.promoted_at.is_not(None),
            ModelVersion.promoted_at <= at,
        )
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.version.desc())
        .limit(1)
    )


def _of_version(model_id: int, version: int) -> ColumnElement[bool]:
    return (ReferenceSet.model_id == model_id) & (ReferenceSet.version == version)


@translated
def reference_set(session: Session, model_id: int, version: int) -> ReferenceSet | None:
    """The reference set of ``version``, profile and all; None if it has none."""
    return session.scalar(select(ReferenceSet).where(_of_version(model_id, version)))


@translated
def has_reference_set(session: Session, model_id: int, version: int) -> bool:
    """Whether ``version`` has a reference set (without loading its profile)."""
    return session.scalar(select(ReferenceSet.id).where(_of_version(model_id, version))) is not None
