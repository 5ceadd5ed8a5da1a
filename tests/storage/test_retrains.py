"""What the retrain policy reads, and the retrain runs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drift.errors import NotFoundError
from storage import repository, retrains
from storage.models import DriftRun, Label, PredictionLog, RetrainRun

T0 = datetime(2026, 9, 7, tzinfo=UTC)
DAY = timedelta(days=1)


def _model(session) -> int:
    return repository.ensure_model(session, "digits", "classification").id


def _check(model_id: int, version: int, window_end: datetime, *, worthy: bool = False) -> DriftRun:
    return DriftRun(
        model_id=model_id,
        version=version,
        window_start=window_end - 7 * DAY,
        window_end=window_end,
        n_rows=10,
        drifted=worthy,
        retrain_worthy=worthy,
        engine="native",
        created_at=window_end,
    )


def test_the_latest_check_of_a_version(database):
    with database.session_factory.begin() as s:
        model_id = _model(s)
        s.add_all(
            [
                _check(model_id, 1, T0 + 7 * DAY),
                _check(model_id, 1, T0 + 14 * DAY),
                _check(model_id, 1, T0 + 14 * DAY, worthy=True),  # stored later, same window: this one
                _check(model_id, 2, T0 + 21 * DAY),  # another version
            ]
        )
    with database.session_factory() as s:
        latest = retrains.latest_check(s, model_id, 1)
        assert latest is not None and (latest.window_end, latest.retrain_worthy) == (T0 + 14 * DAY, True)
        assert retrains.latest_check(s, model_id, 3) is None


def test_the_last_retrain_start_ignores_skipped_plans(database):
    with database.session_factory.begin() as s:
        model_id = _model(s)
        assert retrains.last_retrain_start(s, model_id) is None
        for days, decision in [(1, "rejected"), (3, "promoted"), (5, "skipped")]:
            s.add(RetrainRun(model_id=model_id, started_at=T0 + days * DAY, trigger="policy", decision=decision))
    with database.session_factory() as s:
        assert retrains.last_retrain_start(s, model_id) == T0 + 3 * DAY


def test_new_labels_count_the_versions_predictions_labelled_after_a_time(database):
    with database.session_factory.begin() as s:
        model_id = _model(s)
        for i, version in enumerate([1, 1, 1, 2]):
            s.add(
                PredictionLog(
                    model_id=model_id,
                    prediction_id=f"p{i}",
                    ts=T0,
                    model_version=version,
                    predicted_label="3",
                    confidence=0.9,
                    probabilities=b"",
                )
            )
        for i, days in [(0, 1), (1, 2), (3, 2)]:  # p2 is never labelled; p3 was made by version 2
            s.add(Label(model_id=model_id, prediction_id=f"p{i}", label="3", labelled_at=T0 + days * DAY))
    with database.session_factory() as s:
        assert retrains.new_label_count(s, model_id, 1, since=None) == 2
        assert retrains.new_label_count(s, model_id, 1, since=T0 + DAY) == 1  # strictly after
        assert retrains.new_label_count(s, model_id, 2, since=None) == 1
        assert retrains.new_label_count(s, model_id, 1, since=T0 + 2 * DAY) == 0


def test_a_retrain_run_is_started_then_finished(database):
    with database.session_factory.begin() as s:
        run = retrains.start_retrain_run(
            s,
            _model(s),
            started_at=T0,
            trigger="forced",
            drift_run_id=None,
            parent_version=1,
            version=2,
            reasons=["forced"],
        )
        run_id = run.id
    with database.session_factory.begin() as s:
        retrains.finish_retrain_run(
            s,
            run_id,
            decision="rejected",
            reasons=["gain too small"],
            metrics={"n_holdout": 40},
            export={},
            error=None,
            finished_at=T0 + DAY,
        )
        with pytest.raises(NotFoundError, match=f"retrain run {run_id + 1}"):
            retrains.finish_retrain_run(
                s, run_id + 1, decision="failed", reasons=[], metrics={}, export={}, error=None, finished_at=T0
            )
    with database.session_factory() as s:
        row = s.get(RetrainRun, run_id)
        assert row is not None
        assert (row.decision, row.reasons, row.metrics, row.version, row.parent_version) == (
            "rejected",
            ["forced", "gain too small"],
            {"n_holdout": 40},
            2,
            1,
        )
        assert (row.started_at, row.finished_at, row.trigger) == (T0, T0 + DAY, "forced")
