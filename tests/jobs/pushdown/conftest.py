"""The world of the lake tests, plus the same rows in a PostgreSQL source table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.jobs.lake.conftest import World, week_rows, world  # noqa: F401  (the fixture)

TABLE = "predictions_log"


def write_table(url: str, rows: list[dict[str, Any]]) -> None:
    """``rows`` as a PostgreSQL table: one column per probability, the embedding as float8[]."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""CREATE TABLE {TABLE} (id bigint PRIMARY KEY, prediction_id text, ts timestamptz,
                model_version integer, brightness float8, sharpness float8, device text,
                p_cat float8, p_dog float8, p_other float8, embedding float8[], predicted_label text,
                confidence float8, input_uri text)"""
            )
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN") as copy:
            for i, r in enumerate(rows):
                p = json.loads(r["probabilities"])
                copy.write_row(
                    (
                        i + 1,
                        r["prediction_id"],
                        r["timestamp"],
                        r["model_version"],
                        r["brightness"],
                        r["sharpness"],
                        r["device"],
                        *p,
                        json.loads(r["embedding"]),
                        r["predicted_label"],
                        r["confidence"],
                        r["input_uri"],
                    )
                )
        conn.execute(text(f"CREATE INDEX ON {TABLE} (ts)"))
    engine.dispose()


@pytest.fixture
def source_url(postgres_schema_url: str) -> str:
    write_table(postgres_schema_url, week_rows(brightness_shift=0.05))
    return postgres_schema_url


def pushdown_source(url: str) -> dict[str, Any]:
    return {"kind": "sql", "url": url, "table": TABLE, "compute": "pushdown", "columns": {"timestamp": "ts"}}
