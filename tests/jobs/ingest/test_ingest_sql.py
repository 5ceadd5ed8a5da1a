from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from drift.errors import BadInputError
from jobs.config import SqlSource
from jobs.ingest import sources
from jobs.ingest.run import Ingestor, ingest
from storage import bulk, repository
from storage.engine import make_source_engine
from storage.models import PredictionLog, QuarantinedRow
from tests.jobs.logdata import make_rows, settings_for, write_sqlite_source


@pytest.fixture
def source_db(tmp_path):
    return tmp_path / "production.db"


def _settings(database, source_db, **extra):
    predictions = {
        "kind": "sql",
        "url": f"sqlite:///{source_db}",
        "table": "prediction_log",
        "columns": {"timestamp": "logged_at"},
    }
    settings = settings_for(database.url, predictions, **extra)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    return settings


def _ids(database):
    with database.session_factory() as s:
        return s.scalars(select(PredictionLog.prediction_id).order_by(PredictionLog.prediction_id)).all()


def test_incremental_reads_take_only_new_rows(database, source_db):
    settings = _settings(database, source_db)
    write_sqlite_source(source_db, make_rows(20))
    assert ingest(database.session_factory, settings)[0].inserted == 20
    write_sqlite_source(source_db, make_rows(10, seed=1, start_index=20))
    again = ingest(database.session_factory, settings)[0]
    assert (again.rows_read, again.inserted) == (10, 10)
    assert ingest(database.session_factory, settings)[0].rows_read == 0
    assert _ids(database) == [f"p{k:05d}" for k in range(30)]


def test_rows_sharing_a_timestamp_across_a_batch_boundary_are_all_taken(database, source_db):
    settings = _settings(database, source_db)
    rows = make_rows(20)
    for row in rows:
        row["timestamp"] = "2026-11-02T10:00:00+00:00"  # one timestamp; the id breaks ties
    write_sqlite_source(source_db, rows)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.batches) == (20, 3)


def test_a_crash_mid_batch_then_a_rerun_gives_each_row_once(database, source_db):
    settings = _settings(database, source_db)
    write_sqlite_source(source_db, make_rows(30))

    def crash(stream, batch):
        if batch == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        Ingestor(database.session_factory, settings, settings.models[0], before_commit=crash).run()
    assert len(_ids(database)) == 7
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.duplicates) == (23, 0)
    assert _ids(database) == [f"p{k:05d}" for k in range(30)]


def test_rows_without_timestamp_are_quarantined_once(database, source_db):
    settings = _settings(database, source_db)
    rows = make_rows(10)
    rows[4]["timestamp"] = None
    write_sqlite_source(source_db, rows)
    first = ingest(database.session_factory, settings)[0]
    second = ingest(database.session_factory, settings)[0]
    assert (first.inserted, first.quarantined, second.quarantined) == (9, 1, 0)
    with database.session_factory() as s:
        q = s.scalars(select(QuarantinedRow)).one()
    assert (q.position, q.field) == ("id=5", "logged_at")


def test_a_query_source_with_a_filter(database, source_db):
    settings = settings_for(
        database.url,
        {
            "kind": "sql",
            "url": f"sqlite:///{source_db}",
            "query": "SELECT * FROM prediction_log WHERE device = 'low'",
            "columns": {"timestamp": "logged_at"},
        },
    )
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    rows = make_rows(40)
    write_sqlite_source(source_db, rows)
    ingest(database.session_factory, settings)
    assert len(_ids(database)) == sum(r["device"] == "low" for r in rows)


def test_retention_prunes_old_unlabelled_rows_and_keeps_labelled_ones(database, source_db):
    settings = _settings(database, source_db)
    write_sqlite_source(source_db, make_rows(10))  # one row a minute from 2026-11-02 00:00
    ingest(database.session_factory, settings)
    with database.session_factory.begin() as s:
        model = repository.get_model(s, "pets")
        conn = s.connection()
        import pandas as pd

        bulk.upsert_labels(conn, model.id, ["p00001"], ["dog"], pd.DatetimeIndex([datetime(2026, 11, 3, tzinfo=UTC)]))
        removed = bulk.prune_predictions(conn, model.id, datetime(2026, 11, 2, 0, 5, tzinfo=UTC))
    assert removed == 4  # minutes 0..4, less the labelled p00001
    assert _ids(database)[:2] == ["p00001", "p00005"]


def test_source_password_never_appears_in_descriptions():
    from jobs.config import SqlSource
    from jobs.ingest.sources import SqlReader
    from storage.engine import make_engine, redact_url

    url = "postgresql+psycopg://reader:s3cret@db.internal/prod"
    source = SqlSource(kind="sql", url=url, table="public.prediction_log")
    reader = SqlReader(source, make_engine(url), "logged_at")
    assert "s3cret" not in reader.describe() and "***" in reader.describe()
    assert "s3cret" not in redact_url(url)
    assert "s3cret" not in repr(source)


