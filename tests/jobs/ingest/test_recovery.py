"""A config mistake never quarantines everything silently, and what was quarantined comes back.

The scenario of the issue: ingest before the version is registered, or with a mistyped
feature name; then fix the config and recover every row (preflight, circuit breaker, replay),
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from drift.errors import ConfigError, LeaseHeldError, SourceRejectedError
from jobs.config import Settings
from jobs.ingest.replay import NOT_AN_OBJECT, replay
from jobs.ingest.run import ingest
from jobs.runner.execute import run_job
from jobs.runner.exit_codes import EXIT_REJECTED
from storage import repository
from storage.leases import held
from storage.models import IngestedFile, IngestWatermark, PredictionLog, QuarantinedRow
from tests.jobs.logdata import make_rows, settings_for, write_jsonl, write_sqlite_source


def _count(database, entity=PredictionLog):
    with database.session_factory() as s:
        return s.scalar(select(func.count()).select_from(entity))


def _register(database, version=1):
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), version)


def _changed(settings: Settings, **model_changes) -> Settings:
    """The same settings with the model's config edited (the user's fix)."""
    data = settings.model_dump()
    data["models"][0].update(model_changes)
    return Settings(**data)


def _sql(database, source_db, **ingest_settings):
    predictions = {
        "kind": "sql",
        "url": f"sqlite:///{source_db}",
        "table": "prediction_log",
        "columns": {"timestamp": "logged_at"},
    }
    return settings_for(database.url, predictions, batch_size=50, **ingest_settings)


def _files(database, drop, **ingest_settings):
    return settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=50, **ingest_settings)


# ---------------------------------------------------------------- preflight


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "sql"])
def test_a_mistyped_feature_stops_before_the_first_row(database, tmp_path, kind):
    rows = make_rows(30)
    if kind == "sql":
        write_sqlite_source(tmp_path / "prod.db", rows)
        settings = _sql(database, tmp_path / "prod.db")
    else:
        drop = tmp_path / "drop"
        drop.mkdir()
        frame = pd.DataFrame(rows)
        {
            "jsonl": lambda: write_jsonl(drop / "a.jsonl", rows),
            "csv": lambda: frame.to_csv(drop / "a.csv", index=False),
            "parquet": lambda: frame.to_parquet(drop / "a.parquet"),
        }[kind]()
        settings = _files(database, drop)
    _register(database)
    features = [{"name": "bright", "type": "numeric"}, {"name": "sharpness"}, {"name": "device", "type": "categorical"}]
    typo = _changed(settings, features=features)
    with pytest.raises(ConfigError) as caught:
        ingest(database.session_factory, typo)
    message = str(caught.value)
    assert "models[pets].features[bright]: column 'bright' is not in" in message
    assert "did you mean 'brightness'?" in message
    assert "sharpness" in message  # the source's real columns are listed
    # nothing was read: no row, no reject, no watermark, no file record
    assert _count(database) == _count(database, QuarantinedRow) == 0
    assert _count(database, IngestWatermark) == _count(database, IngestedFile) == 0
    # the fix: every row comes in
    assert ingest(database.session_factory, settings)[0].inserted == 30


def test_a_wrong_embedding_size_and_a_mapped_column_are_named(database, tmp_path):
    drop = tmp_path / "drop"
    write_jsonl(drop / "a.jsonl", make_rows(30))
    settings = _files(database, drop)
    _register(database)
    wrong = _changed(
        settings,
        embedding={"column": "embedding", "size": 32},
        predictions={"kind": "files", "path": str(drop), "columns": {"timestamp": "logged_at"}},
    )
    with pytest.raises(ConfigError) as caught:
        ingest(database.session_factory, wrong)
    message = str(caught.value)
    assert "models[pets].embedding.size: size 32, but the first rows of" in message
    assert "hold 4 values in column 'embedding'" in message
    assert "models[pets].predictions.columns.timestamp: column 'logged_at' is not in" in message
    assert "did you mean 'timestamp'?" in message
    assert _count(database, QuarantinedRow) == 0


def test_ingest_check_runs_only_the_preflight(database, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from jobs.cli.commands import app

    drop = tmp_path / "drop"
    write_jsonl(drop / "a.jsonl", make_rows(30))
    config = tmp_path / "driftkeeper.yaml"
    settings = _files(database, drop)
    data = settings.model_dump(mode="json")
    data["database"]["url"] = database.url
    data["models"][0]["features"][0]["name"] = "brightnes"
    import yaml

    config.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("DRIFTKEEPER_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["-c", str(config), "ingest", "--check"])
    assert result.exit_code == 1, result.output
    assert "did you mean 'brightness'?" in result.output
    data["models"][0]["features"][0]["name"] = "brightness"
    config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["-c", str(config), "ingest", "--check", "--json"])
    assert result.exit_code == 0, result.output
    assert '"problems": []' in result.output
    assert _count(database) == 0  # a check reads no row into the logs


# ---------------------------------------------------------------- circuit breaker


@pytest.mark.parametrize("kind", ["files", "sql"])
def test_an_unregistered_version_trips_the_breaker_and_a_rerun_after_the_fix_takes_everything(database, tmp_path, kind):
    rows = make_rows(120, version=3)
    if kind == "sql":
        write_sqlite_source(tmp_path / "prod.db", rows)
        settings = _sql(database, tmp_path / "prod.db")
    else:
        write_jsonl(tmp_path / "drop" / "a.jsonl", rows)
        settings = _files(database, tmp_path / "drop")
    _register(database, 1)  # version 3 is not registered yet
    outcome = run_job("ingest", database.session_factory, settings)
    assert outcome.exit_code == EXIT_REJECTED
    assert outcome.error is not None
    assert "source rejected: field 'model_version': unknown model version 3 (known: 1), 50 of 50 rows" in outcome.error
    assert _count(database) == _count(database, QuarantinedRow) == 0  # the batch rolled back
    with database.session_factory() as s:
        marks = s.scalars(select(IngestWatermark)).all()
        assert all(m.last_ts is None for m in marks)  # the watermark stays before the batch
    with pytest.raises(SourceRejectedError):  # a rerun before the fix stops the same way
        ingest(database.session_factory, settings)
    _register(database, 3)
    assert ingest(database.session_factory, settings)[0].inserted == 120
    assert _count(database) == 120


def test_a_minority_of_bad_rows_is_quarantined_not_stopped(database, tmp_path):
    rows = make_rows(100)
    for row in rows[::10]:
        row["probabilities"] = "[0.5, 0.5, 0.5]"
    write_jsonl(tmp_path / "drop" / "a.jsonl", rows)
    settings = _files(database, tmp_path / "drop")
    _register(database)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (90, 10)


# ---------------------------------------------------------------- replay


def _quarantine_everything(database, tmp_path, kind):
    """The situation of the issue: rows quarantined (breaker off) for an unregistered version."""
    rows = make_rows(120, version=3)
    if kind == "sql":
        write_sqlite_source(tmp_path / "prod.db", rows)
        settings = _sql(database, tmp_path / "prod.db", max_reject_share=1)
    else:
        drop = tmp_path / "drop"
        drop.mkdir()
        frame = pd.DataFrame(rows).drop(columns=["id"])
        if kind == "parquet":  # arrays as Parquet lists, not JSON text
            frame["probabilities"] = frame["probabilities"].map(lambda t: [float(v) for v in t[1:-1].split(",")])
            frame["embedding"] = frame["embedding"].map(lambda t: [float(v) for v in t[1:-1].split(",")])
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
            pq.write_table(pa.Table.from_pandas(frame), drop / "a.parquet")
        else:
            frame.to_csv(drop / "a.csv", index=False)
        settings = _files(database, drop, max_reject_share=1)
    _register(database, 1)
    assert ingest(database.session_factory, settings)[0].quarantined == 120
    return settings, rows


@pytest.mark.parametrize("kind", ["sql", "csv", "parquet"])
def test_typo_fix_replay_recovers_every_row_once(database, tmp_path, kind):
    settings, rows = _quarantine_everything(database, tmp_path, kind)
    _register(database, 3)  # the fix
    assert ingest(database.session_factory, settings)[0].inserted == 0  # the watermark passed them: replay
    dry = replay(database.session_factory, settings, "pets", dry_run=True, streams=("predictions",))[0]
    assert (dry.examined, dry.accepted, dry.still_rejected) == (120, 120, 0)
    assert _count(database) == 0 and _count(database, QuarantinedRow) == 120  # a dry run changes nothing
    done = replay(database.session_factory, settings, "pets", streams=("predictions",))[0]
    assert (done.accepted, done.stored, done.still_rejected) == (120, 120, 0)
    assert _count(database) == 120 and _count(database, QuarantinedRow) == 0
    with database.session_factory() as s:
        stored = {p.prediction_id: p for p in s.scalars(select(PredictionLog))}
    first = rows[0]
    assert stored[first["prediction_id"]].ts == pd.Timestamp(first["timestamp"]).to_pydatetime()
    assert stored[first["prediction_id"]].predicted_label == first["predicted_label"]
    again = replay(database.session_factory, settings, "pets", streams=("predictions",))[0]
    assert (again.examined, again.accepted) == (0, 0)  # idempotent
    assert _count(database) == 120


def test_replay_keeps_what_is_still_wrong_with_its_new_reason(database, tmp_path):
    rows = make_rows(40, version=3)
    for row in rows[:5]:
        row["probabilities"] = "[0.9, 0.9, 0.9]"
    write_jsonl(tmp_path / "drop" / "a.jsonl", rows)
    with (tmp_path / "drop" / "a.jsonl").open("a") as handle:
        handle.write("{not json\n")
    settings = _files(database, tmp_path / "drop", max_reject_share=1)
    _register(database, 1)
    assert ingest(database.session_factory, settings)[0].quarantined == 41
    _register(database, 3)
    only = replay(database.session_factory, settings, "pets", reason="UNKNOWN MODEL", streams=("predictions",))[0]
    assert (only.examined, only.accepted, only.still_rejected) == (40, 35, 5)  # the bad JSON line is not examined
    assert only.reasons == {"probabilities sum to 2.7000, not 1 (±0.01)": 5}
    with database.session_factory() as s:
        left = s.scalars(select(QuarantinedRow).order_by(QuarantinedRow.id)).all()
    assert sorted(q.reason for q in left)[-5:] == ["probabilities sum to 2.7000, not 1 (±0.01)"] * 5
    assert len(left) == 6
    everything = replay(database.session_factory, settings, "pets", streams=("predictions",))[0]
    assert (everything.examined, everything.accepted) == (6, 0)
    assert everything.reasons[NOT_AN_OBJECT] == 1
    assert _count(database) == 35


def test_replay_waits_for_no_one_it_refuses_beside_a_running_ingest(database, tmp_path):
    settings, _ = _quarantine_everything(database, tmp_path, "csv")
    _register(database, 3)
    from datetime import timedelta

    lease = held(database.session_factory, "ingest:pets:predictions", timedelta(minutes=5), holder="other-host:1")
    with lease, pytest.raises(LeaseHeldError):
        replay(database.session_factory, settings, "pets", streams=("predictions",))
    assert _count(database, QuarantinedRow) == 120
