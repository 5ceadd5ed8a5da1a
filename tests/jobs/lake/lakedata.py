"""Seeded prediction logs written both as JSON lines (to ingest) and as a day-partitioned Parquet lake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.jobs.logdata import make_rows


def bad_rows(start_index: int, day: str) -> list[dict[str, Any]]:
    """Two rows validation rejects: probabilities summing to 1.5, and no prediction id."""
    [a, b] = make_rows(2, seed=5, start_index=start_index)
    a["probabilities"] = json.dumps([0.5, 0.5, 0.5])
    b["prediction_id"] = None
    for row in (a, b):
        row["timestamp"] = f"{day}T12:00:00+00:00"
    return [a, b]


def write_lake(root: Path, rows: list[dict[str, Any]], *, files_per_day: int = 2) -> Path:
    """``root/day=YYYY-MM-DD/part-N.parquet``: lists for the arrays, UTC timestamps."""
    if root.exists():
        shutil.rmtree(root)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["timestamp"][:10], []).append(row)
    for day, day_rows in by_day.items():
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        step = max(1, -(-len(day_rows) // files_per_day))
        for n, at in enumerate(range(0, len(day_rows), step)):
            chunk = day_rows[at : at + step]
            table = pa.table(
                {
                    "prediction_id": pa.array([r["prediction_id"] for r in chunk], pa.string()),
                    "timestamp": pa.array([r["timestamp"] for r in chunk], pa.string()).cast(
                        pa.timestamp("us", tz="UTC")
                    ),
                    "model_version": pa.array([r["model_version"] for r in chunk], pa.int64()),
                    "brightness": pa.array([r["brightness"] for r in chunk], pa.float64()),
                    "sharpness": pa.array([r["sharpness"] for r in chunk], pa.float64()),
                    "device": pa.array([r["device"] for r in chunk], pa.string()),
                    "probabilities": pa.array([json.loads(r["probabilities"]) for r in chunk], pa.list_(pa.float64())),
                    "embedding": pa.array([json.loads(r["embedding"]) for r in chunk], pa.list_(pa.float64())),
                    "predicted_label": pa.array([r["predicted_label"] for r in chunk], pa.string()),
                    "confidence": pa.array([r["confidence"] for r in chunk], pa.float64()),
                    "input_uri": pa.array([r["input_uri"] for r in chunk], pa.string()),
                }
            )
            pq.write_table(table, folder / f"part-{n}.parquet")
    return root
