"""The world's model reading the PostgreSQL source table, and what a pass over its rows needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from jobs.check.findings import findings_inputs
from jobs.check.frames import layout
from jobs.check.reference import load_reference
from jobs.check.windows import DAY, FindingsInputs
from jobs.config import Settings, SqlSource
from jobs.pushdown.engine import PushdownDays
from storage import repository
from storage.windows import iter_rows
from tests.jobs.lake.conftest import WEEK_END, WEEK_START, World
from tests.jobs.pushdown.conftest import pushdown_source


def pushdown(world: World, url: str) -> Settings:
    settings = world.with_source(pushdown_source(url))
    data = settings.model_dump(mode="python")
    data["database"] = {"url": world.files.database.url.get_secret_value()}
    data["models"][0]["predictions"]["url"] = url
    data["models"][0]["probabilities"] = {"columns": ["p_cat", "p_dog", "p_other"]}
    return Settings(**data)


@dataclass(frozen=True, kw_only=True)
class StoredDay:
    """The stored (ingested) rows of one day of the week, the fields the findings read."""

    start: datetime
    prediction_id: np.ndarray
    confidence: np.ndarray
    predicted_label: np.ndarray
    input_uri: np.ndarray
    embedding: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Pass:
    """A push-down engine over the source table, the week's days, and the local inputs."""

    engine: PushdownDays
    reference: Any
    inputs: FindingsInputs
    days: list[StoredDay]

    @property
    def segments(self) -> list[tuple[datetime, datetime]]:
        return [(d.start, d.start + DAY) for d in self.days]


def stored_days(world: World) -> list[StoredDay]:
    model = world.files.models[0]
    out = []
    with world.database.session_factory() as s:
        model_row = repository.get_model(s, "pets")
        start = WEEK_START
        while start < WEEK_END:
            parts = list(iter_rows(s, model_row.id, layout(model), version=1, start=start, end=start + DAY))
            assert all(p.embedding is not None for p in parts)
            out.append(
                StoredDay(
                    start=start,
                    prediction_id=np.concatenate([p.prediction_id for p in parts]).astype(object),
                    confidence=np.concatenate([p.confidence for p in parts]).astype(np.float64),
                    predicted_label=np.concatenate([p.predicted_label for p in parts]).astype(object),
                    input_uri=np.concatenate([p.input_uri for p in parts]).astype(object),
                    embedding=np.concatenate([p.embedding for p in parts if p.embedding is not None]),
                )
            )
            start += DAY
    return out


def pushdown_pass(world: World, url: str) -> Pass:
    settings = pushdown(world, url)
    model = settings.models[0]
    assert isinstance(model.predictions, SqlSource)
    with world.database.session_factory() as s:
        model_row = repository.get_model(s, "pets")
        reference, reference_row = load_reference(s, model_row, 1)
        inputs, _ = findings_inputs(s, model, model_row, 1, reference, reference_row)
        known = repository.known_versions(s, model_row.id)
    engine = PushdownDays(model, model.predictions, known, settings.ingest.probability_tolerance)
    return Pass(engine=engine, reference=reference, inputs=inputs, days=stored_days(world))
