"""Alert states (what was last alerted per fingerprint) and deliveries (one row per message and
channel). Every function takes a Session."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import AlertDelivery, AlertState

FIRING = "firing"


@dataclass(frozen=True, kw_only=True)
class StoredAlert:
    """An alert identity as last sent."""

    fingerprint: str
    key: str
    kind: str
    model: str | None
    group_key: str
    status: str
    rank: int
    labels: dict[str, Any]
    annotations: dict[str, Any]
    starts_at: datetime
    ends_at: datetime | None
    last_sent_at: datetime

    @classmethod
    def of(cls, row: AlertState) -> StoredAlert:
        return cls(
            fingerprint=row.fingerprint,
            key=row.key,
            kind=row.kind,
            model=row.model,
            group_key=row.group_key,
            status=row.status,
            rank=row.rank,
            labels=dict(row.labels),
            annotations=dict(row.annotations),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            last_sent_at=row.last_sent_at,
        )


@dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    """One message sent (or not) to one channel."""

    id: int | None = None
    created_at: datetime
    channel: str
    group_key: str
    status: str
    delivered: bool
    attempts: int
    summary: str
    fingerprints: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "channel": self.channel,
            "group": self.group_key,
            "status": self.status,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "summary": self.summary,
            "fingerprints": list(self.fingerprints),
            "error": self.error,
        }


@translated
def states(session: Session, fingerprints: Iterable[str]) -> dict[str, StoredAlert]:
    """The stored states of these fingerprints, by fingerprint (unknown ones are left out)."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return {}
    rows = session.scalars(select(AlertState).where(AlertState.fingerprint.in_(wanted)))
    return {row.fingerprint: StoredAlert.of(row) for row in rows}


@translated
def firing(session: Session, kind: str, model: str) -> list[StoredAlert]:
    """The firing alerts of ``kind`` for ``model``, oldest first."""
    rows = session.scalars(
        select(AlertState)
        .where(AlertState.kind == kind, AlertState.model == model, AlertState.status == FIRING)
        .order_by(AlertState.starts_at, AlertState.id)
    )
    return [StoredAlert.of(row) for row in rows]


@translated
def save_state(session: Session, state: StoredAlert) -> None:
    """Insert or replace the state of ``state.fingerprint``."""
    row = session.scalar(select(AlertState).where(AlertState.fingerprint == state.fingerprint))
    if row is None:
        row = AlertState(fingerprint=state.fingerprint)
        session.add(row)
    row.key = state.key
    row.kind = state.kind
    row.model = state.model
    row.group_key = state.group_key
    row.status = state.status
    row.rank = state.rank
    row.labels = dict(state.labels)
    row.annotations = dict(state.annotations)
    row.starts_at = state.starts_at
    row.ends_at = state.ends_at
    row.last_sent_at = state.last_sent_at
    session.flush()


@translated
def record_delivery(session: Session, record: DeliveryRecord) -> int:
    """Store one delivery; returns its id."""
    row = AlertDelivery(
        created_at=record.created_at,
        channel=record.channel,
        group_key=record.group_key,
        status=record.status,
        delivered=record.delivered,
        attempts=record.attempts,
        summary=record.summary,
        fingerprints=list(record.fingerprints),
        error=record.error,
    )
    session.add(row)
    session.flush()
    return row.id


@translated
def recent_deliveries(
    session: Session, *, limit: int = 20, failed_only: bool = False, model: str | None = None
) -> list[DeliveryRecord]:
    """The latest deliveries, newest first; ``model``: only messages of that model's groups."""
    query = select(AlertDelivery).order_by(AlertDelivery.created_at.desc(), AlertDelivery.id.desc()).limit(limit)
    if failed_only:
        query = query.where(AlertDelivery.delivered.is_(False))
    if model is not None:
        query = query.where(AlertDelivery.group_key.startswith(f"{model}/", autoescape=True))
    return [
        DeliveryRecord(
            id=row.id,
            created_at=row.created_at,
            channel=row.channel,
            group_key=row.group_key,
            status=row.status,
            delivered=row.delivered,
            attempts=row.attempts,
            summary=row.summary,
            fingerprints=tuple(row.fingerprints),
            error=row.error,
        )
        for row in session.scalars(query)
    ]
