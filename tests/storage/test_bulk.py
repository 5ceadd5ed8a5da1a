from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from storage import bulk, repository
from storage.codec import FLOAT32, FLOAT64, unpack_rows
from storage.models import Label, PredictionLog


def _rows(ids, uri=None):
    n = len(ids)
    probs = np.tile(np.array([[0.25, 0.75]], dtype=np.float32), (n, 1))
    return bulk.PredictionRows(
        prediction_id=np.array(ids, dtype=object),
        ts=pd.DatetimeIndex(pd.to_datetime(["2026-11-02T10:00:00+00:00"] * n, utc=True)),
        model_version=np.ones(n, dtype=np.int64),
        predicted_label=np.array(["b"] * n, dtype=object),
        confidence=np.full(n, 0.75),
        probabilities=probs,
        numeric_features=None,
        categorical_features=pd.DataFrame({"note": ["tab\there", "new\nline", "back\\slash", "ok"][:n]}),
        embedding=None,
        input_uri=np.array(uri if uri is not None else [None] * n, dtype=object),
    )


def test_bulk_insert_skips_duplicates_within_and_across_batches(database):
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        conn = s.connection()
        assert bulk.insert_predictions(conn, model_id, _rows(["a", "b", "a"])) == 2
        assert bulk.insert_predictions(conn, model_id, _rows(["b", "c"], uri=[None, "s3://x/1.png"])) == 1
    with database.session_factory() as s:
        stored = {r.prediction_id: r for r in s.scalars(select(PredictionLog))}
        assert s.scalar(select(func.count()).select_from(PredictionLog)) == 3
    assert stored["c"].input_uri == "s3://x/1.png"
    # text needing COPY escapes survives the round trip unchanged
    assert stored["b"].categorical_features == '{"note":"new\\nline"}'
    probs = unpack_rows([stored["a"].probabilities], 2, FLOAT32)
    assert probs.tolist() == [[0.25, 0.75]]


def _random_rows(n: int, seed: int) -> bulk.PredictionRows:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * 3
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    ids = [f"id-{i}-ü\"q'\\t" if i % 7 == 0 else f"id-{i}" for i in range(n)]
    uris = [None if i % 3 == 0 else f"file:///img/ñ {i}.png" for i in range(n)]
    return bulk.PredictionRows(
        prediction_id=np.array(ids, dtype=object),
        ts=pd.DatetimeIndex(pd.Timestamp("2026-11-02", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**12, n), "us")),
        model_version=rng.integers(1, 4, n),
        predicted_label=np.array(["cat", "dög", "x\ty"], dtype=object)[probs.argmax(axis=1)],
        # extreme and awkward doubles: every one must come back bit for bit
        confidence=np.concatenate([rng.random(n - 4), [1e-300, 0.1, 1 / 3, 0.9999999999999999]]),
        probabilities=probs,
        numeric_features=rng.normal(size=(n, 4)) * 10.0 ** rng.integers(-200, 200, (n, 4)),
        categorical_features=pd.DataFrame({"device": rng.choice(["a", 'b"', "ç"], n)}),
        embedding=rng.normal(size=(n, 5)).astype(np.float32),
        input_uri=np.array(uris, dtype=object),
    )


def test_stored_rows_round_trip_exactly(database):
    """Every column comes back as it went in: doubles bit for bit, text with quotes,
    backslashes, tabs and non-ASCII, and NULL where a value is missing."""
    rows = _random_rows(500, seed=3)
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        assert bulk.insert_predictions(s.connection(), model_id, rows) == 500
    with database.session_factory() as s:
        stored = list(s.scalars(select(PredictionLog).order_by(PredictionLog.id)))
    assert [r.prediction_id for r in stored] == rows.prediction_id.tolist()
    assert [r.ts for r in stored] == rows.ts.to_pydatetime().tolist()
    assert [r.model_version for r in stored] == rows.model_version.tolist()
    assert [r.predicted_label for r in stored] == rows.predicted_label.tolist()
    assert [r.confidence for r in stored] == rows.confidence.tolist()
    assert [r.input_uri for r in stored] == rows.input_uri.tolist()
    assert [r.mask_uri for r in stored] == [None] * 500
    assert np.array_equal(unpack_rows([r.probabilities for r in stored], 3, FLOAT32), rows.probabilities)
    assert np.array_equal(unpack_rows([r.numeric_features for r in stored], 4, FLOAT64), rows.numeric_features)
    assert np.array_equal(unpack_rows([r.embedding for r in stored], 5, FLOAT32), rows.embedding)
    assert [r.categorical_features for r in stored] == bulk.pack_categories(rows.categorical_features)


