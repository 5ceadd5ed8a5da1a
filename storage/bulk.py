"""Fast, idempotent bulk writes for the ingestion hot path.

SQLite takes one ``INSERT ... SELECT ... FROM json_each(...) ON CONFLICT DO NOTHING`` per
batch (see :class:`SqliteBatch`); PostgreSQL takes a binary ``COPY`` straight into the table
after dropping the ids it already holds, or through a staging table when another writer
races it (:mod:`storage.pgcopy`).
Both skip a prediction id already stored for the model, so a replayed batch inserts nothing
twice. Everything runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import Connection, delete, exists
from sqlalchemy import insert as insert_into
from sqlalchemy.dialects import sqlite

from storage import pgcopy
from storage.clock import wall_clock
from storage.codec import FLOAT32, FLOAT64, pack_categories, pack_rows, utf8_encodable
from storage.models import FlaggedPrediction, Label, PredictionLog, QuarantinedRow

PREDICTION_COLUMNS = (
    "model_id",
    "prediction_id",
    "ts",
    "model_version",
    "predicted_label",
    "confidence",
    "probabilities",
    "numeric_features",
    "categorical_features",
    "embedding",
    "input_uri",
    "mask_uri",
)


@dataclass(frozen=True, kw_only=True)
class PredictionRows:
    """A validated batch of predictions, column-wise, ready to store."""

    prediction_id: np.ndarray  # object array of str
    ts: pd.DatetimeIndex  # tz-aware UTC
    model_version: np.ndarray  # int64
    predicted_label: np.ndarray  # object array of str
    confidence: np.ndarray  # float64
    probabilities: np.ndarray  # (n, classes) float32
    numeric_features: np.ndarray | None  # (n, numeric features) float64
    categorical_features: pd.DataFrame | None  # (n, categorical features) str
    embedding: np.ndarray | None  # (n, dim) float32
    input_uri: np.ndarray | None  # object array of str or None
    mask_uri: np.ndarray | None = None  # segmentation: object array of str or None (predicted masks)

    def __len__(self) -> int:
        return len(self.prediction_id)


@dataclass(frozen=True, kw_only=True)
class Reject:
    """A row that failed validation, with where it came from and why."""

    position: str
    field: str | None
    reason: str
    raw: str


_BLOB_COLUMNS: dict[str, np.dtype] = {"probabilities": FLOAT32, "numeric_features": FLOAT64, "embedding": FLOAT32}


def _scalar_columns(rows: PredictionRows, ts_values: Sequence[Any]) -> dict[str, Sequence[Any]]:
    """The columns other than ``model_id`` and the array-valued ones, as Python values."""
    n = len(rows)
    none: list[Any] = [None] * n
    return {
        "prediction_id": rows.prediction_id.tolist(),
        "ts": ts_values,
        "model_version": rows.model_version.tolist(),
        "predicted_label": rows.predicted_label.tolist(),
        "confidence": rows.confidence.tolist(),
        "categorical_features": (
            pack_categories(rows.categorical_features) if rows.categorical_features is not None else none
        ),
        "input_uri": rows.input_uri.tolist() if rows.input_uri is not None else none,
        "mask_uri": rows.mask_uri.tolist() if rows.mask_uri is not None else none,
    }


def _copy_rows(model_id: int, rows: PredictionRows) -> list[tuple[Any, ...]]:
    """Row tuples in :data:`PREDICTION_COLUMNS` order for PostgreSQL's binary COPY."""
    columns = _scalar_columns(rows, pgcopy.timestamps(rows.ts))
    columns["model_id"] = [model_id] * len(rows)
    for name, dtype in _BLOB_COLUMNS.items():
        array = getattr(rows, name)
        columns[name] = pack_rows(array, dtype) if array is not None else [None] * len(rows)
    return list(zip(*(columns[c] for c in PREDICTION_COLUMNS), strict=True))


_Packed = tuple[bytes | None, int]  # a column's rows packed back to back, and the bytes per row


@dataclass(frozen=True, kw_only=True)
class SqliteBatch:
    """A batch as the few parameters of one ``INSERT ... SELECT FROM json_each(...)``.

    Binding twelve parameters per row through the sqlite3 driver holds the GIL for most of
    an insert; here the scalar columns travel as one JSON array of per-row arrays and each
    array-valued column as one packed blob that SQLite slices with ``substr``. The whole
    batch is then stored by a single statement that runs in C with the GIL released, so
    the next batch is validated meanwhile. JSON numbers round-trip exactly: orjson writes
    the shortest repr, and SQLite's JSON parser reads it back to the same double. Text does
    too, except a NUL character (SQLite's JSON reader ends the text there) or a lone
    surrogate, which validation quarantines on both backends. A batch whose JSON or blob
    would pass :data:`SQLITE_VALUE_BYTES` goes as several statements.
    """

    rows_json: str
    blobs: dict[str, _Packed]  # by column of _BLOB_COLUMNS

    def parameters(self, model_id: int) -> dict[str, Any]:
        params: dict[str, Any] = {"model_id": model_id, "rows_json": self.rows_json}
        for name, (data, width) in self.blobs.items():
            params[name], params[f"{name}_width"] = data, width
        return params


