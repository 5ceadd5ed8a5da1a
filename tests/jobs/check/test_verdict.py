"""One verdict per window: impact first, never "ok" when measurably much worse, revised by late labels."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
from sqlalchemy import select

from drift import DriftResult
from drift.concern import VerdictLevel
from jobs.check.blind import WindowQuality
from jobs.check.figures import CheckFigures, ConfidentlyWrongFigure, RealizedFigure
from jobs.check.reference import reference_from_window
from jobs.check.verdict import window_verdict
from jobs.config import ModelSettings, Settings
from jobs.report.weeks import iso_week
from jobs.runner.execute import run_job
from storage import repository
from storage.models import DriftRun
from tests.jobs.logdata import CLASSES, make_rows, settings_for, write_jsonl
from tests.jobs.metrics.data import REF_START, WEEK_END, WEEK_START, labels_for

MODEL = ModelSettings(name="m", class_labels=("acceptable", "unacceptable"))


def _realized(accuracy: float, n: int, reference: float, ci: float = 0.05, recall: float = 0.9) -> RealizedFigure:
    return RealizedFigure(
        labels=("acceptable", "unacceptable"),
        n_labelled=n,
        n_predictions=2000,
        label_coverage=n / 2000,
        accuracy=accuracy,
        accuracy_ci=(accuracy - ci, accuracy + ci),
        confidence_level=0.95,
        macro_f1=accuracy,
        per_class_recall={"acceptable": 0.95, "unacceptable": recall},
        per_class_precision={"acceptable": 0.9, "unacceptable": 0.9},
        per_class_f1={"acceptable": 0.9, "unacceptable": 0.9},
        per_class_support={"acceptable": n // 2, "unacceptable": n - n // 2},
        confusion_matrix=((1, 0), (0, 1)),
        reference_accuracy=reference,
    )


def _no_drift() -> DriftResult:
    return DriftResult.from_dict(
        {
            "engine": "test",
            "policy": "stat_test",
            "share_drifted": 0.0,
            "n_reference": 100,
            "n_current": 2000,
            "drifted": False,
            "outputs_drifted": False,
            "embedding_drifted": None,
            "columns": [],
        }
    )


def test_a_week_much_worse_than_its_reference_is_never_ok():
    figures = CheckFigures(n_rows=2000, realized_performance=_realized(0.672, 247, 0.886))
    verdict = window_verdict(MODEL, _no_drift(), figures)
    assert verdict.level == VerdictLevel.ACT
    assert verdict.headline.startswith("realized accuracy 67.2% (62.2%-72.2%, 247 labels), 21.4 points below")


def test_few_labels_watch_and_a_significant_drop_acts():
    few = CheckFigures(n_rows=2000, realized_performance=_realized(0.80, 60, 0.90, ci=0.11))
    assert window_verdict(MODEL, _no_drift(), few).level == VerdictLevel.WATCH  # 10 points on 60 labels
    tight = CheckFigures(n_rows=2000, realized_performance=_realized(0.80, 80, 0.90, ci=0.03))
    assert window_verdict(MODEL, _no_drift(), tight).level == VerdictLevel.ACT  # upper bound 83% < 90% - 5
    same = CheckFigures(n_rows=2000, realized_performance=_realized(0.89, 300, 0.90))
    quiet = window_verdict(MODEL, _no_drift(), same)
    assert quiet.level == VerdictLevel.OK and quiet.concerns == ()
    assert "realized accuracy 89.0% on 300 labels" in quiet.headline


def test_concerns_are_ranked_by_level_then_impact():
    wrong = ConfidentlyWrongFigure(
        threshold=0.9,
        n_labelled=200,
        n_confident=150,
        n_errors=40,
        rate=0.264,
        reference_errors=5,
        reference_n=100,
        reference_rate=0.048,
        p_value=0.001,
        alpha=0.05,
        rose_significantly=True,
    )
    figures = CheckFigures(
        n_rows=2000, realized_performance=_realized(0.84, 200, 0.90, recall=0.227), confidently_wrong=wrong
    )
    quality = WindowQuality(accepted=2000, quarantined=240, main_reason=None, blind=None)
    verdict = window_verdict(MODEL, _no_drift(), figures, quality=quality)
    kinds = [(c.kind, c.level) for c in verdict.concerns]
    assert kinds[0] == ("confidently_wrong", VerdictLevel.ACT)  # a 21.6-point rise
    assert ("data_quality", VerdictLevel.WATCH) in kinds  # 10.7% quarantined
    assert any("recall of 'unacceptable' is 22.7%" in c.text for c in verdict.concerns)
    ranks = [(-c.level.rank, -c.impact) for c in verdict.concerns]
    assert ranks == sorted(ranks)


def test_a_binary_models_outputs_are_one_finding():
    columns = [
        {
            "column": name,
            "kind": "output",
            "method": "ks",
            "score": 0.3,
            "p_value": 0.0,
            "threshold": 0.05,
            "drifted": True,
            "effect": effect,
        }
        for name, effect in (
            ("prob_acceptable", 0.31),
            ("prob_unacceptable", 0.31),
            ("confidence", 0.2),
            ("margin", 0.2),
            ("entropy", 0.2),
        )
    ]
    result = DriftResult.from_dict(
        {
            "engine": "test",
            "policy": "stat_test",
            "share_drifted": 0.0,
            "n_reference": 100,
            "n_current": 2000,
            "drifted": True,
            "outputs_drifted": True,
            "embedding_drifted": None,
            "columns": columns,
        }
    )
    verdict = window_verdict(MODEL, result, CheckFigures(n_rows=2000))
    (concern,) = verdict.concerns
    assert concern.text == "outputs drifted (prob_acceptable, effect 0.31)"
    assert verdict.level == VerdictLevel.WATCH


def _wrong_labels(rows, seed):
    """Labels that disagree with most predictions: the week was much worse than it looked."""
    rng = np.random.default_rng(seed)
    out = []
    for row in rows:
        wrong = [c for c in CLASSES if c != row["predicted_label"]]
        label = row["predicted_label"] if rng.random() < 0.3 else wrong[int(rng.integers(len(wrong)))]
        out.append({"prediction_id": row["prediction_id"], "label": label, "labelled_at": "2026-11-20T00:00:00+00:00"})
    return out


def test_late_labels_revise_a_past_week(database, tmp_path):
    drop, labels = tmp_path / "drop", tmp_path / "labels"
    base = settings_for(
        database.url, {"kind": "files", "path": str(drop)}, {"kind": "files", "path": str(labels)}, batch_size=5000
    )
    settings = Settings(**(base.model_dump() | {"paths": {"var_dir": tmp_path, "reports_dir": tmp_path / "reports"}}))
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    ref = make_rows(1500, seed=0, start=REF_START, minutes_per_row=5)
    week = make_rows(1400, seed=0, start_index=10_000, start=WEEK_START, minutes_per_row=7.2)
    write_jsonl(drop / "ref.jsonl", ref)
    write_jsonl(drop / "week.jsonl", week)
    write_jsonl(labels / "ref.jsonl", labels_for(ref, 1))
    for job in ("ingest", "labels"):
        assert run_job(job, database.session_factory, settings).status == "succeeded"
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    first = run_job("check", database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    (run,) = first.data["runs"]
    assert run["verdict"]["level"] == "ok", run["verdict"]
    week_name = iso_week(WEEK_START)
    assert run_job("report", database.session_factory, settings, "pets", week=week_name, now=WEEK_END).exit_code == 0
    summary_path = tmp_path / "reports" / "pets" / week_name / "summary.json"
    assert json.loads(summary_path.read_text())["verdict"]["status"] == "ok"
    # two weeks later the labels of that week arrive: it was much worse than it looked
    write_jsonl(labels / "week.jsonl", _wrong_labels(week, 2))
    assert run_job("labels", database.session_factory, settings).status == "succeeded"
    later = WEEK_END + timedelta(days=15)  # within the last three complete weeks
    again = run_job("check", database.session_factory, settings, "pets", end=later, now=later)
    revised = [r for r in again.data["runs"] if r["revision"] is not None]
    assert len(revised) == 1
    (r,) = revised
    assert r["window_end"] == WEEK_END.isoformat()
    assert r["revision"]["previous"] == "ok" and r["revision"]["level"] == "act"
    assert r["revision"]["why"].startswith("1,400 more labels: ")
    assert "realized" in [c["kind"] for c in r["verdict"]["concerns"]]
    assert again.data["retrain_worthy"] is True  # the policy fires on the revised week
    from jobs.retrain.job import plan_retrain

    plan = plan_retrain(database.session_factory, settings, "pets", now=later)
    assert any(f"({WEEK_END:%Y-%m-%d}) is retrain-worthy" in r for r in plan.reasons), plan.reasons
    with database.session_factory() as s:
        stored = s.scalars(select(DriftRun).where(DriftRun.window_end == WEEK_END).order_by(DriftRun.id)).all()
    assert [x.revision is not None for x in stored] == [False, True]
    assert stored[-1].verdict["level"] == "act"
    # the next weekly report writes the revised week's page again, and the index says so
    report = run_job("report", database.session_factory, settings, "pets", week=iso_week(later), now=later)
    assert [r["week"] for r in report.data["rewritten"]] == [week_name]
    revised_summary = json.loads(summary_path.read_text())
    assert revised_summary["verdict"]["status"] == "act"
    assert revised_summary["verdict"]["revised"]["previous"] == "ok"
    index = (tmp_path / "reports" / "pets" / "index.html").read_text()
    assert "revised on" in index and "from ok" in index
    # nothing new since: no second revision
    once_more = run_job("check", database.session_factory, settings, "pets", end=later, now=later)
    assert not [r for r in once_more.data["runs"] if r["revision"] is not None]
