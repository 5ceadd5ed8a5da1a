"""A seeded week of predictions, ingested into driftkeeper's database *and* written as a lake.

The same rows (with two that validation rejects) reach every path: the stored rows (local),
the lake read by pyarrow, the lake read by Spark, so their day states can be compared.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.ingest.run import ingest
from storage import repository
from tests.jobs.lake.lakedata import bad_rows, write_lake
from tests.jobs.logdata import CLASSES, make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)
WEEK_ROWS = 50_000


@dataclass(frozen=True)
class World:
    database: Any
    files: Settings  # the model ingested from JSON lines (the local path)
    lake: Path
    rows: list[dict[str, Any]]  # the week's rows, as the sources hold them

    def with_source(self, source: dict[str, Any]) -> Settings:
        data = self.files.model_dump(mode="python")
        data["database"] = {"url": self.files.database.url.get_secret_value()}
        data["models"][0]["predictions"] = source
        return Settings(**data)


def week_rows(n: int = WEEK_ROWS, *, brightness_shift: float = 0.0) -> list[dict[str, Any]]:
    rows = make_rows(
        n, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=7 * 1440 / n, brightness_shift=brightness_shift
    )
    return rows + bad_rows(900_000, "2026-11-04")


def labels_for(rows: list[dict[str, Any]], share: float, seed: int) -> list[dict[str, Any]]:
    """Late labels for a seeded ``share`` of ``rows``: right with the chance of the row's confidence
    (a calibrated model), else another class."""
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        if "prediction_id" not in r or not isinstance(r.get("confidence"), float) or rng.random() >= share:
            continue
        others = [c for c in CLASSES if c != r["predicted_label"]]
        label = r["predicted_label"] if rng.random() < r["confidence"] else str(rng.choice(others))
        out.append({"prediction_id": r["prediction_id"], "label": label, "labelled_at": "2026-11-20T00:00:00+00:00"})
    return out


@pytest.fixture
def world(database: Any) -> World:
    return build_world(database)


@dataclass(frozen=True)
class _Files:
    """A world's source files: written once per test process and row count, only read after."""

    drop: Path
    labels: Path
    lake: Path
    rows: list[dict[str, Any]]


_FILES: dict[int, _Files] = {}


def _files(n: int) -> _Files:
    if n not in _FILES:
        root = Path(tempfile.mkdtemp(prefix=f"dk-lake-world-{n}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        reference_rows = make_rows(1500, seed=0, start=REF_START, minutes_per_row=5)
        rows = week_rows(n, brightness_shift=0.05)
        write_jsonl(root / "drop" / "ref.jsonl", reference_rows)
        write_jsonl(root / "drop" / "week.jsonl", rows)
        labelled = labels_for(reference_rows, 1.0, seed=3) + labels_for(rows, 0.3, seed=4)
        write_jsonl(root / "labels" / "labels.jsonl", labelled)
        _FILES[n] = _Files(drop=root / "drop", labels=root / "labels", lake=write_lake(root / "lake", rows), rows=rows)
    return _FILES[n]


def build_world(database: Any, n: int = WEEK_ROWS) -> World:
    """``n`` rows in the week (and two bad ones), ingested and written as a lake."""
    files = _files(n)
    settings = settings_for(
        database.url,
        {"kind": "files", "path": str(files.drop)},
        {"kind": "files", "path": str(files.labels)},
        batch_size=50_000,
    )
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    return World(database=database, files=settings, lake=files.lake, rows=[dict(r) for r in files.rows])


def _java_reason() -> str | None:
    if shutil.which("java") is None:
        return "Java is not installed (make system-packages installs openjdk-17-jre-headless as root)"
    try:
        subprocess.run(["java", "-version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java does not run: {exc}"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] Spark session for the test process (skipped where Java or pyspark are missing)."""
    reason = _java_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("pyspark", reason="needs pyspark (pip install -e '.[dev]')")
    from jobs.config import SparkSettings
    from jobs.lake.spark import spark_session

    session = spark_session(
        SparkSettings(master="local[2]", conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
    )
    yield session
    session.stop()
