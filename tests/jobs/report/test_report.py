"""The weekly report job: summary structure, escaping of hostile names, files and index."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from jobs.check.reference import reference_from_window
from jobs.ingest.run import ingest
from jobs.report.job import weekly_report
from jobs.report.weeks import iso_week, week_window
from storage import repository
from tests.jobs.logdata import make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
WEEK = "2026-W45"
SUMMARY_KEYS = {
    "schema",
    "model",
    "week",
    "window",
    "generated_at",
    "verdict",
    "champion",
    "runs",
    "features",
    "outputs",
    "embedding",
    "calibration",
    "performance",
    "confidently_wrong",
    "confident_outliers",
    "retrains",
    "data_quality",
    "evidently_report",
    "segmentation",
}


def test_week_helpers():
    start, end = week_window("2026-W45")
    assert (start, end) == (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC))
    assert iso_week(start) == iso_week(end - timedelta(seconds=1)) == "2026-W45"


def test_weekly_report_files_structure_and_escaping(database, tmp_path):
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=5000)
    data = settings.model_dump(mode="python")
    data["database"]["url"] = database.url
    data["paths"]["reports_dir"] = tmp_path / "reports"
    data["models"][0]["features"] = [*data["models"][0]["features"], {"name": hostile, "type": "numeric"}]
    from jobs.config import Settings

    settings = Settings(**data)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1, status="champion")
    rng = np.random.default_rng(0)
    ref = make_rows(900, seed=0, start=REF_START, minutes_per_row=10)
    week = make_rows(900, seed=1, start_index=5000, start=week_window(WEEK)[0], minutes_per_row=10, logit_shift=2.0)
    for row in ref + week:
        row[hostile] = float(rng.normal())
    write_jsonl(drop / "ref.jsonl", ref)
    write_jsonl(drop / "week.jsonl", week)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    result = weekly_report(
        database.session_factory, settings, "pets", week=WEEK, now=datetime(2026, 11, 10, tzinfo=UTC)
    )
    summary = json.loads(result.summary.read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["schema"] == 1 and summary["week"] == WEEK and summary["model"] == "pets"
    assert summary["verdict"]["status"] == "retrain" and summary["verdict"]["reasons"]
    assert [r["version"] for r in summary["runs"]] == [1] and summary["runs"][0]["n_rows"] == 900
    assert summary["features"][0]["drifted"] >= summary["features"][-1]["drifted"]  # drifted first
    assert {c["column"] for c in summary["outputs"]["columns"]} >= {"prob_cat", "confidence", "predicted"}
    assert abs(sum(summary["outputs"]["class_distribution"]["current"]) - 1.0) < 1e-9
    assert summary["data_quality"]["rows"] == 900 and summary["champion"]["version"] == 1
    assert summary["evidently_report"] == "evidently.html" and result.evidently.is_file()
    html = result.report.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    index = result.index.read_text()
    assert f"{WEEK}/report.html" in index and result.report.stat().st_size < 2_000_000
