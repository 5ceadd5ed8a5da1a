"""The review queue of a model, and what a reviewer does with it: decide, skip, undo; progress.

Every decision that names a class becomes a label through :func:`storage.bulk.upsert_labels`,
the path ingested labels take, labelled at the decision's time; so the next check and retrain
use it. The decision itself (reviewer, time, source ``review``, the label it replaced) is kept
in ``review_decisions``: a prediction with a decision leaves the queue, an undo brings it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import ValidationError
from jobs.config import ModelSettings, Settings
from jobs.report.weeks import is_iso_week, iso_week, week_window
from jobs.review.settings import ReviewSettings
from storage import review as store
from storage import review_decisions as decisions_store
from storage.bulk import upsert_labels
from storage.clock import wall_clock
from storage.codec import unpack_categories
from storage.repository import get_model

ACCEPT, REJECT = "accept", "reject"
MAX_PER_PAGE = 10_000
IDLE_GAP = timedelta(minutes=5)  # a longer pause between two decisions is not reviewing time


class ReviewKind(StrEnum):
    """Why a prediction is in the queue."""

    CONFIDENTLY_WRONG = "confidently_wrong"  # flagged: confident, and its label disagrees (awaiting confirmation)
    CONFIDENT_OUTLIER = "confident_outlier"  # flagged: confident on an unusual input, no label yet
    LOW_CONFIDENCE = "low_confidence"  # unlabelled, below the confidence threshold
    CONTROL = "control"  # a deterministic random sample of the other unlabelled predictions
    MASK = "mask"  # segmentation: a confidently wrong mask, to accept or reject
    RELABEL = "relabel"  # segmentation: a rejected mask, to draw again in a labelling tool (exports only)


@dataclass(frozen=True, kw_only=True)
class ReviewItem:
    prediction_id: str
    kind: ReviewKind
    ts: datetime
    week: str
    model_version: int
    predicted_label: str
    confidence: float
    score: float | None
    input_uri: str | None
    mask_uri: str | None
    true_label: str | None
    slice: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "kind": str(self.kind),
            "ts": self.ts.isoformat(),
            "week": self.week,
            "model_version": self.model_version,
            "predicted_label": self.predicted_label,
            "confidence": self.confidence,
            "score": self.score,
            "input_uri": self.input_uri,
            "mask_uri": self.mask_uri,
            "true_label": self.true_label,
            "slice": dict(self.slice),
        }


@dataclass(frozen=True, kw_only=True)
class QueuePage:
    model: str
    items: tuple[ReviewItem, ...]
    total: int
    page: int
    per_page: int
    class_labels: tuple[str, ...]
    task: str = "classification"  # segmentation: "accept" / "reject" are decisions too

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "items": [i.to_dict() for i in self.items],
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "class_labels": list(self.class_labels),
            "task": self.task,
        }


@dataclass(frozen=True, kw_only=True)
class Progress:
    done: int
    skipped: int
    left: int
    per_minute: float | None
    agreement: float | None  # share of decisions that agree with the model

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "skipped": self.skipped,
            "left": self.left,
            "per_minute": self.per_minute,
            "agreement": self.agreement,
        }


def review_settings(settings: Settings) -> ReviewSettings:
    """The ``review`` section (its defaults where the settings have none)."""
    section = getattr(settings, "review", None)
    return section if isinstance(section, ReviewSettings) else ReviewSettings()


def _sources(model: ModelSettings, kind: ReviewKind | None) -> tuple[str, ...]:
    if kind is None:
        return store.SOURCES
    if kind == ReviewKind.MASK or (kind == ReviewKind.CONFIDENTLY_WRONG and model.task == "segmentation"):
        return ("confidently_wrong",)
    return (str(kind),)


def _query(
    model: ModelSettings,
    model_id: int,
    review: ReviewSettings,
    week: str | None,
    kind: ReviewKind | None,
    slice_: tuple[str, str] | None,
) -> store.QueueQuery:
    start = end = None
    if week is not None:
        if not is_iso_week(week):
            raise ValidationError(f"week {week!r} is not an ISO week like 2026-W38")
        start, end = week_window(week)
    if slice_ is not None and slice_[0] not in model.categorical_features:
        allowed = ", ".join(model.categorical_features) or "(none)"
        raise ValidationError(f"slice feature {slice_[0]!r} is not a categorical feature of {model.name}: {allowed}")
    low = review.low_confidence_below if review.low_confidence_below is not None else model.confidence_threshold
    return store.QueueQuery(
        model_id=model_id,
        sources=_sources(model, kind),
        low_below=low,
        control_share=review.control_share,
        start=start,
        end=end,
        slice_=slice_,
    )


def _item(model: ModelSettings, row: store.QueueRow, categories: dict[str, str]) -> ReviewItem:
    kind = ReviewKind(row.source)
    if kind == ReviewKind.CONFIDENTLY_WRONG and model.task == "segmentation":
        kind = ReviewKind.MASK
    return ReviewItem(
        prediction_id=row.prediction_id,
        kind=kind,
        ts=row.ts,
        week=iso_week(row.ts),
        model_version=row.model_version,
        predicted_label=row.predicted_label,
        confidence=row.confidence,
        score=row.score,
        input_uri=row.input_uri,
        mask_uri=row.mask_uri,
        true_label=row.true_label,
        slice=categories,
    )


def review_queue(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    *,
    week: str | None = None,
    kind: ReviewKind | None = None,
    slice_: tuple[str, str] | None = None,
    page: int = 0,
    per_page: int = 48,
    now: datetime | None = None,
) -> QueuePage:
    """Page ``page`` (from 0) of the model's queue: highest expected value first, newest on a tie."""
    m = settings.model(model)
    if page < 0 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationError(f"page must be >= 0 and per_page within 1..{MAX_PER_PAGE}; got {page}, {per_page}")
    kind = ReviewKind(kind) if kind is not None else None
    with session_factory.begin() as session:
        q = _query(m, get_model(session, model).id, review_settings(settings), week, kind, slice_)
        store.sync_queue(session, q.model_id, q.low_below, q.control_share, now or wall_clock())
        rows, total = store.queue_page(session, q, offset=page * per_page, limit=per_page)
    frame = unpack_categories([r.categorical for r in rows], m.categorical_features)
    records = frame.to_dict("records") if len(frame.columns) else [{} for _ in rows]
    items = tuple(
        _item(m, row, {k: str(v) for k, v in cats.items() if v is not None and not pd.isna(v)})
        for row, cats in zip(rows, records, strict=True)
    )
    return QueuePage(
        model=model, items=items, total=total, page=page, per_page=per_page, class_labels=m.class_labels, task=m.task
    )


