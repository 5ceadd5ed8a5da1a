"""Engine and session factories, built at start-up (never at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    The parent folder of a SQLite file is created if missing.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"database URL {redact_url(url)!r} cannot be parsed: {exc}") from exc
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_source_engine(url: str | URL) -> Engine:
    """An engine for reading a production source, which driftkeeper must leave as it is.

    Unlike :func:`make_engine` it sets no pragma (no WAL switch on somebody else's SQLite
    file) and creates no file or folder: a SQLite source that does not exist is an error,
    not a new empty database.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"source URL {redact_url(url)!r} cannot be parsed: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk and not Path(database).expanduser().is_file():
        raise BadInputError(redact_url(parsed), f"the source database file {database} does not exist")
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
