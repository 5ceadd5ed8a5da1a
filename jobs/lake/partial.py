"""Day states of a batch of raw source rows: validation, then the same pass as over stored rows.

A batch (an Arrow record batch from a Parquet file or a Spark task) is validated by the
ingestion's own rules (:func:`jobs.ingest.validate.validate_predictions`), so a lake row is
accepted or rejected exactly as it would be when ingested; accepted rows are then cast as
storing would cast them (probabilities and embeddings to float32) and profiled by
:meth:`~drift.ReferenceProfile.profile` and :meth:`~jobs.check.state.DayFindings.of_rows`,
per segment of their timestamp. The result is what a pass over the same rows stored in
driftkeeper's database gives, up to the rounding of sums.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from drift import ReferenceProfile
from jobs.check.frames import model_frame
from jobs.check.state import DayFindings
from jobs.check.windows import FindingsInputs
from jobs.config import ColumnGroup, LakeSource, ModelSettings
from jobs.ingest.validate import validate_predictions
from jobs.lake.base import DayState, ExternalDays, IdentifiedRows, RejectTally, Segment
from storage.bulk import PredictionRows


@dataclass(frozen=True, kw_only=True)
class BatchJob:
    """Everything a worker needs to turn raw batches into day states (picklable, for Spark)."""

    model: ModelSettings
    columns: dict[str, str]
    known_versions: tuple[int, ...]
    tolerance: float
    version: int
    segments: tuple[Segment, ...]
    reference: ReferenceProfile
    inputs: FindingsInputs


def _flattened(batch: pa.RecordBatch, model: ModelSettings) -> tuple[pd.DataFrame, ModelSettings]:
    """The batch as pandas; list columns of exactly the expected width and without nulls become
    one float column per element (validated at C speed), others stay for the row-wise path."""
    update: dict[str, ColumnGroup] = {}
    arrays: dict[str, np.ndarray] = {}
    groups = [("probabilities", model.probabilities, len(model.class_labels))]
    if model.embedding is not None and model.embedding.width is not None:
        groups.append(("embedding", model.embedding, model.embedding.width))
    drop: list[str] = []
    for key, group, width in groups:
        name = group.column
        if name is None or name not in batch.schema.names:
            continue
        values = batch.column(name)
        if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)) or values.null_count:
            continue
        lengths = np.asarray(pa.compute.list_value_length(values).to_numpy(zero_copy_only=False))
        if len(values) and not (lengths == width).all():
            continue
        flat = values.flatten()
        if flat.null_count:
            continue
        block = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(values), width)
        names = tuple(f"{name}\x1f{j}" for j in range(width))
        arrays.update({n: block[:, j] for j, n in enumerate(names)})
        update[key] = ColumnGroup(columns=names)
        drop.append(name)
    kept = batch.drop_columns(drop) if drop else batch
    frame = kept.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    if arrays:
        frame = pd.concat([frame, pd.DataFrame(arrays, index=frame.index)], axis=1)
    return frame, model.model_copy(update=update) if update else model


def batch_states(job: BatchJob, batch: pa.RecordBatch, day: str, position: str) -> dict[int, DayState]:
    """The day states (keyed by segment index) of one batch of raw rows of partition ``day``.

    Rejected rows are counted in the segment holding the partition's day (their timestamp may
    be what is wrong with them); accepted rows in the segment of their timestamp.
    """
    raw, model = _flattened(batch, job.model)
    positions = [f"{position}:{i}" for i in range(len(raw))]
    rows, rejects = validate_predictions(raw, positions, model, job.columns, job.known_versions, job.tolerance)
    starts = np.array([np.datetime64(s.replace(tzinfo=None), "us") for s, _ in job.segments])
    ends = np.array([np.datetime64(e.replace(tzinfo=None), "us") for _, e in job.segments])
    out: dict[int, DayState] = {}
    if rejects:
        at = np.datetime64(day, "us")
        hit = np.flatnonzero((starts <= at) & (at < ends))
        if hit.size:
            out[int(hit[0])] = DayState(profile=None, findings=DayFindings(), rejects=RejectTally.of(rejects))
    if not len(rows.prediction_id):
        return out
    ts = rows.ts.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[us]")
    seg = np.searchsorted(starts, ts, side="right") - 1
    inside = (seg >= 0) & (ts < ends[np.maximum(seg, 0)]) & (rows.model_version == job.version)
    for index in np.unique(seg[inside]):
        pick = np.flatnonzero(inside & (seg == index))
        state = rows_state(job, rows_subset(rows, pick))
        out[int(index)] = out[int(index)].merge(state) if int(index) in out else state
    return out


@dataclass(frozen=True, kw_only=True)
class AcceptedRows:
    prediction_id: np.ndarray
    predicted_label: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    numeric: np.ndarray | None
    categorical: pd.DataFrame | None
    embedding: np.ndarray | None
    input_uri: np.ndarray


def rows_subset(rows: PredictionRows, pick: np.ndarray) -> AcceptedRows:
    """The accepted rows ``pick`` of a validated batch, cast as storing them would."""
    return AcceptedRows(
        prediction_id=np.asarray(rows.prediction_id, dtype=object)[pick],
        predicted_label=np.asarray(rows.predicted_label, dtype=object)[pick],
        confidence=np.asarray(rows.confidence, dtype=np.float64)[pick],
        probabilities=np.asarray(rows.probabilities, dtype=np.float32)[pick],
        numeric=rows.numeric_features[pick] if rows.numeric_features is not None else None,
        categorical=(
            rows.categorical_features.iloc[pick].reset_index(drop=True)
            if rows.categorical_features is not None
            else None
        ),
        embedding=np.asarray(rows.embedding, dtype=np.float32)[pick] if rows.embedding is not None else None,
        input_uri=(
            np.asarray(rows.input_uri, dtype=object)[pick]
            if rows.input_uri is not None
            else np.full(pick.size, None, dtype=object)
        ),
    )


def rows_state(job: BatchJob, rows: AcceptedRows) -> DayState:
    """The profile and findings state of accepted rows (one segment)."""
    model = job.model
    frame = model_frame(
        model,
        probabilities=rows.probabilities,
        numeric=rows.numeric if model.numeric_features else None,
        categorical=rows.categorical if model.categorical_features else None,
        embedding=rows.embedding,
    )
    inputs = job.inputs
    findings = DayFindings.of_rows(
        prediction_id=rows.prediction_id,
        confidence=rows.confidence,
        predicted_label=rows.predicted_label,
        input_uri=rows.input_uri,
        embedding=rows.embedding,
        detector=inputs.detector,
        min_confidence=inputs.min_confidence,
        calibration=inputs.calibration,
        top_k=inputs.top_k,
    )
    return DayState(profile=job.reference.profile(frame), findings=findings)


def identified_rows(job: RowFilter, batch: pa.RecordBatch, ids: pa.Array | None, position: str) -> IdentifiedRows:
    """The accepted rows of ``job.version`` in [``job.start``, ``job.end``) of one batch whose
    prediction id is in ``ids`` (None: every row, already picked): picked in Arrow first, so
    only those few rows are validated."""
    name = job.columns.get("prediction_id", "prediction_id")
    if name not in batch.schema.names or (ids is not None and not len(ids)) or not batch.num_rows:
        return IdentifiedRows.empty()
    if ids is not None:
        column = batch.column(name)
        picked = pc.is_in(column if pa.types.is_string(column.type) else pc.cast(column, pa.string()), value_set=ids)
        index = np.flatnonzero(np.asarray(pc.fill_null(picked, False).to_numpy(zero_copy_only=False), dtype=bool))
        if not index.size:
            return IdentifiedRows.empty()
        batch = batch.take(pa.array(index))
    else:
        index = np.arange(batch.num_rows)
    raw, model = _flattened(batch, job.model)
    positions = [f"{position}:{i}" for i in index.tolist()]
    rows, _ = validate_predictions(raw, positions, model, job.columns, job.known_versions, job.tolerance)
    if not len(rows):
        return IdentifiedRows.empty()
    ts = rows.ts.tz_convert("UTC")
    keep = np.flatnonzero(
        (rows.model_version == job.version) & (ts >= pd.Timestamp(job.start)) & (ts < pd.Timestamp(job.end))
    )
    accepted = rows_subset(rows, keep)
    return IdentifiedRows(
        prediction_id=accepted.prediction_id,
        confidence=accepted.confidence,
        predicted_label=accepted.predicted_label,
        input_uri=accepted.input_uri,
    )


@dataclass(frozen=True, kw_only=True)
class RowFilter:
    """What :func:`identified_rows` validates and keeps (picklable, for Spark)."""

    model: ModelSettings
    columns: dict[str, str]
    known_versions: tuple[int, ...]
    tolerance: float
    version: int
    start: datetime
    end: datetime


class LakeEngine(ExternalDays):
    """What the lake engines share: the model, its source, and the jobs their workers run."""

    def __init__(self, model: ModelSettings, source: LakeSource, known_versions: Collection[int], tolerance: float):
        super().__init__()
        self.model = model
        self.source = source
        self.known_versions = known(known_versions)
        self.tolerance = tolerance

    def job(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> BatchJob:
        return BatchJob(**self._fields(version), segments=tuple(segments), reference=reference, inputs=inputs)

    def row_filter(self, version: int, start: datetime, end: datetime) -> RowFilter:
        return RowFilter(**self._fields(version), start=start, end=end)

    def _fields(self, version: int) -> dict[str, Any]:
        return {
            "model": self.model,
            "columns": dict(self.source.columns),
            "known_versions": self.known_versions,
            "tolerance": self.tolerance,
            "version": version,
        }


def merge_into(into: dict[int, DayState], parts: dict[int, DayState]) -> None:
    for index, state in parts.items():
        into[index] = into[index].merge(state) if index in into else state


def known(versions: Collection[int]) -> tuple[int, ...]:
    return tuple(sorted(int(v) for v in versions))