# The columns of each row's JSON array, in order; the array-valued ones come from blobs (_BLOB_COLUMNS).
_SQLITE_JSON_COLUMNS = (
    "prediction_id",
    "ts",
    "model_version",
    "predicted_label",
    "confidence",
    "categorical_features",
    "input_uri",
    "mask_uri",
)


def _sqlite_insert_sql() -> str:
    json_index = {name: i for i, name in enumerate(_SQLITE_JSON_COLUMNS)}
    values = [":model_id"]
    for name in PREDICTION_COLUMNS[1:]:
        if name in _BLOB_COLUMNS:
            values.append(f"substr(:{name}, r.key * :{name}_width + 1, :{name}_width)")
        else:
            values.append(f"json_extract(r.value, '$[{json_index[name]}]')")
    # "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint
    return (
        f"INSERT INTO prediction_logs ({', '.join(PREDICTION_COLUMNS)}) "
        f"SELECT {', '.join(values)} FROM json_each(:rows_json) AS r WHERE true "
        "ON CONFLICT (model_id, prediction_id) DO NOTHING"
    )


_SQLITE_INSERT = _sqlite_insert_sql()


# Largest value bound to one statement. SQLite refuses any over SQLITE_LIMIT_LENGTH (1 GB by
# default); a batch whose blob or JSON would pass this is split over several statements.
SQLITE_VALUE_BYTES = 64 * 2**20


def _packed(array: np.ndarray | None, dtype: np.dtype) -> _Packed:
    if array is None:
        return None, 0
    contiguous = np.ascontiguousarray(array, dtype=dtype)
    return contiguous.tobytes(), contiguous.shape[1] * dtype.itemsize


