"""Masks a reviewer rejected that still have no label: the images waiting to be relabelled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import translated
from storage.models import Label, PredictionLog, ReviewDecision


@dataclass(frozen=True, kw_only=True)
class RejectedMask:
    prediction_id: str
    ts: datetime
    model_version: int
    predicted_label: str
    confidence: float
    input_uri: str | None
    mask_uri: str | None
    rejected_at: datetime


@translated
def rejected_masks(session: Session, model_id: int, limit: int = 100_000) -> list[RejectedMask]:
    """Predictions whose mask was rejected in review and that got no label since, newest first."""
    d, p = ReviewDecision, PredictionLog
    stmt = (
        select(
            p.prediction_id,
            p.ts,
            p.model_version,
            p.predicted_label,
            p.confidence,
            p.input_uri,
            p.mask_uri,
            d.decided_at,
        )
        .join(p, (p.model_id == d.model_id) & (p.prediction_id == d.prediction_id))
        .outerjoin(Label, (Label.model_id == d.model_id) & (Label.prediction_id == d.prediction_id))
        .where(d.model_id == model_id, d.verdict == "reject", Label.id.is_(None))
        .order_by(d.decided_at.desc(), d.id.desc())
        .limit(limit)
    )
    return [
        RejectedMask(
            prediction_id=pid,
            ts=ts,
            model_version=int(v),
            predicted_label=label,
            confidence=float(conf),
            input_uri=uri,
            mask_uri=mask,
            rejected_at=at,
        )
        for pid, ts, v, label, conf, uri, mask, at in session.execute(stmt)
    ]
