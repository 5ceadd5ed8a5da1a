"""What a retrain learns from and is judged on, gathered from storage and the image roots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from drift.errors import TrainingError
from jobs.check.frames import layout
from jobs.config import ModelSettings
from jobs.images import read_grayscale, within_roots
from storage.models import Model
from storage.windows import LoggedRows, iter_rows


@dataclass(frozen=True, kw_only=True)
class BaseData:
    """The champion's own training set and the original held-out test set (an .npz file)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @classmethod
    def load(cls, path: Path | None) -> BaseData:
        if path is None:
            raise TrainingError(
                "retrain.training_data is not configured (an .npz with x_train, y_train, x_test, y_test)"
            )
        try:
            with np.load(path) as data:
                return cls(
                    x_train=data["x_train"], y_train=data["y_train"], x_test=data["x_test"], y_test=data["y_test"]
                )
        except (OSError, KeyError, ValueError) as exc:
            raise TrainingError(f"{path}: cannot read the training data: {exc}") from exc

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)
        return path


@dataclass(frozen=True, kw_only=True)
class Samples:
    """Labelled production samples whose images could be read."""

    prediction_id: np.ndarray
    images: np.ndarray
    y: np.ndarray  # class indices
    predicted: np.ndarray  # class indices, by the model that served them
    confidence: np.ndarray
    ts: pd.DatetimeIndex

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Samples:
        return Samples(
            prediction_id=self.prediction_id[mask],
            images=self.images[mask],
            y=self.y[mask],
            predicted=self.predicted[mask],
            confidence=self.confidence[mask],
            ts=self.ts[mask],
        )

    def recency_weights(self) -> np.ndarray:
        """1 for the oldest sample up to 2 for the newest."""
        if len(self) == 0:
            return np.ones(0)
        seconds = (self.ts - self.ts.min()).total_seconds().to_numpy()
        span = seconds.max() or 1.0
        return 1.0 + seconds / span

    def confidently_wrong(self, threshold: float) -> np.ndarray:
        return (self.confidence >= threshold) & (self.predicted != self.y)


def _readable(model: ModelSettings, rows: LoggedRows) -> tuple[np.ndarray, list[Path]]:
    paths = [within_roots(uri, model.image_roots) for uri in rows.input_uri]
    keep = np.array([p is not None for p in paths], dtype=bool)
    return keep, [p for p in paths if p is not None]


def labelled_samples(
    session: Session, model: ModelSettings, model_row: Model, start: datetime, end: datetime
) -> Samples:
    """Labelled predictions of [start, end) whose images lie in the model's image roots."""
    index = {label: i for i, label in enumerate(model.class_labels)}
    parts = []
    for rows in iter_rows(session, model_row.id, layout(model), start=start, end=end, labelled_only=True):
        keep, paths = _readable(model, rows)
        if not keep.any():
            continue
        assert rows.label is not None
        parts.append(
            Samples(
                prediction_id=rows.prediction_id[keep],
                images=read_grayscale(paths),
                y=np.array([index[v] for v in rows.label[keep]], dtype=np.int64),
                predicted=np.array([index[v] for v in rows.predicted_label[keep]], dtype=np.int64),
                confidence=rows.confidence[keep],
                ts=rows.ts[keep],
            )
        )
    if not parts:
        return Samples(
            prediction_id=np.empty(0, dtype=object),
            images=np.zeros((0, 32, 32), np.float32),
            y=np.empty(0, np.int64),
            predicted=np.empty(0, np.int64),
            confidence=np.empty(0),
            ts=pd.DatetimeIndex([], tz="UTC"),
        )
    return Samples(
        prediction_id=np.concatenate([p.prediction_id for p in parts]),
        images=np.concatenate([p.images for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        predicted=np.concatenate([p.predicted for p in parts]),
        confidence=np.concatenate([p.confidence for p in parts]),
        ts=pd.DatetimeIndex(
            np.concatenate([p.ts.tz_convert("UTC").tz_localize(None).to_numpy() for p in parts])
        ).tz_localize("UTC"),
    )


def labelled_count(session: Session, model: ModelSettings, model_row: Model, start: datetime, end: datetime) -> int:
    """Labelled predictions of [start, end), readable images or not."""
    rows = iter_rows(session, model_row.id, layout(model), start=start, end=end, labelled_only=True, with_uris=False)
    return sum(len(r.prediction_id) for r in rows)


def window_inputs(
    session: Session, model: ModelSettings, model_row: Model, start: datetime, end: datetime, limit: int = 5000
) -> tuple[LoggedRows, np.ndarray] | None:
    """Up to ``limit`` recent rows with readable images: the logged columns and the images."""
    for rows in iter_rows(session, model_row.id, layout(model), start=start, end=end, chunk_size=limit):
        keep, paths = _readable(model, rows)
        if not keep.any():
            return None
        kept = LoggedRows(
            row_id=rows.row_id[keep],
            prediction_id=rows.prediction_id[keep],
            ts=rows.ts[keep],
            model_version=rows.model_version[keep],
            predicted_label=rows.predicted_label[keep],
            confidence=rows.confidence[keep],
            probabilities=rows.probabilities[keep],
            numeric=rows.numeric[keep],
            categorical=rows.categorical[keep].reset_index(drop=True),
            embedding=rows.embedding[keep] if rows.embedding is not None else None,
            input_uri=rows.input_uri[keep],
            label=None,
        )
        return kept, read_grayscale(paths)
    return None
