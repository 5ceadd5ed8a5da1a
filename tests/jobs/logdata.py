"""Seeded prediction logs for ingestion tests: a 3-class model with a few features."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from jobs.config import Settings

CLASSES = ["cat", "dog", "other"]
START = datetime(2026, 11, 2, tzinfo=UTC)


def settings_for(
    database_url: str, predictions: dict[str, Any], labels: dict[str, Any] | None = None, **ingest: Any
) -> Settings:
    model: dict[str, Any] = {
        "name": "pets",
        "class_labels": CLASSES,
        "features": [
            {"name": "brightness", "type": "numeric"},
            {"name": "sharpness", "type": "numeric"},
            {"name": "device", "type": "categorical"},
        ],
        "embedding": {"column": "embedding", "size": 4},
        "predictions": predictions,
    }
    if labels is not None:
        model["labels"] = labels
    return Settings(database={"url": database_url}, ingest={"batch_size": 7, **ingest}, models=[model])


def make_rows(
    n: int,
    *,
    seed: int = 0,
    start_index: int = 0,
    version: int = 1,
    minutes_per_row: float = 1.0,
    start: datetime = START,
    brightness_shift: float = 0.0,
    logit_shift: float = 0.0,
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(CLASSES))) * 2
    logits[:, 0] += logit_shift
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rows = []
    for i in range(n):
        p = probs[i].round(6)
        p[-1] = round(1.0 - p[:-1].sum(), 6)
        k = start_index + i
        rows.append(
            {
                "id": k + 1,
                "prediction_id": f"p{k:05d}",
                "timestamp": (start + timedelta(minutes=(k if start is START else i) * minutes_per_row)).isoformat(),
                "model_version": version,
                "brightness": float(rng.uniform(0, 1)) + brightness_shift,
                "sharpness": float(rng.uniform(0, 5)),
                "device": str(rng.choice(["low", "mid", "high"])),
                "probabilities": json.dumps(p.tolist()),
                "embedding": json.dumps(rng.normal(size=4).round(5).tolist()),
                "predicted_label": CLASSES[int(np.argmax(p))],
                "confidence": float(p.max()),
                "input_uri": f"images/{k}.png",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_sqlite_source(path: Path, rows: list[dict[str, Any]], table: str = "prediction_log") -> None:
    """The 'outside world': a production table the service reads from."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, prediction_id TEXT, logged_at TEXT, "
            "model_version INTEGER, brightness REAL, sharpness REAL, device TEXT, probabilities TEXT, "
            "embedding TEXT, predicted_label TEXT, confidence REAL, input_uri TEXT)"
        )
        conn.executemany(
            f"INSERT INTO {table} VALUES (:id, :prediction_id, :timestamp, :model_version, :brightness, :sharpness, "
            ":device, :probabilities, :embedding, :predicted_label, :confidence, :input_uri)",
            rows,
        )
