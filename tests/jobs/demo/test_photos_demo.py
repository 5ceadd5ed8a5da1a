"""The photos demo, shortened: the team's MobileNetV3Small registered whole, a new camera from
week 2, the drift flagged with a verdict that is not ok, and a retrain that goes through the
gate with its figures recorded (promoted or rejected, never failed)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

pytest.importorskip("tensorflow")

from jobs.demo.run import DemoOptions, run_demo
from storage.engine import make_engine, make_session_factory
from storage.models import DriftRun, ModelVersion, RetrainRun

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_short_photos_demo_flags_the_new_camera_and_retrains(tmp_path):
    options = DemoOptions(
        var_dir=tmp_path / "var", weeks=4, rows_per_week=400, drift_from_week=2, epochs=1, min_new_labels=40,
        scenario="photos",
    )  # fmt: skip
    lines: list[str] = []
    report = run_demo(options, echo=lines.append)
    weeks = report.weeks
    assert weeks[0].true_accuracy >= 0.8, weeks[0]
    assert all(w.true_accuracy < weeks[0].true_accuracy - 0.1 for w in weeks[1:]), [w.true_accuracy for w in weeks]
    assert weeks[1].drifted is True and weeks[1].retrain_worthy is True
    assert any("registered from" in line for line in lines)
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'driftkeeper.db'}")
    try:
        with make_session_factory(engine)() as s:
            v1 = s.scalars(select(ModelVersion).where(ModelVersion.version == 1)).one()
            assert v1.lineage["source"] == "registered" and v1.lineage["contract"]["output"] == "sigmoid"
            runs = s.scalars(select(DriftRun).where(DriftRun.window_end > weeks[1].start)).all()
            assert runs and all(r.verdict is not None and r.verdict["level"] != "ok" for r in runs if r.version == 1)
            retrains = s.scalars(select(RetrainRun).where(RetrainRun.decision != "skipped")).all()
    finally:
        engine.dispose()
    assert retrains and {r.decision for r in retrains} <= {"promoted", "rejected"}, [
        (r.decision, r.reasons) for r in retrains
    ]
    assert all(r.metrics.get("n_train_new", 0) > 0 and r.reasons for r in retrains), [r.metrics for r in retrains]
    promoted = [r for r in retrains if r.decision == "promoted"]
    if promoted:  # its export's manifest carries the contract
        manifest = json.loads((report.export_dir / "manifest.json").read_text()) if report.export_dir else {}
        assert manifest["contract"]["color_mode"] == "rgb"
