"""The labelled (and recent unlabelled) production samples a retrain learns from and is judged on.

Samples are listed from storage with their ``input_uri``; their images are read only when a
batch needs them (:class:`~jobs.ml.imageset.ImageSet`), from inside the model's ``image_roots``
(local folders or URI prefixes). Rows whose URI lies outside them, or whose local file is
gone, are left out here and counted by reason (``Samples.skipped``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from jobs.check.frames import layout
from jobs.config import ModelSettings, Settings
from jobs.images import allowed_uri
from jobs.ml.imageset import ImageSet
from storage.models import Model
from storage.windows import LoggedRows, iter_rows


@dataclass(frozen=True, kw_only=True)
class Samples:
    """Labelled production samples whose images could be read."""

    prediction_id: np.ndarray
    images: ImageSet
    y: np.ndarray  # class indices
    predicted: np.ndarray  # class indices, by the model that served them
    confidence: np.ndarray
    ts: pd.DatetimeIndex
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason
    mask_uris: np.ndarray | None = None  # segmentation: the labels' true masks

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Samples:
        return Samples(
            prediction_id=self.prediction_id[mask],
            images=self.images.take(mask),
            y=self.y[mask],
            predicted=self.predicted[mask],
            confidence=self.confidence[mask],
            ts=self.ts[mask],
            skipped=self.skipped,
            mask_uris=None if self.mask_uris is None else self.mask_uris[mask],
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


def _readable(model: ModelSettings, rows: LoggedRows, skipped: Counter[str]) -> tuple[np.ndarray, list[str]]:
    """Which rows' images may be read (inside image_roots; local files must exist), and their URIs."""
    keep = np.zeros(len(rows.input_uri), dtype=bool)
    uris = []
    for i, uri in enumerate(rows.input_uri):
        allowed = allowed_uri(uri, model.image_roots)
        if allowed is None:
            skipped["no input_uri" if not uri else "outside image_roots"] += 1
        elif "://" not in allowed and not Path(allowed).is_file():
            skipped["missing"] += 1
        else:
            keep[i] = True
            uris.append(allowed)
    return keep, uris


def _image_set(model: ModelSettings, uris: list[str], options: Mapping[str, Mapping[str, Any]] | None) -> ImageSet:
    return ImageSet.of_uris(uris, roots=model.image_roots, storage_options=options)


def labelled_samples(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    start: datetime,
    end: datetime,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Samples:
    """Labelled predictions of [start, end) whose images lie in the model's image roots."""
    index = {label: i for i, label in enumerate(model.class_labels)}
    skipped: Counter[str] = Counter()
    ids, uris, ys, predicted, confidence, stamps, masks = [], [], [], [], [], [], []
    for rows in iter_rows(session, model_row.id, layout(model), start=start, end=end, labelled_only=True):
        keep, kept_uris = _readable(model, rows, skipped)
        if not keep.any():
            continue
        assert rows.label is not None
        ids.append(rows.prediction_id[keep])
        uris.extend(kept_uris)
        ys.append(np.array([index[v] for v in rows.label[keep]], dtype=np.int64))
        predicted.append(np.array([index[v] for v in rows.predicted_label[keep]], dtype=np.int64))
        confidence.append(rows.confidence[keep])
        stamps.append(rows.ts[keep].tz_convert("UTC").tz_localize(None).to_numpy())
        if rows.true_mask_uri is not None:
            masks.append(np.asarray(rows.true_mask_uri, dtype=object)[keep])
    if not ids:
        return Samples(
            prediction_id=np.empty(0, dtype=object),
            images=ImageSet.empty(),
            y=np.empty(0, np.int64),
            predicted=np.empty(0, np.int64),
            confidence=np.empty(0),
            ts=pd.DatetimeIndex([], tz="UTC"),
            skipped=dict(skipped),
        )
    y = np.concatenate(ys)
    images = _image_set(model, uris, storage_options)
    return Samples(
        prediction_id=np.concatenate(ids),
        images=ImageSet(entries=images.entries, labels=y, roots=images.roots, storage_options=images.storage_options),
        y=y,
        predicted=np.concatenate(predicted),
        confidence=np.concatenate(confidence),
        ts=pd.DatetimeIndex(np.concatenate(stamps)).tz_localize("UTC"),
        skipped=dict(skipped),
        mask_uris=np.concatenate(masks) if len(masks) == len(ids) else None,
    )


def labelled_count(session: Session, model: ModelSettings, model_row: Model, start: datetime, end: datetime) -> int:
    """Labelled predictions of [start, end), readable images or not."""
    rows = iter_rows(session, model_row.id, layout(model), start=start, end=end, labelled_only=True, with_uris=False)
    return sum(len(r.prediction_id) for r in rows)


def window_inputs(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    start: datetime,
    end: datetime,
    limit: int = 5000,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[LoggedRows, ImageSet] | None:
    """Up to ``limit`` recent rows with readable images: the logged columns and their images."""
    for rows in iter_rows(session, model_row.id, layout(model), start=start, end=end, chunk_size=limit):
        keep, uris = _readable(model, rows, Counter())
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
        return kept, _image_set(model, uris, storage_options)
    return None


def storage_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """The fsspec options per protocol (``storage`` in the config)."""
    return {protocol: dict(options) for protocol, options in settings.storage.items()}
