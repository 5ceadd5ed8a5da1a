"""Reading a SQL source's batches as Arrow, through ADBC (PostgreSQL and SQLite).

The DB-API drivers hand out one Python object per value; ADBC hands out columns. Only the
keyset-paged reads of the ingest (:meth:`jobs.ingest.sources.SqlReader.fetch_after`) come
this way; a source ADBC cannot open, and any read whose columns ADBC would type otherwise
than the DB-API driver does (NUMERIC, JSON, UUID, dates...; a SQLite column whose values
change type), are read by SQLAlchemy as before, so that the rows are the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy import URL, Engine

log = logging.getLogger(__name__)


class AdbcUnavailable(Exception):
    """ADBC cannot read this source (``connecting``), or this read; the caller reads it with
    SQLAlchemy."""

    def __init__(self, detail: str, *, connecting: bool = False) -> None:
        super().__init__(detail)
        self.connecting = connecting


def _plain_type(kind: pa.DataType) -> bool:
    """Arrow types whose pandas columns match what the DB-API rows give."""
    if isinstance(kind, pa.ExtensionType):
        return False
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_float64(kind)  # not float4: psycopg reads its text, ADBC its bits
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_null(kind)
        or pa.types.is_binary(kind)
    )


class AdbcSource:
    """One ADBC connection to a source, opened on first use, read-only and in autocommit
    (a SQLite source is never left holding a read lock between batches)."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self._url = engine.url
        self._conn: Any = None

    @staticmethod
    def supports(engine: Engine) -> bool:
        return engine.dialect.name in ("postgresql", "sqlite")

    def placeholder(self, number: int) -> str:
        """The bind marker of the ``number``-th (1-based) parameter."""
        return f"${number}" if self.dialect == "postgresql" else "?"

    def read(self, sql: str, params: Sequence[Any]) -> pd.DataFrame:
        conn = self._connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                table = cursor.fetch_arrow_table()
        except Exception as exc:  # a driver error (a SQLite column changing type...)
            raise AdbcUnavailable(_one_line(exc, self._url)) from exc
        odd = [f.name for f in table.schema if not _plain_type(f.type)]
        if odd:
            raise AdbcUnavailable(f"columns {', '.join(map(repr, odd))} have types ADBC reads differently")
        return table.to_pandas()

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        try:
            if self.dialect == "postgresql":
                import adbc_driver_postgresql.dbapi as pg

                self._conn = pg.connect(_libpq_uri(self._url), autocommit=True)
                with self._conn.cursor() as cursor:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            else:
                import adbc_driver_sqlite.dbapi as lite

                self._conn = lite.connect(_sqlite_uri(self._url), autocommit=True)
        except Exception as exc:
            self._conn = None
            raise AdbcUnavailable(_one_line(exc, self._url), connecting=True) from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _libpq_uri(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_uri(url: URL) -> str:
    """The source engine's read-only ``file:`` URI (see ``storage.engine.make_source_engine``)."""
    database = url.database or ""
    if not database.startswith("file:"):
        raise AdbcUnavailable("not a SQLite file", connecting=True)
    query = {k: v for k, v in url.query.items() if k != "uri"}
    suffix = "&".join(f"{k}={v}" for k, v in query.items() if isinstance(v, str))
    return database + (f"?{suffix}" if suffix else "")


def _one_line(exc: BaseException, url: URL) -> str:
    """A driver error's first line, with the URL's password (if any) masked."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
