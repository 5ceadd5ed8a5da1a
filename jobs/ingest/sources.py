"""Readers for the two kinds of source: a SQL table or query, and a folder of dropped files.

Both hand out :class:`RawBatch` objects: the rows as read (every value as the source gave
it), their positions in the source for error messages, and rows that could not even be
parsed (kept as rejects, never dropped).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from drift.errors import BadInputError
from jobs.config import FileSource, SqlSource
from jobs.ingest import arrow_files
from jobs.ingest.adbc import AdbcSource, AdbcUnavailable
from jobs.ingest.rawbatch import RawBatch
from storage.engine import redact_url

FORMATS_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
log = logging.getLogger(__name__)

TIMESTAMP_FIELD = {"predictions": "timestamp", "labels": "labelled_at"}  # what a stream is read in order of


# ---------------------------------------------------------------- SQL sources


def encode_key(value: Any) -> str:
    """A watermark value kept as text with its type, so it binds back as the same type."""
    if isinstance(value, datetime):
        return "d:" + value.isoformat()
    if isinstance(value, bool | int):
        return "i:" + str(int(value))
    if isinstance(value, float):
        return "f:" + repr(value)
    return "s:" + str(value)


def decode_key(encoded: str) -> Any:
    kind, _, body = encoded.partition(":")
    if kind == "d":
        return datetime.fromisoformat(body)
    if kind == "i":
        return int(body)
    if kind == "f":
        return float(body)
    return body


class SqlReader:
    """Reads a table or query incrementally, ordered by (timestamp, id).

    The incremental reads go through ADBC where it can read the source (PostgreSQL, SQLite;
    see :mod:`jobs.ingest.adbc`), else through SQLAlchemy; the preflight's sample and the
    rare rows without a timestamp always through SQLAlchemy. Which reader is used is logged
    once, with the URL's password hidden.
    """

    def __init__(self, source: SqlSource, engine: Engine, ts_column: str, *, use_adbc: bool = True) -> None:
        self.source = source
        self.engine = engine
        self.ts_column = ts_column
        self.id_column = source.id_column
        preparer = engine.dialect.identifier_preparer
        if source.table is not None:
            self._from = " ".join(preparer.quote(part) for part in source.table.split(".")).replace(" ", ".")
        else:
            self._from = f"({source.query}) AS src"
        self._ts = preparer.quote(ts_column)
        self._id = preparer.quote(self.id_column)
        self._adbc = AdbcSource(engine) if use_adbc and AdbcSource.supports(engine) else None
        self._adbc_connected = False

    @property
    def key(self) -> str:
        """Identifies the source (URL without password, table or query) for its watermark."""
        # the URL as configured, not the engine's (which may be rewritten, e.g. read-only SQLite)
        ident = f"{redact_url(self.source.url.get_secret_value())}|{self.source.table or self.source.query}"
        return hashlib.sha256(ident.encode()).hexdigest()

    def describe(self) -> str:
        return f"{redact_url(self.source.url.get_secret_value())} {self.source.table or 'query'}"

    def fetch_after(self, last_ts: str | None, last_id: str | None, limit: int) -> tuple[pd.DataFrame, list[str]]:
        where = f"{self._ts} IS NOT NULL"
        params: dict[str, Any] = {"limit": limit}
        if last_ts is not None and last_id is not None:
            where += f" AND ({self._ts} > :ts OR ({self._ts} = :ts AND {self._id} > :id))"
            params["ts"] = decode_key(last_ts)
            params["id"] = decode_key(last_id)
        sql = f"SELECT * FROM {self._from} WHERE {where} ORDER BY {self._ts}, {self._id} LIMIT :limit"
        frame = self._read_arrow(sql, params)
        if frame is None:
            return self._read(sql, params)
        return frame, self._positions(frame)

    def _read_arrow(self, sql: str, params: dict[str, Any]) -> pd.DataFrame | None:
        """The rows through ADBC, or None where it cannot read them as SQLAlchemy would."""
        if self._adbc is None:
            return None
        names = re.findall(r":(ts|id|limit)\b", sql)
        marks = iter(range(1, len(names) + 1))
        bound = re.sub(r":(ts|id|limit)\b", lambda _: self._adbc.placeholder(next(marks)) if self._adbc else "?", sql)
        try:
            frame = self._adbc.read(bound, [params[n] for n in names])
        except AdbcUnavailable as exc:
            if not exc.connecting:  # one read ADBC cannot type as the driver does: this one by SQLAlchemy
                log.info("%s: read with SQLAlchemy (ADBC: %s)", self.describe(), exc)
                return None
            log.info("%s: read with SQLAlchemy; ADBC could not connect (%s)", self.describe(), exc)
            self.close()
            return None
        if not self._adbc_connected:
            log.info("%s: read with ADBC (%s)", self.describe(), self.engine.dialect.name)
            self._adbc_connected = True
        if len(frame) and self.id_column not in frame.columns:
            raise BadInputError(
                self.describe(), f"id column {self.id_column!r} not in the source", field=self.id_column
            )
        return frame

    def close(self) -> None:
        """Close the ADBC connection, if one was opened (the engine is the caller's)."""
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None

    def sample(self, limit: int) -> pd.DataFrame:
        """The first rows of the source, in no order, for the preflight's column check."""
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text(f"SELECT * FROM {self._from} LIMIT :limit"), {"limit": limit})
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise BadInputError(self.describe(), f"cannot read the source: {detail}") from exc

    def fetch_null_timestamps(self, last_id: str | None, limit: int) -> tuple[pd.DataFrame, list[str]]:
        """Rows with no timestamp cannot be read by the watermark; they are read by id and quarantined."""
        where = f"{self._ts} IS NULL"
        params: dict[str, Any] = {"limit": limit}
        if last_id is not None:
            where += f" AND {self._id} > :id"
            params["id"] = decode_key(last_id)
        return self._read(f"SELECT * FROM {self._from} WHERE {where} ORDER BY {self._id} LIMIT :limit", params)

    def _read(self, sql: str, params: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text(sql), params)
                frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise BadInputError(self.describe(), f"cannot read the source: {detail}") from exc
        if len(frame) and self.id_column not in frame.columns:
            raise BadInputError(
                self.describe(), f"id column {self.id_column!r} not in the source", field=self.id_column
            )
        return frame, self._positions(frame)

    def _positions(self, frame: pd.DataFrame) -> list[str]:
        return [f"{self.id_column}={v}" for v in frame[self.id_column].tolist()] if len(frame) else []


