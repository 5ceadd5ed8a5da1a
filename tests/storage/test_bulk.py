from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from storage import bulk, repository
from storage.codec import FLOAT32, unpack_rows
from storage.models import PredictionLog


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