def test_secret_query_parameters_are_hidden():
    from storage.engine import redact_url

    shown = redact_url("postgresql+psycopg://reader@db/prod?password=s3cret&sslpassword=k3y&sslmode=require")
    assert "s3cret" not in shown and "k3y" not in shown and "sslmode=require" in shown


def test_a_new_row_without_timestamp_is_quarantined_even_with_a_lower_id(database, source_db):
    settings = _settings(database, source_db)
    rows = make_rows(6)
    rows[4]["timestamp"] = None  # id 5
    write_sqlite_source(source_db, rows)
    ingest(database.session_factory, settings)
    late = make_rows(1, start_index=1, seed=3)  # id 2 is taken: give it id 0, below the last seen
    late[0].update(id=0, prediction_id="late", timestamp=None)
    write_sqlite_source(source_db, late)
    again = ingest(database.session_factory, settings)[0]
    assert again.quarantined == 1
    with database.session_factory() as s:
        assert sorted(s.scalars(select(QuarantinedRow.position))) == ["id=0", "id=5"]


def test_the_source_database_is_left_as_it_was(database, source_db):
    """Reading a SQLite source switches none of its settings (no WAL on the app's file)."""
    settings = _settings(database, source_db)
    write_sqlite_source(source_db, make_rows(5))
    with sqlite3.connect(source_db) as conn:
        before = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert ingest(database.session_factory, settings)[0].inserted == 5
    with sqlite3.connect(source_db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == before == "delete"
    assert not source_db.with_name(source_db.name + "-wal").exists()


def test_a_missing_source_database_is_an_error_naming_it_and_nothing_is_created(database, tmp_path):
    missing = tmp_path / "nowhere" / "production.db"
    settings = _settings(database, missing)
    with pytest.raises(BadInputError, match=r"production\.db does not exist"):
        ingest(database.session_factory, settings)
    assert not missing.parent.exists()


def test_a_sqlite_source_is_opened_read_only(tmp_path, monkeypatch):
    """Even a statement that would write cannot change the app's database; ``~`` is expanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    write_sqlite_source(tmp_path / "app db.sqlite", make_rows(2))
    engine = make_source_engine("sqlite:///~/app db.sqlite")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM prediction_log")).scalar() == 2
        with pytest.raises(OperationalError, match="readonly"):
            conn.execute(text("DELETE FROM prediction_log"))
    engine.dispose()
    with sqlite3.connect(tmp_path / "app db.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM prediction_log").fetchone()[0] == 2


@pytest.fixture
def postgres_source(postgres_schema_url):
    """A 'production' table in its own PostgreSQL schema; yields (url, write rows)."""
    engine = create_engine(postgres_schema_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE prediction_log (id bigint PRIMARY KEY, prediction_id text, "
                "logged_at timestamptz, model_version integer, brightness double precision, "
                "sharpness double precision, device text, probabilities text, embedding text, "
                "predicted_label text, confidence double precision, input_uri text)"
            )
        )
    names = [
        "id", "prediction_id", "logged_at", "model_version", "brightness", "sharpness", "device",
        "probabilities", "embedding", "predicted_label", "confidence", "input_uri",
    ]  # fmt: skip
    values = ", ".join(":" + ("timestamp" if n == "logged_at" else n) for n in names)

    def write(rows):
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO prediction_log ({', '.join(names)}) VALUES ({values})"), rows)

    yield postgres_schema_url, write
    engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_source_is_read_incrementally(database, postgres_source):
    url, write = postgres_source
    settings = settings_for(
        database.url,
        {"kind": "sql", "url": url, "table": "prediction_log", "columns": {"timestamp": "logged_at"}},
    )
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    write(make_rows(12))
    first = ingest(database.session_factory, settings)[0]
    write(make_rows(5, seed=1, start_index=12))
    second = ingest(database.session_factory, settings)[0]
    assert (first.inserted, second.rows_read, second.inserted) == (12, 5, 5)
    assert _ids(database) == [f"p{k:05d}" for k in range(17)]


def test_the_watermark_key_and_source_name_follow_the_configured_url(source_db):
    """Opening the source read-only rewrites the engine's URL; the watermark key and the name
    in the quarantine stay those of the configured URL, so existing watermarks still match."""
    url = f"sqlite:///{source_db}"
    write_sqlite_source(source_db, make_rows(1))
    source = SqlSource(kind="sql", url=url, table="prediction_log")
    reader = sources.SqlReader(source, make_source_engine(url), "logged_at")
    assert reader.describe() == f"{url} prediction_log"
    assert reader.key == hashlib.sha256(f"{url}|prediction_log".encode()).hexdigest()
