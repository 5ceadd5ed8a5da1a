"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is taken from ``$DRIFTKEEPER_TEST_POSTGRES_URL`` (default: 127.0.0.1:5432, trust
auth, database ``test``). Each test gets a fresh schema, dropped afterwards. Where the
server cannot be reached, the PostgreSQL cases are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade

POSTGRES_URL = os.environ.get("DRIFTKEEPER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_unreachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


_PG_REASON: list[str | None] = []


def postgres_skip_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_postgres_unreachable())
    return _PG_REASON[0]


@dataclass(frozen=True)
class Database:
    """A migrated, empty database for one test."""

    backend: str
    url: str
    engine: Engine
    session_factory: sessionmaker[Session]


@contextmanager
def _fresh_postgres_schema(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema, dropped afterwards; skips where unreachable."""
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'driftkeeper.db'}"
        return
    with _fresh_postgres_schema("dk_test") as url:
        yield url


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for something other than driftkeeper's own database
    (a production source, say)."""
    with _fresh_postgres_schema("dk_other") as url:
        yield url


@pytest.fixture
def database(database_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    engine = make_engine(database_url)
    upgrade(engine)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    try:
        yield Database(backend=backend, url=database_url, engine=engine, session_factory=make_session_factory(engine))
    finally:
        engine.dispose()
