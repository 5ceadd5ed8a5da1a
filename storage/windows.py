"""Reading stored prediction rows back as arrays, chunk by chunk (memory stays flat)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, String, and_, func, literal, null, select, tuple_, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.codec import FLOAT32, FLOAT64, unpack_categories, unpack_rows
from storage.models import Label, ModelVersion, PredictionLog, WindowProfileRow


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How a model's rows are packed: widths of the arrays, names of categorical features."""

    n_classes: int
    numeric_width: int
    categorical: tuple[str, ...]
    embedding_width: int | None


@dataclass(frozen=True, kw_only=True)
class LoggedRows:
    """Stored predictions (and their labels, if asked for), column-wise."""

    row_id: np.ndarray
    prediction_id: np.ndarray
    ts: pd.DatetimeIndex
    model_version: np.ndarray
    predicted_label: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    numeric: np.ndarray
    categorical: pd.DataFrame
    embedding: np.ndarray | None
    input_uri: np.ndarray
    label: np.ndarray | None
    mask_uri: np.ndarray | None = None  # predicted mask of each row (segmentation), None where not logged
    true_mask_uri: np.ndarray | None = None  # the label's true mask, when labels were asked for

    def __len__(self) -> int:
        return len(self.row_id)


def iter_rows(
    session: Session,
    model_id: int,
    layout: Layout,
    *,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    with_labels: bool = False,
    labelled_only: bool = False,
    chunk_size: int = 100_000,
    after_id: int = -1,
    with_uris: bool = True,
) -> Iterator[LoggedRows]:
    """Rows of ``model_id`` with ``start <= ts < end`` (and ``id > after_id``), ``chunk_size`` at a time.

    Rows come in (ts, id) order, read by keyset on that pair: an index range scan, with no
    sort of the day's rows for each chunk. Without ``with_uris`` the input and mask URIs are
    not read (None): a pass over every row that needs them for a handful only saves a string
    per row and column (see :func:`input_uris`).
    """
    p = PredictionLog
    columns = [
        p.id,
        p.prediction_id,
        type_coerce(p.ts, String),  # raw: SQLite's text parsed for the whole chunk below, not per row
        p.model_version,
        p.predicted_label,
        p.confidence,
        p.probabilities,
        p.numeric_features,
        p.categorical_features,
        p.embedding,
        p.input_uri if with_uris else null(),
        p.mask_uri if with_uris else null(),
    ]
    conditions = [p.model_id == model_id]
    if version is not None:
        conditions.append(p.model_version == version)
    if start is not None:
        conditions.append(p.ts >= start)
    if end is not None:
        conditions.append(p.ts < end)
    if after_id >= 0:
        conditions.append(p.id > after_id)
    # Rows are read in (ts, id) order, but callers remember the highest id read as "every row up
    # to here is in": a row committed while the scan runs could land behind the keyset with a
    # higher id. So the scan stops at the highest id stored when it starts (the rest is late).
    watermark = session.scalar(select(func.max(p.id)))
    if watermark is None:
        return
    conditions.append(p.id <= watermark)
    last: tuple[Any, int] | None = None  # (ts as stored, id) of the last row read: the keyset
    while True:
        stmt: Select[Any] = select(*columns)  # type: ignore[assignment]
        if with_labels or labelled_only:
            stmt = stmt.add_columns(Label.label, Label.mask_uri)
            join = and_(Label.model_id == p.model_id, Label.prediction_id == p.prediction_id)
            stmt = stmt.join(Label, join) if labelled_only else stmt.outerjoin(Label, join)
        keyset = []
        if last is not None:  # the id bound as the column's own type: BIGINT on PostgreSQL
            keyset = [tuple_(type_coerce(p.ts, String), p.id) > tuple_(last[0], literal(last[1], p.id.type))]
        stmt = stmt.where(*conditions, *keyset).order_by(p.ts, p.id).limit(chunk_size)
        # the driver's rows as they are: nothing here needs SQLAlchemy's per-row processing
        result = session.connection().execute(stmt)
        fetched = result.cursor.fetchall() if result.cursor is not None else []
        result.close()
        if not fetched:
            return
        last = (fetched[-1][2], int(fetched[-1][0]))
        yield _decode(fetched, layout, with_labels or labelled_only)
        if len(fetched) < chunk_size:
            return


def _timestamps(values: Sequence[Any]) -> pd.DatetimeIndex:
    """UTC timestamps from SQLite's stored text or PostgreSQL's datetimes, a chunk at a time."""
    if values and isinstance(values[0], str):
        try:  # SQLite's "YYYY-MM-DD HH:MM:SS.ffffff", parsed by numpy in C
            return pd.DatetimeIndex(np.array(values, dtype="datetime64[us]")).tz_localize("UTC")
        except ValueError:
            return pd.DatetimeIndex(pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601"))
    return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True))


