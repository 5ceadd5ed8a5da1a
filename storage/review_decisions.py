"""The review loop's decisions: their targets, storing them, undo, and the counts of progress.

A decision that stores a label writes it through :func:`storage.bulk.upsert_labels` (the ingest
path) and closes the prediction's queue item (:mod:`storage.review`); an undo deletes the
decision, restores the label it replaced and reopens the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from storage.models import FlaggedPrediction, Label, PredictionLog, ReviewDecision
from storage.review import close_items, reopen_item


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
