"""The collector's labels: hostile names come out as valid, exactly unescaped values; cardinality is capped."""

from __future__ import annotations

import contextlib
import doctest
import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest
from sqlalchemy import create_engine

from drift.errors import StorageError
from jobs.config import Settings
from jobs.metrics import labels
from jobs.metrics.collector import METRIC_NAMES, build_registry
from storage import repository
from storage.engine import make_session_factory
from storage.metrics import read_only_session
from storage.models import DriftColumnResult, DriftRun, Model, QuarantinedRow
from tests.jobs.metrics.scrape import parse, value

END = datetime(2026, 11, 9, tzinfo=UTC)
HOSTILE = [
    'quote"d',
    "back\\slash",
    "new\nline",
    "{brace}",
    '"}\n# TYPE x counter\nx{a="1"} 1',  # an injection attempt
    "trailing\\",
    "ünïcödé ☃",
]


def _settings(url: str, **metrics) -> Settings:
    return Settings(database={"url": url}, metrics=metrics, models=[{"name": "pets", "class_labels": ["cat", "dog"]}])


def _store_run(session_factory, columns: list[tuple[str, bool]], *, version: int = 1, end: datetime = END) -> None:
    with session_factory.begin() as s:
        model = repository.ensure_model(s, "pets", "classification")
        repository.register_version(s, model, version)
        run = DriftRun(
            model_id=model.id,
            version=version,
            window_start=end - timedelta(days=7),
            window_end=end,
            n_rows=100,
            drifted=any(d for _, d in columns),
            outputs_drifted=False,
            embedding_drifted=None,
            retrain_worthy=False,
            engine="stat_test",
            created_at=end,
        )
        s.add(run)
        s.flush()
        s.add_all(
            DriftColumnResult(run_id=run.id, column=c, kind="numeric", method="ks", score=0.5 if d else 0.1, drifted=d)
            for c, d in columns
        )


def _quarantine(session_factory, reasons: list[tuple[str, int]]) -> None:
    with session_factory.begin() as s:
        model = repository.ensure_model(s, "pets", "classification")
        s.add_all(
            QuarantinedRow(
                model_id=model.id, stream="predictions", source="f", position=str(i), reason=r, raw="{}", field=None
            )
            for r, n in reasons
            for i in range(n)
        )


def _scrape(database, **metrics):
    text = generate_latest(build_registry(database.session_factory, _settings(database.url, **metrics))).decode()
    return parse(text)


def test_hostile_column_names_and_reasons_are_valid_label_values_read_back_exactly(database):
    _store_run(database.session_factory, [(name, i % 2 == 0) for i, name in enumerate(HOSTILE)])
    _quarantine(database.session_factory, [('unknown label "}{\\\n"', 2)])
    samples = _scrape(database)
    drifted = {labels["column"]: v for labels, v in samples["driftkeeper_column_drifted"]}
    assert drifted == {name: float(i % 2 == 0) for i, name in enumerate(HOSTILE)}
    assert "x" not in samples  # nothing injected
    assert {tuple(lb.values()) for lb, _ in samples["driftkeeper_quarantined_rows"]} == {
        ("pets", 'unknown label "}{\\\n"', "predictions")
    }


def test_control_characters_other_than_tab_and_line_feed_are_replaced(database):
    _store_run(database.session_factory, [("cr\r", True), ("esc\x1b[31m", False), ("tab\tok", False)])
    samples = _scrape(database)
    assert value(samples, "driftkeeper_collect_success") == 1
    assert {lb["column"] for lb, _ in samples["driftkeeper_column_drifted"]} == {"cr\ufffd", "esc\ufffd[31m", "tab\tok"}


def test_text_no_database_stores_is_replaced_too():
    # neither backend stores these; a label value must be UTF-8 all the same (a lone surrogate would fail the scrape)
    assert labels.label_value("lone\udcffsurrogate nul\x00") == "lone\ufffdsurrogate nul\ufffd"


def test_the_column_label_is_capped_per_version_drifted_columns_first(database):
    columns = [(f"f{i:02d}", i % 11 == 0) for i in range(80)]  # 8 drifted
    _store_run(database.session_factory, columns)
    samples = _scrape(database, max_columns=10)
    shown = {lb["column"]: v for lb, v in samples["driftkeeper_column_drifted"]}
    assert len(shown) == 10 and len(samples["driftkeeper_drift_score"]) == 10
    assert {c for c, d in columns if d} <= set(shown)
    assert value(samples, "driftkeeper_drift_columns_omitted", model="pets", version="1") == 70


def test_only_the_latest_window_is_published_at_most_three_versions(database):
    _store_run(database.session_factory, [("old", True)], end=END - timedelta(days=7))
    for version in (1, 2, 3, 4):
        _store_run(database.session_factory, [("a", version == 4)], version=version)
    samples = _scrape(database)
    versions = sorted(lb["version"] for lb, _ in samples["driftkeeper_verdict_level"])
    assert len(versions) == 3 and {lb["column"] for lb, _ in samples["driftkeeper_column_drifted"]} == {"a"}


def test_quarantine_reasons_are_folded_and_capped_with_the_rest_as_other(database):
    reasons = [(f"odd value {i}.5 in row {i * 7}", 1) for i in range(40)]  # one reason once folded
    reasons += [(f"reason {chr(65 + i)}", 30 - i) for i in range(12)]  # twelve distinct reasons
    _quarantine(database.session_factory, reasons)
    samples = _scrape(database, max_reasons=5)
    got = {lb["reason"]: v for lb, v in samples["driftkeeper_quarantined_rows"]}
    total = sum(n for _, n in reasons)
    assert got == {
        "odd value # in row #": 40,
        "reason A": 30,
        "reason B": 29,
        "reason C": 28,
        "reason D": 27,
        "other": total - (40 + 30 + 29 + 28 + 27),
    }


def test_an_unreadable_database_answers_collect_success_0(tmp_path, caplog):
    missing = f"sqlite:///file:{tmp_path / 'missing' / 'x.db'}?mode=ro&uri=true"
    factory = make_session_factory(create_engine(missing))
    caplog.set_level(logging.ERROR)
    samples = parse(generate_latest(build_registry(factory, _settings("sqlite://"))).decode())
    assert value(samples, "driftkeeper_collect_success") == 0
    assert "driftkeeper_prediction_rows" not in samples
    assert any("could not read" in r.getMessage() for r in caplog.records)


def test_every_metric_is_named_with_the_prefix_and_a_unit_where_it_has_one():
    assert all(n.startswith("driftkeeper_") for n in METRIC_NAMES)
    timed = [n for n in METRIC_NAMES if "timestamp" in n or "duration" in n]
    assert timed and all(n.endswith("_seconds") for n in timed)


def test_the_label_docstring_examples_run():
    result = doctest.testmod(labels)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("value_", ["x" * 500, "é" * 500])
def test_long_values_are_capped(value_: str):
    assert len(labels.label_value(value_)) == labels.MAX_LABEL_LENGTH


def test_the_scrape_session_writes_nothing(database):
    refused = pytest.raises(StorageError) if database.backend == "postgresql" else contextlib.nullcontext()
    with refused, read_only_session(database.session_factory) as s:  # PostgreSQL: a read-only transaction
        s.add(Model(name="written", task="classification"))
        s.flush()
    with database.session_factory() as s:
        assert repository.list_models(s) == []  # SQLite: rolled back
