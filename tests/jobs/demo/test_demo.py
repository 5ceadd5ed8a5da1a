"""The demo, shortened: quiet before the drift, flagged after, retrained, quiet again."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

pytest.importorskip("tensorflow")

from jobs.demo.run import DemoOptions, demo_settings, run_demo
from storage.engine import make_engine, make_session_factory
from storage.models import DriftRun, JobRun, Label, ModelVersion, PredictionLog, RetrainRun

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_short_demo_drifts_retrains_and_is_quiet_again(tmp_path):
    options = DemoOptions(
        var_dir=tmp_path / "var", weeks=5, rows_per_week=800, drift_from_week=3, epochs=4, min_new_labels=100
    )
    lines: list[str] = []
    report = run_demo(options, echo=lines.append)
    weeks = report.weeks
    assert not weeks[0].checked
    assert weeks[1].drifted is False and weeks[1].retrain_worthy is False
    assert weeks[2].drifted is True and weeks[2].retrain_worthy is True and weeks[2].reasons
    assert weeks[2].retrain == "promoted"
    assert [w.serving_version for w in weeks] == [1, 1, 1, 2, 2]
    assert all(w.drifted is False for w in weeks[3:]), [w.reasons for w in weeks[3:]]
    assert report.export_dir is not None and (report.export_dir / "model.tflite").is_file()
    manifest = json.loads((report.export_dir / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["parent_version"] == 1
    engine = make_engine(demo_settings(options.var_dir).database.url.get_secret_value())
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(PredictionLog)) == 5 * 800
        assert s.scalar(select(func.count()).select_from(Label)) > 0
        # weeks 2-5 by the scheduled check; week 1 (the reference week) by its weekly report
        assert [r.drifted for r in s.scalars(select(DriftRun).order_by(DriftRun.window_end))] == [
            False,
            False,
            True,
            False,
            False,
        ]
        statuses = dict(s.execute(select(ModelVersion.version, ModelVersion.status)).all())
        decisions = s.scalars(select(RetrainRun.decision)).all()
        gate = s.scalars(select(RetrainRun.metrics)).one()
        job_statuses = set(s.scalars(select(JobRun.status)))
    engine.dispose()
    assert statuses == {1: "retired", 2: "champion"}
    assert decisions == ["promoted"]
    assert gate["recent_accuracy"] - gate["champion_recent_accuracy"] >= 0.02  # the gate's margin
    assert gate["champion_test_accuracy"] - gate["test_accuracy"] <= 0.02
    assert job_statuses == {"succeeded"}
    assert any("week 3" in line and "DRIFT" in line for line in lines)
