"""The quarantine's queries: rejected rows by reason, and the replay's reads and writes.

A quarantined row keeps its raw content (``raw``, JSON text for every kind of source), so it
can be validated again once the config or the registry is fixed (:mod:`jobs.ingest.replay`).
Every function takes a Session; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import Model, PredictionLog, QuarantinedRow


@dataclass(frozen=True, kw_only=True)
class ReasonCount:
    model: str | None
    stream: str
    field: str | None
    reason: str
    rows: int
    first_at: datetime
    last_at: datetime


@translated
def reason_counts(session: Session, model_id: int | None = None, limit: int = 200) -> list[ReasonCount]:
    """Quarantined rows counted by model, stream, field and reason, most rows first."""
    q = QuarantinedRow
    stmt = (
        select(
            Model.name,
            q.stream,
            q.field,
            q.reason,
            func.count(),
            func.min(q.created_at),
            func.max(q.created_at),
        )
        .select_from(q)
        .outerjoin(Model, Model.id == q.model_id)
        .group_by(Model.name, q.stream, q.field, q.reason)
        .order_by(func.count().desc(), Model.name, q.stream, q.reason)
        .limit(limit)
    )
    if model_id is not None:
        stmt = stmt.where(q.model_id == model_id)
    return [
        ReasonCount(model=m, stream=s, field=f, reason=r, rows=int(n), first_at=a, last_at=b)
        for m, s, f, r, n, a, b in session.execute(stmt)
    ]


@translated
def reasons_between(
    session: Session, model_id: int, stream: str, start: datetime, end: datetime
) -> list[tuple[str | None, str, int]]:
    """(field, reason, rows) of the rows of ``stream`` quarantined in ``[start, end)``, most first."""
    q = QuarantinedRow
    stmt = (
        select(q.field, q.reason, func.count())
        .where(q.model_id == model_id, q.stream == stream, q.created_at >= start, q.created_at < end)
        .group_by(q.field, q.reason)
        .order_by(func.count().desc())
        .limit(500)
    )
    return [(f, r, int(n)) for f, r, n in session.execute(stmt)]


@translated
def accepted_between(session: Session, model_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """Accepted prediction rows with a timestamp in ``[start, end)``, by model version."""
    p = PredictionLog
    stmt = (
        select(p.model_version, func.count())
        .where(p.model_id == model_id, p.ts >= start, p.ts < end)
        .group_by(p.model_version)
    )
    return {int(v): int(n) for v, n in session.execute(stmt)}


@translated
def count_since(session: Session, model_id: int, stream: str, since: datetime) -> int:
    q = QuarantinedRow
    stmt = select(func.count()).where(q.model_id == model_id, q.stream == stream, q.created_at >= since)
    return int(session.scalar(stmt) or 0)


@translated
def rows_to_replay(
    session: Session,
    model_id: int,
    stream: str,
    *,
    after_id: int,
    limit: int,
    reason: str | None = None,
    since: datetime | None = None,
    up_to_id: int | None = None,
) -> list[QuarantinedRow]:
    """Quarantined rows of ``stream`` in id order after ``after_id`` (and up to ``up_to_id``):
    those whose reason contains ``reason`` (case-insensitive) and that were quarantined since
    ``since``."""
    q = QuarantinedRow
    stmt = select(q).where(q.model_id == model_id, q.stream == stream, q.id > after_id).order_by(q.id).limit(limit)
    if up_to_id is not None:
        stmt = stmt.where(q.id <= up_to_id)
    if reason:
        stmt = stmt.where(func.lower(q.reason).contains(reason.lower(), autoescape=True))
    if since is not None:
        stmt = stmt.where(q.created_at >= since)
    return list(session.scalars(stmt))


@translated
def last_id(session: Session, model_id: int, stream: str) -> int:
    """The highest quarantine id of ``stream`` now (a replay goes no further: rows quarantined
    while it runs are the next replay's)."""
    q = QuarantinedRow
    return int(session.scalar(select(func.max(q.id)).where(q.model_id == model_id, q.stream == stream)) or 0)


@translated
def release(session: Session, ids: Sequence[int]) -> int:
    """Take rows out of the quarantine (they were accepted by a replay)."""
    if not ids:
        return 0
    total = 0
    for start in range(0, len(ids), 5000):
        chunk = list(ids[start : start + 5000])
        total += int(session.connection().execute(delete(QuarantinedRow).where(QuarantinedRow.id.in_(chunk))).rowcount)
    return total


@translated
def set_reasons(session: Session, changes: Sequence[tuple[int, str | None, str]]) -> None:
    """Give rows that a replay rejected again their new (field, reason)."""
    if changes:  # an ORM bulk UPDATE by primary key: one executemany
        session.execute(update(QuarantinedRow), [{"id": i, "field": f, "reason": r} for i, f, r in changes])
