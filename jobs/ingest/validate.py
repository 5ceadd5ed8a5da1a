"""Row validation of raw source batches, vectorised over the batch.

A row that breaks a rule becomes a :class:`storage.bulk.Reject` naming the field and the
reason (its first failure); the other rows go on. Nothing is dropped silently. How each kind
of cell is read is in :mod:`jobs.ingest.fields`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from jobs.config import ModelSettings
from jobs.images import read_mask
from jobs.ingest.fields import (
    Failures,
    array_column,
    column,
    missing_cells,
    number_column,
    numeric_block,
    optional_text_column,
    text_column,
    timestamp_column,
    too_long,
    unstorable,
)
from storage.bulk import PredictionRows, Reject
from storage.clock import wall_clock


@dataclass(frozen=True, kw_only=True)
class LabelRows:
    prediction_id: list[str]
    label: list[str]
    labelled_at: pd.DatetimeIndex
    mask_uri: list[str | None] | None = None  # the true masks (segmentation)

    def __len__(self) -> int:
        return len(self.prediction_id)


def validate_predictions(
    raw: pd.DataFrame,
    positions: Sequence[str],
    model: ModelSettings,
    columns: dict[str, str],
    known_versions: Collection[int],
    tolerance: float,
) -> tuple[PredictionRows, list[Reject]]:
    """Split a raw batch into storable rows and rejects (with their reasons)."""
    failures = Failures(raw, positions)
    n = len(raw)

    def field(name: str) -> pd.Series | None:
        return column(raw, columns.get(name, name))

    def required(name: str) -> pd.Series:
        series = field(name)
        if series is None:
            source_name = columns.get(name, name)
            failures.add(np.ones(n, dtype=bool), source_name, f"missing field {source_name!r}")
            return pd.Series([None] * n, index=raw.index, dtype=object)
        return series

    prediction_id = text_column(required("prediction_id"), columns.get("prediction_id", "prediction_id"), failures)
    too_long(prediction_id, columns.get("prediction_id", "prediction_id"), failures)
    unstorable(prediction_id, columns.get("prediction_id", "prediction_id"), failures)
    ts = timestamp_column(required("timestamp"), columns.get("timestamp", "timestamp"), failures)
    version_name = columns.get("model_version", "model_version")
    versions = number_column(required("model_version"), version_name, failures)
    failures.add(np.isfinite(versions) & (versions != np.round(versions)), version_name, "not an integer")
    known = np.array(sorted(known_versions), dtype=float)
    unknown = np.isfinite(versions) & ~np.isin(versions, known)
    allowed = ", ".join(str(int(v)) for v in known) or "none registered"
    for value in np.unique(versions[unknown & ~failures.bad]):
        failures.add(unknown & (versions == value), version_name, f"unknown model version {value:g} (known: {allowed})")

    labels = np.asarray(model.class_labels, dtype=object)
    probabilities = array_column(raw, model.probabilities, "probabilities", len(labels), failures)
    prob_field = model.probabilities.column or "probabilities"
    finite = np.isfinite(probabilities).all(axis=1)
    failures.add(
        finite & ((probabilities < 0) | (probabilities > 1)).any(axis=1), prob_field, "probability outside [0, 1]"
    )
    sums = probabilities.sum(axis=1)
    off = finite & (np.abs(sums - 1.0) > tolerance)
    failures.add_rows(
        {int(i): f"probabilities sum to {sums[i]:.4f}, not 1 (±{tolerance:g})" for i in np.flatnonzero(off)},
        prob_field,
    )

    label_series = field("predicted_label")
    if label_series is not None:
        label_name = columns.get("predicted_label", "predicted_label")
        predicted = text_column(label_series, label_name, failures)
        unknown_label = ~np.isin(predicted, labels) & ~missing_cells(label_series)
        failures.add(unknown_label, label_name, f"unknown label (allowed: {', '.join(model.class_labels)})")
    else:
        predicted = labels[np.nan_to_num(probabilities, nan=0.0).argmax(axis=1)] if n else np.empty(0, dtype=object)
    conf_series = field("confidence")
    if conf_series is None and model.task == "segmentation":
        conf_name = columns.get("confidence", "confidence")
        reason = f"missing field {conf_name!r} (the mean pixel confidence; required for segmentation)"
        failures.add(np.ones(n, dtype=bool), conf_name, reason)
    if conf_series is not None:
        conf_name = columns.get("confidence", "confidence")
        confidence = number_column(conf_series, conf_name, failures)
        failures.add((confidence < 0) | (confidence > 1), conf_name, "confidence outside [0, 1]")
    else:
        confidence = np.nan_to_num(probabilities, nan=0.0).max(axis=1) if n else np.empty(0)

    numeric = None
    if model.numeric_features:
        names = tuple(columns.get(f, f) for f in model.numeric_features)
        numeric = numeric_block(raw, names, failures)
        if numeric is None:
            numeric = np.column_stack(
                [number_column(required(f), columns.get(f, f), failures) for f in model.numeric_features]
            )
    categorical = None
    if model.categorical_features:
        categorical = pd.DataFrame(  # object: a text no database stores is quarantined below, not raised here
            {f: text_column(required(f), columns.get(f, f), failures) for f in model.categorical_features}, dtype=object
        )
        for f in model.categorical_features:
            unstorable(categorical[f].to_numpy(dtype=object), columns.get(f, f), failures)
    embedding = None
    if model.embedding is not None:
        width = model.embedding.width
        assert width is not None
        embedding = array_column(raw, model.embedding, "embedding", width, failures)
    input_uri = optional_text_column(field("input_uri"), columns.get("input_uri", "input_uri"), failures)
    mask_uri = optional_text_column(field("mask_uri"), columns.get("mask_uri", "mask_uri"), failures)

    good = ~failures.bad
    rows = PredictionRows(
        prediction_id=prediction_id[good],
        ts=ts[good],
        model_version=versions[good].astype(np.int64),
        predicted_label=np.asarray(predicted, dtype=object)[good],
        confidence=confidence[good],
        probabilities=probabilities[good].astype(np.float32),
        numeric_features=numeric[good] if numeric is not None else None,
        categorical_features=categorical[good].reset_index(drop=True) if categorical is not None else None,
        embedding=embedding[good].astype(np.float32) if embedding is not None else None,
        input_uri=input_uri[good] if input_uri is not None else None,
        mask_uri=mask_uri[good] if mask_uri is not None else None,
    )
    return rows, failures.rejects()


def validate_labels(
    raw: pd.DataFrame,
    positions: Sequence[str],
    model: ModelSettings,
    columns: dict[str, str],
    now: datetime | None = None,
) -> tuple[LabelRows, list[Reject]]:
    """Labels need a prediction id and a known class label; ``labelled_at`` defaults to now.

    A segmentation model's label may carry ``mask_uri`` (the true class-index mask) instead of
    a class label: the mask's dominant class (most pixels; ties to the first class) is then
    stored as the label, so that ``labels.label`` stays a class, comparable with the
    prediction's dominant class. Such a mask must be readable inside ``image_roots`` when the
    label is ingested; a row with neither a label nor a mask is rejected naming the label field.
    """
    failures = Failures(raw, positions)
    n = len(raw)
    id_name = columns.get("prediction_id", "prediction_id")
    label_name = columns.get("label", "label")
    mask_name = columns.get("mask_uri", "mask_uri")
    time_name = columns.get("labelled_at", "labelled_at")
    segmentation = model.task == "segmentation"
    masks = optional_text_column(column(raw, mask_name), mask_name, failures) if segmentation else None
    has_mask = np.array([m is not None for m in masks], dtype=bool) if masks is not None else np.zeros(n, dtype=bool)
    if id_name not in raw.columns:
        failures.add(np.ones(n, dtype=bool), id_name, f"missing field {id_name!r}")
    ids = text_column(raw[id_name], id_name, failures) if id_name in raw.columns else np.array([""] * n, dtype=object)
    too_long(ids, id_name, failures)
    unstorable(ids, id_name, failures)
    either = f" (give a class label or a {mask_name!r})" if segmentation else ""
    if label_name in raw.columns:
        label_series = raw[label_name]
        given = ~missing_cells(label_series)
        failures.add(~given & ~has_mask, label_name, "missing value" + either)
        values = text_column(label_series, label_name, failures, optional=True)
    else:
        given = np.zeros(n, dtype=bool)
        failures.add(~has_mask, label_name, f"missing field {label_name!r}" + either)
        values = np.array([""] * n, dtype=object)
    failures.add(
        given & ~np.isin(values, np.asarray(model.class_labels, dtype=object)) & ~failures.bad,
        label_name,
        f"unknown label (allowed: {', '.join(model.class_labels)})",
    )
    if masks is not None:
        unreadable: dict[int, str] = {}
        for i in np.flatnonzero(has_mask & ~given & ~failures.bad):
            mask, problem = read_mask(masks[i], model.image_roots, len(model.class_labels))
            if mask is None:
                unreadable[int(i)] = f"true mask {problem}"
            else:
                counts = np.bincount(mask.ravel(), minlength=len(model.class_labels))
                values[i] = model.class_labels[int(counts.argmax())]
        failures.add_rows(unreadable, mask_name)
    if time_name in raw.columns:
        labelled_at = timestamp_column(raw[time_name], time_name, failures)
    else:
        labelled_at = pd.DatetimeIndex([now or wall_clock()] * n)
    good = ~failures.bad
    return (
        LabelRows(
            prediction_id=ids[good].tolist(),
            label=values[good].tolist(),
            labelled_at=labelled_at[good],
            mask_uri=masks[good].tolist() if masks is not None else None,
        ),
        failures.rejects(),
    )
