"""The demo, shortened: quiet before the drift, flagged after, retrained once the drifted window
has labels to judge on, quiet again; the gate's claim holds in the new version's first week."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

pytest.importorskip("tensorflow")

from jobs.demo.run import DemoOptions, demo_settings, run_demo
from storage.engine import make_engine, make_session_factory
from storage.models import DriftRun, JobRun, Label, ModelVersion, PredictionLog, RetrainRun

pytestmark = [pytest.mark.tf, pytest.mark.slow]
WEEKS, ROWS = 6, 2000  # ~250 labels for the new version's first week: enough to measure its accuracy


def _realized_first_week(session: Session, version: ModelVersion) -> tuple[float, int]:
    """Accuracy of ``version``'s labelled predictions in the 7 days after its promotion, and how many."""
    assert version.promoted_at is not None
    p = PredictionLog
    rows = session.execute(
        select(p.predicted_label == Label.label)
        .join(Label, (Label.model_id == p.model_id) & (Label.prediction_id == p.prediction_id))
        .where(
            p.model_id == version.model_id,
            p.model_version == version.version,
            p.ts >= version.promoted_at,
            p.ts < version.promoted_at + timedelta(days=7),
        )
    ).all()
    return sum(bool(r[0]) for r in rows) / max(len(rows), 1), len(rows)


def test_short_demo_drifts_retrains_and_is_quiet_again(tmp_path):
    options = DemoOptions(
        var_dir=tmp_path / "var", weeks=WEEKS, rows_per_week=ROWS, drift_from_week=3, epochs=4, min_new_labels=100
    )
    lines: list[str] = []
    report = run_demo(options, echo=lines.append)
    weeks = report.weeks
    assert not weeks[0].checked
    assert weeks[1].drifted is False and weeks[1].retrain_worthy is False
    assert weeks[2].drifted is True and weeks[2].retrain_worthy is True and weeks[2].reasons
    # week 3's labels arrive 3 to 21 days late: too few when it is flagged, the retrain waits a week
    assert weeks[2].retrain == "skipped"
    assert weeks[3].drifted is True and weeks[3].retrain == "promoted"
    assert [w.serving_version for w in weeks] == [1, 1, 1, 1, 2, 2]
    assert report.export_dir is not None and (report.export_dir / "model.tflite").is_file()
    manifest = json.loads((report.export_dir / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["parent_version"] == 1
    engine = make_engine(demo_settings(options.var_dir).database.url.get_secret_value())
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(PredictionLog)) == WEEKS * ROWS
        assert s.scalar(select(func.count()).select_from(Label)) > 0
        # per window, its latest run (windows are checked again as labels arrive); weeks 2-6 by the
        # scheduled check, week 1 (the reference week) by its weekly report
        latest = {r.window_end: r for r in s.scalars(select(DriftRun).order_by(DriftRun.id))}
        assert [latest[end].drifted for end in sorted(latest)] == [False, False, True, True, False, False]
        assert not any(r.drifted for r in s.scalars(select(DriftRun).where(DriftRun.version == 2)))
        # the weeks read truthfully: none measurably much worse than its reference is "ok"
        for run in latest.values():
            realized_week = (run.figures or {}).get("realized_performance") or {}
            accuracy, reference = realized_week.get("accuracy"), realized_week.get("reference_accuracy")
            much_worse = accuracy is not None and reference is not None and reference - accuracy >= 0.10
            if much_worse and realized_week.get("n_labelled", 0) >= 100:
                assert run.verdict is not None and run.verdict["level"] != "ok", (run.window_end, run.verdict)
        statuses = dict(s.execute(select(ModelVersion.version, ModelVersion.status)).all())
        decisions = s.scalars(select(RetrainRun.decision)).all()
        gate = s.scalars(select(RetrainRun.metrics)).one()
        realized, n_labels = _realized_first_week(
            s, s.scalars(select(ModelVersion).where(ModelVersion.version == 2)).one()
        )
        job_statuses = set(s.scalars(select(JobRun.status)))
    engine.dispose()
    assert statuses == {1: "retired", 2: "champion"}
    assert decisions == ["promoted"]
    assert gate["recent_accuracy"] - gate["champion_recent_accuracy"] >= 0.02  # the gate's margin
    assert gate["champion_test_accuracy"] - gate["test_accuracy"] <= 0.02
    # the gate judged on the drifted window, and what it claimed held in the first week served
    assert gate["n_holdout_drifted"] == gate["n_holdout"] >= 30
    assert [p["drifted"] for p in gate["periods"] if p["n_holdout"]] == [True, True]
    assert n_labels >= 100
    assert abs(gate["recent_accuracy"] - realized) <= 0.08, (gate["recent_accuracy"], realized, n_labels)
    assert job_statuses == {"succeeded"}
    assert any("week 3" in line and "DRIFT" in line for line in lines)
    summaries = sorted((options.var_dir / "reports" / "digits").glob("*/summary.json"))
    assert summaries and all(json.loads(p.read_text())["schema"] == 2 for p in summaries)
    delays = [json.loads(p.read_text())["data_quality"]["label_delay_days"] for p in summaries]
    measured = [d for d in delays if d]
    assert measured and all(3 <= d["median"] <= d["p90"] <= 21 for d in measured)  # labels come 3-21 days late
    _review_twenty_and_retrain_sees_them(options)


def _review_twenty_and_retrain_sees_them(options: DemoOptions) -> None:
    """The loop after the demo: 20 flagged predictions reviewed on the queue become labels that
    the retrain counts and gathers (its plan's new labels, its data of the recent window)."""
    from jobs.retrain.data import labelled_count
    from jobs.retrain.job import plan_retrain
    from jobs.review.queue import ReviewKind, decide, review_queue
    from storage import repository

    settings = demo_settings(options.var_dir)
    engine = make_engine(settings.database.url.get_secret_value())
    factory = make_session_factory(engine)
    model = settings.models[0]
    try:
        page = review_queue(factory, settings, model.name, kind=ReviewKind.CONFIDENT_OUTLIER, per_page=20)
        if len(page.items) < 20:  # too few unlabelled outliers left: the low-confidence ones then
            page = review_queue(factory, settings, model.name, per_page=20)
        items = [i for i in page.items if i.true_label is None][:20]
        assert len(items) == 20, page.total
        start = min(i.ts for i in items)
        end = max(i.ts for i in items) + timedelta(seconds=1)
        with factory() as s:
            model_row = repository.get_model(s, model.name)
            before = labelled_count(s, model, model_row, start, end)
        planned = plan_retrain(factory, settings, model.name, force=True)
        for item in items:  # a reviewer's keyboard: the class the model chose, or the next one
            decide(factory, settings, model.name, [item.prediction_id], item.predicted_label, reviewer="demo")
        with factory() as s:
            assert labelled_count(s, model, model_row, start, end) == before + 20
        after = plan_retrain(factory, settings, model.name, force=True)
        assert after.new_labels >= planned.new_labels + sum(i.model_version == after.champion for i in items)
    finally:
        engine.dispose()
