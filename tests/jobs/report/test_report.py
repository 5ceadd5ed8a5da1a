"""The weekly report job: summary structure, escaping of hostile names, files and index; the
typed summary's round trip through summary.json; the report only reads what the check stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select

from jobs.check.job import check
from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.ingest.run import ingest
from jobs.report.job import build_summary, weekly_report
from jobs.report.weeks import iso_week, week_window
from reports.summary import WeeklySummary
from storage import repository
from storage.models import DriftRun, WindowProfileRow
from tests.jobs.logdata import make_rows, settings_for, write_jsonl
from tests.reports.report_sample import SCHEMA_KEYS

REF_START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
WEEK = "2026-W45"
NOW = datetime(2026, 11, 10, tzinfo=UTC)
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
SUMMARY_KEYS = set(SCHEMA_KEYS)


def test_week_helpers():
    start, end = week_window("2026-W45")
    assert (start, end) == (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC))
    assert iso_week(start) == iso_week(end - timedelta(seconds=1)) == "2026-W45"


def _week_logged(database, tmp_path) -> Settings:
    """A model with a reference and a drifted week of logs (one feature with a hostile name), not checked yet."""
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=5000)
    data = settings.model_dump(mode="python")
    data["database"]["url"] = database.url
    data["paths"]["reports_dir"] = tmp_path / "reports"
    data["models"][0]["features"] = [*data["models"][0]["features"], {"name": HOSTILE, "type": "numeric"}]
    settings = Settings(**data)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1, status="champion")
    rng = np.random.default_rng(0)
    ref = make_rows(900, seed=0, start=REF_START, minutes_per_row=10)
    week = make_rows(900, seed=1, start_index=5000, start=week_window(WEEK)[0], minutes_per_row=10, logit_shift=2.0)
    for row in ref + week:
        row[HOSTILE] = float(rng.normal())
    write_jsonl(drop / "ref.jsonl", ref)
    write_jsonl(drop / "week.jsonl", week)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    return settings


def _check_week(database, settings: Settings) -> None:
    """What the runner does before the report when the week has no stored check."""
    end = week_window(WEEK)[1]
    check(database.session_factory, settings, "pets", window_days=7, end=end, now=max(NOW, end))


def test_weekly_report_files_structure_and_escaping(database, tmp_path):
    settings = _week_logged(database, tmp_path)
    _check_week(database, settings)
    result = weekly_report(database.session_factory, settings, "pets", week=WEEK, now=NOW)
    summary = json.loads(result.summary.read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["schema"] == 2 and summary["week"] == WEEK and summary["model"] == "pets"
    assert summary["verdict"]["status"] == "act" and summary["verdict"]["reasons"]
    assert [r["version"] for r in summary["runs"]] == [1] and summary["runs"][0]["n_rows"] == 900
    assert summary["features"][0]["drifted"] >= summary["features"][-1]["drifted"]  # drifted first
    assert {c["column"] for c in summary["outputs"]["columns"]} >= {"prob_cat", "confidence", "predicted"}
    assert abs(sum(summary["outputs"]["class_distribution"]["current"]) - 1.0) < 1e-9
    assert summary["data_quality"]["rows"] == 900 and summary["serving"]["version"] == 1
    assert summary["evidently_report"] == "evidently.html" and result.evidently.is_file()
    html = result.report.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    index = result.index.read_text()
    assert f"{WEEK}/report.html" in index and result.report.stat().st_size < 2_000_000


def test_the_summary_round_trips_through_its_json(database, tmp_path):
    settings = _week_logged(database, tmp_path)
    _check_week(database, settings)
    start, end = week_window(WEEK)
    with database.session_factory() as session:
        model_row = repository.get_model(session, "pets")
        summary, samples = build_summary(session, settings, settings.models[0], model_row, WEEK, start, end, NOW)
    assert samples is not None and summary.features and summary.outputs and summary.calibration is not None
    assert WeeklySummary.from_dict(json.loads(json.dumps(summary.to_dict(), allow_nan=False))) == summary
    profiles = _count(database, WindowProfileRow)
    written = weekly_report(database.session_factory, settings, "pets", week=WEEK, now=NOW, evidently=False).summary
    assert _count(database, WindowProfileRow) == profiles  # the day profiles are the check's to store
    data = json.loads(written.read_text())
    assert WeeklySummary.from_dict(data).to_dict() == data
    assert set(data) == SUMMARY_KEYS and data["verdict"] == summary.verdict.to_dict()


def test_the_report_only_reads(database, tmp_path):
    """Without a stored check of the week the report says so: it neither checks nor stores profiles."""
    settings = _week_logged(database, tmp_path)
    result = weekly_report(database.session_factory, settings, "pets", week=WEEK, now=NOW)
    summary = json.loads(result.summary.read_text())
    assert (result.status, summary["verdict"]["headline"]) == ("no-data", "no checked predictions this week")
    assert summary["runs"] == [] and summary["features"] is None and summary["data_quality"]["rows"] == 900
    assert result.evidently is None
    assert _count(database, DriftRun) == _count(database, WindowProfileRow) == 0


def _count(database, table: type) -> int:
    with database.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)
