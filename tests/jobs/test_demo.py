"""The demo, shortened: quiet before the drift, flagged after, everything stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

pytest.importorskip("tensorflow")

from jobs.demo import DemoOptions, demo_settings, run_demo  # noqa: E402
from storage.engine import make_engine, make_session_factory  # noqa: E402
from storage.models import DriftRun, JobRun, Label, PredictionLog  # noqa: E402

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_short_demo_is_quiet_before_drift_and_flags_it_after(tmp_path):
    options = DemoOptions(var_dir=tmp_path / "var", weeks=3, rows_per_week=400, drift_from_week=3, epochs=3)
    lines: list[str] = []
    report = run_demo(options, echo=lines.append)
    week1, week2, week3 = report.weeks
    assert not week1.checked and week2.checked and week3.checked
    assert week2.drifted is False and week2.retrain_worthy is False
    assert week3.drifted is True and week3.retrain_worthy is True and week3.reasons
    assert week3.true_accuracy < week2.true_accuracy
    assert json.loads(json.dumps(report.to_dict()))["weeks"][2]["drifted"] is True
    engine = make_engine(demo_settings(options.var_dir).database.url.get_secret_value())
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(PredictionLog)) == 3 * 400
        assert s.scalar(select(func.count()).select_from(Label)) > 0
        assert [r.drifted for r in s.scalars(select(DriftRun).order_by(DriftRun.id))] == [False, True]
        statuses = set(s.scalars(select(JobRun.status)))
    engine.dispose()
    assert statuses == {"succeeded"}
    assert any("week 3" in line and "DRIFT" in line for line in lines)