def _verdict(model: ModelSettings, label: str | None) -> str:
    if label is None:
        return "skip"
    if label in model.class_labels:
        return "label"
    if model.task == "segmentation" and label in (ACCEPT, REJECT):
        return label
    extra = f", or {ACCEPT!r} / {REJECT!r} of the mask" if model.task == "segmentation" else ""
    raise ValidationError(
        f"unknown label {label!r} for model {model.name}; allowed: {', '.join(model.class_labels)}{extra}"
    )


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One decision to store: a prediction, a label (or None: skip), who, when, from where."""

    prediction_id: str
    label: str | None
    reviewer: str
    decided_at: datetime
    source: str = "review"
    external_id: str | None = None


def _kind(model: ModelSettings, target: decisions_store.Target, low_below: float) -> str:
    if target.flag_kind is not None:
        return (
            str(ReviewKind.MASK)
            if model.task == "segmentation" and target.flag_kind == "confidently_wrong"
            else target.flag_kind
        )
    return str(ReviewKind.LOW_CONFIDENCE if target.confidence < low_below else ReviewKind.CONTROL)


def store_decisions(session: Session, settings: Settings, model: ModelSettings, decisions: Sequence[Decision]) -> int:
    """Store decisions inside the caller's transaction: labels where they name one, a decision
    row each. A decision older than the stored label is not stored. Returns how many were."""
    if not decisions:
        return 0
    for d in decisions:
        if not d.reviewer.strip():
            raise ValidationError("a decision needs a reviewer name")
    verdicts = [_verdict(model, d.label) for d in decisions]
    model_id = get_model(session, model.name).id
    found = decisions_store.targets(session, model_id, [d.prediction_id for d in decisions])
    unknown = sorted({d.prediction_id for d in decisions} - set(found))
    if unknown:
        more = " ..." if len(unknown) > 5 else ""
        raise ValidationError(f"no prediction {', '.join(map(repr, unknown[:5]))}{more} of model {model.name}")
    review = review_settings(settings)
    low = review.low_confidence_below if review.low_confidence_below is not None else model.confidence_threshold
    rows: list[dict[str, Any]] = []
    labels: list[tuple[str, str, datetime, str | None]] = []
    for d, verdict in zip(decisions, verdicts, strict=True):
        t = found[d.prediction_id]
        at = pd.Timestamp(d.decided_at).tz_convert("UTC").floor("us").to_pydatetime()
        stored: str | None = None
        if verdict in ("label", ACCEPT):
            if t.labelled_at is not None and t.labelled_at > at:
                continue  # a newer label is stored: it stays
            stored = d.label if verdict == "label" else t.predicted_label
            labels.append((d.prediction_id, str(stored), at, t.mask_uri if verdict == ACCEPT else None))
        rows.append(
            {
                "model_id": model_id,
                "prediction_id": d.prediction_id,
                "kind": _kind(model, t, low),
                "verdict": verdict,
                "label": stored,
                "predicted_label": t.predicted_label,
                "reviewer": d.reviewer.strip(),
                "source": d.source,
                "external_id": d.external_id,
                "decided_at": at,
                "previous_label": t.label if stored is not None else None,
                "previous_labelled_at": t.labelled_at if stored is not None else None,
                "previous_mask_uri": t.label_mask_uri if stored is not None else None,
            }
        )
    if labels:
        ids, texts, times, masks = zip(*labels, strict=True)
        upsert_labels(session.connection(), model_id, ids, texts, pd.DatetimeIndex(times), masks)
    return decisions_store.add_decisions(session, rows)


def decide(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    prediction_ids: Sequence[str],
    label: str | None,
    *,
    reviewer: str,
    now: datetime | None = None,
) -> int:
    """Give ``prediction_ids`` the class ``label`` (None: skip them; segmentation: "accept" or
    "reject" of the predicted mask; a rejected mask waits for relabelling). Returns how many
    decisions were stored."""
    m = settings.model(model)
    at = now or wall_clock()
    decisions = [
        Decision(prediction_id=p, label=label, reviewer=reviewer, decided_at=at) for p in dict.fromkeys(prediction_ids)
    ]
    with session_factory.begin() as session:
        return store_decisions(session, settings, m, decisions)


def undo(session_factory: sessionmaker[Session], settings: Settings, model: str, *, reviewer: str) -> str | None:
    """Undo ``reviewer``'s last decision on ``model`` (the label it replaced, if any, comes back);
    the prediction id, or None when there was nothing to undo."""
    settings.model(model)
    with session_factory.begin() as session:
        return decisions_store.undo_last(session, get_model(session, model).id, reviewer)


def progress(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    sync: bool = True,
) -> Progress:
    """Decisions since ``since`` (all: None), what is left in the queue, decisions per minute of
    reviewing (pauses over five minutes not counted) and the share of judgements agreeing with the model.

    ``sync=False`` only reads (the weekly report): what is left is then as of the queue's last
    update, without the predictions stored since.
    """
    m = settings.model(model)
    with session_factory() as session:
        model_id = get_model(session, model).id
        counts = decisions_store.decision_counts(session, model_id, since)
        q = _query(m, model_id, review_settings(settings), None, None, None)
        if sync:
            store.sync_queue(session, model_id, q.low_below, q.control_share, now or wall_clock())
            session.commit()
        _, left = store.queue_page(session, q, offset=0, limit=1)
    active = sum(
        (min(b - a, IDLE_GAP) for a, b in zip(counts.times, counts.times[1:], strict=False)), timedelta()
    ).total_seconds()
    per_minute = (len(counts.times) - 1) / (active / 60) if len(counts.times) > 1 and active > 0 else None
    return Progress(
        done=counts.done,
        skipped=counts.skipped,
        left=left,
        per_minute=per_minute,
        agreement=counts.agreed / counts.judged if counts.judged else None,
    )
