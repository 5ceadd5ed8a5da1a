"""The review loop's queue: kept in sync, read a page at a time (decisions: :mod:`storage.review_decisions`).

The queue of a model is kept in ``review_queue_items`` (synced incrementally before each read, so a
page is one index range scan) and holds four sources of its predictions, open while they have no
review decision:

* ``confidently_wrong``: flagged by a check (label disagrees), awaiting confirmation;
* ``confident_outlier``: flagged by a check and still without a label;
* ``low_confidence``: unlabelled, unflagged predictions below a confidence;
* ``control``: the other unlabelled, unflagged predictions whose prediction-id hash falls below a
  share (the first 32 bits of its MD5, the same on SQLite, where Python computes it, and PostgreSQL).

Ordered by expected value (confidence × outlier score, 1 where there is none), newest first
(then by prediction id, descending).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    DriftRun,
    FlaggedPrediction,
    Label,
    PredictionLog,
    ReviewDecision,
    ReviewQueueItem,
    ReviewQueueSync,
)

SOURCES = ("confidently_wrong", "confident_outlier", "low_confidence", "control")
OUTLIER = "confident_outlier"
HASH_RANGE = 2**32
SQLITE_HASH = "dk_review_hash"


def unit_hash(prediction_id: str) -> int:
    """The first 32 bits of the MD5 of ``prediction_id``: what the control sample is drawn by.

    >>> unit_hash("p00001")
    3431653237
    """
    return int(hashlib.md5(prediction_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16)


@dataclass(frozen=True, kw_only=True)
class QueueQuery:
    """Which of a model's predictions the queue holds."""

    model_id: int
    sources: tuple[str, ...] = SOURCES
    low_below: float = 0.9
    control_share: float = 0.01
    start: datetime | None = None
    end: datetime | None = None
    slice_: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class QueueRow:
    """One queued prediction, as stored."""

    prediction_id: str
    source: str
    ts: datetime
    model_version: int
    predicted_label: str
    confidence: float
    score: float | None
    input_uri: str | None
    mask_uri: str | None
    true_label: str | None
    categorical: str | None  # the stored JSON text of the categorical features


def _hash_below(session: Session, prediction_id: Any, share: float) -> ColumnElement[bool]:
    bound = int(share * HASH_RANGE)
    if session.get_bind().dialect.name == "postgresql":
        bits = cast(func.concat("x", func.substr(func.md5(prediction_id), 1, 8)), postgresql.BIT(32))
        return cast(bits, BigInteger) < bound
    dbapi = session.connection().connection.dbapi_connection
    if dbapi is not None:  # registered per call: cheap, and nothing is done at import or engine build
        dbapi.create_function(SQLITE_HASH, 1, unit_hash, deterministic=True)
    return getattr(func, SQLITE_HASH)(prediction_id) < bound


def _slice_value(session: Session, text: Any, feature: str) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(text, postgresql.JSON)[feature].as_string()
    return func.json_extract(text, f'$."{feature}"')


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _open_rule(model_id: int, source: Any, pid: Any) -> ColumnElement[bool]:
    """Open: no decision, and (but for a confidently wrong prediction) no label."""
    d, lab = ReviewDecision, Label
    decided = exists().where(d.model_id == model_id, d.prediction_id == pid)
    labelled = exists().where(lab.model_id == model_id, lab.prediction_id == pid)
    return and_(~decided, or_(source == "confidently_wrong", ~labelled))


ITEM_COLUMNS = (
    "model_id",
    "prediction_id",
    "source",
    "is_open",
    "priority",
    "ts",
    "model_version",
    "predicted_label",
    "confidence",
    "score",
    "true_label",
    "input_uri",
    "mask_uri",
    "categorical_features",
)


