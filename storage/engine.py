"""Engine and session factories, built at start-up (never at import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import BadInputError, ConfigError

SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword", "token", "secret", "access_key", "api_key")


def redact_url(url: str | URL) -> str:
    """The URL as it may appear in logs and reports: the password, and any secret query
    parameter (``?password=...``, ``sslpassword``, tokens), replaced by ``***``."""
    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL still must not leak
        return "<unparsable database URL>"
    hidden = {k: "***" for k in parsed.query if any(s in k.lower() for s in SECRET_QUERY_KEYS)}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


def _parse(url: str | URL, what: str) -> URL:
    try:
        return make_url(url)
    except Exception as exc:
        raise ConfigError(f"{what} URL {redact_url(url)!r} cannot be parsed: {exc}") from exc


def one_line(exc: BaseException) -> str:
    """An error's first line, without SQLAlchemy's "[SQL: ...]" and "(Background on ...)" tails."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sqlite_file_exists(url: str | URL) -> bool:
    """False only for a SQLite URL naming a file that does not exist (other URLs: True)."""
    parsed = _parse(url, "database")
    if parsed.get_backend_name() != "sqlite":
        return True
    path = _sqlite_file(parsed)
    return path is None or path.is_file()


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of a plain SQLite path URL, ``~`` expanded; None for memory and ``file:`` URIs."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    The parent folder of a SQLite file is created if missing.
    """
    parsed = _parse(url, "database")
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))  # SQLite itself would not expand "~"
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, json_serializer=write_json, json_deserializer=read_json, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def write_json(value: Any) -> str:
    """JSON columns written with orjson (a week's profiles are megabytes).

    What driftkeeper stores is plain JSON already: its ``to_dict`` methods turn NaN and
    infinities into None (PostgreSQL's JSON refuses them anyway) and numpy values into Python
    ones; keys that are not text are written as text, as the standard writer does.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def read_json(text: str | bytes) -> Any:
    """JSON columns read with orjson (profiles are large: ~5x faster than the standard parser).

    The standard parser takes over where orjson refuses what the standard writer wrote (NaN,
    Infinity). orjson would read an integer past 64 bits as a float; driftkeeper writes none
    into its JSON columns (hash keys are stored as hex text, counts stay far below).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_source_engine(url: str | URL) -> Engine:
    """An engine for reading a production source, which driftkeeper must leave as it is.

    Unlike :func:`make_engine` it sets no pragma and creates no file or folder. A SQLite
    source is opened read-only (``mode=ro``), so a missing file is an error, not a new empty
    database; a PostgreSQL source gets read-only transactions.
    """
    parsed = _parse(url, "source")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, execution_options={"postgresql_readonly": True})
    if backend != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    path = _sqlite_file(parsed)
    if path is not None:
        if not path.is_file():
            raise BadInputError(redact_url(parsed), f"the source database file {path} does not exist")
        parsed = parsed.set(database=f"file:{quote(str(path.resolve()))}")
    if (parsed.database or "").startswith("file:"):
        parsed = parsed.update_query_dict({"mode": "ro", "uri": "true"})
    return create_engine(parsed, connect_args={"timeout": 30})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps index pages hot during bulk loads
    cursor.execute("PRAGMA wal_autocheckpoint=20000")  # checkpoint every ~80 MB of WAL, not every 4 MB
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