def _decode(fetched: Sequence[Any], layout: Layout, with_labels: bool) -> LoggedRows:
    cols = list(zip(*fetched, strict=True))
    categorical = (
        unpack_categories(cols[8], layout.categorical)
        if layout.categorical
        else pd.DataFrame(index=range(len(fetched)))
    )
    return LoggedRows(
        row_id=np.asarray(cols[0], dtype=np.int64),
        prediction_id=np.asarray(cols[1], dtype=object),
        ts=_timestamps(cols[2]),
        model_version=np.asarray(cols[3], dtype=np.int64),
        predicted_label=np.asarray(cols[4], dtype=object),
        confidence=np.asarray(cols[5], dtype=np.float64),
        probabilities=unpack_rows(cols[6], layout.n_classes, FLOAT32),
        numeric=unpack_rows(cols[7], layout.numeric_width, FLOAT64)
        if layout.numeric_width
        else np.empty((len(fetched), 0)),
        categorical=categorical,
        embedding=unpack_rows(cols[9], layout.embedding_width, FLOAT32) if layout.embedding_width else None,
        input_uri=np.asarray(cols[10], dtype=object),
        mask_uri=np.asarray(cols[11], dtype=object),
        label=np.asarray(cols[12], dtype=object) if with_labels else None,
        true_mask_uri=np.asarray(cols[13], dtype=object) if with_labels else None,
    )


def has_rows_after(
    session: Session, model_id: int, version: int, start: datetime, end: datetime, after_id: int
) -> bool:
    """Whether rows with ``start <= ts < end`` were stored after row ``after_id`` (a stale profile)."""
    p = PredictionLog
    stmt = (
        select(p.id)
        .where(p.id > after_id, p.model_id == model_id, p.model_version == version, p.ts >= start, p.ts < end)
        .limit(1)
    )
    return session.scalar(stmt) is not None


def rows_up_to(session: Session, model_id: int, version: int, start: datetime, end: datetime, last_id: int) -> int:
    """How many of a version's rows with ``start <= ts < end`` and ``id <= last_id`` are still stored."""
    p = PredictionLog
    stmt = select(func.count()).where(
        p.model_id == model_id, p.model_version == version, p.ts >= start, p.ts < end, p.id <= last_id
    )
    return int(session.scalar(stmt) or 0)


def versions_in_window(session: Session, model_id: int, start: datetime, end: datetime) -> list[int]:
    """The model versions that logged predictions with ``start <= ts < end``, in order.

    Ingestion accepts rows of registered versions only, so each registered version is looked
    up in the (model, version, ts) index: a few index probes, not a scan of the window's rows.
    """
    p = PredictionLog
    registered = session.scalars(select(ModelVersion.version).where(ModelVersion.model_id == model_id))
    logged = [
        version
        for version in registered
        if session.scalar(
            select(p.id).where(p.model_id == model_id, p.model_version == version, p.ts >= start, p.ts < end).limit(1)
        )
        is not None
    ]
    return sorted(logged)


def stored_day(
    session: Session, model_id: int, version: int, day: datetime, fingerprint: str
) -> WindowProfileRow | None:
    """The stored profile of one day of a version's rows, binned on the reference ``fingerprint``."""
    return session.scalar(
        select(WindowProfileRow).where(
            WindowProfileRow.model_id == model_id,
            WindowProfileRow.version == version,
            WindowProfileRow.day == day,
            WindowProfileRow.fingerprint == fingerprint,
        )
    )


def input_uris(session: Session, model_id: int, prediction_ids: Sequence[str]) -> dict[str, str | None]:
    """The logged input URI of each of a few predictions (flagged ones, say)."""
    if not prediction_ids:
        return {}
    p = PredictionLog
    stmt = select(p.prediction_id, p.input_uri).where(p.model_id == model_id, p.prediction_id.in_(prediction_ids))
    return {str(pid): uri for pid, uri in session.execute(stmt)}


def labels_since(session: Session, model_id: int, since: datetime, chunk: int = 50_000) -> Iterator[dict[str, str]]:
    """The model's labels given at or after ``since``, prediction id -> label, ``chunk`` at a time
    (for predictions kept outside this database: a lake, a push-down source)."""
    stmt = (
        select(Label.prediction_id, Label.label)
        .where(Label.model_id == model_id, Label.labelled_at >= since)
        .order_by(Label.id)
        .execution_options(yield_per=chunk)
    )
    for part in session.execute(stmt).partitions(chunk):
        yield {str(pid): str(label) for pid, label in part}


def save_day(
    session: Session,
    *,
    model_id: int,
    version: int,
    day: datetime,
    fingerprint: str,
    n_rows: int,
    last_row_id: int,
    profile: dict[str, Any],
    findings: dict[str, Any],
    updated_at: datetime,
) -> None:
    """Insert a day's profile, or replace the stored one unless that covers more rows already.

    One upsert: two checks storing the same day at once (a scheduled check and the one a report
    runs first) never fail on the unique key; the profile with the higher ``last_row_id`` stays.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {
        "model_id": model_id,
        "version": version,
        "day": day,
        "fingerprint": fingerprint,
        "n_rows": n_rows,
        "last_row_id": last_row_id,
        "profile": profile,
        "findings": findings,
        "updated_at": updated_at,
    }
    stmt = insert(WindowProfileRow).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "version", "day", "fingerprint"],
        set_={k: stmt.excluded[k] for k in ("n_rows", "last_row_id", "profile", "findings", "updated_at")},
        where=stmt.excluded.last_row_id >= WindowProfileRow.last_row_id,
    )
    session.execute(stmt)