def test_a_batch_without_optional_columns_stores_nulls(database):
    rows = _random_rows(20, seed=4)
    bare = bulk.PredictionRows(
        **{
            **{f: getattr(rows, f) for f in ("prediction_id", "ts", "model_version", "predicted_label", "confidence")},
            "probabilities": rows.probabilities,
            "numeric_features": None,
            "categorical_features": None,
            "embedding": None,
            "input_uri": None,
        }
    )
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        assert bulk.insert_predictions(s.connection(), model_id, bare) == 20
        assert bulk.insert_predictions(s.connection(), model_id, bare) == 0
    with database.session_factory() as s:
        stored = list(s.scalars(select(PredictionLog)))
    assert {(r.numeric_features, r.categorical_features, r.embedding, r.input_uri) for r in stored} == {
        (None, None, None, None)
    }


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the COPY race is PostgreSQL's
def test_postgres_copy_racing_another_writer_falls_back_to_the_staging_table(database):
    """Another transaction stores one of the batch's ids after the batch looked for known
    ids: the direct COPY hits the unique constraint, and the batch goes through the staging
    table, storing the other rows once."""
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
    rows = _random_rows(5, seed=5)
    ids = rows.prediction_id.tolist()
    other = database.engine.connect()
    other_tx = other.begin()
    bulk.insert_predictions(other, model_id, _rows([ids[1]]))  # uncommitted: invisible to the batch's lookup
    outcome: dict[str, object] = {}

    def write() -> None:
        try:
            with database.session_factory.begin() as s:
                outcome["stored"] = bulk.insert_predictions(s.connection(), model_id, rows)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    with database.engine.connect() as watcher:  # wait until the COPY blocks on the other writer's row
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY%'")
            ).scalar()
            if waiting:
                break
            watcher.rollback()
            time.sleep(0.05)
        assert waiting, "the batch's COPY never waited on the other writer"
    other_tx.commit()
    other.close()
    writer.join(timeout=30)
    assert outcome == {"stored": 4}
    with database.session_factory() as s:
        stored = sorted(s.scalars(select(PredictionLog.prediction_id)))
    assert stored == sorted(ids)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the statement size limit is SQLite's
def test_a_batch_too_large_for_one_sqlite_statement_is_split(database, monkeypatch):
    """Rows whose packed blobs would pass the per-value limit go as several statements of
    one transaction; every row is stored once and duplicates across the pieces are skipped."""
    monkeypatch.setattr(bulk, "SQLITE_VALUE_BYTES", 1_000)  # ~7 rows a statement
    rows = _random_rows(60, seed=6)
    encoded = bulk.encode_predictions("sqlite", 1, rows)
    assert len(encoded.sqlite_batches) > 5
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        assert bulk.insert_predictions(s.connection(), model_id, rows) == 60
        assert bulk.insert_predictions(s.connection(), model_id, rows) == 0
    with database.session_factory() as s:
        stored = list(s.scalars(select(PredictionLog).order_by(PredictionLog.id)))
    assert [r.prediction_id for r in stored] == rows.prediction_id.tolist()
    assert np.array_equal(unpack_rows([r.numeric_features for r in stored], 4, FLOAT64), rows.numeric_features)
    assert np.array_equal(unpack_rows([r.embedding for r in stored], 5, FLOAT32), rows.embedding)


def test_labels_upsert_keeps_the_newest_and_counts_what_changed(database):
    def at(*hours):
        return pd.DatetimeIndex([pd.Timestamp("2026-11-02", tz="UTC") + pd.Timedelta(hours=h) for h in hours])

    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        conn = s.connection()
        # within a batch: the newest label of a prediction wins, the later row on a tie
        stored = bulk.upsert_labels(
            conn, model_id, ["a", "a", "b", "b", "c"], ["x", "y", "x", "z", "x"], at(2, 1, 3, 3, 1)
        )
        assert stored == 3
        # across batches: an older label changes nothing, a newer or equally new one replaces
        stored = bulk.upsert_labels(conn, model_id, ["a", "b", "c", "d"], ["old", "same", "new", "x"], at(0, 3, 5, 1))
        assert stored == 3
    with database.session_factory() as s:
        got = {r.prediction_id: (r.label, r.labelled_at.hour) for r in s.scalars(select(Label))}
    assert got == {"a": ("x", 2), "b": ("same", 3), "c": ("new", 5), "d": ("x", 1)}


def test_labels_equal_at_the_stored_microsecond_are_a_tie_won_by_the_later_row(database):
    base = pd.Timestamp("2026-11-02T10:00:00.000001", tz="UTC")
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "m", "classification").id
        at = pd.DatetimeIndex([base + pd.Timedelta(nanoseconds=900), base + pd.Timedelta(nanoseconds=100)])
        assert bulk.upsert_labels(s.connection(), model_id, ["a", "a"], ["first", "second"], at) == 1
    with database.session_factory() as s:
        assert s.scalar(select(Label.label)) == "second"