def sync_queue(session: Session, model_id: int, low_below: float, control_share: float, now: datetime) -> None:
    """Take the flagged predictions, predictions and labels stored since the last sync into the
    model's queue; with other rules (``low_below``, ``control_share``), choose the unflagged items anew."""
    p, f, lab, item = PredictionLog, FlaggedPrediction, Label, ReviewQueueItem
    state = session.get(ReviewQueueSync, model_id, with_for_update=True)
    if state is None:
        state = ReviewQueueSync(
            model_id=model_id,
            flagged_id=0,
            prediction_row_id=0,
            label_id=0,
            low_below=low_below,
            control_share=control_share,
            updated_at=now,
        )
        session.add(state)
        session.flush()
    elif state.low_below != low_below or state.control_share != control_share:
        session.execute(delete(item).where(item.model_id == model_id, item.source.in_(("low_confidence", "control"))))
        state.prediction_row_id, state.low_below, state.control_share = 0, low_below, control_share
    top_flag = session.scalar(select(func.max(f.id)).where(f.model_id == model_id)) or 0
    top_pred = session.scalar(select(func.max(p.id)).where(p.model_id == model_id)) or 0
    top_label = session.scalar(select(func.max(lab.id)).where(lab.model_id == model_id)) or 0
    insert = _insert(session)
    if top_flag > state.flagged_id:
        new_ids = (
            select(f.prediction_id)
            .where(f.model_id == model_id, f.id > state.flagged_id, f.id <= top_flag)
            .distinct()
            .subquery()
        )
        grouped = (
            select(
                f.prediction_id.label("prediction_id"),
                func.max(f.kind).label("kind"),  # 'confidently_wrong' sorts after 'confident_outlier'
                func.max(f.confidence).label("confidence"),
                func.max(f.score).label("score"),
                func.max(f.predicted_label).label("predicted_label"),
                func.max(f.true_label).label("true_label"),
                func.max(f.input_uri).label("input_uri"),
                func.min(f.run_id).label("run_id"),
            )
            .where(f.model_id == model_id, f.prediction_id.in_(select(new_ids.c.prediction_id)))
            .group_by(f.prediction_id)
            .subquery("flagged")
        )
        g = grouped.c
        weight = case((g.kind == OUTLIER, func.coalesce(g.score, 1.0)), else_=1.0)
        rows = (
            select(
                literal(model_id),
                g.prediction_id,
                g.kind,
                _open_rule(model_id, g.kind, g.prediction_id),
                cast(g.confidence * weight, Float),
                func.coalesce(p.ts, DriftRun.window_start),
                func.coalesce(p.model_version, DriftRun.version),
                g.predicted_label,
                g.confidence,
                g.score,
                g.true_label,
                func.coalesce(p.input_uri, g.input_uri),
                p.mask_uri,
                p.categorical_features,
            )
            .select_from(grouped)
            .join(DriftRun, DriftRun.id == g.run_id)
            .outerjoin(p, and_(p.model_id == model_id, p.prediction_id == g.prediction_id))
            .where(literal(True))
        )
        stmt = insert(item).from_select(list(ITEM_COLUMNS), rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["model_id", "prediction_id"],
            set_={c: stmt.excluded[c] for c in ITEM_COLUMNS[2:]},
        )
        session.execute(stmt)
        state.flagged_id = top_flag
    if top_pred > state.prediction_row_id:
        flagged = exists().where(f.model_id == model_id, f.prediction_id == p.prediction_id)
        labelled = exists().where(lab.model_id == model_id, lab.prediction_id == p.prediction_id)
        source = case((p.confidence < low_below, "low_confidence"), else_="control")
        rows = select(
            literal(model_id),
            p.prediction_id,
            source,
            literal(True),
            cast(p.confidence, Float),
            p.ts,
            p.model_version,
            p.predicted_label,
            p.confidence,
            cast(null(), Float),
            cast(null(), String),
            p.input_uri,
            p.mask_uri,
            p.categorical_features,
        ).where(
            p.model_id == model_id,
            p.id > state.prediction_row_id,
            p.id <= top_pred,
            or_(p.confidence < low_below, _hash_below(session, p.prediction_id, control_share)),
            ~labelled,
            ~flagged,
            ~exists().where(ReviewDecision.model_id == model_id, ReviewDecision.prediction_id == p.prediction_id),
        )
        session.execute(insert(item).from_select(list(ITEM_COLUMNS), rows).on_conflict_do_nothing())
        state.prediction_row_id = top_pred
    if top_label > state.label_id:
        new_labels = select(lab.prediction_id).where(
            lab.model_id == model_id, lab.id > state.label_id, lab.id <= top_label
        )
        session.execute(
            update(item)
            .where(
                item.model_id == model_id,
                item.is_open.is_(True),
                item.source != "confidently_wrong",
                item.prediction_id.in_(new_labels),
            )
            .values(is_open=False)
        )
        state.label_id = top_label
    state.updated_at = now


def queue_page(session: Session, q: QueueQuery, *, offset: int, limit: int) -> tuple[list[QueueRow], int]:
    """One page of the (synced) queue, best first, and how many it holds in all."""
    item = ReviewQueueItem
    conditions = [item.model_id == q.model_id, item.is_open.is_(True)]
    if tuple(q.sources) != SOURCES:
        conditions.append(item.source.in_(q.sources))
    if q.start is not None:
        conditions.append(item.ts >= q.start)
    if q.end is not None:
        conditions.append(item.ts < q.end)
    if q.slice_ is not None:
        conditions.append(_slice_value(session, item.categorical_features, q.slice_[0]) == q.slice_[1])
    total = int(session.scalar(select(func.count()).select_from(item).where(*conditions)) or 0)
    if total == 0 or offset >= total:
        return [], total
    stmt = (
        select(item)
        .where(*conditions)
        .order_by(item.priority.desc(), item.ts.desc(), item.prediction_id.desc())
        .offset(offset)
        .limit(limit)
    )
    rows = [
        QueueRow(
            prediction_id=r.prediction_id,
            source=r.source,
            ts=r.ts,
            model_version=r.model_version,
            predicted_label=r.predicted_label,
            confidence=r.confidence,
            score=r.score,
            input_uri=r.input_uri,
            mask_uri=r.mask_uri,
            true_label=r.true_label,
            categorical=r.categorical_features,
        )
        for r in session.scalars(stmt)
    ]
    return rows, total


def close_items(session: Session, model_id: int, prediction_ids: Sequence[str]) -> None:
    """The decided predictions leave the queue."""
    item = ReviewQueueItem
    ids = list(dict.fromkeys(prediction_ids))
    for start in range(0, len(ids), 1000):
        session.execute(
            update(item)
            .where(item.model_id == model_id, item.prediction_id.in_(ids[start : start + 1000]))
            .values(is_open=False)
        )


def reopen_item(session: Session, model_id: int, prediction_id: str) -> None:
    """An undone prediction comes back, unless another decision or (but for a confidently
    wrong one) a label keeps it out."""
    item = ReviewQueueItem
    session.execute(
        update(item)
        .where(item.model_id == model_id, item.prediction_id == prediction_id)
        .values(is_open=_open_rule(model_id, item.source, item.prediction_id))
    )
