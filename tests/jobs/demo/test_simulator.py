"""The production simulator: schema, determinism, late labels, drift lowering accuracy."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import UnknownMethodError, ValidationError
from jobs.demo.simulator import ProductionSimulator, read_images
from jobs.ml.image_features import FEATURE_COLUMNS

START = datetime(2026, 1, 5, tzinfo=UTC)
WEEKS = (1, 2, 3)
EXPECTED_COLUMNS = [
    ("id", "INTEGER"),
    ("prediction_id", "TEXT"),
    ("logged_at", "TEXT"),
    ("model_name", "TEXT"),
    ("model_version", "INTEGER"),
    *[(c, "REAL") for c in FEATURE_COLUMNS],
    ("device_tier", "TEXT"),
    ("camera", "TEXT"),
    ("probabilities", "TEXT"),
    ("embedding", "TEXT"),
    ("predicted_label", "TEXT"),
    ("confidence", "REAL"),
    ("input_uri", "TEXT"),
]


def _run(out: Path, model: Path) -> tuple[ProductionSimulator, list[Any]]:
    sim = ProductionSimulator(out, seed=7, rows_per_week=240, drift_from_week=2)
    summaries = [sim.simulate_week(w, model, 1, START + timedelta(weeks=w - 1)) for w in WEEKS]
    return sim, summaries


@pytest.fixture(scope="module")
def simulated(champion: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[ProductionSimulator, list[Any]]:
    return _run(tmp_path_factory.mktemp("sim_a"), champion.path)


def _rows(sim: ProductionSimulator) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sim.db_path) as conn:
        return conn.execute("SELECT * FROM prediction_log ORDER BY id").fetchall()


@pytest.mark.tf
def test_schema_and_rows(simulated: tuple[ProductionSimulator, list[Any]]) -> None:
    sim, summaries = simulated
    with sqlite3.connect(sim.db_path) as conn:
        info = conn.execute("PRAGMA table_info(prediction_log)").fetchall()
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM prediction_log ORDER BY id").fetchall()
    assert [(r[1], r[2]) for r in info] == EXPECTED_COLUMNS
    assert len(rows) == 240 * len(WEEKS) == sum(s.rows for s in summaries)
    assert len({r["prediction_id"] for r in rows}) == len(rows)
    for r in rows[::37]:
        assert r["logged_at"].endswith("+00:00")
        assert START <= datetime.fromisoformat(r["logged_at"]) < START + timedelta(weeks=3)
        probs = json.loads(r["probabilities"])
        assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert len(json.loads(r["embedding"])) == 32
        assert r["predicted_label"] == str(int(np.argmax(probs)))
        assert r["confidence"] == pytest.approx(max(probs), abs=1e-5)
        assert r["device_tier"] in {"low", "mid", "high"} and r["camera"] in {"front", "back"}
        assert r["model_name"] == "digits" and r["model_version"] == 1
        assert Path(r["input_uri"]).parent.name.startswith("week_0")
    image = read_images([rows[0]["input_uri"]])
    assert image.shape == (1, 32, 32)
    assert rows[0]["brightness"] == pytest.approx(float(image.mean()), abs=1e-6)


@pytest.mark.tf
def test_deterministic_for_a_seed(
    simulated: tuple[ProductionSimulator, list[Any]], champion: Any, tmp_path: Path
) -> None:
    sim, summaries = simulated
    again, summaries2 = _run(tmp_path / "b", champion.path)
    strip = [r[:-1] for r in _rows(sim)]  # input_uri differs by directory only
    assert strip == [r[:-1] for r in _rows(again)]
    assert [s.accuracy for s in summaries] == [s.accuracy for s in summaries2]
    names = sorted(p.name for p in sim.labels_dir.glob("*.jsonl"))
    assert names == sorted(p.name for p in again.labels_dir.glob("*.jsonl"))
    for name in names:
        assert (sim.labels_dir / name).read_text() == (again.labels_dir / name).read_text()


@pytest.mark.tf
def test_labels_never_arrive_before_their_time(simulated: tuple[ProductionSimulator, list[Any]]) -> None:
    sim, summaries = simulated
    with sqlite3.connect(sim.db_path) as conn:
        logged = dict(conn.execute("SELECT prediction_id, logged_at FROM prediction_log").fetchall())
    released = 0
    for s in summaries:
        if s.label_file is None:
            continue
        lines = [json.loads(line) for line in s.label_file.read_text().splitlines()]
        released += len(lines)
        assert len(lines) == s.labels_released
        for item in lines:
            labelled_at = datetime.fromisoformat(item["labelled_at"])
            assert labelled_at <= s.end  # due by the simulated "now" of that call
            delay = labelled_at - datetime.fromisoformat(logged[item["prediction_id"]])
            assert timedelta(days=3) <= delay <= timedelta(days=21, seconds=1)
            assert item["label"] in [str(d) for d in range(10)]
    assert released < sum(s.labels_scheduled for s in summaries)  # some still in the future
    assert summaries[0].labels_released < summaries[0].labels_scheduled
    remaining = sim.release_labels(START + timedelta(weeks=3, days=30))
    assert released + remaining == sum(s.labels_scheduled for s in summaries)
    assert sim.release_labels(START + timedelta(weeks=30)) == 0
    ids = [json.loads(line)["prediction_id"] for p in sim.labels_dir.glob("*.jsonl") for line in p.open()]
    assert len(ids) == len(set(ids))  # each label released once
    share = len(ids) / len(logged)
    assert 0.2 < share < 0.4  # label_share 0.3


@pytest.mark.tf
def test_drift_weeks_lower_accuracy(simulated: tuple[ProductionSimulator, list[Any]]) -> None:
    _, (clean, drift1, drift2) = simulated
    assert not clean.drifted and clean.accuracy >= 0.88
    for week in (drift1, drift2):
        assert week.drifted and week.drifted_rows > 0.5 * week.rows
        assert week.accuracy <= clean.accuracy - 0.2
        assert week.accuracy_drifted is not None and week.accuracy_drifted < 0.7
        assert week.confidently_wrong_rate > 0.03  # "absurdly wrong": wrong and sure of it
        assert week.mean_confidence < clean.mean_confidence


@pytest.mark.tf
def test_week_cannot_be_simulated_twice(simulated: tuple[ProductionSimulator, list[Any]], champion: Any) -> None:
    sim, _ = simulated
    with pytest.raises(ValidationError, match="already simulated"):
        sim.simulate_week(1, champion.path, 1, START)


def test_constructor_validates(tmp_path: Path) -> None:
    with pytest.raises(UnknownMethodError, match="allowed: blur, darken"):
        ProductionSimulator(tmp_path, drift_kinds=("fog",))
    with pytest.raises(ValidationError, match="label_delay_days"):
        ProductionSimulator(tmp_path, label_delay_days=(5, 1))
    sim = ProductionSimulator(tmp_path, seed=3)
    assert (sim.seed, sim.rows_per_week, sim.drift_from_week, sim.label_share) == (3, 2000, 3, 0.3)
    assert sim.db_url.startswith("sqlite:///") and sim.db_path.exists()
    with pytest.raises(ValidationError, match="timezone"):
        sim.simulate_week(1, tmp_path / "m.keras", 1, datetime(2026, 1, 1))
