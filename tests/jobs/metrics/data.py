"""A checked week in a migrated database, through the real jobs: ingest, reference, check.

The week's brightness is shifted (it drifts; sharpness does not), labels arrive for every
prediction, and a few bad rows are quarantined: three with an unknown label, two whose
probabilities do not sum to 1 (each with its own sum: one reason once the numbers are folded).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.runner.execute import JobOutcome, run_job
from storage import repository
from tests.jobs.logdata import CLASSES, make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)
UNKNOWN_LABEL_ROWS = 3
BAD_SUM_ROWS = 2


def labels_for(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Calibrated labels: right with probability = confidence."""
    rng = np.random.default_rng(seed)
    out = []
    for row in rows:
        wrong = [c for c in CLASSES if c != row["predicted_label"]]
        label = row["predicted_label"] if rng.random() < row["confidence"] else wrong[int(rng.integers(len(wrong)))]
        out.append({"prediction_id": row["prediction_id"], "label": label, "labelled_at": "2026-11-20T00:00:00+00:00"})
    return out


def bad_rows() -> list[dict[str, Any]]:
    rows = make_rows(UNKNOWN_LABEL_ROWS + BAD_SUM_ROWS, seed=11, start_index=90_000, start=WEEK_START)
    for row in rows[:UNKNOWN_LABEL_ROWS]:
        row["predicted_label"] = "zebra"
    for i, row in enumerate(rows[UNKNOWN_LABEL_ROWS:]):
        row["probabilities"] = json.dumps([0.5, 0.5, 0.2 + i / 10])
    return rows


def model_config(database_url: str, tmp_path: Path) -> Settings:
    drop, labels = tmp_path / "drop", tmp_path / "labels"
    return settings_for(
        database_url, {"kind": "files", "path": str(drop)}, {"kind": "files", "path": str(labels)}, batch_size=5000
    )


def checked_week(database: Any, tmp_path: Path, **metrics: Any) -> tuple[Settings, JobOutcome]:
    """Settings (with ``metrics``) and the outcome of ``run_job("check")`` on a drifted, labelled week."""
    base = model_config(database.url, tmp_path)
    settings = Settings(
        database={"url": database.url},
        paths={"var_dir": tmp_path / "var", "reports_dir": tmp_path / "reports", "models_dir": tmp_path / "models"},
        ingest=base.ingest,
        metrics=metrics,
        models=[base.models[0].model_dump()],
    )
    drop, labels = tmp_path / "drop", tmp_path / "labels"
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    ref = make_rows(1500, seed=0, start=REF_START, minutes_per_row=5)
    week = make_rows(1400, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=7.2, brightness_shift=0.3)
    write_jsonl(drop / "ref.jsonl", ref)
    write_jsonl(drop / "week.jsonl", week + bad_rows())
    write_jsonl(labels / "ref.jsonl", labels_for(ref, 1))
    write_jsonl(labels / "week.jsonl", labels_for(week, 2))
    for job in ("ingest", "labels"):
        assert run_job(job, database.session_factory, settings).status == "succeeded"
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    outcome = run_job("check", database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    assert outcome.status == "succeeded", outcome.error
    return settings, outcome
