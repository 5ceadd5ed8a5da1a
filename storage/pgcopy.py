"""PostgreSQL's side of the bulk writes: binary ``COPY`` through psycopg.

Rows are tuples in the table's column order, written with psycopg's C row formatter. The
batch's ids already stored for the model are dropped first, so the common case, all rows
new, is one ``COPY`` straight into the table. If another writer stores some of the same ids
in between, the unique constraint stops that ``COPY`` and the batch goes through a staging
table and ``INSERT ... ON CONFLICT DO NOTHING`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

# Binary COPY types of the prediction_logs columns, by name. ``ts`` goes as int8: the wire
# format of timestamptz is int8 microseconds since 2000-01-01 UTC, so the whole column is
# converted with numpy and no datetime object is made per row.
_COPY_TYPES = {
    "model_id": "int4",
    "prediction_id": "text",
    "ts": "int8",
    "model_version": "int4",
    "predicted_label": "text",
    "confidence": "float8",
    "probabilities": "bytea",
    "numeric_features": "bytea",
    "categorical_features": "text",
    "embedding": "bytea",
    "input_uri": "text",
    "mask_uri": "text",
}
_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS _dk_stage_predictions "
    "(model_id integer, prediction_id varchar(200), ts timestamptz, model_version integer, "
    "predicted_label varchar(200), confidence double precision, probabilities bytea, "
    "numeric_features bytea, categorical_features text, embedding bytea, input_uri text, mask_uri text) "
    "ON COMMIT DELETE ROWS"
)
_LABEL_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS _dk_stage_labels "
    "(model_id integer, prediction_id varchar(200), label varchar(200), labelled_at timestamptz, mask_uri text) "
    "ON COMMIT DELETE ROWS"
)
_LABEL_COLUMNS = "model_id, prediction_id, label, labelled_at, mask_uri"
_LABEL_TYPES = ["int4", "text", "text", "int8", "text"]
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since 1970


def timestamps(ts: pd.DatetimeIndex) -> list[int]:
    """Timestamps as timestamptz's binary value: microseconds since 2000-01-01 UTC."""
    micros = ts.tz_convert(UTC).tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
    return (micros - _POSTGRES_EPOCH_US).tolist()


def copy_predictions(
    conn: Connection,
    model_id: int,
    prediction_ids: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    columns: Sequence[str],
) -> int:
    """Store the rows whose prediction id is new for the model; returns how many were stored."""
    from psycopg.errors import UniqueViolation

    driver = _batch_driver(conn)
    with driver.cursor() as cursor:
        cursor.execute(
            "SELECT prediction_id FROM prediction_logs WHERE model_id = %s AND prediction_id = ANY(%s)",
            (model_id, list(prediction_ids)),
        )
        seen = {row[0] for row in cursor.fetchall()}
    keep: list[tuple[Any, ...]] = []
    for pid, row in zip(prediction_ids, rows, strict=True):
        if pid not in seen:
            seen.add(pid)  # a repeat inside the batch counts as a duplicate too
            keep.append(row)
    if not keep:
        return 0
    types = [_COPY_TYPES[c] for c in columns]
    names = ", ".join(columns)
    try:
        with conn.begin_nested():
            _copy(driver, f"COPY prediction_logs ({names}) FROM STDIN (FORMAT binary)", types, keep)
        return len(keep)
    except UniqueViolation:  # another writer stored some of these ids meanwhile
        pass
    conn.exec_driver_sql(_STAGING_TABLE)
    conn.exec_driver_sql("TRUNCATE _dk_stage_predictions")
    _copy(driver, f"COPY _dk_stage_predictions ({names}) FROM STDIN (FORMAT binary)", types, keep)
    result = conn.exec_driver_sql(
        f"INSERT INTO prediction_logs ({names}) SELECT {names} FROM _dk_stage_predictions "
        "ON CONFLICT (model_id, prediction_id) DO NOTHING"
    )
    return int(result.rowcount)


def _batch_driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn``, its transaction set to commit asynchronously.

    That is safe here: a batch's rows commit together with its watermark or file progress,
    so a crash loses both and the rerun reads the batch again.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    return driver


def _copy(driver: Any, statement: str, types: list[str], rows: list[tuple[Any, ...]]) -> None:
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def upsert_labels(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Labels (model_id, prediction_id, label, labelled_at as :func:`timestamps`, mask_uri),
    one per prediction: COPY into a staging table, then one upsert where a newer label
    replaces the stored one. Returns how many labels were stored or replaced."""
    driver = _batch_driver(conn)
    conn.exec_driver_sql(_LABEL_STAGING_TABLE)
    conn.exec_driver_sql("TRUNCATE _dk_stage_labels")
    _copy(driver, f"COPY _dk_stage_labels ({_LABEL_COLUMNS}) FROM STDIN (FORMAT binary)", _LABEL_TYPES, list(rows))
    result = conn.exec_driver_sql(
        f"INSERT INTO labels ({_LABEL_COLUMNS}) SELECT {_LABEL_COLUMNS} FROM _dk_stage_labels "
        "ON CONFLICT (model_id, prediction_id) DO UPDATE SET label = excluded.label, "
        "labelled_at = excluded.labelled_at, mask_uri = excluded.mask_uri "
        "WHERE excluded.labelled_at >= labels.labelled_at"
    )
    return int(result.rowcount)
