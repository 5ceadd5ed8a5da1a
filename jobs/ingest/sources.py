"""Readers for the two kinds of source: a SQL table or query, and a folder of dropped files.

Both hand out :class:`RawBatch` objects: the rows as read (every value as the source gave
it), their positions in the source for error messages, and rows that could not even be
parsed (kept as rejects, never dropped).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from drift.errors import BadInputError
from jobs.config import FileSource, SqlSource
from storage.bulk import Reject, raw_json
from storage.codec import utf8_encodable
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
TIMESTAMP_FIELD = {"predictions": "timestamp", "labels": "labelled_at"}  # what a stream is read in order of


@dataclass(frozen=True, kw_only=True)
class RawBatch:
    frame: pd.DataFrame
    positions: list[str]
    rejects: list[Reject] = field(default_factory=list)
    consumed: int = 0  # source rows consumed up to the end of this batch (files)

    def __len__(self) -> int:
        return len(self.frame) + len(self.rejects)


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
    """Reads a table or query incrementally, ordered by (timestamp, id)."""

    def __init__(self, source: SqlSource, engine: Engine, ts_column: str) -> None:
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
        return self._read(sql, params)

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
        positions = [f"{self.id_column}={v}" for v in frame[self.id_column].tolist()] if len(frame) else []
        return frame, positions


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
    readers = {"jsonl": _jsonl_batches, "csv": _csv_batches, "parquet": _parquet_batches}
    yield from readers[fmt](path, batch_size, skip)


def _jsonl_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    records: list[dict[str, Any]] = []
    positions: list[str] = []
    rejects: list[Reject] = []
    consumed = skip
    with path.open("rb") as handle:  # bytes: orjson reads them without a decode
        for number, line in enumerate(handle, start=1):
            if number <= skip:
                continue
            consumed = number
            if not line.strip():
                continue
            record, problem = _parse_json_line(line)
            if record is not None:
                records.append(record)
                positions.append(f"line {number}")
            else:
                raw = line.decode("utf-8", "replace").rstrip("\r\n")
                rejects.append(Reject(position=f"line {number}", field=None, reason=problem, raw=raw))
            if len(records) + len(rejects) >= batch_size:
                yield RawBatch(
                    frame=pd.DataFrame.from_records(records), positions=positions, rejects=rejects, consumed=consumed
                )
                records, positions, rejects = [], [], []
    if records or rejects or consumed == skip:
        yield RawBatch(
            frame=pd.DataFrame.from_records(records), positions=positions, rejects=rejects, consumed=consumed
        )


# A run of 19 digits may be an integer past 64 bits, which orjson would turn into a float. Found
# by mapping digits to "9" and the rest to " " (a C-speed pass; a regex backtracks on numbers).
_DIGIT_RUNS = bytes(ord("9") if ord("0") <= b <= ord("9") else ord(" ") for b in range(256))
_LONG_INTEGER = b"9" * 19


def _parse_json_line(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """A JSON-lines record, or None and why not.

    orjson parses the common line (~2.5x json's speed); the standard library takes lines
    with integers orjson cannot hold exactly and lines orjson refuses (NaN, Infinity), so
    that what is accepted does not depend on the parser; bytes that are not UTF-8 are read
    as U+FFFD. A lone surrogate escape (``\\ud800``) cannot be stored as text and rejects the
    line.
    """
    record: Any = None
    fast = _LONG_INTEGER not in line.translate(_DIGIT_RUNS)
    if fast:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            fast = False
    if not fast:
        try:
            record = json.loads(line.decode("utf-8", "replace"))
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg}"
        if not utf8_encodable(json.dumps(record, ensure_ascii=False, default=str)):
            return None, "not valid Unicode text (a lone surrogate)"
    if not isinstance(record, dict):
        return None, "expected a JSON object"
    return record, ""


def _csv_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            yield RawBatch(frame=pd.DataFrame(), positions=[], consumed=0)
            return
        rows: list[list[str | None]] = []
        positions: list[str] = []
        rejects: list[Reject] = []
        consumed = skip
        for index, row in enumerate(reader, start=1):
            if index <= skip:
                continue
            consumed = index
            if len(row) != len(header):
                raw = raw_json(dict(zip(header, row, strict=False))) if row else ""
                rejects.append(
                    Reject(
                        position=f"row {index}",
                        field=None,
                        reason=f"expected {len(header)} fields, got {len(row)}",
                        raw=raw,
                    )
                )
            else:
                rows.append([v if v != "" else None for v in row])
                positions.append(f"row {index}")
            if len(rows) + len(rejects) >= batch_size:
                yield RawBatch(
                    frame=pd.DataFrame(rows, columns=header, dtype=object),
                    positions=positions,
                    rejects=rejects,
                    consumed=consumed,
                )
                rows, positions, rejects = [], [], []
        if rows or rejects or consumed == skip:
            yield RawBatch(
                frame=pd.DataFrame(rows, columns=header, dtype=object),
                positions=positions,
                rejects=rejects,
                consumed=consumed,
            )


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