def _sqlite_batches(rows: PredictionRows) -> tuple[SqliteBatch, ...]:
    columns = _scalar_columns(rows, sqlite_timestamps(rows.ts))
    scalars = list(zip(*(columns[c] for c in _SQLITE_JSON_COLUMNS), strict=True))
    blobs = {name: _packed(getattr(rows, name), dtype) for name, dtype in _BLOB_COLUMNS.items()}
    rows_json = orjson.dumps(scalars)
    n = len(scalars)
    row_bytes = max([len(rows_json) / max(n, 1)] + [width for _, width in blobs.values()])
    step = max(1, int(SQLITE_VALUE_BYTES // max(row_bytes, 1.0)))
    if step >= n:
        return (_sqlite_batch(rows_json, blobs, 0, n),)
    return tuple(
        _sqlite_batch(orjson.dumps(scalars[start : start + step]), blobs, start, min(start + step, n))
        for start in range(0, n, step)
    )


def _sqlite_batch(rows_json: bytes, blobs: dict[str, _Packed], start: int, stop: int) -> SqliteBatch:
    """The statement for rows ``start:stop``, given their JSON and the whole batch's blobs."""
    return SqliteBatch(
        rows_json=rows_json.decode(),
        blobs={
            name: (data[start * width : stop * width] if data is not None else None, width)
            for name, (data, width) in blobs.items()
        },
    )


@dataclass(frozen=True, kw_only=True)
class EncodedPredictions:
    """Rows already in the driver's format: :class:`SqliteBatch` statements for SQLite (one,
    or several for very wide rows), row tuples for PostgreSQL's binary COPY
    (:mod:`storage.pgcopy`).

    Encoding is pure CPU work, so the ingest job does it on a worker thread while the
    previous batch is being written.
    """

    dialect: str
    model_id: int
    prediction_ids: list[str]
    sqlite_batches: tuple[SqliteBatch, ...] = ()
    copy_rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.prediction_ids)


def encode_predictions(dialect: str, model_id: int, rows: PredictionRows) -> EncodedPredictions:
    ids = rows.prediction_id.tolist()
    if dialect == "postgresql":
        return EncodedPredictions(
            dialect=dialect, model_id=model_id, prediction_ids=ids, copy_rows=_copy_rows(model_id, rows)
        )
    return EncodedPredictions(
        dialect=dialect, model_id=model_id, prediction_ids=ids, sqlite_batches=_sqlite_batches(rows)
    )


def write_predictions(conn: Connection, encoded: EncodedPredictions) -> int:
    """Store encoded rows; returns how many were new (the rest were duplicates)."""
    if encoded.count == 0:
        return 0
    if encoded.dialect != conn.dialect.name:
        raise ValueError(f"rows encoded for {encoded.dialect}, connection is {conn.dialect.name}")
    if encoded.dialect == "postgresql":
        return pgcopy.copy_predictions(
            conn, encoded.model_id, encoded.prediction_ids, encoded.copy_rows, PREDICTION_COLUMNS
        )
    return sum(
        int(conn.exec_driver_sql(_SQLITE_INSERT, batch.parameters(encoded.model_id)).rowcount)
        for batch in encoded.sqlite_batches
    )


def insert_predictions(conn: Connection, model_id: int, rows: PredictionRows) -> int:
    """Encode and store ``rows`` for ``model_id``; returns how many were new."""
    return write_predictions(conn, encode_predictions(conn.dialect.name, model_id, rows))


def sqlite_timestamps(ts: pd.DatetimeIndex) -> list[str]:
    """UTC timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's SQLite format), vectorised."""
    utc = ts.tz_convert(UTC).tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(utc, unit="us")  # 'YYYY-MM-DDTHH:MM:SS.ffffff', fixed width
    if text.size == 0:
        return []
    chars = text.view(np.uint32).reshape(len(text), -1).copy()
    chars[:, 10] = ord(" ")  # the 'T' becomes a space, for the whole column at once
    return chars.view(text.dtype).ravel().tolist()


def upsert_labels(
    conn: Connection,
    model_id: int,
    prediction_ids: Sequence[str],
    labels: Sequence[str],
    labelled_at: pd.DatetimeIndex,
    mask_uris: Sequence[str | None] | None = None,
) -> int:
    """Store labels; a label newer than the stored one for the same prediction replaces it
    (with its true mask's URI, where given: segmentation models). Returns how many labels
    were stored or replaced."""
    if len(prediction_ids) == 0:
        return 0
    # one row per prediction, the latest (the later row on a tie): an upsert may touch a row once
    at_us = labelled_at.floor("us")  # ties as stored: both backends keep microseconds
    order = pd.DataFrame({"prediction_id": np.asarray(prediction_ids, dtype=object), "labelled_at": at_us})
    keep = (
        order.sort_values("labelled_at", kind="stable").drop_duplicates("prediction_id", keep="last").index.to_numpy()
    )
    ids = np.asarray(prediction_ids, dtype=object)[keep].tolist()
    texts = np.asarray(labels, dtype=object)[keep].tolist()
    masks = np.asarray(mask_uris, dtype=object)[keep].tolist() if mask_uris is not None else [None] * len(keep)
    times = pd.DatetimeIndex(at_us[keep])
    if conn.dialect.name == "postgresql":
        rows = list(zip([model_id] * len(ids), ids, texts, pgcopy.timestamps(times), masks, strict=True))
        return pgcopy.upsert_labels(conn, rows)
    base = sqlite.insert(Label)
    stmt = base.on_conflict_do_update(
        index_elements=["model_id", "prediction_id"],
        set_={
            "label": base.excluded.label,
            "labelled_at": base.excluded.labelled_at,
            "mask_uri": base.excluded.mask_uri,
        },
        where=base.excluded.labelled_at >= Label.labelled_at,
    ).returning(Label.id)  # rowcount of an executemany is not reliable on every driver
    records = [
        {"model_id": model_id, "prediction_id": p, "label": lab, "labelled_at": t, "mask_uri": m}
        for p, lab, t, m in zip(ids, texts, times.to_pydatetime(), masks, strict=True)
    ]
    total = 0
    for start in range(0, len(records), 5000):
        total += len(conn.execute(stmt, records[start : start + 5000]).all())
    return total


def insert_rejects(conn: Connection, model_id: int | None, stream: str, source: str, rejects: Sequence[Reject]) -> int:
    if not rejects:
        return 0
    now = wall_clock()
    conn.execute(
        insert_into(QuarantinedRow),
        [
            {
                "model_id": model_id,
                "stream": stream,
                "source": _storable_text(source),
                "position": _storable_text(r.position),
                "field": _storable_text(r.field) if r.field is not None else None,
                "reason": _storable_text(r.reason),
                "raw": _storable_text(r.raw),
                "created_at": now,
            }
            for r in rejects
        ],
    )
    return len(rejects)


def prune_predictions(conn: Connection, model_id: int, older_than: datetime) -> int:
    """Delete raw prediction rows older than ``older_than`` that no later work needs.

    Labelled and flagged rows are kept (realized performance, reports and retraining use
    them), and so are the stored daily profiles, which hold what the drift checks need.
    """
    p = PredictionLog
    labelled = exists().where(Label.model_id == p.model_id, Label.prediction_id == p.prediction_id)
    flagged = exists().where(
        FlaggedPrediction.model_id == p.model_id, FlaggedPrediction.prediction_id == p.prediction_id
    )
    stmt = delete(p).where(p.model_id == model_id, p.ts < older_than, ~labelled, ~flagged)
    return int(conn.execute(stmt).rowcount)


def _storable_text(text: str) -> str:
    """Text every backend stores: a NUL character becomes ``\\x00`` and a lone surrogate its
    ``\\udXXX`` escape (a quarantined line is kept whole, whatever it holds)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if utf8_encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def raw_json(record: dict[str, Any]) -> str:
    """A rejected row's content, kept whole for the quarantine (as storable text: control
    characters, NUL included, are JSON escapes, and so is a lone surrogate)."""
    text = json.dumps(record, default=_json_value, ensure_ascii=False)
    return text if utf8_encodable(text) else json.dumps(record, default=_json_value)


def _json_value(value: Any) -> Any:
    """What ``json`` cannot write itself, as a quarantine replay reads it back: arrays (a
    Parquet list column) as lists, numpy scalars as numbers, timestamps in ISO 8601, decimals
    (a SQL NUMERIC) as their exact text, bytes as text."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