# ---------------------------------------------------------------- file sources


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(source: FileSource) -> list[Path]:
    """Files waiting in the folder, oldest first; hidden and partial (``.tmp``...) files are left."""
    if not source.path.is_dir():
        raise BadInputError(str(source.path), "the source folder does not exist")
    files = [
        p
        for p in source.path.glob(source.pattern)
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(IGNORED_SUFFIXES)
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def file_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        allowed = ", ".join(sorted(FORMATS_BY_SUFFIX))
        raise BadInputError(str(path), f"unknown file type {path.suffix!r}; allowed: {allowed} (or set 'format')")
    return fmt


def read_file_batches(path: Path, fmt: str, batch_size: int, skip: int = 0) -> Iterator[RawBatch]:
    """Batches of a file from row ``skip`` on (rows already taken by an interrupted run)."""
    readers = {"jsonl": arrow_files.jsonl_batches, "csv": arrow_files.csv_batches, "parquet": _parquet_batches}
    yield from readers[fmt](path, batch_size, skip)


def _parquet_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise BadInputError(str(path), f"not a readable Parquet file: {exc}") from exc
    start = 0
    emitted = False
    for record_batch in parquet.iter_batches(batch_size=batch_size):
        end = start + record_batch.num_rows
        if end > skip:
            offset = max(skip - start, 0)
            frame = record_batch.slice(offset).to_pandas()
            positions = [f"row {i}" for i in range(start + offset + 1, end + 1)]
            emitted = True
            yield RawBatch(frame=frame, positions=positions, consumed=end)
        start = end
    if not emitted:
        yield RawBatch(frame=pd.DataFrame(), positions=[], consumed=start)
