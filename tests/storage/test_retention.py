"""``driftkeeper db prune``'s storage side: old unlabelled rows go, per model, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage import repository
from storage.models import Label, Model, PredictionLog
from storage.retention import prune_models

T0 = datetime(2026, 9, 7, tzinfo=UTC)


def test_old_unlabelled_rows_are_pruned_and_a_new_model_is_registered(database):
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "digits", "classification").id
        for i in range(4):  # one a day: p0, p1 before the cutoff, p2, p3 after it
            s.add(
                PredictionLog(
                    model_id=model_id,
                    prediction_id=f"p{i}",
                    ts=T0 + timedelta(days=i),
                    model_version=1,
                    predicted_label="3",
                    confidence=0.9,
                    probabilities=b"",
                )
            )
        s.add(Label(model_id=model_id, prediction_id="p0", label="3", labelled_at=T0))  # labelled: kept
    pruned = prune_models(
        database.session_factory, [("digits", "classification"), ("pets", "classification")], T0 + timedelta(days=2)
    )
    assert pruned == {"digits": 1, "pets": 0}
    with database.session_factory() as s:
        assert list(s.scalars(select(PredictionLog.prediction_id).order_by(PredictionLog.prediction_id))) == [
            "p0",
            "p2",
            "p3",
        ]
        assert set(s.scalars(select(Model.name))) == {"digits", "pets"}
