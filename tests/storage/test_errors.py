"""Database errors become one-line StorageErrors naming the database, its password masked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from drift.errors import StorageError
from storage import job_runs
from storage.engine import make_engine, make_session_factory
from storage.errors import database_label, storage_error, translate

PASSWORD = "s3cret-Pw"
UNREACHABLE_POSTGRES = f"postgresql+psycopg://driftkeeper:{PASSWORD}@127.0.0.1:1/driftkeeper?connect_timeout=3"


def _unopenable_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'no-such-folder' / 'driftkeeper.db'}"  # create_engine makes no folder


@pytest.mark.parametrize(
    ("make_url", "shown"),
    [
        pytest.param(lambda _: UNREACHABLE_POSTGRES, "driftkeeper:***@127.0.0.1:1/driftkeeper", id="postgresql"),
        pytest.param(_unopenable_sqlite, "no-such-folder/driftkeeper.db", id="sqlite"),
    ],
)
def test_an_unreachable_database_is_a_one_line_storage_error(tmp_path: Path, make_url, shown: str):
    engine = create_engine(make_url(tmp_path))
    with pytest.raises(StorageError) as caught, translate(engine), engine.connect() as conn:
        conn.execute(text("select 1"))
    message = str(caught.value)
    assert message.startswith("database ") and shown in message
    assert PASSWORD not in message and "\n" not in message and "[SQL" not in message
    assert isinstance(caught.value.__cause__, OperationalError)
    engine.dispose()


def test_a_storage_function_names_the_database_of_its_session():
    engine = make_engine(UNREACHABLE_POSTGRES)
    try:
        with (
            pytest.raises(StorageError, match=r"driftkeeper:\*\*\*@127\.0\.0\.1:1") as caught,
            make_session_factory(engine)() as session,
        ):
            job_runs.last_started(session, "ingest", None)
        assert PASSWORD not in str(caught.value)
    finally:
        engine.dispose()


def test_a_password_the_driver_repeats_is_masked_too():
    echoed = OperationalError("select 1", {}, Exception(f'password authentication failed: "{PASSWORD}"\nDETAIL: x'))
    error = storage_error(UNREACHABLE_POSTGRES, echoed)
    assert PASSWORD not in str(error) and str(error).endswith('password authentication failed: "***"')


@pytest.mark.parametrize(
    ("where", "label"),
    [
        pytest.param(f"postgresql://dk:{PASSWORD}@db/dk", "postgresql://dk:***@db/dk", id="password"),
        pytest.param(  # storage.engine.redact_url renders the query's *** URL-encoded
            f"postgresql://dk@db/dk?sslpassword={PASSWORD}", "postgresql://dk@db/dk?sslpassword=%2A%2A%2A", id="query"
        ),
        pytest.param("sqlite:///var/dk.db", "sqlite:///var/dk.db", id="sqlite-path"),
        pytest.param(None, "(unknown database)", id="unknown"),
    ],
)
def test_the_label_hides_secrets(where: str | None, label: str):
    assert database_label(where) == label


def test_other_errors_pass_unchanged():
    with pytest.raises(KeyError), translate(UNREACHABLE_POSTGRES):
        raise KeyError("not a database error")
    with pytest.raises(StorageError) as caught, translate(None):
        raise SQLAlchemyError("boom")
    assert str(caught.value) == "database (unknown database): boom"
