"""The review loop's queries: the queue, decisions, undo, progress.

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
    insert,
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


@dataclass(frozen=True, kw_only=True)
class Target:
    """What a decision on one prediction needs: its prediction, its flag and its current label."""

    prediction_id: str
    predicted_label: str
    confidence: float
    mask_uri: str | None
    flag_kind: str | None
    label: str | None
    labelled_at: datetime | None
    label_mask_uri: str | None


def targets(session: Session, model_id: int, prediction_ids: Sequence[str]) -> dict[str, Target]:
    """The stored predictions (or, where their rows are gone, flags) among ``prediction_ids``."""
    ids = list(dict.fromkeys(prediction_ids))
    if not ids:
        return {}
    p, f, lab = PredictionLog, FlaggedPrediction, Label
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for pid, predicted, conf, mask in session.execute(
            select(p.prediction_id, p.predicted_label, p.confidence, p.mask_uri).where(
                p.model_id == model_id, p.prediction_id.in_(chunk)
            )
        ):
            found[pid] = {"predicted_label": predicted, "confidence": conf, "mask_uri": mask, "flag_kind": None}
        for pid, kind, predicted, conf in session.execute(
            select(f.prediction_id, func.max(f.kind), func.max(f.predicted_label), func.max(f.confidence))
            .where(f.model_id == model_id, f.prediction_id.in_(chunk))
            .group_by(f.prediction_id)
        ):
            entry = found.setdefault(pid, {"predicted_label": predicted, "confidence": conf, "mask_uri": None})
            entry["flag_kind"] = kind
        for pid, label, at, mask in session.execute(
            select(lab.prediction_id, lab.label, lab.labelled_at, lab.mask_uri).where(
                lab.model_id == model_id, lab.prediction_id.in_(chunk)
            )
        ):
            if pid in found:
                found[pid] |= {"label": label, "labelled_at": at, "label_mask_uri": mask}
    return {
        pid: Target(
            prediction_id=pid,
            predicted_label=str(e["predicted_label"]),
            confidence=float(e["confidence"]),
            mask_uri=e["mask_uri"],
            flag_kind=e["flag_kind"],
            label=e.get("label"),
            labelled_at=e.get("labelled_at"),
            label_mask_uri=e.get("label_mask_uri"),
        )
        for pid, e in found.items()
    }


def add_decisions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store decision rows (:class:`ReviewDecision` columns as dicts)."""
    if rows:
        session.execute(insert(ReviewDecision), list(rows))
        by_model: dict[int, list[str]] = {}
        for row in rows:
            by_model.setdefault(int(row["model_id"]), []).append(str(row["prediction_id"]))
        for model_id, ids in by_model.items():
            close_items(session, model_id, ids)
    return len(rows)


def known_external_ids(session: Session, model_id: int, external_ids: Sequence[str]) -> set[str]:
    d = ReviewDecision
    out: set[str] = set()
    ids = list(dict.fromkeys(external_ids))
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        out.update(session.scalars(select(d.external_id).where(d.model_id == model_id, d.external_id.in_(chunk))))
    return out


def undo_last(session: Session, model_id: int, reviewer: str) -> str | None:
    """Delete the reviewer's last decision; the label it stored gives way to the one it replaced.

    A label stored since (by a later decision or an ingested label) is left as it is.
    """
    d, lab = ReviewDecision, Label
    last = session.scalar(
        select(d).where(d.model_id == model_id, d.reviewer == reviewer).order_by(d.id.desc()).limit(1)
    )
    if last is None:
        return None
    if last.label is not None:
        ours = and_(
            lab.model_id == model_id,
            lab.prediction_id == last.prediction_id,
            lab.label == last.label,
            lab.labelled_at == last.decided_at,
        )
        if last.previous_label is None:
            session.execute(delete(lab).where(ours))
        else:
            session.execute(
                update(lab)
                .where(ours)
                .values(
                    label=last.previous_label,
                    labelled_at=last.previous_labelled_at,
                    mask_uri=last.previous_mask_uri,
                )
            )
    prediction_id = last.prediction_id
    session.execute(delete(d).where(d.id == last.id))
    reopen_item(session, model_id, prediction_id)
    return prediction_id


@dataclass(frozen=True, kw_only=True)
class DecisionCounts:
    """A model's decisions (of a period): verdicts, agreement with the model, their times."""

    done: int
    skipped: int
    agreed: int
    judged: int  # decisions that say whether the model was right (labels, accepts, rejects)
    times: tuple[datetime, ...]  # every decision's time, in order


def decision_counts(session: Session, model_id: int, since: datetime | None = None) -> DecisionCounts:
    d = ReviewDecision
    conditions = [d.model_id == model_id]
    if since is not None:
        conditions.append(d.decided_at >= since)
    agree = case(
        (d.verdict == "accept", 1),
        (and_(d.verdict == "label", d.label == d.predicted_label), 1),
        else_=0,
    )
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((d.verdict == "skip", 1), else_=0)), 0),
            func.coalesce(func.sum(agree), 0),
            func.coalesce(func.sum(case((d.verdict.in_(("label", "accept", "reject")), 1), else_=0)), 0),
        ).where(*conditions)
    ).one()
    times = tuple(session.scalars(select(d.decided_at).where(*conditions).order_by(d.decided_at)))
    total, skipped, agreed, judged = (int(v) for v in row)
    return DecisionCounts(done=total - skipped, skipped=skipped, agreed=agreed, judged=judged, times=times)


def labelled_rows(
    session: Session,
    model_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    reviewed_only: bool = False,
) -> list[tuple[str, str, str | None]]:
    """(prediction id, label, input URI) of the model's labelled predictions, by prediction time."""
    p, lab, d = PredictionLog, Label, ReviewDecision
    conditions = [p.model_id == model_id]
    if start is not None:
        conditions.append(p.ts >= start)
    if end is not None:
        conditions.append(p.ts < end)
    if reviewed_only:
        conditions.append(
            exists().where(
                d.model_id == model_id,
                d.prediction_id == lab.prediction_id,
                d.label == lab.label,
                d.decided_at == lab.labelled_at,
            )
        )
    stmt = (
        select(p.prediction_id, lab.label, p.input_uri)
        .join(lab, and_(lab.model_id == p.model_id, lab.prediction_id == p.prediction_id))
        .where(*conditions)
        .order_by(p.ts, p.id)
    )
    return [(str(pid), str(label), uri) for pid, label, uri in session.execute(stmt)]
