"""Absurd-confidence findings through the check job, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select

from jobs.check.job import check
from jobs.check.reference import reference_from_window
from jobs.ingest.run import ingest
from storage import repository
from storage.models import FlaggedPrediction
from tests.jobs.logdata import CLASSES, make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)


def _labels(rows, rng, *, flip_share=0.0):
    """Calibrated labels: right with probability = confidence; ``flip_share`` of them wrong anyway."""
    out = []
    for row in rows:
        right = rng.random() < row["confidence"] and rng.random() >= flip_share
        wrong = [c for c in CLASSES if c != row["predicted_label"]]
        label = row["predicted_label"] if right else wrong[int(rng.integers(len(wrong)))]
        out.append({"prediction_id": row["prediction_id"], "label": label, "labelled_at": "2026-11-20T00:00:00+00:00"})
    return out


def _setup(database, tmp_path, week_rows, week_labels, ref_flip=0.0):
    drop, labels = tmp_path / "drop", tmp_path / "labels"
    settings = settings_for(
        database.url, {"kind": "files", "path": str(drop)}, {"kind": "files", "path": str(labels)}, batch_size=5000
    )
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    rng = np.random.default_rng(3)
    ref_rows = make_rows(1500, seed=0, start=REF_START, minutes_per_row=5)
    write_jsonl(drop / "ref.jsonl", ref_rows)
    write_jsonl(labels / "ref.jsonl", _labels(ref_rows, rng, flip_share=ref_flip))
    write_jsonl(drop / "week.jsonl", week_rows)
    write_jsonl(labels / "week.jsonl", week_labels)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    return settings


def _week_rows():
    return make_rows(1400, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=7.2)


def test_injected_confident_errors_are_all_found_and_ranked_first(database, tmp_path):
    rows = _week_rows()
    labels = _labels(rows, np.random.default_rng(5))
    by_confidence = sorted(range(len(rows)), key=lambda i: -rows[i]["confidence"])
    injected = [i for i in by_confidence if labels[i]["label"] == rows[i]["predicted_label"]][:40]
    for i in injected:  # absurdly wrong: the most confident predictions, wrong label
        labels[i]["label"] = next(c for c in CLASSES if c != rows[i]["predicted_label"])
    settings = _setup(database, tmp_path, rows, labels)
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    wrong = [f for f in report.flagged if f.kind == "confidently_wrong"]
    expected = [
        rows[i]["prediction_id"]
        for i in by_confidence
        if rows[i]["confidence"] >= 0.9 and labels[i]["label"] != rows[i]["predicted_label"]
    ][:20]
    assert [f.prediction_id for f in wrong] == expected
    assert {rows[i]["prediction_id"] for i in injected[:20]} <= set(expected)
    figure = report.figures.confidently_wrong
    assert figure.n_errors >= len(injected) and figure.rose_significantly is True
    assert report.retrain_worthy and any("confidently-wrong rate rose" in r for r in report.reasons)
    with database.session_factory() as s:
        stored = s.scalars(select(FlaggedPrediction).where(FlaggedPrediction.run_id == report.run_id)).all()
    assert {f.prediction_id for f in stored} == {f.prediction_id for f in report.flagged}


def test_confident_inputs_unlike_the_reference_are_flagged_as_outliers(database, tmp_path):
    rows = _week_rows()
    far = [i for i, r in enumerate(rows) if r["confidence"] >= 0.95][:10]
    for i in far:
        rows[i]["embedding"] = json.dumps([25.0, -25.0, 25.0, -25.0])
    settings = _setup(database, tmp_path, rows, [])
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    outliers = [f for f in report.flagged if f.kind == "confident_outlier"]
    far_ids = {rows[i]["prediction_id"] for i in far}
    assert {f.prediction_id for f in outliers[: len(far)]} == far_ids
    logged = {r["prediction_id"]: r.get("input_uri") for r in rows}
    assert [f.input_uri for f in outliers] == [logged[f.prediction_id] for f in outliers]
    assert report.figures.confident_outliers.count >= len(far)
    assert report.figures.confident_outliers.rate < 0.05  # the rest looks like the reference


def test_estimate_is_trusted_when_calibration_holds_and_flagged_when_concepts_shift(database, tmp_path):
    rows = _week_rows()
    honest = _labels(rows, np.random.default_rng(9))
    settings = _setup(database, tmp_path, rows, honest)
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    estimate = report.figures.estimated_performance
    realized = report.figures.realized_performance
    assert estimate.trustworthy is True and estimate.warning is None
    assert abs(estimate.accuracy - realized.accuracy) < 0.05
    assert realized.label_coverage == 1.0


def test_concept_shift_makes_the_estimate_untrustworthy(database, tmp_path):
    rows = _week_rows()
    shifted = _labels(rows, np.random.default_rng(9), flip_share=0.4)  # same inputs, labels changed meaning
    settings = _setup(database, tmp_path, rows, shifted)
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    estimate = report.figures.estimated_performance
    assert estimate.trustworthy is False and "no longer holds" in estimate.warning
    assert not report.drifted  # inputs and outputs did not move: only labels reveal it
    assert report.retrain_worthy and any(r.startswith("realized accuracy") for r in report.reasons)


def test_errors_and_check_commands_on_a_config_file(database, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from jobs.cli.commands import app

    rows = _week_rows()
    labels = _labels(rows, np.random.default_rng(5))
    by_confidence = sorted(range(len(rows)), key=lambda i: -rows[i]["confidence"])
    for i in by_confidence[:30]:
        labels[i]["label"] = next(c for c in CLASSES if c != rows[i]["predicted_label"])
    settings = _setup(database, tmp_path, rows, labels)
    config = tmp_path / "driftkeeper.yaml"
    data = settings.model_dump(mode="json")
    data["database"]["url"] = database.url  # a SecretStr dumps as stars
    config.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    end = WEEK_END.isoformat()
    result = runner.invoke(app, ["-c", str(config), "errors", "-m", "pets", "--end", end, "--top", "5", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    wrong = [f for f in found if f["kind"] == "confidently_wrong"]
    assert len(wrong) == 5 and {"prediction_id", "confidence", "predicted_label", "true_label", "input_uri"} <= set(
        wrong[0]
    )
    assert wrong[0]["true_label"] != wrong[0]["predicted_label"]
    checked = runner.invoke(app, ["-c", str(config), "check", "-m", "pets", "--end", end, "--fail-on-drift", "--json"])
    assert checked.exit_code == 0, checked.output  # --fail-on-drift: exit 3 on drift only
    verdict = json.loads(checked.stdout)
    assert verdict["drifted"] is False and verdict["retrain_worthy"] is True  # absurdly wrong, not drifted


def test_the_next_check_reads_only_labelled_rows_and_late_labels_count(database, tmp_path, monkeypatch):
    """Label-free findings come from the stored days; labels arriving later change the realized figures."""
    import jobs.check.findings as findings_module
    import jobs.check.windows as windows_module

    rows = _week_rows()
    rng = np.random.default_rng(5)
    first_labels = _labels(rows[:300], rng)
    settings = _setup(database, tmp_path, rows, first_labels)
    first = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)[0]
    assert first.figures.realized_performance.n_labelled == 300

    reads: list[bool] = []
    for module in (findings_module, windows_module):
        real = module.iter_rows

        def counting(*args, _real=real, **kwargs):
            reads.append(bool(kwargs.get("labelled_only")))
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "iter_rows", counting)
    write_jsonl(tmp_path / "labels" / "late.jsonl", _labels(rows[300:900], rng))
    ingest(database.session_factory, settings, streams=("labels",))
    second = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)[0]
    assert reads and all(reads), "the next check read unlabelled rows again"
    assert second.figures.realized_performance.n_labelled == 900
    assert second.figures.n_rows == first.figures.n_rows == 1400
    assert second.figures.estimated_performance.estimate == first.figures.estimated_performance.estimate
    assert second.figures.confident_outliers == first.figures.confident_outliers


def test_figures_round_trip_through_the_stored_json(database, tmp_path):
    """The typed figures a check returns are what its stored run reads back, through JSON."""
    from jobs.check.figures import CheckFigures, stored_figures
    from storage.models import DriftRun

    rows = _week_rows()
    far = [i for i, r in enumerate(rows) if r["confidence"] >= 0.95][:10]
    for i in far:
        rows[i]["embedding"] = json.dumps([25.0, -25.0, 25.0, -25.0])
    settings = _setup(database, tmp_path, rows, _labels(rows, np.random.default_rng(5)))
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    figures = report.figures
    present = {k for k, v in vars(figures).items() if v is not None}
    assert present == {
        "n_rows",
        "confident_outliers",
        "realized_performance",
        "confidently_wrong",
        "calibration",
        "estimated_performance",
    }
    assert CheckFigures.from_dict(json.loads(json.dumps(figures.to_dict()))) == figures
    with database.session_factory() as s:
        run = s.get(DriftRun, report.run_id)
        assert stored_figures(run.figures) == figures
    assert (
        figures.estimated_performance.ci[0]
        < figures.estimated_performance.accuracy
        < figures.estimated_performance.ci[1]
    )


def test_a_check_result_round_trips_through_json(database, tmp_path):
    from jobs.check.job import CheckReport

    settings = _setup(database, tmp_path, _week_rows(), _labels(_week_rows()[:400], np.random.default_rng(2)))
    [report] = check(database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    again = CheckReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict()
    assert again.figures == report.figures and again.run_id == report.run_id
    assert [f.prediction_id for f in again.flagged] == [f.prediction_id for f in report.flagged]
