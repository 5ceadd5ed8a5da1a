"""The retrain job end to end on a small simulated production, on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

pytest.importorskip("tensorflow")

from drift.errors import LeaseHeldError, TrainingError
from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.ingest.run import ingest
from jobs.retrain.job import lease_name, plan_retrain, retrain
from storage import leases, repository
from storage.models import ModelVersion, ReferenceSet, RetrainRun

pytestmark = [pytest.mark.tf, pytest.mark.slow]
START = datetime(2026, 9, 7, tzinfo=UTC)


def _settings(database_url: str, var, **retrain) -> Settings:
    text = resources.files("jobs").joinpath("example_config.yaml").read_text()
    data = yaml.safe_load(text.replace("var/", f"{var}/"))
    data["database"]["url"] = database_url
    data["models"][0]["retrain"].update({"epochs": 1, "min_new_labels": 10, "recent_days": 30, **retrain})
    return Settings(**data)


@pytest.fixture
def production(database, tmp_path, champion, digits):
    """Champion v1 registered, two simulated weeks (the second drifted) ingested with labels."""
    from jobs.demo.simulator import ProductionSimulator

    var = tmp_path / "var"
    settings = _settings(database.url, var)
    model = settings.models[0]
    digits.save_training_npz(Path(model.retrain.training_data))
    with database.session_factory.begin() as s:
        row = repository.ensure_model(s, model.name, model.task)
        repository.register_version(s, row, 1, artifact_path=str(champion.path), status="champion")
    sim = ProductionSimulator(
        var / "demo", rows_per_week=300, drift_from_week=2, label_share=0.8, label_delay_days=(0, 2)
    )
    for week in (1, 2):
        sim.simulate_week(week, champion.path, 1, START + (week - 1) * timedelta(days=7))
    sim.release_labels(START + timedelta(days=21))
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, model, 1, START, START + timedelta(days=7))
    return settings


NOW = START + timedelta(days=21)


def _versions(database):
    with database.session_factory() as s:
        return dict(s.execute(select(ModelVersion.version, ModelVersion.status)).all())


def test_a_challenger_that_does_not_beat_the_margin_is_rejected_and_recorded(database, production, tmp_path):
    settings = _settings(database.url, tmp_path / "var", min_accuracy_gain=0.9)
    outcome = retrain(database.session_factory, settings, "digits", force=True, now=NOW)
    assert outcome.decision == "rejected" and outcome.version == 2
    assert any("gain" in r and "< 90.0%" in r for r in outcome.reasons)
    assert _versions(database) == {1: "champion", 2: "rejected"}
    with database.session_factory() as s:
        run = s.scalars(select(RetrainRun)).one()
    assert run.decision == "rejected" and run.metrics["n_holdout"] > 0
    assert any("< 90.0%" in r for r in run.reasons)


def test_a_failing_trainer_leaves_the_champion_and_records_the_failure(database, production, tmp_path):
    command = [sys.executable, "-c", "import sys; sys.stderr.write('out of memory\\n'); sys.exit(3)"]
    settings = _settings(database.url, tmp_path / "var", custom_command=command)
    with pytest.raises(TrainingError, match="out of memory"):
        retrain(database.session_factory, settings, "digits", force=True, now=NOW)
    assert _versions(database) == {1: "champion"}
    with database.session_factory() as s:
        run = s.scalars(select(RetrainRun)).one()
    assert run.decision == "failed" and "out of memory" in run.error
    assert leases.current_holder(database.session_factory, lease_name("digits")) is None  # released


def test_promotion_installs_a_reference_and_rollback_restores_the_champion(database, production, tmp_path):
    from jobs.retrain import registry

    settings = _settings(database.url, tmp_path / "var", min_accuracy_gain=0.0, max_test_accuracy_drop=0.2)
    outcome = retrain(database.session_factory, settings, "digits", force=True, now=NOW)
    assert outcome.decision == "promoted", outcome.reasons
    assert _versions(database) == {1: "retired", 2: "champion"}
    with database.session_factory() as s:
        references = dict(s.execute(select(ReferenceSet.version, ReferenceSet.source)).all())
        v2 = repository.get_version(s, repository.get_model(s, "digits"), 2)
    assert references == {1: "window", 2: "retrain"}
    assert outcome.export["passed"] and outcome.export["sizes"]["model.tflite"] > 0
    assert v2.parent_version == 1 and v2.export_dir and v2.lineage["retrain_run_id"] == outcome.run_id
    with database.session_factory.begin() as s:
        restored, removed = registry.rollback(s, repository.get_model(s, "digits"))
    assert (restored.version, removed.version) == (1, 2)
    assert _versions(database) == {1: "champion", 2: "rolled_back"}
    with database.session_factory() as s:
        assert {v for (v,) in s.execute(select(ReferenceSet.version))} == {1, 2}  # each keeps its own


def test_the_policy_explains_itself_and_a_held_lease_blocks(database, production, tmp_path):
    settings = _settings(database.url, tmp_path / "var", min_new_labels=100_000)
    plan = plan_retrain(database.session_factory, settings, "digits", now=NOW)
    assert not plan.should_run
    assert any("never checked" in r for r in plan.reasons) and any("< 100000" in r for r in plan.reasons)
    assert leases.acquire(database.session_factory, lease_name("digits"), "other-daemon", timedelta(minutes=5))
    assert not plan_retrain(database.session_factory, settings, "digits", force=True, now=NOW).should_run
    with pytest.raises(LeaseHeldError, match="other-daemon"):
        from jobs.retrain.job import _run  # noqa: F401  (the lease is checked before any work)

        with leases.held(database.session_factory, lease_name("digits"), timedelta(minutes=1)):
            pass


def test_a_teacher_labels_unlabelled_recent_samples_for_training(database, production, tmp_path, champion):
    settings = _settings(
        database.url,
        tmp_path / "var",
        teacher_path=str(champion.path),
        teacher_min_confidence=0.9,
        min_accuracy_gain=0.0,
        max_test_accuracy_drop=0.5,
    )
    outcome = retrain(database.session_factory, settings, "digits", force=True, now=NOW)
    assert outcome.metrics["n_teacher"] > 0  # unlabelled, confidently labelled by the teacher
    assert outcome.metrics["n_train_new"] > 0 and outcome.metrics["n_holdout"] > 0


def test_the_gate_judges_on_the_drifted_window_and_records_accuracy_per_period(database, production, tmp_path):
    from jobs.check.job import check
    from jobs.retrain.periods import held_count

    var = tmp_path / "var"
    reports = check(database.session_factory, production, "digits", end=START + timedelta(days=14), now=NOW)
    assert any(r.retrain_worthy for r in reports)  # week 2 drifted: it triggers the retrain
    drifted_week = (START + timedelta(days=7), START + timedelta(days=14))

    waiting = plan_retrain(
        database.session_factory, _settings(database.url, var, min_drifted_labels=10_000), "digits", now=NOW
    )
    assert not waiting.should_run and waiting.drift_window == drifted_week
    assert any(r.endswith("< 10000: too few to judge on the drifted data") for r in waiting.reasons)
    assert waiting.to_dict()["drift_window"] == [t.isoformat() for t in drifted_week]

    settings = _settings(database.url, var, min_accuracy_gain=0.0, max_test_accuracy_drop=0.5, drifted_weight=0.75)
    plan = plan_retrain(database.session_factory, settings, "digits", now=NOW)
    assert plan.should_run and plan.drifted_labels >= 60, plan.reasons
    outcome = retrain(database.session_factory, settings, "digits", now=NOW)
    metrics = outcome.metrics
    periods = [p for p in metrics["periods"] if p["n_labelled"]]
    # the labelled weeks: week 1 (older) and week 2 (drifted); each held out in proportion
    assert [(p["start"], p["drifted"]) for p in periods] == [
        (START.isoformat(), False),
        (drifted_week[0].isoformat(), True),
    ]
    assert all(p["n_holdout"] == held_count(p["n_labelled"], 0.3) for p in metrics["periods"])
    assert [p["weight"] for p in periods] == pytest.approx([0.25, 0.75])
    assert metrics["n_holdout"] == sum(p["n_holdout"] for p in periods)
    assert metrics["n_holdout_drifted"] == periods[1]["n_holdout"]
    for key, per_period in (("recent_accuracy", "accuracy"), ("champion_recent_accuracy", "champion_accuracy")):
        assert metrics[key] == pytest.approx(sum(p["weight"] * p[per_period] for p in periods))
    assert periods[1]["champion_accuracy"] < periods[0]["champion_accuracy"]  # the drift hurts the champion
    assert outcome.to_dict()["metrics"]["periods"] == metrics["periods"]
    with database.session_factory() as s:
        run = s.scalars(select(RetrainRun)).one()
        version = repository.get_version(s, repository.get_model(s, "digits"), outcome.version)
    assert run.drift_run_id == plan.drift_run_id and run.metrics["periods"] == metrics["periods"]
    assert version.metrics["recent_accuracy"] == metrics["recent_accuracy"]
    assert version.lineage["data"]["drift_window"] == [t.isoformat() for t in drifted_week]
