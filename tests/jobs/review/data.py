"""A small review-loop database with known answers: predictions, flags and labels stored directly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from jobs.config import Settings
from jobs.review.settings import ReviewSettings
from storage import repository
from storage.models import DriftRun, FlaggedPrediction, Label, PredictionLog

CLASSES = ("cat", "dog", "other")
T0 = datetime(2026, 11, 2, tzinfo=UTC)  # Monday of 2026-W45


def settings_for(url: str, *, task: str = "classification", control_share: float = 0.0, **model: Any) -> Settings:
    base = Settings(
        database={"url": url},
        models=[
            {
                "name": "pets",
                "task": task,
                "class_labels": list(CLASSES),
                "features": [{"name": "device", "type": "categorical"}],
                "confidence_threshold": 0.9,
                **model,
            }
        ],
    )
    # until Settings has its `review` section, the queue reads it with getattr
    review = ReviewSettings(control_share=control_share)
    return base.model_copy(update={"review": review})


@dataclass(frozen=True)
class Pred:
    pid: str
    hours: float  # after T0
    confidence: float
    predicted: str = "cat"
    device: str = "low"
    mask_uri: str | None = None


def store(
    factory: sessionmaker[Session],
    preds: Sequence[Pred],
    *,
    flags: Sequence[tuple[str, str, float | None, str | None]] = (),  # (pid, kind, score, true_label)
    labels: Sequence[tuple[str, str]] = (),
    task: str = "classification",
) -> int:
    """Store the rows; returns the model id."""
    by_id = {p.pid: p for p in preds}
    with factory.begin() as s:
        model = repository.ensure_model(s, "pets", task)
        repository.register_version(s, model, 1)
        for p in preds:
            probs = np.full(3, (1 - p.confidence) / 2, np.float32)
            probs[CLASSES.index(p.predicted)] = p.confidence
            s.add(
                PredictionLog(
                    model_id=model.id,
                    prediction_id=p.pid,
                    ts=T0 + timedelta(hours=p.hours),
                    model_version=1,
                    predicted_label=p.predicted,
                    confidence=p.confidence,
                    probabilities=probs.tobytes(),
                    categorical_features=json.dumps({"device": p.device}),
                    input_uri=f"images/{p.pid}.png",
                    mask_uri=p.mask_uri,
                )
            )
        if flags:
            run = DriftRun(
                model_id=model.id,
                version=1,
                window_start=T0,
                window_end=T0 + timedelta(days=7),
                n_rows=len(preds),
                drifted=False,
                engine="test",
                created_at=T0 + timedelta(days=7),
            )
            s.add(run)
            s.flush()
            for pid, kind, score, true_label in flags:
                p = by_id[pid]
                s.add(
                    FlaggedPrediction(
                        run_id=run.id,
                        model_id=model.id,
                        prediction_id=pid,
                        kind=kind,
                        confidence=p.confidence,
                        score=score,
                        predicted_label=p.predicted,
                        true_label=true_label,
                        input_uri=f"images/{pid}.png",
                    )
                )
        for pid, label in labels:
            s.add(Label(model_id=model.id, prediction_id=pid, label=label, labelled_at=T0 + timedelta(days=8)))
        return model.id
